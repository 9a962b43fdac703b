//! One monotonic clock shared by every task of the process, so that a
//! timestamp embedded by a publisher can be compared with the time a
//! subscriber of the same process receives it.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process.
pub fn now_ns() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Microseconds elapsed since `sent_ns` (a value of [`now_ns`]); 0 if in the future.
pub fn micros_since(sent_ns: u64) -> u64 {
    now_ns().saturating_sub(sent_ns) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_moves_forward() {
        let first = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(micros_since(first) >= 2000);
        assert_eq!(micros_since(u64::MAX), 0);
    }
}
