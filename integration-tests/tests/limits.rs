//! Connection caps and the request rate limit, through real sockets: each
//! protocol refuses a connection over its cap its own way (HTTP 503, WebSocket
//! close 1013, MQTT CONNACK "server unavailable"/"server busy", AMQP a 503
//! answer), takes connections again once one leaves, and a client flooding
//! requests is held to its rate while another client is served as usual.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use protoplex_core::CoreConfig;
use protoplex_http::HttpConfig;
use protoplex_integration_tests::mqtt::Version;
use protoplex_integration_tests::websocket::WsClient;
use protoplex_integration_tests::{Kind, PATIENCE, Settings, TestServer, eventually};
use protoplex_mqtt::MqttConfig;
use protoplex_websocket::WebSocketConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const TOO_MANY_CONNECTIONS: &str = "network.entrypoint.too_many_connections";

fn now() -> Value {
    json!({"controller": "server", "action": "now"})
}

/// Opens a WebSocket and returns the close code the server sends within a
/// short wait, or `None` if the connection stays open.
async fn websocket_close_code(server: &TestServer) -> Option<CloseCode> {
    let (mut stream, _) = tokio_tungstenite::connect_async(format!("ws://{}/", server.address))
        .await
        .expect("WebSocket handshake");
    match tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => Some(frame.code),
        Ok(other) => panic!("expected a close frame, got {other:?}"),
        Err(_) => None,
    }
}

/// The CONNACK refusal an MQTT client of `version` gets, or `None` once accepted.
async fn mqtt_refusal(server: &TestServer, version: Version, client_id: &str) -> Option<String> {
    let host = server.mqtt_address.ip().to_string();
    let port = server.mqtt_address.port();
    match version {
        Version::V311 => {
            let options = rumqttc::MqttOptions::new(client_id, host, port);
            let (_client, mut events) = rumqttc::AsyncClient::new(options, 8);
            match tokio::time::timeout(PATIENCE, events.poll())
                .await
                .expect("CONNACK in time")
            {
                Ok(_) => None,
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => Some(format!("{code:?}")),
                Err(error) => panic!("MQTT 3.1.1 connection failed: {error}"),
            }
        }
        Version::V5 => {
            let options = rumqttc::v5::MqttOptions::new(client_id, host, port);
            let (_client, mut events) = rumqttc::v5::AsyncClient::new(options, 8);
            match tokio::time::timeout(PATIENCE, events.poll())
                .await
                .expect("CONNACK in time")
            {
                Ok(_) => None,
                Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => Some(format!("{code:?}")),
                Err(error) => panic!("MQTT 5 connection failed: {error}"),
            }
        }
    }
}

/// Sends `GET /_now` on an open socket (keep-alive) and returns the status line
/// and the body.
async fn http_get_now(stream: &mut TcpStream) -> (String, Value) {
    stream
        .write_all(b"GET /_now HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .expect("write request");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(read > 0, "connection closed before the answer");
        received.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&received).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .expect("content-length");
        if body.len() >= length {
            let status = head.lines().next().unwrap_or_default().to_owned();
            return (status, serde_json::from_str(&body[..length]).expect("JSON body"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_protocol_refuses_connections_over_its_cap_its_own_way() {
    let server = TestServer::start_settings(Settings {
        websocket: WebSocketConfig {
            max_connections: 1,
            ..WebSocketConfig::default()
        },
        mqtt: MqttConfig {
            max_connections: 1,
            ..MqttConfig::default()
        },
        http: HttpConfig {
            max_connections: 1,
            ..HttpConfig::default()
        },
        without_amqp: true,
        ..Settings::default()
    })
    .await;

    // WebSocket: the second connection is closed with 1013 after its handshake.
    let mut first_ws = WsClient::connect(server.address).await;
    assert_eq!(websocket_close_code(&server).await, Some(CloseCode::Again));
    assert_eq!(
        first_ws.query(now()).await["status"],
        200,
        "the first one is untouched"
    );

    // MQTT: the second client gets a refusing CONNACK, in each version's terms.
    let _first_mqtt = server.client(Kind::Mqtt5).await;
    assert_eq!(
        mqtt_refusal(&server, Version::V311, "capped-311")
            .await
            .as_deref(),
        Some("ServiceUnavailable")
    );
    assert_eq!(
        mqtt_refusal(&server, Version::V5, "capped-5").await.as_deref(),
        Some("ServerBusy")
    );

    // HTTP: with one connection kept alive, a second one is answered 503 and closed.
    let mut kept = TcpStream::connect(server.address).await.expect("connect");
    let (status, _) = http_get_now(&mut kept).await;
    assert!(status.contains(" 200 "), "{status}");
    let refused = protoplex_integration_tests::http::HttpClient::new(server.address)
        .send("GET", "/_now", &[], b"")
        .await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["error"]["id"], TOO_MANY_CONNECTIONS);
    assert_eq!(refused.header("connection"), Some("close"));
    let (status, _) = http_get_now(&mut kept).await;
    assert!(
        status.contains(" 200 "),
        "the kept connection still works: {status}"
    );

    // Every cap frees its place when a connection leaves.
    drop(kept);
    drop(first_ws);
    assert!(
        eventually(|| async {
            let reply = protoplex_integration_tests::http::HttpClient::new(server.address)
                .send("GET", "/_now", &[], b"")
                .await;
            reply.status == 200
        })
        .await,
        "HTTP takes connections again"
    );
    assert!(
        eventually(|| async { websocket_close_code(&server).await.is_none() }).await,
        "WebSocket takes connections again"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_wide_cap_counts_every_protocol() {
    let mut core = CoreConfig::default();
    core.limits.max_connections = 2;
    let server = TestServer::start_settings(Settings {
        core,
        ..Settings::default()
    })
    .await;

    let mut websocket = server.client(Kind::WebSocket).await;
    let _mqtt = server.client(Kind::Mqtt311).await;
    assert_eq!(server.router.connection_count(), 2);

    // Full: AMQP answers 503 on the reply queue, HTTP answers 503 (an HTTP
    // request is a connection while it runs), WebSocket closes with 1013.
    let mut amqp = server.client(Kind::Amqp).await;
    let refused = amqp.query(now()).await;
    assert_eq!(refused["status"], 503);
    assert_eq!(refused["error"]["id"], TOO_MANY_CONNECTIONS);
    let refused = server.client(Kind::Http).await.query(now()).await;
    assert_eq!(refused["error"]["id"], TOO_MANY_CONNECTIONS);
    assert_eq!(websocket_close_code(&server).await, Some(CloseCode::Again));
    assert_eq!(
        mqtt_refusal(&server, Version::V5, "capped-server")
            .await
            .as_deref(),
        Some("ServerBusy")
    );
    assert_eq!(websocket.query(now()).await["status"], 200);

    // One leaves: the AMQP client gets its connection.
    websocket.close().await;
    assert!(
        eventually(|| async { server.router.connection_count() == 1 }).await,
        "the WebSocket connection is removed"
    );
    assert_eq!(amqp.query(now()).await["status"], 200);
    amqp.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_held_to_its_rate_and_others_are_served() {
    const RATE: u32 = 20;
    const FLOOD: usize = 2000;
    let mut core = CoreConfig::default();
    core.limits.requests_rate_limit = RATE;
    let server = TestServer::start_settings(Settings {
        core,
        without_amqp: true,
        ..Settings::default()
    })
    .await;

    // A subscriber counts the publishes that got through.
    let mut subscriber = server.client(Kind::WebSocket).await;
    let subscribed = subscriber
        .query(
            json!({"controller": "realtime", "action": "subscribe", "index": "flood",
                       "collection": "c", "body": {}}),
        )
        .await;
    assert_eq!(subscribed["status"], 200);

    // The flooder pipelines its publishes without waiting for the answers.
    let (flood_stream, _) = tokio_tungstenite::connect_async(format!("ws://{}/", server.address))
        .await
        .expect("handshake");
    let (mut sink, mut answers) = flood_stream.split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let body = "x".repeat(2048);
        for n in 0..FLOOD {
            let request = json!({"controller": "realtime", "action": "publish", "index": "flood",
                                 "collection": "c", "requestId": format!("flood-{n}"), "body": {"pad": body}});
            sink.send(Message::text(request.to_string())).await.expect("send");
        }
        sink
    });
    let reader = tokio::spawn(async move {
        let (mut accepted, mut limited) = (0usize, 0usize);
        while accepted + limited < FLOOD {
            let frame = tokio::time::timeout(PATIENCE, answers.next())
                .await
                .expect("every flood request answered in time");
            let Some(Ok(Message::Text(text))) = frame else {
                panic!("flooder's connection ended: {frame:?}");
            };
            let answer: Value = serde_json::from_str(&text).expect("JSON");
            match answer["status"].as_u64() {
                Some(200) => accepted += 1,
                Some(429) => {
                    assert_eq!(answer["error"]["id"], "api.process.too_many_requests");
                    limited += 1;
                }
                _ => panic!("unexpected answer: {answer}"),
            }
        }
        (accepted, limited, answers)
    });

    // Meanwhile, other clients are served as usual.
    let mut slowest = Duration::ZERO;
    for kind in [Kind::WebSocket, Kind::Mqtt5, Kind::Http] {
        let mut client = server.client(kind).await;
        for _ in 0..20 {
            let asked = Instant::now();
            assert_eq!(client.query(now()).await["status"], 200, "{kind:?}");
            slowest = slowest.max(asked.elapsed());
        }
    }
    let (accepted, limited, _answers) = reader.await.expect("reader");
    let elapsed = started.elapsed();
    let _sink = writer.await.expect("writer");

    // Within each one-second window at most RATE requests pass.
    let windows = elapsed.as_secs() as usize + 2;
    assert!(
        accepted <= windows * RATE as usize,
        "{accepted} accepted in {elapsed:?} at {RATE}/s"
    );
    assert!(limited >= FLOOD - windows * RATE as usize, "{limited} refused");
    // Every accepted publish reached the subscriber, no more.
    let mut notified = 0;
    while subscriber
        .maybe_notification(Duration::from_millis(300))
        .await
        .is_some()
    {
        notified += 1;
    }
    assert_eq!(notified, accepted);
    assert!(
        slowest < Duration::from_secs(1),
        "another client's request waited {slowest:?} during the flood"
    );
    server.stop().await;
}
