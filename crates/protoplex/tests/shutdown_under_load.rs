//! SIGTERM while WebSocket, MQTT and HTTP clients send requests as fast as they
//! can: every request the server read before it stopped reading is answered
//! (200, or 503 `api.process.shutting_down` once the router closed), none is
//! lost, the connections close cleanly and the process exits 0.
//!
//! A server reads a connection's requests in order, so "every request read is
//! answered" shows from outside as: the requests answered on a connection are
//! exactly its first K requests, with no hole.
#![cfg(all(unix, feature = "websocket", feature = "http", feature = "mqtt"))]

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const BINARY: &str = env!("CARGO_BIN_EXE_protoplex");
const PATIENCE: Duration = Duration::from_secs(15);

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    probe.local_addr().expect("address").port()
}

fn request(n: usize) -> String {
    let request = if n.is_multiple_of(2) {
        json!({"controller": "server", "action": "now", "requestId": n.to_string()})
    } else {
        json!({"controller": "realtime", "action": "publish", "index": "load", "collection": "c",
               "requestId": n.to_string(), "body": {"n": n}})
    };
    request.to_string()
}

/// What one client saw: the ids answered, and any answer that was neither a
/// success nor a shutdown refusal.
#[derive(Debug, Default)]
struct Seen {
    answered: BTreeSet<usize>,
    unexpected: Vec<Value>,
}

impl Seen {
    fn record(&mut self, answer: &Value) {
        let id = answer["requestId"].as_str().and_then(|id| id.parse().ok());
        let status = answer["status"].as_u64();
        let expected = status == Some(200)
            || (status == Some(503) && answer["error"]["id"] == "api.process.shutting_down");
        match id {
            Some(id) if expected && self.answered.insert(id) => {}
            _ => self.unexpected.push(answer.clone()),
        }
    }

    /// Checks the answered ids are `0..K` for some K > 0.
    fn assert_prefix(&self, client: &str) {
        assert!(self.unexpected.is_empty(), "{client}: {:?}", self.unexpected);
        let count = self.answered.len();
        eprintln!("{client}: {count} requests answered");
        assert!(count > 0, "{client}: no answer at all");
        let last = self.answered.last().copied().unwrap_or_default();
        assert_eq!(
            last + 1,
            count,
            "{client}: a request read was not answered (hole before {last})"
        );
    }
}

/// Pipelines requests on a WebSocket until the server closes it; returns what
/// was answered and the close code.
async fn websocket_load(port: u16, started: Arc<AtomicBool>) -> (Seen, Option<u16>) {
    let (stream, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/"))
        .await
        .expect("handshake");
    let (mut sink, mut incoming) = stream.split();
    started.store(true, Ordering::Relaxed);
    let writer = tokio::spawn(async move {
        for n in 0.. {
            if sink.send(Message::text(request(n))).await.is_err() {
                break;
            }
            if n.is_multiple_of(64) {
                tokio::task::yield_now().await;
            }
        }
    });
    let mut seen = Seen::default();
    let mut code = None;
    while let Ok(Some(message)) = tokio::time::timeout(PATIENCE, incoming.next()).await {
        match message {
            Ok(Message::Text(text)) => seen.record(&serde_json::from_str(&text).expect("JSON")),
            Ok(Message::Close(frame)) => code = frame.map(|frame| u16::from(frame.code)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    writer.abort();
    (seen, code)
}

/// Publishes requests over MQTT (QoS 1) until the connection ends; returns what was answered.
async fn mqtt_load(port: u16, started: Arc<AtomicBool>) -> Seen {
    let options = rumqttc::MqttOptions::new("shutdown-load", "127.0.0.1", port);
    let (client, mut events) = rumqttc::AsyncClient::new(options, 64);
    client
        .subscribe("Kuzzle/response", rumqttc::QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let writer = tokio::spawn(async move {
        for n in 0.. {
            let sent = client
                .publish("Kuzzle/request", rumqttc::QoS::AtLeastOnce, false, request(n))
                .await;
            if sent.is_err() {
                break;
            }
        }
    });
    let mut seen = Seen::default();
    while let Ok(Ok(event)) = tokio::time::timeout(PATIENCE, events.poll()).await {
        match event {
            rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => started.store(true, Ordering::Relaxed),
            rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish)) => {
                seen.record(&serde_json::from_slice(&publish.payload).expect("JSON"));
            }
            _ => {}
        }
    }
    writer.abort();
    seen
}

/// Sends requests one after another on a kept-alive HTTP connection until the
/// server closes it: each gets a whole answer, or the connection ends before
/// any byte of one.
async fn http_load(port: u16, started: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::default();
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return seen;
    };
    started.store(true, Ordering::Relaxed);
    for n in 0.. {
        let body = request(n);
        let head = format!(
            "POST /_query HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if stream
            .write_all(format!("{head}{body}").as_bytes())
            .await
            .is_err()
        {
            break;
        }
        match read_http_answer(&mut stream).await {
            Some(answer) => seen.record(&answer),
            None => break,
        }
    }
    seen
}

/// One HTTP answer's JSON body; `None` when the connection ends before its
/// first byte (a partial answer fails the test).
async fn read_http_answer(stream: &mut TcpStream) -> Option<Value> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read = match tokio::time::timeout(PATIENCE, stream.read(&mut buffer)).await {
            Ok(Ok(read)) => read,
            Ok(Err(_)) if received.is_empty() => return None,
            Ok(Err(error)) => panic!("HTTP answer cut: {error}"),
            Err(_) => panic!("no HTTP answer in time"),
        };
        if read == 0 {
            assert!(
                received.is_empty(),
                "HTTP answer cut: {:?}",
                String::from_utf8_lossy(&received)
            );
            return None;
        }
        received.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&received);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        });
        let length = length.expect("content-length");
        if body.len() >= length {
            return Some(serde_json::from_str(&body[..length]).expect("JSON body"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_request_read() {
    let (port, mqtt_port) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(BINARY)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--mqtt-port", &mqtt_port.to_string()])
        .env_remove("PROTOPLEX_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start protoplex");
    let mut ready = false;
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", mqtt_port)).await.is_ok()
            && TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ready, "protoplex listens");

    let flags: Vec<Arc<AtomicBool>> = (0..6).map(|_| Arc::default()).collect();
    let websockets: Vec<_> = flags[..3]
        .iter()
        .map(|flag| tokio::spawn(websocket_load(port, flag.clone())))
        .collect();
    let mqtt = tokio::spawn(mqtt_load(mqtt_port, flags[3].clone()));
    let https: Vec<_> = flags[4..]
        .iter()
        .map(|flag| tokio::spawn(http_load(port, flag.clone())))
        .collect();
    let all_started = async {
        while !flags.iter().all(|flag| flag.load(Ordering::Relaxed)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PATIENCE, all_started)
        .await
        .expect("every client started");
    tokio::time::sleep(Duration::from_millis(700)).await;

    let pid = child.id().expect("pid").to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());

    for (n, websocket) in websockets.into_iter().enumerate() {
        let (seen, code) = websocket.await.expect("WebSocket client");
        seen.assert_prefix(&format!("websocket {n}"));
        assert_eq!(code, Some(1001), "websocket {n} closed as the server goes away");
    }
    mqtt.await.expect("MQTT client").assert_prefix("mqtt");
    for (n, http) in https.into_iter().enumerate() {
        http.await
            .expect("HTTP client")
            .assert_prefix(&format!("http {n}"));
    }
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exited in time")
        .expect("exit status");
    assert!(status.success(), "{status:?}");
}
