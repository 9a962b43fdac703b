//! The sweeper: every `queue_check_interval`, removes the connections whose
//! queue is gone (a client that deleted its queue, or whose exclusive or
//! auto-delete queue went with its AMQP connection) and, when `idle_timeout`
//! is set, those that sent no request for that long.
//!
//! A queue is checked with a passive declare. The broker answers a missing
//! queue by closing the channel, and lapin keeps the id of a channel the broker
//! closed taken until its connection ends: after 2,047 of them, no channel
//! opens on that connection any more. The checks therefore run on an AMQP
//! connection of their own, replaced after [`CHANNELS_PER_CONNECTION`]
//! channels, and a channel is replaced after [`CHECKS_PER_CHANNEL`] checks
//! (lapin remembers every queue a channel declared).

use std::sync::Arc;
use std::time::Instant;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::shared::{Removal, Shared, is_locked, is_not_found};

/// Channels opened on one checking connection before it is replaced.
const CHANNELS_PER_CONNECTION: u32 = 1024;
/// Queues checked on one channel before it is replaced.
const CHECKS_PER_CHANNEL: u32 = 1024;

/// Checks the connections until shutdown.
pub(crate) async fn run(shared: Arc<Shared>) {
    let Some(interval) = shared.config.queue_check() else {
        return;
    };
    let mut probe: Option<Probe> = None;
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
        sweep(&shared, &mut probe).await;
    }
    if let Some(probe) = probe {
        probe.close(&shared).await;
    }
}

/// The checking connection and its current channel.
struct Probe {
    connection: Connection,
    channel: Option<Channel>,
    /// Channels opened on `connection` so far.
    channels: u32,
    /// Queues checked on `channel` so far.
    checks: u32,
}

impl Probe {
    /// Connects (`None`, logged, when the broker cannot be reached in time).
    async fn open(shared: &Shared) -> Option<Self> {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("protoplex {} queue checks", shared.router.node_id()).into());
        let connect = Connection::connect(&shared.config.url, properties);
        let connection = match tokio::time::timeout(shared.config.connect_timeout(), connect).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => {
                tracing::debug!(%error, "Cannot connect to check AMQP queues.");
                return None;
            }
            Err(_) => {
                tracing::debug!("Cannot connect to check AMQP queues: timed out.");
                return None;
            }
        };
        Some(Self {
            connection,
            channel: None,
            channels: 0,
            checks: 0,
        })
    }

    /// The channel for the next check: the current one while it is open and
    /// not worn out, else a new one (`None` when this connection is worn out
    /// or a channel cannot be opened: the probe must be replaced).
    async fn channel(&mut self, shared: &Shared) -> Option<Channel> {
        if let Some(channel) = &self.channel
            && channel.status().connected()
            && self.checks < CHECKS_PER_CHANNEL
        {
            self.checks += 1;
            return Some(channel.clone());
        }
        if let Some(worn) = self.channel.take()
            && worn.status().connected()
        {
            let _ =
                tokio::time::timeout(shared.config.close_grace(), worn.close(200, "replaced".into())).await;
        }
        if self.channels >= CHANNELS_PER_CONNECTION {
            return None;
        }
        match self.connection.create_channel().await {
            Ok(channel) => {
                self.channels += 1;
                self.checks = 1;
                self.channel = Some(channel.clone());
                Some(channel)
            }
            Err(error) => {
                tracing::debug!(%error, "Cannot open an AMQP channel to check queues.");
                None
            }
        }
    }

    async fn close(self, shared: &Shared) {
        let closing = self.connection.close(200, "queue checks done".into());
        let _ = tokio::time::timeout(shared.config.close_grace(), closing).await;
    }
}

async fn sweep(shared: &Shared, probe: &mut Option<Probe>) {
    let idle = shared.config.idle();
    for (id, queue, _, last_seen) in shared.connections.snapshot() {
        if shared.shutdown.is_cancelled() {
            return;
        }
        if idle.is_some_and(|idle| Instant::now().saturating_duration_since(last_seen) >= idle) {
            shared.remove_connection(id, Removal::Idle);
            continue;
        }
        if shared.link().is_none() {
            return;
        }
        let channel = match probe.as_mut() {
            Some(current) => current.channel(shared).await,
            None => None,
        };
        let channel = match channel {
            Some(channel) => channel,
            None => {
                // Worn out, broken, or not opened yet: a new connection.
                if let Some(old) = probe.take() {
                    old.close(shared).await;
                }
                let Some(mut fresh) = Probe::open(shared).await else {
                    return;
                };
                let Some(channel) = fresh.channel(shared).await else {
                    fresh.close(shared).await;
                    return;
                };
                *probe = Some(fresh);
                channel
            }
        };
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let checked = channel
            .queue_declare(queue.as_ref().into(), options, FieldTable::default())
            .await;
        if let Err(error) = checked {
            // The broker closed the channel: the next check opens another.
            if is_not_found(&error) {
                shared.remove_connection(id, Removal::QueueGone);
            } else if is_locked(&error) {
                // Another connection's exclusive queue: it exists.
            } else {
                tracing::debug!(%error, %queue, "AMQP queue check failed.");
                return;
            }
        }
    }
}
