//! Fan-out: P publishers -> N subscribers over WebSocket or MQTT (QoS 0).
//!
//! Subscribers connect (and, on protoplex, subscribe with filter `{}`), then
//! the publishers send messages of S bytes for T seconds, at a rate or
//! flat-out. Each message carries its publisher, sequence number and send
//! time ([`crate::clients::payload`]); each subscriber checks it got every
//! message of every publisher exactly once and records the latency.
//!
//! Flat-out is closed-loop: a publisher never gets more than `window`
//! messages ahead of the slowest subscriber, so a server's bounded outgoing
//! queues (protoplex's `outgoing_queue`, the baseline's channel,
//! Mosquitto's `max_queued_messages`, 1000) are never overrun by design and
//! a lost message is a real loss, even at MQTT's QoS 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::progress::Progress;
use super::{ScenarioError, Target, keep_error, own_cpu_seconds};
use crate::clients::payload::{self, Marker};
use crate::clients::{Acks, ClientError, Dialect, mqtt, source_address, ws};
use crate::clock;
use crate::results::{FanoutResult, per};
use crate::stats::{DeliveryCheck, Latency, SequenceChecker};

/// How long the last messages may take to arrive once publishing stops,
/// counted from the last delivery seen.
const DRAIN_QUIET: Duration = Duration::from_secs(3);
/// Longest drain, whatever happens.
const DRAIN_MAX: Duration = Duration::from_secs(20);

/// The protocol of the fan-out's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// WebSocket text frames.
    Websocket,
    /// MQTT 3.1.1 at QoS 0 ([`crate::clients::mqtt`]).
    Mqtt,
}

impl Transport {
    /// Its name in results.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::Mqtt => "mqtt",
        }
    }
}

/// A subscriber of either transport.
enum Subscriber {
    Ws(Box<ws::Subscriber>),
    Mqtt(mqtt::Subscriber),
}

impl Subscriber {
    async fn connect(
        transport: Transport,
        server: SocketAddr,
        source: Option<std::net::IpAddr>,
        dialect: Dialect,
    ) -> Result<Self, ClientError> {
        Ok(match transport {
            Transport::Websocket => {
                Subscriber::Ws(Box::new(ws::Subscriber::connect(server, source, dialect).await?))
            }
            Transport::Mqtt => Subscriber::Mqtt(mqtt::Subscriber::connect(server, source, dialect).await?),
        })
    }

    async fn next(&mut self) -> Result<Bytes, ClientError> {
        match self {
            Subscriber::Ws(subscriber) => subscriber.next().await,
            Subscriber::Mqtt(subscriber) => subscriber.next().await,
        }
    }

    async fn close(self) {
        match self {
            Subscriber::Ws(subscriber) => subscriber.close().await,
            Subscriber::Mqtt(subscriber) => subscriber.close().await,
        }
    }
}

/// A publisher of either transport.
enum Publisher {
    Ws(ws::Publisher),
    Mqtt(mqtt::Publisher),
}

impl Publisher {
    async fn connect(
        transport: Transport,
        server: SocketAddr,
        dialect: Dialect,
    ) -> Result<Self, ClientError> {
        Ok(match transport {
            Transport::Websocket => Publisher::Ws(ws::Publisher::connect(server, dialect).await?),
            Transport::Mqtt => Publisher::Mqtt(mqtt::Publisher::connect(server, dialect).await?),
        })
    }

    fn acks(&self) -> &Arc<Acks> {
        match self {
            Publisher::Ws(publisher) => publisher.acks(),
            Publisher::Mqtt(publisher) => publisher.acks(),
        }
    }

    async fn send(&mut self, seq: u64, body: &str) -> Result<(), ClientError> {
        match self {
            Publisher::Ws(publisher) => publisher.send(seq, body).await,
            Publisher::Mqtt(publisher) => publisher.send(seq, body).await,
        }
    }

    async fn finish(self, sent: u64, patience: Duration) -> u64 {
        match self {
            Publisher::Ws(publisher) => publisher.finish(sent, patience).await,
            Publisher::Mqtt(publisher) => publisher.finish(sent, patience).await,
        }
    }
}

/// Settings of one fan-out run.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// The clients' protocol.
    pub transport: Transport,
    /// What the server speaks.
    pub dialect: Dialect,
    /// Publishers.
    pub publishers: usize,
    /// Subscribers.
    pub subscribers: usize,
    /// Published body size, bytes.
    pub size: usize,
    /// Messages per second over all publishers (0: flat-out).
    pub rate: u64,
    /// How long to publish.
    pub duration: Duration,
    /// Messages a publisher may be ahead of the slowest subscriber.
    pub window: u64,
    /// Loopback source addresses to spread the subscribers over.
    pub sources: usize,
    /// Connections opened at once.
    pub connect_concurrency: usize,
}

/// What every task shares.
struct Shared {
    /// Messages received by each subscriber.
    received: Vec<AtomicU64>,
    /// Messages received, all subscribers together.
    delivered: AtomicU64,
    /// Messages published, all publishers together.
    published: AtomicU64,
    /// When the last message was received ([`clock::now_ns`]).
    last_delivery_ns: AtomicU64,
    /// Publishers waiting for the window want a wake-up once `delivered` reaches this.
    wake_at: AtomicU64,
    /// Wakes the waiting publishers.
    wake: Notify,
}

impl Shared {
    fn slowest(&self) -> u64 {
        self.received
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX)
    }
}

/// What a subscriber task returns.
struct SubscriberOutcome {
    checker: SequenceChecker,
    latency: Latency,
    /// Frames without a marker.
    unparsed: u64,
    error: Option<String>,
}

/// What a publisher task returns.
struct PublisherOutcome {
    sent: u64,
    publisher: Publisher,
    error: Option<String>,
}

/// Runs the fan-out against `target`.
pub async fn run(config: &FanoutConfig, target: &Target) -> Result<FanoutResult, ScenarioError> {
    if config.subscribers == 0 || config.publishers == 0 {
        return Err(ScenarioError::Settings(
            "at least one publisher and one subscriber".into(),
        ));
    }
    let label = format!(
        "fan-out {} {} {}->{}",
        config.transport.name(),
        target.name,
        config.publishers,
        config.subscribers
    );
    let shared = Arc::new(Shared {
        received: (0..config.subscribers).map(|_| AtomicU64::new(0)).collect(),
        delivered: AtomicU64::new(0),
        published: AtomicU64::new(0),
        last_delivery_ns: AtomicU64::new(0),
        wake_at: AtomicU64::new(u64::MAX),
        wake: Notify::new(),
    });
    let stop = CancellationToken::new();

    let subscribers = connect_subscribers(config, target.address).await?;
    let subscriber_tasks: Vec<_> = subscribers
        .into_iter()
        .enumerate()
        .map(|(index, subscriber)| {
            tokio::spawn(subscribe_loop(
                subscriber,
                index,
                config.publishers,
                shared.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut publishers = Vec::with_capacity(config.publishers);
    for _ in 0..config.publishers {
        let publisher = Publisher::connect(config.transport, target.address, config.dialect)
            .await
            .map_err(|source| ScenarioError::Client {
                what: "publisher connection".into(),
                source,
            })?;
        publishers.push(publisher);
    }

    let progress = {
        let shared = shared.clone();
        Progress::start(label, move || {
            format!(
                "published {} delivered {}",
                shared.published.load(Ordering::Relaxed),
                shared.delivered.load(Ordering::Relaxed)
            )
        })
    };
    let server_before = target.usage();
    let own_before = own_cpu_seconds();
    let started = Instant::now();
    let started_ns = clock::now_ns();
    let deadline = started + config.duration;
    let per_publisher_rate = config.rate as f64 / config.publishers as f64;
    let publisher_tasks: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(id, publisher)| {
            let config = config.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                publish_loop(
                    publisher,
                    id as u64,
                    &config,
                    per_publisher_rate,
                    &shared,
                    deadline,
                )
                .await
            })
        })
        .collect();

    let mut errors = Vec::new();
    let mut sent = Vec::with_capacity(config.publishers);
    let mut finished_publishers = Vec::with_capacity(config.publishers);
    for task in publisher_tasks {
        match task.await {
            Ok(outcome) => {
                sent.push(outcome.sent);
                if let Some(error) = outcome.error {
                    keep_error(&mut errors, format!("publisher: {error}"));
                }
                finished_publishers.push(outcome.publisher);
            }
            Err(error) => {
                sent.push(0);
                keep_error(&mut errors, format!("publisher task: {error}"));
            }
        }
    }
    let publish_seconds = started.elapsed().as_secs_f64();
    let expected: u64 = sent.iter().sum();
    drain(&shared, expected).await;
    let server_after = target.usage();
    let own_after = own_cpu_seconds();
    drop(progress);

    let mut missing_answers = 0;
    let mut failed_answers = 0;
    for (publisher, count) in finished_publishers.into_iter().zip(&sent) {
        let acks = publisher.acks().clone();
        missing_answers += publisher.finish(*count, DRAIN_QUIET).await;
        failed_answers += acks.failed.load(Ordering::Relaxed);
        if let Some(failure) = acks.first_failure.lock().await.take() {
            keep_error(&mut errors, format!("publisher answer: {failure}"));
        }
    }

    stop.cancel();
    let mut latency = Latency::new();
    let mut delivery = DeliveryCheck::default();
    let mut unparsed = 0;
    for task in subscriber_tasks {
        match task.await {
            Ok(outcome) => {
                latency.merge(&outcome.latency);
                delivery.add(outcome.checker.check(&sent));
                unparsed += outcome.unparsed;
                if let Some(error) = outcome.error {
                    keep_error(&mut errors, format!("subscriber: {error}"));
                }
            }
            Err(error) => keep_error(&mut errors, format!("subscriber task: {error}")),
        }
    }
    if unparsed > 0 {
        keep_error(&mut errors, format!("{unparsed} frames without a marker"));
    }

    let delivered = shared.delivered.load(Ordering::Relaxed);
    let last = shared.last_delivery_ns.load(Ordering::Relaxed);
    let elapsed_seconds = last.saturating_sub(started_ns) as f64 / 1e9;
    Ok(FanoutResult {
        server: target.name.clone(),
        dialect: config.dialect,
        transport: config.transport.name().into(),
        publishers: config.publishers,
        subscribers: config.subscribers,
        size: config.size,
        rate: config.rate,
        window: config.window,
        publish_seconds,
        elapsed_seconds,
        published: expected,
        delivered,
        published_per_second: per(expected as f64, publish_seconds),
        delivered_per_second: per(delivered as f64, elapsed_seconds),
        latency: latency.summary(),
        delivery,
        missing_answers,
        failed_answers,
        server_cpu_seconds: server_after.cpu_seconds - server_before.cpu_seconds,
        server_peak_rss_kib: server_after.peak_rss_kib,
        loadgen_cpu_seconds: own_after - own_before,
        errors,
    })
}

/// Connects every subscriber, `connect_concurrency` at a time.
async fn connect_subscribers(
    config: &FanoutConfig,
    server: SocketAddr,
) -> Result<Vec<Subscriber>, ScenarioError> {
    let dialect = config.dialect;
    let sources = config.sources;
    let transport = config.transport;
    let results: Vec<_> = futures_util::stream::iter(0..config.subscribers)
        .map(|index| Subscriber::connect(transport, server, source_address(index, sources), dialect))
        .buffered(config.connect_concurrency.max(1))
        .collect()
        .await;
    results
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ScenarioError::Client {
            what: "subscriber connection".into(),
            source,
        })
}

async fn subscribe_loop(
    mut subscriber: Subscriber,
    index: usize,
    publishers: usize,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> SubscriberOutcome {
    let mut outcome = SubscriberOutcome {
        checker: SequenceChecker::new(publishers),
        latency: Latency::new(),
        unparsed: 0,
        error: None,
    };
    loop {
        let frame = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            frame = subscriber.next() => frame,
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                outcome.error = Some(error.to_string());
                break;
            }
        };
        let Some(Marker {
            publisher,
            seq,
            sent_ns,
        }) = payload::find(&frame)
        else {
            outcome.unparsed += 1;
            continue;
        };
        if outcome.checker.record(publisher, seq) {
            outcome.latency.record_us(clock::micros_since(sent_ns));
        }
        shared.received[index].fetch_add(1, Ordering::Relaxed);
        shared
            .last_delivery_ns
            .fetch_max(clock::now_ns(), Ordering::Relaxed);
        let delivered = shared.delivered.fetch_add(1, Ordering::Relaxed) + 1;
        if delivered >= shared.wake_at.load(Ordering::Relaxed) {
            shared.wake_at.store(u64::MAX, Ordering::Relaxed);
            shared.wake.notify_waiters();
        }
    }
    subscriber.close().await;
    outcome
}

async fn publish_loop(
    mut publisher: Publisher,
    id: u64,
    config: &FanoutConfig,
    rate: f64,
    shared: &Shared,
    deadline: Instant,
) -> PublisherOutcome {
    let started = Instant::now();
    let mut seq = 0u64;
    let mut slowest = 0u64;
    let mut error = None;
    while Instant::now() < deadline {
        if rate > 0.0 {
            let due = started + Duration::from_secs_f64(seq as f64 / rate);
            if due > deadline {
                break;
            }
            tokio::time::sleep_until(due).await;
        }
        if !wait_window(shared, config, &mut slowest, deadline).await {
            break;
        }
        let marker = Marker {
            publisher: id,
            seq,
            sent_ns: clock::now_ns(),
        };
        if let Err(failure) = publisher.send(seq, &payload::body(marker, config.size)).await {
            error = Some(failure.to_string());
            break;
        }
        seq += 1;
        shared.published.fetch_add(1, Ordering::Relaxed);
    }
    PublisherOutcome {
        sent: seq,
        publisher,
        error,
    }
}

/// Waits until the slowest subscriber is less than `window` messages behind;
/// false if the deadline passed first.
async fn wait_window(shared: &Shared, config: &FanoutConfig, slowest: &mut u64, deadline: Instant) -> bool {
    loop {
        let published = shared.published.load(Ordering::Relaxed);
        if published < slowest.saturating_add(config.window) {
            return true;
        }
        *slowest = shared.slowest();
        if published < slowest.saturating_add(config.window) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        // Sleep until the subscribers together caught up half the window, or
        // 1 ms (the slowest may lag while the others are ahead: poll it).
        let target = (config.subscribers as u64).saturating_mul(published.saturating_sub(config.window / 2));
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if shared.delivered.load(Ordering::Relaxed) < target {
            shared.wake_at.store(target, Ordering::Relaxed);
            if shared.delivered.load(Ordering::Relaxed) >= target {
                continue;
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(1), notified).await;
    }
}

/// Waits until every subscriber got `expected` messages, or nothing arrived
/// for [`DRAIN_QUIET`], or [`DRAIN_MAX`] passed.
async fn drain(shared: &Shared, expected: u64) {
    let started = Instant::now();
    let mut last_count = shared.delivered.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    while shared.slowest() < expected && started.elapsed() < DRAIN_MAX {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let count = shared.delivered.load(Ordering::Relaxed);
        if count != last_count {
            last_count = count;
            last_change = Instant::now();
        } else if last_change.elapsed() >= DRAIN_QUIET {
            break;
        }
    }
}
