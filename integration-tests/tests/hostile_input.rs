//! Hostile input on every protocol (issue #7): truncated and invalid JSON,
//! JSON that is not an object, 100,000 levels of nesting, numbers out of
//! range, invalid UTF-8, empty payloads, requests over `limits.max_request_size`,
//! frames and packets over the hard caps, broken MQTT packets and AMQP
//! messages that cannot be answered.
//!
//! Each test proves, for its protocol, that every bad payload gets the exact
//! Kuzzle error (status and `error.id`) or the documented close, that the same
//! connection then still answers a valid request wherever the protocol lets it
//! live, that healthy clients of every protocol, connected all along, keep
//! getting answers and notifications, that no connection is left behind in the
//! router, and that nothing panicked anywhere in the process (a panic hook
//! sees the panics tokio would otherwise swallow).

use std::time::Duration;

use futures_util::SinkExt;
use lapin::BasicProperties;
use protoplex_core::CoreConfig;
use protoplex_integration_tests::http::{HttpClient, HttpConnection, Reply};
use protoplex_integration_tests::mqtt::{self, RawMqtt, RawPacket, Version};
use protoplex_integration_tests::websocket::WsClient;
use protoplex_integration_tests::{Client, Kind, PATIENCE, Settings, TestServer, amqp, eventually, panics};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// `limits.max_request_size` of these tests: below the 1 MiB default, so that
/// the configured value is the one enforced, and above the 500 KB of 100,000
/// nested objects, so that nesting is refused for its depth, not its size.
const MAX_REQUEST: usize = 640 * 1024;
/// Levels of nesting of the deep payloads.
const DEPTH: usize = 100_000;
/// The WebSocket hard cap that follows from [`MAX_REQUEST`] (the automatic
/// `max_frame_size`: the larger of twice the limit and the limit + 64 KiB).
const WS_FRAME_CAP: usize = 2 * MAX_REQUEST;
/// The MQTT hard cap (remaining length) that follows from [`MAX_REQUEST`].
const MQTT_PACKET_CAP: usize = MAX_REQUEST + 64 * 1024;

const INVALID_ARGUMENT: &str = "api.assert.invalid_argument";
const TOO_LARGE: &str = "network.entrypoint.request_too_large";
const HTTP_TOO_LARGE: &str = "network.http.request_too_large";
const HTTP_BAD_BODY: &str = "network.http.body_parse_failed";
const KONCORDE: &str = "api.assert.koncorde_dsl_error";

/// A bad payload and the error it must get.
struct Case {
    name: &'static str,
    payload: Vec<u8>,
    status: u16,
    id: &'static str,
    /// The error id over HTTP, whose body parsing has errors of its own.
    http_id: &'static str,
}

fn case(name: &'static str, payload: impl Into<Vec<u8>>, status: u16, id: &'static str) -> Case {
    Case {
        name,
        payload: payload.into(),
        status,
        id,
        http_id: id,
    }
}

impl Case {
    /// Bytes that are not JSON: over HTTP, `network.http.body_parse_failed`
    /// (Kuzzle's HTTP error for a body it cannot parse).
    fn not_json(self) -> Self {
        Self {
            http_id: HTTP_BAD_BODY,
            ..self
        }
    }
}

/// A `server:now` request with one more field, written raw.
fn now_with(field: &str) -> String {
    format!(r#"{{"controller":"server","action":"now","requestId":"hostile","x":{field}}}"#)
}

/// A publish to the bystanders' room with a raw body.
fn publish_with(body: &str) -> String {
    format!(
        r#"{{"controller":"realtime","action":"publish","index":"hostile","collection":"watch","body":{body}}}"#
    )
}

/// A subscription with a raw filter.
fn subscribe_with(filter: &str) -> String {
    format!(
        r#"{{"controller":"realtime","action":"subscribe","index":"hostile","collection":"other","body":{filter}}}"#
    )
}

fn nested_arrays() -> String {
    format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH))
}

fn nested_objects() -> String {
    format!("{}1{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH))
}

fn huge_integer() -> String {
    format!("1{}", "0".repeat(9_999))
}

/// A valid `server:now` request of exactly `size` bytes.
fn request_of_size(size: usize) -> Vec<u8> {
    let empty = r#"{"controller":"server","action":"now","pad":""}"#;
    let pad = "x".repeat(size - empty.len());
    let request = format!(r#"{{"controller":"server","action":"now","pad":"{pad}"}}"#);
    assert_eq!(request.len(), size);
    request.into_bytes()
}

/// A filter nested `depth` levels deep (`not` in `not`...).
fn nested_filter(depth: usize) -> String {
    format!(
        r#"{}{{"exists":"n"}}{}"#,
        r#"{"not":"#.repeat(depth),
        "}".repeat(depth)
    )
}

/// A filter whose normalized form has 2^`terms` AND-clauses.
fn exploding_filter(terms: usize) -> String {
    let ors: Vec<String> = (0..terms)
        .map(|i| format!(r#"{{"or":[{{"equals":{{"a{i}":1}}}},{{"equals":{{"b{i}":2}}}}]}}"#))
        .collect();
    format!(r#"{{"and":[{}]}}"#, ors.join(","))
}

/// Bytes that are valid UTF-8 but not a valid request.
fn text_cases() -> Vec<Case> {
    let mut truncated = now_with("1").into_bytes();
    truncated.truncate(truncated.len() / 2);
    let huge = huge_integer();
    vec![
        case("truncated JSON", truncated, 400, INVALID_ARGUMENT).not_json(),
        case("invalid JSON", "{not json}", 400, INVALID_ARGUMENT).not_json(),
        case("an array", "[]", 400, INVALID_ARGUMENT),
        case("a number", "42", 400, INVALID_ARGUMENT),
        case("a string", r#""str""#, 400, INVALID_ARGUMENT),
        case("null", "null", 400, INVALID_ARGUMENT),
        case("100,000 nested arrays", nested_arrays(), 400, INVALID_ARGUMENT).not_json(),
        case(
            "100,000 nested arrays in a field",
            now_with(&nested_arrays()),
            400,
            INVALID_ARGUMENT,
        )
        .not_json(),
        case(
            "100,000 nested objects in a field",
            now_with(&nested_objects()),
            400,
            INVALID_ARGUMENT,
        )
        .not_json(),
        case("1e999999 in a field", now_with("1e999999"), 400, INVALID_ARGUMENT).not_json(),
        case(
            "a 10,000-digit integer in a field",
            now_with(&huge),
            400,
            INVALID_ARGUMENT,
        )
        .not_json(),
        case(
            "-1e999999 in a publish body",
            publish_with(r#"{"n":-1e999999}"#),
            400,
            INVALID_ARGUMENT,
        )
        .not_json(),
        case(
            "a 10,000-digit integer in a publish body",
            publish_with(&format!(r#"{{"n":{huge}}}"#)),
            400,
            INVALID_ARGUMENT,
        )
        .not_json(),
        case(
            "1e999999 in a subscribe filter",
            subscribe_with(r#"{"range":{"n":{"gt":1e999999}}}"#),
            400,
            INVALID_ARGUMENT,
        )
        .not_json(),
        case(
            "a 10,000-digit integer in a subscribe filter",
            subscribe_with(&format!(r#"{{"equals":{{"n":{huge}}}}}"#)),
            400,
            INVALID_ARGUMENT,
        )
        .not_json(),
        case(
            "a filter nested 120 levels deep",
            subscribe_with(&nested_filter(120)),
            400,
            KONCORDE,
        ),
        case(
            "a filter of 2^40 AND-clauses",
            subscribe_with(&exploding_filter(40)),
            400,
            KONCORDE,
        ),
        case(
            "a lone surrogate escape in a string",
            now_with(r#""\ud800""#),
            400,
            INVALID_ARGUMENT,
        )
        .not_json(),
        Case {
            http_id: HTTP_TOO_LARGE,
            ..case(
                "one byte over the request limit",
                request_of_size(MAX_REQUEST + 1),
                413,
                TOO_LARGE,
            )
        },
    ]
}

/// Bytes that are not UTF-8 (a text frame cannot carry them).
fn binary_cases() -> Vec<Case> {
    let mut in_string = br#"{"controller":"server","action":"now","x":""#.to_vec();
    in_string.extend_from_slice(b"\xff\xfe\xc3\x28");
    in_string.extend_from_slice(br#""}"#);
    vec![
        case("invalid UTF-8 in a JSON string", in_string, 400, INVALID_ARGUMENT).not_json(),
        case(
            "raw invalid UTF-8",
            &b"\xff\xfe\xfd\x00\x80"[..],
            400,
            INVALID_ARGUMENT,
        )
        .not_json(),
    ]
}

fn all_cases() -> Vec<Case> {
    let mut cases = text_cases();
    cases.extend(binary_cases());
    cases
}

fn assert_error(answer: &Value, status: u16, id: &str, what: &str) {
    assert_eq!(
        (answer["status"].as_u64(), answer["error"]["id"].as_str()),
        (Some(u64::from(status)), Some(id)),
        "{what}: {answer}"
    );
    assert_eq!(answer["error"]["status"], status, "{what}: {answer}");
    assert_eq!(answer["result"], Value::Null, "{what}: {answer}");
}

fn assert_alive(answer: &Value, what: &str) {
    assert_eq!(
        answer["status"], 200,
        "after {what}, the connection answers: {answer}"
    );
    assert!(
        answer["result"]["now"].as_u64().is_some(),
        "after {what}: {answer}"
    );
}

fn now_request() -> Value {
    json!({"controller":"server","action":"now"})
}

/// Clients of every protocol, subscribed to one room from the start, that
/// must keep getting answers and notifications whatever the others send.
struct Bystanders {
    clients: Vec<(Kind, Client)>,
    /// Their collection, unique: the AMQP notifications of every server on the
    /// broker go through one exchange, keyed by channel.
    collection: String,
    publisher: HttpClient,
    seq: u64,
}

impl Bystanders {
    async fn join(server: &TestServer) -> Self {
        let mut clients = Vec::new();
        let collection = amqp::unique("watch");
        for kind in Kind::SUBSCRIBERS {
            let mut client = server.client(kind).await;
            let subscribe = json!({"controller":"realtime","action":"subscribe","index":"hostile",
                                   "collection":collection,"body":{}});
            let answer = client.query(subscribe).await;
            assert_eq!(answer["status"], 200, "{kind:?}: {answer}");
            clients.push((kind, client));
        }
        Self {
            clients,
            collection,
            publisher: HttpClient::new(server.address),
            seq: 0,
        }
    }

    /// Publishes one message: every bystander gets it, then gets an answer.
    async fn check(&mut self, after: &str) {
        self.seq += 1;
        let answer = self
            .publisher
            .query(
                &json!({"controller":"realtime","action":"publish","index":"hostile",
                           "collection":self.collection,"body":{"seq": self.seq}}),
            )
            .await;
        assert_eq!(answer["status"], 200, "after {after}: {answer}");
        for (kind, client) in &mut self.clients {
            let notification = client
                .maybe_notification(PATIENCE)
                .await
                .unwrap_or_else(|| panic!("after {after}: {kind:?} bystander notified"));
            assert_eq!(
                notification["result"]["_source"]["seq"], self.seq,
                "after {after}: {kind:?} bystander, every message in order: {notification}"
            );
            assert_alive(&client.query(now_request()).await, after);
        }
    }

    async fn leave(self) {
        for (_, client) in self.clients {
            client.close().await;
        }
    }
}

/// A server with the small request limit, its bystanders, and the number of
/// connections the router holds with them alone.
async fn start() -> (TestServer, Bystanders, usize) {
    panics::watch();
    let mut core = CoreConfig::default();
    core.limits.max_request_size = MAX_REQUEST;
    let server = TestServer::start_settings(Settings {
        core,
        ..Settings::default()
    })
    .await;
    let bystanders = Bystanders::join(&server).await;
    let baseline = server.router.connection_count();
    assert_eq!(baseline, bystanders.clients.len());
    (server, bystanders, baseline)
}

/// The server still serves, holds no connection but the bystanders', and
/// nothing panicked.
async fn finish(server: TestServer, mut bystanders: Bystanders, baseline: usize) {
    bystanders.check("everything").await;
    let settled = eventually(|| async { server.router.connection_count() == baseline }).await;
    assert!(
        settled,
        "connections leaked: {} in the router, {baseline} expected",
        server.router.connection_count()
    );
    panics::assert_none();
    bystanders.leave().await;
    server.stop().await;
}

// --- HTTP -------------------------------------------------------------------

#[tokio::test]
async fn http_bad_bodies_get_errors_and_the_connection_keeps_serving() {
    let (server, mut bystanders, baseline) = start().await;
    let publish = "/hostile/watch/_publish";
    let json: Headers<'_> = &[("content-type", "application/json")];
    let gzip: Headers<'_> = &[("content-type", "application/json"), ("content-encoding", "gzip")];
    let mut cases: Vec<(&str, Headers<'_>, Case)> = all_cases()
        .into_iter()
        .map(|case| {
            let id = case.http_id;
            ("/_query", json, Case { id, ..case })
        })
        .collect();
    let bomb = gzipped(&request_of_size(4 * MAX_REQUEST));
    assert!(bomb.len() < MAX_REQUEST / 10, "a bomb: {} bytes", bomb.len());
    cases.extend([
        ("/_query", json, case("an empty body", "", 400, INVALID_ARGUMENT)),
        (
            publish,
            json,
            case("an empty message", "", 400, "api.assert.body_required"),
        ),
        (
            publish,
            json,
            case("a message that is an array", "[1]", 400, INVALID_ARGUMENT),
        ),
        (
            publish,
            json,
            case("1e999999 in a message", r#"{"n":1e999999}"#, 400, HTTP_BAD_BODY),
        ),
        (
            publish,
            json,
            case(
                "a 10,000-digit integer in a message",
                format!(r#"{{"n":{}}}"#, huge_integer()),
                400,
                HTTP_BAD_BODY,
            ),
        ),
        (
            publish,
            json,
            case(
                "100,000 nested arrays in a message",
                format!(r#"{{"n":{}}}"#, nested_arrays()),
                400,
                HTTP_BAD_BODY,
            ),
        ),
        // Compressed bodies: inflated within the limit, or refused.
        (
            "/_query",
            gzip,
            case("a gzip bomb inflating past the limit", bomb, 413, HTTP_TOO_LARGE),
        ),
        (
            "/_query",
            gzip,
            case("a body that is not gzip", "{}", 400, HTTP_BAD_BODY),
        ),
        (
            "/_query",
            gzip,
            case("gzipped invalid JSON", gzipped(b"{not json"), 400, HTTP_BAD_BODY),
        ),
        (
            "/_query",
            &[("content-encoding", "identity, identity, identity, identity")],
            case(
                "four encoding layers",
                "{}",
                400,
                "network.http.too_many_encodings",
            ),
        ),
        (
            "/_query",
            &[("content-encoding", "br")],
            case(
                "an unknown encoding",
                "{}",
                400,
                "network.http.unsupported_compression",
            ),
        ),
    ]);

    let mut connection = HttpConnection::open(server.address).await;
    for (path, headers, case) in &cases {
        let what = format!("POST {path} with {}", case.name);
        let reply = connection.request("POST", path, headers, &case.payload).await;
        assert_eq!(reply.status, case.status, "{what}");
        assert_error(&reply.json(), case.status, case.id, &what);
        if case.status == 413 {
            // The server does not read past the limit: that connection cannot go on.
            assert_eq!(reply.header("connection"), Some("close"), "{what}");
            assert!(
                connection.ends().await,
                "{what}: the server closes the connection"
            );
            connection = HttpConnection::open(server.address).await;
        } else {
            let now = connection.request("GET", "/_now", &[], b"").await;
            assert_alive(&now.json(), &what);
        }
        bystanders.check(&what).await;
    }

    // A Content-Length over the limit, whatever follows: refused at once,
    // without waiting for a body that never comes.
    let mut liar = HttpConnection::open(server.address).await;
    let head = format!(
        "POST /_query HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{{",
        MAX_REQUEST + 1
    );
    liar.write(head.as_bytes()).await;
    let reply = liar.reply().await.expect("an answer");
    assert_too_large(&reply, "a Content-Length over the limit");
    assert!(liar.ends().await, "closed after the 413");

    // A chunked body growing over the limit: refused as it is read.
    let mut chunked = HttpConnection::open(server.address).await;
    chunked
        .write(b"POST /_query HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
        .await;
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..=MAX_REQUEST / chunk.len() {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        // The server stops reading once over the limit.
        if !chunked.try_write(&framed).await {
            break;
        }
    }
    let reply = chunked.reply().await.expect("an answer");
    assert_too_large(&reply, "a chunked body over the limit");
    assert!(chunked.ends().await, "closed after the 413");

    // A Content-Length under the real size: the body is what it announced (a
    // truncated request, refused), the rest is not HTTP: the server answers
    // 400 and closes, without hanging.
    let mut short = HttpConnection::open(server.address).await;
    let body = request_of_size(MAX_REQUEST + 1000);
    let head =
        "POST /_query HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n";
    short.write(head.as_bytes()).await;
    // The server may close before reading it all: a failed write is no failure.
    short.try_write(&body).await;
    let reply = short.reply().await.expect("an answer");
    assert_eq!(reply.status, 400);
    assert_error(
        &reply.json(),
        400,
        HTTP_BAD_BODY,
        "a body cut by its Content-Length",
    );
    let garbage = short.reply().await.expect("an answer to the rest");
    assert_eq!(garbage.status, 400, "the rest is no request (hyper's bare 400)");
    assert!(short.ends().await, "closed after the garbage");

    // A Content-Length over the real size, then the client stops sending: the
    // body never completes.
    let mut long = HttpConnection::open(server.address).await;
    long.write(b"POST /_query HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"controller\"")
        .await;
    long.finish().await;
    let reply = long.reply().await.expect("an answer");
    let what = "a body ended before its Content-Length";
    assert_error(&reply.json(), 400, HTTP_BAD_BODY, what);
    assert!(long.ends().await);
    bystanders.check("lying Content-Lengths").await;
    finish(server, bystanders, baseline).await;
}

/// HTTP headers of a request.
type Headers<'a> = &'a [(&'a str, &'a str)];

fn gzipped(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

fn assert_too_large(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 413, "{what}");
    assert_error(&reply.json(), 413, HTTP_TOO_LARGE, what);
    assert_eq!(reply.header("connection"), Some("close"), "{what}");
}

// --- WebSocket ----------------------------------------------------------------

async fn send_frame(client: &mut WsClient, binary: bool, payload: &[u8]) {
    let message = if binary {
        Message::binary(payload.to_vec())
    } else {
        Message::text(String::from_utf8(payload.to_vec()).expect("UTF-8 for a text frame"))
    };
    client.stream().send(message).await.expect("send frame");
}

#[tokio::test]
async fn websocket_bad_frames_get_errors_and_the_connection_survives() {
    let (server, mut bystanders, baseline) = start().await;
    for binary in [false, true] {
        let kind = if binary { "binary" } else { "text" };
        let mut client = WsClient::connect(server.address).await;
        let cases = if binary { all_cases() } else { text_cases() };
        for case in &cases {
            let what = format!("{kind} frame with {}", case.name);
            send_frame(&mut client, binary, &case.payload).await;
            let answer = client.next_frame().await;
            assert_error(&answer, case.status, case.id, &what);
            assert_eq!(answer["room"], answer["requestId"], "{what}: {answer}");
            assert_alive(&client.query(now_request()).await, &what);
            bystanders.check(&what).await;
        }

        // An empty frame is ignored, as Kuzzle does: no answer, no harm.
        send_frame(&mut client, binary, b"").await;
        assert_eq!(
            client.maybe_notification(Duration::from_millis(200)).await,
            None,
            "empty {kind} frame: no answer"
        );
        assert_alive(&client.query(now_request()).await, "an empty frame");

        // Over the hard cap: closed with 1009.
        let mut oversized = WsClient::connect(server.address).await;
        send_frame(&mut oversized, binary, &request_of_size(WS_FRAME_CAP + 1)).await;
        let close = oversized.closed().await.expect("a close frame");
        assert_eq!(u16::from(close.code), 1009, "{kind} frame over the hard cap");
        assert_alive(
            &client.query(now_request()).await,
            "another client's oversized frame",
        );
        bystanders.check("a frame over the hard cap").await;
    }

    // Frames that break the WebSocket protocol: a text frame that is not
    // UTF-8 (1007), a continuation frame continuing nothing (1002).
    let broken = [
        ("a text frame that is not UTF-8", OpCode::Data(Data::Text), 1007),
        ("a continuation frame first", OpCode::Data(Data::Continue), 1002),
    ];
    for (what, opcode, code) in broken {
        let mut client = WsClient::connect(server.address).await;
        let frame = Frame::message(&b"{\"x\":\"\xff\xfe\"}"[..], opcode, true);
        client
            .stream()
            .send(Message::Frame(frame))
            .await
            .expect("send frame");
        let close = client.closed().await.expect("a close frame");
        assert_eq!(u16::from(close.code), code, "{what}");
        bystanders.check(what).await;
    }
    finish(server, bystanders, baseline).await;
}

// --- MQTT publishes ------------------------------------------------------------

#[tokio::test]
async fn mqtt_bad_publishes_get_errors_and_the_connection_survives() {
    let (server, mut bystanders, baseline) = start().await;
    for version in [Version::V311, Version::V5] {
        let mut client = mqtt::MqttClient::connect(server.mqtt_address, version).await;
        let mut cases = all_cases();
        cases.push(case("an empty payload", "", 400, INVALID_ARGUMENT));
        // Over the request limit but within the packet cap: read, answered 413.
        cases.push(case(
            "a request just under the packet cap",
            request_of_size(MQTT_PACKET_CAP - 1024),
            413,
            TOO_LARGE,
        ));
        for case in &cases {
            let what = format!("MQTT {version:?} publish of {}", case.name);
            let answer = client.query_raw(case.payload.clone()).await;
            assert_error(&answer, case.status, case.id, &what);
            assert_alive(&client.query(now_request()).await, &what);
            bystanders.check(&what).await;
        }
    }
    finish(server, bystanders, baseline).await;
}

// --- MQTT broken packets --------------------------------------------------------

/// MQTT 5 DISCONNECT reason codes.
const MALFORMED: u8 = 0x81;
const PROTOCOL_ERROR: u8 = 0x82;
const PACKET_TOO_LARGE: u8 = 0x95;

/// What the server must do with a connection after a broken packet: MQTT 5
/// gets a DISCONNECT with `reason`, then the end; MQTT 3.1.1 only the end.
fn assert_closed_with(packets: &[RawPacket], version: Version, reason: u8, what: &str) {
    match version {
        Version::V311 => assert!(packets.is_empty(), "{what}: nothing but the end: {packets:?}"),
        Version::V5 => {
            assert_eq!(
                packets.len(),
                1,
                "{what}: one DISCONNECT, then the end: {packets:?}"
            );
            assert_eq!(packets[0].kind(), 14, "{what}: a DISCONNECT: {packets:?}");
            assert_eq!(
                packets[0].body.first(),
                Some(&reason),
                "{what}: its reason: {packets:?}"
            );
        }
    }
}

#[tokio::test]
async fn mqtt_broken_packets_close_the_connection_cleanly() {
    let (server, mut bystanders, baseline) = start().await;
    let mqtt_clients = server.mqtt.connection_count();
    for version in [Version::V311, Version::V5] {
        let request = mqtt::REQUEST_TOPIC.as_bytes();
        let mut broken: Vec<(&str, Vec<u8>, u8)> = vec![
            (
                "a remaining length over 4 bytes",
                vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
                MALFORMED,
            ),
            ("packet type 0", mqtt::packet(0x00, &[0, 0]), PROTOCOL_ERROR),
            ("packet type 15", mqtt::packet(0xF0, &[0]), PROTOCOL_ERROR),
            (
                "a PUBLISH whose topic runs past its end",
                mqtt::packet(0x30, &[0x00, 0x40, b'a', b'b']),
                MALFORMED,
            ),
            (
                "a QoS 1 PUBLISH whose topic runs past its end",
                mqtt::packet(0x32, &[0x00, 0x40, b'a', b'b']),
                MALFORMED,
            ),
            (
                "a PUBLISH with QoS 3",
                mqtt::publish_packet(version, request, b"{}", 3, 1),
                MALFORMED,
            ),
            (
                "a PUBLISH whose topic is not UTF-8",
                mqtt::publish_packet(version, b"\xff\xfe", b"{}", 0, 0),
                MALFORMED,
            ),
            (
                "a second CONNECT",
                mqtt::connect_packet(version, "again"),
                PROTOCOL_ERROR,
            ),
            // Only the fixed header: refused before its body is read.
            (
                "a packet over the size cap",
                [0x30]
                    .into_iter()
                    .chain(mqtt::remaining_length(MQTT_PACKET_CAP + 1))
                    .collect(),
                PACKET_TOO_LARGE,
            ),
            (
                "a SUBSCRIBE whose filter runs past its end",
                mqtt::packet(0x82, &[0x00, 0x01, 0x00, 0x00, 0x40, b'a']),
                MALFORMED,
            ),
            ("a PUBACK too short", mqtt::packet(0x40, &[0x00]), MALFORMED),
        ];
        if version == Version::V5 {
            // Properties, which only MQTT 5 has (after the request topic).
            let topic_then = |properties: &[u8]| {
                let mut body = (request.len() as u16).to_be_bytes().to_vec();
                body.extend_from_slice(request);
                body.extend_from_slice(properties);
                mqtt::packet(0x30, &body)
            };
            broken.extend([
                (
                    "PUBLISH properties running past the end",
                    topic_then(&[0x7F]),
                    MALFORMED,
                ),
                (
                    "a user property running past the end",
                    topic_then(&[0x05, 0x26, 0x00, 0x50, b'a', b'b']),
                    MALFORMED,
                ),
                (
                    "correlation data running past the end",
                    topic_then(&[0x03, 0x09, 0x40, 0x00]),
                    MALFORMED,
                ),
            ]);
        }
        for (name, bytes, reason) in broken {
            let what = format!("MQTT {version:?}: {name}");
            let mut client = RawMqtt::connect(server.mqtt_address, version).await;
            assert_eq!(
                client.query(&now_request()).await["status"],
                200,
                "{what}: first a valid request"
            );
            client.send(&bytes).await;
            let packets = client.until_end().await;
            assert_closed_with(&packets, version, reason, &what);
            assert!(!client.was_reset(), "{what}: closed, not reset");
            bystanders.check(&what).await;
        }

        // Before CONNECT: no session, no answer but a refusing CONNACK for a
        // protocol level it does not speak.
        let mut old = vec![0x00, 0x06];
        old.extend_from_slice(b"MQIsdp");
        old.extend_from_slice(&[0x03, 0x02, 0x00, 0x3C, 0x00, 0x01, b'x']);
        let before_connect: Vec<(&str, Vec<u8>, Vec<RawPacket>)> = vec![
            (
                "a PUBLISH first",
                mqtt::publish_packet(version, request, b"{}", 0, 0),
                vec![],
            ),
            (
                "a remaining length over 4 bytes first",
                vec![0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
                vec![],
            ),
            ("packet type 0 first", vec![0x00, 0x00], vec![]),
            (
                "a CONNECT over the size cap",
                [0x10]
                    .into_iter()
                    .chain(mqtt::remaining_length(MQTT_PACKET_CAP + 1))
                    .collect(),
                vec![],
            ),
            (
                "a CONNECT cut short",
                mqtt::packet(0x10, &[0x00, 0x04, b'M', b'Q']),
                vec![],
            ),
            (
                "MQTT 3.1",
                mqtt::packet(0x10, &old),
                vec![RawPacket {
                    byte1: 0x20,
                    body: vec![0x00, 0x01],
                }],
            ),
        ];
        for (name, bytes, expected) in before_connect {
            let what = format!("MQTT {version:?} handshake: {name}");
            let mut client = RawMqtt::open(server.mqtt_address, version).await;
            client.send(&bytes).await;
            assert_eq!(client.until_end().await, expected, "{what}");
            assert!(!client.was_reset(), "{what}: closed, not reset");
            bystanders.check(&what).await;
        }
    }
    let gone = eventually(|| async { server.mqtt.connection_count() == mqtt_clients }).await;
    assert!(gone, "every broken connection left the MQTT protocol");
    finish(server, bystanders, baseline).await;
}

// --- AMQP -----------------------------------------------------------------------

#[tokio::test]
async fn amqp_bad_messages_get_errors_and_the_consumer_keeps_consuming() {
    let (server, mut bystanders, baseline) = start().await;
    let config = &server.amqp_config;
    let mut client = amqp::AmqpClient::connect(&config.exchange, &config.routing_key).await;
    let mut cases = all_cases();
    cases.push(case("an empty body", "", 400, INVALID_ARGUMENT));
    cases.push(case("a 4 MiB body", request_of_size(4 << 20), 413, TOO_LARGE));
    for case in &cases {
        let what = format!("AMQP message with {}", case.name);
        let answer = client.query_raw(&case.payload).await;
        assert_error(&answer, case.status, case.id, &what);
        assert_alive(&client.query(now_request()).await, &what);
        bystanders.check(&what).await;
    }
    let with_client = baseline + 1;
    assert_eq!(server.router.connection_count(), with_client);

    // Without reply_to: nobody to answer, but a valid request still runs (the
    // bystanders get this publish) and a bad one is dropped.
    let properties = BasicProperties::default;
    client.publish_raw(b"{not json", properties()).await;
    client
        .publish_raw(&request_of_size(MAX_REQUEST + 1), properties())
        .await;
    bystanders.seq += 1;
    let publish = json!({"controller":"realtime","action":"publish","index":"hostile",
                         "collection":bystanders.collection,"body":{"seq": bystanders.seq}});
    client
        .publish_raw(publish.to_string().as_bytes(), properties())
        .await;
    for (kind, bystander) in &mut bystanders.clients {
        let notification = bystander.notification().await;
        assert_eq!(
            notification["result"]["_source"]["seq"], bystanders.seq,
            "{kind:?}: {notification}"
        );
        assert_eq!(notification["protocol"], "amqp");
    }
    assert_alive(&client.query(now_request()).await, "messages without reply_to");

    // A reply_to naming no queue: answers are unroutable; the connection made
    // for the valid request goes with them.
    let nowhere = amqp::unique("no.such.queue");
    for payload in [
        now_request().to_string().into_bytes(),
        b"[]".to_vec(),
        request_of_size(MAX_REQUEST + 1),
    ] {
        let properties = BasicProperties::default()
            .with_reply_to(nowhere.as_str().into())
            .with_correlation_id("lost".into());
        client.publish_raw(&payload, properties).await;
    }
    assert_alive(&client.query(now_request()).await, "messages to a missing queue");
    let gone = eventually(|| async { server.router.connection_count() == with_client }).await;
    assert!(
        gone,
        "the missing queue's connection is removed: {}",
        server.router.connection_count()
    );
    bystanders.check("messages to a missing queue").await;

    client.close().await;
    finish(server, bystanders, baseline).await;
}

// --- Filters ------------------------------------------------------------------------

/// Numbers at the edge of f64 are valid JSON: filters and messages holding
/// them work as any other.
#[tokio::test]
async fn huge_finite_numbers_in_filters_and_messages_work() {
    let (server, mut bystanders, baseline) = start().await;
    let mut subscriber = server.client(Kind::WebSocket).await;
    let answer = subscriber
        .query(
            json!({"controller":"realtime","action":"subscribe","index":"hostile","collection":"edge",
                      "body":{"range":{"n":{"gt":1e308}}}}),
        )
        .await;
    assert_eq!(answer["status"], 200, "{answer}");
    let mut publisher = server.client(Kind::Mqtt5).await;
    for (n, delivered) in [
        (f64::MAX, true),
        (-f64::MAX, false),
        (1e308, false),
        (5e-324, false),
    ] {
        let answer = publisher
            .query(
                json!({"controller":"realtime","action":"publish","index":"hostile","collection":"edge",
                          "body":{"n": n}}),
            )
            .await;
        assert_eq!(answer["status"], 200, "{answer}");
        let notification = subscriber.maybe_notification(Duration::from_millis(300)).await;
        assert_eq!(notification.is_some(), delivered, "{n}: {notification:?}");
        if let Some(notification) = notification {
            assert_eq!(notification["result"]["_source"]["n"], n);
        }
    }
    bystanders.check("huge numbers").await;
    drop(subscriber);
    drop(publisher);
    finish(server, bystanders, baseline).await;
}
