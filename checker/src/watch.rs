//! The change-notification checker: what each watcher was told, against the writes' commit
//! order.
//!
//! A watch history (the contract is `faultline_core::watch`) has writes of values unique per
//! key, acknowledged with their revision (the service's commit position), and `watch`
//! operations whose ok value lists the events a watcher was told, `[[key, value, revision],
//! ...]`, with the revision range `from..next` the events are complete for when the service
//! promises that (etcd), and without it when it does not (ZooKeeper's one-shot watches).
//!
//! Commit order per key is the writes' revisions: every acknowledged write's, and every
//! revision a watcher reported (an `info` write a watcher saw has committed). The checks:
//! 1. **phantom**: an event names a value no write of that key ever tried (or one whose write
//!    certainly failed).
//! 2. **revision-mismatch**: one write reported at two revisions (its acknowledgement and an
//!    event, or two events), or two values of one key at the same revision.
//! 3. **revision-order**: the revisions contradict real time: a write acknowledged before
//!    another was invoked has the higher revision.
//! 4. **out-of-order** / **duplicate**: within one process (one watch stream: a process
//!    continues its stream from one watch to the next, and after an `info` the worker is a new
//!    process), the events of a key must have strictly increasing revisions: a lower one is a
//!    reordering, an equal one a duplicate.
//! 5. **gap**: a watch that claims `from..next` must report every change of a watched key
//!    committed at a revision in that range (known from any acknowledgement or event).
//! 6. **missed-latest**: a watch invoked after every acknowledged write had completed (the
//!    workload's final watch, after the faults healed) must end having reported, for every key,
//!    the last acknowledged write or a later one: a watcher never misses the latest value once
//!    it re-reads.
//!
//! `info` and never-completed watches told nothing the history knows, and are skipped; an
//! `info` or never-completed write may or may not have committed, so only an event makes it
//! count. A `fail` watch (a compacted revision) ends nothing: its process starts over with a
//! read, which checks 1 to 4 still hold it to.
//!
//! ```
//! use faultline_checker::{watch, Validity};
//! use faultline_core::{History, Op, OpType};
//! use serde_json::json;
//! let ops = vec![
//!     Op::invoke(0, "write", json!(1)).with_key(json!("w0")).with_time(0),
//!     Op::complete(0, OpType::Ok, "write", json!({"value": 1, "revision": 5})).with_key(json!("w0")).with_time(1),
//!     Op::invoke(0, "write", json!(2)).with_key(json!("w0")).with_time(2),
//!     Op::complete(0, OpType::Ok, "write", json!({"value": 2, "revision": 6})).with_key(json!("w0")).with_time(3),
//!     Op::invoke(1, "watch", json!({"keys": ["w0"], "duration_ms": 10})).with_time(4),
//!     Op::complete(1, OpType::Ok, "watch", json!({"events": [["w0", 2, 6], ["w0", 1, 5]]})).with_time(5),
//! ];
//! let result = watch::check(&History::new(ops)).unwrap();
//! assert_eq!(result.valid, Validity::Invalid);
//! assert_eq!(result.anomalies[0].kind, "out-of-order");
//! ```
//!
//! Design decision: commit order comes from the service's own revisions, cross-checked against
//! real time (check 3), rather than from a final read of each key's history: etcd and
//! ZooKeeper keep no per-key history to read back, and every acknowledgement carries its
//! revision anyway.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use faultline_core::{History, HistoryError, OpType, Process};

use crate::Validity;

/// `f` of a write.
pub const WRITE: &str = "write";
/// `f` of a watch.
pub const WATCH: &str = "watch";
/// Evidence items kept; the counts are always complete.
pub const MAX_EVIDENCE: usize = 20;

/// One thing a watcher or the service got wrong.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Anomaly {
    /// `phantom`, `revision-mismatch`, `revision-order`, `out-of-order`, `duplicate`, `gap`,
    /// `missed-latest`.
    pub kind: &'static str,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<u64>,
    /// History index of the operation it was seen in (the watch's completion, or the write).
    pub index: u64,
    pub detail: String,
}

/// The checker's verdict and counts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WatchResult {
    pub valid: Validity,
    pub writes: BTreeMap<&'static str, u64>,
    pub watches: BTreeMap<&'static str, u64>,
    /// Events reported by ok watches.
    pub events: u64,
    /// Processes with at least one ok watch.
    pub watchers: u64,
    /// Ok watches that claimed a gap-free revision range.
    pub gapless_watches: u64,
    /// Watches held to the latest value (invoked after every acknowledged write).
    pub final_watches: u64,
    pub anomaly_counts: BTreeMap<&'static str, u64>,
    /// The first [`MAX_EVIDENCE`] anomalies.
    pub anomalies: Vec<Anomaly>,
    /// Why the verdict is `unknown`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl WatchResult {
    /// Text for a person: empty when valid.
    pub fn explain(&self) -> String {
        let mut text = String::new();
        if self.valid == Validity::Valid {
            return text;
        }
        for reason in &self.reasons {
            let _ = writeln!(text, "unknown: {reason}");
        }
        if !self.anomaly_counts.is_empty() {
            let counts: Vec<String> = self
                .anomaly_counts
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect();
            let _ = writeln!(text, "watch anomalies: {}", counts.join(", "));
        }
        for a in &self.anomalies {
            let who = a
                .process
                .map_or(String::new(), |p| format!("process {p}, "));
            let _ = writeln!(
                text,
                "  {}: key {}, {who}op {}: {}",
                a.kind, a.key, a.index, a.detail
            );
        }
        text
    }
}

/// A write as the checker knows it.
#[derive(Debug, Clone)]
struct Write {
    value: Value,
    invoke_ns: u64,
    /// Completion time when acknowledged.
    ok_ns: Option<u64>,
    failed: bool,
    revision: Option<i64>,
    index: u64,
}

/// One ok watch, parsed.
struct Watch {
    process: u64,
    index: u64,
    invoke_ns: u64,
    keys: Vec<String>,
    events: Vec<Event>,
    range: Option<(i64, i64)>,
}

struct Findings {
    counts: BTreeMap<&'static str, u64>,
    anomalies: Vec<Anomaly>,
}

impl Findings {
    fn add(&mut self, anomaly: Anomaly) {
        *self.counts.entry(anomaly.kind).or_default() += 1;
        if self.anomalies.len() < MAX_EVIDENCE {
            self.anomalies.push(anomaly);
        }
    }
}

fn value_id(value: &Value) -> String {
    value.to_string()
}

fn parse_event(event: &Value) -> Option<Event> {
    let [key, value, revision] = event.as_array()?.as_slice() else {
        return None;
    };
    Some((key.as_str()?.to_string(), value.clone(), revision.as_i64()?))
}

/// One event: `(key, value, revision)`.
type Event = (String, Value, i64);
/// A watch's events and its gap-free range, if it claims one.
type Told = (Vec<Event>, Option<(i64, i64)>);

fn parse_watch(value: &Value) -> Result<Told, String> {
    let events = value
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("an ok watch has {{\"events\": [...]}}, got {value}"))?
        .iter()
        .map(|e| {
            parse_event(e).ok_or_else(|| format!("an event is [key, value, revision], got {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let range = match (value.get("from"), value.get("next")) {
        (Some(from), Some(next)) => match (from.as_i64(), next.as_i64()) {
            (Some(from), Some(next)) => Some((from, next)),
            _ => return Err(format!("from and next are revisions, got {value}")),
        },
        _ => None,
    };
    Ok((events, range))
}

/// Checks a watch history.
pub fn check(history: &History) -> Result<WatchResult, HistoryError> {
    let pairs = history.pairs()?;
    let mut reasons = Vec::new();
    let mut writes: BTreeMap<String, Vec<Write>> = BTreeMap::new();
    let mut watches: Vec<Watch> = Vec::new();
    let mut write_counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut watch_counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for pair in &pairs {
        let invoke = &history.ops[pair.invoke];
        let Process::Client(process) = invoke.process else {
            continue;
        };
        let completion = pair.completion.map(|c| &history.ops[c]);
        let outcome = completion.map_or("never-completed", |c| c.kind.as_str());
        match invoke.f.as_str() {
            WRITE => {
                *write_counts.entry(outcome_name(outcome)).or_default() += 1;
                let key = faultline_core::watch::key_name(invoke.key.as_ref());
                let ok = completion.filter(|c| c.kind == OpType::Ok);
                let revision = match ok {
                    Some(c) => match c.value.get("revision").and_then(Value::as_i64) {
                        Some(r) => Some(r),
                        None => {
                            reasons.push(format!(
                                "write at index {} was acknowledged without a revision: {}",
                                c.index, c.value
                            ));
                            None
                        }
                    },
                    None => None,
                };
                writes.entry(key).or_default().push(Write {
                    value: invoke.value.clone(),
                    invoke_ns: invoke.time.unwrap_or(0),
                    ok_ns: ok.map(|c| c.time.unwrap_or(0)),
                    failed: completion.is_some_and(|c| c.kind == OpType::Fail),
                    revision,
                    index: invoke.index,
                });
            }
            WATCH => {
                *watch_counts.entry(outcome_name(outcome)).or_default() += 1;
                let Some(c) = completion.filter(|c| c.kind == OpType::Ok) else {
                    continue;
                };
                let keys = faultline_core::watch::watch_request(&invoke.value)
                    .map(|(keys, _)| keys)
                    .unwrap_or_default();
                match parse_watch(&c.value) {
                    Ok((events, range)) => watches.push(Watch {
                        process,
                        index: c.index,
                        invoke_ns: invoke.time.unwrap_or(0),
                        keys,
                        events,
                        range,
                    }),
                    Err(why) => reasons.push(format!("watch at index {}: {why}", c.index)),
                }
            }
            _ => {}
        }
    }

    let mut findings = Findings {
        counts: BTreeMap::new(),
        anomalies: Vec::new(),
    };
    // Per key: value -> write position; duplicates in the invocations make values ambiguous.
    let mut by_value: HashMap<(&str, String), usize> = HashMap::new();
    for (key, list) in &writes {
        for (i, w) in list.iter().enumerate() {
            if by_value
                .insert((key.as_str(), value_id(&w.value)), i)
                .is_some()
            {
                reasons.push(format!(
                    "key {key}: value {} was written twice, so an event cannot name its write",
                    w.value
                ));
            }
        }
    }
    // Known commits per key: revision -> value, from acknowledgements and events.
    let mut commits: BTreeMap<String, BTreeMap<i64, String>> = BTreeMap::new();
    // The revision each (key, value) was first seen at, and where.
    let mut seen_revision: HashMap<(String, String), (i64, u64)> = HashMap::new();
    let mut note = |findings: &mut Findings,
                    key: &str,
                    value: &Value,
                    revision: i64,
                    index: u64,
                    process: Option<u64>| {
        let id = value_id(value);
        match seen_revision.get(&(key.to_string(), id.clone())) {
            Some(&(r, first)) if r != revision => findings.add(Anomaly {
                kind: "revision-mismatch",
                key: key.to_string(),
                process,
                index,
                detail: format!(
                    "value {value} reported at revision {revision}, but at revision {r} in op {first}"
                ),
            }),
            Some(_) => {}
            None => {
                seen_revision.insert((key.to_string(), id.clone()), (revision, index));
            }
        }
        let at = commits.entry(key.to_string()).or_default();
        match at.get(&revision) {
            Some(other) if *other != id => findings.add(Anomaly {
                kind: "revision-mismatch",
                key: key.to_string(),
                process,
                index,
                detail: format!("values {other} and {value} both reported at revision {revision}"),
            }),
            Some(_) => {}
            None => {
                at.insert(revision, id);
            }
        }
    };
    for (key, list) in &writes {
        for w in list {
            if let Some(r) = w.revision {
                note(&mut findings, key, &w.value, r, w.index, None);
            }
        }
    }
    for watch in &watches {
        for (key, value, revision) in &watch.events {
            let write = by_value
                .get(&(key.as_str(), value_id(value)))
                .map(|&i| &writes[key][i]);
            match write {
                None => findings.add(Anomaly {
                    kind: "phantom",
                    key: key.clone(),
                    process: Some(watch.process),
                    index: watch.index,
                    detail: format!("event of value {value} at revision {revision}, which no write of this key tried"),
                }),
                Some(w) if w.failed => findings.add(Anomaly {
                    kind: "phantom",
                    key: key.clone(),
                    process: Some(watch.process),
                    index: watch.index,
                    detail: format!("event of value {value}, whose write (op {}) certainly failed", w.index),
                }),
                Some(_) => note(&mut findings, key, value, *revision, watch.index, Some(watch.process)),
            }
        }
    }

    // 3. Revisions against real time: in revision order, no write may have been invoked after
    // a higher-revision write was acknowledged.
    for (key, list) in &writes {
        let mut acked: Vec<&Write> = list.iter().filter(|w| w.revision.is_some()).collect();
        acked.sort_by_key(|w| std::cmp::Reverse(w.revision));
        let mut earliest_higher: Option<&Write> = None;
        for w in acked {
            if let Some(h) = earliest_higher {
                if h.ok_ns.unwrap_or(u64::MAX) < w.invoke_ns {
                    findings.add(Anomaly {
                        kind: "revision-order",
                        key: key.clone(),
                        process: None,
                        index: w.index,
                        detail: format!(
                            "write of {} (revision {}) was invoked after write of {} (revision {}, op {}) was acknowledged",
                            w.value,
                            w.revision.unwrap_or(0),
                            h.value,
                            h.revision.unwrap_or(0),
                            h.index
                        ),
                    });
                }
            }
            if earliest_higher.is_none_or(|h| w.ok_ns < h.ok_ns) {
                earliest_higher = Some(w);
            }
        }
    }

    // 4. Order and duplicates per process stream; 5. gaps; 6. the latest value at the end.
    let last_ack_ns = writes
        .values()
        .flatten()
        .filter_map(|w| w.ok_ns)
        .max()
        .unwrap_or(0);
    let latest: BTreeMap<&str, (i64, &Value)> = writes
        .iter()
        .filter_map(|(key, list)| {
            let w = list
                .iter()
                .filter(|w| w.revision.is_some())
                .max_by_key(|w| w.revision)?;
            Some((key.as_str(), (w.revision?, &w.value)))
        })
        .collect();
    let mut last_seen: HashMap<(u64, String), i64> = HashMap::new();
    let mut gapless_watches = 0;
    let mut final_watches = 0;
    let mut events = 0;
    let mut watcher_set = std::collections::BTreeSet::new();
    for watch in &watches {
        watcher_set.insert(watch.process);
        events += watch.events.len() as u64;
        for (key, value, revision) in &watch.events {
            let slot = (watch.process, key.clone());
            if let Some(&previous) = last_seen.get(&slot) {
                if *revision <= previous {
                    findings.add(Anomaly {
                        kind: if *revision == previous { "duplicate" } else { "out-of-order" },
                        key: key.clone(),
                        process: Some(watch.process),
                        index: watch.index,
                        detail: format!(
                            "event of value {value} at revision {revision} after an event at revision {previous}"
                        ),
                    });
                    continue;
                }
            }
            last_seen.insert(slot, *revision);
        }
        if let Some((from, next)) = watch.range {
            gapless_watches += 1;
            for key in &watch.keys {
                let Some(known) = commits.get(key) else {
                    continue;
                };
                let reported: std::collections::BTreeSet<i64> = watch
                    .events
                    .iter()
                    .filter(|(k, _, _)| k == key)
                    .map(|(_, _, r)| *r)
                    .collect();
                for (revision, value) in known.range(from..next.max(from)) {
                    if !reported.contains(revision) {
                        findings.add(Anomaly {
                            kind: "gap",
                            key: key.clone(),
                            process: Some(watch.process),
                            index: watch.index,
                            detail: format!(
                                "the watch covered revisions {from}..{next} but did not report value {value} at revision {revision}"
                            ),
                        });
                    }
                }
            }
        }
        if watch.invoke_ns > last_ack_ns && last_ack_ns > 0 {
            final_watches += 1;
            for key in &watch.keys {
                let Some(&(revision, value)) = latest.get(key.as_str()) else {
                    continue;
                };
                let seen = last_seen.get(&(watch.process, key.clone())).copied();
                if seen.is_none_or(|s| s < revision) {
                    findings.add(Anomaly {
                        kind: "missed-latest",
                        key: key.clone(),
                        process: Some(watch.process),
                        index: watch.index,
                        detail: format!(
                            "a watch invoked after every acknowledged write ended at {}, but the last acknowledged write is value {value} at revision {revision}",
                            seen.map_or("nothing reported".to_string(), |s| format!("revision {s}"))
                        ),
                    });
                }
            }
        }
    }

    let valid = if !findings.counts.is_empty() {
        Validity::Invalid
    } else if !reasons.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    reasons.truncate(MAX_EVIDENCE);
    Ok(WatchResult {
        valid,
        writes: write_counts,
        watches: watch_counts,
        events,
        watchers: watcher_set.len() as u64,
        gapless_watches,
        final_watches,
        anomaly_counts: findings.counts,
        anomalies: findings.anomalies,
        reasons,
    })
}

fn outcome_name(outcome: &str) -> &'static str {
    match outcome {
        "ok" => "ok",
        "fail" => "fail",
        "info" => "info",
        _ => "never-completed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::Op;
    use serde_json::json;

    /// A history built op by op, with times 0, 1, 2, ... in push order.
    #[derive(Default)]
    struct Builder {
        ops: Vec<Op>,
    }

    impl Builder {
        fn push(&mut self, op: Op) -> &mut Self {
            let t = self.ops.len() as u64;
            self.ops.push(op.with_time(t));
            self
        }

        fn write(
            &mut self,
            p: u64,
            key: &str,
            v: i64,
            outcome: Option<(OpType, i64)>,
        ) -> &mut Self {
            self.push(Op::invoke(p, WRITE, json!(v)).with_key(json!(key)));
            match outcome {
                Some((OpType::Ok, r)) => self.push(
                    Op::complete(p, OpType::Ok, WRITE, json!({"value": v, "revision": r}))
                        .with_key(json!(key)),
                ),
                Some((kind, _)) => self.push(
                    Op::complete(p, kind, WRITE, json!(v))
                        .with_key(json!(key))
                        .with_error(json!("timeout")),
                ),
                None => self,
            }
        }

        fn watch(&mut self, p: u64, keys: &[&str], result: Option<Value>) -> &mut Self {
            self.push(Op::invoke(
                p,
                WATCH,
                json!({"keys": keys, "duration_ms": 10}),
            ));
            match result {
                Some(v) => self.push(Op::complete(p, OpType::Ok, WATCH, v)),
                None => self.push(
                    Op::complete(p, OpType::Info, WATCH, Value::Null).with_error(json!("timeout")),
                ),
            }
        }

        fn check(&self) -> WatchResult {
            let mut history = History::new(self.ops.clone());
            for (i, op) in history.ops.iter_mut().enumerate() {
                op.index = i as u64;
            }
            check(&history).expect("well formed")
        }
    }

    fn kinds(result: &WatchResult) -> Vec<&'static str> {
        result.anomalies.iter().map(|a| a.kind).collect()
    }

    /// Two writes of w0 (revisions 2, 3) and one of w1 (4).
    fn writes() -> Builder {
        let mut b = Builder::default();
        b.write(0, "w0", 10, Some((OpType::Ok, 2)))
            .write(0, "w0", 11, Some((OpType::Ok, 3)))
            .write(0, "w1", 12, Some((OpType::Ok, 4)));
        b
    }

    #[test]
    fn an_empty_history_is_valid() {
        let result = Builder::default().check();
        assert_eq!(result.valid, Validity::Valid);
        assert_eq!(result.events, 0);
    }

    #[test]
    fn a_watch_told_every_change_in_order_is_valid() {
        let mut b = Builder::default();
        b.watch(
            1,
            &["w0", "w1"],
            Some(json!({"events": [], "from": 1, "next": 2})),
        );
        b.write(0, "w0", 10, Some((OpType::Ok, 2)))
            .write(0, "w0", 11, Some((OpType::Ok, 3)));
        b.watch(
            1,
            &["w0", "w1"],
            Some(json!({"events": [["w0", 10, 2], ["w0", 11, 3]], "from": 2, "next": 4})),
        );
        b.watch(
            1,
            &["w0", "w1"],
            Some(json!({"events": [], "from": 4, "next": 4})),
        );
        let result = b.check();
        assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
        assert_eq!(
            (result.events, result.gapless_watches, result.final_watches),
            (2, 3, 2)
        );
    }

    #[test]
    fn a_dropped_event_is_a_gap_where_the_service_promises_every_change() {
        let mut b = writes();
        b.watch(
            1,
            &["w0"],
            Some(json!({"events": [["w0", 11, 3]], "from": 1, "next": 4})),
        );
        let result = b.check();
        assert_eq!(result.valid, Validity::Invalid);
        assert_eq!(kinds(&result), vec!["gap"]);
        assert!(
            result.explain().contains("value 10 at revision 2"),
            "{}",
            result.explain()
        );
    }

    #[test]
    fn without_the_promise_a_skipped_value_is_no_gap() {
        // ZooKeeper: a one-shot watch may skip 10, but must end at the latest value.
        let mut b = writes();
        b.watch(
            1,
            &["w0", "w1"],
            Some(json!({"events": [["w0", 11, 3], ["w1", 12, 4]]})),
        );
        assert_eq!(b.check().valid, Validity::Valid);
    }

    #[test]
    fn a_final_watch_that_misses_the_latest_value_is_invalid() {
        let mut b = writes();
        b.watch(
            1,
            &["w0", "w1"],
            Some(json!({"events": [["w0", 10, 2], ["w1", 12, 4]]})),
        );
        let result = b.check();
        assert_eq!(kinds(&result), vec!["missed-latest"]);
        // The same watch invoked before the last acknowledgement is not held to it.
        let mut b = Builder::default();
        b.write(0, "w0", 10, Some((OpType::Ok, 2)));
        b.push(Op::invoke(0, WRITE, json!(11)).with_key(json!("w0")));
        b.watch(1, &["w0"], Some(json!({"events": [["w0", 10, 2]]})));
        b.push(
            Op::complete(0, OpType::Ok, WRITE, json!({"value": 11, "revision": 3}))
                .with_key(json!("w0")),
        );
        assert_eq!(b.check().valid, Validity::Valid);
    }

    #[test]
    fn reordered_and_duplicated_events_are_named_across_one_process_s_watches() {
        let mut b = writes();
        b.watch(1, &["w0"], Some(json!({"events": [["w0", 11, 3]]})));
        b.watch(
            1,
            &["w0"],
            Some(json!({"events": [["w0", 11, 3], ["w0", 10, 2]]})),
        );
        let result = b.check();
        assert_eq!(kinds(&result), vec!["duplicate", "out-of-order"]);
        // Another process starts its own stream.
        let mut b = writes();
        b.watch(1, &["w0"], Some(json!({"events": [["w0", 11, 3]]})));
        b.watch(
            2,
            &["w0"],
            Some(json!({"events": [["w0", 10, 2], ["w0", 11, 3]]})),
        );
        assert_eq!(b.check().valid, Validity::Valid);
    }

    #[test]
    fn phantom_values_and_failed_writes_seen_are_invalid() {
        let mut b = writes();
        b.write(0, "w0", 13, Some((OpType::Fail, 0)));
        b.watch(
            1,
            &["w0"],
            Some(json!({"events": [["w0", 99, 7], ["w0", 13, 8]]})),
        );
        let result = b.check();
        assert_eq!(kinds(&result), vec!["phantom", "phantom"]);
    }

    #[test]
    fn an_info_write_seen_by_a_watcher_counts_and_must_not_be_skipped() {
        let mut b = Builder::default();
        b.write(0, "w0", 10, Some((OpType::Info, 0)));
        b.write(2, "w0", 11, Some((OpType::Ok, 6)));
        b.watch(
            1,
            &["w0"],
            Some(json!({"events": [["w0", 10, 5], ["w0", 11, 6]]})),
        );
        b.watch(
            3,
            &["w0"],
            Some(json!({"events": [["w0", 11, 6]], "from": 4, "next": 7})),
        );
        let result = b.check();
        assert_eq!(kinds(&result), vec!["gap"]);
        // Never seen, an info write claims nothing.
        let mut b = Builder::default();
        b.write(0, "w0", 10, Some((OpType::Info, 0)));
        b.write(2, "w0", 11, None);
        b.watch(
            3,
            &["w0"],
            Some(json!({"events": [], "from": 1, "next": 9})),
        );
        assert_eq!(b.check().valid, Validity::Valid);
    }

    #[test]
    fn info_and_never_completed_watches_are_skipped() {
        let mut b = writes();
        b.watch(1, &["w0"], None);
        b.push(Op::invoke(
            2,
            WATCH,
            json!({"keys": ["w0"], "duration_ms": 10}),
        ));
        let result = b.check();
        assert_eq!(result.valid, Validity::Valid);
        assert_eq!(result.watches["info"], 1);
        assert_eq!(result.watches["never-completed"], 1);
    }

    #[test]
    fn revisions_that_contradict_real_time_or_each_other_are_invalid() {
        let mut b = Builder::default();
        b.write(0, "w0", 10, Some((OpType::Ok, 5)))
            .write(0, "w0", 11, Some((OpType::Ok, 4)));
        assert_eq!(kinds(&b.check()), vec!["revision-order"]);
        let mut b = writes();
        b.watch(1, &["w0"], Some(json!({"events": [["w0", 10, 7]]})));
        assert_eq!(kinds(&b.check()), vec!["revision-mismatch"]);
    }

    #[test]
    fn malformed_watch_results_make_the_verdict_unknown() {
        let mut b = writes();
        b.watch(1, &["w0"], Some(json!({"events": [["w0", 10]]})));
        let result = b.check();
        assert_eq!(result.valid, Validity::Unknown);
        assert!(result.explain().contains("an event is"));
    }
}
