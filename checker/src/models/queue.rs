//! Queues: a FIFO queue, and an unordered queue (a multiset) — `enqueue v`, `dequeue` -> v.
//!
//! A dequeue that completed `ok` with `null` found the queue empty. A dequeue whose outcome is
//! unknown may have removed an element we never learned about: for the FIFO queue that is the
//! head; for the unordered queue it is any one element, so that step has several successors.

use faultline_core::Op;
use serde_json::Value;
use std::collections::VecDeque;

use super::{by_outcome, input, is_ok, unsupported, Interner, Interpreted, Model, ModelOptions};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum QueueOp {
    Enqueue(u32),
    /// Dequeued this element (`Interner::NULL`: found the queue empty).
    Dequeue(u32),
    /// A dequeue whose result is unknown.
    DequeueUnknown,
}

fn interpret_queue(
    elements: &mut Interner,
    name: &str,
    invoke: &Op,
    completion: Option<&Op>,
) -> Result<Interpreted<QueueOp>, String> {
    match invoke.f.as_str() {
        "enqueue" => {
            let e = elements.intern(input(invoke, completion));
            Ok(by_outcome(completion, QueueOp::Enqueue(e)))
        }
        "dequeue" => match completion {
            Some(c) if is_ok(completion) => Ok(Interpreted::Required(QueueOp::Dequeue(
                elements.intern(&c.value),
            ))),
            _ => Ok(by_outcome(completion, QueueOp::DequeueUnknown)),
        },
        _ => Err(unsupported(name, invoke)),
    }
}

fn initial(elements: &mut Interner, options: &ModelOptions) -> Vec<u32> {
    match &options.init {
        Value::Array(items) => items.iter().map(|v| elements.intern(v)).collect(),
        _ => Vec::new(),
    }
}

#[derive(Debug, Clone)]
pub struct FifoQueue {
    elements: Interner,
    init: VecDeque<u32>,
}

impl FifoQueue {
    pub fn new(options: &ModelOptions) -> FifoQueue {
        let mut elements = Interner::default();
        let init = initial(&mut elements, options).into();
        FifoQueue { elements, init }
    }
}

impl Model for FifoQueue {
    type State = VecDeque<u32>;
    type Op = QueueOp;

    fn init(&self) -> VecDeque<u32> {
        self.init.clone()
    }

    fn step(&self, state: &VecDeque<u32>, op: &QueueOp, out: &mut Vec<VecDeque<u32>>) {
        match *op {
            QueueOp::Enqueue(e) => {
                let mut next = state.clone();
                next.push_back(e);
                out.push(next);
            }
            QueueOp::Dequeue(Interner::NULL) if state.is_empty() => out.push(state.clone()),
            QueueOp::Dequeue(e) if state.front() == Some(&e) => {
                let mut next = state.clone();
                next.pop_front();
                out.push(next);
            }
            QueueOp::Dequeue(_) => {}
            QueueOp::DequeueUnknown => {
                let mut next = state.clone();
                next.pop_front();
                out.push(next);
            }
        }
    }

    fn interpret(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Interpreted<QueueOp>, String> {
        interpret_queue(&mut self.elements, "fifo-queue", invoke, completion)
    }

    fn state_json(&self, state: &VecDeque<u32>) -> Value {
        Value::Array(state.iter().map(|&e| self.elements.value(e)).collect())
    }

    fn state_heap_bytes(&self, state: &VecDeque<u32>) -> usize {
        state.capacity() * 4
    }
}

#[derive(Debug, Clone)]
pub struct UnorderedQueue {
    elements: Interner,
    init: Vec<u32>,
}

impl UnorderedQueue {
    pub fn new(options: &ModelOptions) -> UnorderedQueue {
        let mut elements = Interner::default();
        let mut init = initial(&mut elements, options);
        init.sort_unstable();
        UnorderedQueue { elements, init }
    }
}

impl Model for UnorderedQueue {
    /// The multiset of queued elements, sorted.
    type State = Vec<u32>;
    type Op = QueueOp;

    fn init(&self) -> Vec<u32> {
        self.init.clone()
    }

    fn step(&self, state: &Vec<u32>, op: &QueueOp, out: &mut Vec<Vec<u32>>) {
        let without = |at: usize| {
            let mut next = state.clone();
            next.remove(at);
            next
        };
        match *op {
            QueueOp::Enqueue(e) => {
                let at = state.partition_point(|&x| x <= e);
                let mut next = state.clone();
                next.insert(at, e);
                out.push(next);
            }
            QueueOp::Dequeue(Interner::NULL) if state.is_empty() => out.push(state.clone()),
            QueueOp::Dequeue(e) => {
                if let Ok(at) = state.binary_search(&e) {
                    out.push(without(at));
                }
            }
            QueueOp::DequeueUnknown => {
                if state.is_empty() {
                    out.push(state.clone());
                }
                for at in 0..state.len() {
                    if at == 0 || state[at] != state[at - 1] {
                        out.push(without(at));
                    }
                }
            }
        }
    }

    fn interpret(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Interpreted<QueueOp>, String> {
        interpret_queue(&mut self.elements, "unordered-queue", invoke, completion)
    }

    fn state_json(&self, state: &Vec<u32>) -> Value {
        Value::Array(state.iter().map(|&e| self.elements.value(e)).collect())
    }

    fn state_heap_bytes(&self, state: &Vec<u32>) -> usize {
        state.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_dequeues_in_order_and_unordered_in_any_order() {
        let f = FifoQueue::new(&ModelOptions::default());
        let mut out = Vec::new();
        f.step(&VecDeque::from(vec![1, 2]), &QueueOp::Dequeue(2), &mut out);
        assert!(out.is_empty());
        f.step(&VecDeque::from(vec![1, 2]), &QueueOp::Dequeue(1), &mut out);
        assert_eq!(out, vec![VecDeque::from(vec![2])]);
        let u = UnorderedQueue::new(&ModelOptions::default());
        let mut out = Vec::new();
        u.step(&vec![1, 2, 2], &QueueOp::Dequeue(2), &mut out);
        assert_eq!(out, vec![vec![1, 2]]);
        out.clear();
        u.step(&vec![1, 2, 2], &QueueOp::DequeueUnknown, &mut out);
        assert_eq!(out, vec![vec![2, 2], vec![1, 2]]);
    }
}
