//! The soak's counters, per protocol, and the first errors with the time
//! they happened (to tell, say, a broker restart from a server fault).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Errors kept, the first ones.
pub const ERRORS_KEPT: usize = 20;

/// The protocols of the soak's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1.
    Http,
    /// WebSocket.
    Websocket,
    /// MQTT 3.1.1.
    Mqtt,
    /// AMQP 0-9-1 through RabbitMQ.
    Amqp,
}

impl Protocol {
    /// Every protocol, in report order; a protocol's index is its position.
    pub const ALL: [Protocol; 4] = [
        Protocol::Http,
        Protocol::Websocket,
        Protocol::Mqtt,
        Protocol::Amqp,
    ];

    /// The protocols with subscribers (all but HTTP).
    pub const SUBSCRIBING: [Protocol; 3] = [Protocol::Websocket, Protocol::Mqtt, Protocol::Amqp];

    /// Its position in [`Protocol::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Websocket => "websocket",
            Protocol::Mqtt => "mqtt",
            Protocol::Amqp => "amqp",
        }
    }
}

/// The counters of one protocol's clients.
#[derive(Debug, Default)]
pub struct ProtocolStats {
    /// Requests answered with the expected status (the deliberately bad ones included).
    pub requests: AtomicU64,
    /// Deliberately bad requests answered with the expected error status.
    pub bad: AtomicU64,
    /// Errors: requests not answered or not as expected, connections lost,
    /// notifications lost in churn cycles, stray frames.
    pub failed: AtomicU64,
    /// Notifications received by this protocol's clients.
    pub notifications: AtomicU64,
    /// Churn cycles completed without error.
    pub churn_cycles: AtomicU64,
    /// Churn cycles with an error.
    pub churn_failed: AtomicU64,
    /// Notifications churn clients waited for in vain.
    pub churn_lost: AtomicU64,
}

/// Totals over every protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// See [`ProtocolStats::requests`].
    pub requests: u64,
    /// See [`ProtocolStats::bad`].
    pub bad: u64,
    /// See [`ProtocolStats::failed`].
    pub failed: u64,
    /// See [`ProtocolStats::notifications`].
    pub notifications: u64,
    /// See [`ProtocolStats::churn_cycles`].
    pub churn_cycles: u64,
    /// See [`ProtocolStats::churn_failed`].
    pub churn_failed: u64,
    /// See [`ProtocolStats::churn_lost`].
    pub churn_lost: u64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.requests += other.requests;
        self.bad += other.bad;
        self.failed += other.failed;
        self.notifications += other.notifications;
        self.churn_cycles += other.churn_cycles;
        self.churn_failed += other.churn_failed;
        self.churn_lost += other.churn_lost;
    }
}

impl ProtocolStats {
    /// Its counters now.
    pub fn totals(&self) -> Totals {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Totals {
            requests: get(&self.requests),
            bad: get(&self.bad),
            failed: get(&self.failed),
            notifications: get(&self.notifications),
            churn_cycles: get(&self.churn_cycles),
            churn_failed: get(&self.churn_failed),
            churn_lost: get(&self.churn_lost),
        }
    }
}

/// Every counter of a run.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    protocols: [ProtocolStats; 4],
    errors: Mutex<Vec<String>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// All zero; error times count from now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            protocols: Default::default(),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// The counters of `protocol`.
    pub fn of(&self, protocol: Protocol) -> &ProtocolStats {
        &self.protocols[protocol.index()]
    }

    /// Counts a request answered as expected.
    pub fn ok(&self, protocol: Protocol) {
        self.of(protocol).requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an error and keeps it if among the first [`ERRORS_KEPT`].
    pub fn error(&self, protocol: Protocol, what: impl std::fmt::Display) {
        self.of(protocol).failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        if errors.len() < ERRORS_KEPT {
            errors.push(format!(
                "{:>6.1}s {}: {what}",
                self.started.elapsed().as_secs_f64(),
                protocol.name()
            ));
        }
    }

    /// The first errors.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Totals over every protocol.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for protocol in &self.protocols {
            totals.add(&protocol.totals());
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_errors_are_kept_with_their_protocol() {
        let stats = Stats::new();
        stats.ok(Protocol::Http);
        stats.ok(Protocol::Amqp);
        for n in 0..ERRORS_KEPT + 5 {
            stats.error(Protocol::Mqtt, n);
        }
        let totals = stats.totals();
        assert_eq!((totals.requests, totals.failed), (2, ERRORS_KEPT as u64 + 5));
        let errors = stats.errors();
        assert_eq!(errors.len(), ERRORS_KEPT);
        assert!(errors[0].ends_with("mqtt: 0"), "{}", errors[0]);
        assert_eq!(Protocol::ALL.map(Protocol::index), [0, 1, 2, 3]);
    }
}
