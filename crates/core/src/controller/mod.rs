//! Controllers: the built-in `server` and `realtime` ones, and the trait through
//! which a Rust user adds controllers of their own.

pub(crate) mod realtime;
pub(crate) mod server;

use serde::Serialize;
use serde_json::Value;

use crate::connection::ClientConnection;
use crate::error::ApiError;
use crate::protocol::BoxFuture;
use crate::request::Request;
use crate::router::Router;

/// An HTTP route to an action, as listed by `server:publicApi` and served by the
/// HTTP protocol. Path parts starting with `:` are placeholders for arguments
/// (`/:index/:collection/_publish`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpRoute {
    /// Upper-case HTTP verb (`GET`, `POST`...).
    pub verb: String,
    /// Path template.
    pub path: String,
}

impl HttpRoute {
    /// A route for `verb` (any case) and `path`.
    pub fn new(verb: &str, path: &str) -> Self {
        Self {
            verb: verb.to_ascii_uppercase(),
            path: path.to_owned(),
        }
    }
}

/// An action of a controller, with its HTTP routes (possibly none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSpec {
    /// Action name.
    pub name: String,
    /// HTTP routes leading to it.
    pub http: Vec<HttpRoute>,
}

impl ActionSpec {
    /// An action reachable through the generic entry points only (`POST /_query`,
    /// WebSocket, MQTT...).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            http: Vec::new(),
        }
    }

    /// Adds an HTTP route.
    pub fn with_http(mut self, verb: &str, path: &str) -> Self {
        self.http.push(HttpRoute::new(verb, path));
        self
    }
}

/// One action call, as handed to [`Controller::execute`].
#[derive(Debug)]
pub struct ActionCall<'a> {
    /// The request (its `action` is one of the controller's).
    pub request: &'a Request,
    /// The connection that sent it.
    pub connection: &'a ClientConnection,
    /// The router, to publish or notify.
    pub router: &'a Router,
}

/// A controller of your own, registered with
/// [`RouterBuilder::controller`](crate::RouterBuilder::controller).
///
/// ```
/// use protoplex_core::{ActionCall, ActionSpec, ApiError, BoxFuture, Controller};
/// use serde_json::{json, Value};
///
/// struct Greeter;
///
/// impl Controller for Greeter {
///     fn name(&self) -> &str {
///         "greeter"
///     }
///     fn actions(&self) -> Vec<ActionSpec> {
///         vec![ActionSpec::new("hello").with_http("get", "/_hello/:name")]
///     }
///     fn execute<'a>(&'a self, call: ActionCall<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
///         Box::pin(async move {
///             let name = call.request.string_arg("name")?.unwrap_or("world");
///             Ok(json!({ "greeting": format!("Hello, {name}!") }))
///         })
///     }
/// }
/// ```
pub trait Controller: Send + Sync + 'static {
    /// The controller's name, as used in requests' `controller` field.
    fn name(&self) -> &str;

    /// Its actions; read once, when the router is built.
    fn actions(&self) -> Vec<ActionSpec>;

    /// Runs `call.request.action`, which is always one of [`Controller::actions`].
    /// The value returned becomes the response's `result`; an error becomes its
    /// `error`.
    fn execute<'a>(&'a self, call: ActionCall<'a>) -> BoxFuture<'a, Result<Value, ApiError>>;
}

/// The actions of the built-in controllers, with Kuzzle's HTTP routes.
pub(crate) fn builtin_actions() -> Vec<(&'static str, Vec<ActionSpec>)> {
    vec![
        (
            "realtime",
            vec![
                ActionSpec::new("count"),
                ActionSpec::new("join"),
                ActionSpec::new("list").with_http("get", "/_listSubscriptions"),
                ActionSpec::new("publish").with_http("post", "/:index/:collection/_publish"),
                ActionSpec::new("subscribe"),
                ActionSpec::new("unsubscribe"),
            ],
        ),
        (
            "server",
            vec![
                ActionSpec::new("healthCheck").with_http("get", "/_healthCheck"),
                ActionSpec::new("info")
                    .with_http("get", "/_serverInfo")
                    .with_http("get", "/"),
                ActionSpec::new("now").with_http("get", "/_now"),
                ActionSpec::new("publicApi").with_http("get", "/_publicApi"),
            ],
        ),
    ]
}
