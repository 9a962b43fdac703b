//! [`HttpProtocol`]: the [`Protocol`] implementation.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};

use protoplex_core::{
    BoxFuture, ChannelMessage, ChannelName, ConnectionId, Protocol, ProtocolContext, ProtocolError,
};
use tokio::net::TcpListener;

use crate::config::HttpConfig;
use crate::request_builder::PROTOCOL;
use crate::response::ResponseFactory;
use crate::routes::{RouteTable, Target};
use crate::server::{self, Server};

/// The Kuzzle API over HTTP/1.1 (and WebSocket upgrades on the same port with
/// the `websocket` feature).
///
/// Each HTTP request is a connection of its own, declared to the router, used
/// for that one request and removed: as in Kuzzle, HTTP clients have no
/// subscriptions, so the realtime calls of the [`Protocol`] trait do nothing.
#[derive(Debug)]
pub struct HttpProtocol {
    config: HttpConfig,
    bound: OnceLock<SocketAddr>,
    #[cfg(feature = "websocket")]
    websocket: OnceLock<Arc<protoplex_websocket::WebSocketProtocol>>,
}

impl HttpProtocol {
    /// A protocol that will listen on `config.bind:config.port` once started by
    /// the router.
    pub fn new(config: HttpConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            bound: OnceLock::new(),
            #[cfg(feature = "websocket")]
            websocket: OnceLock::new(),
        })
    }

    /// Serves WebSocket upgrade requests (`GET /` with `Upgrade: websocket`)
    /// through `websocket`, which must be registered with the same router.
    /// Call it before the router starts; a second call is ignored.
    #[cfg(feature = "websocket")]
    pub fn with_websocket(
        self: Arc<Self>,
        websocket: Arc<protoplex_websocket::WebSocketProtocol>,
    ) -> Arc<Self> {
        if self.websocket.set(websocket).is_err() {
            tracing::warn!("A WebSocket protocol is already attached to the HTTP protocol: ignored.");
        }
        self
    }

    /// The address it listens on, once started (the actual port when
    /// configured with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.bound.get().copied()
    }

    /// Its configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    fn config_error(message: impl Into<String>) -> ProtocolError {
        ProtocolError::Config {
            protocol: PROTOCOL.into(),
            message: message.into(),
        }
    }
}

impl Protocol for HttpProtocol {
    fn name(&self) -> &str {
        PROTOCOL
    }

    fn init(self: Arc<Self>, context: ProtocolContext) -> BoxFuture<'static, Result<(), ProtocolError>> {
        Box::pin(async move {
            if self.bound.get().is_some() {
                return Err(Self::config_error("started twice"));
            }
            let responses = ResponseFactory::new(&self.config).map_err(Self::config_error)?;
            // The routes are read once; the router itself is not kept (it owns us).
            let routes = {
                let router = context
                    .router
                    .router()
                    .ok_or_else(|| ProtocolError::Unavailable {
                        protocol: PROTOCOL.into(),
                        message: "the router is gone".into(),
                    })?;
                RouteTable::new(
                    router
                        .http_routes()
                        .into_iter()
                        .map(|(controller, action, route)| {
                            let target = Target::Action {
                                controller: controller.to_owned(),
                                action: action.to_owned(),
                            };
                            (route.verb.as_str(), route.path.as_str(), target)
                        }),
                )
            };
            let address = SocketAddr::new(self.config.bind, self.config.port);
            let listener = TcpListener::bind(address)
                .await
                .map_err(|source| ProtocolError::Listen {
                    protocol: PROTOCOL.into(),
                    address: address.to_string(),
                    source,
                })?;
            let bound = listener.local_addr().unwrap_or(address);
            if self.bound.set(bound).is_err() {
                return Err(Self::config_error("started twice"));
            }
            let server = Arc::new(Server {
                router: context.router,
                routes,
                responses,
                config: self.config.clone(),
                tasks: context.tasks.clone(),
                shutdown: context.shutdown,
                open_connections: AtomicUsize::new(0),
                #[cfg(feature = "websocket")]
                websocket: self.websocket.get().cloned(),
            });
            tracing::info!(%bound, "HTTP protocol listening.");
            context.tasks.spawn(protoplex_core::listener::accept_loop(
                PROTOCOL,
                listener,
                server.shutdown.clone(),
                server.tasks.clone(),
                move |stream, peer| server::serve(server.clone(), stream, peer),
            ));
            Ok(())
        })
    }

    /// Nothing to do: an HTTP connection lives for one request and cannot
    /// receive notifications (a subscription made over HTTP ends with it).
    fn join_channel(&self, _channel: &ChannelName, _connection: ConnectionId) {}

    /// Nothing to do: HTTP connections never join channels.
    fn leave_channel(&self, _channel: &ChannelName, _connection: ConnectionId) {}

    /// Nothing to do: an HTTP client only gets the response to its request.
    fn notify(&self, _connection: ConnectionId, _messages: &[ChannelMessage]) {}

    /// Nothing to do: HTTP connections never join channels.
    fn broadcast(&self, _messages: &[ChannelMessage]) {}

    /// Nothing to do: the connection ends with the response to its request.
    fn disconnect(&self, _connection: ConnectionId) {}
}
