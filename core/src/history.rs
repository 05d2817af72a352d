//! Operations and histories: the one record every part of faultline reads and writes.
//!
//! An [`Op`] is one event: the invocation of an operation by a process, or its completion
//! (`ok` = it happened, `fail` = it certainly did not, `info` = unknown). A [`History`] is the
//! events in the order the recorder saw them, which is real-time order.

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

use crate::error::HistoryError;

/// The logical process that performed an operation: a client worker, or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// A client process. A process has at most one operation outstanding.
    Client(u64),
    /// The fault injector. Its events are `info` and never paired.
    Nemesis,
}

impl Process {
    pub fn is_nemesis(self) -> bool {
        matches!(self, Process::Nemesis)
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => serializer.serialize_u64(*p),
            Process::Nemesis => serializer.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ProcessVisitor;
        impl Visitor<'_> for ProcessVisitor {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or the string \"nemesis\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("process {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Process, E> {
                if v == "nemesis" {
                    Ok(Process::Nemesis)
                } else {
                    Err(E::custom(format!(
                        "process {v:?} is neither an integer nor \"nemesis\""
                    )))
                }
            }
        }
        deserializer.deserialize_any(ProcessVisitor)
    }
}

/// What an event says about its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The operation started.
    Invoke,
    /// The operation happened.
    Ok,
    /// The operation certainly did not happen (did not take effect).
    Fail,
    /// The outcome is unknown: it may take effect at any time after its invocation, or never.
    Info,
}

impl OpType {
    pub fn is_completion(self) -> bool {
        !matches!(self, OpType::Invoke)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }
}

impl fmt::Display for OpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event of a history, exactly as `CONTRACTS.md` §1 describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history. Readers assign it from file order when the file has none.
    #[serde(default = "unassigned_index")]
    pub index: u64,
    /// Nanoseconds since the test started, on one monotonic clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: OpType,
    pub f: String,
    /// Operations on different keys are independent and checked separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The argument on invoke, the result on completion.
    #[serde(default)]
    pub value: Value,
    /// Why the operation failed or is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// Marks an index the file did not give; replaced by the file position while reading.
pub const UNASSIGNED_INDEX: u64 = u64::MAX;

fn unassigned_index() -> u64 {
    UNASSIGNED_INDEX
}

impl Op {
    /// An invocation by a client process (index and time left for the recorder to fill in).
    pub fn invoke(process: u64, f: &str, value: Value) -> Op {
        Op {
            index: UNASSIGNED_INDEX,
            time: None,
            process: Process::Client(process),
            kind: OpType::Invoke,
            f: f.to_string(),
            key: None,
            value,
            error: None,
        }
    }

    /// A completion of the given type for a client process.
    pub fn complete(process: u64, kind: OpType, f: &str, value: Value) -> Op {
        assert!(
            kind.is_completion(),
            "a completion must be ok, fail or info"
        );
        Op {
            kind,
            ..Op::invoke(process, f, value)
        }
    }

    pub fn with_key(mut self, key: Value) -> Op {
        self.key = Some(key);
        self
    }

    pub fn with_error(mut self, error: Value) -> Op {
        self.error = Some(error);
        self
    }

    pub fn with_time(mut self, time: u64) -> Op {
        self.time = Some(time);
        self
    }

    pub fn is_nemesis(&self) -> bool {
        self.process.is_nemesis()
    }
}

/// An invocation and its completion, by position in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Position of the invocation in [`History::ops`].
    pub invoke: usize,
    /// Position of the completion, or `None` when the history ended first.
    pub completion: Option<usize>,
}

/// A history: the events in the order they were seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn new(ops: Vec<Op>) -> History {
        History { ops }
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Client events only (nemesis events removed).
    pub fn client_ops(&self) -> impl Iterator<Item = &Op> {
        self.ops.iter().filter(|op| !op.is_nemesis())
    }

    /// Pairs every client invocation with its completion, in invocation order.
    ///
    /// # Correctness
    /// A history is well formed when each client process alternates invoke / completion, and a
    /// process that saw `info` never invokes again (the old request may still land, so the
    /// worker must continue as a new process). Anything else is an error that names the event.
    pub fn pairs(&self) -> Result<Vec<Pair>, HistoryError> {
        use std::collections::hash_map::Entry;

        enum Slot {
            /// The open invocation's position in the history, and its place in `pairs`.
            Open(usize, usize),
            Idle,
            Crashed(usize),
        }
        // Fx: process ids are small integers, and long histories have millions of events.
        let mut slots: rustc_hash::FxHashMap<u64, Slot> = Default::default();
        let mut pairs: Vec<Pair> = Vec::new();
        for (position, op) in self.ops.iter().enumerate() {
            let Process::Client(process) = op.process else {
                continue;
            };
            let bad = |why: String| HistoryError::Malformed {
                index: op.index,
                why,
            };
            match (op.kind, slots.entry(process)) {
                (OpType::Invoke, Entry::Vacant(slot)) => {
                    slot.insert(Slot::Open(position, pairs.len()));
                    pairs.push(Pair {
                        invoke: position,
                        completion: None,
                    });
                }
                (OpType::Invoke, Entry::Occupied(mut slot)) => match *slot.get() {
                    Slot::Idle => {
                        slot.insert(Slot::Open(position, pairs.len()));
                        pairs.push(Pair {
                            invoke: position,
                            completion: None,
                        });
                    }
                    Slot::Open(open, _) => {
                        return Err(bad(format!(
                            "process {process} invoked {} while its operation at index {} is \
                             still outstanding (a process has at most one operation at a time)",
                            op.f, self.ops[open].index
                        )))
                    }
                    Slot::Crashed(crash) => {
                        return Err(bad(format!(
                            "process {process} invoked {} after its operation at index {} \
                             completed with info; a worker whose outcome is unknown must \
                             continue as a new process",
                            op.f, self.ops[crash].index
                        )))
                    }
                },
                (kind, Entry::Occupied(mut slot)) if matches!(slot.get(), Slot::Open(..)) => {
                    let Slot::Open(open, pair) = *slot.get() else {
                        unreachable!()
                    };
                    if self.ops[open].f != op.f {
                        return Err(bad(format!(
                            "process {process} completed {} but its open invocation at index {} \
                             is {}",
                            op.f, self.ops[open].index, self.ops[open].f
                        )));
                    }
                    pairs[pair].completion = Some(position);
                    slot.insert(if kind == OpType::Info {
                        Slot::Crashed(position)
                    } else {
                        Slot::Idle
                    });
                }
                (_, _) => {
                    return Err(bad(format!(
                        "process {process} completed {} ({}) with no invocation outstanding",
                        op.f, op.kind
                    )))
                }
            }
        }
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(line: &str) -> Op {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn op_round_trips_through_json() {
        let line =
            r#"{"index":2,"time":2000,"process":0,"type":"ok","f":"write","key":"x","value":3}"#;
        let op = parse(line);
        assert_eq!(op.process, Process::Client(0));
        assert_eq!(op.kind, OpType::Ok);
        assert_eq!(op.key, Some(json!("x")));
        assert_eq!(serde_json::to_string(&op).unwrap(), line);
    }

    #[test]
    fn nemesis_process_is_a_string() {
        let op = parse(r#"{"process":"nemesis","type":"info","f":"start-partition","value":null}"#);
        assert!(op.is_nemesis());
        assert_eq!(op.index, UNASSIGNED_INDEX);
        assert!(serde_json::from_str::<Op>(r#"{"process":"bob","type":"info","f":"x"}"#).is_err());
        assert!(serde_json::from_str::<Op>(r#"{"process":-1,"type":"info","f":"x"}"#).is_err());
    }

    fn history(ops: Vec<Op>) -> History {
        let mut h = History::new(ops);
        for (i, op) in h.ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        h
    }

    #[test]
    fn pairs_match_invocations_with_completions() {
        let h = history(vec![
            Op::invoke(0, "write", json!(1)),
            Op::invoke(1, "read", json!(null)),
            Op::complete(0, OpType::Ok, "write", json!(1)),
            Op::invoke(0, "read", json!(null)),
        ]);
        let pairs = h.pairs().unwrap();
        assert_eq!(
            pairs,
            vec![
                Pair {
                    invoke: 0,
                    completion: Some(2)
                },
                Pair {
                    invoke: 1,
                    completion: None
                },
                Pair {
                    invoke: 3,
                    completion: None
                },
            ]
        );
    }

    #[test]
    fn a_process_that_saw_info_may_not_invoke_again() {
        let h = history(vec![
            Op::invoke(0, "write", json!(1)),
            Op::complete(0, OpType::Info, "write", json!(1)),
            Op::invoke(0, "read", json!(null)),
        ]);
        let err = h.pairs().unwrap_err().to_string();
        assert!(err.contains("new process"), "{err}");
    }

    #[test]
    fn completion_without_invocation_is_an_error() {
        let h = history(vec![Op::complete(3, OpType::Ok, "read", json!(1))]);
        assert!(h.pairs().unwrap_err().to_string().contains("no invocation"));
    }

    #[test]
    fn double_invocation_is_an_error() {
        let h = history(vec![
            Op::invoke(0, "read", json!(null)),
            Op::invoke(0, "read", json!(null)),
        ]);
        assert!(h.pairs().unwrap_err().to_string().contains("outstanding"));
    }
}
