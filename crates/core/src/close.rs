//! Closing one connection, for protocols with a writer task per connection:
//! the first cause wins; a draining close (shutdown, `disconnect`) lets the
//! answers owed be written first, an urgent one (a slow reader, a broken
//! frame) stops the writer at once; every step of the close ends by a deadline.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a connection closes, as a protocol names it.
pub trait CloseReason: Copy + Send + Sync + 'static {
    /// Whether the connection first answers the requests it already read and
    /// writes what is queued (true), or stops writing at once (false).
    fn drains(self) -> bool;
}

/// The close request of one connection, shared by its reader, its writer and
/// whoever may close it (`broadcast` on backpressure, `disconnect`, shutdown).
#[derive(Debug)]
pub struct CloseSignal<C> {
    cause: OnceLock<(C, Instant)>,
    closing: CancellationToken,
    urgent: CancellationToken,
    grace: Duration,
}

impl<C: CloseReason> CloseSignal<C> {
    /// A signal whose close gets `grace` to complete.
    pub fn new(grace: Duration) -> Self {
        Self {
            cause: OnceLock::new(),
            closing: CancellationToken::new(),
            urgent: CancellationToken::new(),
            grace,
        }
    }

    /// Asks the connection to close. Returns true for the first request; a later
    /// urgent cause still makes the close urgent, but the first cause stays.
    pub fn close(&self, cause: C) -> bool {
        let first = self.cause.set((cause, Instant::now() + self.grace)).is_ok();
        self.closing.cancel();
        if !cause.drains() {
            self.urgent.cancel();
        }
        first
    }

    /// Stops the writer now, whatever the cause (a drain that ran out of time).
    pub fn hurry(&self) {
        self.urgent.cancel();
    }

    /// The first cause, once closing.
    pub fn cause(&self) -> Option<C> {
        self.cause.get().map(|(cause, _)| *cause)
    }

    /// When the close must be over (a day away while not closing).
    pub fn deadline(&self) -> Instant {
        self.cause.get().map_or_else(
            || Instant::now() + Duration::from_secs(86_400),
            |(_, deadline)| *deadline,
        )
    }

    /// Resolves once a close is asked.
    pub async fn closing(&self) {
        self.closing.cancelled().await;
    }

    /// Resolves once the writer must stop.
    pub async fn urgent(&self) {
        self.urgent.cancelled().await;
    }

    /// Whether the writer must stop.
    pub fn is_urgent(&self) -> bool {
        self.urgent.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Cause {
        Shutdown,
        Backpressure,
    }

    impl CloseReason for Cause {
        fn drains(self) -> bool {
            self == Cause::Shutdown
        }
    }

    #[tokio::test]
    async fn first_cause_wins_and_urgency_escalates() {
        let signal = CloseSignal::new(Duration::from_secs(1));
        assert_eq!(signal.cause(), None);
        assert!(signal.deadline() > Instant::now() + Duration::from_secs(3600));
        assert!(signal.close(Cause::Shutdown));
        signal.closing().await;
        assert!(!signal.is_urgent());
        assert!(signal.deadline() <= Instant::now() + Duration::from_secs(1));
        assert!(!signal.close(Cause::Backpressure));
        signal.urgent().await;
        assert_eq!(signal.cause(), Some(Cause::Shutdown));
    }

    #[test]
    fn hurry_makes_a_drain_urgent() {
        let signal = CloseSignal::new(Duration::from_secs(1));
        signal.close(Cause::Shutdown);
        assert!(!signal.is_urgent());
        signal.hurry();
        assert!(signal.is_urgent());
    }
}
