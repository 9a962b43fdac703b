//! Property test: the indexed matcher (normalize + store + test) agrees
//! with the plain recursive evaluator applied to the raw filter.

use std::collections::HashSet;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::FilterEngine;
use super::eval::eval;
use super::parse::parse;
use super::path::Doc;

const FIELDS: [&str; 5] = ["a", "b", "c.d", "arr", "loc"];

fn field() -> impl Strategy<Value = String> {
    prop::sample::select(FIELDS.to_vec()).prop_map(str::to_owned)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0i64..3).prop_map(Value::from),
        Just(json!(1.5)),
        prop::sample::select(vec!["x", "y", "1", "xy9"]).prop_map(Value::from),
    ]
}

fn point() -> impl Strategy<Value = Value> {
    (0i32..4, 0i32..4).prop_map(|(a, b)| json!([f64::from(a) * 0.5, f64::from(b) * 0.5]))
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        (field(), scalar()).prop_map(|(f, v)| json!({"equals": {f: v}})),
        (field(), prop::collection::vec(prop::sample::select(vec!["x", "y", "1"]), 1..3))
            .prop_map(|(f, v)| json!({"in": {f: v}})),
        (
            field(),
            prop::sample::select(vec!["gt", "gte"]),
            -1i64..3,
            prop::sample::select(vec!["lt", "lte", ""]),
            0i64..4
        )
            .prop_map(|(f, lo_op, lo, hi_op, hi)| {
                let mut spec = serde_json::Map::new();
                spec.insert(lo_op.to_owned(), json!(lo));
                if !hi_op.is_empty() {
                    spec.insert(hi_op.to_owned(), json!(hi));
                }
                json!({"range": {f: spec}})
            }),
        (prop::sample::select(vec!["lt", "lte"]), field(), 0i64..3)
            .prop_map(|(op, f, v)| json!({"range": {f: {op: v}}})),
        field().prop_map(|f| json!({"exists": f})),
        (field(), scalar()).prop_map(|(f, v)| json!({"exists": format!("{f}[{v}]")})),
        field().prop_map(|f| json!({"missing": f})),
        (field(), prop::sample::select(vec!["^x", "y$", "\\d", "X"]), any::<bool>())
            .prop_map(|(f, p, i)| if i {
                json!({"regexp": {f: {"value": p, "flags": "i"}}})
            } else {
                json!({"regexp": {f: p}})
            }),
        prop::collection::vec(prop::sample::select(vec!["1", "2"]), 1..3)
            .prop_map(|v| json!({"ids": {"values": v}})),
        (point(), prop::sample::select(vec!["1m", "60km", "200km"]))
            .prop_map(|(p, d)| json!({"geoDistance": {"loc": p, "distance": d}})),
        (point(), 0i32..3).prop_map(|(p, d)| {
            let d = f64::from(d) * 0.5 + 0.25;
            let lat = p[0].as_f64().unwrap_or(0.0);
            let lon = p[1].as_f64().unwrap_or(0.0);
            json!({"geoBoundingBox": {"loc": {"top": lat + d, "bottom": lat - d, "left": lon - d, "right": lon + d}}})
        }),
        point().prop_map(|p| json!({"geoDistanceRange": {"loc": p, "from": "10km", "to": "100km"}})),
        Just(json!({"geoPolygon": {"loc": {"points": [[0, 0], [0, 1.2], [1.2, 1.2], [1.2, 0]]}}})),
        (field(), scalar()).prop_map(|(f, v)| json!({"match": {f: v}})),
        (-2i64..2, scalar())
            .prop_map(|(i, v)| json!({"select": {"field": "arr", "index": i, "query": {"equals": {"value": v}}}})),
        Just(json!({"nothing": true})),
    ]
}

fn filter() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"and": v})),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"or": v})),
            inner.clone().prop_map(|f| json!({"not": f})),
            (
                prop::collection::vec(inner.clone(), 0..3),
                prop::collection::vec(inner.clone(), 0..2),
                prop::collection::vec(inner, 0..2)
            )
                .prop_map(|(must, must_not, should)| {
                    let mut b = serde_json::Map::new();
                    if !must.is_empty() {
                        b.insert("must".into(), Value::from(must));
                    }
                    if !must_not.is_empty() {
                        b.insert("must_not".into(), Value::from(must_not));
                    }
                    if !should.is_empty() || b.is_empty() {
                        b.insert("should_not".into(), Value::from(should));
                    }
                    json!({"bool": b})
                }),
        ]
    })
}

fn document() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        4 => scalar(),
        1 => prop::collection::vec(scalar(), 0..3).prop_map(Value::from),
        1 => point(),
        1 => (0i32..4, 0i32..4).prop_map(|(a, b)| Value::from(format!("{}, {}", f64::from(a) * 0.5, f64::from(b) * 0.5))),
    ];
    (
        prop::collection::vec(
            (
                prop::sample::select(vec!["a", "b", "arr", "loc", "c.d", "_id"]),
                value.clone(),
            ),
            0..6,
        ),
        prop::option::of(value),
        prop::option::of(prop::sample::select(vec!["1", "2"])),
    )
        .prop_map(|(pairs, nested, id)| {
            let mut m = serde_json::Map::new();
            for (k, v) in pairs {
                m.insert(k.to_owned(), v);
            }
            if let Some(n) = nested {
                m.insert("c".to_owned(), json!({"d": n}));
            }
            if let Some(id) = id {
                m.insert("_id".to_owned(), Value::from(id));
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn indexed_matcher_agrees_with_plain_evaluation(
        filters in prop::collection::vec(filter(), 1..10),
        docs in prop::collection::vec(document(), 1..8),
        removed in prop::collection::vec(any::<bool>(), 10),
    ) {
        let mut engine = FilterEngine::new(0);
        let mut stored = Vec::new();
        for raw in &filters {
            let Ok(normalized) = engine.normalize("i", "c", raw) else { continue };
            let node = parse(raw).expect("normalized filters parse");
            let id = engine.store(normalized);
            stored.push((raw, node, id));
        }
        let check = |engine: &FilterEngine, live: &[&(&Value, super::parse::Node, super::FilterId)]| -> Result<(), TestCaseError> {
            for doc in &docs {
                let found: HashSet<_> = engine.test("i", "c", doc, None).into_iter().collect();
                for (raw, node, id) in live {
                    let expected = eval(node, &Doc::new(doc, None));
                    prop_assert_eq!(
                        found.contains(id), expected,
                        "filter {} on document {}", raw, doc
                    );
                }
                let ids: HashSet<_> = live.iter().map(|(_, _, id)| id.clone()).collect();
                prop_assert!(found.is_subset(&ids));
            }
            Ok(())
        };
        let live: Vec<_> = stored.iter().collect();
        check(&engine, &live)?;
        // Remove some filters; the others must keep matching the same way.
        let mut gone = HashSet::new();
        for ((_, _, id), remove) in stored.iter().zip(&removed) {
            if *remove && gone.insert(id.clone()) {
                prop_assert!(engine.remove(id));
            }
        }
        let live: Vec<_> = stored.iter().filter(|(_, _, id)| !gone.contains(id)).collect();
        check(&engine, &live)?;
        prop_assert_eq!(engine.len(), live.iter().map(|(_, _, id)| id.clone()).collect::<HashSet<_>>().len());
    }
}

fn bound() -> impl Strategy<Value = Option<super::atom::Bound>> {
    prop::option::of(
        (-5i32..5, any::<bool>()).prop_map(|(v, inclusive)| super::atom::Bound {
            value: f64::from(v) * 0.5,
            inclusive,
        }),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// The interval index (tree, pending list, tombstones) agrees with a
    /// linear scan, through insertions and removals.
    #[test]
    fn interval_index_agrees_with_linear_scan(
        ranges in prop::collection::vec((bound(), bound()), 1..120),
        removals in prop::collection::vec(any::<prop::sample::Index>(), 0..80),
    ) {
        use super::atom::Range;
        use super::interval::IntervalIndex;
        let mut index = IntervalIndex::default();
        let mut live: Vec<(u32, Range)> = Vec::new();
        for (i, (low, high)) in ranges.into_iter().enumerate() {
            if let (Some(l), Some(h)) = (low, high)
                && l.value >= h.value
            {
                continue; // refused by the parser
            }
            let r = Range { low, high };
            let id = u32::try_from(i).expect("small");
            index.insert(&r, id);
            live.push((id, r));
        }
        let check = |index: &IntervalIndex, live: &[(u32, Range)]| -> Result<(), TestCaseError> {
            for q in -12..=12 {
                let x = f64::from(q) * 0.25;
                let mut found = Vec::new();
                index.query(x, |id| found.push(id));
                found.sort_unstable();
                let mut expected: Vec<u32> = live.iter().filter(|(_, r)| r.contains(x)).map(|(id, _)| *id).collect();
                expected.sort_unstable();
                prop_assert_eq!(found, expected, "x = {}", x);
            }
            Ok(())
        };
        check(&index, &live)?;
        for r in removals {
            if live.is_empty() {
                break;
            }
            let (id, _) = live.swap_remove(r.index(live.len()));
            index.remove(id);
            check(&index, &live)?;
        }
    }
}
