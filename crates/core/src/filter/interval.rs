//! Stabbing queries over numeric intervals (the `range` index of a field).
//!
//! A static centered interval tree answers "which intervals contain x" in
//! O(log n + k). Insertions since the last build go to a small pending list
//! and removals to a tombstone set; the tree is rebuilt when they grow past
//! a fraction of its size, which keeps updates amortized O(log n).

use std::collections::HashSet;

use super::atom::Range;

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Entry {
    lo: f64,
    lo_incl: bool,
    hi: f64,
    hi_incl: bool,
    id: u32,
}

impl Entry {
    fn new(r: &Range, id: u32) -> Self {
        let (lo, lo_incl) = r
            .low
            .map_or((f64::NEG_INFINITY, true), |b| (b.value, b.inclusive));
        let (hi, hi_incl) = r.high.map_or((f64::INFINITY, true), |b| (b.value, b.inclusive));
        Entry {
            lo,
            lo_incl,
            hi,
            hi_incl,
            id,
        }
    }

    fn contains(&self, x: f64) -> bool {
        (x > self.lo || (self.lo_incl && x == self.lo)) && (x < self.hi || (self.hi_incl && x == self.hi))
    }
}

#[derive(Debug, Clone)]
struct TreeNode {
    center: f64,
    /// Intervals whose hull contains `center`, by ascending low bound.
    by_lo: Vec<Entry>,
    /// The same intervals, by descending high bound.
    by_hi: Vec<Entry>,
    left: u32,
    right: u32,
}

/// The intervals of one field, keyed by condition id.
#[derive(Debug, Clone, Default)]
pub(crate) struct IntervalIndex {
    nodes: Vec<TreeNode>,
    root: u32,
    in_tree: usize,
    pending: Vec<Entry>,
    tombstones: HashSet<u32>,
    /// Every live interval (source of truth for rebuilds).
    all: Vec<Entry>,
}

impl IntervalIndex {
    pub(crate) fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub(crate) fn insert(&mut self, range: &Range, id: u32) {
        let e = Entry::new(range, id);
        self.all.push(e);
        self.pending.push(e);
        self.maybe_rebuild();
    }

    pub(crate) fn remove(&mut self, id: u32) {
        if let Some(pos) = self.all.iter().position(|e| e.id == id) {
            self.all.swap_remove(pos);
        }
        if let Some(pos) = self.pending.iter().position(|e| e.id == id) {
            self.pending.swap_remove(pos);
        } else {
            self.tombstones.insert(id);
        }
        self.maybe_rebuild();
    }

    fn maybe_rebuild(&mut self) {
        if self.pending.len() + self.tombstones.len() > 16 + self.in_tree / 8 {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        self.nodes.clear();
        self.pending.clear();
        self.tombstones.clear();
        self.in_tree = self.all.len();
        let entries = self.all.clone();
        self.root = self.build(entries);
    }

    fn build(&mut self, entries: Vec<Entry>) -> u32 {
        if entries.is_empty() {
            return NONE;
        }
        let mut ends: Vec<f64> = entries
            .iter()
            .flat_map(|e| [e.lo, e.hi])
            .filter(|v| v.is_finite())
            .collect();
        ends.sort_by(f64::total_cmp);
        let center = ends.get(ends.len() / 2).copied().unwrap_or(0.0);
        let total = entries.len();
        let (mut here, mut left, mut right) = (Vec::new(), Vec::new(), Vec::new());
        for e in entries {
            if e.hi < center {
                left.push(e);
            } else if e.lo > center {
                right.push(e);
            } else {
                here.push(e);
            }
        }
        if left.len() == total || right.len() == total {
            // Only possible with empty intervals (low above high): keep
            // them here, where queries check each one exactly.
            here.append(&mut left);
            here.append(&mut right);
        }
        let mut by_lo = here.clone();
        by_lo.sort_by(|a, b| a.lo.total_cmp(&b.lo));
        let mut by_hi = here;
        by_hi.sort_by(|a, b| b.hi.total_cmp(&a.hi));
        let idx = u32::try_from(self.nodes.len()).unwrap_or(NONE);
        self.nodes.push(TreeNode {
            center,
            by_lo,
            by_hi,
            left: NONE,
            right: NONE,
        });
        let l = self.build(left);
        let r = self.build(right);
        if let Some(n) = self.nodes.get_mut(idx as usize) {
            n.left = l;
            n.right = r;
        }
        idx
    }

    /// Calls `hit` with the id of every interval containing `x`.
    pub(crate) fn query(&self, x: f64, mut hit: impl FnMut(u32)) {
        let live = |id: u32| self.tombstones.is_empty() || !self.tombstones.contains(&id);
        let mut cur = self.root;
        while let Some(node) = self.nodes.get(cur as usize) {
            if x < node.center {
                // Intervals here reach `center` > x: only low bounds matter,
                // the scan stops at the first one above x.
                for e in &node.by_lo {
                    if e.lo > x {
                        break;
                    }
                    if e.contains(x) && live(e.id) {
                        hit(e.id);
                    }
                }
                cur = node.left;
            } else if x > node.center {
                for e in &node.by_hi {
                    if e.hi < x {
                        break;
                    }
                    if e.contains(x) && live(e.id) {
                        hit(e.id);
                    }
                }
                cur = node.right;
            } else {
                for e in &node.by_lo {
                    if e.contains(x) && live(e.id) {
                        hit(e.id);
                    }
                }
                break;
            }
        }
        for e in &self.pending {
            if e.contains(x) {
                hit(e.id);
            }
        }
    }
}
