//! A mutex: `acquire` is legal only when free, `release` only when held.

use faultline_core::Op;
use serde_json::Value;

use super::{by_outcome, unsupported, Interpreted, Model, ModelOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MutexOp {
    Acquire,
    Release,
}

#[derive(Debug, Clone)]
pub struct Mutex {
    /// Held at the start? (`--init true`; default free.)
    init: bool,
}

impl Mutex {
    pub fn new(options: &ModelOptions) -> Mutex {
        Mutex {
            init: options.init.as_bool().unwrap_or(false),
        }
    }
}

impl Model for Mutex {
    /// Whether the lock is held.
    type State = bool;
    type Op = MutexOp;

    fn init(&self) -> bool {
        self.init
    }

    fn step(&self, held: &bool, op: &MutexOp, out: &mut Vec<bool>) {
        match (op, held) {
            (MutexOp::Acquire, false) => out.push(true),
            (MutexOp::Release, true) => out.push(false),
            _ => {}
        }
    }

    fn interpret(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Interpreted<MutexOp>, String> {
        let op = match invoke.f.as_str() {
            "acquire" => MutexOp::Acquire,
            "release" => MutexOp::Release,
            _ => return Err(unsupported("mutex", invoke)),
        };
        Ok(by_outcome(completion, op))
    }

    fn state_json(&self, held: &bool) -> Value {
        Value::String(if *held { "held" } else { "free" }.into())
    }

    fn all_states(&self) -> Option<Vec<bool>> {
        Some(vec![false, true])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_needs_free_and_release_needs_held() {
        let m = Mutex::new(&ModelOptions::default());
        let mut out = Vec::new();
        m.step(&false, &MutexOp::Acquire, &mut out);
        m.step(&true, &MutexOp::Acquire, &mut out);
        m.step(&true, &MutexOp::Release, &mut out);
        m.step(&false, &MutexOp::Release, &mut out);
        assert_eq!(out, vec![true, false]);
    }
}
