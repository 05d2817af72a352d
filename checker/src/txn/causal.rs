//! Causal consistency that can actually fail.
//!
//! **Transactions** (Biswas & Enea, "On the Complexity of Checking Transactional Consistency",
//! OOPSLA 2019): with unique writes the write-read relation is known, so read committed, read
//! atomic and causal consistency are each "is there a commit order that contains session order
//! and write-read, and the edges the model's axiom forces?" — a polynomial saturation:
//! - `read-committed-be`: if a transaction read y from t2 and later reads x from t1, and t2
//!   wrote x, then t2 commits before t1;
//! - `read-atomic`: the same when t2 precedes the reader in its session or was read by it;
//! - `causal`: the same when t2 happens before the reader (session order and write-read,
//!   transitively).
//!
//! The happens-before relation is kept as vector clocks over sessions (one per process), so
//! "t2 happens before t3" is one comparison, and only the latest writer of a key in each
//! session needs a forced edge (earlier ones precede it in session order): O(reads ×
//! sessions) edges, checked for a cycle with Tarjan. For list-append a read returns every
//! visible append, so a visible append missing from a read is a violation at once.
//!
//! **Registers** (Bouajjani, Enea, Guerraoui, Hamza, "On Verifying Causal Consistency",
//! POPL 2017): with unique writes, a history is causally consistent (CC) iff it has none of
//! the bad patterns CyclicCO (session order and reads-from have a cycle), ThinAirRead (a read
//! of a value nobody wrote), WriteCOInitRead (a read of the initial value after a write of the
//! key happened before it) and WriteCORead (a read of a value overwritten by a write that
//! happened before the read); causal convergence (CCv) adds CyclicCF, causal memory (CM)
//! WriteHBInitRead and CyclicHB.
//!
//! **Session guarantees** (Terry et al.) are named when a violation has their shape: the
//! overwriting write came from the reader's own session (read your writes), was itself read
//! earlier in the session (monotonic reads), precedes in its session a write the session read
//! (monotonic writes), or was read by the session of a write the reader's session read
//! (writes follow reads).

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Value};
use std::collections::VecDeque;

use faultline_core::{History, Op, OpType};

use super::anomaly::{Anomaly, AnomalyType as A};
use super::explain::{simple_anomaly, Names};
use super::graph::tarjan;
use super::history::{MopKind, Observed, Status, TxnHistory};
use super::{DataModel, Model, TxnError};

/// Histories larger than this are not checked for causal memory (its per-operation
/// happens-before relations are cubic).
pub const CAUSAL_MEMORY_MAX_OPS: usize = 500;

/// Whether the requested models need the saturation checks.
pub(crate) fn wanted(models: &[Model]) -> bool {
    models.iter().any(|m| {
        matches!(
            m,
            Model::Causal
                | Model::ReadAtomic
                | Model::ReadCommittedBe
                | Model::Pram
                | Model::ReadYourWrites
                | Model::MonotonicReads
                | Model::MonotonicWrites
                | Model::WritesFollowReads
                | Model::CausalConvergence
                | Model::CausalMemory
        )
    })
}

/// The three axiom levels, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    ReadCommitted,
    ReadAtomic,
    Causal,
}

impl Level {
    fn anomaly(self, registers: bool) -> A {
        match (self, registers) {
            (_, true) => A::CyclicCf,
            (Level::ReadCommitted, _) => A::ReadCommittedBeCycle,
            (Level::ReadAtomic, _) => A::ReadAtomicCycle,
            (Level::Causal, _) => A::CausalCycle,
        }
    }

    fn model(self) -> &'static str {
        match self {
            Level::ReadCommitted => "read committed (Biswas & Enea)",
            Level::ReadAtomic => "read atomic",
            Level::Causal => "causal consistency",
        }
    }
}

/// The initial state as a read's source.
const INIT: u32 = u32::MAX;

/// One external read: the key, and where its value came from.
#[derive(Debug, Clone, Copy)]
struct Read {
    key: u32,
    mop: u32,
    /// The transaction whose write was read (the last element's, for lists), or [`INIT`].
    source: u32,
}

/// One session's writers of a key: the session, and each writer's (position, transaction) in
/// session order.
type SessionWriters = (u32, Vec<(u32, u32)>);

/// Why one transaction must commit before another in the saturated order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Session,
    ReadFrom,
    /// List-append version order: one append right after the other.
    VersionOrder,
    /// Forced by the axiom: `reader` read `key` from the later transaction although the
    /// earlier one, which wrote it, was visible to it.
    Forced {
        reader: u32,
        key: u32,
    },
}

struct Engine<'a> {
    history: &'a TxnHistory,
    lists: bool,
    registers: bool,
    sessions: Vec<Vec<u32>>,
    session_of: Vec<u32>,
    /// 1-based position in its session; 0 for transactions not in the graph.
    position: Vec<u32>,
    reads: Vec<Vec<Read>>,
    /// Transactions each one read from directly (any key), sorted.
    sources: Vec<Vec<u32>>,
    /// Keys each transaction writes (or appends to).
    writes: Vec<Vec<u32>>,
    /// Per key: each session that writes it (ascending), with the positions and transactions
    /// of its writers, in session order.
    writers: Vec<Vec<SessionWriters>>,
    /// List-append: the transaction that appended each (key, value).
    appender: FxHashMap<(u32, u32), u32>,
    /// Happens-before as vector clocks: `clock[t * sessions + s]` is the last position of
    /// session `s` that happens before or is `t`.
    clock: Vec<u32>,
}

impl<'a> Engine<'a> {
    fn in_graph(&self, t: u32) -> bool {
        self.history.txns[t as usize].status.may_have_committed()
    }

    fn width(&self) -> usize {
        self.sessions.len()
    }

    /// Whether `a` happens before `b` (a != b).
    fn happens_before(&self, a: u32, b: u32) -> bool {
        a != b
            && self.clock[b as usize * self.width() + self.session_of[a as usize] as usize]
                >= self.position[a as usize]
    }
}

/// Builds sessions, reads, sources and writers; the clocks come later.
fn engine(history: &TxnHistory, data: DataModel) -> Engine<'_> {
    let n = history.txns.len();
    let mut session_ids: FxHashMap<u64, u32> = FxHashMap::default();
    let mut sessions: Vec<Vec<u32>> = Vec::new();
    let mut session_of = vec![u32::MAX; n];
    let mut position = vec![0u32; n];
    for (t, txn) in history.txns.iter().enumerate() {
        if !txn.status.may_have_committed() {
            continue;
        }
        let next = sessions.len() as u32;
        let s = *session_ids.entry(txn.process).or_insert(next);
        if s == next {
            sessions.push(Vec::new());
        }
        sessions[s as usize].push(t as u32);
        session_of[t] = s;
        position[t] = sessions[s as usize].len() as u32;
    }
    let lists = data == DataModel::ListAppend;
    let mut appender = FxHashMap::default();
    let mut register_writer: FxHashMap<(u32, u32), u32> = FxHashMap::default();
    let mut writes = vec![Vec::new(); n];
    let mut writers: FxHashMap<(u32, u32), Vec<(u32, u32)>> = FxHashMap::default();
    for (t, txn) in history.txns.iter().enumerate() {
        for m in history.mops_of(t as u32) {
            if !m.kind.is_write() {
                continue;
            }
            // Failed writes are remembered as such: reading them is not reading anything.
            if lists {
                appender.insert((m.key, m.value), t as u32);
            } else {
                register_writer.insert((m.key, m.value), t as u32);
            }
            if txn.status.may_have_committed() && !writes[t].contains(&m.key) {
                writes[t].push(m.key);
                writers
                    .entry((m.key, session_of[t]))
                    .or_default()
                    .push((position[t], t as u32));
            }
        }
    }
    let mut reads = vec![Vec::new(); n];
    let mut sources = vec![Vec::new(); n];
    for (t, txn) in history.txns.iter().enumerate() {
        if txn.status != Status::Ok {
            continue;
        }
        let mut touched: Vec<u32> = Vec::new();
        for (i, m) in history.mops_of(t as u32).iter().enumerate() {
            if touched.contains(&m.key) {
                continue;
            }
            touched.push(m.key);
            if m.kind != MopKind::Read {
                continue;
            }
            let mop = txn.mops_start + i as u32;
            let source = match m.read {
                Observed::Unknown => continue,
                Observed::Nil => INIT,
                Observed::Value(v) => match register_writer.get(&(m.key, v)) {
                    Some(&w) => w,
                    None => continue,
                },
                Observed::List { start, len } => {
                    let list = history.list(start, len);
                    let mut last = INIT;
                    let mut ok = true;
                    for &v in list {
                        match appender.get(&(m.key, v)) {
                            Some(&w) => {
                                if w != t as u32 && !sources[t].contains(&w) {
                                    sources[t].push(w);
                                }
                                last = w;
                            }
                            None => ok = false,
                        }
                    }
                    if !ok {
                        continue;
                    }
                    last
                }
            };
            if source != INIT && !history.txns[source as usize].status.may_have_committed() {
                // An aborted read: the graph checker reports it (G1a / thin-air).
                continue;
            }
            if source == t as u32 {
                continue;
            }
            if source != INIT && !sources[t].contains(&source) {
                sources[t].push(source);
            }
            reads[t].push(Read {
                key: m.key,
                mop,
                source,
            });
        }
        sources[t].retain(|&s| history.txns[s as usize].status.may_have_committed());
        sources[t].sort_unstable();
    }
    let mut by_key: Vec<Vec<SessionWriters>> = vec![Vec::new(); history.keys.len()];
    for ((key, session), list) in writers {
        by_key[key as usize].push((session, list));
    }
    for sessions in &mut by_key {
        sessions.sort_unstable_by_key(|(s, _)| *s);
    }
    let writers = by_key;
    Engine {
        history,
        lists,
        registers: false,
        sessions,
        session_of,
        position,
        reads,
        sources,
        writes,
        writers,
        appender,
        clock: Vec::new(),
    }
}

/// Topological order of session order and reads-from, or a cycle of it.
fn topological(engine: &Engine) -> Result<Vec<u32>, Vec<(u32, Why)>> {
    let n = engine.history.txns.len();
    let mut successors: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut indegree = vec![0u32; n];
    for session in &engine.sessions {
        for w in session.windows(2) {
            successors[w[0] as usize].push(w[1]);
            indegree[w[1] as usize] += 1;
        }
    }
    for (t, sources) in engine.sources.iter().enumerate() {
        for &s in sources {
            successors[s as usize].push(t as u32);
            indegree[t] += 1;
        }
    }
    let mut queue: VecDeque<u32> = (0..n as u32)
        .filter(|&t| engine.in_graph(t) && indegree[t as usize] == 0)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(t) = queue.pop_front() {
        order.push(t);
        for &u in &successors[t as usize] {
            indegree[u as usize] -= 1;
            if indegree[u as usize] == 0 {
                queue.push_back(u);
            }
        }
    }
    let in_graph = (0..n as u32).filter(|&t| engine.in_graph(t)).count();
    if order.len() == in_graph {
        return Ok(order);
    }
    // A cycle among what is left: the shortest through one of its vertices.
    let left: Vec<u32> = (0..n as u32)
        .filter(|&t| engine.in_graph(t) && indegree[t as usize] > 0)
        .collect();
    let mut edges: Vec<(u32, u32, Why)> = Vec::new();
    for &t in &left {
        for &u in &successors[t as usize] {
            if indegree[u as usize] > 0 {
                let why = if engine.sources[u as usize].binary_search(&t).is_ok() {
                    Why::ReadFrom
                } else {
                    Why::Session
                };
                edges.push((t, u, why));
            }
        }
    }
    Err(shortest_cycle(&edges).expect("what Kahn's algorithm leaves holds a cycle"))
}

/// The shortest cycle through a vertex of the first nontrivial component of these edges.
fn shortest_cycle(edges: &[(u32, u32, Why)]) -> Option<Vec<(u32, Why)>> {
    let mut ids: Vec<u32> = edges.iter().flat_map(|&(a, b, _)| [a, b]).collect();
    ids.sort_unstable();
    ids.dedup();
    let local = |v: u32| ids.binary_search(&v).expect("an endpoint") as u32;
    let mut sorted: Vec<(u32, u32, Why)> = edges
        .iter()
        .map(|&(a, b, w)| (local(a), local(b), w))
        .collect();
    sorted.sort_unstable_by_key(|&(a, b, _)| (a, b));
    let mut offsets = vec![0usize; ids.len() + 1];
    for &(a, _, _) in &sorted {
        offsets[a as usize + 1] += 1;
    }
    for i in 0..ids.len() {
        offsets[i + 1] += offsets[i];
    }
    let targets: Vec<u32> = sorted.iter().map(|&(_, b, _)| b).collect();
    let components = tarjan(ids.len(), &offsets, &targets, |_| true);
    let members = components.nontrivial.first()?;
    let start = members[0];
    let mut parent: FxHashMap<u32, (u32, Why)> = FxHashMap::default();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &(_, w, why) in &sorted[offsets[v as usize]..offsets[v as usize + 1]] {
            if w == start {
                // Walk back: the cycle start -> ... -> v -> start.
                let mut steps = vec![(v, why)];
                let mut at = v;
                while at != start {
                    let (p, pw) = parent[&at];
                    steps.push((p, pw));
                    at = p;
                }
                steps.reverse();
                return Some(
                    steps
                        .into_iter()
                        .map(|(l, w)| (ids[l as usize], w))
                        .collect(),
                );
            }
            if components.same(w, start) && !parent.contains_key(&w) && w != start {
                parent.insert(w, (v, why));
                queue.push_back(w);
            }
        }
    }
    None
}

fn compute_clocks(engine: &mut Engine, order: &[u32]) {
    let width = engine.width();
    let n = engine.history.txns.len();
    let mut clock = vec![0u32; n * width];
    let mut row = vec![0u32; width];
    for &t in order {
        let t = t as usize;
        let s = engine.session_of[t] as usize;
        let p = engine.position[t];
        row.fill(0);
        if p > 1 {
            let previous = engine.sessions[s][p as usize - 2] as usize;
            row.copy_from_slice(&clock[previous * width..(previous + 1) * width]);
        }
        for &source in &engine.sources[t] {
            let theirs = &clock[source as usize * width..(source as usize + 1) * width];
            for (mine, &other) in row.iter_mut().zip(theirs) {
                *mine = (*mine).max(other);
            }
        }
        row[s] = p;
        clock[t * width..(t + 1) * width].copy_from_slice(&row);
    }
    engine.clock = clock;
}

/// A forced edge, or a violation the read shows at once.
enum Forced {
    Edge { earlier: u32, later: u32, why: Why },
    Now(Anomaly),
}

/// Checks a transactional history for the requested causal-family models.
pub(crate) fn check_transactions(
    history: &TxnHistory,
    data: DataModel,
    requested: &[Model],
    memory_limit_bytes: u64,
) -> Result<Vec<Anomaly>, String> {
    let mut engine = engine(history, data);
    let bytes = history.txns.len() as u64 * engine.width() as u64 * 4 * 3;
    if bytes > memory_limit_bytes {
        return Err(format!(
            "causal checking keeps a vector clock over {} sessions for each of {} \
             transactions: about {} MiB, over the memory limit",
            engine.width(),
            history.txns.len(),
            bytes >> 20
        ));
    }
    let order = match topological(&engine) {
        Ok(order) => order,
        Err(cycle) => {
            let kind = if engine.registers {
                A::CyclicCo
            } else {
                A::CausalCycle
            };
            return Ok(vec![cycle_anomaly(&engine, kind, &cycle, Level::Causal)]);
        }
    };
    compute_clocks(&mut engine, &order);
    let implied = super::consistency::implied_models(requested.iter().copied());
    let mut levels = Vec::new();
    if implied.contains(&Model::ReadCommittedBe) && !engine.registers {
        levels.push(Level::ReadCommitted);
    }
    if implied.contains(&Model::ReadAtomic) && !engine.registers {
        levels.push(Level::ReadAtomic);
    }
    let sessions_wanted = [
        Model::Causal,
        Model::Pram,
        Model::ReadYourWrites,
        Model::MonotonicReads,
        Model::MonotonicWrites,
        Model::WritesFollowReads,
    ];
    if sessions_wanted.iter().any(|m| implied.contains(m)) {
        levels.push(Level::Causal);
    }
    let observations = LazyObservations::default();
    let mut anomalies = Vec::new();
    for &level in &levels {
        anomalies.extend(saturate(&engine, level, &observations, false));
        if !anomalies.is_empty() {
            // A weaker level's violation is one of every stronger level; but the session
            // guarantees a stale read breaks are still worth naming.
            if level != Level::Causal && levels.contains(&Level::Causal) {
                anomalies.extend(saturate(&engine, Level::Causal, &observations, true));
            }
            break;
        }
    }
    Ok(anomalies)
}

/// [`Observations`], computed when the first violation needs naming: they take two vector
/// clocks' worth of memory, which a valid history never needs.
#[derive(Default)]
struct LazyObservations {
    cell: std::cell::OnceCell<Observations>,
}

impl LazyObservations {
    fn get(&self, engine: &Engine) -> &Observations {
        self.cell.get_or_init(|| Observations::new(engine))
    }
}

/// Per-session direct observations, for naming session-guarantee violations.
struct Observations {
    /// `direct[t * width + s]`: the last position of session `s` whose write `t`'s session
    /// read directly, up to and including `t`.
    direct: Vec<u32>,
    /// `two_hop[t * width + s]`: over the writes `t`'s session read directly, the last
    /// position of session `s` their sessions had read directly before writing.
    two_hop: Vec<u32>,
    /// Readers of each transaction: (session, position).
    readers: FxHashMap<u32, Vec<(u32, u32)>>,
}

impl Observations {
    fn new(engine: &Engine) -> Observations {
        let width = engine.width();
        let n = engine.history.txns.len();
        let mut direct = vec![0u32; n * width];
        let mut readers: FxHashMap<u32, Vec<(u32, u32)>> = FxHashMap::default();
        for session in &engine.sessions {
            let mut running = vec![0u32; width];
            for &t in session {
                for &source in &engine.sources[t as usize] {
                    let s = engine.session_of[source as usize] as usize;
                    running[s] = running[s].max(engine.position[source as usize]);
                    readers
                        .entry(source)
                        .or_default()
                        .push((engine.session_of[t as usize], engine.position[t as usize]));
                }
                direct[t as usize * width..(t as usize + 1) * width].copy_from_slice(&running);
            }
        }
        let mut two_hop = vec![0u32; n * width];
        for session in &engine.sessions {
            let mut running = vec![0u32; width];
            for &t in session {
                for &source in &engine.sources[t as usize] {
                    let theirs = &direct[source as usize * width..(source as usize + 1) * width];
                    for i in 0..width {
                        running[i] = running[i].max(theirs[i]);
                    }
                }
                two_hop[t as usize * width..(t as usize + 1) * width].copy_from_slice(&running);
            }
        }
        Observations {
            direct,
            two_hop,
            readers,
        }
    }

    /// The session guarantee a write `w` the reader `t` should have seen (but did not) breaks,
    /// if the way `w` came to happen before `t` has its shape.
    fn guarantee(&self, engine: &Engine, w: u32, t: u32) -> Option<A> {
        let width = engine.width();
        let (sw, pw) = (engine.session_of[w as usize], engine.position[w as usize]);
        let (st, pt) = (engine.session_of[t as usize], engine.position[t as usize]);
        if sw == st {
            return Some(A::ReadYourWrites);
        }
        let read_earlier = self
            .readers
            .get(&w)
            .is_some_and(|r| r.iter().any(|&(s, p)| s == st && p <= pt));
        if read_earlier {
            return Some(A::MonotonicReads);
        }
        if self.direct[t as usize * width + sw as usize] > pw {
            return Some(A::MonotonicWrites);
        }
        if self.two_hop[t as usize * width + sw as usize] >= pw {
            return Some(A::WritesFollowReads);
        }
        None
    }
}

/// The writers of `key` the reader `t` must see at `level`, per the axiom, before the read at
/// micro-operation `mop`: the latest in each session is enough for registers (session order
/// orders the rest), but lists check every one.
fn visible_writers(engine: &Engine, level: Level, t: u32, read: &Read) -> Vec<u32> {
    let mut out = Vec::new();
    let own = engine.session_of[t as usize];
    // Writers at positions up to `limit` of one session: all of them for lists, the latest
    // for registers.
    let take = |list: &[(u32, u32)], limit: u32, out: &mut Vec<u32>| {
        let end = list.partition_point(|&(p, _)| p <= limit);
        if engine.lists {
            out.extend(list[..end].iter().map(|&(_, w)| w));
        } else if end > 0 {
            out.push(list[end - 1].1);
        }
    };
    let sessions = &engine.writers[read.key as usize];
    match level {
        Level::Causal => {
            let width = engine.width();
            let clock = &engine.clock[t as usize * width..(t as usize + 1) * width];
            // For registers, writers in the source's own causal past already commit before
            // it: only sessions the reader knows more of than the source can force anything.
            let source_clock = (!engine.lists && read.source != INIT).then(|| {
                &engine.clock[read.source as usize * width..(read.source as usize + 1) * width]
            });
            for (s, list) in sessions {
                let mut limit = clock[*s as usize];
                if *s == own {
                    // Not the reader itself.
                    limit = limit.min(engine.position[t as usize] - 1);
                }
                if source_clock.is_some_and(|c| c[*s as usize] >= limit) {
                    continue;
                }
                take(list, limit, &mut out);
            }
        }
        Level::ReadAtomic => {
            if let Ok(i) = sessions.binary_search_by_key(&own, |(s, _)| *s) {
                take(&sessions[i].1, engine.position[t as usize] - 1, &mut out);
            }
            for &source in &engine.sources[t as usize] {
                if engine.writes[source as usize].contains(&read.key) {
                    out.push(source);
                }
            }
        }
        Level::ReadCommitted => {
            // Sources of reads earlier in the same transaction.
            for earlier in engine.reads[t as usize].iter().filter(|r| r.mop < read.mop) {
                let mut candidates = vec![earlier.source];
                if engine.lists {
                    if let Some(list) = engine
                        .history
                        .read_list(engine.history.mops[earlier.mop as usize].read)
                    {
                        candidates = list
                            .iter()
                            .filter_map(|&v| engine.appender.get(&(earlier.key, v)).copied())
                            .collect();
                    }
                }
                for c in candidates {
                    if c != INIT && engine.writes[c as usize].contains(&read.key) {
                        out.push(c);
                    }
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out.retain(|&w| w != t && w != read.source);
    out
}

/// The violations of one level: reads that missed a write they had to see, then cycles in the
/// saturated commit order. With `named_only`, just the reads whose violation has a
/// session-guarantee shape.
fn saturate(
    engine: &Engine,
    level: Level,
    observations: &LazyObservations,
    named_only: bool,
) -> Vec<Anomaly> {
    let history = engine.history;
    let n = history.txns.len();
    let mut anomalies = Vec::new();
    let mut forced: Vec<(u32, u32, Why)> = Vec::new();
    for t in 0..n as u32 {
        for read in &engine.reads[t as usize] {
            for w in visible_writers(engine, level, t, read) {
                match force(engine, level, observations, t, read, w) {
                    Some(Forced::Edge {
                        earlier,
                        later,
                        why,
                    }) => forced.push((earlier, later, why)),
                    Some(Forced::Now(anomaly)) => anomalies.push(anomaly),
                    None => {}
                }
            }
        }
    }
    if named_only {
        let named = [
            A::ReadYourWrites,
            A::MonotonicReads,
            A::MonotonicWrites,
            A::WritesFollowReads,
        ];
        anomalies.retain(|a| named.contains(&a.kind));
        return anomalies;
    }
    if !anomalies.is_empty() {
        return anomalies;
    }
    // The saturated commit order: session order, reads-from, version order, forced edges.
    let mut edges: Vec<(u32, u32, Why)> = Vec::new();
    for session in &engine.sessions {
        for w in session.windows(2) {
            edges.push((w[0], w[1], Why::Session));
        }
    }
    for (t, sources) in engine.sources.iter().enumerate() {
        for &s in sources {
            edges.push((s, t as u32, Why::ReadFrom));
        }
    }
    if engine.lists {
        edges.extend(version_order_edges(engine));
    }
    edges.extend(forced);
    let mut vertices: Vec<u32> = edges.iter().flat_map(|&(a, b, _)| [a, b]).collect();
    vertices.sort_unstable();
    vertices.dedup();
    let local = |v: u32| vertices.binary_search(&v).expect("an endpoint") as u32;
    let mut sorted: Vec<(u32, u32)> = edges
        .iter()
        .map(|&(a, b, _)| (local(a), local(b)))
        .collect();
    sorted.sort_unstable();
    let mut offsets = vec![0usize; vertices.len() + 1];
    for &(a, _) in &sorted {
        offsets[a as usize + 1] += 1;
    }
    for i in 0..vertices.len() {
        offsets[i + 1] += offsets[i];
    }
    let targets: Vec<u32> = sorted.iter().map(|&(_, b)| b).collect();
    let components = tarjan(vertices.len(), &offsets, &targets, |_| true);
    // Each component's edges, by component.
    let mut component_index: FxHashMap<u32, usize> = FxHashMap::default();
    for (i, members) in components.nontrivial.iter().enumerate() {
        component_index.insert(components.of[members[0] as usize], i);
    }
    let mut within: Vec<Vec<(u32, u32, Why)>> = vec![Vec::new(); components.nontrivial.len()];
    for &(a, b, why) in &edges {
        let (ca, cb) = (
            components.of[local(a) as usize],
            components.of[local(b) as usize],
        );
        if ca == cb {
            if let Some(&i) = component_index.get(&ca) {
                within[i].push((a, b, why));
            }
        }
    }
    for mut edges in within {
        // Prefer plain relations when one pair has several reasons.
        edges.sort_by_key(|&(a, b, why)| (a, b, matches!(why, Why::Forced { .. })));
        edges.dedup_by_key(|&mut (a, b, _)| (a, b));
        if let Some(cycle) = shortest_cycle(&edges) {
            anomalies.push(cycle_anomaly(
                engine,
                level.anomaly(engine.registers),
                &cycle,
                level,
            ));
        }
    }
    anomalies
}

/// List-append version order: each append precedes the next in the longest read of its key.
fn version_order_edges(engine: &Engine) -> Vec<(u32, u32, Why)> {
    let history = engine.history;
    let mut longest: FxHashMap<u32, &[u32]> = FxHashMap::default();
    for reads in &engine.reads {
        for read in reads {
            if let Some(list) = history.read_list(history.mops[read.mop as usize].read) {
                let slot = longest.entry(read.key).or_insert(list);
                if list.len() > slot.len() {
                    *slot = list;
                }
            }
        }
    }
    let mut edges = Vec::new();
    let mut keys: Vec<u32> = longest.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        for pair in longest[&key].windows(2) {
            if let (Some(&a), Some(&b)) = (
                engine.appender.get(&(key, pair[0])),
                engine.appender.get(&(key, pair[1])),
            ) {
                if a != b && engine.in_graph(a) && engine.in_graph(b) {
                    edges.push((a, b, Why::VersionOrder));
                }
            }
        }
    }
    edges
}

/// What the axiom demands of writer `w`, visible to reader `t` at its read of a key.
fn force(
    engine: &Engine,
    level: Level,
    observations: &LazyObservations,
    t: u32,
    read: &Read,
    w: u32,
) -> Option<Forced> {
    let history = engine.history;
    if engine.lists {
        // Every visible append must be in the list read.
        let list = history.read_list(history.mops[read.mop as usize].read)?;
        let missing: Vec<u32> = history
            .mops_of(w)
            .iter()
            .filter(|m| m.kind == MopKind::Append && m.key == read.key && !list.contains(&m.value))
            .map(|m| m.value)
            .collect();
        if missing.is_empty() {
            return None;
        }
        return Some(Forced::Now(missed_write(
            engine,
            level,
            observations,
            t,
            read,
            w,
            &missing,
        )));
    }
    if read.source == INIT {
        return Some(Forced::Now(missed_write(
            engine,
            level,
            observations,
            t,
            read,
            w,
            &[],
        )));
    }
    // The source must commit after w; if it already happens before w, that is a cycle now.
    if engine.happens_before(read.source, w) {
        return Some(Forced::Now(missed_write(
            engine,
            level,
            observations,
            t,
            read,
            w,
            &[],
        )));
    }
    Some(Forced::Edge {
        earlier: w,
        later: read.source,
        why: Why::Forced {
            reader: t,
            key: read.key,
        },
    })
}

/// A read that missed a write it had to see: WriteCORead / WriteCOInitRead, a missing visible
/// append, named by session guarantee where it has that shape.
fn missed_write(
    engine: &Engine,
    level: Level,
    observations: &LazyObservations,
    t: u32,
    read: &Read,
    w: u32,
    missing: &[u32],
) -> Anomaly {
    let history = engine.history;
    let guarantee = if level == Level::Causal {
        observations.get(engine).guarantee(engine, w, t)
    } else {
        None
    };
    let kind = match (guarantee, engine.registers, read.source == INIT) {
        (Some(g), _, _) => g,
        (None, true, true) => A::WriteCoInitRead,
        (None, true, false) => A::WriteCoRead,
        (None, false, _) => level.anomaly(false),
    };
    let mop = &history.mops[read.mop as usize];
    let key = history.key_text(read.key);
    let mut txns = vec![t, w];
    if read.source != INIT && !engine.lists {
        txns.push(read.source);
    }
    let seen = history.observed_text(mop.read);
    let written: Vec<String> = history
        .mops_of(w)
        .iter()
        .filter(|m| m.kind.is_write() && m.key == read.key)
        .map(|m| history.value_text(m.value))
        .collect();
    let how = |n: &Names| how_visible(engine, level, w, t, n);
    simple_anomaly(
        history,
        kind,
        &txns,
        json!({
            "key": history.key_json(read.key),
            "read": history.observed_json(mop.read),
            "missed": if missing.is_empty() { Value::Null } else {
                Value::Array(missing.iter().map(|&v| history.value_json(v)).collect())
            },
            "guarantee": guarantee.map(|g| g.as_str()),
        }),
        |n| {
            let source = if engine.lists || read.source == INIT {
                String::new()
            } else if engine.happens_before(read.source, w) {
                format!(
                    ", which {} wrote before {} happened",
                    n.get(read.source),
                    n.get(w)
                )
            } else {
                format!(", which {} wrote", n.get(read.source))
            };
            let named = match guarantee {
                Some(g) => format!(" This breaks {}.", g.as_str().replace('-', " ")),
                None => String::new(),
            };
            format!(
                "{} read {key} = {seen}{source}; but {} wrote {key} = {} and {}, so under {} \
                 {} had to see it.{named}",
                n.get(t),
                n.get(w),
                written.join(", "),
                how(n),
                level.model(),
                n.get(t)
            )
        },
    )
}

/// How `w` came to be visible to `t` at this level, in words.
fn how_visible(engine: &Engine, level: Level, w: u32, t: u32, names: &Names) -> String {
    let (a, b) = (names.get(w), names.get(t));
    if engine.session_of[w as usize] == engine.session_of[t as usize] {
        return format!("{a} ran before {b} on the same process");
    }
    if engine.sources[t as usize].binary_search(&w).is_ok() {
        return match level {
            Level::ReadCommitted => format!("{b} had already read from {a}"),
            _ => format!("{b} read from {a}"),
        };
    }
    format!("{a} happened before {b} (through session order and reads)")
}

fn cycle_anomaly(engine: &Engine, kind: A, cycle: &[(u32, Why)], level: Level) -> Anomaly {
    let history = engine.history;
    let txns: Vec<u32> = cycle.iter().map(|&(t, _)| t).collect();
    let mut extra = Vec::new();
    for &(_, why) in cycle {
        if let Why::Forced { reader, .. } = why {
            if !txns.contains(&reader) && !extra.contains(&reader) {
                extra.push(reader);
            }
        }
    }
    let mut all = txns.clone();
    all.extend(extra);
    simple_anomaly(history, kind, &all, Value::Null, |n| {
        let mut text = String::from("Then:\n");
        for (i, &(from, why)) in cycle.iter().enumerate() {
            let to = cycle[(i + 1) % cycle.len()].0;
            let (a, b) = (n.get(from), n.get(to));
            let because = match why {
                Why::Session => format!(
                    "{a} ran before {b} on process {}",
                    history.txns[from as usize].process
                ),
                Why::ReadFrom => format!("{b} read what {a} wrote"),
                Why::VersionOrder => format!("{b} appended right after {a} in a list both wrote"),
                Why::Forced { reader, key } => format!(
                    "{} read {} from {b}, while {a}, which also wrote {}, was visible to it \
                     under {}",
                    n.get(reader),
                    history.key_text(key),
                    history.key_text(key),
                    level.model()
                ),
            };
            text.push_str(&format!("  - {a} < {b}, because {because}.\n"));
        }
        let chain: Vec<String> = txns
            .iter()
            .chain(std::iter::once(&txns[0]))
            .map(|&t| n.get(t))
            .collect();
        text.push_str(&format!(
            "However, {}: no commit order satisfies {}.",
            chain.join(" < "),
            level.model()
        ));
        text
    })
}

/// Reads a register history (`read` / `write` operations on keys, unique writes) as
/// single-operation transactions.
///
/// # Correctness
/// `nil_read_is_unknown` follows the EDN convention: a `nil` read observed nothing and is
/// dropped; otherwise `null` is the initial state. A `cas` is not a read or a write: error.
pub(crate) fn register_history(
    history: &History,
    nil_read_is_unknown: bool,
) -> Result<History, TxnError> {
    let mut ops = Vec::with_capacity(history.ops.len());
    for op in &history.ops {
        if op.is_nemesis() {
            ops.push(op.clone());
            continue;
        }
        let key = op.key.clone().unwrap_or(Value::String("register".into()));
        let mop = match op.f.as_str() {
            "write" => json!([["w", key, op.value]]),
            "read" if op.kind == OpType::Ok && op.value.is_null() && nil_read_is_unknown => {
                json!([])
            }
            "read" => json!([["r", key, op.value]]),
            other => {
                return Err(TxnError::Precondition(format!(
                    "event at index {}: causal checking of registers reads read and write \
                     operations, not {other}",
                    op.index
                )))
            }
        };
        ops.push(Op {
            f: "txn".into(),
            value: mop,
            key: None,
            ..op.clone()
        });
    }
    Ok(History::new(ops))
}

/// Checks register histories: Bouajjani et al.'s bad patterns, and session guarantees.
pub(crate) fn check_registers(
    txns: &TxnHistory,
    requested: &[Model],
    memory_limit_bytes: u64,
) -> Result<Vec<Anomaly>, String> {
    let mut engine = engine(txns, DataModel::RwRegister);
    engine.registers = true;
    let mut anomalies = Vec::new();
    // ThinAirRead: a value nobody wrote (or only an aborted write did).
    let written: FxHashSet<(u32, u32)> = txns
        .txns
        .iter()
        .enumerate()
        .filter(|(_, t)| t.status.may_have_committed())
        .flat_map(|(t, _)| txns.mops_of(t as u32).iter())
        .filter(|m| m.kind == MopKind::Write)
        .map(|m| (m.key, m.value))
        .collect();
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.status != Status::Ok {
            continue;
        }
        for m in txns.mops_of(t as u32) {
            if let (MopKind::Read, Observed::Value(v)) = (m.kind, m.read) {
                if !written.contains(&(m.key, v)) {
                    anomalies.push(simple_anomaly(
                        txns,
                        A::ThinAirRead,
                        &[t as u32],
                        json!({"key": txns.key_json(m.key), "value": txns.value_json(v)}),
                        |n| {
                            format!(
                                "{} read {} = {}, a value no (committed or pending) write \
                                 wrote.",
                                n.get(t as u32),
                                txns.key_text(m.key),
                                txns.value_text(v)
                            )
                        },
                    ));
                }
            }
        }
    }
    let bytes = txns.txns.len() as u64 * engine.width() as u64 * 4 * 3;
    if bytes > memory_limit_bytes {
        return Err(format!(
            "causal checking keeps a vector clock over {} sessions for each of {} operations: \
             about {} MiB, over the memory limit",
            engine.width(),
            txns.txns.len(),
            bytes >> 20
        ));
    }
    let order = match topological(&engine) {
        Ok(order) => order,
        Err(cycle) => {
            anomalies.push(cycle_anomaly(&engine, A::CyclicCo, &cycle, Level::Causal));
            return Ok(anomalies);
        }
    };
    compute_clocks(&mut engine, &order);
    let observations = LazyObservations::default();
    let found = saturate(&engine, Level::Causal, &observations, false);
    anomalies.extend(found);
    let implied = super::consistency::implied_models(requested.iter().copied());
    if implied.contains(&Model::CausalMemory) {
        if txns.txns.len() > CAUSAL_MEMORY_MAX_OPS {
            return Err(format!(
                "causal memory is checked on histories of at most {CAUSAL_MEMORY_MAX_OPS} \
                 operations (its per-operation happens-before relations are cubic); this one \
                 has {}",
                txns.txns.len()
            ));
        }
        anomalies.extend(causal_memory(&engine));
    }
    Ok(anomalies)
}

/// Causal memory's bad patterns: for each read `o`, the happens-before relation HB_o over its
/// causal past (causal order, plus: a write `w'` that happens before a read of the same key
/// from `w` is ordered before `w`), saturated to a fixed point.
fn causal_memory(engine: &Engine) -> Vec<Anomaly> {
    let history = engine.history;
    let n = history.txns.len();
    let writes_of = |t: u32| -> Option<(u32, u32)> {
        history
            .mops_of(t)
            .iter()
            .find(|m| m.kind == MopKind::Write)
            .map(|m| (m.key, m.value))
    };
    for o in 0..n as u32 {
        if engine.reads[o as usize].is_empty() {
            continue;
        }
        let past: Vec<u32> = (0..n as u32)
            .filter(|&a| engine.in_graph(a) && (a == o || engine.happens_before(a, o)))
            .collect();
        let m = past.len();
        let words = m.div_ceil(64);
        let mut hb = vec![0u64; m * words];
        let set = |hb: &mut Vec<u64>, a: usize, b: usize| hb[a * words + b / 64] |= 1 << (b % 64);
        let get = |hb: &Vec<u64>, a: usize, b: usize| hb[a * words + b / 64] & (1 << (b % 64)) != 0;
        for (i, &a) in past.iter().enumerate() {
            for (j, &b) in past.iter().enumerate() {
                if engine.happens_before(a, b) {
                    set(&mut hb, i, j);
                }
            }
        }
        let index = |t: u32| past.binary_search(&t).ok();
        loop {
            let mut changed = false;
            for (ri, &r) in past.iter().enumerate() {
                for read in &engine.reads[r as usize] {
                    if read.source == INIT {
                        continue;
                    }
                    let Some(wi) = index(read.source) else {
                        continue;
                    };
                    for (xi, &x) in past.iter().enumerate() {
                        if xi == wi || writes_of(x).map(|(k, _)| k) != Some(read.key) {
                            continue;
                        }
                        if get(&hb, xi, ri) && !get(&hb, xi, wi) {
                            // Add x -> w, closed transitively.
                            let row_w: Vec<u64> = hb[wi * words..(wi + 1) * words].to_vec();
                            for a in 0..m {
                                if a == xi || get(&hb, a, xi) {
                                    for k in 0..words {
                                        hb[a * words + k] |= row_w[k];
                                    }
                                    set(&mut hb, a, wi);
                                }
                            }
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
        if let Some(a) = (0..m).find(|&a| get(&hb, a, a)) {
            let t = past[a];
            return vec![simple_anomaly(
                history,
                A::CyclicHb,
                &[o, t],
                Value::Null,
                |names| {
                    format!(
                        "In the causal past of {}, the happens-before relation of causal memory \
                     orders {} before itself: a cycle.",
                        names.get(o),
                        names.get(t)
                    )
                },
            )];
        }
        for (ri, &r) in past.iter().enumerate() {
            for read in engine.reads[r as usize]
                .iter()
                .filter(|rd| rd.source == INIT)
            {
                if let Some((_, &x)) = past.iter().enumerate().find(|&(xi, &x)| {
                    writes_of(x).map(|(k, _)| k) == Some(read.key) && get(&hb, xi, ri)
                }) {
                    return vec![simple_anomaly(
                        history,
                        A::WriteHbInitRead,
                        &[r, x, o],
                        json!({"key": history.key_json(read.key)}),
                        |names| {
                            format!(
                                "{} read the initial value of {}, but in the causal past of \
                                 {} the write {} happens before that read (causal memory's \
                                 happens-before).",
                                names.get(r),
                                history.key_text(read.key),
                                names.get(o),
                                names.get(x)
                            )
                        },
                    )];
                }
            }
        }
    }
    Vec::new()
}
