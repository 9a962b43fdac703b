//! Koncorde filters of mixed shapes and documents drawn from the same value
//! space, so that a fraction of the filters match each document.
//!
//! Document shape:
//! `{status, category, price, qty, active, tags: [..], user: {age, country},
//! location: {lat, lon}, [discount]}`.

use serde_json::{Value, json};

/// Index used by the generated workload.
pub const INDEX: &str = "bench";
/// Collection used by the generated workload.
pub const COLLECTION: &str = "items";

const STATUSES: [&str; 8] = [
    "new",
    "open",
    "pending",
    "paid",
    "shipped",
    "delivered",
    "returned",
    "closed",
];
const COUNTRIES: [&str; 12] = [
    "fr", "de", "es", "it", "uk", "us", "ca", "br", "jp", "in", "cn", "au",
];
const CATEGORIES: usize = 60;
const TAGS: usize = 30;
/// Geo area of the workload (roughly the Montpellier area).
const LAT: (f64, f64) = (43.4, 43.8);
const LON: (f64, f64) = (3.6, 4.2);

/// A small deterministic PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        // Multiply-shift range reduction; n is small, the bias negligible.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A uniform float in `[lo, hi)`.
    pub fn float(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + unit * (hi - lo)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.float(0.0, 1.0) < p
    }

    /// A uniformly chosen element of `items` (non-empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn category(rng: &mut Rng) -> String {
    format!("cat-{}", rng.below(CATEGORIES))
}

fn tag(rng: &mut Rng) -> String {
    format!("tag-{}", rng.below(TAGS))
}

/// Rounds to 6 decimals so that dumped JSON stays exact and short.
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// One filter of a randomly chosen shape.
pub fn filter(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => json!({"equals": {"category": category(rng)}}),
        1 => {
            let n = 2 + rng.below(3);
            let values: Vec<&str> = (0..n).map(|_| *rng.pick(&STATUSES)).collect();
            json!({"in": {"status": values}})
        }
        2 => {
            let lo = rng.below(900) as f64;
            let hi = lo + 1.0 + rng.below(200) as f64;
            json!({"range": {"price": {"gte": lo, "lt": hi}}})
        }
        3 => {
            if rng.chance(0.5) {
                json!({"exists": format!("tags[\"{}\"]", tag(rng))})
            } else {
                json!({"exists": "discount"})
            }
        }
        4 => json!({"and": [
            {"equals": {"status": *rng.pick(&STATUSES)}},
            {"range": {"user.age": {"gt": rng.below(80)}}}
        ]}),
        5 => json!({"or": [
            {"equals": {"category": category(rng)}},
            {"equals": {"user.country": *rng.pick(&COUNTRIES)}}
        ]}),
        6 => json!({"and": [
            {"equals": {"category": category(rng)}},
            {"not": {"equals": {"status": *rng.pick(&STATUSES)}}}
        ]}),
        7 => json!({"geoDistance": {
            "location": {"lat": round6(rng.float(LAT.0, LAT.1)), "lon": round6(rng.float(LON.0, LON.1))},
            "distance": format!("{}m", 500 + rng.below(5000))
        }}),
        8 => json!({"bool": {
            "must": [{"in": {"user.country": [*rng.pick(&COUNTRIES), *rng.pick(&COUNTRIES)]}}],
            "must_not": [{"equals": {"active": false}}],
            "should": [
                {"range": {"qty": {"gte": rng.below(50)}}},
                {"exists": format!("tags[\"{}\"]", tag(rng))}
            ]
        }}),
        9 => json!({"and": [
            {"equals": {"category": category(rng)}},
            {"geoDistance": {
                "location": [round6(rng.float(LAT.0, LAT.1)), round6(rng.float(LON.0, LON.1))],
                "distance": format!("{}km", 1 + rng.below(20))
            }}
        ]}),
        10 => json!({"and": [
            {"equals": {"category": category(rng)}},
            {"not": {"or": [
                {"equals": {"status": *rng.pick(&STATUSES)}},
                {"range": {"price": {"lt": rng.below(1000)}}}
            ]}}
        ]}),
        _ => json!({"and": [
            {"equals": {"user.country": *rng.pick(&COUNTRIES)}},
            {"range": {"price": {"gte": rng.below(500), "lte": 500 + rng.below(500)}}},
            {"missing": "discount"}
        ]}),
    }
}

/// One document of the workload.
pub fn document(rng: &mut Rng) -> Value {
    let n_tags = rng.below(4);
    let tags: Vec<String> = (0..n_tags).map(|_| tag(rng)).collect();
    let mut doc = json!({
        "status": *rng.pick(&STATUSES),
        "category": category(rng),
        "price": rng.below(1000),
        "qty": rng.below(100),
        "active": rng.chance(0.7),
        "tags": tags,
        "user": {"age": 18 + rng.below(70), "country": *rng.pick(&COUNTRIES)},
        "location": {"lat": round6(rng.float(LAT.0, LAT.1)), "lon": round6(rng.float(LON.0, LON.1))},
        "title": "Lorem ipsum dolor sit amet",
    });
    if rng.chance(0.2)
        && let Some(o) = doc.as_object_mut()
    {
        o.insert("discount".into(), json!(rng.below(50)));
    }
    doc
}

/// `n` filters generated from `seed`.
pub fn filters(n: usize, seed: u64) -> Vec<Value> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| filter(&mut rng)).collect()
}

/// `n` documents generated from `seed`.
pub fn documents(n: usize, seed: u64) -> Vec<Value> {
    let mut rng = Rng::new(seed ^ 0xD0C5);
    (0..n).map(|_| document(&mut rng)).collect()
}
