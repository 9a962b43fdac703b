//! Entry points for `fuzz/`, not a stable API.
//!
//! Public wrappers around the crate's internal packet path: the fixed-header
//! peek, the codec that filters frames before rumqttd's readers, the CONNECT
//! handshake with the CONNACK the server writes, and the topic rules. The fuzz
//! targets of `fuzz/` go through them, as the server does; nothing here is
//! meant for any other use, and it may change at any time.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::FutureExt as _;
use tokio::io::{AsyncRead, ReadBuf};

/// rumqttd's packet types, as the codec reads and writes them.
pub use rumqttd::protocol::{self as packets, Packet};

use crate::codec::{self, CodecError, OutgoingPublish, Version};
use crate::session::{self, ServerLimits};
use crate::topics::{self, PublishRoute, SubscribeRoute};

/// A packet's fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The packet's first byte (type and flags).
    pub byte1: u8,
    /// Bytes of the fixed header.
    pub header_len: usize,
    /// Bytes after the fixed header.
    pub remaining_len: usize,
}

/// Parses the fixed header at the start of `buffer` (`None` until it is whole).
pub fn peek_header(buffer: &[u8]) -> Result<Option<FrameHeader>, String> {
    codec::peek_header(buffer)
        .map(|header| {
            header.map(|header| FrameHeader {
                byte1: header.byte1,
                header_len: header.header_len,
                remaining_len: header.remaining_len,
            })
        })
        .map_err(|error| error.to_string())
}

/// Why the codec refused input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// A packet over the size limit (its body was not read).
    TooLarge,
    /// A packet type a client does not send (its frame was dropped).
    UnexpectedType(u8),
    /// Bytes that do not make a valid packet.
    Malformed(String),
}

impl From<CodecError> for ReadError {
    fn from(error: CodecError) -> Self {
        match error {
            CodecError::TooLarge { .. } => Self::TooLarge,
            CodecError::UnexpectedType(kind) => Self::UnexpectedType(kind),
            CodecError::Malformed(message) => Self::Malformed(message),
        }
    }
}

/// A packet read from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The packet.
    pub packet: Packet,
    /// A PUBLISH's QoS (0 for other packets).
    pub qos: u8,
    /// A PUBLISH's packet id (0 at QoS 0 and for other packets).
    pub pkid: u16,
}

/// The codec a connection holds once its CONNECT chose the version.
#[derive(Debug, Clone)]
pub struct Codec(codec::Codec);

impl Codec {
    /// The MQTT 5.0 codec when `v5`, else the MQTT 3.1.1 one.
    pub fn new(v5: bool) -> Self {
        Self(codec::Codec::new(if v5 { Version::V5 } else { Version::V311 }))
    }

    /// Whether it speaks MQTT 5.0.
    pub fn is_v5(&self) -> bool {
        self.0.version() == Version::V5
    }

    /// Reads the next packet from `buffer`, as a connection does (`None` until whole).
    pub fn read(&mut self, buffer: &mut BytesMut, max_size: usize) -> Result<Option<Received>, ReadError> {
        Ok(self.0.read(buffer, max_size)?.map(|received| Received {
            packet: received.packet,
            qos: received.qos,
            pkid: received.pkid,
        }))
    }

    /// Appends a packet other than PUBLISH to `out`.
    pub fn write(&self, packet: Packet, out: &mut BytesMut) -> Result<(), String> {
        self.0.write(packet, out).map_err(|error| error.to_string())
    }

    /// Appends a PUBLISH (QoS 0 or 1) to `out`; returns its size, which
    /// [`Codec::publish_size`] must have foretold.
    pub fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: u8,
        pkid: u16,
        correlation: Option<&[u8]>,
        out: &mut BytesMut,
    ) -> Result<(usize, usize), String> {
        let publish = OutgoingPublish {
            topic,
            payload,
            qos,
            pkid,
            correlation,
        };
        let size = self.0.publish_size(&publish).map_err(|error| error.to_string())?;
        let written = self.0.publish(&publish, out).map_err(|error| error.to_string())?;
        Ok((size, written))
    }
}

/// A client accepted by the handshake.
#[derive(Debug)]
pub struct Accepted {
    /// The connection's codec.
    pub codec: Codec,
    /// The client id (generated for an empty one).
    pub client_id: String,
    /// Whether the server chose the client id.
    pub assigned_id: bool,
    /// The keep-alive window.
    pub keep_alive: Option<Duration>,
    /// MQTT 5 receive maximum.
    pub receive_maximum: Option<u16>,
    /// MQTT 5 maximum packet size.
    pub max_packet_size: Option<usize>,
    /// The CONNACK the server writes, or why it could not be written.
    pub connack: Result<BytesMut, String>,
}

/// A client refused by the handshake.
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub error: String,
    /// The refusing CONNACK the server writes, when the error warrants one.
    pub connack: Option<Result<BytesMut, String>>,
}

/// Runs the CONNECT handshake over `input`, delivered at most `chunk` bytes
/// per read (its end is the client closing), with the server's limits; then
/// writes the CONNACK as the server does. `buffer` keeps the bytes read past
/// the CONNECT. Returns the outcome and how many bytes of `input` were read.
pub fn handshake(
    input: &[u8],
    chunk: usize,
    buffer: &mut BytesMut,
    max_packet: usize,
    wildcards: bool,
) -> (Result<Accepted, Refused>, usize) {
    let mut io = Chunks {
        rest: input,
        chunk: chunk.max(1),
    };
    let outcome = session::handshake(&mut io, buffer, max_packet).now_or_never();
    let read = input.len() - io.rest.len();
    let outcome = match outcome {
        None => Err(Refused {
            error: "the handshake did not complete on ready input".into(),
            connack: None,
        }),
        Some(Ok((codec, session))) => {
            let limits = ServerLimits {
                max_packet,
                wildcards,
            };
            let mut out = BytesMut::new();
            let connack = codec
                .write(session::accepted(codec.version(), &session, limits), &mut out)
                .map(|()| out)
                .map_err(|error| error.to_string());
            Ok(Accepted {
                codec: Codec(codec),
                client_id: session.client_id,
                assigned_id: session.assigned_id,
                keep_alive: session.keep_alive,
                receive_maximum: session.receive_maximum,
                max_packet_size: session.max_packet_size,
                connack,
            })
        }
        Some(Err((error, version))) => Err(Refused {
            error: error.to_string(),
            connack: error.connack(version).map(|(codec, packet)| {
                let mut out = BytesMut::new();
                codec
                    .write(packet, &mut out)
                    .map(|()| out)
                    .map_err(|error| error.to_string())
            }),
        }),
    };
    (outcome, read)
}

/// Ready input, handed out a chunk at a time.
struct Chunks<'a> {
    rest: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunks<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.chunk.min(buf.remaining()).min(self.rest.len());
        let (head, tail) = self.rest.split_at(n);
        buf.put_slice(head);
        self.rest = tail;
        Poll::Ready(Ok(()))
    }
}

/// Where a PUBLISH or a subscription goes, by the topic rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A PUBLISH to the request topic: a request to execute.
    Request,
    /// A PUBLISH for pub/sub subscribers.
    PubSub,
    /// A subscription to an exact topic (also joining pub/sub when `pub_sub`).
    Exact {
        /// Whether it receives pub/sub messages too.
        pub_sub: bool,
    },
    /// A wildcard subscription (pub/sub only).
    Wildcard,
    /// Refused.
    Refused,
}

/// The topic rules of a connection.
#[derive(Debug, Clone)]
pub struct Rules(topics::Rules);

impl Rules {
    /// The rules for these topics.
    pub fn new(request_topic: &str, response_topic: &str, allow_pub_sub: bool) -> Self {
        Self(topics::Rules::new(request_topic, response_topic, allow_pub_sub))
    }

    /// Where a PUBLISH on `topic` goes (`is_channel`: whether a topic is a realtime channel).
    pub fn publish(&self, topic: &str, is_channel: impl FnOnce(&str) -> bool) -> Route {
        match self.0.publish(topic, is_channel) {
            PublishRoute::Request => Route::Request,
            PublishRoute::PubSub => Route::PubSub,
            PublishRoute::Refused(_) => Route::Refused,
        }
    }

    /// What a subscription to `filter` becomes.
    pub fn subscribe(&self, filter: &str) -> Route {
        match self.0.subscribe(filter) {
            SubscribeRoute::Exact { pub_sub } => Route::Exact { pub_sub },
            SubscribeRoute::Wildcard => Route::Wildcard,
            SubscribeRoute::Refused(_) => Route::Refused,
        }
    }
}

/// Whether `topic` is a valid topic name.
pub fn valid_topic_name(topic: &str) -> bool {
    topics::valid_topic_name(topic)
}

/// Whether `filter` is a valid topic filter.
pub fn valid_filter(filter: &str) -> bool {
    topics::valid_filter(filter)
}

/// Whether `topic` matches `filter` (both valid).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    topics::matches(filter, topic)
}
