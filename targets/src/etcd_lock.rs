//! The lock workloads on etcd, through its JSON gateway: the recipe behind etcd's lock API (a
//! key bound to a lease; the key's creation revision is the fencing token), one attempt per
//! acquire, and a resource of keys guarded by a fence key.
//!
//! - acquire: `/v3/lease/grant` with a TTL of the lease rounded up to whole seconds (etcd may
//!   grant more, never less), then one `/v3/kv/txn`: if `lock/<name>` does not exist (its
//!   `create_revision` is 0), put it with the lease. `succeeded`: granted, the token is the
//!   reply's revision (the key's creation revision); else held (the lease is revoked). etcd's
//!   own `/v3/lock/lock` does the same and then waits for the keys before it to go, which
//!   this one-attempt contract does not want.
//! - release: a txn deleting `lock/<name>` if its `create_revision` is still the token (the
//!   key lives as long as its lease); then the lease is revoked (best effort).
//! - write with fencing: a txn comparing `fence/<name>` (the highest token accepted, as 20
//!   zero-padded digits, so etcd's byte comparison is numeric) `LESS` than token + 1, then
//!   putting `fence/<name>` = token and `resource/<name>/<id>` = token; not `succeeded`:
//!   `stale-token`. The fence key is created at 0 once per client. Without fencing, a put of
//!   `resource/<name>/<id>`.
//! - read: a range over `resource/<name>/`, sorted by `mod_revision`: the order etcd applied
//!   the writes in.
//!
//! With option `lock_api` (`faultline test --etcd-lock api`) acquire and release go through
//! etcd's own lock API instead (`/v3/lock/lock` with the lease, `/v3/lock/unlock` with the key
//! it returned), as a user of etcd's lock service would: the lock call waits for the holders
//! before it, bounded by the lease (a lease that ran out while waiting holds nothing) and the
//! request timeout; a wait given up is `info` (the waiter's lease is then revoked, best
//! effort, which deletes its key). The token is the returned key's creation revision, read
//! back with a range; when the key is already gone (its lease expired while it waited, which
//! etcd 3.4's lock API does not notice) the lock call's header revision stands in, which is
//! above every earlier grant's. The resource is the same as the recipe's.
//!
//! Outcomes as [`crate::etcd::classify_reply`]: a 4xx other than 408, or a request never sent:
//! `fail`; a 5xx, a timeout or a connection lost after sending: `info` (a read: `fail`). A
//! failed lease grant is a `fail` of the acquire: a lease with no lock key holds nothing.

use serde_json::{json, Value};
use std::time::{Duration, Instant};

use crate::etcd::{base64_decode, base64_encode, Delivery, EtcdClient};
use crate::lock::{token_of, Grant, LockService};
use faultline_core::{BoxFuture, Completion};

/// A fence value: 20 digits, so that byte order is numeric order for tokens `>= 0`.
pub fn padded(token: i64) -> String {
    format!("{:020}", token.max(0))
}

/// The key range `[prefix, end)` of every key starting with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("a non-empty prefix") += 1;
    end
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
}

/// One etcd client as a lock service; `lease` is the lease of its current hold.
pub struct EtcdLocks<'a> {
    pub client: &'a mut EtcdClient,
    pub lease: &'a mut Option<String>,
    /// Whether this client made sure the fence key exists.
    pub fence_ready: &'a mut bool,
    /// Through etcd's lock API (`/v3/lock/*`) rather than the recipe's transactions.
    pub api: bool,
    /// The lock API's key of the current hold (what `/v3/lock/unlock` takes).
    pub api_key: &'a mut Option<String>,
}

impl EtcdLocks<'_> {
    async fn call(&mut self, path: &str, body: Value) -> Result<Value, Failure> {
        let deadline = Instant::now() + self.client.request_timeout();
        match self.client.post(path, &body, deadline).await {
            Delivery::Reply(response) if response.status == 200 => {
                if response.body.get("header").is_some_and(Value::is_object) {
                    Ok(response.body)
                } else {
                    Err(Failure::Unknown(format!(
                        "unreadable reply: {}",
                        response.body
                    )))
                }
            }
            Delivery::Reply(response) => {
                let error = response
                    .body
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("http-{}", response.status));
                if (400..500).contains(&response.status) && response.status != 408 {
                    Err(Failure::Definite(error))
                } else {
                    Err(Failure::Unknown(error))
                }
            }
            Delivery::NotSent(why) => Err(Failure::Definite(why)),
            Delivery::Lost(why) => Err(Failure::Unknown(why)),
        }
    }

    /// One request bounded by `wait` rather than the request timeout.
    async fn call_within(
        &mut self,
        path: &str,
        body: Value,
        wait: Duration,
    ) -> Result<Value, Failure> {
        let deadline = Instant::now() + wait;
        match self.client.post(path, &body, deadline).await {
            Delivery::Reply(response) if response.status == 200 => Ok(response.body),
            Delivery::Reply(response) => Err(Failure::Unknown(format!(
                "{} {}",
                response.status, response.body
            ))),
            Delivery::NotSent(why) => Err(Failure::Definite(why)),
            Delivery::Lost(why) => Err(Failure::Unknown(why)),
        }
    }

    /// The rest of an acquire through etcd's lock API, once lease `id` is granted.
    async fn acquire_by_api(
        &mut self,
        lock: &str,
        lease: Duration,
        id: String,
    ) -> Result<Grant, Completion> {
        let wait = lease.min(self.client.request_timeout());
        let body = json!({ "name": key(&format!("lock/{lock}")), "lease": id });
        let reply = match self.call_within("/v3/lock/lock", body, wait).await {
            Ok(reply) => reply,
            Err(failure) => {
                // Whether or not the wait was granted meanwhile, revoking the lease deletes
                // its key: the lock is free again, as far as this client can make it.
                self.revoke(id).await;
                return Err(match failure {
                    Failure::Definite(why) => Completion::fail(why),
                    Failure::Unknown(why) => Completion::info(format!("lock-wait: {why}")),
                });
            }
        };
        let Some(held) = reply.get("key").and_then(Value::as_str).map(str::to_string) else {
            self.revoke(id).await;
            return Err(Completion::info(format!("lock: no key in {reply}")));
        };
        let header_revision = reply["header"].get("revision").and_then(token_of);
        // The key's creation revision is the token; the range is served by a quorum.
        let created = match self.call("/v3/kv/range", json!({ "key": held })).await {
            Ok(range) => range["kvs"]
                .get(0)
                .and_then(|kv| kv.get("create_revision"))
                .and_then(token_of),
            Err(_) => None,
        };
        match created.or(header_revision) {
            Some(token) => {
                *self.lease = Some(id);
                *self.api_key = Some(held);
                Ok(Grant::Granted(token))
            }
            None => Err(Completion::info(format!("lock: no revision in {reply}"))),
        }
    }

    async fn revoke(&mut self, id: String) {
        // Best effort: an unrevoked lease ends by itself.
        let _ = self.call("/v3/lease/revoke", json!({ "ID": id })).await;
    }
}

fn key(text: &str) -> String {
    base64_encode(text.as_bytes())
}

fn succeeded(body: &Value) -> bool {
    body.get("succeeded") == Some(&Value::Bool(true))
}

impl LockService for EtcdLocks<'_> {
    fn acquire<'a>(
        &'a mut self,
        lock: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Grant, Completion>> {
        Box::pin(async move {
            let ttl = lease.as_millis().div_ceil(1_000).max(1) as u64;
            let granted = self
                .call("/v3/lease/grant", json!({ "TTL": ttl.to_string() }))
                .await
                // No lock key was written, whatever became of the lease.
                .map_err(|f| match f {
                    Failure::Definite(why) | Failure::Unknown(why) => {
                        Completion::fail(format!("lease-grant: {why}"))
                    }
                })?;
            let Some(id) = granted.get("ID").and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }) else {
                return Err(Completion::fail(format!("lease-grant: no ID in {granted}")));
            };
            if self.api {
                return self.acquire_by_api(lock, lease, id).await;
            }
            let lock_key = key(&format!("lock/{lock}"));
            let body = json!({
                "compare": [{"key": lock_key, "target": "CREATE", "result": "EQUAL",
                             "create_revision": "0"}],
                "success": [{"requestPut": {"key": lock_key, "value": key(&id), "lease": id}}],
            });
            match self.call("/v3/kv/txn", body).await {
                Ok(reply) if succeeded(&reply) => {
                    let revision = reply["header"].get("revision").and_then(token_of);
                    match revision {
                        Some(token) => {
                            *self.lease = Some(id);
                            Ok(Grant::Granted(token))
                        }
                        // Granted, but with no token to fence with: unknown to this client.
                        None => Err(Completion::info(format!("no revision in {reply}"))),
                    }
                }
                Ok(_) => {
                    self.revoke(id).await;
                    Ok(Grant::Held)
                }
                Err(failure) => {
                    if matches!(failure, Failure::Definite(_)) {
                        self.revoke(id).await;
                    }
                    Err(failure.completion())
                }
            }
        })
    }

    fn release<'a>(&'a mut self, lock: &'a str, token: i64) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            if self.api {
                // The lock API deletes the key whether or not it still exists: it cannot say
                // `not-held`.
                let outcome = match self.api_key.take() {
                    Some(held) => self.call("/v3/lock/unlock", json!({ "key": held })).await,
                    None => Err(Failure::Definite("no lock key held".into())),
                };
                if let Some(id) = self.lease.take() {
                    self.revoke(id).await;
                }
                return match outcome {
                    Ok(_) => Completion::Ok(Value::Null),
                    Err(failure) => failure.completion(),
                };
            }
            let lock_key = key(&format!("lock/{lock}"));
            let body = json!({
                "compare": [{"key": lock_key, "target": "CREATE", "result": "EQUAL",
                             "create_revision": token.to_string()}],
                "success": [{"requestDeleteRange": {"key": lock_key}}],
            });
            let outcome = self.call("/v3/kv/txn", body).await;
            if let Some(id) = self.lease.take() {
                self.revoke(id).await;
            }
            match outcome {
                Ok(reply) if succeeded(&reply) => Completion::Ok(Value::Null),
                Ok(_) => Completion::fail("not-held"),
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
            let entry = key(&format!("resource/{lock}/{id}"));
            let token_value = key(&token.to_string());
            if !fencing {
                let body = json!({"key": entry, "value": token_value});
                return match self.call("/v3/kv/put", body).await {
                    Ok(_) => Completion::Ok(id.clone()),
                    Err(failure) => failure.completion(),
                };
            }
            let fence = key(&format!("fence/{lock}"));
            if !*self.fence_ready {
                let body = json!({
                    "compare": [{"key": fence, "target": "CREATE", "result": "EQUAL",
                                 "create_revision": "0"}],
                    "success": [{"requestPut": {"key": fence, "value": key(&padded(0))}}],
                });
                // Idempotent: a retry after an unknown outcome changes nothing.
                match self.call("/v3/kv/txn", body).await {
                    Ok(_) => *self.fence_ready = true,
                    Err(Failure::Definite(why)) | Err(Failure::Unknown(why)) => {
                        return Completion::fail(format!("fence: {why}"))
                    }
                }
            }
            let body = json!({
                "compare": [{"key": fence, "target": "VALUE", "result": "LESS",
                             "value": key(&padded(token + 1))}],
                "success": [
                    {"requestPut": {"key": fence, "value": key(&padded(token))}},
                    {"requestPut": {"key": entry, "value": token_value}},
                ],
            });
            match self.call("/v3/kv/txn", body).await {
                Ok(reply) if succeeded(&reply) => Completion::Ok(id.clone()),
                Ok(_) => Completion::fail("stale-token"),
                Err(failure) => failure.completion(),
            }
        })
    }

    fn read<'a>(&'a mut self, lock: &'a str) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let prefix = format!("resource/{lock}/");
            let body = json!({
                "key": key(&prefix),
                "range_end": base64_encode(&prefix_end(&prefix)),
                "sort_order": "ASCEND",
                "sort_target": "MOD",
            });
            let reply = match self.call("/v3/kv/range", body).await {
                Ok(reply) => reply,
                // A read changes nothing.
                Err(Failure::Definite(why)) | Err(Failure::Unknown(why)) => {
                    return Completion::fail(why)
                }
            };
            let kvs = reply
                .get("kvs")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut log = Vec::with_capacity(kvs.len());
            for kv in kvs {
                match parse_entry(&prefix, &kv) {
                    Some(entry) => log.push(entry),
                    None => return Completion::fail(format!("unreadable resource entry {kv}")),
                }
            }
            Completion::Ok(Value::Array(log))
        })
    }
}

/// `[token, id]` from a resource key-value: the id is the key's suffix (JSON), the token the
/// value.
fn parse_entry(prefix: &str, kv: &Value) -> Option<Value> {
    let key = String::from_utf8(base64_decode(kv.get("key")?.as_str()?)?).ok()?;
    let id: Value = serde_json::from_str(key.strip_prefix(prefix)?).ok()?;
    let value = kv.get("value").and_then(Value::as_str).unwrap_or("");
    let token: i64 = String::from_utf8(base64_decode(value)?)
        .ok()?
        .parse()
        .ok()?;
    Some(json!([token, id]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_values_order_as_numbers() {
        assert!(padded(9) < padded(10));
        assert_eq!(padded(3).len(), 20);
        assert_eq!(prefix_end("resource/lock/"), b"resource/lock0".to_vec());
    }

    #[test]
    fn resource_entries_are_read_back() {
        let kv = json!({
            "key": base64_encode(b"resource/lock/17"),
            "value": base64_encode(b"4"),
        });
        assert_eq!(parse_entry("resource/lock/", &kv), Some(json!([4, 17])));
        assert_eq!(parse_entry("other/", &kv), None);
    }
}
