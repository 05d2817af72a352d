//! Total order broadcast as a client receives and answers it: the contract between the
//! `broadcast` workload and every target's client.
//!
//! Each operation has the log's name as its `key` (a JSON string; the workload uses `"log"`).
//! - `append`, value = a message id (an integer, unique in the run): `Ok(id)` when the
//!   message is in the log (acknowledged), `Fail(why)` when it certainly is not and never
//!   will be, `Info(why)` when unknown (it may appear later, or never).
//! - `read`, value null during the main phase and [`FINAL`] (`"final"`) for the reads after
//!   the last fault healed: `Ok([id, ...])`, every message in the log in the log's order (the
//!   whole log, from its first message). A read changes nothing, so a read whose answer was
//!   lost is a `Fail`.
//!
//! What a target promises: one total order of the messages; every read returns a prefix of
//! it; an acknowledged message is never lost; no message appears twice; and a message
//! acknowledged before another was sent comes first. Checked by
//! `faultline_checker::broadcast`.
//!
//! ```
//! use faultline_core::broadcast::{message_id, FINAL};
//! use serde_json::json;
//! assert_eq!(message_id(&json!(7)), Ok(7));
//! assert!(message_id(&json!("7")).is_err());
//! assert_eq!(FINAL, "final");
//! ```
//!
//! Design decision: a read returns the whole log, not a suffix from a cursor, so every read
//! is compared with every other as a prefix of one order; a cursor would hide a reordering
//! behind the point a reader had reached.

use serde_json::Value;

/// `f` of an append.
pub const APPEND: &str = "append";
/// `f` of a read of the whole log.
pub const READ: &str = "read";
/// The value of a read invoked after the last fault healed (a final read).
pub const FINAL: &str = "final";
/// The log every client appends to.
pub const LOG: &str = "log";

/// An append's message id.
pub fn message_id(value: &Value) -> Result<u64, String> {
    value
        .as_u64()
        .ok_or_else(|| format!("an append takes a non-negative integer message id, got {value}"))
}

/// The log's name from an operation's key: a JSON string's text, else the key's JSON.
pub fn log_name(key: Option<&Value>) -> String {
    match key {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => LOG.to_string(),
    }
}
