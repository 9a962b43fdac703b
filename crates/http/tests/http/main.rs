//! protoplex-http end to end: a router with the HTTP protocol, an embedded
//! protocol (to watch notifications) and a custom controller, on 127.0.0.1
//! port 0, queried by a raw HTTP/1.1 client.

mod api;
mod bodies;
mod client;
mod lifecycle;
mod responses;
#[cfg(feature = "websocket")]
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use protoplex_core::embedded::EmbeddedProtocol;
use protoplex_core::{ActionCall, ActionSpec, ApiError, BoxFuture, Controller, CoreConfig, Router};
use protoplex_http::{HttpConfig, HttpProtocol};
use serde_json::{Value, json};

/// A running server.
pub(crate) struct Server {
    /// The router.
    pub(crate) router: Router,
    /// Where the HTTP protocol listens.
    pub(crate) address: SocketAddr,
    /// An embedded protocol on the same router, to subscribe and watch.
    pub(crate) embedded: Arc<EmbeddedProtocol>,
}

/// A server with default configurations.
pub(crate) async fn start() -> Server {
    start_with(CoreConfig::default(), HttpConfig::default()).await
}

/// A server with these configurations (bound to 127.0.0.1:0 whatever `http` says).
pub(crate) async fn start_with(core: CoreConfig, http: HttpConfig) -> Server {
    let http = HttpProtocol::new(HttpConfig {
        bind: "127.0.0.1".parse().expect("address"),
        port: 0,
        ..http
    });
    let embedded = EmbeddedProtocol::new(64);
    let router = Router::builder(core)
        .protocol(http.clone())
        .protocol(embedded.clone())
        .controller(Echo)
        .build()
        .expect("router");
    router.start().await.expect("start");
    let address = http.local_addr().expect("listening");
    Server {
        router,
        address,
        embedded,
    }
}

/// A custom controller: `greet` (GET /_greet/:name), `slow` (GET /_slow,
/// answers after 300 ms) and `echo`
/// (GET and POST /_echo/:index/:_id), which answers what it received.
struct Echo;

impl Controller for Echo {
    fn name(&self) -> &str {
        "echo"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        vec![
            ActionSpec::new("greet").with_http("get", "/_greet/:name"),
            ActionSpec::new("slow").with_http("get", "/_slow"),
            ActionSpec::new("echo")
                .with_http("get", "/_echo/:index/:_id")
                .with_http("post", "/_echo/:index/:_id"),
        ]
    }

    fn execute<'a>(&'a self, call: ActionCall<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            let request = call.request;
            match request.action.as_str() {
                "slow" => {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    Ok(json!({ "slept": true }))
                }
                "greet" => {
                    let name = request.string_arg("name")?.unwrap_or("world");
                    Ok(json!({ "greeting": format!("Hello, {name}!") }))
                }
                _ => Ok(json!({
                    "index": request.index,
                    "_id": request.id,
                    "args": request.args,
                    "body": request.body,
                    "jwt": request.jwt,
                    "volatile": request.volatile,
                    "protocol": call.connection.protocol,
                    "ips": call.connection.ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "headers": call.connection.headers,
                })),
            }
        })
    }
}
