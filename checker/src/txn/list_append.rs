//! List-append: every append is unique, so every version of a key is traceable to the
//! transactions that built it, and the version order of each key is read off its longest read.
//!
//! Per key (in parallel): the version order is the longest list any committed transaction
//! read; every other read must be a prefix of it (else `incompatible-order`). Then:
//! - **ww**: the writer of each version precedes the writer of the next;
//! - **wr**: the writer of the last element a transaction read (externally) precedes it;
//! - **rw**: a transaction that read a prefix precedes the writer of the element after it;
//! - committed appends that no read shows come after every version read: the writer of the
//!   last version read, and every transaction that read that last version, precede them.
//!
//! And without a cycle: aborted reads (G1a), intermediate reads (G1b), duplicate elements,
//! reads of values nobody appended, dirty updates, lost updates; per transaction, internal
//! inconsistency and future reads.

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Value};

use super::anomaly::{Anomaly, AnomalyType as A};
use super::explain::{simple_anomaly, EdgeExplainer, Names};
use super::graph::{rel, Edge};
use super::history::{MopKind, Observed, Status, TxnHistory};
use super::{Analysis, Found, TxnError};

/// What explanations need to know about one key.
#[derive(Debug, Default)]
struct KeyData {
    /// The version order: a range of `TxnHistory::lists` (the longest read), or empty.
    order: Option<(u32, u32)>,
    /// Each appended value's transaction and micro-operation.
    appends: FxHashMap<u32, (u32, u32)>,
    /// Values some read showed.
    observed: FxHashSet<u32>,
}

impl KeyData {
    fn order<'a>(&self, history: &'a TxnHistory) -> &'a [u32] {
        match self.order {
            Some((start, len)) => history.list(start, len),
            None => &[],
        }
    }

    fn writer(&self, value: u32) -> Option<u32> {
        self.appends.get(&value).map(|&(t, _)| t)
    }
}

struct KeyOutcome {
    data: KeyData,
    edges: Vec<Edge>,
    anomalies: Vec<Anomaly>,
}

/// Analyses a list-append history.
pub(crate) fn analyze(history: &TxnHistory, infer_unread: bool) -> Result<Analysis, TxnError> {
    let (offsets, entries) = history.group_by_key();
    let outcomes: Vec<Result<KeyOutcome, TxnError>> = (0..history.keys.len())
        .into_par_iter()
        .map(|k| {
            analyze_key(
                history,
                k as u32,
                &entries[offsets[k]..offsets[k + 1]],
                infer_unread,
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
    anomalies.extend(per_txn);
    Ok(Analysis {
        anomalies: anomalies.into_iter().map(Found::from).collect(),
        edges,
        explainer: Box::new(ListAppendExplainer { keys }),
    })
}

/// One read of the key: transaction, micro-operation, the list, and whether it is the
/// transaction's external read of the key.
struct Read<'a> {
    txn: u32,
    mop: u32,
    list: &'a [u32],
    external: bool,
    /// The transaction appends to the key after this read.
    appends_later: bool,
}

fn analyze_key(
    history: &TxnHistory,
    key: u32,
    entries: &[(u32, u32)],
    infer_unread: bool,
) -> Result<KeyOutcome, TxnError> {
    let mut data = KeyData::default();
    let mut reads: Vec<Read> = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let txn = entries[i].0;
        let mut appended = false;
        let mut read_before = false;
        let first_read_of_txn = reads.len();
        while i < entries.len() && entries[i].0 == txn {
            let mop_index = entries[i].1;
            let mop = &history.mops[mop_index as usize];
            match mop.kind {
                MopKind::Append => {
                    if let Some((other, _)) = data.appends.insert(mop.value, (txn, mop_index)) {
                        return Err(TxnError::Precondition(format!(
                            "list-append needs unique appends, but {} was appended to {} by \
                             the transactions at index {} and index {}",
                            history.value_text(mop.value),
                            history.key_text(key),
                            history.index_of(other),
                            history.index_of(txn)
                        )));
                    }
                    appended = true;
                    for r in &mut reads[first_read_of_txn..] {
                        r.appends_later = true;
                    }
                }
                MopKind::Write => {
                    return Err(TxnError::Precondition(format!(
                        "the transaction at index {} writes {} with w; list-append histories \
                         only append",
                        history.index_of(txn),
                        history.key_text(key)
                    )))
                }
                MopKind::Read => match mop.read {
                    Observed::Unknown => {}
                    Observed::Value(v) => {
                        return Err(TxnError::Precondition(format!(
                            "the transaction at index {} read {} = {}; list-append reads \
                             return lists",
                            history.index_of(txn),
                            history.key_text(key),
                            history.value_text(v)
                        )))
                    }
                    observed => {
                        let list = history.read_list(observed).expect("a list read");
                        reads.push(Read {
                            txn,
                            mop: mop_index,
                            list,
                            external: !appended && !read_before,
                            appends_later: false,
                        });
                        read_before = true;
                    }
                },
            }
            i += 1;
        }
    }

    let mut anomalies = Vec::new();
    let mut edges = Vec::new();
    let status = |t: u32| history.txns[t as usize].status;

    // The version order: the longest read (the first of the longest, for determinism).
    let longest = reads
        .iter()
        .enumerate()
        .max_by_key(|(i, r)| (r.list.len(), std::cmp::Reverse(*i)))
        .map(|(_, r)| r);
    let order: &[u32] = longest.map_or(&[], |r| r.list);
    if let Some(r) = longest {
        if !r.list.is_empty() {
            let Observed::List { start, len } = history.mops[r.mop as usize].read else {
                unreachable!("a non-empty list read")
            };
            data.order = Some((start, len));
        }
    }
    let position: FxHashMap<u32, u32> = order
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, i as u32))
        .collect();
    data.observed.extend(order.iter().copied());

    // Checks on the order itself, which every compatible read is a prefix of.
    let mut order_has_duplicates = position.len() != order.len();
    // Positions of elements nobody appended, or that an aborted transaction appended.
    let mut bad_positions: Vec<u32> = Vec::new();
    for (i, &v) in order.iter().enumerate() {
        match data.appends.get(&v) {
            None => bad_positions.push(i as u32),
            Some(&(w, _)) if status(w) == Status::Fail => bad_positions.push(i as u32),
            _ => {}
        }
    }

    let mut incompatible_reported = false;
    for read in &reads {
        let compatible = read.list.len() <= order.len() && order[..read.list.len()] == *read.list;
        if !compatible {
            data.observed.extend(read.list.iter().copied());
            if !incompatible_reported {
                incompatible_reported = true;
                let longest = longest.expect("an incompatible read has a longest read");
                anomalies.push(simple_anomaly(
                    history,
                    A::IncompatibleOrder,
                    &[longest.txn, read.txn],
                    json!({
                        "key": history.key_json(key),
                        "values": [
                            history.observed_json(history.mops[longest.mop as usize].read),
                            history.observed_json(history.mops[read.mop as usize].read),
                        ],
                    }),
                    |n| {
                        format!(
                            "{} read {k} = {}, and {} read {k} = {}: neither is a prefix of \
                             the other, so they cannot both come from one order of appends \
                             to {k}.",
                            n.get(longest.txn),
                            history.observed_text(history.mops[longest.mop as usize].read),
                            n.get(read.txn),
                            history.observed_text(history.mops[read.mop as usize].read),
                            k = history.key_text(key),
                        )
                    },
                ));
            }
        }
        // Duplicates: a prefix of a duplicate-free order has none.
        if !compatible || order_has_duplicates {
            let mut seen = FxHashSet::default();
            let duplicates: Vec<u32> = read
                .list
                .iter()
                .copied()
                .filter(|&v| !seen.insert(v))
                .collect();
            if !duplicates.is_empty() {
                order_has_duplicates = true;
                anomalies.push(read_anomaly(
                    history,
                    A::DuplicateElements,
                    read,
                    key,
                    &[],
                    json!({"duplicates": duplicates.iter().map(|&v| history.value_json(v)).collect::<Vec<_>>()}),
                    |n, k, seen_text| {
                        format!(
                            "{} read {k} = {seen_text}, in which {} appear more than once, \
                             though every append is unique.",
                            n.get(read.txn),
                            values_text(history, &duplicates)
                        )
                    },
                ));
            }
        }
        // Aborted and thin-air elements.
        let bad: Vec<u32> = if compatible {
            bad_positions
                .iter()
                .take_while(|&&p| (p as usize) < read.list.len())
                .map(|&p| order[p as usize])
                .collect()
        } else {
            read.list
                .iter()
                .copied()
                .filter(|v| {
                    data.appends
                        .get(v)
                        .is_none_or(|&(w, _)| status(w) == Status::Fail)
                })
                .collect()
        };
        for v in bad {
            match data.appends.get(&v) {
                None => anomalies.push(read_anomaly(
                    history,
                    A::ThinAirRead,
                    read,
                    key,
                    &[],
                    json!({"element": history.value_json(v)}),
                    |n, k, seen_text| {
                        format!(
                            "{} read {k} = {seen_text}, but no transaction appended {} to {k}.",
                            n.get(read.txn),
                            history.value_text(v)
                        )
                    },
                )),
                Some(&(w, _)) => anomalies.push(read_anomaly(
                    history,
                    A::G1a,
                    read,
                    key,
                    &[w],
                    json!({"element": history.value_json(v)}),
                    |n, k, seen_text| {
                        format!(
                            "{} read {k} = {seen_text}, which includes {}, appended by {}; \
                             but {} aborted (fail).",
                            n.get(read.txn),
                            history.value_text(v),
                            n.get(w),
                            n.get(w)
                        )
                    },
                )),
            }
        }
        if read.external {
            if let Some(&last) = read.list.last() {
                if let Some(&(w, w_mop)) = data.appends.get(&last) {
                    // G1b: the element read was not the writer's final append to the key.
                    if w != read.txn && status(w) != Status::Fail {
                        let w_txn = &history.txns[w as usize];
                        let later = (w_mop + 1..w_txn.mops_start + w_txn.mops_len)
                            .map(|i| &history.mops[i as usize])
                            .find(|m| m.kind == MopKind::Append && m.key == key);
                        if let Some(later) = later {
                            let later_value = later.value;
                            anomalies.push(read_anomaly(
                                history,
                                A::G1b,
                                read,
                                key,
                                &[w],
                                json!({"element": history.value_json(last), "later": history.value_json(later_value)}),
                                |n, k, seen_text| {
                                    format!(
                                        "{} read {k} = {seen_text}, ending in {}, an \
                                         intermediate state of {}: it appended {} to {k} \
                                         afterwards.",
                                        n.get(read.txn),
                                        history.value_text(last),
                                        n.get(w),
                                        history.value_text(later_value)
                                    )
                                },
                            ));
                        }
                    }
                }
            }
        }
    }

    // Dirty update: a committed append built on an aborted one.
    if let Some(i) = order
        .iter()
        .position(|v| data.writer(*v).is_some_and(|w| status(w) == Status::Fail))
    {
        let aborted = data.writer(order[i]).expect("a writer");
        if let Some(&later) = order[i + 1..]
            .iter()
            .find(|v| data.writer(**v).is_some_and(|w| status(w) != Status::Fail))
        {
            let committed = data.writer(later).expect("a writer");
            let longest = longest.expect("an order comes from a read");
            anomalies.push(simple_anomaly(
                history,
                A::DirtyUpdate,
                &[aborted, committed, longest.txn],
                json!({"key": history.key_json(key), "aborted": history.value_json(order[i]), "committed": history.value_json(later)}),
                |n| {
                    format!(
                        "{} read {k} = {}: {}'s append of {} follows {}'s append of {}, though \
                         {} aborted (fail).",
                        n.get(longest.txn),
                        history.observed_text(history.mops[longest.mop as usize].read),
                        n.get(committed),
                        history.value_text(later),
                        n.get(aborted),
                        history.value_text(order[i]),
                        n.get(aborted),
                        k = history.key_text(key)
                    )
                },
            ));
        }
    }

    // Lost update: two committed transactions read the same version and both appended.
    let mut by_version: FxHashMap<Option<u32>, Vec<&Read>> = FxHashMap::default();
    for read in reads.iter().filter(|r| r.external && r.appends_later) {
        by_version
            .entry(read.list.last().copied())
            .or_default()
            .push(read);
    }
    let mut lost: Vec<(Option<u32>, Vec<&Read>)> = by_version
        .into_iter()
        .filter(|(_, r)| r.len() > 1)
        .collect();
    lost.sort_by_key(|(_, r)| r[0].txn);
    for (_, group) in lost {
        let txns: Vec<u32> = group.iter().map(|r| r.txn).collect();
        let seen_text = history.observed_text(history.mops[group[0].mop as usize].read);
        anomalies.push(simple_anomaly(
            history,
            A::LostUpdate,
            &txns,
            json!({"key": history.key_json(key), "value": history.observed_json(history.mops[group[0].mop as usize].read)}),
            |n| {
                let names: Vec<String> = txns.iter().map(|&t| n.get(t)).collect();
                format!(
                    "{} all read {k} = {seen_text} and then appended to {k}: each update was \
                     based on a version another one replaced.",
                    names.join(", "),
                    k = history.key_text(key)
                )
            },
        ));
    }

    // Edges between transactions that may have committed.
    let in_graph = |t: u32| status(t) != Status::Fail;
    let mut edge = |a: u32, b: u32, r: u16| {
        if a != b && in_graph(a) && in_graph(b) {
            edges.push(Edge::new(a, b, r));
        }
    };
    for pair in order.windows(2) {
        if let (Some(a), Some(b)) = (data.writer(pair[0]), data.writer(pair[1])) {
            edge(a, b, rel::WW);
        }
    }
    // Committed appends no read shows come after every version read.
    let mut unobserved: Vec<(u32, u32)> = data
        .appends
        .iter()
        .filter(|(v, &(t, _))| {
            infer_unread && status(t) != Status::Fail && !data.observed.contains(v)
        })
        .map(|(&v, &(t, _))| (t, v))
        .collect();
    unobserved.sort_unstable();
    unobserved.dedup_by_key(|(t, _)| *t);
    if let Some(last_writer) = order.last().and_then(|&v| data.writer(v)) {
        for &(u, _) in &unobserved {
            edge(last_writer, u, rel::WW);
        }
    }
    for read in reads.iter().filter(|r| r.external) {
        if let Some(&last) = read.list.last() {
            if let Some(w) = data.writer(last) {
                edge(w, read.txn, rel::WR);
            }
        }
        let next = match read.list.last() {
            None => Some(0),
            Some(last) => position.get(last).map(|&p| p as usize + 1),
        };
        match next {
            Some(p) if p < order.len() => {
                if let Some(w) = data.writer(order[p]) {
                    edge(read.txn, w, rel::RW);
                }
            }
            Some(p) if p == order.len() => {
                for &(u, _) in &unobserved {
                    edge(read.txn, u, rel::RW);
                }
            }
            _ => {}
        }
    }
    Ok(KeyOutcome {
        data,
        edges,
        anomalies,
    })
}

fn values_text(history: &TxnHistory, values: &[u32]) -> String {
    let items: Vec<String> = values.iter().map(|&v| history.value_text(v)).collect();
    items.join(", ")
}

/// An anomaly about one read: the reader first, then `others`.
fn read_anomaly(
    history: &TxnHistory,
    kind: A,
    read: &Read,
    key: u32,
    others: &[u32],
    mut details: Value,
    explanation: impl FnOnce(&Names, &str, &str) -> String,
) -> Anomaly {
    let mut txns = vec![read.txn];
    txns.extend_from_slice(others);
    let observed = history.mops[read.mop as usize].read;
    if let Value::Object(map) = &mut details {
        map.insert("key".into(), history.key_json(key));
        map.insert("read".into(), history.observed_json(observed));
    }
    let seen_text = history.observed_text(observed);
    let key_text = history.key_text(key);
    simple_anomaly(history, kind, &txns, details, |n| {
        explanation(n, &key_text, &seen_text)
    })
}

/// What a transaction's own micro-operations imply about a key it reads.
enum Expected {
    /// The whole list (the transaction read it, then maybe appended).
    Known(Vec<u32>),
    /// Only the end: the transaction appended these without reading first.
    Suffix(Vec<u32>),
}

/// Internal consistency and future reads within one committed transaction.
fn check_internal(history: &TxnHistory, txn: u32) -> Vec<Anomaly> {
    let mops = history.mops_of(txn);
    let mut anomalies = Vec::new();
    let mut state: Vec<(u32, Expected)> = Vec::new();
    for (i, mop) in mops.iter().enumerate() {
        let slot = state.iter().position(|(k, _)| *k == mop.key);
        match mop.kind {
            MopKind::Append => match slot {
                Some(s) => match &mut state[s].1 {
                    Expected::Known(list) | Expected::Suffix(list) => list.push(mop.value),
                },
                None => state.push((mop.key, Expected::Suffix(vec![mop.value]))),
            },
            MopKind::Write => {}
            MopKind::Read => {
                let Some(read) = history.read_list(mop.read) else {
                    continue;
                };
                // Future read: the list holds a value this transaction appends later.
                let future: Vec<u32> = mops[i + 1..]
                    .iter()
                    .filter(|m| m.kind == MopKind::Append && m.key == mop.key)
                    .map(|m| m.value)
                    .filter(|v| read.contains(v))
                    .collect();
                if !future.is_empty() {
                    anomalies.push(simple_anomaly(
                        history,
                        A::FutureRead,
                        &[txn],
                        json!({"key": history.key_json(mop.key), "read": history.observed_json(mop.read), "future": future.iter().map(|&v| history.value_json(v)).collect::<Vec<_>>()}),
                        |n| {
                            format!(
                                "{} read {} = {}, which includes {}, which {} itself appends \
                                 only later.",
                                n.get(txn),
                                history.key_text(mop.key),
                                history.observed_text(mop.read),
                                values_text(history, &future),
                                n.get(txn)
                            )
                        },
                    ));
                }
                let consistent = match slot.map(|s| &state[s].1) {
                    None => true,
                    Some(Expected::Known(list)) => list.as_slice() == read,
                    Some(Expected::Suffix(suffix)) => read.ends_with(suffix),
                };
                if !consistent {
                    let expected = match slot.map(|s| &state[s].1) {
                        Some(Expected::Known(list)) => {
                            format!("[{}]", values_list(history, list))
                        }
                        Some(Expected::Suffix(suffix)) => {
                            format!("[... {}]", values_list(history, suffix))
                        }
                        None => unreachable!("only a known state is inconsistent"),
                    };
                    anomalies.push(simple_anomaly(
                        history,
                        A::Internal,
                        &[txn],
                        json!({"key": history.key_json(mop.key), "read": history.observed_json(mop.read), "expected": expected}),
                        |n| {
                            format!(
                                "{} read {} = {}, but its own earlier micro-operations imply \
                                 {}.",
                                n.get(txn),
                                history.key_text(mop.key),
                                history.observed_text(mop.read),
                                expected
                            )
                        },
                    ));
                }
                let known = Expected::Known(read.to_vec());
                match slot {
                    Some(s) => state[s].1 = known,
                    None => state.push((mop.key, known)),
                }
            }
        }
    }
    anomalies
}

fn values_list(history: &TxnHistory, values: &[u32]) -> String {
    let items: Vec<String> = values.iter().map(|&v| history.value_text(v)).collect();
    items.join(" ")
}

struct ListAppendExplainer {
    keys: Vec<KeyData>,
}

impl EdgeExplainer for ListAppendExplainer {
    fn explain(
        &self,
        history: &TxnHistory,
        from: u32,
        to: u32,
        r: u16,
        names: &Names,
    ) -> (Option<Value>, String) {
        let (a, b) = (names.get(from), names.get(to));
        match r {
            rel::WW => {
                for m in history
                    .mops_of(to)
                    .iter()
                    .filter(|m| m.kind == MopKind::Append)
                {
                    let data = &self.keys[m.key as usize];
                    let order = data.order(history);
                    let k = history.key_text(m.key);
                    if let Some(p) = order.iter().position(|&v| v == m.value) {
                        if p > 0 && data.writer(order[p - 1]) == Some(from) {
                            return (
                                Some(history.key_json(m.key)),
                                format!(
                                    "{b} appended {} to {k} right after {a}'s append of {}",
                                    history.value_text(m.value),
                                    history.value_text(order[p - 1])
                                ),
                            );
                        }
                    } else if !data.observed.contains(&m.value) {
                        if let Some(&last) = order.last() {
                            if data.writer(last) == Some(from) {
                                return (
                                    Some(history.key_json(m.key)),
                                    format!(
                                        "{b}'s append of {} to {k} was never read, so it \
                                         follows every version read, the last of which ends \
                                         in {a}'s append of {}",
                                        history.value_text(m.value),
                                        history.value_text(last)
                                    ),
                                );
                            }
                        }
                    }
                }
            }
            rel::WR => {
                for m in history.mops_of(to).iter() {
                    let Some((_, observed)) = history.external_read(to, m.key) else {
                        continue;
                    };
                    let Some(&last) = history.read_list(observed).and_then(|l| l.last()) else {
                        continue;
                    };
                    if self.keys[m.key as usize].writer(last) == Some(from) {
                        return (
                            Some(history.key_json(m.key)),
                            format!(
                                "{b} read {} = {}, which ends in {a}'s append of {}",
                                history.key_text(m.key),
                                history.observed_text(observed),
                                history.value_text(last)
                            ),
                        );
                    }
                }
            }
            rel::RW => {
                for m in history.mops_of(from).iter() {
                    let Some((_, observed)) = history.external_read(from, m.key) else {
                        continue;
                    };
                    let Some(list) = history.read_list(observed) else {
                        continue;
                    };
                    let data = &self.keys[m.key as usize];
                    let order = data.order(history);
                    let k = history.key_text(m.key);
                    let next = match list.last() {
                        None => Some(0),
                        Some(last) => order.iter().position(|v| v == last).map(|p| p + 1),
                    };
                    match next {
                        Some(p) if p < order.len() && data.writer(order[p]) == Some(to) => {
                            return (
                                Some(history.key_json(m.key)),
                                format!(
                                    "{a} read {k} = {}, which missed {b}'s append of {} (the \
                                     next version of {k})",
                                    history.observed_text(observed),
                                    history.value_text(order[p])
                                ),
                            );
                        }
                        Some(p) if p == order.len() => {
                            let unread = history.mops_of(to).iter().find(|u| {
                                u.kind == MopKind::Append
                                    && u.key == m.key
                                    && !data.observed.contains(&u.value)
                            });
                            if let Some(u) = unread {
                                return (
                                    Some(history.key_json(m.key)),
                                    format!(
                                        "{a} read {k} = {}, the last version of {k} anyone \
                                         read, and {b}'s append of {}, which no read shows, \
                                         came after it",
                                        history.observed_text(observed),
                                        history.value_text(u.value)
                                    ),
                                );
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        (
            None,
            format!("{a} precedes {b} (no single key justifies it)"),
        )
    }
}
