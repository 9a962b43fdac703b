//! [`MqttProtocol`]: the `Protocol` implementation and the maps it keeps.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use protoplex_core::{
    BoxFuture, ChannelMembers, ChannelMessage, ChannelName, ConnectionId, Protocol, ProtocolContext,
    ProtocolError,
};
use tokio::net::TcpListener;

use crate::client::{Client, Clients, Delivery, DeliveryQos};
use crate::close::CloseCause;
use crate::config::MqttConfig;
use crate::connection;
use crate::topics::{PubSub, Rules};

/// The protocol's name, in `ClientConnection::protocol` and notifications.
pub(crate) const NAME: &str = "mqtt";

/// Bytes a packet may hold on top of `limits.max_request_size`: its topic,
/// packet id and MQTT 5 properties. A PUBLISH whose payload is over the
/// request limit but within this margin is read and answered with a 413
/// error; a larger packet closes the connection before its body is read.
pub(crate) const PACKET_OVERHEAD: usize = 64 * 1024;

/// What the protocol holds once started.
#[derive(Debug)]
struct Started {
    context: ProtocolContext,
    max_packet: usize,
}

/// The Kuzzle API over MQTT 3.1.1 and 5.0 (Kuzzle's `mqtt` protocol).
///
/// Built with [`new`](Self::new), given to the router with
/// [`RouterBuilder::protocol`](protoplex_core::RouterBuilder::protocol), it
/// listens once [`Router::start`](protoplex_core::Router::start) runs.
#[derive(Debug)]
pub struct MqttProtocol {
    config: MqttConfig,
    rules: Rules,
    started: OnceLock<Started>,
    bound: OnceLock<SocketAddr>,
    clients: Clients,
    channels: ChannelMembers<Arc<Client>>,
    pub_sub: PubSub,
}

impl MqttProtocol {
    /// A protocol listening on `config.bind:config.port` once started. The
    /// configuration is checked by [`Protocol::init`].
    pub fn new(config: MqttConfig) -> Arc<Self> {
        let rules = Rules::new(
            &config.request_topic,
            &config.response_topic,
            config.allow_pub_sub,
        );
        Arc::new(Self {
            config,
            rules,
            started: OnceLock::new(),
            bound: OnceLock::new(),
            clients: Clients::default(),
            channels: ChannelMembers::default(),
            pub_sub: PubSub::default(),
        })
    }

    /// The address listened on, once started (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.bound.get().copied()
    }

    /// The configuration.
    pub fn config(&self) -> &MqttConfig {
        &self.config
    }

    /// Clients connected right now (past their CONNECT).
    pub fn connection_count(&self) -> usize {
        self.clients.len()
    }

    pub(crate) fn context(&self) -> Option<&ProtocolContext> {
        self.started.get().map(|started| &started.context)
    }

    /// Largest packet read (remaining length), once started.
    pub(crate) fn max_packet(&self) -> usize {
        self.started
            .get()
            .map_or(PACKET_OVERHEAD, |started| started.max_packet)
    }

    pub(crate) fn rules(&self) -> &Rules {
        &self.rules
    }

    pub(crate) fn clients(&self) -> &Clients {
        &self.clients
    }

    pub(crate) fn channels(&self) -> &ChannelMembers<Arc<Client>> {
        &self.channels
    }

    pub(crate) fn pub_sub(&self) -> &PubSub {
        &self.pub_sub
    }

    fn config_error(message: impl ToString) -> ProtocolError {
        ProtocolError::Config {
            protocol: NAME.into(),
            message: message.to_string(),
        }
    }
}

/// A notification as a PUBLISH on its channel's topic.
fn notification(message: &ChannelMessage) -> Delivery {
    Delivery {
        topic: message.channel.clone(),
        payload: message.payload.clone(),
        qos: DeliveryQos::Subscribed,
        correlation: None,
    }
}

impl Protocol for MqttProtocol {
    fn name(&self) -> &str {
        NAME
    }

    fn init(self: Arc<Self>, context: ProtocolContext) -> BoxFuture<'static, Result<(), ProtocolError>> {
        Box::pin(async move {
            self.config.validate().map_err(Self::config_error)?;
            let max_packet = context
                .router
                .limits()
                .max_request_size
                .saturating_add(PACKET_OVERHEAD);
            let address = SocketAddr::new(self.config.bind, self.config.port);
            let listener = TcpListener::bind(address)
                .await
                .map_err(|source| ProtocolError::Listen {
                    protocol: NAME.into(),
                    address: address.to_string(),
                    source,
                })?;
            let bound = listener.local_addr().unwrap_or(address);
            let (tasks, shutdown) = (context.tasks.clone(), context.shutdown.clone());
            self.started
                .set(Started { context, max_packet })
                .map_err(|_| Self::config_error("initialized twice"))?;
            let _ = self.bound.set(bound);
            tracing::info!(%bound, "MQTT protocol listening.");
            tasks.spawn(protoplex_core::listener::accept_loop(
                NAME,
                listener,
                shutdown,
                tasks.clone(),
                move |stream, peer| connection::serve(self.clone(), stream, peer),
            ));
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
        if let Some(client) = self.clients.get(connection) {
            for message in messages {
                client.deliver(notification(message));
            }
        }
    }

    fn broadcast(&self, messages: &[ChannelMessage]) {
        for message in messages {
            // Members share the topic's and the payload's bytes.
            let delivery = notification(message);
            self.channels
                .for_each_member(&message.channel, |_, client| client.deliver(delivery.clone()));
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
