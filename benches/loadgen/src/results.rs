//! What the scenarios measure, as serializable records, and the failures
//! (lost messages, errors) that make a run fail. Goals not met are not
//! failures: they are reported (see [`crate::report`]).

use serde::{Deserialize, Serialize};

use crate::clients::Dialect;
use crate::stats::{DeliveryCheck, LatencySummary};

/// Errors kept per scenario (the first ones).
pub const MAX_ERRORS: usize = 10;

/// One fan-out run: P publishers -> N subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanoutResult {
    /// The server under test.
    pub server: String,
    /// What it speaks.
    pub dialect: Dialect,
    /// Transport (`websocket`, `mqtt`).
    pub transport: String,
    /// Publishers.
    pub publishers: usize,
    /// Subscribers.
    pub subscribers: usize,
    /// Published body size, bytes.
    pub size: usize,
    /// Target publish rate, messages/s over all publishers (0: flat-out).
    pub rate: u64,
    /// Messages a publisher may have ahead of the slowest subscriber.
    pub window: u64,
    /// Seconds spent publishing.
    pub publish_seconds: f64,
    /// Seconds from the first publish to the last delivery.
    pub elapsed_seconds: f64,
    /// Messages published.
    pub published: u64,
    /// Messages received, all subscribers together.
    pub delivered: u64,
    /// Messages published per second.
    pub published_per_second: f64,
    /// Messages delivered per second (all subscribers together).
    pub delivered_per_second: f64,
    /// Publish-to-receipt latency.
    pub latency: LatencySummary,
    /// Lost, duplicated and unexpected messages, all subscribers together.
    pub delivery: DeliveryCheck,
    /// Publish answers that never came.
    pub missing_answers: u64,
    /// Publish answers reporting an error.
    pub failed_answers: u64,
    /// Server CPU seconds while publishing and draining.
    pub server_cpu_seconds: f64,
    /// Server peak resident memory, KiB.
    pub server_peak_rss_kib: u64,
    /// The load generator's own CPU seconds over the same time.
    pub loadgen_cpu_seconds: f64,
    /// The first errors (connections closed, ...).
    pub errors: Vec<String>,
}

impl FanoutResult {
    /// Messages delivered per server CPU second.
    pub fn delivered_per_cpu_second(&self) -> f64 {
        per(self.delivered as f64, self.server_cpu_seconds)
    }

    /// Why this run failed; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let label = format!(
            "{} fan-out {} {}->{}",
            self.transport, self.server, self.publishers, self.subscribers
        );
        let mut failures: Vec<String> = self.errors.iter().map(|e| format!("{label}: {e}")).collect();
        if !self.delivery.is_clean() {
            failures.push(format!(
                "{label}: {} lost, {} duplicated, {} unexpected messages",
                self.delivery.lost, self.delivery.duplicated, self.delivery.unexpected
            ));
        }
        if self.missing_answers > 0 || self.failed_answers > 0 {
            failures.push(format!(
                "{label}: {} publish answers missing, {} failed",
                self.missing_answers, self.failed_answers
            ));
        }
        if self.published == 0 {
            failures.push(format!("{label}: nothing was published"));
        }
        failures
    }
}

/// One request/response run: C clients, one request at a time each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestResult {
    /// The server under test.
    pub server: String,
    /// What it speaks.
    pub dialect: Dialect,
    /// `http`, `websocket` or `amqp`.
    pub protocol: String,
    /// `server:now` or `realtime:publish`.
    pub action: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Request body size, bytes (publish).
    pub size: usize,
    /// Seconds measured.
    pub seconds: f64,
    /// Requests answered with status 200.
    pub requests: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Successful requests per second.
    pub requests_per_second: f64,
    /// Request latency.
    pub latency: LatencySummary,
    /// Server CPU seconds while measuring.
    pub server_cpu_seconds: f64,
    /// Server peak resident memory, KiB.
    pub server_peak_rss_kib: u64,
    /// The load generator's own CPU seconds over the same time.
    pub loadgen_cpu_seconds: f64,
    /// The first errors.
    pub errors: Vec<String>,
}

impl RequestResult {
    /// Requests per server CPU second.
    pub fn requests_per_cpu_second(&self) -> f64 {
        per(self.requests as f64, self.server_cpu_seconds)
    }

    /// Why this run failed; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let label = format!(
            "{} {} {} x{}",
            self.server, self.protocol, self.action, self.clients
        );
        let mut failures: Vec<String> = self.errors.iter().map(|e| format!("{label}: {e}")).collect();
        if self.failed > 0 && self.errors.is_empty() {
            failures.push(format!("{label}: {} requests failed", self.failed));
        }
        if self.requests == 0 {
            failures.push(format!("{label}: no request succeeded"));
        }
        failures
    }
}

/// One idle-connections run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleResult {
    /// The server under test.
    pub server: String,
    /// Connections asked for.
    pub connections: usize,
    /// Connections opened (handshake done).
    pub opened: usize,
    /// Loopback source addresses used.
    pub sources: usize,
    /// Server resident memory before, KiB.
    pub rss_before_kib: u64,
    /// Server resident memory with every connection open, KiB.
    pub rss_after_kib: u64,
    /// Server peak resident memory, KiB.
    pub server_peak_rss_kib: u64,
    /// Server CPU seconds while connecting and idling.
    pub server_cpu_seconds: f64,
    /// Seconds to open every connection.
    pub connect_seconds: f64,
    /// The first errors.
    pub errors: Vec<String>,
}

impl IdleResult {
    /// Server resident memory per open connection, bytes.
    pub fn bytes_per_connection(&self) -> f64 {
        per(
            self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 * 1024.0,
            self.opened as f64,
        )
    }

    /// Why this run failed; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let label = format!("idle {} x{}", self.server, self.connections);
        let mut failures: Vec<String> = self.errors.iter().map(|e| format!("{label}: {e}")).collect();
        if self.opened < self.connections {
            failures.push(format!("{label}: only {} connections opened", self.opened));
        }
        failures
    }
}

/// One filter engine's figures, as printed by `koncorde_side_by_side` and `compare.js`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterEngineResult {
    /// `protoplex` or `koncorde`.
    pub engine: String,
    /// Filters registered.
    pub filters: u64,
    /// Distinct filters after normalization.
    #[serde(default)]
    pub distinct: u64,
    /// Documents tested.
    pub documents: u64,
    /// Average filters matched per document.
    #[serde(default)]
    pub matches_per_document: f64,
    /// Documents tested per second, one at a time.
    pub documents_per_second: f64,
}

/// The filter-matching comparison, or why it was skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum FilterRow {
    /// Both engines ran on the same workload.
    Measured {
        /// protoplex's matcher.
        protoplex: FilterEngineResult,
        /// Koncorde under Node.
        koncorde: FilterEngineResult,
    },
    /// Not measured.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// One line of the goals table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// What is compared.
    pub name: String,
    /// The baseline's name (empty for an absolute goal).
    pub baseline_name: String,
    /// protoplex's figure.
    pub protoplex: f64,
    /// The baseline's figure, when there is one.
    pub baseline: Option<f64>,
    /// Unit of both figures.
    pub unit: String,
    /// protoplex / baseline.
    pub ratio: Option<f64>,
    /// The goal, as text (`>= 0.8x`, `<= 8 KiB`).
    pub goal: String,
    /// Whether the goal is met (`None`: not measured).
    pub met: Option<bool>,
    /// More context (e.g. the ratio per server CPU second).
    pub note: String,
}

/// A comparison not measured on purpose (its baseline could not run here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The comparison (`MQTT fan-out`, `AMQP request/response`).
    pub row: String,
    /// Why.
    pub reason: String,
}

/// Everything one `loadgen suite` run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suite {
    /// The machine.
    pub machine: crate::machine::Machine,
    /// Whether this was a `--quick` run (figures not meaningful).
    pub quick: bool,
    /// Fan-out runs.
    pub fanout: Vec<FanoutResult>,
    /// Request/response runs.
    pub request: Vec<RequestResult>,
    /// Idle-connection runs.
    pub idle: Vec<IdleResult>,
    /// Filter matching against Koncorde.
    pub filter: Option<FilterRow>,
    /// The goals table.
    pub comparisons: Vec<Comparison>,
    /// Why the run failed (scenarios that could not run, lost messages, ...).
    pub failures: Vec<String>,
    /// Runs skipped on purpose, and why (e.g. the open-file limit).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Comparisons skipped on purpose, and why (e.g. Mosquitto not installed).
    #[serde(default)]
    pub skipped: Vec<Skipped>,
}

/// `amount / seconds`, 0 when no time passed.
pub fn per(amount: f64, seconds: f64) -> f64 {
    if seconds > 0.0 { amount / seconds } else { 0.0 }
}

#[cfg(test)]
pub(crate) mod samples {
    //! Results for the tests of the report.

    use super::*;

    /// A clean fan-out run.
    pub(crate) fn fanout(server: &str, subscribers: usize, delivered_per_second: f64) -> FanoutResult {
        FanoutResult {
            server: server.into(),
            dialect: if server == "protoplex" {
                Dialect::Kuzzle
            } else {
                Dialect::Raw
            },
            transport: "websocket".into(),
            publishers: 1,
            subscribers,
            size: 256,
            rate: 0,
            window: 256,
            publish_seconds: 2.0,
            elapsed_seconds: 2.0,
            published: 1000,
            delivered: 1000 * subscribers as u64,
            published_per_second: 500.0,
            delivered_per_second,
            latency: LatencySummary {
                count: 10,
                p50_us: 1500,
                p99_us: 2000 + subscribers as u64,
                p999_us: 3000,
                max_us: 4000,
                mean_us: 1600.0,
            },
            delivery: DeliveryCheck::default(),
            missing_answers: 0,
            failed_answers: 0,
            server_cpu_seconds: 1.0,
            server_peak_rss_kib: 20_480,
            loadgen_cpu_seconds: 1.0,
            errors: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_run_passes_and_a_lossy_one_fails() {
        let clean = samples::fanout("protoplex", 10, 1000.0);
        assert!(clean.failures().is_empty());
        let mut lossy = clean.clone();
        lossy.delivery.lost = 3;
        let failures = lossy.failures();
        assert_eq!(failures.len(), 1);
        assert!(failures[0].contains("3 lost"), "{failures:?}");
        let mut unanswered = clean;
        unanswered.missing_answers = 1;
        assert_eq!(unanswered.failures().len(), 1);
    }

    #[test]
    fn idle_memory_per_connection() {
        let idle = IdleResult {
            server: "protoplex".into(),
            connections: 100,
            opened: 100,
            sources: 1,
            rss_before_kib: 1000,
            rss_after_kib: 1800,
            server_peak_rss_kib: 1800,
            server_cpu_seconds: 0.1,
            connect_seconds: 0.5,
            errors: vec![],
        };
        assert_eq!(idle.bytes_per_connection(), 8192.0);
        assert!(idle.failures().is_empty());
        let short = IdleResult { opened: 99, ..idle };
        assert_eq!(short.failures().len(), 1);
    }

    #[test]
    fn filter_rows_read_the_engines_output() {
        let line = r#"{"engine":"koncorde","filters":10000,"distinct":9000,"documents":5000,"matches_per_document":3.2,"documents_per_second":1200}"#;
        let engine: FilterEngineResult = serde_json::from_str(line).expect("engine JSON");
        assert_eq!(engine.documents_per_second, 1200.0);
        let row = FilterRow::Skipped {
            reason: "no node".into(),
        };
        let json = serde_json::to_string(&row).expect("JSON");
        assert!(json.contains(r#""status":"skipped""#), "{json}");
    }
}
