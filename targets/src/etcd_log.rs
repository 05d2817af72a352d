//! etcd's total order broadcast client ([`faultline_core::broadcast`]) over the JSON gateway:
//! one key per message, ordered by its creation revision.
//!
//! - `append` of id `n` to log `name`: a transaction that creates `log/<name>/<n>` (value `n`)
//!   if it does not exist (`create_revision == 0`), so a message gets exactly one revision;
//!   `ok` when it committed. etcd's revision is the order.
//! - `read`: a range over `log/<name>/` sorted by `create_revision`, ascending: the ids in
//!   revision order. Linearizable by default (`--read-mode serializable`: served by the member
//!   alone, possibly a stale prefix; final reads stay linearizable).
//!
//! Design decision: the order is etcd's own (the revision at which each key was created), not
//! a counter the clients keep, so what is tested is the order etcd's Raft log gives.

use serde_json::{json, Value};
use std::time::Instant;

use faultline_core::broadcast::{self, APPEND, FINAL, READ};
use faultline_core::{Completion, Invocation};

use crate::etcd::{base64_decode, base64_encode, Delivery, EtcdClient, ReadMode};
use crate::etcd_lock::prefix_end;

impl EtcdClient {
    /// One broadcast operation.
    pub(crate) async fn broadcast(&mut self, op: &Invocation) -> Completion {
        let deadline = Instant::now() + self.request_timeout();
        let prefix = format!("log/{}/", broadcast::log_name(op.key.as_ref()));
        match op.f.as_str() {
            APPEND => {
                let id = match broadcast::message_id(&op.value) {
                    Ok(id) => id,
                    Err(why) => return Completion::fail(format!("bad-request: {why}")),
                };
                let key = base64_encode(format!("{prefix}{id:020}").as_bytes());
                let body = json!({
                    "compare": [{"key": key, "target": "CREATE", "result": "EQUAL",
                                 "create_revision": "0"}],
                    "success": [{"requestPut": {"key": key,
                                                "value": base64_encode(id.to_string().as_bytes())}}],
                });
                match self.post("/v3/kv/txn", &body, deadline).await {
                    Delivery::Reply(r) if r.status == 200 => {
                        if !r.body.get("header").is_some_and(Value::is_object) {
                            Completion::info(format!("unreadable reply: {}", r.body))
                        } else if r.body.get("succeeded") == Some(&Value::Bool(true)) {
                            Completion::Ok(op.value.clone())
                        } else {
                            // Ids are unique: the key exists only if this append is a retry.
                            Completion::fail("already-appended")
                        }
                    }
                    Delivery::Reply(r) if (400..500).contains(&r.status) && r.status != 408 => {
                        Completion::Fail(error_of(&r.body, r.status))
                    }
                    Delivery::Reply(r) => Completion::Info(error_of(&r.body, r.status)),
                    Delivery::NotSent(why) => Completion::fail(why),
                    Delivery::Lost(why) => Completion::info(why),
                }
            }
            READ => {
                let body = json!({
                    "key": base64_encode(prefix.as_bytes()),
                    "range_end": base64_encode(&prefix_end(&prefix)),
                    "sort_order": "ASCEND",
                    "sort_target": "CREATE",
                    // Final reads are always linearizable: they judge what was lost.
                    "serializable": self.read_mode == ReadMode::Serializable && op.value != FINAL,
                });
                match self.post("/v3/kv/range", &body, deadline).await {
                    Delivery::Reply(r) if r.status == 200 => {
                        let kvs = r.body.get("kvs").and_then(Value::as_array);
                        let ids: Option<Vec<Value>> = kvs
                            .into_iter()
                            .flatten()
                            .map(|kv| {
                                let text = base64_decode(kv.get("value")?.as_str()?)?;
                                String::from_utf8(text)
                                    .ok()?
                                    .parse::<u64>()
                                    .ok()
                                    .map(Value::from)
                            })
                            .collect();
                        match ids {
                            Some(ids) => Completion::Ok(Value::Array(ids)),
                            None => Completion::fail(format!("unreadable log: {}", r.body)),
                        }
                    }
                    // A read changes nothing.
                    Delivery::Reply(r) => Completion::Fail(error_of(&r.body, r.status)),
                    Delivery::NotSent(why) | Delivery::Lost(why) => Completion::fail(why),
                }
            }
            other => Completion::fail(format!("unsupported: {other}")),
        }
    }
}

fn error_of(body: &Value, status: u16) -> Value {
    body.get("error")
        .cloned()
        .unwrap_or_else(|| json!(format!("http-{status}")))
}
