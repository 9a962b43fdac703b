//! WebSocket clients (tokio-tungstenite): connection from a chosen loopback
//! source, Kuzzle requests, a fan-out subscriber and a fan-out publisher.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{Acks, COLLECTION, ClientError, Dialect, INDEX};

/// A client WebSocket over plain TCP.
pub type WsStream = WebSocketStream<TcpStream>;

/// How long a connection (TCP and handshake) or an answer may take.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Read buffer of a connection that receives a stream of messages.
pub const BUSY_READ_BUFFER: usize = 64 * 1024;
/// Read buffer of a connection that stays idle.
pub const IDLE_READ_BUFFER: usize = 4 * 1024;

/// Connects to `ws://server/`, from `source` (any port) when given.
pub async fn connect(
    server: SocketAddr,
    source: Option<IpAddr>,
    read_buffer: usize,
) -> Result<WsStream, ClientError> {
    let connecting = async {
        let socket = if server.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(source) = source {
            socket.bind(SocketAddr::new(source, 0))?;
        }
        let tcp = socket.connect(server).await?;
        tcp.set_nodelay(true)?;
        let config = WebSocketConfig::default().read_buffer_size(read_buffer);
        let (stream, _) =
            tokio_tungstenite::client_async_with_config(format!("ws://{server}/"), tcp, Some(config)).await?;
        Ok(stream)
    };
    tokio::time::timeout(PATIENCE, connecting)
        .await
        .map_err(|_| ClientError::Timeout("WebSocket connection"))?
}

/// Sends the Kuzzle request `request` (which must carry a `requestId`) and
/// returns its answer; frames that are not the answer are dropped.
pub async fn query(stream: &mut WsStream, request: Value) -> Result<Value, ClientError> {
    let id = request
        .get("requestId")
        .cloned()
        .ok_or_else(|| ClientError::Unexpected("request without requestId".into()))?;
    stream.send(Message::text(request.to_string())).await?;
    let answer = async {
        loop {
            let frame = next_frame(stream).await?;
            let Ok(value) = serde_json::from_slice::<Value>(&frame) else {
                continue;
            };
            if value.get("requestId") == Some(&id) {
                return Ok(value);
            }
        }
    };
    tokio::time::timeout(PATIENCE, answer)
        .await
        .map_err(|_| ClientError::Timeout("WebSocket answer"))?
}

/// The `realtime:subscribe` request of the fan-out: everything published on
/// the benchmark collection (filter `{}`).
pub fn subscribe_request(request_id: &str) -> Value {
    json!({
        "controller": "realtime",
        "action": "subscribe",
        "index": INDEX,
        "collection": COLLECTION,
        "body": {},
        "requestId": request_id,
    })
}

/// The `realtime:publish` request carrying `body` (a JSON object).
pub fn publish_request(request_id: u64, body: &str) -> String {
    format!(
        r#"{{"controller":"realtime","action":"publish","index":"{INDEX}","collection":"{COLLECTION}","requestId":"{request_id}","body":{body}}}"#
    )
}

/// The `server:now` request.
pub fn now_request(request_id: u64) -> String {
    format!(r#"{{"controller":"server","action":"now","requestId":"{request_id}"}}"#)
}

/// The next text or binary frame's bytes; an error when the connection ends.
async fn next_frame<S>(stream: &mut S) -> Result<Bytes, ClientError>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => return Ok(Bytes::from(text)),
            Some(Ok(Message::Binary(bytes))) => return Ok(bytes),
            Some(Ok(Message::Close(frame))) => {
                let reason = frame
                    .map(|f| format!(" ({} {})", f.code, f.reason))
                    .unwrap_or_default();
                return Err(ClientError::Closed(reason));
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(error.into()),
            None => return Err(ClientError::Closed(String::new())),
        }
    }
}

/// A connection that receives the fan-out's messages.
pub struct Subscriber {
    stream: WsStream,
}

impl Subscriber {
    /// Connects and, for protoplex, subscribes to the benchmark collection.
    pub async fn connect(
        server: SocketAddr,
        source: Option<IpAddr>,
        dialect: Dialect,
    ) -> Result<Self, ClientError> {
        let mut stream = connect(server, source, BUSY_READ_BUFFER).await?;
        if dialect == Dialect::Kuzzle {
            let answer = query(&mut stream, subscribe_request("subscribe")).await?;
            if answer.get("status").and_then(Value::as_u64) != Some(200) {
                return Err(ClientError::Unexpected(format!("subscribe answered {answer}")));
            }
        }
        Ok(Self { stream })
    }

    /// The next message's bytes; an error when the connection ends.
    pub async fn next(&mut self) -> Result<Bytes, ClientError> {
        next_frame(&mut self.stream).await
    }

    /// Closes the connection politely (bounded in time).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.close(None)).await;
    }
}

/// The part of a Kuzzle answer the publisher checks.
#[derive(Deserialize)]
struct Status {
    status: u16,
}

/// A connection that publishes the fan-out's messages and checks the answers.
pub struct Publisher {
    sink: SplitSink<WsStream, Message>,
    dialect: Dialect,
    acks: Arc<Acks>,
    reader: JoinHandle<()>,
}

impl Publisher {
    /// Connects; a task reads the answers (protoplex) or echoes (baseline) from now on.
    pub async fn connect(server: SocketAddr, dialect: Dialect) -> Result<Self, ClientError> {
        let stream = connect(server, None, BUSY_READ_BUFFER).await?;
        let (sink, stream) = stream.split();
        let acks = Arc::new(Acks::default());
        let reader = tokio::spawn(read_acks(stream, dialect, acks.clone()));
        Ok(Self {
            sink,
            dialect,
            acks,
            reader,
        })
    }

    /// The answers counted so far.
    pub fn acks(&self) -> &Arc<Acks> {
        &self.acks
    }

    /// Publishes `body` (a JSON object) as message `seq`.
    pub async fn send(&mut self, seq: u64, body: &str) -> Result<(), ClientError> {
        let text = match self.dialect {
            Dialect::Kuzzle => publish_request(seq, body),
            Dialect::Raw => body.to_owned(),
        };
        self.sink.send(Message::text(text)).await?;
        Ok(())
    }

    /// Waits (at most `patience`) for the answers to the `sent` messages, then
    /// closes. Returns how many answers were missing.
    pub async fn finish(mut self, sent: u64, patience: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + patience;
        while self.acks.total() < sent && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let missing = sent.saturating_sub(self.acks.total());
        // Stop reading first: the end of the connection is no failure.
        self.reader.abort();
        let _ = (&mut self.reader).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.sink.close()).await;
        missing
    }
}

async fn read_acks(mut stream: SplitStream<WsStream>, dialect: Dialect, acks: Arc<Acks>) {
    loop {
        let frame = match next_frame(&mut stream).await {
            Ok(frame) => frame,
            Err(error) => {
                acks.first_failure.lock().await.get_or_insert(error.to_string());
                return;
            }
        };
        let ok = match dialect {
            Dialect::Raw => true,
            Dialect::Kuzzle => match serde_json::from_slice::<Status>(&frame) {
                Ok(answer) if answer.status == 200 => true,
                _ => {
                    let text = String::from_utf8_lossy(&frame[..frame.len().min(300)]).into_owned();
                    acks.first_failure.lock().await.get_or_insert(text);
                    false
                }
            },
        };
        let counter = if ok { &acks.ok } else { &acks.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A request/response client: one request at a time.
pub struct Requester {
    stream: WsStream,
    next_id: u64,
}

impl Requester {
    /// Connects.
    pub async fn connect(server: SocketAddr) -> Result<Self, ClientError> {
        Ok(Self {
            stream: connect(server, None, BUSY_READ_BUFFER).await?,
            next_id: 0,
        })
    }

    /// Sends the request built by `build(request_id)` and waits for an answer
    /// with status 200 (any other status is an error).
    pub async fn request(&mut self, build: impl FnOnce(u64) -> String) -> Result<(), ClientError> {
        self.next_id += 1;
        self.stream.send(Message::text(build(self.next_id))).await?;
        let frame = tokio::time::timeout(PATIENCE, next_frame(&mut self.stream))
            .await
            .map_err(|_| ClientError::Timeout("WebSocket answer"))??;
        match serde_json::from_slice::<Status>(&frame) {
            Ok(answer) if answer.status == 200 => Ok(()),
            _ => Err(ClientError::Unexpected(
                String::from_utf8_lossy(&frame[..frame.len().min(300)]).into_owned(),
            )),
        }
    }
}
