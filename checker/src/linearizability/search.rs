//! The search for a linearization: Wing & Gong's algorithm with Lowe's memoization, iterative.
//!
//! Required operations (completed `ok`) sit in a doubly linked list of call and return entries
//! in history order. The candidates for the next linearization point are the call entries
//! before the first remaining return entry; linearizing one lifts both of its entries out of
//! the list, and backtracking puts them back (dancing links), so no step copies the history.
//! Every configuration reached — the set of linearized operations and the model state — goes
//! into a memo table, so no configuration is explored twice.
//!
//! Optional operations (crashed: `info` or never completed) have no return entry; they may be
//! linearized whenever they have been invoked, or never. Two design decisions keep them cheap:
//! - They are tried only after every required candidate, since a crashed operation is needed
//!   only to explain what a later operation saw.
//! - Crashed operations that are equal as model operations (e.g. two crashed `write 3`) are
//!   interchangeable once both are invoked, so they form a class and only the earliest unused
//!   member of a class is a candidate. This turns thousands of pending crashed writes of a few
//!   values into a few candidates.
//!
//! Reads are placed greedily. When a required operation that only observes the state (a read,
//! [`Model::is_read_only`]) is a candidate and legal in the current state, the search places it
//! at once and tries nothing else from that configuration. This loses no linearization: let
//! configuration C have state s, read r be a candidate (every operation that completed before r
//! was invoked is already linearized) with r legal in s, and o1 ... ok r w be any linearization
//! of the rest from C. Then r o1 ... ok w is one too. Real time: r comes earlier, which can
//! only break an order "oi before r", and no remaining oi completed before r was invoked (they
//! would be linearized already). The model: r leaves s unchanged, so o1 ... ok run from the
//! same states as before, and removing r from after ok does not change the state w starts
//! from. So C has a linearization iff C + r has one, and when C + r fails, C fails without
//! trying its other candidates. Crashed reads constrain nothing and are dropped before the
//! search, so only completed reads are placed this way. The evidence stays right: every
//! configuration the search reaches is one the full search reaches, and the deepest one is at
//! least as deep (a prefix without r extends by r placed first), so the longest prefix and the
//! operation blamed there come from a real linearizable prefix.
//!
//! Reads also look ahead, for models with monotone operations (string-kv's appends, which only
//! lengthen the text). Take the remaining read g whose completion comes first in the list; if
//! every remaining operation invoked before g completed is a read or monotone, then whatever
//! is placed before g only moves the state forward, so when the model says no monotone steps
//! lead from the current state to one where g is legal ([`Model::may_reach`]: the text is not
//! a prefix of what g saw), the configuration has no linearization and is abandoned at once.
//! Without this, a key with many concurrent appends is searched through every order of them
//! until a get finally rules each out. The deepest configuration reached is then the deepest
//! one the search did not rule out this way: still a linearizable prefix, though a longer one
//! may exist.
//!
//! The linearized set is hashed incrementally (Zobrist: a random 128-bit word per operation,
//! combined with xor), so a memo lookup costs O(1) however long the history is. Two different
//! sets share a hash with probability about 2^-128 per pair, far below any hardware error rate.

use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::models::Model;

/// One operation as the search sees it.
#[derive(Debug, Clone)]
pub(crate) struct SearchOp<O> {
    pub op: O,
    /// Position of the invocation in real-time order.
    pub call: u64,
    /// Position of the completion; `None` for an optional operation.
    pub ret: Option<u64>,
    /// Position of the invocation in the source history (for evidence).
    pub invoke: usize,
    /// Position of the completion in the source history.
    pub completion: Option<usize>,
}

/// Limits shared by every partition of one check.
pub(crate) struct Budget<'a> {
    pub deadline: Option<Instant>,
    pub memory_limit_bytes: u64,
    pub memory_used_bytes: &'a AtomicU64,
}

impl Budget<'_> {
    fn exceeded(&self, local_bytes: u64) -> Option<String> {
        if let Some(deadline) = self.deadline {
            if Instant::now() >= deadline {
                return Some("the time limit was reached before the search finished".into());
            }
        }
        let used = self
            .memory_used_bytes
            .fetch_add(local_bytes, Ordering::Relaxed)
            + local_bytes;
        if used > self.memory_limit_bytes {
            return Some(format!(
                "the search's memo tables reached the memory limit ({} MiB)",
                self.memory_limit_bytes >> 20
            ));
        }
        None
    }

    fn release(&self, bytes: u64) {
        self.memory_used_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Where the search stopped making progress.
#[derive(Debug, Clone)]
pub(crate) struct Stuck<S> {
    /// Required operations linearized in the deepest configuration found.
    pub depth: usize,
    /// Distinct model states seen at that depth (at most [`MAX_STUCK_STATES`]).
    pub states: Vec<S>,
    /// The operation that could not be linearized there (an index into the problem's ops).
    pub blocked: Option<usize>,
}

pub(crate) const MAX_STUCK_STATES: usize = 16;

#[derive(Debug, Clone)]
pub(crate) enum Outcome<S> {
    Valid,
    Invalid(Stuck<S>),
    Unknown(String),
}

const HEAD: u32 = 0;
const NIL: u32 = u32::MAX;
/// How many search steps pass between checks of the time and memory limits.
const BUDGET_CHECK_EVERY: u64 = 1024;

/// How many members of each crashed-operation class a configuration has used, as
/// `(class, used)` pairs for the classes it used at all.
type Used = Box<[(u32, u32)]>;

/// The memo table: for each (set of linearized required operations, state), the crashed-op
/// usages already explored from it. A configuration is pruned when an explored one has the same
/// required set and state and used no more of any class: it had every option this one has.
type Memo<S> = FxHashMap<(u128, S), Explored>;

/// The usages explored from one (required set, state): nearly always exactly one, kept inline
/// so that the common case allocates nothing.
#[derive(Debug)]
struct Explored {
    first: Used,
    rest: Vec<Used>,
}

impl Explored {
    fn iter(&self) -> impl Iterator<Item = &Used> {
        std::iter::once(&self.first).chain(&self.rest)
    }

    /// Adds `used`, dropping the usages it covers: they had no option it lacks.
    fn add(&mut self, used: Used) {
        let mut all: Vec<Used> = std::mem::take(&mut self.rest);
        all.push(std::mem::take(&mut self.first));
        all.retain(|old| !used.iter().all(|&(c, n)| count_in(old, c) >= n));
        self.first = used;
        self.rest = all;
    }
}

/// What [`Search::greedy_read`] found.
enum Greedy {
    /// A read to place without branching.
    Place(u32),
    /// The configuration with that read placed was explored (and failed) before.
    Explored,
    None,
}

#[derive(Debug, Clone, Copy)]
enum Cursor {
    Entry(u32),
    Class(u32),
    /// Nothing left to try: the configuration's only move was a greedily placed read.
    Exhausted,
}

struct Frame<S> {
    op: u32,
    prev_state: S,
    resume: Cursor,
    branch: u32,
}

/// The mutable state of one search from one initial state: resumable, so that partitions can
/// share the cores in slices.
pub(crate) struct Run<S> {
    state: S,
    hash: u128,
    stack: Vec<Frame<S>>,
    depth: usize,
    cursor: Cursor,
    branch_from: u32,
    cache: Memo<S>,
    successors: Vec<S>,
    stuck: Stuck<S>,
    steps: u64,
    local_bytes: u64,
    reported_bytes: u64,
    stop_at_depth: Option<usize>,
    prefix: Option<Vec<usize>>,
    /// The configuration was just entered: look for a read to place greedily.
    fresh: bool,
}

impl<S: Clone> Run<S> {
    /// Where the search has got furthest so far.
    pub fn stuck(&self) -> &Stuck<S> {
        &self.stuck
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// A run from `init`; `expected_configurations` sizes the memo table.
    fn new(init: S, first_entry: u32, expected_configurations: usize) -> Run<S> {
        Run {
            stuck: Stuck {
                depth: 0,
                states: vec![init.clone()],
                blocked: None,
            },
            state: init,
            hash: 0,
            stack: Vec::new(),
            depth: 0,
            cursor: Cursor::Entry(first_entry),
            branch_from: 0,
            cache: Memo::with_capacity_and_hasher(expected_configurations, Default::default()),
            successors: Vec::new(),
            steps: 0,
            local_bytes: 0,
            reported_bytes: 0,
            stop_at_depth: None,
            prefix: None,
            fresh: true,
        }
    }
}

/// The search over one partition's operations.
pub(crate) struct Search<M: Model> {
    model: std::marker::PhantomData<M>,
    ops: usize,
    // The linked list of entries; entry 0 is the head sentinel.
    next: Vec<u32>,
    prev: Vec<u32>,
    entry_op: Vec<u32>,
    entry_is_call: Vec<bool>,
    entry_pos: Vec<u64>,
    call_entry: Vec<u32>,
    ret_entry: Vec<u32>,
    // Optional operations, in classes of equal operations, each sorted by invocation.
    classes: Vec<Vec<u32>>,
    class_of: Vec<u32>,
    class_next: Vec<u32>,
    /// Whether optional operations may be used any number of times (see [`Search::relaxed`]).
    reusable_optional: bool,
    /// Classes with at least one member linearized, in the order they were first used (a
    /// stack, since linearization and backtracking are last in, first out).
    used_classes: Vec<u32>,
    zobrist: Vec<u128>,
    required: usize,
    /// Per operation: a required operation that only observes the state.
    read_only: Vec<bool>,
    /// Per operation: it only moves the state forward ([`Model::is_monotone`]).
    monotone: Vec<bool>,
    /// Whether to look ahead at reads: the problem has reads and monotone operations.
    lookahead: bool,
}

/// The most memo entries a run reserves up front (see [`Search::run`]).
const MEMO_PRESIZE_LIMIT: usize = 1 << 16;

/// How many list entries the read lookahead walks at most, per configuration.
const LOOKAHEAD_ENTRIES: usize = 64;

/// Whether `FAULTLINE_DEBUG_SEARCH` asks for per-search statistics on stderr; read once, since
/// the window checks finish many small searches.
pub(crate) fn debug_search() -> bool {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("FAULTLINE_DEBUG_SEARCH").is_some())
}

/// How many members of `class` a usage used.
fn count_in(used: &[(u32, u32)], class: u32) -> u32 {
    used.iter()
        .find(|&&(c, _)| c == class)
        .map_or(0, |&(_, n)| n)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl<M: Model> Search<M> {
    /// A search in which each optional operation, once invoked, may take effect any number of
    /// times. It accepts every history the exact search accepts and more, so when it finds no
    /// linearization there is none: a sound and much cheaper way to prove a violation, since
    /// how many crashed operations of each kind were used no longer distinguishes
    /// configurations.
    pub fn relaxed(ops: &[SearchOp<M::Op>]) -> Self {
        let mut search = Search::new(ops);
        search.reusable_optional = true;
        search
    }

    pub fn new(ops: &[SearchOp<M::Op>]) -> Self {
        assert!(
            ops.len() < (u32::MAX / 2) as usize,
            "too many operations in one partition"
        );
        // Invocations and completions, each sorted by position, then merged: operations come
        // in invocation order nearly always, and most complete soon after, so both sorts are
        // cheap, and the search is built once per cut by the window search.
        let mut calls: Vec<(u64, u32)> = Vec::with_capacity(ops.len());
        let mut rets: Vec<(u64, u32)> = Vec::with_capacity(ops.len());
        let mut classes: Vec<Vec<u32>> = Vec::new();
        let mut class_ids: FxHashMap<&M::Op, u32> = FxHashMap::default();
        let mut class_of = vec![u32::MAX; ops.len()];
        for (i, op) in ops.iter().enumerate() {
            match op.ret {
                Some(ret) => {
                    assert!(ret > op.call, "an operation completes after it is invoked");
                    calls.push((op.call, i as u32));
                    rets.push((ret, i as u32));
                }
                None => {
                    let class = *class_ids.entry(&op.op).or_insert_with(|| {
                        classes.push(Vec::new());
                        (classes.len() - 1) as u32
                    });
                    classes[class as usize].push(i as u32);
                    class_of[i] = class;
                }
            }
        }
        // Stable sorts: they take presorted runs as they are.
        calls.sort_by_key(|&(pos, _)| pos);
        rets.sort_by_key(|&(pos, _)| pos);
        let mut events: Vec<(u64, u32, bool)> = Vec::with_capacity(calls.len() * 2);
        let (mut c, mut r) = (0, 0);
        while c < calls.len() || r < rets.len() {
            if r == rets.len() || (c < calls.len() && calls[c].0 < rets[r].0) {
                events.push((calls[c].0, calls[c].1, true));
                c += 1;
            } else {
                events.push((rets[r].0, rets[r].1, false));
                r += 1;
            }
        }
        for members in &mut classes {
            members.sort_unstable_by_key(|&m| ops[m as usize].call);
        }
        let entries = events.len() + 1;
        let mut search = Search {
            model: std::marker::PhantomData,
            ops: ops.len(),
            next: Vec::with_capacity(entries),
            prev: Vec::with_capacity(entries),
            entry_op: Vec::with_capacity(entries),
            entry_is_call: Vec::with_capacity(entries),
            entry_pos: Vec::with_capacity(entries),
            call_entry: vec![NIL; ops.len()],
            ret_entry: vec![NIL; ops.len()],
            class_next: vec![0; classes.len()],
            used_classes: Vec::new(),
            reusable_optional: false,
            classes,
            class_of,
            zobrist: (0..ops.len() as u64)
                .map(|i| {
                    let hi = splitmix64(i.wrapping_mul(2) ^ 0x5EED);
                    let lo = splitmix64(i.wrapping_mul(2) + 1);
                    ((hi as u128) << 64) | lo as u128
                })
                .collect(),
            required: events.len() / 2,
            read_only: ops
                .iter()
                .map(|op| op.ret.is_some() && M::is_read_only(&op.op))
                .collect(),
            monotone: ops.iter().map(|op| M::is_monotone(&op.op)).collect(),
            lookahead: false,
        };
        search.lookahead =
            search.read_only.iter().any(|&r| r) && search.monotone.iter().any(|&m| m);
        // Head sentinel.
        search.entry_op.push(NIL);
        search.entry_is_call.push(false);
        search.entry_pos.push(0);
        for (e, &(pos, op, is_call)) in events.iter().enumerate() {
            let e = e as u32 + 1;
            search.entry_op.push(op);
            search.entry_is_call.push(is_call);
            search.entry_pos.push(pos);
            if is_call {
                search.call_entry[op as usize] = e;
            } else {
                search.ret_entry[op as usize] = e;
            }
        }
        for e in 0..entries as u32 {
            search.prev.push(if e == 0 { NIL } else { e - 1 });
            search
                .next
                .push(if e + 1 == entries as u32 { NIL } else { e + 1 });
        }
        search
    }

    fn unlink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    fn relink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = e;
        if n != NIL {
            self.prev[n as usize] = e;
        }
    }

    fn lift(&mut self, op: u32) {
        let class = self.class_of[op as usize];
        if class != u32::MAX && self.reusable_optional {
            return;
        }
        if class == u32::MAX {
            self.unlink(self.call_entry[op as usize]);
            self.unlink(self.ret_entry[op as usize]);
        } else {
            debug_assert_eq!(
                self.classes[class as usize][self.class_next[class as usize] as usize],
                op
            );
            self.class_next[class as usize] += 1;
            if self.class_next[class as usize] == 1 {
                self.used_classes.push(class);
            }
        }
    }

    fn unlift(&mut self, op: u32) {
        let class = self.class_of[op as usize];
        if class != u32::MAX && self.reusable_optional {
            return;
        }
        if class == u32::MAX {
            self.relink(self.ret_entry[op as usize]);
            self.relink(self.call_entry[op as usize]);
        } else {
            self.class_next[class as usize] -= 1;
            if self.class_next[class as usize] == 0 {
                let last = self.used_classes.pop();
                debug_assert_eq!(last, Some(class), "classes are released in reverse order");
            }
            debug_assert_eq!(
                self.classes[class as usize][self.class_next[class as usize] as usize],
                op
            );
        }
    }

    /// How many members of `class` are used, counting one more for `bump`.
    fn used_count(&self, class: u32, bump: Option<u32>) -> u32 {
        self.class_next[class as usize] + u32::from(bump == Some(class))
    }

    /// Whether an explored configuration that used `used` had every option the current one
    /// (plus `bump`) has: it used no more of any class.
    fn covers(&self, used: &[(u32, u32)], bump: Option<u32>) -> bool {
        used.iter()
            .all(|&(class, n)| n <= self.used_count(class, bump))
    }

    /// Records the configuration `key` with the current usage (plus `bump`) in the memo and
    /// returns the bytes that took, or `None` when an explored configuration covers it.
    fn remember(
        &self,
        cache: &mut Memo<M::State>,
        key: (u128, M::State),
        bump: Option<u32>,
    ) -> Option<usize> {
        match cache.entry(key) {
            Entry::Vacant(slot) => {
                let used = self.used(bump);
                let bytes = used.len() * 8;
                slot.insert(Explored {
                    first: used,
                    rest: Vec::new(),
                });
                Some(bytes)
            }
            Entry::Occupied(mut slot) => {
                if slot.get().iter().any(|used| self.covers(used, bump)) {
                    return None;
                }
                let used = self.used(bump);
                let bytes = used.len() * 8 + 16;
                slot.get_mut().add(used);
                Some(bytes)
            }
        }
    }

    /// The current usage (plus `bump`) as `(class, used)` pairs.
    fn used(&self, bump: Option<u32>) -> Used {
        if self.reusable_optional {
            return Used::default();
        }
        let mut used: Vec<(u32, u32)> = self
            .used_classes
            .iter()
            .map(|&c| (c, self.used_count(c, bump)))
            .collect();
        if let Some(class) = bump {
            if self.class_next[class as usize] == 0 {
                used.push((class, 1));
            }
        }
        used.into_boxed_slice()
    }

    fn first_return_pos(&self) -> u64 {
        let mut e = self.next[HEAD as usize];
        while e != NIL && self.entry_is_call[e as usize] {
            e = self.next[e as usize];
        }
        if e == NIL {
            u64::MAX
        } else {
            self.entry_pos[e as usize]
        }
    }

    /// The operation to blame when no candidate works: the first required operation whose
    /// return is pending, or else the first required operation left.
    fn blocked_op(&self) -> Option<usize> {
        let first = self.next[HEAD as usize];
        let mut e = first;
        while e != NIL && self.entry_is_call[e as usize] {
            e = self.next[e as usize];
        }
        let e = if e == NIL { first } else { e };
        (e != NIL).then(|| self.entry_op[e as usize] as usize)
    }

    /// Searches from `init` to the end (or the budget). With `stop_at_depth`, returns as soon
    /// as that many required operations are linearized, with the linearized operations in
    /// order (used to rebuild the longest prefix after a failed search).
    pub fn run(
        &mut self,
        model: &M,
        ops: &[SearchOp<M::Op>],
        init: M::State,
        budget: &Budget<'_>,
        stop_at_depth: Option<usize>,
    ) -> (Outcome<M::State>, Option<Vec<usize>>) {
        // A search that succeeds enters at least one configuration per required operation;
        // sizing the memo for them spares the table its rehashes as it grows (a window search
        // is short, and runs once per cut). Not in `start`: a check holds the runs of all its
        // keys at once.
        let expected = self.required.min(MEMO_PRESIZE_LIMIT) + 1;
        let mut run = Run::new(init, self.next[HEAD as usize], expected);
        run.stop_at_depth = stop_at_depth;
        let outcome = loop {
            if let Some(outcome) = self.resume(model, ops, &mut run, budget, u64::MAX) {
                break outcome;
            }
        };
        let prefix = run.prefix.take();
        self.finish(run, budget);
        (outcome, prefix)
    }

    /// Begins a search from `init`; drive it with [`Search::resume`].
    pub fn start(&self, init: M::State) -> Run<M::State> {
        Run::new(init, self.next[HEAD as usize], 0)
    }

    /// Continues a search for at most `max_steps` steps; `None` when it has not finished.
    /// Partitions are searched in slices like this so that one hard key cannot hide an easy
    /// violation on another.
    pub fn resume(
        &mut self,
        model: &M,
        ops: &[SearchOp<M::Op>],
        run: &mut Run<M::State>,
        budget: &Budget<'_>,
        max_steps: u64,
    ) -> Option<Outcome<M::State>> {
        let entry_bytes = (std::mem::size_of::<((u128, M::State), Explored)>() as u64 + 8) * 2;
        let until = run.steps.saturating_add(max_steps);
        loop {
            if run.depth == self.required {
                return Some(Outcome::Valid);
            }
            if run.stop_at_depth == Some(run.depth) {
                run.prefix = Some(run.stack.iter().map(|f| f.op as usize).collect());
                return Some(Outcome::Valid);
            }
            if run.steps >= until {
                return None;
            }
            run.steps += 1;
            if run.steps % BUDGET_CHECK_EVERY == 0 {
                let fresh = run.local_bytes - run.reported_bytes;
                run.reported_bytes = run.local_bytes;
                if let Some(reason) = budget.exceeded(fresh) {
                    return Some(Outcome::Unknown(reason));
                }
            }
            if std::mem::take(&mut run.fresh) {
                if self.lookahead && self.read_out_of_reach(model, ops, run) {
                    run.cursor = Cursor::Exhausted;
                } else {
                    match self.greedy_read(model, ops, run, entry_bytes) {
                        Greedy::Place(op) => {
                            let state = run.state.clone();
                            self.push(run, op, 0, state, Cursor::Exhausted);
                            continue;
                        }
                        // The configuration with the read placed failed already, so this one fails.
                        Greedy::Explored => run.cursor = Cursor::Exhausted,
                        Greedy::None => {}
                    }
                }
            }
            let found = self.next_candidate(model, ops, run, entry_bytes);
            match found {
                Some((op, branch, next_state, resume)) => {
                    self.push(run, op, branch, next_state, resume);
                }
                None => {
                    if run.depth == run.stuck.depth && run.stuck.blocked.is_none() {
                        run.stuck.blocked = self.blocked_op();
                    }
                    let Some(frame) = run.stack.pop() else {
                        return Some(Outcome::Invalid(run.stuck.clone()));
                    };
                    self.unlift(frame.op);
                    if self.class_of[frame.op as usize] == u32::MAX {
                        run.hash ^= self.zobrist[frame.op as usize];
                        run.depth -= 1;
                    }
                    run.state = frame.prev_state;
                    run.cursor = frame.resume;
                    run.branch_from = frame.branch + 1;
                }
            }
        }
    }

    /// Linearizes `op`, entering the configuration it leads to.
    fn push(
        &mut self,
        run: &mut Run<M::State>,
        op: u32,
        branch: u32,
        next_state: M::State,
        resume: Cursor,
    ) {
        let prev_state = std::mem::replace(&mut run.state, next_state);
        run.stack.push(Frame {
            op,
            prev_state,
            resume,
            branch,
        });
        self.lift(op);
        if self.class_of[op as usize] == u32::MAX {
            run.hash ^= self.zobrist[op as usize];
            run.depth += 1;
            if run.depth > run.stuck.depth {
                // A new furthest point: its states start afresh, in the vector already there
                // (this happens once per operation on the way down).
                run.stuck.depth = run.depth;
                run.stuck.states.clear();
                run.stuck.blocked = None;
            }
        }
        if run.depth == run.stuck.depth
            && run.stuck.states.len() < MAX_STUCK_STATES
            && !run.stuck.states.contains(&run.state)
        {
            run.stuck.states.push(run.state.clone());
        }
        run.cursor = Cursor::Entry(self.next[HEAD as usize]);
        run.branch_from = 0;
        run.fresh = true;
    }

    /// Whether the first read to complete can no longer be satisfied: only reads and monotone
    /// operations can come before it, and they cannot lead to a state where it is legal.
    fn read_out_of_reach(&self, model: &M, ops: &[SearchOp<M::Op>], run: &Run<M::State>) -> bool {
        let mut e = self.next[HEAD as usize];
        for _ in 0..LOOKAHEAD_ENTRIES {
            if e == NIL {
                return false;
            }
            let op = self.entry_op[e as usize] as usize;
            if self.entry_is_call[e as usize] {
                if !self.read_only[op] && !self.monotone[op] {
                    return false;
                }
            } else if self.read_only[op] {
                let before = self.entry_pos[e as usize];
                if self.optional_may_change_before(ops, before) {
                    return false;
                }
                return !model.may_reach(&run.state, &ops[op].op);
            }
            e = self.next[e as usize];
        }
        false
    }

    /// Whether an unused crashed operation that is not monotone was invoked before `pos`.
    fn optional_may_change_before(&self, ops: &[SearchOp<M::Op>], pos: u64) -> bool {
        self.classes.iter().enumerate().any(|(c, members)| {
            let next = if self.reusable_optional {
                members.first()
            } else {
                members.get(self.class_next[c] as usize)
            };
            next.is_some_and(|&m| !self.monotone[m as usize] && ops[m as usize].call < pos)
        })
    }

    /// The first candidate read that is legal in the current state, to place without
    /// branching (see the module's documentation for why that loses nothing).
    fn greedy_read(
        &self,
        model: &M,
        ops: &[SearchOp<M::Op>],
        run: &mut Run<M::State>,
        entry_bytes: u64,
    ) -> Greedy {
        let mut e = self.next[HEAD as usize];
        while e != NIL && self.entry_is_call[e as usize] {
            let op = self.entry_op[e as usize];
            e = self.next[e as usize];
            if !self.read_only[op as usize] {
                continue;
            }
            run.successors.clear();
            model.step(&run.state, &ops[op as usize].op, &mut run.successors);
            if run.successors.is_empty() {
                continue;
            }
            debug_assert!(
                run.successors.iter().all(|s| *s == run.state),
                "a read-only operation changed the state"
            );
            let key = (run.hash ^ self.zobrist[op as usize], run.state.clone());
            let Some(used_bytes) = self.remember(&mut run.cache, key, None) else {
                return Greedy::Explored;
            };
            run.local_bytes +=
                entry_bytes + used_bytes as u64 + model.state_heap_bytes(&run.state) as u64;
            return Greedy::Place(op);
        }
        Greedy::None
    }

    /// Ends a run: puts the list back as it was (so the search can run again from another
    /// state) and returns its memory to the budget.
    pub fn finish(&mut self, mut run: Run<M::State>, budget: &Budget<'_>) {
        if debug_search() {
            eprintln!(
                "search: {} ops, {} required, {} classes, {} steps, {} cached",
                self.ops,
                self.required,
                self.classes.len(),
                run.steps,
                run.cache.len()
            );
        }
        while let Some(frame) = run.stack.pop() {
            self.unlift(frame.op);
        }
        budget.release(run.reported_bytes);
    }

    fn next_candidate(
        &self,
        model: &M,
        ops: &[SearchOp<M::Op>],
        run: &mut Run<M::State>,
        entry_bytes: u64,
    ) -> Option<(u32, u32, M::State, Cursor)> {
        let Run {
            state,
            hash,
            cursor,
            branch_from,
            cache,
            successors,
            local_bytes,
            ..
        } = run;
        let (state, hash, cursor, mut branch_from) = (&*state, *hash, *cursor, *branch_from);
        let mut try_op = |op: u32, from: u32, successors: &mut Vec<M::State>| {
            successors.clear();
            model.step(state, &ops[op as usize].op, successors);
            let class = self.class_of[op as usize];
            let (h, bump) = if class == u32::MAX {
                (hash ^ self.zobrist[op as usize], None)
            } else {
                (hash, Some(class))
            };
            for branch in from as usize..successors.len() {
                let candidate = &successors[branch];
                let Some(used_bytes) = self.remember(cache, (h, candidate.clone()), bump) else {
                    continue;
                };
                *local_bytes +=
                    entry_bytes + used_bytes as u64 + model.state_heap_bytes(candidate) as u64;
                return Some((branch as u32, successors.swap_remove(branch)));
            }
            None
        };
        let (first_return, class_from) = match cursor {
            Cursor::Exhausted => return None,
            Cursor::Entry(start) => {
                let mut e = start;
                while e != NIL && self.entry_is_call[e as usize] {
                    let op = self.entry_op[e as usize];
                    if let Some((branch, next)) = try_op(op, branch_from, successors) {
                        return Some((op, branch, next, Cursor::Entry(e)));
                    }
                    branch_from = 0;
                    e = self.next[e as usize];
                }
                (
                    if e == NIL {
                        u64::MAX
                    } else {
                        self.entry_pos[e as usize]
                    },
                    0,
                )
            }
            Cursor::Class(c) => (self.first_return_pos(), c),
        };
        for c in class_from..self.classes.len() as u32 {
            let members = &self.classes[c as usize];
            let Some(&op) = members.get(self.class_next[c as usize] as usize) else {
                continue;
            };
            if ops[op as usize].call >= first_return {
                continue;
            }
            let from = if matches!(cursor, Cursor::Class(_)) && c == class_from {
                branch_from
            } else {
                0
            };
            if let Some((branch, next)) = try_op(op, from, successors) {
                return Some((op, branch, next, Cursor::Class(c)));
            }
        }
        None
    }
}
