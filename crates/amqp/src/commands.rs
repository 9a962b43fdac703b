//! Commands for the broker, queued by the protocol's non-blocking methods
//! (`join_channel`, `leave_channel`, `notify`, `broadcast`, `disconnect`) and
//! carried out in order by the [publisher](crate::publisher).

use std::sync::Arc;

use bytes::Bytes;
use protoplex_core::{ChannelName, ConnectionId};
use tokio::sync::{mpsc, oneshot};

use crate::connections::Pending;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The configured topic exchange: every queue bound to the routing key.
    Exchange,
    /// The default exchange: the queue named by the routing key.
    Queue,
}

/// One thing to do with the broker.
#[derive(Debug)]
pub(crate) enum Command {
    /// Bind `queue` to the exchange with `channel` as routing key.
    Bind {
        queue: Arc<str>,
        channel: ChannelName,
        pending: Arc<Pending>,
    },
    /// Remove that binding.
    Unbind {
        queue: Arc<str>,
        channel: ChannelName,
        pending: Arc<Pending>,
    },
    /// Publish a notification.
    Publish {
        target: Target,
        routing_key: Arc<str>,
        payload: Bytes,
    },
    /// Forget a connection and its bindings (the router's `disconnect`).
    Disconnect(ConnectionId),
    /// Bind every known connection's queue again (after a reconnection).
    Resync,
    /// Answered once every command queued before it is done.
    Barrier(oneshot::Sender<()>),
}

/// The sending side of the command queue. Never blocks.
#[derive(Debug, Clone)]
pub(crate) struct Commands {
    sender: mpsc::Sender<Command>,
}

impl Commands {
    /// A bounded queue of `capacity` commands.
    pub(crate) fn channel(capacity: usize) -> (Self, mpsc::Receiver<Command>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (Self { sender }, receiver)
    }

    /// Queues `command`, or drops it with an error log when the queue is full.
    /// A dropped bind or unbind is marked done (its binding is fixed at the next
    /// resynchronization).
    pub(crate) fn push(&self, command: Command) {
        if let Err(error) = self.sender.try_send(command) {
            let full = matches!(error, mpsc::error::TrySendError::Full(_));
            let command = error.into_inner();
            if let Command::Bind { pending, .. } | Command::Unbind { pending, .. } = &command {
                pending.finish();
            }
            if full {
                tracing::error!(
                    command = kind(&command),
                    "AMQP command queue full: command dropped."
                );
            }
        }
    }

    /// Queues `command`, waiting for room.
    pub(crate) async fn send(&self, command: Command) {
        let _ = self.sender.send(command).await;
    }
}

fn kind(command: &Command) -> &'static str {
    match command {
        Command::Bind { .. } => "bind",
        Command::Unbind { .. } => "unbind",
        Command::Publish { .. } => "publish",
        Command::Disconnect(_) => "disconnect",
        Command::Resync => "resync",
        Command::Barrier(_) => "barrier",
    }
}
