//! The per-connection request rate limit: a count of requests per one-second
//! window, as Kuzzle's WebSocket `rateLimit`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Requests of one connection in the current second: the window's number in
/// the high 32 bits, the count in the low 32.
#[derive(Debug, Default)]
pub(crate) struct RateWindow(AtomicU64);

impl RateWindow {
    /// Counts a request made during second `now` and tells whether it is within
    /// `limit` requests for that second.
    pub(crate) fn admit(&self, now: u32, limit: u32) -> bool {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let window = (current >> 32) as u32;
            let count = current as u32;
            let next = if window == now {
                if count >= limit {
                    return false;
                }
                current + 1
            } else {
                (u64::from(now) << 32) | 1
            };
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_holds_within_a_second_and_resets_after() {
        let window = RateWindow::default();
        assert!((0..3).all(|_| window.admit(7, 3)));
        assert!(!window.admit(7, 3));
        assert!(!window.admit(7, 3), "refused requests do not count");
        assert!(window.admit(8, 3));
        assert!(window.admit(8, 3));
    }

    #[test]
    fn the_first_window_starts_at_zero() {
        let window = RateWindow::default();
        assert!(window.admit(0, 1));
        assert!(!window.admit(0, 1));
    }
}
