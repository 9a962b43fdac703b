//! `amqp-echo`: the ceiling of protoplex's AMQP entry point.
//!
//! A lapin consumer of a durable request queue bound to a topic exchange
//! (`amq.topic`) with a routing key, as protoplex's: every delivery is
//! published back, body untouched, to the default exchange with its
//! `reply_to` as routing key and its `correlation_id`, then acknowledged. No
//! JSON, no router; like protoplex, each delivery is handled by a task of its
//! own, at most `--prefetch` unacknowledged at once. Unlike protoplex, its
//! answers are neither `mandatory` nor confirmed by the broker before the ack.
//!
//! Once it consumes, it listens on `--bind:--port` (and drops whatever
//! connects) so that a load generator can tell it is ready.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use protoplex_baselines::{ListenArgs, listen, run_main, shutdown_signal};

/// How long connecting to the broker and declaring may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A minimal AMQP echo responder.
#[derive(Debug, Parser)]
#[command(about)]
struct Cli {
    #[command(flatten)]
    listen: ListenArgs,
    /// The broker's URL.
    #[arg(
        long,
        env = "PROTOPLEX_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    url: String,
    /// Topic exchange the requests are published to.
    #[arg(long, env = "PROTOPLEX_AMQP__EXCHANGE", default_value = "amq.topic")]
    exchange: String,
    /// Routing key of the requests.
    #[arg(long, env = "PROTOPLEX_AMQP__ROUTING_KEY", default_value = "echo")]
    routing_key: String,
    /// Durable queue the requests are consumed from.
    #[arg(long, env = "PROTOPLEX_AMQP__QUEUE", default_value = "echo.requests")]
    queue: String,
    /// Deliveries unacknowledged at most (protoplex's `prefetch`).
    #[arg(long, env = "PROTOPLEX_AMQP__PREFETCH", default_value_t = 100)]
    prefetch: u16,
}

fn main() -> ExitCode {
    run_main("amqp-echo", run(Cli::parse()))
}

fn io_error(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

async fn run(cli: Cli) -> std::io::Result<()> {
    let (connection, publisher, mut consumer) = tokio::time::timeout(CONNECT_TIMEOUT, setup(&cli))
        .await
        .map_err(|_| io_error("the broker did not answer in time"))?
        .map_err(io_error)?;
    let listener = listen(&cli.listen).await?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => {
                    tokio::spawn(answer(publisher.clone(), delivery));
                }
                Some(Err(error)) => break Err(io_error(error)),
                None => break Err(io_error("the consumer ended")),
            },
            accepted = listener.accept() => {
                // Readiness only: whoever connects is dropped.
                drop(accepted);
            }
            result = &mut shutdown => break result,
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), connection.close(200, "bye".into())).await;
    outcome
}

/// Connects, declares and binds the request queue, and consumes it.
async fn setup(cli: &Cli) -> lapin::Result<(Connection, Channel, lapin::Consumer)> {
    let connection = Connection::connect(&cli.url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .queue_declare(
            cli.queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            cli.queue.as_str().into(),
            cli.exchange.as_str().into(),
            cli.routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .basic_qos(cli.prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            cli.queue.as_str().into(),
            "amqp-echo".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let publisher = connection.create_channel().await?;
    Ok((connection, publisher, consumer))
}

/// Publishes the body back to `reply_to` with the `correlation_id`, then acks.
async fn answer(publisher: Channel, delivery: Delivery) {
    if let Some(reply_to) = delivery.properties.reply_to().clone() {
        let mut properties = BasicProperties::default();
        if let Some(id) = delivery.properties.correlation_id().clone() {
            properties = properties.with_correlation_id(id);
        }
        let published = publisher
            .basic_publish(
                "".into(),
                reply_to,
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await;
        if let Err(error) = published {
            eprintln!("amqp-echo: cannot answer: {error}");
        }
    }
    if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
        eprintln!("amqp-echo: cannot acknowledge: {error}");
    }
}
