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
    /// The texts of the operations read but not yet settled, one after another, and where
    /// each ends: an operation's provisional id is [`PENDING`] plus its text's number here.
    /// Interning them as the events arrive would touch a thousand keys' tables in turn, one
    /// cache miss after another; settling interns each key's texts together.
    pending: String,
    pending_ends: Vec<usize>,
}

/// Provisional ids (texts read but not settled) have this bit set; interned ids never do.
const PENDING: u32 = 1 << 31;

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
            pending: String::new(),
            pending_ends: Vec::new(),
        }
    }

    /// Reads an operation's text, to be interned when the operations are settled.
    fn read(&mut self, value: &Value, op: &Op) -> Result<u32, String> {
        if !(value.is_string() || value.is_null()) {
            return Err(format!(
                "string-kv values are strings; event {} has {value}",
                op.index
            ));
        }
        let number = u32::try_from(self.pending_ends.len())
            .ok()
            .filter(|&n| n < PENDING)
            .ok_or_else(|| format!("more than {PENDING} operations on one key"))?;
        self.pending.push_str(text(value));
        self.pending_ends.push(self.pending.len());
        Ok(PENDING | number)
    }

    /// The interned id of a provisional one.
    fn settled(&mut self, id: u32) -> u32 {
        if id & PENDING == 0 {
            return id;
        }
        let n = (id & !PENDING) as usize;
        let start = n.checked_sub(1).map_or(0, |m| self.pending_ends[m]);
        let text = &self.pending[start..self.pending_ends[n]];
        self.texts.get_mut().intern_str(text)
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
                    Ok(Interpreted::Required(KvOp::Get(self.read(&c.value, c)?)))
                }
                _ => Ok(Interpreted::Skip),
            },
            "put" => {
                let v = self.read(input(invoke, completion), invoke)?;
                Ok(by_outcome(completion, KvOp::Put(v)))
            }
            "append" => {
                let v = self.read(input(invoke, completion), invoke)?;
                Ok(by_outcome(completion, KvOp::Append(v)))
            }
            _ => Err(unsupported("string-kv", invoke)),
        }
    }

    fn settle<'a>(&mut self, ops: impl Iterator<Item = &'a mut KvOp>) {
        let (texts, bytes) = (self.pending_ends.len(), self.pending.len());
        self.texts.get_mut().reserve_strings(texts, bytes);
        for op in ops {
            let (KvOp::Get(id) | KvOp::Put(id) | KvOp::Append(id)) = op;
            *id = self.settled(*id);
        }
        self.pending = String::new();
        self.pending_ends = Vec::new();
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
    use faultline_core::OpType;
    use serde_json::json;

    fn intern(m: &mut StringKv, text: &str) -> u32 {
        m.texts.get_mut().intern_str(text)
    }

    #[test]
    fn append_concatenates_and_get_compares_text() {
        let mut m = StringKv::new(&ModelOptions::default());
        let ab = intern(&mut m, "ab");
        let abab = intern(&mut m, "abab");
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
        let [ab, abc, b] = ["ab", "abc", "b"].map(|t| intern(&mut m, t));
        assert!(m.may_reach(&ab, &KvOp::Get(abc)));
        assert!(m.may_reach(&ab, &KvOp::Get(ab)));
        assert!(m.may_reach(&m.init(), &KvOp::Get(b)));
        assert!(!m.may_reach(&abc, &KvOp::Get(ab)));
        assert!(!m.may_reach(&b, &KvOp::Get(abc)));
        assert!(StringKv::is_monotone(&KvOp::Append(b)));
        assert!(!StringKv::is_monotone(&KvOp::Put(b)));
    }

    #[test]
    fn operations_read_provisionally_settle_on_the_ids_of_their_texts() {
        let mut m = StringKv::new(&ModelOptions::default());
        let known = intern(&mut m, "x 1 y");
        let events = [
            ("put", json!("x 1 y"), json!("x 1 y")),
            ("append", json!("x 2 y"), json!("x 2 y")),
            ("get", json!(null), json!("x 1 yx 2 y")),
            ("get", json!(null), json!(null)),
            ("append", json!("x 2 y"), json!("x 2 y")),
        ];
        let mut ops: Vec<KvOp> = events
            .iter()
            .map(|(f, input, output)| {
                let invoke = Op::invoke(0, f, input.clone());
                let ok = Op::complete(0, OpType::Ok, f, output.clone());
                match m.interpret(&invoke, Some(&ok)).unwrap() {
                    Interpreted::Required(op) => op,
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        m.settle(ops.iter_mut());
        let joined = intern(&mut m, "x 1 yx 2 y");
        let (two, empty) = (intern(&mut m, "x 2 y"), intern(&mut m, ""));
        assert_eq!(
            ops,
            [
                KvOp::Put(known),
                KvOp::Append(two),
                KvOp::Get(joined),
                KvOp::Get(empty),
                KvOp::Append(two),
            ]
        );
        assert_eq!(
            empty,
            m.init(),
            "a read of null reads the initial empty text"
        );
        let mut out = Vec::new();
        m.step(&known, &ops[1], &mut out);
        assert_eq!(out, [joined]);
        // A value that is not a string is an error, not a provisional id.
        let invoke = Op::invoke(0, "put", json!(3));
        assert!(m.interpret(&invoke, None).is_err());
    }
}
