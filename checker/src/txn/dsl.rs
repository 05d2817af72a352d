//! A tiny notation for small readable histories, after Elle's `"ax1ry12"`.
//!
//! A transaction is a run of micro-operations, each a letter, a one-letter key and digits:
//! `ax1` appends 1 to x, `wx1` writes 1 to x, `ry12` reads y: the list `[1 2]` in list-append,
//! the value `12` in rw-register; `ry` alone reads the empty list (list-append) or nil
//! (rw-register). A history is tokens separated by spaces, each `<process><event><txn>`:
//!
//! | event | meaning |
//! |---|---|
//! | `:` or `>` | `ok` completion (invoked just before, unless the process has one open) |
//! | `<` | invocation only (completed by a later token of the same process) |
//! | `!` | `fail` completion |
//! | `?` | `info` completion |
//!
//! So `"0:ax1 1<ry1 2:ax2 1>ry1"` is: process 0 appends 1 to x; process 1 starts reading; 2
//! appends 2; process 1's read returns x = [1]. Invocations carry `null` for reads, as
//! recorded histories do. Register histories (for the causal checkers) use the same tokens
//! with one micro-operation each, recorded as plain `read` / `write` operations with a key.
//!
//! ```
//! use faultline_checker::txn::dsl;
//! let history = dsl::list_append("0:ax1ry12");
//! assert_eq!(history.ops.len(), 2);
//! assert_eq!(history.ops[1].value, serde_json::json!([["append", "x", 1], ["r", "y", [1, 2]]]));
//! ```

use serde_json::{json, Value};
use std::collections::HashMap;

use faultline_core::{History, Op, OpType};

#[derive(Clone, Copy, PartialEq)]
enum Flavor {
    ListAppend,
    RwRegister,
    Register,
}

/// A list-append history.
pub fn list_append(text: &str) -> History {
    build(text, Flavor::ListAppend)
}

/// An rw-register history.
pub fn rw_register(text: &str) -> History {
    build(text, Flavor::RwRegister)
}

/// A register history: each token one `read` or `write` on a key (`0:wx1 1:rx1 1:ry`).
pub fn register(text: &str) -> History {
    build(text, Flavor::Register)
}

/// Micro-operations of one transaction, with reads as observed.
fn parse_txn(text: &str, flavor: Flavor) -> Vec<Value> {
    let chars: Vec<char> = text.chars().collect();
    let mut mops = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let f = chars[i];
        let key = *chars
            .get(i + 1)
            .unwrap_or_else(|| panic!("{text:?}: a key after {f:?}"));
        assert!(
            key.is_ascii_alphabetic(),
            "{text:?}: key {key:?} is a letter"
        );
        i += 2;
        let digits: Vec<u64> = chars[i..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .map(|c| c.to_digit(10).unwrap() as u64)
            .collect();
        i += digits.len();
        let number = || digits.iter().fold(0, |n, d| n * 10 + d);
        let key = key.to_string();
        mops.push(match f {
            'a' => {
                assert!(!digits.is_empty(), "{text:?}: append needs a value");
                json!(["append", key, number()])
            }
            'w' => {
                assert!(!digits.is_empty(), "{text:?}: write needs a value");
                json!(["w", key, number()])
            }
            'r' => match flavor {
                Flavor::ListAppend => json!(["r", key, digits]),
                _ if digits.is_empty() => json!(["r", key, null]),
                _ => json!(["r", key, number()]),
            },
            other => panic!("{text:?}: {other:?} is not a, w or r"),
        });
    }
    mops
}

/// The invocation's value: reads not yet known.
fn invocation_value(mops: &[Value]) -> Vec<Value> {
    mops.iter()
        .map(|m| {
            if m[0] == "r" {
                json!(["r", m[1], null])
            } else {
                m.clone()
            }
        })
        .collect()
}

fn build(text: &str, flavor: Flavor) -> History {
    let mut ops = Vec::new();
    let mut open: HashMap<u64, ()> = HashMap::new();
    for token in text.split_whitespace() {
        let split = token
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or_else(|| panic!("{token:?}: <process><event><txn>"));
        let process: u64 = token[..split]
            .parse()
            .unwrap_or_else(|_| panic!("{token:?} starts with a process number"));
        let event = token[split..].chars().next().unwrap();
        let body = &token[split + event.len_utf8()..];
        let mops = parse_txn(body, flavor);
        let (f, invoke_value, complete_value, key) = if flavor == Flavor::Register {
            assert_eq!(mops.len(), 1, "{token:?}: register operations are single");
            let m = &mops[0];
            if m[0] == "r" {
                ("read", Value::Null, m[2].clone(), Some(m[1].clone()))
            } else {
                ("write", m[2].clone(), m[2].clone(), Some(m[1].clone()))
            }
        } else {
            (
                "txn",
                Value::Array(invocation_value(&mops)),
                Value::Array(mops),
                None,
            )
        };
        let with_key = |op: Op| match &key {
            Some(k) => op.with_key(k.clone()),
            None => op,
        };
        let kind = match event {
            '<' => {
                assert!(
                    open.insert(process, ()).is_none(),
                    "{token:?}: process {process} already has an open invocation"
                );
                ops.push(with_key(Op::invoke(process, f, invoke_value)));
                continue;
            }
            ':' | '>' => OpType::Ok,
            '!' => OpType::Fail,
            '?' => OpType::Info,
            other => panic!("{token:?}: event {other:?} is not one of : < > ! ?"),
        };
        if open.remove(&process).is_none() {
            ops.push(with_key(Op::invoke(process, f, invoke_value.clone())));
        }
        let value = if kind == OpType::Ok {
            complete_value
        } else {
            invoke_value
        };
        ops.push(with_key(Op::complete(process, kind, f, value)));
    }
    let mut history = History::new(ops);
    for (i, op) in history.ops.iter_mut().enumerate() {
        op.index = i as u64;
        op.time = Some(i as u64 * 1000);
    }
    history
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_tokens_interleave() {
        let h = list_append("0<ax1 1:ry 0>ax1");
        let kinds: Vec<&str> = h.ops.iter().map(|o| o.kind.as_str()).collect();
        assert_eq!(kinds, ["invoke", "invoke", "ok", "ok"]);
        assert_eq!(h.ops[2].value, json!([["r", "y", []]]));
    }

    #[test]
    fn rw_register_reads_one_value_or_nil() {
        let h = rw_register("0:rx12ry 1?wx3");
        assert_eq!(h.ops[1].value, json!([["r", "x", 12], ["r", "y", null]]));
        assert_eq!(h.ops[3].kind, OpType::Info);
        assert_eq!(h.ops[3].value, json!([["w", "x", 3]]));
    }

    #[test]
    fn register_histories_have_keys() {
        let h = register("0:wx1 1:rx1 1:ry");
        assert_eq!(h.ops[0].f, "write");
        assert_eq!(h.ops[3].value, json!(1));
        assert_eq!(h.ops[5].value, Value::Null);
        assert_eq!(h.ops[5].key, Some(json!("y")));
    }
}
