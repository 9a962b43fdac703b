//! Test support: a server with the MQTT and embedded protocols, rumqttc clients
//! of both MQTT versions behind one interface, and raw MQTT bytes for what a
//! well-behaved client library will not send.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protoplex_core::embedded::{EmbeddedClient, EmbeddedProtocol};
use protoplex_core::{ActionCall, ActionSpec, ApiError, BoxFuture, Controller, CoreConfig, Router};
use protoplex_mqtt::{MqttConfig, MqttProtocol};
use rumqttc::v5::mqttbytes::v5 as m5;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Longest wait for anything expected.
pub const WAIT: Duration = Duration::from_secs(10);

/// How long to listen to be sure nothing comes.
pub const QUIET: Duration = Duration::from_millis(500);

/// The two MQTT versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

pub const VERSIONS: [Version; 2] = [Version::V311, Version::V5];

/// A test controller: `test:sleep` answers after `ms` milliseconds,
/// `test:kick` disconnects the caller.
struct TestController;

impl Controller for TestController {
    fn name(&self) -> &str {
        "test"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        vec![ActionSpec::new("sleep"), ActionSpec::new("kick")]
    }

    fn execute<'a>(&'a self, call: ActionCall<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            if call.request.action == "kick" {
                return Ok(json!({ "kicked": call.router.disconnect(call.connection.id) }));
            }
            let ms = call.request.args.get("ms").and_then(Value::as_u64).unwrap_or(100);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!({ "slept": ms }))
        })
    }
}

/// A router with the MQTT protocol (on 127.0.0.1, any port) and the embedded one.
pub struct Server {
    pub router: Router,
    pub mqtt: Arc<MqttProtocol>,
    pub embedded: Arc<EmbeddedProtocol>,
    pub address: SocketAddr,
}

impl Server {
    pub async fn start(config: MqttConfig) -> Self {
        Self::start_with(CoreConfig::default(), config).await
    }

    pub async fn start_with(core: CoreConfig, config: MqttConfig) -> Self {
        let config = MqttConfig {
            bind: "127.0.0.1".parse().expect("ip"),
            port: 0,
            ..config
        };
        let mqtt = MqttProtocol::new(config);
        let embedded = EmbeddedProtocol::new(10_000);
        let router = Router::builder(core)
            .protocol(mqtt.clone())
            .protocol(embedded.clone())
            .controller(TestController)
            .build()
            .expect("router");
        router.start().await.expect("start");
        let address = mqtt.local_addr().expect("bound");
        Self {
            router,
            mqtt,
            embedded,
            address,
        }
    }

    pub fn embedded(&self) -> EmbeddedClient {
        self.embedded.connect().expect("embedded client")
    }

    pub async fn client(&self, version: Version, id: &str) -> Client {
        Client::connect(version, self.address, id, 30).await
    }

    /// Waits until the MQTT protocol has `count` clients.
    pub async fn wait_connections(&self, count: usize) {
        timeout(WAIT, async {
            while self.mqtt.connection_count() != count {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("never {count} connections (now {})", self.mqtt.connection_count()));
    }
}

/// What a client received.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Publish {
        topic: String,
        payload: Bytes,
        qos: u8,
        correlation: Option<Bytes>,
    },
    SubAck(Vec<u8>),
    PubAck(u8),
    /// The connection ended; MQTT 5: with the server's DISCONNECT reason.
    Closed(Option<u8>),
}

enum Handle {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// A rumqttc client of either version; its event loop runs in a task that
/// forwards what comes in.
pub struct Client {
    pub version: Version,
    handle: Handle,
    events: mpsc::UnboundedReceiver<Received>,
    task: JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn qos(level: u8) -> rumqttc::QoS {
    match level {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(level: u8) -> rumqttc::v5::mqttbytes::QoS {
    match level {
        0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        1 => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        _ => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn suback5(code: &m5::SubscribeReasonCode) -> u8 {
    use m5::SubscribeReasonCode as C;
    match code {
        C::Success(qos) => *qos as u8,
        C::Failure | C::Unspecified => 0x80,
        C::ImplementationSpecific => 0x83,
        C::NotAuthorized => 0x87,
        C::TopicFilterInvalid => 0x8F,
        C::PkidInUse => 0x91,
        C::QuotaExceeded => 0x97,
        C::SharedSubscriptionsNotSupported => 0x9E,
        C::SubscriptionIdNotSupported => 0xA1,
        C::WildcardSubscriptionsNotSupported => 0xA2,
    }
}

fn puback5(reason: m5::PubAckReason) -> u8 {
    use m5::PubAckReason as R;
    match reason {
        R::Success => 0,
        R::NoMatchingSubscribers => 0x10,
        R::UnspecifiedError => 0x80,
        R::ImplementationSpecificError => 0x83,
        R::NotAuthorized => 0x87,
        R::TopicNameInvalid => 0x90,
        R::PacketIdentifierInUse => 0x91,
        R::QuotaExceeded => 0x97,
        R::PayloadFormatInvalid => 0x99,
    }
}

fn map311(packet: rumqttc::Packet) -> Option<Received> {
    match packet {
        // The CONNACK, as an empty SubAck.
        rumqttc::Packet::ConnAck(_) => Some(Received::SubAck(vec![])),
        rumqttc::Packet::Publish(publish) => Some(Received::Publish {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos as u8,
            correlation: None,
        }),
        rumqttc::Packet::SubAck(suback) => Some(Received::SubAck(
            suback
                .return_codes
                .iter()
                .map(|code| match code {
                    rumqttc::SubscribeReasonCode::Success(qos) => *qos as u8,
                    rumqttc::SubscribeReasonCode::Failure => 0x80,
                })
                .collect(),
        )),
        rumqttc::Packet::PubAck(_) => Some(Received::PubAck(0)),
        _ => None,
    }
}

fn map5(packet: m5::Packet) -> Option<Received> {
    match packet {
        m5::Packet::ConnAck(_) => Some(Received::SubAck(vec![])),
        m5::Packet::Publish(publish) => Some(Received::Publish {
            topic: String::from_utf8_lossy(&publish.topic).into_owned(),
            payload: publish.payload,
            qos: publish.qos as u8,
            correlation: publish.properties.and_then(|p| p.correlation_data),
        }),
        m5::Packet::SubAck(suback) => Some(Received::SubAck(
            suback.return_codes.iter().map(suback5).collect(),
        )),
        m5::Packet::PubAck(puback) => Some(Received::PubAck(puback5(puback.reason))),
        _ => None,
    }
}

impl Client {
    pub async fn connect(version: Version, address: SocketAddr, id: &str, keep_alive: u64) -> Self {
        let (sender, mut events) = mpsc::unbounded_channel();
        let (handle, task) = match version {
            Version::V311 => {
                let mut options = rumqttc::MqttOptions::new(id, address.ip().to_string(), address.port());
                options
                    .set_keep_alive(Duration::from_secs(keep_alive))
                    .set_max_packet_size(4 << 20, 4 << 20);
                let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1000);
                let task = tokio::spawn(async move {
                    loop {
                        let received = match eventloop.poll().await {
                            Ok(rumqttc::Event::Incoming(packet)) => map311(packet),
                            Ok(_) => None,
                            Err(_) => {
                                // Packets read along with the end of the connection.
                                for event in eventloop.state.events.drain(..) {
                                    if let rumqttc::Event::Incoming(packet) = event
                                        && let Some(received) = map311(packet)
                                    {
                                        let _ = sender.send(received);
                                    }
                                }
                                let _ = sender.send(Received::Closed(None));
                                break;
                            }
                        };
                        if let Some(received) = received
                            && sender.send(received).is_err()
                        {
                            break;
                        }
                    }
                });
                (Handle::V311(client), task)
            }
            Version::V5 => {
                let mut options = rumqttc::v5::MqttOptions::new(id, address.ip().to_string(), address.port());
                options
                    .set_keep_alive(Duration::from_secs(keep_alive.max(5)))
                    .set_max_packet_size(Some(4 << 20));
                let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 1000);
                let task = tokio::spawn(async move {
                    loop {
                        let received = match eventloop.poll().await {
                            Ok(rumqttc::v5::Event::Incoming(packet)) => map5(packet),
                            Ok(_) => None,
                            Err(error) => {
                                for event in eventloop.state.events.drain(..) {
                                    if let rumqttc::v5::Event::Incoming(packet) = event
                                        && let Some(received) = map5(packet)
                                    {
                                        let _ = sender.send(received);
                                    }
                                }
                                let reason = match error {
                                    rumqttc::v5::ConnectionError::MqttState(
                                        rumqttc::v5::StateError::ServerDisconnect { reason_code, .. },
                                    ) => Some(reason_code as u8),
                                    _ => None,
                                };
                                let _ = sender.send(Received::Closed(reason));
                                break;
                            }
                        };
                        if let Some(received) = received
                            && sender.send(received).is_err()
                        {
                            break;
                        }
                    }
                });
                (Handle::V5(client), task)
            }
        };
        // The CONNACK comes first (as an empty SubAck).
        match timeout(WAIT, events.recv()).await {
            Ok(Some(Received::SubAck(codes))) if codes.is_empty() => {}
            other => panic!("{version:?} client {id}: no CONNACK: {other:?}"),
        }
        Self {
            version,
            handle,
            events,
            task,
        }
    }

    pub async fn publish(&self, topic: &str, level: u8, payload: impl Into<Vec<u8>>) {
        let payload: Vec<u8> = payload.into();
        match &self.handle {
            Handle::V311(client) => client
                .publish(topic, qos(level), false, payload)
                .await
                .expect("publish"),
            Handle::V5(client) => client
                .publish(topic, qos5(level), false, payload)
                .await
                .expect("publish"),
        }
    }

    /// MQTT 5 only: a request with a response topic and correlation data.
    pub async fn publish_v5(&self, topic: &str, payload: Vec<u8>, response_topic: &str, correlation: &[u8]) {
        let Handle::V5(client) = &self.handle else {
            panic!("MQTT 5 only");
        };
        let properties = m5::PublishProperties {
            response_topic: Some(response_topic.into()),
            correlation_data: Some(Bytes::copy_from_slice(correlation)),
            ..Default::default()
        };
        client
            .publish_with_properties(
                topic,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                payload,
                properties,
            )
            .await
            .expect("publish");
    }

    /// Subscribes and returns the SUBACK's codes.
    pub async fn subscribe(&mut self, filter: &str, level: u8) -> Vec<u8> {
        match &self.handle {
            Handle::V311(client) => client.subscribe(filter, qos(level)).await.expect("subscribe"),
            Handle::V5(client) => client.subscribe(filter, qos5(level)).await.expect("subscribe"),
        }
        loop {
            match self.next().await {
                Received::SubAck(codes) => return codes,
                Received::Closed(reason) => panic!("closed while subscribing: {reason:?}"),
                _ => {}
            }
        }
    }

    /// Subscribes to many filters in one SUBSCRIBE; returns the SUBACK's codes.
    pub async fn subscribe_many(&mut self, filters: &[String], level: u8) -> Vec<u8> {
        match &self.handle {
            Handle::V311(client) => client
                .subscribe_many(
                    filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), qos(level))),
                )
                .await
                .expect("subscribe"),
            Handle::V5(client) => client
                .subscribe_many(filters.iter().map(|f| m5::Filter::new(f.clone(), qos5(level))))
                .await
                .expect("subscribe"),
        }
        loop {
            match self.next().await {
                Received::SubAck(codes) => return codes,
                Received::Closed(reason) => panic!("closed while subscribing: {reason:?}"),
                _ => {}
            }
        }
    }

    pub async fn disconnect(&self) {
        match &self.handle {
            Handle::V311(client) => client.disconnect().await.expect("disconnect"),
            Handle::V5(client) => client.disconnect().await.expect("disconnect"),
        }
    }

    /// The next thing received.
    pub async fn next(&mut self) -> Received {
        timeout(WAIT, self.events.recv())
            .await
            .expect("nothing received in time")
            .unwrap_or(Received::Closed(None))
    }

    /// The next PUBLISH received: `(topic, JSON payload, qos, correlation)`.
    pub async fn next_publish(&mut self) -> (String, Value, u8, Option<Bytes>) {
        loop {
            match self.next().await {
                Received::Publish {
                    topic,
                    payload,
                    qos,
                    correlation,
                } => {
                    let value = serde_json::from_slice(&payload)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&payload).into_owned()));
                    return (topic, value, qos, correlation);
                }
                Received::Closed(reason) => panic!("closed while waiting for a publish: {reason:?}"),
                _ => {}
            }
        }
    }

    /// The next PUBACK's reason.
    pub async fn next_puback(&mut self) -> u8 {
        loop {
            match self.next().await {
                Received::PubAck(reason) => return reason,
                Received::Closed(reason) => panic!("closed while waiting for a PUBACK: {reason:?}"),
                _ => {}
            }
        }
    }

    /// Sends a request (QoS 1) and returns its answer from the response topic.
    pub async fn request(&mut self, request: Value) -> Value {
        self.publish("Kuzzle/request", 1, request.to_string()).await;
        let (topic, response, _, _) = self.next_publish().await;
        assert_eq!(topic, "Kuzzle/response");
        response
    }

    /// Subscribes to a room through the API, then to its channel's topic;
    /// returns `(roomId, channel)`.
    pub async fn subscribe_room(
        &mut self,
        index: &str,
        filter: Value,
        level: Option<u8>,
    ) -> (String, String) {
        let response = self
            .request(json!({"controller": "realtime", "action": "subscribe", "index": index, "collection": "c", "body": filter}))
            .await;
        assert_eq!(response["status"], 200, "{response}");
        let room = response["result"]["roomId"].as_str().expect("roomId").to_owned();
        let channel = response["result"]["channel"]
            .as_str()
            .expect("channel")
            .to_owned();
        if let Some(level) = level {
            assert_eq!(self.subscribe(&channel, level).await, vec![level.min(1)]);
        }
        (room, channel)
    }

    /// Everything received during `duration`.
    pub async fn collect(&mut self, duration: Duration) -> Vec<Received> {
        let mut out = Vec::new();
        let _ = timeout(duration, async {
            while let Some(received) = self.events.recv().await {
                out.push(received);
            }
        })
        .await;
        out
    }

    /// Waits for the end of the connection; returns the DISCONNECT reason (MQTT 5).
    pub async fn closed(&mut self) -> Option<u8> {
        loop {
            if let Received::Closed(reason) = self.next().await {
                return reason;
            }
        }
    }
}

/// `realtime:count` of a room, asked by an embedded client.
pub async fn count(client: &EmbeddedClient, room: &str) -> u64 {
    let response = client
        .query(json!({"controller": "realtime", "action": "count", "body": {"roomId": room}}))
        .await;
    response.result["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("{response:?}"))
}

/// Waits until `realtime:count` of `room` is `expected`.
pub async fn wait_count(client: &EmbeddedClient, room: &str, expected: u64) {
    timeout(WAIT, async {
        while count(client, room).await != expected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("count never reached {expected}"));
}

/// Raw MQTT bytes.
pub mod raw {
    use super::*;

    fn varint(out: &mut Vec<u8>, mut value: usize) {
        loop {
            let mut byte = (value % 128) as u8;
            value /= 128;
            if value > 0 {
                byte |= 0x80;
            }
            out.push(byte);
            if value == 0 {
                break;
            }
        }
    }

    fn string(out: &mut Vec<u8>, value: &[u8]) {
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value);
    }

    fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![byte1];
        varint(&mut out, body.len());
        out.extend_from_slice(body);
        out
    }

    pub fn connect(version: Version, client_id: &str, keep_alive: u16) -> Vec<u8> {
        let mut body = Vec::new();
        string(&mut body, b"MQTT");
        body.push(if version == Version::V5 { 5 } else { 4 });
        body.push(0x02);
        body.extend_from_slice(&keep_alive.to_be_bytes());
        if version == Version::V5 {
            body.push(0);
        }
        string(&mut body, client_id.as_bytes());
        packet(0x10, &body)
    }

    pub fn publish(version: Version, topic: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        string(&mut body, topic.as_bytes());
        if version == Version::V5 {
            body.push(0);
        }
        body.extend_from_slice(payload);
        packet(0x30, &body)
    }

    /// A connected raw client (CONNACK read).
    pub async fn client(
        version: Version,
        address: SocketAddr,
        client_id: &str,
        keep_alive: u16,
    ) -> TcpStream {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream
            .write_all(&connect(version, client_id, keep_alive))
            .await
            .expect("write");
        let (byte1, body) = read_packet(&mut stream).await.expect("CONNACK");
        assert_eq!(byte1, 0x20);
        assert_eq!(body.get(1), Some(&0), "CONNACK refused: {body:?}");
        stream
    }

    /// The next packet: `(first byte, body)`; `None` once the server closed.
    pub async fn read_packet(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
        timeout(WAIT, async {
            let byte1 = stream.read_u8().await.ok()?;
            let mut length = 0_usize;
            for shift in 0..4 {
                let byte = stream.read_u8().await.ok()?;
                length |= usize::from(byte & 0x7F) << (7 * shift);
                if byte & 0x80 == 0 {
                    break;
                }
            }
            let mut body = vec![0; length];
            stream.read_exact(&mut body).await.ok()?;
            Some((byte1, body))
        })
        .await
        .expect("server neither sent nor closed in time")
    }

    /// Reads until the server closes; returns the MQTT 5 DISCONNECT reason
    /// seen on the way, if any.
    pub async fn until_closed(stream: &mut TcpStream) -> Option<u8> {
        let mut reason = None;
        while let Some((byte1, body)) = read_packet(stream).await {
            if byte1 == 0xE0 {
                reason = Some(body.first().copied().unwrap_or(0));
            }
        }
        reason
    }
}
