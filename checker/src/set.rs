//! The set checker: adds of unique elements, then reads; which acknowledged elements were lost?
//!
//! Unlike linearizability it needs no search, so it runs in linear time on any history length.
//! Per key, for every element:
//! - **lost**: the add was acknowledged (`ok`), and the last successful read that began after
//!   the add completed does not contain it;
//! - **stale**: such a read misses it, but a later one has it (a read that lagged);
//! - **unexpected**: a read returned an element that was never added, or whose add `fail`ed
//!   (`fail` = certainly did not happen);
//! - **never read**: the add was acknowledged but no successful read began after it completed,
//!   so nothing can be said (this makes the verdict `unknown`, not `valid`);
//! - **recovered**: an add whose outcome was unknown (`info`, or never completed) was read.
//!
//! ```
//! use faultline_checker::{set, Validity};
//! use faultline_core::{History, Op, OpType};
//! use serde_json::json;
//! let history = History::new(vec![
//!     Op::invoke(0, "add", json!(1)).with_key(json!(0)),
//!     Op::complete(0, OpType::Ok, "add", json!(1)).with_key(json!(0)),
//!     Op::invoke(0, "read", json!(null)).with_key(json!(0)),
//!     Op::complete(0, OpType::Ok, "read", json!([])).with_key(json!(0)),
//! ]);
//! let result = set::check(&history);
//! assert_eq!(result.valid, Validity::Invalid);
//! assert_eq!(result.lost_count, 1);
//! ```

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

use faultline_core::{History, OpType};

use crate::Validity;

/// How many elements of each kind the result lists (counts are always complete).
pub const MAX_LISTED: usize = 100;

/// One element that is evidence of something.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Element {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    pub element: Value,
    /// The index of the add's invocation, if there was an add.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_index: Option<u64>,
    /// The index of the read (invocation) that shows the problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_index: Option<u64>,
}

/// The set checker's verdict and its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetResult {
    pub valid: Validity,
    /// Adds invoked.
    pub attempts: usize,
    /// Adds acknowledged (`ok`).
    pub acknowledged: usize,
    /// Successful reads.
    pub reads: usize,
    pub keys: usize,
    pub lost_count: usize,
    pub stale_count: usize,
    pub unexpected_count: usize,
    pub never_read_count: usize,
    pub recovered_count: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<Element>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stale: Vec<Element>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unexpected: Vec<Element>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub never_read: Vec<Element>,
    /// Why the verdict is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl SetResult {
    fn unknown(reason: String) -> SetResult {
        SetResult {
            valid: Validity::Unknown,
            attempts: 0,
            acknowledged: 0,
            reads: 0,
            keys: 0,
            lost_count: 0,
            stale_count: 0,
            unexpected_count: 0,
            never_read_count: 0,
            recovered_count: 0,
            lost: Vec::new(),
            stale: Vec::new(),
            unexpected: Vec::new(),
            never_read: Vec::new(),
            reason: Some(reason),
        }
    }

    /// The result as text a person can follow.
    pub fn explain(&self) -> String {
        let mut out = format!(
            "{} adds ({} acknowledged), {} reads over {} keys: {} lost, {} stale, {} unexpected, \
             {} never read, {} recovered\n",
            self.attempts,
            self.acknowledged,
            self.reads,
            self.keys,
            self.lost_count,
            self.stale_count,
            self.unexpected_count,
            self.never_read_count,
            self.recovered_count
        );
        let list = |out: &mut String, what: &str, items: &[Element], total: usize| {
            if items.is_empty() {
                return;
            }
            let shown: Vec<String> = items
                .iter()
                .take(10)
                .map(|e| match &e.key {
                    Some(k) => format!("{} (key {k})", e.element),
                    None => e.element.to_string(),
                })
                .collect();
            let more = if total > shown.len() {
                format!(" and {} more", total - shown.len())
            } else {
                String::new()
            };
            out.push_str(&format!("{what}: {}{more}\n", shown.join(", ")));
        };
        list(&mut out, "lost", &self.lost, self.lost_count);
        list(&mut out, "stale", &self.stale, self.stale_count);
        list(
            &mut out,
            "unexpected",
            &self.unexpected,
            self.unexpected_count,
        );
        list(
            &mut out,
            "never read",
            &self.never_read,
            self.never_read_count,
        );
        if let Some(reason) = &self.reason {
            out.push_str(&format!("unknown: {reason}\n"));
        }
        out
    }
}

/// What happened to one add.
struct Add {
    element: Value,
    invoke_index: u64,
    outcome: Option<OpType>,
    /// Position in the history of the completion.
    completed_at: Option<usize>,
}

/// One successful read.
struct Read {
    invoke_index: u64,
    /// Position in the history of the invocation: reads that began after an add completed are
    /// the ones that must see it.
    invoked_at: usize,
    elements: HashSet<String>,
}

#[derive(Default)]
struct KeyState {
    key: Option<Value>,
    /// Adds by the element's JSON text.
    adds: HashMap<String, Add>,
    reads: Vec<Read>,
}

/// Checks a set history: `add` of an element, `read` of the whole set, optionally per `key`.
///
/// A history the checker cannot read (malformed pairing, an unknown `f`, a read that did not
/// return a list) is `unknown` with the reason, never a panic.
pub fn check(history: &History) -> SetResult {
    let pairs = match history.pairs() {
        Ok(pairs) => pairs,
        Err(e) => return SetResult::unknown(format!("malformed history: {e}")),
    };
    let mut keys: BTreeMap<String, KeyState> = BTreeMap::new();
    let mut attempts = 0;
    let mut acknowledged = 0;
    let mut read_count = 0;
    let mut recovered_count = 0;
    for pair in &pairs {
        let invoke = &history.ops[pair.invoke];
        let completion = pair.completion.map(|c| &history.ops[c]);
        let key_text = invoke
            .key
            .as_ref()
            .map_or_else(String::new, Value::to_string);
        let state = keys.entry(key_text).or_insert_with(|| KeyState {
            key: invoke.key.clone(),
            ..KeyState::default()
        });
        match invoke.f.as_str() {
            "add" => {
                attempts += 1;
                let outcome = completion.map(|c| c.kind);
                if outcome == Some(OpType::Ok) {
                    acknowledged += 1;
                }
                let text = invoke.value.to_string();
                if state.adds.contains_key(&text) {
                    return SetResult::unknown(format!(
                        "element {text} is added twice (event {}); the set checker needs \
                         unique elements",
                        invoke.index
                    ));
                }
                state.adds.insert(
                    text,
                    Add {
                        element: invoke.value.clone(),
                        invoke_index: invoke.index,
                        outcome,
                        completed_at: pair.completion,
                    },
                );
            }
            "read" => {
                let Some(c) = completion.filter(|c| c.kind == OpType::Ok) else {
                    continue;
                };
                let Some(items) = c.value.as_array() else {
                    return SetResult::unknown(format!(
                        "a set read returns a list, event {} has {}",
                        c.index, c.value
                    ));
                };
                read_count += 1;
                state.reads.push(Read {
                    invoke_index: invoke.index,
                    invoked_at: pair.invoke,
                    elements: items.iter().map(Value::to_string).collect(),
                });
            }
            other => {
                return SetResult::unknown(format!(
                    "the set checker reads add and read, not {other:?} (event {})",
                    invoke.index
                ))
            }
        }
    }

    let mut result = SetResult::unknown(String::new());
    result.reason = None;
    result.valid = Validity::Valid;
    result.attempts = attempts;
    result.acknowledged = acknowledged;
    result.reads = read_count;
    result.keys = keys.len();
    let push = |list: &mut Vec<Element>, count: &mut usize, element: Element| {
        *count += 1;
        if list.len() < MAX_LISTED {
            list.push(element);
        }
    };
    for state in keys.values() {
        // Unexpected: read but never added, or added with a definite failure.
        let mut reported: HashSet<&str> = HashSet::new();
        for read in &state.reads {
            for text in &read.elements {
                let bad = match state.adds.get(text) {
                    None => true,
                    Some(add) => add.outcome == Some(OpType::Fail),
                };
                if bad && reported.insert(text.as_str()) {
                    let add = state.adds.get(text);
                    push(
                        &mut result.unexpected,
                        &mut result.unexpected_count,
                        Element {
                            key: state.key.clone(),
                            element: add.map_or_else(
                                || serde_json::from_str(text).unwrap_or(Value::Null),
                                |a| a.element.clone(),
                            ),
                            add_index: add.map(|a| a.invoke_index),
                            read_index: Some(read.invoke_index),
                        },
                    );
                }
            }
        }
        // Sort adds by invocation so the evidence reads in history order.
        let mut adds: Vec<(&String, &Add)> = state.adds.iter().collect();
        adds.sort_by_key(|(_, a)| a.invoke_index);
        for (text, add) in adds {
            match add.outcome {
                Some(OpType::Ok) => {
                    let completed_at = add.completed_at.expect("an ok add has a completion");
                    // Reads are in invocation order, so those that began after the add
                    // completed are a suffix.
                    let first = state.reads.partition_point(|r| r.invoked_at < completed_at);
                    let later = &state.reads[first..];
                    let element = |read: Option<&Read>| Element {
                        key: state.key.clone(),
                        element: add.element.clone(),
                        add_index: Some(add.invoke_index),
                        read_index: read.map(|r| r.invoke_index),
                    };
                    match later.last() {
                        None => push(
                            &mut result.never_read,
                            &mut result.never_read_count,
                            element(None),
                        ),
                        Some(last) if !last.elements.contains(text.as_str()) => push(
                            &mut result.lost,
                            &mut result.lost_count,
                            element(Some(last)),
                        ),
                        Some(_) => {
                            if let Some(missing) =
                                later.iter().find(|r| !r.elements.contains(text.as_str()))
                            {
                                push(
                                    &mut result.stale,
                                    &mut result.stale_count,
                                    element(Some(missing)),
                                );
                            }
                        }
                    }
                }
                Some(OpType::Info) | None
                    if state
                        .reads
                        .iter()
                        .any(|r| r.elements.contains(text.as_str())) =>
                {
                    recovered_count += 1
                }
                _ => {}
            }
        }
    }
    result.recovered_count = recovered_count;
    if result.lost_count + result.stale_count + result.unexpected_count > 0 {
        result.valid = Validity::Invalid;
    } else if result.never_read_count > 0 {
        result.valid = Validity::Unknown;
        result.reason = Some(format!(
            "{} acknowledged adds were never followed by a successful read",
            result.never_read_count
        ));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::Op;
    use serde_json::json;

    /// A tiny DSL: `a1` = add 1 ok, `a1?` = add 1 info, `a1!` = add 1 fail, `r[1,2]` = read,
    /// each invoked and completed before the next, by process 0 (a new process after info).
    fn history(events: &[&str]) -> History {
        let mut ops = Vec::new();
        let mut process = 0;
        for e in events {
            let key = json!("k");
            if let Some(rest) = e.strip_prefix('r') {
                let value: Value = serde_json::from_str(rest).unwrap();
                ops.push(Op::invoke(process, "read", Value::Null).with_key(key.clone()));
                ops.push(Op::complete(process, OpType::Ok, "read", value).with_key(key));
            } else {
                let rest = &e[1..];
                let (n, kind) = match rest.chars().last() {
                    Some('?') => (&rest[..rest.len() - 1], OpType::Info),
                    Some('!') => (&rest[..rest.len() - 1], OpType::Fail),
                    _ => (rest, OpType::Ok),
                };
                let v: Value = serde_json::from_str(n).unwrap();
                ops.push(Op::invoke(process, "add", v.clone()).with_key(key.clone()));
                ops.push(Op::complete(process, kind, "add", v).with_key(key));
                if kind == OpType::Info {
                    process += 1;
                }
            }
        }
        let mut h = History::new(ops);
        for (i, op) in h.ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        h
    }

    #[test]
    fn every_acknowledged_add_read_back_is_valid() {
        let r = check(&history(&["a1", "a2", "a3?", "r[1,2,3]"]));
        assert_eq!(r.valid, Validity::Valid, "{}", r.explain());
        assert_eq!(r.acknowledged, 2);
        assert_eq!(r.recovered_count, 1);
    }

    #[test]
    fn an_acknowledged_add_missing_from_the_final_read_is_lost() {
        let r = check(&history(&["a1", "a2", "r[1]"]));
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.lost_count, 1);
        assert_eq!(r.lost[0].element, json!(2));
        assert_eq!(r.lost[0].read_index, Some(4));
        assert!(
            r.explain().contains("lost: 2 (key \"k\")"),
            "{}",
            r.explain()
        );
    }

    #[test]
    fn an_element_never_added_or_failed_is_unexpected() {
        let r = check(&history(&["a1", "a2!", "r[1,2,9]"]));
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.unexpected_count, 2);
    }

    #[test]
    fn a_read_that_misses_an_element_a_later_read_has_is_stale() {
        let r = check(&history(&["a1", "r[]", "r[1]"]));
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!((r.stale_count, r.lost_count), (1, 0));
    }

    #[test]
    fn an_add_with_no_later_read_is_never_read_and_unknown() {
        let r = check(&history(&["r[]", "a1"]));
        assert_eq!(r.valid, Validity::Unknown);
        assert_eq!(r.never_read_count, 1);
        assert!(r.reason.unwrap().contains("never followed"));
    }

    #[test]
    fn an_unknown_add_that_was_never_read_is_fine() {
        let r = check(&history(&["a1?", "r[]"]));
        assert_eq!(r.valid, Validity::Valid);
    }

    #[test]
    fn a_read_concurrent_with_an_add_need_not_see_it() {
        // The read is invoked before the add completes.
        let key = json!(0);
        let mut h = History::new(vec![
            Op::invoke(0, "add", json!(1)).with_key(key.clone()),
            Op::invoke(1, "read", Value::Null).with_key(key.clone()),
            Op::complete(0, OpType::Ok, "add", json!(1)).with_key(key.clone()),
            Op::complete(1, OpType::Ok, "read", json!([])).with_key(key),
        ]);
        for (i, op) in h.ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        let r = check(&h);
        // Nothing began after the add completed: never read, hence unknown, not lost.
        assert_eq!(r.valid, Validity::Unknown);
        assert_eq!(r.lost_count, 0);
    }

    #[test]
    fn keys_are_checked_separately() {
        let mut h = History::new(vec![
            Op::invoke(0, "add", json!(1)).with_key(json!("a")),
            Op::complete(0, OpType::Ok, "add", json!(1)).with_key(json!("a")),
            Op::invoke(0, "read", Value::Null).with_key(json!("b")),
            Op::complete(0, OpType::Ok, "read", json!([1])).with_key(json!("b")),
            Op::invoke(0, "read", Value::Null).with_key(json!("a")),
            Op::complete(0, OpType::Ok, "read", json!([1])).with_key(json!("a")),
        ]);
        for (i, op) in h.ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        let r = check(&h);
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.keys, 2);
        assert_eq!(r.unexpected_count, 1);
        assert_eq!(r.unexpected[0].key, Some(json!("b")));
    }

    #[test]
    fn unreadable_histories_are_unknown_with_a_reason() {
        let h = History::new(vec![Op::complete(0, OpType::Ok, "add", json!(1))]);
        assert_eq!(check(&h).valid, Validity::Unknown);
        let h = history(&["a1", "a1"]);
        assert!(check(&h).reason.unwrap().contains("added twice"));
        let mut h = history(&["a1"]);
        h.ops[0].f = "enqueue".into();
        h.ops[1].f = "enqueue".into();
        assert!(check(&h).reason.unwrap().contains("enqueue"));
    }
}
