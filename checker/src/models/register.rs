//! Registers: a single register (read / write, optionally cas) and Knossos's multi-register.

use faultline_core::{Op, OpType};
use serde_json::Value;

use super::{
    by_outcome, input, is_ok, unsupported, Interner, Interpreted, Model, ModelOptions,
    COMPARE_FAILED,
};

/// A read/write register, with compare-and-set when `cas` is on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    Read(u32),
    Write(u32),
    Cas(u32, u32),
    /// A cas whose comparison definitely ran and failed: the value was not the expected one.
    CasFailed(u32),
}

#[derive(Debug, Clone)]
pub struct Register {
    values: Interner,
    init: u32,
    cas: bool,
    nil_read_is_unknown: bool,
}

impl Register {
    pub fn new(options: &ModelOptions, cas: bool) -> Register {
        let mut values = Interner::default();
        let init = values.intern(&options.init);
        Register {
            values,
            init,
            cas,
            nil_read_is_unknown: options.nil_read_is_unknown,
        }
    }

    fn name(&self) -> &'static str {
        if self.cas {
            "cas-register"
        } else {
            "register"
        }
    }
}

fn cas_pair<'a>(value: &'a Value, op: &Op) -> Result<(&'a Value, &'a Value), String> {
    match value.as_array().map(Vec::as_slice) {
        Some([expected, new]) => Ok((expected, new)),
        _ => Err(format!(
            "a cas needs the value [expected, new], but event {} has {value}",
            op.index
        )),
    }
}

impl Model for Register {
    type State = u32;
    type Op = RegisterOp;

    fn init(&self) -> u32 {
        self.init
    }

    fn step(&self, state: &u32, op: &RegisterOp, out: &mut Vec<u32>) {
        match *op {
            RegisterOp::Read(v) if v == *state => out.push(*state),
            RegisterOp::Read(_) => {}
            RegisterOp::Write(v) => out.push(v),
            RegisterOp::Cas(expected, new) if expected == *state => out.push(new),
            RegisterOp::Cas(..) => {}
            RegisterOp::CasFailed(expected) if expected != *state => out.push(*state),
            RegisterOp::CasFailed(_) => {}
        }
    }

    fn interpret(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Interpreted<RegisterOp>, String> {
        match invoke.f.as_str() {
            "read" => {
                // A read that failed or crashed observed nothing we can trust.
                let Some(c) = completion.filter(|_| is_ok(completion)) else {
                    return Ok(Interpreted::Skip);
                };
                if c.value.is_null() && self.nil_read_is_unknown {
                    return Ok(Interpreted::Skip);
                }
                Ok(Interpreted::Required(RegisterOp::Read(
                    self.values.intern(&c.value),
                )))
            }
            "write" => {
                let v = self.values.intern(input(invoke, completion));
                Ok(by_outcome(completion, RegisterOp::Write(v)))
            }
            "cas" if self.cas => {
                let (expected, new) = cas_pair(input(invoke, completion), invoke)?;
                let (expected, new) = (self.values.intern(expected), self.values.intern(new));
                let compare_failed = completion.is_some_and(|c| {
                    c.kind == OpType::Fail
                        && c.error.as_ref().and_then(Value::as_str) == Some(COMPARE_FAILED)
                });
                if compare_failed {
                    return Ok(Interpreted::Required(RegisterOp::CasFailed(expected)));
                }
                Ok(by_outcome(completion, RegisterOp::Cas(expected, new)))
            }
            "cas" => Err(format!(
                "the register model has no cas (event {}); use --model cas-register",
                invoke.index
            )),
            _ => Err(unsupported(self.name(), invoke)),
        }
    }

    fn state_json(&self, state: &u32) -> Value {
        self.values.value(*state)
    }

    fn all_states(&self) -> Option<Vec<u32>> {
        Some(self.values.ids().collect())
    }

    fn is_read_only(op: &RegisterOp) -> bool {
        matches!(op, RegisterOp::Read(_) | RegisterOp::CasFailed(_))
    }
}

/// One micro-operation of a multi-register transaction, on an interned key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MicroOp {
    /// `None`: a read whose result is unknown (constrains nothing).
    Read(usize, Option<u32>),
    Write(usize, u32),
}

/// Knossos's multi-register: several named registers, read and written together by `txn`
/// operations whose value is a list of `[f, key, value]` (f = read / r / write / w).
#[derive(Debug, Clone)]
pub struct MultiRegister {
    values: Interner,
    keys: Interner,
    /// Initial value per key id; keys first seen later start at `default_init`.
    init: Vec<u32>,
    default_init: u32,
    nil_read_is_unknown: bool,
}

impl MultiRegister {
    pub fn new(options: &ModelOptions) -> MultiRegister {
        let mut model = MultiRegister {
            values: Interner::default(),
            keys: Interner::default(),
            init: Vec::new(),
            default_init: Interner::NULL,
            nil_read_is_unknown: options.nil_read_is_unknown,
        };
        match &options.init {
            Value::Object(map) => {
                for (key, value) in map {
                    let k = model.key(&Value::String(key.clone()));
                    model.init[k] = model.values.intern(value);
                }
            }
            other => model.default_init = model.values.intern(other),
        }
        model
    }

    fn key(&mut self, key: &Value) -> usize {
        let id = self.keys.intern(key) as usize;
        while self.init.len() <= id {
            self.init.push(self.default_init);
        }
        id
    }

    fn micro_ops(
        &mut self,
        value: &Value,
        reads_known: bool,
        op: &Op,
    ) -> Result<Vec<MicroOp>, String> {
        let Some(list) = value.as_array() else {
            return Err(format!(
                "a txn needs a list of [f, key, value], event {} has {value}",
                op.index
            ));
        };
        let mut micro = Vec::with_capacity(list.len());
        for m in list {
            let Some([f, key, v]) = m.as_array().map(Vec::as_slice) else {
                return Err(format!(
                    "micro-op {m} of event {} is not [f, key, value]",
                    op.index
                ));
            };
            let k = self.key(key);
            match f.as_str() {
                Some("read" | "r") => {
                    let known = reads_known && !(v.is_null() && self.nil_read_is_unknown);
                    micro.push(MicroOp::Read(k, known.then(|| self.values.intern(v))));
                }
                Some("write" | "w") => micro.push(MicroOp::Write(k, self.values.intern(v))),
                _ => {
                    return Err(format!(
                        "micro-op {m} of event {}: f must be read or write",
                        op.index
                    ))
                }
            }
        }
        Ok(micro)
    }
}

impl Model for MultiRegister {
    type State = Vec<u32>;
    type Op = Vec<MicroOp>;

    fn init(&self) -> Vec<u32> {
        self.init.clone()
    }

    fn step(&self, state: &Vec<u32>, op: &Vec<MicroOp>, out: &mut Vec<Vec<u32>>) {
        let mut next = state.clone();
        // Keys first seen after the initial state was built start at the default.
        let get = |s: &Vec<u32>, k: usize| s.get(k).copied().unwrap_or(self.default_init);
        for m in op {
            match *m {
                MicroOp::Read(k, Some(v)) if get(&next, k) != v => return,
                MicroOp::Read(..) => {}
                MicroOp::Write(k, v) => {
                    if next.len() <= k {
                        next.resize(k + 1, self.default_init);
                    }
                    next[k] = v;
                }
            }
        }
        out.push(next);
    }

    fn interpret(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Interpreted<Vec<MicroOp>>, String> {
        if invoke.f != "txn" {
            return Err(unsupported("multi-register", invoke));
        }
        let ok = is_ok(completion);
        // An ok completion carries the reads' results; otherwise only the writes are known.
        let value = match completion {
            Some(c) if ok && !c.value.is_null() => &c.value,
            _ => &invoke.value,
        };
        let micro = self.micro_ops(value, ok, invoke)?;
        if micro.iter().all(|m| matches!(m, MicroOp::Read(_, None))) {
            return Ok(Interpreted::Skip);
        }
        Ok(by_outcome(completion, micro))
    }

    fn state_json(&self, state: &Vec<u32>) -> Value {
        let mut map = serde_json::Map::new();
        for k in 0..self.keys.len().max(state.len()) {
            if k < self.keys.len() && k as u32 != Interner::NULL {
                let v = state.get(k).copied().unwrap_or(self.default_init);
                map.insert(key_text(&self.keys.value(k as u32)), self.values.value(v));
            }
        }
        Value::Object(map)
    }

    fn all_states(&self) -> Option<Vec<Vec<u32>>> {
        // The product of values over keys; only when it stays small.
        let keys = self.keys.len();
        let values = self.values.len();
        let count = (values as u64).checked_pow(keys as u32)?;
        if count > 4096 {
            return None;
        }
        let mut states = vec![Vec::new()];
        for _ in 0..keys {
            states = states
                .into_iter()
                .flat_map(|s| {
                    self.values.ids().map(move |v| {
                        let mut s = s.clone();
                        s.push(v);
                        s
                    })
                })
                .collect();
        }
        Some(states)
    }

    fn state_heap_bytes(&self, state: &Vec<u32>) -> usize {
        state.capacity() * 4
    }

    fn is_read_only(op: &Vec<MicroOp>) -> bool {
        op.iter().all(|m| matches!(m, MicroOp::Read(..)))
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps<M: Model>(m: &M, s: &M::State, op: &M::Op) -> Vec<M::State> {
        let mut out = Vec::new();
        m.step(s, op, &mut out);
        out
    }

    #[test]
    fn cas_register_steps() {
        let mut m = Register::new(
            &ModelOptions {
                init: json!(0),
                ..Default::default()
            },
            true,
        );
        let zero = m.values.intern(&json!(0));
        let one = m.values.intern(&json!(1));
        assert_eq!(m.init(), zero);
        assert_eq!(steps(&m, &zero, &RegisterOp::Read(zero)), vec![zero]);
        assert!(steps(&m, &zero, &RegisterOp::Read(one)).is_empty());
        assert_eq!(steps(&m, &zero, &RegisterOp::Cas(zero, one)), vec![one]);
        assert!(steps(&m, &one, &RegisterOp::Cas(zero, one)).is_empty());
        assert_eq!(steps(&m, &one, &RegisterOp::CasFailed(zero)), vec![one]);
        assert!(steps(&m, &zero, &RegisterOp::CasFailed(zero)).is_empty());
    }

    #[test]
    fn multi_register_applies_micro_ops_in_order() {
        let mut m = MultiRegister::new(&ModelOptions {
            init: json!({"x": 0, "y": 0}),
            ..Default::default()
        });
        let op = Op::invoke(
            0,
            "txn",
            json!([["write", "x", 1], ["read", "x", 1], ["r", "y", 0]]),
        );
        let Interpreted::Required(micro) = m
            .interpret(
                &op,
                Some(&Op::complete(0, OpType::Ok, "txn", op.value.clone())),
            )
            .unwrap()
        else {
            panic!()
        };
        let after = steps(&m, &m.init(), &micro);
        assert_eq!(m.state_json(&after[0]), json!({"x": 1, "y": 0}));
        let bad = Op::invoke(0, "txn", json!([["read", "x", 5]]));
        let Interpreted::Required(micro) = m
            .interpret(
                &bad,
                Some(&Op::complete(0, OpType::Ok, "txn", bad.value.clone())),
            )
            .unwrap()
        else {
            panic!()
        };
        assert!(steps(&m, &m.init(), &micro).is_empty());
    }
}
