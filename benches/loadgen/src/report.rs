//! The report of a suite: the goals table, then one markdown table per
//! scenario, written next to the JSON record and the SVG chart.

use std::fmt::Write;

use crate::chart::{self, Point, Series};
use crate::results::{Comparison, FanoutResult, FilterRow, Suite};
use crate::scenarios::suite::{AMQP_ROW, MQTT_ROW};

/// The fan-out runs of one transport.
fn runs_of<'a>(suite: &'a Suite, transport: &'a str) -> impl Iterator<Item = &'a FanoutResult> + 'a {
    suite.fanout.iter().filter(move |run| run.transport == transport)
}

/// protoplex's run and the baseline's, at the largest number of subscribers
/// both reached over `transport`.
fn fanout_pair<'a>(suite: &'a Suite, transport: &'a str) -> Option<(&'a FanoutResult, &'a FanoutResult)> {
    let theirs_at = |subscribers: usize| {
        runs_of(suite, transport).find(|run| run.server != PROTOPLEX && run.subscribers == subscribers)
    };
    let ours = runs_of(suite, transport)
        .filter(|run| run.server == PROTOPLEX && theirs_at(run.subscribers).is_some())
        .max_by_key(|run| run.subscribers)?;
    Some((ours, theirs_at(ours.subscribers)?))
}

/// A goals row for a comparison skipped on purpose.
fn skipped_row(
    suite: &Suite,
    row: &str,
    baseline_name: &str,
    unit: &str,
    goal: String,
) -> Option<Comparison> {
    let skipped = suite.skipped.iter().find(|skipped| skipped.row == row)?;
    Some(Comparison {
        name: row.into(),
        baseline_name: baseline_name.into(),
        protoplex: 0.0,
        baseline: None,
        unit: unit.into(),
        ratio: None,
        goal,
        met: None,
        note: format!("skipped: {}", skipped.reason),
    })
}

/// protoplex's fan-out throughput over the broadcast ceiling.
pub const FANOUT_GOAL: f64 = 0.8;
/// protoplex's HTTP publish throughput over the fixed-answer server.
pub const HTTP_GOAL: f64 = 0.7;
/// protoplex's MQTT fan-out throughput over Mosquitto's (and a p99 no higher).
pub const MQTT_GOAL: f64 = 1.0;
/// protoplex's AMQP request/response throughput over the echo responder's.
pub const AMQP_GOAL: f64 = 0.8;
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
    if let Some((ours, theirs)) = fanout_pair(suite, "websocket") {
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
    let mqtt_goal = format!(">= {MQTT_GOAL:.1}x, p99 <= baseline's");
    if let Some((ours, theirs)) = fanout_pair(suite, "mqtt") {
        let mut row = ratio_row(
            format!(
                "MQTT fan-out QoS 0, {} -> {} subscribers, {} B",
                ours.publishers, ours.subscribers, ours.size
            ),
            &theirs.server,
            ours.delivered_per_second,
            theirs.delivered_per_second,
            "delivered msg/s",
            MQTT_GOAL,
            ours.delivered_per_cpu_second(),
            theirs.delivered_per_cpu_second(),
        );
        let p99_met = ours.latency.p99_us <= theirs.latency.p99_us;
        row.goal = mqtt_goal;
        row.met = row.met.map(|met| met && p99_met);
        let p99 = format!(
            "p99 {} ms vs {} ms",
            ms(ours.latency.p99_us),
            ms(theirs.latency.p99_us)
        );
        row.note = if row.note.is_empty() {
            p99
        } else {
            format!("{p99}; {}", row.note)
        };
        rows.push(row);
    } else if let Some(row) = skipped_row(suite, MQTT_ROW, "Mosquitto", "delivered msg/s", mqtt_goal) {
        rows.push(row);
    }
    let amqp = |server_is_ours: bool| {
        suite
            .request
            .iter()
            .filter(|run| run.protocol == "amqp")
            .filter(|run| (run.server == PROTOPLEX) == server_is_ours)
            .max_by_key(|run| run.clients)
    };
    if let (Some(ours), Some(theirs)) = (amqp(true), amqp(false)) {
        rows.push(ratio_row(
            format!(
                "AMQP request/response ({}), {} concurrent clients",
                ours.action, ours.clients
            ),
            &theirs.server,
            ours.requests_per_second,
            theirs.requests_per_second,
            "requests/s",
            AMQP_GOAL,
            ours.requests_per_cpu_second(),
            theirs.requests_per_cpu_second(),
        ));
    } else if let Some(row) = skipped_row(
        suite,
        AMQP_ROW,
        "amqp-echo",
        "requests/s",
        format!(">= {AMQP_GOAL}x"),
    ) {
        rows.push(row);
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
    for run in runs_of(suite, "websocket") {
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
    let size = runs_of(suite, "websocket").next().map_or(0, |run| run.size);
    chart::fanout_svg(
        &format!("WebSocket fan-out, 1 publisher, {size}-byte messages"),
        &fanout_series(suite),
    )
}

/// One fan-out section: settings of the first run, then a line per run.
fn fanout_table(md: &mut String, title: &str, intro: &str, runs: &[&FanoutResult]) {
    let Some(first) = runs.first() else {
        return;
    };
    let _ = writeln!(
        md,
        "\n## {title}\n\n{intro}{} publisher(s), {}-byte bodies, {:.0} s per run, {}; a publisher stays at most {} messages ahead of the slowest subscriber. \
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
    for run in runs {
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

    let websocket: Vec<&FanoutResult> = runs_of(suite, "websocket").collect();
    if !websocket.is_empty() {
        fanout_table(&mut md, "WebSocket fan-out", "", &websocket);
        if let Some(chart) = chart {
            let _ = writeln!(md, "\n![throughput and p99 against subscribers]({chart})");
        }
    }
    let mqtt: Vec<&FanoutResult> = runs_of(suite, "mqtt").collect();
    if !mqtt.is_empty() {
        fanout_table(
            &mut md,
            "MQTT fan-out (QoS 0)",
            "MQTT 3.1.1 at QoS 0 both ways. protoplex: each subscriber sends `realtime:subscribe` to `Kuzzle/request` \
             and SUBSCRIBEs to the channel's topic, the publisher sends `realtime:publish` requests and reads their answers \
             on `Kuzzle/response`; Mosquitto: plain topic fan-out, no answers. ",
            &mqtt,
        );
    }

    if !suite.request.is_empty() {
        let _ = writeln!(
            md,
            "\n## Request/response\n\nEach client sends its next request when the previous one is answered: HTTP/1.1 keep-alive; \
             AMQP through RabbitMQ, each client with its own connection and auto-delete reply queue, requests to `amq.topic` \
             with the server's routing key, answers matched by `correlation_id` (`amqp-echo` sends the body back untouched).\n"
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
            skipped: vec![],
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

    fn amqp_run(server: &str, requests_per_second: f64) -> crate::results::RequestResult {
        crate::results::RequestResult {
            server: server.into(),
            dialect: if server == PROTOPLEX {
                crate::clients::Dialect::Kuzzle
            } else {
                crate::clients::Dialect::Raw
            },
            protocol: "amqp".into(),
            action: "server:now".into(),
            clients: 16,
            size: 256,
            seconds: 5.0,
            requests: (requests_per_second * 5.0) as u64,
            failed: 0,
            requests_per_second,
            latency: Default::default(),
            server_cpu_seconds: 1.0,
            server_peak_rss_kib: 10_000,
            loadgen_cpu_seconds: 1.0,
            errors: vec![],
        }
    }

    fn mqtt_run(server: &str, delivered_per_second: f64, p99_us: u64) -> FanoutResult {
        let mut run = samples::fanout(server, 100, delivered_per_second);
        run.transport = "mqtt".into();
        run.size = 64;
        run.latency.p99_us = p99_us;
        run
    }

    #[test]
    fn mqtt_goal_needs_the_rate_and_the_p99() {
        let mut suite = suite();
        suite.fanout.push(mqtt_run(PROTOPLEX, 1200.0, 5000));
        suite.fanout.push(mqtt_run("mosquitto", 1000.0, 4000));
        suite.request.push(amqp_run(PROTOPLEX, 850.0));
        suite.request.push(amqp_run("amqp-echo", 1000.0));
        let rows = comparisons(&suite);
        // The WebSocket row ignores the MQTT runs (its baseline stays ws-broadcast).
        assert_eq!(rows[0].baseline_name, "ws-broadcast");
        assert_eq!(rows[0].ratio, Some(0.7));
        let mqtt = rows
            .iter()
            .find(|row| row.name.starts_with("MQTT"))
            .expect("MQTT row");
        assert_eq!(mqtt.name, "MQTT fan-out QoS 0, 1 -> 100 subscribers, 64 B");
        assert_eq!(mqtt.ratio, Some(1.2));
        assert_eq!(mqtt.met, Some(false), "p99 5 ms > 4 ms: {mqtt:?}");
        assert!(mqtt.note.starts_with("p99 5.00 ms vs 4.00 ms"), "{}", mqtt.note);
        let amqp = rows
            .iter()
            .find(|row| row.name.starts_with("AMQP"))
            .expect("AMQP row");
        assert_eq!(amqp.ratio, Some(0.85));
        assert_eq!(amqp.met, Some(true));
        assert_eq!(amqp.baseline_name, "amqp-echo");

        suite.fanout.last_mut().expect("mosquitto").latency.p99_us = 6000;
        let rows = comparisons(&suite);
        let mqtt = rows
            .iter()
            .find(|row| row.name.starts_with("MQTT"))
            .expect("MQTT row");
        assert_eq!(mqtt.met, Some(true));

        suite.comparisons = rows;
        let md = markdown(&suite, Some("fanout.svg"));
        assert!(md.contains("## MQTT fan-out (QoS 0)"), "{md}");
        assert!(md.contains("| mosquitto | 100 |"), "{md}");
        assert!(md.contains("| amqp-echo | amqp | server:now | 16 |"), "{md}");
        assert!(!md.contains("Not measured yet"), "{md}");
        // The chart keeps to WebSocket.
        assert!(
            fanout_series(&suite)
                .iter()
                .all(|series| series.name != "mosquitto")
        );
    }

    #[test]
    fn skipped_baselines_show_as_not_measured() {
        let mut suite = suite();
        suite.fanout.push(mqtt_run(PROTOPLEX, 1200.0, 5000));
        suite.skipped.push(crate::results::Skipped {
            row: MQTT_ROW.into(),
            reason: "Mosquitto is not installed".into(),
        });
        suite.skipped.push(crate::results::Skipped {
            row: AMQP_ROW.into(),
            reason: "no AMQP broker".into(),
        });
        suite.comparisons = comparisons(&suite);
        let md = markdown(&suite, None);
        assert!(
            md.contains("| MQTT fan-out | — | — (Mosquitto) | — | >= 1.0x, p99 <= baseline's | not measured | skipped: Mosquitto is not installed |"),
            "{md}"
        );
        assert!(md.contains("| not measured | skipped: no AMQP broker |"), "{md}");
        assert!(!md.contains("- MQTT"), "a skipped row is no shortfall: {md}");
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group(0.4), "0");
        assert_eq!(group(999.0), "999");
        assert_eq!(group(1234567.8), "1 234 568");
        assert_eq!(group(-5.0), "0");
    }
}
