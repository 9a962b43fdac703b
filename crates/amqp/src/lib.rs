//! # protoplex-amqp
//!
//! The Kuzzle v2 API through an AMQP 0-9-1 broker (RabbitMQ) for
//! [protoplex](https://github.com/protoplex/protoplex).
//!
//! Clients publish JSON requests to the exchange `amq.topic` with routing key
//! `kuzzle`, setting `reply_to` to a queue of their own and optionally a
//! `correlation_id`. protoplex consumes them from its durable queue
//! `protoplex.requests` and answers to `reply_to` (default exchange) with the
//! same `correlation_id`; the body is the Kuzzle response, with its `requestId`.
//! A connection is one `reply_to` queue: subscribing binds that queue to
//! `amq.topic` with the channel's name as routing key, so that the broker fans
//! notifications out. All names are [configurable](AmqpConfig).
//!
//! ```no_run
//! use protoplex_amqp::{AmqpConfig, AmqpProtocol};
//! use protoplex_core::{CoreConfig, Router};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let amqp = AmqpProtocol::new(AmqpConfig {
//!     url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
//!     ..AmqpConfig::default()
//! });
//! let router = Router::builder(CoreConfig::default())
//!     .protocol(amqp.clone())
//!     .build()?;
//! router.start().await?; // returns at once: the broker is reached in the background
//! tokio::time::timeout(std::time::Duration::from_secs(10), amqp.ready()).await?;
//! // ... requests published to amq.topic / kuzzle are answered ...
//! router.shutdown(std::time::Duration::from_secs(10)).await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Behaviour
//!
//! - **Requests**: each delivery runs as its own task, at most
//!   [`prefetch`](AmqpConfig::prefetch) at once (100). A body over
//!   `limits.max_request_size` gets a 413 answer, one that is not a JSON
//!   object a 400 answer (`api.assert.invalid_argument`); both are logged at
//!   warn and acknowledged, never requeued. A request without `reply_to` is
//!   executed all the same (for a connection of its own, removed right after)
//!   and acknowledged.
//! - **Connections**: the first request from a `reply_to` queue declares a
//!   connection (protocol `amqp`, header `reply_to`); later ones reuse it. A
//!   connection is removed, with its subscriptions, when its queue is found
//!   gone: an answer or a notification to it comes back unroutable (published
//!   `mandatory`), binding it fails with 404, or the periodic check
//!   ([`queue_check_interval`](AmqpConfig::queue_check_interval), 30 s,
//!   a passive declare) finds it missing. There is no idle expiry by default:
//!   a connection lives as long as its queue, since a subscriber whose queue
//!   still exists may rightly send no request for days;
//!   [`idle_timeout`](AmqpConfig::idle_timeout) adds one.
//! - **Client queues** must not be `exclusive` if the client subscribes: the
//!   broker refuses to bind another connection's exclusive queue (a warning is
//!   logged). Non-exclusive `auto_delete` queues are the usual choice: they go
//!   with the client's consumer, and the connection with them.
//! - **Notifications**: a broadcast is one publish per channel to the exchange
//!   (routing key = channel name, body = the notification's bytes, shared);
//!   the broker copies it to every bound queue. A notification for one
//!   connection goes straight to its queue through the default exchange.
//!   Notifications are not kept while the broker is unreachable.
//!
//! ## Design
//!
//! - **Non-blocking protocol calls**: `join_channel`, `leave_channel`,
//!   `notify`, `broadcast` and `disconnect` update the connection table and
//!   push a command on a bounded queue ([`command_queue`](AmqpConfig::command_queue))
//!   served by one publisher task, in order: binds and unbinds are awaited one
//!   after the other on its own channel, notifications are published on the
//!   publishing channel and their confirms collected.
//! - **Binds before answers**: each connection counts its binds not done yet.
//!   When a request made some (a subscribe), its task queues a barrier behind
//!   them and waits for it (at most 10 s) before publishing the answer: when
//!   the client reads "subscribed", its queue is bound, and no notification
//!   published after that can miss it.
//! - **Nothing accepted is lost**: answers are published `mandatory` on a
//!   channel in publisher-confirm mode; the request's delivery is acknowledged
//!   only once the broker confirmed the answer (an answer returned unroutable
//!   is confirmed too: its client is gone, the request is acknowledged). When
//!   the connection a request came on is lost before its answer is confirmed,
//!   the answer is not published (or not confirmed) and the request is left
//!   to the broker, which delivers it again after the reconnection. A request
//!   whose answer the broker refuses (`nack`) is requeued once, then dropped
//!   with an error log.
//! - **A request received again is not executed again**: protoplex remembers the answers
//!   it gave recently, by connection, client-given `requestId` and request
//!   bytes ([`answer_cache_size`](AmqpConfig::answer_cache_size), 16 MiB,
//!   for [`answer_cache_ttl`](AmqpConfig::answer_cache_ttl), 60 s). A request
//!   received again (sent again by its client, or redelivered by the broker)
//!   is not executed again: it gets the answer again, unless it is a
//!   redelivery whose answer the broker had confirmed (then it is only
//!   acknowledged: the client's queue has the answer). A copy received while
//!   the request executes waits for its answer.
//! - **Reconnection**: when the connection or the consumer ends, protoplex
//!   reconnects with an exponential backoff
//!   ([`reconnect_min_delay`](AmqpConfig::reconnect_min_delay) 100 ms doubling
//!   up to [`reconnect_max_delay`](AmqpConfig::reconnect_max_delay) 5 s, each
//!   failure logged at warn), declares its queue and binding again, binds the
//!   queue of every known connection to each channel it joined, and resumes
//!   consuming. [`AmqpProtocol::ready`] tells when requests are consumed.
//! - **Start**: [`Protocol::init`](protoplex_core::Protocol::init) checks the
//!   configuration (a bad one is a `ProtocolError::Config`) and returns: the
//!   broker is reached in the background, so that a proxy started before its
//!   broker serves as soon as the broker comes.
//! - **Shutdown**: the consumer is cancelled (deliveries not started return
//!   to the queue), the requests already started are answered and
//!   acknowledged, the queued commands are carried out, and the connection is
//!   closed, all within [`close_timeout`](AmqpConfig::close_timeout). Every
//!   task runs on the router's task tracker.
//!
//! ## Across a broker restart
//!
//! A broker restart (`rabbitmqctl stop_app` / `start_app`, a crash) loses
//! every transient message, which is what clients publish unless they set
//! `delivery_mode` 2: requests waiting in the (durable) request queue or
//! delivered to protoplex and not acknowledged yet, and the client queues
//! that are not durable, with the answers and notifications in them. So a
//! client, when its connection is lost, reconnects, declares its queue again
//! (same name) and sends again every request it has had no answer for. Then
//! (`tests/restart_under_load.rs`, four clients under load):
//!
//! - every request gets exactly one answer, with its status;
//! - a request the broker lost before protoplex executed it is executed once,
//!   when sent again; one executed before the stop, whose answer the broker
//!   lost, is not executed again: its remembered answer is sent.
//!
//! Not guaranteed:
//!
//! - for a client that does not send again: a transient request the broker
//!   lost is lost (executed or not), and so is an answer still in its queue;
//! - at most one execution when protoplex no longer knows the connection: if
//!   it found the client's queue gone before the client declared it again (the
//!   [queue check](AmqpConfig::queue_check_interval), a failed re-bind of a
//!   subscriber's queue at reconnection, an unroutable answer), the client
//!   comes back as a new connection, without its subscriptions, and what it
//!   sends again is executed again; likewise past `answer_cache_ttl`, when
//!   the cache is full, after a restart of protoplex, across protoplex nodes
//!   sharing the request queue (each remembers its own answers), and for
//!   requests without a `requestId` of their client's;
//! - with persistent requests, which survive the restart: one the client also
//!   sends again may be answered twice (the same answer: executed once), and
//!   one redelivered whose answer the broker had confirmed before stopping is
//!   not answered again, though that answer may have gone with the client's
//!   queue. A client should drop an answer whose `requestId` it no longer
//!   waits for;
//! - notifications published while the broker is away; a subscriber whose
//!   queue went with the restart subscribes again.

mod answers;
mod commands;
mod config;
mod connections;
mod consumer;
mod protocol;
mod publisher;
mod request;
mod session;
mod shared;
mod sweep;

pub use config::{AmqpConfig, ConfigError, DEFAULT_URL};
pub use protocol::AmqpProtocol;
