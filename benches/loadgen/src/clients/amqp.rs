//! AMQP 0-9-1 clients (lapin) of a server behind RabbitMQ: requests
//! published to a topic exchange with the server's routing key, `reply_to`
//! the client's own queue, answers matched by `correlation_id`.
//!
//! The server's request queue is declared and bound here before the server
//! starts (durable, as protoplex declares it: the same declaration succeeds
//! on both sides), so that no request published before the server consumes
//! is dropped as unroutable; [`wait_consumer`] tells when it consumes, and
//! [`delete_queue`] removes it once the server stopped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use serde::Deserialize;

use super::ws::PATIENCE;
use super::{ClientError, Dialect};

/// RabbitMQ on loopback with its default account (protoplex's default).
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Where the requests go: the broker, the exchange, the routing key, and
/// the queue the server consumes them from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpRoute {
    /// The broker's URL.
    pub url: String,
    /// The topic exchange requests are published to (`amq.topic`).
    pub exchange: String,
    /// Routing key of the requests.
    pub routing_key: String,
    /// The server's request queue.
    pub queue: String,
}

impl AmqpRoute {
    /// A route of its own for one run: `PREFIX.PID.N` as queue and routing key.
    pub fn unique(url: &str, prefix: &str) -> Self {
        let name = unique_name(prefix);
        Self {
            url: url.to_owned(),
            exchange: "amq.topic".into(),
            routing_key: name.clone(),
            queue: name,
        }
    }

    /// The environment that points protoplex (and `amqp-echo`, which reads
    /// the same variables) at this route.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PROTOPLEX_AMQP_URL".into(), self.url.clone()),
            ("PROTOPLEX_AMQP__EXCHANGE".into(), self.exchange.clone()),
            ("PROTOPLEX_AMQP__ROUTING_KEY".into(), self.routing_key.clone()),
            ("PROTOPLEX_AMQP__QUEUE".into(), self.queue.clone()),
        ]
    }
}

/// A name no other queue of this process uses: `PREFIX.PID.N`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "{prefix}.{}.{nanos:x}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Connects to the broker at `url` (bounded in time).
pub async fn connect(url: &str) -> Result<Connection, ClientError> {
    tokio::time::timeout(
        PATIENCE,
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .map_err(|_| ClientError::Timeout("AMQP connection"))?
    .map_err(ClientError::from)
}

/// Declares the server's request queue (durable) and binds it to the
/// exchange with the routing key.
pub async fn prepare_queue(route: &AmqpRoute) -> Result<(), ClientError> {
    let connection = connect(&route.url).await?;
    let result = async {
        let channel = connection.create_channel().await?;
        declare_request_queue(&channel, &route.queue).await?;
        channel
            .queue_bind(
                route.queue.as_str().into(),
                route.exchange.as_str().into(),
                route.routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok::<_, ClientError>(())
    };
    let result = tokio::time::timeout(PATIENCE, result)
        .await
        .map_err(|_| ClientError::Timeout("AMQP request queue"))?;
    let _ = connection.close(200, "bye".into()).await;
    result
}

/// The request queue's declaration: durable, as protoplex's.
async fn declare_request_queue(channel: &Channel, queue: &str) -> Result<lapin::Queue, ClientError> {
    Ok(channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?)
}

/// Waits (at most `patience`) until the request queue has a consumer: the
/// server is ready.
pub async fn wait_consumer(route: &AmqpRoute, patience: Duration) -> Result<(), ClientError> {
    let connection = connect(&route.url).await?;
    let waiting = async {
        let channel = connection.create_channel().await?;
        loop {
            let queue = declare_request_queue(&channel, &route.queue).await?;
            if queue.consumer_count() > 0 {
                return Ok::<_, ClientError>(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let result = tokio::time::timeout(patience, waiting)
        .await
        .map_err(|_| ClientError::Timeout("a consumer on the AMQP request queue"))?;
    let _ = connection.close(200, "bye".into()).await;
    result
}

/// Deletes `queue` (a missing one is no error); returns the messages it held.
pub async fn delete_queue(url: &str, queue: &str) -> Result<u32, ClientError> {
    let connection = connect(url).await?;
    let deleting = async {
        let channel = connection.create_channel().await?;
        Ok::<_, ClientError>(
            channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await?,
        )
    };
    let result = tokio::time::timeout(PATIENCE, deleting)
        .await
        .map_err(|_| ClientError::Timeout("AMQP queue deletion"))?;
    let _ = connection.close(200, "bye".into()).await;
    result
}

/// The part of a Kuzzle answer the requester checks.
#[derive(Deserialize)]
struct Status {
    status: u16,
}

/// A request/response client: its own connection and auto-delete reply
/// queue (not exclusive, as protoplex wants), one request at a time.
pub struct Requester {
    connection: Connection,
    channel: Channel,
    consumer: Consumer,
    queue: String,
    exchange: String,
    routing_key: String,
    dialect: Dialect,
    next_id: u64,
}

/// Opens a channel on `connection`, declares the auto-delete reply queue
/// `queue` and consumes it (no ack), within [`PATIENCE`].
pub async fn reply_queue(connection: &Connection, queue: &str) -> Result<(Channel, Consumer), ClientError> {
    let setup = async {
        let channel = connection.create_channel().await?;
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok::<_, ClientError>((channel, consumer))
    };
    tokio::time::timeout(PATIENCE, setup)
        .await
        .map_err(|_| ClientError::Timeout("AMQP reply queue"))?
}

impl Requester {
    /// Connects, declares the reply queue and consumes it (no ack).
    pub async fn connect(route: &AmqpRoute, dialect: Dialect) -> Result<Self, ClientError> {
        let connection = connect(&route.url).await?;
        let queue = unique_name("loadgen.reply");
        let (channel, consumer) = reply_queue(&connection, &queue).await?;
        Ok(Self {
            connection,
            channel,
            consumer,
            queue,
            exchange: route.exchange.clone(),
            routing_key: route.routing_key.clone(),
            dialect,
            next_id: 0,
        })
    }

    /// Publishes the body built by `build(request_id)` and waits for the
    /// answer with its correlation id: on protoplex, status 200 (any other
    /// is an error); from an echo, any body.
    pub async fn request(&mut self, build: impl FnOnce(u64) -> String) -> Result<(), ClientError> {
        self.next_id += 1;
        let correlation_id = self.next_id.to_string();
        let properties = BasicProperties::default()
            .with_reply_to(self.queue.as_str().into())
            .with_correlation_id(correlation_id.as_str().into());
        let body = build(self.next_id);
        let exchange = async {
            // Not in confirm mode: the second await returns at once.
            self.channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    self.routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    properties,
                )
                .await?
                .await?;
            loop {
                let delivery = match self.consumer.next().await {
                    Some(delivery) => delivery?,
                    None => return Err(ClientError::Closed(" (AMQP consumer ended)".into())),
                };
                let matches = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .is_some_and(|id| id.as_str() == correlation_id);
                if !matches {
                    // A late answer to an earlier request that timed out.
                    continue;
                }
                return match self.dialect {
                    Dialect::Raw => Ok(()),
                    Dialect::Kuzzle => match serde_json::from_slice::<Status>(&delivery.data) {
                        Ok(answer) if answer.status == 200 => Ok(()),
                        _ => Err(ClientError::Unexpected(
                            String::from_utf8_lossy(&delivery.data[..delivery.data.len().min(300)])
                                .into_owned(),
                        )),
                    },
                };
            }
        };
        tokio::time::timeout(PATIENCE, exchange)
            .await
            .map_err(|_| ClientError::Timeout("AMQP answer"))?
    }

    /// Deletes the reply queue and closes the connection (bounded in time).
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self
                .channel
                .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
                .await;
            let _ = self.connection.close(200, "bye".into()).await;
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_unique_and_reach_protoplex_by_its_environment() {
        let first = AmqpRoute::unique(DEFAULT_URL, "loadgen.requests");
        let second = AmqpRoute::unique(DEFAULT_URL, "loadgen.requests");
        assert_ne!(first.queue, second.queue);
        assert!(first.queue.starts_with("loadgen.requests."), "{}", first.queue);
        assert_eq!(first.exchange, "amq.topic");
        let env = first.env();
        assert!(env.contains(&("PROTOPLEX_AMQP__QUEUE".into(), first.queue.clone())));
        assert!(env.contains(&("PROTOPLEX_AMQP__ROUTING_KEY".into(), first.routing_key.clone())));
        assert!(env.contains(&("PROTOPLEX_AMQP_URL".into(), DEFAULT_URL.into())));
    }
}
