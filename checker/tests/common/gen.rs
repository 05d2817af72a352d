//! Random histories, one seed each: 2-4 processes run operations against a true sequential
//! object, each taking effect at a random point between its invocation and its completion, so
//! the raw history is linearizable. Then, sometimes, the history is damaged (a result changed,
//! an outcome flipped, two events swapped) so that a good share of histories are not.
//!
//! Along the way operations crash (`info`, with or without their effect), fail (`fail`, without
//! their effect), and some are still open when the history ends. Values come from a tiny domain
//! (0-2, or two short strings) so that reads collide with many writes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use faultline_checker::ModelKind;
use faultline_core::{History, Op, OpType};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// A generated history, with the initial state to check it from.
pub struct Generated {
    pub history: History,
    pub init: Value,
    /// Whether a damaging step ran (the history may still be linearizable).
    pub damaged: bool,
}

/// An operation as a process issues it.
#[derive(Debug, Clone)]
struct Call {
    f: &'static str,
    value: Value,
    key: Option<Value>,
}

/// What the true object did at the operation's linearization point.
#[derive(Debug, Clone)]
enum Effect {
    /// It happened and returned this value.
    Ok(Value),
    /// It was refused and changed nothing (completes `fail` with this error).
    Refused(Option<Value>),
}

/// A true sequential object that processes run operations against.
trait Object {
    /// The next operation process slot `slot` issues.
    fn next_call(&mut self, rng: &mut SmallRng, slot: usize) -> Call;
    /// Performs `call` at its linearization point.
    fn apply(&mut self, call: &Call, slot: usize) -> Effect;
    /// Changes the result of an ok completion to a different, plausible one; false when the
    /// operation returns nothing to change.
    fn damage_result(&self, rng: &mut SmallRng, completion: &mut Op) -> bool;
}

fn small(rng: &mut SmallRng) -> Value {
    json!(rng.gen_range(0..=2))
}

/// A value from {null, 0, 1, 2} other than `old`.
fn other_small(rng: &mut SmallRng, old: &Value) -> Value {
    let choices: Vec<Value> = [json!(null), json!(0), json!(1), json!(2)]
        .into_iter()
        .filter(|v| v != old)
        .collect();
    choices.choose(rng).expect("three choices are left").clone()
}

// ---------------------------------------------------------------------------------------------
// register / cas-register.

struct RegisterObject {
    /// Share of reads, in percent.
    read_percent: u32,
    cas: bool,
    keyed: bool,
    init: Value,
    values: BTreeMap<String, Value>,
}

impl RegisterObject {
    fn key_text(key: &Option<Value>) -> String {
        key.as_ref().map_or_else(String::new, Value::to_string)
    }
}

impl Object for RegisterObject {
    fn next_call(&mut self, rng: &mut SmallRng, _slot: usize) -> Call {
        let key = self.keyed.then(|| json!(["x", "y"][rng.gen_range(0..2)]));
        let roll = rng.gen_range(0..100);
        let write_end = self.read_percent + (100 - self.read_percent) * 35 / 60;
        if roll < self.read_percent {
            Call {
                f: "read",
                value: Value::Null,
                key,
            }
        } else if roll < write_end || !self.cas {
            Call {
                f: "write",
                value: small(rng),
                key,
            }
        } else {
            let expected = if rng.gen_bool(0.15) {
                Value::Null
            } else {
                small(rng)
            };
            Call {
                f: "cas",
                value: json!([expected, small(rng)]),
                key,
            }
        }
    }

    fn apply(&mut self, call: &Call, _slot: usize) -> Effect {
        let slot = self
            .values
            .entry(Self::key_text(&call.key))
            .or_insert_with(|| self.init.clone());
        match call.f {
            "read" => Effect::Ok(slot.clone()),
            "write" => {
                *slot = call.value.clone();
                Effect::Ok(call.value.clone())
            }
            _ => {
                let (expected, new) = (&call.value[0], &call.value[1]);
                if slot == expected {
                    *slot = new.clone();
                    Effect::Ok(call.value.clone())
                } else {
                    Effect::Refused(Some(json!("compare-failed")))
                }
            }
        }
    }

    fn damage_result(&self, rng: &mut SmallRng, completion: &mut Op) -> bool {
        if completion.f != "read" {
            return false;
        }
        completion.value = other_small(rng, &completion.value);
        true
    }
}

// ---------------------------------------------------------------------------------------------
// multi-register: txns of 1-3 micro-ops over registers x and y.

struct MultiRegisterObject {
    values: BTreeMap<String, Value>,
}

impl Object for MultiRegisterObject {
    fn next_call(&mut self, rng: &mut SmallRng, _slot: usize) -> Call {
        let micros: Vec<Value> = (0..rng.gen_range(1..=3))
            .map(|_| {
                let register = ["x", "y"][rng.gen_range(0..2)];
                // Both spellings of each micro-op.
                let short = rng.gen_bool(0.5);
                if rng.gen_bool(0.5) {
                    json!([if short { "r" } else { "read" }, register, null])
                } else {
                    json!([if short { "w" } else { "write" }, register, small(rng)])
                }
            })
            .collect();
        Call {
            f: "txn",
            value: Value::Array(micros),
            key: None,
        }
    }

    fn apply(&mut self, call: &Call, _slot: usize) -> Effect {
        let mut done = call.value.clone();
        for micro in done.as_array_mut().expect("a txn is a list") {
            let register = micro[1]
                .as_str()
                .expect("register names are strings")
                .to_string();
            let slot = self.values.entry(register).or_insert(Value::Null);
            if micro[0].as_str().is_some_and(|f| f.starts_with('r')) {
                micro[2] = slot.clone();
            } else {
                *slot = micro[2].clone();
            }
        }
        Effect::Ok(done)
    }

    fn damage_result(&self, rng: &mut SmallRng, completion: &mut Op) -> bool {
        let Some(micros) = completion.value.as_array_mut() else {
            return false;
        };
        let reads: Vec<usize> = (0..micros.len())
            .filter(|&i| micros[i][0].as_str().is_some_and(|f| f.starts_with('r')))
            .collect();
        let Some(&i) = reads.choose(rng) else {
            return false;
        };
        micros[i][2] = other_small(rng, &micros[i][2]);
        true
    }
}

// ---------------------------------------------------------------------------------------------
// mutex.

#[derive(Default)]
struct MutexObject {
    holder: Option<usize>,
}

impl Object for MutexObject {
    fn next_call(&mut self, rng: &mut SmallRng, slot: usize) -> Call {
        // Mostly what a lock client does (release what it holds, else acquire), sometimes not.
        let holds = self.holder == Some(slot);
        let release = holds != rng.gen_bool(0.15);
        Call {
            f: if release { "release" } else { "acquire" },
            value: Value::Null,
            key: None,
        }
    }

    fn apply(&mut self, call: &Call, slot: usize) -> Effect {
        match (call.f, self.holder) {
            ("acquire", None) => self.holder = Some(slot),
            ("release", Some(_)) => self.holder = None,
            _ => return Effect::Refused(None),
        }
        Effect::Ok(Value::Null)
    }

    fn damage_result(&self, _rng: &mut SmallRng, _completion: &mut Op) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------------------
// set.

#[derive(Default)]
struct SetObject {
    elements: BTreeSet<i64>,
}

impl Object for SetObject {
    fn next_call(&mut self, rng: &mut SmallRng, _slot: usize) -> Call {
        if rng.gen_bool(0.55) {
            Call {
                f: "add",
                value: small(rng),
                key: None,
            }
        } else {
            Call {
                f: "read",
                value: Value::Null,
                key: None,
            }
        }
    }

    fn apply(&mut self, call: &Call, _slot: usize) -> Effect {
        if call.f == "add" {
            self.elements
                .insert(call.value.as_i64().expect("elements are integers"));
            Effect::Ok(call.value.clone())
        } else {
            Effect::Ok(json!(self.elements.iter().collect::<Vec<_>>()))
        }
    }

    fn damage_result(&self, rng: &mut SmallRng, completion: &mut Op) -> bool {
        if completion.f != "read" {
            return false;
        }
        let mut seen: BTreeSet<i64> = completion
            .value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect();
        let flip = rng.gen_range(0..=2);
        if !seen.remove(&flip) {
            seen.insert(flip);
        }
        completion.value = json!(seen.into_iter().collect::<Vec<_>>());
        true
    }
}

// ---------------------------------------------------------------------------------------------
// fifo-queue and unordered-queue.

struct QueueObject {
    unordered: bool,
    elements: VecDeque<Value>,
    /// Which element an unordered dequeue takes (drawn when it is issued, so `apply` is pure).
    picks: Vec<usize>,
}

impl Object for QueueObject {
    fn next_call(&mut self, rng: &mut SmallRng, slot: usize) -> Call {
        self.picks[slot] = rng.gen_range(0..16);
        if rng.gen_bool(0.55) {
            Call {
                f: "enqueue",
                value: small(rng),
                key: None,
            }
        } else {
            Call {
                f: "dequeue",
                value: Value::Null,
                key: None,
            }
        }
    }

    fn apply(&mut self, call: &Call, slot: usize) -> Effect {
        if call.f == "enqueue" {
            self.elements.push_back(call.value.clone());
            return Effect::Ok(call.value.clone());
        }
        if self.elements.is_empty() {
            return Effect::Ok(Value::Null);
        }
        let at = if self.unordered {
            self.picks[slot] % self.elements.len()
        } else {
            0
        };
        Effect::Ok(self.elements.remove(at).expect("in range"))
    }

    fn damage_result(&self, rng: &mut SmallRng, completion: &mut Op) -> bool {
        if completion.f != "dequeue" {
            return false;
        }
        completion.value = other_small(rng, &completion.value);
        true
    }
}

// ---------------------------------------------------------------------------------------------
// string-kv: keys a and b, values built from "x" and "y".

struct KvObject {
    /// Share of gets, in tenths.
    get_tenths: u32,
    texts: BTreeMap<String, String>,
}

impl Object for KvObject {
    fn next_call(&mut self, rng: &mut SmallRng, _slot: usize) -> Call {
        let key = Some(json!(["a", "b"][rng.gen_range(0..2)]));
        let text = json!(["x", "y"][rng.gen_range(0..2)]);
        let roll = rng.gen_range(0..10);
        if roll < self.get_tenths {
            return Call {
                f: "get",
                value: Value::Null,
                key,
            };
        }
        // The rest: puts and appends equally likely.
        Call {
            f: if rng.gen_bool(0.5) { "put" } else { "append" },
            value: text,
            key,
        }
    }

    fn apply(&mut self, call: &Call, _slot: usize) -> Effect {
        let key = call
            .key
            .as_ref()
            .and_then(Value::as_str)
            .expect("kv keys are strings");
        let slot = self.texts.entry(key.to_string()).or_default();
        let arg = call.value.as_str().unwrap_or("");
        match call.f {
            "get" => return Effect::Ok(json!(slot.clone())),
            "put" => *slot = arg.to_string(),
            _ => slot.push_str(arg),
        }
        Effect::Ok(call.value.clone())
    }

    fn damage_result(&self, rng: &mut SmallRng, completion: &mut Op) -> bool {
        if completion.f != "get" {
            return false;
        }
        let old = completion.value.as_str().unwrap_or("").to_string();
        let choices: Vec<String> = ["", "x", "y", "xy", "yx", "xx"]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("{old}x"), old.chars().skip(1).collect()])
            .filter(|s| *s != old)
            .collect();
        completion.value = json!(choices.choose(rng).expect("choices are left"));
        true
    }
}

// ---------------------------------------------------------------------------------------------
// The simulation.

/// How likely a history is to be damaged, per model (tuned so that 30-70% end up invalid).
fn damage_probability(model: ModelKind) -> f64 {
    match model {
        ModelKind::Register | ModelKind::CasRegister => 0.85,
        ModelKind::MultiRegister => 0.85,
        ModelKind::Mutex => 0.95,
        ModelKind::Set => 0.85,
        ModelKind::FifoQueue | ModelKind::UnorderedQueue => 0.85,
        ModelKind::StringKv => 0.85,
    }
}

struct Pending {
    call: Call,
    effect: Option<Effect>,
}

/// What share of the operations are reads, and how often operations crash.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Reads (gets) among the operations of register and string-kv histories, in percent.
    pub read_percent: u32,
    /// Of the operations that complete after taking effect, the share that crash (`info`).
    pub crash_after_effect: f64,
}

/// The shape most tests use.
pub const MIXED: Shape = Shape {
    read_percent: 40,
    crash_after_effect: 0.12,
};

/// Mostly reads, with many crashed writes: where the search places reads greedily and must
/// still find the crashed writes that explain them.
pub const READ_HEAVY: Shape = Shape {
    read_percent: 75,
    crash_after_effect: 0.3,
};

/// Generates one history for `model` from `seed`, of the given shape.
pub fn generate_shaped(model: ModelKind, seed: u64, shape: Shape) -> Generated {
    let mut rng = SmallRng::seed_from_u64(seed);
    let slots = rng.gen_range(2..=4);
    let mut init = Value::Null;
    let mut object: Box<dyn Object> = match model {
        ModelKind::Register | ModelKind::CasRegister => {
            if rng.gen_bool(0.25) {
                init = json!(0);
            }
            Box::new(RegisterObject {
                read_percent: shape.read_percent,
                cas: model == ModelKind::CasRegister,
                keyed: rng.gen_bool(0.3),
                init: init.clone(),
                values: BTreeMap::new(),
            })
        }
        ModelKind::MultiRegister => {
            let mut values = BTreeMap::new();
            if rng.gen_bool(0.3) {
                init = json!({"x": 0, "y": 0});
                values.insert("x".to_string(), json!(0));
                values.insert("y".to_string(), json!(0));
            }
            Box::new(MultiRegisterObject { values })
        }
        ModelKind::Mutex => Box::new(MutexObject::default()),
        ModelKind::Set => Box::new(SetObject::default()),
        ModelKind::FifoQueue | ModelKind::UnorderedQueue => Box::new(QueueObject {
            unordered: model == ModelKind::UnorderedQueue,
            elements: VecDeque::new(),
            picks: vec![0; slots],
        }),
        ModelKind::StringKv => Box::new(KvObject {
            get_tenths: shape.read_percent / 10,
            texts: BTreeMap::new(),
        }),
    };
    let mut events = simulate(&mut rng, object.as_mut(), slots, shape.crash_after_effect);
    let damaged = rng.gen_bool(damage_probability(model));
    if damaged {
        let times = if rng.gen_bool(0.3) { 2 } else { 1 };
        for _ in 0..times {
            damage(&mut rng, object.as_ref(), &mut events);
        }
    }
    for (i, op) in events.iter_mut().enumerate() {
        op.index = i as u64;
    }
    Generated {
        history: History::new(events),
        init,
        damaged,
    }
}

fn simulate(
    rng: &mut SmallRng,
    object: &mut dyn Object,
    slots: usize,
    crash_after_effect: f64,
) -> Vec<Op> {
    let budget = rng.gen_range(3..=12);
    // Histories that end with operations still open.
    let cut_short = rng.gen_bool(0.3);
    let mut process: Vec<u64> = (0..slots as u64).collect();
    let mut pending: Vec<Option<Pending>> = (0..slots).map(|_| None).collect();
    let mut invoked = 0;
    let mut events = Vec::new();
    loop {
        let idle: Vec<usize> = (0..slots).filter(|&s| pending[s].is_none()).collect();
        let busy: Vec<usize> = (0..slots).filter(|&s| pending[s].is_some()).collect();
        let can_invoke = invoked < budget && !idle.is_empty();
        if !can_invoke && busy.is_empty() {
            break;
        }
        if invoked == budget && cut_short && rng.gen_bool(0.4) {
            break;
        }
        if can_invoke && (busy.is_empty() || rng.gen_bool(0.4)) {
            let slot = *idle.choose(rng).expect("an idle slot");
            let call = object.next_call(rng, slot);
            let mut op = Op::invoke(process[slot], call.f, call.value.clone());
            op.key = call.key.clone();
            events.push(op);
            pending[slot] = Some(Pending { call, effect: None });
            invoked += 1;
            continue;
        }
        let slot = *busy.choose(rng).expect("a busy slot");
        let p = pending[slot].as_mut().expect("busy");
        if p.effect.is_none() {
            if rng.gen_bool(0.85) {
                // The linearization point: before the completion, after the invocation.
                p.effect = Some(object.apply(&p.call, slot));
                continue;
            }
            // Completes without having taken effect: failed, or crashed.
            let crashed = rng.gen_bool(0.4);
            let p = pending[slot].take().expect("busy");
            let kind = if crashed { OpType::Info } else { OpType::Fail };
            let mut op = Op::complete(process[slot], kind, p.call.f, p.call.value);
            op.key = p.call.key;
            op.error = Some(json!(if crashed { "timeout" } else { "unavailable" }));
            events.push(op);
            if crashed {
                process[slot] += slots as u64;
            }
            continue;
        }
        let p = pending[slot].take().expect("busy");
        let crashed = rng.gen_bool(crash_after_effect);
        let mut op = match (p.effect.expect("took effect"), crashed) {
            // Took effect, but the client never learned the outcome.
            (_, true) => Op::complete(process[slot], OpType::Info, p.call.f, p.call.value)
                .with_error(json!("timeout")),
            (Effect::Ok(result), false) => {
                Op::complete(process[slot], OpType::Ok, p.call.f, result)
            }
            (Effect::Refused(error), false) => {
                let mut op = Op::complete(process[slot], OpType::Fail, p.call.f, p.call.value);
                op.error = error;
                op
            }
        };
        op.key = p.call.key;
        events.push(op);
        if crashed {
            process[slot] += slots as u64;
        }
    }
    events
}

/// One damaging step: change a result, flip an outcome, or swap two adjacent events.
fn damage(rng: &mut SmallRng, object: &dyn Object, events: &mut [Op]) {
    let completions: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].kind.is_completion())
        .collect();
    let mut kind = rng.gen_range(0..10);
    if kind <= 4 {
        // A different result for an ok operation that returns one.
        let mut oks: Vec<usize> = completions
            .iter()
            .copied()
            .filter(|&i| events[i].kind == OpType::Ok)
            .collect();
        oks.shuffle(rng);
        if oks
            .into_iter()
            .any(|i| object.damage_result(rng, &mut events[i]))
        {
            return;
        }
        // Nothing returns a result (a mutex): flip an outcome instead.
        kind = 5;
    }
    match kind {
        0..=7 => {
            // ok <-> fail: claims an operation that happened did not, or the reverse.
            let flippable: Vec<usize> = completions
                .iter()
                .copied()
                .filter(|&i| matches!(events[i].kind, OpType::Ok | OpType::Fail))
                .collect();
            let Some(&i) = flippable.choose(rng) else {
                return;
            };
            if events[i].kind == OpType::Ok {
                events[i].kind = OpType::Fail;
            } else {
                events[i].kind = OpType::Ok;
                events[i].error = None;
                // A result for an operation that returns one.
                object.damage_result(rng, &mut events[i]);
            }
        }
        _ => {
            // Swap two adjacent events of different processes (each process's own events
            // keep their order, so the history stays well formed).
            let swappable: Vec<usize> = (0..events.len().saturating_sub(1))
                .filter(|&i| events[i].process != events[i + 1].process)
                .collect();
            if let Some(&i) = swappable.choose(rng) {
                events.swap(i, i + 1);
            }
        }
    }
}
