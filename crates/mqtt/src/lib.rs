//! # protoplex-mqtt
//!
//! The Kuzzle v2 API over MQTT 3.1.1 and 5.0 for
//! [protoplex](https://github.com/protoplex/protoplex), the heir of Kuzzle's
//! `mqtt` protocol: clients PUBLISH JSON requests to `Kuzzle/request` and get
//! each answer on `Kuzzle/response`, sent to them alone; notifications of a
//! realtime channel arrive on the topic named after the channel.
//!
//! [`MqttProtocol`] implements [`protoplex_core::Protocol`] on its own TCP
//! listener (`bind:port`, default `0.0.0.0:1883`); both MQTT versions share
//! the port.
//!
//! ```
//! use protoplex_core::{CoreConfig, Router};
//! use protoplex_mqtt::{MqttConfig, MqttProtocol};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = MqttConfig {
//!     bind: "127.0.0.1".parse()?,
//!     port: 0, // any free port
//!     ..MqttConfig::default()
//! };
//! let mqtt = MqttProtocol::new(config);
//! let router = Router::builder(CoreConfig::default())
//!     .protocol(mqtt.clone())
//!     .build()?;
//! router.start().await?;
//! let address = mqtt.local_addr().expect("listening");
//! println!("MQTT clients connect to {address} and publish to Kuzzle/request");
//! router.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Behaviour
//!
//! - **Versions**: the CONNECT packet's protocol level picks rumqttd's MQTT
//!   3.1.1 or 5.0 codec for the rest of the connection; other levels get a
//!   CONNACK 0x01 (unacceptable protocol version). An empty client id gets a
//!   generated one (MQTT 5: returned as the assigned client identifier); a
//!   second connection with the same client id takes the session over (the
//!   first is closed, MQTT 5 reason 0x8E). Sessions are not persisted
//!   (`session_present` is always false) and wills are not published.
//! - **Requests**: a PUBLISH on [`request_topic`](MqttConfig::request_topic)
//!   runs with the connection's identity. Its answer is a QoS 0 PUBLISH (as
//!   Kuzzle's) queued to that client alone, on
//!   [`response_topic`](MqttConfig::response_topic), or for MQTT 5 on the
//!   request's `response_topic` property, with its `correlation_data`. The
//!   client does not need to subscribe to get it; subscribing to the response
//!   topic is accepted and changes nothing, and no subscription of another
//!   client (not even `#`) ever reaches an answer. A payload that is not a JSON
//!   object is answered with a 400 error. Requests of one client run
//!   concurrently, at most [`max_in_flight`](MqttConfig::max_in_flight) at
//!   once; answers go out as they complete.
//! - **QoS**: a QoS 1 request is acknowledged (PUBACK) as soon as it is
//!   taken, before it runs: the answer is the proof of execution. QoS 2 is
//!   honoured on input (PUBREC when taken, a duplicate is never run twice,
//!   PUBCOMP on PUBREL). Messages sent to clients are at most QoS 1: a
//!   notification goes at the QoS the client subscribed to its channel topic
//!   with (capped at 1; 0 without subscription). QoS 1 deliveries wait for
//!   room in a window of [`max_unacked`](MqttConfig::max_unacked) packet ids
//!   (or the MQTT 5 client's smaller receive maximum); there is no redelivery.
//! - **Notifications**: a connection gets the notifications of the channels it
//!   joined through the router (a `realtime:subscribe` request), on the topic
//!   named after the channel. Kuzzle SDKs also SUBSCRIBE to that topic, which
//!   is granted (and sets the notifications' QoS); subscribing to a channel one
//!   did not join delivers nothing. A connection holds at most 10,000
//!   subscriptions (MQTT 5: 0x97 quota exceeded past that; 3.1.1: 0x80).
//! - **`allow_pub_sub` off (default)**: a PUBLISH to another topic is refused
//!   (MQTT 5: PUBACK/PUBREC 0x87 not authorized, a QoS 0 one is dropped and
//!   logged; MQTT 3.1.1, which cannot refuse a PUBLISH: the client is
//!   disconnected, as Kuzzle does). Wildcard subscriptions are refused (MQTT 5
//!   0xA2, MQTT 3.1.1 0x80), and so is a subscription to the request topic
//!   (0x87 / 0x80).
//! - **`allow_pub_sub` on**: other topics work as a plain broker between the
//!   MQTT clients of this protocol: a small topic router of our own (exact
//!   filters by lookup, wildcard ones by a scan; `+`, `#` and the `$` topic
//!   rules of the specification; MQTT 5 no-local honoured; one copy per client
//!   at the best QoS of its matching filters). Retained messages and shared
//!   subscriptions are not supported. Publishing to the response topic, to a
//!   channel topic that has members, or to a `$` topic is refused, so nobody
//!   can forge an answer or a notification; requests are never delivered to
//!   subscribers either. rumqttd's own broker is not used:
//!   seen from an in-process link it cannot tell which client published, send
//!   to one chosen connection, nor report a disconnection, which this protocol
//!   needs for every request.
//! - **Sizes**: the largest packet read is `limits.max_request_size` + 64 KiB
//!   (announced to MQTT 5 clients). A request payload over
//!   `max_request_size` within that margin gets a 413 error answer; a larger
//!   packet closes the connection (MQTT 5 DISCONNECT 0x95) from its fixed
//!   header, before its body is buffered. A malformed packet closes that
//!   connection only (MQTT 5 DISCONNECT 0x81).
//! - **Keep-alive**: a client silent for 1.5 times its keep-alive is closed
//!   (MQTT 5 DISCONNECT 0x8D). A client must send its CONNECT within
//!   [`connect_timeout`](MqttConfig::connect_timeout).
//! - **Backpressure**: each connection has one bounded queue of outgoing
//!   packets ([`outgoing_queue`](MqttConfig::outgoing_queue)), drained by the
//!   only task writing to its socket; `broadcast` and `notify` never wait. A
//!   client that leaves its queue full is closed (MQTT 5 DISCONNECT 0x97) and
//!   never slows the others down. The answer to the client's own request waits
//!   for room instead (its next packets wait unread: flow control), up to 10 s,
//!   keeping room for one batch of acknowledgements; after that the client is
//!   closed the same way. A notification's topic and payload are shared
//!   by all its recipients; each PUBLISH is encoded once per recipient.
//! - **End of a connection** (DISCONNECT, socket drop, keep-alive expiry,
//!   malformed packet...): the router forgets it (`remove_connection`, exactly
//!   once) [`disconnect_delay`](MqttConfig::disconnect_delay) later (250 ms),
//!   requests it sent just before leaving finishing meanwhile.
//!   [`Protocol::disconnect`](protoplex_core::Protocol::disconnect) closes a
//!   client after its pending answers (MQTT 5 DISCONNECT 0x98).
//! - **Shutdown**: the listener stops, requests already received are answered,
//!   then every client is closed (MQTT 5 DISCONNECT 0x8B), within
//!   [`close_timeout`](MqttConfig::close_timeout).

#![forbid(unsafe_code)]

mod client;
mod close;
mod codec;
mod config;
mod connection;
#[doc(hidden)]
pub mod fuzzing;
mod protocol;
mod session;
mod topics;
mod writer;

pub use config::{ConfigError, MqttConfig};
pub use protocol::MqttProtocol;
