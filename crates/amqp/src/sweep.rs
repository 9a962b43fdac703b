//! The sweeper: every `queue_check_interval`, removes the connections whose
//! queue is gone (a client that deleted its queue, or whose exclusive or
//! auto-delete queue went with its AMQP connection) and, when `idle_timeout`
//! is set, those that sent no request for that long.
//!
//! A queue is checked with a passive declare on a channel of its own: the
//! broker's 404 (and its 405 for another connection's exclusive queue, which
//! exists) closes that channel, which is opened again for the next check.

use std::sync::Arc;
use std::time::Instant;

use lapin::Channel;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

use crate::shared::{Removal, Shared, is_locked, is_not_found};

/// Checks the connections until shutdown.
pub(crate) async fn run(shared: Arc<Shared>) {
    let Some(interval) = shared.config.queue_check() else {
        return;
    };
    let mut probe: Option<(u64, Channel)> = None;
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        sweep(&shared, &mut probe).await;
    }
}

async fn sweep(shared: &Shared, probe: &mut Option<(u64, Channel)>) {
    let idle = shared.config.idle();
    for (id, queue, _, last_seen) in shared.connections.snapshot() {
        if shared.shutdown.is_cancelled() {
            return;
        }
        if idle.is_some_and(|idle| Instant::now().saturating_duration_since(last_seen) >= idle) {
            shared.remove_connection(id, Removal::Idle);
            continue;
        }
        let Some(link) = shared.link() else {
            return;
        };
        let channel = match probe {
            Some((generation, channel)) if *generation == link.generation && channel.status().connected() => {
                channel.clone()
            }
            _ => match link.connection.create_channel().await {
                Ok(channel) => {
                    *probe = Some((link.generation, channel.clone()));
                    channel
                }
                Err(error) => {
                    tracing::debug!(%error, "Cannot open an AMQP channel to check queues.");
                    return;
                }
            },
        };
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        match channel
            .queue_declare(queue.as_ref().into(), options, FieldTable::default())
            .await
        {
            Ok(_) => {}
            Err(error) => {
                *probe = None;
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
}
