//! The protocol's handle on one connected client: its bounded outgoing queue and
//! its close signal. Pushing never waits: a full queue closes the client.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use protoplex_core::ConnectionId;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::close::{CloseCause, CloseSignal};

/// One connected client, as the protocol's maps hold it.
#[derive(Debug)]
pub(crate) struct Client {
    id: ConnectionId,
    outgoing: mpsc::Sender<Message>,
    signal: Arc<CloseSignal>,
}

impl Client {
    /// A client whose writer drains `outgoing`.
    pub(crate) fn new(id: ConnectionId, outgoing: mpsc::Sender<Message>, signal: Arc<CloseSignal>) -> Self {
        Self { id, outgoing, signal }
    }

    /// Queues `message` for the client without waiting. When its queue is full,
    /// the client is closed with 1011 "too much backpressure".
    pub(crate) fn send(&self, message: Message) {
        match self.outgoing.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.signal.close(CloseCause::Backpressure) {
                    tracing::warn!(connection_id = %self.id, "Client too slow: closed (too much backpressure).");
                }
            }
            // The writer is gone: the connection is closing already.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Queues the answer to one of the client's own requests, waiting until
    /// `deadline` for room: a client that asks faster than it reads is slowed
    /// down (its next frames wait unread) rather than cut off; one that reads
    /// nothing by then is closed with 1011 "too much backpressure".
    pub(crate) async fn answer(&self, message: Message, deadline: Instant) {
        match tokio::time::timeout_at(deadline, self.outgoing.send(message)).await {
            // Queued, or the writer is gone: the connection is closing already.
            Ok(_) => {}
            Err(_) => {
                if self.signal.close(CloseCause::Backpressure) {
                    tracing::warn!(connection_id = %self.id, "Client reads no answer: closed (too much backpressure).");
                }
            }
        }
    }

    /// Asks the client's connection to close.
    pub(crate) fn close(&self, cause: CloseCause) -> bool {
        self.signal.close(cause)
    }
}

/// Connected clients by id.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    map: RwLock<HashMap<ConnectionId, Arc<Client>>>,
}

impl Clients {
    /// Registers a client.
    pub(crate) fn insert(&self, id: ConnectionId, client: Arc<Client>) {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, client);
    }

    /// Forgets a client.
    pub(crate) fn remove(&self, id: ConnectionId) {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// The client with that id, while connected.
    pub(crate) fn get(&self, id: ConnectionId) -> Option<Arc<Client>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Number of connected clients.
    pub(crate) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}
