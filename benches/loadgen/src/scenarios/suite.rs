//! The side-by-side comparisons of `scripts/bench.sh`: every scenario against
//! protoplex and against its baseline, each run on a freshly started server,
//! the two runs of a pair back to back.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fanout::{self, FanoutConfig};
use super::idle::{self, IdleConfig};
use super::request::{self, Action, RequestConfig, RequestProtocol};
use super::{ScenarioError, Target};
use crate::clients::Dialect;
use crate::machine::Machine;
use crate::process::{Server, ServerSpec};
use crate::report::{self, PROTOPLEX};
use crate::results::{FilterEngineResult, FilterRow, Suite};

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
        args: vec![],
        env: vec![("RUST_LOG".into(), "warn".into())],
        log: Some(logs.join(format!("{name}-{run}.log"))),
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
        notes: vec![],
    };

    for &subscribers in &config.subscribers {
        for (name, program, dialect) in [
            (PROTOPLEX, &config.protoplex, Dialect::Kuzzle),
            ("ws-broadcast", &config.ws_baseline, Dialect::Raw),
        ] {
            let fanout = FanoutConfig {
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
