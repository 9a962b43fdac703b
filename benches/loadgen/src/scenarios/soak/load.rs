//! The soak's clients at work: steady subscribers and publishers, churn
//! clients, deliberately bad requests. Every answer is checked against the
//! status it should have; anything else is counted as an error.
//!
//! Churn cycles run under the read side of [`Context::gate`]: the sampler
//! takes the write side to measure the server with no churn client open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use lapin::Connection;
use serde_json::{Value, json};
use tokio::sync::RwLock;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::counters::{Protocol, Stats};
use super::delivery::{ChurnInbox, Published, SubscriberLog, Unsolicited};
use super::session::{Inbox, Session};
use super::traffic::{self, CHURN, CHURN_BASE, Filter, INVALID_JSON, STEADY};
use crate::clients::amqp::AmqpRoute;
use crate::clients::http::HttpClient;
use crate::clients::payload::Marker;
use crate::clients::ws::PATIENCE;
use crate::clients::{ClientError, INDEX};
use crate::clock;

/// Messages a churn client publishes to itself in a cycle.
pub const CHURN_MESSAGES: u64 = 3;
/// Requests of a keep-alive HTTP churn client before it closes.
pub const HTTP_KEEP_ALIVE_REQUESTS: u64 = 10;

/// What every client task shares.
pub struct Context {
    /// The HTTP and WebSocket port.
    pub http: SocketAddr,
    /// The MQTT port.
    pub mqtt: SocketAddr,
    /// The server's AMQP route.
    pub route: AmqpRoute,
    /// The broker connection of the long-lived AMQP clients.
    pub amqp: Connection,
    /// The broker connection of the AMQP churn clients.
    pub amqp_churn: Connection,
    /// The counters.
    pub stats: Arc<Stats>,
    /// Held (read) by each churn cycle; taken (write) to sample with no churn client open.
    pub gate: RwLock<()>,
    /// Steady message size, bytes.
    pub size: usize,
    churn_ids: AtomicU64,
}

/// How a request went wrong (already counted and kept as an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Answered with another status: the client is still usable.
    Answer,
    /// No answer: the client may be broken.
    Transport,
}

impl Context {
    /// A context; nothing connected yet but the broker.
    pub fn new(
        http: SocketAddr,
        mqtt: SocketAddr,
        route: AmqpRoute,
        amqp: Connection,
        amqp_churn: Connection,
        size: usize,
    ) -> Self {
        Self {
            http,
            mqtt,
            route,
            amqp,
            amqp_churn,
            stats: Arc::new(Stats::new()),
            gate: RwLock::new(()),
            size,
            churn_ids: AtomicU64::new(0),
        }
    }

    /// A session of `protocol` (not HTTP); churn AMQP sessions use their own broker connection.
    pub async fn session(
        &self,
        protocol: Protocol,
        inbox: Arc<dyn Inbox>,
        churn: bool,
    ) -> Result<Session, ClientError> {
        match protocol {
            Protocol::Websocket => Session::websocket(self.http, inbox).await,
            Protocol::Mqtt => Session::mqtt(self.mqtt, inbox).await,
            Protocol::Amqp => {
                let connection = if churn { &self.amqp_churn } else { &self.amqp };
                Session::amqp(connection, &self.route, inbox).await
            }
            Protocol::Http => Err(ClientError::Unexpected("HTTP has no sessions".into())),
        }
    }

    /// Counts `result`: the answer if its status is `expected`, else an error.
    fn expect(
        &self,
        protocol: Protocol,
        what: &str,
        result: Result<Value, ClientError>,
        expected: u64,
    ) -> Result<Value, Failure> {
        match result {
            Ok(answer) if traffic::status(&answer) == expected => {
                self.stats.ok(protocol);
                Ok(answer)
            }
            Ok(answer) => {
                let text: String = answer.to_string().chars().take(300).collect();
                self.stats.error(
                    protocol,
                    format!(
                        "{what}: status {} instead of {expected}: {text}",
                        traffic::status(&answer)
                    ),
                );
                Err(Failure::Answer)
            }
            Err(error) => {
                self.stats.error(protocol, format!("{what}: {error}"));
                Err(Failure::Transport)
            }
        }
    }

    /// Reports the stray frames a session got, if any.
    fn check_strays(&self, protocol: Protocol, what: &str, session: &Session) {
        let (count, samples) = session.strays();
        if count > 0 {
            self.stats.error(
                protocol,
                format!("{what}: {count} frames neither notification nor awaited answer, e.g. {samples:?}"),
            );
        }
    }
}

/// One HTTP request; the answer's body, its `status` the HTTP status.
async fn http_request(
    client: &mut HttpClient,
    method: Method,
    path: &str,
    body: impl Into<Bytes>,
) -> Result<Value, ClientError> {
    let (status, answer) = client.send(method, path, body.into()).await?;
    let mut value = serde_json::from_slice::<Value>(&answer).unwrap_or_else(|_| json!({}));
    match value.as_object_mut() {
        Some(object) => {
            object.insert("status".into(), status.into());
        }
        None => value = json!({ "status": status }),
    }
    Ok(value)
}

/// A long-lived client of any protocol.
enum Client {
    Http(HttpClient),
    Kuzzle(Session),
}

impl Client {
    async fn connect(ctx: &Context, protocol: Protocol, inbox: Arc<dyn Inbox>) -> Result<Self, ClientError> {
        Ok(match protocol {
            Protocol::Http => Client::Http(HttpClient::connect(ctx.http).await?),
            _ => Client::Kuzzle(ctx.session(protocol, inbox, false).await?),
        })
    }

    async fn publish(&mut self, collection: &str, body: String) -> Result<Value, ClientError> {
        match self {
            Client::Http(client) => {
                let path = format!("/{INDEX}/{collection}/_publish");
                http_request(client, Method::POST, &path, body).await
            }
            Client::Kuzzle(session) => {
                let id = session.request_id();
                session
                    .request(&id, traffic::publish(&id, collection, &body))
                    .await
            }
        }
    }

    async fn close(self, ctx: &Context, protocol: Protocol, what: &str) {
        if let Client::Kuzzle(session) = self {
            if let Some(reason) = session.ended() {
                ctx.stats.error(protocol, format!("{what}: {reason}"));
            }
            ctx.check_strays(protocol, what, &session);
            session.close().await;
        }
    }
}

/// A steady subscriber of `protocol`, subscribed with the filter of `index`.
pub async fn steady_subscriber(
    ctx: &Context,
    protocol: Protocol,
    index: usize,
) -> Result<(Session, Arc<SubscriberLog>), ClientError> {
    let log = SubscriberLog::new(protocol, Filter::of_subscriber(index), ctx.stats.clone());
    let session = ctx.session(protocol, log.clone(), false).await?;
    let id = session.request_id();
    let request = traffic::subscribe(&id, STEADY, &log.filter().to_json());
    let answer = session.request(&id, request).await;
    match ctx.expect(protocol, "steady subscribe", answer, 200) {
        Ok(_) => Ok((session, log)),
        Err(_) => Err(ClientError::Unexpected(format!(
            "{} subscriber {index} could not subscribe",
            protocol.name()
        ))),
    }
}

/// Publishes steady messages as publisher `protocol.index()`, `rate` per
/// second, one at a time, until `stop`; reconnects after a transport error.
pub async fn steady_publisher(
    ctx: Arc<Context>,
    protocol: Protocol,
    rate: f64,
    published: Arc<Published>,
    stop: CancellationToken,
) {
    let id = protocol.index() as u64;
    let what = format!("steady {} publisher", protocol.name());
    let inbox: Arc<dyn Inbox> = Unsolicited::new(protocol, ctx.stats.clone());
    let mut client: Option<Client> = None;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.01)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let Some(current) = reconnected(&mut client, &ctx, protocol, &inbox, &what).await else {
            continue;
        };
        let marker = Marker {
            publisher: id,
            seq,
            sent_ns: clock::now_ns(),
        };
        let answer = current
            .publish(STEADY, traffic::steady_body(marker, ctx.size))
            .await;
        let outcome = ctx.expect(protocol, &format!("{what}, message {seq}"), answer, 200);
        published.record(id, outcome.is_ok());
        seq += 1;
        if outcome == Err(Failure::Transport)
            && let Some(broken) = client.take()
        {
            broken.close(&ctx, protocol, &what).await;
        }
    }
    if let Some(client) = client {
        client.close(&ctx, protocol, &what).await;
    }
}

/// The long-lived client, connected again when it is gone (`None`, the error
/// counted, when it cannot be).
async fn reconnected<'a>(
    client: &'a mut Option<Client>,
    ctx: &Context,
    protocol: Protocol,
    inbox: &Arc<dyn Inbox>,
    what: &str,
) -> Option<&'a mut Client> {
    if client.is_none() {
        match Client::connect(ctx, protocol, inbox.clone()).await {
            Ok(connected) => *client = Some(connected),
            Err(error) => {
                ctx.stats.error(protocol, format!("{what} connection: {error}"));
                return None;
            }
        }
    }
    client.as_mut()
}

/// Sends a deliberately bad request every `interval` until `stop`: not JSON
/// (400), an unknown controller (404), over HTTP also an unknown URL (404).
pub async fn bad_requests(
    ctx: Arc<Context>,
    protocol: Protocol,
    interval: Duration,
    stop: CancellationToken,
) {
    let what = format!("bad-request {} client", protocol.name());
    let inbox: Arc<dyn Inbox> = Unsolicited::new(protocol, ctx.stats.clone());
    let mut client: Option<Client> = None;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut round = 0u64;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let Some(current) = reconnected(&mut client, &ctx, protocol, &inbox, &what).await else {
            continue;
        };
        let (label, answer, expected) = match current {
            Client::Http(http) => match round % 3 {
                0 => (
                    "invalid JSON",
                    http_request(http, Method::POST, "/_query", INVALID_JSON).await,
                    400,
                ),
                1 => (
                    "unknown controller",
                    http_request(http, Method::POST, "/_query", traffic::unknown_controller("bad")).await,
                    404,
                ),
                _ => (
                    "unknown URL",
                    http_request(http, Method::GET, "/soak/nowhere/x/y/z", Bytes::new()).await,
                    404,
                ),
            },
            Client::Kuzzle(session) => match round % 2 {
                0 => (
                    "invalid JSON",
                    session.request("", INVALID_JSON.to_owned()).await,
                    400,
                ),
                _ => {
                    let id = session.request_id();
                    (
                        "unknown controller",
                        session.request(&id, traffic::unknown_controller(&id)).await,
                        404,
                    )
                }
            },
        };
        round += 1;
        match ctx.expect(protocol, &format!("{what}, {label}"), answer, expected) {
            Ok(_) => {
                ctx.stats.of(protocol).bad.fetch_add(1, Ordering::Relaxed);
            }
            Err(Failure::Answer) => {}
            Err(Failure::Transport) => {
                if let Some(broken) = client.take() {
                    broken.close(&ctx, protocol, &what).await;
                }
            }
        }
    }
    if let Some(client) = client {
        client.close(&ctx, protocol, &what).await;
    }
}

/// Churn over WebSocket, MQTT or AMQP until `stop`, `pause` between cycles:
/// connect (AMQP: a new reply queue), subscribe to the client's own messages,
/// publish [`CHURN_MESSAGES`] of them and get their notifications,
/// unsubscribe (every other cycle: the disconnection has to clean up), close.
pub async fn churn_sessions(ctx: Arc<Context>, protocol: Protocol, pause: Duration, stop: CancellationToken) {
    loop {
        {
            let _cycle = tokio::select! {
                () = stop.cancelled() => break,
                guard = ctx.gate.read() => guard,
            };
            let id = CHURN_BASE + ctx.churn_ids.fetch_add(1, Ordering::Relaxed);
            let ok = churn_cycle(&ctx, protocol, id).await;
            let counter = if ok {
                &ctx.stats.of(protocol).churn_cycles
            } else {
                &ctx.stats.of(protocol).churn_failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

async fn churn_cycle(ctx: &Context, protocol: Protocol, id: u64) -> bool {
    let what = format!("churn {} client {}", protocol.name(), id - CHURN_BASE);
    let inbox = ChurnInbox::new(id, protocol, ctx.stats.clone());
    let session = match ctx.session(protocol, inbox.clone(), true).await {
        Ok(session) => session,
        Err(error) => {
            ctx.stats.error(protocol, format!("{what} connection: {error}"));
            return false;
        }
    };
    let mut ok = churn_exchange(ctx, protocol, &session, &inbox, id, &what).await;
    if let Some(reason) = session.ended() {
        ctx.stats.error(protocol, format!("{what}: {reason}"));
        ok = false;
    }
    ctx.check_strays(protocol, &what, &session);
    session.close().await;
    let (received, unexpected) = (inbox.received(), inbox.unexpected());
    if received > CHURN_MESSAGES || unexpected > 0 {
        ctx.stats.error(
            protocol,
            format!("{what}: {received} of its own notifications for {CHURN_MESSAGES} messages, {unexpected} of others"),
        );
        ok = false;
    }
    ok
}

async fn churn_exchange(
    ctx: &Context,
    protocol: Protocol,
    session: &Session,
    inbox: &ChurnInbox,
    id: u64,
    what: &str,
) -> bool {
    let request_id = session.request_id();
    let subscribe = traffic::subscribe(&request_id, CHURN, &traffic::churn_filter(id));
    let answer = session.request(&request_id, subscribe).await;
    let Ok(answer) = ctx.expect(protocol, &format!("{what} subscribe"), answer, 200) else {
        return false;
    };
    let Some(room_id) = traffic::room_id(&answer).map(str::to_owned) else {
        ctx.stats.error(
            protocol,
            format!("{what}: subscribe answer without roomId: {answer}"),
        );
        return false;
    };
    for seq in 0..CHURN_MESSAGES {
        let request_id = session.request_id();
        let body = traffic::churn_body(id, seq, clock::now_ns());
        let answer = session
            .request(&request_id, traffic::publish(&request_id, CHURN, &body))
            .await;
        if ctx
            .expect(protocol, &format!("{what} publish"), answer, 200)
            .is_err()
        {
            return false;
        }
    }
    let received = inbox.wait(CHURN_MESSAGES, PATIENCE).await;
    if received < CHURN_MESSAGES {
        let missing = CHURN_MESSAGES - received;
        ctx.stats
            .of(protocol)
            .churn_lost
            .fetch_add(missing, Ordering::Relaxed);
        ctx.stats.error(
            protocol,
            format!("{what}: {missing} of its {CHURN_MESSAGES} notifications never came"),
        );
        return false;
    }
    if id.is_multiple_of(2) {
        let request_id = session.request_id();
        let answer = session
            .request(&request_id, traffic::unsubscribe(&request_id, &room_id))
            .await;
        if ctx
            .expect(protocol, &format!("{what} unsubscribe"), answer, 200)
            .is_err()
        {
            return false;
        }
    }
    true
}

/// HTTP churn until `stop`, `pause` between cycles: a new connection for one
/// request, or (`keep_alive`) for [`HTTP_KEEP_ALIVE_REQUESTS`]; then closed.
/// Requests alternate `server:now` and a publish nobody subscribed to.
pub async fn churn_http(ctx: Arc<Context>, keep_alive: bool, pause: Duration, stop: CancellationToken) {
    let protocol = Protocol::Http;
    let what = if keep_alive {
        "churn HTTP keep-alive client"
    } else {
        "churn HTTP one-request client"
    };
    let requests = if keep_alive { HTTP_KEEP_ALIVE_REQUESTS } else { 1 };
    let mut round = 0u64;
    loop {
        {
            let _cycle = tokio::select! {
                () = stop.cancelled() => break,
                guard = ctx.gate.read() => guard,
            };
            let ok = match HttpClient::connect(ctx.http).await {
                Ok(mut client) => {
                    let mut ok = true;
                    for _ in 0..requests {
                        let answer = if round.is_multiple_of(2) {
                            http_request(&mut client, Method::GET, "/_now", Bytes::new()).await
                        } else {
                            let path = format!("/{INDEX}/{CHURN}/_publish");
                            http_request(&mut client, Method::POST, &path, r#"{"churn":"http"}"#).await
                        };
                        round += 1;
                        if ctx.expect(protocol, what, answer, 200).is_err() {
                            ok = false;
                            break;
                        }
                    }
                    ok
                }
                Err(error) => {
                    ctx.stats.error(protocol, format!("{what} connection: {error}"));
                    false
                }
            };
            let counter = if ok {
                &ctx.stats.of(protocol).churn_cycles
            } else {
                &ctx.stats.of(protocol).churn_failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Closes the steady subscribers, reporting those whose connection ended
/// early and the stray frames they got.
pub async fn close_subscribers(ctx: &Context, subscribers: Vec<(Protocol, Session, Arc<SubscriberLog>)>) {
    let closing = subscribers.into_iter().map(|(protocol, session, _)| async move {
        let what = format!("steady {} subscriber", protocol.name());
        if let Some(reason) = session.ended() {
            ctx.stats.error(protocol, format!("{what}: {reason}"));
        }
        ctx.check_strays(protocol, &what, &session);
        session.close().await;
    });
    futures_util::future::join_all(closing).await;
}
