//! The start of a connection: its CONNECT packet, the MQTT version it picks,
//! the session it asks for, and the CONNACK that answers it.
//!
//! The version comes from the CONNECT's variable header (protocol name `MQTT`,
//! level 4 for 3.1.1 or 5 for 5.0), read before rumqttd's matching codec
//! parses the packet; the connection then keeps that codec. Sessions are never
//! persisted: every CONNACK says `session_present = false`.

use std::time::Duration;

use bytes::BytesMut;
use rumqttd::protocol::{ConnAck, ConnAckProperties, ConnectReturnCode, Packet};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::codec::{self, Codec, CodecError, Version};

/// What the protocol tells clients in its CONNACK.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerLimits {
    /// Largest packet read (remaining length).
    pub(crate) max_packet: usize,
    /// Whether wildcard subscriptions are accepted (`allow_pub_sub`).
    pub(crate) wildcards: bool,
}

/// A client's session, from its CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// The MQTT client id (generated for an empty one).
    pub(crate) client_id: String,
    /// Whether the server chose the client id.
    pub(crate) assigned_id: bool,
    /// Silence after which the client is gone: 1.5 times its keep-alive
    /// (`None`: keep-alive 0, disabled).
    pub(crate) keep_alive: Option<Duration>,
    /// QoS 1 messages the client accepts unacknowledged (MQTT 5).
    pub(crate) receive_maximum: Option<u16>,
    /// Largest packet the client accepts (MQTT 5).
    pub(crate) max_packet_size: Option<usize>,
}

/// Why a connection did not get through its CONNECT.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The client closed before its CONNECT.
    #[error("closed before CONNECT")]
    Closed,
    /// The first packet is not a CONNECT.
    #[error("first packet is not CONNECT")]
    NotConnect,
    /// The CONNECT is not valid MQTT, or too large.
    #[error("{0}")]
    Codec(#[from] CodecError),
    /// A protocol name or level other than MQTT 3.1.1 and 5.0.
    #[error("unsupported protocol level {0}")]
    UnsupportedVersion(u8),
    /// An empty client id without a clean session (MQTT 3.1.1).
    #[error("empty client id without clean session")]
    ClientIdRejected,
    /// MQTT 5 enhanced authentication, which is not supported.
    #[error("unsupported authentication method")]
    AuthenticationMethod,
}

impl HandshakeError {
    /// The CONNACK refusing the client, when the error warrants one.
    pub(crate) fn connack(&self, version: Option<Version>) -> Option<(Codec, Packet)> {
        let (version, code) = match self {
            // MQTT 3.1.1 form: the only one every client understands.
            Self::UnsupportedVersion(_) => (Version::V311, ConnectReturnCode::RefusedProtocolVersion),
            Self::ClientIdRejected => (version?, ConnectReturnCode::ClientIdentifierNotValid),
            Self::AuthenticationMethod => (version?, ConnectReturnCode::BadAuthenticationMethod),
            _ => return None,
        };
        Some((Codec::new(version), refusal(code)))
    }
}

/// A CONNACK refusing the connection with `code` (valid in the codec's version).
pub(crate) fn refusal(code: ConnectReturnCode) -> Packet {
    Packet::ConnAck(
        ConnAck {
            session_present: false,
            code,
        },
        None,
    )
}

/// The CONNACK refusing a client the router did not take: "server busy" (5.0)
/// at the connection cap, "server unavailable" otherwise (shutting down).
/// MQTT 3.1.1 has only "server unavailable".
pub(crate) fn unavailable(version: Version, busy: bool) -> Packet {
    refusal(match version {
        Version::V311 => ConnectReturnCode::ServiceUnavailable,
        Version::V5 if busy => ConnectReturnCode::ServerBusy,
        Version::V5 => ConnectReturnCode::ServerUnavailable,
    })
}

/// The CONNACK accepting `session`.
pub(crate) fn accepted(version: Version, session: &Session, limits: ServerLimits) -> Packet {
    let connack = ConnAck {
        session_present: false,
        code: ConnectReturnCode::Success,
    };
    let properties = (version == Version::V5).then(|| ConnAckProperties {
        max_packet_size: u32::try_from(limits.max_packet).ok(),
        retain_available: Some(0),
        wildcard_subscription_available: Some(u8::from(limits.wildcards)),
        subscription_identifiers_available: Some(0),
        shared_subscription_available: Some(0),
        assigned_client_identifier: session.assigned_id.then(|| session.client_id.clone()),
        ..ConnAckProperties::default()
    });
    Packet::ConnAck(connack, properties)
}

/// Reads the CONNECT packet at the start of `io` (into `buffer`, which keeps
/// any byte read after it) and returns the connection's codec and session.
/// The caller bounds the time it takes. On error, the version is returned when
/// it was known (for the refusing CONNACK).
pub(crate) async fn handshake<R: AsyncRead + Unpin>(
    io: &mut R,
    buffer: &mut BytesMut,
    max_packet: usize,
) -> Result<(Codec, Session), (HandshakeError, Option<Version>)> {
    let header = loop {
        let header = codec::peek_header(buffer).map_err(|error| (error.into(), None))?;
        if let Some(header) = header {
            if header.kind() != codec::kind::CONNECT {
                return Err((HandshakeError::NotConnect, None));
            }
            if header.remaining_len > max_packet {
                let error = CodecError::TooLarge {
                    size: header.remaining_len,
                    limit: max_packet,
                };
                return Err((error.into(), None));
            }
            if buffer.len() >= header.frame_len() {
                break header;
            }
            buffer.reserve(header.frame_len() - buffer.len());
        } else {
            buffer.reserve(256);
        }
        match io.read_buf(buffer).await {
            Ok(0) => return Err((HandshakeError::Closed, None)),
            Ok(_) => {}
            Err(error) => return Err((error.into(), None)),
        }
    };
    let version = match codec::connect_level(buffer, &header) {
        Some((b"MQTT", 4)) => Version::V311,
        Some((b"MQTT", 5)) => Version::V5,
        Some((_, level)) => return Err((HandshakeError::UnsupportedVersion(level), None)),
        None => {
            let error = CodecError::Malformed("CONNECT without protocol level".into());
            return Err((error.into(), None));
        }
    };
    let mut codec = Codec::new(version);
    let fail = |error: HandshakeError| (error, Some(version));
    let received = codec
        .read(buffer, max_packet)
        .map_err(|error| fail(error.into()))?
        .ok_or_else(|| fail(CodecError::Malformed("incomplete CONNECT".into()).into()))?;
    let Packet::Connect(connect, properties, _will, _will_properties, _login) = received.packet else {
        return Err(fail(HandshakeError::NotConnect));
    };
    if properties
        .as_ref()
        .is_some_and(|properties| properties.authentication_method.is_some())
    {
        return Err(fail(HandshakeError::AuthenticationMethod));
    }
    let (client_id, assigned_id) = if connect.client_id.is_empty() {
        if version == Version::V311 && !connect.clean_session {
            return Err(fail(HandshakeError::ClientIdRejected));
        }
        (format!("protoplex-{}", uuid::Uuid::new_v4().simple()), true)
    } else {
        (connect.client_id, false)
    };
    let session = Session {
        client_id,
        assigned_id,
        keep_alive: (connect.keep_alive > 0)
            .then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500)),
        receive_maximum: properties.as_ref().and_then(|p| p.receive_maximum),
        max_packet_size: properties
            .as_ref()
            .and_then(|p| p.max_packet_size)
            .and_then(|size| usize::try_from(size).ok()),
    };
    Ok((codec, session))
}

#[cfg(test)]
mod tests {
    use rumqttd::protocol::{Connect, ConnectProperties, Protocol as _};

    use super::*;

    fn connect_bytes(version: Version, client_id: &str, clean: bool, keep_alive: u16) -> BytesMut {
        let connect = Connect {
            keep_alive,
            client_id: client_id.into(),
            clean_session: clean,
        };
        let mut out = BytesMut::new();
        match version {
            Version::V311 => rumqttd::protocol::v4::V4
                .write(Packet::Connect(connect, None, None, None, None), &mut out)
                .expect("encode"),
            Version::V5 => {
                let properties = ConnectProperties {
                    session_expiry_interval: None,
                    receive_maximum: Some(5),
                    max_packet_size: Some(4096),
                    topic_alias_max: None,
                    request_response_info: None,
                    request_problem_info: None,
                    user_properties: Vec::new(),
                    authentication_method: None,
                    authentication_data: None,
                };
                rumqttd::protocol::v5::V5
                    .write(
                        Packet::Connect(connect, Some(properties), None, None, None),
                        &mut out,
                    )
                    .expect("encode")
            }
        };
        out
    }

    async fn run(bytes: &[u8]) -> Result<(Codec, Session), (HandshakeError, Option<Version>)> {
        let mut io = bytes;
        let mut buffer = BytesMut::new();
        handshake(&mut io, &mut buffer, 1024).await
    }

    #[tokio::test]
    async fn version_3_1_1() {
        let bytes = connect_bytes(Version::V311, "device-1", true, 10);
        let (codec, session) = run(&bytes).await.expect("accepted");
        assert_eq!(codec.version(), Version::V311);
        assert_eq!(session.client_id, "device-1");
        assert_eq!(session.keep_alive, Some(Duration::from_secs(15)));
        assert!(!session.assigned_id);
    }

    #[tokio::test]
    async fn version_5_with_generated_id() {
        let bytes = connect_bytes(Version::V5, "", true, 0);
        let (codec, session) = run(&bytes).await.expect("accepted");
        assert_eq!(codec.version(), Version::V5);
        assert!(session.assigned_id);
        assert!(session.client_id.starts_with("protoplex-"));
        assert_eq!(session.keep_alive, None);
        assert_eq!(session.receive_maximum, Some(5));
        assert_eq!(session.max_packet_size, Some(4096));
        let connack = accepted(
            Version::V5,
            &session,
            ServerLimits {
                max_packet: 1000,
                wildcards: false,
            },
        );
        let Packet::ConnAck(_, Some(properties)) = connack else {
            panic!("no properties");
        };
        assert_eq!(properties.assigned_client_identifier, Some(session.client_id));
        assert_eq!(properties.max_packet_size, Some(1000));
    }

    #[tokio::test]
    async fn refusals() {
        let bytes = connect_bytes(Version::V311, "", false, 10);
        let (error, version) = run(&bytes).await.expect_err("refused");
        assert!(matches!(error, HandshakeError::ClientIdRejected));
        assert!(error.connack(version).is_some());

        // MQTT 3.1 ("MQIsdp", level 3).
        let mut old = vec![0x10, 0x0C, 0x00, 0x06];
        old.extend_from_slice(b"MQIsdp");
        old.extend_from_slice(&[0x03, 0x02, 0x00, 0x0A]);
        let (error, version) = run(&old).await.expect_err("refused");
        assert!(matches!(error, HandshakeError::UnsupportedVersion(3)));
        let (codec, _) = error.connack(version).expect("connack");
        assert_eq!(codec.version(), Version::V311);

        let (error, _) = run(&[0x30, 0x00]).await.expect_err("refused");
        assert!(matches!(error, HandshakeError::NotConnect));
        let (error, _) = run(&[0x10, 0x80, 0x80, 0x01]).await.expect_err("refused");
        assert!(matches!(
            error,
            HandshakeError::Codec(CodecError::TooLarge { .. })
        ));
        let (error, _) = run(&[0x10, 0x05, 0x00]).await.expect_err("refused");
        assert!(matches!(error, HandshakeError::Closed));
    }
}
