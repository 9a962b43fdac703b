//! Why and how a connection closes: the close causes, their close frames, and the
//! signal shared by a connection's reader, its writer and the protocol.

use std::fmt;

use protoplex_core::close::CloseReason;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseCause {
    /// The client closed, vanished, or its socket failed.
    Remote,
    /// The server shuts down: 1001 once the answers owed are written.
    Shutdown,
    /// The router asked for it (`Protocol::disconnect`): 1011, as Kuzzle.
    Disconnect,
    /// Its outgoing queue was full: 1011 at once.
    Backpressure,
    /// Nothing came from it for `idle_timeout`: 1000 at once.
    Idle,
    /// A frame or message over the frame limit: 1009 at once.
    TooLarge,
    /// A frame breaking the WebSocket protocol: 1002 at once.
    ProtocolViolation,
    /// A text frame that is not UTF-8: 1007 at once.
    InvalidText,
    /// Refused after the handshake: the connection cap is reached (1013).
    Busy,
}

impl CloseCause {
    /// Whether the connection first delivers the answers to requests it already
    /// read and the messages already queued.
    pub(crate) fn drains(self) -> bool {
        matches!(self, Self::Shutdown | Self::Disconnect)
    }

    /// The close frame sent to the client, `None` when the client is the one
    /// closing (its close frame is answered by tungstenite).
    pub(crate) fn frame(self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            Self::Remote => return None,
            Self::Shutdown => (CloseCode::Away, "server shutting down"),
            Self::Disconnect => (CloseCode::Error, "Connection closed by remote host"),
            Self::Backpressure => (CloseCode::Error, "too much backpressure: client is too slow"),
            Self::Idle => (CloseCode::Normal, "idle timeout"),
            Self::TooLarge => (CloseCode::Size, "message too big"),
            Self::ProtocolViolation => (CloseCode::Protocol, "protocol error"),
            Self::InvalidText => (CloseCode::Invalid, "text frame is not UTF-8"),
            Self::Busy => (CloseCode::Again, "too many connections: try again later"),
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }
}

impl fmt::Display for CloseCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Remote => "remote",
            Self::Shutdown => "shutdown",
            Self::Disconnect => "disconnect",
            Self::Backpressure => "backpressure",
            Self::Idle => "idle timeout",
            Self::TooLarge => "message too big",
            Self::ProtocolViolation => "protocol violation",
            Self::InvalidText => "invalid text",
            Self::Busy => "too many connections",
        })
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
    fn frames_carry_the_codes() {
        let code = |cause: CloseCause| cause.frame().map(|frame| u16::from(frame.code));
        assert_eq!(code(CloseCause::Shutdown), Some(1001));
        assert_eq!(code(CloseCause::Backpressure), Some(1011));
        assert_eq!(code(CloseCause::TooLarge), Some(1009));
        assert_eq!(code(CloseCause::Idle), Some(1000));
        assert_eq!(code(CloseCause::Remote), None);
        assert!(CloseCause::Disconnect.drains());
        assert!(!CloseCause::Idle.drains());
    }
}
