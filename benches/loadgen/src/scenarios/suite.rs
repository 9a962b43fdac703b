//! The side-by-side comparisons of `scripts/bench.sh`: every scenario against
//! protoplex and against its baseline, each run on a freshly started server,
//! the two runs of a pair back to back.
//!
//! protoplex always gets `--mqtt-port` (a free port, 0 when MQTT is not under
//! test) so that it never needs 1883. The AMQP pair runs each server on a
//! request queue and routing key of its own, deleted after the run.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fanout::Transport;
use super::fanout::{self, FanoutConfig};
use super::idle::{self, IdleConfig};
use super::request::{self, Action, RequestConfig, RequestProtocol};
use super::{ScenarioError, Target};
use crate::clients::Dialect;
use crate::clients::amqp::{self, AmqpRoute};
use crate::machine::Machine;
use crate::process::{Listen, Server, ServerSpec, mosquitto_spec};
use crate::report::{self, PROTOPLEX};
use crate::results::{FilterEngineResult, FilterRow, Skipped, Suite};

/// The name of the MQTT comparison's row, for its skip note.
pub const MQTT_ROW: &str = "MQTT fan-out";
/// The name of the AMQP comparison's row, for its skip note.
pub const AMQP_ROW: &str = "AMQP request/response";

/// Settings of a suite.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// The protoplex release binary.
    pub protoplex: PathBuf,
    /// The `ws-broadcast` baseline binary.
    pub ws_baseline: PathBuf,
    /// The `http-fixed` baseline binary.
    pub http_baseline: PathBuf,
    /// Where the report, the JSON record, the chart and the servers' logs go.
    pub out: PathBuf,
    /// A quick run (small sizes: proves the tool works).
    pub quick: bool,
    /// Fan-out: numbers of subscribers, one run each per server.
    pub subscribers: Vec<usize>,
    /// Fan-out: publishers.
    pub publishers: usize,
    /// Fan-out and publish: body size, bytes.
    pub size: usize,
    /// Fan-out: publishing time per run.
    pub duration: Duration,
    /// Fan-out: messages a publisher may be ahead of the slowest subscriber.
    pub window: u64,
    /// Request/response: concurrent clients.
    pub http_clients: usize,
    /// Request/response: time per run.
    pub request_duration: Duration,
    /// Idle: numbers of connections, one run each.
    pub idle: Vec<usize>,
    /// Where `scripts/bench.sh` left the filter comparison's output, if it ran it.
    pub filter_dir: Option<PathBuf>,
    /// MQTT fan-out: the Mosquitto executable (`None`: the baseline is skipped).
    pub mosquitto: Option<PathBuf>,
    /// MQTT fan-out: why Mosquitto is missing, for the report.
    pub mosquitto_missing: Option<String>,
    /// MQTT fan-out: subscribers (0: no MQTT runs).
    pub mqtt_subscribers: usize,
    /// MQTT fan-out: body size, bytes.
    pub mqtt_size: usize,
    /// MQTT fan-out: publishing time per run.
    pub mqtt_duration: Duration,
    /// AMQP request/response: the `amqp-echo` baseline (`None`: AMQP rows skipped).
    pub amqp_baseline: Option<PathBuf>,
    /// AMQP request/response: the broker's URL.
    pub amqp_url: String,
    /// AMQP request/response: concurrent clients (0: no AMQP runs).
    pub amqp_clients: usize,
    /// AMQP request/response: time per run.
    pub amqp_duration: Duration,
    /// Notes from the caller (e.g. why a baseline could not be installed).
    pub notes: Vec<String>,
    /// Open files this process (and the servers it starts) may have.
    pub fd_limit: u64,
}

/// Open files a process needs beyond its connections.
pub const FD_MARGIN: u64 = 64;

/// Runs every comparison; the suite records its failures instead of stopping.
pub async fn run(config: &SuiteConfig) -> Suite {
    let logs = config.out.join("logs");
    let mut failures = Vec::new();
    if let Err(error) = std::fs::create_dir_all(&logs) {
        failures.push(format!("cannot create {}: {error}", logs.display()));
    }
    let spec = |name: &str, program: &Path, run: &str| ServerSpec {
        name: name.into(),
        program: program.into(),
        // protoplex's MQTT listener on any free port, never 1883.
        args: if name == PROTOPLEX {
            vec!["--mqtt-port".into(), "0".into()]
        } else {
            vec![]
        },
        env: vec![("RUST_LOG".into(), "warn".into())],
        log: Some(logs.join(format!("{name}-{run}.log"))),
        listen: Listen::Flags,
    };
    let mut suite = Suite {
        machine: Machine::current(),
        quick: config.quick,
        fanout: vec![],
        request: vec![],
        idle: vec![],
        filter: None,
        comparisons: vec![],
        failures: vec![],
        notes: config.notes.clone(),
        skipped: vec![],
    };

    for &subscribers in &config.subscribers {
        for (name, program, dialect) in [
            (PROTOPLEX, &config.protoplex, Dialect::Kuzzle),
            ("ws-broadcast", &config.ws_baseline, Dialect::Raw),
        ] {
            let fanout = FanoutConfig {
                transport: Transport::Websocket,
                dialect,
                publishers: config.publishers,
                subscribers,
                size: config.size,
                rate: 0,
                duration: config.duration,
                window: config.window,
                sources: 1,
                connect_concurrency: 64,
            };
            let spec = spec(name, program, &format!("fanout-{subscribers}"));
            match with_server(&spec, |target| async move { fanout::run(&fanout, &target).await }).await {
                Ok(result) => {
                    failures.extend(result.failures());
                    suite.fanout.push(result);
                }
                Err(error) => failures.push(format!("fan-out {name} 1->{subscribers}: {error}")),
            }
        }
    }

    let requests = [
        (PROTOPLEX, &config.protoplex, Dialect::Kuzzle, Action::Publish),
        ("http-fixed", &config.http_baseline, Dialect::Raw, Action::Publish),
        (PROTOPLEX, &config.protoplex, Dialect::Kuzzle, Action::Now),
    ];
    for (name, program, dialect, action) in requests {
        let request = RequestConfig {
            dialect,
            protocol: RequestProtocol::Http,
            action,
            clients: config.http_clients,
            size: config.size,
            duration: config.request_duration,
            amqp: None,
        };
        let spec = spec(name, program, &format!("http-{action:?}").to_lowercase());
        match with_server(
            &spec,
            |target| async move { request::run(&request, &target).await },
        )
        .await
        {
            Ok(result) => {
                failures.extend(result.failures());
                suite.request.push(result);
            }
            Err(error) => failures.push(format!("HTTP {} {name}: {error}", action.name())),
        }
    }

    if config.mqtt_subscribers > 0 {
        run_mqtt(config, &logs, &spec, &mut suite, &mut failures).await;
    }
    if config.amqp_clients > 0 {
        run_amqp(config, &spec, &mut suite, &mut failures).await;
    }

    let mut measured = 0;
    for &wanted in &config.idle {
        let connections = fitting_connections(wanted, config.fd_limit);
        if connections != wanted {
            let instead = if connections > measured {
                format!("measured {connections} instead")
            } else {
                "skipped".to_owned()
            };
            suite.notes.push(format!(
                "idle {wanted} connections: the server and the load generator each need {} open files, \
                 the limit here is {} (raising the hard limit needs CAP_SYS_RESOURCE): {instead}",
                wanted as u64 + FD_MARGIN,
                config.fd_limit
            ));
            if connections <= measured {
                continue;
            }
        }
        measured = connections;
        let idle = IdleConfig {
            connections,
            concurrency: 256,
            settle: Duration::from_secs(if config.quick { 0 } else { 2 }),
        };
        let spec = spec(PROTOPLEX, &config.protoplex, &format!("idle-{connections}"));
        match with_server(&spec, |target| async move { idle::run(&idle, &target).await }).await {
            Ok(result) => {
                failures.extend(result.failures());
                suite.idle.push(result);
            }
            Err(error) => failures.push(format!("idle {connections}: {error}")),
        }
    }

    if let Some(dir) = &config.filter_dir {
        match read_filter(dir) {
            Ok(row) => suite.filter = Some(row),
            Err(error) => failures.push(format!("filter matching: {error}")),
        }
    }
    suite.comparisons = report::comparisons(&suite);
    suite.failures = failures;
    suite
}

/// MQTT fan-out, 1 -> N at QoS 0: protoplex (`realtime:publish` over MQTT)
/// then Mosquitto (plain topic), each started for the run.
async fn run_mqtt(
    config: &SuiteConfig,
    logs: &Path,
    spec: &impl Fn(&str, &Path, &str) -> ServerSpec,
    suite: &mut Suite,
    failures: &mut Vec<String>,
) {
    let subscribers = config.mqtt_subscribers;
    let run = format!("mqtt-fanout-{subscribers}");
    let mut ours = spec(PROTOPLEX, &config.protoplex, &run);
    ours.args.clear();
    ours.listen = Listen::FlagsAndSecondPort("--mqtt-port".into());
    let mut servers = vec![(ours, Dialect::Kuzzle)];
    match &config.mosquitto {
        Some(program) => servers.push((
            mosquitto_spec(program, logs, Some(logs.join(format!("mosquitto-{run}.log")))),
            Dialect::Raw,
        )),
        None => suite.skipped.push(Skipped {
            row: MQTT_ROW.into(),
            reason: config
                .mosquitto_missing
                .clone()
                .unwrap_or_else(|| "Mosquitto was not given (--mosquitto)".into()),
        }),
    }
    for (spec, dialect) in servers {
        let fanout = FanoutConfig {
            transport: Transport::Mqtt,
            dialect,
            publishers: 1,
            subscribers,
            size: config.mqtt_size,
            rate: 0,
            duration: config.mqtt_duration,
            window: config.window,
            sources: 1,
            connect_concurrency: 64,
        };
        let name = spec.name.clone();
        match with_server(&spec, |target| async move { fanout::run(&fanout, &target).await }).await {
            Ok(result) => {
                failures.extend(result.failures());
                suite.fanout.push(result);
            }
            Err(error) => failures.push(format!("MQTT fan-out {name} 1->{subscribers}: {error}")),
        }
    }
}

/// AMQP request/response through the broker: protoplex (`server:now`) then
/// `amqp-echo`, each on a request queue of its own, deleted afterwards.
async fn run_amqp(
    config: &SuiteConfig,
    spec: &impl Fn(&str, &Path, &str) -> ServerSpec,
    suite: &mut Suite,
    failures: &mut Vec<String>,
) {
    let Some(echo) = &config.amqp_baseline else {
        suite.skipped.push(Skipped {
            row: AMQP_ROW.into(),
            reason: "the amqp-echo baseline was not given (--amqp-baseline)".into(),
        });
        return;
    };
    if let Err(error) = amqp::connect(&config.amqp_url).await {
        suite.skipped.push(Skipped {
            row: AMQP_ROW.into(),
            reason: format!(
                "no AMQP broker at {} ({error}): scripts/services.sh starts one",
                redact(&config.amqp_url)
            ),
        });
        return;
    }
    let run = format!("amqp-{}", config.amqp_clients);
    for (name, program, dialect) in [
        (PROTOPLEX, &config.protoplex, Dialect::Kuzzle),
        ("amqp-echo", echo, Dialect::Raw),
    ] {
        let route = AmqpRoute::unique(&config.amqp_url, &format!("loadgen.{name}"));
        let mut spec = spec(name, program, &run);
        spec.env.extend(route.env());
        let request = RequestConfig {
            dialect,
            protocol: RequestProtocol::Amqp,
            action: Action::Now,
            clients: config.amqp_clients,
            size: config.size,
            duration: config.amqp_duration,
            amqp: Some(route.clone()),
        };
        let outcome = match amqp::prepare_queue(&route).await {
            Ok(()) => {
                with_server(
                    &spec,
                    |target| async move { request::run(&request, &target).await },
                )
                .await
            }
            Err(error) => Err(format!("cannot declare {}: {error}", route.queue)),
        };
        match outcome {
            Ok(result) => {
                failures.extend(result.failures());
                suite.request.push(result);
            }
            Err(error) => failures.push(format!("AMQP server:now {name}: {error}")),
        }
        if let Err(error) = amqp::delete_queue(&route.url, &route.queue).await {
            suite.notes.push(format!(
                "could not delete the AMQP queue {}: {error}",
                route.queue
            ));
        }
    }
}

/// `url` without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `wanted` connections if the open-file limit holds them, else the largest
/// round thousand it holds.
pub fn fitting_connections(wanted: usize, fd_limit: u64) -> usize {
    if wanted as u64 + FD_MARGIN <= fd_limit {
        return wanted;
    }
    let room = fd_limit.saturating_sub(FD_MARGIN) as usize;
    room / 1000 * 1000
}

/// Starts `spec`, runs `scenario` against it, stops it; an error if the
/// server could not start, or died during the run.
async fn with_server<T, F, Fut>(spec: &ServerSpec, scenario: F) -> Result<T, String>
where
    F: FnOnce(Target) -> Fut,
    Fut: Future<Output = Result<T, ScenarioError>>,
{
    let mut server = Server::start(spec).await.map_err(|error| error.to_string())?;
    let result = scenario(Target::of(&server)).await;
    let alive = server.is_running();
    server.stop().await;
    if !alive {
        let log = spec
            .log
            .as_ref()
            .map(|p| format!(" (log: {})", p.display()))
            .unwrap_or_default();
        return Err(format!("{} died during the run{log}", spec.name));
    }
    result.map_err(|error| error.to_string())
}

/// The filter comparison left by `scripts/bench.sh` in `dir`:
/// `filter-protoplex.json` and `filter-koncorde.json`, or `filter-skipped.txt`.
pub fn read_filter(dir: &Path) -> Result<FilterRow, String> {
    if let Ok(reason) = std::fs::read_to_string(dir.join("filter-skipped.txt")) {
        return Ok(FilterRow::Skipped {
            reason: reason.trim().to_owned(),
        });
    }
    let read = |name: &str| -> Result<FilterEngineResult, String> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
        let line = text
            .lines()
            .rev()
            .find(|line| line.trim_start().starts_with('{'))
            .unwrap_or("");
        serde_json::from_str(line).map_err(|error| format!("{}: {error}", path.display()))
    };
    Ok(FilterRow::Measured {
        protoplex: read("filter-protoplex.json")?,
        koncorde: read("filter-koncorde.json")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_passwords_stay_out_of_the_report() {
        assert_eq!(
            redact("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("amqp://127.0.0.1"), "amqp://127.0.0.1");
        assert_eq!(redact("amqp://user@host/"), "amqp://user@host/");
    }

    #[test]
    fn idle_counts_fit_the_file_limit() {
        assert_eq!(fitting_connections(10_000, 20_000), 10_000);
        assert_eq!(fitting_connections(50_000, 20_000), 19_000);
        assert_eq!(fitting_connections(50_000, 500), 0);
    }

    #[test]
    fn filter_outputs_are_read_or_reported() {
        let dir = std::env::temp_dir().join(format!("loadgen-filter-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        assert!(read_filter(&dir).is_err(), "nothing there is an error");
        std::fs::write(
            dir.join("filter-protoplex.json"),
            r#"{"engine":"protoplex","filters":10,"distinct":10,"documents":5,"matches_per_document":1.0,"documents_per_second":300}"#,
        )
        .expect("write");
        std::fs::write(
            dir.join("filter-koncorde.json"),
            "npm noise\n{\"engine\":\"koncorde\",\"filters\":10,\"documents\":5,\"documents_per_second\":10}\n",
        )
        .expect("write");
        match read_filter(&dir) {
            Ok(FilterRow::Measured { protoplex, koncorde }) => {
                assert_eq!(protoplex.documents_per_second, 300.0);
                assert_eq!(koncorde.documents_per_second, 10.0);
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(dir.join("filter-skipped.txt"), "node not found\n").expect("write");
        assert_eq!(
            read_filter(&dir),
            Ok(FilterRow::Skipped {
                reason: "node not found".into()
            })
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
