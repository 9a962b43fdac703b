//! AMQP clients (lapin) of the Kuzzle API through RabbitMQ: requests to the
//! proxy's exchange and routing key with `reply_to` = the client's own queue,
//! answers matched by `correlation_id`, notifications on the same queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::PATIENCE;

/// The broker URL: `PROTOPLEX_AMQP_URL`, or RabbitMQ's default on loopback.
pub fn broker_url() -> String {
    std::env::var("PROTOPLEX_AMQP_URL").unwrap_or_else(|_| protoplex_amqp::DEFAULT_URL.to_owned())
}

/// A name no other test or test run uses.
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
    let url = broker_url();
    match tokio::time::timeout(
        PATIENCE,
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => panic!("no AMQP broker at {url} ({error}): run scripts/services.sh"),
        Err(_) => panic!("the AMQP broker at {url} did not answer in time: run scripts/services.sh"),
    }
}

/// An AMQP client with its own auto-delete queue.
pub struct AmqpClient {
    connection: Connection,
    channel: Channel,
    queue: String,
    exchange: String,
    routing_key: String,
    incoming: mpsc::UnboundedReceiver<(Option<String>, Value)>,
    notifications: VecDeque<Value>,
    next_id: u64,
}

impl AmqpClient {
    /// A client sending requests to `exchange` with `routing_key`.
    pub async fn connect(exchange: &str, routing_key: &str) -> Self {
        let connection = connect().await;
        let channel = connection.create_channel().await.expect("channel");
        let queue = unique("matrix.client");
        // Not exclusive: the proxy binds it to channels from its own connection.
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    auto_delete: true,
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
        let (sender, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let body = serde_json::from_slice(&delivery.data).unwrap_or(Value::Null);
                let correlation_id = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|id| id.as_str().to_owned());
                if sender.send((correlation_id, body)).is_err() {
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
            incoming,
            notifications: VecDeque::new(),
            next_id: 0,
        }
    }

    /// Publishes `request` with `reply_to` and a correlation id, and waits for
    /// the answer carrying that correlation id.
    pub async fn query(&mut self, mut request: Value) -> Value {
        if request.get("requestId").is_none() {
            self.next_id += 1;
            request["requestId"] = Value::from(format!("amqp-{}", self.next_id));
        }
        let answer = self.query_raw(request.to_string().as_bytes()).await;
        assert_eq!(answer["requestId"], request["requestId"]);
        answer
    }

    /// Publishes raw bytes to the proxy's exchange and routing key with
    /// exactly `properties` (no `reply_to` added).
    pub async fn publish_raw(&self, payload: &[u8], properties: BasicProperties) {
        self.channel
            .basic_publish(
                self.exchange.as_str().into(),
                self.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("published");
    }

    /// Publishes raw bytes as a request (`reply_to` = this client's queue, a
    /// fresh correlation id) and returns the answer with that correlation id.
    pub async fn query_raw(&mut self, payload: &[u8]) -> Value {
        let correlation_id = unique("correlation");
        let properties = BasicProperties::default()
            .with_reply_to(self.queue.as_str().into())
            .with_correlation_id(correlation_id.as_str().into());
        self.publish_raw(payload, properties).await;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (id, body) = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .expect("an answer in time")
                .expect("consumer running");
            if id.as_deref() == Some(correlation_id.as_str()) {
                return body;
            }
            self.notifications.push_back(body);
        }
    }

    /// The next message that is not an answer, if one comes within `wait`.
    pub async fn maybe_notification(&mut self, wait: Duration) -> Option<Value> {
        if let Some(message) = self.notifications.pop_front() {
            return Some(message);
        }
        tokio::time::timeout(wait, self.incoming.recv())
            .await
            .ok()
            .flatten()
            .map(|(_, body)| body)
    }

    /// Closes the client's AMQP connection (its auto-delete queue goes with it).
    pub async fn close(self) {
        let _ = self.connection.close(200, "bye".into()).await;
    }
}
