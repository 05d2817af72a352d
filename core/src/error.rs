//! Errors of reading and validating histories.

use std::path::PathBuf;

/// Why a history could not be read. Each variant says where (file, line, event index) and what
/// was expected, so an operator can fix the input.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not a history of the expected format.
    #[error("{file}:{line}: {why}")]
    Parse {
        file: String,
        line: usize,
        why: String,
    },
    /// The events parse but do not form a well-formed history.
    #[error("event {index}: {why}")]
    Malformed { index: u64, why: String },
}

impl HistoryError {
    pub fn parse(file: &str, line: usize, why: impl Into<String>) -> HistoryError {
        HistoryError::Parse {
            file: file.to_string(),
            line,
            why: why.into(),
        }
    }
}
