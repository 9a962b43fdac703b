//! Why and how a connection closes: the close causes, the MQTT 5 DISCONNECT
//! reason each one sends, and the signal shared by a connection's reader, its
//! writer and the protocol.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use rumqttd::protocol::DisconnectReasonCode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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

/// The close request of one connection: the first cause wins; an urgent one
/// stops the writer at once; every step of the close ends by the deadline.
#[derive(Debug)]
pub(crate) struct CloseSignal {
    cause: OnceLock<(CloseCause, Instant)>,
    closing: CancellationToken,
    urgent: CancellationToken,
    grace: Duration,
}

impl CloseSignal {
    /// A signal whose close gets `grace` to complete.
    pub(crate) fn new(grace: Duration) -> Self {
        Self {
            cause: OnceLock::new(),
            closing: CancellationToken::new(),
            urgent: CancellationToken::new(),
            grace,
        }
    }

    /// Asks the connection to close. Returns true for the first request.
    pub(crate) fn close(&self, cause: CloseCause) -> bool {
        let first = self.cause.set((cause, Instant::now() + self.grace)).is_ok();
        self.closing.cancel();
        if !cause.drains() {
            self.urgent.cancel();
        }
        first
    }

    /// The first cause, once closing.
    pub(crate) fn cause(&self) -> Option<CloseCause> {
        self.cause.get().map(|(cause, _)| *cause)
    }

    /// When the close must be over (far away while not closing).
    pub(crate) fn deadline(&self) -> Instant {
        self.cause.get().map_or_else(
            || Instant::now() + Duration::from_secs(86_400),
            |(_, deadline)| *deadline,
        )
    }

    /// Resolves once a close is asked.
    pub(crate) async fn closing(&self) {
        self.closing.cancelled().await;
    }

    /// Resolves once the writer must stop.
    pub(crate) async fn urgent(&self) {
        self.urgent.cancelled().await;
    }

    /// Stops the writer now, whatever the cause (a drain out of time).
    pub(crate) fn hurry(&self) {
        self.urgent.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_cause_wins_and_urgency_escalates() {
        let signal = CloseSignal::new(Duration::from_secs(1));
        assert_eq!(signal.cause(), None);
        assert!(signal.close(CloseCause::Shutdown));
        assert!(!signal.urgent.is_cancelled());
        assert!(!signal.close(CloseCause::Backpressure));
        assert!(signal.urgent.is_cancelled());
        assert_eq!(signal.cause(), Some(CloseCause::Shutdown));
    }

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
