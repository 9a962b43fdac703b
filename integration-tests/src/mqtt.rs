//! MQTT clients (rumqttc, 3.1.1 and 5.0) of the Kuzzle API: requests on
//! `Kuzzle/request`, answers on `Kuzzle/response`, notifications on channel topics.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::PATIENCE;

/// Topic requests are published to.
pub const REQUEST_TOPIC: &str = "Kuzzle/request";
/// Topic answers arrive on.
pub const RESPONSE_TOPIC: &str = "Kuzzle/response";

/// The MQTT version a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1.
    V311,
    /// MQTT 5.0.
    V5,
}

enum Handle {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// A connected MQTT client; its event loop runs in a task that forwards every
/// incoming PUBLISH as `(topic, payload)`.
pub struct MqttClient {
    handle: Handle,
    incoming: mpsc::UnboundedReceiver<(String, Bytes)>,
    notifications: VecDeque<Value>,
    event_loop: JoinHandle<()>,
    next_id: u64,
}

fn client_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "matrix-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl MqttClient {
    /// Connects to the broker at `address` and waits for its CONNACK.
    pub async fn connect(address: SocketAddr, version: Version) -> Self {
        let (sender, incoming) = mpsc::unbounded_channel();
        let (connected, ready) = tokio::sync::oneshot::channel();
        let host = address.ip().to_string();
        let (handle, event_loop) = match version {
            Version::V311 => {
                let mut options = rumqttc::MqttOptions::new(client_id(), host, address.port());
                options
                    .set_keep_alive(Duration::from_secs(30))
                    .set_max_packet_size(4 << 20, 4 << 20);
                let (client, mut events) = rumqttc::AsyncClient::new(options, 256);
                let task = tokio::spawn(async move {
                    let mut connected = Some(connected);
                    while let Ok(event) = events.poll().await {
                        match event {
                            rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)) => {
                                if let Some(connected) = connected.take() {
                                    let _ = connected.send(());
                                }
                            }
                            rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish)) => {
                                let topic = publish.topic.clone();
                                if sender.send((topic, publish.payload)).is_err() {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                });
                (Handle::V311(client), task)
            }
            Version::V5 => {
                let mut options = rumqttc::v5::MqttOptions::new(client_id(), host, address.port());
                options
                    .set_keep_alive(Duration::from_secs(30))
                    .set_max_packet_size(Some(4 << 20));
                let (client, mut events) = rumqttc::v5::AsyncClient::new(options, 256);
                let task = tokio::spawn(async move {
                    let mut connected = Some(connected);
                    while let Ok(event) = events.poll().await {
                        match event {
                            rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(_)) => {
                                if let Some(connected) = connected.take() {
                                    let _ = connected.send(());
                                }
                            }
                            rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::Publish(
                                publish,
                            )) => {
                                let topic = String::from_utf8_lossy(&publish.topic).into_owned();
                                if sender.send((topic, publish.payload)).is_err() {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                });
                (Handle::V5(client), task)
            }
        };
        tokio::time::timeout(PATIENCE, ready)
            .await
            .expect("CONNACK in time")
            .expect("event loop running");
        Self {
            handle,
            incoming,
            notifications: VecDeque::new(),
            event_loop,
            next_id: 0,
        }
    }

    /// Publishes `request` (a requestId added when missing) on the request
    /// topic, QoS 1, and waits for its answer on the response topic.
    pub async fn query(&mut self, mut request: Value) -> Value {
        if request.get("requestId").is_none() {
            self.next_id += 1;
            request["requestId"] = Value::from(format!("mqtt-{}", self.next_id));
        }
        let id = request["requestId"].clone();
        self.publish_request(request.to_string().into_bytes()).await;
        self.answer(|message| message.get("requestId") == Some(&id)).await
    }

    /// Publishes raw bytes on the request topic, QoS 1, and returns the next
    /// message on the response topic: for payloads that are not requests, whose
    /// answers carry no requestId to match.
    pub async fn query_raw(&mut self, payload: Vec<u8>) -> Value {
        self.publish_request(payload).await;
        self.answer(|_| true).await
    }

    /// Publishes `payload` on the request topic, QoS 1.
    async fn publish_request(&self, payload: Vec<u8>) {
        match &self.handle {
            Handle::V311(client) => client
                .publish(REQUEST_TOPIC, rumqttc::QoS::AtLeastOnce, false, payload)
                .await
                .expect("publish request"),
            Handle::V5(client) => client
                .publish(
                    REQUEST_TOPIC,
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await
                .expect("publish request"),
        }
    }

    /// The next message on the response topic that `is_answer` accepts;
    /// messages on other topics are kept as notifications.
    async fn answer(&mut self, is_answer: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (topic, payload) = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .expect("an answer in time")
                .expect("event loop running");
            let message: Value = serde_json::from_slice(&payload).expect("JSON payload");
            if topic == RESPONSE_TOPIC && is_answer(&message) {
                return message;
            }
            if topic != RESPONSE_TOPIC {
                self.notifications.push_back(message);
            }
        }
    }

    /// The next notification (a message on any topic but the response topic),
    /// if one comes within `wait`.
    pub async fn maybe_notification(&mut self, wait: Duration) -> Option<Value> {
        if let Some(message) = self.notifications.pop_front() {
            return Some(message);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let (topic, payload) = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .ok()??;
            if topic != RESPONSE_TOPIC {
                let message: Value = serde_json::from_slice(&payload).expect("JSON payload");
                assert_eq!(
                    message["room"], topic,
                    "notifications go on their channel's topic"
                );
                return Some(message);
            }
        }
    }
}

impl Drop for MqttClient {
    fn drop(&mut self) {
        // Ending the event loop drops the socket: the server sees the client leave.
        self.event_loop.abort();
    }
}

/// A remaining length as written on the wire (a variable byte integer).
pub fn remaining_length(mut length: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(4);
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if length == 0 {
            return out;
        }
    }
}

/// A packet as written on the wire: first byte, remaining length, `body`.
pub fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![byte1];
    out.extend(remaining_length(body.len()));
    out.extend_from_slice(body);
    out
}

/// A CONNECT packet (clean session, keep-alive 60 s, no property).
pub fn connect_packet(version: Version, client_id: &str) -> Vec<u8> {
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T'];
    body.push(if version == Version::V5 { 5 } else { 4 });
    body.extend_from_slice(&[0x02, 0x00, 60]);
    if version == Version::V5 {
        body.push(0x00);
    }
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    packet(0x10, &body)
}

/// A PUBLISH packet (`pkid` written at QoS 1 and 2; no MQTT 5 property).
pub fn publish_packet(version: Version, topic: &[u8], payload: &[u8], qos: u8, pkid: u16) -> Vec<u8> {
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic);
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    if version == Version::V5 {
        body.push(0x00);
    }
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1), &body)
}

/// A packet read from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPacket {
    /// Its first byte (type and flags).
    pub byte1: u8,
    /// What follows the fixed header.
    pub body: Vec<u8>,
}

impl RawPacket {
    /// The control packet type (2 CONNACK, 3 PUBLISH, 14 DISCONNECT...).
    pub fn kind(&self) -> u8 {
        self.byte1 >> 4
    }

    /// A PUBLISH's topic and payload.
    pub fn publish(&self, version: Version) -> (String, &[u8]) {
        assert_eq!(self.kind(), 3, "a PUBLISH: {self:?}");
        let topic_len = usize::from(u16::from_be_bytes([self.body[0], self.body[1]]));
        let topic = String::from_utf8_lossy(&self.body[2..2 + topic_len]).into_owned();
        let mut at = 2 + topic_len;
        if (self.byte1 >> 1) & 0b11 > 0 {
            at += 2;
        }
        if version == Version::V5 {
            let (length, used) = varint(&self.body[at..]).expect("properties length");
            at += used + length;
        }
        (topic, &self.body[at..])
    }
}

/// A variable byte integer at the start of `bytes`: (value, bytes used).
fn varint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0_usize;
    for (index, &byte) in bytes.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

/// An MQTT client writing bytes on a plain TCP socket: for broken packets,
/// and for a client that stops reading.
pub struct RawMqtt {
    stream: tokio::net::TcpStream,
    version: Version,
    read: Vec<u8>,
    reset: bool,
}

impl RawMqtt {
    /// A TCP connection to the broker at `address`, nothing sent yet.
    pub async fn open(address: SocketAddr, version: Version) -> Self {
        let stream = tokio::time::timeout(PATIENCE, tokio::net::TcpStream::connect(address))
            .await
            .expect("connected in time")
            .expect("connect");
        Self::over(stream, version)
    }

    /// A client on an already connected socket, nothing sent yet.
    pub fn over(stream: tokio::net::TcpStream, version: Version) -> Self {
        Self {
            stream,
            version,
            read: Vec::new(),
            reset: false,
        }
    }

    /// Sends CONNECT and checks the CONNACK accepts it.
    pub async fn handshake(&mut self) {
        self.send(&connect_packet(self.version, &client_id())).await;
        let connack = self.packet().await.expect("a CONNACK");
        assert_eq!(connack.kind(), 2, "CONNACK: {connack:?}");
        assert_eq!(connack.body.get(1), Some(&0), "accepted: {connack:?}");
    }

    /// Connects and completes the handshake.
    pub async fn connect(address: SocketAddr, version: Version) -> Self {
        let mut client = Self::open(address, version).await;
        client.handshake().await;
        client
    }

    /// Whether the connection ended with an error (a reset) rather than the
    /// server's orderly close.
    pub fn was_reset(&self) -> bool {
        self.reset
    }

    /// Writes raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next packet; `None` once the server closed the connection (or
    /// reset it). Panics when nothing comes in time.
    pub async fn packet(&mut self) -> Option<RawPacket> {
        tokio::time::timeout(PATIENCE, self.read_packet())
            .await
            .expect("a packet (or the end) in time")
    }

    /// Every packet until the server closes the connection.
    pub async fn until_end(&mut self) -> Vec<RawPacket> {
        let mut packets = Vec::new();
        while let Some(packet) = self.packet().await {
            packets.push(packet);
        }
        packets
    }

    /// Publishes `request` (QoS 0) on the request topic and returns the
    /// answer (the next PUBLISH on the response topic).
    pub async fn query(&mut self, request: &Value) -> Value {
        let publish = publish_packet(
            self.version,
            REQUEST_TOPIC.as_bytes(),
            request.to_string().as_bytes(),
            0,
            0,
        );
        self.send(&publish).await;
        loop {
            let packet = self.packet().await.expect("an answer before the end");
            if packet.kind() != 3 {
                continue;
            }
            let (topic, payload) = packet.publish(self.version);
            if topic == RESPONSE_TOPIC {
                return serde_json::from_slice(payload).expect("JSON answer");
            }
        }
    }

    async fn read_packet(&mut self) -> Option<RawPacket> {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0_u8; 16 * 1024];
        loop {
            if self.read.len() >= 2
                && let Some((length, used)) = varint(&self.read[1..])
                && self.read.len() >= 1 + used + length
            {
                let byte1 = self.read[0];
                let body = self.read[1 + used..1 + used + length].to_vec();
                self.read.drain(..1 + used + length);
                return Some(RawPacket { byte1, body });
            }
            match self.stream.read(&mut chunk).await {
                Ok(0) => return None,
                Err(_) => {
                    self.reset = true;
                    return None;
                }
                Ok(read) => self.read.extend_from_slice(&chunk[..read]),
            }
        }
    }
}
