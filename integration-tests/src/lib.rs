//! What the cross-protocol tests share: a protoplex started in-process with its
//! real listeners on ephemeral loopback ports, and real clients for each
//! protocol behind one [`Client`] type, so that every test can run over every
//! pair of protocols.

pub mod amqp;
pub mod http;
pub mod mqtt;
pub mod panics;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use protoplex_amqp::{AmqpConfig, AmqpProtocol};
use protoplex_core::{CoreConfig, Router};
use protoplex_http::{HttpConfig, HttpProtocol};
use protoplex_mqtt::{MqttConfig, MqttProtocol};
use protoplex_websocket::{WebSocketConfig, WebSocketProtocol};
use serde_json::Value;

/// How long a test waits for anything before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A protoplex serving HTTP and WebSocket on one ephemeral loopback port,
/// MQTT on another, and AMQP through the RabbitMQ at `PROTOPLEX_AMQP_URL`
/// (on a request queue and routing key of its own).
pub struct TestServer {
    /// The router.
    pub router: Router,
    /// The HTTP protocol.
    pub http: Arc<HttpProtocol>,
    /// The WebSocket protocol (sharing the HTTP port).
    pub websocket: Arc<WebSocketProtocol>,
    /// Where HTTP and WebSocket listen.
    pub address: SocketAddr,
    /// The MQTT protocol.
    pub mqtt: Arc<MqttProtocol>,
    /// Where MQTT listens.
    pub mqtt_address: SocketAddr,
    /// The AMQP protocol.
    pub amqp: Arc<AmqpProtocol>,
    /// Its configuration (exchange, routing key, request queue).
    pub amqp_config: AmqpConfig,
    /// Whether the AMQP protocol runs (see [`Settings::without_amqp`]).
    with_amqp: bool,
}

/// What a [`TestServer`] starts with.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Core settings (limits...).
    pub core: CoreConfig,
    /// WebSocket settings (listener forced onto loopback).
    pub websocket: WebSocketConfig,
    /// MQTT settings (listener forced onto loopback, port 0).
    pub mqtt: MqttConfig,
    /// HTTP settings (listener forced onto loopback, port 0).
    pub http: HttpConfig,
    /// Leave the AMQP protocol out: no broker needed, no [`Kind::Amqp`] client.
    pub without_amqp: bool,
}

impl TestServer {
    /// Starts with the default configuration.
    pub async fn start() -> Self {
        Self::start_with(CoreConfig::default(), WebSocketConfig::default()).await
    }

    /// Starts with these core and WebSocket settings (listeners forced onto loopback, port 0).
    pub async fn start_with(core: CoreConfig, websocket: WebSocketConfig) -> Self {
        Self::start_settings(Settings {
            core,
            websocket,
            ..Settings::default()
        })
        .await
    }

    /// Starts with `settings` (listeners forced onto loopback, port 0).
    pub async fn start_settings(settings: Settings) -> Self {
        let Settings {
            core,
            websocket,
            mqtt,
            http,
            without_amqp,
        } = settings;
        let loopback = "127.0.0.1".parse().expect("loopback");
        let websocket = WebSocketProtocol::shared(WebSocketConfig {
            bind: loopback,
            port: 0,
            ..websocket
        });
        let http = HttpProtocol::new(HttpConfig {
            bind: loopback,
            port: 0,
            ..http
        })
        .with_websocket(websocket.clone());
        let mqtt = MqttProtocol::new(MqttConfig {
            bind: loopback,
            port: 0,
            ..mqtt
        });
        if !without_amqp {
            // Fail at once, with the way out, when no broker runs.
            let _ = amqp::connect().await.close(200, "probe".into()).await;
        }
        let amqp_config = AmqpConfig {
            url: amqp::broker_url(),
            queue: amqp::unique("protoplex.matrix.requests"),
            routing_key: amqp::unique("kuzzle.matrix"),
            queue_check_interval: 200,
            ..AmqpConfig::default()
        };
        let amqp = AmqpProtocol::new(amqp_config.clone());
        let mut builder = Router::builder(core)
            .protocol(websocket.clone())
            .protocol(http.clone())
            .protocol(mqtt.clone());
        if !without_amqp {
            builder = builder.protocol(amqp.clone());
        }
        let router = builder.build().expect("router");
        router.start().await.expect("start");
        if !without_amqp {
            tokio::time::timeout(PATIENCE, amqp.ready())
                .await
                .expect("the AMQP protocol consumes requests");
        }
        let address = http.local_addr().expect("listening");
        let mqtt_address = mqtt.local_addr().expect("listening");
        Self {
            router,
            http,
            websocket,
            address,
            mqtt,
            mqtt_address,
            amqp,
            amqp_config,
            with_amqp: !without_amqp,
        }
    }

    /// A client of `kind`, connected.
    pub async fn client(&self, kind: Kind) -> Client {
        match kind {
            Kind::Http => Client::Http(http::HttpClient::new(self.address)),
            Kind::WebSocket => Client::WebSocket(Box::new(websocket::WsClient::connect(self.address).await)),
            Kind::Mqtt311 => Client::Mqtt(Box::new(
                mqtt::MqttClient::connect(self.mqtt_address, mqtt::Version::V311).await,
            )),
            Kind::Mqtt5 => Client::Mqtt(Box::new(
                mqtt::MqttClient::connect(self.mqtt_address, mqtt::Version::V5).await,
            )),
            Kind::Amqp => Client::Amqp(Box::new(
                amqp::AmqpClient::connect(&self.amqp_config.exchange, &self.amqp_config.routing_key).await,
            )),
        }
    }

    /// Stops the server and deletes its AMQP request queue.
    pub async fn stop(self) {
        self.router.shutdown(PATIENCE).await;
        if !self.with_amqp {
            return;
        }
        let connection = amqp::connect().await;
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .queue_delete(self.amqp_config.queue.as_str().into(), Default::default())
                .await;
        }
        let _ = connection.close(200, "bye".into()).await;
    }
}

/// The protocols a test client can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTTP: requests only (`POST /_query`), no notifications.
    Http,
    /// WebSocket: requests and notifications.
    WebSocket,
    /// MQTT 3.1.1: requests and notifications.
    Mqtt311,
    /// MQTT 5.0: requests and notifications.
    Mqtt5,
    /// AMQP 0-9-1 through RabbitMQ: requests and notifications.
    Amqp,
}

impl Kind {
    /// Every protocol, for publishers.
    pub const ALL: [Kind; 5] = [
        Kind::Http,
        Kind::WebSocket,
        Kind::Mqtt311,
        Kind::Mqtt5,
        Kind::Amqp,
    ];
    /// Protocols that receive notifications, for subscribers.
    pub const SUBSCRIBERS: [Kind; 4] = [Kind::WebSocket, Kind::Mqtt311, Kind::Mqtt5, Kind::Amqp];

    /// The protocol name notifications carry.
    pub fn protocol_name(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::WebSocket => "websocket",
            Kind::Mqtt311 | Kind::Mqtt5 => "mqtt",
            Kind::Amqp => "amqp",
        }
    }
}

/// A client of any protocol.
pub enum Client {
    /// Over HTTP.
    Http(http::HttpClient),
    /// Over WebSocket.
    WebSocket(Box<websocket::WsClient>),
    /// Over MQTT.
    Mqtt(Box<mqtt::MqttClient>),
    /// Over AMQP.
    Amqp(Box<amqp::AmqpClient>),
}

impl Client {
    /// Sends a request object, returns the response object.
    pub async fn query(&mut self, request: Value) -> Value {
        match self {
            Client::Http(client) => client.query(&request).await,
            Client::WebSocket(client) => client.query(request).await,
            Client::Mqtt(client) => client.query(request).await,
            Client::Amqp(client) => client.query(request).await,
        }
    }

    /// The next notification (fails the test if none arrives in time).
    pub async fn notification(&mut self) -> Value {
        self.maybe_notification(PATIENCE)
            .await
            .expect("a notification in time")
    }

    /// Leaves: closes the connection (for AMQP, the client's queue goes with it).
    pub async fn close(self) {
        match self {
            Client::Amqp(client) => client.close().await,
            Client::Http(_) | Client::WebSocket(_) | Client::Mqtt(_) => {}
        }
    }

    /// A notification, if one arrives within `wait`.
    pub async fn maybe_notification(&mut self, wait: Duration) -> Option<Value> {
        match self {
            Client::Http(_) => None,
            Client::WebSocket(client) => client.maybe_notification(wait).await,
            Client::Mqtt(client) => client.maybe_notification(wait).await,
            Client::Amqp(client) => client.maybe_notification(wait).await,
        }
    }
}

/// Polls `probe` until it returns true, for at most [`PATIENCE`].
pub async fn eventually<F, Fut>(mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
