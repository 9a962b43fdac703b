//! Measurements: latency histograms (HDR) and per-publisher sequence checking.

use std::collections::VecDeque;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency recorded, in microseconds (larger values are clamped): 10 minutes.
const MAX_LATENCY_US: u64 = 600_000_000;

/// How far ahead of the oldest missing sequence number a message may arrive and
/// still be tracked; beyond it the message counts as unexpected. Bounds the
/// memory of one [`SeqTracker`] to this many booleans.
pub const MAX_REORDER: u64 = 1 << 16;

/// A latency histogram in microseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Self {
        let histogram =
            Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant, valid histogram bounds");
        Self { histogram }
    }

    /// Records one latency, in microseconds (clamped to 1 µs .. 10 min).
    pub fn record_us(&mut self, micros: u64) {
        self.histogram.saturating_record(micros.clamp(1, MAX_LATENCY_US));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides: adding cannot fail; ignore the impossible error.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Values recorded.
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// Percentiles of what was recorded.
    pub fn summary(&self) -> LatencySummary {
        if self.histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.histogram.len(),
            p50_us: self.histogram.value_at_quantile(0.50),
            p99_us: self.histogram.value_at_quantile(0.99),
            p999_us: self.histogram.value_at_quantile(0.999),
            max_us: self.histogram.max(),
            mean_us: self.histogram.mean(),
        }
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest value.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

/// What one receiver got from one publisher, checked against what it sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryCheck {
    /// Messages sent but never received.
    pub lost: u64,
    /// Messages received more than once (each extra copy counts).
    pub duplicated: u64,
    /// Messages with a sequence number never sent (or reordered beyond [`MAX_REORDER`]).
    pub unexpected: u64,
}

impl DeliveryCheck {
    /// Adds `other` to this one.
    pub fn add(&mut self, other: DeliveryCheck) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.unexpected += other.unexpected;
    }

    /// Whether every message arrived exactly once.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.unexpected == 0
    }
}

/// Tracks the sequence numbers (0, 1, 2, ...) received from one publisher, in
/// any order, in memory bounded by how out of order they arrive.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    /// Every number below this one was received.
    low: u64,
    /// `seen[i]`: whether `low + i` was received.
    seen: VecDeque<bool>,
    /// Distinct numbers received and tracked.
    unique: u64,
    /// Numbers received again.
    duplicated: u64,
    /// Numbers too far ahead to be tracked.
    out_of_window: u64,
}

impl SeqTracker {
    /// A tracker expecting 0 first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records sequence number `seq`; returns whether it was new.
    pub fn record(&mut self, seq: u64) -> bool {
        if seq < self.low {
            self.duplicated += 1;
            return false;
        }
        let offset = seq - self.low;
        if offset >= MAX_REORDER {
            self.out_of_window += 1;
            return false;
        }
        let offset = offset as usize;
        if offset >= self.seen.len() {
            self.seen.resize(offset + 1, false);
        }
        if self.seen[offset] {
            self.duplicated += 1;
            return false;
        }
        self.seen[offset] = true;
        self.unique += 1;
        while self.seen.front() == Some(&true) {
            self.seen.pop_front();
            self.low += 1;
        }
        true
    }

    /// Distinct sequence numbers received.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Checks what was received against the `sent` messages numbered `0..sent`.
    pub fn check(&self, sent: u64) -> DeliveryCheck {
        // Distinct numbers received that were never sent (`>= sent`).
        let mut above = self.low.saturating_sub(sent);
        let first = sent.saturating_sub(self.low) as usize;
        above += self.seen.iter().skip(first).filter(|seen| **seen).count() as u64;
        let valid = self.unique - above;
        DeliveryCheck {
            lost: sent - valid.min(sent),
            duplicated: self.duplicated,
            unexpected: above + self.out_of_window,
        }
    }
}

/// Per-publisher [`SeqTracker`]s of one receiver.
#[derive(Debug, Clone, Default)]
pub struct SequenceChecker {
    publishers: Vec<SeqTracker>,
    /// Messages naming a publisher that does not exist.
    unknown_publisher: u64,
}

impl SequenceChecker {
    /// A checker for `publishers` publishers, numbered from 0.
    pub fn new(publishers: usize) -> Self {
        Self {
            publishers: vec![SeqTracker::new(); publishers],
            unknown_publisher: 0,
        }
    }

    /// Records message `seq` of `publisher`; returns whether it was new.
    pub fn record(&mut self, publisher: u64, seq: u64) -> bool {
        match usize::try_from(publisher)
            .ok()
            .and_then(|p| self.publishers.get_mut(p))
        {
            Some(tracker) => tracker.record(seq),
            None => {
                self.unknown_publisher += 1;
                false
            }
        }
    }

    /// Checks against `sent[p]`, the count publisher `p` sent.
    pub fn check(&self, sent: &[u64]) -> DeliveryCheck {
        let mut total = DeliveryCheck {
            unexpected: self.unknown_publisher,
            ..DeliveryCheck::default()
        };
        for (index, tracker) in self.publishers.iter().enumerate() {
            total.add(tracker.check(sent.get(index).copied().unwrap_or(0)));
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut latency = Latency::new();
        for micros in 1..=1000 {
            latency.record_us(micros);
        }
        let summary = latency.summary();
        assert_eq!(summary.count, 1000);
        assert!((499..=501).contains(&summary.p50_us), "{summary:?}");
        assert!((989..=991).contains(&summary.p99_us), "{summary:?}");
        assert!((998..=1000).contains(&summary.p999_us), "{summary:?}");
        assert_eq!(summary.max_us, 1000);
    }

    #[test]
    fn merged_histograms_add_up() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        a.record_us(10);
        b.record_us(20_000);
        b.record_us(0);
        a.merge(&b);
        assert_eq!(a.len(), 3);
        assert!(a.summary().max_us >= 20_000);
        assert_eq!(Latency::new().summary(), LatencySummary::default());
    }

    #[test]
    fn in_order_delivery_is_clean() {
        let mut tracker = SeqTracker::new();
        for seq in 0..100 {
            assert!(tracker.record(seq));
        }
        assert_eq!(tracker.check(100), DeliveryCheck::default());
        assert!(tracker.seen.is_empty(), "memory is released once in order");
    }

    #[test]
    fn reordering_is_not_loss() {
        let mut tracker = SeqTracker::new();
        for seq in [3, 1, 0, 2, 5, 4] {
            assert!(tracker.record(seq));
        }
        assert!(tracker.check(6).is_clean());
    }

    #[test]
    fn gaps_and_duplicates_are_counted() {
        let mut tracker = SeqTracker::new();
        for seq in [0, 1, 1, 3, 3, 0, 6] {
            tracker.record(seq);
        }
        // Sent 0..=6: 2, 4 and 5 never came; 1, 3 and 0 came twice.
        let check = tracker.check(7);
        assert_eq!(check.lost, 3);
        assert_eq!(check.duplicated, 3);
        assert_eq!(check.unexpected, 0);
    }

    #[test]
    fn numbers_never_sent_are_unexpected() {
        let mut tracker = SeqTracker::new();
        for seq in [0, 1, 2, 5] {
            tracker.record(seq);
        }
        tracker.record(MAX_REORDER + 10);
        // Only 0..2 were sent: 5 was never sent, the huge one is out of the window.
        let check = tracker.check(3);
        assert_eq!(
            check,
            DeliveryCheck {
                lost: 0,
                duplicated: 0,
                unexpected: 2
            }
        );
        // All numbers received are above what was sent.
        assert_eq!(tracker.check(0).unexpected, 5);
    }

    #[test]
    fn a_silent_publisher_loses_everything() {
        let checker = SequenceChecker::new(2);
        assert_eq!(checker.check(&[4, 0]).lost, 4);
    }

    #[test]
    fn checker_keeps_publishers_apart() {
        let mut checker = SequenceChecker::new(2);
        assert!(checker.record(0, 0));
        assert!(checker.record(1, 0));
        assert!(!checker.record(7, 0));
        let check = checker.check(&[1, 2]);
        assert_eq!(check.lost, 1);
        assert_eq!(check.unexpected, 1);
    }
}
