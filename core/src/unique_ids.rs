//! Unique ids as a client receives and answers them: the contract between the `unique-ids`
//! workload and every target's client.
//!
//! One operation, `generate`, value null, no key: `Ok(id)` with an id (an integer) the
//! service promises no other `generate` ever got, `Fail` when certainly none was handed out
//! (the request never reached the service, or it refused it before doing anything), `Info`
//! when unknown. What an id is, per target: memory, a counter under the store's lock; etcd,
//! the header revision of a put (every revision is one write); ZooKeeper, the sequence number
//! of a created sequential znode; raftkv, a counter key raised by compare-and-set.
//!
//! ```
//! use faultline_core::unique_ids::{id_of, GENERATE};
//! use serde_json::json;
//! assert_eq!(GENERATE, "generate");
//! assert_eq!(id_of(&json!(7)), Some(7));
//! assert_eq!(id_of(&json!("8")), Some(8));
//! ```
//!
//! Design decision: ids are integers on every target, so the checker can report the ranges it
//! saw as well as the duplicates; it compares ids exactly, whatever their size.

use serde_json::Value;

/// `f` of a generate.
pub const GENERATE: &str = "generate";

/// An id as an integer (a JSON integer, or a string of one, as etcd's gateway writes int64).
pub fn id_of(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_str()?.parse().ok())
}
