//! Slow consumers on WebSocket and MQTT (issue #7): one stalled subscriber
//! among 10 healthy ones.
//!
//! The stalled subscriber connects, subscribes, then never reads its socket
//! again (a raw TCP client with a small receive buffer, kept open). A publisher
//! sends 1,250 messages of 8 KiB, more than twice what the stalled client's
//! outgoing queue (configured small) and the kernel's socket buffers hold.
//! Each test proves that:
//!
//! - every healthy subscriber receives every message, in order, once;
//! - the server cuts the stalled one off, seen from the server (its protocol's
//!   client count, then the router's connection count, drop) and then from the
//!   client (WebSocket close 1011, MQTT end of stream);
//! - it cuts it off at its queue limit: the messages published before the cut
//!   and never delivered (those the server held for it) are about its queue;
//! - the server's memory stays bounded: this process's resident memory grows
//!   by less than half of what the stalled client's undelivered messages would
//!   hold if they were kept (their bytes are shared by every recipient, so
//!   keeping them for one client keeps them all).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use protoplex_integration_tests::mqtt::{RawMqtt, Version};
use protoplex_integration_tests::{Client, Kind, PATIENCE, Settings, TestServer, eventually, panics};
use protoplex_mqtt::MqttConfig;
use protoplex_websocket::WebSocketConfig;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// Messages published in each run.
const MESSAGES: usize = 1250;
/// Bytes of each message's blob.
const BLOB: usize = 8 * 1024;
/// Messages a client may leave unread before the server cuts it off.
const QUEUE: usize = 16;
/// How far (in messages) the publisher lets the slowest healthy subscriber
/// fall behind: well within what a reading client's socket buffers and queue
/// hold, so that no healthy client is ever cut off for being scheduled late.
const WINDOW: usize = 16;
/// Receive buffer asked for the stalled client's socket.
const STALLED_RCVBUF: u32 = 4096;
/// Healthy subscribers in each run.
const HEALTHY: usize = 10;

/// The tests measure this process's memory: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This process's resident memory, in bytes: the least of a few samples of
/// `VmRSS` over 100 ms, so that buffers of the moment count less than memory
/// that stays.
async fn resident_bytes() -> usize {
    let mut least = usize::MAX;
    for _ in 0..5 {
        least = least.min(vm_rss());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    least
}

/// `VmRSS` of /proc/self/status, in bytes.
fn vm_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

fn subscribe_request(collection: &str) -> Value {
    json!({"controller":"realtime","action":"subscribe","index":"slow","collection":collection,"body":{}})
}

fn publish_request(collection: &str, seq: usize, blob: &str) -> Value {
    json!({"controller":"realtime","action":"publish","index":"slow","collection":collection,
           "body":{"seq": seq, "blob": blob}})
}

/// A socket whose receive buffer is small, so that a client that stops
/// reading stops the server's writes soon.
async fn small_buffer_socket(address: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(STALLED_RCVBUF).expect("SO_RCVBUF");
    tokio::time::timeout(PATIENCE, socket.connect(address))
        .await
        .expect("connected in time")
        .expect("connect")
}

/// A subscriber that subscribes, then never reads again.
enum Stalled {
    WebSocket(Box<WebSocketStream<TcpStream>>),
    Mqtt(RawMqtt),
}

impl Stalled {
    async fn connect(server: &TestServer, kind: Kind, collection: &str) -> Self {
        match kind {
            Kind::WebSocket => {
                let stream = small_buffer_socket(server.address).await;
                let (mut ws, _) = tokio::time::timeout(
                    PATIENCE,
                    tokio_tungstenite::client_async(format!("ws://{}/", server.address), stream),
                )
                .await
                .expect("handshake in time")
                .expect("WebSocket handshake");
                let mut request = subscribe_request(collection);
                request["requestId"] = "stalled".into();
                ws.send(Message::text(request.to_string())).await.expect("send");
                let answer = tokio::time::timeout(PATIENCE, ws.next())
                    .await
                    .expect("an answer in time")
                    .expect("open")
                    .expect("a frame");
                let answer: Value = serde_json::from_str(answer.to_text().expect("text")).expect("JSON");
                assert_eq!(answer["status"], 200, "{answer}");
                Self::WebSocket(Box::new(ws))
            }
            Kind::Mqtt311 | Kind::Mqtt5 => {
                let version = if kind == Kind::Mqtt5 {
                    Version::V5
                } else {
                    Version::V311
                };
                let stream = small_buffer_socket(server.mqtt_address).await;
                let mut client = RawMqtt::over(stream, version);
                client.handshake().await;
                let answer = client.query(&subscribe_request(collection)).await;
                assert_eq!(answer["status"], 200, "{answer}");
                Self::Mqtt(client)
            }
            Kind::Http | Kind::Amqp => unreachable!("stalled clients are WebSocket or MQTT"),
        }
    }

    /// Reads again, to the end: the server closed the connection. Returns the
    /// messages that had reached the client.
    async fn drain(self) -> usize {
        match self {
            Stalled::WebSocket(mut ws) => {
                let mut received = 0;
                let deadline = tokio::time::Instant::now() + PATIENCE;
                loop {
                    match tokio::time::timeout_at(deadline, ws.next())
                        .await
                        .expect("the stalled WebSocket ends in time")
                    {
                        Some(Ok(Message::Text(_))) => received += 1,
                        Some(Ok(Message::Close(frame))) => {
                            let frame = frame.expect("a close frame with a code");
                            assert_eq!(u16::from(frame.code), 1011, "{frame:?}");
                            assert!(frame.reason.contains("backpressure"), "{frame:?}");
                            return received;
                        }
                        Some(Ok(_)) => {}
                        other => panic!("closed without its 1011 close frame: {other:?}"),
                    }
                }
            }
            Stalled::Mqtt(mut client) => {
                // Counted, not kept: this process's memory is measured.
                let mut received = 0;
                while let Some(packet) = client.packet().await {
                    received += usize::from(packet.kind() == 3);
                }
                received
            }
        }
    }
}

/// Collection of the warm-up messages.
const WARM_UP: &str = "warm-up";
/// Warm-up messages, published before measuring.
const WARM_UP_MESSAGES: usize = 200;

/// A healthy subscriber reading every notification in a task of its own,
/// counting them as they come (warm-up included).
struct Reader {
    progress: Arc<AtomicUsize>,
    /// The sequence numbers received (warm-up left out), and the client, kept connected.
    task: tokio::task::JoinHandle<(Vec<u64>, Client)>,
}

impl Reader {
    fn start(mut client: Client) -> Self {
        let progress = Arc::new(AtomicUsize::new(0));
        let counter = progress.clone();
        let task = tokio::spawn(async move {
            let mut seen = Vec::with_capacity(MESSAGES);
            let mut received = 0;
            while seen.len() < MESSAGES {
                let notification = client.notification().await;
                let source = &notification["result"]["_source"];
                assert_eq!(source["blob"].as_str().map(str::len), Some(BLOB));
                if notification["collection"] != WARM_UP {
                    seen.push(source["seq"].as_u64().expect("a seq"));
                }
                received += 1;
                counter.store(received, Ordering::Release);
            }
            (seen, client)
        });
        Self { progress, task }
    }
}

/// Waits until every reader got at least `published - WINDOW` messages.
async fn pace(readers: &[Reader], published: usize, name: &str) {
    let slowest = || {
        readers
            .iter()
            .map(|reader| reader.progress.load(Ordering::Acquire))
            .min()
            .unwrap_or(usize::MAX)
    };
    if slowest().saturating_add(WINDOW) < published {
        let caught_up = eventually(|| async { slowest().saturating_add(WINDOW) >= published }).await;
        assert!(caught_up, "{name}: a healthy subscriber stopped at {}", slowest());
    }
}

/// One run: `healthy` subscribers reading everything, `stalled` ones reading
/// nothing, `publisher` sending [`MESSAGES`].
async fn run(name: &str, healthy: &[Kind], stalled: &[Kind], publisher: Kind) {
    let _serial = SERIAL.lock().await;
    panics::watch();
    let server = TestServer::start_settings(Settings {
        websocket: WebSocketConfig {
            outgoing_queue: QUEUE,
            ..WebSocketConfig::default()
        },
        mqtt: MqttConfig {
            outgoing_queue: QUEUE,
            ..MqttConfig::default()
        },
        without_amqp: true,
        ..Settings::default()
    })
    .await;
    let collection = name;
    let blob = "z".repeat(BLOB);
    let mut sender = server.client(publisher).await;
    let mut readers = Vec::with_capacity(healthy.len());
    for &kind in healthy {
        let mut client = server.client(kind).await;
        for collection in [collection, WARM_UP] {
            let answer = client.query(subscribe_request(collection)).await;
            assert_eq!(answer["status"], 200, "{answer}");
        }
        readers.push(Reader::start(client));
    }

    // Warm up (allocator arenas, buffers) before measuring, from a publisher
    // that then leaves: the same fan-out, to another collection.
    let mut warm = server.client(publisher).await;
    for seq in 0..WARM_UP_MESSAGES {
        pace(&readers, seq, name).await;
        let answer = warm.query(publish_request(WARM_UP, seq, &blob)).await;
        assert_eq!(answer["status"], 200, "{answer}");
    }
    drop(warm);
    let settled = healthy.len() + usize::from(publisher != Kind::Http);
    let left = eventually(|| async { server.router.connection_count() == settled }).await;
    assert!(left, "{name}: the warm-up publisher left");

    // One stalled client per protocol at most: its protocol's client count
    // falling tells it was cut off.
    assert!(stalled.iter().filter(|kind| **kind == Kind::WebSocket).count() <= 1);
    assert!(stalled.iter().filter(|kind| **kind != Kind::WebSocket).count() <= 1);
    let mut stalled_clients = Vec::with_capacity(stalled.len());
    for &kind in stalled {
        stalled_clients.push(Some((kind, Stalled::connect(&server, kind, collection).await)));
    }
    let websocket_clients = server.websocket.connection_count();
    let mqtt_clients = server.mqtt.connection_count();
    let cut_off = |kind: Kind| match kind {
        Kind::WebSocket => server.websocket.connection_count() < websocket_clients,
        _ => server.mqtt.connection_count() < mqtt_clients,
    };
    let connections = server.router.connection_count();
    let before = resident_bytes().await;

    // Publish, never letting a healthy subscriber fall more than WINDOW behind;
    // note when the stalled clients leave the protocols.
    let started = Instant::now();
    let mut cut_off_at = Vec::new();
    let mut draining = Vec::new();
    for seq in 0..MESSAGES {
        pace(&readers, WARM_UP_MESSAGES + seq, name).await;
        let answer = sender.query(publish_request(collection, seq, &blob)).await;
        assert_eq!(answer["status"], 200, "{answer}");
        for slot in &mut stalled_clients {
            if let Some((kind, _)) = slot
                && cut_off(*kind)
                && let Some((_, client)) = slot.take()
            {
                // Read at once: the server gives its close frame a short while.
                cut_off_at.push(seq);
                draining.push(tokio::spawn(client.drain()));
            }
        }
    }
    let published_in = started.elapsed();
    let grown = resident_bytes().await.saturating_sub(before);

    let mut healthy_clients = Vec::with_capacity(readers.len());
    for reader in readers {
        let (seen, client) = tokio::time::timeout(PATIENCE, reader.task)
            .await
            .unwrap_or_else(|_| panic!("{name}: a healthy subscriber got everything in time"))
            .expect("reader task");
        assert_eq!(
            seen,
            (0..MESSAGES as u64).collect::<Vec<_>>(),
            "{name}: every message, in order, once"
        );
        healthy_clients.push(client);
    }

    // The server cut the stalled clients off, while the messages flowed.
    let still_served: Vec<Kind> = stalled_clients.iter().flatten().map(|(kind, _)| *kind).collect();
    assert!(
        still_served.is_empty(),
        "{name}: stalled {still_served:?} still served after {MESSAGES} messages"
    );
    let removed =
        eventually(|| async { server.router.connection_count() == connections - stalled.len() }).await;
    assert!(
        removed,
        "{name}: the router forgot the stalled clients ({} connections)",
        server.router.connection_count()
    );
    let mut reached = Vec::new();
    for drain in draining {
        let drained = tokio::time::timeout(PATIENCE, drain)
            .await
            .expect("stalled client drained in time")
            .expect("drain task");
        reached.push(drained);
    }

    // The messages overflowed what reached each stalled client (its kernel
    // buffers, its queue) more than twice over.
    for reached in &reached {
        assert!(
            reached * 2 <= MESSAGES,
            "{name}: {reached} of {MESSAGES} messages reached a stalled client"
        );
    }
    // Allocator-independent: when cut off, the server held for each stalled
    // client (published before, not delivered) about its queue, not more.
    for (cut_off_at, reached) in cut_off_at.iter().zip(&reached) {
        let held = cut_off_at + 1 - reached;
        assert!(
            held <= 2 * QUEUE,
            "{name}: {held} messages held for a stalled client, its queue is {QUEUE}"
        );
    }
    // Memory: what the stalled clients' unread messages would hold if kept.
    let unbounded: usize = reached.iter().map(|reached| (MESSAGES - reached) * BLOB).sum();
    assert!(
        grown < unbounded / 2,
        "{name}: resident memory grew by {grown} bytes, the unread messages are {unbounded}"
    );
    eprintln!(
        "{name}: {MESSAGES} messages in {published_in:?}; stalled cut off after {cut_off_at:?}, \
         {reached:?} messages had reached them; resident memory +{} KiB (unbounded: {} KiB)",
        grown / 1024,
        unbounded / 1024
    );
    panics::assert_none();
    drop(healthy_clients);
    drop(sender);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_stalled_subscriber_is_cut_off_and_the_others_get_everything() {
    run(
        "websocket",
        &[Kind::WebSocket; HEALTHY],
        &[Kind::WebSocket],
        Kind::WebSocket,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_stalled_subscriber_is_cut_off_and_the_others_get_everything() {
    let healthy: Vec<Kind> = (0..HEALTHY)
        .map(|i| if i % 2 == 0 { Kind::Mqtt311 } else { Kind::Mqtt5 })
        .collect();
    run("mqtt", &healthy, &[Kind::Mqtt311], Kind::Mqtt5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_stalled_subscribers_are_cut_off_and_the_others_get_everything() {
    let healthy: Vec<Kind> = (0..HEALTHY)
        .map(|i| if i % 2 == 0 { Kind::WebSocket } else { Kind::Mqtt5 })
        .collect();
    run("mixed", &healthy, &[Kind::WebSocket, Kind::Mqtt5], Kind::Mqtt311).await;
}
