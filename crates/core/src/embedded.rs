//! The embedded protocol: clients living in the same process as the router, as
//! Kuzzle's embedded SDK. Rust code uses it to query the API and receive
//! notifications without a socket; tests use it to watch what subscribers get.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::channels::ChannelMembers;
use crate::connection::{ClientConnection, ConnectionId};
use crate::error::ApiError;
use crate::protocol::{BoxFuture, ChannelMessage, ChannelName, Protocol, ProtocolContext, ProtocolError};
use crate::request::Request;
use crate::response::Response;
use crate::router::RouterHandle;

/// Name of the embedded protocol.
pub const EMBEDDED: &str = "embedded";

/// A protocol whose clients are [`EmbeddedClient`]s of this process.
#[derive(Debug)]
pub struct EmbeddedProtocol {
    router: OnceLock<RouterHandle>,
    queue_capacity: usize,
    clients: RwLock<HashMap<ConnectionId, mpsc::Sender<ChannelMessage>>>,
    channels: ChannelMembers<()>,
}

impl EmbeddedProtocol {
    /// A protocol whose clients buffer at most `queue_capacity` notifications:
    /// a client that falls further behind is disconnected.
    pub fn new(queue_capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            router: OnceLock::new(),
            queue_capacity: queue_capacity.max(1),
            clients: RwLock::default(),
            channels: ChannelMembers::default(),
        })
    }

    /// Opens a client connection. Fails before [`Protocol::init`], and while
    /// the router shuts down.
    pub fn connect(self: &Arc<Self>) -> Result<EmbeddedClient, ApiError> {
        let router = self.router.get().cloned().ok_or(ApiError::ShuttingDown)?;
        let connection = ClientConnection::new(EMBEDDED, Vec::new(), HashMap::new());
        let id = connection.id;
        let (sender, receiver) = mpsc::channel(self.queue_capacity);
        write(&self.clients).insert(id, sender);
        if let Err(error) = router.new_connection(connection) {
            write(&self.clients).remove(&id);
            return Err(error);
        }
        Ok(EmbeddedClient {
            id,
            router,
            protocol: self.clone(),
            notifications: receiver,
        })
    }

    fn deliver(&self, connection: ConnectionId, message: &ChannelMessage) {
        let sender = read(&self.clients).get(&connection).cloned();
        if let Some(sender) = sender
            && sender.try_send(message.clone()).is_err()
        {
            tracing::warn!(connection_id = %connection, "Embedded client too slow: disconnected.");
            self.disconnect(connection);
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Protocol for EmbeddedProtocol {
    fn name(&self) -> &str {
        EMBEDDED
    }

    fn init(self: Arc<Self>, context: ProtocolContext) -> BoxFuture<'static, Result<(), ProtocolError>> {
        Box::pin(async move {
            self.router
                .set(context.router)
                .map_err(|_| ProtocolError::Config {
                    protocol: EMBEDDED.into(),
                    message: "initialized twice".into(),
                })
        })
    }

    fn join_channel(&self, channel: &ChannelName, connection: ConnectionId) {
        self.channels.join(channel, connection, ());
    }

    fn leave_channel(&self, channel: &ChannelName, connection: ConnectionId) {
        self.channels.leave(channel, connection);
    }

    fn notify(&self, connection: ConnectionId, messages: &[ChannelMessage]) {
        for message in messages {
            self.deliver(connection, message);
        }
    }

    fn broadcast(&self, messages: &[ChannelMessage]) {
        for message in messages {
            // Collected first: a slow client's disconnection leaves channels.
            let mut members = Vec::new();
            self.channels
                .for_each_member(&message.channel, |connection, ()| members.push(connection));
            for connection in members {
                self.deliver(connection, message);
            }
        }
    }

    fn disconnect(&self, connection: ConnectionId) {
        // Dropping the sender ends the client's notification stream.
        if write(&self.clients).remove(&connection).is_some()
            && let Some(router) = self.router.get()
        {
            router.remove_connection(connection);
        }
    }
}

/// A client of the embedded protocol. Dropping it closes its connection.
#[derive(Debug)]
pub struct EmbeddedClient {
    id: ConnectionId,
    router: RouterHandle,
    protocol: Arc<EmbeddedProtocol>,
    notifications: mpsc::Receiver<ChannelMessage>,
}

impl EmbeddedClient {
    /// The client's connection id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Sends a request given as JSON (any value: a non-object gets its 400).
    pub async fn query(&self, request: Value) -> Response {
        match Request::from_value(request) {
            Ok(request) => self.router.execute(self.id, request).await,
            Err(rejected) => Response::rejected(&rejected.echo, &rejected.error, self.router.node_id()),
        }
    }

    /// The next notification; `None` once the connection is closed.
    pub async fn next_notification(&mut self) -> Option<ChannelMessage> {
        self.notifications.recv().await
    }

    /// A notification already received, without waiting.
    pub fn try_next_notification(&mut self) -> Option<ChannelMessage> {
        self.notifications.try_recv().ok()
    }
}

impl Drop for EmbeddedClient {
    fn drop(&mut self) {
        self.protocol.disconnect(self.id);
    }
}
