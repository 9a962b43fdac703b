//! The session: connects to the broker, declares what protoplex needs,
//! consumes, and reconnects with an exponential backoff when the broker goes
//! away; at shutdown, drains the requests in flight and closes the connection.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::commands::Command;
use crate::consumer::{self, End};
use crate::shared::{Link, Shared};
use crate::{publisher, sweep};

/// Time given to close a connection found broken.
/// A failed connection attempt is a warning once every this many (about a
/// minute at the longest backoff), a debug line otherwise.
const WARN_EVERY: u32 = 12;
const CLOSE_LOST: Duration = Duration::from_secs(1);

/// A connection ready to consume.
struct Session {
    link: Link,
    channel: Channel,
    consumer: Consumer,
}

/// Runs the protocol until shutdown: the publisher, the queue sweeper, and
/// connect / consume / reconnect.
pub(crate) async fn run(shared: Arc<Shared>, commands: mpsc::Receiver<Command>) {
    let stop_publisher = CancellationToken::new();
    let publisher = shared
        .tasks
        .spawn(publisher::run(shared.clone(), commands, stop_publisher.clone()));
    shared.tasks.spawn(sweep::run(shared.clone()));
    let in_flight = TaskTracker::new();
    let (min_delay, max_delay) = shared.config.backoff();
    let mut delay = min_delay;
    let mut generation = 0u64;
    let url = shared.config.redacted_url();
    let mut last: Option<Arc<Connection>> = None;
    // Consecutive failed attempts: the first one and every WARN_EVERY-th are
    // warnings, the others debug lines, so a missing broker does not flood the log.
    let mut failures = 0u32;

    while !shared.shutdown.is_cancelled() {
        let attempt = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            attempt = tokio::time::timeout(shared.config.connect_timeout(), connect(&shared, generation + 1)) => attempt,
        };
        match attempt {
            Ok(Ok(session)) => {
                generation += 1;
                delay = min_delay;
                failures = 0;
                let connection = session.link.connection.clone();
                let generation = session.link.generation;
                last = Some(connection.clone());
                shared.link.send_replace(Some(session.link));
                shared.commands.send(Command::Resync).await;
                shared.ready.send_replace(true);
                tracing::info!(%url, queue = %shared.config.queue, "AMQP protocol consuming requests.");
                let end = consumer::run(
                    &shared,
                    &session.channel,
                    session.consumer,
                    &in_flight,
                    generation,
                )
                .await;
                shared.ready.send_replace(false);
                match end {
                    End::Shutdown => break,
                    End::Lost(reason) => {
                        tracing::warn!(%url, %reason, "AMQP connection lost: reconnecting.");
                        shared.link.send_replace(None);
                        let _ =
                            tokio::time::timeout(CLOSE_LOST, connection.close(200, "reconnecting".into()))
                                .await;
                        last = None;
                    }
                }
            }
            Ok(Err(error)) => {
                if failures.is_multiple_of(WARN_EVERY) {
                    tracing::warn!(%url, %error, retry_in = ?delay, failures, "Cannot reach the AMQP broker.");
                } else {
                    tracing::debug!(%url, %error, retry_in = ?delay, failures, "Cannot reach the AMQP broker.");
                }
                failures = failures.saturating_add(1);
            }
            Err(_) => {
                if failures.is_multiple_of(WARN_EVERY) {
                    tracing::warn!(%url, retry_in = ?delay, failures, "AMQP connection attempt timed out.");
                } else {
                    tracing::debug!(%url, retry_in = ?delay, failures, "AMQP connection attempt timed out.");
                }
                failures = failures.saturating_add(1);
            }
        }
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(max_delay);
    }

    // Shutdown: the requests in flight get their answers, the queued commands
    // are carried out, then the connection closes; all within close_timeout.
    let deadline = Instant::now() + shared.config.close_grace();
    in_flight.close();
    if tokio::time::timeout_at(deadline, in_flight.wait()).await.is_err() {
        tracing::warn!("AMQP requests still executing at shutdown: left to the broker.");
    }
    stop_publisher.cancel();
    let _ = tokio::time::timeout_at(deadline, publisher).await;
    shared.link.send_replace(None);
    if let Some(connection) = last {
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(500));
        let _ = tokio::time::timeout(remaining, connection.close(200, "shutting down".into())).await;
    }
    tracing::debug!("AMQP protocol stopped.");
}

/// Connects, declares the exchange (unless predefined), the request queue and
/// its binding, and starts consuming.
async fn connect(shared: &Shared, generation: u64) -> Result<Session, lapin::Error> {
    let config = &shared.config;
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("protoplex {}", shared.router.node_id()).into());
    let connection = Arc::new(Connection::connect(&config.url, properties).await?);

    let declare = connection.create_channel().await?;
    if !config.predefined_exchange() {
        declare
            .exchange_declare(
                config.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
    }
    declare
        .queue_declare(
            config.queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    declare
        .queue_bind(
            config.queue.as_str().into(),
            config.exchange.as_str().into(),
            config.routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let _ = declare.close(200, "declared".into()).await;

    let publisher = connection.create_channel().await?;
    publisher.confirm_select(ConfirmSelectOptions::default()).await?;

    let channel = connection.create_channel().await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            config.queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(Session {
        link: Link {
            generation,
            connection,
            publisher,
        },
        channel,
        consumer,
    })
}
