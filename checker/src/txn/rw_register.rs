//! rw-register: writes of unique values to registers, reads of single values.
//!
//! A read names the write it observed (values are unique), so wr edges are known exactly. The
//! version order of a key is not: it is inferred, per key, from
//! - the **initial state**: `nil` (never written) precedes every written value;
//! - **writes follow reads**: a transaction that read `v1` and then wrote `v2` puts `v1` first;
//! - **process order**, only when a requested model implies strong session snapshot isolation
//!   (sessions see their own writes): a process's earlier transaction left the key at a version
//!   its later one started from or overwrote;
//! - **real time**, only when a requested model implies strong snapshot isolation (a
//!   transaction sees every one that completed before it began): the same, for transactions
//!   one completed before the other was invoked (a transitive reduction per key).
//!
//! Edges built from process or real-time inference carry that in their relation
//! (`WW_PROCESS`, `RW_REALTIME`, ...), so a cycle that needs them rules out only the models
//! that justify the inference. A version order with a cycle is `cyclic-versions`.

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde_json::{json, Value};

use super::anomaly::{Anomaly, AnomalyType as A};
use super::explain::{simple_anomaly, EdgeExplainer, Names};
use super::graph::{rel, tarjan, Edge};
use super::history::{MopKind, Observed, Status, TxnHistory};
use super::order::realtime_reduction;
use super::{Analysis, Found, Model, TxnError};

/// Which sources of version order the requested models allow.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Inference {
    pub realtime: bool,
    pub process: bool,
}

/// The version `nil`: the initial state.
const NIL: u32 = u32::MAX;

/// Why one version precedes another. Ordered from the most to the least certain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// The transaction read the first version and then wrote the second.
    WritesFollowReads(u32),
    Initial,
    /// The first transaction, which left the first version, ran before the second on its
    /// process.
    Process(u32, u32),
    /// The first transaction completed before the second began.
    Realtime(u32, u32),
}

impl Source {
    fn relations(self) -> (u16, u16) {
        match self {
            Source::WritesFollowReads(_) | Source::Initial => (rel::WW, rel::RW),
            Source::Process(..) => (rel::WW_PROCESS, rel::RW_PROCESS),
            Source::Realtime(..) => (rel::WW_REALTIME, rel::RW_REALTIME),
        }
    }
}

/// What one key's analysis keeps for explanations.
#[derive(Debug, Default)]
struct KeyData {
    /// Each written value's transaction and micro-operation.
    writes: FxHashMap<u32, (u32, u32)>,
    /// The version order's edges and why each holds.
    versions: FxHashMap<(u32, u32), Source>,
}

/// One transaction's dealings with one key.
#[derive(Debug, Clone, Copy)]
struct Access {
    txn: u32,
    /// The first micro-operation on the key was a read, of this (known) version.
    external_read: Option<u32>,
    /// The micro-operation index of that read.
    read_mop: u32,
    /// The last value written to the key, if any.
    final_write: Option<u32>,
    /// The version the transaction left the key at, as far as known.
    final_version: Option<u32>,
}

impl Access {
    /// The version this transaction started from, or installed, first: what must follow the
    /// version an earlier transaction left.
    fn entry_version(&self) -> Option<u32> {
        self.external_read.or(self.final_write)
    }
}

struct KeyOutcome {
    data: KeyData,
    edges: Vec<Edge>,
    anomalies: Vec<Found>,
}

pub(crate) fn analyze(history: &TxnHistory, inference: Inference) -> Result<Analysis, TxnError> {
    let (offsets, entries) = history.group_by_key();
    let outcomes: Vec<Result<KeyOutcome, TxnError>> = (0..history.keys.len())
        .into_par_iter()
        .map(|k| {
            analyze_key(
                history,
                k as u32,
                &entries[offsets[k]..offsets[k + 1]],
                inference,
            )
        })
        .collect();
    let mut keys = Vec::with_capacity(outcomes.len());
    let mut edges = Vec::with_capacity(outcomes.len());
    let mut anomalies = Vec::new();
    for outcome in outcomes {
        let outcome = outcome?;
        keys.push(outcome.data);
        edges.push(outcome.edges);
        anomalies.extend(outcome.anomalies);
    }
    let per_txn: Vec<Anomaly> = (0..history.txns.len() as u32)
        .into_par_iter()
        .filter(|&t| history.txns[t as usize].status == Status::Ok)
        .flat_map_iter(|t| check_internal(history, t))
        .collect();
    anomalies.extend(per_txn.into_iter().map(Found::from));
    Ok(Analysis {
        anomalies,
        edges,
        explainer: Box::new(RwRegisterExplainer { keys }),
    })
}

fn analyze_key(
    history: &TxnHistory,
    key: u32,
    entries: &[(u32, u32)],
    inference: Inference,
) -> Result<KeyOutcome, TxnError> {
    let status = |t: u32| history.txns[t as usize].status;
    let mut data = KeyData::default();
    let mut accesses: Vec<Access> = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let txn = entries[i].0;
        let mut access = Access {
            txn,
            external_read: None,
            read_mop: 0,
            final_write: None,
            final_version: None,
        };
        let mut first = true;
        while i < entries.len() && entries[i].0 == txn {
            let mop_index = entries[i].1;
            let mop = &history.mops[mop_index as usize];
            match mop.kind {
                MopKind::Write => {
                    if let Some((other, _)) = data.writes.insert(mop.value, (txn, mop_index)) {
                        return Err(TxnError::Precondition(format!(
                            "rw-register needs unique writes, but {} was written to {} by the \
                             transactions at index {} and index {}",
                            history.value_text(mop.value),
                            history.key_text(key),
                            history.index_of(other),
                            history.index_of(txn)
                        )));
                    }
                    access.final_write = Some(mop.value);
                    access.final_version = Some(mop.value);
                }
                MopKind::Append => {
                    return Err(TxnError::Precondition(format!(
                        "the transaction at index {} appends to {}; rw-register histories \
                         only write and read",
                        history.index_of(txn),
                        history.key_text(key)
                    )))
                }
                MopKind::Read => {
                    let version = match mop.read {
                        Observed::Unknown => None,
                        Observed::Nil => Some(NIL),
                        Observed::Value(v) => Some(v),
                        Observed::List { .. } => {
                            return Err(TxnError::Precondition(format!(
                                "the transaction at index {} read a list from {}; rw-register \
                                 reads return one value",
                                history.index_of(txn),
                                history.key_text(key)
                            )))
                        }
                    };
                    if first {
                        access.external_read = version;
                        access.read_mop = mop_index;
                    }
                    if version.is_some() {
                        access.final_version = version;
                    }
                }
            }
            first = false;
            i += 1;
        }
        accesses.push(access);
    }

    let mut anomalies: Vec<Found> = Vec::new();
    let mut versions: FxHashMap<(u32, u32), Source> = FxHashMap::default();
    let mut add_version = |from: u32, to: u32, source: Source| {
        if from == to {
            return;
        }
        let slot = versions.entry((from, to)).or_insert(source);
        if source < *slot {
            *slot = source;
        }
    };
    for a in &accesses {
        if let (Some(read), Some(write)) = (a.external_read, a.final_write) {
            add_version(read, write, Source::WritesFollowReads(a.txn));
        }
    }
    let committed_or_unknown: Vec<&Access> = accesses
        .iter()
        .filter(|a| status(a.txn) != Status::Fail)
        .collect();
    if inference.process {
        let mut last: FxHashMap<u64, &Access> = FxHashMap::default();
        for a in &committed_or_unknown {
            let process = history.txns[a.txn as usize].process;
            if let Some(previous) = last.get(&process) {
                if let (Some(from), Some(to)) = (previous.final_version, a.entry_version()) {
                    add_version(from, to, Source::Process(previous.txn, a.txn));
                }
            }
            last.insert(process, a);
        }
    }
    if inference.realtime {
        let members: Vec<u32> = committed_or_unknown.iter().map(|a| a.txn).collect();
        let by_txn: FxHashMap<u32, &Access> =
            committed_or_unknown.iter().map(|a| (a.txn, *a)).collect();
        realtime_reduction(history, &members, |x, y| {
            let (earlier, later) = (by_txn[&x], by_txn[&y]);
            if let (Some(from), Some(to)) = (earlier.final_version, later.entry_version()) {
                add_version(from, to, Source::Realtime(x, y));
            }
        });
    }
    // The initial version precedes every version nothing else is known to precede.
    let mut has_predecessor: rustc_hash::FxHashSet<u32> =
        versions.keys().map(|&(_, to)| to).collect();
    has_predecessor.insert(NIL);
    let mut written: Vec<u32> = data.writes.keys().copied().collect();
    written.sort_unstable();
    for v in written {
        if !has_predecessor.contains(&v) {
            versions.insert((NIL, v), Source::Initial);
        }
    }

    // Cyclic versions: the inferred order is no order at all.
    if let Some(cycle) = version_cycle(&versions) {
        let cycle_text: Vec<String> = cycle.iter().map(|&v| version_text(history, v)).collect();
        let writers: Vec<u32> = cycle
            .iter()
            .filter_map(|v| data.writes.get(v).map(|&(t, _)| t))
            .collect();
        let anomaly = simple_anomaly(
            history,
            A::CyclicVersions,
            &writers,
            json!({"key": history.key_json(key), "cycle": cycle.iter().map(|&v| version_json(history, v)).collect::<Vec<_>>()}),
            |_| {
                format!(
                    "The versions of {} must be ordered {} < {}, a cycle.",
                    history.key_text(key),
                    cycle_text.join(" < "),
                    cycle_text[0]
                )
            },
        );
        // A cycle that needs process or real-time inference rules out only the models that
        // justify the inference.
        let sources: Vec<Source> = (0..cycle.len())
            .map(|i| versions[&(cycle[i], cycle[(i + 1) % cycle.len()])])
            .collect();
        let assumes = if sources.iter().any(|s| matches!(s, Source::Realtime(..))) {
            Some(Model::StrongSnapshotIsolation)
        } else if sources.iter().any(|s| matches!(s, Source::Process(..))) {
            Some(Model::StrongSessionSnapshotIsolation)
        } else {
            None
        };
        anomalies.push(Found { anomaly, assumes });
    }

    // Reads: what each one observed.
    let mut plain: Vec<Anomaly> = Vec::new();
    let final_write_of: FxHashMap<u32, u32> = accesses
        .iter()
        .filter_map(|a| a.final_write.map(|v| (a.txn, v)))
        .collect();
    let writer = |v: u32| data.writes.get(&v).copied();
    for a in accesses.iter().filter(|a| status(a.txn) == Status::Ok) {
        let Some(v) = a.external_read else {
            continue;
        };
        if v == NIL {
            continue;
        }
        match writer(v) {
            None => plain.push(simple_anomaly(
                history,
                A::ThinAirRead,
                &[a.txn],
                json!({"key": history.key_json(key), "value": history.value_json(v)}),
                |n| {
                    format!(
                        "{} read {} = {}, but no transaction wrote {} to it.",
                        n.get(a.txn),
                        history.key_text(key),
                        history.value_text(v),
                        history.value_text(v)
                    )
                },
            )),
            Some((w, _)) if status(w) == Status::Fail => plain.push(simple_anomaly(
                history,
                A::G1a,
                &[a.txn, w],
                json!({"key": history.key_json(key), "value": history.value_json(v)}),
                |n| {
                    format!(
                        "{} read {} = {}, which {} wrote; but {} aborted (fail).",
                        n.get(a.txn),
                        history.key_text(key),
                        history.value_text(v),
                        n.get(w),
                        n.get(w)
                    )
                },
            )),
            Some((w, _)) if w != a.txn => {
                let final_of_writer = final_write_of.get(&w).copied();
                if final_of_writer != Some(v) {
                    let later = final_of_writer.expect("the writer wrote");
                    plain.push(simple_anomaly(
                        history,
                        A::G1b,
                        &[a.txn, w],
                        json!({"key": history.key_json(key), "value": history.value_json(v), "later": history.value_json(later)}),
                        |n| {
                            format!(
                                "{} read {} = {}, an intermediate state of {}: it wrote {} \
                                 to {} afterwards.",
                                n.get(a.txn),
                                history.key_text(key),
                                history.value_text(v),
                                n.get(w),
                                history.value_text(later),
                                history.key_text(key)
                            )
                        },
                    ));
                }
            }
            _ => {}
        }
    }

    // Lost update: committed transactions that read the same version and wrote over it.
    let mut by_version: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    for a in accesses.iter().filter(|a| status(a.txn) == Status::Ok) {
        if let (Some(read), Some(_)) = (a.external_read, a.final_write) {
            by_version.entry(read).or_default().push(a.txn);
        }
    }
    let mut lost: Vec<(u32, Vec<u32>)> = by_version
        .into_iter()
        .filter(|(_, t)| t.len() > 1)
        .collect();
    lost.sort_by_key(|(_, t)| t[0]);
    for (v, txns) in lost {
        plain.push(simple_anomaly(
            history,
            A::LostUpdate,
            &txns,
            json!({"key": history.key_json(key), "value": version_json(history, v)}),
            |n| {
                let names: Vec<String> = txns.iter().map(|&t| n.get(t)).collect();
                format!(
                    "{} all read {k} = {} and then wrote {k}: each update was based on a \
                     version another one replaced.",
                    names.join(", "),
                    version_text(history, v),
                    k = history.key_text(key)
                )
            },
        ));
    }

    // Dirty update: a committed write ordered right after an aborted one.
    let mut version_edges: Vec<(&(u32, u32), &Source)> = versions.iter().collect();
    version_edges.sort_unstable_by_key(|(pair, _)| **pair);
    for (&(from, to), _) in &version_edges {
        if let (Some((a, _)), Some((b, _))) = (writer(from), writer(to)) {
            if status(a) == Status::Fail && status(b) != Status::Fail {
                plain.push(simple_anomaly(
                    history,
                    A::DirtyUpdate,
                    &[a, b],
                    json!({"key": history.key_json(key), "aborted": history.value_json(from), "committed": history.value_json(to)}),
                    |n| {
                        format!(
                            "{}'s write of {k} = {} follows {}'s write of {}, though {} \
                             aborted (fail).",
                            n.get(b),
                            history.value_text(to),
                            n.get(a),
                            history.value_text(from),
                            n.get(a),
                            k = history.key_text(key)
                        )
                    },
                ));
                break;
            }
        }
    }

    // Edges between transactions that may have committed.
    let mut readers: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    for a in accesses.iter().filter(|a| status(a.txn) == Status::Ok) {
        if let Some(v) = a.external_read {
            readers.entry(v).or_default().push(a.txn);
        }
    }
    let in_graph = |t: u32| status(t) != Status::Fail;
    let mut edges = Vec::new();
    let mut edge = |x: u32, y: u32, r: u16| {
        if x != y && in_graph(x) && in_graph(y) {
            edges.push(Edge::new(x, y, r));
        }
    };
    for (&v, rs) in &readers {
        if let Some((w, _)) = writer(v) {
            for &r in rs {
                edge(w, r, rel::WR);
            }
        }
    }
    for (&(from, to), &source) in &version_edges {
        let Some((later, _)) = writer(to) else {
            continue;
        };
        let (ww, rw) = source.relations();
        if let Some((earlier, _)) = writer(from) {
            edge(earlier, later, ww);
        }
        if let Some(rs) = readers.get(&from) {
            for &r in rs {
                edge(r, later, rw);
            }
        }
    }
    data.versions = versions;
    anomalies.extend(plain.into_iter().map(Found::from));
    Ok(KeyOutcome {
        data,
        edges,
        anomalies,
    })
}

/// A cycle among versions, if any: the values in order.
fn version_cycle(versions: &FxHashMap<(u32, u32), Source>) -> Option<Vec<u32>> {
    let mut ids: Vec<u32> = versions.keys().flat_map(|&(a, b)| [a, b]).collect();
    ids.sort_unstable();
    ids.dedup();
    let local = |v: u32| ids.binary_search(&v).expect("a version") as u32;
    let mut pairs: Vec<(u32, u32)> = versions
        .keys()
        .map(|&(a, b)| (local(a), local(b)))
        .collect();
    pairs.sort_unstable();
    let mut offsets = vec![0usize; ids.len() + 1];
    for &(a, _) in &pairs {
        offsets[a as usize + 1] += 1;
    }
    for i in 0..ids.len() {
        offsets[i + 1] += offsets[i];
    }
    let targets: Vec<u32> = pairs.iter().map(|&(_, b)| b).collect();
    let components = tarjan(ids.len(), &offsets, &targets, |_| true);
    let members = components.nontrivial.first()?;
    // A shortest cycle through the component's first version, by breadth-first search.
    let start = members[0];
    let mut parent: FxHashMap<u32, u32> = FxHashMap::default();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in &targets[offsets[v as usize]..offsets[v as usize + 1]] {
            if w == start {
                let mut cycle = vec![v];
                let mut at = v;
                while at != start {
                    at = parent[&at];
                    cycle.push(at);
                }
                cycle.reverse();
                return Some(cycle.iter().map(|&l| ids[l as usize]).collect());
            }
            if components.same(w, start) && w != start && !parent.contains_key(&w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    unreachable!("a strongly connected component holds a cycle through each member")
}

fn version_text(history: &TxnHistory, v: u32) -> String {
    if v == NIL {
        "nil".into()
    } else {
        history.value_text(v)
    }
}

fn version_json(history: &TxnHistory, v: u32) -> Value {
    if v == NIL {
        Value::Null
    } else {
        history.value_json(v)
    }
}

/// Internal consistency and future reads within one committed transaction.
fn check_internal(history: &TxnHistory, txn: u32) -> Vec<Anomaly> {
    let mops = history.mops_of(txn);
    let mut anomalies = Vec::new();
    let mut known: Vec<(u32, u32)> = Vec::new();
    for (i, mop) in mops.iter().enumerate() {
        let slot = known.iter().position(|(k, _)| *k == mop.key);
        let value = match mop.kind {
            MopKind::Write => mop.value,
            MopKind::Append => continue,
            MopKind::Read => {
                let read = match mop.read {
                    Observed::Nil => NIL,
                    Observed::Value(v) => v,
                    _ => continue,
                };
                let future = mops[i + 1..]
                    .iter()
                    .any(|m| m.kind == MopKind::Write && m.key == mop.key && m.value == read);
                if future {
                    anomalies.push(simple_anomaly(
                        history,
                        A::FutureRead,
                        &[txn],
                        json!({"key": history.key_json(mop.key), "value": version_json(history, read)}),
                        |n| {
                            format!(
                                "{} read {} = {}, which {} itself writes only later.",
                                n.get(txn),
                                history.key_text(mop.key),
                                version_text(history, read),
                                n.get(txn)
                            )
                        },
                    ));
                } else if let Some(s) = slot {
                    let expected = known[s].1;
                    if expected != read {
                        anomalies.push(simple_anomaly(
                            history,
                            A::Internal,
                            &[txn],
                            json!({"key": history.key_json(mop.key), "read": version_json(history, read), "expected": version_json(history, expected)}),
                            |n| {
                                format!(
                                    "{} read {} = {}, but its own earlier micro-operations \
                                     imply {}.",
                                    n.get(txn),
                                    history.key_text(mop.key),
                                    version_text(history, read),
                                    version_text(history, expected)
                                )
                            },
                        ));
                    }
                }
                read
            }
        };
        match slot {
            Some(s) => known[s].1 = value,
            None => known.push((mop.key, value)),
        }
    }
    anomalies
}

struct RwRegisterExplainer {
    keys: Vec<KeyData>,
}

impl RwRegisterExplainer {
    fn source_text(
        &self,
        history: &TxnHistory,
        key: u32,
        from: u32,
        to: u32,
        source: Source,
        names: &Names,
    ) -> String {
        let who = |t: u32| {
            names
                .lookup(t)
                .unwrap_or_else(|| format!("the transaction at index {}", history.index_of(t)))
        };
        let (v1, v2) = (version_text(history, from), version_text(history, to));
        let k = history.key_text(key);
        // What a transaction did to the key: read the version, or wrote it.
        let did = |t: u32, v: u32, text: &str| {
            let read = matches!(
                history.external_read(t, key),
                Some((_, Observed::Value(r))) if r == v
            ) || (v == NIL
                && matches!(history.external_read(t, key), Some((_, Observed::Nil))));
            let wrote = history
                .mops_of(t)
                .iter()
                .any(|m| m.kind == MopKind::Write && m.key == key && m.value == v);
            match (wrote, read) {
                (true, _) => format!("{} wrote {k} = {text}", who(t)),
                (false, true) => format!("{} read {k} = {text}", who(t)),
                _ => format!("{} saw {k} = {text}", who(t)),
            }
        };
        match source {
            Source::WritesFollowReads(t) => {
                format!("{} read {k} = {v1} and then wrote {v2}", who(t))
            }
            Source::Initial => format!("{v1} is the initial version of {k}"),
            Source::Process(a, b) => format!(
                "{} before {} on process {}",
                did(a, from, &v1),
                did(b, to, &v2),
                history.txns[a as usize].process
            ),
            Source::Realtime(a, b) => format!(
                "{} and completed before {} began",
                did(a, from, &v1),
                did(b, to, &v2)
            ),
        }
    }
}

impl EdgeExplainer for RwRegisterExplainer {
    fn explain(
        &self,
        history: &TxnHistory,
        from: u32,
        to: u32,
        r: u16,
        names: &Names,
    ) -> (Option<Value>, String) {
        let (a, b) = (names.get(from), names.get(to));
        let writes_of = |t: u32| {
            history
                .mops_of(t)
                .iter()
                .filter(|m| m.kind == MopKind::Write)
                .map(|m| (m.key, m.value))
                .collect::<Vec<_>>()
        };
        if r == rel::WR {
            for m in history.mops_of(to) {
                if let Some((_, Observed::Value(v))) = history.external_read(to, m.key) {
                    if self.keys[m.key as usize].writes.get(&v).map(|w| w.0) == Some(from) {
                        return (
                            Some(history.key_json(m.key)),
                            format!(
                                "{b} read {} = {}, which {a} wrote",
                                history.key_text(m.key),
                                history.value_text(v)
                            ),
                        );
                    }
                }
            }
        } else if r & rel::ALL_WW != 0 {
            for (key, v2) in writes_of(to) {
                let data = &self.keys[key as usize];
                for (k1, v1) in writes_of(from) {
                    if k1 != key {
                        continue;
                    }
                    if let Some(&source) = data.versions.get(&(v1, v2)) {
                        if source.relations().0 == r {
                            return (
                                Some(history.key_json(key)),
                                format!(
                                    "{a} wrote {k} = {} and {b} wrote {}, a later version: {}",
                                    history.value_text(v1),
                                    history.value_text(v2),
                                    self.source_text(history, key, v1, v2, source, names),
                                    k = history.key_text(key)
                                ),
                            );
                        }
                    }
                }
            }
        } else if r & rel::ALL_RW != 0 {
            for m in history.mops_of(from) {
                let Some((_, observed)) = history.external_read(from, m.key) else {
                    continue;
                };
                let v1 = match observed {
                    Observed::Nil => NIL,
                    Observed::Value(v) => v,
                    _ => continue,
                };
                let data = &self.keys[m.key as usize];
                for (key, v2) in writes_of(to) {
                    if key != m.key {
                        continue;
                    }
                    if let Some(&source) = data.versions.get(&(v1, v2)) {
                        if source.relations().1 == r {
                            return (
                                Some(history.key_json(key)),
                                format!(
                                    "{a} read {k} = {}, and {b} wrote {}, a later version: {}",
                                    version_text(history, v1),
                                    history.value_text(v2),
                                    self.source_text(history, key, v1, v2, source, names),
                                    k = history.key_text(key)
                                ),
                            );
                        }
                    }
                }
            }
        }
        (
            None,
            format!("{a} precedes {b} (no single key justifies it)"),
        )
    }
}
