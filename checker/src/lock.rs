//! The lock checker: leases, mutual exclusion in real time, and fencing tokens.
//!
//! A lock history has, per lock (the `key`):
//! - `acquire`: invoke value `{"lease_ms": L}` (or null: no lease, held until released); ok
//!   value `{"token": T, "lease_ms": L}` where `L` is the lease as the client measured it, in
//!   milliseconds from the acquire's invocation, and `T` the fencing token; `fail` = not
//!   acquired (held by another).
//! - `release`: ok = released; `fail` = it certainly released nothing (the lease had already
//!   gone).
//! - `write` to the protected resource: invoke value = a unique write id, or an object with
//!   that id as `id` (see `faultline_core::lock`); `ok` = accepted,
//!   `fail` = rejected (a fencing token lower than the highest the resource has seen), `info` =
//!   unknown. The token a write carries is its process's current hold's token.
//! - `read` of the protected resource (the final read): ok value = every accepted write in the
//!   order the resource accepted it, `[[token, id], ...]`.
//!
//! Three checks, composed by `max`:
//! 1. **Linearizability** of the acquires and releases against the `mutex` model. A lease ends
//!    a hold without a release, so each acquire not followed by an ok release of its process
//!    gets a synthetic release (the lease expiring) invoked when the lease ends as the client
//!    measured it and never completed: it may take effect at any time after that, or never.
//!    When the process gave up first (an `info`: its worker closes the client, which may
//!    release the lock, as a closed ZooKeeper session deletes its ephemeral node), the
//!    synthetic release is invoked at that completion instead.
//! 2. **Holders in real time**: a process believes it holds the lock from its acquire's
//!    completion until the earliest of its release's invocation, its lease's end (the acquire's
//!    invocation + the client's `lease_ms`) and the moment it gave up (an `info` completion).
//!    Two processes whose beliefs overlap are reported as a pair, with how long they overlap.
//! 3. **Fencing**: in the resource's acceptance order, tokens never go down (a lower token
//!    accepted after a higher one is a stale holder's write: split brain), a token belongs to
//!    one process, and one holder's writes are not interleaved with another's. Also: every
//!    acknowledged write is there, no rejected or never-invoked write is.
//!
//! ```
//! use faultline_checker::{lock, Validity};
//! use faultline_core::{History, Op, OpType};
//! use serde_json::json;
//! let ops = vec![
//!     Op::invoke(0, "acquire", json!({"lease_ms": 1000})).with_time(0),
//!     Op::complete(0, OpType::Ok, "acquire", json!({"token": 1, "lease_ms": 1000})).with_time(10),
//!     Op::invoke(1, "acquire", json!({"lease_ms": 1000})).with_time(20),
//!     Op::complete(1, OpType::Ok, "acquire", json!({"token": 2, "lease_ms": 1000})).with_time(30),
//! ];
//! let result = lock::check(&History::new(ops), &lock::LockOptions::default()).unwrap();
//! assert_eq!(result.valid, Validity::Invalid);
//! assert_eq!(result.overlaps.len(), 1);
//! ```
//!
//! Design decision: the holders' check uses the client's own measure of its lease, counted
//! from the acquire's invocation (the earliest moment the service can have started it), so a
//! correct service with correct clocks never produces an overlap, whatever the delays; the
//! `mutex` model alone cannot see leases, and with them it is weaker (a synthetic expiry may
//! release any holder), so the real-time check is the one that names the two holders.

use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use faultline_core::{History, HistoryError, Op, OpType, Process};

use crate::linearizability::{self, CheckOptions, LinearizabilityResult};
use crate::{ModelKind, Validity};

/// `f` of an acquire.
pub const ACQUIRE: &str = "acquire";
/// `f` of a release.
pub const RELEASE: &str = "release";
/// `f` of a write to the protected resource.
pub const WRITE: &str = "write";
/// `f` of a read of the protected resource.
pub const READ: &str = "read";
/// Evidence items kept per kind; the counts are always complete.
pub const MAX_EVIDENCE: usize = 20;

/// How to check a lock history.
#[derive(Debug, Clone, Default)]
pub struct LockOptions {
    /// Past this the mutex search's verdict is `unknown`.
    pub time_limit: Option<Duration>,
}

/// One process's belief that it held the lock.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hold {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    pub process: u64,
    pub token: Value,
    /// History index of the acquire's invocation.
    pub acquire_index: u64,
    /// Nanoseconds: the acquire's completion.
    pub from_ns: u64,
    /// Nanoseconds: the earliest of the release's invocation, the lease's end as the client
    /// measured it, and the process giving up; `None` = still held when the history ends.
    pub until_ns: Option<u64>,
    /// Why the belief ended: `release`, `lease`, `gave-up`, or `end` of the history.
    pub ended_by: &'static str,
}

/// Two processes that believed they held one lock at the same time.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overlap {
    pub first: Hold,
    pub second: Hold,
    /// How long both believed it, in nanoseconds (to the end of the history when one never
    /// stopped).
    pub overlap_ns: u64,
}

/// One accepted write as the resource listed it, with who wrote it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Accepted {
    /// Position in the resource's acceptance order.
    pub position: usize,
    pub token: Value,
    pub id: Value,
    /// The writing process (`None`: no write with this id was invoked).
    pub process: Option<u64>,
}

/// Something wrong with the protected resource's order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FencingAnomaly {
    /// `stale-token` (a lower token accepted after a higher one), `interleaved` (a holder's
    /// writes resumed after another holder's), `shared-token` (two processes wrote with one
    /// token), `lost-write` (acknowledged, not listed), `rejected-write-present` (failed, yet
    /// listed), `unknown-write` (listed, never invoked), `wrong-token` (listed with a token its
    /// writer did not hold), `duplicate-write` (listed twice).
    pub kind: &'static str,
    /// The accepted write that shows it (for `lost-write`, none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write: Option<Accepted>,
    /// The earlier accepted write it conflicts with, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earlier: Option<Accepted>,
    pub detail: String,
}

/// The fencing verdict for one lock's resource.
#[derive(Debug, Clone, Serialize)]
pub struct Fencing {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    pub valid: Validity,
    /// Writes acknowledged (`ok`), rejected (`fail`), unknown (`info` or no completion).
    pub writes_ok: usize,
    pub writes_rejected: usize,
    pub writes_unknown: usize,
    /// Entries in the final read of the resource (`None`: it was never read).
    pub accepted: Option<usize>,
    /// Anomalies by kind, complete counts.
    pub counts: BTreeMap<&'static str, usize>,
    /// The first [`MAX_EVIDENCE`] anomalies.
    pub anomalies: Vec<FencingAnomaly>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The verdict for a lock history.
#[derive(Debug, Clone, Serialize)]
pub struct LockResult {
    pub valid: Validity,
    pub acquires: usize,
    pub acquired: usize,
    pub holds: usize,
    /// Pairs of processes that believed they held a lock at once (complete count).
    pub overlap_count: usize,
    /// The first [`MAX_EVIDENCE`] of them.
    pub overlaps: Vec<Overlap>,
    /// The mutex model's verdict on the acquires and releases (synthetic lease expiries added).
    pub mutex: Option<LinearizabilityResult>,
    /// Synthetic releases added for leases (their history indexes start at the history's
    /// length).
    pub lease_expiries: usize,
    /// One entry per lock whose resource was written.
    pub fencing: Vec<Fencing>,
    /// Why the verdict is unknown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl LockResult {
    /// What is wrong, for a person (empty when valid).
    pub fn explain(&self) -> String {
        let mut out = String::new();
        if self.overlap_count > 0 {
            let _ = writeln!(
                out,
                "{} pair(s) of processes believed they held the lock at the same time:",
                self.overlap_count
            );
            for overlap in &self.overlaps {
                let _ = writeln!(
                    out,
                    "  {} and {} overlap for {:.3} ms",
                    hold_line(&overlap.first),
                    hold_line(&overlap.second),
                    overlap.overlap_ns as f64 / 1e6
                );
            }
        }
        if let Some(mutex) = &self.mutex {
            if mutex.valid != Validity::Valid {
                let _ = writeln!(
                    out,
                    "the acquires and releases are {} for the mutex model:",
                    if mutex.valid == Validity::Invalid {
                        "not linearizable"
                    } else {
                        "of unknown linearizability"
                    }
                );
                out.push_str(&mutex.explain());
            }
        }
        for fencing in &self.fencing {
            if fencing.valid == Validity::Valid {
                continue;
            }
            let key = fencing
                .key
                .as_ref()
                .map(|k| format!(" of lock {k}"))
                .unwrap_or_default();
            let counts: Vec<String> = fencing
                .counts
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect();
            let _ = writeln!(
                out,
                "the protected resource{key}: {}",
                if counts.is_empty() {
                    "not checked".to_string()
                } else {
                    counts.join(", ")
                }
            );
            for anomaly in &fencing.anomalies {
                let _ = writeln!(out, "  {}: {}", anomaly.kind, anomaly.detail);
            }
            if let Some(reason) = &fencing.reason {
                let _ = writeln!(out, "  unknown: {reason}");
            }
        }
        for reason in &self.reasons {
            let _ = writeln!(out, "unknown: {reason}");
        }
        out
    }
}

fn hold_line(hold: &Hold) -> String {
    let until = hold
        .until_ns
        .map(|t| format!("{:.3}", t as f64 / 1e9))
        .unwrap_or_else(|| "end".into());
    format!(
        "process {} (token {}, acquire at index {}, held {:.3}..{} s, ended by {})",
        hold.process,
        hold.token,
        hold.acquire_index,
        hold.from_ns as f64 / 1e9,
        until,
        hold.ended_by
    )
}

/// What one process did, in order: the pairs of one process.
struct Step<'a> {
    invoke: &'a Op,
    completion: Option<&'a Op>,
}

impl Step<'_> {
    fn kind(&self) -> Option<OpType> {
        self.completion.map(|c| c.kind)
    }
}

/// A write as the checker knows it.
struct WriteInfo {
    process: u64,
    /// The token of the hold it was made under (`None`: made while holding nothing).
    token: Option<Value>,
    kind: Option<OpType>,
    invoke_index: u64,
}

/// A write's id: its value's `id`, or the value itself.
fn write_id(value: &Value) -> &Value {
    value.get("id").unwrap_or(value)
}

/// The lease as the client measured it, in ms: the completion's, else the invocation's.
fn lease_ms(value: &Value) -> Option<u64> {
    value.get("lease_ms").and_then(Value::as_u64)
}

/// Checks a lock history. Errors only for a history that is not a history (malformed
/// pairing); anything the checker cannot read makes the verdict `unknown` with the reason.
pub fn check(history: &History, options: &LockOptions) -> Result<LockResult, HistoryError> {
    let pairs = history.pairs()?;
    let by_process = steps_by_process(history, &pairs);
    let mut reasons = Vec::new();
    let end_ns = history.ops.iter().filter_map(|op| op.time).max();
    let timed = history
        .client_ops()
        .filter(|op| matches!(op.f.as_str(), ACQUIRE | RELEASE | WRITE))
        .all(|op| op.time.is_some());
    if !timed {
        reasons.push(
            "some lock operations have no time, so holds and lease expiries cannot be placed"
                .to_string(),
        );
    }
    let Walk {
        acquires,
        acquired,
        holds,
        expiries,
        writes,
    } = walk(history, &by_process);
    let (overlap_count, overlaps) = if timed {
        find_overlaps(&holds, end_ns.unwrap_or(0))
    } else {
        (0, Vec::new())
    };

    let mutex = if timed {
        Some(check_mutex(history, &expiries, options)?)
    } else {
        None
    };

    let fencing = check_fencing(history, &by_process, &writes);

    let mut valid = if reasons.is_empty() {
        Validity::Valid
    } else {
        Validity::Unknown
    };
    if overlap_count > 0 {
        valid = Validity::Invalid;
    }
    if let Some(mutex) = &mutex {
        valid = valid.max(mutex.valid);
    }
    for f in &fencing {
        valid = valid.max(f.valid);
    }
    Ok(LockResult {
        valid,
        acquires,
        acquired,
        holds: holds.len(),
        overlap_count,
        overlaps,
        mutex,
        lease_expiries: expiries.len(),
        fencing,
        reasons,
    })
}

/// Every process's steps (its pairs, in order).
fn steps_by_process<'a>(
    history: &'a History,
    pairs: &[faultline_core::Pair],
) -> BTreeMap<u64, Vec<Step<'a>>> {
    let mut by_process: BTreeMap<u64, Vec<Step>> = BTreeMap::new();
    for pair in pairs {
        let invoke = &history.ops[pair.invoke];
        let Process::Client(process) = invoke.process else {
            continue;
        };
        by_process.entry(process).or_default().push(Step {
            invoke,
            completion: pair.completion.map(|c| &history.ops[c]),
        });
    }
    by_process
}

/// What one pass over every process's steps finds.
struct Walk {
    acquires: usize,
    acquired: usize,
    holds: Vec<Hold>,
    expiries: Vec<Op>,
    writes: HashMap<(Option<String>, String), WriteInfo>,
}

/// Every process's beliefs that it held a lock, in order of process then acquire (what the
/// holders' check judges; the report draws them).
pub fn holds(history: &History) -> Result<Vec<Hold>, HistoryError> {
    let pairs = history.pairs()?;
    Ok(walk(history, &steps_by_process(history, &pairs)).holds)
}

/// The holds, the synthetic lease expiries and the writes of every process.
fn walk(history: &History, by_process: &BTreeMap<u64, Vec<Step>>) -> Walk {
    let mut acquires = 0;
    let mut acquired = 0;
    let mut holds: Vec<Hold> = Vec::new();
    let mut expiries: Vec<Op> = Vec::new();
    let mut writes: HashMap<(Option<String>, String), WriteInfo> = HashMap::new();
    let mut next_synthetic = by_process.keys().next_back().map_or(0, |p| p + 1);
    for (&process, steps) in by_process {
        // The hold in force: (its hold, position in `holds`).
        let mut current: Option<usize> = None;
        for (i, step) in steps.iter().enumerate() {
            let time = |op: &Op| op.time.unwrap_or(0);
            match step.invoke.f.as_str() {
                ACQUIRE => {
                    acquires += 1;
                    if let Some(open) = current.take() {
                        // A new acquire ends the belief in the old hold.
                        end_hold(&mut holds[open], time(step.invoke), "release");
                    }
                    let lease = match step.completion {
                        Some(c) if c.kind == OpType::Ok => {
                            lease_ms(&c.value).or_else(|| lease_ms(&step.invoke.value))
                        }
                        _ => lease_ms(&step.invoke.value),
                    };
                    let lease_end = lease.map(|ms| time(step.invoke) + ms * 1_000_000);
                    let kind = step.kind();
                    if kind == Some(OpType::Ok) {
                        acquired += 1;
                        let completion = step.completion.expect("ok has a completion");
                        let token = completion
                            .value
                            .get("token")
                            .cloned()
                            .unwrap_or(Value::Null);
                        let (until_ns, ended_by) = match lease_end {
                            Some(end) => (Some(end.max(time(completion))), "lease"),
                            None => (None, "end"),
                        };
                        holds.push(Hold {
                            key: step.invoke.key.clone(),
                            process,
                            token,
                            acquire_index: step.invoke.index,
                            from_ns: time(completion),
                            until_ns,
                            ended_by,
                        });
                        current = Some(holds.len() - 1);
                    }
                    // A lease that may be in force ends by itself unless released; and a
                    // process that gives up (an `info`) is closed by its worker, which may
                    // release what it held (a ZooKeeper session takes its ephemeral nodes).
                    let may_hold = !matches!(kind, Some(OpType::Fail));
                    let this_hold = || {
                        std::iter::once(step)
                            .chain(steps[i + 1..].iter().take_while(|s| s.invoke.f != ACQUIRE))
                    };
                    let released =
                        this_hold().any(|s| s.invoke.f == RELEASE && s.kind() == Some(OpType::Ok));
                    let gave_up = this_hold()
                        .find(|s| s.kind() == Some(OpType::Info))
                        .and_then(|s| s.completion.and_then(|c| c.time));
                    let end = match (lease_end, gave_up) {
                        (Some(lease), Some(gave_up)) => Some(lease.min(gave_up)),
                        (lease, gave_up) => lease.or(gave_up),
                    };
                    if let (true, false, Some(end)) = (may_hold, released, end) {
                        let mut expiry =
                            Op::invoke(next_synthetic, RELEASE, json!("lease-expired"))
                                .with_time(end);
                        expiry.key = step.invoke.key.clone();
                        expiry.index = (history.ops.len() + expiries.len()) as u64;
                        next_synthetic += 1;
                        expiries.push(expiry);
                    }
                }
                RELEASE => {
                    if let Some(open) = current.take() {
                        end_hold(&mut holds[open], time(step.invoke), "release");
                    }
                }
                WRITE => {
                    let token = current.map(|h| holds[h].token.clone());
                    let id = (
                        step.invoke.key.as_ref().map(Value::to_string),
                        write_id(&step.invoke.value).to_string(),
                    );
                    writes.insert(
                        id,
                        WriteInfo {
                            process,
                            token,
                            kind: step.kind(),
                            invoke_index: step.invoke.index,
                        },
                    );
                }
                _ => {}
            }
            if step.kind() == Some(OpType::Info) {
                // The process gave up: it believes nothing from here on.
                if let Some(open) = current.take() {
                    let at = step.completion.and_then(|c| c.time).unwrap_or(0);
                    end_hold(&mut holds[open], at, "gave-up");
                }
            }
        }
    }
    Walk {
        acquires,
        acquired,
        holds,
        expiries,
        writes,
    }
}

/// Ends a hold's belief at `at_ns` if that is earlier than when it ended so far.
fn end_hold(hold: &mut Hold, at_ns: u64, why: &'static str) {
    let at = at_ns.max(hold.from_ns);
    if hold.until_ns.is_none_or(|until| at < until) {
        hold.until_ns = Some(at);
        hold.ended_by = why;
    }
}

/// Every pair of holds of one lock, by different processes, whose beliefs overlap.
fn find_overlaps(holds: &[Hold], end_ns: u64) -> (usize, Vec<Overlap>) {
    let mut by_key: BTreeMap<Option<String>, Vec<&Hold>> = BTreeMap::new();
    for hold in holds {
        by_key
            .entry(hold.key.as_ref().map(Value::to_string))
            .or_default()
            .push(hold);
    }
    let mut count = 0;
    let mut evidence = Vec::new();
    for holds in by_key.values_mut() {
        holds.sort_by_key(|h| h.from_ns);
        // Holds whose belief has not ended by the current start (a sweep over start times).
        let mut active: Vec<&Hold> = Vec::new();
        for &hold in holds.iter() {
            let until = |h: &Hold| h.until_ns.unwrap_or(u64::MAX);
            active.retain(|a| until(a) > hold.from_ns);
            for &earlier in &active {
                if earlier.process == hold.process {
                    continue;
                }
                count += 1;
                if evidence.len() < MAX_EVIDENCE {
                    let overlap_end = match until(earlier).min(until(hold)) {
                        u64::MAX => end_ns.max(hold.from_ns),
                        end => end,
                    };
                    evidence.push(Overlap {
                        first: earlier.clone(),
                        second: hold.clone(),
                        overlap_ns: overlap_end.saturating_sub(hold.from_ns),
                    });
                }
            }
            // An empty belief (released at once) overlaps nothing.
            if until(hold) > hold.from_ns {
                active.push(hold);
            }
        }
    }
    (count, evidence)
}

/// The acquires and releases, with the synthetic lease expiries, against the mutex model.
fn check_mutex(
    history: &History,
    expiries: &[Op],
    options: &LockOptions,
) -> Result<LinearizabilityResult, HistoryError> {
    let mut ops: Vec<Op> = history
        .ops
        .iter()
        .filter(|op| !op.is_nemesis() && matches!(op.f.as_str(), ACQUIRE | RELEASE))
        .cloned()
        .collect();
    ops.extend(expiries.iter().cloned());
    // Real-time order; a stable sort keeps each invocation before its completion.
    ops.sort_by_key(|op| op.time.unwrap_or(0));
    let mut check = CheckOptions::new(ModelKind::Mutex);
    check.time_limit = options.time_limit;
    match linearizability::check(&History::new(ops), &check) {
        Ok(result) => Ok(result),
        Err(linearizability::CheckError::Malformed(e)) => Err(e),
    }
}

/// Per lock: the resource's acceptance order (its last ok read) against the writes.
fn check_fencing(
    history: &History,
    by_process: &BTreeMap<u64, Vec<Step>>,
    writes: &HashMap<(Option<String>, String), WriteInfo>,
) -> Vec<Fencing> {
    let mut keys: BTreeMap<Option<String>, (Option<Value>, [usize; 3])> = BTreeMap::new();
    for ((key, _), write) in writes {
        let entry = keys.entry(key.clone()).or_insert_with(|| (None, [0; 3]));
        match write.kind {
            Some(OpType::Ok) => entry.1[0] += 1,
            Some(OpType::Fail) => entry.1[1] += 1,
            _ => entry.1[2] += 1,
        }
    }
    for op in history.client_ops() {
        if op.f == WRITE && op.kind == OpType::Invoke {
            if let Some(entry) = keys.get_mut(&op.key.as_ref().map(Value::to_string)) {
                entry.0 = op.key.clone();
            }
        }
    }
    // The last ok read of each key's resource.
    let mut reads: HashMap<Option<String>, &Op> = HashMap::new();
    for steps in by_process.values() {
        for step in steps {
            if step.invoke.f != READ || step.kind() != Some(OpType::Ok) {
                continue;
            }
            let completion = step.completion.expect("ok has a completion");
            let key = step.invoke.key.as_ref().map(Value::to_string);
            let later = reads.get(&key).is_none_or(|r| r.index < completion.index);
            if later {
                reads.insert(key, completion);
            }
        }
    }
    let mut out = Vec::new();
    for (key, (key_value, [ok, rejected, unknown])) in keys {
        let mut fencing = Fencing {
            key: key_value,
            valid: Validity::Valid,
            writes_ok: ok,
            writes_rejected: rejected,
            writes_unknown: unknown,
            accepted: None,
            counts: BTreeMap::new(),
            anomalies: Vec::new(),
            reason: None,
        };
        match reads.get(&key) {
            None => {
                fencing.valid = Validity::Unknown;
                fencing.reason = Some("the protected resource was never read".into());
            }
            Some(read) => match parse_log(&read.value) {
                Err(why) => {
                    fencing.valid = Validity::Unknown;
                    fencing.reason = Some(format!(
                        "the read at index {} is not a list of [token, id]: {why}",
                        read.index
                    ));
                }
                Ok(log) => {
                    fencing.accepted = Some(log.len());
                    judge_log(&key, &log, writes, &mut fencing);
                }
            },
        }
        out.push(fencing);
    }
    out
}

fn parse_log(value: &Value) -> Result<Vec<(Value, Value)>, String> {
    let entries = value.as_array().ok_or("not a list")?;
    entries
        .iter()
        .map(|entry| match entry.as_array().map(Vec::as_slice) {
            Some([token, id]) => Ok((token.clone(), id.clone())),
            _ => Err(format!("entry {entry} is not [token, id]")),
        })
        .collect()
}

/// Tokens compare as integers when both are, else as their JSON text.
fn token_cmp(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn judge_log(
    key: &Option<String>,
    log: &[(Value, Value)],
    writes: &HashMap<(Option<String>, String), WriteInfo>,
    fencing: &mut Fencing,
) {
    let mut anomalies: Vec<FencingAnomaly> = Vec::new();
    let accepted: Vec<Accepted> = log
        .iter()
        .enumerate()
        .map(|(position, (token, id))| Accepted {
            position,
            token: token.clone(),
            id: id.clone(),
            process: writes
                .get(&(key.clone(), id.to_string()))
                .map(|w| w.process),
        })
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    // The highest token so far, with its entry.
    let mut highest: Option<&Accepted> = None;
    // Per token, its writer; per (token, writer), the position of its last entry.
    let mut token_writer: HashMap<String, &Accepted> = HashMap::new();
    let mut last_of_holder: HashMap<(String, Option<u64>), usize> = HashMap::new();
    let mut previous: Option<&Accepted> = None;
    for entry in &accepted {
        let id_text = entry.id.to_string();
        if let Some(&first) = seen.get(&id_text) {
            anomalies.push(FencingAnomaly {
                kind: "duplicate-write",
                write: Some(entry.clone()),
                earlier: Some(accepted[first].clone()),
                detail: format!(
                    "write {} is listed at {first} and {}",
                    entry.id, entry.position
                ),
            });
        }
        seen.insert(id_text.clone(), entry.position);
        match writes.get(&(key.clone(), id_text)) {
            None => anomalies.push(FencingAnomaly {
                kind: "unknown-write",
                write: Some(entry.clone()),
                earlier: None,
                detail: format!("write {} was never invoked", entry.id),
            }),
            Some(write) => {
                if write.kind == Some(OpType::Fail) {
                    anomalies.push(FencingAnomaly {
                        kind: "rejected-write-present",
                        write: Some(entry.clone()),
                        earlier: None,
                        detail: format!(
                            "write {} (invoked at index {}) failed, yet the resource accepted it",
                            entry.id, write.invoke_index
                        ),
                    });
                }
                if write.token.as_ref() != Some(&entry.token) {
                    anomalies.push(FencingAnomaly {
                        kind: "wrong-token",
                        write: Some(entry.clone()),
                        earlier: None,
                        detail: format!(
                            "write {} by process {} is listed with token {} but its process held {}",
                            entry.id,
                            write.process,
                            entry.token,
                            write.token.as_ref().map_or("nothing".into(), Value::to_string)
                        ),
                    });
                }
            }
        }
        if let Some(high) = highest {
            if token_cmp(&entry.token, &high.token).is_lt() {
                anomalies.push(FencingAnomaly {
                    kind: "stale-token",
                    write: Some(entry.clone()),
                    earlier: Some(high.clone()),
                    detail: format!(
                        "write {} with token {} (process {}) was accepted at {} after write {} \
                         with token {} (process {}) at {}: two holders wrote",
                        entry.id,
                        entry.token,
                        process_text(entry.process),
                        entry.position,
                        high.id,
                        high.token,
                        process_text(high.process),
                        high.position
                    ),
                });
            }
        }
        if highest.is_none_or(|h| token_cmp(&entry.token, &h.token).is_gt()) {
            highest = Some(entry);
        }
        let token_text = entry.token.to_string();
        match token_writer.get(&token_text) {
            // A write never invoked is reported as such, not as a second writer.
            Some(owner) if owner.process != entry.process && entry.process.is_some() => anomalies
                .push(FencingAnomaly {
                    kind: "shared-token",
                    write: Some(entry.clone()),
                    earlier: Some((*owner).clone()),
                    detail: format!(
                        "token {} was used by process {} and process {}",
                        entry.token,
                        process_text(owner.process),
                        process_text(entry.process)
                    ),
                }),
            Some(_) => {}
            None => {
                token_writer.insert(token_text.clone(), entry);
            }
        }
        let holder = (token_text, entry.process);
        let continues =
            previous.is_some_and(|p| p.token == entry.token && p.process == entry.process);
        if !continues {
            if let Some(&last) = last_of_holder.get(&holder) {
                anomalies.push(FencingAnomaly {
                    kind: "interleaved",
                    write: Some(entry.clone()),
                    earlier: Some(accepted[last].clone()),
                    detail: format!(
                        "process {} (token {}) wrote at {} and again at {}, with another \
                         holder's writes between",
                        process_text(entry.process),
                        entry.token,
                        last,
                        entry.position
                    ),
                });
            }
        }
        last_of_holder.insert(holder, entry.position);
        previous = Some(entry);
    }
    let listed: std::collections::HashSet<String> =
        accepted.iter().map(|a| a.id.to_string()).collect();
    let mut lost: Vec<(&String, &WriteInfo)> = writes
        .iter()
        .filter(|((k, id), w)| k == key && w.kind == Some(OpType::Ok) && !listed.contains(id))
        .map(|((_, id), w)| (id, w))
        .collect();
    lost.sort_by_key(|(_, w)| w.invoke_index);
    for (id, write) in lost {
        anomalies.push(FencingAnomaly {
            kind: "lost-write",
            write: None,
            earlier: None,
            detail: format!(
                "write {id} (invoked at index {}) was acknowledged but is not in the resource",
                write.invoke_index
            ),
        });
    }
    for anomaly in &anomalies {
        *fencing.counts.entry(anomaly.kind).or_default() += 1;
    }
    if !anomalies.is_empty() {
        fencing.valid = Validity::Invalid;
    }
    anomalies.truncate(MAX_EVIDENCE);
    fencing.anomalies = anomalies;
}

fn process_text(process: Option<u64>) -> String {
    process.map_or("?".into(), |p| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// A history under construction; times in ms.
    #[derive(Default)]
    struct Builder {
        ops: Vec<Op>,
    }

    impl Builder {
        fn invoke(mut self, at_ms: u64, process: u64, f: &str, value: Value) -> Self {
            self.ops.push(
                Op::invoke(process, f, value)
                    .with_time(at_ms * MS)
                    .with_key(json!("l")),
            );
            self
        }
        fn done(mut self, at_ms: u64, process: u64, kind: OpType, f: &str, value: Value) -> Self {
            let mut op = Op::complete(process, kind, f, value).with_time(at_ms * MS);
            op.key = Some(json!("l"));
            if kind != OpType::Ok {
                op.error = Some(json!("error"));
            }
            self.ops.push(op);
            self
        }
        /// An acquire of `process` from `from` to `to` ms, granted with `token`.
        fn acquired(self, from: u64, to: u64, process: u64, token: i64, lease: u64) -> Self {
            self.invoke(from, process, ACQUIRE, json!({"lease_ms": lease}))
                .done(
                    to,
                    process,
                    OpType::Ok,
                    ACQUIRE,
                    json!({"token": token, "lease_ms": lease}),
                )
        }
        fn op(self, from: u64, to: u64, process: u64, f: &str, kind: OpType, value: Value) -> Self {
            let v = value.clone();
            self.invoke(from, process, f, value)
                .done(to, process, kind, f, v)
        }
        fn check(self) -> LockResult {
            let mut history = History::new(self.ops);
            for (i, op) in history.ops.iter_mut().enumerate() {
                op.index = i as u64;
            }
            check(&history, &LockOptions::default()).expect("well formed")
        }
    }

    fn kinds(result: &LockResult) -> Vec<&'static str> {
        result
            .fencing
            .iter()
            .flat_map(|f| f.anomalies.iter().map(|a| a.kind))
            .collect()
    }

    /// Two holders one after the other, each writing and releasing, then a read of the
    /// resource listing both holders' writes in token order.
    fn sequential() -> Builder {
        Builder::default()
            .acquired(0, 1, 0, 1, 1_000)
            .op(2, 3, 0, WRITE, OpType::Ok, json!(10))
            .op(4, 5, 0, WRITE, OpType::Ok, json!(11))
            .op(6, 7, 0, RELEASE, OpType::Ok, Value::Null)
            .op(3, 4, 1, ACQUIRE, OpType::Fail, json!({"lease_ms": 1_000}))
            .acquired(8, 9, 1, 2, 1_000)
            .op(10, 11, 1, WRITE, OpType::Ok, json!(12))
            .op(12, 13, 1, RELEASE, OpType::Ok, Value::Null)
    }

    #[test]
    fn holders_one_after_another_with_fenced_writes_are_valid() {
        let result = sequential()
            .op(
                20,
                21,
                2,
                READ,
                OpType::Ok,
                json!([[1, 10], [1, 11], [2, 12]]),
            )
            .check();
        assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
        assert_eq!((result.acquires, result.acquired, result.holds), (3, 2, 2));
        assert_eq!(result.mutex.as_ref().unwrap().valid, Validity::Valid);
        assert_eq!(result.fencing.len(), 1);
        assert_eq!(result.fencing[0].accepted, Some(3));
        assert_eq!(result.lease_expiries, 0);
        assert!(result.explain().is_empty());
    }

    #[test]
    fn two_holders_at_once_are_an_overlap_and_not_a_mutex() {
        let result = Builder::default()
            .acquired(0, 1, 0, 1, 1_000)
            .acquired(2, 3, 1, 2, 1_000)
            .op(10, 11, 0, RELEASE, OpType::Ok, Value::Null)
            .op(12, 13, 1, RELEASE, OpType::Ok, Value::Null)
            .check();
        assert_eq!(result.valid, Validity::Invalid);
        assert_eq!(result.overlap_count, 1);
        let overlap = &result.overlaps[0];
        assert_eq!((overlap.first.process, overlap.second.process), (0, 1));
        // Process 1 believed from 3 ms; process 0 until its release was invoked at 10 ms.
        assert_eq!(overlap.overlap_ns, 7 * MS);
        assert_eq!(overlap.first.ended_by, "release");
        assert_eq!(result.mutex.as_ref().unwrap().valid, Validity::Invalid);
        assert!(
            result.explain().contains("believed they held"),
            "{}",
            result.explain()
        );
    }

    #[test]
    fn an_expired_lease_lets_the_next_holder_in() {
        // Process 0 never releases; its 100 ms lease (from its invocation at 0) ends at 100.
        let result = Builder::default()
            .acquired(0, 5, 0, 1, 100)
            .acquired(101, 102, 1, 2, 100)
            .op(110, 111, 1, RELEASE, OpType::Ok, Value::Null)
            .check();
        assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
        assert_eq!(result.lease_expiries, 1);
        assert_eq!(result.overlap_count, 0);
    }

    #[test]
    fn a_next_holder_before_the_lease_ends_overlaps() {
        let result = Builder::default()
            .acquired(0, 5, 0, 1, 100)
            .acquired(60, 61, 1, 2, 100)
            .check();
        assert_eq!(result.valid, Validity::Invalid);
        assert_eq!(result.overlaps[0].first.ended_by, "lease");
        assert_eq!(result.overlaps[0].overlap_ns, 39 * MS);
        // The synthetic expiry may only take effect from 100 ms: the mutex sees it too.
        assert_eq!(result.mutex.as_ref().unwrap().valid, Validity::Invalid);
    }

    #[test]
    fn a_crashed_acquire_holds_nothing_but_its_lease_may() {
        // Process 0's acquire is unknown: it may hold the lock until its lease ends at 100 ms,
        // so process 1 getting it at 150 is fine, and process 0 believes nothing.
        let result = Builder::default()
            .invoke(0, 0, ACQUIRE, json!({"lease_ms": 100}))
            .done(10, 0, OpType::Info, ACQUIRE, json!({"lease_ms": 100}))
            .acquired(150, 151, 1, 2, 100)
            .op(160, 161, 1, RELEASE, OpType::Ok, Value::Null)
            .check();
        assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
        assert_eq!(result.holds, 1);
        assert_eq!(result.lease_expiries, 1);
    }

    #[test]
    fn giving_up_ends_the_belief() {
        // Process 0's write times out at 20 ms: it gives up; process 1's hold from 30 is fine
        // for the holders' check (the mutex model still needs process 0's lease to end).
        let result = Builder::default()
            .acquired(0, 1, 0, 1, 25)
            .invoke(5, 0, WRITE, json!(1))
            .done(20, 0, OpType::Info, WRITE, json!(1))
            .acquired(30, 31, 1, 2, 1_000)
            .op(32, 33, 1, WRITE, OpType::Ok, json!(2))
            .op(40, 41, 2, READ, OpType::Ok, json!([[1, 1], [2, 2]]))
            .check();
        assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
        assert_eq!(result.fencing[0].writes_unknown, 1);
    }

    #[test]
    fn a_holder_that_gave_up_may_have_released_before_its_lease_ended() {
        // Process 0's write times out at 20 ms; its worker closes the session, which releases
        // the lock (ZooKeeper): process 1 holds it from 31 ms, long before 0's lease ends.
        let result = Builder::default()
            .acquired(0, 1, 0, 1, 1_000)
            .invoke(5, 0, WRITE, json!(1))
            .done(20, 0, OpType::Info, WRITE, json!(1))
            .acquired(30, 31, 1, 2, 1_000)
            .op(40, 41, 1, RELEASE, OpType::Ok, Value::Null)
            .check();
        assert_eq!(result.mutex.as_ref().unwrap().valid, Validity::Valid);
        assert_eq!(result.overlap_count, 0);
        assert_eq!(result.lease_expiries, 1);
        // Before it gave up, the lock was still its own.
        let result = Builder::default()
            .acquired(0, 1, 0, 1, 1_000)
            .acquired(10, 11, 1, 2, 1_000)
            .invoke(5, 0, WRITE, json!(1))
            .done(20, 0, OpType::Info, WRITE, json!(1))
            .check();
        assert_eq!(result.mutex.as_ref().unwrap().valid, Validity::Invalid);
    }

    #[test]
    fn a_stale_holders_write_after_a_newer_one_is_split_brain() {
        // Without fencing the resource accepted token 1 after token 2.
        let result = sequential()
            .op(
                20,
                21,
                2,
                READ,
                OpType::Ok,
                json!([[1, 10], [2, 12], [1, 11]]),
            )
            .check();
        assert_eq!(result.valid, Validity::Invalid);
        assert_eq!(kinds(&result), vec!["stale-token", "interleaved"]);
        let stale = &result.fencing[0].anomalies[0];
        assert_eq!(stale.write.as_ref().unwrap().process, Some(0));
        assert_eq!(stale.earlier.as_ref().unwrap().process, Some(1));
        assert!(
            result.explain().contains("two holders wrote"),
            "{}",
            result.explain()
        );
    }

    #[test]
    fn a_fenced_write_is_rejected_and_absent() {
        let result = Builder::default()
            .acquired(0, 1, 0, 1, 1_000)
            .acquired(2, 3, 1, 2, 1_000)
            .op(4, 5, 1, WRITE, OpType::Ok, json!(20))
            .op(6, 7, 0, WRITE, OpType::Fail, json!(10))
            .op(20, 21, 2, READ, OpType::Ok, json!([[2, 20]]))
            .check();
        // The holders overlap (a faulty lock service), but the resource stayed consistent.
        assert_eq!(result.overlap_count, 1);
        assert_eq!(result.fencing[0].valid, Validity::Valid);
        assert_eq!(result.fencing[0].writes_rejected, 1);
    }

    #[test]
    fn the_resource_must_keep_what_it_acknowledged_and_only_that() {
        let result = Builder::default()
            .acquired(0, 1, 0, 1, 1_000)
            .op(2, 3, 0, WRITE, OpType::Ok, json!(10))
            .op(4, 5, 0, WRITE, OpType::Ok, json!(11))
            .op(6, 7, 0, WRITE, OpType::Fail, json!(13))
            .op(8, 9, 0, RELEASE, OpType::Ok, Value::Null)
            .op(
                20,
                21,
                2,
                READ,
                OpType::Ok,
                json!([[1, 10], [1, 13], [1, 99]]),
            )
            .check();
        let mut found = kinds(&result);
        found.sort();
        assert_eq!(
            found,
            vec!["lost-write", "rejected-write-present", "unknown-write"]
        );
        assert_eq!(result.valid, Validity::Invalid);
        // Write 11 was made under token 1, not 2.
        let result = sequential()
            .op(
                20,
                21,
                2,
                READ,
                OpType::Ok,
                json!([[1, 10], [2, 11], [2, 12]]),
            )
            .check();
        assert!(
            kinds(&result).contains(&"wrong-token"),
            "{:?}",
            kinds(&result)
        );
    }

    #[test]
    fn one_token_for_two_processes_is_shared() {
        let result = Builder::default()
            .acquired(0, 1, 0, 1, 1_000)
            .op(2, 3, 0, WRITE, OpType::Ok, json!(1))
            .op(4, 5, 0, RELEASE, OpType::Ok, Value::Null)
            .acquired(6, 7, 1, 1, 1_000)
            .op(8, 9, 1, WRITE, OpType::Ok, json!(2))
            .op(20, 21, 2, READ, OpType::Ok, json!([[1, 1], [1, 2]]))
            .check();
        assert_eq!(kinds(&result), vec!["shared-token"]);
    }

    #[test]
    fn writes_without_a_read_of_the_resource_are_unknown() {
        let result = sequential().check();
        assert_eq!(result.valid, Validity::Unknown);
        assert!(result.fencing[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("never read"));
    }

    #[test]
    fn a_read_that_is_not_a_log_is_unknown() {
        let result = sequential()
            .op(20, 21, 2, READ, OpType::Ok, json!({"x": 1}))
            .check();
        assert_eq!(result.valid, Validity::Unknown);
    }

    #[test]
    fn operations_without_time_are_unknown() {
        let mut history = History::new(vec![
            Op::invoke(0, ACQUIRE, json!({"lease_ms": 10})),
            Op::complete(0, OpType::Ok, ACQUIRE, json!({"token": 1})),
        ]);
        history.ops[1].index = 1;
        let result = check(&history, &LockOptions::default()).unwrap();
        assert_eq!(result.valid, Validity::Unknown);
        assert!(result.mutex.is_none());
    }

    #[test]
    fn a_malformed_history_is_an_error() {
        let history = History::new(vec![
            Op::invoke(0, ACQUIRE, Value::Null),
            Op::invoke(0, ACQUIRE, Value::Null),
        ]);
        assert!(check(&history, &LockOptions::default()).is_err());
    }
}
