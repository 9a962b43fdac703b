//! What the cross-protocol tests share: a protoplex started in-process with its
//! real listeners on ephemeral loopback ports, and real clients for each
//! protocol behind one [`Client`] type, so that every test can run over every
//! pair of protocols.

pub mod http;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use protoplex_core::{CoreConfig, Router};
use protoplex_http::{HttpConfig, HttpProtocol};
use protoplex_websocket::{WebSocketConfig, WebSocketProtocol};
use serde_json::Value;

/// How long a test waits for anything before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A protoplex serving HTTP and WebSocket on one ephemeral loopback port.
pub struct TestServer {
    /// The router.
    pub router: Router,
    /// The HTTP protocol.
    pub http: Arc<HttpProtocol>,
    /// The WebSocket protocol (sharing the HTTP port).
    pub websocket: Arc<WebSocketProtocol>,
    /// Where HTTP and WebSocket listen.
    pub address: SocketAddr,
}

impl TestServer {
    /// Starts with the default configuration.
    pub async fn start() -> Self {
        Self::start_with(CoreConfig::default(), WebSocketConfig::default()).await
    }

    /// Starts with these core and WebSocket settings (listeners forced onto loopback, port 0).
    pub async fn start_with(core: CoreConfig, websocket: WebSocketConfig) -> Self {
        let loopback = "127.0.0.1".parse().expect("loopback");
        let websocket = WebSocketProtocol::shared(WebSocketConfig {
            bind: loopback,
            port: 0,
            ..websocket
        });
        let http = HttpProtocol::new(HttpConfig {
            bind: loopback,
            port: 0,
            ..HttpConfig::default()
        })
        .with_websocket(websocket.clone());
        let router = Router::builder(core)
            .protocol(websocket.clone())
            .protocol(http.clone())
            .build()
            .expect("router");
        router.start().await.expect("start");
        let address = http.local_addr().expect("listening");
        Self {
            router,
            http,
            websocket,
            address,
        }
    }

    /// A client of `kind`, connected.
    pub async fn client(&self, kind: Kind) -> Client {
        match kind {
            Kind::Http => Client::Http(http::HttpClient::new(self.address)),
            Kind::WebSocket => Client::WebSocket(Box::new(websocket::WsClient::connect(self.address).await)),
        }
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.router.shutdown(PATIENCE).await;
    }
}

/// The protocols a test client can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTTP: requests only (`POST /_query`), no notifications.
    Http,
    /// WebSocket: requests and notifications.
    WebSocket,
}

impl Kind {
    /// Every protocol, for publishers.
    pub const ALL: [Kind; 2] = [Kind::Http, Kind::WebSocket];
    /// Protocols that receive notifications, for subscribers.
    pub const SUBSCRIBERS: [Kind; 1] = [Kind::WebSocket];

    /// The protocol name notifications carry.
    pub fn protocol_name(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::WebSocket => "websocket",
        }
    }
}

/// A client of any protocol.
pub enum Client {
    /// Over HTTP.
    Http(http::HttpClient),
    /// Over WebSocket.
    WebSocket(Box<websocket::WsClient>),
}

impl Client {
    /// Sends a request object, returns the response object.
    pub async fn query(&mut self, request: Value) -> Value {
        match self {
            Client::Http(client) => client.query(&request).await,
            Client::WebSocket(client) => client.query(request).await,
        }
    }

    /// The next notification (fails the test if none arrives in time).
    pub async fn notification(&mut self) -> Value {
        match self {
            Client::Http(_) => panic!("HTTP clients get no notification"),
            Client::WebSocket(client) => client.notification().await,
        }
    }

    /// A notification, if one arrives within `wait`.
    pub async fn maybe_notification(&mut self, wait: Duration) -> Option<Value> {
        match self {
            Client::Http(_) => None,
            Client::WebSocket(client) => client.maybe_notification(wait).await,
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
