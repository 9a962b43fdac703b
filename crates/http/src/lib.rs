//! # protoplex-http
//!
//! The HTTP protocol of [protoplex](https://github.com/protoplex/protoplex): the
//! Kuzzle v2 API over HTTP/1.1, as Kuzzle serves it on port 7512.
//!
//! - Every action's HTTP routes (`GET /_now`, `POST /:index/:collection/_publish`,
//!   custom controllers' routes...) and `POST /_query`, whose body is a whole
//!   request. Path placeholders and query-string keys are the request's
//!   arguments; `Authorization: Bearer` gives its jwt, `X-Kuzzle-Volatile` its
//!   volatile data; `?pretty` indents the answer.
//! - Bodies within `limits.max_request_size` (announced, read and decompressed),
//!   gzip/deflate encoded in up to `max_encoding_layers` layers; answers
//!   compressed per `Accept-Encoding`; CORS headers on every response.
//! - With the `websocket` feature, `GET /` with `Upgrade: websocket` is handed
//!   to [`protoplex-websocket`](https://docs.rs/protoplex-websocket) (see
//!   `HttpProtocol::with_websocket`).
//!
//! The path of a request, by source file: `server.rs` (accept loop, hyper
//! connection) -> `handler.rs` (`routes.rs`, `body.rs`, `request_builder.rs`)
//! -> the router -> `response.rs` (JSON, CORS, compression); `upgrade.rs` for
//! WebSocket.
//!
//! ```
//! use protoplex_core::{CoreConfig, Router};
//! use protoplex_http::{HttpConfig, HttpProtocol};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let http = HttpProtocol::new(HttpConfig {
//!     bind: "127.0.0.1".parse()?,
//!     port: 0, // any free port
//!     ..HttpConfig::default()
//! });
//! let router = Router::builder(CoreConfig::default()).protocol(http.clone()).build()?;
//! router.start().await?;
//! let address = http.local_addr().expect("listening");
//! println!("try: curl http://{address}/_now");
//! router.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```

mod body;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod handler;
mod protocol;
mod request_builder;
mod response;
mod routes;
mod server;
mod upgrade;

pub use config::HttpConfig;
pub use error::HttpError;
pub use protocol::HttpProtocol;
