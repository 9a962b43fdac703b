//! Koncorde filters: validation, normalization, storage and matching.
//!
//! Implements the filter DSL of Koncorde 4 (the engine behind Kuzzle 2
//! realtime subscriptions): `equals`, `in`, `range`, `exists`, `missing`,
//! `regexp`, `ids`, `geoBoundingBox`, `geoDistance`, `geoDistanceRange`,
//! `geoPolygon`, `match`, `select`, `nothing`, and the `and`, `or`, `not`
//! and `bool` operands. `{}` matches every document.
//!
//! - [`FilterEngine::normalize`] validates a filter and turns it into a
//!   canonical disjunctive normal form whose hash is the filter id, so
//!   equivalent filters (operands reordered, double negations, ...) share
//!   one id;
//! - [`FilterEngine::store`] indexes it: each distinct condition is stored
//!   once per collection and evaluated at most once per document;
//! - [`FilterEngine::test`] returns the ids of the stored filters matching
//!   a document.

mod atom;
mod error;
mod eval;
mod geo;
mod grid;
mod index;
mod interval;
mod normalize;
mod parse;
mod path;
mod pattern;
mod scalar_map;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_prop;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

pub use error::FilterError;

use atom::write_str;
use index::Collection;
use normalize::Dnf;
use path::Doc;

/// Identifier of a stored filter: the room id.
pub type FilterId = Arc<str>;

/// Default maximum number of conditions of a filter (Kuzzle's default).
pub const DEFAULT_MAX_CONDITIONS: usize = 100;

/// A validated, normalized filter, ready to be stored.
#[derive(Debug, Clone)]
pub struct NormalizedFilter {
    id: FilterId,
    index: Arc<str>,
    collection: Arc<str>,
    dnf: Arc<Dnf>,
}

impl NormalizedFilter {
    /// The filter id (room id): equal filters on the same collection share it.
    pub fn id(&self) -> &FilterId {
        &self.id
    }
    /// The index the filter applies to.
    pub fn index(&self) -> &str {
        &self.index
    }
    /// The collection the filter applies to.
    pub fn collection(&self) -> &str {
        &self.collection
    }
}

#[derive(Debug)]
struct Location {
    index: Arc<str>,
    collection: Arc<str>,
    slot: u32,
}

/// Stores normalized filters and matches documents against them.
///
/// Filters are kept per index/collection pair. Matching takes `&self` and
/// may run concurrently on several threads.
#[derive(Debug)]
pub struct FilterEngine {
    max_conditions: usize,
    collections: HashMap<Arc<str>, HashMap<Arc<str>, Collection>>,
    filters: HashMap<FilterId, Location>,
}

impl Default for FilterEngine {
    /// An engine with [`DEFAULT_MAX_CONDITIONS`].
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CONDITIONS)
    }
}

impl FilterEngine {
    /// A new engine refusing filters of more than `max_conditions` conditions
    /// (each value of `in`/`ids` counting as one, as in Koncorde); `0` means
    /// no limit.
    pub fn new(max_conditions: usize) -> Self {
        FilterEngine {
            max_conditions,
            collections: HashMap::new(),
            filters: HashMap::new(),
        }
    }

    /// Validates and normalizes `filter` for `index`/`collection` without storing it.
    pub fn normalize(
        &self,
        index: &str,
        collection: &str,
        filter: &Value,
    ) -> Result<NormalizedFilter, FilterError> {
        let node = parse::parse(filter)?;
        let count = node.conditions();
        if self.max_conditions > 0 && count > self.max_conditions {
            return Err(FilterError::TooManyConditions {
                count,
                max: self.max_conditions,
            });
        }
        let dnf = normalize::normalize(&node)?;
        let mut canonical = String::new();
        write_str(&mut canonical, index);
        write_str(&mut canonical, collection);
        canonical.push_str(&dnf.canonical());
        let hash = xxhash_rust::xxh3::xxh3_128(canonical.as_bytes());
        Ok(NormalizedFilter {
            id: Arc::from(format!("{hash:032x}")),
            index: Arc::from(index),
            collection: Arc::from(collection),
            dnf: Arc::new(dnf),
        })
    }

    /// Stores a normalized filter (idempotent) and returns its id.
    pub fn store(&mut self, filter: NormalizedFilter) -> FilterId {
        if self.filters.contains_key(&filter.id) {
            return filter.id;
        }
        let coll = self
            .collections
            .entry(filter.index.clone())
            .or_default()
            .entry(filter.collection.clone())
            .or_default();
        let slot = coll.add(filter.id.clone(), &filter.dnf);
        self.filters.insert(
            filter.id.clone(),
            Location {
                index: filter.index,
                collection: filter.collection,
                slot,
            },
        );
        filter.id
    }

    /// Removes a stored filter; false when it was not stored.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(loc) = self.filters.remove(id) else {
            return false;
        };
        if let Some(colls) = self.collections.get_mut(&*loc.index) {
            if let Some(coll) = colls.get_mut(&*loc.collection) {
                coll.remove(loc.slot);
                if coll.is_empty() {
                    colls.remove(&*loc.collection);
                }
            }
            if colls.is_empty() {
                self.collections.remove(&*loc.index);
            }
        }
        true
    }

    /// The ids of stored filters of `index`/`collection` matching `document`,
    /// whose `_id` is `id` when given (it overrides a `_id` key of the document).
    ///
    /// Nested fields are reached with dotted paths (`a.b.c`); arrays are not
    /// traversed. A non-object document is treated as an empty object.
    pub fn test(&self, index: &str, collection: &str, document: &Value, id: Option<&str>) -> Vec<FilterId> {
        let Some(coll) = self.collections.get(index).and_then(|c| c.get(collection)) else {
            return Vec::new();
        };
        let id_value = id.map(|i| Value::String(i.to_owned()));
        let doc = Doc::new(document, id_value.as_ref().map(|v| ("_id", v)));
        let mut out = Vec::new();
        coll.test(&doc, &mut out);
        out
    }

    /// Number of stored filters.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// Whether no filter is stored.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }
}
