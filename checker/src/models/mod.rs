//! Sequential specifications: each model is a pure `step` from a state and an operation to the
//! states that may follow (none when the operation is illegal there).
//!
//! A model also *interprets* history events: it turns an invocation and its completion into its
//! own operation type, deciding whether the operation must be placed (`ok`), may be placed
//! (`info`, or never completed), or is dropped (`fail`, or an operation that constrains
//! nothing, such as a read that crashed). Parsing into model types first means a history the
//! model cannot read becomes an error message, never a panic in the search.

mod intern;
mod mutex;
mod queue;
mod register;
mod set;
mod string_kv;

pub use intern::Interner;
pub use mutex::Mutex;
pub use queue::{FifoQueue, UnorderedQueue};
pub use register::{MultiRegister, Register};
pub use set::Set;
pub use string_kv::StringKv;

use faultline_core::{Op, OpType};
use serde_json::Value;
use std::fmt::Debug;
use std::hash::Hash;
use std::str::FromStr;

/// The error string a `fail` cas carries when its comparison definitely ran and did not match
/// (Porcupine's etcd logs and faultline's own clients): the operation happened, changed nothing,
/// and tells us the register did not hold the expected value at that moment.
pub const COMPARE_FAILED: &str = "compare-failed";

/// How an operation enters the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interpreted<O> {
    /// It happened: it must be placed between its invocation and its completion.
    Required(O),
    /// Its outcome is unknown: it may take effect at any time after its invocation, or never.
    Optional(O),
    /// It cannot affect the verdict (it failed, or it observes nothing).
    Skip,
}

/// Options that change how events are read, shared by every model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    /// The initial state, as JSON (`null` = nothing written).
    pub init: Value,
    /// Knossos / Jepsen EDN convention: a read that returned `nil` observed nothing, so it
    /// constrains nothing. In faultline's own JSON Lines a `null` read means "never written".
    pub nil_read_is_unknown: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            init: Value::Null,
            nil_read_is_unknown: false,
        }
    }
}

/// A sequential specification of a data type.
///
/// # Correctness
/// `step` must be a function of its arguments: the search memoizes on `(linearized set, state)`,
/// so two calls with equal inputs must push equal successors. `interpret` may intern values
/// (hence `&mut self`), but must map equal events to equal operations once they are settled
/// (see [`Model::settle`]).
pub trait Model {
    type State: Clone + Eq + Hash + Debug;
    type Op: Clone + Eq + Hash + Debug;

    fn init(&self) -> Self::State;

    /// Pushes every state that may follow `op` in `state` onto `out` (none: illegal).
    fn step(&self, state: &Self::State, op: &Self::Op, out: &mut Vec<Self::State>);

    /// Reads one operation from its invocation and completion (`None`: never completed).
    fn interpret(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Interpreted<Self::Op>, String>;

    /// Called once with all of a key's operations, after `interpret` and before anything
    /// steps them. A model may read operations provisionally in `interpret` and settle them
    /// here: string-kv interns its texts here, one key at a time, rather than as the events
    /// of all the keys arrive.
    fn settle<'a>(&mut self, _ops: impl Iterator<Item = &'a mut Self::Op>)
    where
        Self::Op: 'a,
    {
    }

    /// The state as JSON, for explanations.
    fn state_json(&self, state: &Self::State) -> Value;

    /// Every state the model could be in, when that set is small and finite. The failing-window
    /// search uses it to ask "is this window wrong whatever the state before it?".
    fn all_states(&self) -> Option<Vec<Self::State>> {
        None
    }

    /// Heap bytes a state owns beyond its inline size (for the memory limit).
    fn state_heap_bytes(&self, _state: &Self::State) -> usize {
        0
    }

    /// Whether `op` only observes the state: in any state, `step` pushes either nothing or
    /// that same state (a read). The search places such an operation as soon as it may and is
    /// legal, without trying the alternatives (see `linearizability/search.rs`).
    ///
    /// # Correctness
    /// Must be false for any operation that can change the state; false is always safe.
    fn is_read_only(_op: &Self::Op) -> bool {
        false
    }

    /// Whether `op` only moves the state forward in an order that [`Model::may_reach`]
    /// understands (string-kv's `append`: the text only grows).
    fn is_monotone(_op: &Self::Op) -> bool {
        false
    }

    /// Whether some sequence of monotone operations (see [`Model::is_monotone`]) could take
    /// `state` to one where the read-only operation `read` is legal. The search abandons a
    /// configuration when a read that only reads and monotone operations can precede answers
    /// false (see `linearizability/search.rs`).
    ///
    /// # Correctness
    /// Must be true whenever such a sequence exists; true is always safe.
    fn may_reach(&self, _state: &Self::State, _read: &Self::Op) -> bool {
        true
    }
}

/// The models `faultline check --model` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    Register,
    CasRegister,
    MultiRegister,
    Mutex,
    Set,
    FifoQueue,
    UnorderedQueue,
    StringKv,
}

impl ModelKind {
    pub const ALL: [ModelKind; 8] = [
        ModelKind::Register,
        ModelKind::CasRegister,
        ModelKind::MultiRegister,
        ModelKind::Mutex,
        ModelKind::Set,
        ModelKind::FifoQueue,
        ModelKind::UnorderedQueue,
        ModelKind::StringKv,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::MultiRegister => "multi-register",
            ModelKind::Mutex => "mutex",
            ModelKind::Set => "set",
            ModelKind::FifoQueue => "fifo-queue",
            ModelKind::UnorderedQueue => "unordered-queue",
            ModelKind::StringKv => "string-kv",
        }
    }

    /// Guesses the model from the operations a history uses, for `check` without `--model`.
    pub fn infer(ops: &[Op]) -> Option<ModelKind> {
        ModelKind::infer_from_names(
            ops.iter()
                .filter(|op| !op.is_nemesis())
                .map(|op| op.f.as_str()),
        )
    }

    /// As [`ModelKind::infer`], from the names (`f`) of the client operations.
    pub fn infer_from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<ModelKind> {
        // The name that implies a model first in this order of precedence decides.
        let rank = |f: &str| match f {
            "cas" => Some((0, ModelKind::CasRegister)),
            "txn" => Some((1, ModelKind::MultiRegister)),
            "acquire" | "release" => Some((2, ModelKind::Mutex)),
            "get" | "put" | "append" => Some((3, ModelKind::StringKv)),
            "enqueue" | "dequeue" => Some((4, ModelKind::FifoQueue)),
            "add" => Some((5, ModelKind::Set)),
            "read" | "write" => Some((6, ModelKind::Register)),
            _ => None,
        };
        let mut best: Option<(u8, ModelKind)> = None;
        for name in names {
            if let Some(found) = rank(name) {
                if best.is_none_or(|b| found.0 < b.0) {
                    best = Some(found);
                    if found.0 == 0 {
                        break;
                    }
                }
            }
        }
        best.map(|(_, model)| model)
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelKind::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ModelKind::ALL.iter().map(|m| m.as_str()).collect();
                format!("unknown model {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// Wraps an operation by its completion type: the common rule for ops that change state.
pub(crate) fn by_outcome<O>(completion: Option<&Op>, op: O) -> Interpreted<O> {
    match completion.map(|c| c.kind) {
        Some(OpType::Ok) => Interpreted::Required(op),
        Some(OpType::Fail) => Interpreted::Skip,
        Some(OpType::Info) | None => Interpreted::Optional(op),
        Some(OpType::Invoke) => unreachable!("a completion is never an invocation"),
    }
}

/// The value an operation was invoked with, falling back to the completion's (Knossos lets the
/// completion fill in a value the invocation left `nil`).
pub(crate) fn input<'a>(invoke: &'a Op, completion: Option<&'a Op>) -> &'a Value {
    match (&invoke.value, completion) {
        (Value::Null, Some(c)) => &c.value,
        (v, _) => v,
    }
}

pub(crate) fn is_ok(completion: Option<&Op>) -> bool {
    matches!(completion.map(|c| c.kind), Some(OpType::Ok))
}

pub(crate) fn unsupported(model: &str, op: &Op) -> String {
    format!(
        "the {model} model cannot interpret f = {:?} (event {})",
        op.f, op.index
    )
}
