//! Anomalies: what a transactional or causal checker can find, and the evidence it keeps.
//!
//! Names follow Adya ("G0", "G1c", "G-single", "G2-item"), Elle (the `-process` / `-realtime`
//! variants, "internal", "lost-update", "incompatible-order", ...), Bouajjani et al. for the
//! causal bad patterns ("write-co-read", "cyclic-cf", ...), and Terry et al. for the session
//! guarantees. Cycles whose anti-dependency (rw) edges are all on single keys carry the `-item`
//! suffix, as Elle reports them: faultline's histories have no predicate reads.

use serde::{Serialize, Serializer};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

macro_rules! anomaly_types {
    ($($variant:ident => $name:literal,)*) => {
        /// A kind of anomaly.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum AnomalyType {
            $($variant,)*
        }

        impl AnomalyType {
            pub const ALL: &'static [AnomalyType] = &[$(AnomalyType::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(AnomalyType::$variant => $name,)*
                }
            }
        }
    };
}

anomaly_types! {
    // Dependency cycles (Adya), with Elle's process and real-time variants.
    G0 => "G0",
    G0Process => "G0-process",
    G0Realtime => "G0-realtime",
    G1c => "G1c",
    G1cProcess => "G1c-process",
    G1cRealtime => "G1c-realtime",
    GSingleItem => "G-single-item",
    GSingleItemProcess => "G-single-item-process",
    GSingleItemRealtime => "G-single-item-realtime",
    GNonadjacentItem => "G-nonadjacent-item",
    GNonadjacentItemProcess => "G-nonadjacent-item-process",
    GNonadjacentItemRealtime => "G-nonadjacent-item-realtime",
    G2Item => "G2-item",
    G2ItemProcess => "G2-item-process",
    G2ItemRealtime => "G2-item-realtime",
    // Classes the cycles belong to: implied, never reported directly.
    G1 => "G1",
    G1Process => "G1-process",
    G1Realtime => "G1-realtime",
    GSingle => "G-single",
    GSingleProcess => "G-single-process",
    GSingleRealtime => "G-single-realtime",
    GNonadjacent => "G-nonadjacent",
    GNonadjacentProcess => "G-nonadjacent-process",
    GNonadjacentRealtime => "G-nonadjacent-realtime",
    G2 => "G2",
    G2Process => "G2-process",
    G2Realtime => "G2-realtime",
    // Anomalies found without a cycle.
    G1a => "G1a",
    G1b => "G1b",
    Internal => "internal",
    DuplicateElements => "duplicate-elements",
    IncompatibleOrder => "incompatible-order",
    DirtyUpdate => "dirty-update",
    LostUpdate => "lost-update",
    FutureRead => "future-read",
    CyclicVersions => "cyclic-versions",
    ThinAirRead => "thin-air-read",
    // The bank workload.
    WrongTotal => "wrong-total",
    NegativeValue => "negative-value",
    // Biswas & Enea: no commit order satisfies the model's axiom.
    ReadCommittedBeCycle => "read-committed-be-cycle",
    ReadAtomicCycle => "read-atomic-cycle",
    CausalCycle => "causal-cycle",
    // Session guarantees (Terry et al.), named when a causal violation has their shape.
    ReadYourWrites => "read-your-writes",
    MonotonicReads => "monotonic-reads",
    MonotonicWrites => "monotonic-writes",
    WritesFollowReads => "writes-follow-reads",
    // Bouajjani, Enea, Guerraoui, Hamza: bad patterns of register histories.
    CyclicCo => "cyclic-co",
    WriteCoInitRead => "write-co-init-read",
    WriteCoRead => "write-co-read",
    CyclicCf => "cyclic-cf",
    WriteHbInitRead => "write-hb-init-read",
    CyclicHb => "cyclic-hb",
    // A cycle is known to exist in the graph a model must keep acyclic, but the bounded search
    // did not name it (Elle's fallback).
    ReadUncommittedCycleExists => "read-uncommitted-cycle-exists",
    ReadCommittedCycleExists => "read-committed-cycle-exists",
    SnapshotIsolationCycleExists => "snapshot-isolation-cycle-exists",
    SerializableCycleExists => "serializable-cycle-exists",
    StrongSessionReadUncommittedCycleExists => "strong-session-read-uncommitted-cycle-exists",
    StrongSessionReadCommittedCycleExists => "strong-session-read-committed-cycle-exists",
    StrongSessionSnapshotIsolationCycleExists => "strong-session-snapshot-isolation-cycle-exists",
    StrongSessionSerializableCycleExists => "strong-session-serializable-cycle-exists",
    StrongReadUncommittedCycleExists => "strong-read-uncommitted-cycle-exists",
    StrongReadCommittedCycleExists => "strong-read-committed-cycle-exists",
    StrongSnapshotIsolationCycleExists => "strong-snapshot-isolation-cycle-exists",
    StrictSerializableCycleExists => "strict-serializable-cycle-exists",
    // The bounded cycle search gave up on a component (the verdict does not depend on it).
    CycleSearchTimeout => "cycle-search-timeout",
}

impl AnomalyType {
    /// Anomalies that make a verdict unknown rather than invalid: they say the search was
    /// incomplete, not that something is wrong.
    pub fn is_unknown_class(self) -> bool {
        matches!(self, AnomalyType::CycleSearchTimeout)
    }
}

impl fmt::Display for AnomalyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AnomalyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AnomalyType::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown anomaly type {s:?}"))
    }
}

impl Serialize for AnomalyType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A transaction as evidence: where it is in the history and what it did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TxnSummary {
    /// The name explanations use: `T1`, `T2`, ... in order of appearance in the anomaly.
    pub name: String,
    /// Index of the invocation event.
    pub index: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_index: Option<u64>,
    pub process: u64,
    /// `ok`, `info` or `fail`.
    #[serde(rename = "type")]
    pub outcome: String,
    /// The micro-operations, with what was read.
    pub value: Value,
}

/// One edge of a cycle: `from` must precede `to`, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Name of the earlier transaction (`T1`).
    pub from: String,
    /// Name of the later one.
    pub to: String,
    /// The relation: `ww`, `wr`, `rw`, `process`, `realtime`, or (causal checks) `so`,
    /// `derived`.
    #[serde(rename = "type")]
    pub relation: String,
    /// The key the dependency is on, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The sentence that justifies the edge.
    pub because: String,
}

/// One anomaly with its witness.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    #[serde(rename = "type")]
    pub kind: AnomalyType,
    /// The transactions (or operations) involved, named `T1`, `T2`, ...
    pub txns: Vec<TxnSummary>,
    /// For cycles: the edges, in order, closing back on the first transaction.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cycle: Vec<Step>,
    /// Anything else the witness needs (key, values, expected and observed states).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub details: Value,
    /// The witness as text a person can follow.
    pub explanation: String,
}

impl Anomaly {
    /// The order anomalies are listed in: by type, then by where they are in the history.
    pub fn sort_key(&self) -> (AnomalyType, Vec<u64>, String) {
        (
            self.kind,
            self.txns.iter().map(|t| t.index).collect(),
            self.explanation.clone(),
        )
    }
}
