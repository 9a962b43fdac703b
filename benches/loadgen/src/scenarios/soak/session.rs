//! A Kuzzle session of the soak over WebSocket, MQTT or AMQP: requests
//! matched with their answers, notifications handed to an [`Inbox`], all that
//! the server sends read by one task.
//!
//! A frame carrying a [payload marker](crate::clients::payload) is a
//! notification; any other is an answer, matched by its AMQP
//! `correlation_id` (set on every AMQP request) or else by its `requestId`
//! (empty for a request that was not JSON). What matches nothing is a stray,
//! counted as an error by the soak.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use lapin::options::{BasicPublishOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Channel, Connection, Consumer};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::clients::amqp::{self, AmqpRoute, unique_name};
use crate::clients::payload::{self, Marker};
use crate::clients::ws::{self, BUSY_READ_BUFFER, PATIENCE, WsStream};
use crate::clients::{ClientError, mqtt};

/// Where a session's notifications go.
pub trait Inbox: Send + Sync {
    /// One notification, by the marker of the message it carries.
    fn notification(&self, marker: Marker);
}

/// The first stray frames kept, for the report.
const STRAYS_KEPT: usize = 3;

/// What the reader task and the requesters share.
struct Shared {
    pending: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    inbox: Arc<dyn Inbox>,
    strays: AtomicU64,
    stray_samples: Mutex<Vec<String>>,
    /// Why the reader stopped, when it did without being asked.
    ended: Mutex<Option<String>>,
    closing: AtomicBool,
}

impl Shared {
    fn new(inbox: Arc<dyn Inbox>) -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(HashMap::new()),
            inbox,
            strays: AtomicU64::new(0),
            stray_samples: Mutex::new(Vec::new()),
            ended: Mutex::new(None),
            closing: AtomicBool::new(false),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Value>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Routes one frame from the server.
    fn dispatch(&self, frame: &[u8], correlation: Option<&str>) {
        if let Some(marker) = payload::find(frame) {
            self.inbox.notification(marker);
            return;
        }
        let answer = serde_json::from_slice::<Value>(frame).ok();
        let key = correlation.map(str::to_owned).or_else(|| {
            answer
                .as_ref()
                .and_then(|a| a.get("requestId"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let waiter = key.and_then(|key| self.pending().remove(&key));
        match (waiter, answer) {
            (Some(waiter), Some(answer)) => {
                let _ = waiter.send(answer);
            }
            _ => {
                self.strays.fetch_add(1, Ordering::Relaxed);
                let mut samples = self.stray_samples.lock().unwrap_or_else(PoisonError::into_inner);
                if samples.len() < STRAYS_KEPT {
                    samples.push(String::from_utf8_lossy(&frame[..frame.len().min(300)]).into_owned());
                }
            }
        }
    }

    /// The reader stopped: pending requests fail at once.
    fn end(&self, reason: String) {
        if !self.closing.load(Ordering::Relaxed) {
            self.ended
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(reason);
        }
        self.pending().clear();
    }
}

/// An AMQP session's side: its channel, its reply queue, the server's route.
struct AmqpLink {
    channel: Channel,
    queue: String,
    exchange: String,
    routing_key: String,
}

/// How requests reach the server.
enum Link {
    Ws(tokio::sync::Mutex<SplitSink<WsStream, Message>>),
    Mqtt(tokio::sync::Mutex<OwnedWriteHalf>),
    Amqp(AmqpLink),
}

/// One client of the server: a connection (WebSocket, MQTT) or a reply
/// queue (AMQP), to which the server sends answers and notifications.
pub struct Session {
    link: Link,
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
    next_id: AtomicU64,
}

impl Session {
    /// A WebSocket connection to `server`.
    pub async fn websocket(server: SocketAddr, inbox: Arc<dyn Inbox>) -> Result<Self, ClientError> {
        let stream = ws::connect(server, None, BUSY_READ_BUFFER).await?;
        let (sink, stream) = stream.split();
        let shared = Shared::new(inbox);
        let reader = tokio::spawn(read_ws(stream, shared.clone()));
        Ok(Self::new(Link::Ws(tokio::sync::Mutex::new(sink)), shared, reader))
    }

    /// An MQTT 3.1.1 connection to `server` (requests and answers on the
    /// Kuzzle topics, notifications on the channels' topics).
    pub async fn mqtt(server: SocketAddr, inbox: Arc<dyn Inbox>) -> Result<Self, ClientError> {
        let (reader, write) = mqtt::open(server).await?;
        let shared = Shared::new(inbox);
        let reader = tokio::spawn(read_mqtt(reader, shared.clone()));
        Ok(Self::new(
            Link::Mqtt(tokio::sync::Mutex::new(write)),
            shared,
            reader,
        ))
    }

    /// An AMQP client on a channel of `connection`: an auto-delete reply
    /// queue of its own, consumed; requests published on `route`.
    pub async fn amqp(
        connection: &Connection,
        route: &AmqpRoute,
        inbox: Arc<dyn Inbox>,
    ) -> Result<Self, ClientError> {
        let queue = unique_name("loadgen.soak.reply");
        let (channel, consumer) = amqp::reply_queue(connection, &queue).await?;
        let shared = Shared::new(inbox);
        let reader = tokio::spawn(read_amqp(consumer, shared.clone()));
        let link = Link::Amqp(AmqpLink {
            channel,
            queue,
            exchange: route.exchange.clone(),
            routing_key: route.routing_key.clone(),
        });
        Ok(Self::new(link, shared, reader))
    }

    fn new(link: Link, shared: Arc<Shared>, reader: JoinHandle<()>) -> Self {
        Self {
            link,
            shared,
            reader,
            next_id: AtomicU64::new(0),
        }
    }

    /// A request id not used yet by this session.
    pub fn request_id(&self) -> String {
        format!("s{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends `text`, whose answer will carry `request_id` (empty for a
    /// request that is not JSON), and waits for that answer.
    pub async fn request(&self, request_id: &str, text: String) -> Result<Value, ClientError> {
        if let Some(reason) = self.ended() {
            return Err(ClientError::Closed(format!(" ({reason})")));
        }
        let key = match self.link {
            Link::Amqp(_) => format!("c{}", self.next_id.fetch_add(1, Ordering::Relaxed)),
            _ => request_id.to_owned(),
        };
        let (sender, receiver) = oneshot::channel();
        self.shared.pending().insert(key.clone(), sender);
        if let Err(error) = self.send(&key, text).await {
            self.shared.pending().remove(&key);
            return Err(error);
        }
        match tokio::time::timeout(PATIENCE, receiver).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(ClientError::Closed(format!(
                " ({})",
                self.ended().unwrap_or_else(|| "session closed".into())
            ))),
            Err(_) => {
                self.shared.pending().remove(&key);
                Err(ClientError::Timeout("answer"))
            }
        }
    }

    async fn send(&self, correlation_id: &str, text: String) -> Result<(), ClientError> {
        match &self.link {
            Link::Ws(sink) => {
                let sending = async { sink.lock().await.send(Message::text(text)).await };
                tokio::time::timeout(PATIENCE, sending)
                    .await
                    .map_err(|_| ClientError::Timeout("WebSocket send"))??;
            }
            Link::Mqtt(write) => {
                let mut out = BytesMut::with_capacity(text.len() + 32);
                mqtt::encode_publish(&mut out, mqtt::REQUEST_TOPIC, text.as_bytes());
                let sending = async { write.lock().await.write_all(&out).await };
                tokio::time::timeout(PATIENCE, sending)
                    .await
                    .map_err(|_| ClientError::Timeout("MQTT send"))??;
            }
            Link::Amqp(link) => {
                let properties = BasicProperties::default()
                    .with_reply_to(link.queue.as_str().into())
                    .with_correlation_id(correlation_id.into());
                let sending = async {
                    // Not in confirm mode: the second await returns at once.
                    link.channel
                        .basic_publish(
                            link.exchange.as_str().into(),
                            link.routing_key.as_str().into(),
                            BasicPublishOptions::default(),
                            text.as_bytes(),
                            properties,
                        )
                        .await?
                        .await?;
                    Ok::<_, ClientError>(())
                };
                tokio::time::timeout(PATIENCE, sending)
                    .await
                    .map_err(|_| ClientError::Timeout("AMQP publish"))??;
            }
        }
        Ok(())
    }

    /// Why the server's side ended, if it did without [`Session::close`].
    pub fn ended(&self) -> Option<String> {
        self.shared
            .ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Frames that were neither a notification nor an awaited answer, and the first ones.
    pub fn strays(&self) -> (u64, Vec<String>) {
        (
            self.shared.strays.load(Ordering::Relaxed),
            self.shared
                .stray_samples
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }

    /// Closes politely (WebSocket close, MQTT DISCONNECT, AMQP reply queue
    /// deleted), bounded in time, and stops the reader.
    pub async fn close(mut self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        let closing = async {
            match &self.link {
                Link::Ws(sink) => {
                    let _ = sink.lock().await.close().await;
                }
                Link::Mqtt(write) => {
                    let mut out = BytesMut::new();
                    mqtt::encode_disconnect(&mut out);
                    let mut write = write.lock().await;
                    let _ = write.write_all(&out).await;
                    let _ = write.shutdown().await;
                }
                Link::Amqp(link) => {
                    let _ = link
                        .channel
                        .queue_delete(link.queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                    let _ = link.channel.close(200, "bye".into()).await;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
        // WebSocket, MQTT: the server ends the connection in turn.
        if !matches!(self.link, Link::Amqp(_)) {
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.reader).await;
        }
        self.reader.abort();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_ws(mut stream: SplitStream<WsStream>, shared: Arc<Shared>) {
    let reason = loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => shared.dispatch(text.as_bytes(), None),
            Some(Ok(Message::Binary(bytes))) => shared.dispatch(&bytes, None),
            Some(Ok(Message::Close(frame))) => {
                break format!(
                    "WebSocket closed by the server{}",
                    frame
                        .map(|f| format!(" ({} {})", f.code, f.reason))
                        .unwrap_or_default()
                );
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => break format!("WebSocket: {error}"),
            None => break "WebSocket connection ended".into(),
        }
    };
    shared.end(reason);
}

async fn read_mqtt(mut reader: mqtt::Reader, shared: Arc<Shared>) {
    let reason = loop {
        match reader.next().await {
            Ok(mqtt::Packet::Publish { payload, .. }) => shared.dispatch(&payload, None),
            Ok(_) => continue,
            Err(error) => break format!("MQTT: {error}"),
        }
    };
    shared.end(reason);
}

async fn read_amqp(mut consumer: Consumer, shared: Arc<Shared>) {
    let reason = loop {
        match consumer.next().await {
            Some(Ok(delivery)) => {
                let correlation = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|id| id.as_str());
                shared.dispatch(&delivery.data, correlation);
            }
            Some(Err(error)) => break format!("AMQP: {error}"),
            None => break "AMQP consumer ended".into(),
        }
    };
    shared.end(reason);
}
