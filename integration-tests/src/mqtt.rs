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
        let payload = request.to_string().into_bytes();
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
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (topic, payload) = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .expect("an answer in time")
                .expect("event loop running");
            let message: Value = serde_json::from_slice(&payload).expect("JSON payload");
            if topic == RESPONSE_TOPIC && message.get("requestId") == Some(&id) {
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
