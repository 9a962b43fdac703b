//! What the protocol's tasks share once it started.

use std::sync::Arc;

use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use protoplex_core::{ConnectionId, RouterHandle};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::answers::Answers;
use crate::commands::{Command, Commands};
use crate::config::AmqpConfig;
use crate::connections::Connections;

/// The live AMQP connection and its publishing channel.
#[derive(Clone)]
pub(crate) struct Link {
    /// Counts the connections made: channels opened on an older one are stale.
    pub(crate) generation: u64,
    /// The connection.
    pub(crate) connection: Arc<lapin::Connection>,
    /// The channel answers and notifications are published on, in
    /// publisher-confirm mode.
    pub(crate) publisher: lapin::Channel,
}

/// Why a connection is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Its queue does not exist any more: its bindings went with it.
    QueueGone,
    /// No request for `idle_timeout`.
    Idle,
    /// The router asked (`disconnect`).
    Disconnected,
}

impl Removal {
    fn as_str(self) -> &'static str {
        match self {
            Self::QueueGone => "queue gone",
            Self::Idle => "idle",
            Self::Disconnected => "disconnected",
        }
    }
}

/// State shared by the protocol's tasks.
pub(crate) struct Shared {
    pub(crate) config: AmqpConfig,
    pub(crate) router: RouterHandle,
    pub(crate) connections: Arc<Connections>,
    /// The answers given recently, for requests received again.
    pub(crate) answers: Arc<Answers>,
    pub(crate) commands: Commands,
    /// The live link, `None` while the broker is unreachable.
    pub(crate) link: watch::Sender<Option<Link>>,
    /// Whether requests are being consumed.
    pub(crate) ready: watch::Sender<bool>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("queue", &self.config.queue)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The live link, if any.
    pub(crate) fn link(&self) -> Option<Link> {
        self.link.borrow().clone()
    }

    /// Forgets a connection, removes it from the router (dropping its
    /// subscriptions) and, when its queue may still exist, its bindings.
    pub(crate) fn remove_connection(&self, id: ConnectionId, why: Removal) {
        let Some(entry) = self.connections.remove(id) else {
            return;
        };
        tracing::debug!(connection_id = %id, queue = %entry.queue, reason = why.as_str(), "AMQP connection removed.");
        // Our entry is gone: the router's `leave_channel` calls find nothing to unbind.
        self.router.remove_connection(id);
        if why != Removal::QueueGone {
            for channel in entry.channels {
                entry.pending.add();
                self.commands.push(Command::Unbind {
                    queue: entry.queue.clone(),
                    channel,
                    pending: entry.pending.clone(),
                });
            }
        }
    }

    /// Removes the connection of a queue found missing.
    pub(crate) fn queue_gone(&self, queue: &str) {
        if let Some(id) = self.connections.id_of(queue) {
            self.remove_connection(id, Removal::QueueGone);
        }
    }
}

/// Whether `error` is the broker's 404 NOT_FOUND (a missing queue or exchange),
/// which also closed the channel it came on.
pub(crate) fn is_not_found(error: &lapin::Error) -> bool {
    soft_error(error) == Some(AMQPSoftError::NOTFOUND)
}

/// Whether `error` is the broker's 405 RESOURCE_LOCKED (another connection's
/// exclusive queue), which also closed the channel it came on.
pub(crate) fn is_locked(error: &lapin::Error) -> bool {
    soft_error(error) == Some(AMQPSoftError::RESOURCELOCKED)
}

fn soft_error(error: &lapin::Error) -> Option<AMQPSoftError> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(soft) => Some(soft.clone()),
            AMQPErrorKind::Hard(_) => None,
        },
        _ => None,
    }
}
