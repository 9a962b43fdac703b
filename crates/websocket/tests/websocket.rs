//! The WebSocket protocol end to end: a real router, a real listener on
//! 127.0.0.1, real WebSocket clients. Every wait is bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protoplex_core::{ActionCall, ActionSpec, ApiError, BoxFuture, Controller, CoreConfig, Router};
use protoplex_websocket::{WebSocketConfig, WebSocketProtocol};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Longest wait for anything expected.
const WAIT: Duration = Duration::from_secs(10);

/// A test controller: `test:whoami` tells the connection as the router sees it,
/// `test:sleep` answers after `ms` milliseconds, `test:kick` disconnects the caller.
struct TestController;

impl Controller for TestController {
    fn name(&self) -> &str {
        "test"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        vec![
            ActionSpec::new("whoami"),
            ActionSpec::new("sleep"),
            ActionSpec::new("kick"),
        ]
    }

    fn execute<'a>(&'a self, call: ActionCall<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            match call.request.action.as_str() {
                "whoami" => Ok(json!({
                    "protocol": call.connection.protocol,
                    "ips": call.connection.ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "headers": call.connection.headers,
                })),
                "kick" => Ok(json!({ "kicked": call.router.disconnect(call.connection.id) })),
                _ => {
                    let ms = call.request.args.get("ms").and_then(Value::as_u64).unwrap_or(100);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(json!({ "slept": ms }))
                }
            }
        })
    }
}

struct Server {
    router: Router,
    protocol: Arc<WebSocketProtocol>,
    address: SocketAddr,
}

impl Server {
    async fn start(core: CoreConfig, config: WebSocketConfig) -> Self {
        let config = WebSocketConfig {
            bind: "127.0.0.1".parse().expect("ip"),
            port: 0,
            ..config
        };
        let protocol = WebSocketProtocol::new(config);
        let router = Router::builder(core)
            .protocol(protocol.clone())
            .controller(TestController)
            .build()
            .expect("router");
        router.start().await.expect("start");
        let address = protocol.local_addr().expect("bound");
        Self {
            router,
            protocol,
            address,
        }
    }

    async fn default() -> Self {
        Self::start(CoreConfig::default(), WebSocketConfig::default()).await
    }

    fn url(&self) -> String {
        format!("ws://{}/", self.address)
    }

    async fn client(&self) -> Client {
        Client::connect(&self.url()).await
    }

    /// Waits until the protocol holds `count` connections.
    async fn wait_connections(&self, count: usize) {
        let reached = timeout(WAIT, async {
            while self.protocol.connection_count() != count || self.router.connection_count() != count {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            reached.is_ok(),
            "expected {count} connections, protocol has {}, router has {}",
            self.protocol.connection_count(),
            self.router.connection_count()
        );
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Client {
    ws: Ws,
}

impl Client {
    async fn connect(url: &str) -> Self {
        let (ws, _) = timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("connect");
        Self { ws }
    }

    async fn send_text(&mut self, text: impl Into<String>) {
        let text: String = text.into();
        timeout(WAIT, self.ws.send(Message::text(text)))
            .await
            .expect("send in time")
            .expect("send");
    }

    async fn send(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    /// The next text frame as JSON, skipping control frames; `None` once closed.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let frame = timeout(WAIT, self.ws.next()).await.expect("a frame in time")?;
            match frame.ok()? {
                Message::Text(text) => return Some(serde_json::from_str(text.as_str()).expect("JSON frame")),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Sends a request and returns its response, skipping notifications.
    async fn query(&mut self, mut request: Value) -> Value {
        let id = format!("q-{}", rand_id());
        request["requestId"] = json!(id);
        self.send(request).await;
        loop {
            let frame = self.next().await.expect("a response");
            if frame["requestId"] == id.as_str() {
                return frame;
            }
        }
    }

    /// Reads until the server's close frame; `None` when the stream ended without one.
    async fn close_frame(&mut self) -> Option<CloseFrame> {
        timeout(WAIT, async {
            while let Some(frame) = self.ws.next().await {
                match frame {
                    Ok(Message::Close(frame)) => return frame,
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
            None
        })
        .await
        .expect("closed in time")
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn subscribe(index: &str, collection: &str) -> Value {
    json!({"controller":"realtime","action":"subscribe","index":index,"collection":collection,"body":{}})
}

fn publish(index: &str, collection: &str, body: Value) -> Value {
    json!({"controller":"realtime","action":"publish","index":index,"collection":collection,"body":body})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_answered_with_room_equal_to_request_id() {
    let server = Server::default().await;
    let mut client = server.client().await;
    client
        .send(json!({"controller":"server","action":"now","requestId":"r-1","volatile":{"v":1}}))
        .await;
    let response = client.next().await.expect("response");
    assert_eq!(response["status"], 200, "{response}");
    assert_eq!(response["requestId"], "r-1");
    assert_eq!(response["room"], "r-1");
    assert_eq!(response["volatile"], json!({"v": 1}));
    assert!(response["result"]["now"].as_u64().is_some());

    // Unknown actions get their 404, and the connection goes on.
    let missing = client.query(json!({"controller":"server","action":"nope"})).await;
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["error"]["id"], "api.process.action_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_carries_the_peer_forwarded_addresses_and_headers() {
    let server = Server::default().await;
    let mut request = server.url().into_client_request().expect("request");
    request.headers_mut().insert(
        "X-Forwarded-For",
        HeaderValue::from_static("203.0.113.9, not-an-ip, 198.51.100.1"),
    );
    request
        .headers_mut()
        .insert("X-Custom", HeaderValue::from_static("yes"));
    let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
    let mut client = Client { ws };
    let me = client.query(json!({"controller":"test","action":"whoami"})).await;
    assert_eq!(me["status"], 200, "{me}");
    assert_eq!(me["result"]["protocol"], "websocket");
    assert_eq!(
        me["result"]["ips"],
        json!(["127.0.0.1", "203.0.113.9", "198.51.100.1"])
    );
    assert_eq!(me["result"]["headers"]["x-custom"], "yes");
    assert!(me["result"]["headers"]["sec-websocket-key"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_receives_what_another_client_publishes() {
    let server = Server::default().await;
    let mut subscriber = server.client().await;
    let mut publisher = server.client().await;
    let subscribed = subscriber.query(subscribe("i", "c")).await;
    assert_eq!(subscribed["status"], 200, "{subscribed}");
    let channel = subscribed["result"]["channel"]
        .as_str()
        .expect("channel")
        .to_owned();

    let published = publisher
        .query(publish("i", "c", json!({"hello": "world"})))
        .await;
    assert_eq!(published["result"], json!({"published": true}));

    let notification = subscriber.next().await.expect("notification");
    assert_eq!(notification["room"], channel.as_str());
    assert_eq!(notification["type"], "document");
    assert_eq!(notification["protocol"], "websocket");
    assert_eq!(notification["result"]["_source"], json!({"hello": "world"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_ping_gets_an_application_pong() {
    let server = Server::default().await;
    let mut client = server.client().await;
    client.send_text(r#"{"p":1}"#).await;
    assert_eq!(client.next().await, Some(json!({"p": 2})));
    // `p` with anything else is a request (a bad one).
    client.send_text(r#"{"p":1,"requestId":"x"}"#).await;
    let answer = client.next().await.expect("answer");
    assert_eq!(answer["requestId"], "x");
    assert_eq!(answer["status"], 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_400_and_the_connection_survives() {
    let server = Server::default().await;
    let mut client = server.client().await;
    client.send_text("{this is not json").await;
    let error = client.next().await.expect("error response");
    assert_eq!(error["status"], 400, "{error}");
    assert_eq!(error["error"]["id"], "api.assert.invalid_argument");

    // Binary frames are requests too (as in Kuzzle), answered in text frames.
    let request = json!({"controller":"server","action":"now","requestId":"bin"}).to_string();
    client
        .ws
        .send(Message::Binary(Bytes::from(request)))
        .await
        .expect("send");
    let answer = client.next().await.expect("answer to a binary frame");
    assert_eq!(answer["requestId"], "bin");
    assert_eq!(answer["status"], 200);
    client
        .ws
        .send(Message::Binary(Bytes::from_static(&[0xff, 0xfe, 0x00])))
        .await
        .expect("send");
    let error = client.next().await.expect("error response");
    assert_eq!(error["status"], 400, "{error}");

    let now = client.query(json!({"controller":"server","action":"now"})).await;
    assert_eq!(now["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_gets_a_413_and_the_connection_survives() {
    let mut core = CoreConfig::default();
    core.limits.max_request_size = 1024;
    let server = Server::start(core, WebSocketConfig::default()).await;
    let mut client = server.client().await;
    let big = json!({"controller":"server","action":"now","requestId":"big","pad":"x".repeat(4000)});
    client.send(big).await;
    let error = client.next().await.expect("error response");
    assert_eq!(error["status"], 413, "{error}");
    assert_eq!(error["error"]["id"], "network.entrypoint.request_too_large");
    let now = client.query(json!({"controller":"server","action":"now"})).await;
    assert_eq!(now["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_hard_cap_closes_with_1009() {
    let mut core = CoreConfig::default();
    core.limits.max_request_size = 1024;
    let server = Server::start(core, WebSocketConfig::default()).await;
    let mut client = server.client().await;
    server.wait_connections(1).await;
    // The cap is 1024 + 64 KiB: send 512 KiB.
    let huge = "x".repeat(512 * 1024);
    // The server may close before the whole frame is written.
    let _ = timeout(WAIT, client.ws.send(Message::text(huge))).await;
    let frame = client.close_frame().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1009);
    server.wait_connections(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_subscriber_is_removed_from_its_rooms() {
    let server = Server::default().await;
    let mut staying = server.client().await;
    let mut leaving = server.client().await;
    let subscribed = staying.query(subscribe("i", "c")).await;
    let room_id = subscribed["result"]["roomId"]
        .as_str()
        .expect("roomId")
        .to_owned();
    leaving.query(subscribe("i", "c")).await;
    let count = json!({"controller":"realtime","action":"count","body":{"roomId":room_id}});
    assert_eq!(staying.query(count.clone()).await["result"]["count"], 2);

    leaving.ws.close(None).await.expect("close");
    drop(leaving);
    let dropped = timeout(WAIT, async {
        loop {
            if staying.query(count.clone()).await["result"]["count"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(dropped.is_ok(), "the count went down to 1");
    server.wait_connections(1).await;

    // A client vanishing without a close frame is removed as well.
    let vanishing = server.client().await;
    server.wait_connections(2).await;
    drop(vanishing);
    server.wait_connections(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_closed_and_never_slows_the_others() {
    let config = WebSocketConfig {
        outgoing_queue: 8,
        close_timeout: 5000,
        ..WebSocketConfig::default()
    };
    let server = Server::start(CoreConfig::default(), config).await;

    // The slow client has a small receive buffer, so that its kernel absorbs little.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(server.address).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(server.url(), MaybeTlsStream::Plain(stream))
        .await
        .expect("handshake");
    let mut slow = Client { ws };
    let mut fast = server.client().await;
    let mut publisher = server.client().await;
    slow.query(subscribe("i", "flood")).await;
    fast.query(subscribe("i", "flood")).await;
    server.wait_connections(3).await;

    // The fast client reads everything, in a task of its own.
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(notification) = fast.next().await {
            let n = notification["result"]["_source"]["n"].as_u64().expect("n");
            if n == u64::MAX {
                break;
            }
            seen.push(n);
        }
        seen
    });

    // Publish until the slow client is gone (bounded: 400 × 64 KiB at most).
    let pad = "y".repeat(64 * 1024);
    let mut published = 0_u64;
    while published < 400 && server.protocol.connection_count() == 3 {
        let answer = publisher
            .query(publish("i", "flood", json!({"n": published, "pad": pad})))
            .await;
        assert_eq!(answer["status"], 200, "{answer}");
        published += 1;
    }
    server.wait_connections(2).await;
    publisher
        .query(publish("i", "flood", json!({"n": u64::MAX})))
        .await;

    let seen = timeout(WAIT, reader)
        .await
        .expect("fast reader in time")
        .expect("reader");
    assert_eq!(
        seen,
        (0..published).collect::<Vec<_>>(),
        "every message, in order"
    );

    // The slow client finally reads: what was buffered, then the close frame.
    let frame = slow.close_frame().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1011);
    assert!(
        frame.reason.as_str().starts_with("too much backpressure"),
        "{}",
        frame.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_are_closed_and_clients_answering_pings_stay() {
    let config = WebSocketConfig {
        idle_timeout: 300,
        ..WebSocketConfig::default()
    };
    let server = Server::start(CoreConfig::default(), config).await;
    let mut silent = server.client().await;
    let mut alive = server.client().await;
    server.wait_connections(2).await;

    // `alive` reads (and so answers pings) for three idle timeouts.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(900);
    while let Ok(frame) = tokio::time::timeout_at(until, alive.ws.next()).await {
        match frame {
            Some(Ok(message)) if message.is_ping() => pings += 1,
            Some(Ok(_)) => {}
            other => panic!("the reading client was closed: {other:?}"),
        }
    }
    assert!(pings >= 2, "pinged {pings} times");
    server.wait_connections(1).await;
    let now = alive.query(json!({"controller":"server","action":"now"})).await;
    assert_eq!(now["status"], 200);

    let frame = silent.close_frame().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_closes_the_client_and_removes_it() {
    let server = Server::default().await;
    let mut watcher = server.client().await;
    let mut client = server.client().await;
    let subscribed = client.query(subscribe("i", "kick")).await;
    let room_id = subscribed["result"]["roomId"]
        .as_str()
        .expect("roomId")
        .to_owned();
    server.wait_connections(2).await;

    // test:kick asks the router to disconnect the caller: its answer still arrives.
    let answer = client.query(json!({"controller":"test","action":"kick"})).await;
    assert_eq!(answer["status"], 200, "{answer}");
    let frame = client.close_frame().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1011);
    server.wait_connections(1).await;
    let count = watcher
        .query(json!({"controller":"realtime","action":"count","body":{"roomId":room_id}}))
        .await;
    assert_eq!(
        count["status"], 404,
        "the room left with its only subscriber: {count}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_requests_already_read_then_closes_with_1001() {
    let config = WebSocketConfig {
        close_timeout: 1000,
        ..WebSocketConfig::default()
    };
    let server = Server::start(CoreConfig::default(), config).await;
    let mut busy = server.client().await;
    let mut quiet = server.client().await;
    quiet.query(subscribe("i", "c")).await;
    server.wait_connections(2).await;

    busy.send(json!({"controller":"test","action":"sleep","ms":300,"requestId":"slow"}))
        .await;
    // Let the request start running.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = timeout(WAIT, server.router.shutdown(Duration::from_secs(8)))
        .await
        .expect("shutdown in time");
    assert!(stopped, "every task ended within the grace period");

    let answer = busy.next().await.expect("the answer before the close");
    assert_eq!(answer["requestId"], "slow");
    assert_eq!(answer["status"], 200, "{answer}");
    let frame = busy.close_frame().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1001);
    let frame = quiet.close_frame().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1001);
    assert!(
        TcpStream::connect(server.address).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_does_not_hold_back_the_next_one() {
    let server = Server::default().await;
    let mut client = server.client().await;
    client
        .send(json!({"controller":"test","action":"sleep","ms":300,"requestId":"slow"}))
        .await;
    client
        .send(json!({"controller":"server","action":"now","requestId":"fast"}))
        .await;
    let first = client.next().await.expect("an answer");
    assert_eq!(first["requestId"], "fast");
    let second = client.next().await.expect("an answer");
    assert_eq!(second["requestId"], "slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_bounded() {
    let config = WebSocketConfig {
        max_in_flight: 1,
        ..WebSocketConfig::default()
    };
    let server = Server::start(CoreConfig::default(), config).await;
    let mut client = server.client().await;
    client
        .send(json!({"controller":"test","action":"sleep","ms":200,"requestId":"slow"}))
        .await;
    client
        .send(json!({"controller":"server","action":"now","requestId":"fast"}))
        .await;
    // With one request in flight, the second frame waits for the first answer.
    let first = client.next().await.expect("an answer");
    assert_eq!(first["requestId"], "slow");
    let second = client.next().await.expect("an answer");
    assert_eq!(second["requestId"], "fast");
}

#[tokio::test]
async fn a_client_asking_faster_than_its_queue_holds_is_slowed_down_not_cut_off() {
    // A queue of 8 answers, and 2000 requests sent in one burst by a client that
    // reads its answers all along: every answer arrives, nothing is closed.
    let config = WebSocketConfig {
        outgoing_queue: 8,
        ..WebSocketConfig::default()
    };
    let server = Server::start(CoreConfig::default(), config).await;
    let client = server.client().await;
    let (mut sink, mut stream) = client.ws.split();
    const REQUESTS: usize = 2000;
    let sender = tokio::spawn(async move {
        for n in 0..REQUESTS {
            let request = json!({"controller":"server","action":"now","requestId":format!("burst-{n}")});
            sink.send(Message::text(request.to_string())).await.expect("send");
        }
        sink
    });
    let mut answered = std::collections::HashSet::new();
    while answered.len() < REQUESTS {
        let frame = timeout(WAIT, stream.next())
            .await
            .expect("an answer in time")
            .expect("connection open")
            .expect("frame");
        match frame {
            Message::Text(text) => {
                let answer: Value = serde_json::from_str(text.as_str()).expect("JSON");
                assert_eq!(answer["status"], 200, "{answer}");
                assert!(answered.insert(answer["requestId"].as_str().expect("id").to_owned()));
            }
            Message::Close(frame) => panic!("closed after {} answers: {frame:?}", answered.len()),
            _ => {}
        }
    }
    let _sink = timeout(WAIT, sender)
        .await
        .expect("sent in time")
        .expect("sender");
}

/// Plays the HTTP protocol: answers the upgrade itself, then hands the socket over.
async fn upgrade_by_hand(listener: &tokio::net::TcpListener, protocol: &Arc<WebSocketProtocol>) {
    use std::collections::HashMap;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (mut stream, peer) = listener.accept().await.expect("accept");
    let mut request = Vec::new();
    let mut buffer = [0_u8; 1024];
    while !request.ends_with(b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.expect("read");
        assert!(read > 0, "request cut short");
        request.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8(request).expect("UTF-8 request");
    let headers: HashMap<String, String> = text
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let key = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, value)| value.clone())
        .expect("a key");
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        WebSocketProtocol::accept_key(key.as_bytes())
    );
    stream.write_all(answer.as_bytes()).await.expect("write");
    protocol.accept_upgraded(stream, peer, headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_protocol_serves_connections_upgraded_elsewhere() {
    let config = WebSocketConfig {
        close_timeout: 500,
        ..WebSocketConfig::default()
    };
    let protocol = WebSocketProtocol::shared(config);
    // Before init, an upgraded connection is dropped (with a warning).
    let (io, _other_end) = tokio::io::duplex(64);
    protocol.accept_upgraded(io, "127.0.0.1:1".parse().expect("address"), Default::default());
    assert_eq!(protocol.connection_count(), 0);

    let router = Router::builder(CoreConfig::default())
        .protocol(protocol.clone())
        .build()
        .expect("router");
    router.start().await.expect("start");
    assert_eq!(protocol.local_addr(), None, "no listener of its own");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (connected, ()) = tokio::join!(
        timeout(WAIT, tokio_tungstenite::connect_async(format!("ws://{address}/"))),
        async {
            timeout(WAIT, upgrade_by_hand(&listener, &protocol))
                .await
                .expect("upgrade in time")
        },
    );
    let (ws, _) = connected.expect("connect in time").expect("connect");
    let mut client = Client { ws };
    let now = client.query(json!({"controller":"server","action":"now"})).await;
    assert_eq!(now["status"], 200, "{now}");
    client.send_text(r#"{"p":1}"#).await;
    assert_eq!(client.next().await, Some(json!({"p": 2})));

    assert!(router.shutdown(Duration::from_secs(5)).await);
    let frame = client.close_frame().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1001);
}
