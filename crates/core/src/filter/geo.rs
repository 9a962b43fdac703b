//! Geopoints, geodistances and geographic shapes.
//!
//! Accepted geopoint formats (filters and documents alike): `[lat, lon]`,
//! `"lat, lon"`, a geohash string, `{lat, lon}`, and `{latLon: ..}` /
//! `{lat_lon: ..}` wrapping an array, a `{lat, lon}` object or a string.
//! Coordinates may be numbers or numeric strings (parsed the way
//! JavaScript's `parseFloat` does).

use serde_json::{Map, Value};

/// Mean Earth radius, in meters.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A geographical point, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub(crate) lat: f64,
    pub(crate) lon: f64,
}

/// A bounding rectangle in degrees (`None` from [`Shape::bounds`] means
/// "too large or wrapping around, test it everywhere").
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bounds {
    pub(crate) lat_min: f64,
    pub(crate) lat_max: f64,
    pub(crate) lon_min: f64,
    pub(crate) lon_max: f64,
}

/// A shape a geopoint can be tested against. Borders are inclusive.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// `geoBoundingBox`.
    BoundingBox(Bounds),
    /// `geoDistance`: points at most `radius` meters away from `center`.
    Circle { center: Center, radius: f64 },
    /// `geoDistanceRange`: points between `from` and `to` meters away from `center`.
    Annulus { center: Center, from: f64, to: f64 },
    /// `geoPolygon`: a closed polygon (the last point links back to the first).
    Polygon(Vec<Point>),
}

/// The center of a circle, with what distance tests need precomputed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Center {
    pub(crate) point: Point,
    cos_lat: f64,
}

impl Center {
    pub(crate) fn new(point: Point) -> Self {
        Center {
            point,
            cos_lat: point.lat.to_radians().cos(),
        }
    }

    /// The haversine term of the distance to `p` (monotonic in the distance).
    fn haversine(&self, p: &Located) -> f64 {
        let dlat = (p.point.lat - self.point.lat).to_radians();
        let dlon = (p.point.lon - self.point.lon).to_radians();
        (dlat / 2.0).sin().powi(2) + self.cos_lat * p.cos_lat * (dlon / 2.0).sin().powi(2)
    }
}

/// The haversine term matching a distance in meters.
fn haversine_of(meters: f64) -> f64 {
    let half_angle = (meters / EARTH_RADIUS_M / 2.0).min(std::f64::consts::FRAC_PI_2);
    half_angle.sin().powi(2)
}

/// A point being tested, with its latitude cosine computed once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Located {
    pub(crate) point: Point,
    cos_lat: f64,
}

impl Located {
    pub(crate) fn new(point: Point) -> Self {
        Located {
            point,
            cos_lat: point.lat.to_radians().cos(),
        }
    }
}

impl Shape {
    /// Whether `p` lies inside the shape or on its border.
    pub(crate) fn contains(&self, p: Point) -> bool {
        self.contains_at(&Located::new(p))
    }

    /// [`Shape::contains`] for a point whose trigonometry is precomputed.
    pub(crate) fn contains_at(&self, l: &Located) -> bool {
        let p = l.point;
        match self {
            Shape::BoundingBox(b) => {
                p.lat >= b.lat_min && p.lat <= b.lat_max && p.lon >= b.lon_min && p.lon <= b.lon_max
            }
            Shape::Circle { center, radius } => center.haversine(l) <= haversine_of(*radius),
            Shape::Annulus { center, from, to } => {
                let h = center.haversine(l);
                h >= haversine_of(*from) && h <= haversine_of(*to)
            }
            Shape::Polygon(points) => polygon_covers(points, p),
        }
    }

    /// A rectangle holding every point of the shape, or `None` when the
    /// shape spans a pole or the antimeridian.
    pub(crate) fn bounds(&self) -> Option<Bounds> {
        match self {
            Shape::BoundingBox(b) => Some(*b),
            Shape::Circle { center, radius } => circle_bounds(center.point, *radius),
            Shape::Annulus { center, to, .. } => circle_bounds(center.point, *to),
            Shape::Polygon(points) => {
                let mut b = Bounds {
                    lat_min: f64::INFINITY,
                    lat_max: f64::NEG_INFINITY,
                    lon_min: f64::INFINITY,
                    lon_max: f64::NEG_INFINITY,
                };
                for p in points {
                    b.lat_min = b.lat_min.min(p.lat);
                    b.lat_max = b.lat_max.max(p.lat);
                    b.lon_min = b.lon_min.min(p.lon);
                    b.lon_max = b.lon_max.max(p.lon);
                }
                Some(b)
            }
        }
    }

    /// Canonical text of the shape (part of a condition's identity).
    pub(crate) fn write_key(&self, out: &mut String) {
        use std::fmt::Write as _;
        let num = |out: &mut String, v: f64| {
            let _ = write!(out, "{:016x},", norm_bits(v));
        };
        match self {
            Shape::BoundingBox(b) => {
                out.push_str("box:");
                for v in [b.lat_min, b.lat_max, b.lon_min, b.lon_max] {
                    num(out, v);
                }
            }
            Shape::Circle { center, radius } => {
                out.push_str("circle:");
                for v in [center.point.lat, center.point.lon, *radius] {
                    num(out, v);
                }
            }
            Shape::Annulus { center, from, to } => {
                out.push_str("annulus:");
                for v in [center.point.lat, center.point.lon, *from, *to] {
                    num(out, v);
                }
            }
            Shape::Polygon(points) => {
                out.push_str("polygon:");
                for p in points {
                    num(out, p.lat);
                    num(out, p.lon);
                }
            }
        }
    }
}

/// The bit pattern of a float, with `-0.0` folded onto `0.0`.
pub(crate) fn norm_bits(v: f64) -> u64 {
    if v == 0.0 { 0 } else { v.to_bits() }
}

fn circle_bounds(center: Point, radius: f64) -> Option<Bounds> {
    // Small margin so that rounding never excludes a point on the border.
    let angular = radius / EARTH_RADIUS_M * 1.000_001 + 1e-9;
    let dlat = angular.to_degrees();
    let lat_min = center.lat - dlat;
    let lat_max = center.lat + dlat;
    if !(lat_min > -90.0 && lat_max < 90.0) {
        return None;
    }
    let s = angular.sin() / center.lat.to_radians().cos();
    if !(angular < std::f64::consts::FRAC_PI_2 && s.is_finite() && s < 1.0) {
        return None;
    }
    let dlon = s.asin().to_degrees() * 1.000_001 + 1e-9;
    let lon_min = center.lon - dlon;
    let lon_max = center.lon + dlon;
    if !(lon_min >= -180.0 && lon_max <= 180.0) {
        return None;
    }
    Some(Bounds {
        lat_min,
        lat_max,
        lon_min,
        lon_max,
    })
}

/// Point in polygon (planar lat/lon), border included.
fn polygon_covers(points: &[Point], p: Point) -> bool {
    let n = points.len();
    let mut inside = false;
    for i in 0..n {
        let a = points[i];
        let b = points[(i + 1) % n];
        if on_segment(a, b, p) {
            return true;
        }
        if (a.lon > p.lon) != (b.lon > p.lon) {
            let lat_at = a.lat + (p.lon - a.lon) * (b.lat - a.lat) / (b.lon - a.lon);
            if p.lat < lat_at {
                inside = !inside;
            }
        }
    }
    inside
}

fn on_segment(a: Point, b: Point, p: Point) -> bool {
    let cross = (b.lat - a.lat) * (p.lon - a.lon) - (b.lon - a.lon) * (p.lat - a.lat);
    let scale = (b.lat - a.lat).abs().max((b.lon - a.lon).abs()).max(1e-300);
    if cross.abs() > 1e-12 * scale {
        return false;
    }
    p.lat >= a.lat.min(b.lat)
        && p.lat <= a.lat.max(b.lat)
        && p.lon >= a.lon.min(b.lon)
        && p.lon <= a.lon.max(b.lon)
}

/// Reads a geopoint in any of the accepted formats.
pub(crate) fn to_point(v: &Value) -> Option<Point> {
    match v {
        Value::String(s) => from_str(s),
        Value::Array(a) => pair(a),
        Value::Object(o) => from_object(o),
        _ => None,
    }
}

fn pair(a: &[Value]) -> Option<Point> {
    match a {
        [lat, lon] => coordinate(lat, lon),
        _ => None,
    }
}

fn from_object(o: &Map<String, Value>) -> Option<Point> {
    if let (Some(lat), Some(lon)) = (o.get("lat"), o.get("lon")) {
        return coordinate(lat, lon);
    }
    let ll = o.get("latLon").or_else(|| o.get("lat_lon"))?;
    match ll {
        Value::Array(a) => pair(a),
        Value::Object(inner) => match (inner.get("lat"), inner.get("lon")) {
            (Some(lat), Some(lon)) => coordinate(lat, lon),
            _ => None,
        },
        Value::String(s) => from_str(s),
        _ => None,
    }
}

fn from_str(s: &str) -> Option<Point> {
    if s.is_empty() {
        return None;
    }
    let mut parts = s.split(',');
    if let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) {
        return point(parse_float(a)?, parse_float(b)?);
    }
    if s.len() >= 4 && s.bytes().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()) {
        return geohash(s);
    }
    None
}

fn coordinate(lat: &Value, lon: &Value) -> Option<Point> {
    point(number_of(lat)?, number_of(lon)?)
}

fn point(lat: f64, lon: f64) -> Option<Point> {
    (lat.is_finite() && lon.is_finite()).then_some(Point { lat, lon })
}

/// A coordinate given as a number or a numeric string.
pub(crate) fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_float(s),
        _ => None,
    }
}

/// JavaScript's `parseFloat`: leading whitespace skipped, longest numeric
/// prefix parsed, `None` where JavaScript gives `NaN`.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if t[i..].starts_with("Infinity") {
        return Some(if b.first() == Some(&b'-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - digits_start;
    if i < b.len() && b[i] == b'.' {
        let frac_start = i + 1;
        let mut j = frac_start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        digits += j - frac_start;
        if digits > 0 {
            i = j;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    t[..i].parse::<f64>().ok()
}

/// Decodes a geohash into the center of its cell.
pub(crate) fn geohash(s: &str) -> Option<Point> {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (mut lat_lo, mut lat_hi) = (-90.0_f64, 90.0_f64);
    let (mut lon_lo, mut lon_hi) = (-180.0_f64, 180.0_f64);
    let mut even = true;
    for c in s.bytes() {
        let idx = ALPHABET.iter().position(|&a| a == c)?;
        for bit in (0..5).rev() {
            let on = (idx >> bit) & 1 == 1;
            let (lo, hi) = if even {
                (&mut lon_lo, &mut lon_hi)
            } else {
                (&mut lat_lo, &mut lat_hi)
            };
            let mid = (*lo + *hi) / 2.0;
            if on {
                *lo = mid;
            } else {
                *hi = mid;
            }
            even = !even;
        }
    }
    Some(Point {
        lat: (lat_lo + lat_hi) / 2.0,
        lon: (lon_lo + lon_hi) / 2.0,
    })
}

/// Converts a geodistance (`"12km"`, `"1 093,6 yd"`, `"1000"`) to meters.
pub(crate) fn parse_distance(s: &str) -> Option<f64> {
    let cleaned: String = s
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| if c == ',' { '.' } else { c })
        .collect::<String>()
        .to_lowercase();
    let split = cleaned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(cleaned.len());
    let (num, unit) = cleaned.split_at(split);
    if num.is_empty() || num.bytes().filter(|c| *c == b'.').count() > 1 || num == "." {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let factor = unit_factor(unit)?;
    let meters = value * factor;
    meters.is_finite().then_some(meters)
}

fn unit_factor(unit: &str) -> Option<f64> {
    if unit.is_empty() {
        return Some(1.0);
    }
    if let Some(f) = base_unit(unit) {
        return Some(f);
    }
    const LONG: &[(&str, f64)] = &[
        ("yocto", 1e-24),
        ("zepto", 1e-21),
        ("atto", 1e-18),
        ("femto", 1e-15),
        ("pico", 1e-12),
        ("nano", 1e-9),
        ("micro", 1e-6),
        ("milli", 1e-3),
        ("centi", 1e-2),
        ("deci", 1e-1),
        ("deca", 1e1),
        ("deka", 1e1),
        ("hecto", 1e2),
        ("kilo", 1e3),
        ("mega", 1e6),
        ("giga", 1e9),
        ("tera", 1e12),
        ("peta", 1e15),
        ("exa", 1e18),
        ("zetta", 1e21),
        ("yotta", 1e24),
    ];
    for (prefix, f) in LONG {
        if let Some(rest) = unit.strip_prefix(prefix)
            && let Some(b) = base_unit(rest)
        {
            return Some(f * b);
        }
    }
    // Short SI prefixes, on meters only ("km", "cm", "mm", "dam", ...).
    const SHORT: &[(&str, f64)] = &[
        ("y", 1e-24),
        ("z", 1e-21),
        ("a", 1e-18),
        ("f", 1e-15),
        ("p", 1e-12),
        ("n", 1e-9),
        ("u", 1e-6),
        ("µ", 1e-6),
        ("m", 1e-3),
        ("c", 1e-2),
        ("d", 1e-1),
        ("da", 1e1),
        ("h", 1e2),
        ("k", 1e3),
        ("g", 1e9),
        ("t", 1e12),
        ("e", 1e18),
    ];
    let prefix = unit.strip_suffix('m')?;
    SHORT.iter().find(|(p, _)| *p == prefix).map(|(_, f)| *f)
}

fn base_unit(unit: &str) -> Option<f64> {
    Some(match unit {
        "m" | "meter" | "meters" | "metre" | "metres" => 1.0,
        "ft" | "foot" | "feet" | "feets" => 0.3048,
        "in" | "inch" | "inches" => 0.0254,
        "yd" | "yard" | "yards" => 0.9144,
        "mi" | "mile" | "miles" => 1609.344,
        _ => return None,
    })
}
