//! Helpers shared by the test binaries: a proxy with the AMQP and embedded
//! protocols, and AMQP clients made with lapin, against the broker at
//! `PROTOPLEX_AMQP_URL` (started by `scripts/services.sh`).

#![allow(dead_code, unreachable_pub)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use protoplex_amqp::{AmqpConfig, AmqpProtocol, DEFAULT_URL};
use protoplex_core::embedded::{EmbeddedClient, EmbeddedProtocol};
use protoplex_core::{CoreConfig, Router};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Runs `rabbitmqctl -q action`, on a blocking thread.
pub async fn rabbitmqctl(action: &'static str) {
    let status =
        tokio::task::spawn_blocking(move || Command::new("rabbitmqctl").args(["-q", action]).status())
            .await
            .expect("rabbitmqctl thread");
    let status = status.unwrap_or_else(|error| {
        panic!("cannot run `rabbitmqctl {action}` ({error}): this test restarts a local RabbitMQ (scripts/services.sh)")
    });
    assert!(status.success(), "`rabbitmqctl {action}` failed: {status}");
}

/// Starts the broker's application again, even when the test fails.
pub struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["-q", "start_app"]).status();
    }
}

/// Longest wait for anything expected.
pub const WAIT: Duration = Duration::from_secs(10);

/// How long "nothing arrives" is watched.
pub const QUIET: Duration = Duration::from_millis(400);

pub fn url() -> String {
    std::env::var("PROTOPLEX_AMQP_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Connects to the broker, or fails saying how to start one.
pub async fn connect() -> Connection {
    let url = url();
    match tokio::time::timeout(WAIT, Connection::connect(&url, ConnectionProperties::default())).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => panic!(
            "no AMQP broker answers at {url} ({error}): run scripts/services.sh, or set PROTOPLEX_AMQP_URL"
        ),
        Err(_) => panic!("the AMQP broker at {url} did not answer in time: run scripts/services.sh"),
    }
}

/// A router with the AMQP protocol (on its own request queue and routing
/// key) and the embedded protocol.
pub struct Proxy {
    pub router: Router,
    pub amqp: Arc<AmqpProtocol>,
    pub embedded: Arc<EmbeddedProtocol>,
    pub config: AmqpConfig,
}

impl Proxy {
    pub async fn start() -> Self {
        Self::start_with(CoreConfig::default(), |_| {}).await
    }

    pub async fn start_with(core: CoreConfig, tune: impl FnOnce(&mut AmqpConfig)) -> Self {
        // Logs with RUST_LOG (e.g. RUST_LOG=protoplex_amqp=debug).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        // Fails clearly when there is no broker, before the proxy retries forever.
        let _ = connect().await.close(200, "probe".into()).await;
        let mut config = AmqpConfig {
            url: url(),
            queue: unique("protoplex.test.requests"),
            routing_key: unique("kuzzle.test"),
            queue_check_interval: 200,
            reconnect_max_delay: 500,
            ..AmqpConfig::default()
        };
        tune(&mut config);
        let amqp = AmqpProtocol::new(config.clone());
        let embedded = EmbeddedProtocol::new(1024);
        let router = Router::builder(core)
            .protocol(amqp.clone())
            .protocol(embedded.clone())
            .build()
            .expect("router");
        router.start().await.expect("protocols start");
        tokio::time::timeout(WAIT, amqp.ready())
            .await
            .expect("the AMQP protocol consumes requests");
        Self {
            router,
            amqp,
            embedded,
            config,
        }
    }

    pub fn embedded_client(&self) -> EmbeddedClient {
        self.embedded.connect().expect("embedded client")
    }

    /// Stops the proxy and deletes its request queue.
    pub async fn stop(self) {
        assert!(
            self.router.shutdown(Duration::from_secs(10)).await,
            "every task of the proxy ended in time"
        );
        let connection = connect().await;
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .queue_delete(self.config.queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = connection.close(200, "bye".into()).await;
    }
}

/// A message received by a client.
#[derive(Debug)]
pub struct Message {
    pub correlation_id: Option<String>,
    pub body: Value,
}

/// An AMQP client: its own queue (non-exclusive, auto-delete), requests to
/// the proxy's exchange and routing key.
pub struct Client {
    pub connection: Connection,
    pub channel: Channel,
    pub queue: String,
    exchange: String,
    routing_key: String,
    messages: mpsc::UnboundedReceiver<Message>,
    /// Messages received while waiting for an answer.
    pub notifications: std::collections::VecDeque<Message>,
}

impl Client {
    pub async fn new(proxy: &Proxy) -> Self {
        Self::with_target(&proxy.config.exchange, &proxy.config.routing_key).await
    }

    pub async fn with_target(exchange: &str, routing_key: &str) -> Self {
        Self::with_queue(exchange, routing_key, &unique("test.client"), false).await
    }

    /// A client reading `queue`, declared auto-delete, or durable (kept when
    /// the client goes) when `durable` is set.
    pub async fn with_queue(exchange: &str, routing_key: &str, queue: &str, durable: bool) -> Self {
        let connection = connect().await;
        let channel = connection.create_channel().await.expect("channel");
        let queue = queue.to_owned();
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    auto_delete: !durable,
                    durable,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("client queue");
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let (sender, messages) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let body = serde_json::from_slice(&delivery.data).unwrap_or(Value::Null);
                let correlation_id = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|id| id.as_str().to_owned());
                if sender.send(Message { correlation_id, body }).is_err() {
                    break;
                }
            }
        });
        Self {
            connection,
            channel,
            queue,
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            messages,
            notifications: Default::default(),
        }
    }

    /// Publishes a raw request, with this client's queue as `reply_to` when
    /// `reply` is set.
    pub async fn send_raw(&self, payload: &[u8], correlation_id: Option<&str>, reply: bool) {
        let mut properties = BasicProperties::default();
        if reply {
            properties = properties.with_reply_to(self.queue.as_str().into());
        }
        if let Some(id) = correlation_id {
            properties = properties.with_correlation_id(id.into());
        }
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                self.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await
            .expect("publish");
        confirm.await.expect("published");
    }

    /// The next message, with its correlation id.
    pub async fn next_message(&mut self, wait: Duration) -> Option<Message> {
        if let Some(message) = self.notifications.pop_front() {
            return Some(message);
        }
        tokio::time::timeout(wait, self.messages.recv())
            .await
            .ok()
            .flatten()
    }

    /// The answer with `correlation_id`; other messages are kept in `notifications`.
    pub async fn answer(&mut self, correlation_id: &str) -> Value {
        if let Some(position) = self
            .notifications
            .iter()
            .position(|message| message.correlation_id.as_deref() == Some(correlation_id))
            && let Some(message) = self.notifications.remove(position)
        {
            return message.body;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.messages.recv())
                .await
                .unwrap_or_else(|_| panic!("no answer for {correlation_id}"))
                .expect("client consumer running");
            if message.correlation_id.as_deref() == Some(correlation_id) {
                return message.body;
            }
            self.notifications.push_back(message);
        }
    }

    /// Sends a request and returns its answer.
    pub async fn query(&mut self, request: Value) -> Value {
        let correlation_id = unique("corr");
        self.send_raw(request.to_string().as_bytes(), Some(&correlation_id), true)
            .await;
        self.answer(&correlation_id).await
    }

    /// The next notification (a message that is not an answer), if one comes in time.
    pub async fn notification(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let message = self.next_message(wait).await?;
            if message.correlation_id.is_none() {
                return Some(message.body);
            }
        }
    }

    pub async fn close(self) {
        let _ = self.connection.close(200, "bye".into()).await;
    }
}

/// A subscribe request to everything of `index`/`collection`.
pub fn subscribe(index: &str, collection: &str) -> Value {
    json!({"controller": "realtime", "action": "subscribe", "index": index, "collection": collection, "body": {}})
}

/// A publish request.
pub fn publish(index: &str, collection: &str, message: Value) -> Value {
    json!({"controller": "realtime", "action": "publish", "index": index, "collection": collection, "body": message})
}

/// Subscribers of a room, asked through an embedded client.
pub async fn count(client: &EmbeddedClient, room_id: &str) -> Option<u64> {
    let response = client
        .query(json!({"controller": "realtime", "action": "count", "body": {"roomId": room_id}}))
        .await;
    response.result.get("count").and_then(Value::as_u64)
}

/// Waits until `check` holds, at most [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
