//! The error returned when a filter is refused.

/// Why a filter was refused by [`FilterEngine::normalize`](super::FilterEngine::normalize).
///
/// Every variant's message names the faulty part of the filter, using the
/// keyword path Koncorde uses (e.g. `"range.age.gt": must be a number`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A keyword or one of its arguments is malformed.
    #[error("\"{path}\": {message}")]
    Invalid {
        /// Dotted path of the faulty part (keywords and field names).
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The whole filter is malformed (not an object, several keywords at its root).
    #[error("{0}")]
    Syntax(String),
    /// The filter nests operands deeper than the supported maximum.
    #[error("\"{path}\": filter nested too deeply (maximum depth: {max})")]
    TooDeep {
        /// Dotted path where the limit was hit.
        path: String,
        /// The maximum nesting depth.
        max: usize,
    },
    /// The filter holds more conditions than the engine accepts.
    #[error(
        "filter too complex: exceeds the configured maximum number of conditions (conditions: {count}, max: {max})"
    )]
    TooManyConditions {
        /// Number of conditions in the filter.
        count: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The disjunctive normal form of the filter would be too large.
    #[error("filter too complex: its normalized form exceeds {max} AND-clauses")]
    TooManyClauses {
        /// The maximum number of AND-clauses.
        max: usize,
    },
}

impl FilterError {
    pub(crate) fn invalid(path: &str, message: impl Into<String>) -> Self {
        FilterError::Invalid {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}
