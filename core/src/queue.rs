//! Work queues as a client receives and answers them: the contract between the `queue`
//! workload and every target's client.
//!
//! Each operation has the queue's name as its `key` (a JSON string; the workload uses
//! `"jobs"`). A client claims at most one job at a time and remembers its claim until it
//! completes it.
//! - `enqueue`, value = a job id (an integer, unique in the run): `Ok(id)` when the job is
//!   in the queue, `Fail(why)` when it certainly is not, `Info(why)` when unknown.
//! - `claim`, value null during the main phase and [`DRAIN`] (`"drain"`) during the final
//!   drain after the last fault healed: `Ok(id)` when this client now holds the job `id`,
//!   `Ok(null)` when the queue had no job this client could claim, `Fail(why)` when it
//!   certainly claimed nothing, `Info(why)` when unknown (the job it may have claimed is the
//!   target's to redeliver, or lose: see [`Delivery`]).
//! - `complete`, value = the id of the job this client claimed: `Ok(id)` when the job is
//!   done, `Fail(why)` when it certainly is not (`"not-claimed"`: the claim was lost, the job
//!   went back to the queue or to another worker), `Info(why)` when unknown. A job is
//!   completed at most once, on every target: a complete succeeds only for the claim in force.
//!
//! What a target promises about delivery is [`delivery`]: `at-least-once` (a claim whose
//! worker vanished goes back to the queue, so a job may be delivered twice and is never lost)
//! or `exactly-once` (a claim removes the job for good: never delivered twice, but a claim
//! whose outcome is unknown may take its job with it). Checked by `faultline_checker::queue`.
//!
//! ```
//! use faultline_core::queue::{delivery, Delivery};
//! assert_eq!(delivery("postgres"), Some(Delivery::AtLeastOnce));
//! assert_eq!(delivery("zookeeper"), Some(Delivery::ExactlyOnce));
//! assert_eq!(Delivery::parse("at-least-once"), Some(Delivery::AtLeastOnce));
//! ```
//!
//! Design decision: claiming and completing are two operations, so the history shows both a
//! job handed to two workers (a duplicate delivery) and a job finished twice, and a worker
//! that vanishes between them is exactly the case the delivery promise is about.

use serde_json::Value;

/// `f` of an enqueue.
pub const ENQUEUE: &str = "enqueue";
/// `f` of a claim.
pub const CLAIM: &str = "claim";
/// `f` of a completion.
pub const COMPLETE: &str = "complete";
/// The value of a claim of the final drain.
pub const DRAIN: &str = "drain";
/// The queue every client uses.
pub const QUEUE: &str = "jobs";

/// What a target promises about how often a job is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A job is delivered at most once (a claim takes it out of the queue); an unknown claim
    /// may take its job with it, so such jobs are in doubt, not lost.
    ExactlyOnce,
    /// A job whose claim was not completed is delivered again: duplicates are allowed, no job
    /// is ever lost.
    AtLeastOnce,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::ExactlyOnce => "exactly-once",
            Delivery::AtLeastOnce => "at-least-once",
        }
    }

    pub fn parse(s: &str) -> Option<Delivery> {
        match s {
            "exactly-once" => Some(Delivery::ExactlyOnce),
            "at-least-once" => Some(Delivery::AtLeastOnce),
            _ => None,
        }
    }
}

/// Each target's promise (`None`: the target has no queue client).
/// - `memory`: a claim removes the job under the store's lock: exactly-once.
/// - `postgres`: the claim is a row lock (`SELECT ... FOR UPDATE SKIP LOCKED` in an open
///   transaction) that the completion commits; a worker that vanishes aborts its transaction
///   and the job is claimable again: at-least-once.
/// - `zookeeper`: a claim deletes the job's znode: exactly-once.
/// - `raftkv`: a claim moves the queue's head by `cas`: exactly-once.
pub fn delivery(target: &str) -> Option<Delivery> {
    match target {
        "memory" | "zookeeper" | "raftkv" => Some(Delivery::ExactlyOnce),
        "postgres" => Some(Delivery::AtLeastOnce),
        _ => None,
    }
}

/// A job id from an enqueue's or a complete's value.
pub fn job_id(value: &Value) -> Result<u64, String> {
    value
        .as_u64()
        .ok_or_else(|| format!("a job id is a non-negative integer, got {value}"))
}

/// The queue's name from an operation's key: a JSON string's text, else the key's JSON.
pub fn queue_name(key: Option<&Value>) -> String {
    match key {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => QUEUE.to_string(),
    }
}
