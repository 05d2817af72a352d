//! Transactions on etcd through its JSON gateway (`/v3/kv/txn`): the requests and the reading
//! of replies, as pure functions; [`crate::etcd::EtcdClient`] sends them.
//!
//! etcd's transactions are compare-then-act on one revision, not interactive, so a
//! read-modify-write transaction (list-append's appends, rw-register's reads then writes, a
//! bank transfer) is optimistic, in two requests:
//! 1. **read**: one txn of a `requestRange` per key the transaction must read (a key whose
//!    first micro-operation is a read or an append), all at one revision; each value comes
//!    with its `mod_revision` (0 for a key that does not exist);
//! 2. **commit**: the transaction is computed on what was read (reads after its own writes
//!    see them; an append writes the whole new list, stored as JSON text), then one txn
//!    comparing every read key's `mod_revision` with what was read and putting every
//!    written key. `succeeded` = committed, as if at the commit's revision: nothing it read
//!    had changed. No `succeeded` = some key changed: it did not commit (`fail`,
//!    `compare-failed`).
//!
//! A transaction that writes nothing is the read alone (a snapshot at one revision). What
//! the outcomes mean: the read changes nothing, so any failure of it is a `fail`; the commit
//! is `ok` / `fail` (`compare-failed`, or a 4xx other than 408) / `info` (anything else: a
//! 5xx, a timeout, a connection lost after sending), as [`crate::etcd::classify_reply`] says.
//!
//! ```
//! use faultline_core::txn::parse_txn;
//! use faultline_targets::etcd_txn::{keys_to_read, plan, Read};
//! use serde_json::json;
//! let ops = parse_txn(&json!([["r", 1, null], ["append", 2, 5], ["w", 3, 1]])).unwrap();
//! assert_eq!(keys_to_read(&ops), ["1", "2"]);
//! let reads = [Read { value: json!(null), mod_revision: 0 },
//!              Read { value: json!([4]), mod_revision: 9 }];
//! let plan = plan(&ops, &keys_to_read(&ops), &reads).unwrap();
//! assert_eq!(plan.result, json!([["r", 1, null], ["append", 2, 5], ["w", 3, 1]]));
//! assert_eq!(plan.writes, [("2".to_string(), json!([4, 5])), ("3".to_string(), json!(1))]);
//! ```

use serde_json::{json, Value};

use faultline_core::txn::{txn_json, MicroOp, MopKind};

use crate::cluster;
use crate::etcd::{base64_decode, base64_encode};

/// One key as the read request saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    /// The stored value (`null`: the key does not exist).
    pub value: Value,
    /// The key's `mod_revision`; 0 when it does not exist (etcd compares a missing key's
    /// revisions as 0).
    pub mod_revision: u64,
}

/// A transaction computed on what was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The answer if it commits: the micro-operations with reads filled in.
    pub result: Value,
    /// The final value of every key written, by key text, in first-write order.
    pub writes: Vec<(String, Value)>,
}

/// The keys (as text) a transaction must read first: those whose first micro-operation is a
/// read or an append. A key written blind is not read: its old value matters to nothing.
pub fn keys_to_read(ops: &[MicroOp]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut read = Vec::new();
    for op in ops {
        let key = op.key_text();
        if seen.contains(&key) {
            continue;
        }
        if matches!(op.kind, MopKind::Read | MopKind::Append) {
            read.push(key.clone());
        }
        seen.push(key);
    }
    read
}

/// The read request: a `requestRange` per key, in one txn (one revision). `serializable`: the
/// member answers from its own state (option `read_mode`).
pub fn read_request(keys: &[String], serializable: bool) -> Value {
    let ranges: Vec<Value> = keys
        .iter()
        .map(|key| {
            let mut range = json!({"key": base64_encode(key.as_bytes())});
            if serializable {
                range["serializable"] = json!(true);
            }
            json!({"requestRange": range})
        })
        .collect();
    json!({"success": ranges})
}

/// What the read request's 200 reply says about each key, in request order.
pub fn parse_reads(keys: &[String], reply: &Value) -> Result<Vec<Read>, String> {
    let responses = reply
        .get("responses")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("a txn reply without responses: {reply}"))?;
    if responses.len() != keys.len() {
        return Err(format!(
            "{} responses for {} ranges: {reply}",
            responses.len(),
            keys.len()
        ));
    }
    responses
        .iter()
        .zip(keys)
        .map(|(response, key)| {
            let range = response
                .get("response_range")
                .ok_or_else(|| format!("no response_range for {key}: {response}"))?;
            let Some(kv) = range
                .get("kvs")
                .and_then(Value::as_array)
                .and_then(|kvs| kvs.first())
            else {
                return Ok(Read {
                    value: Value::Null,
                    mod_revision: 0,
                });
            };
            // int64 come as strings; an empty value is omitted.
            let mod_revision = kv
                .get("mod_revision")
                .and_then(|r| match r {
                    Value::String(s) => s.parse().ok(),
                    other => other.as_u64(),
                })
                .ok_or_else(|| format!("no mod_revision for {key}: {kv}"))?;
            let text = kv.get("value").and_then(Value::as_str).unwrap_or("");
            let bytes =
                base64_decode(text).ok_or_else(|| format!("unreadable value {text:?} of {key}"))?;
            Ok(Read {
                value: cluster::decode_value(&bytes),
                mod_revision,
            })
        })
        .collect()
}

/// The transaction computed on `reads` (of `keys`, from [`keys_to_read`]). `Err`: it cannot
/// run (an append to a key that holds no list), a definite failure.
pub fn plan(ops: &[MicroOp], keys: &[String], reads: &[Read]) -> Result<Plan, String> {
    assert_eq!(keys.len(), reads.len(), "one read per key");
    let mut writes: Vec<(String, Value)> = Vec::new();
    let current = |writes: &[(String, Value)], key: &str| -> Value {
        if let Some((_, value)) = writes.iter().find(|(k, _)| k == key) {
            return value.clone();
        }
        keys.iter()
            .position(|k| k == key)
            .map_or(Value::Null, |i| reads[i].value.clone())
    };
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        let key = op.key_text();
        let mut done = op.clone();
        let written = match op.kind {
            MopKind::Read => {
                done.value = current(&writes, &key);
                None
            }
            MopKind::Write => Some(op.value.clone()),
            MopKind::Append => Some(match current(&writes, &key) {
                Value::Null => json!([op.value]),
                Value::Array(mut items) => {
                    items.push(op.value.clone());
                    Value::Array(items)
                }
                other => return Err(format!("append to {key}, which holds {other}, not a list")),
            }),
        };
        if let Some(value) = written {
            match writes.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => writes.push((key, value)),
            }
        }
        results.push(done);
    }
    Ok(Plan {
        result: txn_json(&results),
        writes,
    })
}

/// The commit request: every read key must still be at the revision read; then every write.
pub fn commit_request(keys: &[String], reads: &[Read], writes: &[(String, Value)]) -> Value {
    let compare: Vec<Value> = keys
        .iter()
        .zip(reads)
        .map(|(key, read)| {
            json!({
                "key": base64_encode(key.as_bytes()),
                "target": "MOD",
                "result": "EQUAL",
                "mod_revision": read.mod_revision.to_string(),
            })
        })
        .collect();
    let puts: Vec<Value> = writes
        .iter()
        .map(|(key, value)| {
            json!({"requestPut": {
                "key": base64_encode(key.as_bytes()),
                "value": base64_encode(&cluster::encode_value(value)),
            }})
        })
        .collect();
    json!({"compare": compare, "success": puts})
}

/// Whether a commit's 200 reply says it committed (`succeeded`; a failed comparison omits
/// the field).
pub fn committed(reply: &Value) -> bool {
    reply.get("succeeded") == Some(&Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::txn::parse_txn;

    fn ops(value: Value) -> Vec<MicroOp> {
        parse_txn(&value).unwrap()
    }

    #[test]
    fn keys_read_first_are_read_and_blind_writes_are_not() {
        let txn = ops(json!([
            ["w", 1, 5],
            ["r", 1, null],
            ["r", 2, null],
            ["w", 2, 6],
            ["append", 3, 1],
            ["r", 2, null]
        ]));
        assert_eq!(keys_to_read(&txn), ["2", "3"]);
    }

    #[test]
    fn the_plan_reads_its_own_writes_and_appends_to_what_was_read() {
        let txn = ops(json!([
            ["r", 1, null],
            ["w", 1, 7],
            ["r", 1, null],
            ["append", 2, 3],
            ["append", 2, 4],
            ["r", 2, null]
        ]));
        let keys = keys_to_read(&txn);
        let reads = [
            Read {
                value: json!(5),
                mod_revision: 3,
            },
            Read {
                value: json!([1]),
                mod_revision: 4,
            },
        ];
        let plan = plan(&txn, &keys, &reads).unwrap();
        assert_eq!(
            plan.result,
            json!([
                ["r", 1, 5],
                ["w", 1, 7],
                ["r", 1, 7],
                ["append", 2, 3],
                ["append", 2, 4],
                ["r", 2, [1, 3, 4]]
            ])
        );
        assert_eq!(
            plan.writes,
            [
                ("1".to_string(), json!(7)),
                ("2".to_string(), json!([1, 3, 4]))
            ]
        );
        let bad = [reads[0].clone(), reads[0].clone()];
        assert!(
            super::plan(&txn, &keys, &bad).is_err(),
            "append to a number"
        );
    }

    #[test]
    fn requests_and_replies_as_the_gateway_speaks_them() {
        let keys = vec!["1".to_string(), "2".to_string()];
        assert_eq!(
            read_request(&keys, false),
            json!({"success": [{"requestRange": {"key": "MQ=="}}, {"requestRange": {"key": "Mg=="}}]})
        );
        assert_eq!(
            read_request(&keys[..1], true),
            json!({"success": [{"requestRange": {"key": "MQ==", "serializable": true}}]})
        );
        // A reply as etcd 3.4's gateway sent it: key 1 holds [1] at revision 2, key 2 absent.
        let reply = json!({"header": {"revision": "2"}, "succeeded": true, "responses": [
            {"response_range": {"header": {"revision": "2"}, "kvs": [{"key": "MQ==",
              "create_revision": "2", "mod_revision": "2", "version": "1", "value": "WzFd"}],
              "count": "1"}},
            {"response_range": {"header": {"revision": "2"}}}]});
        let reads = parse_reads(&keys, &reply).unwrap();
        assert_eq!(
            reads,
            [
                Read {
                    value: json!([1]),
                    mod_revision: 2
                },
                Read {
                    value: Value::Null,
                    mod_revision: 0
                }
            ]
        );
        assert!(parse_reads(&keys[..1], &reply).is_err());
        assert!(parse_reads(&keys, &json!({"header": {}})).is_err());
        let commit = commit_request(&keys, &reads, &[("2".into(), json!([9]))]);
        assert_eq!(
            commit,
            json!({
                "compare": [
                    {"key": "MQ==", "target": "MOD", "result": "EQUAL", "mod_revision": "2"},
                    {"key": "Mg==", "target": "MOD", "result": "EQUAL", "mod_revision": "0"}
                ],
                "success": [{"requestPut": {"key": "Mg==", "value": "Wzld"}}]
            })
        );
        assert!(committed(&json!({"header": {}, "succeeded": true})));
        assert!(!committed(&json!({"header": {}})));
    }
}
