//! Workloads: generators of operations, the interpreter that performs them and records the
//! history, and the checker each workload's history gets.
//!
//! A [`Workload`] is a main generator (endless; the run's time limit and rate are applied
//! around it by [`plan`]), an optional final generator (final reads, after every main
//! operation completed), and a checker. The [`interpreter`] runs a generator against a target's
//! [`faultline_core::Client`] with `test.concurrency` workers and streams every event to
//! `history.jsonl`.
//!
//! Workloads: [`register`] (linearizability per key), [`set`], and the transactional
//! [`txn`] (`list-append`, `rw-register`: Elle's generators, checked for the consistency model
//! in `test.workload_options`) and [`bank`]; [`lock`] (`lock`, `fenced-lock`: leases and
//! fencing tokens, see [`faultline_core::lock`]); [`broadcast`] (`broadcast`, alias `log`: total
//! order broadcast, see [`faultline_core::broadcast`]), [`queue`] (work queues, see
//! [`faultline_core::queue`]), [`election`] (leader election, see
//! [`faultline_core::election`]), [`unique_ids`], [`watch`] (change notification, see
//! [`faultline_core::watch`]) and [`ephemeral`] (failure detection through ephemeral
//! registrations, see [`faultline_core::ephemeral`]). What a client of a transactional workload
//! receives and must answer is written in [`faultline_core::txn`].
//!
//! ```
//! use faultline_core::Test;
//! let test = Test::example("memory", "register", 42);
//! let workload = faultline_workloads::build(&test).unwrap();
//! assert_eq!(workload.name, "register");
//! let _generator = faultline_workloads::plan(&test, workload.generator, workload.final_generator);
//! ```
//!
//! Design decision: the interpreter, not the client, builds each recorded `Op` from the
//! invocation it sent and the `Completion` it got, so a client cannot write a malformed
//! history; and the history is written by one thread in the order events reach it, which is
//! real-time order (see [`interpreter`]).

pub mod bank;
pub mod broadcast;
pub mod clock;
pub mod election;
pub mod ephemeral;
pub mod generator;
pub mod interpreter;
pub mod lock;
pub mod queue;
pub mod register;
pub mod set;
pub mod txn;
pub mod unique_ids;
pub mod watch;

use serde_json::Value;
use std::collections::BTreeMap;

use faultline_checker::txn::DataModel;
use faultline_checker::Validity;
use faultline_core::{HarnessError, History, Test};

use generator::BoxGen;

/// The workloads that can run today.
pub const NAMES: [&str; 14] = [
    "register",
    "set",
    "list-append",
    "rw-register",
    "bank",
    "lock",
    "fenced-lock",
    "broadcast",
    "log",
    "queue",
    "election",
    "unique-ids",
    "watch",
    "ephemeral",
];
/// The lock workloads: they take `lease_ms`, `fencing` and `client_pause_ms`.
pub const LOCK_NAMES: [&str; 2] = ["lock", "fenced-lock"];
/// The coordination workloads with options of their own besides the locks'.
pub const COORDINATION_NAMES: [&str; 2] = ["watch", "ephemeral"];
/// The transactional workloads: they take `--consistency` and the key and length options.
pub const TXN_NAMES: [&str; 3] = ["list-append", "rw-register", "bank"];
/// Every workload name `CONTRACTS.md` promises, available or not.
pub const CONTRACT_NAMES: [&str; 14] = [
    "register",
    "set",
    "list-append",
    "rw-register",
    "bank",
    "lock",
    "fenced-lock",
    "election",
    "log",
    "broadcast",
    "unique-ids",
    "watch",
    "ephemeral",
    "queue",
];

/// Errors of running a workload.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("unknown workload {0:?}; available: {names}", names = NAMES.join(", "))]
    Unknown(String),
    #[error(
        "workload {0:?} is not available yet: only {names} can run today",
        names = NAMES.join(", ")
    )]
    NotAvailable(String),
    #[error("workload {workload}: option {option}: {why}")]
    BadOption {
        workload: String,
        option: String,
        why: String,
    },
    #[error(transparent)]
    Harness(#[from] HarnessError),
    #[error("writing the history: {0}")]
    HistoryWrite(std::io::Error),
    #[error("a worker task failed: {0}")]
    Worker(String),
}

/// A workload: what to do, and how to judge the history.
pub struct Workload {
    pub name: &'static str,
    /// Every option the workload runs with, defaults filled in (recorded in `test.json`).
    pub options: BTreeMap<String, Value>,
    /// Endless operations for the main phase.
    pub generator: BoxGen,
    /// Operations after the main phase has completed (final reads).
    pub final_generator: Option<BoxGen>,
    pub checker: fn(&Test, &History) -> Checked,
}

/// A checker's verdict, with its full result as JSON for `results.json`.
#[derive(Debug, Clone)]
pub struct Checked {
    pub valid: Validity,
    /// `linearizability`, `set`, ...
    pub checker: &'static str,
    pub result: Value,
    /// Text for a person: empty when valid.
    pub explanation: String,
}

impl Checked {
    pub fn unknown(checker: &'static str, reason: String) -> Checked {
        Checked {
            valid: Validity::Unknown,
            checker,
            result: serde_json::json!({"valid": "unknown", "reason": reason}),
            explanation: format!("unknown: {reason}\n"),
        }
    }
}

/// The workload `test.workload` names, with `test.workload_options`. Options are the
/// transactional workloads' (see [`txn`] and [`bank`]) and the lock workloads' (see [`lock`]);
/// the register and set workloads take none.
pub fn build(test: &Test) -> Result<Workload, WorkloadError> {
    let own_options = TXN_NAMES.contains(&test.workload.as_str())
        || LOCK_NAMES.contains(&test.workload.as_str())
        || test.workload == "queue"
        || test.workload == "election"
        || COORDINATION_NAMES.contains(&test.workload.as_str());
    if !own_options {
        if let Some(option) = test.workload_options.keys().next() {
            return Err(WorkloadError::BadOption {
                workload: test.workload.clone(),
                option: option.clone(),
                why: "this workload takes no options".into(),
            });
        }
    }
    match test.workload.as_str() {
        "register" => Ok(register::workload()),
        "set" => Ok(set::workload()),
        "list-append" => txn::workload(test, DataModel::ListAppend),
        "rw-register" => txn::workload(test, DataModel::RwRegister),
        "bank" => bank::workload(test),
        "lock" | "fenced-lock" => lock::workload(test),
        "broadcast" | "log" => Ok(broadcast::workload()),
        "queue" => queue::workload(test),
        "election" => election::workload(test),
        "unique-ids" => Ok(unique_ids::workload()),
        "watch" => watch::workload(test),
        "ephemeral" => ephemeral::workload(test),
        other if CONTRACT_NAMES.contains(&other) => {
            Err(WorkloadError::NotAvailable(other.to_string()))
        }
        other => Err(WorkloadError::Unknown(other.to_string())),
    }
}

/// The whole run's generator: the main generator paced by `test.rate_ops_per_sec` and cut at
/// `test.time_limit_ms`, then the final generator once the main operations have completed
/// and, when it runs under [`interpreter::Interpreter::run_with_nemesis`], once the nemesis
/// has returned: after its final heal and recovery wait (the barrier between the two phases
/// counts the nemesis as an operation in flight). So final reads see a healed cluster that had
/// time to recover.
pub fn plan(test: &Test, main: BoxGen, final_generator: Option<BoxGen>) -> BoxGen {
    let paced = match test.rate_ops_per_sec {
        Some(rate) => generator::rate(rate, main),
        None => main,
    };
    let limited = generator::time_limit(test.time_limit_ms.saturating_mul(1_000_000), paced);
    generator::with_final(limited, final_generator)
}
