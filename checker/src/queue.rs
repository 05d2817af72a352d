//! The work queue checker: lost jobs, duplicate deliveries, jobs completed twice, jobs nobody
//! enqueued, judged against the target's delivery promise.
//!
//! A queue history has `enqueue` (invoke value = a unique job id; ok = queued, fail =
//! certainly not, info or no completion = unknown), `claim` (ok value = the job delivered to
//! this process, or null for an empty queue; invoke value `"drain"` in the final drain after
//! the last fault healed) and `complete` (invoke value = the job; ok = done). See
//! `faultline_core::queue`.
//!
//! The checks, with the promise ([`Delivery`]) deciding two of them:
//! - **unexpected**: a job delivered that no enqueue named, or whose enqueue `fail`ed.
//! - **completed-twice**: two ok completes of one job (every target completes a job only
//!   for the claim in force, so this is always a violation).
//! - **duplicate-delivery**: a job delivered by two ok claims. A violation for
//!   `exactly-once`; for `at-least-once` it is reported (`allowed`) and valid.
//! - **lost**: a job enqueued `ok` that the drain did not account for. `at-least-once`: a
//!   job with no ok or unknown complete (a claim that was not completed must come back).
//!   `exactly-once`: a job no ok claim delivered; a claim whose outcome is unknown (`info`,
//!   or never completed) may have taken one job with it, so while the undelivered jobs are no
//!   more than those claims they are `in-doubt` (allowed, reported), and past that every
//!   undelivered job is reported lost.
//!
//! Without a drain that ended in an empty queue (an ok drain claim answering null) the lost
//! check cannot tell a lost job from one still queued: the verdict is at best `unknown`.
//!
//! ```
//! use faultline_checker::{queue, Validity};
//! use faultline_core::queue::Delivery;
//! use faultline_core::{History, Op, OpType};
//! use serde_json::json;
//! let ops = vec![
//!     Op::invoke(0, "enqueue", json!(1)),
//!     Op::complete(0, OpType::Ok, "enqueue", json!(1)),
//!     Op::invoke(1, "claim", json!(null)),
//!     Op::complete(1, OpType::Ok, "claim", json!(1)),
//!     Op::invoke(2, "claim", json!("drain")),
//!     Op::complete(2, OpType::Ok, "claim", json!(1)),
//!     Op::invoke(2, "claim", json!("drain")),
//!     Op::complete(2, OpType::Ok, "claim", json!(null)),
//! ];
//! let history = History::new(ops);
//! let strict = queue::check(&history, Delivery::ExactlyOnce).unwrap();
//! assert_eq!(strict.valid, Validity::Invalid);
//! let lenient = queue::check(&history, Delivery::AtLeastOnce).unwrap();
//! // Delivered twice is allowed at least once; never completed is not.
//! assert_eq!(lenient.allowed["duplicate-delivery"], 1);
//! assert_eq!(lenient.counts["lost"], 1);
//! ```
//!
//! Design decision: the promise is an input, not a guess from the history: the same history
//! is valid for a queue that promises at-least-once and invalid for one that promised
//! exactly-once, and the report says which promise it judged.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use faultline_core::queue::Delivery;
use faultline_core::{History, HistoryError, OpType, Process};

use crate::Validity;

/// `f` of an enqueue.
pub const ENQUEUE: &str = "enqueue";
/// `f` of a claim.
pub const CLAIM: &str = "claim";
/// `f` of a completion.
pub const COMPLETE: &str = "complete";
/// Invoke value of a drain claim.
pub const DRAIN: &str = "drain";
/// Evidence items kept; the counts are always complete.
pub const MAX_EVIDENCE: usize = 20;

/// One anomaly, with the operations that show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Anomaly {
    /// `unexpected`, `failed-enqueue-delivered`, `completed-twice`, `duplicate-delivery`,
    /// `lost`, `in-doubt`.
    pub kind: &'static str,
    pub job: Value,
    /// History indexes: the enqueue's invocation, then the claims' or completes' completions.
    pub ops: Vec<u64>,
    pub detail: String,
}

/// The verdict for a queue history.
#[derive(Debug, Clone, Serialize)]
pub struct QueueResult {
    pub valid: Validity,
    /// The promise judged: `exactly-once` or `at-least-once`.
    pub delivery: &'static str,
    pub enqueued_ok: usize,
    pub enqueue_failed: usize,
    pub enqueue_unknown: usize,
    /// Ok claims that returned a job.
    pub deliveries: usize,
    /// Distinct jobs delivered.
    pub delivered: usize,
    /// Claims whose outcome is unknown (info, or never completed).
    pub claims_unknown: usize,
    /// Distinct jobs completed ok.
    pub completed: usize,
    /// Whether a drain claim found the queue empty.
    pub drained: bool,
    /// Violations by kind (complete counts).
    pub counts: BTreeMap<&'static str, usize>,
    /// What the promise allows, by kind (`duplicate-delivery` for at-least-once, `in-doubt`).
    pub allowed: BTreeMap<&'static str, usize>,
    /// The first [`MAX_EVIDENCE`] anomalies, violations first.
    pub anomalies: Vec<Anomaly>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl QueueResult {
    /// What is wrong, for a person (empty when valid).
    pub fn explain(&self) -> String {
        let mut out = String::new();
        if self.valid == Validity::Valid {
            return out;
        }
        let list = |counts: &BTreeMap<&str, usize>| {
            counts
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.counts.is_empty() {
            let _ = writeln!(
                out,
                "the queue broke its {} promise: {}",
                self.delivery,
                list(&self.counts)
            );
        }
        if !self.allowed.is_empty() {
            let _ = writeln!(out, "allowed by {}: {}", self.delivery, list(&self.allowed));
        }
        for anomaly in &self.anomalies {
            let _ = writeln!(
                out,
                "  {} job {} (ops {:?}): {}",
                anomaly.kind, anomaly.job, anomaly.ops, anomaly.detail
            );
        }
        if let Some(reason) = &self.reason {
            let _ = writeln!(out, "unknown: {reason}");
        }
        out
    }
}

#[derive(Default)]
struct Job {
    value: Value,
    /// The enqueue: invocation index and outcome (`None`: never completed).
    enqueue: Option<(u64, Option<OpType>)>,
    /// Completion indexes of the ok claims that delivered it.
    deliveries: Vec<u64>,
    /// Completion indexes of ok completes.
    completes: Vec<u64>,
    /// A complete whose outcome is unknown.
    maybe_completed: bool,
}

/// Checks a queue history against `delivery`. Errors only for a malformed pairing.
pub fn check(history: &History, delivery: Delivery) -> Result<QueueResult, HistoryError> {
    let pairs = history.pairs()?;
    let mut jobs: HashMap<String, Job> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut job = |jobs: &mut HashMap<String, Job>, value: &Value| -> String {
        let text = value.to_string();
        jobs.entry(text.clone()).or_insert_with(|| {
            order.push(text.clone());
            Job {
                value: value.clone(),
                ..Job::default()
            }
        });
        text
    };
    let mut claims_unknown = 0;
    let mut deliveries = 0;
    let mut drained = false;
    for pair in &pairs {
        let invoke = &history.ops[pair.invoke];
        if !matches!(invoke.process, Process::Client(_)) {
            continue;
        }
        let completion = pair.completion.map(|c| &history.ops[c]);
        let kind = completion.map(|c| c.kind);
        match invoke.f.as_str() {
            ENQUEUE => {
                let id = job(&mut jobs, &invoke.value);
                jobs.get_mut(&id).expect("inserted").enqueue = Some((invoke.index, kind));
            }
            CLAIM => match completion {
                Some(c) if c.kind == OpType::Ok => {
                    if c.value.is_null() {
                        drained |= invoke.value == DRAIN;
                    } else {
                        deliveries += 1;
                        let id = job(&mut jobs, &c.value);
                        jobs.get_mut(&id)
                            .expect("inserted")
                            .deliveries
                            .push(c.index);
                    }
                }
                Some(c) if c.kind == OpType::Fail => {}
                _ => claims_unknown += 1,
            },
            COMPLETE => {
                let id = job(&mut jobs, &invoke.value);
                let entry = jobs.get_mut(&id).expect("inserted");
                match completion {
                    Some(c) if c.kind == OpType::Ok => entry.completes.push(c.index),
                    Some(c) if c.kind == OpType::Fail => {}
                    _ => entry.maybe_completed = true,
                }
            }
            _ => {}
        }
    }

    let mut violations: Vec<Anomaly> = Vec::new();
    let mut allowed_evidence: Vec<Anomaly> = Vec::new();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut allowed: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut report = |violation: bool, anomaly: Anomaly| {
        let (map, list) = if violation {
            (&mut counts, &mut violations)
        } else {
            (&mut allowed, &mut allowed_evidence)
        };
        *map.entry(anomaly.kind).or_default() += 1;
        if list.len() < MAX_EVIDENCE {
            list.push(anomaly);
        }
    };
    let mut undelivered: Vec<&Job> = Vec::new();
    for id in &order {
        let job = &jobs[id];
        let enqueue_index: Vec<u64> = job.enqueue.iter().map(|(i, _)| *i).collect();
        if !job.deliveries.is_empty() {
            match job.enqueue {
                None => report(
                    true,
                    Anomaly {
                        kind: "unexpected",
                        job: job.value.clone(),
                        ops: job.deliveries.clone(),
                        detail: format!(
                            "delivered (claim at index {}) but never enqueued",
                            job.deliveries[0]
                        ),
                    },
                ),
                Some((index, Some(OpType::Fail))) => report(
                    true,
                    Anomaly {
                        kind: "failed-enqueue-delivered",
                        job: job.value.clone(),
                        ops: [vec![index], job.deliveries.clone()].concat(),
                        detail: format!(
                            "its enqueue (index {index}) failed, so it was certainly not queued, \
                             yet a claim delivered it"
                        ),
                    },
                ),
                _ => {}
            }
        }
        if job.deliveries.len() > 1 {
            report(
                delivery == Delivery::ExactlyOnce,
                Anomaly {
                    kind: "duplicate-delivery",
                    job: job.value.clone(),
                    ops: [enqueue_index.clone(), job.deliveries.clone()].concat(),
                    detail: format!(
                        "delivered {} times (claims completed at indexes {:?})",
                        job.deliveries.len(),
                        job.deliveries
                    ),
                },
            );
        }
        if job.completes.len() > 1 {
            report(
                true,
                Anomaly {
                    kind: "completed-twice",
                    job: job.value.clone(),
                    ops: [enqueue_index.clone(), job.completes.clone()].concat(),
                    detail: format!(
                        "completed {} times (completes at indexes {:?}); a complete must \
                         succeed only for the claim in force",
                        job.completes.len(),
                        job.completes
                    ),
                },
            );
        }
        let enqueued_ok = matches!(job.enqueue, Some((_, Some(OpType::Ok))));
        let accounted = match delivery {
            Delivery::AtLeastOnce => !job.completes.is_empty() || job.maybe_completed,
            Delivery::ExactlyOnce => !job.deliveries.is_empty(),
        };
        if enqueued_ok && !accounted {
            undelivered.push(job);
        }
    }

    let mut reason = None;
    if !drained {
        reason = Some(
            "no drain claim found the queue empty, so a lost job cannot be told from one still \
             queued"
                .to_string(),
        );
    } else {
        let in_doubt = delivery == Delivery::ExactlyOnce && undelivered.len() <= claims_unknown;
        for job in undelivered {
            let index = job.enqueue.map_or(0, |(i, _)| i);
            let detail = match delivery {
                Delivery::AtLeastOnce => format!(
                    "enqueued ok (index {index}), delivered {} time(s), never completed, and \
                     not delivered again by the end of the drain",
                    job.deliveries.len()
                ),
                Delivery::ExactlyOnce if in_doubt => format!(
                    "enqueued ok (index {index}), never delivered; one of the {claims_unknown} \
                     claims of unknown outcome may have taken it"
                ),
                Delivery::ExactlyOnce => format!(
                    "enqueued ok (index {index}), never delivered by the end of the drain (more \
                     undelivered jobs than the {claims_unknown} claims of unknown outcome could \
                     have taken)"
                ),
            };
            report(
                !in_doubt,
                Anomaly {
                    kind: if in_doubt { "in-doubt" } else { "lost" },
                    job: job.value.clone(),
                    ops: vec![index],
                    detail,
                },
            );
        }
    }

    let count_enqueues = |want: fn(Option<OpType>) -> bool| {
        jobs.values()
            .filter(|j| j.enqueue.is_some_and(|(_, kind)| want(kind)))
            .count()
    };
    let valid = if !counts.is_empty() {
        Validity::Invalid
    } else if reason.is_some() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    violations.extend(allowed_evidence);
    violations.truncate(MAX_EVIDENCE);
    Ok(QueueResult {
        valid,
        delivery: delivery.as_str(),
        enqueued_ok: count_enqueues(|k| k == Some(OpType::Ok)),
        enqueue_failed: count_enqueues(|k| k == Some(OpType::Fail)),
        enqueue_unknown: count_enqueues(|k| !matches!(k, Some(OpType::Ok) | Some(OpType::Fail))),
        deliveries,
        delivered: jobs.values().filter(|j| !j.deliveries.is_empty()).count(),
        claims_unknown,
        completed: jobs.values().filter(|j| !j.completes.is_empty()).count(),
        drained,
        counts,
        allowed,
        anomalies: violations,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::Op;
    use serde_json::json;

    /// A tiny history language, one operation per word, each completing before the next
    /// begins: `e0:1` = process 0 enqueues 1 (ok); `e0:1!` fail; `e0:1?` info; `c1:1` = process
    /// 1 claims and gets 1; `c1:-` gets null; `c1:?` a claim of unknown outcome; `d1:-` a
    /// drain claim; `x1:1` completes 1 (`x1:1!` fails, `x1:1?` unknown).
    fn history(script: &str) -> History {
        let mut ops = Vec::new();
        for word in script.split_whitespace() {
            let process: u64 = word[1..word.find(':').unwrap()].parse().unwrap();
            let arg = &word[word.find(':').unwrap() + 1..];
            let (arg, kind) = match arg.chars().last().unwrap() {
                '!' => (&arg[..arg.len() - 1], OpType::Fail),
                '?' => (&arg[..arg.len() - 1], OpType::Info),
                _ => (arg, OpType::Ok),
            };
            let value = |s: &str| {
                if s.is_empty() || s == "-" {
                    json!(null)
                } else {
                    json!(s.parse::<u64>().unwrap())
                }
            };
            let (f, invoke, result) = match &word[..1] {
                "e" => ("enqueue", value(arg), value(arg)),
                "c" => ("claim", json!(null), value(arg)),
                "d" => ("claim", json!("drain"), value(arg)),
                "x" => ("complete", value(arg), value(arg)),
                other => panic!("{other}"),
            };
            ops.push(Op::invoke(process, f, invoke.clone()));
            let result = if kind == OpType::Ok { result } else { invoke };
            ops.push(Op::complete(process, kind, f, result));
        }
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        History::new(ops)
    }

    fn check_both(script: &str) -> (QueueResult, QueueResult) {
        let h = history(script);
        (
            check(&h, Delivery::ExactlyOnce).unwrap(),
            check(&h, Delivery::AtLeastOnce).unwrap(),
        )
    }

    #[test]
    fn every_job_delivered_once_and_completed_is_valid_for_both_promises() {
        let (strict, lenient) = check_both("e0:1 e0:2 c1:1 x1:1 c2:2 x2:2 d1:- d2:-");
        assert_eq!(strict.valid, Validity::Valid, "{}", strict.explain());
        assert_eq!(lenient.valid, Validity::Valid, "{}", lenient.explain());
        assert_eq!(
            (strict.enqueued_ok, strict.delivered, strict.completed),
            (2, 2, 2)
        );
        assert!(strict.drained);
    }

    #[test]
    fn the_empty_history_and_a_history_without_a_drain_are_unknown() {
        let (strict, _) = check_both("");
        assert_eq!(strict.valid, Validity::Unknown);
        let (strict, _) = check_both("e0:1 c1:1 x1:1 c1:-");
        assert_eq!(
            strict.valid,
            Validity::Unknown,
            "a main-phase empty claim is no drain"
        );
        assert!(strict.reason.unwrap().contains("drain"));
    }

    #[test]
    fn a_job_delivered_twice_breaks_exactly_once_only() {
        let (strict, lenient) = check_both("e0:1 c1:1 c2:1 x2:1 x1:1! d1:-");
        assert_eq!(strict.valid, Validity::Invalid);
        assert_eq!(strict.counts["duplicate-delivery"], 1);
        assert_eq!(lenient.valid, Validity::Valid, "{}", lenient.explain());
        assert_eq!(lenient.allowed["duplicate-delivery"], 1);
    }

    #[test]
    fn a_job_completed_twice_is_always_invalid() {
        let (strict, lenient) = check_both("e0:1 c1:1 x1:1 c2:1 x2:1 d1:-");
        assert_eq!(strict.counts["completed-twice"], 1);
        assert_eq!(lenient.counts["completed-twice"], 1);
        assert_eq!(lenient.valid, Validity::Invalid);
    }

    #[test]
    fn a_job_never_delivered_is_lost_unless_an_unknown_claim_may_have_taken_it() {
        let (strict, lenient) = check_both("e0:1 e0:2 c1:1 x1:1 d2:-");
        assert_eq!(strict.counts["lost"], 1);
        assert_eq!(lenient.counts["lost"], 1);
        assert_eq!(strict.anomalies[0].job, json!(2));
        // One claim of unknown outcome: exactly-once may have lost job 2 to it.
        let (strict, lenient) = check_both("e0:1 e0:2 c1:1 x1:1 c2:? d3:-");
        assert_eq!(strict.valid, Validity::Valid, "{}", strict.explain());
        assert_eq!(strict.allowed["in-doubt"], 1);
        assert_eq!(strict.claims_unknown, 1);
        // At-least-once promised to bring it back.
        assert_eq!(lenient.counts["lost"], 1);
        // Two undelivered jobs, one unknown claim: both reported lost.
        let (strict, _) = check_both("e0:1 e0:2 c2:? d3:-");
        assert_eq!(strict.counts["lost"], 2);
    }

    #[test]
    fn at_least_once_needs_a_completion_and_accepts_unknown_ones() {
        // Claimed, its complete failed, never redelivered: lost for at-least-once.
        let (strict, lenient) = check_both("e0:1 c1:1 x1:1! d1:-");
        assert_eq!(strict.valid, Validity::Valid);
        assert_eq!(lenient.counts["lost"], 1);
        let (_, lenient) = check_both("e0:1 c1:1 x1:1? d2:-");
        assert_eq!(lenient.valid, Validity::Valid, "{}", lenient.explain());
    }

    #[test]
    fn unknown_and_failed_enqueues() {
        // An info enqueue may or may not be queued: delivered or not, fine.
        let (strict, _) = check_both("e0:1? e1:2? c2:2 x2:2 d2:-");
        assert_eq!(strict.valid, Validity::Valid, "{}", strict.explain());
        assert_eq!(strict.enqueue_unknown, 2);
        // A failed enqueue must not be delivered; nor a job nobody enqueued.
        let (strict, lenient) = check_both("e0:1! c2:1 x2:1 c2:7 x2:7 d2:-");
        assert_eq!(strict.counts["failed-enqueue-delivered"], 1);
        assert_eq!(lenient.counts["unexpected"], 1);
        assert!(strict.explain().contains("never enqueued"));
    }
}
