//! The router: the connection table, the request buffer and the controllers.
//! It never sees a socket: protocols call it, and it calls them back through the
//! [`Protocol`] trait.

mod gate;
mod rate;
mod table;
mod throttle;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::gate::RequestGate;
use self::table::ConnectionTable;
use self::throttle::Throttle;
use crate::config::{CoreConfig, Limits};
use crate::connection::{ClientConnection, ConnectionId};
use crate::controller::{self, ActionCall, ActionSpec, Controller, HttpRoute};
use crate::error::ApiError;
use crate::protocol::{ChannelMessage, Protocol, ProtocolContext, ProtocolError};
use crate::realtime::notification::{self, UserCount, UserNotification};
use crate::realtime::rooms::{Rooms, Subscriber, Targets, UserEvent};
use crate::request::{Request, now_millis};
use crate::response::Response;

/// The most protocols one router can serve (a bit each in a `u64`).
const MAX_PROTOCOLS: usize = 64;

/// Minimum time between two "connection cap reached" warnings.
const CAP_WARNING_INTERVAL: Duration = Duration::from_millis(500);

/// Why a router could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// Two protocols have the same name.
    #[error("two protocols are named \"{0}\"")]
    DuplicateProtocol(String),
    /// Two controllers have the same name, or a custom one takes a built-in's name.
    #[error("two controllers are named \"{0}\"")]
    DuplicateController(String),
    /// More protocols than a router serves.
    #[error("at most {MAX_PROTOCOLS} protocols can be registered")]
    TooManyProtocols,
}

/// Builds a [`Router`]: its configuration, its protocols and custom controllers.
pub struct RouterBuilder {
    config: CoreConfig,
    protocols: Vec<Arc<dyn Protocol>>,
    controllers: Vec<Arc<dyn Controller>>,
}

impl RouterBuilder {
    /// Adds a protocol; it is started by [`Router::start`].
    pub fn protocol(mut self, protocol: Arc<dyn Protocol>) -> Self {
        self.protocols.push(protocol);
        self
    }

    /// Adds a controller of your own.
    pub fn controller(mut self, controller: impl Controller) -> Self {
        self.controllers.push(Arc::new(controller));
        self
    }

    /// Builds the router. Protocols are not started yet.
    pub fn build(self) -> Result<Router, BuildError> {
        if self.protocols.len() > MAX_PROTOCOLS {
            return Err(BuildError::TooManyProtocols);
        }
        let mut protocol_index = HashMap::new();
        for (index, protocol) in self.protocols.iter().enumerate() {
            if protocol_index.insert(protocol.name().to_owned(), index).is_some() {
                return Err(BuildError::DuplicateProtocol(protocol.name().to_owned()));
            }
        }
        let mut api: Vec<(String, Vec<ActionSpec>)> = controller::builtin_actions()
            .into_iter()
            .map(|(name, actions)| (name.to_owned(), actions))
            .collect();
        let mut controllers = HashMap::new();
        for custom in self.controllers {
            let name = custom.name().to_owned();
            if api.iter().any(|(existing, _)| *existing == name) {
                return Err(BuildError::DuplicateController(name));
            }
            let actions = custom.actions();
            let names = actions.iter().map(|a| a.name.clone()).collect::<HashSet<_>>();
            api.push((name.clone(), actions));
            controllers.insert(name, (custom, names));
        }
        let limits = &self.config.limits;
        let protocol_caps = self.protocols.iter().map(|p| p.max_connections()).collect();
        let connections = ConnectionTable::new(limits.max_connections, protocol_caps);
        let inner = Arc::new(Inner {
            rooms: Rooms::new(
                limits.subscription_conditions,
                limits.subscription_rooms,
                self.protocols.len(),
            ),
            gate: RequestGate::new(limits.concurrent_requests, limits.requests_buffer_size),
            config: Arc::new(self.config),
            protocols: self.protocols,
            protocol_index,
            controllers,
            api,
            connections: RwLock::new(connections),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            started: Instant::now(),
            cap_warnings: Throttle::new(CAP_WARNING_INTERVAL),
        });
        Ok(Router { inner })
    }
}

type CustomControllers = HashMap<String, (Arc<dyn Controller>, HashSet<String>)>;

struct Inner {
    config: Arc<CoreConfig>,
    protocols: Vec<Arc<dyn Protocol>>,
    protocol_index: HashMap<String, usize>,
    controllers: CustomControllers,
    api: Vec<(String, Vec<ActionSpec>)>,
    connections: RwLock<ConnectionTable>,
    rooms: Rooms,
    gate: RequestGate,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    started: Instant,
    cap_warnings: Throttle,
}

/// The router: owns the connection table, the realtime engine and the
/// controllers. Cheap to clone.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("node", &self.inner.config.node_id)
            .field("protocols", &self.protocol_names())
            .finish_non_exhaustive()
    }
}

/// The protocols' way back to the router. It does not keep the router alive:
/// once the router is dropped, its calls answer `api.process.shutting_down`.
#[derive(Clone)]
pub struct RouterHandle {
    router: Weak<Inner>,
    config: Arc<CoreConfig>,
}

impl std::fmt::Debug for RouterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterHandle")
            .field("node", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

impl RouterHandle {
    /// The router, while it exists.
    pub fn router(&self) -> Option<Router> {
        self.router.upgrade().map(|inner| Router { inner })
    }

    /// The limits every protocol enforces (`max_request_size`...).
    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// The node id, for the responses a protocol builds itself.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// Declares a new connection (see [`Router::new_connection`]).
    pub fn new_connection(&self, connection: ClientConnection) -> Result<(), ApiError> {
        self.router()
            .ok_or(ApiError::ShuttingDown)?
            .new_connection(connection)
    }

    /// Executes a parsed request (see [`Router::execute`]).
    pub async fn execute(&self, connection: ConnectionId, request: Request) -> Response {
        match self.router() {
            Some(router) => router.execute(connection, request).await,
            None => Response::failure(&request, &ApiError::ShuttingDown, &self.config.node_id),
        }
    }

    /// Parses and executes a raw request (see [`Router::execute_payload`]).
    pub async fn execute_payload(&self, connection: ConnectionId, payload: &[u8]) -> Response {
        match self.router() {
            Some(router) => router.execute_payload(connection, payload).await,
            None => Response::rejected(&Default::default(), &ApiError::ShuttingDown, &self.config.node_id),
        }
    }

    /// Removes a connection and its subscriptions (see [`Router::remove_connection`]).
    pub fn remove_connection(&self, connection: ConnectionId) {
        if let Some(router) = self.router() {
            router.remove_connection(connection);
        }
    }
}

impl Router {
    /// Starts building a router with `config`.
    pub fn builder(config: CoreConfig) -> RouterBuilder {
        RouterBuilder {
            config,
            protocols: Vec::new(),
            controllers: Vec::new(),
        }
    }

    /// A handle for protocols.
    pub fn handle(&self) -> RouterHandle {
        RouterHandle {
            router: Arc::downgrade(&self.inner),
            config: self.inner.config.clone(),
        }
    }

    /// Starts every protocol ([`Protocol::init`]), in the order they were added.
    pub async fn start(&self) -> Result<(), ProtocolError> {
        for protocol in &self.inner.protocols {
            let context = ProtocolContext {
                router: self.handle(),
                shutdown: self.inner.shutdown.child_token(),
                tasks: self.inner.tasks.clone(),
            };
            protocol.clone().init(context).await?;
            tracing::info!(protocol = protocol.name(), "Protocol started.");
        }
        Ok(())
    }

    /// Stops: new requests get `api.process.shutting_down`, protocols are told to
    /// stop (their shutdown token), and their tasks get up to `grace` to finish.
    /// Returns whether every task ended in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.inner.gate.close();
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        tokio::time::timeout(grace, self.inner.tasks.wait()).await.is_ok()
    }

    /// The token cancelled by [`Router::shutdown`].
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.inner.config
    }

    /// Names of the registered protocols.
    pub fn protocol_names(&self) -> Vec<&str> {
        self.inner.protocols.iter().map(|p| p.name()).collect()
    }

    /// Every action with its HTTP routes: `(controller, action, route)`.
    pub fn http_routes(&self) -> Vec<(&str, &str, &HttpRoute)> {
        self.inner
            .api
            .iter()
            .flat_map(|(controller, actions)| {
                actions.iter().flat_map(move |action| {
                    action
                        .http
                        .iter()
                        .map(move |route| (controller.as_str(), action.name.as_str(), route))
                })
            })
            .collect()
    }

    /// Declares a connection accepted by its protocol (Kuzzle's `newConnection`).
    /// Refused while shutting down, for a protocol the router does not know, and
    /// over `limits.max_connections` or the protocol's own
    /// [`max_connections`](Protocol::max_connections) (`TooManyConnections`: the
    /// protocol then refuses the client its own way).
    pub fn new_connection(&self, connection: ClientConnection) -> Result<(), ApiError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(ApiError::ShuttingDown);
        }
        let protocol = *self
            .inner
            .protocol_index
            .get(&connection.protocol)
            .ok_or_else(|| ApiError::Internal(format!("unknown protocol \"{}\"", connection.protocol)))?;
        let (id, name) = (connection.id, connection.protocol.clone());
        if let Err(error) = self.write_connections().insert(connection, protocol) {
            self.warn_connection_cap(&error);
            return Err(error);
        }
        tracing::debug!(connection_id = %id, protocol = %name, "Connection opened.");
        Ok(())
    }

    /// Forgets a connection and drops its subscriptions, calling `leave_channel`
    /// and sending `user: "out"` notifications to the rooms it was in
    /// (Kuzzle's `removeConnection`). Unknown ids are ignored.
    pub fn remove_connection(&self, connection: ConnectionId) {
        let Some(entry) = self.write_connections().remove(&connection) else {
            return;
        };
        tracing::debug!(connection_id = %connection, protocol = %entry.connection.protocol, "Connection closed.");
        let subscriber = Subscriber {
            id: connection,
            protocol: entry.protocol,
        };
        for event in self
            .inner
            .rooms
            .remove_connection(&self.inner.protocols, subscriber)
        {
            self.send_user_event(&event, "unsubscribe", &entry.connection.protocol);
        }
    }

    /// Whether `connection` is declared (and not removed yet).
    pub fn is_connected(&self, connection: ConnectionId) -> bool {
        self.read_connections().get(&connection).is_some()
    }

    /// Connections currently declared.
    pub fn connection_count(&self) -> usize {
        self.read_connections().len()
    }

    /// Parses and executes a raw request from `connection`. A payload over
    /// `limits.max_request_size`, or one that is not a valid request, gets its
    /// error response.
    pub async fn execute_payload(&self, connection: ConnectionId, payload: &[u8]) -> Response {
        let node = &self.inner.config.node_id;
        if payload.len() > self.inner.config.limits.max_request_size {
            return Response::rejected(&Default::default(), &ApiError::RequestTooLarge, node);
        }
        match Request::from_slice(payload) {
            Ok(request) => self.execute(connection, request).await,
            Err(rejected) => Response::rejected(&rejected.echo, &rejected.error, node),
        }
    }

    /// Executes `request` for `connection` (Kuzzle's `execute`).
    pub async fn execute(&self, connection: ConnectionId, request: Request) -> Response {
        let node = &self.inner.config.node_id;
        match self.run(connection, &request).await {
            Ok(result) => Response::success(&request, result, node),
            Err(error) => Response::failure(&request, &error, node),
        }
    }

    async fn run(&self, connection: ConnectionId, request: &Request) -> Result<Value, ApiError> {
        let entry = self
            .read_connections()
            .get(&connection)
            .cloned()
            .ok_or(ApiError::ConnectionDropped)?;
        let rate_limit = self.inner.config.limits.requests_rate_limit;
        if rate_limit != 0 && !entry.rate.admit(self.current_second(), rate_limit) {
            return Err(ApiError::TooManyRequests);
        }
        let _slot = self.inner.gate.enter().await?;
        match request.controller.as_str() {
            "realtime" => controller::realtime::execute(self, &entry.connection, entry.protocol, request),
            "server" => controller::server::execute(self, request),
            name => {
                let (custom, actions) = self
                    .inner
                    .controllers
                    .get(name)
                    .ok_or_else(|| ApiError::ControllerNotFound(name.to_owned()))?;
                if !actions.contains(&request.action) {
                    return Err(action_not_found(request));
                }
                custom
                    .execute(ActionCall {
                        request,
                        connection: &entry.connection,
                        router: self,
                    })
                    .await
            }
        }
    }

    /// Sends `messages` to one connection through its protocol's `notify`.
    /// Returns false when the connection is unknown.
    pub fn notify(&self, connection: ConnectionId, messages: &[ChannelMessage]) -> bool {
        let Some(entry) = self.read_connections().get(&connection).cloned() else {
            return false;
        };
        if let Some(protocol) = self.inner.protocols.get(entry.protocol) {
            protocol.notify(connection, messages);
        }
        true
    }

    /// Asks the connection's protocol to close it ([`Protocol::disconnect`]).
    /// Returns false when the connection is unknown.
    pub fn disconnect(&self, connection: ConnectionId) -> bool {
        let Some(entry) = self.read_connections().get(&connection).cloned() else {
            return false;
        };
        if let Some(protocol) = self.inner.protocols.get(entry.protocol) {
            protocol.disconnect(connection);
        }
        true
    }

    /// Rooms, and connections holding at least one subscription.
    pub fn realtime_sizes(&self) -> (usize, usize) {
        self.inner.rooms.sizes()
    }

    pub(crate) fn rooms(&self) -> &Rooms {
        &self.inner.rooms
    }

    pub(crate) fn protocols(&self) -> &[Arc<dyn Protocol>] {
        &self.inner.protocols
    }

    pub(crate) fn api(&self) -> &[(String, Vec<ActionSpec>)] {
        &self.inner.api
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Calls `broadcast` on every protocol that has members on the targets.
    pub(crate) fn broadcast(&self, targets: &Targets, messages: &[ChannelMessage]) {
        if messages.is_empty() {
            return;
        }
        for (index, protocol) in self.inner.protocols.iter().enumerate() {
            if targets.protocols & (1 << index) != 0 {
                protocol.broadcast(messages);
            }
        }
    }

    /// Sends a user notification to the channels that asked for it.
    pub(crate) fn send_user_event(&self, event: &UserEvent, action: &str, protocol: &str) {
        if event.targets.channels.is_empty() {
            return;
        }
        let notification = UserNotification {
            status: 200,
            kind: "user",
            user: if event.joining { "in" } else { "out" },
            controller: "realtime",
            action,
            index: &event.index,
            collection: &event.collection,
            protocol,
            timestamp: now_millis(),
            volatile: event.volatile.as_ref(),
            node: &self.inner.config.node_id,
            result: UserCount { count: event.count },
        };
        let messages = notification::per_channel(&notification, &event.targets.channels);
        self.broadcast(&event.targets, &messages);
    }

    /// Seconds since the router was built, for the rate limit's windows.
    fn current_second(&self) -> u32 {
        u32::try_from(self.inner.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    /// Warns of refused connections, at most every [`CAP_WARNING_INTERVAL`].
    fn warn_connection_cap(&self, error: &ApiError) {
        if self.inner.cap_warnings.ready() {
            tracing::warn!(%error, "Connection cap reached: new connections are refused.");
        }
    }

    fn read_connections(&self) -> std::sync::RwLockReadGuard<'_, ConnectionTable> {
        self.inner
            .connections
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_connections(&self) -> std::sync::RwLockWriteGuard<'_, ConnectionTable> {
        self.inner
            .connections
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The error for an action the controller does not have.
pub(crate) fn action_not_found(request: &Request) -> ApiError {
    ApiError::ActionNotFound {
        controller: request.controller.clone(),
        action: request.action.clone(),
    }
}
