//! One WebSocket client, from its first frame to its socket's end.
//!
//! The connection is one task running two halves side by side:
//!
//! - the **reader** reads frames, runs each request with `execute_payload` (up
//!   to `max_in_flight` at once, in the order they arrived; then it stops
//!   reading), answers `{"p":1}` itself, pings quiet clients and closes idle ones;
//! - the **writer** alone writes to the socket: it drains the client's bounded
//!   outgoing queue (answers, notifications, pings), a batch per flush, and ends
//!   with the close frame.
//!
//! Closing follows the [`CloseSignal`]: an urgent cause (backpressure, idle,
//! oversized frame, the client leaving) stops both halves at once and drops the
//! requests still running; a draining one (shutdown, disconnect) stops reading,
//! lets the requests already read finish and their answers be written, then
//! closes. Either way the router forgets the connection once no request of it
//! runs any more, exactly once, and everything ends by the signal's deadline.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use protoplex_core::{ApiError, ClientConnection, ConnectionId, RouterHandle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError as WsProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::close::{CloseCause, CloseSignal};
use crate::protocol::{NAME, WebSocketProtocol};
use crate::{headers, heartbeat};

/// Messages written to the socket before one flush.
const MAX_BATCH: usize = 64;

/// How long an answer waits for room in a full outgoing queue before the
/// client, which then reads nothing, is closed for backpressure.
const ANSWER_ROOM_WAIT: Duration = Duration::from_secs(10);

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;
type Stream<S> = SplitStream<WebSocketStream<S>>;

/// Serves one client whose handshake is done, until its connection ends.
pub(crate) async fn serve<S>(
    protocol: Arc<WebSocketProtocol>,
    ws: WebSocketStream<S>,
    peer: SocketAddr,
    headers: HashMap<String, String>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(context) = protocol.context() else {
        tracing::warn!(%peer, "WebSocket protocol not started: connection dropped.");
        return;
    };
    let router = context.router.clone();
    let shutdown = context.shutdown.clone();
    let config = protocol.config();

    let connection = ClientConnection::new(NAME, headers::client_ips(peer, &headers), headers);
    let id = connection.id;
    let signal = Arc::new(CloseSignal::new(config.close_grace()));
    let (sender, queue) = mpsc::channel(config.outgoing_queue);
    let client = Arc::new(Client::new(id, sender, signal.clone()));
    protocol.clients().insert(id, client.clone());
    if let Err(error) = router.new_connection(connection) {
        protocol.clients().remove(id);
        tracing::debug!(connection_id = %id, %error, "Connection refused.");
        let cause = match error {
            ApiError::TooManyConnections(_) => CloseCause::Busy,
            _ => CloseCause::Shutdown,
        };
        refuse(ws, cause, config.close_grace()).await;
        return;
    }
    tracing::debug!(connection_id = %id, %peer, "WebSocket connection opened.");

    let (sink, stream) = ws.split();
    let reader_done = CancellationToken::new();
    let reader = Reader {
        id,
        router: &router,
        shutdown: &shutdown,
        signal: &signal,
        client,
        max_in_flight: config.max_in_flight,
        max_request_size: router.limits().max_request_size,
        idle: config.idle(),
    };
    let read_half = async {
        let stream = reader.run(stream).await;
        // No request of this connection runs any more: forget it, once.
        router.remove_connection(id);
        protocol.clients().remove(id);
        reader_done.cancel();
        stream
    };
    let (stream, sink) = tokio::join!(read_half, write(sink, queue, &signal, &reader_done));

    let cause = signal.cause().unwrap_or(CloseCause::Remote);
    tracing::debug!(connection_id = %id, %cause, "WebSocket closed.");
    if let Ok(ws) = stream.reunite(sink) {
        linger(ws, signal.deadline()).await;
    }
}

/// Closes a connection the router refused (shutting down, or at its cap).
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    cause: CloseCause,
    grace: Duration,
) {
    let frame = cause.frame();
    let _ = tokio::time::timeout(grace, ws.close(frame)).await;
}

/// The reading half of a connection.
struct Reader<'a> {
    id: ConnectionId,
    router: &'a RouterHandle,
    shutdown: &'a CancellationToken,
    signal: &'a CloseSignal,
    client: Arc<Client>,
    max_in_flight: usize,
    max_request_size: usize,
    idle: Option<Duration>,
}

impl Reader<'_> {
    /// Reads and executes requests until the connection closes; then, for a
    /// draining close, waits for the requests already read. Returns the stream
    /// once no request of the connection runs.
    async fn run<S>(self, mut stream: Stream<S>) -> Stream<S>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // Boxed: the set's own stub task holds no request future inline, so an
        // idle connection does not pay for one (about 1 KiB each).
        let mut in_flight = FuturesUnordered::new();
        let mut last_seen = Instant::now();
        // Without an idle timeout the ticker is never polled.
        let period = self.idle.map_or(Duration::from_secs(3600), |idle| {
            (idle / 2).max(Duration::from_millis(1))
        });
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Pinned once, not re-registered for every frame read.
        let closing = self.signal.closing();
        tokio::pin!(closing);
        let shutdown = self.shutdown.cancelled();
        tokio::pin!(shutdown);

        loop {
            tokio::select! {
                biased;
                () = &mut closing => break,
                () = &mut shutdown => {
                    self.signal.close(CloseCause::Shutdown);
                    break;
                }
                Some(answer) = in_flight.next(), if !in_flight.is_empty() => {
                    self.send(answer, Instant::now() + ANSWER_ROOM_WAIT).await;
                }
                _ = ticker.tick(), if self.idle.is_some() => {
                    let quiet = last_seen.elapsed();
                    if in_flight.is_empty() && self.idle.is_some_and(|idle| quiet >= idle) {
                        self.signal.close(CloseCause::Idle);
                        break;
                    }
                    // Ping a client quiet for a quarter of the timeout: its pong
                    // comes back well before the next check.
                    if quiet >= period / 2 {
                        self.client.send(Message::Ping(Bytes::new()));
                    }
                }
                frame = stream.next(), if in_flight.len() < self.max_in_flight => {
                    last_seen = Instant::now();
                    match frame {
                        Some(Ok(message)) => match message {
                            Message::Text(text) => {
                                if let Some(payload) = self.request(Bytes::from(text)) {
                                    in_flight.push(Box::pin(execute(self.router.clone(), self.id, payload)));
                                }
                            }
                            // Kuzzle reads a binary frame's bytes as a request too.
                            Message::Binary(bytes) => {
                                if let Some(payload) = self.request(bytes) {
                                    in_flight.push(Box::pin(execute(self.router.clone(), self.id, payload)));
                                }
                            }
                            // Pings are answered by tungstenite; both keep the client alive.
                            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                            Message::Close(_) => {
                                self.signal.close(CloseCause::Remote);
                                break;
                            }
                        },
                        Some(Err(error)) => {
                            self.failed(&error);
                            break;
                        }
                        None => {
                            self.signal.close(CloseCause::Remote);
                            break;
                        }
                    }
                }
            }
        }

        if self.signal.cause().is_some_and(CloseCause::drains) {
            let deadline = self.signal.deadline();
            loop {
                tokio::select! {
                    biased;
                    () = self.signal.urgent() => break,
                    () = tokio::time::sleep_until(deadline) => {
                        tracing::warn!(connection_id = %self.id, "Requests still running at close: dropped.");
                        break;
                    }
                    answer = in_flight.next() => match answer {
                        Some(answer) => self.send(answer, deadline).await,
                        None => break,
                    },
                }
            }
        }
        stream
    }

    /// Filters what a frame carries: the payload when it is a request to run,
    /// `None` when it was answered here (a heartbeat) or is ignored (empty, as
    /// Kuzzle does).
    fn request(&self, payload: Bytes) -> Option<Bytes> {
        if payload.is_empty() {
            return None;
        }
        if heartbeat::is_ping(&payload) {
            self.client
                .send(Message::Text(Utf8Bytes::from_static(heartbeat::PONG)));
            return None;
        }
        if payload.len() > self.max_request_size {
            tracing::warn!(connection_id = %self.id, size = payload.len(), "Request too large: refused.");
        }
        Some(payload)
    }

    /// Queues an answer for the client, waiting until `deadline` for room.
    async fn send(&self, answer: Option<Message>, deadline: Instant) {
        if let Some(answer) = answer {
            self.client.answer(answer, deadline).await;
        }
    }

    /// Closes the connection after a read error.
    fn failed(&self, error: &WsError) {
        let cause = match error {
            WsError::Capacity(_) => CloseCause::TooLarge,
            WsError::Utf8(_) => CloseCause::InvalidText,
            WsError::Protocol(WsProtocolError::ResetWithoutClosingHandshake) => CloseCause::Remote,
            WsError::Protocol(_) => CloseCause::ProtocolViolation,
            _ => CloseCause::Remote,
        };
        if cause == CloseCause::Remote {
            tracing::debug!(connection_id = %self.id, %error, "Connection lost.");
        } else {
            tracing::warn!(connection_id = %self.id, %error, "Refused input: connection closed.");
        }
        self.signal.close(cause);
    }
}

/// Runs one request and builds its answer frame (`room` = requestId).
async fn execute(router: RouterHandle, id: ConnectionId, payload: Bytes) -> Option<Message> {
    let response = router.execute_payload(id, &payload).await;
    drop(payload);
    text(response.to_bytes_with_room())
}

/// A text frame of JSON bytes, without copying them.
pub(crate) fn text(payload: Bytes) -> Option<Message> {
    match Utf8Bytes::try_from(payload) {
        Ok(text) => Some(Message::Text(text)),
        Err(error) => {
            tracing::error!(%error, "Outgoing payload is not UTF-8: dropped.");
            None
        }
    }
}

/// The writing half of a connection: drains `queue` to the socket, then sends
/// the close frame. Returns the sink for the final linger.
async fn write<S>(
    mut sink: Sink<S>,
    mut queue: mpsc::Receiver<Message>,
    signal: &CloseSignal,
    reader_done: &CancellationToken,
) -> Sink<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Resolves when a close was asked and its time is up.
    let expired = async {
        signal.closing().await;
        tokio::time::sleep_until(signal.deadline()).await;
    };
    tokio::pin!(expired);
    // Pinned once: re-creating them for every message would register and
    // unregister their waiters each time, on the hot path of every fan-out.
    let urgent = signal.urgent();
    tokio::pin!(urgent);
    let reader_finished = reader_done.cancelled();
    tokio::pin!(reader_finished);
    let mut draining = false;
    loop {
        let next = tokio::select! {
            biased;
            () = &mut urgent => break,
            () = &mut expired => break,
            () = &mut reader_finished, if !draining => {
                // Nothing new will be queued: write what is there, then close.
                draining = true;
                queue.close();
                continue;
            }
            next = queue.recv() => next,
        };
        let Some(first) = next else { break };
        let written = tokio::select! {
            biased;
            () = &mut urgent => break,
            () = &mut expired => break,
            written = write_batch(&mut sink, &mut queue, first) => written,
        };
        if let Err(error) = written {
            tracing::debug!(%error, "Write failed.");
            signal.close(CloseCause::Remote);
            break;
        }
    }
    signal.hurry();
    let frame = signal.cause().and_then(CloseCause::frame);
    let _ = tokio::time::timeout_at(signal.deadline(), async {
        match frame {
            Some(frame) => sink.send(Message::Close(Some(frame))).await,
            // The client closed: flush tungstenite's answer to its close frame.
            None => sink.close().await,
        }
    })
    .await;
    sink
}

/// Writes `first` and what else is queued (up to a batch), then flushes.
async fn write_batch<S>(
    sink: &mut Sink<S>,
    queue: &mut mpsc::Receiver<Message>,
    first: Message,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    sink.feed(first).await?;
    for _ in 1..MAX_BATCH {
        match queue.try_recv() {
            Ok(message) => sink.feed(message).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}

/// Ends the TCP stream politely: half-closes it, then reads and drops what the
/// client still sends until it closes too (or the deadline), so that unread
/// input does not turn our close into a reset that could lose the close frame.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>, deadline: Instant) {
    let io = ws.get_mut();
    let _ = tokio::time::timeout_at(deadline, async {
        let _ = io.shutdown().await;
        let mut buffer = vec![0_u8; 4096];
        while let Ok(read) = io.read(&mut buffer).await
            && read > 0
        {}
    })
    .await;
}
