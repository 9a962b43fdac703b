//! Request/response: C concurrent clients, each sending its next request as
//! soon as the previous one is answered, for T seconds: over HTTP, WebSocket,
//! or AMQP through a broker (each client its own connection and reply queue,
//! the server's request queue prepared before and waited for: see
//! [`crate::clients::amqp`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::progress::Progress;
use super::{ScenarioError, Target, keep_error, own_cpu_seconds};
use crate::clients::amqp::{self, AmqpRoute};
use crate::clients::http::HttpClient;
use crate::clients::payload::{self, Marker};
use crate::clients::ws::{self, Requester};
use crate::clients::{COLLECTION, ClientError, Dialect, INDEX};
use crate::clock;
use crate::results::{RequestResult, per};
use crate::stats::Latency;

/// The protocol the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum RequestProtocol {
    /// HTTP/1.1, one keep-alive connection per client.
    Http,
    /// WebSocket, one connection per client (protoplex only).
    Websocket,
    /// AMQP 0-9-1 through a broker, one connection and reply queue per client.
    Amqp,
}

/// The request sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Action {
    /// `server:now` (`GET /_now`).
    Now,
    /// `realtime:publish` (`POST /bench/fanout/_publish`) of an S-byte body.
    Publish,
}

impl RequestProtocol {
    /// Its name in results.
    pub fn name(self) -> &'static str {
        match self {
            RequestProtocol::Http => "http",
            RequestProtocol::Websocket => "websocket",
            RequestProtocol::Amqp => "amqp",
        }
    }
}

impl Action {
    /// The Kuzzle name, `controller:action`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Now => "server:now",
            Action::Publish => "realtime:publish",
        }
    }
}

/// Settings of one request/response run.
#[derive(Debug, Clone)]
pub struct RequestConfig {
    /// What the server speaks.
    pub dialect: Dialect,
    /// Protocol of the clients.
    pub protocol: RequestProtocol,
    /// Request sent.
    pub action: Action,
    /// Concurrent clients.
    pub clients: usize,
    /// Body size of a publish, bytes.
    pub size: usize,
    /// How long to run.
    pub duration: Duration,
    /// AMQP: the broker and the server's request queue (required for [`RequestProtocol::Amqp`]).
    pub amqp: Option<AmqpRoute>,
}

/// How long a server may take to consume its AMQP request queue once started.
pub const AMQP_READY: Duration = Duration::from_secs(20);

/// What a client task returns.
#[derive(Default)]
struct ClientOutcome {
    latency: Latency,
    failed: u64,
    errors: Vec<String>,
}

/// Runs the clients against `target`.
pub async fn run(config: &RequestConfig, target: &Target) -> Result<RequestResult, ScenarioError> {
    if config.clients == 0 {
        return Err(ScenarioError::Settings("at least one client".into()));
    }
    if config.protocol == RequestProtocol::Websocket && config.dialect == Dialect::Raw {
        return Err(ScenarioError::Settings(
            "the WebSocket baseline broadcasts: no request/response".into(),
        ));
    }
    if config.protocol == RequestProtocol::Amqp {
        let route = config
            .amqp
            .as_ref()
            .ok_or_else(|| ScenarioError::Settings("AMQP without a broker route".into()))?;
        amqp::wait_consumer(route, AMQP_READY)
            .await
            .map_err(|source| ScenarioError::Client {
                what: format!("{} consuming {}", target.name, route.queue),
                source,
            })?;
    }
    let mut clients = Vec::with_capacity(config.clients);
    for _ in 0..config.clients {
        let client = Client::connect(config, target)
            .await
            .map_err(|source| ScenarioError::Client {
                what: "request client connection".into(),
                source,
            })?;
        clients.push(client);
    }
    let answered = Arc::new(AtomicU64::new(0));
    let progress = {
        let answered = answered.clone();
        Progress::start(
            format!(
                "{} {} {} x{}",
                target.name,
                config.protocol.name(),
                config.action.name(),
                config.clients
            ),
            move || format!("answered {}", answered.load(Ordering::Relaxed)),
        )
    };
    let server_before = target.usage();
    let own_before = own_cpu_seconds();
    let started = Instant::now();
    let deadline = started + config.duration;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let config = config.clone();
            let answered = answered.clone();
            tokio::spawn(client_loop(client, config, deadline, answered))
        })
        .collect();
    let mut latency = Latency::new();
    let mut failed = 0;
    let mut errors = Vec::new();
    let mut finished = Vec::new();
    for task in tasks {
        match task.await {
            Ok((outcome, client)) => {
                finished.push(client);
                latency.merge(&outcome.latency);
                failed += outcome.failed;
                for error in outcome.errors {
                    keep_error(&mut errors, error);
                }
            }
            Err(error) => keep_error(&mut errors, format!("client task: {error}")),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let server_after = target.usage();
    let own_after = own_cpu_seconds();
    drop(progress);
    futures_util::future::join_all(finished.into_iter().map(Client::close)).await;
    Ok(RequestResult {
        server: target.name.clone(),
        dialect: config.dialect,
        protocol: config.protocol.name().into(),
        action: config.action.name().into(),
        clients: config.clients,
        size: config.size,
        seconds,
        requests: latency.len(),
        failed,
        requests_per_second: per(latency.len() as f64, seconds),
        latency: latency.summary(),
        server_cpu_seconds: server_after.cpu_seconds - server_before.cpu_seconds,
        server_peak_rss_kib: server_after.peak_rss_kib,
        loadgen_cpu_seconds: own_after - own_before,
        errors,
    })
}

/// A client of any protocol.
enum Client {
    Http(HttpClient),
    WebSocket(Box<Requester>),
    Amqp(Box<amqp::Requester>),
}

impl Client {
    async fn connect(config: &RequestConfig, target: &Target) -> Result<Self, ClientError> {
        Ok(match config.protocol {
            RequestProtocol::Http => Client::Http(HttpClient::connect(target.address).await?),
            RequestProtocol::Websocket => {
                Client::WebSocket(Box::new(Requester::connect(target.address).await?))
            }
            RequestProtocol::Amqp => {
                let route = config
                    .amqp
                    .as_ref()
                    .ok_or_else(|| ClientError::Unexpected("AMQP without a broker route".into()))?;
                Client::Amqp(Box::new(amqp::Requester::connect(route, config.dialect).await?))
            }
        })
    }

    /// Closes what needs closing (AMQP: the reply queue and the connection).
    async fn close(self) {
        if let Client::Amqp(client) = self {
            client.close().await;
        }
    }

    /// Sends one request; an error unless it is answered with status 200.
    async fn request(&mut self, action: Action, size: usize, seq: u64) -> Result<(), ClientError> {
        let body = || {
            payload::body(
                Marker {
                    publisher: 0,
                    seq,
                    sent_ns: clock::now_ns(),
                },
                size,
            )
        };
        match self {
            Client::Http(client) => {
                let (method, path, payload) = match action {
                    Action::Now => (Method::GET, "/_now".to_owned(), Bytes::new()),
                    Action::Publish => (
                        Method::POST,
                        format!("/{INDEX}/{COLLECTION}/_publish"),
                        Bytes::from(body()),
                    ),
                };
                let (status, answer) = client.send(method, &path, payload).await?;
                if status == 200 {
                    Ok(())
                } else {
                    Err(ClientError::Unexpected(format!(
                        "status {status}: {}",
                        String::from_utf8_lossy(&answer[..answer.len().min(300)])
                    )))
                }
            }
            Client::WebSocket(client) => match action {
                Action::Now => client.request(ws::now_request).await,
                Action::Publish => {
                    let body = body();
                    client.request(|id| ws::publish_request(id, &body)).await
                }
            },
            Client::Amqp(client) => match action {
                Action::Now => client.request(ws::now_request).await,
                Action::Publish => {
                    let body = body();
                    client.request(|id| ws::publish_request(id, &body)).await
                }
            },
        }
    }
}

async fn client_loop(
    mut client: Client,
    config: RequestConfig,
    deadline: Instant,
    answered: Arc<AtomicU64>,
) -> (ClientOutcome, Client) {
    let mut outcome = ClientOutcome::default();
    let mut seq = 0;
    while Instant::now() < deadline {
        let sent = Instant::now();
        match client.request(config.action, config.size, seq).await {
            Ok(()) => {
                outcome.latency.record_us(sent.elapsed().as_micros() as u64);
                answered.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                outcome.failed += 1;
                // An answer with another status leaves the connection usable; nothing else does.
                let fatal = !matches!(error, ClientError::Unexpected(_));
                keep_error(&mut outcome.errors, error);
                if fatal {
                    break;
                }
            }
        }
        seq += 1;
    }
    (outcome, client)
}
