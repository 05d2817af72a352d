//! The lock workloads on raftkv: a lease record changed only by compare-and-set, a counter in
//! it as the fencing token, and a resource list guarded by a fence key. raftkv has no clock
//! of its own in its API, so leases are judged on the clients' clock (wall-clock milliseconds;
//! every client of a run shares the control node's clock).
//!
//! - acquire: `GET /kv/lock/<name>` (the record `{"token", "holder", "expires_ms"}` or null);
//!   if it is held (`expires_ms` later than now) -> held; else `POST .../cas` from the record
//!   read to `{"token": token + 1, "holder": me, "expires_ms": start + lease}` where `start`
//!   is when the acquire began. 200: granted with that token; `compare-failed`: another
//!   client changed it first -> held.
//! - release: if the client's own record has not expired, a cas from it to the same record
//!   with `expires_ms` 0 (free); `compare-failed` -> `not-held`.
//! - write with fencing: read `fence/<name>` (the highest token accepted, null = none); a
//!   lower token -> `stale-token`; else one `POST /txn` of `["cas", fence, [read, token]]` and
//!   `["append", resource/<name>, [token, id]]`, which aborts as a whole when the fence moved
//!   meanwhile (then read and try again, a bounded number of times: an aborted transaction
//!   applied nothing). Without fencing, the append alone.
//! - read: `GET /kv/resource/<name>`, the list of `[token, id]` in append order (null = []).
//!
//! Outcomes as [`crate::raftkv::RaftkvClient`]'s: 200 `ok`; an error marked definite `fail`;
//! a connection lost after sending, or an indefinite error, `info` (a read: `fail`).

use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use faultline_core::{BoxFuture, Completion};

use crate::lock::{Grant, LockService};
use crate::raftkv::{key_path, Delivery, RaftkvClient};

/// How many times a fenced write retries after the fence moved under it.
pub const FENCE_ATTEMPTS: usize = 5;

/// Milliseconds since the Unix epoch on this machine's clock.
fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How a request ended when it did not answer 200.
enum Failure {
    Definite(String),
    Unknown(String),
}

impl Failure {
    fn completion(self) -> Completion {
        match self {
            Failure::Definite(why) => Completion::fail(why),
            Failure::Unknown(why) => Completion::info(why),
        }
    }

    fn is_compare_failed(&self) -> bool {
        matches!(self, Failure::Definite(why) if why == "compare-failed")
    }
}

/// One raftkv client as a lock service; `record` is the lease record of its current hold.
pub struct RaftkvLocks<'a> {
    pub client: &'a mut RaftkvClient,
    pub record: &'a mut Option<Value>,
    pub me: &'a str,
}

impl RaftkvLocks<'_> {
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        match self.client.send(method, path, body).await {
            Delivery::Reply(response) if response.status == 200 => Ok(response.body),
            Delivery::Reply(response) => {
                let error = response
                    .body
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("http-{}", response.status));
                if response.body.get("definite") == Some(&Value::Bool(true)) {
                    Err(Failure::Definite(error))
                } else {
                    Err(Failure::Unknown(error))
                }
            }
            Delivery::NotSent(why) => Err(Failure::Definite(why)),
            Delivery::Lost(why) => Err(Failure::Unknown(why)),
        }
    }

    /// A key's value (null when absent); any failure is definite (a read changes nothing).
    async fn get(&mut self, key: &str) -> Result<Value, String> {
        let path = format!("/kv/{}", key_path(Some(&json!(key))));
        match self.request("GET", &path, None).await {
            Ok(body) => Ok(body.get("value").cloned().unwrap_or(Value::Null)),
            Err(Failure::Definite(why)) | Err(Failure::Unknown(why)) => Err(why),
        }
    }

    async fn cas(&mut self, key: &str, expected: &Value, new: &Value) -> Result<(), Failure> {
        let path = format!("/kv/{}/cas", key_path(Some(&json!(key))));
        let body = json!({"expected": expected, "new": new});
        self.request("POST", &path, Some(&body)).await.map(|_| ())
    }

    async fn txn(&mut self, ops: Value) -> Result<(), Failure> {
        self.request("POST", "/txn", Some(&ops)).await.map(|_| ())
    }
}

impl LockService for RaftkvLocks<'_> {
    fn acquire<'a>(
        &'a mut self,
        lock: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Grant, Completion>> {
        Box::pin(async move {
            let start = wall_ms();
            let key = format!("lock/{lock}");
            let current = self.get(&key).await.map_err(Completion::fail)?;
            let expires = current
                .get("expires_ms")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if expires > wall_ms() {
                return Ok(Grant::Held);
            }
            let token = current.get("token").and_then(Value::as_i64).unwrap_or(0) + 1;
            let record = json!({
                "token": token,
                "holder": self.me,
                "expires_ms": start + lease.as_millis() as i64,
            });
            match self.cas(&key, &current, &record).await {
                Ok(()) => {
                    *self.record = Some(record);
                    Ok(Grant::Granted(token))
                }
                Err(failure) if failure.is_compare_failed() => Ok(Grant::Held),
                Err(failure) => Err(failure.completion()),
            }
        })
    }

    fn release<'a>(&'a mut self, lock: &'a str, _token: i64) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let Some(record) = self.record.take() else {
                return Completion::fail("not-held");
            };
            let expires = record
                .get("expires_ms")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if expires <= wall_ms() {
                return Completion::fail("not-held");
            }
            let mut free = record.clone();
            free["expires_ms"] = json!(0);
            match self.cas(&format!("lock/{lock}"), &record, &free).await {
                Ok(()) => Completion::Ok(Value::Null),
                Err(failure) if failure.is_compare_failed() => Completion::fail("not-held"),
                Err(failure) => failure.completion(),
            }
        })
    }

    fn write<'a>(
        &'a mut self,
        lock: &'a str,
        token: i64,
        id: &'a Value,
        fencing: bool,
    ) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let resource = format!("resource/{lock}");
            let entry = json!([token, id]);
            if !fencing {
                return match self.txn(json!([["append", resource, entry]])).await {
                    Ok(()) => Completion::Ok(id.clone()),
                    Err(failure) => failure.completion(),
                };
            }
            let fence = format!("fence/{lock}");
            for _ in 0..FENCE_ATTEMPTS {
                let highest = match self.get(&fence).await {
                    Ok(value) => value,
                    Err(why) => return Completion::fail(why),
                };
                if highest.as_i64().is_some_and(|h| h > token) {
                    return Completion::fail("stale-token");
                }
                let ops = json!([
                    ["cas", fence, [highest, token]],
                    ["append", resource, entry],
                ]);
                match self.txn(ops).await {
                    Ok(()) => return Completion::Ok(id.clone()),
                    // The fence moved between the read and the transaction: nothing applied.
                    Err(failure) if failure.is_compare_failed() => continue,
                    Err(failure) => return failure.completion(),
                }
            }
            Completion::fail("fence-contended")
        })
    }

    fn read<'a>(&'a mut self, lock: &'a str) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            match self.get(&format!("resource/{lock}")).await {
                Ok(Value::Null) => Completion::Ok(json!([])),
                Ok(list @ Value::Array(_)) => Completion::Ok(list),
                Ok(other) => Completion::fail(format!("the resource is not a list: {other}")),
                Err(why) => Completion::fail(why),
            }
        })
    }
}
