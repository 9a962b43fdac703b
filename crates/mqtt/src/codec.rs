//! MQTT packets on the wire: rumqttd's MQTT 3.1.1 ([`V4`]) and 5.0 ([`V5`])
//! codecs behind one [`Codec`] chosen per connection, plus what they leave
//! out.
//!
//! Before handing a frame to rumqttd, [`Codec::read`] parses its fixed header
//! itself: a packet larger than the limit is refused from its first bytes,
//! before its body is buffered; packet types a client never sends are refused
//! (rumqttd's v5 reader would panic on some of them); the QoS and packet id of
//! a PUBLISH, private fields in rumqttd 0.20, are read from the frame. Outgoing
//! PUBLISH packets are encoded here for the same reason (rumqttd cannot build a
//! QoS 1 PUBLISH from outside its crate); every other packet is written by
//! rumqttd.

use bytes::{BufMut, BytesMut};
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::v5::V5;
use rumqttd::protocol::{self, Packet, Protocol as _};

/// The MQTT version a connection speaks, from its CONNECT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

/// Control packet types (the high nibble of a packet's first byte).
pub(crate) mod kind {
    pub(crate) const CONNECT: u8 = 1;
    pub(crate) const PUBLISH: u8 = 3;
    pub(crate) const PUBACK: u8 = 4;
    pub(crate) const PUBREC: u8 = 5;
    pub(crate) const PUBREL: u8 = 6;
    pub(crate) const PUBCOMP: u8 = 7;
    pub(crate) const SUBSCRIBE: u8 = 8;
    pub(crate) const UNSUBSCRIBE: u8 = 10;
    pub(crate) const PINGREQ: u8 = 12;
    pub(crate) const DISCONNECT: u8 = 14;
}

/// Largest remaining length the MQTT variable byte integer can carry.
const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Why bytes could not be read or written as MQTT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CodecError {
    /// A packet larger than the limit; its body was not read.
    #[error("packet of {size} bytes is over the {limit} bytes limit")]
    TooLarge {
        /// The packet's remaining length.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A packet type a client does not send to a server (or a reserved one).
    #[error("unexpected packet type {0}")]
    UnexpectedType(u8),
    /// Bytes that do not make an MQTT packet.
    #[error("malformed packet: {0}")]
    Malformed(String),
}

impl From<protocol::Error> for CodecError {
    fn from(error: protocol::Error) -> Self {
        Self::Malformed(error.to_string())
    }
}

/// A packet's fixed header, parsed from the first bytes of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The packet's first byte (type and flags).
    pub(crate) byte1: u8,
    /// Bytes of the fixed header (2 to 5).
    pub(crate) header_len: usize,
    /// Bytes after the fixed header.
    pub(crate) remaining_len: usize,
}

impl Header {
    /// The control packet type.
    pub(crate) fn kind(&self) -> u8 {
        self.byte1 >> 4
    }

    /// Bytes of the whole packet.
    pub(crate) fn frame_len(&self) -> usize {
        self.header_len + self.remaining_len
    }
}

/// Parses the fixed header at the start of `buffer`: `None` until enough
/// bytes arrived to know it.
pub(crate) fn peek_header(buffer: &[u8]) -> Result<Option<Header>, CodecError> {
    let Some(&byte1) = buffer.first() else {
        return Ok(None);
    };
    let mut remaining_len = 0_usize;
    for (index, &byte) in buffer.iter().skip(1).take(4).enumerate() {
        remaining_len |= usize::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(Some(Header {
                byte1,
                header_len: index + 2,
                remaining_len,
            }));
        }
    }
    if buffer.len() >= 5 {
        return Err(CodecError::Malformed("remaining length over 4 bytes".into()));
    }
    Ok(None)
}

/// A packet read from a client, with what rumqttd keeps private.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Received {
    /// The packet.
    pub(crate) packet: Packet,
    /// A PUBLISH's QoS (0 for other packets).
    pub(crate) qos: u8,
    /// A PUBLISH's packet id (0 at QoS 0 and for other packets).
    pub(crate) pkid: u16,
}

/// The protocol level a CONNECT frame asks for: `(protocol name, level)`.
pub(crate) fn connect_level<'a>(frame: &'a [u8], header: &Header) -> Option<(&'a [u8], u8)> {
    let body = frame.get(header.header_len..header.frame_len())?;
    let name_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let name = body.get(2..2 + name_len)?;
    let level = *body.get(2 + name_len)?;
    Some((name, level))
}

/// rumqttd's codec for one version.
#[derive(Debug, Clone)]
pub(crate) enum Codec {
    /// MQTT 3.1.1.
    V311(V4),
    /// MQTT 5.0.
    V5(V5),
}

impl Codec {
    /// The codec of `version`.
    pub(crate) fn new(version: Version) -> Self {
        match version {
            Version::V311 => Self::V311(V4),
            Version::V5 => Self::V5(V5),
        }
    }

    /// The version it speaks.
    pub(crate) fn version(&self) -> Version {
        match self {
            Self::V311(_) => Version::V311,
            Self::V5(_) => Version::V5,
        }
    }

    /// Reads the next packet from `buffer`: `None` until it is whole (then
    /// `buffer` has room reserved for the rest). A packet whose remaining
    /// length is over `max_size` is refused from its fixed header.
    pub(crate) fn read(
        &mut self,
        buffer: &mut BytesMut,
        max_size: usize,
    ) -> Result<Option<Received>, CodecError> {
        let Some(header) = peek_header(buffer)? else {
            return Ok(None);
        };
        if header.remaining_len > max_size {
            return Err(CodecError::TooLarge {
                size: header.remaining_len,
                limit: max_size,
            });
        }
        if buffer.len() < header.frame_len() {
            buffer.reserve(header.frame_len() - buffer.len());
            return Ok(None);
        }
        let (qos, pkid) = match header.kind() {
            kind::PUBLISH => publish_qos_and_id(&buffer[..header.frame_len()], &header)?,
            kind::CONNECT
            | kind::PUBACK
            | kind::PUBREC
            | kind::PUBREL
            | kind::PUBCOMP
            | kind::SUBSCRIBE
            | kind::UNSUBSCRIBE
            | kind::PINGREQ
            | kind::DISCONNECT => (0, 0),
            other => {
                // Drop the frame: a caller that goes on reads the next one.
                let _ = buffer.split_to(header.frame_len());
                return Err(CodecError::UnexpectedType(other));
            }
        };
        // The whole frame is buffered: any error now, even "insufficient
        // bytes", means its content is wrong.
        let packet = match self {
            Self::V311(codec) => codec.read_mut(buffer, max_size)?,
            Self::V5(codec) => codec.read_mut(buffer, max_size)?,
        };
        Ok(Some(Received { packet, qos, pkid }))
    }

    /// Appends `packet` (anything but a PUBLISH, see [`Codec::publish`]) to `out`.
    /// MQTT 3.1.1 packets lose their MQTT 5 properties.
    pub(crate) fn write(&self, packet: Packet, out: &mut BytesMut) -> Result<(), CodecError> {
        match self {
            Self::V311(codec) => codec.write(without_properties(packet)?, out)?,
            Self::V5(codec) => codec.write(packet, out)?,
        };
        Ok(())
    }

    /// Appends a PUBLISH to `out` and returns its size: `qos` 0 or 1 (`pkid`
    /// is written at QoS 1), `correlation` as the MQTT 5 correlation data.
    pub(crate) fn publish(
        &self,
        publish: &OutgoingPublish<'_>,
        out: &mut BytesMut,
    ) -> Result<usize, CodecError> {
        let properties = self.publish_properties_len(publish);
        let remaining = self.publish_remaining_len(publish, properties)?;
        out.reserve(5 + remaining);
        out.put_u8(0x30 | (publish.qos.min(1) << 1));
        let start = out.len();
        write_varint(out, remaining);
        let header_len = 1 + out.len() - start;
        out.put_u16(publish.topic.len() as u16);
        out.put_slice(publish.topic.as_bytes());
        if publish.qos > 0 {
            out.put_u16(publish.pkid);
        }
        if let Some(properties) = properties {
            write_varint(out, properties);
            if let Some(data) = publish.correlation {
                out.put_u8(0x09);
                out.put_u16(data.len() as u16);
                out.put_slice(data);
            }
        }
        out.put_slice(publish.payload);
        Ok(header_len + remaining)
    }

    /// The size of the PUBLISH packet [`Codec::publish`] would write.
    pub(crate) fn publish_size(&self, publish: &OutgoingPublish<'_>) -> Result<usize, CodecError> {
        let remaining = self.publish_remaining_len(publish, self.publish_properties_len(publish))?;
        Ok(1 + varint_len(remaining) + remaining)
    }

    /// The length of a PUBLISH's properties (MQTT 5 only).
    fn publish_properties_len(&self, publish: &OutgoingPublish<'_>) -> Option<usize> {
        match self {
            Self::V311(_) => None,
            Self::V5(_) => Some(publish.correlation.map_or(0, |data| 3 + data.len())),
        }
    }

    fn publish_remaining_len(
        &self,
        publish: &OutgoingPublish<'_>,
        properties: Option<usize>,
    ) -> Result<usize, CodecError> {
        if publish.topic.len() > usize::from(u16::MAX)
            || publish
                .correlation
                .is_some_and(|data| data.len() > usize::from(u16::MAX))
        {
            return Err(CodecError::Malformed(
                "topic or correlation data over 65535 bytes".into(),
            ));
        }
        let mut remaining = 2 + publish.topic.len() + publish.payload.len();
        if publish.qos > 0 {
            remaining += 2;
        }
        if let Some(properties) = properties {
            remaining += varint_len(properties) + properties;
        }
        if remaining > MAX_REMAINING_LENGTH {
            return Err(CodecError::TooLarge {
                size: remaining,
                limit: MAX_REMAINING_LENGTH,
            });
        }
        Ok(remaining)
    }
}

/// A PUBLISH to encode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutgoingPublish<'a> {
    /// Its topic.
    pub(crate) topic: &'a str,
    /// Its payload.
    pub(crate) payload: &'a [u8],
    /// 0 or 1.
    pub(crate) qos: u8,
    /// Its packet id, at QoS 1.
    pub(crate) pkid: u16,
    /// MQTT 5 correlation data.
    pub(crate) correlation: Option<&'a [u8]>,
}

/// The QoS and packet id of a whole PUBLISH frame.
fn publish_qos_and_id(frame: &[u8], header: &Header) -> Result<(u8, u16), CodecError> {
    let qos = (header.byte1 >> 1) & 0b11;
    match qos {
        0 => Ok((0, 0)),
        1 | 2 => {
            let body = &frame[header.header_len..];
            let malformed = || CodecError::Malformed("PUBLISH too short for its packet id".into());
            let topic_len = usize::from(u16::from_be_bytes([
                *body.first().ok_or_else(malformed)?,
                *body.get(1).ok_or_else(malformed)?,
            ]));
            let id = body.get(2 + topic_len..4 + topic_len).ok_or_else(malformed)?;
            Ok((qos, u16::from_be_bytes([id[0], id[1]])))
        }
        _ => Err(CodecError::Malformed("PUBLISH with QoS 3".into())),
    }
}

/// `packet` without MQTT 5 properties, for rumqttd's MQTT 3.1.1 writer (which
/// panics on properties).
fn without_properties(packet: Packet) -> Result<Packet, CodecError> {
    Ok(match packet {
        Packet::ConnAck(connack, _) => Packet::ConnAck(connack, None),
        Packet::PubAck(puback, _) => Packet::PubAck(puback, None),
        Packet::PubRec(pubrec, _) => Packet::PubRec(pubrec, None),
        Packet::PubRel(pubrel, _) => Packet::PubRel(pubrel, None),
        Packet::PubComp(pubcomp, _) => Packet::PubComp(pubcomp, None),
        Packet::SubAck(suback, _) => Packet::SubAck(suback, None),
        Packet::UnsubAck(unsuback, _) => Packet::UnsubAck(unsuback, None),
        Packet::Disconnect(disconnect, _) => Packet::Disconnect(disconnect, None),
        Packet::PingResp(ping) => Packet::PingResp(ping),
        other => {
            return Err(CodecError::Malformed(format!(
                "a server does not write {other:?}"
            )));
        }
    })
}

fn write_varint(out: &mut BytesMut, mut value: usize) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if value == 0 {
            break;
        }
    }
}

fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rumqttd::protocol::{PubAck, PubAckReason};

    use super::*;

    fn publish<'a>(
        topic: &'a str,
        payload: &'a [u8],
        qos: u8,
        correlation: Option<&'a [u8]>,
    ) -> OutgoingPublish<'a> {
        OutgoingPublish {
            topic,
            payload,
            qos,
            pkid: if qos > 0 { 7 } else { 0 },
            correlation,
        }
    }

    #[test]
    fn headers_are_parsed_from_the_first_bytes() {
        assert_eq!(peek_header(&[]), Ok(None));
        assert_eq!(peek_header(&[0x30]), Ok(None));
        assert_eq!(peek_header(&[0x30, 0x80]), Ok(None));
        let header = peek_header(&[0x30, 0xC1, 0x02]).expect("valid").expect("whole");
        assert_eq!(
            (header.kind(), header.header_len, header.remaining_len),
            (3, 3, 321)
        );
        assert!(peek_header(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).is_err());
    }

    #[test]
    fn oversized_packets_are_refused_from_their_header() {
        let mut codec = Codec::new(Version::V311);
        // Announces 1 MB but only 3 bytes are there.
        let mut buffer = BytesMut::from(&[0x30, 0xC0, 0x84, 0x3D][..]);
        assert_eq!(
            codec.read(&mut buffer, 1000),
            Err(CodecError::TooLarge {
                size: 1_000_000,
                limit: 1000
            })
        );
    }

    #[test]
    fn client_packets_only() {
        let mut codec = Codec::new(Version::V5);
        // A CONNACK with a body, which rumqttd's v5 reader does not expect.
        let mut buffer = BytesMut::from(&[0x20, 0x03, 0x00, 0x00, 0x00, 0xC0, 0x00][..]);
        assert_eq!(codec.read(&mut buffer, 1000), Err(CodecError::UnexpectedType(2)));
        // The frame was dropped: the PINGREQ behind it reads.
        let received = codec.read(&mut buffer, 1000).expect("valid").expect("whole");
        assert!(matches!(received.packet, Packet::PingReq(_)));
    }

    #[test]
    fn publish_round_trips_through_rumqttd() {
        for version in [Version::V311, Version::V5] {
            for qos in [0, 1] {
                let correlation = (version == Version::V5).then_some(&b"corr"[..]);
                let outgoing = publish("a/b", b"{\"x\":1}", qos, correlation);
                let mut codec = Codec::new(version);
                let mut buffer = BytesMut::new();
                let size = codec.publish(&outgoing, &mut buffer).expect("encode");
                assert_eq!(size, buffer.len());
                assert_eq!(codec.publish_size(&outgoing), Ok(size));
                let received = codec.read(&mut buffer, 1000).expect("decode").expect("whole");
                assert!(buffer.is_empty());
                assert_eq!((received.qos, received.pkid), (qos, outgoing.pkid));
                let Packet::Publish(decoded, properties) = received.packet else {
                    panic!("not a publish");
                };
                assert_eq!(decoded.topic, Bytes::from_static(b"a/b"));
                assert_eq!(decoded.payload, Bytes::from_static(b"{\"x\":1}"));
                assert_eq!(
                    properties.and_then(|p| p.correlation_data),
                    correlation.map(Bytes::copy_from_slice)
                );
            }
        }
    }

    #[test]
    fn large_publish_uses_long_lengths() {
        let payload = vec![b'x'; 200_000];
        let codec = Codec::new(Version::V311);
        let mut buffer = BytesMut::new();
        let size = codec
            .publish(&publish("t", &payload, 0, None), &mut buffer)
            .expect("encode");
        assert_eq!(size, buffer.len());
        let header = peek_header(&buffer).expect("valid").expect("whole");
        assert_eq!(header.frame_len(), size);
    }

    #[test]
    fn version_3_1_1_drops_properties() {
        let codec = Codec::new(Version::V311);
        let mut buffer = BytesMut::new();
        let puback = Packet::PubAck(
            PubAck {
                pkid: 3,
                reason: PubAckReason::NotAuthorized,
            },
            None,
        );
        codec.write(puback, &mut buffer).expect("encode");
        assert_eq!(&buffer[..], &[0x40, 0x02, 0x00, 0x03]);
    }

    #[test]
    fn connect_level_is_peeked() {
        // CONNECT, "MQTT", level 5.
        let frame = [0x10, 0x07, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05];
        let header = peek_header(&frame).expect("valid").expect("whole");
        assert_eq!(connect_level(&frame, &header), Some((&b"MQTT"[..], 5)));
        assert_eq!(connect_level(&frame[..6], &header), None);
    }
}
