//! The nemesis: faults (partitions, packet loss, pauses, kills, clock skew) and the seeded
//! schedule that injects them, each recorded as a nemesis event and healed on every exit path.
//!
//! [`build`] turns `--nemesis partition,kill,...` into [`Faults`] over a db's nodes, checking
//! that the target can do each kind: partitions and loss need a network ([`Net`]: the hosts'
//! iptables, given by the runner, or the db's own fault proxy), kills and pauses the db's
//! [`faultline_core::Kill`] / [`faultline_core::Pause`], clock faults its
//! [`faultline_core::ClockSkew`], `election` faults (aimed at leader changes) a network and
//! pauses, `restart-voter` (a contested election) a network, pauses and kills.
//! [`Faults::run`] is the schedule ([`schedule`]); the topologies of partitions are pure
//! functions ([`partition`]); every event is an [`action::Action`]. `docs/nemesis.md` lists each fault, its variants, its undo and its
//! history record.
//!
//! ```
//! use std::sync::Arc;
//! use faultline_core::db::NoopDb;
//! use rand::SeedableRng;
//!
//! let nemesis = faultline_nemesis::build(&["none".to_string()], Arc::new(NoopDb), Vec::new(), None);
//! assert!(nemesis.unwrap().kinds().is_empty());
//! // A target with no network of its own and no host network given cannot be partitioned.
//! let Err(e) = faultline_nemesis::build(&["partition".to_string()], Arc::new(NoopDb), Vec::new(), None)
//! else { panic!() };
//! assert!(e.to_string().contains("needs a network"), "{e}");
//!
//! // Topologies are pure: 5 nodes in a ring, each seeing itself and its two neighbours.
//! let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
//! let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
//! let grudge = faultline_nemesis::partition::majorities_ring(&nodes, &mut rng);
//! assert!(grudge.values().all(|dropped| dropped.len() == 2));
//! ```
//!
//! Design decision: the schedule keeps at most one fault in force at a time (Jepsen's
//! combined nemeses allow overlaps). Each fault is undone before the next, the history reads
//! as a clean sequence of fault / undo pairs, and the final heal and teardown have at most
//! one thing to undo; overlapping faults would find more bugs per minute but make a failing
//! history harder to explain.

pub mod action;
mod faults;
pub mod partition;
pub mod schedule;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;

pub use faultline_core::nemesis::NoopNemesis;
use faultline_core::{Db, Net, Node};

pub use faults::{Faults, PRIMARY_TIMEOUT_MS};
pub use schedule::{Kind, RestartVoterRoles, Timing};

/// Every fault kind `--nemesis` names.
pub const NAMES: [&str; 9] = [
    "partition",
    "pause",
    "kill",
    "clock",
    "loss",
    "election",
    "restart-voter",
    "figure-8",
    "none",
];
/// The fault kinds that can run (given a target with the capability each needs).
pub const AVAILABLE: [&str; 9] = NAMES;

/// Why a nemesis cannot be built (a bad argument).
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    #[error("unknown nemesis {0:?}; known: {known}", known = NAMES.join(", "))]
    Unknown(String),
    #[error("nemesis {name:?} needs {needs}")]
    Unsupported { name: String, needs: &'static str },
}

/// The nemesis for the fault kinds `names` (`--nemesis a,b`; `none` adds nothing) over `db`'s
/// `nodes`. Partitions and loss go through `net` when given (iptables on remote hosts, built by
/// the runner), else through the db's own network ([`Db::as_net`], the local fault proxy).
pub fn build(
    names: &[String],
    db: Arc<dyn Db>,
    nodes: Vec<Node>,
    net: Option<Arc<dyn Net>>,
) -> Result<Faults, NemesisError> {
    let mut kinds = BTreeSet::new();
    for name in names {
        if name == "none" {
            continue;
        }
        let kind = Kind::from_name(name).ok_or_else(|| NemesisError::Unknown(name.clone()))?;
        let (able, needs) = match kind {
            Kind::Partition | Kind::Loss => (
                net.is_some() || db.as_net().is_some(),
                "a network to cut: the target wires no fault proxy of its own and no host \
                 network (iptables) was given",
            ),
            Kind::Kill => (db.as_kill().is_some(), "a target whose nodes can be killed"),
            Kind::Pause => (
                db.as_pause().is_some(),
                "a target whose processes can be paused (SIGSTOP)",
            ),
            Kind::Clock => (
                db.as_clock().is_some(),
                "a target whose nodes' clocks can be moved (libfaketime or the system clock)",
            ),
            Kind::Election => (
                (net.is_some() || db.as_net().is_some()) && db.as_pause().is_some(),
                "a network to cut (a fault proxy or iptables) and processes that can be \
                 paused (SIGSTOP): it cuts the leader off and pauses it",
            ),
            Kind::RestartVoter => (
                (net.is_some() || db.as_net().is_some())
                    && db.as_pause().is_some()
                    && db.as_kill().is_some(),
                "a network to cut (a fault proxy or iptables), processes that can be paused \
                 (SIGSTOP) and nodes that can be killed: it steers an election with all three",
            ),
            Kind::Figure8 => (
                db.as_net().is_some() && db.as_pause().is_some() && db.as_log_probe().is_some(),
                "a target on a replicated log that reports each node's log (raftkv), run as \
                 local processes behind the fault proxy (it delays single links) whose \
                 processes can be paused",
            ),
        };
        if !able {
            return Err(NemesisError::Unsupported {
                name: name.clone(),
                needs,
            });
        }
        kinds.insert(kind);
    }
    Ok(Faults::new(kinds.into_iter().collect(), db, nodes, net))
}
