//! Validation of a Koncorde filter and its conversion into a [`Node`] tree.
//!
//! Error messages and paths follow Koncorde's (`"range.age.gt": must be a
//! number`). `in` and `ids` become an OR of `equals`, `missing` a negated
//! `exists`, `bool` an AND of its parts.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::atom::{Atom, Bound, Pattern, Range, Scalar, Select};
use super::error::FilterError;
use super::geo::{self, Bounds, Point, Shape};
use super::normalize;
use super::path::FieldPath;
use super::pattern;

/// Maximum nesting depth of operands (`and`, `or`, `not`, `bool`, `select`).
pub(crate) const MAX_DEPTH: usize = 64;

/// A validated filter, before normalization.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Matches every document (`{}`).
    All,
    /// Matches no document (`nothing`).
    Nothing,
    Leaf(Atom),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

impl Node {
    /// Number of conditions, counted as Koncorde does (each value of `in`
    /// and `ids` counts as one).
    pub(crate) fn conditions(&self) -> usize {
        match self {
            Node::All | Node::Nothing => 0,
            Node::Leaf(_) => 1,
            Node::Not(n) => n.conditions(),
            Node::And(v) | Node::Or(v) => v.iter().map(Node::conditions).sum(),
        }
    }
}

type Result<T> = std::result::Result<T, FilterError>;

/// Validates a whole filter. `null` and `{}` match everything.
pub(crate) fn parse(filter: &Value) -> Result<Node> {
    match filter {
        Value::Null => Ok(Node::All),
        Value::Object(o) if o.is_empty() => Ok(Node::All),
        Value::Object(o) => parse_object(o, None, 0),
        _ => Err(FilterError::Syntax(
            "Invalid filter syntax. A filter must be an object".to_owned(),
        )),
    }
}

fn join(path: Option<&str>, leaf: &str) -> String {
    match path {
        None => leaf.to_owned(),
        Some(p) => format!("{p}.{leaf}"),
    }
}

fn parse_object(o: &Map<String, Value>, path: Option<&str>, depth: usize) -> Result<Node> {
    let mut keys = o.keys();
    let (Some(keyword), None) = (keys.next(), keys.next()) else {
        let msg = "Invalid filter syntax. Filters must have one keyword only";
        return Err(match path {
            None => FilterError::Syntax(msg.to_owned()),
            Some(p) => FilterError::invalid(p, msg),
        });
    };
    let here = join(path, keyword);
    let arg = &o[keyword];
    let p = here.as_str();
    match keyword.as_str() {
        "and" => Ok(Node::And(parse_list(arg, p, depth)?)),
        "or" => Ok(Node::Or(parse_list(arg, p, depth)?)),
        "not" => {
            let inner = expect_object(arg, p, Some(1))?;
            check_depth(p, depth)?;
            Ok(Node::Not(Box::new(parse_object(inner, Some(p), depth + 1)?)))
        }
        "bool" => parse_bool(arg, p, depth),
        "equals" => {
            let (field, v) = single_field(arg, p)?;
            let fp = join(Some(p), field);
            let s = Scalar::from_json(v).ok_or_else(|| {
                FilterError::invalid(&fp, "must either be a string, a number, a boolean, or null")
            })?;
            Ok(Node::Leaf(Atom::Equals(FieldPath::new(field), s)))
        }
        "in" => {
            let (field, v) = single_field(arg, p)?;
            let values = string_array(v, &join(Some(p), field))?;
            let fp = FieldPath::new(field);
            Ok(Node::Or(
                values
                    .into_iter()
                    .map(|s| Node::Leaf(Atom::Equals(fp.clone(), Scalar::Str(s.into()))))
                    .collect(),
            ))
        }
        "ids" => {
            let obj = expect_object(arg, p, Some(1))?;
            let values = obj
                .get("values")
                .ok_or_else(|| FilterError::invalid(p, "the property \"values\" is missing"))?;
            let values = string_array(values, &join(Some(p), "values"))?;
            let fp = FieldPath::new("_id");
            Ok(Node::Or(
                values
                    .into_iter()
                    .map(|s| Node::Leaf(Atom::Equals(fp.clone(), Scalar::Str(s.into()))))
                    .collect(),
            ))
        }
        "exists" => Ok(Node::Leaf(parse_exists(arg, p)?)),
        "missing" => Ok(Node::Not(Box::new(Node::Leaf(parse_exists(arg, p)?)))),
        "range" => parse_range(arg, p),
        "regexp" => parse_regexp(arg, p),
        "geoBoundingBox" => parse_bbox(arg, p),
        "geoDistance" => parse_geo_distance(arg, p),
        "geoDistanceRange" => parse_geo_distance_range(arg, p),
        "geoPolygon" => parse_polygon(arg, p),
        "nothing" => Ok(Node::Nothing),
        "match" => {
            let obj = expect_object(arg, p, None)?;
            if obj.is_empty() {
                return Err(FilterError::invalid(p, "must be a non-empty object"));
            }
            let mut pairs = Vec::with_capacity(obj.len());
            for (k, v) in obj {
                if json_depth(v, 0) > MAX_DEPTH {
                    return Err(FilterError::TooDeep {
                        path: join(Some(p), k),
                        max: MAX_DEPTH,
                    });
                }
                pairs.push((FieldPath::new(k), v.clone()));
            }
            pairs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            Ok(Node::Leaf(Atom::Match(pairs)))
        }
        "select" => parse_select(arg, p, depth),
        _ => Err(FilterError::invalid(p, "unknown keyword")),
    }
}

fn check_depth(path: &str, depth: usize) -> Result<()> {
    if depth >= MAX_DEPTH {
        return Err(FilterError::TooDeep {
            path: path.to_owned(),
            max: MAX_DEPTH,
        });
    }
    Ok(())
}

fn json_depth(v: &Value, depth: usize) -> usize {
    if depth > MAX_DEPTH {
        return depth;
    }
    match v {
        Value::Array(a) => a
            .iter()
            .map(|e| json_depth(e, depth + 1))
            .max()
            .unwrap_or(depth + 1),
        Value::Object(o) => o
            .values()
            .map(|e| json_depth(e, depth + 1))
            .max()
            .unwrap_or(depth + 1),
        _ => depth,
    }
}

fn parse_list(arg: &Value, path: &str, depth: usize) -> Result<Vec<Node>> {
    let items = arg
        .as_array()
        .ok_or_else(|| FilterError::invalid(path, "must be an array"))?;
    if items.is_empty() {
        return Err(FilterError::invalid(path, "cannot be empty"));
    }
    if items.iter().any(|i| i.as_object().is_none_or(Map::is_empty)) {
        return Err(FilterError::invalid(path, "can only contain non-empty objects"));
    }
    check_depth(path, depth)?;
    items
        .iter()
        .filter_map(Value::as_object)
        .map(|o| parse_object(o, Some(path), depth + 1))
        .collect()
}

fn parse_bool(arg: &Value, path: &str, depth: usize) -> Result<Node> {
    const ALLOWED: [&str; 4] = ["must", "must_not", "should", "should_not"];
    let obj = expect_object(arg, path, None)?;
    if obj.is_empty() {
        return Err(FilterError::invalid(path, "must be a non-empty object"));
    }
    if let Some(k) = obj.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
        return Err(FilterError::invalid(
            path,
            format!("\"{k}\" is not an allowed attribute (allowed: must,must_not,should,should_not)"),
        ));
    }
    check_depth(path, depth)?;
    let mut parts = Vec::new();
    for attr in ALLOWED {
        let Some(v) = obj.get(attr) else { continue };
        let p = join(Some(path), attr);
        let list = parse_list(v, &p, depth + 1)?;
        match attr {
            "must" => parts.extend(list),
            "must_not" => parts.push(Node::Not(Box::new(Node::Or(list)))),
            "should" => parts.push(Node::Or(list)),
            _ => parts.push(Node::Not(Box::new(Node::And(list)))),
        }
    }
    Ok(Node::And(parts))
}

/// Checks that `v` is an object, optionally with exactly `properties` keys.
fn expect_object<'a>(v: &'a Value, path: &str, properties: Option<usize>) -> Result<&'a Map<String, Value>> {
    let obj = v
        .as_object()
        .ok_or_else(|| FilterError::invalid(path, "must be an object"))?;
    if let Some(n) = properties
        && obj.len() != n
    {
        return Err(FilterError::invalid(
            path,
            format!(
                "expected object to have exactly {n} propert{}, got {}",
                if n > 1 { "ies" } else { "y" },
                obj.len()
            ),
        ));
    }
    Ok(obj)
}

fn single_field<'a>(arg: &'a Value, path: &str) -> Result<(&'a str, &'a Value)> {
    let obj = expect_object(arg, path, Some(1))?;
    obj.iter()
        .next()
        .map(|(k, v)| (k.as_str(), v))
        .ok_or_else(|| FilterError::invalid(path, "must be a non-empty object"))
}

fn expect_string<'a>(v: Option<&'a Value>, path: &str) -> Result<&'a str> {
    match v {
        Some(Value::String(s)) if s.is_empty() => Err(FilterError::invalid(path, "cannot be empty")),
        Some(Value::String(s)) => Ok(s),
        _ => Err(FilterError::invalid(path, "must be a string")),
    }
}

fn string_array<'a>(v: &'a Value, path: &str) -> Result<Vec<&'a str>> {
    let items = v
        .as_array()
        .ok_or_else(|| FilterError::invalid(path, "must be an array"))?;
    if items.is_empty() {
        return Err(FilterError::invalid(path, "cannot be empty"));
    }
    items
        .iter()
        .map(|i| {
            i.as_str()
                .ok_or_else(|| FilterError::invalid(path, "must hold only values of type \"string\""))
        })
        .collect()
}

fn parse_exists(arg: &Value, path: &str) -> Result<Atom> {
    if let Value::String(s) = arg {
        if s.is_empty() {
            return Err(FilterError::invalid(path, "cannot test empty field name"));
        }
        return field_syntax(s, path);
    }
    let obj = expect_object(arg, path, Some(1))?;
    let field_path = join(Some(path), "field");
    if !obj.contains_key("field") {
        return Err(FilterError::invalid(path, "the property \"field\" is missing"));
    }
    let field = expect_string(obj.get("field"), &field_path)?;
    field_syntax(field, &field_path)
}

/// `path.to.field` or `path.to.array[<JSON scalar>]`; `\[` and `\]` are
/// literal brackets.
fn field_syntax(field: &str, path: &str) -> Result<Atom> {
    let mut name = field;
    let mut value = None;
    if field.ends_with(']') {
        // The first unescaped '[' not at position 0 starts the array value.
        let bytes = field.as_bytes();
        let open = (1..bytes.len()).find(|&i| bytes[i] == b'[' && bytes[i - 1] != b'\\');
        if let Some(open) = open {
            let raw = &field[open + 1..field.len() - 1];
            let parsed: Value = serde_json::from_str(raw).map_err(|_| {
                FilterError::invalid(path, format!("contains an invalid array value (\"{raw}\")"))
            })?;
            let scalar = Scalar::from_json(&parsed).ok_or_else(|| {
                FilterError::invalid(path, format!("contains an invalid array value (\"{raw}\")"))
            })?;
            name = &field[..open];
            value = Some(scalar);
        }
    }
    let name = name.replace("\\[", "[").replace("\\]", "]");
    let fp = FieldPath::new(&name);
    Ok(match value {
        Some(v) => Atom::ArrayHas(fp, v),
        None => Atom::Exists(fp),
    })
}

fn parse_range(arg: &Value, path: &str) -> Result<Node> {
    let (field, spec) = single_field(arg, path)?;
    let fpath = join(Some(path), field);
    let spec = expect_object(spec, &fpath, None)?;
    if spec.is_empty() {
        return Err(FilterError::invalid(&fpath, "must be a non-empty object"));
    }
    let mut range = Range {
        low: None,
        high: None,
    };
    for k in spec.keys() {
        if !["gt", "gte", "lt", "lte"].contains(&k.as_str()) {
            return Err(FilterError::invalid(
                &fpath,
                format!("\"{k}\" is not an allowed attribute (allowed: gt,gte,lt,lte)"),
            ));
        }
    }
    for (k, v) in spec {
        let value = v
            .as_f64()
            .ok_or_else(|| FilterError::invalid(&join(Some(&fpath), k), "must be a number"))?;
        let bound = Bound {
            value,
            inclusive: k.ends_with('e'),
        };
        if k.starts_with('g') {
            if range.low.is_some() {
                return Err(FilterError::invalid(&fpath, "only 1 lower boundary allowed"));
            }
            range.low = Some(bound);
        } else {
            if range.high.is_some() {
                return Err(FilterError::invalid(&fpath, "only 1 upper boundary allowed"));
            }
            range.high = Some(bound);
        }
    }
    if let (Some(l), Some(h)) = (range.low, range.high)
        && h.value <= l.value
    {
        return Err(FilterError::invalid(
            &fpath,
            "lower boundary must be strictly inferior to the upper one",
        ));
    }
    Ok(Node::Leaf(Atom::Range(FieldPath::new(field), range)))
}

fn parse_regexp(arg: &Value, path: &str) -> Result<Node> {
    let (field, spec) = single_field(arg, path)?;
    let fpath = join(Some(path), field);
    let (source, flags) = match spec {
        Value::String(s) => (s.as_str(), ""),
        Value::Object(o) if !o.is_empty() => {
            if let Some(k) = o.keys().find(|k| *k != "flags" && *k != "value") {
                return Err(FilterError::invalid(
                    &fpath,
                    format!("\"{k}\" is not an allowed attribute (allowed: flags,value)"),
                ));
            }
            let value = o
                .get("value")
                .ok_or_else(|| FilterError::invalid(&fpath, "the property \"value\" is missing"))?;
            let value = value
                .as_str()
                .ok_or_else(|| FilterError::invalid(&join(Some(&fpath), "value"), "must be a string"))?;
            let flags = match o.get("flags") {
                None | Some(Value::Null) => "",
                Some(Value::String(s)) => s.as_str(),
                Some(_) => {
                    return Err(FilterError::invalid(
                        &join(Some(&fpath), "flags"),
                        "must be a string",
                    ));
                }
            };
            (value, flags)
        }
        Value::Object(_) => return Err(FilterError::invalid(&fpath, "must be a non-empty object")),
        _ => {
            return Err(FilterError::invalid(
                &fpath,
                "must be either a string or a non-empty object",
            ));
        }
    };
    let regex = pattern::compile(source, flags).map_err(|e| {
        FilterError::invalid(
            &fpath,
            format!("cannot parse regexp expression \"/{source}/{flags}\" ({e})"),
        )
    })?;
    Ok(Node::Leaf(Atom::Regexp(
        FieldPath::new(field),
        Pattern {
            source: source.to_owned(),
            flags: flags.to_owned(),
            regex,
        },
    )))
}

/// Reads a geo keyword's object, converting `lat_lon`, `top_left` and
/// `bottom_right` keys to camelCase.
fn camel(key: &str) -> &str {
    match key {
        "lat_lon" => "latLon",
        "top_left" => "topLeft",
        "bottom_right" => "bottomRight",
        k => k,
    }
}

fn parse_bbox(arg: &Value, path: &str) -> Result<Node> {
    let (field, spec) = single_field(arg, path)?;
    let fpath = join(Some(path), field);
    let unrecognized = || FilterError::invalid(&fpath, "unrecognized geo-point format");
    let spec = spec.as_object().ok_or_else(unrecognized)?;
    let get = |name: &str| spec.iter().find(|(k, _)| camel(k) == name).map(|(_, v)| v);
    let sides = ["top", "left", "bottom", "right"].map(get);
    let (top, left, bottom, right) = if sides
        .iter()
        .all(|v| matches!(v, Some(Value::String(_) | Value::Number(_))))
    {
        let mut n = [0.0; 4];
        for (slot, v) in n.iter_mut().zip(sides) {
            *slot = v
                .and_then(geo::number_of)
                .filter(|f| !f.is_nan())
                .ok_or_else(|| {
                    FilterError::invalid(
                        &fpath,
                        format!(
                            "unrecognized geoBoundingBox format: {}",
                            Value::Object(spec.clone())
                        ),
                    )
                })?;
        }
        (n[0], n[1], n[2], n[3])
    } else {
        let tl = get("topLeft").and_then(geo::to_point).ok_or_else(unrecognized)?;
        let br = get("bottomRight")
            .and_then(geo::to_point)
            .ok_or_else(unrecognized)?;
        (tl.lat, tl.lon, br.lat, br.lon)
    };
    if bottom >= top {
        return Err(FilterError::invalid(
            &fpath,
            "bottom must be strictly lower than top",
        ));
    }
    if left >= right {
        return Err(FilterError::invalid(
            &fpath,
            "left must be strictly lower than right",
        ));
    }
    Ok(Node::Leaf(Atom::Geo(
        FieldPath::new(field),
        Shape::BoundingBox(Bounds {
            lat_min: bottom,
            lat_max: top,
            lon_min: left,
            lon_max: right,
        }),
    )))
}

fn distance_of(obj: &Map<String, Value>, key: &str, path: &str) -> Result<f64> {
    let p = join(Some(path), key);
    let s = expect_string(obj.get(key), &p)?;
    geo::parse_distance(s)
        .ok_or_else(|| FilterError::invalid(&p, format!("unable to parse distance value \"{s}\"")))
}

fn center_of<'a>(obj: &'a Map<String, Value>, skip: &[&str], path: &str) -> Result<(&'a str, Point)> {
    let (field, v) = obj
        .iter()
        .find(|(k, _)| !skip.contains(&k.as_str()))
        .ok_or_else(|| FilterError::invalid(path, "missing the geopoint field"))?;
    let point = geo::to_point(v)
        .ok_or_else(|| FilterError::invalid(&join(Some(path), field), "unrecognized point format"))?;
    Ok((field, point))
}

fn parse_geo_distance(arg: &Value, path: &str) -> Result<Node> {
    let obj = expect_object(arg, path, Some(2))?;
    if !obj.contains_key("distance") {
        return Err(FilterError::invalid(path, "the property \"distance\" is missing"));
    }
    let radius = distance_of(obj, "distance", path)?;
    let (field, center) = center_of(obj, &["distance"], path)?;
    Ok(Node::Leaf(Atom::Geo(
        FieldPath::new(field),
        Shape::Circle {
            center: geo::Center::new(center),
            radius,
        },
    )))
}

fn parse_geo_distance_range(arg: &Value, path: &str) -> Result<Node> {
    let obj = expect_object(arg, path, Some(3))?;
    for k in ["from", "to"] {
        if !obj.contains_key(k) {
            return Err(FilterError::invalid(
                path,
                format!("the property \"{k}\" is missing"),
            ));
        }
    }
    let from = distance_of(obj, "from", path)?;
    let to = distance_of(obj, "to", path)?;
    if from >= to {
        return Err(FilterError::invalid(
            path,
            "inner radius must be smaller than outer radius",
        ));
    }
    let (field, center) = center_of(obj, &["from", "to"], path)?;
    Ok(Node::Leaf(Atom::Geo(
        FieldPath::new(field),
        Shape::Annulus {
            center: geo::Center::new(center),
            from,
            to,
        },
    )))
}

fn parse_polygon(arg: &Value, path: &str) -> Result<Node> {
    let (field, spec) = single_field(arg, path)?;
    let fpath = join(Some(path), field);
    let spec = expect_object(spec, &fpath, Some(1))?;
    let points = spec
        .get("points")
        .ok_or_else(|| FilterError::invalid(&fpath, "the property \"points\" is missing"))?;
    let ppath = join(Some(&fpath), "points");
    let points = points
        .as_array()
        .ok_or_else(|| FilterError::invalid(&ppath, "must be an array"))?;
    if points.len() < 3 {
        return Err(FilterError::invalid(
            &ppath,
            "at least 3 points are required to build a polygon",
        ));
    }
    let points = points
        .iter()
        .map(|p| {
            geo::to_point(p)
                .ok_or_else(|| FilterError::invalid(&ppath, format!("unrecognized point format \"{p}\"")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Node::Leaf(Atom::Geo(
        FieldPath::new(field),
        Shape::Polygon(points),
    )))
}

fn parse_select(arg: &Value, path: &str, depth: usize) -> Result<Node> {
    let obj = expect_object(arg, path, Some(3))?;
    let field = expect_string(obj.get("field"), &join(Some(path), "field"))?;
    let ipath = join(Some(path), "index");
    let index = match obj.get("index") {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => i,
            None if n.as_f64().is_some_and(|f| f.fract() != 0.0) => {
                return Err(FilterError::invalid(
                    &ipath,
                    "cannot have decimals, must be an integer",
                ));
            }
            None => return Err(FilterError::invalid(&ipath, "must be an integer")),
        },
        _ => return Err(FilterError::invalid(&ipath, "must be an integer")),
    };
    let qpath = join(Some(path), "query");
    let query = match obj.get("query") {
        Some(v) => expect_object(v, &qpath, None)?,
        None => return Err(FilterError::invalid(&qpath, "must be an object")),
    };
    if query.is_empty() {
        return Err(FilterError::invalid(&qpath, "must be a non-empty object"));
    }
    check_depth(&qpath, depth)?;
    let node = parse_object(query, Some(&qpath), depth + 1)?;
    let query_key = normalize::canonical_key(&node)?;
    Ok(Node::Leaf(Atom::Select(
        FieldPath::new(field),
        Select {
            index,
            query: Arc::new(node),
            query_key,
        },
    )))
}
