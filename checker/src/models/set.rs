//! A grow-only set: `add` an element, `read` the whole set.

use faultline_core::Op;
use serde_json::Value;

use super::{by_outcome, input, is_ok, unsupported, Interner, Interpreted, Model, ModelOptions};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SetOp {
    Add(u32),
    /// The elements read, sorted and without duplicates.
    Read(Vec<u32>),
}

#[derive(Debug, Clone)]
pub struct Set {
    elements: Interner,
    init: Vec<u32>,
}

impl Set {
    pub fn new(options: &ModelOptions) -> Set {
        let mut elements = Interner::default();
        let mut init: Vec<u32> = match &options.init {
            Value::Array(items) => items.iter().map(|v| elements.intern(v)).collect(),
            _ => Vec::new(),
        };
        init.sort_unstable();
        init.dedup();
        Set { elements, init }
    }
}

impl Model for Set {
    /// The elements present, sorted.
    type State = Vec<u32>;
    type Op = SetOp;

    fn init(&self) -> Vec<u32> {
        self.init.clone()
    }

    fn step(&self, state: &Vec<u32>, op: &SetOp, out: &mut Vec<Vec<u32>>) {
        match op {
            SetOp::Add(e) => match state.binary_search(e) {
                Ok(_) => out.push(state.clone()),
                Err(at) => {
                    let mut next = Vec::with_capacity(state.len() + 1);
                    next.extend_from_slice(&state[..at]);
                    next.push(*e);
                    next.extend_from_slice(&state[at..]);
                    out.push(next);
                }
            },
            SetOp::Read(seen) if seen == state => out.push(state.clone()),
            SetOp::Read(_) => {}
        }
    }

    fn interpret(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Interpreted<SetOp>, String> {
        match invoke.f.as_str() {
            "add" => {
                let e = self.elements.intern(input(invoke, completion));
                Ok(by_outcome(completion, SetOp::Add(e)))
            }
            "read" => {
                let Some(c) = completion.filter(|_| is_ok(completion)) else {
                    return Ok(Interpreted::Skip);
                };
                let Some(items) = c.value.as_array() else {
                    return Err(format!(
                        "a set read returns a list, event {} has {}",
                        c.index, c.value
                    ));
                };
                let mut seen: Vec<u32> = items.iter().map(|v| self.elements.intern(v)).collect();
                seen.sort_unstable();
                seen.dedup();
                Ok(Interpreted::Required(SetOp::Read(seen)))
            }
            _ => Err(unsupported("set", invoke)),
        }
    }

    fn state_json(&self, state: &Vec<u32>) -> Value {
        Value::Array(state.iter().map(|&e| self.elements.value(e)).collect())
    }

    fn state_heap_bytes(&self, state: &Vec<u32>) -> usize {
        state.capacity() * 4
    }

    fn is_read_only(op: &SetOp) -> bool {
        matches!(op, SetOp::Read(_))
    }
}
