//! The connection table: every declared connection, counted per protocol
//! against the connection caps.

use std::collections::HashMap;
use std::sync::Arc;

use super::rate::RateWindow;
use crate::connection::{ClientConnection, ConnectionId};
use crate::error::ApiError;

/// A declared connection.
pub(crate) struct ConnectionEntry {
    pub(crate) connection: ClientConnection,
    /// Index of its protocol in the router's list.
    pub(crate) protocol: usize,
    /// Its requests in the current second, for `limits.requests_rate_limit`.
    pub(crate) rate: RateWindow,
}

/// The connections, and how many each protocol has.
pub(crate) struct ConnectionTable {
    entries: HashMap<ConnectionId, Arc<ConnectionEntry>>,
    per_protocol: Vec<usize>,
    /// Caps per protocol (0: none).
    protocol_caps: Vec<usize>,
    /// Cap on the whole table (0: none).
    total_cap: usize,
}

impl ConnectionTable {
    pub(crate) fn new(total_cap: usize, protocol_caps: Vec<usize>) -> Self {
        Self {
            entries: HashMap::new(),
            per_protocol: vec![0; protocol_caps.len()],
            protocol_caps,
            total_cap,
        }
    }

    /// Adds `connection` of the protocol at `protocol` (an index below the
    /// number of protocols), unless a cap is reached.
    pub(crate) fn insert(&mut self, connection: ClientConnection, protocol: usize) -> Result<(), ApiError> {
        if self.total_cap != 0 && self.entries.len() >= self.total_cap {
            return Err(ApiError::TooManyConnections("the server".to_owned()));
        }
        let cap = self.protocol_caps.get(protocol).copied().unwrap_or(0);
        let count = self.per_protocol.get(protocol).copied().unwrap_or(0);
        if cap != 0 && count >= cap {
            return Err(ApiError::TooManyConnections(format!(
                "protocol \"{}\"",
                connection.protocol
            )));
        }
        let entry = ConnectionEntry {
            connection,
            protocol,
            rate: RateWindow::default(),
        };
        if let Some(previous) = self.entries.insert(entry.connection.id, Arc::new(entry)) {
            // The same id declared twice: the new entry replaces the old one.
            self.decrement(previous.protocol);
        }
        if let Some(count) = self.per_protocol.get_mut(protocol) {
            *count += 1;
        }
        Ok(())
    }

    pub(crate) fn remove(&mut self, id: &ConnectionId) -> Option<Arc<ConnectionEntry>> {
        let entry = self.entries.remove(id)?;
        self.decrement(entry.protocol);
        Some(entry)
    }

    pub(crate) fn get(&self, id: &ConnectionId) -> Option<&Arc<ConnectionEntry>> {
        self.entries.get(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn decrement(&mut self, protocol: usize) {
        if let Some(count) = self.per_protocol.get_mut(protocol) {
            *count = count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> ClientConnection {
        ClientConnection::new("test", Vec::new(), HashMap::new())
    }

    #[test]
    fn the_total_cap_counts_every_protocol() {
        let mut table = ConnectionTable::new(2, vec![0, 0]);
        table.insert(connection(), 0).expect("first");
        table.insert(connection(), 1).expect("second");
        let error = table.insert(connection(), 1).expect_err("third");
        assert_eq!(error.to_kuzzle().id, "network.entrypoint.too_many_connections");
        assert_eq!(error.status(), 503);
        assert!(error.to_string().contains("the server"), "{error}");
    }

    #[test]
    fn a_protocol_cap_leaves_the_other_protocols_alone() {
        let mut table = ConnectionTable::new(0, vec![1, 0]);
        let first = connection();
        let first_id = first.id;
        table.insert(first, 0).expect("first");
        let error = table.insert(connection(), 0).expect_err("over the cap");
        assert!(error.to_string().contains("protocol \"test\""), "{error}");
        table.insert(connection(), 1).expect("another protocol");
        table.remove(&first_id).expect("removed");
        table.insert(connection(), 0).expect("room again after a removal");
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn declaring_an_id_twice_counts_it_once() {
        let mut table = ConnectionTable::new(0, vec![1]);
        let connection = connection();
        table.insert(connection.clone(), 0).expect("first");
        table
            .insert(connection.clone(), 0)
            .expect_err("the cap counts the first");
        table.remove(&connection.id);
        assert_eq!(table.len(), 0);
        table.insert(connection, 0).expect("free again");
    }
}
