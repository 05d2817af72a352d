//! A brute-force linearizability checker, the oracle the fast checker is compared against.
//!
//! It is written from the semantics in CONTRACTS.md §1 (and the model descriptions), and shares
//! no code with `faultline_checker`'s models, pairing, partitioning or search: it pairs events
//! itself, reads each model's operations itself, and keeps every key in one combined state
//! instead of splitting the history by key (so it also checks that splitting is sound).
//!
//! The search is a plain depth-first enumeration of "which operation is linearized next":
//! an operation may go next when every *required* operation that completed before its
//! invocation has already been placed (for intervals, that pairwise rule is exactly "there are
//! linearization points inside every interval"). A required operation (it happened) must be
//! placed; an optional one (crashed, or never completed) may be placed after its invocation or
//! left out. A step the model rejects prunes that branch; a nondeterministic step (a crashed
//! dequeue from an unordered queue) tries every successor. The only shortcut is a table of
//! configurations already known to be dead ends: the rest of a search depends only on which
//! operations are placed and on the state, so a configuration that failed once fails again.
//! That keeps the enumeration exhaustive while bounding it by 2^n configurations.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;

use faultline_checker::ModelKind;
use faultline_core::{History, Op, OpType, Process};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value;

/// The error a `fail` cas carries when its comparison ran and did not match.
pub const COMPARE_FAILED: &str = "compare-failed";

/// How an event pair enters the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It happened: placed between its invocation and its completion.
    Required,
    /// Unknown: placed anywhere after its invocation, or never.
    Optional,
}

/// A sequential specification of one object (one key).
pub trait Spec {
    type State: Clone + Eq + Hash + Debug;
    type Op: Clone + Debug;

    /// The state every key starts in. Called after every operation has been read.
    fn init(&self) -> Self::State;

    /// Every state that may follow `op` in `state` (none: illegal there).
    fn step(&self, state: &Self::State, op: &Self::Op) -> Vec<Self::State>;

    /// Reads one operation from its invocation and completion: `None` = it constrains nothing
    /// (failed, or a read whose result we did not see).
    fn read(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Option<(Self::Op, Role)>, String>;

    /// For window checks: every state one key could be in before a window, given the
    /// operations on that key (`None`: not enumerable).
    fn window_states(&self, _ops: &[&Self::Op]) -> Option<Vec<Self::State>> {
        None
    }
}

/// One operation, placed in real time by the positions of its events.
#[derive(Debug, Clone)]
pub struct Entry<O> {
    pub op: O,
    /// Dense id of the operation's `key` (one id for "no key").
    pub key: usize,
    /// Position of the invocation event.
    pub call: usize,
    /// Position of the completion event, if any.
    pub completion: Option<usize>,
    pub required: bool,
}

/// A history read into a model's operations.
pub struct Problem<S: Spec> {
    pub spec: S,
    pub entries: Vec<Entry<S::Op>>,
    /// The key of each key id, as in the history.
    pub keys: Vec<Option<Value>>,
}

impl<S: Spec> Problem<S> {
    /// Is the whole history linearizable from the initial state?
    pub fn linearizable(&self) -> bool {
        let start = vec![self.spec.init(); self.keys.len()];
        linearizable(&self.spec, &self.entries, start)
    }
}

/// Pairs invocations with completions by process, without `History::pairs`: returns
/// (invocation position, completion position) in invocation order.
pub fn pair_events(history: &History) -> Result<Vec<(usize, Option<usize>)>, String> {
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut crashed: HashSet<u64> = HashSet::new();
    let mut pairs: Vec<(usize, Option<usize>)> = Vec::new();
    let mut slot_of: HashMap<usize, usize> = HashMap::new();
    for (position, op) in history.ops.iter().enumerate() {
        let Process::Client(p) = op.process else {
            continue;
        };
        if op.kind == OpType::Invoke {
            if open.contains_key(&p) || crashed.contains(&p) {
                return Err(format!("process {p} invokes again at {position}"));
            }
            open.insert(p, position);
            slot_of.insert(position, pairs.len());
            pairs.push((position, None));
        } else {
            let Some(invoke) = open.remove(&p) else {
                return Err(format!("completion at {position} without an invocation"));
            };
            if op.kind == OpType::Info {
                crashed.insert(p);
            }
            pairs[slot_of[&invoke]].1 = Some(position);
        }
    }
    Ok(pairs)
}

/// Reads a history with a model: pairs the events, numbers the keys, interprets each pair.
pub fn interpret<S: Spec>(mut spec: S, history: &History) -> Result<Problem<S>, String> {
    let mut key_ids: HashMap<String, usize> = HashMap::new();
    let mut keys: Vec<Option<Value>> = Vec::new();
    let mut entries = Vec::new();
    for (call, completion) in pair_events(history)? {
        let invoke = &history.ops[call];
        let done = completion.map(|c| &history.ops[c]);
        let Some((op, role)) = spec.read(invoke, done)? else {
            continue;
        };
        let text = match &invoke.key {
            None => "none".to_string(),
            Some(k) => format!("some {k}"),
        };
        let key = *key_ids.entry(text).or_insert_with(|| {
            keys.push(invoke.key.clone());
            keys.len() - 1
        });
        let required = role == Role::Required;
        assert!(
            !required || completion.is_some(),
            "a required operation has a completion"
        );
        entries.push(Entry {
            op,
            key,
            call,
            completion,
            required,
        });
    }
    if keys.is_empty() {
        keys.push(None);
    }
    Ok(Problem {
        spec,
        entries,
        keys,
    })
}

/// The exhaustive search: is there an order of the entries, consistent with real time, that
/// places every required entry and that the model accepts, starting from `start` (one state
/// per key id)?
pub fn linearizable<S: Spec>(spec: &S, entries: &[Entry<S::Op>], start: Vec<S::State>) -> bool {
    let n = entries.len();
    assert!(
        n <= 64,
        "the brute force handles at most 64 operations, got {n}"
    );
    let mut required = 0u64;
    for (j, e) in entries.iter().enumerate() {
        if e.required {
            required |= 1 << j;
        }
    }
    // before[i]: required entries that completed before entry i was invoked.
    let before: Vec<u64> = entries
        .iter()
        .map(|ei| {
            let mut mask = 0u64;
            for (j, ej) in entries.iter().enumerate() {
                if ej.required && ej.completion.expect("required has a completion") < ei.call {
                    mask |= 1 << j;
                }
            }
            mask
        })
        .collect();
    let mut dfs = Dfs {
        spec,
        entries,
        before,
        required,
        dead: FxHashMap::default(),
    };
    dfs.go(0, &start)
}

struct Dfs<'a, S: Spec> {
    spec: &'a S,
    entries: &'a [Entry<S::Op>],
    before: Vec<u64>,
    required: u64,
    /// Configurations (state, placed set) from which no linearization exists.
    dead: FxHashMap<Vec<S::State>, FxHashSet<u64>>,
}

impl<S: Spec> Dfs<'_, S> {
    fn go(&mut self, placed: u64, state: &[S::State]) -> bool {
        if placed & self.required == self.required {
            // Every required operation is placed; the optional ones left are left out.
            return true;
        }
        if self
            .dead
            .get(state)
            .is_some_and(|sets| sets.contains(&placed))
        {
            return false;
        }
        for i in 0..self.entries.len() {
            let bit = 1u64 << i;
            if placed & bit != 0 || self.before[i] & !placed != 0 {
                continue;
            }
            let entry = &self.entries[i];
            for next in self.spec.step(&state[entry.key], &entry.op) {
                let mut after = state.to_vec();
                after[entry.key] = next;
                if self.go(placed | bit, &after) {
                    return true;
                }
            }
        }
        self.dead.entry(state.to_vec()).or_default().insert(placed);
        false
    }
}

/// The brute-force verdict for a history: `Ok(true)` linearizable, `Ok(false)` not, `Err` when
/// the model cannot read the history.
pub fn check(
    model: ModelKind,
    history: &History,
    init: &Value,
    nil_read_is_unknown: bool,
) -> Result<bool, String> {
    Ok(match model {
        ModelKind::Register | ModelKind::CasRegister => {
            let cas = model == ModelKind::CasRegister;
            interpret(RegisterSpec::new(init, cas, nil_read_is_unknown), history)?.linearizable()
        }
        ModelKind::MultiRegister => {
            interpret(MultiRegisterSpec::new(init, nil_read_is_unknown), history)?.linearizable()
        }
        ModelKind::Mutex => interpret(MutexSpec, history)?.linearizable(),
        ModelKind::Set => interpret(SetSpec::default(), history)?.linearizable(),
        ModelKind::FifoQueue => interpret(QueueSpec::new(false), history)?.linearizable(),
        ModelKind::UnorderedQueue => interpret(QueueSpec::new(true), history)?.linearizable(),
        ModelKind::StringKv => interpret(KvSpec, history)?.linearizable(),
    })
}

// ---------------------------------------------------------------------------------------------
// Reading events.

/// The common rule for operations that change state: ok happened, fail did not, info or no
/// completion may have.
fn by_outcome(completion: Option<&Op>) -> Option<Role> {
    match completion.map(|c| c.kind) {
        Some(OpType::Ok) => Some(Role::Required),
        Some(OpType::Fail) => None,
        Some(OpType::Info) | None => Some(Role::Optional),
        Some(OpType::Invoke) => unreachable!("pair_events never pairs two invocations"),
    }
}

fn ok_completion(completion: Option<&Op>) -> Option<&Op> {
    completion.filter(|c| c.kind == OpType::Ok)
}

/// JSON values as small ids, equal iff their canonical text is equal (serde_json sorts object
/// keys, so `{"a":1,"b":2}` and `{"b":2,"a":1}` are one value; `1` and `"1"` are two).
#[derive(Debug, Default, Clone)]
pub struct Values {
    ids: HashMap<String, u32>,
}

impl Values {
    pub fn id(&mut self, value: &Value) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry(value.to_string()).or_insert(next)
    }

    /// The id of a value interned earlier.
    fn known(&self, value: &Value) -> u32 {
        self.ids[&value.to_string()]
    }
}

// ---------------------------------------------------------------------------------------------
// register and cas-register.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOp {
    Read(u32),
    Write(u32),
    Cas(u32, u32),
    /// A cas that ran and found the register != expected.
    CasCompareFailed(u32),
}

pub struct RegisterSpec {
    values: Values,
    init: u32,
    null: u32,
    cas: bool,
    nil_read_is_unknown: bool,
}

impl RegisterSpec {
    pub fn new(init: &Value, cas: bool, nil_read_is_unknown: bool) -> RegisterSpec {
        let mut values = Values::default();
        let null = values.id(&Value::Null);
        let init = values.id(init);
        RegisterSpec {
            values,
            init,
            null,
            cas,
            nil_read_is_unknown,
        }
    }
}

impl Spec for RegisterSpec {
    type State = u32;
    type Op = RegisterOp;

    fn init(&self) -> u32 {
        self.init
    }

    fn step(&self, &state: &u32, op: &RegisterOp) -> Vec<u32> {
        match *op {
            RegisterOp::Read(v) => {
                if v == state {
                    vec![state]
                } else {
                    vec![]
                }
            }
            RegisterOp::Write(v) => vec![v],
            RegisterOp::Cas(expected, new) => {
                if expected == state {
                    vec![new]
                } else {
                    vec![]
                }
            }
            RegisterOp::CasCompareFailed(expected) => {
                if expected != state {
                    vec![state]
                } else {
                    vec![]
                }
            }
        }
    }

    fn read(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Option<(RegisterOp, Role)>, String> {
        Ok(match invoke.f.as_str() {
            "read" => match ok_completion(completion) {
                Some(c) if c.value.is_null() && self.nil_read_is_unknown => None,
                Some(c) => Some((RegisterOp::Read(self.values.id(&c.value)), Role::Required)),
                None => None,
            },
            "write" => {
                let v = self.values.id(&invoke.value);
                by_outcome(completion).map(|role| (RegisterOp::Write(v), role))
            }
            "cas" if self.cas => {
                let Some([expected, new]) = invoke.value.as_array().map(Vec::as_slice) else {
                    return Err(format!("cas value {} is not [expected, new]", invoke.value));
                };
                let (expected, new) = (self.values.id(expected), self.values.id(new));
                let compare_failed = completion.is_some_and(|c| {
                    c.kind == OpType::Fail && c.error == Some(Value::from(COMPARE_FAILED))
                });
                if compare_failed {
                    Some((RegisterOp::CasCompareFailed(expected), Role::Required))
                } else {
                    by_outcome(completion).map(|role| (RegisterOp::Cas(expected, new), role))
                }
            }
            f => return Err(format!("the brute-force register has no {f:?}")),
        })
    }

    fn window_states(&self, ops: &[&RegisterOp]) -> Option<Vec<u32>> {
        let mut states: BTreeSet<u32> = [self.null, self.init].into();
        for op in ops {
            match **op {
                RegisterOp::Read(v) | RegisterOp::Write(v) | RegisterOp::CasCompareFailed(v) => {
                    states.insert(v);
                }
                RegisterOp::Cas(e, n) => {
                    states.insert(e);
                    states.insert(n);
                }
            }
        }
        Some(states.into_iter().collect())
    }
}

// ---------------------------------------------------------------------------------------------
// multi-register.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Micro {
    /// A read of (register, value); `None`: the result is unknown.
    Read(usize, Option<u32>),
    Write(usize, u32),
}

pub struct MultiRegisterSpec {
    values: Values,
    registers: HashMap<String, usize>,
    register_names: Vec<String>,
    init: Value,
    nil_read_is_unknown: bool,
}

impl MultiRegisterSpec {
    pub fn new(init: &Value, nil_read_is_unknown: bool) -> MultiRegisterSpec {
        // Intern the initial values now, so `init` only looks them up.
        let mut values = Values::default();
        values.id(&Value::Null);
        match init {
            Value::Object(map) => map.values().for_each(|v| {
                values.id(v);
            }),
            other => {
                values.id(other);
            }
        }
        MultiRegisterSpec {
            values,
            registers: HashMap::new(),
            register_names: Vec::new(),
            init: init.clone(),
            nil_read_is_unknown,
        }
    }

    fn register(&mut self, name: &Value) -> usize {
        let text = match name {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let next = self.registers.len();
        *self.registers.entry(text.clone()).or_insert_with(|| {
            self.register_names.push(text);
            next
        })
    }
}

impl Spec for MultiRegisterSpec {
    type State = Vec<u32>;
    type Op = Vec<Micro>;

    fn init(&self) -> Vec<u32> {
        // Registers missing from an initial object start null; a non-object initial value is
        // every register's.
        self.register_names
            .iter()
            .map(|name| match &self.init {
                Value::Object(map) => self.values.known(map.get(name).unwrap_or(&Value::Null)),
                other => self.values.known(other),
            })
            .collect()
    }

    fn step(&self, state: &Vec<u32>, op: &Vec<Micro>) -> Vec<Vec<u32>> {
        let mut next = state.clone();
        for micro in op {
            match *micro {
                Micro::Read(r, Some(v)) if next[r] != v => return vec![],
                Micro::Read(..) => {}
                Micro::Write(r, v) => next[r] = v,
            }
        }
        vec![next]
    }

    fn read(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Option<(Vec<Micro>, Role)>, String> {
        if invoke.f != "txn" {
            return Err(format!(
                "the brute-force multi-register has no {:?}",
                invoke.f
            ));
        }
        let Some(role) = by_outcome(completion) else {
            return Ok(None);
        };
        // Only an ok completion tells what the reads saw.
        let (list, reads_known) = match ok_completion(completion) {
            Some(c) => (&c.value, true),
            None => (&invoke.value, false),
        };
        let Some(list) = list.as_array() else {
            return Err(format!("txn value {list} is not a list"));
        };
        let mut micros = Vec::new();
        for m in list {
            let Some([f, register, v]) = m.as_array().map(Vec::as_slice) else {
                return Err(format!("micro-op {m} is not [f, key, value]"));
            };
            let r = self.register(register);
            match f.as_str() {
                Some("r" | "read") => {
                    let known = reads_known && !(v.is_null() && self.nil_read_is_unknown);
                    micros.push(Micro::Read(r, known.then(|| self.values.id(v))));
                }
                Some("w" | "write") => micros.push(Micro::Write(r, self.values.id(v))),
                _ => return Err(format!("micro-op {m}: f must be read or write")),
            }
        }
        Ok(Some((micros, role)))
    }
}

// ---------------------------------------------------------------------------------------------
// mutex.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutexOp {
    Acquire,
    Release,
}

pub struct MutexSpec;

impl Spec for MutexSpec {
    /// Held?
    type State = bool;
    type Op = MutexOp;

    fn init(&self) -> bool {
        false
    }

    fn step(&self, &held: &bool, op: &MutexOp) -> Vec<bool> {
        match (op, held) {
            (MutexOp::Acquire, false) => vec![true],
            (MutexOp::Release, true) => vec![false],
            _ => vec![],
        }
    }

    fn read(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Option<(MutexOp, Role)>, String> {
        let op = match invoke.f.as_str() {
            "acquire" => MutexOp::Acquire,
            "release" => MutexOp::Release,
            f => return Err(format!("the brute-force mutex has no {f:?}")),
        };
        Ok(by_outcome(completion).map(|role| (op, role)))
    }

    fn window_states(&self, _ops: &[&MutexOp]) -> Option<Vec<bool>> {
        Some(vec![false, true])
    }
}

// ---------------------------------------------------------------------------------------------
// set.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOp {
    Add(u32),
    Read(BTreeSet<u32>),
}

#[derive(Default)]
pub struct SetSpec {
    values: Values,
}

impl Spec for SetSpec {
    type State = BTreeSet<u32>;
    type Op = SetOp;

    fn init(&self) -> BTreeSet<u32> {
        BTreeSet::new()
    }

    fn step(&self, state: &BTreeSet<u32>, op: &SetOp) -> Vec<BTreeSet<u32>> {
        match op {
            SetOp::Add(v) => {
                let mut next = state.clone();
                next.insert(*v);
                vec![next]
            }
            SetOp::Read(seen) if seen == state => vec![state.clone()],
            SetOp::Read(_) => vec![],
        }
    }

    fn read(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Option<(SetOp, Role)>, String> {
        Ok(match invoke.f.as_str() {
            "add" => {
                let v = self.values.id(&invoke.value);
                by_outcome(completion).map(|role| (SetOp::Add(v), role))
            }
            "read" => match ok_completion(completion) {
                Some(c) => {
                    let Some(items) = c.value.as_array() else {
                        return Err(format!("set read value {} is not a list", c.value));
                    };
                    let seen = items.iter().map(|v| self.values.id(v)).collect();
                    Some((SetOp::Read(seen), Role::Required))
                }
                None => None,
            },
            f => return Err(format!("the brute-force set has no {f:?}")),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// fifo-queue and unordered-queue.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueOp {
    Enqueue(u32),
    /// Dequeued this element; `None`: found the queue empty.
    Dequeue(Option<u32>),
    /// A dequeue whose result we never saw.
    DequeueCrashed,
}

pub struct QueueSpec {
    values: Values,
    unordered: bool,
}

impl QueueSpec {
    pub fn new(unordered: bool) -> QueueSpec {
        QueueSpec {
            values: Values::default(),
            unordered,
        }
    }
}

impl Spec for QueueSpec {
    /// FIFO: front first. Unordered: a sorted multiset.
    type State = Vec<u32>;
    type Op = QueueOp;

    fn init(&self) -> Vec<u32> {
        Vec::new()
    }

    fn step(&self, state: &Vec<u32>, op: &QueueOp) -> Vec<Vec<u32>> {
        let without = |at: usize| {
            let mut next = state.clone();
            next.remove(at);
            next
        };
        match *op {
            QueueOp::Enqueue(v) => {
                let mut next = state.clone();
                next.push(v);
                if self.unordered {
                    next.sort_unstable();
                }
                vec![next]
            }
            QueueOp::Dequeue(None) => {
                if state.is_empty() {
                    vec![state.clone()]
                } else {
                    vec![]
                }
            }
            QueueOp::Dequeue(Some(v)) if !self.unordered => {
                if state.first() == Some(&v) {
                    vec![without(0)]
                } else {
                    vec![]
                }
            }
            QueueOp::Dequeue(Some(v)) => match state.iter().position(|&x| x == v) {
                Some(at) => vec![without(at)],
                None => vec![],
            },
            QueueOp::DequeueCrashed if state.is_empty() => vec![state.clone()],
            QueueOp::DequeueCrashed if !self.unordered => vec![without(0)],
            QueueOp::DequeueCrashed => {
                let mut successors: Vec<Vec<u32>> = (0..state.len()).map(without).collect();
                successors.dedup();
                successors
            }
        }
    }

    fn read(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Option<(QueueOp, Role)>, String> {
        Ok(match invoke.f.as_str() {
            "enqueue" => {
                let v = self.values.id(&invoke.value);
                by_outcome(completion).map(|role| (QueueOp::Enqueue(v), role))
            }
            "dequeue" => match ok_completion(completion) {
                Some(c) if c.value.is_null() => Some((QueueOp::Dequeue(None), Role::Required)),
                Some(c) => Some((
                    QueueOp::Dequeue(Some(self.values.id(&c.value))),
                    Role::Required,
                )),
                None => by_outcome(completion).map(|role| (QueueOp::DequeueCrashed, role)),
            },
            f => return Err(format!("the brute-force queue has no {f:?}")),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// string-kv (Porcupine's kv): one string per key, starting "".

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    Get(String),
    Put(String),
    Append(String),
}

pub struct KvSpec;

fn text(value: &Value) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("string-kv value {value} is not a string"))
}

impl Spec for KvSpec {
    type State = String;
    type Op = KvOp;

    fn init(&self) -> String {
        String::new()
    }

    fn step(&self, state: &String, op: &KvOp) -> Vec<String> {
        match op {
            KvOp::Get(v) if v == state => vec![state.clone()],
            KvOp::Get(_) => vec![],
            KvOp::Put(v) => vec![v.clone()],
            KvOp::Append(v) => vec![format!("{state}{v}")],
        }
    }

    fn read(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Option<(KvOp, Role)>, String> {
        Ok(match invoke.f.as_str() {
            "get" => match ok_completion(completion) {
                Some(c) => Some((KvOp::Get(text(&c.value)?), Role::Required)),
                None => None,
            },
            "put" | "append" => {
                let Some(role) = by_outcome(completion) else {
                    return Ok(None);
                };
                let v = text(&invoke.value)?;
                Some((
                    if invoke.f == "put" {
                        KvOp::Put(v)
                    } else {
                        KvOp::Append(v)
                    },
                    role,
                ))
            }
            f => return Err(format!("the brute-force string-kv has no {f:?}")),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The failing window (checker/src/linearizability/window.rs), checked by brute force.

/// A window as reported: invocation position -> whether the operation is optional in it.
pub type Window = BTreeMap<usize, bool>;

/// What the brute force makes of a reported failing window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowVerdict {
    /// The window is what the documented semantics give for cut t, and it is linearizable
    /// from no state the key can be in.
    Fails { cut: usize },
    /// The window matches cut t, but it is linearizable from `state`.
    Linearizable { cut: usize, state: String },
    /// No cut gives exactly these operations with these optional flags.
    NoCutMatches,
}

/// Checks a window reported for the entry `failing` (F) on key id `key`, per the documented
/// semantics: cut at F's completion and at an earlier time t (the invocation of a required
/// operation invoked at or before F); the window holds the key's operations invoked before F
/// completes and not completed (ok) before t; of those, the ones invoked at or after t that
/// complete by F's completion must be placed, the rest may be; the state at t is anything the
/// key could hold.
pub fn check_window<S: Spec>(
    problem: &Problem<S>,
    key: usize,
    failing: usize,
    reported: &Window,
) -> WindowVerdict {
    let entries = &problem.entries;
    let f = &entries[failing];
    let end = f
        .completion
        .expect("a failing operation that blocks has a completion");
    let on_key: Vec<&Entry<S::Op>> = entries.iter().filter(|e| e.key == key).collect();
    let ops: Vec<&S::Op> = on_key.iter().map(|e| &e.op).collect();
    let states = problem
        .spec
        .window_states(&ops)
        .expect("the model's states are enumerable");
    let mut cuts: Vec<usize> = on_key
        .iter()
        .filter(|e| e.required && e.call <= f.call)
        .map(|e| e.call)
        .collect();
    cuts.sort_unstable_by(|a, b| b.cmp(a));
    cuts.dedup();
    for cut in cuts {
        let window: Vec<Entry<S::Op>> = on_key
            .iter()
            .filter(|e| e.call <= end && !(e.required && e.completion.unwrap() < cut))
            .map(|e| Entry {
                required: e.required && e.call >= cut && e.completion.unwrap() <= end,
                key: 0,
                ..(*e).clone()
            })
            .collect();
        let flags: Window = window.iter().map(|e| (e.call, !e.required)).collect();
        if flags != *reported {
            continue;
        }
        return match states
            .iter()
            .find(|s| linearizable(&problem.spec, &window, vec![(*s).clone()]))
        {
            None => WindowVerdict::Fails { cut },
            Some(state) => WindowVerdict::Linearizable {
                cut,
                state: format!("{state:?}"),
            },
        };
    }
    WindowVerdict::NoCutMatches
}

/// The fallback window: every operation on the key invoked before F completes, from the
/// initial state, with the ones completing after F (or crashed) optional. Returns the window
/// and whether it is non-linearizable.
pub fn check_prefix<S: Spec>(problem: &Problem<S>, key: usize, failing: usize) -> (Window, bool) {
    let end = problem.entries[failing]
        .completion
        .expect("a failing operation has a completion");
    let prefix: Vec<Entry<S::Op>> = problem
        .entries
        .iter()
        .filter(|e| e.key == key && e.call <= end)
        .map(|e| Entry {
            required: e.required && e.completion.unwrap() <= end,
            key: 0,
            ..e.clone()
        })
        .collect();
    let flags = prefix.iter().map(|e| (e.call, !e.required)).collect();
    (
        flags,
        !linearizable(&problem.spec, &prefix, vec![problem.spec.init()]),
    )
}
