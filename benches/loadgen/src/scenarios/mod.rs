//! The scenarios: each connects real clients to a running server, drives
//! load for a bounded time, and returns a record of [`crate::results`].
//!
//! - [`fanout`]: P publishers -> N subscribers (WebSocket or MQTT);
//! - [`request`]: C clients, one request at a time each (HTTP, WebSocket or AMQP);
//! - [`idle`]: K idle WebSocket connections, the server's memory per connection;
//! - [`suite`]: the side-by-side comparisons, servers started for each run;
//! - [`soak`]: mixed load over every protocol for minutes, the server's
//!   memory and open files watched for leaks (`scripts/soak.sh`).
//!
//! A new transport adds a client module in [`crate::clients`] and an arm
//! where the fan-out and request scenarios pick their clients.

pub mod fanout;
pub mod idle;
pub mod progress;
pub mod request;
pub mod soak;
pub mod suite;

use std::net::SocketAddr;

use crate::process::{Server, Usage};

/// The server a scenario runs against.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name in the report.
    pub name: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// Its process, for CPU and memory figures (none: figures are 0).
    pub pid: Option<u32>,
}

impl Target {
    /// The target of a server this process started.
    pub fn of(server: &Server) -> Self {
        Self {
            name: server.name().to_owned(),
            address: server.address(),
            pid: Some(server.pid()),
        }
    }

    /// Its usage now (zeroes when unknown or unreadable).
    pub fn usage(&self) -> Usage {
        self.pid
            .and_then(|pid| crate::process::usage(&pid.to_string()).ok())
            .unwrap_or_default()
    }
}

/// Why a scenario could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A client could not connect or set up.
    #[error("{what}: {source}")]
    Client {
        /// What was being done.
        what: String,
        /// The client's error.
        source: crate::clients::ClientError,
    },
    /// The server could not be started or measured.
    #[error(transparent)]
    Server(#[from] crate::process::ServerError),
    /// The scenario's settings cannot work.
    #[error("invalid settings: {0}")]
    Settings(String),
}

/// The load generator's own CPU seconds so far.
pub(crate) fn own_cpu_seconds() -> f64 {
    crate::process::usage("self").map_or(0.0, |usage| usage.cpu_seconds)
}

/// Keeps the first [`crate::results::MAX_ERRORS`] errors.
pub(crate) fn keep_error(errors: &mut Vec<String>, error: impl ToString) {
    if errors.len() < crate::results::MAX_ERRORS {
        errors.push(error.to_string());
    }
}
