//! Client connections as the router sees them.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Unique id of a client connection within this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// A fresh id, never handed out before in this process.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The numeric value of the id.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A client connection, declared to the router by the protocol that accepted it
/// (Kuzzle's `ClientConnection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConnection {
    /// Unique id of the connection.
    pub id: ConnectionId,
    /// Name of the protocol that owns the connection (`websocket`, `mqtt`...).
    pub protocol: String,
    /// The client's addresses: the socket's peer first, then any forwarded ones.
    pub ips: Vec<IpAddr>,
    /// Connection headers (HTTP headers, MQTT client id...).
    pub headers: HashMap<String, String>,
}

impl ClientConnection {
    /// A new connection of `protocol` with a fresh id.
    pub fn new(protocol: impl Into<String>, ips: Vec<IpAddr>, headers: HashMap<String, String>) -> Self {
        Self {
            id: ConnectionId::next(),
            protocol: protocol.into(),
            ips,
            headers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        let a = ClientConnection::new("test", vec![], HashMap::new());
        let b = ClientConnection::new("test", vec![], HashMap::new());
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.to_string(), a.id.get().to_string());
    }
}
