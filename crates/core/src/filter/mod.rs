//! Koncorde filters: validation, normalization, storage and matching.
//!
//! PLACEHOLDER: the helper replaces this file (and adds sibling modules).

use std::sync::Arc;

use serde_json::Value;

/// Identifier of a stored filter: the room id.
pub type FilterId = Arc<str>;

/// A validated, normalized filter, ready to be stored.
#[derive(Debug, Clone)]
pub struct NormalizedFilter {
    id: FilterId,
    index: Arc<str>,
    collection: Arc<str>,
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

/// Why a filter was refused.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// Placeholder.
    #[error("{0}")]
    Invalid(String),
}

/// Stores normalized filters and matches documents against them.
#[derive(Debug, Default)]
pub struct FilterEngine {}

impl FilterEngine {
    /// A new engine refusing filters of more than `max_conditions` conditions after normalization.
    pub fn new(max_conditions: usize) -> Self {
        let _ = max_conditions;
        Self {}
    }
    /// Validates and normalizes `filter` for `index`/`collection` without storing it.
    pub fn normalize(
        &self,
        index: &str,
        collection: &str,
        filter: &Value,
    ) -> Result<NormalizedFilter, FilterError> {
        let _ = filter;
        Ok(NormalizedFilter {
            id: Arc::from(format!("{index}{collection}")),
            index: Arc::from(index),
            collection: Arc::from(collection),
        })
    }
    /// Stores a normalized filter (idempotent) and returns its id.
    pub fn store(&mut self, filter: NormalizedFilter) -> FilterId {
        filter.id
    }
    /// Removes a stored filter; false when it was not stored.
    pub fn remove(&mut self, id: &str) -> bool {
        let _ = id;
        false
    }
    /// The ids of stored filters of `index`/`collection` matching `document`,
    /// whose `_id` is `id` when given (it overrides a `_id` key of the document).
    pub fn test(
        &self,
        index: &str,
        collection: &str,
        document: &Value,
        id: Option<&str>,
    ) -> Vec<FilterId> {
        let _ = (index, collection, document, id);
        Vec::new()
    }
}
