//! Unit tests of the filter engine.

use serde_json::{Value, json};

use super::{FilterEngine, FilterError, FilterId};

fn engine() -> FilterEngine {
    FilterEngine::new(100)
}

fn register(e: &mut FilterEngine, filter: Value) -> FilterId {
    let n = e.normalize("idx", "coll", &filter).expect("valid filter");
    e.store(n)
}

fn id_of(filter: Value) -> FilterId {
    engine()
        .normalize("idx", "coll", &filter)
        .expect("valid filter")
        .id()
        .clone()
}

fn matching(e: &FilterEngine, doc: Value) -> Vec<FilterId> {
    let mut v = e.test("idx", "coll", &doc, None);
    v.sort();
    v
}

/// Whether `doc` matches `filter` alone in a fresh engine.
fn hit(filter: Value, doc: Value) -> bool {
    let mut e = engine();
    let id = register(&mut e, filter);
    let found = e.test("idx", "coll", &doc, None);
    assert!(found.len() <= 1);
    found.first() == Some(&id)
}

fn err(filter: Value) -> String {
    engine()
        .normalize("idx", "coll", &filter)
        .expect_err("invalid filter")
        .to_string()
}

// ---------------------------------------------------------------- equals

#[test]
fn equals_matches_strictly() {
    let f = json!({"equals": {"foo": "bar"}});
    assert!(hit(f.clone(), json!({"foo": "bar"})));
    assert!(!hit(f.clone(), json!({"foo": "qux"})));
    assert!(!hit(f.clone(), json!({"qux": "bar"})));
    assert!(!hit(f.clone(), json!({})));
    assert!(
        !hit(f.clone(), json!({"foo": ["bar"]})),
        "equals never matches an array"
    );
    assert!(!hit(f, json!({"foo": {"bar": true}})));
    assert!(!hit(json!({"equals": {"n": 1}}), json!({"n": "1"})));
    assert!(!hit(json!({"equals": {"n": "1"}}), json!({"n": 1})));
    assert!(hit(json!({"equals": {"n": 1}}), json!({"n": 1.0})));
    assert!(hit(json!({"equals": {"n": 0}}), json!({"n": -0.0})));
    assert!(hit(json!({"equals": {"a": false}}), json!({"a": false})));
    assert!(!hit(json!({"equals": {"a": false}}), json!({"a": null})));
    assert!(hit(json!({"equals": {"a": null}}), json!({"a": null})));
    assert!(!hit(json!({"equals": {"a": null}}), json!({})));
    assert!(hit(json!({"equals": {"a": ""}}), json!({"a": ""})));
}

#[test]
fn equals_nested_and_dotted_paths() {
    let f = json!({"equals": {"foo.bar.baz": "qux"}});
    assert!(hit(f.clone(), json!({"foo": {"bar": {"baz": "qux"}}})));
    assert!(hit(f.clone(), json!({"foo.bar": {"baz": "qux"}})));
    assert!(hit(f.clone(), json!({"foo": {"x": 1}, "foo.bar.baz": "qux"})));
    assert!(
        !hit(f.clone(), json!({"foo": [{"bar": {"baz": "qux"}}]})),
        "arrays are not traversed"
    );
    assert!(!hit(f, json!({"foo": {"bar": "qux"}})));
}

#[test]
fn not_equals_matches_missing_and_other_values() {
    let f = json!({"not": {"equals": {"foo": "bar"}}});
    assert!(!hit(f.clone(), json!({"foo": "bar"})));
    assert!(hit(f.clone(), json!({"foo": "qux"})));
    assert!(
        hit(f.clone(), json!({"qux": "bar"})),
        "missing field matches a negated equals"
    );
    assert!(hit(f, json!({"foo": ["bar"]})));
    // Koncorde: two negations on different fields, one hit.
    let mut e = engine();
    register(&mut e, json!({"not": {"equals": {"a": "x"}}}));
    register(&mut e, json!({"not": {"equals": {"b": "y"}}}));
    assert_eq!(matching(&e, json!({"a": "x"})).len(), 1);
}

#[test]
fn equals_validation_errors() {
    assert_eq!(err(json!({"equals": ["foo"]})), "\"equals\": must be an object");
    assert_eq!(
        err(json!({"equals": {}})),
        "\"equals\": expected object to have exactly 1 property, got 0"
    );
    assert_eq!(
        err(json!({"equals": {"a": 1, "b": 2}})),
        "\"equals\": expected object to have exactly 1 property, got 2"
    );
    assert_eq!(
        err(json!({"equals": {"foo": ["bar"]}})),
        "\"equals.foo\": must either be a string, a number, a boolean, or null"
    );
    assert_eq!(
        err(json!({"equals": {"foo": {}}})),
        "\"equals.foo\": must either be a string, a number, a boolean, or null"
    );
}

// -------------------------------------------------------------------- in

#[test]
fn in_matches_any_value() {
    let f = json!({"in": {"name": ["Grace", "Ada"]}});
    assert!(hit(f.clone(), json!({"name": "Ada"})));
    assert!(hit(f.clone(), json!({"name": "Grace"})));
    assert!(!hit(f.clone(), json!({"name": "Marie"})));
    assert!(!hit(f.clone(), json!({})));
    assert!(hit(json!({"not": f}), json!({"name": "Marie"})));
}

#[test]
fn in_validation_errors() {
    assert_eq!(err(json!({"in": {"foo": []}})), "\"in.foo\": cannot be empty");
    assert_eq!(err(json!({"in": {"foo": "bar"}})), "\"in.foo\": must be an array");
    assert_eq!(
        err(json!({"in": {"foo": ["a", 1]}})),
        "\"in.foo\": must hold only values of type \"string\""
    );
    assert_eq!(
        err(json!({"in": {}})),
        "\"in\": expected object to have exactly 1 property, got 0"
    );
}

// ----------------------------------------------------------------- range

#[test]
fn range_bounds() {
    let f = json!({"range": {"foo": {"gt": 42, "lt": 110}}});
    assert!(hit(f.clone(), json!({"foo": 73})));
    assert!(!hit(f.clone(), json!({"foo": 42})));
    assert!(!hit(f.clone(), json!({"foo": 110})));
    assert!(hit(f.clone(), json!({"foo": 42.000001})));
    assert!(!hit(f.clone(), json!({"foo": "73"})), "strings are not numbers");
    assert!(!hit(f.clone(), json!({"bar": 73})));
    assert!(!hit(f, json!({"foo": [73]})));
    let f = json!({"range": {"foo": {"gte": 42, "lte": 110}}});
    assert!(hit(f.clone(), json!({"foo": 42})));
    assert!(hit(f, json!({"foo": 110})));
    assert!(hit(json!({"range": {"foo": {"gt": -10}}}), json!({"foo": -5})));
    assert!(hit(json!({"range": {"foo": {"lt": -10}}}), json!({"foo": -105})));
    assert!(hit(json!({"range": {"foo": {"lt": 42}}}), json!({"foo": 0})));
}

#[test]
fn not_range_matches_outside_missing_and_non_numbers() {
    let f = json!({"not": {"range": {"foo": {"gt": 42, "lt": 110}}}});
    assert!(hit(f.clone(), json!({"foo": -89})));
    assert!(hit(f.clone(), json!({"foo": 42})));
    assert!(hit(f.clone(), json!({"foo": 110})));
    assert!(!hit(f.clone(), json!({"foo": 50})));
    assert!(hit(f.clone(), json!({"bar": 50})));
    assert!(hit(f, json!({"foo": "50"})));
}

#[test]
fn many_ranges_on_one_field() {
    // Enough ranges to exercise the interval tree rebuilds and tombstones.
    let mut e = engine();
    let mut ids = Vec::new();
    for i in 0..300 {
        let lo = f64::from(i);
        ids.push(register(
            &mut e,
            json!({"range": {"x": {"gte": lo, "lt": lo + 10.0}}}),
        ));
    }
    assert_eq!(matching(&e, json!({"x": 5})).len(), 6);
    assert_eq!(matching(&e, json!({"x": 100.5})).len(), 10);
    for id in ids.iter().step_by(2) {
        assert!(e.remove(id));
    }
    assert_eq!(matching(&e, json!({"x": 100.5})).len(), 5);
    assert_eq!(matching(&e, json!({"x": -1})).len(), 0);
}

#[test]
fn range_validation_errors() {
    assert_eq!(
        err(json!({"range": {"age": {"gt": "42"}}})),
        "\"range.age.gt\": must be a number"
    );
    assert_eq!(
        err(json!({"range": {"foo": {}}})),
        "\"range.foo\": must be a non-empty object"
    );
    assert_eq!(
        err(json!({"range": {"foo": {"gt": 42, "bar": 1}}})),
        "\"range.foo\": \"bar\" is not an allowed attribute (allowed: gt,gte,lt,lte)"
    );
    assert_eq!(
        err(json!({"range": {"foo": {"gt": 42, "gte": 13}}})),
        "\"range.foo\": only 1 lower boundary allowed"
    );
    assert_eq!(
        err(json!({"range": {"foo": {"lt": 42, "lte": 13}}})),
        "\"range.foo\": only 1 upper boundary allowed"
    );
    assert_eq!(
        err(json!({"range": {"foo": {"lt": 42, "gt": 200}}})),
        "\"range.foo\": lower boundary must be strictly inferior to the upper one"
    );
}

// ---------------------------------------------------------- exists/missing

#[test]
fn exists_field_and_array_value() {
    assert!(hit(json!({"exists": "foo"}), json!({"foo": "bar"})));
    assert!(hit(json!({"exists": "foo"}), json!({"foo": null})));
    assert!(!hit(json!({"exists": "foo"}), json!({"fooo": "bar"})));
    assert!(hit(json!({"exists": {"field": "foo"}}), json!({"foo": 1})));
    assert!(hit(
        json!({"exists": "foo.bar.baz"}),
        json!({"foo": {"bar": {"baz": 1}}})
    ));
    assert!(hit(
        json!({"exists": "foo.bar"}),
        json!({"foo": {"bar": {"baz": 1}}})
    ));
    for (syntax, value) in [
        ("foo[\"bar\"]", json!("bar")),
        ("foo[2.5]", json!(2.5)),
        ("foo[42]", json!(42)),
        ("foo[true]", json!(true)),
        ("foo[false]", json!(false)),
        ("foo[null]", json!(null)),
    ] {
        assert!(
            hit(
                json!({"exists": syntax}),
                json!({"foo": ["hello", value, "world"]})
            ),
            "{syntax}"
        );
        assert!(
            !hit(json!({"exists": syntax}), json!({"foo": ["hello", "world"]})),
            "{syntax}"
        );
    }
    assert!(!hit(json!({"exists": "foo[null]"}), json!({"foo": ["null"]})));
    assert!(!hit(json!({"exists": "foo[\"bar\"]"}), json!({"foo": "bar"})));
    assert!(hit(
        json!({"exists": "foo.ba\\[true\\]"}),
        json!({"foo": {"ba[true]": 1}})
    ));
    assert!(hit(json!({"exists": "foo[bar"}), json!({"foo[bar": 1})));
    // Koncorde issue #24: duplicated array values.
    let f = json!({"and": [{"equals": {"name": "Leo"}}, {"exists": "skills[\"js\"]"}]});
    assert!(!hit(
        f.clone(),
        json!({"name": "Bob", "skills": ["js", "py", "js"]})
    ));
    assert!(hit(f, json!({"name": "Leo", "skills": ["js", "py", "js"]})));
}

#[test]
fn missing_field_and_array_value() {
    assert!(hit(json!({"missing": "foo"}), json!({"bar": 1})));
    assert!(!hit(json!({"missing": "foo"}), json!({"foo": 1})));
    assert!(hit(json!({"not": {"exists": "foo"}}), json!({"bar": 1})));
    assert!(!hit(
        json!({"missing": "foo.bar.baz"}),
        json!({"foo": {"bar": {"baz": 1}}})
    ));
    let f = json!({"missing": "foo.bar[\"baz\"]"});
    assert!(hit(f.clone(), json!({"foo": {"bar": ["qux"]}})));
    assert!(!hit(f.clone(), json!({"foo": {"bar": ["baz"]}})));
    assert!(hit(f.clone(), json!({"bar": "foo"})), "missing array field");
    assert!(hit(f, json!({"foo": {"bar": 42}})), "not an array");
    assert!(hit(
        json!({"missing": "foo.bar[\"true\"]"}),
        json!({"foo": {"bar": [true]}})
    ));
    assert!(hit(json!({"missing": {"field": "foo"}}), json!({})));
}

#[test]
fn exists_validation_errors() {
    assert_eq!(
        err(json!({"exists": ""})),
        "\"exists\": cannot test empty field name"
    );
    assert_eq!(
        err(json!({"exists": "foo['bar']"})),
        "\"exists\": contains an invalid array value (\"'bar'\")"
    );
    assert_eq!(
        err(json!({"exists": {}})),
        "\"exists\": expected object to have exactly 1 property, got 0"
    );
    assert_eq!(
        err(json!({"exists": {"foo": "bar"}})),
        "\"exists\": the property \"field\" is missing"
    );
    assert_eq!(
        err(json!({"exists": {"field": 42}})),
        "\"exists.field\": must be a string"
    );
    assert_eq!(
        err(json!({"missing": ""})),
        "\"missing\": cannot test empty field name"
    );
    assert_eq!(err(json!({"exists": 42})), "\"exists\": must be an object");
}

// ---------------------------------------------------------------- regexp

#[test]
fn regexp_matching() {
    let f = json!({"regexp": {"foo": {"value": "^\\w{2}oba\\w$", "flags": "i"}}});
    assert!(hit(f.clone(), json!({"foo": "FOOBAR"})));
    assert!(!hit(f.clone(), json!({"foo": "Saskatchewan"})));
    assert!(!hit(f.clone(), json!({"bar": "foobar"})));
    assert!(!hit(f.clone(), json!({"foo": 42})));
    assert!(hit(json!({"not": f.clone()}), json!({"foo": "bar"})));
    assert!(hit(json!({"not": f.clone()}), json!({"bar": "qux"})));
    assert!(!hit(json!({"not": f}), json!({"foo": "foobar"})));
    assert!(hit(json!({"regexp": {"foo": "^bar"}}), json!({"foo": "barn"})));
    assert!(!hit(json!({"regexp": {"foo": "^bar"}}), json!({"foo": "BARN"})));
    assert!(hit(json!({"regexp": {"a.b": "x+"}}), json!({"a": {"b": "axxb"}})));
    // RE2 semantics: \d and \w are ASCII-only.
    assert!(!hit(json!({"regexp": {"foo": "^\\d$"}}), json!({"foo": "٣"})));
    assert!(hit(json!({"regexp": {"foo": "^\\d$"}}), json!({"foo": "7"})));
    assert!(!hit(json!({"regexp": {"foo": "^[\\w]+$"}}), json!({"foo": "é"})));
    assert!(hit(
        json!({"regexp": {"foo": "^[\\w-]+$"}}),
        json!({"foo": "a-b"})
    ));
    assert!(hit(json!({"regexp": {"foo": "^[[]$"}}), json!({"foo": "["})));
    assert!(hit(json!({"regexp": {"foo": "\\bb"}}), json!({"foo": "a b"})));
    // Flags.
    let multi = json!({"regexp": {"foo": {"value": "^b$", "flags": "m"}}});
    assert!(hit(multi, json!({"foo": "a\nb\nc"})));
    assert!(!hit(json!({"regexp": {"foo": "^b$"}}), json!({"foo": "a\nb\nc"})));
    let dotall = json!({"regexp": {"foo": {"value": "a.b", "flags": "s"}}});
    assert!(hit(dotall, json!({"foo": "a\nb"})));
    assert!(hit(
        json!({"regexp": {"foo": {"value": "x", "flags": "gu"}}}),
        json!({"foo": "x"})
    ));
}

#[test]
fn regexp_validation_errors() {
    assert_eq!(
        err(json!({"regexp": {}})),
        "\"regexp\": expected object to have exactly 1 property, got 0"
    );
    assert_eq!(
        err(json!({"regexp": {"foo": {}}})),
        "\"regexp.foo\": must be a non-empty object"
    );
    assert_eq!(
        err(json!({"regexp": {"foo": {"value": "foo", "flags": "i", "bar": 1}}})),
        "\"regexp.foo\": \"bar\" is not an allowed attribute (allowed: flags,value)"
    );
    assert_eq!(
        err(json!({"regexp": {"foo": {"flags": "i"}}})),
        "\"regexp.foo\": the property \"value\" is missing"
    );
    assert_eq!(
        err(json!({"regexp": {"foo": {"value": "a", "flags": 42}}})),
        "\"regexp.foo.flags\": must be a string"
    );
    assert_eq!(
        err(json!({"regexp": {"foo": 42}})),
        "\"regexp.foo\": must be either a string or a non-empty object"
    );
    let e = err(json!({"regexp": {"foo": {"value": "foo(", "flags": "i"}}}));
    assert!(
        e.starts_with("\"regexp.foo\": cannot parse regexp expression \"/foo(/i\""),
        "{e}"
    );
    assert!(err(json!({"regexp": {"foo": "++"}})).starts_with("\"regexp.foo\": cannot parse regexp"));
    assert!(err(json!({"regexp": {"foo": "(?=a)"}})).starts_with("\"regexp.foo\": cannot parse regexp"));
    let e = err(json!({"regexp": {"foo": {"value": "a", "flags": "INVALID"}}}));
    assert!(
        e.starts_with("\"regexp.foo\": cannot parse regexp expression"),
        "{e}"
    );
    assert!(err(json!({"regexp": {"foo": {"value": "a", "flags": "ii"}}})).contains("duplicate flag"));
}

// ------------------------------------------------------------------- ids

#[test]
fn ids_match_document_id() {
    let f = json!({"ids": {"values": ["a", "b"]}});
    let mut e = engine();
    let id = register(&mut e, f);
    assert_eq!(
        e.test("idx", "coll", &json!({"_id": "a"}), None),
        vec![id.clone()]
    );
    assert_eq!(e.test("idx", "coll", &json!({}), Some("b")), vec![id.clone()]);
    assert!(
        e.test("idx", "coll", &json!({"_id": "a"}), Some("c")).is_empty(),
        "id overrides _id"
    );
    assert_eq!(e.test("idx", "coll", &json!({"_id": "c"}), Some("a")), vec![id]);
    assert!(e.test("idx", "coll", &json!({}), None).is_empty());
}

#[test]
fn ids_validation_errors() {
    assert_eq!(
        err(json!({"ids": {}})),
        "\"ids\": expected object to have exactly 1 property, got 0"
    );
    assert_eq!(
        err(json!({"ids": {"foo": ["a"]}})),
        "\"ids\": the property \"values\" is missing"
    );
    assert_eq!(
        err(json!({"ids": {"values": []}})),
        "\"ids.values\": cannot be empty"
    );
    assert_eq!(
        err(json!({"ids": {"values": "a"}})),
        "\"ids.values\": must be an array"
    );
    assert_eq!(
        err(json!({"ids": {"values": ["a", 42]}})),
        "\"ids.values\": must hold only values of type \"string\""
    );
}

// ------------------------------------------------------------------- geo

const POLYGON: [[f64; 2]; 9] = [
    [43.6021299, 3.8989713],
    [43.6057389, 3.8968173],
    [43.6092889, 3.8970423],
    [43.6100359, 3.9040853],
    [43.6069619, 3.9170343],
    [43.6076479, 3.9230133],
    [43.6038779, 3.9239153],
    [43.6019189, 3.9152403],
    [43.6036049, 3.9092313],
];

#[test]
fn geo_bounding_box() {
    for bbox in [
        json!({"top": 43.6331979, "left": 3.8433703, "bottom": 43.5810609, "right": 3.9282093}),
        json!({"top": "43.6331979", "left": "3.8433703", "bottom": "43.5810609", "right": "3.9282093"}),
        json!({"topLeft": {"lat": 43.6331979, "lon": 3.8433703}, "bottomRight": [43.5810609, 3.9282093]}),
        json!({"top_left": "43.6331979, 3.8433703", "bottom_right": {"lat_lon": [43.5810609, 3.9282093]}}),
    ] {
        let f = json!({"geoBoundingBox": {"loc": bbox}});
        assert!(hit(
            f.clone(),
            json!({"loc": {"lat": 43.6073913, "lon": 3.9109057}})
        ));
        assert!(hit(f.clone(), json!({"loc": [43.6073913, 3.9109057]})));
        assert!(hit(f.clone(), json!({"loc": "43.6073913, 3.9109057"})));
        assert!(hit(f.clone(), json!({"loc": {"latLon": "spf8prntv18e"}})));
        assert!(
            hit(f.clone(), json!({"loc": {"lat": 43.5810609, "lon": 3.8433703}})),
            "border"
        );
        assert!(!hit(f.clone(), json!({"loc": {"lat": 43.7, "lon": 3.9}})));
        assert!(!hit(f.clone(), json!({"loc": {"lat": "foo", "lon": "bar"}})));
        assert!(!hit(f.clone(), json!({"other": [43.6073913, 3.9109057]})));
        assert!(hit(json!({"not": f.clone()}), json!({"other": 1})));
        assert!(!hit(json!({"not": f}), json!({"loc": [43.6, 3.9]})));
    }
}

#[test]
fn geo_distance_and_range() {
    let f = json!({"geoDistance": {"loc": {"lat": 51.5029017, "lon": -0.1606903}, "distance": "10km"}});
    let london = json!({"loc": {"lat": 51.519291, "lon": -0.149817}});
    let texas = json!({"loc": {"lat": 32.692742, "lon": -97.114127}});
    assert!(hit(f.clone(), london.clone()));
    assert!(!hit(f.clone(), texas.clone()));
    assert!(hit(json!({"not": f}), texas.clone()));
    // About 1.98 km between the two points.
    let near = json!({"geoDistance": {"loc": [51.5029017, -0.1606903], "distance": "1 km"}});
    assert!(!hit(near, london.clone()));
    let f =
        json!({"geoDistanceRange": {"loc": [51.5029017, -0.1606903], "from": "1km", "to": "10 kilometers"}});
    assert!(hit(f.clone(), london.clone()));
    assert!(
        !hit(f.clone(), json!({"loc": [51.5029017, -0.1606903]})),
        "inside the inner radius"
    );
    assert!(!hit(f, texas));
    let f = json!({"geoDistance": {"loc": "gcpvh6uxh60x1", "distance": "1 093,6 yd"}});
    assert!(hit(f, json!({"loc": [51.5173, -0.14565]})));
}

#[test]
fn geo_polygon() {
    let points: Vec<Value> = POLYGON.iter().map(|p| json!(p)).collect();
    let f = json!({"geoPolygon": {"loc": {"points": points}}});
    assert!(hit(
        f.clone(),
        json!({"loc": {"latLon": [43.6073913, 3.9109057]}})
    ));
    assert!(hit(f.clone(), json!({"loc": {"latLon": POLYGON[0]}})), "corner");
    assert!(hit(
        f.clone(),
        json!({"loc": {"lat": POLYGON[0][0] + 1e-5, "lon": POLYGON[0][1] + 1e-5}})
    ));
    assert!(!hit(
        f.clone(),
        json!({"loc": {"lat": POLYGON[0][0] - 1e-5, "lon": POLYGON[0][1]}})
    ));
    assert!(
        !hit(f.clone(), json!({"loc": [43.6025, 3.9092]})),
        "in the concave notch"
    );
    assert!(!hit(f, json!({"foo": "bar"})));
}

#[test]
fn geo_distance_units() {
    use super::geo::parse_distance;
    let close = |s: &str, v: f64| {
        let d = parse_distance(s).expect("valid distance");
        assert!((d - v).abs() < 1e-6, "{s}: {d}");
    };
    for s in [
        "1000",
        "1000 m",
        "1km",
        "1 kilometer",
        "3280.839895013123 ft",
        "3280.839895013123FT",
        "39370.078740157485 inches",
        "39370.078740157485 in",
        "1 093,6132983377079 yd",
        "0.6213711922373339 miles",
    ] {
        close(s, 1000.0);
    }
    close("12mm", 0.012);
    assert!(parse_distance("1 ly").is_none());
    assert!(parse_distance("km").is_none());
    assert!(parse_distance("1.2.3m").is_none());
}

#[test]
fn geo_validation_errors() {
    assert_eq!(
        err(json!({"geoDistance": {"foo": [1, 2], "distance": 42}})),
        "\"geoDistance.distance\": must be a string"
    );
    assert_eq!(
        err(json!({"geoDistance": {"foo": [1, 2], "distance": "1 ly"}})),
        "\"geoDistance.distance\": unable to parse distance value \"1 ly\""
    );
    assert_eq!(
        err(json!({"geoDistance": {"foo": {"latLon": 42}, "distance": "1km"}})),
        "\"geoDistance.foo\": unrecognized point format"
    );
    assert_eq!(
        err(json!({"geoDistance": {"foo": {"latLon": "[10, 10]"}, "distance": "1km"}})),
        "\"geoDistance.foo\": unrecognized point format"
    );
    assert_eq!(
        err(json!({"geoDistance": {}})),
        "\"geoDistance\": expected object to have exactly 2 properties, got 0"
    );
    assert_eq!(
        err(json!({"geoDistanceRange": {"foo": [1, 2], "from": "10km", "to": "1km"}})),
        "\"geoDistanceRange\": inner radius must be smaller than outer radius"
    );
    assert_eq!(
        err(json!({"geoDistanceRange": {"foo": [1, 2], "from": 42, "to": "1km"}})),
        "\"geoDistanceRange.from\": must be a string"
    );
    assert_eq!(
        err(
            json!({"geoBoundingBox": {"foo": {"top_left": "40.73 / -74.1", "bottom_right": "40.01 / -71.12"}}})
        ),
        "\"geoBoundingBox.foo\": unrecognized geo-point format"
    );
    let e =
        err(json!({"geoBoundingBox": {"foo": {"top": "1", "left": "2", "bottom": "0", "right": "foobar"}}}));
    assert!(
        e.starts_with("\"geoBoundingBox.foo\": unrecognized geoBoundingBox format"),
        "{e}"
    );
    assert_eq!(
        err(json!({"geoBoundingBox": {"foo": {"top": 0, "left": 0, "bottom": 1, "right": 1}}})),
        "\"geoBoundingBox.foo\": bottom must be strictly lower than top"
    );
    assert_eq!(
        err(json!({"geoPolygon": {"foo": {"points": [[0, 0], [5, 5]]}}})),
        "\"geoPolygon.foo.points\": at least 3 points are required to build a polygon"
    );
    assert_eq!(
        err(json!({"geoPolygon": {"foo": {"points": [[0, 0], [5, 5], 42]}}})),
        "\"geoPolygon.foo.points\": unrecognized point format \"42\""
    );
    assert_eq!(
        err(json!({"geoPolygon": {"foo": {}}})),
        "\"geoPolygon.foo\": expected object to have exactly 1 property, got 0"
    );
    assert_eq!(
        err(json!({"geoPolygon": {"foo": {"points": "foobar"}}})),
        "\"geoPolygon.foo.points\": must be an array"
    );
}

// ------------------------------------------------- match, select, nothing

#[test]
fn match_select_nothing() {
    let f = json!({"match": {"foo": [1, 2, 3]}});
    assert!(hit(f.clone(), json!({"foo": [0, 1, 4, 2, 3]})));
    assert!(!hit(f, json!({"foo": [0, 0, 1, 2]})));
    let f = json!({"match": {"foo": {"a": 5}, "b.c": "x"}});
    assert!(hit(f.clone(), json!({"foo": {"a": 5, "b": 8}, "b": {"c": "x"}})));
    assert!(!hit(f, json!({"foo": {"b": 8}, "b": {"c": "x"}})));
    let f = json!({"select": {"field": "hobby", "index": -1, "query": {"equals": {"value": "algo"}}}});
    assert!(hit(f.clone(), json!({"hobby": ["prog", "algo"]})));
    assert!(!hit(f.clone(), json!({"hobby": ["algo", "prog"]})));
    assert!(!hit(f.clone(), json!({"hobby": "algo"})));
    assert!(!hit(f, json!({"hobby": []})));
    assert!(!hit(json!({"nothing": true}), json!({"a": 1})));
    assert!(hit(json!({"not": {"nothing": 1}}), json!({"a": 1})));
    assert_eq!(err(json!({"match": {}})), "\"match\": must be a non-empty object");
    assert_eq!(
        err(json!({"select": {"field": "a", "index": 1.5, "query": {"exists": "value"}}})),
        "\"select.index\": cannot have decimals, must be an integer"
    );
    assert_eq!(
        err(json!({"select": {"field": "a", "index": 0, "query": {"yeet": 1}}})),
        "\"select.query.yeet\": unknown keyword"
    );
}

// ------------------------------------------------------------- operands

#[test]
fn and_or_not_bool() {
    let f = json!({"and": [{"equals": {"city": "NYC"}}, {"equals": {"hobby": "computer"}}]});
    assert!(hit(f.clone(), json!({"city": "NYC", "hobby": "computer"})));
    assert!(!hit(f, json!({"city": "London", "hobby": "computer"})));
    let f = json!({"or": [{"equals": {"city": "NYC"}}, {"range": {"age": {"gt": 50}}}]});
    assert!(hit(f.clone(), json!({"city": "NYC"})));
    assert!(hit(f.clone(), json!({"age": 60})));
    assert!(!hit(f, json!({"age": 40})));
    let f = json!({"bool": {
        "must": [{"in": {"firstName": ["Grace", "Ada"]}}, {"range": {"age": {"gte": 36, "lt": 85}}}],
        "must_not": [{"equals": {"city": "NYC"}}],
        "should": [{"equals": {"hobby": "computer"}}, {"exists": "lastName"}],
        "should_not": [{"equals": {"a": 1}}, {"equals": {"b": 1}}]
    }});
    let grace =
        json!({"firstName": "Grace", "lastName": "Hopper", "age": 85, "city": "NYC", "hobby": "computer"});
    let ada =
        json!({"firstName": "Ada", "lastName": "Lovelace", "age": 36, "city": "London", "hobby": "computer"});
    let marie =
        json!({"firstName": "Marie", "lastName": "Curie", "age": 55, "city": "Paris", "hobby": "radium"});
    assert!(!hit(f.clone(), grace));
    assert!(hit(f.clone(), ada));
    assert!(!hit(f.clone(), marie));
    assert!(!hit(
        f,
        json!({"firstName": "Ada", "age": 40, "hobby": "computer", "a": 1, "b": 1})
    ));
    // Koncorde's "complex filter" test.
    let f = json!({"and": [
        {"in": {"foo": ["bar", "baz"]}},
        {"or": [
            {"range": {"num": {"lt": 10, "gte": 0}}},
            {"range": {"num": {"lt": 100, "gte": 90}}},
            {"not": {"range": {"num": {"lt": 50, "gt": 40}}}}
        ]}
    ]});
    assert!(!hit(f.clone(), json!({"foo": "qux", "num": 1})));
    assert!(!hit(f.clone(), json!({"num": 41})));
    assert!(!hit(f.clone(), json!({"foo": "bar", "num": 41})));
    assert!(hit(f, json!({"foo": "baz", "num": 91})));
}

#[test]
fn same_field_rules_keep_semantics() {
    // An array can be a geopoint: "loc[1.5]" and a geo test may both hold.
    let f = json!({"and": [{"exists": "loc[1.5]"}, {"geoDistance": {"loc": [1.5, 0.5], "distance": "1m"}}]});
    assert!(hit(f, json!({"loc": [1.5, 0.5]})));
    // An array is never equal to a scalar, nor in a range.
    let f = json!({"and": [{"exists": "v[1]"}, {"not": {"range": {"v": {"gt": 0}}}}]});
    assert!(hit(f.clone(), json!({"v": [1]})));
    assert_eq!(id_of(f), id_of(json!({"exists": "v[1]"})));
    // equals fixes the value: a geohash string can satisfy a geo test.
    let f = json!({"and": [{"equals": {"p": "s00000"}}, {"geoBoundingBox": {"p": {"top": 1, "left": -1, "bottom": -1, "right": 1}}}]});
    assert!(hit(f.clone(), json!({"p": "s00000"})));
    assert_eq!(id_of(f), id_of(json!({"equals": {"p": "s00000"}})));
}

#[test]
fn everything_filter() {
    let mut e = engine();
    let all = register(&mut e, json!({}));
    assert_eq!(matching(&e, json!({"foo": "bar"})), vec![all.clone()]);
    assert_eq!(matching(&e, json!("not an object")), vec![all.clone()]);
    assert_eq!(id_of(json!(null)), all);
    assert!(e.test("idx", "other", &json!({}), None).is_empty());
    assert!(e.test("other", "coll", &json!({}), None).is_empty());
}

#[test]
fn operand_validation_errors() {
    assert_eq!(err(json!({"and": []})), "\"and\": cannot be empty");
    assert_eq!(err(json!({"or": {}})), "\"or\": must be an array");
    assert_eq!(
        err(json!({"and": [{"exists": "a"}, 42]})),
        "\"and\": can only contain non-empty objects"
    );
    assert_eq!(
        err(json!({"and": [{}]})),
        "\"and\": can only contain non-empty objects"
    );
    assert_eq!(err(json!({"and": [{"foo": 1}]})), "\"and.foo\": unknown keyword");
    assert_eq!(
        err(json!({"and": [{"exists": {"foo": 1}}]})),
        "\"and.exists\": the property \"field\" is missing"
    );
    assert_eq!(err(json!({"not": []})), "\"not\": must be an object");
    assert_eq!(err(json!({"bool": {}})), "\"bool\": must be a non-empty object");
    assert_eq!(
        err(json!({"bool": {"must": [], "foo": []}})),
        "\"bool\": \"foo\" is not an allowed attribute (allowed: must,must_not,should,should_not)"
    );
    assert_eq!(
        err(json!({"bool": {"should": []}})),
        "\"bool.should\": cannot be empty"
    );
    assert_eq!(err(json!({"foo": "bar"})), "\"foo\": unknown keyword");
    assert_eq!(
        err(json!({"equals": {"a": 1}, "exists": "b"})),
        "Invalid filter syntax. Filters must have one keyword only"
    );
    assert_eq!(
        err(json!({"or": [{"equals": {"a": 1}, "exists": "b"}]})),
        "\"or\": Invalid filter syntax. Filters must have one keyword only"
    );
    assert!(matches!(
        engine().normalize("i", "c", &json!([1])),
        Err(FilterError::Syntax(_))
    ));
}

// -------------------------------------------------------- normalization

#[test]
fn equivalent_filters_share_an_id() {
    let a = json!({"equals": {"a": 1}});
    let b = json!({"range": {"b": {"gt": 3}}});
    let c = json!({"exists": "c"});
    assert_eq!(id_of(json!({"and": [a, b]})), id_of(json!({"and": [b, a]})));
    assert_eq!(
        id_of(json!({"or": [a, {"and": [b, c]}]})),
        id_of(json!({"or": [{"and": [c, b]}, a]}))
    );
    assert_eq!(id_of(json!({})), id_of(json!({})));
    assert_eq!(id_of(json!({"not": {"not": a}})), id_of(a.clone()));
    assert_eq!(id_of(json!({"and": [a, a]})), id_of(a.clone()));
    assert_eq!(
        id_of(json!({"or": [a, {"and": [a, b]}]})),
        id_of(a.clone()),
        "absorption"
    );
    assert_eq!(
        id_of(json!({"or": [{"and": [a, b]}, {"and": [a, {"not": b}]}]})),
        id_of(a.clone())
    );
    assert_eq!(
        id_of(json!({"in": {"f": ["x", "y"]}})),
        id_of(json!({"in": {"f": ["y", "x", "y"]}}))
    );
    assert_eq!(
        id_of(json!({"in": {"f": ["x", "y"]}})),
        id_of(json!({"or": [{"equals": {"f": "y"}}, {"equals": {"f": "x"}}]}))
    );
    assert_eq!(
        id_of(json!({"missing": "f"})),
        id_of(json!({"not": {"exists": {"field": "f"}}}))
    );
    assert_eq!(
        id_of(json!({"bool": {"must": [a, b], "should": [c]}})),
        id_of(json!({"and": [b, c, a]}))
    );
    // Koncorde's documented example.
    assert_eq!(
        id_of(json!({"and": [
            {"not": {"in": {"some_document_field": ["foo", "bar"]}}},
            {"missing": {"field": "another_field"}}
        ]})),
        id_of(json!({"not": {"or": [
            {"or": [
                {"equals": {"some_document_field": "foo"}},
                {"equals": {"some_document_field": "bar"}}
            ]},
            {"exists": {"field": "another_field"}}
        ]}}))
    );
    // Contradictions collapse to "nothing".
    assert_eq!(
        id_of(json!({"and": [{"equals": {"a": 1}}, {"equals": {"a": 2}}]})),
        id_of(json!({"nothing": true}))
    );
    assert_eq!(
        id_of(json!({"and": [a, {"not": a}]})),
        id_of(json!({"nothing": 1}))
    );
    assert_eq!(id_of(json!({"or": [a, {"not": a}]})), id_of(json!({})));
    assert_eq!(id_of(json!({"and": [a, {"exists": "a"}]})), id_of(a.clone()));
    assert_eq!(
        id_of(json!({"regexp": {"a": "x"}})),
        id_of(json!({"regexp": {"a": {"value": "x"}}}))
    );
}

#[test]
fn different_filters_get_different_ids() {
    let mut ids = vec![
        id_of(json!({"equals": {"a": 1}})),
        id_of(json!({"equals": {"a": "1"}})),
        id_of(json!({"equals": {"a": true}})),
        id_of(json!({"equals": {"b": 1}})),
        id_of(json!({"not": {"equals": {"a": 1}}})),
        id_of(json!({"range": {"a": {"gt": 1}}})),
        id_of(json!({"range": {"a": {"gte": 1}}})),
        id_of(json!({"exists": "a"})),
        id_of(json!({"exists": "a[1]"})),
        id_of(json!({"regexp": {"a": {"value": "x", "flags": "i"}}})),
        id_of(json!({"regexp": {"a": "x"}})),
        id_of(json!({})),
        id_of(json!({"nothing": 1})),
    ];
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
    let e = engine();
    let f = json!({"equals": {"a": 1}});
    let id1 = e.normalize("i", "c1", &f).expect("valid").id().clone();
    let id2 = e.normalize("i", "c2", &f).expect("valid").id().clone();
    let id3 = e.normalize("i2", "c1", &f).expect("valid").id().clone();
    assert_ne!(id1, id2);
    assert_ne!(id1, id3);
    assert_eq!(id1.len(), 32);
    assert!(id1.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn ids_are_stable_across_runs() {
    // Pinned value: a change here breaks room ids shared between processes.
    let id = engine()
        .normalize("index", "collection", &json!({"equals": {"a": 1}}))
        .expect("valid")
        .id()
        .clone();
    assert_eq!(
        id,
        engine()
            .normalize("index", "collection", &json!({"equals": {"a": 1.0}}))
            .expect("valid")
            .id()
            .clone()
    );
    assert_eq!(&*id, PINNED_ID);
}

const PINNED_ID: &str = "1c8efd44487ab3191534df5e87bab9b9";

// ------------------------------------------------------- store / remove

#[test]
fn store_is_idempotent_and_remove_keeps_others() {
    let mut e = engine();
    assert!(e.is_empty());
    let a = register(&mut e, json!({"equals": {"foo": "bar"}}));
    let b = register(
        &mut e,
        json!({"and": [{"equals": {"baz": "qux"}}, {"equals": {"foo": "bar"}}]}),
    );
    let again = register(
        &mut e,
        json!({"and": [{"equals": {"foo": "bar"}}, {"equals": {"baz": "qux"}}]}),
    );
    assert_eq!(b, again);
    assert_eq!(e.len(), 2);
    let doc = json!({"foo": "bar", "baz": "qux"});
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(matching(&e, doc.clone()), both);
    assert!(e.remove(&a));
    assert!(!e.remove(&a));
    assert_eq!(matching(&e, doc.clone()), vec![b.clone()]);
    assert_eq!(e.len(), 1);
    assert!(e.remove(&b));
    assert!(e.is_empty());
    assert!(matching(&e, doc).is_empty());
    assert!(e.collections.is_empty());
}

#[test]
fn shared_subfilters_and_conditions_are_freed_with_their_last_user() {
    let mut e = engine();
    let sizes = |e: &FilterEngine| {
        e.collections
            .get("idx")
            .and_then(|c| c.get("coll"))
            .map_or((0, 0), |c| c.sizes())
    };
    let shared = json!({"and": [{"equals": {"a": 1}}, {"range": {"b": {"lt": 5}}}]});
    let f1 = register(&mut e, json!({"or": [shared.clone(), {"exists": "x"}]}));
    let f2 = register(&mut e, json!({"or": [shared.clone(), {"missing": "y"}]}));
    // Atoms: a=1, b<5, x, y; subfilters: shared, x, not y.
    assert_eq!(sizes(&e), (4, 3));
    assert_eq!(matching(&e, json!({"a": 1, "b": 1, "y": 0})).len(), 2);
    assert!(e.remove(&f1));
    assert_eq!(sizes(&e), (3, 2));
    assert_eq!(matching(&e, json!({"a": 1, "b": 1, "y": 0})), vec![f2.clone()]);
    assert_eq!(matching(&e, json!({"a": 2})), vec![f2.clone()]);
    assert!(matching(&e, json!({"y": 1, "x": 1})).is_empty());
    assert!(e.remove(&f2));
    assert_eq!(sizes(&e), (0, 0));
}

#[test]
fn max_conditions_limit() {
    let e = FilterEngine::new(2);
    assert!(
        e.normalize(
            "i",
            "c",
            &json!({"or": [{"equals": {"foo": "bar"}}, {"exists": "bar"}]})
        )
        .is_ok()
    );
    let too_many = json!({"or": [{"equals": {"foo": "bar"}}, {"exists": "bar"}, {"exists": "foo"}]});
    let error = e.normalize("i", "c", &too_many).expect_err("too complex");
    assert_eq!(error, FilterError::TooManyConditions { count: 3, max: 2 });
    assert!(error.to_string().starts_with("filter too complex"));
    assert!(matches!(
        e.normalize("i", "c", &json!({"in": {"a": ["1", "2", "3"]}})),
        Err(FilterError::TooManyConditions { count: 3, .. })
    ));
    assert!(FilterEngine::new(0).normalize("i", "c", &too_many).is_ok());
    assert_eq!(
        FilterEngine::default().max_conditions,
        super::DEFAULT_MAX_CONDITIONS
    );
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    // Built by hand: `json!` would serialize the nested value recursively.
    let wrap = |inner: Value, key: &str| {
        let mut m = serde_json::Map::new();
        m.insert(key.to_owned(), inner);
        Value::Object(m)
    };
    let mut f = json!({"equals": {"a": 1}});
    for _ in 0..10_000 {
        f = wrap(f, "not");
    }
    let e = engine();
    let error = e.normalize("i", "c", &f).expect_err("too deep");
    assert!(matches!(error, FilterError::TooDeep { max: 64, .. }), "{error}");
    assert!(error.to_string().contains("nested too deeply"));
    // Dismantle it iteratively (dropping it whole would recurse).
    while let Value::Object(mut o) = f {
        f = o.remove("not").unwrap_or(Value::Null);
    }
    let mut ok = json!({"equals": {"a": 1}});
    for _ in 0..60 {
        ok = Value::Array(vec![ok, json!({"exists": "b"})]);
        ok = wrap(ok, "and");
    }
    assert!(FilterEngine::new(0).normalize("i", "c", &ok).is_ok());
}

#[test]
fn clause_explosion_is_refused() {
    let ors: Vec<Value> = (0..13)
        .map(|i| json!({"or": [{"equals": {format!("a{i}"): 1}}, {"equals": {format!("b{i}"): 1}}]}))
        .collect();
    let error = engine()
        .normalize("i", "c", &json!({"and": ors}))
        .expect_err("too large");
    assert!(matches!(error, FilterError::TooManyClauses { .. }), "{error}");
    assert!(error.to_string().contains("filter too complex"));
}

#[test]
fn many_filters_mixed() {
    let mut e = engine();
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(register(
            &mut e,
            json!({"and": [{"equals": {"k": i % 10}}, {"range": {"v": {"gte": i}}}]}),
        ));
    }
    let found = matching(&e, json!({"k": 3, "v": 50}));
    // k = 3 for i in {3, 13, 23, 33, 43}, v >= i.
    assert_eq!(found.len(), 5);
    for id in &ids[..100] {
        e.remove(id);
    }
    assert!(matching(&e, json!({"k": 3, "v": 50})).is_empty());
    assert_eq!(matching(&e, json!({"k": 3, "v": 150})).len(), 5);
}
