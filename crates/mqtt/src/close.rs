//! Why and how a connection closes: the close causes, the MQTT 5 DISCONNECT
//! reason each one sends, and the signal shared by a connection's reader, its
//! writer and the protocol.

use std::fmt;

use protoplex_core::close::CloseReason;
use rumqttd::protocol::DisconnectReasonCode;

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseCause {
    /// The client sent DISCONNECT, vanished, or its socket failed.
    Remote,
    /// The server shuts down: answers owed first, then DISCONNECT 0x8B.
    Shutdown,
    /// The router asked for it (`Protocol::disconnect`): answers owed first,
    /// then DISCONNECT 0x98 (administrative action).
    Disconnect,
    /// Its outgoing queue was full: DISCONNECT 0x97 (quota exceeded) at once.
    Backpressure,
    /// Nothing came from it for 1.5 times its keep-alive: 0x8D at once.
    KeepAlive,
    /// Bytes that are not MQTT: 0x81 at once.
    Malformed,
    /// A packet out of place (a second CONNECT, an empty topic...): 0x82 at once.
    ProtocolError,
    /// A packet over the size limit: 0x95 at once.
    TooLarge,
    /// An MQTT 3.1.1 client published where it may not (Kuzzle closes it too).
    NotAuthorized,
    /// Another connection took its client id: 0x8E at once.
    SessionTakenOver,
}

impl CloseCause {
    /// Whether the connection first answers the requests it already read and
    /// delivers what is queued.
    pub(crate) fn drains(self) -> bool {
        matches!(self, Self::Shutdown | Self::Disconnect)
    }

    /// The MQTT 5 DISCONNECT reason sent to the client; `None` when the client
    /// is the one leaving.
    pub(crate) fn reason(self) -> Option<DisconnectReasonCode> {
        Some(match self {
            Self::Remote => return None,
            Self::Shutdown => DisconnectReasonCode::ServerShuttingDown,
            Self::Disconnect => DisconnectReasonCode::AdministrativeAction,
            Self::Backpressure => DisconnectReasonCode::QuotaExceeded,
            Self::KeepAlive => DisconnectReasonCode::KeepAliveTimeout,
            Self::Malformed => DisconnectReasonCode::MalformedPacket,
            Self::ProtocolError => DisconnectReasonCode::ProtocolError,
            Self::TooLarge => DisconnectReasonCode::PacketTooLarge,
            Self::NotAuthorized => DisconnectReasonCode::NotAuthorized,
            Self::SessionTakenOver => DisconnectReasonCode::SessionTakenOver,
        })
    }

    /// A sentence for the client (MQTT 5 reason string).
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Remote => "client left",
            Self::Shutdown => "server shutting down",
            Self::Disconnect => "Connection closed by remote host",
            Self::Backpressure => "too much backpressure: client is too slow",
            Self::KeepAlive => "keep-alive timeout",
            Self::Malformed => "malformed packet",
            Self::ProtocolError => "protocol error",
            Self::TooLarge => "packet too large",
            Self::NotAuthorized => "not authorized",
            Self::SessionTakenOver => "session taken over",
        }
    }
}

impl fmt::Display for CloseCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// The close request of one connection (see [`protoplex_core::close`]).
pub(crate) type CloseSignal = protoplex_core::close::CloseSignal<CloseCause>;

impl CloseReason for CloseCause {
    fn drains(self) -> bool {
        CloseCause::drains(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        assert_eq!(CloseCause::Remote.reason(), None);
        assert_eq!(
            CloseCause::Shutdown.reason(),
            Some(DisconnectReasonCode::ServerShuttingDown)
        );
        assert!(CloseCause::Disconnect.drains());
        assert!(!CloseCause::KeepAlive.drains());
    }
}
