//! One MQTT client, from its CONNECT to its removal from the router.
//!
//! The connection is one task running two halves side by side:
//!
//! - the **reader** reads packets with the connection's codec and acts on
//!   them: requests run with `execute_payload` (up to `max_in_flight` at once;
//!   then it stops reading), their answers are queued as they complete;
//!   subscriptions, acknowledgements and pings are answered; keep-alive is
//!   enforced;
//! - the **writer** ([`Writer`]) alone writes to the socket, draining the
//!   client's bounded queue.
//!
//! Closing follows the [`CloseSignal`]: an urgent cause (the client leaving,
//! keep-alive expiry, a malformed or oversized packet, backpressure) stops both
//! halves at once; a draining one (shutdown, `disconnect`) stops reading, lets
//! the requests already read finish and their answers be written, then closes.
//! Either way the router forgets the connection `disconnect_delay` after its
//! end, exactly once; requests still running meanwhile may finish (Kuzzle's
//! delay serves them), and are dropped at that point.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use protoplex_core::{ApiError, BoxFuture, ClientConnection, ConnectionId, RouterHandle};
use rumqttd::protocol::{
    Packet, PingResp, PubAck, PubAckReason, PubComp, PubCompReason, PubRec, PubRecReason, Publish,
    PublishProperties, QoS, SubAck, Subscribe, SubscribeReasonCode, UnsubAck, UnsubAckReason, Unsubscribe,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, Delivery, DeliveryQos, Outgoing};
use crate::close::{CloseCause, CloseSignal};
use crate::codec::{Codec, CodecError, Version};
use crate::protocol::{MqttProtocol, NAME};
use crate::session::{self, ServerLimits, Session};
use crate::topics::{PublishRoute, Refusal, SubscribeRoute};
use crate::writer::{Inflight, Writer};

/// How long an answer waits for room in a full outgoing queue before the
/// client, which then reads nothing, is closed as too slow.
const ANSWER_ROOM_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Queue slots kept free, beyond one per request in flight, for the packets the
/// reader queues without waiting (PINGRESP, SUBACK...).
const ACK_HEADROOM: usize = 8;

/// Free room kept in the read buffer before reading the socket.
const READ_CHUNK: usize = 4096;

/// Subscriptions (topic filters) one connection may hold.
pub(crate) const MAX_FILTERS: usize = 10_000;

/// Requests of one connection being executed.
type Running = FuturesUnordered<BoxFuture<'static, Delivery>>;

/// Serves one TCP client until its connection ends.
pub(crate) async fn serve(protocol: Arc<MqttProtocol>, stream: TcpStream, peer: SocketAddr) {
    let Some(context) = protocol.context().cloned() else {
        return;
    };
    let config = protocol.config();
    let max_packet = protocol.max_packet();
    let (mut read_half, write_half) = stream.into_split();
    let mut buffer = BytesMut::with_capacity(READ_CHUNK);

    let handshake = tokio::select! {
        () = context.shutdown.cancelled() => return,
        handshake = tokio::time::timeout(
            config.connect_window(),
            session::handshake(&mut read_half, &mut buffer, max_packet),
        ) => handshake,
    };
    let (codec, session) = match handshake {
        Ok(Ok(accepted)) => accepted,
        Ok(Err((error, version))) => {
            tracing::warn!(%peer, %error, "MQTT connection refused.");
            if let Some((codec, connack)) = error.connack(version) {
                send_and_close(write_half, &codec, connack, config.close_grace()).await;
            }
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "No CONNECT in time: connection closed.");
            return;
        }
    };

    let headers = HashMap::from([("client_id".to_owned(), session.client_id.clone())]);
    let connection = ClientConnection::new(NAME, vec![peer.ip()], headers);
    let id = connection.id;
    let router = context.router.clone();
    if let Err(error) = router.new_connection(connection) {
        tracing::debug!(%peer, %error, "Connection refused by the router.");
        let busy = matches!(error, ApiError::TooManyConnections(_));
        let connack = session::unavailable(codec.version(), busy);
        send_and_close(write_half, &codec, connack, config.close_grace()).await;
        return;
    }

    let signal = Arc::new(CloseSignal::new(config.close_grace()));
    let (sender, queue) = mpsc::channel(config.outgoing_queue);
    let client = Arc::new(Client::new(id, session.client_id.clone(), sender, signal.clone()));
    let limits = ServerLimits {
        max_packet,
        wildcards: config.allow_pub_sub,
    };
    // The CONNACK is the first packet of the queue.
    let connack = session::accepted(codec.version(), &session, limits);
    client.send(Outgoing::Control(Box::new(connack)));
    if let Some(previous) = protocol.clients().insert(client.clone())
        && previous.close(CloseCause::SessionTakenOver)
    {
        tracing::debug!(connection_id = %previous.id(), client_id = %session.client_id, "Session taken over: connection closed.");
    }
    tracing::debug!(connection_id = %id, %peer, client_id = %session.client_id, version = ?codec.version(), "MQTT connection opened.");

    let window = config
        .max_unacked
        .min(session.receive_maximum.unwrap_or(u16::MAX));
    let inflight = Arc::new(Inflight::new(window));
    let writer = Writer::new(
        write_half,
        codec.clone(),
        client.clone(),
        inflight.clone(),
        session.max_packet_size,
    );
    let reader = Reader {
        protocol: &protocol,
        router: &router,
        shutdown: &context.shutdown,
        signal: &signal,
        client: &client,
        inflight: &inflight,
        codec,
        session,
        max_packet,
        awaiting_release: HashSet::new(),
        pub_sub_filters: HashSet::new(),
    };
    let reader_done = CancellationToken::new();
    let read_side = async {
        let ended = reader.run(read_half, buffer).await;
        reader_done.cancel();
        ended
    };
    let ((read_half, mut running, ended_at), write_half) =
        tokio::join!(read_side, writer.run(queue, &signal, &reader_done));
    let cause = signal.cause().unwrap_or(CloseCause::Remote);
    tracing::debug!(connection_id = %id, %cause, "MQTT connection closed.");

    let removal = ended_at + config.removal_delay();
    let remove = async {
        // Requests sent just before leaving may still finish; nobody reads the answers.
        let _ = tokio::time::timeout_at(removal, async { while running.next().await.is_some() {} }).await;
        tokio::time::sleep_until(removal).await;
        drop(running);
        router.remove_connection(id);
    };
    tokio::join!(linger(read_half, write_half, signal.deadline()), remove);
}

/// Writes one packet (a refusing CONNACK), then closes the socket.
async fn send_and_close(mut io: OwnedWriteHalf, codec: &Codec, packet: Packet, grace: std::time::Duration) {
    let mut out = BytesMut::new();
    if codec.write(packet, &mut out).is_ok() {
        let _ = tokio::time::timeout(grace, async {
            let _ = io.write_all(&out).await;
            let _ = io.shutdown().await;
        })
        .await;
    }
}

/// Ends the TCP stream politely: half-closes it, then reads and drops what the
/// client still sends until it closes too (or the deadline), so that unread
/// input does not turn the close into a reset that could lose the last packets.
async fn linger(mut read: OwnedReadHalf, mut write: OwnedWriteHalf, deadline: Instant) {
    let _ = tokio::time::timeout_at(deadline, async {
        let _ = write.shutdown().await;
        let mut scratch = [0_u8; 1024];
        while let Ok(read) = read.read(&mut scratch).await
            && read > 0
        {}
    })
    .await;
}

/// Runs one request and builds its answer: a QoS 0 PUBLISH of the response
/// (Kuzzle sends answers at QoS 0) on `topic`, with `correlation` (MQTT 5).
fn execute(
    router: RouterHandle,
    id: ConnectionId,
    payload: Bytes,
    topic: Arc<str>,
    correlation: Option<Bytes>,
) -> BoxFuture<'static, Delivery> {
    Box::pin(async move {
        let response = router.execute_payload(id, &payload).await;
        drop(payload);
        Delivery {
            topic,
            payload: response.to_bytes(),
            qos: DeliveryQos::AtMostOnce,
            correlation,
        }
    })
}

/// How a PUBLISH is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// Taken (a request to run, or a message delivered).
    Success,
    /// A pub/sub message nobody subscribed to (MQTT 5 reason 0x10).
    NoSubscriber,
    /// Refused.
    Refused(Refusal),
}

/// The reading half of a connection.
struct Reader<'a> {
    protocol: &'a MqttProtocol,
    router: &'a RouterHandle,
    shutdown: &'a CancellationToken,
    signal: &'a CloseSignal,
    client: &'a Arc<Client>,
    inflight: &'a Inflight,
    codec: Codec,
    session: Session,
    max_packet: usize,
    /// QoS 2 requests taken, whose PUBREL has not come yet.
    awaiting_release: HashSet<u16>,
    /// Filters this client holds in the pub/sub broker.
    pub_sub_filters: HashSet<String>,
}

impl Reader<'_> {
    /// Reads and acts on packets until the connection closes; then, for a
    /// draining close, waits for the requests already read and queues their
    /// answers. Forgets the client in the protocol's maps. Returns the read
    /// half, the requests still running and when the connection ended.
    async fn run(mut self, mut io: OwnedReadHalf, mut buffer: BytesMut) -> (OwnedReadHalf, Running, Instant) {
        let max_in_flight = self.protocol.config().max_in_flight;
        let mut running = Running::new();
        let far = || Instant::now() + std::time::Duration::from_secs(86_400);
        let keep_alive = self.session.keep_alive;
        let timer = tokio::time::sleep_until(keep_alive.map_or_else(far, |window| Instant::now() + window));
        tokio::pin!(timer);

        // Bytes that came right behind the CONNECT.
        if let Err(cause) = self.process(&mut buffer, &mut running) {
            self.signal.close(cause);
        }
        loop {
            if buffer.capacity() - buffer.len() < READ_CHUNK / 4 {
                buffer.reserve(READ_CHUNK);
            }
            let room = running.len() < max_in_flight;
            tokio::select! {
                biased;
                () = self.signal.closing() => break,
                () = self.shutdown.cancelled() => {
                    self.signal.close(CloseCause::Shutdown);
                    break;
                }
                Some(answer) = running.next(), if !running.is_empty() => {
                    // Room for the answer and for the acknowledgements one
                    // batch of requests may queue at once.
                    let headroom = max_in_flight + ACK_HEADROOM;
                    self.client.answer(answer, headroom, Instant::now() + ANSWER_ROOM_WAIT).await;
                    if let Some(window) = keep_alive {
                        timer.as_mut().reset(Instant::now() + window);
                    }
                    // A slot is free: go on with what is buffered.
                    if let Err(cause) = self.process(&mut buffer, &mut running) {
                        self.signal.close(cause);
                        break;
                    }
                }
                () = &mut timer, if keep_alive.is_some() && room => {
                    tracing::debug!(connection_id = %self.client.id(), "Keep-alive expired.");
                    self.signal.close(CloseCause::KeepAlive);
                    break;
                }
                read = io.read_buf(&mut buffer), if room => {
                    match read {
                        Ok(0) => {
                            self.signal.close(CloseCause::Remote);
                            break;
                        }
                        Ok(_) => {
                            if let Some(window) = keep_alive {
                                timer.as_mut().reset(Instant::now() + window);
                            }
                            if let Err(cause) = self.process(&mut buffer, &mut running) {
                                self.signal.close(cause);
                                break;
                            }
                        }
                        Err(error) => {
                            tracing::debug!(connection_id = %self.client.id(), %error, "Connection lost.");
                            self.signal.close(CloseCause::Remote);
                            break;
                        }
                    }
                }
            }
        }

        if self.signal.cause().is_some_and(CloseCause::drains) {
            let deadline = self.signal.deadline();
            loop {
                tokio::select! {
                    biased;
                    () = self.signal.urgent() => break,
                    () = tokio::time::sleep_until(deadline) => {
                        tracing::warn!(connection_id = %self.client.id(), "Requests still running at close: dropped.");
                        break;
                    }
                    answer = running.next() => match answer {
                        Some(answer) => self.client.answer(answer, 0, deadline).await,
                        None => break,
                    },
                }
            }
        }
        let ended_at = Instant::now();
        for filter in &self.pub_sub_filters {
            self.protocol.pub_sub().unsubscribe(filter, self.client.id());
        }
        self.protocol.clients().remove(self.client);
        (io, running, ended_at)
    }

    /// Acts on the whole packets in `buffer`, while a request slot is free.
    fn process(&mut self, buffer: &mut BytesMut, running: &mut Running) -> Result<(), CloseCause> {
        let max_in_flight = self.protocol.config().max_in_flight;
        while running.len() < max_in_flight {
            match self.codec.read(buffer, self.max_packet) {
                Ok(Some(received)) => self.handle(received.packet, received.qos, received.pkid, running)?,
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(connection_id = %self.client.id(), %error, "Refused input: connection closed.");
                    return Err(match error {
                        CodecError::TooLarge { .. } => CloseCause::TooLarge,
                        CodecError::UnexpectedType(_) => CloseCause::ProtocolError,
                        CodecError::Malformed(_) => CloseCause::Malformed,
                    });
                }
            }
        }
        Ok(())
    }

    fn handle(
        &mut self,
        packet: Packet,
        qos: u8,
        pkid: u16,
        running: &mut Running,
    ) -> Result<(), CloseCause> {
        match packet {
            Packet::Publish(publish, properties) => self.publish(publish, properties, qos, pkid, running)?,
            Packet::PubAck(ack, _) => {
                if !self.inflight.ack(ack.pkid) {
                    tracing::debug!(connection_id = %self.client.id(), pkid = ack.pkid, "PUBACK for an unknown packet id: ignored.");
                }
            }
            Packet::PubRel(release, _) => {
                let reason = if self.awaiting_release.remove(&release.pkid) {
                    PubCompReason::Success
                } else {
                    PubCompReason::PacketIdentifierNotFound
                };
                self.send(Packet::PubComp(
                    PubComp {
                        pkid: release.pkid,
                        reason,
                    },
                    None,
                ));
            }
            // Only QoS 0 and 1 messages are sent: these acknowledge nothing.
            Packet::PubRec(..) | Packet::PubComp(..) => {
                tracing::debug!(connection_id = %self.client.id(), "QoS 2 acknowledgement for nothing sent: ignored.");
            }
            Packet::Subscribe(subscribe, _) => self.subscribe(subscribe),
            Packet::Unsubscribe(unsubscribe, _) => self.unsubscribe(unsubscribe),
            Packet::PingReq(_) => self.send(Packet::PingResp(PingResp)),
            Packet::Disconnect(..) => return Err(CloseCause::Remote),
            other => {
                tracing::warn!(connection_id = %self.client.id(), packet = ?other, "Unexpected packet: connection closed.");
                return Err(CloseCause::ProtocolError);
            }
        }
        Ok(())
    }

    fn send(&self, packet: Packet) {
        self.client.send(Outgoing::Control(Box::new(packet)));
    }

    fn publish(
        &mut self,
        publish: Publish,
        properties: Option<PublishProperties>,
        qos: u8,
        pkid: u16,
        running: &mut Running,
    ) -> Result<(), CloseCause> {
        let Ok(topic) = std::str::from_utf8(&publish.topic) else {
            tracing::warn!(connection_id = %self.client.id(), "PUBLISH topic is not UTF-8: connection closed.");
            return Err(CloseCause::Malformed);
        };
        if topic.is_empty() {
            // Topic aliases are not offered: an empty topic is an error.
            tracing::warn!(connection_id = %self.client.id(), "PUBLISH without topic: connection closed.");
            return Err(CloseCause::ProtocolError);
        }
        if qos == 2 && self.awaiting_release.contains(&pkid) {
            // A QoS 2 message taken already, sent again: acknowledge, never run twice.
            self.acknowledge(qos, pkid, Ack::Success);
            return Ok(());
        }
        let protocol = self.protocol;
        let route = protocol
            .rules()
            .publish(topic, |topic| protocol.channels().contains(topic));
        let ack = match route {
            PublishRoute::Request => {
                let (response_topic, correlation) = properties
                    .map(|properties| (properties.response_topic, properties.correlation_data))
                    .unwrap_or_default();
                let response_topic = match response_topic {
                    Some(topic) if crate::topics::valid_topic_name(&topic) => Arc::from(topic),
                    Some(topic) => {
                        tracing::warn!(connection_id = %self.client.id(), %topic, "Invalid response topic: answering on the default one.");
                        protocol.rules().response_topic().clone()
                    }
                    None => protocol.rules().response_topic().clone(),
                };
                running.push(execute(
                    self.router.clone(),
                    self.client.id(),
                    publish.payload,
                    response_topic,
                    correlation,
                ));
                Ack::Success
            }
            PublishRoute::PubSub => {
                let recipients = protocol
                    .pub_sub()
                    .publish(topic, &publish.payload, qos, self.client.id());
                if recipients == 0 {
                    Ack::NoSubscriber
                } else {
                    Ack::Success
                }
            }
            PublishRoute::Refused(refusal) => {
                tracing::warn!(connection_id = %self.client.id(), %topic, ?refusal, "PUBLISH refused.");
                if self.codec.version() == Version::V311 {
                    // MQTT 3.1.1 cannot refuse a PUBLISH: close, as Kuzzle does.
                    return Err(CloseCause::NotAuthorized);
                }
                Ack::Refused(refusal)
            }
        };
        self.acknowledge(qos, pkid, ack);
        Ok(())
    }

    /// PUBACK (QoS 1) or PUBREC (QoS 2) for a PUBLISH, with its reason (MQTT 5).
    fn acknowledge(&mut self, qos: u8, pkid: u16, ack: Ack) {
        match qos {
            1 => {
                let reason = match ack {
                    Ack::Success => PubAckReason::Success,
                    Ack::NoSubscriber => PubAckReason::NoMatchingSubscribers,
                    Ack::Refused(Refusal::InvalidTopic) => PubAckReason::TopicNameInvalid,
                    Ack::Refused(_) => PubAckReason::NotAuthorized,
                };
                self.send(Packet::PubAck(PubAck { pkid, reason }, None));
            }
            2 => {
                let reason = match ack {
                    Ack::Success | Ack::NoSubscriber => {
                        self.awaiting_release.insert(pkid);
                        if ack == Ack::Success {
                            PubRecReason::Success
                        } else {
                            PubRecReason::NoMatchingSubscribers
                        }
                    }
                    Ack::Refused(Refusal::InvalidTopic) => PubRecReason::TopicNameInvalid,
                    Ack::Refused(_) => PubRecReason::NotAuthorized,
                };
                self.send(Packet::PubRec(PubRec { pkid, reason }, None));
            }
            _ => {}
        }
    }

    fn subscribe(&mut self, subscribe: Subscribe) {
        let protocol = self.protocol;
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        for filter in subscribe.filters {
            let granted = if filter.qos == QoS::AtMostOnce {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            let qos = granted as u8;
            let (held, known) = self.client.grants(&filter.path);
            let route = if !known
                && !self.pub_sub_filters.contains(&filter.path)
                && held + self.pub_sub_filters.len() >= MAX_FILTERS
            {
                SubscribeRoute::Refused(Refusal::Quota)
            } else {
                protocol.rules().subscribe(&filter.path)
            };
            let code = match route {
                SubscribeRoute::Exact { pub_sub } => {
                    self.client.grant(&filter.path, qos);
                    if pub_sub {
                        protocol
                            .pub_sub()
                            .subscribe(&filter.path, self.client.clone(), qos, filter.nolocal);
                        self.pub_sub_filters.insert(filter.path);
                    }
                    SubscribeReasonCode::Success(granted)
                }
                SubscribeRoute::Wildcard => {
                    protocol
                        .pub_sub()
                        .subscribe(&filter.path, self.client.clone(), qos, filter.nolocal);
                    self.pub_sub_filters.insert(filter.path);
                    SubscribeReasonCode::Success(granted)
                }
                SubscribeRoute::Refused(refusal) => {
                    tracing::warn!(connection_id = %self.client.id(), filter = %filter.path, ?refusal, "Subscription refused.");
                    match (self.codec.version(), refusal) {
                        (Version::V311, _) => SubscribeReasonCode::Failure,
                        (Version::V5, Refusal::NotAuthorized) => SubscribeReasonCode::NotAuthorized,
                        (Version::V5, Refusal::InvalidTopic) => SubscribeReasonCode::TopicFilterInvalid,
                        (Version::V5, Refusal::WildcardsNotSupported) => {
                            SubscribeReasonCode::WildcardSubscriptionsNotSupported
                        }
                        (Version::V5, Refusal::SharedNotSupported) => {
                            SubscribeReasonCode::SharedSubscriptionsNotSupported
                        }
                        (Version::V5, Refusal::Quota) => SubscribeReasonCode::QuotaExceeded,
                    }
                }
            };
            codes.push(code);
        }
        self.send(Packet::SubAck(
            SubAck {
                pkid: subscribe.pkid,
                return_codes: codes,
            },
            None,
        ));
    }

    fn unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let mut reasons = Vec::with_capacity(unsubscribe.filters.len());
        for filter in &unsubscribe.filters {
            let exact = self.client.revoke(filter);
            let pub_sub = self.pub_sub_filters.remove(filter)
                && self.protocol.pub_sub().unsubscribe(filter, self.client.id());
            reasons.push(if exact || pub_sub {
                UnsubAckReason::Success
            } else {
                UnsubAckReason::NoSubscriptionExisted
            });
        }
        self.send(Packet::UnsubAck(
            UnsubAck {
                pkid: unsubscribe.pkid,
                reasons,
            },
            None,
        ));
    }
}
