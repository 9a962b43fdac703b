//! The protocol's handle on one connected client: its bounded outgoing queue,
//! its close signal and the QoS of its exact subscriptions. Notifications and
//! acknowledgements never wait: a full queue closes the client. Answers to its
//! own requests wait for room (see [`Client::answer`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use protoplex_core::ConnectionId;
use rumqttd::protocol::Packet;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;

use crate::close::{CloseCause, CloseSignal};

/// The QoS a PUBLISH is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliveryQos {
    /// QoS 0 (answers).
    AtMostOnce,
    /// QoS 1.
    AtLeastOnce,
    /// The QoS the client subscribed to the topic with, capped at 1; 0 when it
    /// did not subscribe (notifications).
    Subscribed,
}

/// A PUBLISH to send. Topics and payloads are shared, never copied per client.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// Its topic.
    pub(crate) topic: Arc<str>,
    /// Its payload.
    pub(crate) payload: Bytes,
    /// Its QoS.
    pub(crate) qos: DeliveryQos,
    /// MQTT 5 correlation data (answers).
    pub(crate) correlation: Option<Bytes>,
}

/// What a client's queue carries to its writer.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A control packet (CONNACK, PUBACK, SUBACK...).
    Control(Box<Packet>),
    /// A PUBLISH.
    Publish(Delivery),
}

/// One connected client, as the protocol's maps hold it.
#[derive(Debug)]
pub(crate) struct Client {
    id: ConnectionId,
    client_id: String,
    outgoing: mpsc::Sender<Outgoing>,
    signal: Arc<CloseSignal>,
    /// QoS granted to each exact (wildcard-free) filter it subscribed to.
    granted: Mutex<HashMap<String, u8>>,
}

impl Client {
    /// A client whose writer drains `outgoing`.
    pub(crate) fn new(
        id: ConnectionId,
        client_id: String,
        outgoing: mpsc::Sender<Outgoing>,
        signal: Arc<CloseSignal>,
    ) -> Self {
        Self {
            id,
            client_id,
            outgoing,
            signal,
            granted: Mutex::default(),
        }
    }

    /// The connection id.
    pub(crate) fn id(&self) -> ConnectionId {
        self.id
    }

    /// Queues `message` without waiting. When the queue is full, the client is
    /// closed as too slow.
    pub(crate) fn send(&self, message: Outgoing) {
        match self.outgoing.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.signal.close(CloseCause::Backpressure) {
                    tracing::warn!(connection_id = %self.id, client_id = %self.client_id, "Client too slow: closed (too much backpressure).");
                }
            }
            // The writer is gone: the connection is closing already.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Queues a PUBLISH.
    pub(crate) fn deliver(&self, delivery: Delivery) {
        self.send(Outgoing::Publish(delivery));
    }

    /// Queues a PUBLISH answering one of the client's own requests. It waits,
    /// until `deadline`, for room for itself and `headroom` more slots, left to
    /// the acknowledgements the reader queues without waiting: a client asking
    /// faster than it reads is slowed down (its next packets wait unread), one
    /// that reads nothing by then is closed as too slow.
    pub(crate) async fn answer(&self, delivery: Delivery, headroom: usize, deadline: Instant) {
        let wanted = (headroom + 1).min(self.outgoing.max_capacity());
        match tokio::time::timeout_at(deadline, self.outgoing.reserve_many(wanted)).await {
            Ok(Ok(mut permits)) => {
                if let Some(permit) = permits.next() {
                    permit.send(Outgoing::Publish(delivery));
                }
            }
            // The writer is gone: the connection is closing already.
            Ok(Err(_)) => {}
            Err(_) => {
                if self.signal.close(CloseCause::Backpressure) {
                    tracing::warn!(connection_id = %self.id, client_id = %self.client_id, "Client reads no answer: closed (too much backpressure).");
                }
            }
        }
    }

    /// Asks the connection to close; true for the first request.
    pub(crate) fn close(&self, cause: CloseCause) -> bool {
        self.signal.close(cause)
    }

    /// Records an exact subscription and its granted QoS.
    pub(crate) fn grant(&self, filter: &str, qos: u8) {
        self.granted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(filter.to_owned(), qos);
    }

    /// Forgets an exact subscription; true when it existed.
    pub(crate) fn revoke(&self, filter: &str) -> bool {
        self.granted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(filter)
            .is_some()
    }

    /// Exact subscriptions held, and whether `filter` is one of them.
    pub(crate) fn grants(&self, filter: &str) -> (usize, bool) {
        let granted = self.granted.lock().unwrap_or_else(PoisonError::into_inner);
        (granted.len(), granted.contains_key(filter))
    }

    /// The QoS granted to `topic` (0 without subscription).
    pub(crate) fn granted_qos(&self, topic: &str) -> u8 {
        self.granted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
            .copied()
            .unwrap_or(0)
    }
}

#[derive(Debug, Default)]
struct Maps {
    by_id: HashMap<ConnectionId, Arc<Client>>,
    by_client_id: HashMap<String, ConnectionId>,
}

/// Connected clients, by connection id and by MQTT client id.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    maps: RwLock<Maps>,
}

impl Clients {
    /// Registers a client; returns the client that had its client id before
    /// (its session is taken over: the caller closes it).
    pub(crate) fn insert(&self, client: Arc<Client>) -> Option<Arc<Client>> {
        let mut maps = self.maps.write().unwrap_or_else(PoisonError::into_inner);
        let previous = maps
            .by_client_id
            .insert(client.client_id.clone(), client.id)
            .and_then(|previous| maps.by_id.get(&previous).cloned());
        maps.by_id.insert(client.id, client);
        previous
    }

    /// Forgets a client (its client id too, unless another connection took it).
    pub(crate) fn remove(&self, client: &Client) {
        let mut maps = self.maps.write().unwrap_or_else(PoisonError::into_inner);
        maps.by_id.remove(&client.id);
        if maps.by_client_id.get(&client.client_id) == Some(&client.id) {
            maps.by_client_id.remove(&client.client_id);
        }
    }

    /// The client with that id, while connected.
    pub(crate) fn get(&self, id: ConnectionId) -> Option<Arc<Client>> {
        self.maps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_id
            .get(&id)
            .cloned()
    }

    /// Number of connected clients.
    pub(crate) fn len(&self) -> usize {
        self.maps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_id
            .len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn client(client_id: &str, capacity: usize) -> (Arc<Client>, mpsc::Receiver<Outgoing>, Arc<CloseSignal>) {
        let (sender, receiver) = mpsc::channel(capacity);
        let signal = Arc::new(CloseSignal::new(Duration::from_secs(1)));
        let client = Arc::new(Client::new(
            ConnectionId::next(),
            client_id.into(),
            sender,
            signal.clone(),
        ));
        (client, receiver, signal)
    }

    #[test]
    fn a_full_queue_closes_the_client() {
        let (client, _receiver, signal) = client("a", 1);
        let delivery = Delivery {
            topic: "t".into(),
            payload: Bytes::from_static(b"{}"),
            qos: DeliveryQos::AtMostOnce,
            correlation: None,
        };
        client.deliver(delivery.clone());
        assert_eq!(signal.cause(), None);
        client.deliver(delivery);
        assert_eq!(signal.cause(), Some(CloseCause::Backpressure));
    }

    #[test]
    fn granted_qos() {
        let (client, _receiver, _signal) = client("a", 1);
        assert_eq!(client.granted_qos("t"), 0);
        client.grant("t", 1);
        assert_eq!(client.granted_qos("t"), 1);
        assert_eq!(client.grants("t"), (1, true));
        assert!(client.revoke("t"));
        assert!(!client.revoke("t"));
        assert_eq!(client.grants("t"), (0, false));
    }

    #[test]
    fn a_client_id_is_taken_over() {
        let clients = Clients::default();
        let (first, _r1, _s1) = client("same", 1);
        let (second, _r2, _s2) = client("same", 1);
        assert!(clients.insert(first.clone()).is_none());
        let taken = clients.insert(second.clone()).expect("taken over");
        assert_eq!(taken.id(), first.id());
        clients.remove(&first);
        assert_eq!(clients.len(), 1);
        // The id still maps to the second connection.
        let (third, _r3, _s3) = client("same", 1);
        assert_eq!(clients.insert(third).map(|c| c.id()), Some(second.id()));
    }
}
