//! The verdict of a checker.

use serde::{Serialize, Serializer};
use std::fmt;

/// A checker's verdict. Ordered so that composing verdicts is `max`: one invalid part makes the
/// whole invalid, an unknown part makes a valid whole unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Validity {
    Valid,
    Unknown,
    Invalid,
}

impl Validity {
    /// The exit status `faultline check` and `faultline test` use for this verdict.
    pub fn exit_code(self) -> i32 {
        match self {
            Validity::Valid => 0,
            Validity::Invalid => 1,
            Validity::Unknown => 2,
        }
    }

    /// The JSON form used in results: `true`, `false` or `"unknown"`.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            Validity::Valid => serde_json::Value::Bool(true),
            Validity::Invalid => serde_json::Value::Bool(false),
            Validity::Unknown => serde_json::Value::String("unknown".into()),
        }
    }
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Validity::Valid => "valid",
            Validity::Unknown => "unknown",
            Validity::Invalid => "invalid",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composition_is_max() {
        let all = [Validity::Valid, Validity::Unknown, Validity::Invalid];
        assert_eq!(all.iter().copied().max(), Some(Validity::Invalid));
        assert_eq!(Validity::Valid.max(Validity::Unknown), Validity::Unknown);
        assert_eq!(Validity::Invalid.exit_code(), 1);
    }
}
