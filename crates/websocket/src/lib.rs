//! # protoplex-websocket
//!
//! The Kuzzle v2 API over WebSocket for [protoplex](https://github.com/protoplex/protoplex),
//! as Kuzzle's own `websocket` protocol: one JSON request per text frame, each
//! answered by a text frame whose `room` is the request's `requestId`;
//! notifications as text frames whose `room` is their channel; `{"p":1}`
//! answered `{"p":2}`; idle clients pinged, then closed.
//!
//! [`WebSocketProtocol`] implements [`protoplex_core::Protocol`] in two modes:
//!
//! - [`WebSocketProtocol::new`]: standalone, on its own listener
//!   (`bind:port`, default `0.0.0.0:7512`);
//! - [`WebSocketProtocol::shared`]: no listener; the HTTP protocol owns the port
//!   and hands over the connections it upgraded with
//!   [`WebSocketProtocol::accept_upgraded`] (computing the handshake answer with
//!   [`WebSocketProtocol::accept_key`]).
//!
//! ```
//! use protoplex_core::{CoreConfig, Router};
//! use protoplex_websocket::{WebSocketConfig, WebSocketProtocol};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = WebSocketConfig {
//!     bind: "127.0.0.1".parse()?,
//!     port: 0, // any free port
//!     ..WebSocketConfig::default()
//! };
//! let websocket = WebSocketProtocol::new(config);
//! let router = Router::builder(CoreConfig::default())
//!     .protocol(websocket.clone())
//!     .build()?;
//! router.start().await?;
//! let address = websocket.local_addr().expect("listening");
//! println!("clients connect to ws://{address}/");
//! router.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Behaviour
//!
//! - **Requests** of one connection run concurrently, at most
//!   [`max_in_flight`](WebSocketConfig::max_in_flight) at once (64), started in
//!   the order they arrived; past that the connection's frames wait unread.
//!   Binary frames are read as requests too (Kuzzle does), empty frames are
//!   ignored (Kuzzle does).
//! - **Sizes**: a frame over `limits.max_request_size` but within
//!   [`max_frame_size`](WebSocketConfig::max_frame_size) (automatic: twice the
//!   request limit, at least 64 KiB more) is answered with a 413 error and the
//!   connection stays; a larger one closes the connection with code 1009.
//! - **Backpressure**: each connection has one bounded queue of outgoing
//!   messages ([`outgoing_queue`](WebSocketConfig::outgoing_queue), 1024),
//!   drained by the only task writing to its socket. A notification that finds
//!   it full closes the client with code 1011 "too much backpressure: client is
//!   too slow": it never slows the others down. The answer to the client's own
//!   request waits for room instead (its next frames wait unread: flow control),
//!   up to 10 s, after which the client is closed the same way.
//! - **Handshake** (standalone): any path is accepted, as Kuzzle's `/*` route;
//!   the upgrade request's headers become the connection's headers, and
//!   `X-Forwarded-For` adds addresses after the socket's peer.
//! - **Idle clients**: quiet for a quarter of
//!   [`idle_timeout`](WebSocketConfig::idle_timeout), a client is pinged; with
//!   nothing at all from it for `idle_timeout`, it is closed.
//! - **Close codes**: 1001 at shutdown (after the answers owed), 1011 for
//!   `disconnect` (Kuzzle's), 1000 "idle timeout", 1009 for oversized frames.

mod client;
mod close;
mod config;
mod connection;
mod handshake;
mod headers;
mod heartbeat;
mod protocol;

pub use config::{ConfigError, WebSocketConfig};
pub use protocol::WebSocketProtocol;
