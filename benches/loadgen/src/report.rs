//! The report of a suite: the goals table, then one markdown table per
//! scenario, written next to the JSON record and the SVG chart.

use std::fmt::Write;

use crate::chart::{self, Point, Series};
use crate::results::{Comparison, FilterRow, Suite};

/// protoplex's fan-out throughput over the broadcast ceiling.
pub const FANOUT_GOAL: f64 = 0.8;
/// protoplex's HTTP publish throughput over the fixed-answer server.
pub const HTTP_GOAL: f64 = 0.7;
/// protoplex's filter matching throughput over Koncorde's.
pub const FILTER_GOAL: f64 = 20.0;
/// Server memory per idle WebSocket connection, bytes.
pub const IDLE_GOAL_BYTES: f64 = 8192.0;

/// The name of the protoplex server in results.
pub const PROTOPLEX: &str = "protoplex";

/// The goals table of `suite`: each comparison measured in this run.
pub fn comparisons(suite: &Suite) -> Vec<Comparison> {
    let mut rows = Vec::new();
    // Fan-out at the largest number of subscribers both servers reached.
    let largest = suite
        .fanout
        .iter()
        .filter(|run| run.server == PROTOPLEX)
        .filter(|run| {
            suite
                .fanout
                .iter()
                .any(|b| b.server != PROTOPLEX && b.subscribers == run.subscribers)
        })
        .max_by_key(|run| run.subscribers);
    if let Some(ours) = largest
        && let Some(theirs) = suite
            .fanout
            .iter()
            .find(|b| b.server != PROTOPLEX && b.subscribers == ours.subscribers)
    {
        rows.push(ratio_row(
            format!(
                "WebSocket fan-out, {} -> {} subscribers",
                ours.publishers, ours.subscribers
            ),
            &theirs.server,
            ours.delivered_per_second,
            theirs.delivered_per_second,
            "delivered msg/s",
            FANOUT_GOAL,
            ours.delivered_per_cpu_second(),
            theirs.delivered_per_cpu_second(),
        ));
    }
    let http = |server_is_ours: bool| {
        suite
            .request
            .iter()
            .filter(|run| run.protocol == "http" && run.action == "realtime:publish")
            .filter(|run| (run.server == PROTOPLEX) == server_is_ours)
            .max_by_key(|run| run.clients)
    };
    if let (Some(ours), Some(theirs)) = (http(true), http(false)) {
        rows.push(ratio_row(
            format!("HTTP realtime:publish, {} concurrent clients", ours.clients),
            &theirs.server,
            ours.requests_per_second,
            theirs.requests_per_second,
            "requests/s",
            HTTP_GOAL,
            ours.requests_per_cpu_second(),
            theirs.requests_per_cpu_second(),
        ));
    }
    match &suite.filter {
        Some(FilterRow::Measured { protoplex, koncorde }) => {
            let ratio = ratio(protoplex.documents_per_second, koncorde.documents_per_second);
            rows.push(Comparison {
                name: format!(
                    "filter matching, {} filters, one document at a time",
                    protoplex.filters
                ),
                baseline_name: "Koncorde (Node)".into(),
                protoplex: protoplex.documents_per_second,
                baseline: Some(koncorde.documents_per_second),
                unit: "documents/s".into(),
                ratio,
                goal: format!(">= {FILTER_GOAL}x"),
                met: Some(ratio.is_some_and(|r| r >= FILTER_GOAL)),
                note: String::new(),
            });
        }
        Some(FilterRow::Skipped { reason }) => rows.push(Comparison {
            name: "filter matching against Koncorde".into(),
            baseline_name: "Koncorde (Node)".into(),
            protoplex: 0.0,
            baseline: None,
            unit: "documents/s".into(),
            ratio: None,
            goal: format!(">= {FILTER_GOAL}x"),
            met: None,
            note: format!("skipped: {reason}"),
        }),
        None => {}
    }
    if let Some(idle) = suite
        .idle
        .iter()
        .filter(|run| run.server == PROTOPLEX)
        .max_by_key(|run| run.connections)
    {
        let bytes = idle.bytes_per_connection();
        rows.push(Comparison {
            name: format!("idle WebSocket connections, {}", idle.connections),
            baseline_name: String::new(),
            protoplex: bytes / 1024.0,
            baseline: None,
            unit: "KiB RSS per connection".into(),
            ratio: None,
            goal: format!("<= {} KiB", IDLE_GOAL_BYTES / 1024.0),
            met: Some(bytes <= IDLE_GOAL_BYTES),
            note: String::new(),
        });
    }
    rows
}

#[allow(clippy::too_many_arguments)]
fn ratio_row(
    name: String,
    baseline_name: &str,
    ours: f64,
    theirs: f64,
    unit: &str,
    goal: f64,
    ours_per_cpu: f64,
    theirs_per_cpu: f64,
) -> Comparison {
    let ratio = ratio(ours, theirs);
    let note = match self::ratio(ours_per_cpu, theirs_per_cpu) {
        Some(cpu_ratio) => format!(
            "per server CPU second: {} vs {} ({cpu_ratio:.2}x)",
            group(ours_per_cpu),
            group(theirs_per_cpu)
        ),
        None => String::new(),
    };
    Comparison {
        name,
        baseline_name: baseline_name.into(),
        protoplex: ours,
        baseline: Some(theirs),
        unit: unit.into(),
        ratio,
        goal: format!(">= {goal}x"),
        met: Some(ratio.is_some_and(|r| r >= goal)),
        note,
    }
}

fn ratio(ours: f64, theirs: f64) -> Option<f64> {
    (theirs > 0.0).then(|| ours / theirs)
}

/// `1234567.8` -> `1 234 568`.
pub fn group(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

fn ms(micros: u64) -> String {
    format!("{:.2}", micros as f64 / 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The fan-out chart's series, one per server.
pub fn fanout_series(suite: &Suite) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    for run in &suite.fanout {
        let point = Point {
            subscribers: run.subscribers as f64,
            throughput: run.delivered_per_second,
            p99_ms: run.latency.p99_us as f64 / 1000.0,
        };
        match series.iter_mut().find(|s| s.name == run.server) {
            Some(existing) => existing.points.push(point),
            None => series.push(Series {
                name: run.server.clone(),
                points: vec![point],
            }),
        }
    }
    series
}

/// The SVG chart of the fan-out runs.
pub fn fanout_chart(suite: &Suite) -> String {
    let size = suite.fanout.first().map_or(0, |run| run.size);
    chart::fanout_svg(
        &format!("WebSocket fan-out, 1 publisher, {size}-byte messages"),
        &fanout_series(suite),
    )
}

/// The markdown report; `chart` is the SVG's file name, linked when given.
pub fn markdown(suite: &Suite, chart: Option<&str>) -> String {
    let mut md = String::new();
    let machine = &suite.machine;
    let _ = writeln!(md, "# protoplex benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `scripts/bench.sh{}` on {}.\n",
        if suite.quick { " --quick" } else { "" },
        machine.date
    );
    let _ = writeln!(
        md,
        "Machine: {} CPUs ({}), {} MiB of memory, Linux {}. The machine is shared and noisy, \
         and the load generator runs on the same cores as the server: figures are only meaningful \
         as ratios against the baseline measured side by side in the same run.\n",
        machine.nproc, machine.cpu_model, machine.memory_mib, machine.kernel
    );
    if suite.quick {
        let _ = writeln!(
            md,
            "**Quick run**: every scenario ran for a second or two at small sizes, to prove the tool works; the figures mean nothing.\n"
        );
    }
    let _ = writeln!(md, "## Against the goals\n");
    let _ = writeln!(
        md,
        "| comparison | protoplex | baseline | ratio | goal | met | notes |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---|---|---|");
    for row in &suite.comparisons {
        let baseline = match row.baseline {
            Some(value) => format!("{} ({})", group(value), row.baseline_name),
            None if row.baseline_name.is_empty() => "—".into(),
            None => format!("— ({})", row.baseline_name),
        };
        let ours = if row.unit.starts_with("KiB") {
            format!("{:.2} {}", row.protoplex, row.unit)
        } else if row.baseline.is_none() {
            "—".into()
        } else {
            format!("{} {}", group(row.protoplex), row.unit)
        };
        let _ = writeln!(
            md,
            "| {} | {ours} | {baseline} | {} | {} | {} | {} |",
            row.name,
            row.ratio.map_or("—".into(), |r| format!("{r:.2}x")),
            row.goal,
            match row.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            },
            row.note
        );
    }
    let short: Vec<&Comparison> = suite
        .comparisons
        .iter()
        .filter(|row| row.met == Some(false))
        .collect();
    if !short.is_empty() {
        let _ = writeln!(md, "\nWhere protoplex falls short:\n");
        for row in short {
            let figure = match row.ratio {
                Some(ratio) => format!("{ratio:.2}x, goal {}", row.goal),
                None if row.note.is_empty() => {
                    format!("{:.2} {}, goal {}", row.protoplex, row.unit, row.goal)
                }
                None => row.note.clone(),
            };
            let _ = writeln!(md, "- {}: {figure}.", row.name);
        }
    }

    if !suite.fanout.is_empty() {
        let first = &suite.fanout[0];
        let _ = writeln!(
            md,
            "\n## WebSocket fan-out\n\n{} publisher(s), {}-byte bodies, {:.0} s per run, {}; a publisher stays at most {} messages ahead of the slowest subscriber. \
             Latency: from the publisher's send to a subscriber's receipt. Lost/dup: messages missing or received twice, checked per subscriber and publisher.\n",
            first.publishers,
            first.size,
            first.publish_seconds,
            if first.rate == 0 {
                "flat-out".to_owned()
            } else {
                format!("{} msg/s", first.rate)
            },
            first.window
        );
        let _ = writeln!(
            md,
            "| server | subscribers | published/s | delivered/s | p50 ms | p99 ms | p99.9 ms | server CPU s | delivered per CPU s | loadgen CPU s | server peak RSS MiB | lost | dup |"
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for run in &suite.fanout {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {:.2} | {} | {} | {} |",
                run.server,
                run.subscribers,
                group(run.published_per_second),
                group(run.delivered_per_second),
                ms(run.latency.p50_us),
                ms(run.latency.p99_us),
                ms(run.latency.p999_us),
                run.server_cpu_seconds,
                group(run.delivered_per_cpu_second()),
                run.loadgen_cpu_seconds,
                mib(run.server_peak_rss_kib),
                run.delivery.lost,
                run.delivery.duplicated
            );
        }
        if let Some(chart) = chart {
            let _ = writeln!(md, "\n![throughput and p99 against subscribers]({chart})");
        }
    }

    if !suite.request.is_empty() {
        let _ = writeln!(
            md,
            "\n## Request/response\n\nEach client sends its next request when the previous one is answered (HTTP/1.1 keep-alive).\n"
        );
        let _ = writeln!(
            md,
            "| server | protocol | request | clients | requests/s | p50 ms | p99 ms | p99.9 ms | server CPU s | requests per CPU s | server peak RSS MiB | failed |"
        );
        let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for run in &suite.request {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} |",
                run.server,
                run.protocol,
                run.action,
                run.clients,
                group(run.requests_per_second),
                ms(run.latency.p50_us),
                ms(run.latency.p99_us),
                ms(run.latency.p999_us),
                run.server_cpu_seconds,
                group(run.requests_per_cpu_second()),
                mib(run.server_peak_rss_kib),
                run.failed
            );
        }
    }

    if !suite.idle.is_empty() {
        let _ = writeln!(
            md,
            "\n## Idle WebSocket connections\n\nConnections opened from several 127.0.0.x source addresses, then left idle; the server's resident memory (VmRSS) before and after.\n"
        );
        let _ = writeln!(
            md,
            "| server | connections | sources | connect s | RSS before MiB | RSS after MiB | per connection KiB | goal |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---|");
        for run in &suite.idle {
            let per = run.bytes_per_connection();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {} | {} | {:.2} | {} |",
                run.server,
                run.opened,
                run.sources,
                run.connect_seconds,
                mib(run.rss_before_kib),
                mib(run.rss_after_kib),
                per / 1024.0,
                if per <= IDLE_GOAL_BYTES {
                    "met"
                } else {
                    "**not met**"
                }
            );
        }
    }

    match &suite.filter {
        Some(FilterRow::Measured { protoplex, koncorde }) => {
            let _ = writeln!(
                md,
                "\n## Filter matching\n\nThe same filters and documents (`koncorde_side_by_side` writes them, `benches/koncorde/compare.js` replays them), `test()` one document at a time.\n"
            );
            let _ = writeln!(
                md,
                "| engine | filters | distinct | documents | matches per document | documents/s |"
            );
            let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
            for engine in [protoplex, koncorde] {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {:.1} | {} |",
                    engine.engine,
                    engine.filters,
                    engine.distinct,
                    engine.documents,
                    engine.matches_per_document,
                    group(engine.documents_per_second)
                );
            }
        }
        Some(FilterRow::Skipped { reason }) => {
            let _ = writeln!(md, "\n## Filter matching\n\nSkipped: {reason}.");
        }
        None => {}
    }

    let _ = writeln!(
        md,
        "\n## Not measured yet\n\nMQTT fan-out against Mosquitto and AMQP request/response against a lapin echo responder: \
         their clients and baselines come with the MQTT and AMQP entry points."
    );
    if !suite.notes.is_empty() {
        let _ = writeln!(md, "\n## Notes\n");
        for note in &suite.notes {
            let _ = writeln!(md, "- {note}");
        }
    }
    if !suite.failures.is_empty() {
        let _ = writeln!(md, "\n## Failures\n");
        for failure in &suite.failures {
            let _ = writeln!(md, "- {failure}");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Machine;
    use crate::results::{FilterEngineResult, IdleResult, samples};

    fn suite() -> Suite {
        Suite {
            machine: Machine {
                nproc: 2,
                cpu_model: "Test CPU".into(),
                memory_mib: 1024,
                kernel: "6.0".into(),
                date: "2025-01-01 00:00:00 UTC".into(),
            },
            quick: false,
            fanout: vec![
                samples::fanout("protoplex", 10, 900.0),
                samples::fanout("ws-broadcast", 10, 1000.0),
                samples::fanout("protoplex", 100, 700.0),
                samples::fanout("ws-broadcast", 100, 1000.0),
                samples::fanout("protoplex", 1000, 100.0),
            ],
            request: vec![],
            idle: vec![IdleResult {
                server: "protoplex".into(),
                connections: 1000,
                opened: 1000,
                sources: 1,
                rss_before_kib: 10_000,
                rss_after_kib: 22_000,
                server_peak_rss_kib: 22_000,
                server_cpu_seconds: 0.2,
                connect_seconds: 1.0,
                errors: vec![],
            }],
            filter: Some(FilterRow::Measured {
                protoplex: engine("protoplex", 30_000.0),
                koncorde: engine("koncorde", 1_000.0),
            }),
            comparisons: vec![],
            failures: vec![],
            notes: vec![],
        }
    }

    fn engine(name: &str, rate: f64) -> FilterEngineResult {
        FilterEngineResult {
            engine: name.into(),
            filters: 10_000,
            distinct: 9_000,
            documents: 5_000,
            matches_per_document: 2.5,
            documents_per_second: rate,
        }
    }

    #[test]
    fn goals_compare_the_largest_common_size() {
        let rows = comparisons(&suite());
        assert_eq!(rows.len(), 3, "{rows:?}");
        let fanout = &rows[0];
        assert!(fanout.name.contains("1 -> 100 subscribers"), "{}", fanout.name);
        assert_eq!(fanout.ratio, Some(0.7));
        assert_eq!(fanout.met, Some(false));
        let filter = &rows[1];
        assert_eq!(filter.ratio, Some(30.0));
        assert_eq!(filter.met, Some(true));
        let idle = &rows[2];
        assert!((idle.protoplex - 12.0).abs() < 1e-9, "{}", idle.protoplex);
        assert_eq!(idle.met, Some(false));
    }

    #[test]
    fn report_names_every_shortfall_with_its_figure() {
        let mut suite = suite();
        suite.comparisons = comparisons(&suite);
        let md = markdown(&suite, Some("fanout.svg"));
        assert!(md.contains("| WebSocket fan-out, 1 -> 100 subscribers | 700 delivered msg/s | 1 000 (ws-broadcast) | 0.70x | >= 0.8x | **no** |"), "{md}");
        assert!(
            md.contains("- WebSocket fan-out, 1 -> 100 subscribers: 0.70x, goal >= 0.8x."),
            "{md}"
        );
        assert!(
            md.contains("- idle WebSocket connections, 1000: 12.00 KiB RSS per connection, goal <= 8 KiB."),
            "{md}"
        );
        assert!(md.contains("![throughput and p99 against subscribers](fanout.svg)"));
        assert!(md.contains("| protoplex | 1000 |"), "{md}");
        assert!(md.contains("Machine: 2 CPUs (Test CPU)"));
        assert!(!md.contains("## Failures"));
    }

    #[test]
    fn skipped_filter_row_says_why() {
        let mut suite = suite();
        suite.filter = Some(FilterRow::Skipped {
            reason: "node is not installed".into(),
        });
        suite
            .failures
            .push("idle protoplex x1000: only 3 connections opened".into());
        suite.comparisons = comparisons(&suite);
        let md = markdown(&suite, None);
        assert!(md.contains("Skipped: node is not installed."), "{md}");
        assert!(
            md.contains("| not measured | skipped: node is not installed |"),
            "{md}"
        );
        assert!(
            !md.contains("- filter matching"),
            "a skipped row is no shortfall: {md}"
        );
        assert!(md.contains("## Failures\n\n- idle protoplex x1000"), "{md}");
        assert!(!md.contains("fanout.svg"));
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group(0.4), "0");
        assert_eq!(group(999.0), "999");
        assert_eq!(group(1234567.8), "1 234 568");
        assert_eq!(group(-5.0), "0");
    }
}
