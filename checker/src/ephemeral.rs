//! The failure-detection checker: ephemeral registrations against their TTL.
//!
//! An `ephemeral` history (the contract is `faultline_core::ephemeral`) has, per registration
//! (the `key`, a name unique in the run): its `register` (`{"ttl_ms": T}`), the registrant's
//! `stall`s of its keepalives (`{"ms": d}` -> `{"quiet_after_ms": q, "alive": a}`) and its
//! `deregister`; and observers' `list`s of every registration the service shows.
//!
//! The bound: a registration must be gone from every list *invoked* after
//! - a stall's invocation + `q` + `T` + `slack`, when the stall lasted at least `q + T +
//!   slack` (no renewal reached the service for a whole TTL: it must have expired; `slack` is
//!   the service's allowance for noticing, an option of the workload);
//! - a deregister's completion + `slack`.
//!
//! Findings:
//! - **outlived** (invalid): a list invoked after the bound still shows the registration, or
//!   an expiring stall reported it still alive (the service renewed a lease past its TTL).
//! - **phantom** (invalid): a list shows a name before its register was invoked, or whose
//!   register certainly failed, or that was never registered.
//! - **false-suspicion** (a finding, not invalid): a list that ran entirely while the
//!   registrant was healthy (registered, not stalled, not deregistering) does not show it, or a
//!   short stall (at most half the TTL) reported the registration gone. A failure detector
//!   that works by timeouts may suspect a live process when the network or the service is
//!   slow (partitions, paused servers): Chandra and Toueg's detectors are unreliable by
//!   design, so this is counted and shown, and the verdict is left to the outlived and phantom
//!   checks.
//!
//! `info` and never-completed operations: a registration whose register, stall or deregister
//! ended `info` (or never completed) is abandoned by its process (the worker closes the
//! client), so after that no bound applies to it and it is never suspected; bounds from
//! earlier, certain stalls still hold. An `info` list shows nothing.
//!
//! ```
//! use faultline_checker::{ephemeral, Validity};
//! use faultline_core::{History, Op, OpType};
//! use serde_json::json;
//! let ms = 1_000_000;
//! let ops = vec![
//!     Op::invoke(0, "register", json!({"ttl_ms": 100})).with_key(json!("r0")).with_time(0),
//!     Op::complete(0, OpType::Ok, "register", json!({"ttl_ms": 100})).with_key(json!("r0")).with_time(ms),
//!     Op::invoke(0, "stall", json!({"ms": 300})).with_key(json!("r0")).with_time(10 * ms),
//!     Op::invoke(1, "list", json!(null)).with_time(250 * ms),
//!     Op::complete(1, OpType::Ok, "list", json!(["r0"])).with_time(251 * ms),
//! ];
//! let options = ephemeral::EphemeralOptions { slack_ms: 100 };
//! let result = ephemeral::check(&History::new(ops), &options).unwrap();
//! // The stall never completed: nothing certain about when renewals stopped.
//! assert_eq!(result.valid, Validity::Valid);
//! ```
//!
//! Design decision: the bound is counted from what the registrant knows (when its last
//! renewal could have landed, on the harness's one clock), not from the service's own notion
//! of expiry, so a service that extends leases (etcd and ZooKeeper both reset them when a new
//! leader takes over) is judged by what its users were promised: the TTL.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use faultline_core::{History, HistoryError, OpType, Process};

use crate::Validity;

pub const REGISTER: &str = "register";
pub const STALL: &str = "stall";
pub const DEREGISTER: &str = "deregister";
pub const LIST: &str = "list";
/// Evidence items kept per kind; the counts are always complete.
pub const MAX_EVIDENCE: usize = 20;

/// How to check an ephemeral history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EphemeralOptions {
    /// How long past the TTL the service may take to remove an expired registration.
    pub slack_ms: u64,
}

impl Default for EphemeralOptions {
    fn default() -> Self {
        EphemeralOptions {
            slack_ms: faultline_core::ephemeral::DEFAULT_SLACK_MS,
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// `outlived`, `phantom`, `false-suspicion`.
    pub kind: &'static str,
    pub name: String,
    pub process: u64,
    /// History index of the operation that shows it (a list's or a stall's completion).
    pub index: u64,
    pub detail: String,
}

/// The checker's verdict and counts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EphemeralResult {
    pub valid: Validity,
    pub registrations: BTreeMap<&'static str, u64>,
    pub stalls: BTreeMap<&'static str, u64>,
    /// Ok lists.
    pub lists: u64,
    /// Registrations with a bound (an expiring stall, a report of expiry, a deregistration).
    pub bounded: u64,
    /// For expiring stalls: the longest time from the last possible renewal to the first list
    /// invoked later that no longer showed the registration, in ms (an upper bound on how long
    /// the service took to notice; `None` when none was observed).
    pub slowest_expiry_ms: Option<u64>,
    pub finding_counts: BTreeMap<&'static str, u64>,
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl EphemeralResult {
    /// Text for a person: the findings, also when they do not make the history invalid.
    pub fn explain(&self) -> String {
        let mut text = String::new();
        for reason in &self.reasons {
            let _ = writeln!(text, "unknown: {reason}");
        }
        if !self.finding_counts.is_empty() {
            let counts: Vec<String> = self
                .finding_counts
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect();
            let _ = writeln!(
                text,
                "registrations: {} (false suspicions do not make a history invalid)",
                counts.join(", ")
            );
        }
        for f in &self.findings {
            let _ = writeln!(
                text,
                "  {}: {} (process {}), op {}: {}",
                f.kind, f.name, f.process, f.index, f.detail
            );
        }
        text
    }
}

/// What the history says about one registration.
#[derive(Debug, Default)]
struct Registration {
    ttl_ms: u64,
    register_invoke_ns: u64,
    /// `ok`, `fail`, `info`, `never-completed`.
    outcome: &'static str,
    /// Lists invoked at or after this must not show it; with why.
    gone_by: Option<(u64, String)>,
    /// Times it certainly was alive and renewed: `[from, until)`.
    healthy: Vec<(u64, u64)>,
    /// Expiring stalls' last possible renewal times.
    quiet_from: Vec<u64>,
}

/// One ok list.
struct Listing {
    process: u64,
    index: u64,
    invoke_ns: u64,
    complete_ns: u64,
    names: BTreeSet<String>,
}

struct Findings {
    counts: BTreeMap<&'static str, u64>,
    items: BTreeMap<&'static str, Vec<Finding>>,
}

impl Findings {
    fn add(&mut self, finding: Finding) {
        *self.counts.entry(finding.kind).or_default() += 1;
        let items = self.items.entry(finding.kind).or_default();
        if items.len() < MAX_EVIDENCE {
            items.push(finding);
        }
    }
}

fn name_of(key: Option<&Value>) -> String {
    faultline_core::watch::key_name(key)
}

fn outcome_name(kind: Option<OpType>) -> &'static str {
    match kind {
        Some(OpType::Ok) => "ok",
        Some(OpType::Fail) => "fail",
        Some(OpType::Info) => "info",
        _ => "never-completed",
    }
}

/// Checks an ephemeral history.
pub fn check(
    history: &History,
    options: &EphemeralOptions,
) -> Result<EphemeralResult, HistoryError> {
    let pairs = history.pairs()?;
    let slack_ns = options.slack_ms * 1_000_000;
    let end_ns = history
        .ops
        .iter()
        .filter_map(|op| op.time)
        .max()
        .unwrap_or(0);
    let mut reasons = Vec::new();
    let mut registrations: BTreeMap<String, Registration> = BTreeMap::new();
    let mut listings: Vec<Listing> = Vec::new();
    let mut register_counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut stall_counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut findings = Findings {
        counts: BTreeMap::new(),
        items: BTreeMap::new(),
    };
    // Where each registration's healthy time began, while it lasts.
    let mut healthy_since: HashMap<String, u64> = HashMap::new();
    for pair in &pairs {
        let invoke = &history.ops[pair.invoke];
        let Process::Client(process) = invoke.process else {
            continue;
        };
        let completion = pair.completion.map(|c| &history.ops[c]);
        let kind = completion.map(|c| c.kind);
        let invoke_ns = invoke.time.unwrap_or(0);
        let complete_ns = completion.and_then(|c| c.time).unwrap_or(end_ns);
        let name = name_of(invoke.key.as_ref());
        match invoke.f.as_str() {
            REGISTER => {
                let outcome = outcome_name(kind);
                *register_counts.entry(outcome).or_default() += 1;
                let ttl_ms = invoke
                    .value
                    .get("ttl_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if registrations.contains_key(&name) {
                    reasons.push(format!("{name} is registered twice: names must be unique"));
                    continue;
                }
                registrations.insert(
                    name.clone(),
                    Registration {
                        ttl_ms,
                        register_invoke_ns: invoke_ns,
                        outcome,
                        ..Registration::default()
                    },
                );
                if kind == Some(OpType::Ok) {
                    healthy_since.insert(name, complete_ns);
                }
            }
            STALL | DEREGISTER => {
                let Some(r) = registrations.get_mut(&name) else {
                    continue;
                };
                if let Some(since) = healthy_since.remove(&name) {
                    r.healthy.push((since, invoke_ns));
                }
                let is_stall = invoke.f == STALL;
                if is_stall {
                    *stall_counts.entry(outcome_name(kind)).or_default() += 1;
                }
                let Some(c) = completion.filter(|c| c.kind == OpType::Ok) else {
                    if !(is_stall && kind == Some(OpType::Fail)) {
                        // Abandoned: nothing more is certain about it.
                        r.outcome = "info";
                    }
                    continue;
                };
                let bound = |r: &mut Registration, at: u64, why: String| {
                    if r.gone_by.as_ref().is_none_or(|(t, _)| at < *t) {
                        r.gone_by = Some((at, why));
                    }
                };
                if !is_stall {
                    bound(
                        r,
                        complete_ns + slack_ns,
                        format!("deregistered (op {})", c.index),
                    );
                    continue;
                }
                let d_ms = invoke.value.get("ms").and_then(Value::as_u64).unwrap_or(0);
                let q_ms = c.value.get("quiet_after_ms").and_then(Value::as_u64);
                let alive = c.value.get("alive").and_then(Value::as_bool);
                let (Some(q_ms), Some(alive)) = (q_ms, alive) else {
                    reasons.push(format!(
                        "stall at index {}: expected {{\"quiet_after_ms\": q, \"alive\": a}}, got {}",
                        c.index, c.value
                    ));
                    continue;
                };
                let quiet_from = invoke_ns + q_ms * 1_000_000;
                let expiring = d_ms >= q_ms + r.ttl_ms + options.slack_ms;
                if expiring {
                    *stall_counts.entry("expiring").or_default() += 1;
                    r.quiet_from.push(quiet_from);
                    bound(
                        r,
                        quiet_from + r.ttl_ms * 1_000_000 + slack_ns,
                        format!(
                            "its keepalives stopped {} ms into stall op {}",
                            q_ms, c.index
                        ),
                    );
                    if alive {
                        findings.add(Finding {
                            kind: "outlived",
                            name: name.clone(),
                            process,
                            index: c.index,
                            detail: format!(
                                "no renewal for {} ms (TTL {} ms, slack {} ms), yet the registrant found it alive",
                                d_ms - q_ms,
                                r.ttl_ms,
                                options.slack_ms
                            ),
                        });
                    }
                }
                // A registrant that found its registration gone says nothing about when the
                // service removed it (a ZooKeeper client declares its session expired on its
                // own after a long disconnection): no bound from that.
                if !alive {
                    if d_ms * 2 <= r.ttl_ms {
                        findings.add(Finding {
                            kind: "false-suspicion",
                            name: name.clone(),
                            process,
                            index: c.index,
                            detail: format!(
                                "expired during a stall of {d_ms} ms, at most half its TTL of {} ms",
                                r.ttl_ms
                            ),
                        });
                    }
                } else if !expiring {
                    healthy_since.insert(name.clone(), complete_ns);
                }
            }
            LIST => {
                let Some(c) = completion.filter(|c| c.kind == OpType::Ok) else {
                    continue;
                };
                let Some(names) = c.value.as_array() else {
                    reasons.push(format!(
                        "list at index {}: expected a list of names, got {}",
                        c.index, c.value
                    ));
                    continue;
                };
                listings.push(Listing {
                    process,
                    index: c.index,
                    invoke_ns,
                    complete_ns,
                    names: names.iter().map(|n| name_of(Some(n))).collect(),
                });
            }
            _ => {}
        }
    }
    for (name, since) in healthy_since {
        if let Some(r) = registrations.get_mut(&name) {
            // Healthy to the end unless abandoned (its process's info ends it).
            if r.outcome == "ok" {
                r.healthy.push((since, end_ns));
            }
        }
    }
    // A registration whose process gave up is healthy only up to what was recorded.
    let mut slowest_expiry_ns: Option<u64> = None;
    for listing in &listings {
        for name in &listing.names {
            let phantom = match registrations.get(name) {
                None => Some("no register of this name".to_string()),
                Some(r) if r.outcome == "fail" => Some("its register certainly failed".into()),
                Some(r) if listing.complete_ns < r.register_invoke_ns => {
                    Some("listed before its register was invoked".into())
                }
                _ => None,
            };
            if let Some(why) = phantom {
                findings.add(Finding {
                    kind: "phantom",
                    name: name.clone(),
                    process: listing.process,
                    index: listing.index,
                    detail: why,
                });
                continue;
            }
            let r = &registrations[name];
            if let Some((at, why)) = &r.gone_by {
                if listing.invoke_ns >= *at {
                    findings.add(Finding {
                        kind: "outlived",
                        name: name.clone(),
                        process: listing.process,
                        index: listing.index,
                        detail: format!(
                            "listed {} ms after it had to be gone ({why}; TTL {} ms, slack {} ms)",
                            (listing.invoke_ns - at) / 1_000_000,
                            r.ttl_ms,
                            options.slack_ms
                        ),
                    });
                }
            }
        }
        for (name, r) in &registrations {
            if listing.names.contains(name) {
                continue;
            }
            if let Some(&(from, until)) = r
                .healthy
                .iter()
                .find(|(from, until)| *from <= listing.invoke_ns && listing.complete_ns <= *until)
            {
                findings.add(Finding {
                    kind: "false-suspicion",
                    name: name.clone(),
                    process: listing.process,
                    index: listing.index,
                    detail: format!(
                        "not listed while its registrant kept it alive (from {} ms to {} ms into the test)",
                        from / 1_000_000,
                        until / 1_000_000
                    ),
                });
            }
        }
    }
    // How long each expiring stall's registration took to go: to the first list invoked after
    // its last possible renewal that no longer showed it (one pass over the lists per stall).
    for (name, r) in &registrations {
        for &quiet_from in &r.quiet_from {
            let first_gone = listings
                .iter()
                .filter(|l| l.invoke_ns >= quiet_from && !l.names.contains(name))
                .map(|l| l.complete_ns)
                .min();
            if let Some(gone_ns) = first_gone {
                let took = gone_ns - quiet_from;
                slowest_expiry_ns = Some(slowest_expiry_ns.map_or(took, |s| s.max(took)));
            }
        }
    }
    let invalid =
        findings.counts.contains_key("outlived") || findings.counts.contains_key("phantom");
    let valid = if invalid {
        Validity::Invalid
    } else if !reasons.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    reasons.truncate(MAX_EVIDENCE);
    Ok(EphemeralResult {
        valid,
        registrations: register_counts,
        stalls: stall_counts,
        lists: listings.len() as u64,
        bounded: registrations
            .values()
            .filter(|r| r.gone_by.is_some())
            .count() as u64,
        slowest_expiry_ms: slowest_expiry_ns.map(|ns| ns / 1_000_000),
        finding_counts: findings.counts,
        findings: findings.items.into_values().flatten().collect(),
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::Op;
    use serde_json::json;

    const MS: u64 = 1_000_000;

    #[derive(Default)]
    struct Builder {
        ops: Vec<Op>,
    }

    impl Builder {
        fn op(&mut self, at_ms: u64, op: Op) -> &mut Self {
            self.ops.push(op.with_time(at_ms * MS));
            self
        }

        fn register(&mut self, p: u64, name: &str, at_ms: u64, kind: OpType) -> &mut Self {
            self.op(
                at_ms,
                Op::invoke(p, REGISTER, json!({"ttl_ms": 100})).with_key(json!(name)),
            );
            self.op(
                at_ms + 1,
                Op::complete(p, kind, REGISTER, json!({"ttl_ms": 100})).with_key(json!(name)),
            )
        }

        fn stall(
            &mut self,
            p: u64,
            name: &str,
            at_ms: u64,
            ms: u64,
            alive: Option<bool>,
        ) -> &mut Self {
            self.op(
                at_ms,
                Op::invoke(p, STALL, json!({"ms": ms})).with_key(json!(name)),
            );
            match alive {
                Some(a) => self.op(
                    at_ms + ms + 1,
                    Op::complete(
                        p,
                        OpType::Ok,
                        STALL,
                        json!({"quiet_after_ms": 0, "alive": a}),
                    )
                    .with_key(json!(name)),
                ),
                None => self.op(
                    at_ms + ms + 1,
                    Op::complete(p, OpType::Info, STALL, json!({"ms": ms})).with_key(json!(name)),
                ),
            }
        }

        fn list(&mut self, p: u64, at_ms: u64, names: &[&str]) -> &mut Self {
            self.op(at_ms, Op::invoke(p, LIST, Value::Null));
            self.op(at_ms + 1, Op::complete(p, OpType::Ok, LIST, json!(names)))
        }

        fn check(&mut self) -> EphemeralResult {
            self.ops.sort_by_key(|op| op.time);
            let mut history = History::new(self.ops.clone());
            for (i, op) in history.ops.iter_mut().enumerate() {
                op.index = i as u64;
            }
            check(&history, &EphemeralOptions { slack_ms: 50 }).expect("well formed")
        }
    }

    fn kinds(result: &EphemeralResult) -> Vec<&'static str> {
        result.findings.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn an_empty_history_is_valid() {
        let result = Builder::default().check();
        assert_eq!(result.valid, Validity::Valid);
        assert_eq!(result.lists, 0);
    }

    #[test]
    fn an_expired_registration_gone_in_time_is_valid() {
        let mut b = Builder::default();
        b.register(0, "r0", 0, OpType::Ok)
            .list(1, 10, &["r0"])
            .stall(0, "r0", 20, 300, Some(false))
            // Within TTL + slack (20 + 150): either is fine.
            .list(1, 100, &["r0"])
            .list(1, 150, &[])
            .list(1, 200, &[]);
        let result = b.check();
        assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
        assert_eq!(result.stalls["expiring"], 1);
        assert_eq!(result.slowest_expiry_ms, Some(131));
    }

    #[test]
    fn a_registration_listed_past_its_bound_outlived_its_lease() {
        let mut b = Builder::default();
        b.register(0, "r0", 0, OpType::Ok)
            .stall(0, "r0", 20, 300, Some(true))
            .list(1, 200, &["r0"]);
        let result = b.check();
        assert_eq!(result.valid, Validity::Invalid);
        assert_eq!(kinds(&result), vec!["outlived", "outlived"]);
        assert!(
            result.explain().contains("listed 30 ms after"),
            "{}",
            result.explain()
        );
    }

    #[test]
    fn a_deregistered_name_must_go_and_phantoms_are_invalid() {
        let mut b = Builder::default();
        b.register(0, "r0", 0, OpType::Ok)
            .op(
                10,
                Op::invoke(0, DEREGISTER, Value::Null).with_key(json!("r0")),
            )
            .op(
                11,
                Op::complete(0, OpType::Ok, DEREGISTER, Value::Null).with_key(json!("r0")),
            )
            .list(1, 40, &["r0"])
            .list(1, 70, &["r0"]);
        assert_eq!(kinds(&b.check()), vec!["outlived"]);
        let mut b = Builder::default();
        b.register(0, "r1", 0, OpType::Fail)
            .list(1, 5, &["r1", "nobody"]);
        b.register(2, "r2", 20, OpType::Ok).list(1, 10, &["r2"]);
        let result = b.check();
        assert_eq!(kinds(&result), vec!["phantom", "phantom", "phantom"]);
    }

    #[test]
    fn a_healthy_registration_not_listed_is_a_false_suspicion_but_not_invalid() {
        let mut b = Builder::default();
        b.register(0, "r0", 0, OpType::Ok)
            .list(1, 10, &[])
            .stall(0, "r0", 20, 25, Some(false))
            // The registrant's word that it is gone bounds nothing: listed later is no finding.
            .list(1, 300, &["r0"]);
        let result = b.check();
        assert_eq!(result.valid, Validity::Valid);
        assert_eq!(kinds(&result), vec!["false-suspicion", "false-suspicion"]);
        assert!(result.explain().contains("do not make a history invalid"));
    }

    #[test]
    fn during_a_stall_or_after_an_info_nothing_is_suspected_or_bounded() {
        let mut b = Builder::default();
        b.register(0, "r0", 0, OpType::Ok)
            // Short stall: not listed during it is no suspicion; listed after is fine.
            .stall(0, "r0", 10, 25, Some(true))
            .list(1, 20, &[])
            .list(1, 40, &["r0"])
            // A long stall of unknown outcome: no bound, no suspicion.
            .stall(0, "r0", 50, 300, None)
            .list(1, 400, &["r0"])
            .list(1, 410, &[]);
        let result = b.check();
        assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
        assert!(result.findings.is_empty());
        // A register that never completed may be listed at any time.
        let mut b = Builder::default();
        b.op(
            0,
            Op::invoke(0, REGISTER, json!({"ttl_ms": 100})).with_key(json!("r0")),
        )
        .list(1, 500, &["r0"]);
        assert_eq!(b.check().valid, Validity::Valid);
    }

    #[test]
    fn malformed_stalls_make_the_verdict_unknown() {
        let mut b = Builder::default();
        b.register(0, "r0", 0, OpType::Ok)
            .op(
                10,
                Op::invoke(0, STALL, json!({"ms": 5})).with_key(json!("r0")),
            )
            .op(
                16,
                Op::complete(0, OpType::Ok, STALL, json!({})).with_key(json!("r0")),
            );
        assert_eq!(b.check().valid, Validity::Unknown);
    }
}
