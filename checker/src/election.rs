//! The election checker: the consensus properties of leader election, judged on what clients
//! observed (see `faultline_core::election` for the operations).
//!
//! An **observation** is `{"epoch": E, "leader": L}`: the value of an `ok` `campaign` (a
//! **decision**: the campaigning process won epoch `E`) or of an `ok` `leader` query. A `fail`
//! or `info` campaign and a query that found no leader observe nothing; a campaign of any
//! outcome (also one that never completed) makes its process a **candidate** from its
//! invocation on. Four properties:
//!
//! 1. **Uniform agreement**: never two leaders for one epoch, across every observation of
//!    every process.
//! 2. **Integrity**: no epoch is decided twice (two `ok` campaigns with one epoch, whoever
//!    made them).
//! 3. **Validity**: every leader observed was a candidate: the name of a process that invoked
//!    a campaign before the observation completed, or, when the nodes elect among themselves
//!    ([`ElectionOptions::candidates`]), one of the nodes. A campaign that returns another's
//!    name breaks it too.
//! 4. **Termination**: a leader is observed within [`ElectionOptions::termination_bound_ms`]
//!    after the last fault heals: by an observation invoked at or after the last moment the
//!    faults in force became none (each undo, `stop-partition`, `resume`, `start`,
//!    `reset-clock`, ..., ends the faults of its kind; `heal` ends all; a final `heal` after
//!    every fault was undone changes nothing); from the start of the history when there was
//!    no fault. Failing that, it is judged from the last nemesis event (the final heal, after
//!    which the final phase asks; between the two, clients may have stopped asking): a history
//!    that ends before the bound without such an observation, or with a fault still in
//!    force, is `unknown` for termination; one that runs past the bound without one is
//!    `invalid`.
//!
//! ```
//! use faultline_checker::{election, Validity};
//! use faultline_core::{History, Op, OpType};
//! use serde_json::json;
//! let ops = vec![
//!     Op::invoke(0, "campaign", json!(null)).with_time(0),
//!     Op::complete(0, OpType::Ok, "campaign", json!({"epoch": 1, "leader": "p0"})).with_time(10),
//!     Op::invoke(1, "campaign", json!(null)).with_time(20),
//!     Op::complete(1, OpType::Ok, "campaign", json!({"epoch": 1, "leader": "p1"})).with_time(30),
//! ];
//! let result = election::check(&History::new(ops), &election::ElectionOptions::default()).unwrap();
//! assert_eq!(result.valid, Validity::Invalid);
//! assert_eq!(result.counts["agreement"], 1);
//! ```
//!
//! Design decision: the checker trusts nothing but completed observations. An `info`
//! campaign may have won, so its process stays a candidate (no validity violation when
//! others see it lead), but it decides nothing; an epoch is a name the service gives, so two
//! observations disagree only when they name the same epoch.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use faultline_core::election::{candidate_name, CAMPAIGN, LEADER};
use faultline_core::{History, HistoryError, Op, OpType, Process};

use crate::Validity;

/// Evidence items kept per kind; the counts are always complete.
pub const MAX_EVIDENCE: usize = 20;

/// How to check an election history.
#[derive(Debug, Clone)]
pub struct ElectionOptions {
    /// How soon after the last heal a leader must be observed, in ms.
    pub termination_bound_ms: u64,
    /// The fixed candidates (the nodes, when they elect among themselves); `None`: the
    /// processes that campaigned.
    pub candidates: Option<Vec<String>>,
}

impl Default for ElectionOptions {
    fn default() -> Self {
        ElectionOptions {
            termination_bound_ms: faultline_core::election::DEFAULT_TERMINATION_BOUND_MS,
            candidates: None,
        }
    }
}

/// One observation of a leader.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Observation {
    pub process: u64,
    /// `campaign` (a decision) or `leader` (a query).
    pub f: &'static str,
    pub epoch: i64,
    pub leader: String,
    /// History index of the completion.
    pub index: u64,
    /// Nanoseconds: invocation and completion.
    pub invoke_ns: u64,
    pub complete_ns: u64,
}

/// A broken property, with the observations that show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Anomaly {
    /// `agreement`, `integrity` or `validity`.
    pub kind: &'static str,
    pub epoch: i64,
    pub observations: Vec<Observation>,
    pub detail: String,
}

/// The termination verdict.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Termination {
    pub valid: Validity,
    pub bound_ms: u64,
    /// When the last fault healed (ns; 0 when there was no fault): the last moment the faults
    /// in force became none when a leader was seen within the bound after it, else the last
    /// nemesis event (the final heal); `None` when a fault was never healed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healed_ns: Option<u64>,
    /// Nemesis events in the history.
    pub nemesis_events: usize,
    /// The first leader observed after the heal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_leader: Option<Observation>,
    /// How long after the heal it completed, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_after_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The verdict for an election history.
#[derive(Debug, Clone, Serialize)]
pub struct ElectionResult {
    pub valid: Validity,
    pub campaigns: usize,
    /// `ok` campaigns (decisions).
    pub elected: usize,
    /// `fail` campaigns: another led, or the request certainly did nothing (no connection).
    pub not_elected: usize,
    /// Campaigns whose outcome is unknown (`info` or never completed).
    pub campaigns_unknown: usize,
    pub leader_queries: usize,
    /// Queries that found no leader.
    pub leaderless: usize,
    pub observations: usize,
    /// Distinct epochs and leaders observed.
    pub epochs: usize,
    pub leaders: usize,
    /// Anomalies by kind (complete counts).
    pub counts: BTreeMap<&'static str, usize>,
    /// The first [`MAX_EVIDENCE`] anomalies of each kind.
    pub anomalies: Vec<Anomaly>,
    pub termination: Termination,
    /// Why the verdict is unknown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl ElectionResult {
    /// What is wrong, for a person (empty when valid).
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for (kind, n) in &self.counts {
            let what = match *kind {
                "agreement" => "epoch(s) with two or more leaders (uniform agreement broken)",
                "integrity" => "epoch(s) decided by two or more campaigns (integrity broken)",
                _ => "observation(s) of a leader that was not a candidate (validity broken)",
            };
            let _ = writeln!(out, "{n} {what}:");
            for anomaly in self.anomalies.iter().filter(|a| a.kind == *kind) {
                let _ = writeln!(out, "  {}", anomaly.detail);
            }
        }
        if self.termination.valid != Validity::Valid {
            let _ = writeln!(
                out,
                "termination {}: {}",
                self.termination.valid,
                self.termination.reason.as_deref().unwrap_or("")
            );
        }
        for reason in &self.reasons {
            let _ = writeln!(out, "unknown: {reason}");
        }
        out
    }
}

fn describe(o: &Observation) -> String {
    let what = if o.f == CAMPAIGN {
        "won by campaign"
    } else {
        "seen by query"
    };
    format!(
        "{} {what} of process {} (index {}, {:.3} s)",
        o.leader,
        o.process,
        o.index,
        o.complete_ns as f64 / 1e9
    )
}

/// An observation's epoch and leader, or why it cannot be read.
fn parse_observation(value: &Value) -> Result<(i64, String), String> {
    let epoch = value
        .get("epoch")
        .and_then(|e| e.as_i64().or_else(|| e.as_str()?.parse().ok()))
        .ok_or_else(|| format!("no integer epoch in {value}"))?;
    let leader = match value.get("leader") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(format!("no leader name in {value}")),
    };
    Ok((epoch, leader))
}

/// Checks an election history. Errors only for a history that is not a history (malformed
/// pairing); a value the checker cannot read makes the verdict `unknown` with the reason.
pub fn check(history: &History, options: &ElectionOptions) -> Result<ElectionResult, HistoryError> {
    let pairs = history.pairs()?;
    let mut reasons = Vec::new();
    let (mut campaigns, mut elected, mut not_elected, mut campaigns_unknown) = (0, 0, 0, 0);
    let (mut leader_queries, mut leaderless) = (0, 0);
    let mut observations: Vec<Observation> = Vec::new();
    // A candidate's name -> the history position of its first campaign's invocation.
    let mut candidates: HashMap<String, usize> = HashMap::new();
    let mut unreadable = 0usize;
    // Position in the history of each observation's completion (for validity).
    let mut positions: Vec<usize> = Vec::new();
    for pair in &pairs {
        let invoke = &history.ops[pair.invoke];
        let Process::Client(process) = invoke.process else {
            continue;
        };
        let completion = pair.completion.map(|c| (c, &history.ops[c]));
        let f = match invoke.f.as_str() {
            CAMPAIGN => {
                campaigns += 1;
                candidates
                    .entry(candidate_name(process))
                    .or_insert(pair.invoke);
                match completion.map(|(_, c)| c.kind) {
                    Some(OpType::Ok) => elected += 1,
                    Some(OpType::Fail) => not_elected += 1,
                    _ => campaigns_unknown += 1,
                }
                CAMPAIGN
            }
            LEADER => {
                leader_queries += 1;
                LEADER
            }
            _ => continue,
        };
        let Some((position, completion)) = completion else {
            continue;
        };
        if completion.kind != OpType::Ok {
            continue;
        }
        if f == LEADER && completion.value.is_null() {
            leaderless += 1;
            continue;
        }
        match parse_observation(&completion.value) {
            Ok((epoch, leader)) => {
                positions.push(position);
                observations.push(Observation {
                    process,
                    f,
                    epoch,
                    leader,
                    index: completion.index,
                    invoke_ns: invoke.time.unwrap_or(0),
                    complete_ns: completion.time.unwrap_or(0),
                });
            }
            Err(why) => {
                unreadable += 1;
                if unreadable == 1 {
                    reasons.push(format!(
                        "the {f} completed at index {} has an unreadable value: {why}",
                        completion.index
                    ));
                }
            }
        }
    }
    if unreadable > 1 {
        reasons.push(format!("{unreadable} observations are unreadable in all"));
    }

    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut anomalies: Vec<Anomaly> = Vec::new();
    let mut report = |anomaly: Anomaly| {
        let n = counts.entry(anomaly.kind).or_default();
        *n += 1;
        if *n <= MAX_EVIDENCE {
            anomalies.push(anomaly);
        }
    };

    // Agreement and integrity, epoch by epoch.
    let mut by_epoch: BTreeMap<i64, Vec<&Observation>> = BTreeMap::new();
    for o in &observations {
        by_epoch.entry(o.epoch).or_default().push(o);
    }
    for (&epoch, seen) in &by_epoch {
        let mut first_of_leader: BTreeMap<&str, &Observation> = BTreeMap::new();
        for o in seen {
            first_of_leader.entry(o.leader.as_str()).or_insert(o);
        }
        if first_of_leader.len() > 1 {
            let firsts: Vec<Observation> = first_of_leader.values().map(|o| (*o).clone()).collect();
            let detail = format!(
                "epoch {epoch} has {} leaders: {}",
                firsts.len(),
                firsts.iter().map(describe).collect::<Vec<_>>().join("; ")
            );
            report(Anomaly {
                kind: "agreement",
                epoch,
                observations: firsts,
                detail,
            });
        }
        let wins: Vec<Observation> = seen
            .iter()
            .filter(|o| o.f == CAMPAIGN)
            .map(|o| (*o).clone())
            .collect();
        if wins.len() > 1 {
            let detail = format!(
                "epoch {epoch} was decided {} times: {}",
                wins.len(),
                wins.iter().map(describe).collect::<Vec<_>>().join("; ")
            );
            report(Anomaly {
                kind: "integrity",
                epoch,
                observations: wins,
                detail,
            });
        }
    }

    // Validity: the leader was a candidate when it was observed.
    let fixed: Option<BTreeSet<&str>> = options
        .candidates
        .as_ref()
        .map(|names| names.iter().map(String::as_str).collect());
    for (o, &position) in observations.iter().zip(&positions) {
        let why = if o.f == CAMPAIGN && o.leader != candidate_name(o.process) {
            Some(format!(
                "process {}'s campaign returned another's name: {}",
                o.process,
                describe(o)
            ))
        } else {
            let candidate = match &fixed {
                Some(names) => names.contains(o.leader.as_str()),
                None => candidates.get(&o.leader).is_some_and(|&at| at < position),
            };
            (!candidate).then(|| {
                format!(
                    "epoch {}: {}, which {}",
                    o.epoch,
                    describe(o),
                    if fixed.is_some() {
                        "is not a node".to_string()
                    } else {
                        "had not campaigned".to_string()
                    }
                )
            })
        };
        if let Some(detail) = why {
            report(Anomaly {
                kind: "validity",
                epoch: o.epoch,
                observations: vec![o.clone()],
                detail,
            });
        }
    }

    let termination = termination(history, &observations, options.termination_bound_ms);
    let mut valid = if counts.is_empty() {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    valid = valid.max(termination.valid);
    if !reasons.is_empty() {
        valid = valid.max(Validity::Unknown);
    }
    let leaders: BTreeSet<&str> = observations.iter().map(|o| o.leader.as_str()).collect();
    Ok(ElectionResult {
        valid,
        campaigns,
        elected,
        not_elected,
        campaigns_unknown,
        leader_queries,
        leaderless,
        observations: observations.len(),
        epochs: by_epoch.len(),
        leaders: leaders.len(),
        counts,
        anomalies,
        termination,
        reasons,
    })
}

/// The kind of fault a nemesis event is about, and whether it starts (`true`) or undoes it;
/// `heal` is the caller's.
fn fault_kind(f: &str) -> (&str, bool) {
    match f {
        "start-partition" => ("partition", true),
        "stop-partition" => ("partition", false),
        "start-loss" => ("loss", true),
        "stop-loss" => ("loss", false),
        "kill" => ("kill", true),
        "start" => ("kill", false),
        "pause" => ("pause", true),
        "resume" => ("pause", false),
        "bump-clock" | "strobe-clock" => ("clock", true),
        "reset-clock" => ("clock", false),
        // An action this checker does not know is a fault only `heal` undoes.
        other => (other, true),
    }
}

/// When the last fault healed: the last moment the set of faults in force became empty (each
/// undo event ends the faults of its kind; `heal` ends every fault). 0 when there was no
/// fault; `Err` when faults are still in force at the end, or an event has no time.
fn healed_at(nemesis: &[&Op]) -> Result<u64, String> {
    let mut in_force: BTreeSet<&str> = BTreeSet::new();
    let mut healed_ns = 0;
    for event in nemesis {
        let was_faulty = !in_force.is_empty();
        if event.f == "heal" {
            in_force.clear();
        } else {
            match fault_kind(&event.f) {
                (kind, true) => {
                    in_force.insert(kind);
                }
                (kind, false) => {
                    in_force.remove(kind);
                }
            }
        }
        if was_faulty && in_force.is_empty() {
            healed_ns = event.time.ok_or_else(|| {
                format!(
                    "the nemesis event {} at index {} has no time",
                    event.f, event.index
                )
            })?;
        }
    }
    if in_force.is_empty() {
        Ok(healed_ns)
    } else {
        let kinds: Vec<&str> = in_force.into_iter().collect();
        Err(format!(
            "faults still in force when the history ends ({}): the history never shows them \
             healed",
            kinds.join(", ")
        ))
    }
}

/// Termination: a leader observed within `bound_ms` of the last heal.
fn termination(history: &History, observations: &[Observation], bound_ms: u64) -> Termination {
    let nemesis: Vec<_> = history.ops.iter().filter(|op| op.is_nemesis()).collect();
    let mut result = Termination {
        valid: Validity::Unknown,
        bound_ms,
        healed_ns: None,
        nemesis_events: nemesis.len(),
        first_leader: None,
        leader_after_ms: None,
        reason: None,
    };
    let mut healed_ns = match healed_at(&nemesis) {
        Ok(t) => t,
        Err(why) => {
            result.reason = Some(why);
            return result;
        }
    };
    let bound_ns = bound_ms.saturating_mul(1_000_000);
    let first_after = |h: u64| {
        observations
            .iter()
            .filter(|o| o.invoke_ns >= h)
            .min_by_key(|o| (o.complete_ns, o.index))
    };
    // A leader seen within the bound after the faults ended settles it. Otherwise it is
    // judged from the last nemesis event (the final heal, after which the final phase asks),
    // since clients may have stopped asking between the two (the main phase over).
    let seen_in_time =
        first_after(healed_ns).is_some_and(|o| o.complete_ns <= healed_ns.saturating_add(bound_ns));
    if !seen_in_time {
        let last_ns = nemesis.last().and_then(|e| e.time).unwrap_or(0);
        healed_ns = healed_ns.max(last_ns);
    }
    result.healed_ns = Some(healed_ns);
    let deadline_ns = healed_ns.saturating_add(bound_ns);
    let first = first_after(healed_ns);
    let since = if healed_ns == 0 && nemesis.is_empty() {
        "the start of the history".to_string()
    } else {
        format!("the last heal at {:.3} s", healed_ns as f64 / 1e9)
    };
    if let Some(o) = first {
        result.first_leader = Some(o.clone());
        result.leader_after_ms = Some((o.complete_ns - healed_ns) as f64 / 1e6);
    }
    let end_ns = history
        .ops
        .iter()
        .filter_map(|op| op.time)
        .max()
        .unwrap_or(0);
    match first {
        Some(o) if o.complete_ns <= deadline_ns => result.valid = Validity::Valid,
        Some(o) => {
            result.valid = Validity::Invalid;
            result.reason = Some(format!(
                "the first leader after {since} was observed {:.3} ms after it ({}), past the \
                 {bound_ms} ms bound",
                (o.complete_ns - healed_ns) as f64 / 1e6,
                describe(o)
            ));
        }
        None if end_ns >= deadline_ns => {
            result.valid = Validity::Invalid;
            result.reason = Some(format!(
                "no leader observed in the {bound_ms} ms after {since} (the history runs \
                 {:.3} s past it)",
                (end_ns - healed_ns) as f64 / 1e9
            ));
        }
        None => {
            result.reason = Some(format!(
                "no leader observed after {since}, and the history ends {:.3} s after it, \
                 before the {bound_ms} ms bound",
                end_ns.saturating_sub(healed_ns) as f64 / 1e9
            ));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::Op;
    use serde_json::json;

    /// A history from `(process, f, kind, value)` steps, one event every ms; each step is an
    /// invocation and its completion (kind `None`: never completed). Nemesis steps have
    /// process `u64::MAX`.
    fn history(steps: &[(u64, &str, Option<OpType>, Value)]) -> History {
        let mut ops = Vec::new();
        let mut t = 0;
        for (process, f, kind, value) in steps {
            t += 1_000_000;
            if *process == u64::MAX {
                let mut op = Op::complete(0, OpType::Info, f, value.clone()).with_time(t);
                op.process = Process::Nemesis;
                ops.push(op);
                continue;
            }
            ops.push(Op::invoke(*process, f, Value::Null).with_time(t));
            if let Some(kind) = kind {
                t += 1_000_000;
                let op = Op::complete(*process, *kind, f, value.clone()).with_time(t);
                ops.push(if *kind == OpType::Ok {
                    op
                } else {
                    op.with_error(json!("x"))
                });
            }
        }
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        History::new(ops)
    }

    fn obs(epoch: i64, leader: &str) -> Value {
        json!({"epoch": epoch, "leader": leader})
    }

    const OK: Option<OpType> = Some(OpType::Ok);
    const FAIL: Option<OpType> = Some(OpType::Fail);
    const INFO: Option<OpType> = Some(OpType::Info);

    fn checked(h: &History) -> ElectionResult {
        check(h, &ElectionOptions::default()).unwrap()
    }

    #[test]
    fn successive_leaders_in_growing_epochs_are_valid() {
        let h = history(&[
            (0, CAMPAIGN, OK, obs(1, "p0")),
            (1, CAMPAIGN, FAIL, Value::Null),
            (1, LEADER, OK, obs(1, "p0")),
            (0, "resign", OK, Value::Null),
            (2, LEADER, OK, Value::Null),
            (1, CAMPAIGN, OK, obs(5, "p1")),
            (0, LEADER, OK, obs(5, "p1")),
        ]);
        let r = checked(&h);
        assert_eq!(r.valid, Validity::Valid, "{}", r.explain());
        assert_eq!((r.campaigns, r.elected, r.not_elected), (3, 2, 1));
        assert_eq!((r.leader_queries, r.leaderless, r.observations), (3, 1, 4));
        assert_eq!((r.epochs, r.leaders), (2, 2));
        assert_eq!(r.termination.valid, Validity::Valid);
        assert!(r.explain().is_empty());
    }

    #[test]
    fn an_empty_history_is_unknown_only_for_termination() {
        let r = checked(&History::default());
        assert_eq!(r.valid, Validity::Unknown);
        assert!(r.counts.is_empty());
        assert!(r.explain().contains("before the 15000 ms bound"));
    }

    #[test]
    fn two_leaders_for_one_epoch_break_agreement_even_through_queries() {
        let h = history(&[
            (0, CAMPAIGN, OK, obs(3, "p0")),
            (1, CAMPAIGN, INFO, Value::Null),
            (2, LEADER, OK, obs(3, "p1")),
        ]);
        let r = checked(&h);
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.counts.get("agreement"), Some(&1));
        // One decision only: integrity holds; p1 was a candidate (its campaign is info).
        assert!(!r.counts.contains_key("integrity"));
        assert!(!r.counts.contains_key("validity"));
        assert!(
            r.explain().contains("epoch 3 has 2 leaders"),
            "{}",
            r.explain()
        );
        assert_eq!(r.anomalies[0].observations.len(), 2);
    }

    #[test]
    fn one_epoch_decided_twice_breaks_integrity_and_agreement() {
        let h = history(&[
            (0, CAMPAIGN, OK, obs(3, "p0")),
            (1, CAMPAIGN, OK, obs(3, "p1")),
        ]);
        let r = checked(&h);
        assert_eq!(r.counts.get("integrity"), Some(&1));
        assert_eq!(r.counts.get("agreement"), Some(&1));
        // The same process deciding the same epoch twice is integrity alone.
        let h = history(&[
            (0, CAMPAIGN, OK, obs(3, "p0")),
            (0, "resign", OK, Value::Null),
            (0, CAMPAIGN, OK, obs(3, "p0")),
        ]);
        let r = checked(&h);
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.counts.get("integrity"), Some(&1));
        assert!(!r.counts.contains_key("agreement"));
    }

    #[test]
    fn a_leader_that_never_campaigned_breaks_validity() {
        let h = history(&[
            (0, CAMPAIGN, OK, obs(1, "p0")),
            (1, LEADER, OK, obs(2, "p9")),
            // p2 campaigns only after it was seen leading.
            (3, LEADER, OK, obs(3, "p2")),
            (2, CAMPAIGN, None, Value::Null),
            // A campaign that names someone else.
            (4, CAMPAIGN, OK, obs(4, "p0")),
        ]);
        let r = checked(&h);
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.counts.get("validity"), Some(&3), "{}", r.explain());
        assert!(r.explain().contains("had not campaigned"));
        assert!(r.explain().contains("returned another's name"));
        // A never-completed campaign makes a candidate for what is seen after it.
        let h = history(&[
            (2, CAMPAIGN, None, Value::Null),
            (3, LEADER, OK, obs(3, "p2")),
        ]);
        assert_eq!(checked(&h).valid, Validity::Valid);
    }

    #[test]
    fn fixed_candidates_are_the_nodes() {
        let h = history(&[
            (0, LEADER, OK, obs(4, "n1")),
            (1, LEADER, OK, obs(4, "n1")),
            (2, LEADER, OK, obs(5, "n7")),
        ]);
        let options = ElectionOptions {
            candidates: Some(vec!["n1".into(), "n2".into()]),
            ..ElectionOptions::default()
        };
        let r = check(&h, &options).unwrap();
        assert_eq!(r.counts.get("validity"), Some(&1));
        assert!(r.explain().contains("is not a node"));
    }

    #[test]
    fn termination_counts_from_the_last_heal() {
        let bound = |ms| ElectionOptions {
            termination_bound_ms: ms,
            candidates: None,
        };
        let nemesis = u64::MAX;
        // A leader seen 2 ms after the heal (invoked after it).
        let h = history(&[
            (0, CAMPAIGN, OK, obs(1, "p0")),
            (nemesis, "start-partition", None, json!({})),
            (nemesis, "stop-partition", None, json!({})),
            (1, LEADER, OK, obs(1, "p0")),
        ]);
        let r = check(&h, &bound(10)).unwrap();
        assert_eq!(r.valid, Validity::Valid, "{}", r.explain());
        assert_eq!(r.termination.healed_ns, Some(4_000_000));
        assert_eq!(r.termination.leader_after_ms, Some(2.0));
        // Past a 1 ms bound: invalid.
        let r = check(&h, &bound(1)).unwrap();
        assert_eq!(r.valid, Validity::Invalid);
        assert!(
            r.explain().contains("past the 1 ms bound"),
            "{}",
            r.explain()
        );
        // Nothing after the heal, and the history ends before the bound: unknown.
        let h = history(&[
            (0, CAMPAIGN, OK, obs(1, "p0")),
            (nemesis, "pause", None, json!({})),
            (nemesis, "resume", None, json!({})),
            (1, LEADER, OK, Value::Null),
        ]);
        assert_eq!(check(&h, &bound(100)).unwrap().valid, Validity::Unknown);
        // ... and past the bound: invalid.
        let r = check(&h, &bound(1)).unwrap();
        assert_eq!(r.valid, Validity::Invalid);
        assert!(r.explain().contains("no leader observed"));
        // A fault never healed: unknown, with the reason.
        let h = history(&[
            (nemesis, "kill", None, json!({})),
            (0, CAMPAIGN, OK, obs(1, "p0")),
        ]);
        let r = check(&h, &bound(1)).unwrap();
        assert_eq!(r.valid, Validity::Unknown);
        assert!(r.explain().contains("never shows them healed"));
        // Faults undone before a final heal: healed at the last undo. A pause resumed while
        // a partition is still in force: healed only when the partition ends.
        let h = history(&[
            (nemesis, "start-partition", None, json!({})),
            (nemesis, "pause", None, json!({})),
            (nemesis, "resume", None, json!({})),
            (nemesis, "stop-partition", None, json!({})),
            (0, LEADER, OK, obs(1, "n1")),
            (nemesis, "heal", None, json!({})),
        ]);
        let options = ElectionOptions {
            termination_bound_ms: 100,
            candidates: Some(vec!["n1".into()]),
        };
        let r = check(&h, &options).unwrap();
        assert_eq!(r.termination.healed_ns, Some(4_000_000), "{r:?}");
        assert_eq!(r.valid, Validity::Valid, "{}", r.explain());
        // Clients that stopped asking after the faults ended (the main phase over) and a
        // final heal with nothing after it: unknown, not invalid.
        let h = history(&[
            (nemesis, "pause", None, json!({})),
            (nemesis, "resume", None, json!({})),
            (nemesis, "start-partition", None, json!({})),
            (nemesis, "stop-partition", None, json!({})),
            (nemesis, "heal", None, json!({})),
        ]);
        let r = check(&h, &bound(2)).unwrap();
        assert_eq!(r.termination.healed_ns, Some(5_000_000));
        assert_eq!(r.valid, Validity::Unknown, "{}", r.explain());
        // An observation invoked before the heal does not count.
        let h = history(&[
            (nemesis, "pause", None, json!({})),
            (0, CAMPAIGN, None, Value::Null),
            (nemesis, "resume", None, json!({})),
        ]);
        assert_eq!(
            check(&h, &bound(0)).unwrap().termination.valid,
            Validity::Invalid
        );
    }

    #[test]
    fn unreadable_observations_make_the_verdict_unknown() {
        let h = history(&[
            (0, CAMPAIGN, OK, json!({"leader": "p0"})),
            (1, CAMPAIGN, OK, obs(2, "p1")),
        ]);
        let r = checked(&h);
        assert_eq!(r.valid, Validity::Unknown);
        assert!(r.explain().contains("no integer epoch"));
    }

    #[test]
    fn string_epochs_are_read_as_integers() {
        assert_eq!(
            parse_observation(&json!({"epoch": "12", "leader": "p1"})),
            Ok((12, "p1".to_string()))
        );
    }
}
