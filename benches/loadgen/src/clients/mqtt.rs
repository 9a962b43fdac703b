//! MQTT 3.1.1 clients, QoS 0 only, on a small codec of our own: a fan-out
//! subscriber and a fan-out publisher, for protoplex's Kuzzle API over MQTT
//! and for a plain broker (Mosquitto).
//!
//! Only what the fan-out needs is encoded (CONNECT, SUBSCRIBE, PUBLISH QoS 0,
//! DISCONNECT) and decoded (CONNACK, SUBACK, PUBLISH of any QoS, the rest
//! skipped). A PUBLISH's payload is a slice of the bytes read, never copied,
//! so a subscriber costs about what a WebSocket one does: rumqttc's event
//! loop allocates a topic `String` per message and goes through its own
//! request channel and state machine, which is the load generator's CPU the
//! server under test no longer gets on a small machine.
//!
//! - **protoplex** ([`Dialect::Kuzzle`]): a subscriber PUBLISHes a
//!   `realtime:subscribe` request to [`REQUEST_TOPIC`], reads the answer on
//!   [`RESPONSE_TOPIC`], then SUBSCRIBEs at QoS 0 to the channel it names, as
//!   Kuzzle SDKs do; notifications arrive on that topic. The publisher sends
//!   `realtime:publish` requests to [`REQUEST_TOPIC`] at QoS 0 and reads
//!   their answers (status 200) from [`RESPONSE_TOPIC`].
//! - **a broker** ([`Dialect::Raw`]): subscribers SUBSCRIBE to [`RAW_TOPIC`]
//!   at QoS 0, the publisher PUBLISHes the bodies there at QoS 0; nothing
//!   comes back to it.
//!
//! Keep-alive is 0 (off): the runs are short and nothing pings.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use super::ws::{PATIENCE, publish_request, subscribe_request};
use super::{Acks, ClientError, Dialect};

/// Topic of protoplex's requests.
pub const REQUEST_TOPIC: &str = "Kuzzle/request";
/// Topic of protoplex's answers.
pub const RESPONSE_TOPIC: &str = "Kuzzle/response";
/// Topic of the fan-out on a plain broker: `INDEX/COLLECTION`.
pub const RAW_TOPIC: &str = "bench/fanout";

/// Largest packet accepted from a server.
pub const MAX_PACKET: usize = 4 << 20;

/// Bytes read at once by a busy connection.
const READ_CHUNK: usize = 64 * 1024;

/// MQTT packet types (the high nibble of the first byte).
mod kind {
    pub(super) const CONNECT: u8 = 1;
    pub(super) const CONNACK: u8 = 2;
    pub(super) const PUBLISH: u8 = 3;
    pub(super) const SUBSCRIBE: u8 = 8;
    pub(super) const SUBACK: u8 = 9;
    pub(super) const DISCONNECT: u8 = 14;
}

/// A packet received from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNACK: its return code (0: accepted).
    ConnAck {
        /// Return code.
        code: u8,
    },
    /// SUBACK: its packet id and one return code per topic (0x80: refused).
    SubAck {
        /// Packet id of the SUBSCRIBE.
        packet_id: u16,
        /// Granted QoS or 0x80, per topic.
        codes: Bytes,
    },
    /// PUBLISH: its topic and payload.
    Publish {
        /// Topic name.
        topic: Bytes,
        /// Application message.
        payload: Bytes,
    },
    /// Any other packet (PINGRESP, PUBACK...), by type.
    Other {
        /// Packet type, 1..=15.
        kind: u8,
    },
}

/// Why bytes from the server are not MQTT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A remaining length over 4 bytes.
    #[error("malformed remaining length")]
    Length,
    /// A packet larger than [`MAX_PACKET`].
    #[error("packet of {0} bytes, more than the {MAX_PACKET} accepted")]
    TooLarge(usize),
    /// A packet shorter than its fields.
    #[error("truncated {0} packet")]
    Truncated(&'static str),
}

impl From<CodecError> for ClientError {
    fn from(error: CodecError) -> Self {
        ClientError::Unexpected(format!("MQTT: {error}"))
    }
}

/// Appends MQTT's variable-length "remaining length".
fn put_length(out: &mut BytesMut, mut length: usize) {
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if length == 0 {
            return;
        }
    }
}

/// Appends a UTF-8 string field (2-byte length, then the bytes).
fn put_string(out: &mut BytesMut, text: &[u8]) {
    out.put_u16(text.len().min(usize::from(u16::MAX)) as u16);
    out.put_slice(&text[..text.len().min(usize::from(u16::MAX))]);
}

/// CONNECT, MQTT 3.1.1, clean session, no will, no credentials.
pub fn encode_connect(out: &mut BytesMut, client_id: &str, keep_alive: u16) {
    out.put_u8(kind::CONNECT << 4);
    put_length(out, 10 + 2 + client_id.len());
    put_string(out, b"MQTT");
    out.put_u8(4); // protocol level: 3.1.1
    out.put_u8(0x02); // clean session
    out.put_u16(keep_alive);
    put_string(out, client_id.as_bytes());
}

/// SUBSCRIBE to one topic filter at `qos`.
pub fn encode_subscribe(out: &mut BytesMut, packet_id: u16, topic: &str, qos: u8) {
    out.put_u8((kind::SUBSCRIBE << 4) | 0x02);
    put_length(out, 2 + 2 + topic.len() + 1);
    out.put_u16(packet_id);
    put_string(out, topic.as_bytes());
    out.put_u8(qos);
}

/// PUBLISH at QoS 0, not retained.
pub fn encode_publish(out: &mut BytesMut, topic: &str, payload: &[u8]) {
    out.put_u8(kind::PUBLISH << 4);
    put_length(out, 2 + topic.len() + payload.len());
    put_string(out, topic.as_bytes());
    out.put_slice(payload);
}

/// DISCONNECT.
pub fn encode_disconnect(out: &mut BytesMut) {
    out.put_u8(kind::DISCONNECT << 4);
    out.put_u8(0);
}

/// Takes the first whole packet off `buffer`; `Ok(None)` until one is complete.
pub fn decode(buffer: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
    let Some(&first) = buffer.first() else {
        return Ok(None);
    };
    let mut length = 0usize;
    let mut header = 1;
    loop {
        let Some(&byte) = buffer.get(header) else {
            return Ok(None);
        };
        if header > 4 {
            return Err(CodecError::Length);
        }
        length |= usize::from(byte & 0x7f) << (7 * (header - 1));
        header += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    if length > MAX_PACKET {
        return Err(CodecError::TooLarge(length));
    }
    if buffer.len() < header + length {
        buffer.reserve(header + length - buffer.len());
        return Ok(None);
    }
    let mut body = buffer.split_to(header + length).freeze();
    body.advance(header);
    let packet_kind = first >> 4;
    Ok(Some(match packet_kind {
        kind::CONNACK => {
            let code = *body.get(1).ok_or(CodecError::Truncated("CONNACK"))?;
            Packet::ConnAck { code }
        }
        kind::SUBACK => {
            if body.len() < 2 {
                return Err(CodecError::Truncated("SUBACK"));
            }
            let packet_id = body.get_u16();
            Packet::SubAck {
                packet_id,
                codes: body,
            }
        }
        kind::PUBLISH => {
            if body.len() < 2 {
                return Err(CodecError::Truncated("PUBLISH"));
            }
            let topic_length = usize::from(body.get_u16());
            let qos = (first >> 1) & 0x03;
            let id_length = if qos > 0 { 2 } else { 0 };
            if body.len() < topic_length + id_length {
                return Err(CodecError::Truncated("PUBLISH"));
            }
            let topic = body.split_to(topic_length);
            body.advance(id_length);
            Packet::Publish { topic, payload: body }
        }
        kind => Packet::Other { kind },
    }))
}

/// A client id no other connection of this process uses.
fn client_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "lg-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The reading side of a connection: a buffer and the socket.
pub struct Reader {
    read: OwnedReadHalf,
    buffer: BytesMut,
}

impl Reader {
    /// The next packet; an error when the connection ends.
    pub async fn next(&mut self) -> Result<Packet, ClientError> {
        loop {
            if let Some(packet) = decode(&mut self.buffer)? {
                return Ok(packet);
            }
            if self.buffer.capacity() - self.buffer.len() < READ_CHUNK / 4 {
                self.buffer.reserve(READ_CHUNK);
            }
            if self.read.read_buf(&mut self.buffer).await? == 0 {
                return Err(ClientError::Closed(String::new()));
            }
        }
    }

    /// The next packet within [`PATIENCE`].
    async fn next_in_time(&mut self, what: &'static str) -> Result<Packet, ClientError> {
        tokio::time::timeout(PATIENCE, self.next())
            .await
            .map_err(|_| ClientError::Timeout(what))?
    }
}

/// A connected MQTT session (CONNACK received).
struct Session {
    reader: Reader,
    write: OwnedWriteHalf,
    out: BytesMut,
}

impl Session {
    /// Connects to `server` from `source` (any port) and waits for CONNACK.
    async fn connect(server: SocketAddr, source: Option<IpAddr>) -> Result<Self, ClientError> {
        let connecting = async {
            let socket = if server.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            if let Some(source) = source {
                socket.bind(SocketAddr::new(source, 0))?;
            }
            let tcp: TcpStream = socket.connect(server).await?;
            tcp.set_nodelay(true)?;
            Ok::<_, ClientError>(tcp)
        };
        let tcp = tokio::time::timeout(PATIENCE, connecting)
            .await
            .map_err(|_| ClientError::Timeout("MQTT connection"))??;
        let (read, write) = tcp.into_split();
        let mut session = Self {
            reader: Reader {
                read,
                buffer: BytesMut::with_capacity(READ_CHUNK),
            },
            write,
            out: BytesMut::with_capacity(1024),
        };
        encode_connect(&mut session.out, &client_id(), 0);
        session.flush().await?;
        loop {
            match session.reader.next_in_time("MQTT CONNACK").await? {
                Packet::ConnAck { code: 0 } => return Ok(session),
                Packet::ConnAck { code } => {
                    return Err(ClientError::Unexpected(format!("CONNACK return code {code}")));
                }
                _ => continue,
            }
        }
    }

    /// Writes what was encoded into `out`.
    async fn flush(&mut self) -> Result<(), ClientError> {
        self.write.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// SUBSCRIBEs to `topic` at QoS 0 and waits for it to be granted.
    async fn subscribe(&mut self, topic: &str) -> Result<(), ClientError> {
        encode_subscribe(&mut self.out, 1, topic, 0);
        self.flush().await?;
        loop {
            match self.reader.next_in_time("MQTT SUBACK").await? {
                Packet::SubAck { packet_id: 1, codes } => {
                    return match codes.first() {
                        Some(code) if *code < 0x80 => Ok(()),
                        code => Err(ClientError::Unexpected(format!(
                            "SUBSCRIBE {topic} refused ({code:?})"
                        ))),
                    };
                }
                _ => continue,
            }
        }
    }

    /// Sends `request` to [`REQUEST_TOPIC`] and returns the answer with its
    /// `requestId` from [`RESPONSE_TOPIC`].
    async fn query(&mut self, request: Value) -> Result<Value, ClientError> {
        let id = request
            .get("requestId")
            .cloned()
            .ok_or_else(|| ClientError::Unexpected("request without requestId".into()))?;
        encode_publish(&mut self.out, REQUEST_TOPIC, request.to_string().as_bytes());
        self.flush().await?;
        loop {
            let Packet::Publish { topic, payload } = self.reader.next_in_time("MQTT answer").await? else {
                continue;
            };
            if topic != RESPONSE_TOPIC.as_bytes() {
                continue;
            }
            let Ok(answer) = serde_json::from_slice::<Value>(&payload) else {
                continue;
            };
            if answer.get("requestId") == Some(&id) {
                return Ok(answer);
            }
        }
    }

    /// Sends DISCONNECT and closes (bounded in time).
    async fn close(mut self) {
        encode_disconnect(&mut self.out);
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = self.flush().await;
            let _ = self.write.shutdown().await;
        })
        .await;
    }
}

/// Connects to `server` (CONNECT, CONNACK received) and returns the two
/// halves: the packet reader and the socket to write encoded packets to.
pub async fn open(server: SocketAddr) -> Result<(Reader, OwnedWriteHalf), ClientError> {
    let session = Session::connect(server, None).await?;
    Ok((session.reader, session.write))
}

/// A connection that receives the fan-out's messages.
pub struct Subscriber {
    session: Session,
}

impl Subscriber {
    /// Connects and subscribes: on protoplex with `realtime:subscribe` then a
    /// SUBSCRIBE to the channel's topic; on a broker to [`RAW_TOPIC`].
    pub async fn connect(
        server: SocketAddr,
        source: Option<IpAddr>,
        dialect: Dialect,
    ) -> Result<Self, ClientError> {
        let mut session = Session::connect(server, source).await?;
        match dialect {
            Dialect::Kuzzle => {
                let answer = session.query(subscribe_request("subscribe")).await?;
                let channel = match (answer.get("status").and_then(Value::as_u64), channel_of(&answer)) {
                    (Some(200), Some(channel)) => channel.to_owned(),
                    _ => return Err(ClientError::Unexpected(format!("subscribe answered {answer}"))),
                };
                session.subscribe(&channel).await?;
            }
            Dialect::Raw => session.subscribe(RAW_TOPIC).await?,
        }
        Ok(Self { session })
    }

    /// The next message's payload (answers on [`RESPONSE_TOPIC`] skipped); an
    /// error when the connection ends.
    pub async fn next(&mut self) -> Result<Bytes, ClientError> {
        loop {
            if let Packet::Publish { topic, payload } = self.session.reader.next().await?
                && topic != RESPONSE_TOPIC.as_bytes()
            {
                return Ok(payload);
            }
        }
    }

    /// Disconnects politely (bounded in time).
    pub async fn close(self) {
        self.session.close().await;
    }
}

/// The channel named by a `realtime:subscribe` answer.
pub fn channel_of(answer: &Value) -> Option<&str> {
    answer.get("result")?.get("channel")?.as_str()
}

/// The part of a Kuzzle answer the publisher checks.
#[derive(Deserialize)]
struct Status {
    status: u16,
}

/// A connection that publishes the fan-out's messages; on protoplex a task
/// reads and checks their answers.
pub struct Publisher {
    write: OwnedWriteHalf,
    out: BytesMut,
    dialect: Dialect,
    acks: Arc<Acks>,
    reader: JoinHandle<()>,
}

impl Publisher {
    /// Connects; from now on a task reads what the server sends.
    pub async fn connect(server: SocketAddr, dialect: Dialect) -> Result<Self, ClientError> {
        let Session { reader, write, out } = Session::connect(server, None).await?;
        let acks = Arc::new(Acks::default());
        let reader = tokio::spawn(read_answers(reader, acks.clone()));
        Ok(Self {
            write,
            out,
            dialect,
            acks,
            reader,
        })
    }

    /// The answers counted so far.
    pub fn acks(&self) -> &Arc<Acks> {
        &self.acks
    }

    /// Publishes `body` (a JSON object) as message `seq`, at QoS 0.
    pub async fn send(&mut self, seq: u64, body: &str) -> Result<(), ClientError> {
        self.out.clear();
        match self.dialect {
            Dialect::Kuzzle => encode_publish(
                &mut self.out,
                REQUEST_TOPIC,
                publish_request(seq, body).as_bytes(),
            ),
            Dialect::Raw => encode_publish(&mut self.out, RAW_TOPIC, body.as_bytes()),
        }
        self.write.write_all(&self.out).await?;
        Ok(())
    }

    /// On protoplex, waits (at most `patience`) for the answers to the `sent`
    /// messages; then disconnects. Returns how many answers were missing (a
    /// broker sends none: 0).
    pub async fn finish(mut self, sent: u64, patience: Duration) -> u64 {
        let expected = match self.dialect {
            Dialect::Kuzzle => sent,
            Dialect::Raw => 0,
        };
        let deadline = tokio::time::Instant::now() + patience;
        while self.acks.total() < expected && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let missing = expected.saturating_sub(self.acks.total());
        self.reader.abort();
        let _ = (&mut self.reader).await;
        self.out.clear();
        encode_disconnect(&mut self.out);
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = self.write.write_all(&self.out).await;
            let _ = self.write.shutdown().await;
        })
        .await;
        missing
    }
}

/// Counts the answers on [`RESPONSE_TOPIC`]: status 200 or a failure.
async fn read_answers(mut reader: Reader, acks: Arc<Acks>) {
    loop {
        let packet = match reader.next().await {
            Ok(packet) => packet,
            Err(error) => {
                acks.first_failure.lock().await.get_or_insert(error.to_string());
                return;
            }
        };
        let Packet::Publish { topic, payload } = packet else {
            continue;
        };
        if topic != RESPONSE_TOPIC.as_bytes() {
            continue;
        }
        let ok = matches!(serde_json::from_slice::<Status>(&payload), Ok(answer) if answer.status == 200);
        if !ok {
            let text = String::from_utf8_lossy(&payload[..payload.len().min(300)]).into_owned();
            acks.first_failure.lock().await.get_or_insert(text);
        }
        let counter = if ok { &acks.ok } else { &acks.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::{COLLECTION, INDEX};

    fn decode_all(bytes: &[u8]) -> Vec<Packet> {
        let mut buffer = BytesMut::from(bytes);
        let mut packets = Vec::new();
        while let Some(packet) = decode(&mut buffer).expect("valid") {
            packets.push(packet);
        }
        assert!(buffer.is_empty(), "{buffer:?} left");
        packets
    }

    #[test]
    fn raw_topic_is_index_slash_collection() {
        assert_eq!(RAW_TOPIC, format!("{INDEX}/{COLLECTION}"));
    }

    #[test]
    fn connect_is_mqtt_3_1_1() {
        let mut out = BytesMut::new();
        encode_connect(&mut out, "abc", 0);
        assert_eq!(
            &out[..],
            &[
                0x10, 15, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 0, 0, 3, b'a', b'b', b'c'
            ][..]
        );
    }

    #[test]
    fn subscribe_and_disconnect() {
        let mut out = BytesMut::new();
        encode_subscribe(&mut out, 1, "a/b", 0);
        assert_eq!(&out[..], &[0x82, 8, 0, 1, 0, 3, b'a', b'/', b'b', 0][..]);
        out.clear();
        encode_disconnect(&mut out);
        assert_eq!(&out[..], &[0xe0, 0][..]);
    }

    #[test]
    fn publish_round_trips_at_every_length_size() {
        for size in [0, 10, 200, 20_000, 3_000_000] {
            let payload = vec![b'x'; size];
            let mut out = BytesMut::new();
            encode_publish(&mut out, "t/1", &payload);
            let header = match 2 + 3 + size {
                0..=127 => 2,
                128..=16_383 => 3,
                16_384..=2_097_151 => 4,
                _ => 5,
            };
            assert_eq!(out.len(), header + 2 + 3 + size);
            assert_eq!(
                decode_all(&out),
                vec![Packet::Publish {
                    topic: Bytes::from_static(b"t/1"),
                    payload: Bytes::from(payload)
                }]
            );
        }
    }

    #[test]
    fn packets_are_taken_one_by_one_even_split() {
        let mut wire = BytesMut::new();
        wire.put_slice(&[0x20, 2, 0, 0]); // CONNACK accepted
        wire.put_slice(&[0x90, 3, 0, 1, 0x80]); // SUBACK refused
        wire.put_slice(&[0x32, 7, 0, 1, b't', 0, 9, b'h', b'i']); // PUBLISH QoS 1, id 9
        wire.put_slice(&[0xd0, 0]); // PINGRESP
        let expected = vec![
            Packet::ConnAck { code: 0 },
            Packet::SubAck {
                packet_id: 1,
                codes: Bytes::from_static(&[0x80]),
            },
            Packet::Publish {
                topic: Bytes::from_static(b"t"),
                payload: Bytes::from_static(b"hi"),
            },
            Packet::Other { kind: 13 },
        ];
        assert_eq!(decode_all(&wire), expected);
        // Fed one byte at a time: the same packets, none before it is whole.
        let mut buffer = BytesMut::new();
        let mut packets = Vec::new();
        for byte in wire.iter() {
            buffer.put_u8(*byte);
            while let Some(packet) = decode(&mut buffer).expect("valid") {
                packets.push(packet);
            }
        }
        assert_eq!(packets, expected);
    }

    #[test]
    fn malformed_packets_are_errors() {
        let mut buffer = BytesMut::from(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01][..]);
        assert_eq!(decode(&mut buffer), Err(CodecError::Length));
        let mut buffer = BytesMut::from(&[0x30, 0xff, 0xff, 0xff, 0x7f][..]);
        assert!(matches!(decode(&mut buffer), Err(CodecError::TooLarge(_))));
        let mut buffer = BytesMut::from(&[0x30, 3, 0, 5, b'a'][..]);
        assert_eq!(decode(&mut buffer), Err(CodecError::Truncated("PUBLISH")));
        let mut buffer = BytesMut::from(&[0x20, 1, 0][..]);
        assert_eq!(decode(&mut buffer), Err(CodecError::Truncated("CONNACK")));
    }

    #[test]
    fn channel_of_a_subscribe_answer() {
        let answer: Value =
            serde_json::from_str(r#"{"status":200,"result":{"roomId":"r","channel":"r-abc"}}"#)
                .expect("JSON");
        assert_eq!(channel_of(&answer), Some("r-abc"));
        assert_eq!(channel_of(&Value::Null), None);
    }
}
