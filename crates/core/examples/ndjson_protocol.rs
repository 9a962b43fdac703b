//! A complete protocol for protoplex: newline-delimited JSON over TCP.
//!
//! This is the Rust counterpart of the "TL;DR plugin skeleton" of Kuzzle's
//! protocol plugins, and the template to follow to publish a protocol crate:
//!
//! - `init` binds the listener and spawns the accept loop on the router's task
//!   tracker, stopping when the shutdown token is cancelled;
//! - each client becomes a [`ClientConnection`] declared with `new_connection`;
//!   each line it sends is a request run with `execute_payload`, each answer a line;
//! - `join_channel`/`leave_channel` keep a channel -> connections map;
//!   `broadcast`/`notify` push the already serialized payload into the bounded
//!   queue of each recipient, and a client too slow to drain its queue is cut off;
//! - a line longer than `max_request_size` gets a 413 and is skipped unread;
//! - the end of a client calls `remove_connection`.
//!
//! Run it with `cargo run -p protoplex-core --example ndjson_protocol`, then:
//!
//! ```text
//! $ nc 127.0.0.1 7600
//! {"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{}}
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use protoplex_core::{
    BoxFuture, ChannelMembers, ChannelMessage, ChannelName, ClientConnection, ConnectionId, CoreConfig,
    Protocol, ProtocolContext, ProtocolError, Router, RouterHandle, listener,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The protocol's name, as seen in notifications' `protocol` field.
const NAME: &str = "ndjson";
/// Messages a client may leave unread before it is disconnected.
const QUEUE_CAPACITY: usize = 1024;

/// One connected client: its outgoing queue and a token to close it.
struct Client {
    outgoing: mpsc::Sender<Bytes>,
    close: CancellationToken,
}

/// Newline-delimited JSON over TCP.
pub struct NdjsonProtocol {
    address: SocketAddr,
    bound: OnceLock<SocketAddr>,
    clients: RwLock<HashMap<ConnectionId, Client>>,
    channels: ChannelMembers<()>,
}

impl NdjsonProtocol {
    /// A protocol that will listen on `address` (port 0: any free port).
    pub fn new(address: SocketAddr) -> Arc<Self> {
        Arc::new(Self {
            address,
            bound: OnceLock::new(),
            clients: RwLock::default(),
            channels: ChannelMembers::default(),
        })
    }

    /// The address it listens on, once started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.bound.get().copied()
    }

    /// Queues `payload` for one client; a full queue closes the client.
    fn send(&self, connection: ConnectionId, payload: &Bytes) {
        let clients = self.clients.read().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&connection)
            && client.outgoing.try_send(payload.clone()).is_err()
        {
            tracing::warn!(connection_id = %connection, "Client too slow: disconnected.");
            client.close.cancel();
        }
    }
}

impl Protocol for NdjsonProtocol {
    fn name(&self) -> &str {
        NAME
    }

    fn init(self: Arc<Self>, context: ProtocolContext) -> BoxFuture<'static, Result<(), ProtocolError>> {
        Box::pin(async move {
            let listener = TcpListener::bind(self.address)
                .await
                .map_err(|source| ProtocolError::Listen {
                    protocol: NAME.into(),
                    address: self.address.to_string(),
                    source,
                })?;
            let bound = listener.local_addr().unwrap_or(self.address);
            let _ = self.bound.set(bound);
            tracing::info!(%bound, "ndjson protocol listening.");
            // One task per client, on the router's tracker, until shutdown.
            let ProtocolContext {
                router,
                shutdown,
                tasks,
            } = context;
            let accepting = listener::accept_loop(
                NAME,
                listener,
                shutdown.clone(),
                tasks.clone(),
                move |stream, peer| serve(self.clone(), router.clone(), stream, peer, shutdown.clone()),
            );
            tasks.spawn(accepting);
            Ok(())
        })
    }

    fn join_channel(&self, channel: &ChannelName, connection: ConnectionId) {
        self.channels.join(channel, connection, ());
    }

    fn leave_channel(&self, channel: &ChannelName, connection: ConnectionId) {
        self.channels.leave(channel, connection);
    }

    fn notify(&self, connection: ConnectionId, messages: &[ChannelMessage]) {
        for message in messages {
            self.send(connection, &message.payload);
        }
    }

    fn broadcast(&self, messages: &[ChannelMessage]) {
        for message in messages {
            self.channels.for_each_member(&message.channel, |connection, ()| {
                self.send(connection, &message.payload)
            });
        }
    }

    fn disconnect(&self, connection: ConnectionId) {
        let clients = self.clients.read().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&connection) {
            client.close.cancel();
        }
    }
}

/// Serves one client until it leaves, is disconnected, or the server stops.
async fn serve(
    protocol: Arc<NdjsonProtocol>,
    router: RouterHandle,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let connection = ClientConnection::new(NAME, vec![peer.ip()], HashMap::new());
    let id = connection.id;
    let (outgoing, mut queue) = mpsc::channel::<Bytes>(QUEUE_CAPACITY);
    let close = shutdown.child_token();
    protocol
        .clients
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            id,
            Client {
                outgoing: outgoing.clone(),
                close: close.clone(),
            },
        );
    if router.new_connection(connection).is_err() {
        protocol
            .clients
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        return;
    }

    let (reader, mut writer) = stream.into_split();
    // The writer: the only one touching the socket's write half.
    let writer_close = close.clone();
    let writer_task = tokio::spawn(async move {
        while let Some(payload) = tokio::select! {
            () = writer_close.cancelled() => None,
            payload = queue.recv() => payload,
        } {
            if writer.write_all(&payload).await.is_err() || writer.write_all(b"\n").await.is_err() {
                break;
            }
        }
        writer_close.cancel();
        let _ = writer.shutdown().await;
    });

    let max = router.limits().max_request_size;
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Read at most max + 1 bytes of a line: a longer one is refused unread.
        let mut bounded = (&mut reader).take(max as u64 + 1);
        let read = tokio::select! {
            () = close.cancelled() => break,
            read = bounded.read_until(b'\n', &mut line) => read,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) if line.last() != Some(&b'\n') && line.len() > max => {
                // Refused from its first max + 1 bytes (413), then the rest of
                // the line is skipped, a bounded chunk at a time, never stored.
                let response = router.execute_payload(id, &line).await;
                if outgoing.send(response.to_bytes()).await.is_err() || !skip_line(&mut reader, max).await {
                    break;
                }
            }
            Ok(_) => {
                let payload = line.trim_ascii();
                if payload.is_empty() {
                    continue;
                }
                let response = router.execute_payload(id, payload).await;
                if outgoing.send(response.to_bytes()).await.is_err() {
                    break;
                }
            }
        }
    }
    close.cancel();
    let _ = writer_task.await;
    protocol
        .clients
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    router.remove_connection(id);
}

/// Reads and drops bytes up to the end of the current line; false when the
/// client went away first.
async fn skip_line(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, chunk: usize) -> bool {
    let mut dropped = Vec::new();
    loop {
        dropped.clear();
        match (&mut *reader)
            .take(chunk as u64)
            .read_until(b'\n', &mut dropped)
            .await
        {
            Ok(0) | Err(_) => return false,
            Ok(_) if dropped.last() == Some(&b'\n') => return true,
            Ok(_) => {}
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7600".into())
        .parse()?;
    let protocol = NdjsonProtocol::new(address);
    let router = Router::builder(CoreConfig::default())
        .protocol(protocol.clone())
        .build()?;
    router.start().await?;
    println!("listening on {}", protocol.local_addr().unwrap_or(address));
    tokio::signal::ctrl_c().await?;
    router.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;
    use tokio::net::tcp::OwnedWriteHalf;

    use super::*;

    struct TestClient {
        lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
        writer: OwnedWriteHalf,
    }

    impl TestClient {
        async fn connect(address: SocketAddr) -> Self {
            let stream = TcpStream::connect(address).await.expect("connect");
            let (reader, writer) = stream.into_split();
            Self {
                lines: BufReader::new(reader).lines(),
                writer,
            }
        }

        async fn send(&mut self, line: &[u8]) {
            self.writer.write_all(line).await.expect("write");
            self.writer.write_all(b"\n").await.expect("write");
        }

        async fn next(&mut self) -> Option<Value> {
            let line = tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
                .await
                .expect("a line in time")
                .ok()??;
            Some(serde_json::from_str(&line).expect("json line"))
        }

        async fn query(&mut self, request: Value) -> Value {
            self.send(request.to_string().as_bytes()).await;
            self.next().await.expect("a response")
        }
    }

    async fn start(config: CoreConfig) -> (Router, SocketAddr) {
        let protocol = NdjsonProtocol::new("127.0.0.1:0".parse().expect("address"));
        let router = Router::builder(config)
            .protocol(protocol.clone())
            .build()
            .expect("router");
        router.start().await.expect("start");
        let address = protocol.local_addr().expect("bound");
        (router, address)
    }

    #[tokio::test]
    async fn subscribe_then_receive_a_notification() {
        let (router, address) = start(CoreConfig::default()).await;
        let mut subscriber = TestClient::connect(address).await;
        let mut publisher = TestClient::connect(address).await;

        let subscribed = subscriber
            .query(
                json!({"controller":"realtime","action":"subscribe","index":"i","collection":"c",
                          "body":{"equals":{"kind":"alert"}},"requestId":"s1"}),
            )
            .await;
        assert_eq!(subscribed["status"], 200, "{subscribed}");
        assert_eq!(subscribed["requestId"], "s1");
        let channel = subscribed["result"]["channel"]
            .as_str()
            .expect("channel")
            .to_owned();

        let published = publisher
            .query(
                json!({"controller":"realtime","action":"publish","index":"i","collection":"c",
                          "body":{"kind":"alert","level":3}}),
            )
            .await;
        assert_eq!(published["result"], json!({"published": true}));

        let notification = subscriber.next().await.expect("notification");
        assert_eq!(notification["room"], channel);
        assert_eq!(notification["protocol"], NAME);
        assert_eq!(
            notification["result"]["_source"],
            json!({"kind":"alert","level":3})
        );

        let stopped = router.shutdown(Duration::from_secs(5)).await;
        assert!(stopped, "every task ended within the grace period");
    }

    #[tokio::test]
    async fn bad_lines_get_errors_and_the_connection_survives() {
        let (_router, address) = start(CoreConfig::default()).await;
        let mut client = TestClient::connect(address).await;
        client.send(b"{this is not json").await;
        let error = client.next().await.expect("error response");
        assert_eq!(error["status"], 400);
        assert_eq!(error["error"]["id"], "api.assert.invalid_argument");
        let now = client.query(json!({"controller":"server","action":"now"})).await;
        assert_eq!(now["status"], 200);
        assert!(now["result"]["now"].as_u64().is_some());
    }

    #[tokio::test]
    async fn an_oversized_line_is_refused_and_the_connection_survives() {
        let mut config = CoreConfig::default();
        config.limits.max_request_size = 64;
        let (router, address) = start(config).await;
        let mut client = TestClient::connect(address).await;
        let big = format!(
            "{{\"controller\":\"server\",\"action\":\"now\",\"pad\":\"{}\"}}",
            "x".repeat(500)
        );
        client.send(big.as_bytes()).await;
        let error = client.next().await.expect("error response");
        assert_eq!(error["status"], 413);
        assert_eq!(error["error"]["id"], "network.entrypoint.request_too_large");
        let now = client.query(json!({"controller":"server","action":"now"})).await;
        assert_eq!(now["status"], 200, "the next line is served: {now}");
        drop(client);
        // The router forgets the connection once the client leaves.
        for _ in 0..50 {
            if router.connection_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(router.connection_count(), 0);
    }

    #[tokio::test]
    async fn a_closed_client_loses_its_subscriptions() {
        let (_router, address) = start(CoreConfig::default()).await;
        let mut leaving = TestClient::connect(address).await;
        let mut staying = TestClient::connect(address).await;
        let subscribed = leaving
            .query(
                json!({"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{}}),
            )
            .await;
        let room_id = subscribed["result"]["roomId"]
            .as_str()
            .expect("roomId")
            .to_owned();
        let count = staying
            .query(json!({"controller":"realtime","action":"count","body":{"roomId":room_id}}))
            .await;
        assert_eq!(count["result"]["count"], 1);
        drop(leaving);
        let mut gone = false;
        for _ in 0..50 {
            let count = staying
                .query(json!({"controller":"realtime","action":"count","body":{"roomId":room_id}}))
                .await;
            if count["status"] == 404 {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "the room went away with its last subscriber");
    }
}
