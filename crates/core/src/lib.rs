//! # protoplex-core
//!
//! The heart of [protoplex](https://github.com/protoplex/protoplex), a realtime
//! proxy speaking the Kuzzle v2 API over many protocols:
//!
//! - the Kuzzle API model: [`Request`], [`Response`], [`ApiError`] and notifications;
//! - the [`Protocol`] trait that network protocols implement (Kuzzle's protocol
//!   plugins: `init`, `join_channel`, `leave_channel`, `notify`, `broadcast`,
//!   `disconnect`);
//! - the [`Router`]: connections, the request buffer, the `server` and `realtime`
//!   controllers and your own [`Controller`]s;
//! - the embedded realtime engine with a Koncorde-compatible [`filter`] engine.
//!
//! ```
//! use protoplex_core::{ClientConnection, CoreConfig, Router};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let router = Router::builder(CoreConfig::default()).build().expect("router");
//! // A protocol would do this for each client it accepts; without one, the
//! // connection must name a registered protocol, so this one is refused.
//! let refused = router.new_connection(ClientConnection::new("carrier-pigeon", vec![], Default::default()));
//! assert!(refused.is_err());
//! # }
//! ```
//!
//! See `examples/ndjson_protocol.rs` for a complete protocol in 200 lines.

pub mod channels;
pub mod close;
pub mod config;
pub mod connection;
pub mod controller;
pub mod embedded;
pub mod error;
pub mod filter;
pub mod protocol;
pub mod realtime;
pub mod request;
pub mod response;
pub mod router;

pub use channels::ChannelMembers;
pub use config::{CoreConfig, Limits};
pub use connection::{ClientConnection, ConnectionId};
pub use controller::{ActionCall, ActionSpec, Controller, HttpRoute};
pub use error::{ApiError, KuzzleError};
pub use protocol::{BoxFuture, ChannelMessage, ChannelName, Protocol, ProtocolContext, ProtocolError};
pub use request::Request;
pub use response::Response;
pub use router::{BuildError, Router, RouterBuilder, RouterHandle};
