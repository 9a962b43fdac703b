//! A throttle for repeated warnings: at most one per interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lets one caller through per interval, whatever the number of threads.
pub(crate) struct Throttle {
    created: Instant,
    interval_ms: u64,
    /// When the last caller went through, in ms since `created`, plus `interval_ms`
    /// (so that 0 means "never").
    last_ms: AtomicU64,
}

impl Throttle {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            created: Instant::now(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Whether this call goes through: the first one, then one per interval.
    pub(crate) fn ready(&self) -> bool {
        let now = u64::try_from(self.created.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(self.interval_ms);
        let last = self.last_ms.load(Ordering::Relaxed);
        now.saturating_sub(last) >= self.interval_ms
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_per_interval_goes_through() {
        let throttle = Throttle::new(Duration::from_secs(3600));
        assert!(throttle.ready());
        assert!(!throttle.ready());
        let open = Throttle::new(Duration::ZERO);
        assert!(open.ready() && open.ready());
    }
}
