//! # protoplex-fuzz
//!
//! The bodies of protoplex's fuzz targets, one function per target, so that
//! the libFuzzer binaries of `fuzz_targets/` (built by `cargo fuzz`) and the
//! corpus replay of `tests/replay.rs` (plain `cargo test`, stable, no
//! libFuzzer) run the same code. Each function takes any bytes, never fails on
//! them, and panics only when a property of the code under test is broken:
//!
//! - [`request_parser`]: a Kuzzle request from JSON bytes, and its response;
//! - [`filter`]: Koncorde filters (validation, normalization, storage,
//!   matching) checked against boolean identities;
//! - [`http_router`]: an HTTP request head and body to an API request;
//! - [`mqtt_packets`]: bytes from an MQTT client, CONNECT handshake first.
//!
//! See `fuzz/README.md` for how to run them and what they found.

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::sync::LazyLock;

use bytes::BytesMut;
use protoplex_core::filter::{DEFAULT_MAX_CONDITIONS, FilterEngine, FilterId};
use protoplex_core::request::{RejectedRequest, RequestEcho};
use protoplex_core::{
    ActionCall, ActionSpec, ApiError, BoxFuture, Controller, CoreConfig, Request, Response, Router,
};
use protoplex_http::fuzzing::{self as http, Outcome, Routes};
use protoplex_mqtt::fuzzing::packets::{
    PingResp, PubAck, PubAckReason, PubComp, PubCompReason, PubRec, PubRecReason, QoS, SubAck,
    SubscribeReasonCode, UnsubAck, UnsubAckReason,
};
use protoplex_mqtt::fuzzing::{self as mqtt, Codec, Packet, ReadError, Received, Route, Rules};
use serde_json::{Value, json};

/// The node id responses are built with.
const NODE: &str = "fuzz-node";

/// Keys a request object turns into fields rather than arguments.
const REQUEST_KEYS: [&str; 9] = [
    "controller",
    "action",
    "requestId",
    "index",
    "collection",
    "_id",
    "body",
    "volatile",
    "jwt",
];

// ------------------------------------------------------------ request parser

/// Target `request_parser`: `Request::from_slice` on the bytes, as every
/// protocol does with a payload.
///
/// Checked: an accepted request has a controller and an action, came from a
/// JSON object, parses again to itself once written back as an object, and
/// its responses (success, failure) serialize to JSON that echoes it; a
/// refused one gets a 4xx error response echoing what was readable.
pub fn request_parser(data: &[u8]) {
    match Request::from_slice(data) {
        Ok(request) => {
            assert!(
                matches!(serde_json::from_slice::<Value>(data), Ok(Value::Object(_))),
                "accepted a payload that is not a JSON object"
            );
            check_request(&request);
        }
        Err(rejected) => check_rejected(&rejected),
    }
}

/// The properties of any request the parser or a protocol built.
fn check_request(request: &Request) {
    assert!(!request.controller.is_empty() && !request.action.is_empty());
    for key in request.args.keys() {
        assert!(
            !REQUEST_KEYS.contains(&key.as_str()),
            "known key {key:?} left in args"
        );
    }

    // Written back as an object, the request parses to itself.
    let mut object = request.args.clone();
    object.insert("controller".into(), request.controller.clone().into());
    object.insert("action".into(), request.action.clone().into());
    object.insert("requestId".into(), request.request_id.clone().into());
    for (key, value) in [
        ("index", &request.index),
        ("collection", &request.collection),
        ("_id", &request.id),
        ("jwt", &request.jwt),
    ] {
        if let Some(value) = value {
            object.insert(key.into(), value.clone().into());
        }
    }
    if let Some(body) = &request.body {
        object.insert("body".into(), body.clone());
    }
    if let Some(volatile) = &request.volatile {
        object.insert("volatile".into(), Value::Object(volatile.clone()));
    }
    let mut again = Request::from_object(object).expect("a parsed request parses again");
    again.timestamp = request.timestamp;
    assert_eq!(&again, request, "a parsed request written back parses to itself");

    // Its responses serialize and echo it.
    let success = Response::success(request, json!({"fuzz": true}), NODE);
    check_response_json(&success, Some(&request.request_id), 200);
    let failure = Response::failure(request, &ApiError::BodyRequired, NODE);
    check_response_json(&failure, Some(&request.request_id), 400);
}

/// The properties of a refused request.
fn check_rejected(rejected: &RejectedRequest) {
    check_refusal(&rejected.echo, &rejected.error);
}

/// A refusal's error response is a 4xx (or 5xx) echoing what was readable.
fn check_refusal(echo: &RequestEcho, error: &ApiError) {
    let status = error.status();
    assert!((400..600).contains(&status), "refusal with status {status}");
    assert!(!error.to_kuzzle().id.is_empty());
    let response = Response::rejected(echo, error, NODE);
    check_response_json(&response, echo.request_id.as_ref(), status);
}

/// Every serialized form of `response` is JSON with its id, status and echo.
fn check_response_json(response: &Response, request_id: Option<&String>, status: u16) {
    assert_eq!(response.status, status);
    let compact: Value = serde_json::from_slice(&response.to_bytes()).expect("response JSON");
    let pretty: Value = serde_json::from_slice(&response.to_pretty_bytes()).expect("pretty JSON");
    let with_room: Value = serde_json::from_slice(&response.to_bytes_with_room()).expect("room JSON");
    for value in [&compact, &pretty, &with_room] {
        assert_eq!(value["status"], json!(status));
        assert_eq!(value["node"], json!(NODE));
        if let Some(id) = request_id {
            assert_eq!(value["requestId"], json!(id));
        }
        assert_eq!(value["controller"], json!(response.controller));
        assert_eq!(value["action"], json!(response.action));
        let volatile_keys = |value: &Value| {
            value["volatile"]
                .as_object()
                .map(|volatile| volatile.keys().cloned().collect::<Vec<_>>())
        };
        assert_eq!(
            volatile_keys(value),
            response.volatile.as_ref().map(|v| v.keys().cloned().collect())
        );
    }
    assert_eq!(with_room["room"], compact["requestId"]);
    let parsed: Response = serde_json::from_slice(&response.to_bytes()).expect("a Response again");
    assert_eq!(
        (&parsed.request_id, parsed.status, &parsed.error),
        (&response.request_id, response.status, &response.error)
    );
}

// ---------------------------------------------------------------- filter DSL

/// Target `filter`: the bytes are a stream of JSON values: a filter `F`, a
/// filter `G`, then documents (at most 16; `{}` is always added).
///
/// `F`, `G` and filters built from them (`not F`, `not not F`, `F and G`,
/// `G and F`, `F or G`, `bool {must F, must_not G}`) are normalized twice (in
/// two engines: same outcome, same id), stored in one engine, and every
/// document is matched: the results must follow the boolean identities (`not
/// F` matches exactly when `F` does not...), double negation and reordering
/// must keep the id, and removing `F` must change nothing for the others.
pub fn filter(data: &[u8]) {
    let mut values = serde_json::Deserializer::from_slice(data).into_iter::<Value>();
    let Some(Ok(f)) = values.next() else {
        return;
    };
    let g = match values.next() {
        Some(Ok(g)) => g,
        _ => json!({}),
    };
    let mut documents: Vec<Value> = values.map_while(Result::ok).take(16).collect();
    documents.push(json!({}));

    let filters = [
        f.clone(),
        g.clone(),
        json!({"not": f}),
        json!({"not": {"not": f}}),
        json!({"and": [f, g]}),
        json!({"and": [g, f]}),
        json!({"or": [f, g]}),
        json!({"bool": {"must": [f], "must_not": [g]}}),
    ];
    const F: usize = 0;
    const G: usize = 1;
    const NOT_F: usize = 2;
    const NOT_NOT_F: usize = 3;
    const F_AND_G: usize = 4;
    const G_AND_F: usize = 5;
    const F_OR_G: usize = 6;
    const F_BUT_G: usize = 7;

    let mut engine = FilterEngine::new(DEFAULT_MAX_CONDITIONS);
    let other = FilterEngine::new(DEFAULT_MAX_CONDITIONS);
    let mut ids: Vec<Option<FilterId>> = Vec::with_capacity(filters.len());
    for raw in &filters {
        let normalized = engine.normalize("i", "c", raw);
        let again = other.normalize("i", "c", raw);
        match (&normalized, &again) {
            (Ok(a), Ok(b)) => assert_eq!(a.id(), b.id(), "normalization is deterministic: {raw}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("normalization is deterministic: {raw}"),
        }
        ids.push(normalized.ok().map(|normalized| {
            assert_eq!((normalized.index(), normalized.collection()), ("i", "c"));
            let id = normalized.id().clone();
            assert_eq!(engine.store(normalized), id);
            id
        }));
    }
    if let (Some(f_id), Some(elsewhere)) = (&ids[F], other.normalize("i", "d", &filters[F]).ok()) {
        assert_ne!(f_id, elsewhere.id(), "a filter's id depends on its collection");
    }
    if let (Some(a), Some(b)) = (&ids[F], &ids[NOT_NOT_F]) {
        assert_eq!(a, b, "double negation keeps the id: {}", filters[F]);
    }
    if let (Some(a), Some(b)) = (&ids[F_AND_G], &ids[G_AND_F]) {
        assert_eq!(a, b, "reordered operands keep the id");
    }
    let stored: HashSet<FilterId> = ids.iter().flatten().cloned().collect();
    assert_eq!(engine.len(), stored.len());

    let matching = |engine: &FilterEngine, document: &Value, id: Option<&str>| {
        let found: Vec<FilterId> = engine.test("i", "c", document, id);
        let set: HashSet<FilterId> = found.iter().cloned().collect();
        assert_eq!(set.len(), found.len(), "a filter found twice");
        assert!(engine.test("i", "other", document, id).is_empty());
        set
    };
    let mut before = Vec::with_capacity(documents.len() * 2);
    for document in &documents {
        for id in [None, Some("1")] {
            let found = matching(&engine, document, id);
            assert!(found.is_subset(&stored), "found a filter never stored");
            let hit = |index: usize| ids[index].as_ref().map(|id| found.contains(id));
            let context = || {
                format!(
                    "F = {}, G = {}, document = {document}, id = {id:?}",
                    filters[F], filters[G]
                )
            };
            let (f, g) = (hit(F), hit(G));
            if let (Some(f), Some(not_f)) = (f, hit(NOT_F)) {
                assert_eq!(not_f, !f, "not F: {}", context());
            }
            if let (Some(f), Some(g), Some(both)) = (f, g, hit(F_AND_G)) {
                assert_eq!(both, f && g, "F and G: {}", context());
            }
            if let (Some(f), Some(g), Some(either)) = (f, g, hit(F_OR_G)) {
                assert_eq!(either, f || g, "F or G: {}", context());
            }
            if let (Some(f), Some(g), Some(but)) = (f, g, hit(F_BUT_G)) {
                assert_eq!(but, f && !g, "bool must F must_not G: {}", context());
            }
            before.push(found);
        }
    }

    // Removing F leaves every other filter matching as before.
    if let Some(f_id) = &ids[F] {
        assert!(engine.remove(f_id));
        assert!(!engine.remove(f_id));
        let mut previous = before.iter();
        for document in &documents {
            for id in [None, Some("1")] {
                let found = matching(&engine, document, id);
                let mut expected = previous.next().cloned().unwrap_or_default();
                expected.remove(f_id);
                assert_eq!(found, expected, "removing F changed other matches");
            }
        }
        assert_eq!(engine.len(), stored.len() - 1);
    }
}

// --------------------------------------------------------------- HTTP router

/// A controller with Kuzzle-like document routes, so that the route table has
/// placeholders at every depth (and statics competing with them).
struct Documents;

impl Controller for Documents {
    fn name(&self) -> &str {
        "document"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        vec![
            ActionSpec::new("get").with_http("get", "/:index/:collection/:_id"),
            ActionSpec::new("create")
                .with_http("post", "/:index/:collection/_create")
                .with_http("put", "/:index/:collection/:_id/_create"),
            ActionSpec::new("update").with_http("put", "/:index/:collection/:_id/_update"),
            ActionSpec::new("delete").with_http("delete", "/:index/:collection/:_id"),
            ActionSpec::new("search").with_http("post", "/:index/:collection/_search"),
            ActionSpec::new("exists").with_http("head", "/:index/:collection/:_id"),
            ActionSpec::new("mGet").with_http("get", "/:index/:collection/_mGet"),
            ActionSpec::new("validate").with_http("patch", "/_validate/:index/:collection"),
            ActionSpec::new("info").with_http("get", "/_foo/:name/_bar"),
        ]
    }

    fn execute<'a>(&'a self, _call: ActionCall<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async { Ok(Value::Null) })
    }
}

/// The route table of a router with the built-in controllers and [`Documents`].
static ROUTES: LazyLock<Routes> = LazyLock::new(|| {
    let router = Router::builder(CoreConfig::default())
        .controller(Documents)
        .build()
        .expect("router");
    Routes::of(&router)
});

/// The body limit of the HTTP target (small, to reach the limits).
const HTTP_MAX_BODY: usize = 64 * 1024;

/// Target `http_router`: the bytes are a request as text: the request line
/// (`METHOD target`), header lines (`name: value`), an empty line, the body.
/// The head goes through the route table, the query-string parser, body
/// decoding and the request builder, as the HTTP handler takes it.
///
/// Checked: route lookup is deterministic and gives the same route and
/// arguments for the path written in canonical form (parts decoded and
/// re-encoded, a trailing slash added); a built request has the route's
/// controller and action and its placeholders as arguments, and passes the
/// request checks of [`request_parser`]; a refusal is a 4xx or 5xx error.
pub fn http_router(data: &[u8]) {
    let (line, rest) = split_line(data);
    let Ok(line) = std::str::from_utf8(line) else {
        return;
    };
    let (method, target) = line.split_once(' ').unwrap_or((line, "/"));
    let target = target.trim_end_matches(" HTTP/1.1");
    let mut headers: Vec<(&[u8], &[u8])> = Vec::new();
    let mut rest = rest;
    let body = loop {
        if rest.is_empty() {
            break rest;
        }
        let (line, after) = split_line(rest);
        rest = after;
        if line.is_empty() {
            break rest;
        }
        let (name, value) = match line.iter().position(|&byte| byte == b':') {
            Some(colon) => (&line[..colon], &line[colon + 1..]),
            None => (line, &b""[..]),
        };
        headers.push((name, value.trim_ascii()));
    };

    let query = http::path_and_query(target).map(|(path, query)| {
        check_route_lookup(method, &path);
        let query = http::parse_query(query.as_deref());
        for (key, value) in &query {
            assert!(!key.is_empty());
            let scalar = |value: &Value| matches!(value, Value::String(_) | Value::Bool(true));
            assert!(
                scalar(value) || value.as_array().is_some_and(|values| values.iter().all(scalar)),
                "query value {value}"
            );
        }
        query
    });

    match http::head_to_request(&ROUTES, method, target, &headers, body, HTTP_MAX_BODY) {
        Outcome::BadHead | Outcome::Preflight => {}
        Outcome::Refused { error, echo } => check_refusal(&echo, &error),
        Outcome::Execute {
            route,
            request,
            connection,
            pretty,
        } => {
            check_request(&request);
            assert_eq!(&*connection.protocol, "http");
            if let (Some(controller), Some(action)) = (&route.controller, &route.action) {
                assert_eq!((&request.controller, &request.action), (controller, action));
            }
            for (name, value) in &route.arguments {
                let field = match name.as_str() {
                    "index" => request.index.as_ref(),
                    "collection" => request.collection.as_ref(),
                    "_id" => request.id.as_ref(),
                    _ => {
                        assert_eq!(request.args.get(name), Some(&Value::String(value.clone())));
                        continue;
                    }
                };
                assert_eq!(field, Some(value), "placeholder {name}");
            }
            let query_pretty = query.is_some_and(|query| query.contains_key("pretty"));
            assert_eq!(pretty, query_pretty);
        }
    }
}

/// Route lookup: deterministic, and blind to how the path is written.
fn check_route_lookup(method: &str, path: &str) {
    let found = ROUTES.find(method, path);
    assert_eq!(ROUTES.find(method, path), found, "route lookup is deterministic");
    let canonical: Vec<String> = path
        .split('/')
        .filter(|part| !part.is_empty())
        .map(|part| percent_encode(&http::percent_decode(part, false)))
        .collect();
    let canonical = format!("/{}/", canonical.join("/"));
    assert_eq!(
        ROUTES.find(method, &canonical),
        found,
        "{path:?} and {canonical:?} lead to different routes"
    );
    if let Some(route) = &found {
        let placeholders = route.arguments.len();
        assert!(placeholders <= path.split('/').filter(|part| !part.is_empty()).count());
    }
}

/// Percent-encodes every byte but the unreserved ones.
fn percent_encode(part: &str) -> String {
    let mut out = String::with_capacity(part.len() * 3);
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Splits at the first `\n` (a `\r` before it dropped).
fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&byte| byte == b'\n') {
        Some(end) => {
            let line = &data[..end];
            (line.strip_suffix(b"\r").unwrap_or(line), &data[end + 1..])
        }
        None => (data, &[]),
    }
}

// ------------------------------------------------------------ MQTT packets

/// Packet size limits the MQTT target picks from.
const MQTT_MAX_PACKETS: [usize; 4] = [1 << 20, 256, 16, 65_536];
/// Read sizes the MQTT target picks from (`usize::MAX`: everything at once).
const MQTT_CHUNKS: [usize; 8] = [usize::MAX, 1, 2, 3, 5, 8, 64, 512];
/// The default request and response topics.
const REQUEST_TOPIC: &str = "Kuzzle/request";
const RESPONSE_TOPIC: &str = "Kuzzle/response";

/// Target `mqtt_packets`: the first byte chooses the setting (bits 0-1: CONNECT
/// handshake first (0, 3), or straight to an MQTT 3.1.1 (1) or 5.0 (2)
/// codec; bit 2: `allow_pub_sub`; bits 3-4: packet size limit; bits 5-7: how
/// many bytes each socket read brings); the rest is what the client sends.
///
/// Every packet is read through the codec the server uses, as the server
/// reads (buffer filled a chunk at a time; stops at the first error, but
/// goes on after a refused packet type to check that its frame was dropped),
/// then answered as the server answers (CONNACK, PUBACK, PUBREC, PUBCOMP,
/// SUBACK, UNSUBACK, PINGRESP), with requests on the request topic run through
/// the [`request_parser`] checks.
///
/// Checked: no panic; a read packet consumed exactly the frame its fixed
/// header announced, and a packet left unread is not whole yet; an oversized
/// one is refused; every answer encodes; bytes read past the CONNECT are kept;
/// a PUBLISH re-encoded by the server's writer reads back the same; the topic
/// rules agree with topic validity and matching.
pub fn mqtt_packets(data: &[u8]) {
    let Some((&setting, rest)) = data.split_first() else {
        return;
    };
    let pub_sub = setting & 0b100 != 0;
    let max_packet = MQTT_MAX_PACKETS[usize::from((setting >> 3) & 0b11)];
    let chunk = MQTT_CHUNKS[usize::from(setting >> 5)];
    let mut buffer = BytesMut::new();
    let (codec, pending) = match setting & 0b11 {
        mode @ (1 | 2) => (Codec::new(mode == 2), rest),
        _ => {
            let (outcome, read) = mqtt::handshake(rest, chunk, &mut buffer, max_packet, pub_sub);
            assert!(read <= rest.len());
            match outcome {
                Ok(accepted) => {
                    assert!(buffer.len() <= read);
                    assert_eq!(
                        &buffer[..],
                        &rest[read - buffer.len()..read],
                        "bytes read past the CONNECT are kept"
                    );
                    assert!(!accepted.client_id.is_empty());
                    if accepted.assigned_id {
                        assert!(accepted.client_id.starts_with("protoplex-"));
                    }
                    let connack = accepted.connack.expect("the accepting CONNACK encodes");
                    check_connack(&connack);
                    (accepted.codec, &rest[read..])
                }
                Err(refused) => {
                    if let Some(connack) = refused.connack {
                        check_connack(&connack.expect("a refusing CONNACK encodes"));
                    }
                    return;
                }
            }
        }
    };
    let mut connection = MqttConnection {
        codec,
        rules: Rules::new(REQUEST_TOPIC, RESPONSE_TOPIC, pub_sub),
        max_packet,
        topics: Vec::new(),
    };
    connection.run(buffer, pending, chunk);
}

/// A CONNACK as written: one whole frame of type 2.
fn check_connack(connack: &[u8]) {
    let header = mqtt::peek_header(connack)
        .expect("CONNACK header")
        .expect("whole CONNACK header");
    assert_eq!(header.byte1 >> 4, 2);
    assert_eq!(header.header_len + header.remaining_len, connack.len());
}

/// The reading side of one MQTT connection.
struct MqttConnection {
    codec: Codec,
    rules: Rules,
    max_packet: usize,
    /// Valid topic names published so far (at most 16), for the matching checks.
    topics: Vec<String>,
}

impl MqttConnection {
    /// Reads `buffer`, then `pending` a chunk at a time, until an error or the end.
    fn run(&mut self, mut buffer: BytesMut, mut pending: &[u8], chunk: usize) {
        loop {
            if !self.read_all(&mut buffer) {
                return;
            }
            if pending.is_empty() {
                return;
            }
            let (head, tail) = pending.split_at(chunk.min(pending.len()));
            buffer.extend_from_slice(head);
            pending = tail;
        }
    }

    /// Reads and answers the whole packets of `buffer`; false when the
    /// connection closes.
    fn read_all(&mut self, buffer: &mut BytesMut) -> bool {
        loop {
            let header = mqtt::peek_header(buffer);
            let before = buffer.len();
            match self.codec.read(buffer, self.max_packet) {
                Ok(Some(received)) => {
                    let header = header
                        .expect("a packet was read: its header is valid")
                        .expect("a packet was read: its header is whole");
                    assert_eq!(
                        before - buffer.len(),
                        header.header_len + header.remaining_len,
                        "a packet consumes exactly its frame"
                    );
                    if !self.answer(received, header.byte1) {
                        return false;
                    }
                }
                Ok(None) => {
                    assert_eq!(buffer.len(), before);
                    if let Ok(Some(header)) = header {
                        assert!(
                            before < header.header_len + header.remaining_len,
                            "a whole packet left unread"
                        );
                    }
                    return true;
                }
                Err(ReadError::TooLarge) => {
                    let header = header.ok().flatten().expect("a size needs a header");
                    assert!(header.remaining_len > self.max_packet);
                    return false;
                }
                Err(ReadError::UnexpectedType(kind)) => {
                    let header = header.ok().flatten().expect("a type needs a header");
                    assert_eq!(kind, header.byte1 >> 4);
                    assert_eq!(
                        before - buffer.len(),
                        header.header_len + header.remaining_len,
                        "a refused packet's frame is dropped"
                    );
                    // The server closes; the codec allows going on: do, to read what follows.
                }
                Err(ReadError::Malformed(_)) => return false,
            }
        }
    }

    /// Answers a packet as the server does; false when the server closes.
    fn answer(&mut self, received: Received, byte1: u8) -> bool {
        let Received { packet, qos, pkid } = received;
        let kind = byte1 >> 4;
        let answer = match packet {
            Packet::Publish(publish, properties) => {
                assert_eq!(kind, 3);
                assert_eq!(qos, (byte1 >> 1) & 0b11);
                assert!(qos < 3);
                if qos == 0 {
                    assert_eq!(pkid, 0);
                }
                let correlation = properties.as_ref().and_then(|p| p.correlation_data.clone());
                let Ok(topic) = std::str::from_utf8(&publish.topic) else {
                    return false;
                };
                if topic.is_empty() {
                    return false;
                }
                self.check_publish_round_trip(topic, &publish.payload, qos, pkid, correlation.as_deref());
                match self.rules.publish(topic, |_| false) {
                    Route::Request => {
                        assert_eq!(topic, REQUEST_TOPIC);
                        request_parser(&publish.payload);
                    }
                    Route::PubSub => {
                        assert!(mqtt::valid_topic_name(topic));
                        if self.topics.len() < 16 {
                            self.topics.push(topic.to_owned());
                        }
                    }
                    Route::Refused => {
                        if !self.codec.is_v5() {
                            return false;
                        }
                    }
                    route => panic!("a PUBLISH routed as a subscription: {route:?}"),
                }
                match qos {
                    1 => Some(Packet::PubAck(
                        PubAck {
                            pkid,
                            reason: PubAckReason::Success,
                        },
                        None,
                    )),
                    2 => Some(Packet::PubRec(
                        PubRec {
                            pkid,
                            reason: PubRecReason::Success,
                        },
                        None,
                    )),
                    _ => None,
                }
            }
            Packet::PubAck(..) | Packet::PubRec(..) | Packet::PubComp(..) => None,
            Packet::PubRel(release, _) => Some(Packet::PubComp(
                PubComp {
                    pkid: release.pkid,
                    reason: PubCompReason::PacketIdentifierNotFound,
                },
                None,
            )),
            Packet::Subscribe(subscribe, _) => {
                assert_eq!(kind, 8);
                let return_codes = subscribe
                    .filters
                    .iter()
                    .map(|filter| self.check_subscription(&filter.path, filter.qos))
                    .collect();
                Some(Packet::SubAck(
                    SubAck {
                        pkid: subscribe.pkid,
                        return_codes,
                    },
                    None,
                ))
            }
            Packet::Unsubscribe(unsubscribe, _) => Some(Packet::UnsubAck(
                UnsubAck {
                    pkid: unsubscribe.pkid,
                    reasons: vec![UnsubAckReason::NoSubscriptionExisted; unsubscribe.filters.len()],
                },
                None,
            )),
            Packet::PingReq(_) => Some(Packet::PingResp(PingResp)),
            // DISCONNECT, or a second CONNECT: the server closes.
            _ => return false,
        };
        if let Some(answer) = answer {
            let mut out = BytesMut::new();
            self.codec.write(answer, &mut out).expect("every answer encodes");
            let header = mqtt::peek_header(&out)
                .expect("answer header")
                .expect("whole answer");
            assert_eq!(header.header_len + header.remaining_len, out.len());
        }
        true
    }

    /// A PUBLISH re-encoded by the server's writer (QoS at most 1) reads back the same.
    fn check_publish_round_trip(
        &self,
        topic: &str,
        payload: &[u8],
        qos: u8,
        pkid: u16,
        correlation: Option<&[u8]>,
    ) {
        let qos = qos.min(1);
        let pkid = if qos == 0 { 0 } else { pkid };
        let correlation = correlation.filter(|_| self.codec.is_v5());
        let mut out = BytesMut::new();
        let (size, written) = self
            .codec
            .publish(topic, payload, qos, pkid, correlation, &mut out)
            .expect("a PUBLISH read re-encodes");
        assert_eq!((size, written), (out.len(), out.len()));
        let mut reader = self.codec.clone();
        let again = reader
            .read(&mut out, 1 << 28)
            .expect("the re-encoded PUBLISH reads")
            .expect("the re-encoded PUBLISH is whole");
        assert!(out.is_empty());
        assert_eq!((again.qos, again.pkid), (qos, pkid));
        let Packet::Publish(publish, properties) = again.packet else {
            panic!("a PUBLISH read back as another packet");
        };
        assert_eq!(
            (&publish.topic[..], &publish.payload[..]),
            (topic.as_bytes(), payload)
        );
        assert_eq!(
            properties.and_then(|p| p.correlation_data).as_deref(),
            correlation
        );
    }

    /// The rules and topic checks for one subscription; its SUBACK code.
    fn check_subscription(&self, filter: &str, qos: QoS) -> SubscribeReasonCode {
        let valid = mqtt::valid_filter(filter);
        let wildcards = filter.contains(['+', '#']);
        if valid && !wildcards {
            assert!(mqtt::valid_topic_name(filter));
            assert!(mqtt::topic_matches(filter, filter), "{filter:?} matches itself");
        }
        if valid {
            for topic in &self.topics {
                if mqtt::topic_matches(filter, topic) && !wildcards {
                    assert_eq!(filter, topic);
                }
                if filter == "#" {
                    assert_eq!(mqtt::topic_matches(filter, topic), !topic.starts_with('$'));
                }
            }
        }
        match self.rules.subscribe(filter) {
            Route::Exact { .. } => assert!(valid && !wildcards),
            Route::Wildcard => assert!(valid && wildcards),
            Route::Refused => {
                return if self.codec.is_v5() {
                    SubscribeReasonCode::NotAuthorized
                } else {
                    SubscribeReasonCode::Failure
                };
            }
            route => panic!("a subscription routed as a PUBLISH: {route:?}"),
        }
        SubscribeReasonCode::Success(if qos == QoS::AtMostOnce {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        })
    }
}
