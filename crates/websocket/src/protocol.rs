//! [`WebSocketProtocol`]: the `Protocol` implementation, standalone or shared
//! with the HTTP protocol.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use protoplex_core::{
    BoxFuture, ChannelMembers, ChannelMessage, ChannelName, ConnectionId, Protocol, ProtocolContext,
    ProtocolError,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig as FrameConfig};

use crate::client::{Client, Clients};
use crate::close::CloseCause;
use crate::config::WebSocketConfig;
use crate::{connection, handshake};

/// The protocol's name, in `ClientConnection::protocol` and notifications.
pub(crate) const NAME: &str = "websocket";

/// Bytes tungstenite allocates per connection to read frames (its default,
/// 128 KiB, is a lot for thousands of mostly quiet clients).
const READ_BUFFER_SIZE: usize = 4 * 1024;

/// What the protocol holds once started.
#[derive(Debug)]
struct Started {
    context: ProtocolContext,
    frames: FrameConfig,
}

/// The Kuzzle API over WebSocket (Kuzzle's `websocket` protocol).
///
/// Built [`new`](Self::new) it listens on its own port; built
/// [`shared`](Self::shared) it serves the connections that the HTTP protocol
/// upgrades on its port, handed over with [`accept_upgraded`](Self::accept_upgraded).
#[derive(Debug)]
pub struct WebSocketProtocol {
    config: WebSocketConfig,
    standalone: bool,
    started: OnceLock<Started>,
    bound: OnceLock<SocketAddr>,
    clients: Clients,
    channels: ChannelMembers<Arc<Client>>,
}

impl WebSocketProtocol {
    /// A protocol with its own listener on `config.bind:config.port`, opened by
    /// [`Protocol::init`].
    pub fn new(config: WebSocketConfig) -> Arc<Self> {
        Self::build(config, true)
    }

    /// A protocol without a listener: the HTTP protocol, owning the port, hands
    /// it the connections it upgraded ([`accept_upgraded`](Self::accept_upgraded)).
    /// `config.bind` and `config.port` are not used.
    pub fn shared(config: WebSocketConfig) -> Arc<Self> {
        Self::build(config, false)
    }

    fn build(config: WebSocketConfig, standalone: bool) -> Arc<Self> {
        Arc::new(Self {
            config,
            standalone,
            started: OnceLock::new(),
            bound: OnceLock::new(),
            clients: Clients::default(),
            channels: ChannelMembers::default(),
        })
    }

    /// The address listened on, once a standalone protocol started (useful
    /// with port 0); `None` before, and for a shared protocol.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.bound.get().copied()
    }

    /// The configuration.
    pub fn config(&self) -> &WebSocketConfig {
        &self.config
    }

    /// Clients connected right now.
    pub fn connection_count(&self) -> usize {
        self.clients.len()
    }

    /// The `Sec-WebSocket-Accept` value answering a request's
    /// `Sec-WebSocket-Key`, for an HTTP server doing the upgrade itself.
    pub fn accept_key(sec_websocket_key: &[u8]) -> String {
        derive_accept_key(sec_websocket_key)
    }

    /// Serves a connection the HTTP protocol upgraded (it answered `101
    /// Switching Protocols` already): `io` now carries WebSocket frames.
    /// `headers` are the upgrade request's headers (`x-forwarded-for` adds
    /// client addresses after `peer`'s). The connection runs on the router's
    /// task tracker; before [`Protocol::init`] it is dropped with a warning.
    pub fn accept_upgraded<IO>(self: &Arc<Self>, io: IO, peer: SocketAddr, headers: HashMap<String, String>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Some(started) = self.started.get() else {
            tracing::warn!(%peer, "WebSocket protocol not started: upgraded connection dropped.");
            return;
        };
        let headers = headers
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        let protocol = self.clone();
        let frames = started.frames;
        started.context.tasks.spawn(async move {
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(frames)).await;
            connection::serve(protocol, ws, peer, headers).await;
        });
    }

    /// The router's context, once started.
    pub(crate) fn context(&self) -> Option<&ProtocolContext> {
        self.started.get().map(|started| &started.context)
    }

    /// Frame limits of tungstenite, once started.
    pub(crate) fn frames(&self) -> Option<FrameConfig> {
        self.started.get().map(|started| started.frames)
    }

    pub(crate) fn clients(&self) -> &Clients {
        &self.clients
    }

    fn config_error(message: impl ToString) -> ProtocolError {
        ProtocolError::Config {
            protocol: NAME.into(),
            message: message.to_string(),
        }
    }
}

impl Protocol for WebSocketProtocol {
    fn name(&self) -> &str {
        NAME
    }

    fn init(self: Arc<Self>, context: ProtocolContext) -> BoxFuture<'static, Result<(), ProtocolError>> {
        Box::pin(async move {
            let max_request_size = context.router.limits().max_request_size;
            self.config
                .validate(max_request_size)
                .map_err(Self::config_error)?;
            let limit = self.config.frame_limit(max_request_size);
            let frames = FrameConfig::default()
                .read_buffer_size(READ_BUFFER_SIZE)
                .max_message_size(Some(limit))
                .max_frame_size(Some(limit));
            let listener = if self.standalone {
                let address = SocketAddr::new(self.config.bind, self.config.port);
                let listener = TcpListener::bind(address)
                    .await
                    .map_err(|source| ProtocolError::Listen {
                        protocol: NAME.into(),
                        address: address.to_string(),
                        source,
                    })?;
                let bound = listener.local_addr().unwrap_or(address);
                let _ = self.bound.set(bound);
                tracing::info!(%bound, "WebSocket protocol listening.");
                Some(listener)
            } else {
                None
            };
            let (tasks, shutdown) = (context.tasks.clone(), context.shutdown.clone());
            self.started
                .set(Started { context, frames })
                .map_err(|_| Self::config_error("initialized twice"))?;
            if let Some(listener) = listener {
                tasks.spawn(protoplex_core::listener::accept_loop(
                    NAME,
                    listener,
                    shutdown,
                    tasks.clone(),
                    move |stream, peer| handshake::upgrade(self.clone(), stream, peer),
                ));
            }
            Ok(())
        })
    }

    fn join_channel(&self, channel: &ChannelName, connection: ConnectionId) {
        if let Some(client) = self.clients.get(connection) {
            self.channels.join(channel, connection, client);
        }
    }

    fn leave_channel(&self, channel: &ChannelName, connection: ConnectionId) {
        self.channels.leave(channel, connection);
    }

    fn notify(&self, connection: ConnectionId, messages: &[ChannelMessage]) {
        let Some(client) = self.clients.get(connection) else {
            return;
        };
        for message in messages {
            if let Some(frame) = connection::text(message.payload.clone()) {
                client.send(frame);
            }
        }
    }

    fn broadcast(&self, messages: &[ChannelMessage]) {
        for message in messages {
            // One frame per channel: its members share the payload's bytes.
            let Some(frame) = connection::text(message.payload.clone()) else {
                continue;
            };
            self.channels
                .for_each_member(&message.channel, |_, client| client.send(frame.clone()));
        }
    }

    fn max_connections(&self) -> usize {
        self.config.max_connections
    }

    fn disconnect(&self, connection: ConnectionId) {
        if let Some(client) = self.clients.get(connection)
            && client.close(CloseCause::Disconnect)
        {
            tracing::debug!(connection_id = %connection, "Disconnecting client.");
        }
    }
}
