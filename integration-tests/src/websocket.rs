//! A WebSocket client (tokio-tungstenite) that tells answers from notifications.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::PATIENCE;

/// The raw stream type.
pub type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client of the Kuzzle API.
pub struct WsClient {
    stream: Stream,
    notifications: VecDeque<Value>,
    next_id: u64,
}

impl WsClient {
    /// Connects to `ws://address/`.
    pub async fn connect(address: SocketAddr) -> Self {
        let (stream, _) = tokio::time::timeout(
            PATIENCE,
            tokio_tungstenite::connect_async(format!("ws://{address}/")),
        )
        .await
        .expect("connected in time")
        .expect("WebSocket handshake");
        Self {
            stream,
            notifications: VecDeque::new(),
            next_id: 0,
        }
    }

    /// The underlying stream, for tests that misbehave on purpose.
    pub fn stream(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.stream
            .send(Message::text(text.into()))
            .await
            .expect("send frame");
    }

    /// Sends `request` (with a requestId added when it has none) and waits for
    /// its answer; notifications received meanwhile are kept for later.
    pub async fn query(&mut self, mut request: Value) -> Value {
        if request.get("requestId").is_none() {
            self.next_id += 1;
            request["requestId"] = Value::from(format!("ws-{}", self.next_id));
        }
        let id = request["requestId"].clone();
        self.send_text(request.to_string()).await;
        self.answer(&id).await
    }

    /// Waits for the answer whose requestId is `id`.
    pub async fn answer(&mut self, id: &Value) -> Value {
        loop {
            let frame = self.frame(PATIENCE).await.expect("an answer in time");
            if frame.get("requestId") == Some(id) && frame.get("room") == Some(id) {
                return frame;
            }
            self.notifications.push_back(frame);
        }
    }

    /// Any next JSON text frame (answer or notification).
    pub async fn next_frame(&mut self) -> Value {
        if let Some(frame) = self.notifications.pop_front() {
            return frame;
        }
        self.frame(PATIENCE).await.expect("a frame in time")
    }

    /// The next notification.
    pub async fn notification(&mut self) -> Value {
        self.maybe_notification(PATIENCE)
            .await
            .expect("a notification in time")
    }

    /// The next notification, if one comes within `wait`.
    pub async fn maybe_notification(&mut self, wait: Duration) -> Option<Value> {
        if let Some(frame) = self.notifications.pop_front() {
            return Some(frame);
        }
        self.frame(wait).await
    }

    /// Reads frames until a text one arrives; `None` on timeout; panics on close.
    async fn frame(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next()).await.ok()?;
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(&text).expect("JSON text frame"));
                }
                Some(Ok(Message::Close(frame))) => panic!("connection closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(error)) => panic!("WebSocket error: {error}"),
                None => panic!("connection ended"),
            }
        }
    }

    /// Reads until the server closes the connection; its close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => panic!("not closed in time"),
                Ok(Some(Ok(Message::Close(frame)))) => return frame,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return None,
            }
        }
    }
}
