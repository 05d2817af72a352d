//! Porcupine's key-value model: strings under keys, with `get`, `put` and `append`.
//!
//! The checker partitions by key, so one model instance sees one key and its state is one
//! string. States are interned: a state is the id of its text, so memo tables hash a word, and
//! `append` results are cached per (state, suffix).

use faultline_core::Op;
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::cell::RefCell;

use super::{by_outcome, input, is_ok, unsupported, Interner, Interpreted, Model, ModelOptions};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvOp {
    Get(u32),
    Put(u32),
    Append(u32),
}

#[derive(Debug)]
pub struct StringKv {
    /// Texts, both values in operations and states reached by appending.
    texts: RefCell<Interner>,
    appended: RefCell<FxHashMap<(u32, u32), u32>>,
    init: u32,
}

fn text(value: &Value) -> &str {
    // `null` is the empty string: a key that was never written reads as "".
    value.as_str().unwrap_or("")
}

impl StringKv {
    pub fn new(options: &ModelOptions) -> StringKv {
        let mut texts = Interner::default();
        let init = texts.intern_str(text(&options.init));
        StringKv {
            texts: RefCell::new(texts),
            appended: RefCell::default(),
            init,
        }
    }

    fn intern(&mut self, value: &Value, op: &Op) -> Result<u32, String> {
        if !(value.is_string() || value.is_null()) {
            return Err(format!(
                "string-kv values are strings; event {} has {value}",
                op.index
            ));
        }
        Ok(self.texts.get_mut().intern_str(text(value)))
    }
}

impl Model for StringKv {
    type State = u32;
    type Op = KvOp;

    fn init(&self) -> u32 {
        self.init
    }

    fn step(&self, state: &u32, op: &KvOp, out: &mut Vec<u32>) {
        match *op {
            KvOp::Get(v) if v == *state => out.push(v),
            KvOp::Get(_) => {}
            KvOp::Put(v) => out.push(v),
            KvOp::Append(suffix) => {
                let cached = self.appended.borrow().get(&(*state, suffix)).copied();
                let next = cached.unwrap_or_else(|| {
                    let id = self.texts.borrow_mut().intern_concat(*state, suffix);
                    self.appended.borrow_mut().insert((*state, suffix), id);
                    id
                });
                out.push(next);
            }
        }
    }

    fn interpret(
        &mut self,
        invoke: &Op,
        completion: Option<&Op>,
    ) -> Result<Interpreted<KvOp>, String> {
        match invoke.f.as_str() {
            "get" => match completion {
                Some(c) if is_ok(completion) => {
                    Ok(Interpreted::Required(KvOp::Get(self.intern(&c.value, c)?)))
                }
                _ => Ok(Interpreted::Skip),
            },
            "put" => {
                let v = self.intern(input(invoke, completion), invoke)?;
                Ok(by_outcome(completion, KvOp::Put(v)))
            }
            "append" => {
                let v = self.intern(input(invoke, completion), invoke)?;
                Ok(by_outcome(completion, KvOp::Append(v)))
            }
            _ => Err(unsupported("string-kv", invoke)),
        }
    }

    fn state_json(&self, state: &u32) -> Value {
        Value::String(self.texts.borrow().text(*state).unwrap_or("").to_string())
    }

    fn is_read_only(op: &KvOp) -> bool {
        matches!(op, KvOp::Get(_))
    }

    fn is_monotone(op: &KvOp) -> bool {
        matches!(op, KvOp::Append(_))
    }

    /// Appends only add to the end, so a get can still see `v` only if the text is a prefix
    /// of `v`.
    fn may_reach(&self, state: &u32, read: &KvOp) -> bool {
        let KvOp::Get(seen) = *read else {
            return true;
        };
        if seen == *state {
            return true;
        }
        let texts = self.texts.borrow();
        let now = texts.text(*state).unwrap_or("");
        texts.text(seen).unwrap_or("").starts_with(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn append_concatenates_and_get_compares_text() {
        let mut m = StringKv::new(&ModelOptions::default());
        let op = Op::invoke(0, "append", json!("ab"));
        let ab = m.intern(&json!("ab"), &op).unwrap();
        let abab = m.intern(&json!("abab"), &op).unwrap();
        let mut out = Vec::new();
        m.step(&m.init(), &KvOp::Append(ab), &mut out);
        assert_eq!(out, vec![ab]);
        m.step(&ab, &KvOp::Append(ab), &mut out);
        assert_eq!(out[1], abab);
        out.clear();
        m.step(&abab, &KvOp::Get(abab), &mut out);
        assert_eq!(out, vec![abab]);
    }

    #[test]
    fn appends_reach_only_longer_texts_that_start_with_the_state() {
        let mut m = StringKv::new(&ModelOptions::default());
        let op = Op::invoke(0, "get", json!(null));
        let [ab, abc, b] = ["ab", "abc", "b"].map(|t| m.intern(&json!(t), &op).unwrap());
        assert!(m.may_reach(&ab, &KvOp::Get(abc)));
        assert!(m.may_reach(&ab, &KvOp::Get(ab)));
        assert!(m.may_reach(&m.init(), &KvOp::Get(b)));
        assert!(!m.may_reach(&abc, &KvOp::Get(ab)));
        assert!(!m.may_reach(&b, &KvOp::Get(abc)));
        assert!(StringKv::is_monotone(&KvOp::Append(b)));
        assert!(!StringKv::is_monotone(&KvOp::Put(b)));
    }
}
