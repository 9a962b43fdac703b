//! The command line: one subcommand per scenario, plus `suite`, which runs
//! the side-by-side comparisons and writes the report.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::clients::Dialect;
use crate::clients::amqp::{self, AmqpRoute};
use crate::process::{Listen, Server, ServerSpec, mosquitto_spec, raise_fd_limit};
use crate::report;
use crate::scenarios::fanout::{self, FanoutConfig, Transport};
use crate::scenarios::idle::{self, IdleConfig};
use crate::scenarios::request::{self, Action, RequestConfig, RequestProtocol};
use crate::scenarios::soak::{self, SoakConfig};
use crate::scenarios::suite::{self, SuiteConfig};
use crate::scenarios::{ScenarioError, Target};

/// Open files the load generator asks for beyond its connections.
const FD_SLACK: u64 = 4096;

/// Load generator of protoplex: real clients, bounded runs, loopback only.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
pub enum Command {
    /// P publishers -> N subscribers over WebSocket or MQTT; prints the result as JSON.
    Fanout(FanoutArgs),
    /// C concurrent clients issuing server:now or realtime:publish; prints JSON.
    Request(RequestArgs),
    /// K idle WebSocket connections; the server's memory per connection; prints JSON.
    Idle(IdleArgs),
    /// Every comparison side by side; writes latest.md, latest.json and fanout.svg.
    Suite(SuiteArgs),
    /// Renders latest.md and fanout.svg again from a suite's latest.json.
    Report(ReportArgs),
    /// Mixed load over every protocol for minutes; the server's memory and open files at start and end.
    Soak(SoakArgs),
}

/// `loadgen soak`: starts protoplex on free loopback ports (AMQP through the
/// broker at --amqp-url, on a request queue of its own), loads it, prints the
/// Markdown report; exits non-zero when it fails (memory or open-file growth,
/// lost notifications, unexpected answers).
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// The protoplex executable.
    #[arg(long, value_name = "PATH")]
    pub protoplex: PathBuf,
    /// One more argument for protoplex (repeatable).
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// One more environment variable for protoplex, `KEY=VALUE` (repeatable;
    /// e.g. `RUST_LOG=warn,protoplex_amqp=debug`, `PROTOPLEX_AMQP__ANSWER_CACHE_SIZE=0`).
    #[arg(long = "server-env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub server_env: Vec<(String, String)>,
    /// Seconds of load, warm-up included.
    #[arg(long, short = 't', default_value_t = 600.0)]
    pub duration: f64,
    /// Seconds of load before the start sample (longer than protoplex's
    /// 60 s AMQP answer cache, so that it is full at the start sample).
    #[arg(long, default_value_t = 90.0)]
    pub warmup: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10.0)]
    pub interval: f64,
    /// Seconds with no churn client open before each sample.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Seconds between the end of the churn and the end sample.
    #[arg(long, default_value_t = 5.0)]
    pub end_settle: f64,
    /// Steady publishes per second, the four protocols together.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Steady subscribers on each of WebSocket, MQTT and AMQP.
    #[arg(long, short = 'n', default_value_t = 8)]
    pub subscribers: usize,
    /// Steady message size, bytes.
    #[arg(long, short = 's', default_value_t = 256)]
    pub size: usize,
    /// Milliseconds between a churn client's cycles.
    #[arg(long, default_value_t = 100)]
    pub churn_pause_ms: u64,
    /// Milliseconds between a protocol's deliberately bad requests.
    #[arg(long, default_value_t = 500)]
    pub bad_interval_ms: u64,
    /// The protocols with churn clients (default: all; `--churn` alone: none).
    #[arg(long, value_enum, value_delimiter = ',', num_args = 0..)]
    pub churn: Option<Vec<soak::counters::Protocol>>,
    /// The AMQP broker's URL.
    #[arg(long, env = "PROTOPLEX_AMQP_URL", default_value = amqp::DEFAULT_URL)]
    pub amqp_url: String,
    /// The server's log (stdout and stderr).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Writes the Markdown report there too.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Writes the JSON record there.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Writes the server's process id there while it runs (for a caller's cleanup).
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Writes the server's AMQP request queue there until it is deleted (for a caller's cleanup).
    #[arg(long, value_name = "FILE")]
    pub queue_file: Option<PathBuf>,
    /// A note for the report (repeatable), e.g. the commit measured.
    #[arg(long = "note", value_name = "TEXT")]
    pub notes: Vec<String>,
}

impl SoakArgs {
    /// The soak's settings.
    pub fn config(&self) -> SoakConfig {
        let seconds = |value: f64| Duration::from_secs_f64(value.max(0.0));
        SoakConfig {
            protoplex: self.protoplex.clone(),
            server_args: self.server_args.clone(),
            server_env: self.server_env.clone(),
            amqp_url: self.amqp_url.clone(),
            duration: seconds(self.duration),
            warmup: seconds(self.warmup),
            interval: seconds(self.interval),
            settle: seconds(self.settle),
            end_settle: seconds(self.end_settle),
            rate: self.rate,
            subscribers: self.subscribers,
            size: self.size,
            churn_pause: Duration::from_millis(self.churn_pause_ms),
            churn: self
                .churn
                .clone()
                .unwrap_or_else(|| soak::counters::Protocol::ALL.to_vec()),
            bad_interval: Duration::from_millis(self.bad_interval_ms),
            log: self.log.clone(),
            pid_file: self.pid_file.clone(),
            queue_file: self.queue_file.clone(),
        }
    }
}

/// `loadgen report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The suite's JSON record.
    #[arg(long, value_name = "FILE")]
    pub json: PathBuf,
    /// Directory of latest.md and fanout.svg.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Which server to load: one this process starts, or one already running.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Start this executable on a free loopback port (it gets `--bind 127.0.0.1 --port PORT`;
    /// protoplex over MQTT also `--mqtt-port PORT2`; Mosquitto, `--transport mqtt --dialect raw`,
    /// a configuration file instead).
    #[arg(long, value_name = "PATH", required_unless_present = "address")]
    pub server: Option<PathBuf>,
    /// One more argument for the started server (repeatable).
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Use the server already listening there instead (loopback only).
    #[arg(long, value_name = "ADDR", conflicts_with = "server")]
    pub address: Option<SocketAddr>,
    /// Process id of the server at --address, for its CPU and memory figures.
    #[arg(long, requires = "address")]
    pub pid: Option<u32>,
    /// Name of the server in the result (default: the executable's name).
    #[arg(long)]
    pub name: Option<String>,
    /// What the server speaks: `kuzzle` (protoplex) or `raw` (a baseline).
    #[arg(long, value_enum, default_value = "kuzzle")]
    pub dialect: Dialect,
}

/// `loadgen fanout`.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Protocol of the clients (mqtt: 3.1.1, QoS 0; with --address, the MQTT port).
    #[arg(long, value_enum, default_value = "websocket")]
    pub transport: Transport,
    /// Publishers.
    #[arg(long, short = 'p', default_value_t = 1)]
    pub publishers: usize,
    /// Subscribers.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub subscribers: usize,
    /// Published body size, bytes.
    #[arg(long, short = 's', default_value_t = 256)]
    pub size: usize,
    /// Messages per second over all publishers (0: flat-out).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seconds of publishing.
    #[arg(long, short = 't', default_value_t = 5.0)]
    pub duration: f64,
    /// Messages a publisher may be ahead of the slowest subscriber (keep it
    /// below the server's outgoing queue, 1024 for protoplex).
    #[arg(long, default_value_t = 256)]
    pub window: u64,
    /// Loopback source addresses the subscribers are spread over.
    #[arg(long, default_value_t = 1)]
    pub sources: usize,
}

/// `loadgen request`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Protocol of the clients.
    #[arg(long, value_enum, default_value = "http")]
    pub protocol: RequestProtocol,
    /// Request sent.
    #[arg(long, value_enum, default_value = "publish")]
    pub action: Action,
    /// Concurrent clients.
    #[arg(long, short = 'c', default_value_t = 64)]
    pub clients: usize,
    /// Body size of a publish, bytes.
    #[arg(long, short = 's', default_value_t = 256)]
    pub size: usize,
    /// Seconds to run.
    #[arg(long, short = 't', default_value_t = 5.0)]
    pub duration: f64,
    /// AMQP: the broker's URL.
    #[arg(long, env = "PROTOPLEX_AMQP_URL", default_value = amqp::DEFAULT_URL)]
    pub amqp_url: String,
    /// AMQP: the server's request queue (default: protoplex.requests with
    /// --address; one made for the run, then deleted, with --server).
    #[arg(long)]
    pub amqp_queue: Option<String>,
    /// AMQP: routing key of the requests on amq.topic (default: kuzzle with
    /// --address; the queue's name with --server).
    #[arg(long)]
    pub amqp_routing_key: Option<String>,
}

impl RequestArgs {
    /// The AMQP route of the run (a fresh one when the server is started here).
    pub fn amqp_route(&self) -> AmqpRoute {
        let mut route = if self.server.address.is_some() {
            AmqpRoute {
                url: self.amqp_url.clone(),
                exchange: "amq.topic".into(),
                routing_key: "kuzzle".into(),
                queue: "protoplex.requests".into(),
            }
        } else {
            AmqpRoute::unique(&self.amqp_url, "loadgen.requests")
        };
        if let Some(queue) = &self.amqp_queue {
            route.queue = queue.clone();
        }
        if let Some(key) = &self.amqp_routing_key {
            route.routing_key = key.clone();
        }
        route
    }
}

/// `loadgen idle`.
#[derive(Debug, Args)]
pub struct IdleArgs {
    /// The server (its process id is needed).
    #[command(flatten)]
    pub server: ServerArgs,
    /// Connections.
    #[arg(long, short = 'k', default_value_t = 1000)]
    pub connections: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Seconds to wait, every connection open, before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
}

/// `loadgen suite`.
#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// The protoplex release binary.
    #[arg(long, value_name = "PATH")]
    pub protoplex: PathBuf,
    /// The `ws-broadcast` baseline binary.
    #[arg(long, value_name = "PATH")]
    pub ws_baseline: PathBuf,
    /// The `http-fixed` baseline binary.
    #[arg(long, value_name = "PATH")]
    pub http_baseline: PathBuf,
    /// Directory of latest.md, latest.json, fanout.svg and logs/.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Every scenario for a second or two at small sizes.
    #[arg(long)]
    pub quick: bool,
    /// Fan-out subscriber counts (default 1,10,100,1000; quick: 1,10).
    #[arg(long, value_delimiter = ',')]
    pub subscribers: Vec<usize>,
    /// Fan-out publishers.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Body size of fan-out and publish messages, bytes.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Seconds of each fan-out run (default 5; quick: 1).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Fan-out window, messages.
    #[arg(long, default_value_t = 256)]
    pub window: u64,
    /// HTTP concurrent clients (default 64; quick: 8).
    #[arg(long)]
    pub http_clients: Option<usize>,
    /// Seconds of each request/response run (default 5; quick: 1).
    #[arg(long)]
    pub request_duration: Option<f64>,
    /// Idle connection counts (default 10000,50000; quick: 500); counts the
    /// open-file limit cannot hold are skipped with a note.
    #[arg(long, value_delimiter = ',')]
    pub idle: Vec<usize>,
    /// Directory where bench.sh left the filter comparison's output.
    #[arg(long, value_name = "DIR")]
    pub filter_dir: Option<PathBuf>,
    /// The Mosquitto executable, the MQTT fan-out's baseline (none: that row is skipped).
    #[arg(long, value_name = "PATH")]
    pub mosquitto: Option<PathBuf>,
    /// Why Mosquitto is not given, for the report.
    #[arg(long, value_name = "REASON")]
    pub mosquitto_missing: Option<String>,
    /// MQTT fan-out subscribers, 1 publisher (default 100; quick: 10; 0: no MQTT runs).
    #[arg(long)]
    pub mqtt_subscribers: Option<usize>,
    /// MQTT fan-out body size, bytes.
    #[arg(long, default_value_t = 64)]
    pub mqtt_size: usize,
    /// Seconds of each MQTT fan-out run (default 5; quick: 1).
    #[arg(long)]
    pub mqtt_duration: Option<f64>,
    /// The `amqp-echo` baseline binary (none: the AMQP rows are skipped).
    #[arg(long, value_name = "PATH")]
    pub amqp_baseline: Option<PathBuf>,
    /// The AMQP broker's URL.
    #[arg(long, env = "PROTOPLEX_AMQP_URL", default_value = amqp::DEFAULT_URL)]
    pub amqp_url: String,
    /// AMQP concurrent clients (default 16; quick: 4; 0: no AMQP runs).
    #[arg(long)]
    pub amqp_clients: Option<usize>,
    /// Seconds of each AMQP run (default 5; quick: 1).
    #[arg(long)]
    pub amqp_duration: Option<f64>,
    /// A note for the report (repeatable), e.g. why a baseline is missing.
    #[arg(long = "note", value_name = "TEXT")]
    pub notes: Vec<String>,
}

impl SuiteArgs {
    /// The settings, with the defaults of a full or quick run filled in.
    pub fn config(&self) -> SuiteConfig {
        let or = |values: &[usize], full: &[usize], quick: &[usize]| -> Vec<usize> {
            match (values.is_empty(), self.quick) {
                (false, _) => values.to_vec(),
                (true, false) => full.to_vec(),
                (true, true) => quick.to_vec(),
            }
        };
        let seconds = |value: Option<f64>, full: f64, quick: f64| {
            Duration::from_secs_f64(value.unwrap_or(if self.quick { quick } else { full }).max(0.1))
        };
        SuiteConfig {
            protoplex: self.protoplex.clone(),
            ws_baseline: self.ws_baseline.clone(),
            http_baseline: self.http_baseline.clone(),
            out: self.out.clone(),
            quick: self.quick,
            subscribers: or(&self.subscribers, &[1, 10, 100, 1000], &[1, 10]),
            publishers: self.publishers,
            size: self.size,
            duration: seconds(self.duration, 5.0, 1.0),
            window: self.window,
            http_clients: self.http_clients.unwrap_or(if self.quick { 8 } else { 64 }),
            request_duration: seconds(self.request_duration, 5.0, 1.0),
            idle: or(&self.idle, &[10_000, 50_000], &[500]),
            filter_dir: self.filter_dir.clone(),
            fd_limit: 0,
            mosquitto: self.mosquitto.clone(),
            mosquitto_missing: self.mosquitto_missing.clone(),
            mqtt_subscribers: self.mqtt_subscribers.unwrap_or(if self.quick { 10 } else { 100 }),
            mqtt_size: self.mqtt_size,
            mqtt_duration: seconds(self.mqtt_duration, 5.0, 1.0),
            amqp_baseline: self.amqp_baseline.clone(),
            amqp_url: self.amqp_url.clone(),
            amqp_clients: self.amqp_clients.unwrap_or(if self.quick { 4 } else { 16 }),
            amqp_duration: seconds(self.amqp_duration, 5.0, 1.0),
            notes: self.notes.clone(),
        }
    }
}

/// `KEY=VALUE`, split.
fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Why the command could not run.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A scenario could not run.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A file could not be written.
    #[error("{0}")]
    Io(String),
}

/// Runs the command; `Ok(false)` when it ran but something failed (lost
/// messages, errors), the failures printed on stderr.
pub async fn execute(cli: Cli) -> Result<bool, CliError> {
    match cli.command {
        Command::Report(args) => {
            let text = std::fs::read_to_string(&args.json)
                .map_err(|error| CliError::Io(format!("{}: {error}", args.json.display())))?;
            let suite: crate::results::Suite = serde_json::from_str(&text)
                .map_err(|error| CliError::Io(format!("{}: {error}", args.json.display())))?;
            write_report(&suite, &args.out)?;
            println!("{}", goals_text(&suite));
            Ok(true)
        }
        Command::Fanout(args) => {
            let limit = raise_fd_limit(args.subscribers as u64 + FD_SLACK);
            check_fd_limit(limit, args.subscribers)?;
            let config = FanoutConfig {
                transport: args.transport,
                dialect: args.server.dialect,
                publishers: args.publishers,
                subscribers: args.subscribers,
                size: args.size,
                rate: args.rate,
                duration: Duration::from_secs_f64(args.duration.max(0.1)),
                window: args.window.max(1),
                sources: args.sources,
                connect_concurrency: 64,
            };
            let listen = match (args.transport, args.server.dialect) {
                (Transport::Websocket, _) => Launch::Flags,
                (Transport::Mqtt, Dialect::Kuzzle) => Launch::Protoplex,
                (Transport::Mqtt, Dialect::Raw) => Launch::Mosquitto,
            };
            let (server, target) = target(&args.server, listen, vec![]).await?;
            let result = fanout::run(&config, &target).await;
            finish_single(server, result, |r| r.failures()).await
        }
        Command::Request(args) => {
            raise_fd_limit(args.clients as u64 + FD_SLACK);
            let amqp = args.protocol == RequestProtocol::Amqp;
            let route = amqp.then(|| args.amqp_route());
            let config = RequestConfig {
                dialect: args.server.dialect,
                protocol: args.protocol,
                action: args.action,
                clients: args.clients,
                size: args.size,
                duration: Duration::from_secs_f64(args.duration.max(0.1)),
                amqp: route.clone(),
            };
            // A server started here gets a request queue of its own, declared
            // first and deleted at the end.
            let started_here = args.server.address.is_none();
            let mut env = vec![];
            if let Some(route) = route.as_ref().filter(|_| started_here) {
                amqp::prepare_queue(route)
                    .await
                    .map_err(|source| ScenarioError::Client {
                        what: format!("declaring {}", route.queue),
                        source,
                    })?;
                env = route.env();
            }
            let started = target(&args.server, Launch::Flags, env).await;
            let outcome = match started {
                Ok((server, target)) => {
                    let result = request::run(&config, &target).await;
                    finish_single(server, result, |r| r.failures()).await
                }
                Err(error) => Err(error),
            };
            if let Some(route) = route.as_ref().filter(|_| started_here)
                && let Err(error) = amqp::delete_queue(&route.url, &route.queue).await
            {
                eprintln!(
                    "loadgen: could not delete the AMQP queue {}: {error}",
                    route.queue
                );
            }
            outcome
        }
        Command::Idle(args) => {
            let limit = raise_fd_limit(args.connections as u64 + FD_SLACK);
            check_fd_limit(limit, args.connections)?;
            let config = IdleConfig {
                connections: args.connections,
                concurrency: args.concurrency,
                settle: Duration::from_secs_f64(args.settle.max(0.0)),
            };
            let (server, target) = target(&args.server, Launch::Flags, vec![]).await?;
            let result = idle::run(&config, &target).await;
            finish_single(server, result, |r| r.failures()).await
        }
        Command::Soak(args) => {
            let mut result = soak::run(&args.config()).await?;
            result.notes.splice(0..0, args.notes.iter().cloned());
            let text = soak::report::markdown(&result);
            if let Some(path) = &args.report {
                write_file(path, text.clone())?;
            }
            if let Some(path) = &args.json {
                let json =
                    serde_json::to_string_pretty(&result).map_err(|error| CliError::Io(error.to_string()))?;
                write_file(path, json + "\n")?;
            }
            println!("{text}");
            for failure in &result.failures {
                eprintln!("FAILED: {failure}");
            }
            Ok(result.passed())
        }
        Command::Suite(args) => {
            let mut config = args.config();
            let largest = config
                .idle
                .iter()
                .chain(&config.subscribers)
                .copied()
                .max()
                .unwrap_or(0);
            config.fd_limit = raise_fd_limit(largest as u64 + FD_SLACK);
            let subscribers = config.subscribers.iter().copied().max().unwrap_or(0);
            check_fd_limit(config.fd_limit, subscribers)?;
            let suite = suite::run(&config).await;
            let json =
                serde_json::to_string_pretty(&suite).map_err(|error| CliError::Io(error.to_string()))?;
            write_file(&config.out.join("latest.json"), json + "\n")?;
            write_report(&suite, &config.out)?;
            println!("{}", goals_text(&suite));
            println!("report: {}", config.out.join("latest.md").display());
            for failure in &suite.failures {
                eprintln!("FAILED: {failure}");
            }
            Ok(suite.failures.is_empty())
        }
    }
}

/// Writes latest.md and fanout.svg into `out`.
fn write_report(suite: &crate::results::Suite, out: &std::path::Path) -> Result<(), CliError> {
    write_file(&out.join("fanout.svg"), report::fanout_chart(suite))?;
    write_file(
        &out.join("latest.md"),
        report::markdown(suite, Some("fanout.svg")),
    )
}

fn write_file(path: &std::path::Path, text: String) -> Result<(), CliError> {
    std::fs::write(path, text).map_err(|error| CliError::Io(format!("{}: {error}", path.display())))
}

/// The goals table, one line each, for the terminal.
fn goals_text(suite: &crate::results::Suite) -> String {
    suite
        .comparisons
        .iter()
        .map(|row| {
            let figure = match row.ratio {
                Some(ratio) => format!("{ratio:.2}x"),
                None if row.baseline.is_none() && row.unit.starts_with("KiB") => {
                    format!("{:.2} {}", row.protoplex, row.unit)
                }
                None => row.note.clone(),
            };
            format!(
                "{:<60} {figure:>28}  goal {:<10} {}",
                row.name,
                row.goal,
                match row.met {
                    Some(true) => "met",
                    Some(false) => "NOT MET",
                    None => "not measured",
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn check_fd_limit(limit: u64, connections: usize) -> Result<(), CliError> {
    if limit < connections as u64 + suite::FD_MARGIN {
        return Err(CliError::Io(format!(
            "{connections} connections need more open files than the limit of {limit}: raise it (ulimit -n) or run as root"
        )));
    }
    Ok(())
}

/// How `target` starts a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Launch {
    /// `--bind 127.0.0.1 --port PORT`, PORT under test.
    Flags,
    /// protoplex: also `--mqtt-port PORT2`, PORT2 under test.
    Protoplex,
    /// Mosquitto: a configuration file.
    Mosquitto,
}

/// Starts the server asked for (with `env` added), or describes the one already running.
async fn target(
    args: &ServerArgs,
    launch: Launch,
    env: Vec<(String, String)>,
) -> Result<(Option<Server>, Target), CliError> {
    if let Some(address) = args.address {
        let target = Target {
            name: args.name.clone().unwrap_or_else(|| "server".into()),
            address,
            pid: args.pid,
        };
        return Ok((None, target));
    }
    let Some(program) = &args.server else {
        return Err(CliError::Io("--server or --address is needed".into()));
    };
    let name = args.name.clone().unwrap_or_else(|| {
        program
            .file_name()
            .map_or_else(|| "server".into(), |name| name.to_string_lossy().into_owned())
    });
    let mut spec = ServerSpec {
        name,
        program: program.clone(),
        args: args.server_args.clone(),
        env: vec![("RUST_LOG".into(), "warn".into())],
        log: None,
        listen: Listen::Flags,
    };
    match launch {
        Launch::Flags => {}
        Launch::Protoplex => spec.listen = Listen::FlagsAndSecondPort("--mqtt-port".into()),
        Launch::Mosquitto => {
            let mut mosquitto = mosquitto_spec(program, &std::env::temp_dir(), None);
            mosquitto.name = spec.name;
            mosquitto.args.extend(spec.args);
            spec = mosquitto;
        }
    }
    spec.env.extend(env);
    let server = Server::start(&spec).await.map_err(ScenarioError::from)?;
    let target = Target::of(&server);
    Ok((Some(server), target))
}

/// Prints the result as JSON and its failures; stops the server.
async fn finish_single<T: Serialize>(
    server: Option<Server>,
    result: Result<T, ScenarioError>,
    failures: impl Fn(&T) -> Vec<String>,
) -> Result<bool, CliError> {
    if let Some(server) = server {
        server.stop().await;
    }
    let result = result?;
    let json = serde_json::to_string_pretty(&result).map_err(|error| CliError::Io(error.to_string()))?;
    println!("{json}");
    let failures = failures(&result);
    for failure in &failures {
        eprintln!("FAILED: {failure}");
    }
    Ok(failures.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_and_full_defaults() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).expect("valid").command {
            Command::Suite(suite) => suite.config(),
            other => panic!("{other:?}"),
        };
        let base = [
            "loadgen",
            "suite",
            "--protoplex",
            "p",
            "--ws-baseline",
            "w",
            "--http-baseline",
            "h",
            "--out",
            "o",
        ];
        let full = parse(&base);
        assert_eq!(full.subscribers, vec![1, 10, 100, 1000]);
        assert_eq!(full.http_clients, 64);
        assert_eq!((full.mqtt_subscribers, full.mqtt_size), (100, 64));
        assert_eq!(full.mqtt_duration, Duration::from_secs(5));
        assert_eq!(full.amqp_clients, 16);
        assert_eq!(full.mosquitto, None);
        let mut quick_args = base.to_vec();
        quick_args.extend(["--quick", "--idle", "100,200"]);
        let quick = parse(&quick_args);
        assert_eq!(quick.subscribers, vec![1, 10]);
        assert_eq!(quick.duration, Duration::from_secs(1));
        assert_eq!(quick.idle, vec![100, 200]);
        assert_eq!((quick.mqtt_subscribers, quick.amqp_clients), (10, 4));
        assert_eq!(quick.amqp_duration, Duration::from_secs(1));
    }

    #[test]
    fn amqp_routes_of_single_runs() {
        let request = |args: &[&str]| match Cli::try_parse_from(args).expect("valid").command {
            Command::Request(request) => request,
            other => panic!("{other:?}"),
        };
        let running = request(&[
            "loadgen",
            "request",
            "--protocol",
            "amqp",
            "--address",
            "127.0.0.1:1",
        ]);
        let route = running.amqp_route();
        assert_eq!(
            (route.queue.as_str(), route.routing_key.as_str()),
            ("protoplex.requests", "kuzzle")
        );
        let started = request(&[
            "loadgen",
            "request",
            "--protocol",
            "amqp",
            "--server",
            "p",
            "--amqp-routing-key",
            "k",
        ]);
        let route = started.amqp_route();
        assert!(route.queue.starts_with("loadgen.requests."), "{route:?}");
        assert_eq!(route.routing_key, "k");
    }

    #[test]
    fn soak_settings() {
        let soak = |args: &[&str]| match Cli::try_parse_from(args).expect("valid").command {
            Command::Soak(soak) => soak.config(),
            other => panic!("{other:?}"),
        };
        let defaults = soak(&["loadgen", "soak", "--protoplex", "p"]);
        assert_eq!(defaults.duration, Duration::from_secs(600));
        assert_eq!(defaults.warmup, Duration::from_secs(90));
        assert_eq!(defaults.churn.len(), 4);
        assert!(defaults.check().is_ok());
        let custom = soak(&[
            "loadgen",
            "soak",
            "--protoplex",
            "p",
            "--churn",
            "amqp,http",
            "--server-env",
            "RUST_LOG=warn,protoplex_amqp=debug",
        ]);
        assert_eq!(
            custom.churn,
            vec![soak::counters::Protocol::Amqp, soak::counters::Protocol::Http]
        );
        assert_eq!(
            custom.server_env,
            vec![("RUST_LOG".to_owned(), "warn,protoplex_amqp=debug".to_owned())]
        );
        assert!(
            soak(&["loadgen", "soak", "--protoplex", "p", "--churn"])
                .churn
                .is_empty()
        );
        assert!(Cli::try_parse_from(["loadgen", "soak", "--protoplex", "p", "--server-env", "=x"]).is_err());
    }

    #[test]
    fn a_server_is_required() {
        assert!(Cli::try_parse_from(["loadgen", "fanout"]).is_err());
        assert!(
            Cli::try_parse_from(["loadgen", "fanout", "--address", "127.0.0.1:7512", "--pid", "1"]).is_ok()
        );
    }
}
