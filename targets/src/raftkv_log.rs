//! raftkv's total order broadcast, set and work queue clients, each operation one `POST /txn`.
//!
//! Broadcast ([`faultline_core::broadcast`]): the log is one list key, `log:<name>`; an
//! `append` is `[["append", key, id]]` (the Raft log orders the appends), a `read` is
//! `[["r", key, null]]`, linearizable through ReadIndex.
//!
//! Set (the `set` workload): each set is one list key, `set:<key>`, built the same way: an
//! `add` appends its element, a `read` returns the list (never written = empty). Every element
//! is added once, so the list is the set.
//!
//! Queue ([`faultline_core::queue`]): the jobs are one list key `queue:<name>:jobs` (an
//! `enqueue` appends), and the queue's head is a counter `queue:<name>:head`: a claim reads
//! both, and when the head is short of the list's end moves it by one with
//! `["cas", head, [h, h + 1]]`; the job at `h` is the claimant's. A `cas` that loses to another
//! claimant reads again, at most [`CLAIM_ATTEMPTS`] times (then `Fail("contended")`). A
//! `complete` is `["cas", "queue:<name>:done:<id>", [null, claimant]]`: it succeeds once per
//! job. Delivery is exactly-once: a job is handed out only by the `cas` that moved the head past
//! it; a claim whose `cas` outcome is unknown may have taken its job with it.
//!
//! Design decision: the queue is built on `cas` alone, the primitive a user of a plain
//! consensus KV has, rather than a server-side queue: what is tested is that recipe on
//! raftkv's linearizable `cas`.

use serde_json::{json, Value};

use faultline_core::broadcast::{self, APPEND};
use faultline_core::queue::{self, CLAIM, COMPLETE, ENQUEUE};
use faultline_core::{Completion, Invocation};

use crate::raftkv::RaftkvClient;

/// Reads and `cas` attempts one claim makes before it gives up (`Fail("contended")`).
pub const CLAIM_ATTEMPTS: u32 = 5;

impl RaftkvClient {
    /// One broadcast operation.
    pub(crate) async fn broadcast(&mut self, op: &Invocation) -> Completion {
        let key = format!("log:{}", broadcast::log_name(op.key.as_ref()));
        match op.f.as_str() {
            APPEND => {
                if let Err(why) = broadcast::message_id(&op.value) {
                    return Completion::fail(format!("bad-request: {why}"));
                }
                self.append(key, &op.value).await
            }
            broadcast::READ => self.read_list(key, "unreadable-log").await,
            other => Completion::fail(format!("unsupported: {other}")),
        }
    }

    /// One operation of the set workload: `add` an element, or `read` the whole set.
    pub(crate) async fn set(&mut self, op: &Invocation) -> Completion {
        let key = format!("set:{}", broadcast::log_name(op.key.as_ref()));
        match op.f.as_str() {
            "add" if op.value.is_null() => Completion::fail("bad-request: add takes an element"),
            "add" => self.append(key, &op.value).await,
            "read" => self.read_list(key, "unreadable-set").await,
            other => Completion::fail(format!("unsupported: {other}")),
        }
    }

    /// Appends `value` to the list at `key`; `ok` with the value once it committed.
    async fn append(&mut self, key: String, value: &Value) -> Completion {
        match self.post_txn(&[json!(["append", key, value])]).await {
            Ok(_) => Completion::Ok(value.clone()),
            Err(completion) => completion,
        }
    }

    /// The list at `key` (a key never written is empty); `unreadable` names a reply that
    /// holds something else.
    async fn read_list(&mut self, key: String, unreadable: &str) -> Completion {
        match self.post_txn(&[json!(["r", key, null])]).await {
            Ok(results) => match &results[0][2] {
                Value::Null => Completion::Ok(json!([])),
                Value::Array(items) => Completion::Ok(Value::Array(items.clone())),
                other => Completion::fail(format!("{unreadable}: {other}")),
            },
            Err(completion) => completion,
        }
    }

    /// One queue operation.
    pub(crate) async fn queue(&mut self, op: &Invocation, claimant: &str) -> Completion {
        let name = queue::queue_name(op.key.as_ref());
        let jobs_key = format!("queue:{name}:jobs");
        let head_key = format!("queue:{name}:head");
        match op.f.as_str() {
            ENQUEUE => {
                if let Err(why) = queue::job_id(&op.value) {
                    return Completion::fail(format!("bad-request: {why}"));
                }
                match self
                    .post_txn(&[json!(["append", jobs_key, op.value])])
                    .await
                {
                    Ok(_) => Completion::Ok(op.value.clone()),
                    Err(completion) => completion,
                }
            }
            CLAIM => {
                for _ in 0..CLAIM_ATTEMPTS {
                    let read = [json!(["r", jobs_key, null]), json!(["r", head_key, null])];
                    let results = match self.post_txn(&read).await {
                        Ok(results) => results,
                        Err(completion) => return completion,
                    };
                    let jobs = results[0][2].as_array().cloned().unwrap_or_default();
                    let head_value = results[1][2].clone();
                    let head = head_value.as_u64().unwrap_or(0);
                    let Some(job) = jobs.get(head as usize) else {
                        return Completion::Ok(Value::Null);
                    };
                    let cas = json!(["cas", head_key, [head_value, head + 1]]);
                    match self.post_txn(&[cas]).await {
                        Ok(_) => return Completion::Ok(job.clone()),
                        Err(Completion::Fail(why)) if why == "compare-failed" => continue,
                        Err(completion) => return completion,
                    }
                }
                Completion::fail("contended")
            }
            COMPLETE => {
                if let Err(why) = queue::job_id(&op.value) {
                    return Completion::fail(format!("bad-request: {why}"));
                }
                let done_key = format!("queue:{name}:done:{}", op.value);
                let cas = json!(["cas", done_key, [null, claimant]]);
                match self.post_txn(&[cas]).await {
                    Ok(_) => Completion::Ok(op.value.clone()),
                    Err(Completion::Fail(why)) if why == "compare-failed" => {
                        Completion::fail("already-completed")
                    }
                    Err(completion) => completion,
                }
            }
            other => Completion::fail(format!("unsupported: {other}")),
        }
    }
}
