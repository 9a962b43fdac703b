//! [`AmqpProtocol`]: the `Protocol` implementation.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use protoplex_core::{
    BoxFuture, ChannelMessage, ChannelName, ConnectionId, Protocol, ProtocolContext, ProtocolError,
};
use tokio::sync::{mpsc, watch};

use crate::answers::Answers;
use crate::commands::{Command, Commands, Target};
use crate::config::AmqpConfig;
use crate::connections::Connections;
use crate::session;
use crate::shared::Shared;

/// The protocol's name, in `ClientConnection::protocol` and notifications.
pub(crate) const NAME: &str = "amqp";

/// The Kuzzle API through an AMQP 0-9-1 broker (RabbitMQ).
///
/// Built with [`new`](Self::new), registered on a router, started by
/// [`Router::start`](protoplex_core::Router::start); see the crate's
/// documentation for the behaviour.
#[derive(Debug)]
pub struct AmqpProtocol {
    config: AmqpConfig,
    connections: Arc<Connections>,
    commands: Commands,
    receiver: Mutex<Option<mpsc::Receiver<Command>>>,
    ready: watch::Sender<bool>,
    started: OnceLock<Arc<Shared>>,
}

impl AmqpProtocol {
    /// A protocol that will use `config` once started. Nothing connects
    /// before [`Protocol::init`].
    pub fn new(config: AmqpConfig) -> Arc<Self> {
        let (commands, receiver) = Commands::channel(config.command_queue);
        Arc::new(Self {
            config,
            connections: Arc::default(),
            commands,
            receiver: Mutex::new(Some(receiver)),
            ready: watch::Sender::new(false),
            started: OnceLock::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AmqpConfig {
        &self.config
    }

    /// Whether requests are being consumed right now (connected, queue
    /// declared, consumer started).
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until requests are being consumed: after [`Protocol::init`], once
    /// the broker is reached (and again after each reconnection). Never
    /// returns while the broker stays unreachable: bound it with a timeout.
    pub async fn ready(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives as long as `self`: this cannot fail.
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// Connections known right now (one per `reply_to` queue).
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    fn config_error(message: impl ToString) -> ProtocolError {
        ProtocolError::Config {
            protocol: NAME.into(),
            message: message.to_string(),
        }
    }

    /// Queues a bind or an unbind of a connection's queue.
    fn topology(&self, bind: bool, channel: &ChannelName, connection: ConnectionId) {
        if self.started.get().is_none() {
            return;
        }
        let update = if bind {
            self.connections.join(connection, channel)
        } else {
            self.connections.leave(connection, channel)
        };
        let Some((queue, pending)) = update else {
            return;
        };
        pending.add();
        let channel = channel.clone();
        self.commands.push(if bind {
            Command::Bind {
                queue,
                channel,
                pending,
            }
        } else {
            Command::Unbind {
                queue,
                channel,
                pending,
            }
        });
    }
}

impl Protocol for AmqpProtocol {
    fn name(&self) -> &str {
        NAME
    }

    /// Checks the configuration and starts connecting in the background: it
    /// returns at once, even when the broker is unreachable (it is retried with
    /// a backoff, each failure logged at warn). Use [`AmqpProtocol::ready`] to
    /// wait for the first connection.
    fn init(self: Arc<Self>, context: ProtocolContext) -> BoxFuture<'static, Result<(), ProtocolError>> {
        Box::pin(async move {
            self.config.validate().map_err(Self::config_error)?;
            let receiver = self
                .receiver
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .ok_or_else(|| Self::config_error("initialized twice"))?;
            let shared = Arc::new(Shared {
                config: self.config.clone(),
                router: context.router,
                connections: self.connections.clone(),
                answers: Answers::new(self.config.answer_cache_size, self.config.answer_ttl()),
                commands: self.commands.clone(),
                link: watch::Sender::new(None),
                ready: self.ready.clone(),
                shutdown: context.shutdown,
                tasks: context.tasks,
            });
            self.started
                .set(shared.clone())
                .map_err(|_| Self::config_error("initialized twice"))?;
            tracing::info!(url = %self.config.redacted_url(), "AMQP protocol connecting.");
            shared.tasks.spawn(session::run(shared.clone(), receiver));
            Ok(())
        })
    }

    fn join_channel(&self, channel: &ChannelName, connection: ConnectionId) {
        self.topology(true, channel, connection);
    }

    fn leave_channel(&self, channel: &ChannelName, connection: ConnectionId) {
        self.topology(false, channel, connection);
    }

    fn notify(&self, connection: ConnectionId, messages: &[ChannelMessage]) {
        let Some(queue) = self.connections.queue_of(connection) else {
            return;
        };
        for message in messages {
            self.commands.push(Command::Publish {
                target: Target::Queue,
                routing_key: queue.clone(),
                payload: message.payload.clone(),
            });
        }
    }

    fn broadcast(&self, messages: &[ChannelMessage]) {
        if self.started.get().is_none() {
            return;
        }
        // One publish per channel: the broker copies it to every bound queue.
        for message in messages {
            self.commands.push(Command::Publish {
                target: Target::Exchange,
                routing_key: message.channel.clone(),
                payload: message.payload.clone(),
            });
        }
    }

    fn max_connections(&self) -> usize {
        self.config.max_connections
    }

    fn disconnect(&self, connection: ConnectionId) {
        if self.started.get().is_some() && self.connections.queue_of(connection).is_some() {
            self.commands.push(Command::Disconnect(connection));
        }
    }
}
