//! The key-value state machine that Raft replicates.
//!
//! Commands are applied in log order and deterministically: the same log gives every replica
//! the same map. Values are JSON. Multi-key transactions are lists of micro-ops written as
//! Elle writes them: `["r", k, null]`, `["w", k, v]`, `["append", k, v]`, and
//! `["cas", k, [expected, new]]`, which writes `new` if `k` holds `expected` (null: absent)
//! and otherwise aborts the whole transaction, so a client can commit a read-modify-write of
//! several keys only if none changed since it read them (a bank transfer).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;

/// One micro-op of a transaction. Serialized as a three-element JSON array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "(String, String, Value)", try_from = "(String, String, Value)")]
pub enum MicroOp {
    /// `["r", k, v]`: v is null in a request and the value read in a result.
    Read { key: String, value: Value },
    /// `["w", k, v]`
    Write { key: String, value: Value },
    /// `["append", k, v]`: appends v to the array at k, creating it.
    Append { key: String, value: Value },
    /// `["cas", k, [expected, new]]`: writes `new` if k holds `expected`; otherwise the whole
    /// transaction aborts and nothing of it is applied.
    Cas {
        key: String,
        expected: Value,
        new: Value,
    },
}

impl MicroOp {
    pub fn key(&self) -> &str {
        match self {
            MicroOp::Read { key, .. }
            | MicroOp::Write { key, .. }
            | MicroOp::Append { key, .. }
            | MicroOp::Cas { key, .. } => key,
        }
    }

    fn is_write(&self) -> bool {
        !matches!(self, MicroOp::Read { .. })
    }
}

impl From<MicroOp> for (String, String, Value) {
    fn from(op: MicroOp) -> Self {
        match op {
            MicroOp::Read { key, value } => ("r".into(), key, value),
            MicroOp::Write { key, value } => ("w".into(), key, value),
            MicroOp::Append { key, value } => ("append".into(), key, value),
            MicroOp::Cas { key, expected, new } => {
                ("cas".into(), key, Value::Array(vec![expected, new]))
            }
        }
    }
}

impl TryFrom<(String, String, Value)> for MicroOp {
    type Error = String;

    fn try_from((f, key, value): (String, String, Value)) -> Result<Self, String> {
        match f.as_str() {
            "r" => Ok(MicroOp::Read { key, value }),
            "w" => Ok(MicroOp::Write { key, value }),
            "append" => Ok(MicroOp::Append { key, value }),
            "cas" => match value {
                Value::Array(pair) if pair.len() == 2 => {
                    let mut pair = pair.into_iter();
                    let expected = pair.next().expect("two elements");
                    let new = pair.next().expect("two elements");
                    Ok(MicroOp::Cas { key, expected, new })
                }
                other => Err(format!("a cas micro-op takes [expected, new], not {other}")),
            },
            other => Err(format!("unknown micro-op {other:?}")),
        }
    }
}

/// A state machine command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A read through the log (the store normally reads with ReadIndex instead).
    Get {
        key: String,
    },
    Put {
        key: String,
        value: Value,
    },
    /// Sets `key` to `new` only if it currently holds `expected` (null: absent).
    Cas {
        key: String,
        expected: Value,
        new: Value,
    },
    Delete {
        key: String,
    },
    /// Applied atomically at one log index: serializable. Aborts (nothing applied) when a
    /// `cas` micro-op's comparison fails.
    Txn {
        ops: Vec<MicroOp>,
    },
    /// The snapshot-isolation-txn bug's commit step: `writes` computed by a read phase at
    /// `read_index`; aborts only if a written key changed after `read_index`.
    TxnSnapshotIsolation {
        read_index: u64,
        writes: Vec<MicroOp>,
    },
}

/// A command and the client request it answers. This is what a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub command: Command,
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a request always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Request, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("request: {e}")))
    }
}

/// What applying a command returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Put, delete.
    Done,
    /// Get: the value, null if absent.
    Value(Value),
    /// Cas: whether it swapped, and the value found.
    Cas { swapped: bool, current: Value },
    /// Txn: the micro-ops with reads filled in.
    Txn(Vec<MicroOp>),
    /// A txn whose `cas` comparison failed, or a snapshot-isolation txn that lost a
    /// write-write conflict: nothing was written.
    Aborted,
}

/// The list at a key after appending `value` to what it held.
fn appended(current: Value, value: &Value) -> Value {
    Value::Array(match current {
        Value::Array(mut items) => {
            items.push(value.clone());
            items
        }
        Value::Null => vec![value.clone()],
        // Appending to a non-list replaces it with a list rather than failing the whole
        // transaction: deterministic, and the history shows it.
        other => vec![other, value.clone()],
    })
}

/// The replicated map, with the log index that last wrote each key (for the snapshot
/// isolation bug's conflict check).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    data: BTreeMap<String, Value>,
    written_at: BTreeMap<String, u64>,
    applied_index: u64,
}

impl Kv {
    pub fn new() -> Kv {
        Kv::default()
    }

    /// The log index of the last command applied.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The value at `key`, null if absent.
    pub fn get(&self, key: &str) -> Value {
        self.data.get(key).cloned().unwrap_or(Value::Null)
    }

    /// Records that the entry at `index` carried no command (a leader's no-op).
    pub fn apply_noop(&mut self, index: u64) {
        assert!(index > self.applied_index, "apply in log order");
        self.applied_index = index;
    }

    /// Applies `command` at log `index`.
    pub fn apply(&mut self, index: u64, command: &Command) -> Outcome {
        assert!(
            index > self.applied_index,
            "apply in log order: {index} after {}",
            self.applied_index
        );
        self.applied_index = index;
        match command {
            Command::Get { key } => Outcome::Value(self.get(key)),
            Command::Put { key, value } => {
                self.write(index, key, value.clone());
                Outcome::Done
            }
            Command::Cas { key, expected, new } => {
                let current = self.get(key);
                let swapped = current == *expected;
                if swapped {
                    self.write(index, key, new.clone());
                }
                Outcome::Cas { swapped, current }
            }
            Command::Delete { key } => {
                self.data.remove(key);
                self.written_at.insert(key.clone(), index);
                Outcome::Done
            }
            Command::Txn { ops } => {
                if !self.compares_hold(ops) {
                    return Outcome::Aborted;
                }
                Outcome::Txn(
                    ops.iter()
                        .map(|op| self.apply_micro_op(index, op))
                        .collect(),
                )
            }
            Command::TxnSnapshotIsolation { read_index, writes } => {
                let conflict = writes.iter().any(|op| {
                    self.written_at
                        .get(op.key())
                        .is_some_and(|&at| at > *read_index)
                });
                // With no conflict every written key is as the snapshot saw it, so its cas
                // comparisons hold now exactly when they held in the read phase.
                if conflict || !self.compares_hold(writes) {
                    return Outcome::Aborted;
                }
                writes.iter().for_each(|op| {
                    self.apply_micro_op(index, op);
                });
                Outcome::Done
            }
        }
    }

    fn write(&mut self, index: u64, key: &str, value: Value) {
        self.data.insert(key.to_string(), value);
        self.written_at.insert(key.to_string(), index);
    }

    /// Whether every `cas` of `ops` would find its expected value, each seeing the writes of
    /// the micro-ops before it. Pure: decides whether a transaction aborts before any of it
    /// is applied.
    fn compares_hold(&self, ops: &[MicroOp]) -> bool {
        let mut written: BTreeMap<&str, Value> = BTreeMap::new();
        for op in ops {
            let key = op.key();
            let current = || written.get(key).cloned().unwrap_or_else(|| self.get(key));
            let after = match op {
                MicroOp::Read { .. } => continue,
                MicroOp::Write { value, .. } => value.clone(),
                MicroOp::Append { value, .. } => appended(current(), value),
                MicroOp::Cas { expected, new, .. } => {
                    if current() != *expected {
                        return false;
                    }
                    new.clone()
                }
            };
            written.insert(key, after);
        }
        true
    }

    fn apply_micro_op(&mut self, index: u64, op: &MicroOp) -> MicroOp {
        match op {
            MicroOp::Read { key, .. } => MicroOp::Read {
                key: key.clone(),
                value: self.get(key),
            },
            MicroOp::Write { key, value } => {
                self.write(index, key, value.clone());
                op.clone()
            }
            MicroOp::Append { key, value } => {
                let list = appended(self.get(key), value);
                self.write(index, key, list);
                op.clone()
            }
            // The comparison was checked for the whole transaction before anything applied.
            MicroOp::Cas { key, new, .. } => {
                self.write(index, key, new.clone());
                op.clone()
            }
        }
    }

    /// The read phase of the snapshot-isolation-txn bug: reads come from this replica's
    /// current state, and the returned command commits the writes later, checking only
    /// write-write conflicts. Two such transactions that read each other's write set both
    /// commit: write skew.
    ///
    /// The server's txn path calls this when the bug is on, once a ReadIndex confirmed the
    /// read, then proposes the returned command and answers with the reads it returned
    /// (`server::node`). The simulation drives it too, with write-skew transactions
    /// (`SimConfig::with_txn_clients`).
    pub fn txn_read_phase(&self, ops: &[MicroOp]) -> (Vec<MicroOp>, Command) {
        let mut local = self.clone();
        let results: Vec<MicroOp> = ops
            .iter()
            .map(|op| match op {
                MicroOp::Read { key, .. } => MicroOp::Read {
                    key: key.clone(),
                    value: local.get(key),
                },
                write => {
                    // Reads later in the transaction see its own earlier writes.
                    local.apply_micro_op(self.applied_index, write);
                    write.clone()
                }
            })
            .collect();
        let writes = ops.iter().filter(|op| op.is_write()).cloned().collect();
        (
            results,
            Command::TxnSnapshotIsolation {
                read_index: self.applied_index,
                writes,
            },
        )
    }

    /// The whole state as bytes, for a Raft snapshot.
    pub fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the state machine always serializes")
    }

    /// The state a snapshot holds.
    pub fn restore(bytes: &[u8]) -> Result<Kv, Error> {
        if bytes.is_empty() {
            return Ok(Kv::new());
        }
        serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("kv snapshot: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(value: Value) -> Vec<MicroOp> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn put_get_cas_delete() {
        let mut kv = Kv::new();
        kv.apply(
            1,
            &Command::Put {
                key: "x".into(),
                value: json!(1),
            },
        );
        assert_eq!(
            kv.apply(2, &Command::Get { key: "x".into() }),
            Outcome::Value(json!(1))
        );
        let cas = Command::Cas {
            key: "x".into(),
            expected: json!(2),
            new: json!(3),
        };
        assert_eq!(
            kv.apply(3, &cas),
            Outcome::Cas {
                swapped: false,
                current: json!(1)
            }
        );
        let cas = Command::Cas {
            key: "x".into(),
            expected: json!(1),
            new: json!(3),
        };
        assert_eq!(
            kv.apply(4, &cas),
            Outcome::Cas {
                swapped: true,
                current: json!(1)
            }
        );
        kv.apply(5, &Command::Delete { key: "x".into() });
        assert_eq!(kv.get("x"), Value::Null);
    }

    #[test]
    fn micro_ops_round_trip_as_elle_arrays() {
        let parsed = ops(json!([["r", "x", null], ["w", "y", 2], ["append", "z", 3]]));
        assert_eq!(
            parsed[1],
            MicroOp::Write {
                key: "y".into(),
                value: json!(2)
            }
        );
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            json!([["r", "x", null], ["w", "y", 2], ["append", "z", 3]])
        );
        assert!(serde_json::from_value::<Vec<MicroOp>>(json!([["x", "k", 1]])).is_err());
    }

    #[test]
    fn transaction_applies_atomically_and_append_creates_lists() {
        let mut kv = Kv::new();
        let txn = Command::Txn {
            ops: ops(json!([
                ["append", "l", 1],
                ["append", "l", 2],
                ["r", "l", null]
            ])),
        };
        let Outcome::Txn(result) = kv.apply(1, &txn) else {
            panic!("txn outcome")
        };
        assert_eq!(
            result[2],
            MicroOp::Read {
                key: "l".into(),
                value: json!([1, 2])
            }
        );
    }

    #[test]
    fn a_failed_cas_aborts_the_whole_transaction() {
        let mut kv = Kv::new();
        kv.apply(
            1,
            &Command::Put {
                key: "a".into(),
                value: json!(10),
            },
        );
        let transfer = |from: i64, to: Value| Command::Txn {
            ops: ops(json!([
                ["cas", "a", [from, from - 3]],
                ["cas", "b", [to, 3]]
            ])),
        };
        // b is absent: null compares equal.
        assert!(matches!(
            kv.apply(2, &transfer(10, Value::Null)),
            Outcome::Txn(_)
        ));
        assert_eq!((kv.get("a"), kv.get("b")), (json!(7), json!(3)));
        // a is no longer 10: nothing applies, not even b's (matching) cas.
        assert_eq!(kv.apply(3, &transfer(10, json!(3))), Outcome::Aborted);
        assert_eq!((kv.get("a"), kv.get("b")), (json!(7), json!(3)));
        // A cas sees the transaction's earlier writes.
        let txn = Command::Txn {
            ops: ops(json!([
                ["w", "c", 1],
                ["cas", "c", [1, 2]],
                ["r", "c", null]
            ])),
        };
        let Outcome::Txn(result) = kv.apply(4, &txn) else {
            panic!("committed")
        };
        assert_eq!(
            serde_json::to_value(&result[2]).unwrap(),
            json!(["r", "c", 2])
        );
        assert_eq!(
            serde_json::to_value(ops(json!([["cas", "k", [null, 1]]]))).unwrap(),
            json!([["cas", "k", [null, 1]]])
        );
        assert!(serde_json::from_value::<Vec<MicroOp>>(json!([["cas", "k", 1]])).is_err());
    }

    #[test]
    fn snapshot_restores_the_same_state() {
        let mut kv = Kv::new();
        kv.apply(
            1,
            &Command::Put {
                key: "a".into(),
                value: json!({"n": 1}),
            },
        );
        kv.apply_noop(2);
        let restored = Kv::restore(&kv.snapshot()).unwrap();
        assert_eq!(restored, kv);
        assert_eq!(Kv::restore(&[]).unwrap(), Kv::new());
    }

    #[test]
    fn snapshot_isolation_txn_bug_allows_write_skew() {
        // Invariant the application wants: not both x and y are 0.
        let mut kv = Kv::new();
        kv.apply(
            1,
            &Command::Txn {
                ops: ops(json!([["w", "x", 1], ["w", "y", 1]])),
            },
        );
        // T1 reads x, y and writes x = 0; T2 reads x, y and writes y = 0; same snapshot.
        let (reads1, commit1) = kv.txn_read_phase(&ops(json!([
            ["r", "x", null],
            ["r", "y", null],
            ["w", "x", 0]
        ])));
        let (reads2, commit2) = kv.txn_read_phase(&ops(json!([
            ["r", "x", null],
            ["r", "y", null],
            ["w", "y", 0]
        ])));
        assert_eq!(
            reads1[1],
            MicroOp::Read {
                key: "y".into(),
                value: json!(1)
            }
        );
        assert_eq!(
            reads2[0],
            MicroOp::Read {
                key: "x".into(),
                value: json!(1)
            }
        );
        assert_eq!(kv.apply(2, &commit1), Outcome::Done);
        assert_eq!(
            kv.apply(3, &commit2),
            Outcome::Done,
            "disjoint write sets: both commit"
        );
        assert_eq!(
            (kv.get("x"), kv.get("y")),
            (json!(0), json!(0)),
            "write skew"
        );
        // A write-write conflict does abort.
        let (_, stale) = Kv {
            applied_index: 1,
            ..kv.clone()
        }
        .txn_read_phase(&ops(json!([["w", "x", 5]])));
        assert_eq!(kv.apply(4, &stale), Outcome::Aborted);
    }
}
