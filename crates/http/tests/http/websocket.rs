//! WebSocket on the HTTP port (`websocket` feature): the upgrade handshake, then
//! requests and notifications as frames, written and read by hand.

use std::sync::Arc;

use protoplex_core::embedded::EmbeddedProtocol;
use protoplex_core::{CoreConfig, Router};
use protoplex_http::{HttpConfig, HttpProtocol};
use protoplex_websocket::{WebSocketConfig, WebSocketProtocol};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::client::{self, Connection, TIMEOUT};

/// The client side of a WebSocket connection: masked text frames out, text
/// frames in (control frames skipped).
struct WsClient {
    stream: BufReader<TcpStream>,
}

impl WsClient {
    async fn send(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81];
        match payload.len() {
            length @ 0..126 => frame.push(0x80 | u8::try_from(length).expect("small")),
            length => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&u16::try_from(length).expect("< 64 KiB").to_be_bytes());
            }
        }
        let mask = [0x12, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(
            payload
                .iter()
                .enumerate()
                .map(|(index, byte)| byte ^ mask[index % 4]),
        );
        self.stream
            .get_mut()
            .write_all(&frame)
            .await
            .expect("write frame");
    }

    async fn next_json(&mut self) -> Value {
        tokio::time::timeout(TIMEOUT, self.next_text())
            .await
            .expect("a frame in time")
    }

    async fn next_text(&mut self) -> Value {
        loop {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).await.expect("frame head");
            let length = match head[1] & 0x7f {
                126 => u64::from(self.stream.read_u16().await.expect("length")),
                127 => self.stream.read_u64().await.expect("length"),
                length => u64::from(length),
            };
            let mut payload = vec![0; usize::try_from(length).expect("length")];
            self.stream.read_exact(&mut payload).await.expect("payload");
            match head[0] & 0x0f {
                0x1 | 0x2 => return serde_json::from_slice(&payload).expect("JSON frame"),
                0x8 => panic!("connection closed by the server"),
                _ => {} // ping, pong
            }
        }
    }
}

async fn start() -> (Router, std::net::SocketAddr, Arc<EmbeddedProtocol>) {
    let websocket = WebSocketProtocol::shared(WebSocketConfig::default());
    let http = HttpProtocol::new(HttpConfig {
        bind: "127.0.0.1".parse().expect("address"),
        port: 0,
        ..HttpConfig::default()
    })
    .with_websocket(websocket.clone());
    let embedded = EmbeddedProtocol::new(16);
    let router = Router::builder(CoreConfig::default())
        .protocol(http.clone())
        .protocol(websocket)
        .protocol(embedded.clone())
        .build()
        .expect("router");
    router.start().await.expect("start");
    let address = http.local_addr().expect("listening");
    (router, address, embedded)
}

async fn upgrade(address: std::net::SocketAddr) -> WsClient {
    let mut connection = Connection::open(address).await;
    let response = connection
        .send(
            &client::raw_request(
                "GET",
                "/",
                &[
                    ("Connection", "Upgrade"),
                    ("Upgrade", "websocket"),
                    ("Sec-WebSocket-Version", "13"),
                    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ],
                b"",
            ),
            false,
        )
        .await;
    assert_eq!(response.status, 101, "{response:?}");
    // RFC 6455's example key and answer.
    assert_eq!(
        response.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(response.header("upgrade"), Some("websocket"));
    WsClient {
        stream: connection.into_inner(),
    }
}

#[tokio::test]
async fn an_upgrade_on_the_root_gives_a_working_websocket() {
    let (router, address, _embedded) = start().await;
    let mut ws = upgrade(address).await;

    ws.send(r#"{"controller":"server","action":"now","requestId":"ws-1"}"#)
        .await;
    let answer = ws.next_json().await;
    assert_eq!(answer["requestId"], "ws-1");
    assert_eq!(answer["room"], "ws-1");
    assert!(answer["result"]["now"].is_u64(), "{answer}");

    // Subscribe over WebSocket, publish over HTTP on the same port.
    ws.send(r#"{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{},"requestId":"s"}"#)
        .await;
    let subscribed = ws.next_json().await;
    assert_eq!(subscribed["status"], 200, "{subscribed}");
    let published = client::post_json(address, "/i/c/_publish", &json!({"via":"http"})).await;
    assert_eq!(published.status, 200);
    let notification = ws.next_json().await;
    assert_eq!(notification["result"]["_source"], json!({"via":"http"}));
    assert_eq!(notification["protocol"], "http");
    assert_eq!(notification["room"], subscribed["result"]["channel"]);

    drop(ws);
    assert!(router.shutdown(std::time::Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_bad_handshake_is_refused() {
    let (_router, address, _embedded) = start().await;
    let response = client::request(
        address,
        "GET",
        "/",
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
        ],
        b"",
    )
    .await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.json()["error"]["id"],
        "network.http.bad_websocket_handshake"
    );
}
