//! Real clients of the servers under test, one module per protocol.
//!
//! A protocol's module has the shapes of [`ws`]: a subscriber whose `next`
//! yields raw message bytes (the scenario finds the [`payload`] marker in
//! them), a publisher with `send` and `finish`, and a request/response
//! client; each scenario picks its clients in one `match` (see
//! [`crate::scenarios`]). [`mqtt`] has the fan-out shapes, [`amqp`] the
//! request/response one.

pub mod amqp;
pub mod http;
pub mod mqtt;
pub mod payload;
pub mod ws;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Index of every request the load generator sends.
pub const INDEX: &str = "bench";
/// Collection of every request the load generator sends.
pub const COLLECTION: &str = "fanout";

/// What the server under test speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// protoplex (or Kuzzle): requests are Kuzzle API objects, subscribers
    /// subscribe with `realtime:subscribe` and get notifications.
    Kuzzle,
    /// A baseline: no API. WebSocket subscribers just connect and every text
    /// frame is broadcast; HTTP requests get a fixed answer.
    Raw,
}

/// Why a client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket error.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// WebSocket protocol error.
    #[error("WebSocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// AMQP (lapin) error.
    #[error("AMQP: {0}")]
    Amqp(#[from] lapin::Error),
    /// HTTP protocol error.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// An HTTP request that could not be built.
    #[error("HTTP request: {0}")]
    HttpRequest(#[from] hyper::http::Error),
    /// Something took too long.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The server answered, but not as expected.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// The server closed the connection.
    #[error("connection closed by the server{0}")]
    Closed(String),
}

/// Answers a publisher received, counted by its reader task.
#[derive(Debug, Default)]
pub struct Acks {
    /// Successful answers (protoplex: status 200; baseline: any frame back).
    pub ok: AtomicU64,
    /// Failed answers.
    pub failed: AtomicU64,
    /// The first failure, for the report.
    pub first_failure: Mutex<Option<String>>,
}

impl Acks {
    /// Answers received so far.
    pub fn total(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

/// The source address of connection `index` when connections are spread over
/// `sources` loopback addresses (127.0.0.1, 127.0.0.2, ...): each source gives
/// its own range of ephemeral ports. `None` (the system's choice) for one source.
pub fn source_address(index: usize, sources: usize) -> Option<IpAddr> {
    if sources <= 1 {
        return None;
    }
    let host = 1 + (index % sources.min(254)) as u8;
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_rotate_over_loopback() {
        assert_eq!(source_address(5, 1), None);
        assert_eq!(source_address(0, 3), Some("127.0.0.1".parse().expect("ip")));
        assert_eq!(source_address(4, 3), Some("127.0.0.2".parse().expect("ip")));
        assert_eq!(
            source_address(1000, 1000),
            Some("127.0.0.239".parse().expect("ip"))
        );
    }
}
