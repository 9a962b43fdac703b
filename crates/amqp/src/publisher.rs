//! The publisher: the one task that carries out the [commands](crate::commands)
//! in the order they were queued: binds and unbinds on its own topology
//! channel, notifications on the link's publishing channel.
//!
//! Binds are awaited one after the other, so a [`Command::Barrier`] answered
//! means every bind queued before it is effective. Notifications are not
//! awaited one by one: their confirms are collected (at most
//! [`MAX_UNCONFIRMED`] at once) to learn about the ones returned unroutable.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::options::{BasicPublishOptions, QueueBindOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::commands::{Command, Target};
use crate::shared::{Link, Removal, Shared, is_locked, is_not_found};

/// Notifications published and not confirmed yet, at most.
pub(crate) const MAX_UNCONFIRMED: usize = 1024;

/// Binds and unbinds on one topology channel before it is replaced: lapin
/// remembers every binding a channel made, even to a queue gone since.
const BINDS_PER_CHANNEL: u32 = 1024;

/// The MIME type of every message protoplex publishes.
pub(crate) const CONTENT_TYPE: &str = "application/json";

/// The queue a returned notification was meant for, if it came back unroutable.
type Confirm = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

struct Publisher {
    shared: Arc<Shared>,
    /// The topology channel and the generation of the link it belongs to.
    topology: Option<(u64, Channel)>,
    /// Binds and unbinds made on the topology channel.
    binds: u32,
    confirms: FuturesUnordered<Confirm>,
}

/// Carries out the commands until `stop` is cancelled, then those already
/// queued, within the configured close timeout.
pub(crate) async fn run(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Command>, stop: CancellationToken) {
    let mut publisher = Publisher {
        shared,
        topology: None,
        binds: 0,
        confirms: FuturesUnordered::new(),
    };
    loop {
        tokio::select! {
            biased;
            Some(returned) = publisher.confirms.next(), if !publisher.confirms.is_empty() => {
                publisher.returned(returned);
            }
            command = receiver.recv() => match command {
                Some(command) => publisher.handle(command).await,
                None => break,
            },
            () = stop.cancelled() => break,
        }
    }
    let grace = publisher.shared.config.close_grace();
    let drain = async {
        while let Ok(command) = receiver.try_recv() {
            publisher.handle(command).await;
        }
        while let Some(returned) = publisher.confirms.next().await {
            publisher.returned(returned);
        }
    };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!("AMQP publisher stopped before every queued command was done.");
    }
}

impl Publisher {
    async fn handle(&mut self, command: Command) {
        match command {
            Command::Bind {
                queue,
                channel,
                pending,
            } => {
                self.bind(&queue, &channel, true).await;
                pending.finish();
            }
            Command::Unbind {
                queue,
                channel,
                pending,
            } => {
                self.bind(&queue, &channel, false).await;
                pending.finish();
            }
            Command::Publish {
                target,
                routing_key,
                payload,
            } => self.publish(target, &routing_key, &payload).await,
            Command::Disconnect(id) => self.shared.remove_connection(id, Removal::Disconnected),
            Command::Resync => self.resync().await,
            Command::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }

    /// The topology channel of the live link, opened when needed, and
    /// replaced after [`BINDS_PER_CHANNEL`] uses.
    async fn topology(&mut self, link: &Link) -> Result<Channel, lapin::Error> {
        if let Some((generation, channel)) = &self.topology
            && *generation == link.generation
            && channel.status().connected()
            && self.binds < BINDS_PER_CHANNEL
        {
            self.binds += 1;
            return Ok(channel.clone());
        }
        if let Some((_, worn)) = self.topology.take()
            && worn.status().connected()
        {
            let closing = worn.close(200, "replaced".into());
            let _ = tokio::time::timeout(self.shared.config.close_grace(), closing).await;
        }
        let channel = link.connection.create_channel().await?;
        self.topology = Some((link.generation, channel.clone()));
        self.binds = 1;
        Ok(channel)
    }

    /// Binds (or unbinds) `queue` to the exchange with `channel` as routing key.
    /// Without a link, nothing: the next resynchronization binds what must be.
    /// Returns false when the queue does not exist (its connection is removed).
    async fn bind(&mut self, queue: &str, channel: &str, bind: bool) -> bool {
        let Some(link) = self.shared.link() else {
            return true;
        };
        let topology = match self.topology(&link).await {
            Ok(topology) => topology,
            Err(error) => {
                tracing::warn!(%error, "Cannot open an AMQP channel for bindings.");
                return true;
            }
        };
        let exchange = self.shared.config.exchange.as_str();
        let result = if bind {
            topology
                .queue_bind(
                    queue.into(),
                    exchange.into(),
                    channel.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
        } else {
            topology
                .queue_unbind(
                    queue.into(),
                    exchange.into(),
                    channel.into(),
                    FieldTable::default(),
                )
                .await
        };
        match result {
            Ok(()) => {
                tracing::trace!(%queue, %channel, bind, "AMQP binding updated.");
                true
            }
            Err(error) => {
                // Any channel error closed the channel: open another next time.
                self.topology = None;
                if is_not_found(&error) {
                    tracing::debug!(%queue, "AMQP client queue gone.");
                    self.shared.queue_gone(queue);
                    false
                } else if is_locked(&error) {
                    tracing::warn!(%queue, %channel, "AMQP client queue is exclusive to its connection: it cannot be bound, use a non-exclusive queue to receive notifications.");
                    true
                } else {
                    tracing::warn!(%error, %queue, %channel, bind, "AMQP binding failed.");
                    true
                }
            }
        }
    }

    /// Binds the queue of every known connection to each channel it joined.
    async fn resync(&mut self) {
        let snapshot = self.shared.connections.snapshot();
        let mut bindings = 0usize;
        for (_, queue, channels, _) in snapshot {
            for channel in channels {
                if !self.bind(&queue, &channel, true).await {
                    break;
                }
                bindings += 1;
            }
        }
        if bindings > 0 {
            tracing::info!(bindings, "AMQP bindings restored.");
        }
    }

    async fn publish(&mut self, target: Target, routing_key: &str, payload: &[u8]) {
        let Some(link) = self.shared.link() else {
            tracing::debug!(%routing_key, "AMQP broker unreachable: notification dropped.");
            return;
        };
        while self.confirms.len() >= MAX_UNCONFIRMED {
            if let Some(returned) = self.confirms.next().await {
                self.returned(returned);
            }
        }
        let (exchange, mandatory) = match target {
            Target::Exchange => (self.shared.config.exchange.as_str(), false),
            Target::Queue => ("", true),
        };
        let published = link
            .publisher
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory,
                    ..BasicPublishOptions::default()
                },
                payload,
                BasicProperties::default().with_content_type(CONTENT_TYPE.into()),
            )
            .await;
        match published {
            Ok(confirm) => self.confirms.push(Box::pin(async move {
                let confirmation = confirm.await.ok()?;
                let returned = confirmation.take_message()?;
                mandatory.then(|| returned.routing_key.to_string())
            })),
            Err(error) => tracing::debug!(%error, %routing_key, "AMQP notification not published."),
        }
    }

    fn returned(&self, queue: Option<String>) {
        if let Some(queue) = queue {
            tracing::debug!(%queue, "AMQP notification returned unroutable: client queue gone.");
            self.shared.queue_gone(&queue);
        }
    }
}
