//! Who should get what: the outcome of every steady publish, each steady
//! subscriber's log of notifications (checked against its filter as they
//! arrive, against what was published at the end), the churn clients'
//! inboxes, and the inbox of clients that subscribed to nothing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::counters::{Protocol, Stats};
use super::session::Inbox;
use super::traffic::{Filter, attributes};
use crate::clients::payload::Marker;

/// Steady publishers: one per protocol, its id the protocol's index.
pub const STEADY_PUBLISHERS: u64 = Protocol::ALL.len() as u64;

/// The outcome of each steady publish, by publisher and sequence number:
/// `true` when answered 200 (it must reach every matching subscriber),
/// `false` when not answered as expected (it may or may not have).
#[derive(Debug)]
pub struct Published {
    outcomes: Vec<Mutex<Vec<bool>>>,
}

impl Published {
    /// No publish yet, for [`STEADY_PUBLISHERS`] publishers.
    pub fn new() -> Self {
        Self {
            outcomes: (0..STEADY_PUBLISHERS).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// Records the outcome of publisher `id`'s next message.
    pub fn record(&self, id: u64, ok: bool) {
        if let Some(outcomes) = self.outcomes.get(id as usize) {
            outcomes.lock().unwrap_or_else(PoisonError::into_inner).push(ok);
        }
    }

    /// Every outcome so far, by publisher.
    pub fn snapshot(&self) -> Vec<Vec<bool>> {
        self.outcomes
            .iter()
            .map(|outcomes| outcomes.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .collect()
    }
}

impl Default for Published {
    fn default() -> Self {
        Self::new()
    }
}

/// Deliveries to steady subscribers, added up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Subscribers.
    pub subscribers: u64,
    /// Notifications they should have got: messages answered 200 that match their filters.
    pub expected: u64,
    /// Of those, received.
    pub received: u64,
    /// Of those, not received.
    pub lost: u64,
    /// Notifications received twice or more.
    pub duplicated: u64,
    /// Notifications received that do not match the filter, or of a message never published.
    pub unexpected: u64,
}

impl Delivery {
    /// Adds `other`.
    pub fn add(&mut self, other: &Delivery) {
        self.subscribers += other.subscribers;
        self.expected += other.expected;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.unexpected += other.unexpected;
    }

    /// Nothing lost, duplicated or unexpected.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.unexpected == 0
    }
}

#[derive(Debug, Default)]
struct LogState {
    seen: HashSet<(u64, u64)>,
    duplicated: u64,
    unexpected: u64,
}

/// A steady subscriber's notifications.
pub struct SubscriberLog {
    protocol: Protocol,
    filter: Filter,
    stats: Arc<Stats>,
    state: Mutex<LogState>,
}

impl SubscriberLog {
    /// An empty log for a subscriber of `protocol` with `filter`.
    pub fn new(protocol: Protocol, filter: Filter, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self {
            protocol,
            filter,
            stats,
            state: Mutex::new(LogState::default()),
        })
    }

    /// The subscriber's filter.
    pub fn filter(&self) -> Filter {
        self.filter
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Distinct matching messages received so far.
    pub fn received(&self) -> u64 {
        self.state().seen.len() as u64
    }

    /// Notifications expected from `published` (see [`Published::snapshot`]).
    pub fn expected(&self, published: &[Vec<bool>]) -> u64 {
        let mut expected = 0;
        for (publisher, outcomes) in published.iter().enumerate() {
            for (seq, ok) in outcomes.iter().enumerate() {
                if *ok && self.filter.matches(attributes(publisher as u64, seq as u64)) {
                    expected += 1;
                }
            }
        }
        expected
    }

    /// What this subscriber got, against what `published` says it should have.
    pub fn check(&self, published: &[Vec<bool>]) -> Delivery {
        let state = self.state();
        let mut delivery = Delivery {
            subscribers: 1,
            duplicated: state.duplicated,
            unexpected: state.unexpected,
            ..Delivery::default()
        };
        for (publisher, outcomes) in published.iter().enumerate() {
            for (seq, ok) in outcomes.iter().enumerate() {
                let key = (publisher as u64, seq as u64);
                if *ok && self.filter.matches(attributes(key.0, key.1)) {
                    delivery.expected += 1;
                    if state.seen.contains(&key) {
                        delivery.received += 1;
                    } else {
                        delivery.lost += 1;
                    }
                }
            }
        }
        // Received, matching, but never recorded as published at all.
        delivery.unexpected += state
            .seen
            .iter()
            .filter(|(publisher, seq)| {
                published
                    .get(*publisher as usize)
                    .is_none_or(|outcomes| *seq as usize >= outcomes.len())
            })
            .count() as u64;
        delivery
    }
}

impl Inbox for SubscriberLog {
    fn notification(&self, marker: Marker) {
        self.stats
            .of(self.protocol)
            .notifications
            .fetch_add(1, Ordering::Relaxed);
        let mut state = self.state();
        if marker.publisher >= STEADY_PUBLISHERS
            || !self.filter.matches(attributes(marker.publisher, marker.seq))
        {
            state.unexpected += 1;
        } else if !state.seen.insert((marker.publisher, marker.seq)) {
            state.duplicated += 1;
        }
    }
}

/// A churn client's notifications: its own messages only.
pub struct ChurnInbox {
    id: u64,
    protocol: Protocol,
    stats: Arc<Stats>,
    received: AtomicU64,
    unexpected: AtomicU64,
    arrived: Notify,
}

impl ChurnInbox {
    /// The inbox of churn client `id`.
    pub fn new(id: u64, protocol: Protocol, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self {
            id,
            protocol,
            stats,
            received: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            arrived: Notify::new(),
        })
    }

    /// Its own messages received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Notifications of other clients' messages.
    pub fn unexpected(&self) -> u64 {
        self.unexpected.load(Ordering::Relaxed)
    }

    /// Waits until `count` of its messages arrived, at most `patience`;
    /// returns how many did.
    pub async fn wait(&self, count: u64, patience: Duration) -> u64 {
        let deadline = Instant::now() + patience;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let received = self.received();
            if received >= count || Instant::now() >= deadline {
                return received;
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }
}

impl Inbox for ChurnInbox {
    fn notification(&self, marker: Marker) {
        self.stats
            .of(self.protocol)
            .notifications
            .fetch_add(1, Ordering::Relaxed);
        if marker.publisher == self.id {
            self.received.fetch_add(1, Ordering::Relaxed);
            self.arrived.notify_waiters();
        } else {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The inbox of a client that subscribed to nothing: any notification is an error.
pub struct Unsolicited {
    protocol: Protocol,
    stats: Arc<Stats>,
}

impl Unsolicited {
    /// For a client of `protocol`.
    pub fn new(protocol: Protocol, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self { protocol, stats })
    }
}

impl Inbox for Unsolicited {
    fn notification(&self, marker: Marker) {
        self.stats.error(
            self.protocol,
            format!(
                "notification of message {}:{} to a client that subscribed to nothing",
                marker.publisher, marker.seq
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(publisher: u64, seq: u64) -> Marker {
        Marker {
            publisher,
            seq,
            sent_ns: 0,
        }
    }

    #[test]
    fn a_log_counts_lost_duplicated_and_unexpected() {
        let stats = Arc::new(Stats::new());
        let filter = Filter::Group(0);
        let log = SubscriberLog::new(Protocol::Websocket, filter, stats.clone());
        let published = Published::new();
        for seq in 0..40 {
            published.record(0, seq != 4);
        }
        let matching: Vec<u64> = (0..40).filter(|s| filter.matches(attributes(0, *s))).collect();
        assert_eq!(matching, vec![0, 4, 8, 12, 16, 20, 24, 28, 32, 36]);
        // Every match but 8 and 36; 4 (failed publish) received: no error.
        for seq in [0, 4, 12, 16, 20, 24, 28, 32] {
            log.notification(marker(0, seq));
        }
        log.notification(marker(0, 12)); // duplicate
        log.notification(marker(0, 1)); // does not match
        log.notification(marker(0, 44)); // matches, never published
        log.notification(marker(STEADY_PUBLISHERS, 0)); // a churn message
        let snapshot = published.snapshot();
        assert_eq!(log.expected(&snapshot), 9);
        let delivery = log.check(&snapshot);
        assert_eq!(
            delivery,
            Delivery {
                subscribers: 1,
                expected: 9,
                received: 7,
                lost: 2,
                duplicated: 1,
                unexpected: 3,
            }
        );
        assert!(!delivery.is_clean());
        assert_eq!(
            stats
                .of(Protocol::Websocket)
                .notifications
                .load(Ordering::Relaxed),
            12
        );
    }

    #[tokio::test]
    async fn a_churn_inbox_waits_for_its_own_messages() {
        let inbox = ChurnInbox::new(7, Protocol::Mqtt, Arc::new(Stats::new()));
        let waiting = {
            let inbox = inbox.clone();
            tokio::spawn(async move { inbox.wait(2, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        inbox.notification(marker(7, 0));
        inbox.notification(marker(8, 0));
        inbox.notification(marker(7, 1));
        assert_eq!(waiting.await.expect("task"), 2);
        assert_eq!(inbox.unexpected(), 1);
        assert_eq!(inbox.wait(3, Duration::from_millis(10)).await, 2);
    }
}
