//! The unique-ids checker: no id is acknowledged twice.
//!
//! Every `ok` `generate` returns an id (see `faultline_core::unique_ids`); an id returned by
//! two `ok` generates, of two processes or of one, is a duplicate. `fail` generates handed
//! out nothing; `info` and never-completed ones may have taken an id that nobody saw, which
//! breaks nothing. The result also says how many ids were acknowledged, the lowest and the
//! highest, and the ranges of consecutive ids they form (a service whose ids come from one
//! counter shows gaps where ids went to unknown or failed requests).
//!
//! ```
//! use faultline_checker::{unique_ids, Validity};
//! use faultline_core::{History, Op, OpType};
//! use serde_json::json;
//! let ops = vec![
//!     Op::invoke(0, "generate", json!(null)),
//!     Op::complete(0, OpType::Ok, "generate", json!(1)),
//!     Op::invoke(1, "generate", json!(null)),
//!     Op::complete(1, OpType::Ok, "generate", json!(1)),
//! ];
//! let result = unique_ids::check(&History::new(ops)).unwrap();
//! assert_eq!(result.valid, Validity::Invalid);
//! assert_eq!(result.duplicates[0].processes, vec![0, 1]);
//! ```
//!
//! Design decision: ids compare as integers (strings of digits too, as etcd's gateway writes
//! int64), so `"7"` and `7` are one id; anything else is unreadable and makes the verdict
//! `unknown`.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use faultline_core::unique_ids::{id_of, GENERATE};
use faultline_core::{History, HistoryError, OpType, Process};

use crate::Validity;

/// Evidence items (duplicates, ranges) kept; the counts are always complete.
pub const MAX_EVIDENCE: usize = 20;

/// An id acknowledged more than once.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Duplicate {
    pub id: i64,
    /// The processes it was returned to, in history order (one entry per acknowledgment).
    pub processes: Vec<u64>,
    /// History indexes of those completions.
    pub indexes: Vec<u64>,
}

/// The verdict for a unique-ids history.
#[derive(Debug, Clone, Serialize)]
pub struct UniqueIdsResult {
    pub valid: Validity,
    pub generates: usize,
    pub acknowledged: usize,
    pub failed: usize,
    /// `info` or never completed.
    pub unknown: usize,
    pub distinct: usize,
    /// Ids acknowledged more than once (complete count).
    pub duplicate_count: usize,
    /// The first [`MAX_EVIDENCE`] of them, lowest id first.
    pub duplicates: Vec<Duplicate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lowest: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub highest: Option<i64>,
    /// Runs of consecutive distinct ids (complete count).
    pub range_count: usize,
    /// The first [`MAX_EVIDENCE`] runs, `[first, last]`.
    pub ranges: Vec<[i64; 2]>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl UniqueIdsResult {
    /// What is wrong, for a person (empty when valid).
    pub fn explain(&self) -> String {
        let mut out = String::new();
        if self.duplicate_count > 0 {
            let _ = writeln!(
                out,
                "{} id(s) of {} acknowledged were handed out more than once:",
                self.duplicate_count, self.acknowledged
            );
            for d in &self.duplicates {
                let _ = writeln!(
                    out,
                    "  id {} to processes {:?} (completions at indexes {:?})",
                    d.id, d.processes, d.indexes
                );
            }
        }
        for reason in &self.reasons {
            let _ = writeln!(out, "unknown: {reason}");
        }
        out
    }
}

/// Checks a unique-ids history. Errors only for a history that is not a history.
pub fn check(history: &History) -> Result<UniqueIdsResult, HistoryError> {
    let pairs = history.pairs()?;
    let (mut generates, mut acknowledged, mut failed, mut unknown) = (0, 0, 0, 0);
    let mut seen: BTreeMap<i64, Vec<(u64, u64)>> = BTreeMap::new();
    let mut unreadable: Vec<(u64, Value)> = Vec::new();
    for pair in &pairs {
        let invoke = &history.ops[pair.invoke];
        let Process::Client(process) = invoke.process else {
            continue;
        };
        if invoke.f != GENERATE {
            continue;
        }
        generates += 1;
        let Some(completion) = pair.completion.map(|c| &history.ops[c]) else {
            unknown += 1;
            continue;
        };
        match completion.kind {
            OpType::Ok => {
                acknowledged += 1;
                match id_of(&completion.value) {
                    Some(id) => seen
                        .entry(id)
                        .or_default()
                        .push((process, completion.index)),
                    None => unreadable.push((completion.index, completion.value.clone())),
                }
            }
            OpType::Fail => failed += 1,
            _ => unknown += 1,
        }
    }
    let mut duplicate_count = 0;
    let mut duplicates = Vec::new();
    for (&id, acks) in &seen {
        if acks.len() > 1 {
            duplicate_count += 1;
            if duplicates.len() < MAX_EVIDENCE {
                duplicates.push(Duplicate {
                    id,
                    processes: acks.iter().map(|a| a.0).collect(),
                    indexes: acks.iter().map(|a| a.1).collect(),
                });
            }
        }
    }
    let mut ranges: Vec<[i64; 2]> = Vec::new();
    let mut range_count = 0;
    let mut current: Option<[i64; 2]> = None;
    for &id in seen.keys() {
        match current {
            Some([first, last]) if last.checked_add(1) == Some(id) => current = Some([first, id]),
            Some(run) => {
                range_count += 1;
                if ranges.len() < MAX_EVIDENCE {
                    ranges.push(run);
                }
                current = Some([id, id]);
            }
            None => current = Some([id, id]),
        }
    }
    if let Some(run) = current {
        range_count += 1;
        if ranges.len() < MAX_EVIDENCE {
            ranges.push(run);
        }
    }
    let mut reasons = Vec::new();
    if let Some((index, value)) = unreadable.first() {
        reasons.push(format!(
            "{} acknowledged id(s) are not integers, the first at index {index}: {value}",
            unreadable.len()
        ));
    }
    let valid = if duplicate_count > 0 {
        Validity::Invalid
    } else if !reasons.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    Ok(UniqueIdsResult {
        valid,
        generates,
        acknowledged,
        failed,
        unknown,
        distinct: seen.len(),
        duplicate_count,
        duplicates,
        lowest: seen.keys().next().copied(),
        highest: seen.keys().next_back().copied(),
        range_count,
        ranges,
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::Op;
    use serde_json::json;

    /// `(process, kind, value)`: an invocation and its completion (`None`: never completed).
    fn history(steps: &[(u64, Option<OpType>, Value)]) -> History {
        let mut ops = Vec::new();
        for (process, kind, value) in steps {
            ops.push(Op::invoke(*process, GENERATE, Value::Null));
            if let Some(kind) = kind {
                ops.push(Op::complete(*process, *kind, GENERATE, value.clone()));
            }
        }
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        History::new(ops)
    }

    const OK: Option<OpType> = Some(OpType::Ok);

    #[test]
    fn distinct_ids_are_valid_and_ranges_show_the_gaps() {
        let h = history(&[
            (0, OK, json!(1)),
            (1, OK, json!("2")),
            (2, Some(OpType::Info), Value::Null),
            (3, OK, json!(4)),
            (4, Some(OpType::Fail), json!("unavailable")),
            (5, None, Value::Null),
        ]);
        let r = check(&h).unwrap();
        assert_eq!(r.valid, Validity::Valid, "{}", r.explain());
        assert_eq!(
            (r.generates, r.acknowledged, r.failed, r.unknown),
            (6, 3, 1, 2)
        );
        assert_eq!((r.lowest, r.highest, r.distinct), (Some(1), Some(4), 3));
        assert_eq!(r.ranges, vec![[1, 2], [4, 4]]);
        assert_eq!(r.range_count, 2);
        assert!(r.explain().is_empty());
    }

    #[test]
    fn an_id_acknowledged_twice_is_a_duplicate_even_to_one_process() {
        let h = history(&[
            (0, OK, json!(7)),
            (0, OK, json!(8)),
            (0, OK, json!(7)),
            (1, OK, json!("8")),
        ]);
        let r = check(&h).unwrap();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.duplicate_count, 2);
        assert_eq!(r.duplicates[0].processes, vec![0, 0]);
        assert_eq!(r.duplicates[1].processes, vec![0, 1]);
        assert!(r.explain().contains("2 id(s) of 4"));
    }

    #[test]
    fn empty_and_unreadable_histories() {
        let r = check(&History::default()).unwrap();
        assert_eq!(r.valid, Validity::Valid);
        assert_eq!((r.range_count, r.lowest), (0, None));
        let r = check(&history(&[(0, OK, json!({"id": 1}))])).unwrap();
        assert_eq!(r.valid, Validity::Unknown);
        assert!(r.explain().contains("not integers"));
    }
}
