//! Transactions read from a [`History`]: each invocation paired with its completion and its
//! micro-operations parsed into small integers.
//!
//! A transaction's value is a list of micro-operations `[f, key, value]` (JSON Lines) or
//! `[:f key value]` (Elle's EDN, whose keywords arrive as strings): `append` and `w` / `write`
//! carry the value they add or write; `r` / `read` carries `null` on invocation and what was
//! read on an `ok` completion (a list for list-append, one value for rw-register). Keys and
//! values are interned: keys densely (checkers index arrays by key), values with a fast path
//! that keeps small non-negative integers as themselves, since Elle-style workloads write
//! per-key counters and a 1M-transaction history reads tens of millions of them.

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::fmt;

use faultline_core::{History, OpType, Process};

use super::TxnError;

/// What a transaction's completion says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Committed.
    Ok,
    /// Unknown (completed `info`, or never completed): it may have committed, or not.
    Info,
    /// Certainly aborted.
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Fail => "fail",
        }
    }

    /// Whether the transaction may have taken effect (ok or info): it belongs in the graph.
    pub fn may_have_committed(self) -> bool {
        !matches!(self, Status::Fail)
    }
}

/// The function of a micro-operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MopKind {
    Append,
    Write,
    Read,
}

impl MopKind {
    pub fn is_write(self) -> bool {
        !matches!(self, MopKind::Read)
    }
}

/// What a read observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Observed {
    /// The read's result is not known (an invocation, or a transaction that did not commit).
    Unknown,
    /// `null`: nothing was ever written (rw-register), or the empty list (list-append).
    Nil,
    /// One value (rw-register).
    Value(u32),
    /// A list, as a range of [`TxnHistory::lists`] (list-append).
    List { start: u32, len: u32 },
}

/// One micro-operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mop {
    pub kind: MopKind,
    pub key: u32,
    /// The value appended or written; unused for reads.
    pub value: u32,
    /// What a read observed; [`Observed::Unknown`] for appends and writes.
    pub read: Observed,
}

/// Marks "no position": an operation that never completed.
pub const NO_POSITION: u32 = u32::MAX;

/// One transaction: an invocation, its completion, and its micro-operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Txn {
    pub status: Status,
    pub process: u64,
    /// Position of the invocation in `History::ops`.
    pub invoke_pos: u32,
    /// Position of the completion, or [`NO_POSITION`].
    pub complete_pos: u32,
    /// The micro-operations, as a range of [`TxnHistory::mops`].
    pub mops_start: u32,
    pub mops_len: u32,
}

impl Txn {
    pub fn completed(&self) -> bool {
        self.complete_pos != NO_POSITION
    }
}

/// A history of transactions, ready for the checkers.
///
/// Transaction ids (`u32`) are positions in [`TxnHistory::txns`], which is in invocation order.
#[derive(Debug, Clone, Default)]
pub struct TxnHistory {
    pub txns: Vec<Txn>,
    pub mops: Vec<Mop>,
    /// Every list read, end to end.
    pub lists: Vec<u32>,
    pub keys: KeyInterner,
    pub values: ValueInterner,
    /// `index` and `time` of each event, by position in the history (for explanations).
    pub event_index: Vec<u64>,
}

impl TxnHistory {
    pub fn mops_of(&self, txn: u32) -> &[Mop] {
        let t = &self.txns[txn as usize];
        &self.mops[t.mops_start as usize..(t.mops_start + t.mops_len) as usize]
    }

    pub fn list(&self, start: u32, len: u32) -> &[u32] {
        &self.lists[start as usize..(start + len) as usize]
    }

    /// The list a read observed (`Nil` is the empty list); `None` when unknown or not a list.
    pub fn read_list(&self, observed: Observed) -> Option<&[u32]> {
        match observed {
            Observed::Nil => Some(&[]),
            Observed::List { start, len } => Some(self.list(start, len)),
            _ => None,
        }
    }

    /// The `index` of a transaction's invocation event.
    pub fn index_of(&self, txn: u32) -> u64 {
        self.event_index[self.txns[txn as usize].invoke_pos as usize]
    }

    /// The `index` of a transaction's completion event, if it completed.
    pub fn completion_index_of(&self, txn: u32) -> Option<u64> {
        let pos = self.txns[txn as usize].complete_pos;
        (pos != NO_POSITION).then(|| self.event_index[pos as usize])
    }

    pub fn key_json(&self, key: u32) -> Value {
        self.keys.json(key)
    }

    pub fn value_json(&self, value: u32) -> Value {
        self.values.json(value)
    }

    /// A key as people read it: `x`, `12`.
    pub fn key_text(&self, key: u32) -> String {
        atom_text(&self.keys.json(key))
    }

    pub fn value_text(&self, value: u32) -> String {
        atom_text(&self.values.json(value))
    }

    /// A read's result as text: `[1 2 3]`, `nil`, `5`, `?`.
    pub fn observed_text(&self, observed: Observed) -> String {
        match observed {
            Observed::Unknown => "?".into(),
            Observed::Nil => "nil".into(),
            Observed::Value(v) => self.value_text(v),
            Observed::List { start, len } => {
                let items: Vec<String> = self
                    .list(start, len)
                    .iter()
                    .map(|&v| self.value_text(v))
                    .collect();
                format!("[{}]", items.join(" "))
            }
        }
    }

    /// A transaction's micro-operations as JSON, the history's own notation.
    pub fn mops_json(&self, txn: u32) -> Value {
        Value::Array(
            self.mops_of(txn)
                .iter()
                .map(|m| {
                    let (f, value) = match m.kind {
                        MopKind::Append => ("append", self.value_json(m.value)),
                        MopKind::Write => ("w", self.value_json(m.value)),
                        MopKind::Read => ("r", self.observed_json(m.read)),
                    };
                    Value::Array(vec![Value::from(f), self.key_json(m.key), value])
                })
                .collect(),
        )
    }

    pub fn observed_json(&self, observed: Observed) -> Value {
        match observed {
            Observed::Unknown | Observed::Nil => Value::Null,
            Observed::Value(v) => self.value_json(v),
            Observed::List { start, len } => Value::Array(
                self.list(start, len)
                    .iter()
                    .map(|&v| self.value_json(v))
                    .collect(),
            ),
        }
    }

    /// A transaction's micro-operations as text: `[append x 3] [r y [1 2]]`.
    pub fn mops_text(&self, txn: u32) -> String {
        let parts: Vec<String> = self
            .mops_of(txn)
            .iter()
            .map(|m| match m.kind {
                MopKind::Append => format!(
                    "[append {} {}]",
                    self.key_text(m.key),
                    self.value_text(m.value)
                ),
                MopKind::Write => {
                    format!("[w {} {}]", self.key_text(m.key), self.value_text(m.value))
                }
                MopKind::Read => format!(
                    "[r {} {}]",
                    self.key_text(m.key),
                    self.observed_text(m.read)
                ),
            })
            .collect();
        parts.join(" ")
    }
}

impl TxnHistory {
    /// Every micro-operation, grouped by key: `(offsets, entries)` where key `k`'s entries are
    /// `entries[offsets[k]..offsets[k + 1]]`, each `(transaction, global mop index)`, in
    /// transaction order and, within a transaction, in micro-operation order.
    pub fn group_by_key(&self) -> (Vec<usize>, Vec<(u32, u32)>) {
        let keys = self.keys.len();
        let mut offsets = vec![0usize; keys + 1];
        for m in &self.mops {
            offsets[m.key as usize + 1] += 1;
        }
        for k in 0..keys {
            offsets[k + 1] += offsets[k];
        }
        let mut cursor = offsets.clone();
        let mut entries = vec![(0u32, 0u32); self.mops.len()];
        for (id, txn) in self.txns.iter().enumerate() {
            for i in txn.mops_start..txn.mops_start + txn.mops_len {
                let slot = &mut cursor[self.mops[i as usize].key as usize];
                entries[*slot] = (id as u32, i);
                *slot += 1;
            }
        }
        (offsets, entries)
    }

    /// The first read of `key` in `txn` if it comes before any write of `key` there: the
    /// transaction's external read, the one that observed other transactions' state.
    pub fn external_read(&self, txn: u32, key: u32) -> Option<(u32, Observed)> {
        let t = &self.txns[txn as usize];
        for i in t.mops_start..t.mops_start + t.mops_len {
            let m = &self.mops[i as usize];
            if m.key != key {
                continue;
            }
            return match m.kind {
                MopKind::Read => Some((i, m.read)),
                _ => None,
            };
        }
        None
    }
}

/// Scalars print bare (`x`, `3`); anything else as JSON.
fn atom_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A scalar that identifies a key or value exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Atom {
    Int(i64),
    Str(Box<str>),
    /// Anything else (floats, large unsigned, booleans, lists, maps), by its JSON text.
    Json(Box<str>),
}

impl Atom {
    fn of(value: &Value) -> Atom {
        match value {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Atom::Int(i),
                None => Atom::Json(n.to_string().into()),
            },
            Value::String(s) => Atom::Str(s.as_str().into()),
            other => Atom::Json(other.to_string().into()),
        }
    }

    fn json(&self) -> Value {
        match self {
            Atom::Int(i) => Value::from(*i),
            Atom::Str(s) => Value::String(s.to_string()),
            Atom::Json(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        }
    }
}

/// Keys as dense ids `0..len`, in order of first appearance.
#[derive(Debug, Clone, Default)]
pub struct KeyInterner {
    ids: FxHashMap<Atom, u32>,
    atoms: Vec<Atom>,
}

impl KeyInterner {
    fn intern(&mut self, atom: Atom) -> u32 {
        if let Some(&id) = self.ids.get(&atom) {
            return id;
        }
        let id = self.atoms.len() as u32;
        self.atoms.push(atom.clone());
        self.ids.insert(atom, id);
        id
    }

    pub fn len(&self) -> usize {
        self.atoms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.atoms.is_empty()
    }

    pub fn json(&self, key: u32) -> Value {
        self.atoms[key as usize].json()
    }
}

/// Values below this are small non-negative integers, stored as themselves.
const DIRECT_LIMIT: u32 = 1 << 31;

/// Values as ids: a small non-negative integer is its own id; anything else is interned above
/// [`DIRECT_LIMIT`].
#[derive(Debug, Clone, Default)]
pub struct ValueInterner {
    ids: FxHashMap<Atom, u32>,
    atoms: Vec<Atom>,
}

impl ValueInterner {
    fn direct(value: &Value) -> Option<u32> {
        value
            .as_u64()
            .filter(|&v| v < DIRECT_LIMIT as u64)
            .map(|v| v as u32)
    }

    fn intern(&mut self, atom: Atom) -> u32 {
        if let Atom::Int(i) = atom {
            if (0..DIRECT_LIMIT as i64).contains(&i) {
                return i as u32;
            }
        }
        if let Some(&id) = self.ids.get(&atom) {
            return id;
        }
        let id = DIRECT_LIMIT
            .checked_add(self.atoms.len() as u32)
            .filter(|&id| id < u32::MAX - 1)
            .expect("fewer than 2^31 distinct non-integer values");
        self.atoms.push(atom.clone());
        self.ids.insert(atom, id);
        id
    }

    pub fn json(&self, value: u32) -> Value {
        if value < DIRECT_LIMIT {
            Value::from(value)
        } else {
            self.atoms[(value - DIRECT_LIMIT) as usize].json()
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Transactions per parallel parsing chunk.
const CHUNK_TXNS: usize = 16 * 1024;

/// A chunk parsed with its own interners, merged into the global ones afterwards.
#[derive(Default)]
struct Chunk {
    txns: Vec<Txn>,
    mops: Vec<Mop>,
    lists: Vec<u32>,
    keys: KeyInterner,
    values: ValueInterner,
}

/// Reads the transactions of a history.
///
/// # Correctness
/// Every client operation must be a transaction (a list of micro-operations); nemesis events
/// are skipped. Pairing follows [`History::pairs`]: a malformed history is an error that names
/// the event. Reads of transactions that did not complete `ok` are [`Observed::Unknown`]: an
/// `info` completion says nothing about what was read.
pub fn parse(history: &History) -> Result<TxnHistory, TxnError> {
    let pairs = history.pairs().map_err(TxnError::History)?;
    let position_limit = u32::MAX as usize - 1;
    if history.ops.len() > position_limit {
        return Err(TxnError::TooLarge(format!(
            "{} events; at most {position_limit} are supported",
            history.ops.len()
        )));
    }
    let chunks: Vec<Result<Chunk, TxnError>> = pairs
        .par_chunks(CHUNK_TXNS)
        .map(|pairs| {
            let mut chunk = Chunk::default();
            for pair in pairs {
                parse_txn(history, pair.invoke, pair.completion, &mut chunk)?;
            }
            Ok(chunk)
        })
        .collect();
    let chunks = chunks.into_iter().collect::<Result<Vec<_>, _>>()?;

    // Merge: global ids in order of first appearance, chunk by chunk (deterministic).
    let mut keys = KeyInterner::default();
    let mut values = ValueInterner::default();
    let mut key_maps = Vec::with_capacity(chunks.len());
    let mut value_maps = Vec::with_capacity(chunks.len());
    for chunk in &chunks {
        key_maps.push(
            chunk
                .keys
                .atoms
                .iter()
                .map(|a| keys.intern(a.clone()))
                .collect::<Vec<u32>>(),
        );
        value_maps.push(
            chunk
                .values
                .atoms
                .iter()
                .map(|a| values.intern(a.clone()))
                .collect::<Vec<u32>>(),
        );
    }
    let total_txns: usize = chunks.iter().map(|c| c.txns.len()).sum();
    let total_mops: usize = chunks.iter().map(|c| c.mops.len()).sum();
    let total_lists: usize = chunks.iter().map(|c| c.lists.len()).sum();
    if total_mops >= u32::MAX as usize || total_lists >= u32::MAX as usize {
        return Err(TxnError::TooLarge(format!(
            "{total_mops} micro-operations and {total_lists} list elements read; at most 2^32 \
             of each are supported"
        )));
    }
    // Every chunk's slice of the outputs, filled in parallel.
    let mut txns = vec![
        Txn {
            status: Status::Fail,
            process: 0,
            invoke_pos: 0,
            complete_pos: NO_POSITION,
            mops_start: 0,
            mops_len: 0,
        };
        total_txns
    ];
    let mut mops = vec![
        Mop {
            kind: MopKind::Read,
            key: 0,
            value: 0,
            read: Observed::Unknown,
        };
        total_mops
    ];
    let mut lists = vec![0u32; total_lists];
    {
        let mut jobs = Vec::with_capacity(chunks.len());
        let (mut txns_rest, mut mops_rest, mut lists_rest) = (
            txns.as_mut_slice(),
            mops.as_mut_slice(),
            lists.as_mut_slice(),
        );
        let (mut mop_base, mut list_base) = (0u32, 0u32);
        for ((chunk, key_map), value_map) in chunks.iter().zip(&key_maps).zip(&value_maps) {
            let (t, rest) = txns_rest.split_at_mut(chunk.txns.len());
            txns_rest = rest;
            let (m, rest) = mops_rest.split_at_mut(chunk.mops.len());
            mops_rest = rest;
            let (l, rest) = lists_rest.split_at_mut(chunk.lists.len());
            lists_rest = rest;
            jobs.push((chunk, key_map, value_map, t, m, l, mop_base, list_base));
            mop_base += chunk.mops.len() as u32;
            list_base += chunk.lists.len() as u32;
        }
        jobs.into_par_iter().for_each(
            |(chunk, key_map, value_map, t, m, l, mop_base, list_base)| {
                let remap_value = |v: u32| -> u32 {
                    if v < DIRECT_LIMIT {
                        v
                    } else {
                        value_map[(v - DIRECT_LIMIT) as usize]
                    }
                };
                if value_map.is_empty() {
                    l.copy_from_slice(&chunk.lists);
                } else {
                    for (out, &v) in l.iter_mut().zip(&chunk.lists) {
                        *out = remap_value(v);
                    }
                }
                for (out, mop) in m.iter_mut().zip(&chunk.mops) {
                    *out = Mop {
                        kind: mop.kind,
                        key: key_map[mop.key as usize],
                        value: if mop.kind.is_write() {
                            remap_value(mop.value)
                        } else {
                            mop.value
                        },
                        read: match mop.read {
                            Observed::Value(v) => Observed::Value(remap_value(v)),
                            Observed::List { start, len } => Observed::List {
                                start: start + list_base,
                                len,
                            },
                            other => other,
                        },
                    };
                }
                for (out, txn) in t.iter_mut().zip(&chunk.txns) {
                    *out = Txn {
                        mops_start: txn.mops_start + mop_base,
                        ..*txn
                    };
                }
            },
        );
    }
    drop(chunks);
    let out = TxnHistory {
        txns,
        mops,
        lists,
        keys,
        values,
        event_index: history.ops.iter().map(|op| op.index).collect(),
    };
    Ok(out)
}

fn parse_txn(
    history: &History,
    invoke: usize,
    completion: Option<usize>,
    chunk: &mut Chunk,
) -> Result<(), TxnError> {
    let invocation = &history.ops[invoke];
    let completion_op = completion.map(|c| &history.ops[c]);
    let status = match completion_op.map(|c| c.kind) {
        Some(OpType::Ok) => Status::Ok,
        Some(OpType::Fail) => Status::Fail,
        _ => Status::Info,
    };
    let Process::Client(process) = invocation.process else {
        unreachable!("pairs are client operations")
    };
    // An ok completion carries what was read; otherwise the invocation says what was asked.
    let value = match completion_op {
        Some(c) if status == Status::Ok && c.value.is_array() => &c.value,
        _ => &invocation.value,
    };
    let bad = |why: String| TxnError::Malformed {
        index: invocation.index,
        why,
    };
    let Value::Array(mops) = value else {
        return Err(bad(format!(
            "operation {} has value {value}; a transaction is a list of micro-operations \
             [f, key, value]",
            invocation.f
        )));
    };
    let mops_start = chunk.mops.len() as u32;
    for mop in mops {
        let parts = match mop {
            Value::Array(parts) if parts.len() == 3 || parts.len() == 2 => parts,
            other => {
                return Err(bad(format!(
                    "micro-operation {other} is not [f, key, value]"
                )))
            }
        };
        let kind = match parts[0].as_str() {
            Some("append") => MopKind::Append,
            Some("w") | Some("write") => MopKind::Write,
            Some("r") | Some("read") => MopKind::Read,
            _ => {
                return Err(bad(format!(
                    "micro-operation {mop} has function {}; expected append, w or r",
                    parts[0]
                )))
            }
        };
        let key_value = &parts[1];
        if key_value.is_null() {
            return Err(bad(format!("micro-operation {mop} has a null key")));
        }
        let key = chunk.keys.intern(Atom::of(key_value));
        let argument = parts.get(2).unwrap_or(&Value::Null);
        let (value, read) = match kind {
            MopKind::Append | MopKind::Write => {
                if argument.is_null() {
                    return Err(bad(format!(
                        "micro-operation {mop} writes null; writes need a value"
                    )));
                }
                let v = ValueInterner::direct(argument)
                    .unwrap_or_else(|| chunk.values.intern(Atom::of(argument)));
                (v, Observed::Unknown)
            }
            MopKind::Read if status != Status::Ok => (0, Observed::Unknown),
            MopKind::Read => (0, observe(argument, chunk)),
        };
        chunk.mops.push(Mop {
            kind,
            key,
            value,
            read,
        });
    }
    chunk.txns.push(Txn {
        status,
        process,
        invoke_pos: invoke as u32,
        complete_pos: completion.map_or(NO_POSITION, |c| c as u32),
        mops_start,
        mops_len: chunk.mops.len() as u32 - mops_start,
    });
    Ok(())
}

fn observe(value: &Value, chunk: &mut Chunk) -> Observed {
    match value {
        Value::Null => Observed::Nil,
        Value::Array(items) => {
            let start = chunk.lists.len() as u32;
            for item in items {
                let v = ValueInterner::direct(item)
                    .unwrap_or_else(|| chunk.values.intern(Atom::of(item)));
                chunk.lists.push(v);
            }
            Observed::List {
                start,
                len: items.len() as u32,
            }
        }
        scalar => Observed::Value(
            ValueInterner::direct(scalar).unwrap_or_else(|| chunk.values.intern(Atom::of(scalar))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::Op;
    use serde_json::json;

    fn history(ops: Vec<Op>) -> History {
        let mut h = History::new(ops);
        for (i, op) in h.ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        h
    }

    #[test]
    fn reads_come_from_ok_completions_only() {
        let h = history(vec![
            Op::invoke(0, "txn", json!([["append", "x", 1], ["r", "x", null]])),
            Op::invoke(1, "txn", json!([["r", "x", null]])),
            Op::complete(
                0,
                OpType::Ok,
                "txn",
                json!([["append", "x", 1], ["r", "x", [1]]]),
            ),
            Op::complete(1, OpType::Info, "txn", json!([["r", "x", null]])),
        ]);
        let t = parse(&h).unwrap();
        assert_eq!(t.txns.len(), 2);
        assert_eq!(t.txns[0].status, Status::Ok);
        assert_eq!(t.txns[1].status, Status::Info);
        assert_eq!(t.mops_text(0), "[append x 1] [r x [1]]");
        assert_eq!(t.mops_of(1)[0].read, Observed::Unknown);
        assert_eq!(t.index_of(1), 1);
        assert_eq!(t.completion_index_of(0), Some(2));
    }

    #[test]
    fn keys_and_values_of_any_scalar_type_round_trip() {
        let h = history(vec![
            Op::invoke(
                0,
                "txn",
                json!([["w", 7, "a"], ["w", "k", -3], ["r", 7, null]]),
            ),
            Op::complete(
                0,
                OpType::Ok,
                "txn",
                json!([["w", 7, "a"], ["w", "k", -3], ["r", 7, "a"]]),
            ),
        ]);
        let t = parse(&h).unwrap();
        assert_eq!(
            t.mops_json(0),
            json!([["w", 7, "a"], ["w", "k", -3], ["r", 7, "a"]])
        );
        assert_eq!(t.keys.len(), 2);
    }

    #[test]
    fn bad_micro_operations_name_the_event() {
        let h = history(vec![Op::invoke(0, "txn", json!([["inc", "x", 1]]))]);
        let err = parse(&h).unwrap_err().to_string();
        assert!(err.contains("index 0") && err.contains("inc"), "{err}");
        let h = history(vec![Op::invoke(0, "read", json!(null))]);
        assert!(parse(&h).unwrap_err().to_string().contains("list of micro"));
    }

    #[test]
    fn many_chunks_merge_into_one_id_space() {
        let mut ops = Vec::new();
        for i in 0..(CHUNK_TXNS as u64 * 2 + 5) {
            let key = format!("k{}", i % 7);
            ops.push(Op::invoke(i, "txn", json!([["append", key, i]])));
            ops.push(Op::complete(
                i,
                OpType::Ok,
                "txn",
                json!([["append", key, i]]),
            ));
        }
        let t = parse(&history(ops)).unwrap();
        assert_eq!(t.keys.len(), 7);
        let last = t.txns.len() as u32 - 1;
        assert_eq!(
            t.mops_text(last),
            format!("[append k{} {}]", last % 7, last)
        );
    }
}
