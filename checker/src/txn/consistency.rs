//! The lattice of consistency models: which model implies which, which anomalies each one
//! forbids, and, from a set of anomalies found, which models a history rules out.
//!
//! It follows Elle's `elle.consistency-model` (Adya's levels, the strong-session and strong
//! variants, strict serializability) and adds the session-aware models of Cerone et al. as
//! checked by Biswas & Enea (`read-committed-be`, `read-atomic`, `causal`), the register models
//! of Bouajjani et al. (`causal`, `causal-convergence`, `causal-memory`) and Terry et al.'s
//! session guarantees. Every edge `a -> b` below means "a history satisfying `a` satisfies
//! `b`"; every proscription is an anomaly the model does not allow. Where an implication holds
//! only because faultline's histories have no predicate reads, the comment says so.

use serde::{Serialize, Serializer};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::anomaly::AnomalyType as A;

/// Which kind of history a model is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    Transactions,
    Registers,
    Both,
}

macro_rules! models {
    ($($variant:ident => $name:literal, $domain:ident;)*) => {
        /// A consistency model.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Model {
            $($variant,)*
        }

        impl Model {
            pub const ALL: &'static [Model] = &[$(Model::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Model::$variant => $name,)*
                }
            }

            pub fn domain(self) -> Domain {
                match self {
                    $(Model::$variant => Domain::$domain,)*
                }
            }
        }
    };
}

models! {
    ReadUncommitted => "read-uncommitted", Transactions;
    ReadCommitted => "read-committed", Transactions;
    RepeatableRead => "repeatable-read", Transactions;
    SnapshotIsolation => "snapshot-isolation", Transactions;
    Serializable => "serializable", Transactions;
    StrongSessionReadUncommitted => "strong-session-read-uncommitted", Transactions;
    StrongSessionReadCommitted => "strong-session-read-committed", Transactions;
    StrongSessionSnapshotIsolation => "strong-session-snapshot-isolation", Transactions;
    StrongSessionSerializable => "strong-session-serializable", Transactions;
    StrongReadUncommitted => "strong-read-uncommitted", Transactions;
    StrongReadCommitted => "strong-read-committed", Transactions;
    StrongSnapshotIsolation => "strong-snapshot-isolation", Transactions;
    StrictSerializable => "strict-serializable", Transactions;
    ReadCommittedBe => "read-committed-be", Transactions;
    ReadAtomic => "read-atomic", Transactions;
    Causal => "causal", Both;
    Pram => "PRAM", Both;
    ReadYourWrites => "read-your-writes", Both;
    MonotonicReads => "monotonic-reads", Both;
    MonotonicWrites => "monotonic-writes", Both;
    WritesFollowReads => "writes-follow-reads", Both;
    CausalConvergence => "causal-convergence", Registers;
    CausalMemory => "causal-memory", Registers;
    Sequential => "sequential", Registers;
    Linearizable => "linearizable", Registers;
}

use Model as M;

impl Model {
    /// The models this one implies directly (a history satisfying `self` satisfies them).
    pub fn implies(self) -> &'static [Model] {
        match self {
            M::ReadUncommitted => &[],
            M::ReadCommitted => &[M::ReadUncommitted],
            M::RepeatableRead => &[M::ReadCommitted],
            M::SnapshotIsolation => &[M::ReadCommitted],
            M::Serializable => &[M::RepeatableRead, M::SnapshotIsolation],
            M::StrongSessionReadUncommitted => &[M::ReadUncommitted],
            M::StrongSessionReadCommitted => &[M::ReadCommitted, M::StrongSessionReadUncommitted],
            // Session SI reads a snapshot that contains the session's own earlier transactions
            // and is closed under visibility: Cerone et al.'s causal consistency.
            M::StrongSessionSnapshotIsolation => &[
                M::SnapshotIsolation,
                M::StrongSessionReadCommitted,
                M::Causal,
            ],
            M::StrongSessionSerializable => &[M::Serializable, M::StrongSessionSnapshotIsolation],
            M::StrongReadUncommitted => &[M::StrongSessionReadUncommitted],
            M::StrongReadCommitted => &[M::StrongSessionReadCommitted, M::StrongReadUncommitted],
            M::StrongSnapshotIsolation => {
                &[M::StrongSessionSnapshotIsolation, M::StrongReadCommitted]
            }
            M::StrictSerializable => &[
                M::Serializable,
                M::StrongSnapshotIsolation,
                M::StrongSessionSerializable,
                M::Linearizable,
            ],
            // Biswas & Enea: CC => RA => RC; their RC keeps session order in the commit order,
            // so it also forbids G1c-process.
            M::ReadCommittedBe => &[M::StrongSessionReadCommitted],
            M::ReadAtomic => &[M::ReadCommittedBe],
            M::Causal => &[M::ReadAtomic, M::Pram, M::WritesFollowReads],
            M::Pram => &[M::MonotonicReads, M::MonotonicWrites, M::ReadYourWrites],
            M::ReadYourWrites | M::MonotonicReads | M::MonotonicWrites | M::WritesFollowReads => {
                &[]
            }
            M::CausalConvergence => &[M::Causal],
            M::CausalMemory => &[M::Causal],
            M::Sequential => &[M::CausalConvergence, M::CausalMemory],
            M::Linearizable => &[M::Sequential],
        }
    }

    /// The anomalies this model forbids directly (beyond those of the models it implies).
    pub fn forbids(self) -> &'static [A] {
        match self {
            M::ReadUncommitted => &[
                A::G0,
                A::DuplicateElements,
                A::CyclicVersions,
                A::ThinAirRead,
                A::ReadUncommittedCycleExists,
            ],
            M::ReadCommitted => &[A::G1, A::ReadCommittedCycleExists],
            // With no predicate reads every dependency cycle is G1c or has an item
            // anti-dependency, so a cycle in ww/wr/rw rules repeatable read out too.
            M::RepeatableRead => &[
                A::G1,
                A::G2Item,
                A::LostUpdate,
                A::WrongTotal,
                A::NegativeValue,
                A::SerializableCycleExists,
            ],
            M::SnapshotIsolation => &[
                A::Internal,
                A::G1,
                A::GNonadjacent,
                A::LostUpdate,
                A::WrongTotal,
                A::NegativeValue,
                A::SnapshotIsolationCycleExists,
            ],
            M::Serializable => &[A::Internal, A::G1, A::G2, A::SerializableCycleExists],
            M::StrongSessionReadUncommitted => {
                &[A::G0Process, A::StrongSessionReadUncommittedCycleExists]
            }
            M::StrongSessionReadCommitted => {
                &[A::G1cProcess, A::StrongSessionReadCommittedCycleExists]
            }
            M::StrongSessionSnapshotIsolation => &[
                A::Internal,
                A::G1Process,
                A::GNonadjacentProcess,
                A::StrongSessionSnapshotIsolationCycleExists,
            ],
            M::StrongSessionSerializable => &[
                A::G1Process,
                A::G2Process,
                A::StrongSessionSerializableCycleExists,
            ],
            M::StrongReadUncommitted => &[A::G0Realtime, A::StrongReadUncommittedCycleExists],
            M::StrongReadCommitted => &[A::G1cRealtime, A::StrongReadCommittedCycleExists],
            M::StrongSnapshotIsolation => &[
                A::Internal,
                A::G1Realtime,
                A::GNonadjacentRealtime,
                A::StrongSnapshotIsolationCycleExists,
            ],
            M::StrictSerializable => &[
                A::G1,
                A::G1cRealtime,
                A::G2Realtime,
                A::StrictSerializableCycleExists,
            ],
            M::ReadCommittedBe => &[A::ReadCommittedBeCycle],
            M::ReadAtomic => &[A::Internal, A::G1a, A::FutureRead, A::ReadAtomicCycle],
            M::Causal => &[
                A::CausalCycle,
                A::CyclicCo,
                A::WriteCoInitRead,
                A::WriteCoRead,
            ],
            M::Pram => &[],
            // A read of a value nobody wrote breaks every guarantee.
            M::ReadYourWrites => &[A::ReadYourWrites, A::ThinAirRead],
            M::MonotonicReads => &[A::MonotonicReads, A::ThinAirRead],
            M::MonotonicWrites => &[A::MonotonicWrites, A::ThinAirRead],
            M::WritesFollowReads => &[A::WritesFollowReads, A::ThinAirRead],
            M::CausalConvergence => &[A::CyclicCf],
            M::CausalMemory => &[A::WriteHbInitRead, A::CyclicHb],
            M::Sequential | M::Linearizable => &[],
        }
    }

    /// The anomaly that says "a cycle exists in the graph this model keeps acyclic".
    pub fn cycle_exists_anomaly(self) -> Option<A> {
        Some(match self {
            M::ReadUncommitted => A::ReadUncommittedCycleExists,
            M::ReadCommitted => A::ReadCommittedCycleExists,
            M::SnapshotIsolation => A::SnapshotIsolationCycleExists,
            M::Serializable => A::SerializableCycleExists,
            M::StrongSessionReadUncommitted => A::StrongSessionReadUncommittedCycleExists,
            M::StrongSessionReadCommitted => A::StrongSessionReadCommittedCycleExists,
            M::StrongSessionSnapshotIsolation => A::StrongSessionSnapshotIsolationCycleExists,
            M::StrongSessionSerializable => A::StrongSessionSerializableCycleExists,
            M::StrongReadUncommitted => A::StrongReadUncommittedCycleExists,
            M::StrongReadCommitted => A::StrongReadCommittedCycleExists,
            M::StrongSnapshotIsolation => A::StrongSnapshotIsolationCycleExists,
            M::StrictSerializable => A::StrictSerializableCycleExists,
            _ => return None,
        })
    }
}

impl A {
    /// The anomalies this one implies directly: finding `self` means finding them.
    pub fn implies(self) -> &'static [A] {
        match self {
            A::G0 => &[A::G1c, A::G0Process],
            A::G0Process => &[A::G1cProcess, A::G0Realtime],
            A::G0Realtime => &[A::G1cRealtime],
            A::G1a | A::G1b => &[A::G1],
            A::G1c => &[A::G1, A::G1cProcess],
            A::G1cProcess => &[A::G1cRealtime, A::G1Process],
            A::G1cRealtime => &[A::G1Realtime],
            A::G1 => &[A::G1Process],
            A::G1Process => &[A::G1Realtime],
            A::GSingleItem => &[A::GSingle, A::GSingleItemProcess, A::GNonadjacentItem],
            A::GSingleItemProcess => &[
                A::GSingleProcess,
                A::GSingleItemRealtime,
                A::GNonadjacentItemProcess,
            ],
            A::GSingleItemRealtime => &[A::GSingleRealtime, A::GNonadjacentItemRealtime],
            A::GSingle => &[A::GNonadjacent, A::GSingleProcess],
            A::GSingleProcess => &[A::GNonadjacentProcess, A::GSingleRealtime],
            A::GSingleRealtime => &[A::GNonadjacentRealtime],
            A::GNonadjacentItem => &[A::GNonadjacent, A::G2Item, A::GNonadjacentItemProcess],
            A::GNonadjacentItemProcess => &[
                A::GNonadjacentProcess,
                A::G2ItemProcess,
                A::GNonadjacentItemRealtime,
            ],
            A::GNonadjacentItemRealtime => &[A::G2ItemRealtime, A::GNonadjacentRealtime],
            A::GNonadjacent => &[A::G2, A::GNonadjacentProcess],
            A::GNonadjacentProcess => &[A::G2Process, A::GNonadjacentRealtime],
            A::GNonadjacentRealtime => &[A::G2Realtime],
            A::G2Item => &[A::G2, A::G2ItemProcess],
            A::G2ItemProcess => &[A::G2Process, A::G2ItemRealtime],
            A::G2ItemRealtime => &[A::G2Realtime],
            A::G2 => &[A::G2Process],
            A::G2Process => &[A::G2Realtime],
            // Two reads that cannot come from one timeline: one of them saw a write that
            // never committed in that timeline.
            A::IncompatibleOrder => &[A::G1a],
            // A transaction that reads its own later write is a trivial wr cycle.
            A::FutureRead => &[A::G1c],
            // Building on an aborted write is at least as bad as reading it.
            A::DirtyUpdate => &[A::G1a],
            // A value nobody committed: as bad as reading an aborted one.
            A::ThinAirRead => &[A::G1a],
            // Biswas & Enea: the derived commit-order edges only grow from RC to RA to CC.
            A::ReadCommittedBeCycle => &[A::ReadAtomicCycle],
            A::ReadAtomicCycle => &[A::CausalCycle],
            // Each session-guarantee violation is a write-co-read (or its initial-value form),
            // which closes a cycle in the commit order of every causal model.
            A::ReadYourWrites | A::MonotonicReads | A::MonotonicWrites | A::WritesFollowReads => {
                &[A::CausalCycle, A::CyclicCf]
            }
            A::CyclicCo | A::WriteCoInitRead | A::WriteCoRead => &[A::CyclicCf],
            _ => &[],
        }
    }
}

/// Every anomaly implied by these (including themselves).
pub fn implied_anomalies(found: impl IntoIterator<Item = A>) -> BTreeSet<A> {
    let mut seen: BTreeSet<A> = BTreeSet::new();
    let mut stack: Vec<A> = found.into_iter().collect();
    while let Some(a) = stack.pop() {
        if seen.insert(a) {
            stack.extend(a.implies().iter().copied());
        }
    }
    seen
}

/// Every model implied by these (including themselves).
pub fn implied_models(models: impl IntoIterator<Item = Model>) -> BTreeSet<Model> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<Model> = models.into_iter().collect();
    while let Some(m) = stack.pop() {
        if seen.insert(m) {
            stack.extend(m.implies().iter().copied());
        }
    }
    seen
}

/// The models a history with these anomalies cannot satisfy.
pub fn impossible_models(found: impl IntoIterator<Item = A>) -> BTreeSet<Model> {
    let anomalies = implied_anomalies(found);
    Model::ALL
        .iter()
        .copied()
        .filter(|&m| {
            implied_models([m])
                .iter()
                .any(|weaker| weaker.forbids().iter().any(|a| anomalies.contains(a)))
        })
        .collect()
}

/// The anomalies that would make a history fail these models.
pub fn prohibited_anomalies(models: &[Model]) -> BTreeSet<A> {
    A::ALL
        .iter()
        .copied()
        .filter(|&a| {
            let impossible = impossible_models([a]);
            models.iter().any(|m| impossible.contains(m))
        })
        .collect()
}

/// The models of a set that imply no other model of the set: the weakest ones.
pub fn weakest(models: &BTreeSet<Model>) -> BTreeSet<Model> {
    models
        .iter()
        .copied()
        .filter(|&m| {
            !implied_models([m])
                .iter()
                .any(|&weaker| weaker != m && models.contains(&weaker))
        })
        .collect()
}

/// What a set of anomalies rules out: `not`, the weakest models it rules out, and `also_not`,
/// the stronger ones — restricted to the models of one kind of history.
pub fn boundary(
    found: impl IntoIterator<Item = A>,
    domain: Domain,
) -> (BTreeSet<Model>, BTreeSet<Model>) {
    boundary_of(impossible_models(found), domain)
}

/// [`boundary`] of a set of models already known to be ruled out.
pub fn boundary_of(
    impossible: BTreeSet<Model>,
    domain: Domain,
) -> (BTreeSet<Model>, BTreeSet<Model>) {
    let impossible: BTreeSet<Model> = impossible
        .into_iter()
        .filter(|m| m.domain() == domain || m.domain() == Domain::Both)
        .collect();
    let not = weakest(&impossible);
    let also_not = impossible.difference(&not).copied().collect();
    (not, also_not)
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Model {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl FromStr for Model {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let canonical = match s {
            // Elle's and the literature's other spellings.
            "strong-serializable" => "strict-serializable",
            "conflict-serializable" | "PL-3" => "serializable",
            "PL-2" => "read-committed",
            "PL-1" => "read-uncommitted",
            "PL-2.99" => "repeatable-read",
            "PL-SI" => "snapshot-isolation",
            "PL-SS" => "strict-serializable",
            "pram" => "PRAM",
            other => other,
        };
        Model::ALL
            .iter()
            .copied()
            .find(|m| m.as_str() == canonical)
            .ok_or_else(|| {
                let names: Vec<&str> = Model::ALL.iter().map(|m| m.as_str()).collect();
                format!(
                    "unknown consistency model {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(models: &BTreeSet<Model>) -> Vec<&'static str> {
        models.iter().map(|m| m.as_str()).collect()
    }

    #[test]
    fn g2_item_rules_out_repeatable_read_first() {
        // Elle's intermediate-sequential-extension test: `:not #{:repeatable-read}`.
        let (not, also_not) = boundary([A::G2Item], Domain::Transactions);
        assert_eq!(names(&not), ["repeatable-read"]);
        assert!(also_not.contains(&M::Serializable));
        assert!(also_not.contains(&M::StrictSerializable));
        assert!(!also_not.contains(&M::SnapshotIsolation));
    }

    #[test]
    fn a_realtime_g_single_rules_out_strong_snapshot_isolation() {
        let (not, also_not) = boundary([A::GSingleItemRealtime], Domain::Transactions);
        assert_eq!(names(&not), ["strong-snapshot-isolation"]);
        assert_eq!(names(&also_not), ["strict-serializable"]);
        // Elle's huge-scc result, with its fallback anomaly.
        let (not, _) = boundary(
            [A::G2ItemRealtime, A::StrongSnapshotIsolationCycleExists],
            Domain::Transactions,
        );
        assert_eq!(names(&not), ["strong-snapshot-isolation"]);
    }

    #[test]
    fn g0_rules_out_everything_down_to_read_uncommitted() {
        let (not, also_not) = boundary([A::G0], Domain::Transactions);
        assert_eq!(names(&not), ["read-uncommitted"]);
        assert!(also_not.contains(&M::Causal));
        assert!(also_not.contains(&M::StrictSerializable));
    }

    #[test]
    fn session_guarantees_rule_out_causal_and_up() {
        let (not, also_not) = boundary([A::ReadYourWrites], Domain::Registers);
        assert_eq!(names(&not), ["read-your-writes"]);
        assert_eq!(
            names(&also_not),
            [
                "causal",
                "PRAM",
                "causal-convergence",
                "causal-memory",
                "sequential",
                "linearizable"
            ]
        );
        let (not, _) = boundary([A::CyclicCf], Domain::Registers);
        assert_eq!(names(&not), ["causal-convergence"]);
    }

    #[test]
    fn prohibited_anomalies_follow_the_lattice() {
        let serializable = prohibited_anomalies(&[M::Serializable]);
        assert!(serializable.contains(&A::G2Item));
        assert!(serializable.contains(&A::G1a));
        assert!(!serializable.contains(&A::G2ItemRealtime));
        let strict = prohibited_anomalies(&[M::StrictSerializable]);
        assert!(strict.contains(&A::G2ItemRealtime));
        assert!(strict.contains(&A::GSingleItemProcess));
        let si = prohibited_anomalies(&[M::SnapshotIsolation]);
        assert!(si.contains(&A::GSingleItem));
        assert!(si.contains(&A::GNonadjacentItem));
        assert!(!si.contains(&A::G2Item));
    }

    #[test]
    fn the_lattice_is_acyclic_and_names_parse() {
        for &m in Model::ALL {
            assert_eq!(m.as_str().parse::<Model>(), Ok(m));
            let stronger_than_itself = m
                .implies()
                .iter()
                .any(|&weaker| implied_models([weaker]).contains(&m));
            assert!(!stronger_than_itself, "{m} implies itself through a cycle");
        }
        for &a in A::ALL {
            assert_eq!(a.as_str().parse::<A>(), Ok(a));
        }
        assert_eq!("strong-serializable".parse(), Ok(M::StrictSerializable));
    }
}
