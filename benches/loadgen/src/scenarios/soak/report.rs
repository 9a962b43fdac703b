//! The soak's record (samples of the server's memory and open files,
//! counts per protocol, deliveries), its verdict, and its Markdown report.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::counters::{Protocol, Totals};
use super::delivery::Delivery;
use crate::machine::Machine;

/// Largest resident memory growth, start to end, that passes (percent, excluded).
pub const MAX_RSS_GROWTH_PERCENT: f64 = 10.0;

/// The server measured at one moment, with the load's counters then.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub at_seconds: f64,
    /// Resident memory (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub fds: u64,
    /// Requests answered as expected so far.
    pub requests: u64,
    /// Notifications received so far.
    pub notifications: u64,
    /// Errors so far.
    pub failed: u64,
    /// Churn cycles completed so far.
    pub churn_cycles: u64,
}

/// One protocol's line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolRow {
    /// The protocol.
    pub protocol: Protocol,
    /// Its clients' counters.
    pub totals: Totals,
    /// Its steady subscribers' deliveries (none for HTTP).
    pub delivery: Option<Delivery>,
}

/// The settings of a run, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Seconds of load, warm-up included.
    pub duration_seconds: f64,
    /// Seconds of warm-up before the start sample.
    pub warmup_seconds: f64,
    /// Seconds between samples.
    pub interval_seconds: f64,
    /// Seconds with no churn client open before each sample.
    pub settle_seconds: f64,
    /// Seconds after the churn stopped before the end sample.
    pub end_settle_seconds: f64,
    /// Steady publishes per second, all protocols together.
    pub rate: f64,
    /// Steady subscribers per subscribing protocol (WebSocket, MQTT, AMQP).
    pub subscribers: usize,
    /// Steady message size, bytes.
    pub size: usize,
    /// Milliseconds between a churn client's cycles.
    pub churn_pause_ms: u64,
    /// The protocols with churn clients.
    pub churn: Vec<Protocol>,
    /// Milliseconds between a protocol's deliberately bad requests.
    pub bad_interval_ms: u64,
}

/// What a soak measured, and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakResult {
    /// The machine.
    pub machine: Machine,
    /// The settings.
    pub settings: Settings,
    /// Seconds of load actually run.
    pub seconds: f64,
    /// The first sample, after the warm-up.
    pub start: Sample,
    /// The last sample, churn stopped and settled.
    pub end: Sample,
    /// Largest resident memory sampled from the start on, KiB.
    pub max_rss_kib: u64,
    /// Largest resident memory of the server's life (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Resident memory growth from start to end, percent.
    pub rss_growth_percent: f64,
    /// Open descriptors by kind at the start (socket, pipe, anon_inode:[eventpoll], ...).
    pub fd_kinds_start: BTreeMap<String, u64>,
    /// The same at the end.
    pub fd_kinds_end: BTreeMap<String, u64>,
    /// Every sample, start and end included.
    pub samples: Vec<Sample>,
    /// Counters per protocol.
    pub protocols: Vec<ProtocolRow>,
    /// Counters of every protocol together.
    pub totals: Totals,
    /// Deliveries to every steady subscriber together.
    pub delivery: Delivery,
    /// Server CPU seconds from the start of the load to the end sample.
    pub server_cpu_seconds: f64,
    /// The load generator's CPU seconds over the same time.
    pub loadgen_cpu_seconds: f64,
    /// The first errors, with their time.
    pub errors: Vec<String>,
    /// Remarks (e.g. cleanup that failed).
    pub notes: Vec<String>,
    /// Why the soak failed; empty when it passed.
    pub failures: Vec<String>,
}

impl SoakResult {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Adds the failures the figures show to [`SoakResult::failures`].
    pub fn evaluate(&mut self) {
        let mut failures = Vec::new();
        if self.rss_growth_percent >= MAX_RSS_GROWTH_PERCENT {
            failures.push(format!(
                "RSS grew {:.1}% ({} -> {} KiB), {MAX_RSS_GROWTH_PERCENT}% allowed",
                self.rss_growth_percent, self.start.rss_kib, self.end.rss_kib
            ));
        }
        if self.end.fds > self.start.fds {
            failures.push(format!(
                "open file descriptors grew from {} to {} (start {:?}, end {:?})",
                self.start.fds, self.end.fds, self.fd_kinds_start, self.fd_kinds_end
            ));
        }
        if self.totals.failed > 0 {
            failures.push(format!(
                "{} errors beyond the deliberate bad requests (first: {})",
                self.totals.failed,
                self.errors.first().map_or("?", String::as_str)
            ));
        }
        if !self.delivery.is_clean() {
            failures.push(format!(
                "steady subscribers: {} notifications lost, {} duplicated, {} unexpected",
                self.delivery.lost, self.delivery.duplicated, self.delivery.unexpected
            ));
        }
        let no_churn = self.totals.churn_cycles == 0 && !self.settings.churn.is_empty();
        if self.delivery.expected == 0 || no_churn || self.totals.bad == 0 {
            failures.push(format!(
                "no load: {} notifications expected, {} churn cycles, {} bad requests answered",
                self.delivery.expected, self.totals.churn_cycles, self.totals.bad
            ));
        }
        self.failures.extend(failures);
    }
}

/// Percent growth from `start` to `end`.
pub fn growth_percent(start: u64, end: u64) -> f64 {
    if start == 0 {
        return 0.0;
    }
    (end as f64 - start as f64) * 100.0 / start as f64
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The report, in Markdown.
pub fn markdown(result: &SoakResult) -> String {
    let mut out = String::new();
    let s = &result.settings;
    let m = &result.machine;
    let verdict = if result.passed() { "PASSED" } else { "FAILED" };
    let _ = writeln!(out, "# Soak: protoplex under mixed load\n");
    let _ = writeln!(
        out,
        "**{verdict}**: {:.0} s of load ({:.0} s warm-up) over HTTP, WebSocket, MQTT and AMQP at once; \
         goal: resident memory growth under {MAX_RSS_GROWTH_PERCENT}% and no open-file growth from the \
         start sample to the end sample, every answer and notification as expected.\n",
        result.seconds, s.warmup_seconds
    );
    let _ = writeln!(
        out,
        "{} · {} × {} · {} MiB · Linux {} · `scripts/soak.sh`\n",
        m.date, m.nproc, m.cpu_model, m.memory_mib, m.kernel
    );
    let _ = writeln!(out, "| server | start | end | max | growth |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    let _ = writeln!(
        out,
        "| resident memory (VmRSS) | {} | {} | {} | {:+.1}% |",
        mib(result.start.rss_kib),
        mib(result.end.rss_kib),
        mib(result.max_rss_kib),
        result.rss_growth_percent
    );
    let max_fds = result.samples.iter().map(|x| x.fds).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "| open file descriptors | {} | {} | {max_fds} | {:+} |",
        result.start.fds,
        result.end.fds,
        result.end.fds as i64 - result.start.fds as i64
    );
    let _ = writeln!(
        out,
        "| sampled at | {:.0} s | {:.0} s | | |\n",
        result.start.at_seconds, result.end.at_seconds
    );
    let _ = writeln!(
        out,
        "Start: after the warm-up; end: the churn stopped and {:.0} s later. Every sample is taken with \
         the same long-lived clients open and no churn client ({:.0} s without one before it), while the \
         steady publishers go on. Peak RSS of the server's life (VmHWM): {}. Server CPU: {:.1} s, load \
         generator CPU: {:.1} s.\n",
        s.end_settle_seconds,
        s.settle_seconds,
        mib(result.peak_rss_kib),
        result.server_cpu_seconds,
        result.loadgen_cpu_seconds
    );

    let _ = writeln!(out, "## Requests and notifications\n");
    let _ = writeln!(
        out,
        "| protocol | requests answered as expected | of which deliberately bad | errors | notifications received | churn cycles | churn cycles failed |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|");
    let row = |out: &mut String, name: &str, t: &Totals| {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            t.requests, t.bad, t.failed, t.notifications, t.churn_cycles, t.churn_failed
        );
    };
    for protocol in &result.protocols {
        row(&mut out, protocol.protocol.name(), &protocol.totals);
    }
    row(&mut out, "**all**", &result.totals);
    let minutes = (result.end.at_seconds / 60.0).max(1e-9);
    let _ = writeln!(
        out,
        "\nAbout {:.0} requests/s and {:.0} notifications/s on average.\n",
        result.end.requests as f64 / minutes / 60.0,
        result.end.notifications as f64 / minutes / 60.0
    );

    let _ = writeln!(out, "## Deliveries to the steady subscribers\n");
    let _ = writeln!(
        out,
        "| protocol | subscribers | expected | received | lost | duplicated | unexpected |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|");
    let delivery_row = |out: &mut String, name: &str, d: &Delivery| {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            d.subscribers, d.expected, d.received, d.lost, d.duplicated, d.unexpected
        );
    };
    for protocol in &result.protocols {
        if let Some(delivery) = &protocol.delivery {
            delivery_row(&mut out, protocol.protocol.name(), delivery);
        }
    }
    delivery_row(&mut out, "**all**", &result.delivery);
    let _ = writeln!(
        out,
        "\nChurn clients lost {} of their own notifications.\n",
        result.totals.churn_lost
    );

    let _ = writeln!(out, "## Load\n");
    let _ = writeln!(
        out,
        "- steady: {} subscribers each on WebSocket, MQTT and AMQP (five kinds of filters: equals, range, \
         in, and, not); one publisher per protocol (HTTP, WebSocket, MQTT, AMQP), {:.0} messages/s \
         together, {} bytes each, every answer checked;",
        s.subscribers, s.rate, s.size
    );
    let churn: Vec<&str> = s.churn.iter().map(|p| p.name()).collect();
    let _ = writeln!(
        out,
        "- churn ({}), {} ms between cycles: WebSocket, MQTT and AMQP (a new reply queue) clients that \
         connect, subscribe, publish 3 messages to themselves, get them, unsubscribe (every other cycle; \
         the others just leave) and disconnect; HTTP clients on a new connection for one request, and on \
         a keep-alive connection for 10;",
        if churn.is_empty() {
            "none".to_owned()
        } else {
            churn.join(", ")
        },
        s.churn_pause_ms
    );
    let _ = writeln!(
        out,
        "- deliberately bad requests every {} ms on each protocol: not JSON (400), an unknown controller \
         (404), over HTTP also an unknown URL (404).\n",
        s.bad_interval_ms
    );

    if !result.failures.is_empty() {
        let _ = writeln!(out, "## Failures\n");
        for failure in &result.failures {
            let _ = writeln!(out, "- {failure}");
        }
        let _ = writeln!(out);
    }
    if !result.errors.is_empty() {
        let _ = writeln!(out, "## First errors\n\n```");
        for error in &result.errors {
            let _ = writeln!(out, "{error}");
        }
        let _ = writeln!(out, "```\n");
    }
    if !result.notes.is_empty() {
        let _ = writeln!(out, "## Notes\n");
        for note in &result.notes {
            let _ = writeln!(out, "- {note}");
        }
        let _ = writeln!(out);
    }

    let kinds = |kinds: &BTreeMap<String, u64>| {
        kinds
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "Open descriptors by kind: start {}; end {}.\n",
        kinds(&result.fd_kinds_start),
        kinds(&result.fd_kinds_end)
    );
    let _ = writeln!(out, "<details><summary>Samples</summary>\n");
    let _ = writeln!(
        out,
        "| at | RSS (KiB) | open fds | requests | notifications | errors | churn cycles |"
    );
    let _ = writeln!(out, "|--:|--:|--:|--:|--:|--:|--:|");
    for x in &result.samples {
        let _ = writeln!(
            out,
            "| {:.0} s | {} | {} | {} | {} | {} | {} |",
            x.at_seconds, x.rss_kib, x.fds, x.requests, x.notifications, x.failed, x.churn_cycles
        );
    }
    let _ = writeln!(out, "\n</details>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> SoakResult {
        let sample = |at: f64, rss_kib, fds| Sample {
            at_seconds: at,
            rss_kib,
            fds,
            requests: 100,
            notifications: 1000,
            ..Sample::default()
        };
        let delivery = Delivery {
            subscribers: 2,
            expected: 10,
            received: 10,
            ..Delivery::default()
        };
        SoakResult {
            machine: Machine::default(),
            settings: Settings {
                duration_seconds: 600.0,
                warmup_seconds: 30.0,
                interval_seconds: 10.0,
                settle_seconds: 2.0,
                end_settle_seconds: 5.0,
                rate: 200.0,
                subscribers: 8,
                size: 256,
                churn_pause_ms: 100,
                churn: Protocol::ALL.to_vec(),
                bad_interval_ms: 500,
            },
            seconds: 600.0,
            start: sample(30.0, 10_000, 40),
            end: sample(605.0, 10_500, 40),
            max_rss_kib: 10_600,
            peak_rss_kib: 11_000,
            rss_growth_percent: growth_percent(10_000, 10_500),
            fd_kinds_start: BTreeMap::from([("socket".into(), 35)]),
            fd_kinds_end: BTreeMap::from([("socket".into(), 35)]),
            samples: vec![sample(30.0, 10_000, 40), sample(605.0, 10_500, 40)],
            protocols: vec![ProtocolRow {
                protocol: Protocol::Mqtt,
                totals: Totals::default(),
                delivery: Some(delivery),
            }],
            totals: Totals {
                churn_cycles: 5,
                bad: 3,
                ..Totals::default()
            },
            delivery,
            server_cpu_seconds: 1.0,
            loadgen_cpu_seconds: 1.0,
            errors: vec![],
            notes: vec![],
            failures: vec![],
        }
    }

    #[test]
    fn a_clean_run_passes_and_is_reported() {
        let mut clean = result();
        clean.evaluate();
        assert!(clean.passed(), "{:?}", clean.failures);
        let text = markdown(&clean);
        assert!(text.contains("**PASSED**"), "{text}");
        assert!(text.contains("| resident memory (VmRSS) | 9.8 MiB | 10.3 MiB | 10.4 MiB | +5.0% |"));
        assert!(
            text.contains("| open file descriptors | 40 | 40 | 40 | +0 |"),
            "{text}"
        );
    }

    #[test]
    fn growth_losses_and_errors_fail() {
        let mut grown = result();
        grown.end.rss_kib = 11_000;
        grown.rss_growth_percent = growth_percent(10_000, 11_000);
        grown.end.fds = 41;
        grown.delivery.lost = 1;
        grown.totals.failed = 2;
        grown.errors = vec!["  1.0s mqtt: boom".into()];
        grown.evaluate();
        assert_eq!(grown.failures.len(), 4, "{:?}", grown.failures);
        assert!(markdown(&grown).contains("**FAILED**"));
        assert_eq!(growth_percent(0, 5), 0.0);
    }
}
