//! The protocol trait: what a network protocol implements to plug into protoplex.
//!
//! It mirrors the six calls of Kuzzle's protocol plugins (`init`, `joinChannel`,
//! `leaveChannel`, `notify`, `broadcast`, `disconnect`); the protocol reaches the
//! router back through the [`RouterHandle`] it gets in [`Protocol::init`]
//! (`new_connection`, `execute`, `remove_connection`).
//!
//! # Life of a connection
//!
//! 1. The protocol accepts a client, builds a [`ClientConnection`](crate::ClientConnection)
//!    and declares it with [`RouterHandle::new_connection`].
//! 2. For each request the client sends, it calls [`RouterHandle::execute_payload`]
//!    (or [`RouterHandle::execute`] with an already parsed request) and writes the
//!    response back to that client.
//! 3. When a request subscribes the connection, the router calls
//!    [`Protocol::join_channel`]; from then on, notifications for that channel arrive
//!    through [`Protocol::broadcast`] (or [`Protocol::notify`] for that connection
//!    alone). Unsubscribing calls [`Protocol::leave_channel`].
//! 4. When the client goes away, the protocol calls [`RouterHandle::remove_connection`]:
//!    the router drops its subscriptions, calling `leave_channel` for each channel and
//!    sending the `user: "out"` notifications that follow.
//! 5. The router may ask the protocol to close a connection with [`Protocol::disconnect`].
//!
//! # Threading
//!
//! `join_channel`, `leave_channel`, `notify`, `broadcast` and `disconnect` are plain
//! (non-async) methods called from whatever task runs the request that causes them,
//! possibly several at once from different tasks, and sometimes while the router
//! holds its realtime lock. They must not block and must not call the router back:
//! update a map, push bytes into a bounded per-connection queue, and return. Calls
//! about one connection arrive in the order the router made them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::ConnectionId;
use crate::router::RouterHandle;

/// A boxed future, as returned by the dyn-compatible async trait methods of this crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The name of a realtime channel: `<roomId>-<3 characters>` (see Kuzzle's channel.ts).
pub type ChannelName = Arc<str>;

/// A notification for one channel, serialized once and shared by every recipient.
///
/// `payload` is the notification's JSON, whose `room` field is already `channel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMessage {
    /// The channel the notification is for.
    pub channel: ChannelName,
    /// The serialized notification.
    pub payload: Bytes,
}

/// What a protocol gets when it starts.
#[derive(Debug, Clone)]
pub struct ProtocolContext {
    /// The way back to the router.
    pub router: RouterHandle,
    /// Cancelled when the server shuts down: stop accepting, finish the requests
    /// already received, close the connections.
    pub shutdown: CancellationToken,
    /// Spawn every background task of the protocol here, so that shutdown waits for it.
    pub tasks: TaskTracker,
}

/// Why a protocol could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Binding or accepting on a socket failed.
    #[error("{protocol}: cannot listen on {address}: {source}")]
    Listen {
        /// The protocol's name.
        protocol: String,
        /// The address it tried.
        address: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A broker or service the protocol depends on cannot be reached.
    #[error("{protocol}: {message}")]
    Unavailable {
        /// The protocol's name.
        protocol: String,
        /// What went wrong.
        message: String,
    },
    /// The protocol's configuration is not usable.
    #[error("{protocol}: invalid configuration: {message}")]
    Config {
        /// The protocol's name.
        protocol: String,
        /// What is wrong.
        message: String,
    },
}

/// A network protocol: an entry point through which clients reach the Kuzzle API.
///
/// Its configuration is given to its own constructor; the router gets the
/// protocol as `Arc<dyn Protocol>` through
/// [`RouterBuilder::protocol`](crate::RouterBuilder::protocol) and starts it with
/// [`Router::start`](crate::Router::start).
pub trait Protocol: Send + Sync + 'static {
    /// The protocol's name, as found in `ClientConnection::protocol` and in the
    /// `protocol` field of notifications (`websocket`, `http`, `mqtt`, `amqp`...).
    fn name(&self) -> &str;

    /// Starts the protocol: binds its listeners and spawns its accept loop on
    /// `context.tasks`. Called once, by [`Router::start`](crate::Router::start),
    /// before any other call of this trait. It returns once the protocol accepts
    /// clients (or failed to); the tasks it spawned go on until `context.shutdown`
    /// is cancelled. It gets the protocol as `Arc<Self>`, to share with the
    /// tasks it spawns.
    fn init(self: Arc<Self>, context: ProtocolContext) -> BoxFuture<'static, Result<(), ProtocolError>>;

    /// The connection subscribed to `channel`: from now on, broadcasts on
    /// `channel` must reach it. Called while a subscribe or join request executes.
    fn join_channel(&self, channel: &ChannelName, connection: ConnectionId);

    /// The connection left `channel` (unsubscribe, or connection removal).
    fn leave_channel(&self, channel: &ChannelName, connection: ConnectionId);

    /// Sends each message to the one connection `connection`, on its channel,
    /// whether or not the connection joined that channel.
    fn notify(&self, connection: ConnectionId, messages: &[ChannelMessage]);

    /// Sends each message to every connection of this protocol that joined its
    /// channel. Called by the router only when this protocol has at least one
    /// connection on one of the channels. Kuzzle's `broadcast({channels, payload})`
    /// sets `payload.room` per channel; here the router already did, which is why a
    /// payload comes per channel, serialized once for all its recipients.
    fn broadcast(&self, messages: &[ChannelMessage]);

    /// Closes the connection. The protocol then calls
    /// [`RouterHandle::remove_connection`] as for any other disconnection.
    fn disconnect(&self, connection: ConnectionId);

    /// Connections of this protocol open at once (0, the default: no cap of its
    /// own; `limits.max_connections` still applies). Read once, when the router
    /// is built; [`RouterHandle::new_connection`] refuses the connections over it.
    fn max_connections(&self) -> usize {
        0
    }
}
