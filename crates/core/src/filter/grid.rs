//! Spatial index of the geo shapes of one field: a hierarchy of uniform
//! grids whose cell size doubles from one level to the next. A shape is
//! filed, at the finest level where its bounding box spans at most 3x3
//! cells, under each cell it touches; shapes too large or wrapping around
//! go to a list tested for every point. A point query looks up one cell per
//! non-empty level, then checks each candidate's bounding box before the
//! exact (haversine / polygon) test.

use std::collections::HashMap;

use super::geo::{Bounds, Located, Point, Shape};

/// Number of grid levels; cell size at level `l` is `FINEST * 2^l` degrees.
const LEVELS: usize = 19;
const FINEST: f64 = 0.001;
const MAX_SPAN: i64 = 3;

/// Cells a shape was filed under: level, latitude and longitude cell ranges.
type Placement = Option<(u8, i64, i64, i64, i64)>;

#[derive(Debug, Clone)]
struct Entry {
    id: u32,
    shape: Shape,
    bounds: Option<Bounds>,
    placement: Placement,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct GeoIndex {
    cells: HashMap<(u8, i64, i64), Vec<u32>>,
    /// Shapes by entry slot.
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Entry slot of each condition id.
    slots: HashMap<u32, u32>,
    global: Vec<u32>,
    per_level: [usize; LEVELS],
}

fn cell_size(level: usize) -> f64 {
    FINEST * f64::from(1u32 << level)
}

fn cell(v: f64, size: f64) -> i64 {
    // Saturating conversion: coordinates are finite.
    (v / size).floor() as i64
}

impl GeoIndex {
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(crate) fn insert(&mut self, shape: &Shape, id: u32) {
        let bounds = shape.bounds();
        let placement = bounds.and_then(|b| {
            (0..LEVELS).find_map(|level| {
                let size = cell_size(level);
                let (a0, a1) = (cell(b.lat_min, size), cell(b.lat_max, size));
                let (o0, o1) = (cell(b.lon_min, size), cell(b.lon_max, size));
                let fits = a1.saturating_sub(a0) < MAX_SPAN && o1.saturating_sub(o0) < MAX_SPAN;
                fits.then(|| (u8::try_from(level).unwrap_or(u8::MAX), a0, a1, o0, o1))
            })
        });
        let entry = Entry {
            id,
            shape: shape.clone(),
            bounds,
            placement,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.entries[s as usize] = Some(entry);
                s
            }
            None => {
                self.entries.push(Some(entry));
                u32::try_from(self.entries.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.slots.insert(id, slot);
        match placement {
            Some((level, a0, a1, o0, o1)) => {
                self.per_level[usize::from(level)] += 1;
                for a in a0..=a1 {
                    for o in o0..=o1 {
                        self.cells.entry((level, a, o)).or_default().push(slot);
                    }
                }
            }
            None => self.global.push(slot),
        }
    }

    pub(crate) fn remove(&mut self, id: u32) {
        let Some(slot) = self.slots.remove(&id) else {
            return;
        };
        let Some(entry) = self.entries.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.free.push(slot);
        match entry.placement {
            Some((level, a0, a1, o0, o1)) => {
                self.per_level[usize::from(level)] -= 1;
                for a in a0..=a1 {
                    for o in o0..=o1 {
                        if let Some(list) = self.cells.get_mut(&(level, a, o)) {
                            list.retain(|&x| x != slot);
                            if list.is_empty() {
                                self.cells.remove(&(level, a, o));
                            }
                        }
                    }
                }
            }
            None => self.global.retain(|&x| x != slot),
        }
    }

    /// Calls `hit` with the id of every shape containing `p`.
    pub(crate) fn query(&self, p: Point, mut hit: impl FnMut(u32)) {
        let located = Located::new(p);
        let mut test = |slot: u32| {
            let Some(Some(e)) = self.entries.get(slot as usize) else {
                return;
            };
            let in_box = e.bounds.is_none_or(|b| {
                p.lat >= b.lat_min && p.lat <= b.lat_max && p.lon >= b.lon_min && p.lon <= b.lon_max
            });
            if in_box && e.shape.contains_at(&located) {
                hit(e.id);
            }
        };
        for level in 0..LEVELS {
            if self.per_level[level] == 0 {
                continue;
            }
            let size = cell_size(level);
            let key = (
                u8::try_from(level).unwrap_or(u8::MAX),
                cell(p.lat, size),
                cell(p.lon, size),
            );
            if let Some(list) = self.cells.get(&key) {
                for &slot in list {
                    test(slot);
                }
            }
        }
        for &slot in &self.global {
            test(slot);
        }
    }
}
