//! The one error enum of this crate, named by what the caller must do.

/// What went wrong, by what the caller must do about it.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query is malformed or out of bounds: answer 400 `invalid_request` naming `field`.
    /// Never retried: the same query fails the same way.
    #[error("invalid {field}: {detail}")]
    Invalid { field: String, detail: String },
    /// The index failed (IO, a corrupt segment, a bug): answer 500. The text is for logs,
    /// not for clients.
    #[error("search index failure: {0}")]
    Index(String),
}

impl SearchError {
    pub(crate) fn invalid(field: &str, detail: impl Into<String>) -> SearchError {
        SearchError::Invalid { field: field.to_string(), detail: detail.into() }
    }
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> SearchError {
        SearchError::Index(e.to_string())
    }
}
