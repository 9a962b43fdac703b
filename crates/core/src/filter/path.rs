//! Field paths (`a.b.c`) and their lookup in a JSON document.
//!
//! Koncorde flattens documents before matching: every nested object key is
//! reachable as `parent.child`, and a literal key containing dots is
//! reachable too. Arrays are never traversed. The lookup below reproduces
//! that without building the flattened copy: at each object level it tries
//! the shortest key prefix first (the common nesting case), then longer
//! prefixes containing dots.

use serde_json::{Map, Value};

/// Maximum number of object lookups spent resolving one path in one
/// document (bounds the backtracking over dotted keys).
const LOOKUP_BUDGET: u32 = 64;

/// A field path of a filter, pre-analysed for fast lookups.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FieldPath {
    raw: Box<str>,
    dotted: bool,
}

impl FieldPath {
    pub(crate) fn new(raw: &str) -> Self {
        FieldPath {
            raw: raw.into(),
            dotted: raw.contains('.'),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }
}

/// The document being matched: its root object, plus an optional key that
/// overrides the root's own (the document `_id`, or the `value` of a
/// `select` sub-document).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Doc<'a> {
    root: Option<&'a Map<String, Value>>,
    extra: Option<(&'a str, &'a Value)>,
}

impl<'a> Doc<'a> {
    /// A document; a non-object JSON value is treated as an empty object.
    pub(crate) fn new(document: &'a Value, extra: Option<(&'a str, &'a Value)>) -> Self {
        Doc {
            root: document.as_object(),
            extra,
        }
    }

    /// A virtual document holding a single key.
    pub(crate) fn single(key: &'a str, value: &'a Value) -> Self {
        Doc {
            root: None,
            extra: Some((key, value)),
        }
    }

    fn root_get(&self, key: &str) -> Option<&'a Value> {
        match self.extra {
            Some((k, v)) if k == key => Some(v),
            _ => self.root.and_then(|r| r.get(key)),
        }
    }

    /// The value at `path`, if any.
    pub(crate) fn get(&self, path: &FieldPath) -> Option<&'a Value> {
        if !path.dotted {
            return self.root_get(&path.raw);
        }
        let mut budget = LOOKUP_BUDGET;
        self.resolve_root(&path.raw, &mut budget)
    }

    fn resolve_root(&self, rest: &str, budget: &mut u32) -> Option<&'a Value> {
        for end in key_ends(rest) {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
            let Some(found) = self.root_get(&rest[..end]) else {
                continue;
            };
            if end == rest.len() {
                return Some(found);
            }
            if let Value::Object(child) = found
                && let Some(v) = resolve_in(child, &rest[end + 1..], budget)
            {
                return Some(v);
            }
        }
        None
    }
}

fn resolve_in<'a>(obj: &'a Map<String, Value>, rest: &str, budget: &mut u32) -> Option<&'a Value> {
    for end in key_ends(rest) {
        if *budget == 0 {
            return None;
        }
        *budget -= 1;
        let Some(found) = obj.get(&rest[..end]) else {
            continue;
        };
        if end == rest.len() {
            return Some(found);
        }
        if let Value::Object(child) = found
            && let Some(v) = resolve_in(child, &rest[end + 1..], budget)
        {
            return Some(v);
        }
    }
    None
}

/// Candidate key ends in `rest`: every dot position, then the end.
fn key_ends(rest: &str) -> impl Iterator<Item = usize> + '_ {
    rest.match_indices('.')
        .map(|(i, _)| i)
        .chain(std::iter::once(rest.len()))
}
