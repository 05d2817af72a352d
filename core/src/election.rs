//! Leader election as a client sees it: the contract between the `election` workload and
//! every target's client.
//!
//! Every operation is on one election (`key` = its name, a JSON string; the workload uses
//! `"election"`). An observation is `{"epoch": E, "leader": L}`: `E` an integer naming one
//! term of leadership (etcd: the leader key's creation revision; ZooKeeper: the leader
//! znode's sequence number; raftkv: the Raft term), `L` a candidate's name (a string).
//!
//! Who the candidates are ([`Candidates`]):
//! - `clients` (memory, etcd, ZooKeeper): each client process campaigns under its own name,
//!   [`candidate_name`] of its process (`"p3"`), and remembers whether it leads:
//!   - `campaign`, value null: one attempt. `Ok({"epoch": E, "leader": me})` when elected
//!     (the client now leads epoch `E`), `Fail("not-elected")` when another leads (the
//!     attempt left nothing behind), `Info` when unknown (the candidacy may have won, or may
//!     still win, before it is withdrawn). A client that already leads answers
//!     `Fail("already-leading")`.
//!   - `resign`, value null: gives leadership up. `Ok(null)` when resigned,
//!     `Fail("not-leader")` when it had already gone (its lease or session ended); the client
//!     forgets its leadership either way.
//! - `nodes` (raftkv): the nodes of the system under test are the candidates and elect
//!   among themselves; clients only observe. No `campaign` or `resign`.
//!
//! And in both:
//! - `leader`, value null: who leads now, as the client's node knows it: `Ok({"epoch": E,
//!   "leader": L})`, or `Ok(null)` when it knows no leader. A read: a failure is `Fail`.
//!
//! ```
//! use faultline_core::election::{candidate_name, Candidates, ElectionSpec};
//! use faultline_core::Test;
//! use serde_json::json;
//! let mut test = Test::example("etcd", "election", 1);
//! test.workload_options.insert("lease_ms".into(), json!(3000));
//! let spec = ElectionSpec::from_test(&test).unwrap();
//! assert_eq!((spec.lease_ms, spec.candidates), (3000, Candidates::Clients));
//! assert_eq!(candidate_name(3), "p3");
//! let raftkv = Test::example("raftkv", "election", 1);
//! assert_eq!(ElectionSpec::from_test(&raftkv).unwrap().candidates, Candidates::Nodes);
//! ```
//!
//! Design decision: the history records only what a client can truly observe (a campaign
//! that returned, a leader query), never a guess about who led in between; the checker judges
//! those observations, and an `info` campaign counts as a candidacy and nothing more.

use serde_json::Value;

use crate::test::Test;

/// `f` of a campaign.
pub const CAMPAIGN: &str = "campaign";
/// `f` of a leader query.
pub const LEADER: &str = "leader";
/// `f` of a resignation.
pub const RESIGN: &str = "resign";
/// Workload option: the lease (etcd) a candidacy is bound to, in milliseconds; a leader
/// resigns after about half of it.
pub const OPTION_LEASE_MS: &str = "lease_ms";
/// Workload option: how soon after the last fault heals a leader must be observed.
pub const OPTION_TERMINATION_BOUND_MS: &str = "termination_bound_ms";
/// Workload option: `clients` or `nodes`.
pub const OPTION_CANDIDATES: &str = "candidates";
/// The lease when the test does not say (etcd counts whole seconds).
pub const DEFAULT_LEASE_MS: u64 = 2_000;
/// The shortest lease a test may ask for.
pub const MIN_LEASE_MS: u64 = 10;
/// The termination bound when the test does not say: long enough for ZooKeeper's election
/// after a partition (~11 s in LAB.md) and raftkv's or etcd's (a few seconds).
pub const DEFAULT_TERMINATION_BOUND_MS: u64 = 15_000;

/// Who campaigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidates {
    /// Every client process campaigns under [`candidate_name`].
    Clients,
    /// The nodes elect among themselves; clients observe.
    Nodes,
}

impl Candidates {
    pub fn as_str(self) -> &'static str {
        match self {
            Candidates::Clients => "clients",
            Candidates::Nodes => "nodes",
        }
    }
}

/// What every election client of a test agrees on, from `test.workload_options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionSpec {
    pub lease_ms: u64,
    pub termination_bound_ms: u64,
    pub candidates: Candidates,
}

impl ElectionSpec {
    /// Reads the options; `candidates` defaults to `nodes` on raftkv (its nodes elect their
    /// leader; a client cannot campaign) and `clients` elsewhere. Unknown options are the
    /// workload's to refuse.
    pub fn from_test(test: &Test) -> Result<ElectionSpec, String> {
        let options = &test.workload_options;
        let number = |name: &str, default: u64| match options.get(name) {
            None => Ok(default),
            Some(value) => value
                .as_u64()
                .ok_or_else(|| format!("{name}: expected a non-negative integer, got {value}")),
        };
        let lease_ms = number(OPTION_LEASE_MS, DEFAULT_LEASE_MS)?;
        if lease_ms < MIN_LEASE_MS {
            return Err(format!(
                "{OPTION_LEASE_MS}: at least {MIN_LEASE_MS} ms, got {lease_ms}"
            ));
        }
        let termination_bound_ms =
            number(OPTION_TERMINATION_BOUND_MS, DEFAULT_TERMINATION_BOUND_MS)?;
        let candidates = match options.get(OPTION_CANDIDATES) {
            None if test.target == "raftkv" => Candidates::Nodes,
            None => Candidates::Clients,
            Some(Value::String(s)) if s == "clients" => Candidates::Clients,
            Some(Value::String(s)) if s == "nodes" => Candidates::Nodes,
            Some(other) => {
                return Err(format!(
                    "{OPTION_CANDIDATES}: expected clients or nodes, got {other}"
                ))
            }
        };
        Ok(ElectionSpec {
            lease_ms,
            termination_bound_ms,
            candidates,
        })
    }
}

/// The name a client process campaigns under.
pub fn candidate_name(process: u64) -> String {
    format!("p{process}")
}

/// The election's name from an operation's key: a JSON string's text, else the key's JSON.
pub fn election_name(key: Option<&Value>) -> String {
    match key {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "election".to_string(),
    }
}

/// An observation's value.
pub fn observation(epoch: i64, leader: &str) -> Value {
    serde_json::json!({"epoch": epoch, "leader": leader})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_have_defaults_and_bad_ones_are_refused() {
        let mut test = Test::example("memory", "election", 1);
        assert_eq!(
            ElectionSpec::from_test(&test).unwrap(),
            ElectionSpec {
                lease_ms: DEFAULT_LEASE_MS,
                termination_bound_ms: DEFAULT_TERMINATION_BOUND_MS,
                candidates: Candidates::Clients,
            }
        );
        test.workload_options
            .insert(OPTION_CANDIDATES.into(), json!("nodes"));
        assert_eq!(
            ElectionSpec::from_test(&test).unwrap().candidates,
            Candidates::Nodes
        );
        test.workload_options
            .insert(OPTION_CANDIDATES.into(), json!("everyone"));
        assert!(ElectionSpec::from_test(&test).is_err());
        test.workload_options.remove(OPTION_CANDIDATES);
        test.workload_options
            .insert(OPTION_LEASE_MS.into(), json!(1));
        assert!(ElectionSpec::from_test(&test)
            .unwrap_err()
            .contains("at least"));
        test.workload_options
            .insert(OPTION_LEASE_MS.into(), json!(100));
        test.workload_options
            .insert(OPTION_TERMINATION_BOUND_MS.into(), json!(-1));
        assert!(ElectionSpec::from_test(&test).is_err());
        assert_eq!(election_name(Some(&json!("e"))), "e");
        assert_eq!(observation(3, "p1"), json!({"epoch": 3, "leader": "p1"}));
    }
}
