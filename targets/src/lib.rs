//! The systems under test, one module per target: raftkv, etcd, zookeeper, postgres, memory.
//!
//! Each target gives a [`faultline_core::Db`] (set up and tear down the system on each node) and
//! a template [`faultline_core::Client`] that turns a workload's operations into requests:
//!
//! - [`memory`]: an in-process linearizable store with switchable bugs, for fast end-to-end
//!   tests of the harness;
//! - [`raftkv`]: faultline's own Raft store as local processes, with [`local::LocalRemote`];
//! - [`etcd`]: Debian's etcd 3.4, one member per node, through its JSON gateway;
//! - [`zookeeper`]: Debian's ZooKeeper 3.8 (a JVM per node), through `zookeeper-client`;
//! - [`postgres`]: Debian's PostgreSQL 15, one server, every operation a transaction at a
//!   chosen isolation level, through `tokio-postgres`;
//! - [`custom`]: a store described by a TOML file (`--target-file`), in any language, with a
//!   client program speaking JSON Lines or HTTP request templates.
//!
//! etcd, ZooKeeper and PostgreSQL run through any [`faultline_core::Remote`] ([`daemon`]
//! starts and signals the first two, PostgreSQL's own `pg_ctl` the third), on loopback ports
//! or on the lab's / VMs' addresses ([`cluster`] holds that layout). `docs/targets.md` lists
//! every target's options and how its errors map to `ok` / `fail` / `info`.
//!
//! ```
//! use faultline_core::Test;
//! let test = Test::example("memory", "register", 1);
//! let target = faultline_targets::build(&test).unwrap();
//! assert_eq!(target.nodes, vec!["n1".to_string()]);
//! let test = Test::example("nosuch", "register", 1);
//! let Err(e) = faultline_targets::build(&test) else { panic!("no such target") };
//! assert!(e.to_string().contains("unknown target"));
//! ```
//!
//! Design decision: a target is plain data ([`Target`]: a db, a client template, its nodes)
//! rather than another trait; the seams it is made of are the traits.

pub mod cluster;
pub mod custom;
pub mod daemon;
pub mod election;
pub mod etcd;
pub mod etcd_election;
pub mod etcd_ephemeral;
pub mod etcd_lock;
pub mod etcd_log;
pub mod etcd_txn;
pub mod etcd_watch;
pub mod http;
pub mod iptables;
pub mod local;
pub mod lock;
pub mod memory;
pub mod memory_coordination;
pub mod orphans;
pub mod postgres;
pub mod proxy;
pub mod raftkv;
pub mod raftkv_election;
pub mod raftkv_lock;
pub mod raftkv_log;
pub mod ssh;
pub mod system_clock;
pub mod zookeeper;
pub mod zookeeper_election;
pub mod zookeeper_ephemeral;
pub mod zookeeper_lock;
pub mod zookeeper_log;
pub mod zookeeper_watch;

use std::sync::Arc;

use faultline_core::{Client, Db, Test};

/// Every target name `--target` accepts.
pub const NAMES: [&str; 5] = ["raftkv", "etcd", "zookeeper", "postgres", "memory"];

/// A system under test, ready to be set up.
pub struct Target {
    pub db: Arc<dyn Db>,
    /// The template client; each worker opens its own from it.
    pub client: Arc<dyn Client>,
    /// The nodes the db runs on.
    pub nodes: Vec<String>,
}

/// Why a target cannot be built. Each of these is a bad argument (exit 254).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("unknown target {0:?}; known: {known}", known = NAMES.join(", "))]
    Unknown(String),
    #[error("target {target} has no bug {bug:?}; its bugs: {known}")]
    UnknownBug {
        target: String,
        bug: String,
        known: String,
    },
    #[error("target {target} cannot run the {workload} workload")]
    UnsupportedWorkload { target: String, workload: String },
    #[error("target {target}: bug {bug} does not apply to the {workload} workload")]
    BugNotApplicable {
        target: String,
        bug: String,
        workload: String,
    },
    #[error("target {target}: the test gives addresses, but no address for node {node:?}")]
    MissingAddress { target: String, node: String },
    #[error("target {target} cannot take the {fault} fault: {why}")]
    UnsupportedFault {
        target: String,
        fault: String,
        why: String,
    },
    #[error("target {target}: option {option}: {why}")]
    BadOption {
        target: String,
        option: String,
        why: String,
    },
}

/// The target `test.target` names, configured from `test.bugs` and `test.target_options`;
/// with option `target_file`, the store that file describes (`test.target` is then its name).
///
/// With option `clock` = `"system"`, clock faults step each host's system clock
/// ([`system_clock`], for `--hosts`) instead of the target's own libfaketime clock.
pub fn build(test: &Test) -> Result<Target, TargetError> {
    // The clock option is this function's: the target itself never sees it.
    let mut own = test.clone();
    let clock = own.target_options.remove("clock");
    let mut target = build_target(&own)?;
    match clock.as_ref().map(|c| c.as_str()) {
        None | Some(Some("faketime")) => {}
        Some(Some("system")) => {
            target.db = Arc::new(system_clock::SystemClockDb::new(target.db));
        }
        Some(other) => {
            return Err(TargetError::BadOption {
                target: test.target.clone(),
                option: "clock".to_string(),
                why: format!("{other:?} is not a clock: faketime or system"),
            })
        }
    }
    Ok(target)
}

fn build_target(test: &Test) -> Result<Target, TargetError> {
    if test.target_options.contains_key("target_file") {
        return custom::target(test);
    }
    match test.target.as_str() {
        "memory" => memory::target(test),
        "raftkv" => raftkv::target(test),
        "etcd" => etcd::target(test),
        "zookeeper" => zookeeper::target(test),
        "postgres" => postgres::target(test),
        name => Err(TargetError::Unknown(name.to_string())),
    }
}
