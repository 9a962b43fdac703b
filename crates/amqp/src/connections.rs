//! The connection table: one connection per `reply_to` queue, with the
//! channels it joined (the bindings its queue must have).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use protoplex_core::{ApiError, ChannelName, ClientConnection, ConnectionId, RouterHandle};

use crate::protocol::NAME;

/// The connection header holding the connection's queue.
pub(crate) const REPLY_TO_HEADER: &str = "reply_to";

/// Topology commands (bind, unbind) of one connection not yet done by the
/// broker. Its answers wait for it to fall to zero, so that a subscription is
/// effective before the client learns of it.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    count: AtomicUsize,
    done: tokio::sync::Notify,
}

impl Pending {
    pub(crate) fn add(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn finish(&self) {
        let previous = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                Some(count.saturating_sub(1))
            })
            .unwrap_or(0);
        if previous <= 1 {
            self.done.notify_waiters();
        }
    }

    /// Waits until no command of the connection is pending, at most `limit`.
    /// Returns whether it got there.
    pub(crate) async fn settled(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count.load(Ordering::Acquire) == 0;
            }
        }
    }
}

/// What the table knows of one connection.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Its queue (the requests' `reply_to`).
    pub(crate) queue: Arc<str>,
    /// The channels it joined: its queue's bindings.
    pub(crate) channels: HashSet<ChannelName>,
    /// Its last request.
    pub(crate) last_seen: Instant,
    /// Its topology commands not done yet.
    pub(crate) pending: Arc<Pending>,
}

/// A connection, as returned to the request that resolved it.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) id: ConnectionId,
    pub(crate) pending: Arc<Pending>,
}

#[derive(Debug, Default)]
struct Tables {
    by_queue: HashMap<Arc<str>, ConnectionId>,
    by_id: HashMap<ConnectionId, Entry>,
}

/// The connections of the protocol, by id and by queue.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    tables: Mutex<Tables>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection of `queue`, declared to the router on its first request.
    pub(crate) fn resolve(&self, queue: &str, router: &RouterHandle) -> Result<Resolved, ApiError> {
        let mut tables = self.lock();
        if let Some(id) = tables.by_queue.get(queue).copied()
            && let Some(entry) = tables.by_id.get_mut(&id)
        {
            entry.last_seen = Instant::now();
            return Ok(Resolved {
                id,
                pending: entry.pending.clone(),
            });
        }
        let headers = HashMap::from([(REPLY_TO_HEADER.to_owned(), queue.to_owned())]);
        let connection = ClientConnection::new(NAME, Vec::new(), headers);
        let id = connection.id;
        // Declared while the table is locked: a second request from the same
        // queue waits here, and then finds the connection known to the router.
        router.new_connection(connection)?;
        let queue: Arc<str> = queue.into();
        let pending = Arc::new(Pending::default());
        tables.by_queue.insert(queue.clone(), id);
        tables.by_id.insert(
            id,
            Entry {
                queue,
                channels: HashSet::new(),
                last_seen: Instant::now(),
                pending: pending.clone(),
            },
        );
        Ok(Resolved { id, pending })
    }

    /// Records that `id` joined `channel`. Returns its queue and pending
    /// counter when a binding must be made (a known connection, a new channel).
    pub(crate) fn join(&self, id: ConnectionId, channel: &ChannelName) -> Option<(Arc<str>, Arc<Pending>)> {
        let mut tables = self.lock();
        let entry = tables.by_id.get_mut(&id)?;
        entry
            .channels
            .insert(channel.clone())
            .then(|| (entry.queue.clone(), entry.pending.clone()))
    }

    /// Records that `id` left `channel`. Returns its queue and pending counter
    /// when a binding must be removed.
    pub(crate) fn leave(&self, id: ConnectionId, channel: &ChannelName) -> Option<(Arc<str>, Arc<Pending>)> {
        let mut tables = self.lock();
        let entry = tables.by_id.get_mut(&id)?;
        entry
            .channels
            .remove(channel)
            .then(|| (entry.queue.clone(), entry.pending.clone()))
    }

    /// The queue of a connection.
    pub(crate) fn queue_of(&self, id: ConnectionId) -> Option<Arc<str>> {
        self.lock().by_id.get(&id).map(|entry| entry.queue.clone())
    }

    /// The connection of a queue.
    pub(crate) fn id_of(&self, queue: &str) -> Option<ConnectionId> {
        self.lock().by_queue.get(queue).copied()
    }

    /// Forgets a connection, returning what was known of it.
    pub(crate) fn remove(&self, id: ConnectionId) -> Option<Entry> {
        let mut tables = self.lock();
        let entry = tables.by_id.remove(&id)?;
        if tables.by_queue.get(&entry.queue) == Some(&id) {
            tables.by_queue.remove(&entry.queue);
        }
        Some(entry)
    }

    /// Every connection with its queue, joined channels and last request.
    pub(crate) fn snapshot(&self) -> Vec<(ConnectionId, Arc<str>, Vec<ChannelName>, Instant)> {
        self.lock()
            .by_id
            .iter()
            .map(|(id, entry)| {
                (
                    *id,
                    entry.queue.clone(),
                    entry.channels.iter().cloned().collect(),
                    entry.last_seen,
                )
            })
            .collect()
    }

    /// Connections known.
    pub(crate) fn len(&self) -> usize {
        self.lock().by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use protoplex_core::{CoreConfig, Router};

    use super::*;

    #[tokio::test]
    async fn pending_settles_when_every_command_finished() {
        let pending = Pending::default();
        assert!(pending.settled(Duration::from_millis(1)).await);
        pending.add();
        pending.add();
        assert!(!pending.settled(Duration::from_millis(10)).await);
        pending.finish();
        pending.finish();
        assert!(pending.settled(Duration::from_millis(10)).await);
        // Never below zero.
        pending.finish();
        assert!(pending.settled(Duration::from_millis(1)).await);
    }

    #[tokio::test]
    async fn one_connection_per_queue_and_set_semantics_for_channels() {
        // The router refuses connections of an unregistered protocol: register
        // the protocol (not started).
        let router = Router::builder(CoreConfig::default())
            .protocol(crate::AmqpProtocol::new(crate::AmqpConfig::default()))
            .build()
            .expect("router");
        let handle = router.handle();
        let connections = Connections::default();
        let a = connections.resolve("queue-a", &handle).expect("a");
        let again = connections.resolve("queue-a", &handle).expect("a again");
        assert_eq!(a.id, again.id);
        let b = connections.resolve("queue-b", &handle).expect("b");
        assert_ne!(a.id, b.id);
        assert_eq!(router.connection_count(), 2);

        let channel: ChannelName = "room-xyz".into();
        assert!(connections.join(a.id, &channel).is_some());
        assert!(connections.join(a.id, &channel).is_none());
        assert_eq!(connections.queue_of(a.id).as_deref(), Some("queue-a"));
        assert_eq!(connections.id_of("queue-b"), Some(b.id));
        assert!(connections.leave(a.id, &channel).is_some());
        assert!(connections.leave(a.id, &channel).is_none());

        let entry = connections.remove(a.id).expect("known");
        assert_eq!(&*entry.queue, "queue-a");
        assert_eq!(connections.id_of("queue-a"), None);
        assert_eq!(connections.len(), 1);
        assert!(connections.join(a.id, &channel).is_none());
    }
}
