//! The total order broadcast checker: one order of messages that every read is a prefix of.
//!
//! A broadcast history has `append` operations (invoke value = a unique message id; `ok` =
//! in the log, `fail` = certainly not, `info` or no completion = unknown) and `read`
//! operations (ok value = the whole log, `[id, ...]`, in the log's order; invoke value
//! `"final"` for the reads after the last fault healed). See `faultline_core::broadcast`.
//! Operations on different keys (logs) are checked separately; the workload uses one.
//!
//! The checks, each with its evidence:
//! 1. **Prefix order**: every ok read is a prefix of the longest read (then any two reads are
//!    prefixes of one another). Reads are taken in history order against the longest read so
//!    far; the first read that disagrees is reported with the earlier read it disagrees with
//!    and the first position where they differ.
//! 2. **Duplicates**: no id appears twice in one read.
//! 3. **Unexpected**: every id read was appended (an append was invoked with it) and that
//!    append did not `fail`.
//! 4. **Lost**: every `ok` append is in the longest final read. Without a completed final
//!    read this check is `unknown`. An `info` append may be there or not.
//! 5. **Real time**: when append `a` completed (ok) before append `b` was invoked, and both
//!    are in the log (the longest read), `a` comes first.
//!
//! Reads that return less than an append acknowledged before they began are counted
//! (`stale_reads`) but are not a violation: total order broadcast promises each reader a
//! prefix, not the latest one (ZooKeeper's reads from a follower are such reads).
//!
//! ```
//! use faultline_checker::{broadcast, Validity};
//! use faultline_core::{History, Op, OpType};
//! use serde_json::json;
//! let ops = vec![
//!     Op::invoke(0, "append", json!(1)).with_time(0),
//!     Op::complete(0, OpType::Ok, "append", json!(1)).with_time(1),
//!     Op::invoke(1, "append", json!(2)).with_time(2),
//!     Op::complete(1, OpType::Ok, "append", json!(2)).with_time(3),
//!     Op::invoke(0, "read", json!("final")).with_time(4),
//!     Op::complete(0, OpType::Ok, "read", json!([2, 1])).with_time(5),
//! ];
//! let result = broadcast::check(&History::new(ops)).unwrap();
//! assert_eq!(result.valid, Validity::Invalid);
//! assert_eq!(result.logs[0].counts["real-time"], 1);
//! ```
//!
//! Design decision: the order judged is the longest read, the most the log ever showed; when
//! reads disagree that is already the violation, and the other checks still run against the
//! longest read so that one report names everything found.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use faultline_core::{History, HistoryError, OpType, Process};

use crate::Validity;

/// `f` of an append.
pub const APPEND: &str = "append";
/// `f` of a read.
pub const READ: &str = "read";
/// Invoke value of a final read.
pub const FINAL: &str = "final";
/// Evidence items kept per log; the counts are always complete.
pub const MAX_EVIDENCE: usize = 20;

/// One anomaly, with the operations that show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Anomaly {
    /// `divergent-reads`, `duplicate`, `unexpected`, `failed-append-read`, `lost`,
    /// `real-time`.
    pub kind: &'static str,
    /// History indexes of the operations involved (invocations for appends, completions for
    /// reads).
    pub ops: Vec<u64>,
    pub detail: String,
}

/// The verdict for one log.
#[derive(Debug, Clone, Serialize)]
pub struct LogResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    pub valid: Validity,
    pub appends_ok: usize,
    pub appends_failed: usize,
    pub appends_unknown: usize,
    /// Unknown appends that are in the log.
    pub appends_unknown_present: usize,
    pub reads: usize,
    pub final_reads: usize,
    /// Length of the longest read (the order judged).
    pub longest_read: usize,
    /// Reads missing an append acknowledged before they began (allowed).
    pub stale_reads: usize,
    /// Anomalies by kind (complete counts).
    pub counts: BTreeMap<&'static str, usize>,
    /// The first [`MAX_EVIDENCE`] anomalies.
    pub anomalies: Vec<Anomaly>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The verdict for a broadcast history.
#[derive(Debug, Clone, Serialize)]
pub struct BroadcastResult {
    pub valid: Validity,
    pub logs: Vec<LogResult>,
}

impl BroadcastResult {
    /// What is wrong, for a person (empty when valid).
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for log in &self.logs {
            if log.valid == Validity::Valid {
                continue;
            }
            let key = log
                .key
                .as_ref()
                .map(|k| format!("log {k}"))
                .unwrap_or_else(|| "the log".into());
            let counts: Vec<String> = log
                .counts
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect();
            let _ = writeln!(
                out,
                "{key}: {}",
                if counts.is_empty() {
                    "no anomaly found".to_string()
                } else {
                    counts.join(", ")
                }
            );
            for anomaly in &log.anomalies {
                let _ = writeln!(
                    out,
                    "  {} (ops {:?}): {}",
                    anomaly.kind, anomaly.ops, anomaly.detail
                );
            }
            if let Some(reason) = &log.reason {
                let _ = writeln!(out, "  unknown: {reason}");
            }
        }
        out
    }
}

/// An append as the checker knows it.
struct AppendInfo {
    invoke_index: u64,
    invoke_ns: u64,
    kind: Option<OpType>,
    complete_ns: Option<u64>,
}

/// An ok read.
struct ReadInfo {
    index: u64,
    invoke_ns: u64,
    is_final: bool,
    ids: Vec<Value>,
}

#[derive(Default)]
struct LogOps {
    appends: HashMap<String, AppendInfo>,
    reads: Vec<ReadInfo>,
    /// Reads whose value is not a list.
    unreadable: Vec<u64>,
}

/// Checks a broadcast history. Errors only for a history that is not a history (malformed
/// pairing); anything else the checker cannot read makes the verdict `unknown`.
pub fn check(history: &History) -> Result<BroadcastResult, HistoryError> {
    let pairs = history.pairs()?;
    let mut logs: BTreeMap<Option<String>, (Option<Value>, LogOps)> = BTreeMap::new();
    for pair in &pairs {
        let invoke = &history.ops[pair.invoke];
        if !matches!(invoke.process, Process::Client(_)) {
            continue;
        }
        let completion = pair.completion.map(|c| &history.ops[c]);
        let key = invoke.key.as_ref().map(Value::to_string);
        let (_, log) = logs
            .entry(key)
            .or_insert_with(|| (invoke.key.clone(), LogOps::default()));
        match invoke.f.as_str() {
            APPEND => {
                log.appends.insert(
                    invoke.value.to_string(),
                    AppendInfo {
                        invoke_index: invoke.index,
                        invoke_ns: invoke.time.unwrap_or(0),
                        kind: completion.map(|c| c.kind),
                        complete_ns: completion.and_then(|c| c.time),
                    },
                );
            }
            READ => {
                let Some(c) = completion.filter(|c| c.kind == OpType::Ok) else {
                    continue;
                };
                match c.value.as_array() {
                    Some(ids) => log.reads.push(ReadInfo {
                        index: c.index,
                        invoke_ns: invoke.time.unwrap_or(0),
                        is_final: invoke.value == FINAL,
                        ids: ids.clone(),
                    }),
                    None => log.unreadable.push(c.index),
                }
            }
            _ => {}
        }
    }
    let logs: Vec<LogResult> = logs
        .into_values()
        .map(|(key, ops)| check_log(key, &ops))
        .collect();
    let valid = logs
        .iter()
        .map(|l| l.valid)
        .max()
        .unwrap_or(Validity::Valid);
    Ok(BroadcastResult { valid, logs })
}

/// Records anomalies: complete counts, the first [`MAX_EVIDENCE`] kept.
#[derive(Default)]
struct Found {
    counts: BTreeMap<&'static str, usize>,
    anomalies: Vec<Anomaly>,
}

impl Found {
    fn add(&mut self, kind: &'static str, ops: Vec<u64>, detail: String) {
        *self.counts.entry(kind).or_default() += 1;
        if self.anomalies.len() < MAX_EVIDENCE {
            self.anomalies.push(Anomaly { kind, ops, detail });
        }
    }
}

fn check_log(key: Option<Value>, ops: &LogOps) -> LogResult {
    let mut found = Found::default();
    let count = |kind: Option<OpType>| {
        ops.appends
            .values()
            .filter(|a| match kind {
                Some(OpType::Info) => !matches!(a.kind, Some(OpType::Ok) | Some(OpType::Fail)),
                other => a.kind == other,
            })
            .count()
    };

    // 1. Every read against the longest before it.
    let mut longest: Option<&ReadInfo> = None;
    for read in &ops.reads {
        if let Some(long) = longest {
            let common = read.ids.len().min(long.ids.len());
            if let Some(at) = (0..common).find(|&i| read.ids[i] != long.ids[i]) {
                found.add(
                    "divergent-reads",
                    vec![long.index, read.index],
                    format!(
                        "the reads at index {} and {} are not prefixes of one order: at \
                         position {at} the first has message {} and the second message {}",
                        long.index, read.index, long.ids[at], read.ids[at]
                    ),
                );
                continue;
            }
        }
        if longest.is_none_or(|l| read.ids.len() > l.ids.len()) {
            longest = Some(read);
        }
    }

    // 2, 3. Duplicates and unexpected ids, in every read (each id reported once).
    let mut reported_duplicate: HashSet<String> = HashSet::new();
    let mut reported_unexpected: HashSet<String> = HashSet::new();
    for read in &ops.reads {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (position, id) in read.ids.iter().enumerate() {
            let text = id.to_string();
            if let Some(first) = seen.insert(text.clone(), position) {
                if reported_duplicate.insert(text.clone()) {
                    found.add(
                        "duplicate",
                        vec![read.index],
                        format!(
                            "message {text} appears twice in the read at index {}: positions \
                             {first} and {position}",
                            read.index
                        ),
                    );
                }
            }
            match ops.appends.get(&text) {
                None if reported_unexpected.insert(text.clone()) => found.add(
                    "unexpected",
                    vec![read.index],
                    format!(
                        "message {text} is in the read at index {} but was never appended",
                        read.index
                    ),
                ),
                Some(append)
                    if append.kind == Some(OpType::Fail)
                        && reported_unexpected.insert(text.clone()) =>
                {
                    found.add(
                        "failed-append-read",
                        vec![append.invoke_index, read.index],
                        format!(
                            "message {text} is in the read at index {} but its append (index \
                             {}) failed, so it certainly did not happen",
                            read.index, append.invoke_index
                        ),
                    )
                }
                _ => {}
            }
        }
    }

    // 4. Lost: ok appends missing from the longest final read.
    let mut reason = None;
    let final_longest = ops
        .reads
        .iter()
        .filter(|r| r.is_final)
        .max_by_key(|r| r.ids.len());
    let order: &[Value] = longest.map_or(&[], |l| &l.ids);
    let position: HashMap<String, usize> = order
        .iter()
        .enumerate()
        .map(|(i, id)| (id.to_string(), i))
        .collect();
    match final_longest {
        None => {
            reason = Some(
                "no final read completed, so lost appends cannot be told from ones not yet read"
                    .to_string(),
            )
        }
        Some(last) => {
            let in_final: HashSet<String> = last.ids.iter().map(Value::to_string).collect();
            let mut lost: Vec<(&String, &AppendInfo)> = ops
                .appends
                .iter()
                .filter(|(id, a)| a.kind == Some(OpType::Ok) && !in_final.contains(*id))
                .collect();
            lost.sort_by_key(|(_, a)| a.invoke_index);
            for (id, append) in lost {
                found.add(
                    "lost",
                    vec![append.invoke_index, last.index],
                    format!(
                        "message {id} was acknowledged (append at index {}) but the final read \
                         at index {} ({} messages) does not have it",
                        append.invoke_index,
                        last.index,
                        last.ids.len()
                    ),
                );
            }
        }
    }
    if !ops.unreadable.is_empty() {
        reason = Some(format!(
            "{} read(s) returned something other than a list, first at index {}",
            ops.unreadable.len(),
            ops.unreadable[0]
        ));
    }

    // 5. Real time, along the order: a message acknowledged before an earlier-placed one was
    // even sent.
    let mut latest_invoke: Option<(u64, &Value)> = None;
    for id in order {
        let Some(append) = ops.appends.get(&id.to_string()) else {
            continue;
        };
        if let (Some(OpType::Ok), Some(done), Some((invoked, earlier))) =
            (append.kind, append.complete_ns, latest_invoke)
        {
            if done < invoked {
                let before = &ops.appends[&earlier.to_string()];
                found.add(
                    "real-time",
                    vec![append.invoke_index, before.invoke_index],
                    format!(
                        "message {id} was acknowledged at {:.6} s, before message {earlier} \
                         was sent at {:.6} s, yet the log orders {earlier} (position {}) before \
                         {id} (position {})",
                        done as f64 / 1e9,
                        invoked as f64 / 1e9,
                        position[&earlier.to_string()],
                        position[&id.to_string()]
                    ),
                );
            }
        }
        if latest_invoke.is_none_or(|(t, _)| append.invoke_ns > t) {
            latest_invoke = Some((append.invoke_ns, id));
        }
    }

    // Stale reads: allowed, counted.
    let mut acknowledged: Vec<(u64, String)> = ops
        .appends
        .iter()
        .filter(|(_, a)| a.kind == Some(OpType::Ok))
        .filter_map(|(id, a)| a.complete_ns.map(|t| (t, id.clone())))
        .collect();
    acknowledged.sort();
    let stale_reads = ops
        .reads
        .iter()
        .filter(|read| {
            let has: HashSet<String> = read.ids.iter().map(Value::to_string).collect();
            acknowledged
                .iter()
                .take_while(|(t, _)| *t < read.invoke_ns)
                .any(|(_, id)| !has.contains(id))
        })
        .count();

    let appends_unknown_present = ops
        .appends
        .iter()
        .filter(|(id, a)| {
            !matches!(a.kind, Some(OpType::Ok) | Some(OpType::Fail)) && position.contains_key(*id)
        })
        .count();
    let valid = if !found.counts.is_empty() {
        Validity::Invalid
    } else if reason.is_some() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    LogResult {
        key,
        valid,
        appends_ok: count(Some(OpType::Ok)),
        appends_failed: count(Some(OpType::Fail)),
        appends_unknown: count(Some(OpType::Info)),
        appends_unknown_present,
        reads: ops.reads.len(),
        final_reads: ops.reads.iter().filter(|r| r.is_final).count(),
        longest_read: order.len(),
        stale_reads,
        counts: found.counts,
        anomalies: found.anomalies,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::Op;
    use serde_json::json;

    /// A tiny history language: `a0:5@0-1` = process 0 appends 5 invoked at 0 completed ok at
    /// 1 (`!` fail, `?` info, `~` never completes); `r1:[1,2]@3-4` = process 1 reads [1,2];
    /// `R` = a final read.
    fn history(script: &str) -> History {
        let mut events: Vec<(u64, usize, Op)> = Vec::new();
        for (n, word) in script.split_whitespace().enumerate() {
            let (head, times) = word.split_once('@').unwrap();
            let (start, end) = times.split_once('-').unwrap();
            let start: u64 = start.parse().unwrap();
            let process: u64 = head[1..head.find(':').unwrap()].parse().unwrap();
            let arg = &head[head.find(':').unwrap() + 1..];
            let (f, invoke_value, ok_value) = match &head[..1] {
                "a" => ("append", json!(arg.parse::<u64>().unwrap()), json!(arg)),
                "r" => ("read", json!(null), serde_json::from_str(arg).unwrap()),
                "R" => ("read", json!("final"), serde_json::from_str(arg).unwrap()),
                other => panic!("{other}"),
            };
            let ok_value = if f == "append" {
                invoke_value.clone()
            } else {
                ok_value
            };
            events.push((
                start * 10,
                2 * n,
                Op::invoke(process, f, invoke_value.clone()).with_time(start),
            ));
            let (kind, end) = match end.chars().last().unwrap() {
                '!' => (OpType::Fail, &end[..end.len() - 1]),
                '?' => (OpType::Info, &end[..end.len() - 1]),
                '~' => continue,
                _ => (OpType::Ok, end),
            };
            let end: u64 = end.parse().unwrap();
            let value = if kind == OpType::Ok {
                ok_value
            } else {
                invoke_value
            };
            events.push((
                end * 10 + 1,
                2 * n + 1,
                Op::complete(process, kind, f, value).with_time(end),
            ));
        }
        events.sort_by_key(|(t, n, _)| (*t, *n));
        let mut ops: Vec<Op> = events.into_iter().map(|(_, _, op)| op).collect();
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        History::new(ops)
    }

    fn log(script: &str) -> LogResult {
        let result = check(&history(script)).unwrap();
        assert_eq!(result.logs.len(), 1);
        result.logs.into_iter().next().unwrap()
    }

    #[test]
    fn prefixes_of_one_order_in_real_time_are_valid() {
        let r = log("a0:1@0-2 a1:2@1-3 r2:[1]@2-3 r3:[2,1]@4-5 a0:3@6-7 R2:[2,1,3]@8-9");
        // [1] and [2,1] disagree at position 0; so do [1] and the final [2,1,3] (each read is
        // judged against the longest read consistent with the ones before it).
        assert_eq!(r.counts["divergent-reads"], 2);
        let r = log("a0:1@0-2 a1:2@1-3 r2:[2]@2-3 r3:[2,1]@4-5 a0:3@6-7 R2:[2,1,3]@8-9");
        assert_eq!(r.valid, Validity::Valid, "{:?}", r.anomalies);
        assert_eq!((r.appends_ok, r.reads, r.final_reads), (3, 3, 1));
        // Concurrent appends may go either way.
        assert_eq!(r.longest_read, 3);
    }

    #[test]
    fn the_empty_history_is_unknown_for_lack_of_a_final_read_and_an_empty_log_is_valid() {
        let r = check(&History::new(vec![])).unwrap();
        assert_eq!(r.valid, Validity::Valid, "no logs, nothing to judge");
        let r = log("r0:[]@0-1");
        assert_eq!(r.valid, Validity::Unknown);
        assert!(r.reason.unwrap().contains("no final read"));
        let r = log("R0:[]@0-1");
        assert_eq!(r.valid, Validity::Valid);
    }

    #[test]
    fn an_acknowledged_append_missing_from_the_final_read_is_lost() {
        let r = log("a0:1@0-1 a0:2@2-3 R1:[1]@4-5");
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.counts["lost"], 1);
        assert!(
            r.anomalies[0].detail.contains("message 2 "),
            "{:?}",
            r.anomalies
        );
        // A stale non-final read is counted, not a violation.
        let r = log("a0:1@0-1 r1:[]@2-3 R1:[1]@4-5");
        assert_eq!(r.valid, Validity::Valid);
        assert_eq!(r.stale_reads, 1);
    }

    #[test]
    fn unknown_and_never_completed_appends_may_appear_or_not() {
        let r = log("a0:1@0-1? a1:2@0-1~ a2:3@0-1? R3:[1,2]@5-6");
        assert_eq!(r.valid, Validity::Valid, "{:?}", r.anomalies);
        assert_eq!((r.appends_unknown, r.appends_unknown_present), (3, 2));
        // A failed append must not appear.
        let r = log("a0:1@0-1! R3:[1]@5-6");
        assert_eq!(r.counts["failed-append-read"], 1);
    }

    #[test]
    fn duplicates_and_messages_never_appended_are_reported_once_each() {
        let r = log("a0:1@0-1 r1:[1,1]@2-3 R1:[1,1,9]@4-5");
        assert_eq!(r.counts["duplicate"], 1);
        assert_eq!(r.counts["unexpected"], 1);
        assert_eq!(r.valid, Validity::Invalid);
    }

    #[test]
    fn an_append_acknowledged_before_another_was_sent_must_come_first() {
        let r = log("a0:1@0-1 a1:2@2-3 R2:[2,1]@4-5");
        assert_eq!(r.counts["real-time"], 1);
        assert_eq!(r.anomalies[0].ops.len(), 2);
        // An info append sent after an ok one completed is bound too (it was sent later).
        let r = log("a0:1@0-1 a1:2@2-3? R2:[2,1]@4-5");
        assert_eq!(r.counts["real-time"], 1);
        // Overlapping appends are free.
        let r = log("a0:1@0-3 a1:2@2-3 R2:[2,1]@4-5");
        assert_eq!(r.valid, Validity::Valid);
    }

    #[test]
    fn the_first_disagreeing_pair_of_reads_is_named_with_the_position() {
        let r = log("a0:1@0-1 a1:2@0-1 a2:3@0-1 r3:[1,2]@2-3 r4:[1,3]@4-5 R3:[1,2,3]@6-7");
        assert_eq!(r.counts["divergent-reads"], 1);
        let anomaly = &r.anomalies[0];
        assert!(anomaly.detail.contains("position 1"), "{}", anomaly.detail);
        let h = history("a0:1@0-1 a1:2@0-1 a2:3@0-1 r3:[1,2]@2-3 r4:[1,3]@4-5 R3:[1,2,3]@6-7");
        let first_read = h
            .ops
            .iter()
            .find(|op| op.f == "read" && op.kind == OpType::Ok)
            .unwrap();
        assert_eq!(anomaly.ops[0], first_read.index);
        let explained = check(&h).unwrap().explain();
        assert!(explained.contains("divergent-reads"), "{explained}");
    }
}
