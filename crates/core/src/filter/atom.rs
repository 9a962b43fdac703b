//! Conditions ("atoms"): the leaves of a filter, each a yes/no test on a
//! document, with their evaluation and their canonical text.

use std::fmt::Write as _;
use std::sync::Arc;

use regex::Regex;
use serde_json::Value;

use super::eval;
use super::geo::{self, Shape, norm_bits};
use super::parse::Node;
use super::path::{Doc, FieldPath};

/// A scalar filter value (strict typing: `"1"` never equals `1`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    /// Always finite, `-0.0` folded onto `0.0`.
    Num(f64),
    Str(Box<str>),
}

impl Scalar {
    /// The scalar held by a JSON value, `None` for arrays and objects.
    pub(crate) fn from_json(v: &Value) -> Option<Scalar> {
        Some(match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => Scalar::Num(n.as_f64().map(|f| if f == 0.0 { 0.0 } else { f })?),
            Value::String(s) => Scalar::Str(s.as_str().into()),
            Value::Array(_) | Value::Object(_) => return None,
        })
    }

    /// Strict equality with a document value.
    pub(crate) fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (Scalar::Null, Value::Null) => true,
            (Scalar::Bool(a), Value::Bool(b)) => a == b,
            (Scalar::Num(a), Value::Number(b)) => b.as_f64() == Some(*a),
            (Scalar::Str(a), Value::String(b)) => **a == **b,
            _ => false,
        }
    }

    pub(crate) fn write_key(&self, out: &mut String) {
        match self {
            Scalar::Null => out.push('z'),
            Scalar::Bool(b) => out.push(if *b { 't' } else { 'f' }),
            Scalar::Num(n) => {
                let _ = write!(out, "n{:016x}", norm_bits(*n));
            }
            Scalar::Str(s) => {
                out.push('s');
                write_str(out, s);
            }
        }
    }
}

/// A numeric interval bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bound {
    pub(crate) value: f64,
    pub(crate) inclusive: bool,
}

/// A numeric interval, open-ended on a side without bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Range {
    pub(crate) low: Option<Bound>,
    pub(crate) high: Option<Bound>,
}

impl Range {
    pub(crate) fn contains(&self, x: f64) -> bool {
        let low_ok = match self.low {
            None => true,
            Some(b) => x > b.value || (b.inclusive && x == b.value),
        };
        let high_ok = match self.high {
            None => true,
            Some(b) => x < b.value || (b.inclusive && x == b.value),
        };
        low_ok && high_ok
    }
}

/// A compiled `regexp` condition.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    pub(crate) source: String,
    pub(crate) flags: String,
    pub(crate) regex: Regex,
}

/// A `select` condition: a sub-filter applied to one element of an array,
/// seen as the document `{"value": <element>}`.
#[derive(Debug, Clone)]
pub(crate) struct Select {
    pub(crate) index: i64,
    pub(crate) query: Arc<Node>,
    /// Canonical text of the normalized sub-filter.
    pub(crate) query_key: String,
}

/// One condition of a filter.
#[derive(Debug, Clone)]
pub(crate) enum Atom {
    /// `equals` (and each value of `in` / `ids`).
    Equals(FieldPath, Scalar),
    /// `exists: "field"`.
    Exists(FieldPath),
    /// `exists: "field[value]"`: the field is an array holding the value.
    ArrayHas(FieldPath, Scalar),
    /// `range`.
    Range(FieldPath, Range),
    /// `regexp`.
    Regexp(FieldPath, Pattern),
    /// The geo keywords.
    Geo(FieldPath, Shape),
    /// `select`.
    Select(FieldPath, Select),
    /// `match`: a partial, recursive comparison of several fields.
    Match(Vec<(FieldPath, Value)>),
}

impl Atom {
    /// The field a per-field condition tests (`None` for `match`).
    pub(crate) fn field(&self) -> Option<&FieldPath> {
        match self {
            Atom::Equals(f, _)
            | Atom::Exists(f)
            | Atom::ArrayHas(f, _)
            | Atom::Range(f, _)
            | Atom::Regexp(f, _)
            | Atom::Geo(f, _)
            | Atom::Select(f, _) => Some(f),
            Atom::Match(_) => None,
        }
    }

    /// Evaluates the condition on a document.
    pub(crate) fn eval(&self, doc: &Doc<'_>) -> bool {
        match self {
            Atom::Match(pairs) => pairs
                .iter()
                .all(|(f, want)| doc.get(f).is_some_and(|v| match_any(v, want))),
            _ => {
                let Some(f) = self.field() else { return false };
                self.eval_value(doc.get(f))
            }
        }
    }

    /// Evaluates a per-field condition on the value found at its field.
    pub(crate) fn eval_value(&self, v: Option<&Value>) -> bool {
        let Some(v) = v else { return false };
        match self {
            Atom::Equals(_, s) => s.matches(v),
            Atom::Exists(_) => true,
            Atom::ArrayHas(_, s) => v.as_array().is_some_and(|a| a.iter().any(|e| s.matches(e))),
            Atom::Range(_, r) => v.as_f64().is_some_and(|x| r.contains(x)),
            Atom::Regexp(_, p) => v.as_str().is_some_and(|s| p.regex.is_match(s)),
            Atom::Geo(_, shape) => geo::to_point(v).is_some_and(|p| shape.contains(p)),
            Atom::Select(_, sel) => {
                select_element(v, sel.index).is_some_and(|e| eval::eval(&sel.query, &Doc::single("value", e)))
            }
            Atom::Match(_) => false,
        }
    }

    /// Canonical text identifying the condition.
    pub(crate) fn key(&self) -> String {
        let mut out = String::new();
        let field = |out: &mut String, tag: &str, f: &FieldPath| {
            out.push_str(tag);
            write_str(out, f.as_str());
        };
        match self {
            Atom::Equals(f, s) => {
                field(&mut out, "eq", f);
                s.write_key(&mut out);
            }
            Atom::Exists(f) => field(&mut out, "ex", f),
            Atom::ArrayHas(f, s) => {
                field(&mut out, "ah", f);
                s.write_key(&mut out);
            }
            Atom::Range(f, r) => {
                field(&mut out, "rg", f);
                for b in [r.low, r.high] {
                    match b {
                        None => out.push('_'),
                        Some(b) => {
                            let _ = write!(
                                out,
                                "{}{:016x}",
                                if b.inclusive { 'i' } else { 'x' },
                                norm_bits(b.value)
                            );
                        }
                    }
                }
            }
            Atom::Regexp(f, p) => {
                field(&mut out, "re", f);
                write_str(&mut out, &p.source);
                let mut flags: Vec<char> = p.flags.chars().collect();
                flags.sort_unstable();
                write_str(&mut out, &flags.into_iter().collect::<String>());
            }
            Atom::Geo(f, shape) => {
                field(&mut out, "geo", f);
                shape.write_key(&mut out);
            }
            Atom::Select(f, sel) => {
                field(&mut out, "sel", f);
                let _ = write!(out, "{}:", sel.index);
                write_str(&mut out, &sel.query_key);
            }
            Atom::Match(pairs) => {
                out.push_str("mt");
                for (f, v) in pairs {
                    write_str(&mut out, f.as_str());
                    write_json(&mut out, v);
                }
            }
        }
        out
    }
}

/// The element of an array selected by a (possibly negative) index.
fn select_element(v: &Value, index: i64) -> Option<&Value> {
    let a = v.as_array()?;
    let len = i64::try_from(a.len()).ok()?;
    let i = if index >= 0 { index } else { len + index };
    if i < 0 || i >= len {
        return None;
    }
    a.get(usize::try_from(i).ok()?)
}

/// `match` semantics: scalars compare strictly; every key of an object
/// pattern must match the document object's; every element of an array
/// pattern must match a distinct element of the document array (greedy).
pub(crate) fn match_any(doc: &Value, want: &Value) -> bool {
    match (doc, want) {
        (Value::Object(d), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| d.get(k).is_some_and(|dv| match_any(dv, wv))),
        (Value::Array(d), Value::Array(w)) => {
            if d.len() < w.len() {
                return false;
            }
            let mut used = vec![false; d.len()];
            w.iter().all(|wv| {
                let found = d
                    .iter()
                    .enumerate()
                    .find(|(i, dv)| !used[*i] && match_any(dv, wv))
                    .map(|(i, _)| i);
                match found {
                    Some(i) => {
                        used[i] = true;
                        true
                    }
                    None => false,
                }
            })
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}

/// Length-prefixed string (unambiguous concatenation).
pub(crate) fn write_str(out: &mut String, s: &str) {
    let _ = write!(out, "{}:", s.len());
    out.push_str(s);
}

/// Canonical JSON text: object keys sorted, numbers as float bits.
fn write_json(out: &mut String, v: &Value) {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            if let Some(s) = Scalar::from_json(v) {
                s.write_key(out);
            }
        }
        Value::Array(a) => {
            let _ = write!(out, "[{}", a.len());
            for e in a {
                write_json(out, e);
            }
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let _ = write!(out, "{{{}", keys.len());
            for k in keys {
                write_str(out, k);
                if let Some(e) = o.get(k) {
                    write_json(out, e);
                }
            }
        }
    }
}
