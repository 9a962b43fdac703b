//! RabbitMQ stopped (`rabbitmqctl stop_app`) and started again while AMQP
//! clients load the proxy (issue #7). In a test binary of its own: the restart
//! cuts every connection to the broker, so it must not run beside the other
//! tests (cargo runs test binaries one after the other).
//!
//! Four clients send requests continuously (unique request ids, half
//! `server:now`, half `realtime:publish` to a collection that another AMQP
//! client and an embedded client subscribed to), at most [`WINDOW`] unanswered
//! at once each. The broker is stopped in the middle, kept down [`DOWN`], and
//! started again. The clients behave as a real client must: when their
//! connection is lost they reconnect, declare their reply queue again (same
//! name) and send again every request they have had no answer for (the
//! subscriber also subscribes again). The load goes on for [`LOAD_AFTER`].
//!
//! What is checked:
//! - every request id sent gets exactly one answer, with its request id and
//!   status 200: none is lost, none is answered twice;
//! - a `realtime:publish` is executed once: the embedded subscriber, which
//!   does not go through the broker, sees one notification per publish id,
//!   and the AMQP subscriber never sees one twice;
//! - the proxy serves normally afterwards (a new client subscribes, another
//!   publishes, the notification arrives).
//!
//! What "lost" means here: in a `stop_app` the broker loses every transient
//! message it holds (what the clients publish, as the README shows): those of
//! the durable request queue (requests published and not consumed yet, or
//! consumed and not acknowledged yet) and the client queues themselves (not
//! durable), with the answers in them. Such a request is not lost for a
//! client that sends it again when it reconnects: it gets one answer, and the
//! proxy, which remembers the answers it gave
//! ([`AmqpConfig::answer_cache_size`](protoplex_amqp::AmqpConfig::answer_cache_size)),
//! does not execute it twice when it had executed it before the stop. A
//! request whose client does not send it again is lost if the broker stops
//! before the proxy acknowledged it; see the crate's documentation ("Across a
//! broker restart") for what else is and is not guaranteed.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use common::{Client, Proxy, Restart, WAIT, publish, rabbitmqctl, subscribe, unique};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use protoplex_amqp::AmqpConfig;
use protoplex_core::CoreConfig;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Clients sending requests.
const CLIENTS: usize = 4;
/// Requests a client has sent and not had an answer for, at most.
const WINDOW: usize = 32;
/// Pause between two bursts of new requests of a client.
const PACE: Duration = Duration::from_millis(2);
/// New requests of a client at most per burst.
const BURST: usize = 2;
/// Load before the broker is stopped.
const LOAD_BEFORE: Duration = Duration::from_millis(1500);
/// Time the broker stays stopped.
const DOWN: Duration = Duration::from_millis(1500);
/// Load after every client reconnected.
const LOAD_AFTER: Duration = Duration::from_secs(2);
/// Time given to every request to be answered once the load stops.
const SETTLE: Duration = Duration::from_secs(15);
/// Time watched after the last answer for a duplicate one.
const QUIET: Duration = Duration::from_secs(1);
/// Longest time for one broker operation of a client (connect, declare,
/// publish and its confirm).
const OPERATION: Duration = Duration::from_secs(5);
/// The whole test, restart included.
const LIMIT: Duration = Duration::from_secs(55);

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Now,
    Publish,
    Subscribe,
}

/// A request sent, maybe several times.
#[derive(Debug)]
struct Sent {
    kind: Kind,
    payload: Vec<u8>,
    sends: u32,
}

/// What a client sent and received. Answers are matched by correlation id,
/// which is the request id.
#[derive(Debug, Default)]
struct Ledger {
    sent: HashMap<String, Sent>,
    /// Every answer received, by request id: more than one is a duplicate.
    answers: HashMap<String, Vec<Value>>,
    /// Answers whose correlation id is no request of this client's.
    strays: Vec<Value>,
    /// Notifications received, by the id in the published message.
    notifications: HashMap<String, u32>,
    /// Connections made to the broker.
    links: u32,
}

impl Ledger {
    fn unanswered(&self) -> Vec<(String, Vec<u8>)> {
        let mut unanswered: Vec<_> = self
            .sent
            .iter()
            .filter(|(id, _)| !self.answers.contains_key(*id))
            .map(|(id, sent)| (id.clone(), sent.payload.clone()))
            .collect();
        unanswered.sort();
        unanswered
    }

    fn outstanding(&self) -> usize {
        self.sent.len().saturating_sub(self.answers.len())
    }

    fn record(&mut self, correlation_id: Option<String>, body: Value) {
        match correlation_id {
            Some(id) if self.sent.contains_key(&id) => self.answers.entry(id).or_default().push(body),
            Some(_) => self.strays.push(body),
            None => {
                if let Some(id) = body["result"]["_source"]["id"].as_str() {
                    *self.notifications.entry(id.to_owned()).or_default() += 1;
                }
            }
        }
    }
}

type Shared<T> = Arc<Mutex<T>>;

fn lock<T>(shared: &Shared<T>) -> MutexGuard<'_, T> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Sends `server:now` and `realtime:publish` requests.
    Load,
    /// Subscribes (again after each reconnection) and reads notifications.
    Subscribe,
}

/// A client that survives broker restarts.
struct Resilient {
    name: String,
    role: Role,
    queue: String,
    exchange: String,
    routing_key: String,
    index: String,
    ledger: Shared<Ledger>,
    /// Stop sending new requests.
    load_done: CancellationToken,
    /// Close and return.
    finish: CancellationToken,
}

/// One connection of a client.
struct Link {
    connection: Connection,
    channel: Channel,
}

impl Resilient {
    /// Connects, sends, reconnects after each loss, until `finish`.
    async fn run(self) {
        let mut next = 0u64;
        while !self.finish.is_cancelled() {
            let opened = tokio::time::timeout(OPERATION, self.open()).await;
            let Ok(Ok((link, consumer))) = opened else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            lock(&self.ledger).links += 1;
            let mut reader = tokio::spawn(read(consumer, self.ledger.clone()));
            let lost = self.session(&link, &reader, &mut next).await;
            if !lost {
                let _ = tokio::time::timeout(OPERATION, link.connection.close(200, "bye".into())).await;
            }
            // Every answer received before the loss is recorded before the
            // unanswered requests are counted.
            if tokio::time::timeout(OPERATION, &mut reader).await.is_err() {
                reader.abort();
            }
        }
    }

    /// Connection, channel, reply queue, consumer.
    async fn open(&self) -> Result<(Link, Consumer), lapin::Error> {
        let connection = Connection::connect(&common::url(), ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok((Link { connection, channel }, consumer))
    }

    /// Sends again what has no answer, then new requests until `load_done`,
    /// then waits for `finish`. Returns whether the connection was lost.
    async fn session(&self, link: &Link, reader: &JoinHandle<()>, next: &mut u64) -> bool {
        let unanswered = lock(&self.ledger).unanswered();
        for (id, payload) in unanswered {
            if !self.send(link, &id, &payload).await {
                return true;
            }
            if let Some(sent) = lock(&self.ledger).sent.get_mut(&id) {
                sent.sends += 1;
            }
        }
        if self.role == Role::Subscribe {
            *next += 1;
            let id = format!("{}-sub{next}", self.name);
            let mut request = subscribe(&self.index, "col");
            request["requestId"] = id.clone().into();
            if !self.first_send(link, &id, Kind::Subscribe, request).await {
                return true;
            }
        }
        loop {
            if self.finish.is_cancelled() {
                return false;
            }
            if reader.is_finished() || !link.connection.status().connected() {
                return true;
            }
            for _ in 0..BURST {
                let room = lock(&self.ledger).outstanding() < WINDOW;
                if self.role != Role::Load || self.load_done.is_cancelled() || !room {
                    break;
                }
                *next += 1;
                let id = format!("{}-{next}", self.name);
                let (kind, request) = if next.is_multiple_of(2) {
                    let request = json!({"controller": "server", "action": "now", "requestId": id});
                    (Kind::Now, request)
                } else {
                    let mut request = publish(&self.index, "col", json!({"id": id}));
                    request["requestId"] = id.clone().into();
                    (Kind::Publish, request)
                };
                if !self.first_send(link, &id, kind, request).await {
                    return true;
                }
            }
            tokio::time::sleep(PACE).await;
        }
    }

    /// Records a new request and sends it. Returns false when the connection
    /// is lost (the request is sent again on the next one).
    async fn first_send(&self, link: &Link, id: &str, kind: Kind, request: Value) -> bool {
        let payload = request.to_string().into_bytes();
        lock(&self.ledger).sent.insert(
            id.to_owned(),
            Sent {
                kind,
                payload: payload.clone(),
                sends: 1,
            },
        );
        self.send(link, id, &payload).await
    }

    /// Publishes a request (transient, as the README shows). Returns false
    /// when the connection is lost. The broker's confirm is not awaited: a
    /// request lost with the connection is sent again on the next one.
    async fn send(&self, link: &Link, id: &str, payload: &[u8]) -> bool {
        let properties = BasicProperties::default()
            .with_reply_to(self.queue.as_str().into())
            .with_correlation_id(id.into());
        let published = link.channel.basic_publish(
            self.exchange.as_str().into(),
            self.routing_key.as_str().into(),
            BasicPublishOptions::default(),
            payload,
            properties,
        );
        matches!(tokio::time::timeout(OPERATION, published).await, Ok(Ok(_)))
    }
}

/// Records every message of the client's queue until its connection goes.
async fn read(mut consumer: Consumer, ledger: Shared<Ledger>) {
    while let Some(Ok(delivery)) = consumer.next().await {
        let body = serde_json::from_slice(&delivery.data).unwrap_or(Value::Null);
        let correlation_id = delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(|id| id.as_str().to_owned());
        lock(&ledger).record(correlation_id, body);
    }
}

/// Waits until `check` holds, at most `limit`; returns whether it did.
async fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !check() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_answer_is_lost_or_duplicated_when_the_broker_restarts_under_load() {
    tokio::time::timeout(LIMIT, restart_under_load())
        .await
        .expect("the test ends in time");
}

async fn restart_under_load() {
    // The default queue check (30 s), not the tests' 200 ms: a check while a
    // client is away removes its connection, and what it sends again then
    // runs on a new connection, where it is executed again (documented).
    let proxy = Proxy::start_with(CoreConfig::default(), |config| {
        config.queue_check_interval = AmqpConfig::default().queue_check_interval;
    })
    .await;
    let index = unique("load");

    // Counts the executions of every publish: the embedded protocol does not
    // go through the broker, so it sees each one.
    let mut watcher = proxy.embedded_client();
    let answer = watcher.query(subscribe(&index, "col")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let executions: Shared<HashMap<String, u32>> = Shared::default();
    let counting = {
        let executions = executions.clone();
        tokio::spawn(async move {
            while let Some(message) = watcher.next_notification().await {
                let body: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
                if let Some(id) = body["result"]["_source"]["id"].as_str() {
                    *lock(&executions).entry(id.to_owned()).or_default() += 1;
                }
            }
        })
    };

    let load_done = CancellationToken::new();
    let finish = CancellationToken::new();
    let mut ledgers = Vec::new();
    let mut clients = Vec::new();
    for n in 0..=CLIENTS {
        let role = if n == CLIENTS { Role::Subscribe } else { Role::Load };
        let ledger = Shared::<Ledger>::default();
        ledgers.push(ledger.clone());
        let client = Resilient {
            name: format!("c{n}"),
            role,
            queue: unique("test.load"),
            exchange: proxy.config.exchange.clone(),
            routing_key: proxy.config.routing_key.clone(),
            index: index.clone(),
            ledger,
            load_done: load_done.clone(),
            finish: finish.clone(),
        };
        clients.push(tokio::spawn(client.run()));
    }
    let subscriber = ledgers[CLIENTS].clone();
    let subscribed = || {
        let ledger = lock(&subscriber);
        ledger
            .answers
            .values()
            .flatten()
            .any(|answer| answer["status"] == 200)
    };
    assert!(
        wait_until(WAIT, subscribed).await,
        "the AMQP subscriber subscribed"
    );

    tokio::time::sleep(LOAD_BEFORE).await;
    let answered = |ledgers: &[Shared<Ledger>]| -> usize {
        ledgers.iter().map(|ledger| lock(ledger).answers.len()).sum()
    };
    let sent =
        |ledgers: &[Shared<Ledger>]| -> usize { ledgers.iter().map(|ledger| lock(ledger).sent.len()).sum() };
    let before = answered(&ledgers);
    let restart = Restart;
    let stopping = Instant::now();
    rabbitmqctl("stop_app").await;
    let stopped = stopping.elapsed();
    tokio::time::sleep(DOWN).await;
    let starting = Instant::now();
    rabbitmqctl("start_app").await;
    let started = starting.elapsed();
    drop(restart);

    let reconnected = || ledgers.iter().all(|ledger| lock(ledger).links >= 2);
    assert!(wait_until(WAIT, reconnected).await, "every client reconnected");
    tokio::time::timeout(WAIT, proxy.amqp.ready())
        .await
        .expect("the proxy consumes again");
    let at_restart = sent(&ledgers);
    tokio::time::sleep(LOAD_AFTER).await;
    load_done.cancel();

    let all_answered = || ledgers.iter().all(|ledger| lock(ledger).outstanding() == 0);
    let settled = wait_until(SETTLE, all_answered).await;
    tokio::time::sleep(QUIET).await;
    finish.cancel();
    for client in clients {
        tokio::time::timeout(WAIT, client)
            .await
            .expect("client ends")
            .expect("client");
    }

    // Every request: exactly one answer, with its request id and status 200.
    let mut requests = 0usize;
    let mut resent = 0usize;
    let mut missing = Vec::new();
    let mut duplicated = Vec::new();
    let mut wrong = Vec::new();
    let mut strays = Vec::new();
    let mut publishes = Vec::new();
    for ledger in &ledgers {
        let ledger = lock(ledger);
        strays.extend(ledger.strays.iter().cloned());
        for (id, sent) in &ledger.sent {
            requests += 1;
            resent += usize::from(sent.sends > 1);
            if sent.kind == Kind::Publish {
                publishes.push(id.clone());
            }
            match ledger.answers.get(id).map(Vec::as_slice) {
                None | Some([]) => missing.push(id.clone()),
                Some([answer]) => {
                    if answer["status"] != 200 || answer["requestId"] != id.as_str() {
                        wrong.push(answer.clone());
                    }
                }
                Some(answers) => duplicated.push((id.clone(), answers.len())),
            }
        }
    }
    let after = requests.saturating_sub(at_restart);
    let executions = lock(&executions).clone();
    let twice: Vec<_> = publishes
        .iter()
        .filter(|id| executions.get(*id).copied().unwrap_or(0) > 1)
        .collect();
    let unseen: Vec<_> = publishes
        .iter()
        .filter(|id| !executions.contains_key(*id))
        .collect();
    let (notified, notified_twice) = {
        let subscriber = lock(&ledgers[CLIENTS]);
        let twice: Vec<_> = subscriber
            .notifications
            .iter()
            .filter(|(_, count)| **count > 1)
            .map(|(id, count)| (id.clone(), *count))
            .collect();
        (subscriber.notifications.len(), twice)
    };
    eprintln!(
        "restart under load: {requests} requests ({} publishes), {before} answered before the stop, \
         {resent} without an answer when their connection was lost (sent again), {after} sent after the restart; stop_app {stopped:?}, start_app {started:?}; \
         {} missing, {} answered twice, {} publishes executed twice, {} AMQP notifications, {} twice",
        publishes.len(),
        missing.len(),
        duplicated.len(),
        twice.len(),
        notified,
        notified_twice.len(),
    );
    assert!(
        settled && missing.is_empty(),
        "{} requests without an answer: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        duplicated.is_empty(),
        "requests answered more than once: {duplicated:?}"
    );
    assert!(wrong.is_empty(), "wrong answers: {wrong:?}");
    assert!(strays.is_empty(), "answers to no request: {strays:?}");
    assert!(twice.is_empty(), "publishes executed twice: {twice:?}");
    assert!(unseen.is_empty(), "answered publishes never executed: {unseen:?}");
    assert!(
        notified_twice.is_empty(),
        "notifications received twice: {notified_twice:?}"
    );
    assert!(
        resent > 0,
        "no request was in flight when the connections were lost"
    );
    assert!(before > 100, "load before the stop: {before} answers");
    assert!(after > 100, "load after the restart: {after} requests");
    assert!(notified > 0, "the AMQP subscriber received notifications");
    assert!(
        !counting.is_finished(),
        "the embedded subscriber fell behind and was disconnected"
    );
    counting.abort();

    // The proxy serves normally: a new subscriber, a new publisher.
    let mut listener = Client::new(&proxy).await;
    let other = unique("after");
    let answer = listener.query(subscribe(&other, "col")).await;
    assert_eq!(answer["status"], 200, "{answer}");
    let mut talker = Client::new(&proxy).await;
    let answer = talker
        .query(publish(&other, "col", json!({"after": "restart"})))
        .await;
    assert_eq!(answer["status"], 200, "{answer}");
    let notification = listener.notification(WAIT).await.expect("notification");
    assert_eq!(notification["result"]["_source"]["after"], "restart");

    listener.close().await;
    talker.close().await;
    proxy.stop().await;
}
