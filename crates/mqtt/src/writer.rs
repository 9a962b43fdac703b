//! The writing half of a connection: the only code touching its socket's write
//! side. It drains the client's bounded queue, encodes each packet in the
//! connection's MQTT version, writes them a batch at a time, and ends with the
//! MQTT 5 DISCONNECT its close cause calls for.
//!
//! QoS 1 deliveries take a packet id from the [`Inflight`] window, freed by the
//! client's PUBACK (handled by the reader). A full window makes the writer
//! wait; the queue then fills up and the client is cut off as too slow. There
//! is no redelivery: sessions are not persisted, so a QoS 1 message is lost
//! with its connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::BytesMut;
use rumqttd::protocol::{Disconnect, DisconnectProperties, Packet};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::client::{Client, Delivery, DeliveryQos, Outgoing};
use crate::close::{CloseCause, CloseSignal};
use crate::codec::{Codec, OutgoingPublish, Version};

/// Bytes encoded before a write to the socket.
const BATCH_BYTES: usize = 64 * 1024;

/// QoS 1 deliveries awaiting their PUBACK: packet ids and the window's room.
#[derive(Debug)]
pub(crate) struct Inflight {
    room: Arc<Semaphore>,
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    permits: HashMap<u16, OwnedSemaphorePermit>,
    last: u16,
}

impl Inflight {
    /// A window of `size` deliveries (at least 1, at most 65535).
    pub(crate) fn new(size: u16) -> Self {
        Self {
            room: Arc::new(Semaphore::new(usize::from(size.max(1)))),
            pending: Mutex::default(),
        }
    }

    /// A packet id once the window has room (immediately when it has).
    async fn acquire(&self) -> u16 {
        let permit = match self.room.clone().try_acquire_owned() {
            Ok(permit) => permit,
            // The semaphore is never closed: `acquire_owned` cannot fail.
            Err(_) => match self.room.clone().acquire_owned().await {
                Ok(permit) => permit,
                Err(_) => return 0,
            },
        };
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        // Fewer than 65535 ids are in use: a free one is found.
        let mut id = pending.last;
        loop {
            id = id.wrapping_add(1).max(1);
            if !pending.permits.contains_key(&id) {
                break;
            }
        }
        pending.last = id;
        pending.permits.insert(id, permit);
        id
    }

    /// Whether the window has room right now.
    fn has_room(&self) -> bool {
        self.room.available_permits() > 0
    }

    /// Frees the id a PUBACK acknowledges; false for an unknown one.
    pub(crate) fn ack(&self, id: u16) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .permits
            .remove(&id)
            .is_some()
    }
}

/// The writing half of one connection.
pub(crate) struct Writer<W> {
    io: W,
    codec: Codec,
    client: Arc<Client>,
    inflight: Arc<Inflight>,
    /// Largest packet the client accepts (MQTT 5 `maximum_packet_size`).
    max_packet_size: Option<usize>,
    buffer: BytesMut,
    /// A write was interrupted: the stream may end inside a packet.
    torn: bool,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// A writer to `io` for `client`, in the codec's version.
    pub(crate) fn new(
        io: W,
        codec: Codec,
        client: Arc<Client>,
        inflight: Arc<Inflight>,
        max_packet_size: Option<usize>,
    ) -> Self {
        Self {
            io,
            codec,
            client,
            inflight,
            max_packet_size,
            buffer: BytesMut::new(),
            torn: false,
        }
    }

    /// Writes what `queue` brings until the connection closes: at once for an
    /// urgent cause, after the reader is done and the queue drained otherwise
    /// (or at the close deadline). Returns the socket's write half.
    pub(crate) async fn run(
        mut self,
        mut queue: mpsc::Receiver<Outgoing>,
        signal: &CloseSignal,
        reader_done: &CancellationToken,
    ) -> W {
        // Resolves when a close was asked and its time is up.
        let expired = async {
            signal.closing().await;
            tokio::time::sleep_until(signal.deadline()).await;
        };
        tokio::pin!(expired);
        let mut draining = false;
        loop {
            let next = tokio::select! {
                biased;
                () = signal.urgent() => break,
                () = &mut expired => break,
                () = reader_done.cancelled(), if !draining => {
                    // Nothing new will be queued: write what is there, then close.
                    draining = true;
                    queue.close();
                    continue;
                }
                next = queue.recv() => next,
            };
            let Some(first) = next else { break };
            let written = tokio::select! {
                biased;
                () = signal.urgent() => break,
                () = &mut expired => break,
                written = self.write_batch(&mut queue, first) => written,
            };
            if let Err(error) = written {
                tracing::debug!(connection_id = %self.client.id(), %error, "Write failed.");
                signal.close(CloseCause::Remote);
                break;
            }
        }
        signal.hurry();
        self.buffer.clear();
        if let (Version::V5, Some(reason), false) = (
            self.codec.version(),
            signal.cause().and_then(CloseCause::reason),
            self.torn,
        ) {
            let cause = signal.cause().unwrap_or(CloseCause::Remote);
            let disconnect = Packet::Disconnect(
                Disconnect { reason_code: reason },
                Some(DisconnectProperties {
                    session_expiry_interval: None,
                    reason_string: Some(cause.message().into()),
                    user_properties: Vec::new(),
                    server_reference: None,
                }),
            );
            if self.codec.write(disconnect, &mut self.buffer).is_ok() {
                let _ = tokio::time::timeout_at(signal.deadline(), self.io.write_all(&self.buffer)).await;
            }
        }
        self.io
    }

    /// Encodes `first` and what else is queued (up to a batch), then writes.
    async fn write_batch(
        &mut self,
        queue: &mut mpsc::Receiver<Outgoing>,
        first: Outgoing,
    ) -> std::io::Result<()> {
        self.encode(first).await?;
        while self.buffer.len() < BATCH_BYTES {
            match queue.try_recv() {
                Ok(next) => self.encode(next).await?,
                Err(_) => break,
            }
        }
        self.flush().await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            self.torn = true;
            self.io.write_all(&self.buffer).await?;
            self.torn = false;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Appends one packet to the buffer. A QoS 1 PUBLISH waits for room in the
    /// window, after writing what is buffered (the client may be waiting for
    /// it before acknowledging).
    async fn encode(&mut self, outgoing: Outgoing) -> std::io::Result<()> {
        let delivery = match outgoing {
            Outgoing::Control(packet) => {
                if let Err(error) = self.codec.write(*packet, &mut self.buffer) {
                    tracing::error!(connection_id = %self.client.id(), %error, "Packet not encoded: dropped.");
                }
                return Ok(());
            }
            Outgoing::Publish(delivery) => delivery,
        };
        let Delivery {
            topic,
            payload,
            qos,
            correlation,
        } = delivery;
        let qos = match qos {
            DeliveryQos::AtMostOnce => 0,
            DeliveryQos::AtLeastOnce => 1,
            DeliveryQos::Subscribed => self.client.granted_qos(&topic).min(1),
        };
        let mut publish = OutgoingPublish {
            topic: &topic,
            payload: &payload,
            qos,
            pkid: 0,
            correlation: correlation
                .as_deref()
                .filter(|_| self.codec.version() == Version::V5),
        };
        let size = match self.codec.publish_size(&publish) {
            Ok(size) => size,
            Err(error) => {
                tracing::warn!(connection_id = %self.client.id(), %error, "Message not encodable: dropped.");
                return Ok(());
            }
        };
        if self.max_packet_size.is_some_and(|max| size > max) {
            // MQTT 5: a message over the client's maximum packet size is discarded.
            tracing::debug!(connection_id = %self.client.id(), size, "Message over the client's maximum packet size: dropped.");
            return Ok(());
        }
        if qos == 1 {
            if !self.inflight.has_room() {
                self.flush().await?;
            }
            publish.pkid = self.inflight.acquire().await;
            if publish.pkid == 0 {
                return Ok(());
            }
        }
        if let Err(error) = self.codec.publish(&publish, &mut self.buffer) {
            tracing::warn!(connection_id = %self.client.id(), %error, "Message not encodable: dropped.");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ids_are_unique_and_freed_by_acks() {
        let window = Inflight::new(2);
        let a = window.acquire().await;
        let b = window.acquire().await;
        assert_ne!(a, b);
        assert!(!window.has_room());
        assert!(window.ack(a));
        assert!(!window.ack(a));
        assert!(window.has_room());
        let c = window.acquire().await;
        assert!(c != b && c != 0);
    }

    #[tokio::test]
    async fn ids_wrap_around_and_skip_zero() {
        let window = Inflight::new(1);
        window.pending.lock().unwrap_or_else(PoisonError::into_inner).last = u16::MAX;
        assert_eq!(window.acquire().await, 1);
    }
}
