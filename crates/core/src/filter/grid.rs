//! Spatial index of the geo shapes of one field: a hierarchy of uniform
//! grids. A shape is filed, at the finest level where its bounding box
//! spans at most 3x3 cells, under each cell it touches; shapes too large
//! or wrapping around go to a list tested for every point. A point query
//! looks up one cell per level.

use std::collections::HashMap;

use super::geo::{Point, Shape};

/// Cell sizes, in degrees, finest first.
const LEVELS: [f64; 5] = [0.01, 0.1, 1.0, 10.0, 100.0];
const MAX_SPAN: i64 = 3;

/// Cells a shape was filed under: level, latitude and longitude cell ranges.
type Placement = Option<(u8, i64, i64, i64, i64)>;

#[derive(Debug, Clone, Default)]
pub(crate) struct GeoIndex {
    cells: HashMap<(u8, i64, i64), Vec<u32>>,
    global: Vec<u32>,
    /// Shapes by condition id, with the cells they were filed under.
    shapes: HashMap<u32, (Shape, Placement)>,
}

fn cell(v: f64, size: f64) -> i64 {
    // Saturating conversion: coordinates are finite.
    (v / size).floor() as i64
}

impl GeoIndex {
    pub(crate) fn is_empty(&self) -> bool {
        self.shapes.is_empty()
    }

    pub(crate) fn insert(&mut self, shape: &Shape, id: u32) {
        let placement = shape.bounds().and_then(|b| {
            LEVELS.iter().enumerate().find_map(|(level, &size)| {
                let (a0, a1) = (cell(b.lat_min, size), cell(b.lat_max, size));
                let (o0, o1) = (cell(b.lon_min, size), cell(b.lon_max, size));
                let fits = a1.saturating_sub(a0) < MAX_SPAN && o1.saturating_sub(o0) < MAX_SPAN;
                fits.then(|| (u8::try_from(level).unwrap_or(u8::MAX), a0, a1, o0, o1))
            })
        });
        match placement {
            Some((level, a0, a1, o0, o1)) => {
                for a in a0..=a1 {
                    for o in o0..=o1 {
                        self.cells.entry((level, a, o)).or_default().push(id);
                    }
                }
            }
            None => self.global.push(id),
        }
        self.shapes.insert(id, (shape.clone(), placement));
    }

    pub(crate) fn remove(&mut self, id: u32) {
        let Some((_, placement)) = self.shapes.remove(&id) else {
            return;
        };
        match placement {
            Some((level, a0, a1, o0, o1)) => {
                for a in a0..=a1 {
                    for o in o0..=o1 {
                        if let Some(list) = self.cells.get_mut(&(level, a, o)) {
                            list.retain(|&x| x != id);
                            if list.is_empty() {
                                self.cells.remove(&(level, a, o));
                            }
                        }
                    }
                }
            }
            None => self.global.retain(|&x| x != id),
        }
    }

    /// Calls `hit` with the id of every shape containing `p`.
    pub(crate) fn query(&self, p: Point, mut hit: impl FnMut(u32)) {
        let mut test = |id: u32| {
            if self.shapes.get(&id).is_some_and(|(s, _)| s.contains(p)) {
                hit(id);
            }
        };
        for (level, &size) in LEVELS.iter().enumerate() {
            let key = (u8::try_from(level).unwrap_or(u8::MAX), cell(p.lat, size), cell(p.lon, size));
            if let Some(list) = self.cells.get(&key) {
                for &id in list {
                    test(id);
                }
            }
        }
        for &id in &self.global {
            test(id);
        }
    }
}
