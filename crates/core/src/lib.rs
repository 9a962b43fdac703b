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
//! use protoplex_core::embedded::EmbeddedProtocol;
//! use protoplex_core::{CoreConfig, Router};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A router with one protocol: in-process clients (a network protocol plugs in the same way).
//! let embedded = EmbeddedProtocol::new(64);
//! let router = Router::builder(CoreConfig::default())
//!     .protocol(embedded.clone())
//!     .build()
//!     .expect("router");
//! router.start().await.expect("protocols started");
//!
//! let mut subscriber = embedded.connect().expect("connected");
//! let publisher = embedded.connect().expect("connected");
//! let subscribed = subscriber
//!     .query(json!({"controller": "realtime", "action": "subscribe", "index": "iot",
//!                   "collection": "sensors", "body": {"range": {"temperature": {"gt": 20}}}}))
//!     .await;
//! assert_eq!(subscribed.status, 200);
//! publisher
//!     .query(json!({"controller": "realtime", "action": "publish", "index": "iot",
//!                   "collection": "sensors", "body": {"temperature": 21.5}}))
//!     .await;
//! let notification = subscriber.next_notification().await.expect("a notification");
//! assert_eq!(notification.channel.as_ref(), subscribed.result["channel"]);
//! # }
//! ```
//!
//! See `examples/ndjson_protocol.rs` for a complete protocol in one file, with its tests.

pub mod channels;
pub mod close;
pub mod config;
pub mod connection;
pub mod controller;
pub mod embedded;
pub mod error;
pub mod filter;
pub mod listener;
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
