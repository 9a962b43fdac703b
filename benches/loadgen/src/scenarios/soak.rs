//! Soak: mixed load over HTTP, WebSocket, MQTT and AMQP at once for a long,
//! bounded time, watching the server's resident memory and open files for
//! leaks, and every answer and notification for correctness.
//!
//! The server (a protoplex binary) is started here on free loopback ports,
//! with a request queue and routing key of its own on the broker (deleted at
//! the end). Then, for [`SoakConfig::duration`]:
//!
//! - **steady clients**, open the whole run: subscribers on WebSocket, MQTT
//!   and AMQP, each with a filter ([`traffic::Filter`]); one publisher per
//!   protocol at a moderate fixed rate; one client per protocol sending
//!   deliberately bad requests (not JSON, unknown controller);
//! - **churn clients** ([`load`]): connect, subscribe, publish to themselves,
//!   unsubscribe (or not), disconnect, in a loop; HTTP clients on new and
//!   keep-alive connections.
//!
//! The server is sampled (`VmRSS`, entries of `/proc/PID/fd`) after the
//! warm-up (the start), every [`SoakConfig::interval`], and at the end,
//! after the churn stopped and [`SoakConfig::end_settle`]. Each sample is
//! taken with the same long-lived clients open and no churn client: the
//! churn cycles hold the read side of a lock that the sampler takes for
//! writing [`SoakConfig::settle`] before measuring. The run passes when RSS
//! grew less than [`report::MAX_RSS_GROWTH_PERCENT`], the open files did not
//! grow, nothing was lost and nothing but the deliberate errors happened.

pub mod counters;
pub mod delivery;
pub mod load;
pub mod report;
pub mod session;
pub mod traffic;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::counters::Protocol;
use self::delivery::{Delivery, Published, SubscriberLog};
use self::load::Context;
use self::report::{ProtocolRow, Sample, Settings, SoakResult, growth_percent};
use self::session::Session;
use super::request::AMQP_READY;
use super::suite::redact;
use super::{ScenarioError, own_cpu_seconds};
use crate::clients::amqp::{self, AmqpRoute};
use crate::machine::Machine;
use crate::process::{Listen, Server, ServerError, ServerSpec, free_port};

/// How long the last notifications may take once publishing stopped,
/// counted from the last one received.
const DRAIN_QUIET: Duration = Duration::from_secs(3);
/// Longest drain.
const DRAIN_MAX: Duration = Duration::from_secs(20);
/// How long the churn tasks get to finish their cycle once told to stop.
const CHURN_STOP: Duration = Duration::from_secs(30);

/// Settings of a soak.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The protoplex executable.
    pub protoplex: PathBuf,
    /// More arguments for it.
    pub server_args: Vec<String>,
    /// More environment variables for it (after `RUST_LOG=warn` and the AMQP route: they win).
    pub server_env: Vec<(String, String)>,
    /// The broker's URL.
    pub amqp_url: String,
    /// Load time, warm-up included.
    pub duration: Duration,
    /// Load before the start sample.
    pub warmup: Duration,
    /// Time between samples.
    pub interval: Duration,
    /// Time with no churn client open before each sample.
    pub settle: Duration,
    /// Time after the churn stopped before the end sample.
    pub end_settle: Duration,
    /// Steady publishes per second, all protocols together.
    pub rate: f64,
    /// Steady subscribers per subscribing protocol.
    pub subscribers: usize,
    /// Steady message size, bytes.
    pub size: usize,
    /// Pause between a churn client's cycles.
    pub churn_pause: Duration,
    /// The protocols with churn clients (all by default; fewer to find what grows).
    pub churn: Vec<Protocol>,
    /// Time between a protocol's bad requests.
    pub bad_interval: Duration,
    /// Where the server's stdout and stderr go (discarded when `None`).
    pub log: Option<PathBuf>,
    /// Where the server's process id is written once started (for a caller's cleanup).
    pub pid_file: Option<PathBuf>,
    /// Where the server's AMQP request queue name is written before it is declared.
    pub queue_file: Option<PathBuf>,
}

impl SoakConfig {
    /// Why these settings cannot work, if they cannot.
    pub fn check(&self) -> Result<(), ScenarioError> {
        let invalid = |what: &str| Err(ScenarioError::Settings(what.into()));
        if self.warmup + self.settle >= self.duration {
            return invalid("the duration must exceed the warm-up and the settle time");
        }
        if self.interval.is_zero() {
            return invalid("the sampling interval must be positive");
        }
        if self.rate.is_nan() || self.rate <= 0.0 {
            return invalid("the steady rate must be positive");
        }
        if self.subscribers == 0 {
            return invalid("at least one steady subscriber per protocol");
        }
        if self.bad_interval.is_zero() {
            return invalid("the bad-request interval must be positive");
        }
        Ok(())
    }

    fn settings(&self) -> Settings {
        Settings {
            duration_seconds: self.duration.as_secs_f64(),
            warmup_seconds: self.warmup.as_secs_f64(),
            interval_seconds: self.interval.as_secs_f64(),
            settle_seconds: self.settle.as_secs_f64(),
            end_settle_seconds: self.end_settle.as_secs_f64(),
            rate: self.rate,
            subscribers: self.subscribers,
            size: self.size,
            churn_pause_ms: self.churn_pause.as_millis() as u64,
            churn: self.churn.clone(),
            bad_interval_ms: self.bad_interval.as_millis() as u64,
        }
    }
}

/// Runs the soak: starts the server, loads it, samples it, stops it.
pub async fn run(config: &SoakConfig) -> Result<SoakResult, ScenarioError> {
    config.check()?;
    let machine = Machine::current();
    let broker = |what: &str, source| ScenarioError::Client {
        what: format!(
            "{what} at {} (scripts/services.sh starts one)",
            redact(&config.amqp_url)
        ),
        source,
    };
    let amqp_steady = amqp::connect(&config.amqp_url)
        .await
        .map_err(|source| broker("no AMQP broker", source))?;
    let amqp_churn = amqp::connect(&config.amqp_url)
        .await
        .map_err(|source| broker("no AMQP broker", source))?;
    let route = AmqpRoute::unique(&config.amqp_url, "loadgen.soak");
    write_state(config.queue_file.as_ref(), &route.queue);
    amqp::prepare_queue(&route)
        .await
        .map_err(|source| broker(&format!("cannot declare {}", route.queue), source))?;

    let outcome = with_server(config, machine, route.clone(), amqp_steady, amqp_churn).await;
    let deleted = amqp::delete_queue(&route.url, &route.queue).await;
    let mut result = outcome?;
    match deleted {
        Ok(_) => {
            if let Some(path) = &config.queue_file {
                let _ = std::fs::remove_file(path);
            }
        }
        Err(error) => result.notes.push(format!(
            "could not delete the AMQP queue {}: {error}",
            route.queue
        )),
    }
    Ok(result)
}

fn write_state(path: Option<&PathBuf>, text: &str) {
    if let Some(path) = path
        && let Err(error) = std::fs::write(path, format!("{text}\n"))
    {
        eprintln!("loadgen: cannot write {}: {error}", path.display());
    }
}

async fn with_server(
    config: &SoakConfig,
    machine: Machine,
    route: AmqpRoute,
    amqp_steady: lapin::Connection,
    amqp_churn: lapin::Connection,
) -> Result<SoakResult, ScenarioError> {
    let spawn_error = |source| ServerError::Spawn {
        program: config.protoplex.display().to_string(),
        source,
    };
    let mqtt_port = free_port().map_err(spawn_error)?;
    let mut args = vec!["--mqtt-port".to_owned(), mqtt_port.to_string()];
    args.extend(config.server_args.iter().cloned());
    let mut env = vec![("RUST_LOG".to_owned(), "warn".to_owned())];
    env.extend(route.env());
    env.extend(config.server_env.iter().cloned());
    let spec = ServerSpec {
        name: "protoplex".into(),
        program: config.protoplex.clone(),
        args,
        env,
        log: config.log.clone(),
        listen: Listen::Flags,
    };
    let mut server = Server::start(&spec).await?;
    write_state(config.pid_file.as_ref(), &server.pid().to_string());
    let mqtt = SocketAddr::from((Ipv4Addr::LOCALHOST, mqtt_port));
    let ready = async {
        wait_listening(mqtt).await?;
        amqp::wait_consumer(&route, AMQP_READY)
            .await
            .map_err(|source| ScenarioError::Client {
                what: format!("protoplex consuming {}", route.queue),
                source,
            })
    };
    let outcome = match ready.await {
        Ok(()) => {
            let ctx = Arc::new(Context::new(
                server.address(),
                mqtt,
                route,
                amqp_steady,
                amqp_churn,
                config.size,
            ));
            soak(config, machine, &ctx, server.pid()).await
        }
        Err(error) => Err(error),
    };
    let alive = server.is_running();
    server.stop().await;
    if let Some(path) = &config.pid_file {
        let _ = std::fs::remove_file(path);
    }
    let mut result = outcome?;
    if !alive {
        result
            .failures
            .push("the server exited during the run (see its log)".into());
    }
    Ok(result)
}

async fn wait_listening(address: SocketAddr) -> Result<(), ScenarioError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        if Instant::now() >= deadline {
            return Err(ScenarioError::Server(ServerError::NotListening(format!(
                "protoplex's MQTT listener ({address})"
            ))));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The long-lived clients' tasks and the churn tasks, each with its stop token.
struct Tasks {
    steady: Vec<JoinHandle<()>>,
    stop_steady: CancellationToken,
    churn: Vec<JoinHandle<()>>,
    stop_churn: CancellationToken,
}

fn start_tasks(config: &SoakConfig, ctx: &Arc<Context>, published: &Arc<Published>) -> Tasks {
    let stop_steady = CancellationToken::new();
    let stop_churn = CancellationToken::new();
    let mut steady = Vec::new();
    let rate = config.rate / Protocol::ALL.len() as f64;
    for protocol in Protocol::ALL {
        steady.push(tokio::spawn(load::steady_publisher(
            ctx.clone(),
            protocol,
            rate,
            published.clone(),
            stop_steady.clone(),
        )));
        steady.push(tokio::spawn(load::bad_requests(
            ctx.clone(),
            protocol,
            config.bad_interval,
            stop_steady.clone(),
        )));
    }
    let mut churn = Vec::new();
    for &protocol in &config.churn {
        if protocol == Protocol::Http {
            for keep_alive in [false, true] {
                churn.push(tokio::spawn(load::churn_http(
                    ctx.clone(),
                    keep_alive,
                    config.churn_pause,
                    stop_churn.clone(),
                )));
            }
        } else {
            churn.push(tokio::spawn(load::churn_sessions(
                ctx.clone(),
                protocol,
                config.churn_pause,
                stop_churn.clone(),
            )));
        }
    }
    Tasks {
        steady,
        stop_steady,
        churn,
        stop_churn,
    }
}

async fn stop_tasks(tasks: Vec<JoinHandle<()>>, stop: &CancellationToken, patience: Duration) {
    stop.cancel();
    let mut tasks = tasks;
    let joined = tokio::time::timeout(patience, futures_util::future::join_all(tasks.iter_mut())).await;
    if joined.is_err() {
        for task in &tasks {
            task.abort();
        }
    }
}

async fn soak(
    config: &SoakConfig,
    machine: Machine,
    ctx: &Arc<Context>,
    pid: u32,
) -> Result<SoakResult, ScenarioError> {
    let mut subscribers: Vec<(Protocol, Session, Arc<SubscriberLog>)> = Vec::new();
    let mut index = 0;
    for protocol in Protocol::SUBSCRIBING {
        for _ in 0..config.subscribers {
            let (session, log) = load::steady_subscriber(ctx, protocol, index)
                .await
                .map_err(|source| ScenarioError::Client {
                    what: format!("steady {} subscriber {index}", protocol.name()),
                    source,
                })?;
            subscribers.push((protocol, session, log));
            index += 1;
        }
    }
    let published = Arc::new(Published::new());
    let server_before = crate::process::usage(&pid.to_string()).unwrap_or_default();
    let own_before = own_cpu_seconds();
    let started = Instant::now();
    let tasks = start_tasks(config, ctx, &published);
    eprintln!(
        "  [soak] {:.0} s of load, start sample after {:.0} s, one every {:.0} s",
        config.duration.as_secs_f64(),
        config.warmup.as_secs_f64(),
        config.interval.as_secs_f64()
    );

    let mut samples = Vec::new();
    let mut failures = Vec::new();
    let mut fd_kinds_start = BTreeMap::new();
    let end_at = started + config.duration;
    let mut next = started + config.warmup;
    while next + config.settle < end_at {
        tokio::time::sleep_until(next).await;
        if broker_lost(ctx) {
            failures.push(format!(
                "the load generator's connection to the broker broke before {:.0} s: an AMQP outage \
                 (a broker restart, `rabbitmqctl stop_app`?), the run stopped early: run it again",
                started.elapsed().as_secs_f64()
            ));
            break;
        }
        let sample = {
            let _quiet = ctx.gate.write().await;
            tokio::time::sleep(config.settle).await;
            measure(pid, started, ctx)
        };
        match sample {
            Some(sample) => {
                if samples.is_empty() {
                    fd_kinds_start = fd_kinds(pid);
                }
                print_sample("", &sample);
                samples.push(sample);
            }
            None => {
                failures.push(format!(
                    "the server's /proc entry is gone at {:.0} s: it exited",
                    started.elapsed().as_secs_f64()
                ));
                break;
            }
        }
        next += config.interval;
    }
    if failures.is_empty() {
        tokio::time::sleep_until(end_at).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    stop_tasks(tasks.churn, &tasks.stop_churn, CHURN_STOP).await;
    tokio::time::sleep(config.end_settle).await;
    let end = measure(pid, started, ctx);
    let fd_kinds_end = fd_kinds(pid);
    let server_after = crate::process::usage(&pid.to_string()).unwrap_or_default();
    let own_after = own_cpu_seconds();
    match &end {
        Some(sample) => print_sample(" end", sample),
        None if failures.is_empty() => failures.push("the server exited before the end sample".into()),
        None => {}
    }
    stop_tasks(tasks.steady, &tasks.stop_steady, Duration::from_secs(20)).await;

    let published = published.snapshot();
    drain(&subscribers, &published).await;
    let mut protocols = Vec::new();
    let mut all = Delivery::default();
    for protocol in Protocol::ALL {
        let mut delivery = Delivery::default();
        for (_, _, log) in subscribers.iter().filter(|(p, _, _)| *p == protocol) {
            delivery.add(&log.check(&published));
        }
        all.add(&delivery);
        protocols.push((protocol, (protocol != Protocol::Http).then_some(delivery)));
    }
    load::close_subscribers(ctx, subscribers).await;

    let start = samples.first().cloned().unwrap_or_default();
    let end = end.or_else(|| samples.last().cloned()).unwrap_or_default();
    if let Some(last) = samples.last()
        && last.at_seconds != end.at_seconds
    {
        samples.push(end.clone());
    } else if samples.is_empty() {
        samples.push(end.clone());
    }
    let mut result = SoakResult {
        machine,
        settings: config.settings(),
        seconds,
        max_rss_kib: samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
        peak_rss_kib: server_after.peak_rss_kib,
        rss_growth_percent: growth_percent(start.rss_kib, end.rss_kib),
        start,
        end,
        fd_kinds_start,
        fd_kinds_end,
        samples,
        protocols: protocols
            .into_iter()
            .map(|(protocol, delivery)| ProtocolRow {
                protocol,
                totals: ctx.stats.of(protocol).totals(),
                delivery,
            })
            .collect(),
        totals: ctx.stats.totals(),
        delivery: all,
        server_cpu_seconds: server_after.cpu_seconds - server_before.cpu_seconds,
        loadgen_cpu_seconds: own_after - own_before,
        errors: ctx.stats.errors(),
        notes: vec![],
        failures,
    };
    if broker_lost(ctx) {
        result.notes.push(
            "the load generator's own connections to the broker broke during the run: the broker went away \
             (a restart, `rabbitmqctl stop_app`?), and the AMQP errors follow from that: rerun"
                .into(),
        );
    }
    result.evaluate();
    Ok(result)
}

/// Whether one of the load generator's own broker connections broke.
fn broker_lost(ctx: &Context) -> bool {
    [&ctx.amqp, &ctx.amqp_churn]
        .iter()
        .any(|connection| !connection.status().connected())
}

/// Waits until every subscriber got what `published` says it should, or
/// nothing arrived for [`DRAIN_QUIET`], or [`DRAIN_MAX`] passed.
async fn drain(subscribers: &[(Protocol, Session, Arc<SubscriberLog>)], published: &[Vec<bool>]) {
    let expected: u64 = subscribers
        .iter()
        .map(|(_, _, log)| log.expected(published))
        .sum();
    let received = || -> u64 { subscribers.iter().map(|(_, _, log)| log.received()).sum() };
    let started = Instant::now();
    let mut last = received();
    let mut last_change = Instant::now();
    while last < expected && started.elapsed() < DRAIN_MAX && last_change.elapsed() < DRAIN_QUIET {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = received();
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
}

/// The server's memory and open files now, with the counters; `None` if it is gone.
fn measure(pid: u32, started: Instant, ctx: &Context) -> Option<Sample> {
    let usage = crate::process::usage(&pid.to_string()).ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let totals = ctx.stats.totals();
    Some(Sample {
        at_seconds: started.elapsed().as_secs_f64(),
        rss_kib: usage.rss_kib,
        fds,
        requests: totals.requests,
        notifications: totals.notifications,
        failed: totals.failed,
        churn_cycles: totals.churn_cycles,
    })
}

/// The server's open descriptors by kind: `socket`, `pipe`,
/// `anon_inode:[eventpoll]`, or the file's path.
fn fd_kinds(pid: u32) -> BTreeMap<String, u64> {
    let mut kinds = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return kinds;
    };
    for entry in entries.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        let kind = match target.split_once(":[") {
            Some((kind @ ("socket" | "pipe"), _)) => kind.to_owned(),
            _ => target.into_owned(),
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

fn print_sample(label: &str, sample: &Sample) {
    eprintln!(
        "  [soak{label}] {:>4.0}s  RSS {:>8} KiB  fds {:>3}  requests {:>8}  notifications {:>9}  errors {}  churn cycles {}",
        sample.at_seconds,
        sample.rss_kib,
        sample.fds,
        sample.requests,
        sample.notifications,
        sample.failed,
        sample.churn_cycles
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SoakConfig {
        SoakConfig {
            protoplex: "protoplex".into(),
            server_args: vec![],
            server_env: vec![],
            amqp_url: amqp::DEFAULT_URL.into(),
            duration: Duration::from_secs(600),
            warmup: Duration::from_secs(30),
            interval: Duration::from_secs(10),
            settle: Duration::from_secs(2),
            end_settle: Duration::from_secs(5),
            rate: 200.0,
            subscribers: 8,
            size: 256,
            churn_pause: Duration::from_millis(100),
            churn: Protocol::ALL.to_vec(),
            bad_interval: Duration::from_millis(500),
            log: None,
            pid_file: None,
            queue_file: None,
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(config().check().is_ok());
        let mut short = config();
        short.duration = Duration::from_secs(31);
        assert!(short.check().is_err());
        let mut idle = config();
        idle.rate = 0.0;
        assert!(idle.check().is_err());
        assert_eq!(config().settings().churn_pause_ms, 100);
    }

    #[test]
    fn own_descriptors_by_kind() {
        let kinds = fd_kinds(std::process::id());
        assert!(kinds.values().sum::<u64>() > 0, "{kinds:?}");
    }
}
