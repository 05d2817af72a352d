//! Transactional and causal consistency: is this history serializable? snapshot isolated?
//! causal? Which anomalies does it show, and which models does it rule out?
//!
//! The main entry point is [`check`]: it reads the transactions of a [`History`] (list-append,
//! rw-register or bank), infers the dependencies between them (ww, wr, rw, and process or
//! real-time order where the models need them), finds the strongly connected components of
//! that graph, and in each one searches, in parallel, for the shortest cycles of every
//! anomaly type the requested models forbid (Adya's G0 ... G2-item, Elle's -process and
//! -realtime variants). Anomalies that need no cycle (aborted reads, lost updates, ...) are
//! found on the way. The result says which anomalies were found (each with a witness a person
//! can follow), whether the history satisfies the requested models, and which models it rules
//! out (`not`: the weakest; `also_not`: the rest).
//!
//! ```
//! use faultline_checker::txn::{check, dsl, CheckOptions, DataModel, Model};
//! use faultline_checker::Validity;
//! // Write skew: each transaction read the key the other wrote, and missed the write.
//! let history = dsl::list_append("0<rxay1 1<ryax1 0>rxay1 1>ryax1");
//! let options = CheckOptions::new(DataModel::ListAppend, vec![Model::Serializable]);
//! let result = check(&history, &options).unwrap();
//! assert_eq!(result.valid, Validity::Invalid);
//! assert_eq!(result.anomaly_types[0].as_str(), "G2-item");
//! assert_eq!(result.not[0].as_str(), "repeatable-read");
//! ```
//!
//! Design decision: the verdict never depends on how long a search ran. Whether a model's
//! graph has a cycle is decided exactly, in linear time per component; only the *witness*
//! (which cycle, how short) is searched for within bounds. A search cut short is reported as
//! `cycle-search-timeout`, and if no witness was found, the component's
//! `<model>-cycle-exists` anomaly stands in for it, as Elle does.

pub mod anomaly;
mod bank;
mod causal;
pub mod consistency;
mod cycles;
pub mod dsl;
pub mod explain;
pub mod graph;
pub mod history;
mod list_append;
mod order;
mod rw_register;

pub use anomaly::{Anomaly, AnomalyType, Step, TxnSummary};
pub use bank::BankOptions;
pub use consistency::Model;

use rayon::prelude::*;
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use faultline_core::{History, HistoryError};

use crate::Validity;
use consistency::Domain;
use explain::EdgeExplainer;
use graph::{rel, Edge, Graph};
use history::{Status, TxnHistory};

/// Why a history could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error(transparent)]
    History(HistoryError),
    #[error("event at index {index}: {why}")]
    Malformed { index: u64, why: String },
    /// The history breaks an assumption of the data model (unique appends, unique writes).
    #[error("{0}")]
    Precondition(String),
    #[error("the history is too large: {0}")]
    TooLarge(String),
}

/// The data model of a transactional history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataModel {
    /// Elle's list-append: `append` unique values to lists, read whole lists.
    ListAppend,
    /// Elle's rw-register: write unique values to registers, read them.
    RwRegister,
    /// Jepsen's bank: transfers between accounts, reads of every balance.
    Bank,
    /// Single registers (`read` / `write` with a `key`, unique writes), checked for the causal
    /// models and session guarantees (linearizability has its own checker).
    Register,
}

impl DataModel {
    pub const ALL: [DataModel; 4] = [
        DataModel::ListAppend,
        DataModel::RwRegister,
        DataModel::Bank,
        DataModel::Register,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DataModel::ListAppend => "list-append",
            DataModel::RwRegister => "rw-register",
            DataModel::Bank => "bank",
            DataModel::Register => "register",
        }
    }
}

impl FromStr for DataModel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataModel::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("{s:?} is not a model of this checker (list-append, rw-register, bank, register)")
            })
    }
}

impl Serialize for DataModel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Default cap on the memory the dependency graph may take.
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 4 << 30;
/// Default bound on the search states the witness search may discover per strongly connected
/// component (each costs about 40 bytes while its search runs, so about 200 MiB per thread).
pub const DEFAULT_CYCLE_SEARCH_EXPANSIONS: u64 = 5_000_000;
/// How many anomalies of each type a result lists (the counts are always complete).
pub const DEFAULT_MAX_LISTED: usize = 100;

/// How to check a transactional history.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub model: DataModel,
    /// The models the history is expected to satisfy (Elle's `:consistency-models`).
    pub consistency: Vec<Model>,
    /// Past this the verdict is `unknown` (unless a violation is already certain).
    pub time_limit: Option<Duration>,
    /// Past this much graph memory the verdict is `unknown`.
    pub memory_limit_bytes: u64,
    /// Search states the witness search may discover in one component (time and memory).
    pub cycle_search_expansions: u64,
    /// Anomalies listed per type.
    pub max_listed: usize,
    /// List-append: a committed append no read shows still comes after every version read
    /// (a list only grows), so the writer and the readers of the last version read precede
    /// it. Elle infers the same (`previously-appended-element`); turning it off reproduces
    /// analyses that ignore unread appends.
    pub infer_unread_appends: bool,
    /// Registers, EDN convention: a `nil` read observed nothing (rather than the initial
    /// state).
    pub nil_read_is_unknown: bool,
    pub bank: BankOptions,
}

impl CheckOptions {
    pub fn new(model: DataModel, consistency: Vec<Model>) -> CheckOptions {
        CheckOptions {
            model,
            consistency,
            time_limit: None,
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            cycle_search_expansions: DEFAULT_CYCLE_SEARCH_EXPANSIONS,
            max_listed: DEFAULT_MAX_LISTED,
            infer_unread_appends: true,
            nil_read_is_unknown: false,
            bank: BankOptions::default(),
        }
    }
}

/// Sizes of what was checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TxnStats {
    pub txns: usize,
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    pub keys: usize,
    pub graph_edges: usize,
    /// Strongly connected components with two transactions or more.
    pub components: usize,
    pub largest_component: usize,
}

/// A transactional checker's verdict and its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TxnResult {
    pub valid: Validity,
    pub model: DataModel,
    /// The models checked.
    pub consistency: Vec<Model>,
    /// Every anomaly type found, sorted.
    #[serde(rename = "anomaly-types")]
    pub anomaly_types: Vec<AnomalyType>,
    /// The anomalies of each type (at most `max_listed` each), sorted by position.
    pub anomalies: BTreeMap<String, Vec<Anomaly>>,
    /// How many of each type were found.
    #[serde(rename = "anomaly-counts")]
    pub anomaly_counts: BTreeMap<String, usize>,
    /// The weakest models the history rules out.
    pub not: Vec<Model>,
    /// The stronger models it also rules out.
    #[serde(rename = "also-not")]
    pub also_not: Vec<Model>,
    /// Why the verdict is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub stats: TxnStats,
}

impl TxnResult {
    /// The evidence as text: each anomaly type with its witnesses, then what is ruled out.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        if let Some(reason) = &self.reason {
            let _ = writeln!(out, "unknown: {reason}");
        }
        for (kind, anomalies) in &self.anomalies {
            let count = self.anomaly_counts.get(kind).copied().unwrap_or(0);
            let listed = if count > anomalies.len() {
                format!(" ({count} found, {} shown)", anomalies.len())
            } else if count > 1 {
                format!(" ({count} found)")
            } else {
                String::new()
            };
            let _ = writeln!(out, "{kind}{listed}:");
            for anomaly in anomalies {
                for line in anomaly.explanation.lines() {
                    let _ = writeln!(out, "  {line}");
                }
                out.push('\n');
            }
        }
        if !self.not.is_empty() {
            let names = |models: &[Model]| {
                models
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = write!(out, "Not {}", names(&self.not));
            if !self.also_not.is_empty() {
                let _ = write!(out, "; also not {}", names(&self.also_not));
            }
            out.push_str(".\n");
        }
        out
    }
}

/// What a data model's analysis hands to the graph stage.
pub(crate) struct Analysis {
    /// Anomalies found without the graph.
    pub anomalies: Vec<Found>,
    /// Data dependencies (ww, wr, rw), in lists from parallel builders.
    pub edges: Vec<Vec<Edge>>,
    pub explainer: Box<dyn EdgeExplainer>,
}

/// An anomaly with what the verdict needs to know about it.
pub(crate) struct Found {
    pub anomaly: Anomaly,
    /// The model a cycle needs for its edges to hold (rw-register version orders inferred
    /// from process order or real time): it rules out only the models that imply it.
    pub assumes: Option<Model>,
}

impl From<Anomaly> for Found {
    fn from(anomaly: Anomaly) -> Found {
        Found {
            anomaly,
            assumes: None,
        }
    }
}

impl Found {
    /// The models this anomaly rules out: those that forbid its kind and, when its edges were
    /// inferred under a model's assumption, also imply that assumption. A G2-item cycle that
    /// needs real-time version orders rules out strict serializability, not strong snapshot
    /// isolation (which allows G2-item); a G-single cycle that needs them rules out both.
    fn rules_out(&self) -> BTreeSet<Model> {
        let forbidding = consistency::impossible_models([self.anomaly.kind]);
        match self.assumes {
            None => forbidding,
            Some(assumed) => forbidding
                .into_iter()
                .filter(|&m| consistency::implied_models([m]).contains(&assumed))
                .collect(),
        }
    }
}

/// Checks a transactional history against `options.consistency`.
///
/// # Correctness
/// Aborted (`fail`) transactions are never in the graph; `info` ones are, as writers (their
/// reads are unknown), and precede nothing in real time. A history that breaks the data
/// model's assumption (an append or write that is not unique) is an error, not a verdict.
pub fn check(history: &History, options: &CheckOptions) -> Result<TxnResult, TxnError> {
    let started = Instant::now();
    let deadline = options.time_limit.map(|limit| started + limit);
    match options.model {
        DataModel::Bank => return bank::check(history, options),
        DataModel::Register => return check_registers(history, options),
        DataModel::ListAppend | DataModel::RwRegister => {}
    }
    let mut timings = Timings::new();
    let txns = history::parse(history)?;
    timings.phase("parse");
    let requested = &options.consistency;
    let prohibited = consistency::prohibited_anomalies(requested);
    let wants = |kinds: &[AnomalyType]| kinds.iter().any(|k| prohibited.contains(k));
    let need_realtime = wants(&[
        AnomalyType::G0Realtime,
        AnomalyType::G1cRealtime,
        AnomalyType::GSingleItemRealtime,
        AnomalyType::G2ItemRealtime,
    ]);
    let need_process = !need_realtime
        && wants(&[
            AnomalyType::G0Process,
            AnomalyType::G1cProcess,
            AnomalyType::GSingleItemProcess,
            AnomalyType::G2ItemProcess,
        ]);
    let implied = consistency::implied_models(requested.iter().copied());
    let inference = rw_register::Inference {
        realtime: implied.contains(&Model::StrongSnapshotIsolation),
        process: implied.contains(&Model::StrongSessionSnapshotIsolation),
    };

    let mut stats = TxnStats {
        txns: txns.txns.len(),
        keys: txns.keys.len(),
        ..TxnStats::default()
    };
    for t in &txns.txns {
        match t.status {
            Status::Ok => stats.ok += 1,
            Status::Fail => stats.fail += 1,
            Status::Info => stats.info += 1,
        }
    }
    let mut result = Assembly::new(options, stats);
    if result.stats.ok == 0 {
        result.unknown("the history has no committed transactions".into());
        return Ok(result.finish(Domain::Transactions));
    }

    let analysis = match options.model {
        DataModel::ListAppend => list_append::analyze(&txns, options.infer_unread_appends)?,
        DataModel::RwRegister => rw_register::analyze(&txns, inference)?,
        DataModel::Bank | DataModel::Register => unreachable!("handled above"),
    };
    let Analysis {
        anomalies,
        mut edges,
        explainer,
    } = analysis;
    timings.phase("dependencies");
    result.extend(anomalies);
    if past(deadline) {
        result.unknown(format!(
            "the time limit ({:?}) passed while inferring dependencies",
            options.time_limit.unwrap_or_default()
        ));
        return Ok(result.finish(Domain::Transactions));
    }

    if need_realtime {
        edges.push(order::realtime_edges(&txns));
    } else if need_process {
        edges.push(order::process_edges(&txns));
    }
    let edge_count: usize = edges.iter().map(|e| e.len()).sum();
    // Edge lists, the packed sort buffer, and the graph itself.
    let graph_bytes = edge_count as u64 * (12 + 8 + 6) + txns.txns.len() as u64 * 24;
    if graph_bytes > options.memory_limit_bytes {
        result.unknown(format!(
            "the dependency graph ({edge_count} edges) would need about {} MiB, over the \
             memory limit of {} MiB",
            graph_bytes >> 20,
            options.memory_limit_bytes >> 20
        ));
        return Ok(result.finish(Domain::Transactions));
    }
    timings.phase("order edges");
    let graph = Graph::build(txns.txns.len(), edges);
    timings.phase("graph");
    result.stats.graph_edges = graph.edge_count();
    let components = graph::tarjan(graph.vertex_count(), &graph.offsets, &graph.targets, |_| {
        true
    });
    let mut sccs = components.nontrivial;
    drop(components.of);
    // Largest first, so the long searches start early; ties by first transaction.
    sccs.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    timings.phase("components");
    result.stats.components = sccs.len();
    result.stats.largest_component = sccs.first().map_or(0, |c| c.len());

    let wanted: Vec<AnomalyType> = cycles::cycle_types()
        .filter(|t| prohibited.contains(t))
        .collect();
    // Models whose graphs decide the verdict: every model the requested ones imply, and any
    // whose cycle the requested ones forbid.
    let graph_models: Vec<Model> = Model::ALL
        .iter()
        .copied()
        .filter(|m| cycles::model_graph(*m).is_some())
        .filter(|m| {
            implied.contains(m)
                || m.cycle_exists_anomaly()
                    .is_some_and(|a| prohibited.contains(&a))
        })
        .collect();
    let expired = AtomicBool::new(past(deadline));
    let unchecked = AtomicBool::new(false);
    let reports: Vec<(cycles::ComponentReport, Vec<Found>)> = sccs
        .par_iter()
        .filter_map(|members| {
            if expired.load(Ordering::Relaxed) || past(deadline) {
                expired.store(true, Ordering::Relaxed);
                unchecked.store(true, Ordering::Relaxed);
                return None;
            }
            let local = graph.induced(members);
            let bounds = cycles::Bounds {
                expansions: options.cycle_search_expansions,
                deadline,
                expired: &expired,
            };
            let report = cycles::search_component(&local, &wanted, &graph_models, &bounds);
            let found = report
                .cycles
                .iter()
                .map(|c| {
                    let c = shortcut(&txns, c.clone());
                    let anomaly =
                        explain::cycle_anomaly(&txns, explainer.as_ref(), &c.txns, &c.rels);
                    let assumes = if c
                        .rels
                        .iter()
                        .any(|r| *r & (rel::WW_REALTIME | rel::RW_REALTIME) != 0)
                    {
                        Some(Model::StrongSnapshotIsolation)
                    } else if c
                        .rels
                        .iter()
                        .any(|r| *r & (rel::WW_PROCESS | rel::RW_PROCESS) != 0)
                    {
                        Some(Model::StrongSessionSnapshotIsolation)
                    } else {
                        None
                    };
                    Found { anomaly, assumes }
                })
                .collect();
            Some((report, found))
        })
        .collect();
    drop(graph);
    timings.phase("cycle search");

    let mut fallbacks: Vec<(Model, &cycles::ComponentReport)> = Vec::new();
    for (report, _) in &reports {
        // A component's cycle-exists fallback for its weakest models only.
        let exists: BTreeSet<Model> = report.cycle_exists.iter().copied().collect();
        for model in consistency::weakest(&exists) {
            fallbacks.push((model, report));
        }
        if let Some(kind) = report.timed_out_on {
            result.push(Found::from(timeout_anomaly(&txns, report, kind)));
        }
    }
    for (_, found) in reports.iter() {
        for f in found {
            result.push(Found {
                anomaly: f.anomaly.clone(),
                assumes: f.assumes,
            });
        }
    }
    // Fallbacks stand in only for what the named anomalies do not already rule out.
    let ruled_out = result.ruled_out();
    for (model, report) in fallbacks {
        if ruled_out.contains(&model) {
            continue;
        }
        let kind = model.cycle_exists_anomaly().expect("graph models have one");
        result.push(Found::from(cycle_exists_anomaly(
            &txns, report, model, kind,
        )));
    }
    if unchecked.load(Ordering::Relaxed) {
        result.unknown(format!(
            "the time limit ({:?}) passed before every strongly connected component was \
             checked",
            options.time_limit.unwrap_or_default()
        ));
    }

    // Causal models that need more than cycles: Biswas & Enea's saturation checks.
    if causal::wanted(requested) {
        match causal::check_transactions(
            &txns,
            options.model,
            requested,
            options.memory_limit_bytes,
        ) {
            Ok(found) => result.extend(found.into_iter().map(Found::from)),
            Err(reason) => result.unknown(reason),
        }
        timings.phase("causal");
    }
    let result = result.finish(Domain::Transactions);
    timings.phase("result");
    Ok(result)
}

/// Shortens a cycle by process and real-time facts the transitive reduction left out: where
/// an earlier transaction of the cycle completed before a later one began, the steps between
/// them become one real-time (or process) edge, if the cycle keeps its type. A witness found
/// through a long chain of real-time edges usually folds to two or three transactions.
fn shortcut(txns: &TxnHistory, mut cycle: cycles::FoundCycle) -> cycles::FoundCycle {
    const LONGEST: usize = 256;
    let order_rels = |a: u32, b: u32| -> Vec<u16> {
        let (x, y) = (&txns.txns[a as usize], &txns.txns[b as usize]);
        if x.status != Status::Ok
            || !y.status.may_have_committed()
            || x.complete_pos == history::NO_POSITION
            || x.complete_pos > y.invoke_pos
        {
            return Vec::new();
        }
        if x.process == y.process {
            vec![rel::PROCESS, rel::REALTIME]
        } else {
            vec![rel::REALTIME]
        }
    };
    loop {
        let n = cycle.txns.len();
        if n <= 2 || n > LONGEST {
            return cycle;
        }
        let mut best: Option<(usize, Vec<u32>, Vec<u16>)> = None;
        for i in 0..n {
            for skip in (2..n).rev() {
                if best.as_ref().is_some_and(|(s, _, _)| *s >= skip) {
                    break;
                }
                let j = (i + skip) % n;
                for r in order_rels(cycle.txns[i], cycle.txns[j]) {
                    let mut new_txns = Vec::with_capacity(n - skip + 1);
                    let mut new_rels = Vec::with_capacity(n - skip + 1);
                    let mut k = j;
                    while k != i {
                        new_txns.push(cycle.txns[k]);
                        new_rels.push(cycle.rels[k]);
                        k = (k + 1) % n;
                    }
                    new_txns.push(cycle.txns[i]);
                    new_rels.push(r);
                    if explain::classify(&new_rels) == cycle.kind {
                        best = Some((skip, new_txns, new_rels));
                        break;
                    }
                }
            }
        }
        match best {
            Some((_, txns, rels)) => {
                cycle = cycles::FoundCycle {
                    kind: cycle.kind,
                    txns,
                    rels,
                }
            }
            None => return cycle,
        }
    }
}

/// Register histories: Bouajjani et al.'s causal bad patterns and the session guarantees.
fn check_registers(history: &History, options: &CheckOptions) -> Result<TxnResult, TxnError> {
    if let Some(m) = options.consistency.iter().find(|m| !causal::wanted(&[**m])) {
        return Err(TxnError::Precondition(format!(
            "register histories are checked here for causal, causal-convergence, \
             causal-memory, PRAM and the session guarantees; {m} is checked by the \
             linearizability checker"
        )));
    }
    let converted = causal::register_history(history, options.nil_read_is_unknown)?;
    let txns = history::parse(&converted)?;
    let mut stats = TxnStats {
        txns: txns.txns.len(),
        keys: txns.keys.len(),
        ..TxnStats::default()
    };
    for t in &txns.txns {
        match t.status {
            Status::Ok => stats.ok += 1,
            Status::Fail => stats.fail += 1,
            Status::Info => stats.info += 1,
        }
    }
    let mut result = Assembly::new(options, stats);
    match causal::check_registers(&txns, &options.consistency, options.memory_limit_bytes) {
        Ok(found) => result.extend(found.into_iter().map(Found::from)),
        Err(reason) => result.unknown(reason),
    }
    Ok(result.finish(Domain::Registers))
}

/// Phase timings on stderr when `FAULTLINE_TIMINGS` is set (as `faultline check` prints its
/// own), for finding where a slow check spends its time.
struct Timings {
    enabled: bool,
    last: Instant,
}

impl Timings {
    fn new() -> Timings {
        Timings {
            enabled: std::env::var_os("FAULTLINE_TIMINGS").is_some(),
            last: Instant::now(),
        }
    }

    fn phase(&mut self, name: &str) {
        if self.enabled {
            eprintln!("timings: txn {name} {:?}", self.last.elapsed());
            self.last = Instant::now();
        }
    }
}

fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

fn timeout_anomaly(
    txns: &TxnHistory,
    report: &cycles::ComponentReport,
    kind: AnomalyType,
) -> Anomaly {
    let sample: Vec<u64> = report.sample.iter().map(|&t| txns.index_of(t)).collect();
    Anomaly {
        kind: AnomalyType::CycleSearchTimeout,
        txns: Vec::new(),
        cycle: Vec::new(),
        details: serde_json::json!({
            "searching-for": kind.as_str(),
            "component-size": report.size,
            "component-sample-indexes": sample,
        }),
        explanation: format!(
            "The search for {kind} in a strongly connected component of {} transactions \
             (first at index {}) reached its bound; the verdict does not depend on it.",
            report.size,
            sample.first().copied().unwrap_or_default()
        ),
    }
}

fn cycle_exists_anomaly(
    txns: &TxnHistory,
    report: &cycles::ComponentReport,
    model: Model,
    kind: AnomalyType,
) -> Anomaly {
    let sample: Vec<u64> = report.sample.iter().map(|&t| txns.index_of(t)).collect();
    Anomaly {
        kind,
        txns: Vec::new(),
        cycle: Vec::new(),
        details: serde_json::json!({
            "not": model.as_str(),
            "component-size": report.size,
            "component-sample-indexes": sample,
        }),
        explanation: format!(
            "A strongly connected component of {} transactions (first at index {}) holds a \
             cycle in the dependencies {model} must keep acyclic; the bounded search did not \
             name one.",
            report.size,
            sample.first().copied().unwrap_or_default()
        ),
    }
}

/// Collects anomalies and composes the result.
pub(crate) struct Assembly<'a> {
    options: &'a CheckOptions,
    found: Vec<Found>,
    reason: Option<String>,
    pub stats: TxnStats,
}

impl<'a> Assembly<'a> {
    pub fn new(options: &'a CheckOptions, stats: TxnStats) -> Assembly<'a> {
        Assembly {
            options,
            found: Vec::new(),
            reason: None,
            stats,
        }
    }

    pub fn push(&mut self, found: Found) {
        self.found.push(found);
    }

    pub fn extend(&mut self, found: impl IntoIterator<Item = Found>) {
        self.found.extend(found);
    }

    pub fn unknown(&mut self, reason: String) {
        if self.reason.is_none() {
            self.reason = Some(reason);
        }
    }

    /// Every model the anomalies found so far rule out.
    fn ruled_out(&self) -> BTreeSet<Model> {
        self.found.iter().flat_map(Found::rules_out).collect()
    }

    pub fn finish(mut self, domain: Domain) -> TxnResult {
        let impossible = self.ruled_out();
        let violated = self
            .options
            .consistency
            .iter()
            .any(|m| impossible.contains(m));
        let valid = if violated {
            Validity::Invalid
        } else if self.reason.is_some() {
            Validity::Unknown
        } else {
            Validity::Valid
        };
        let (not, also_not) = consistency::boundary_of(impossible, domain);
        self.found.sort_by_cached_key(|f| f.anomaly.sort_key());
        let mut anomalies: BTreeMap<String, Vec<Anomaly>> = BTreeMap::new();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut types = BTreeSet::new();
        for f in self.found {
            let name = f.anomaly.kind.as_str().to_string();
            types.insert(f.anomaly.kind);
            *counts.entry(name.clone()).or_default() += 1;
            let listed = anomalies.entry(name).or_default();
            if listed.len() < self.options.max_listed {
                listed.push(f.anomaly);
            }
        }
        let mut anomaly_types: Vec<AnomalyType> = types.into_iter().collect();
        anomaly_types.sort_by_key(|a| a.as_str());
        TxnResult {
            valid,
            model: self.options.model,
            consistency: self.options.consistency.clone(),
            anomaly_types,
            anomalies,
            anomaly_counts: counts,
            not: not.into_iter().collect(),
            also_not: also_not.into_iter().collect(),
            reason: self.reason,
            stats: self.stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(kind: AnomalyType, assumes: Option<Model>) -> Found {
        Found {
            anomaly: anomaly::Anomaly {
                kind,
                txns: Vec::new(),
                cycle: Vec::new(),
                details: serde_json::Value::Null,
                explanation: String::new(),
            },
            assumes,
        }
    }

    /// A cycle whose version orders come from real time holds only under models that order
    /// by real time, and rules out only those of them that forbid its kind: write skew seen
    /// through real-time version orders breaks strict serializability, not strong snapshot
    /// isolation (found on PostgreSQL's REPEATABLE READ, where `check --consistency
    /// strong-snapshot-isolation` was valid but strict-serializable's `not` named it).
    #[test]
    fn an_inferred_cycle_rules_out_models_that_both_assume_it_and_forbid_it() {
        let g2 = found(AnomalyType::G2Item, Some(Model::StrongSnapshotIsolation)).rules_out();
        assert!(g2.contains(&Model::StrictSerializable), "{g2:?}");
        assert!(!g2.contains(&Model::StrongSnapshotIsolation), "{g2:?}");
        assert!(!g2.contains(&Model::Serializable), "{g2:?}");
        let single = found(AnomalyType::GSingle, Some(Model::StrongSnapshotIsolation)).rules_out();
        assert!(
            single.contains(&Model::StrongSnapshotIsolation),
            "{single:?}"
        );
        assert!(!single.contains(&Model::SnapshotIsolation), "{single:?}");
        // Without an assumption, every model forbidding the kind.
        let plain = found(AnomalyType::G2Item, None).rules_out();
        assert!(plain.contains(&Model::Serializable), "{plain:?}");
    }
}
