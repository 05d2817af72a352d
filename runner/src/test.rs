//! `faultline test`: set up a target, run a workload against it while recording the history,
//! tear down, check, and store everything under `store/<test-name>/<timestamp>/`.
//!
//! The lifecycle of one run (see `docs/ARCHITECTURE.md`):
//! 1. validate the arguments (a target, workload or nemesis that is not available is a bad
//!    argument, exit 254), pick the seed and print it first;
//! 2. create the run directory, write `test.json`, point `store/latest` at the run;
//! 3. set up the db on every node (bounded), then the nemesis;
//! 4. run the interpreter: workers stream `history.jsonl`; Ctrl-C stops drawing operations and
//!    lets in-flight ones finish (bounded by the drain limit);
//! 5. heal (nemesis teardown, then the network's heal) and tear the db down on every node,
//!    going on past failures; copy every node's log files into `<run>/nodes/<node>/`;
//! 6. read `history.jsonl` back and check it as `faultline check` would; write `results.json`;
//! 7. print the summary, the verdict and the command that reruns this run with its seed.
//!
//! Where the nodes run: local processes (default), the hosts of a lab on this machine
//! (`--lab N`, brought up for the run when it does not exist, and then taken down on every
//! exit path), or real machines (`--hosts`). Lab hosts and machines are reached over SSH
//! ([`SshRemote`]), their addresses are in `test.addresses`, and network faults are iptables
//! rules on them ([`IptablesNet`]).
//!
//! The target is a built-in one (`--target`) or a store described by a TOML file
//! (`--target-file`, with `--var` for its switches; `faultline_targets::custom`). A
//! [`Session`] (the runtime, the log, Ctrl-C) runs one or more runs; `faultline test-all`
//! shares one across every run of its matrix and gets each run's [`Outcome`].
//!
//! Exit status: 0 valid, 1 invalid, 2 unknown (also a valid run that was interrupted), 254 bad
//! arguments, 255 a harness failure (after teardown, and after checking what was recorded).

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use faultline_checker::Validity;
use faultline_core::future::join_all;
use faultline_core::jsonl::{read_jsonl_file, HistoryWriter};
use faultline_core::test::derive_seed;
use faultline_core::{Limits, Nemesis as _, Net, Node, Remote, Test};
use faultline_targets::iptables::IptablesNet;
use faultline_targets::local::LocalRemote;
use faultline_targets::ssh::{shell_quote, SshConfig, SshRemote};
use faultline_workloads::clock::MonotonicClock;
use faultline_workloads::interpreter::{Counters, Interpreter, Recorded, Stop};
use faultline_workloads::Checked;

use crate::lab;
use crate::{EXIT_BAD_INPUT, EXIT_INTERNAL};

/// Operations per second when `--rate` is not given.
pub const DEFAULT_RATE_OPS_PER_SEC: f64 = 1_000.0;
/// How often the live progress line is redrawn.
const PROGRESS_INTERVAL_MS: u64 = 250;

#[derive(Args, Debug, Clone)]
pub struct TestArgs {
    /// The system under test: raftkv, etcd, zookeeper, postgres, memory.
    #[arg(long, default_value = "raftkv")]
    target: String,

    /// A store described in a TOML file (docs/byo-store.md): its nodes' commands, readiness,
    /// logs and a client program speaking JSON Lines (or HTTP templates). Instead of --target.
    #[arg(long, conflicts_with = "target")]
    target_file: Option<PathBuf>,

    /// --target-file: set one of the file's [vars] (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", requires = "target_file")]
    vars: Vec<String>,

    /// The workload: register, set, list-append, rw-register, bank, lock, fenced-lock,
    /// broadcast (alias log: total order broadcast), queue (work queues).
    #[arg(long, default_value = "register")]
    workload: String,

    /// Transactional workloads: the consistency models the history must satisfy,
    /// comma-separated (strict-serializable, serializable, snapshot-isolation,
    /// repeatable-read, read-committed, ...). Default strict-serializable.
    #[arg(long)]
    consistency: Option<String>,

    /// list-append, rw-register: live keys at any time (default 10; rw-register 3).
    #[arg(long)]
    key_count: Option<u64>,

    /// list-append, rw-register: how keys are drawn (default exponential; rw-register
    /// uniform).
    #[arg(long, value_parser = ["uniform", "exponential"])]
    key_dist: Option<String>,

    /// list-append, rw-register: the fewest micro-operations in a transaction (default 1;
    /// rw-register 2).
    #[arg(long)]
    min_txn_length: Option<u64>,

    /// list-append, rw-register: the most micro-operations in a transaction (default 4).
    #[arg(long)]
    max_txn_length: Option<u64>,

    /// list-append, rw-register: writes to a key before a fresh key replaces it (default 32).
    #[arg(long)]
    max_writes_per_key: Option<u64>,

    /// bank: how many accounts (default 5).
    #[arg(long)]
    accounts: Option<u64>,

    /// bank: the money in the bank (default 100).
    #[arg(long)]
    total: Option<i64>,

    /// bank: the largest amount one transfer moves (default 5).
    #[arg(long)]
    max_transfer: Option<i64>,

    /// lock, fenced-lock: the lease each acquire asks for, in milliseconds (default 1000);
    /// election: the lease a candidacy is bound to (etcd; default 2000).
    #[arg(long)]
    lease_ms: Option<u64>,

    /// election: how soon after the last fault heals a leader must be observed, in
    /// milliseconds (default 15000).
    #[arg(long)]
    termination_bound_ms: Option<u64>,

    /// election: who campaigns: the clients (memory, etcd, zookeeper) or the nodes among
    /// themselves (raftkv). Default: nodes for raftkv, clients otherwise.
    #[arg(long, value_parser = ["clients", "nodes"])]
    candidates: Option<String>,

    /// lock: whether the protected resource rejects tokens lower than the highest it accepted
    /// (default off; fenced-lock: always on).
    #[arg(long, value_parser = ["on", "off"])]
    fencing: Option<String>,

    /// lock, fenced-lock: in a quarter of the holds, one write stalls this long after its
    /// holder checked its lease and before it is sent, as a paused process would (default 0:
    /// never).
    #[arg(long)]
    client_pause_ms: Option<u64>,

    /// watch: how many keys writers change and watchers watch (default 3).
    #[arg(long)]
    keys: Option<u64>,

    /// watch: how long each watch operation lasts, in milliseconds (default 500).
    #[arg(long)]
    watch_ms: Option<u64>,

    /// watch: how long each watcher's last watch, after the writes and the faults, lasts, in
    /// milliseconds (default 2000).
    #[arg(long)]
    final_watch_ms: Option<u64>,

    /// watch: how many worker threads watch; the rest write (default: half).
    #[arg(long)]
    watchers: Option<u64>,

    /// ephemeral: the registrations' TTL (lease TTL, session timeout), in milliseconds
    /// (default 1000).
    #[arg(long)]
    ttl_ms: Option<u64>,

    /// ephemeral: how long past the TTL the service may take to remove an expired
    /// registration, in milliseconds (default 1000).
    #[arg(long)]
    slack_ms: Option<u64>,

    /// ephemeral: how many worker threads register; the rest list (default: half).
    #[arg(long)]
    registrants: Option<u64>,

    /// Fault kinds, comma-separated: partition, pause, kill, clock, loss, election (faults
    /// aimed at leader changes, docs/nemesis.md), restart-voter (an election contested in
    /// one term, its shared voter restarted between the two requests), figure-8 (raftkv, 5
    /// local nodes: Raft's Figure 8 built step by step; raises --op-timeout-ms to 20000),
    /// none. Default: partition,pause,kill; pause,kill for postgres; none for memory.
    #[arg(long, value_delimiter = ',')]
    nemesis: Vec<String>,

    /// Seconds of operations (the main phase; final reads come after).
    #[arg(long, default_value_t = 30.0)]
    time_limit: f64,

    /// Worker tasks invoking operations at once.
    #[arg(long, default_value_t = 10)]
    concurrency: usize,

    /// Operations per second across all workers; 0 = as fast as the target answers.
    #[arg(long, default_value_t = DEFAULT_RATE_OPS_PER_SEC)]
    rate: f64,

    /// The seed every random choice derives from (random when absent; printed first).
    #[arg(long)]
    seed: Option<u64>,

    /// Run the test this many times (run i > 0 uses a seed derived from the first), stopping
    /// at the first run that is not valid.
    #[arg(long, default_value_t = 1)]
    test_count: u32,

    /// Where runs are stored.
    #[arg(long, default_value = "store")]
    store: PathBuf,

    /// Deliberate bugs to switch on in the target (comma-separated or repeated). memory:
    /// stale-read, lost-write (register, set), snapshot-isolation-txn (list-append,
    /// rw-register, bank), double-grant (lock), two-leaders (election), duplicate-id
    /// (unique-ids); raftkv: its bug switches (docs/raftkv.md).
    #[arg(long = "bug", value_delimiter = ',')]
    bugs: Vec<String>,

    /// raftkv: how many local node processes (default 5).
    #[arg(long)]
    nodes: Option<usize>,

    /// memory: each operation takes a random time up to this many milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,

    /// An operation running longer than this completes as info (error "timeout").
    #[arg(long, default_value_t = Limits::default().op_timeout_ms)]
    op_timeout_ms: u64,

    /// etcd: linearizable reads (default) or serializable (local, possibly stale) reads.
    #[arg(long, value_parser = ["linearizable", "serializable"])]
    read_mode: Option<String>,

    /// etcd, lock workloads: acquire and release through etcd's recipe in transactions (one
    /// attempt, the default) or through etcd's own lock API (waits for the lock).
    #[arg(long, value_parser = ["txn", "api"])]
    etcd_lock: Option<String>,

    /// zookeeper: `sync` before every read.
    #[arg(long)]
    sync_reads: bool,

    /// postgres: the isolation level of every transaction (default serializable).
    #[arg(long, value_parser = ["read-committed", "repeatable-read", "serializable"])]
    isolation: Option<String>,

    /// How clock faults move a node's clock: `faketime` (the default: libfaketime per node
    /// process, works anywhere) or `system` (step each host's system clock with `date -s`;
    /// only with --hosts, as root, with the hosts' time daemons stopped).
    #[arg(long, value_parser = ["faketime", "system"])]
    clock: Option<String>,

    /// Run on N network-namespace hosts of a lab on this machine (root): the lab named by
    /// --lab-name if it is up with at least N hosts, else one brought up for this run and
    /// taken down at its end.
    #[arg(long, conflicts_with = "hosts")]
    lab: Option<usize>,

    /// The lab --lab uses (default: default).
    #[arg(long, requires = "lab")]
    lab_name: Option<String>,

    /// Run on these machines over SSH, comma-separated; node nI is the I-th host.
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<String>,

    /// --hosts: the user to log in as (default root).
    #[arg(long)]
    username: Option<String>,

    /// --hosts: the private key to log in with.
    #[arg(long)]
    ssh_private_key: Option<PathBuf>,

    /// --hosts: sshd's port (default 22).
    #[arg(long)]
    ssh_port: Option<u16>,

    /// --hosts: refuse hosts whose key is not in ~/.ssh/known_hosts.
    #[arg(long)]
    strict_host_key_checking: bool,
}

/// Where the nodes of a run live and how they are reached.
#[derive(Debug, Clone, Default)]
struct Cluster {
    /// Node name to address, in node order; empty for local processes.
    addresses: Vec<(String, String)>,
    /// How to reach the nodes; `None` for local processes.
    ssh: Option<SshConfig>,
}

impl Cluster {
    fn is_local(&self) -> bool {
        self.ssh.is_none()
    }
}

/// The node names of a cluster of `count` hosts.
fn node_names(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("n{i}")).collect()
}

/// The cluster `--hosts` names (its machines are known from the arguments alone).
fn hosts_cluster(args: &TestArgs) -> anyhow::Result<Cluster> {
    let key = args
        .ssh_private_key
        .clone()
        .context("--hosts needs --ssh-private-key (the key that logs in to every host)")?;
    if !key.is_file() {
        bail!("--ssh-private-key {}: no such file", key.display());
    }
    let mut ssh = SshConfig::new(args.username.as_deref().unwrap_or("root"), key);
    ssh.port = args.ssh_port.unwrap_or(22);
    ssh.strict_host_key_checking = args.strict_host_key_checking;
    Ok(Cluster {
        addresses: node_names(args.hosts.len())
            .into_iter()
            .zip(args.hosts.iter().cloned())
            .collect(),
        ssh: Some(ssh),
    })
}

/// The cluster of a lab that is up: its first `count` hosts, as root with the lab's key, and
/// strict host-key checking against the keys the lab made.
fn lab_cluster(state: &lab::LabState, count: usize) -> Cluster {
    let mut ssh = SshConfig::new("root", state.private_key());
    ssh.strict_host_key_checking = true;
    ssh.known_hosts = Some(state.known_hosts());
    Cluster {
        addresses: state
            .hosts
            .iter()
            .take(count)
            .map(|h| {
                let address = h.address.clone().expect("a lab that is up has addresses");
                (h.name.clone(), address)
            })
            .collect(),
        ssh: Some(ssh),
    }
}

/// A stand-in for the lab's cluster while arguments are checked (before the lab is up, so a
/// bad argument never brings one up): the lab's node names, at addresses of its layout.
fn provisional_lab_cluster(count: usize) -> Cluster {
    Cluster {
        addresses: node_names(count)
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, format!("{}.0.{}", lab::SUBNET_PREFIX, 11 + i)))
            .collect(),
        ssh: Some(SshConfig::new("root", "/dev/null")),
    }
}

/// What the progress line shows as the fault in force; the nemesis's `Faults::current()`
/// plugs in here.
type CurrentFault = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// What one run ended with.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The exit status this run alone would have.
    pub exit: u8,
    /// The checker's verdict; `None` when nothing could be checked.
    pub validity: Option<Validity>,
    pub seed: u64,
    /// `store/<test-name>/<timestamp>`.
    pub dir: PathBuf,
    /// What the checker found (empty when valid), for a person.
    pub explanation: String,
    /// The harness error that stopped the run, if any.
    pub harness_error: Option<String>,
    /// The run's `report.html`, when it could be written.
    pub report: Option<PathBuf>,
    /// The command that reruns this run.
    pub rerun: String,
    /// From the run's start to its report.
    pub elapsed: Duration,
}

/// How a run shows itself: `faultline test` prints its summary; `test-all` keeps its own
/// table and only prefixes the live progress line.
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    /// Print nothing on stdout (the live line on a terminal's stderr stays).
    pub quiet: bool,
    /// Shown before the live progress line.
    pub progress_prefix: String,
}

impl RunOutput {
    fn say(&self, line: std::fmt::Arguments<'_>) {
        if !self.quiet {
            println!("{line}");
        }
    }
}

/// The process-wide part of `faultline test`, shared by every run of one invocation (and by
/// every run of `faultline test-all`): the log, the async runtime, and Ctrl-C.
pub struct Session {
    runtime: tokio::runtime::Runtime,
    interrupted: Arc<AtomicBool>,
    stop_slot: Arc<Mutex<Option<Stop>>>,
    argv: Vec<String>,
}

impl Session {
    /// Installs the log, starts the runtime and the Ctrl-C watcher.
    pub fn start() -> Result<Session, String> {
        install_log();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("faultline-test")
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let interrupted = Arc::new(AtomicBool::new(false));
        let stop_slot: Arc<Mutex<Option<Stop>>> = Arc::default();
        runtime.spawn(watch_ctrl_c(interrupted.clone(), stop_slot.clone()));
        Ok(Session {
            runtime,
            interrupted,
            stop_slot,
            argv: std::env::args().collect(),
        })
    }

    /// Whether Ctrl-C was pressed.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Checks `args` as `faultline test` does and runs them (`--test-count` times, stopping at
    /// the first run that is not valid). `Err` is a run that could not start: the exit status
    /// (254 bad arguments, 255 a lab that could not come up) and why.
    pub fn run_test(
        &self,
        args: TestArgs,
        output: &RunOutput,
    ) -> Result<Vec<Outcome>, (u8, String)> {
        let mut args = args;
        validate(&mut args).map_err(|e| (EXIT_BAD_INPUT, format!("{e:#}")))?;
        let seed = args.seed.unwrap_or_else(rand::random);
        self.run_validated(&args, seed, output)
    }

    fn run_validated(
        &self,
        args: &TestArgs,
        seed: u64,
        output: &RunOutput,
    ) -> Result<Vec<Outcome>, (u8, String)> {
        // The lab lives as long as this function: dropping the lease takes down a lab brought
        // up for these runs, after every run, on errors and on panics alike.
        let mut _lease = None;
        let cluster = if let Some(count) = args.lab {
            let name = args.lab_name.as_deref().unwrap_or(lab::DEFAULT_NAME);
            let lease = lab::acquire(name, count).map_err(|e| (e.exit_code(), e.to_string()))?;
            if lease.temporary() {
                eprintln!("faultline test: brought up lab {name} for this run");
            }
            let cluster = lab_cluster(&lease.state, count);
            _lease = Some(lease);
            cluster
        } else if !args.hosts.is_empty() {
            hosts_cluster(args).map_err(|e| (EXIT_BAD_INPUT, format!("{e:#}")))?
        } else {
            Cluster::default()
        };
        let mut outcomes = Vec::new();
        for run_index in 0..args.test_count {
            if self.interrupted() {
                break;
            }
            let run_seed = if run_index == 0 {
                seed
            } else {
                derive_seed(seed, &format!("run-{run_index}"))
            };
            if args.test_count > 1 {
                output.say(format_args!(
                    "run {} of {} (seed {run_seed})",
                    run_index + 1,
                    args.test_count
                ));
            }
            let outcome = run_one(self, args, &cluster, run_seed, output).unwrap_or_else(|e| {
                eprintln!("faultline test: {e:#}");
                tracing::error!("{e:#}");
                Outcome {
                    exit: EXIT_INTERNAL,
                    validity: None,
                    seed: run_seed,
                    dir: PathBuf::new(),
                    explanation: String::new(),
                    harness_error: Some(format!("{e:#}")),
                    report: None,
                    rerun: rerun_command(args, run_seed),
                    elapsed: Duration::ZERO,
                }
            });
            let stop = outcome.validity != Some(Validity::Valid) || outcome.exit != 0;
            outcomes.push(outcome);
            if stop {
                break;
            }
        }
        Ok(outcomes)
    }

    /// Lets go of the runtime: workers that were abandoned must not keep the process alive.
    pub fn finish(self) {
        self.runtime.shutdown_timeout(Duration::from_millis(100));
    }
}

pub fn run(args: TestArgs) -> ExitCode {
    let mut args = args;
    if let Err(e) = validate(&mut args) {
        eprintln!("faultline test: {e:#}");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    // The seed first, before anything can fail, so every run can be reproduced.
    eprintln!("faultline test: seed {seed}");
    crate::heal::before_run("test");
    let session = match Session::start() {
        Ok(session) => session,
        Err(e) => {
            eprintln!("faultline test: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    let exit = match session.run_validated(&args, seed, &RunOutput::default()) {
        Ok(outcomes) => outcomes.last().map_or(0, |o| o.exit),
        Err((exit, why)) => {
            eprintln!("faultline test: {why}");
            exit
        }
    };
    session.finish();
    ExitCode::from(exit)
}

/// Checks `args` as `faultline test` would before running them (a bad name, a fault the
/// target cannot take, a malformed target file), without running anything.
pub fn check_args(args: &TestArgs) -> anyhow::Result<()> {
    validate(&mut args.clone())
}

/// Checks arguments that clap cannot, and fills in target-dependent defaults.
fn validate(args: &mut TestArgs) -> anyhow::Result<()> {
    if !(args.time_limit.is_finite() && args.time_limit > 0.0) {
        bail!("--time-limit must be a positive number of seconds");
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        bail!("--rate must be a non-negative number (0 = unlimited)");
    }
    let max = Limits::default().max_concurrency;
    if args.concurrency == 0 || args.concurrency > max {
        bail!("--concurrency must be between 1 and {max}");
    }
    if args.test_count == 0 {
        bail!("--test-count must be at least 1");
    }
    if args.op_timeout_ms == 0 {
        bail!("--op-timeout-ms must be positive");
    }
    args.bugs.retain(|b| !b.trim().is_empty());
    args.hosts.retain(|h| !h.trim().is_empty());
    let mut file_nemesis = None;
    if let Some(path) = &args.target_file {
        let file = faultline_targets::custom::file::TargetFile::load(path)
            .map_err(|e| anyhow::anyhow!("--target-file {e}"))?;
        var_overrides(&args.vars)?;
        // The store's own name is the test's target (and names its directory in the store).
        args.target = file.name;
        file_nemesis = file.nemesis;
    }
    if args.nemesis.is_empty() {
        if let Some(nemesis) = file_nemesis {
            args.nemesis = nemesis;
        }
    }
    if args.nemesis.is_empty() {
        args.nemesis = match args.target.as_str() {
            "memory" => vec!["none".into()],
            // One server whose clients run on the control node: no network fault reaches it.
            "postgres" => vec!["pause".into(), "kill".into()],
            _ => vec!["partition".into(), "pause".into(), "kill".into()],
        };
    }
    if args.nemesis.iter().any(|n| n == "figure-8") && args.op_timeout_ms < FIGURE_8_OP_TIMEOUT_MS {
        // Its writes stay pending at their leader across three elections (the servers'
        // request timeout is 15 s under it): a client that gave up earlier would record
        // `info` where a wrong store answers `ok`.
        if args.op_timeout_ms != Limits::default().op_timeout_ms {
            bail!("--nemesis figure-8 needs --op-timeout-ms of at least {FIGURE_8_OP_TIMEOUT_MS}");
        }
        args.op_timeout_ms = FIGURE_8_OP_TIMEOUT_MS;
    }
    if args.clock.as_deref() == Some("system") && args.hosts.is_empty() {
        bail!(
            "--clock system needs --hosts: local nodes and lab hosts share this machine's \
             kernel clock, so stepping it would move every node and the harness together \
             (the default, --clock faketime, skews each node alone)"
        );
    }
    let cluster = validate_placement(args)?;
    // Build everything once now, so a bad name is a bad argument before any directory exists.
    let test = test_config(args, &cluster, 0, "", &[]);
    faultline_workloads::build(&test)?;
    let target = match faultline_targets::build(&test) {
        Ok(target) => target,
        Err(e) => bail!("{e}"),
    };
    // Hosts of their own get iptables faults: a stand-in network says so to the check.
    let net: Option<Arc<dyn Net>> = cluster
        .ssh
        .as_ref()
        .map(|_| Arc::new(IptablesNet::new(Vec::new())) as Arc<dyn Net>);
    faultline_nemesis::build(&test.nemesis, target.db, Vec::new(), net)?;
    if args.latency_ms.is_some() && args.target != "memory" {
        bail!("--latency-ms applies only to --target memory");
    }
    if args.read_mode.is_some() && args.target != "etcd" {
        bail!("--read-mode applies only to --target etcd");
    }
    if args.etcd_lock.is_some()
        && (args.target != "etcd" || !matches!(args.workload.as_str(), "lock" | "fenced-lock"))
    {
        bail!("--etcd-lock applies only to --target etcd with --workload lock or fenced-lock");
    }
    if args.sync_reads && args.target != "zookeeper" {
        bail!("--sync-reads applies only to --target zookeeper");
    }
    if args.isolation.is_some() && args.target != "postgres" {
        bail!("--isolation applies only to --target postgres");
    }
    Ok(())
}

/// The op timeout under the `figure-8` nemesis (longer than raftkv's request timeout there).
const FIGURE_8_OP_TIMEOUT_MS: u64 = 20_000;

/// Checks the flags that say where nodes run; returns the cluster to validate targets
/// against (for a lab, a stand-in: the lab is not touched before every argument is good).
fn validate_placement(args: &TestArgs) -> anyhow::Result<Cluster> {
    let remote = args.lab.is_some() || !args.hosts.is_empty();
    if remote && args.nodes.is_some() {
        bail!("--nodes is for local processes; with --lab or --hosts there is one node per host");
    }
    if args.hosts.is_empty()
        && (args.username.is_some()
            || args.ssh_private_key.is_some()
            || args.ssh_port.is_some()
            || args.strict_host_key_checking)
    {
        bail!(
            "--username, --ssh-private-key, --ssh-port and --strict-host-key-checking apply \
             only with --hosts (a lab brings its own key)"
        );
    }
    if let Some(count) = args.lab {
        if count == 0 || count > lab::MAX_HOSTS {
            bail!("--lab must be between 1 and {} hosts", lab::MAX_HOSTS);
        }
        if let Some(name) = &args.lab_name {
            lab::validate_name(name).map_err(|e| anyhow::anyhow!("--lab-name: {e}"))?;
        }
        return Ok(provisional_lab_cluster(count));
    }
    if !args.hosts.is_empty() {
        let mut seen = std::collections::BTreeSet::new();
        for host in &args.hosts {
            if !seen.insert(host) {
                bail!("--hosts names {host} twice");
            }
        }
        return hosts_cluster(args);
    }
    Ok(Cluster::default())
}

/// `--var NAME=VALUE` flags as a map; a flag without `=` or a name given twice is an error.
fn var_overrides(vars: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for var in vars {
        let Some((name, value)) = var.split_once('=') else {
            bail!("--var {var:?}: expected NAME=VALUE");
        };
        if map.insert(name.to_string(), value.to_string()).is_some() {
            bail!("--var {name} is given twice");
        }
    }
    Ok(map)
}

/// A test-name part from a variable's name or value: letters, digits, `_` and `-` only.
fn name_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The test configuration for one run.
fn test_config(
    args: &TestArgs,
    cluster: &Cluster,
    seed: u64,
    start_time: &str,
    argv: &[String],
) -> Test {
    let mut name = format!("{}-{}", args.target, args.workload);
    for bug in &args.bugs {
        name.push('-');
        name.push_str(bug);
    }
    let mut target_options = BTreeMap::new();
    if let Some(path) = &args.target_file {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        target_options.insert("target_file".to_string(), json!(path.to_string_lossy()));
        // Checked by `validate`; a run never starts with a malformed one.
        let vars = var_overrides(&args.vars).unwrap_or_default();
        for (var, value) in &vars {
            name.push_str(&format!("-{}-{}", name_part(var), name_part(value)));
        }
        if !vars.is_empty() {
            target_options.insert("vars".to_string(), json!(vars));
        }
    }
    if let Some(latency) = args.latency_ms {
        target_options.insert("latency_ms".to_string(), json!(latency));
    }
    if let Some(nodes) = args.nodes {
        target_options.insert("nodes".to_string(), json!(nodes));
    }
    if let Some(mode) = &args.read_mode {
        target_options.insert("read_mode".to_string(), json!(mode));
    }
    if let Some(clock) = &args.clock {
        target_options.insert("clock".to_string(), json!(clock));
    }
    if args.sync_reads {
        target_options.insert("sync_reads".to_string(), json!(true));
    }
    if args.etcd_lock.as_deref() == Some("api") {
        target_options.insert("lock_api".to_string(), json!(true));
    }
    if args.target == "postgres" && args.target_file.is_none() {
        // Recorded even when it is the default, so test.json says what every run ran at.
        let isolation = args.isolation.as_deref().unwrap_or("serializable");
        target_options.insert("isolation".to_string(), json!(isolation));
    }
    let limits = Limits {
        op_timeout_ms: args.op_timeout_ms,
        // In-flight operations end within the op timeout; allow a margin for closing clients.
        drain_timeout_ms: args.op_timeout_ms + 5_000,
        ..Limits::default()
    };
    Test {
        name,
        target: args.target.clone(),
        workload: args.workload.clone(),
        nemesis: args.nemesis.clone(),
        // Remote nodes are the hosts'; a local target chooses its own (`--nodes`).
        nodes: cluster.addresses.iter().map(|(n, _)| n.clone()).collect(),
        addresses: cluster.addresses.iter().cloned().collect(),
        time_limit_ms: (args.time_limit * 1e3).round() as u64,
        concurrency: args.concurrency,
        rate_ops_per_sec: (args.rate > 0.0).then_some(args.rate),
        seed,
        bugs: args.bugs.clone(),
        target_options,
        workload_options: workload_options(args),
        limits,
        start_time: start_time.to_string(),
        argv: argv.to_vec(),
    }
}

/// The workload options the flags give (`--consistency`, `--key-count`, ...); the workload
/// fills in its defaults for the rest.
fn workload_options(args: &TestArgs) -> BTreeMap<String, Value> {
    let mut options = BTreeMap::new();
    if let Some(models) = &args.consistency {
        let names: Vec<&str> = models.split(',').map(str::trim).collect();
        options.insert("consistency".to_string(), json!(names));
    }
    for (name, value) in workload_numbers(args) {
        options.insert(name.replace('-', "_"), value);
    }
    if let Some(dist) = &args.key_dist {
        options.insert("key_dist".to_string(), json!(dist));
    }
    if let Some(fencing) = &args.fencing {
        options.insert("fencing".to_string(), json!(fencing));
    }
    if let Some(candidates) = &args.candidates {
        options.insert("candidates".to_string(), json!(candidates));
    }
    options
}

/// The numeric workload flags that were given, by flag name.
fn workload_numbers(args: &TestArgs) -> Vec<(&'static str, Value)> {
    [
        ("key-count", args.key_count.map(|n| json!(n))),
        ("min-txn-length", args.min_txn_length.map(|n| json!(n))),
        ("max-txn-length", args.max_txn_length.map(|n| json!(n))),
        (
            "max-writes-per-key",
            args.max_writes_per_key.map(|n| json!(n)),
        ),
        ("accounts", args.accounts.map(|n| json!(n))),
        ("total", args.total.map(|n| json!(n))),
        ("max-transfer", args.max_transfer.map(|n| json!(n))),
        ("lease-ms", args.lease_ms.map(|n| json!(n))),
        ("client-pause-ms", args.client_pause_ms.map(|n| json!(n))),
        (
            "termination-bound-ms",
            args.termination_bound_ms.map(|n| json!(n)),
        ),
        ("keys", args.keys.map(|n| json!(n))),
        ("watch-ms", args.watch_ms.map(|n| json!(n))),
        ("final-watch-ms", args.final_watch_ms.map(|n| json!(n))),
        ("watchers", args.watchers.map(|n| json!(n))),
        ("ttl-ms", args.ttl_ms.map(|n| json!(n))),
        ("slack-ms", args.slack_ms.map(|n| json!(n))),
        ("registrants", args.registrants.map(|n| json!(n))),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name, v)))
    .collect()
}

/// The command that reruns this run.
fn rerun_command(args: &TestArgs, seed: u64) -> String {
    let target = match &args.target_file {
        Some(path) => format!("--target-file {}", shell_quote(&path.to_string_lossy())),
        None => format!("--target {}", args.target),
    };
    let mut cmd = format!(
        "faultline test {target} --workload {} --nemesis {} --time-limit {} --concurrency {} \
         --rate {}",
        args.workload,
        args.nemesis.join(","),
        args.time_limit,
        args.concurrency,
        args.rate
    );
    if !args.bugs.is_empty() {
        cmd.push_str(&format!(" --bug {}", args.bugs.join(",")));
    }
    // The model decides the verdict, so the rerun names it even when it was the default.
    match &args.consistency {
        Some(models) => cmd.push_str(&format!(" --consistency {models}")),
        None if faultline_workloads::TXN_NAMES.contains(&args.workload.as_str()) => {
            cmd.push_str(&format!(
                " --consistency {}",
                faultline_workloads::txn::DEFAULT_CONSISTENCY.as_str()
            ))
        }
        None => {}
    }
    for (flag, value) in workload_numbers(args) {
        cmd.push_str(&format!(" --{flag} {value}"));
    }
    if let Some(dist) = &args.key_dist {
        cmd.push_str(&format!(" --key-dist {dist}"));
    }
    if let Some(fencing) = &args.fencing {
        cmd.push_str(&format!(" --fencing {fencing}"));
    }
    if let Some(candidates) = &args.candidates {
        cmd.push_str(&format!(" --candidates {candidates}"));
    }
    for var in &args.vars {
        cmd.push_str(&format!(" --var {}", shell_quote(var)));
    }
    if let Some(latency) = args.latency_ms {
        cmd.push_str(&format!(" --latency-ms {latency}"));
    }
    if let Some(nodes) = args.nodes {
        cmd.push_str(&format!(" --nodes {nodes}"));
    }
    if args.op_timeout_ms != Limits::default().op_timeout_ms {
        cmd.push_str(&format!(" --op-timeout-ms {}", args.op_timeout_ms));
    }
    if let Some(mode) = &args.read_mode {
        cmd.push_str(&format!(" --read-mode {mode}"));
    }
    if let Some(recipe) = &args.etcd_lock {
        cmd.push_str(&format!(" --etcd-lock {recipe}"));
    }
    if args.sync_reads {
        cmd.push_str(" --sync-reads");
    }
    if let Some(isolation) = &args.isolation {
        cmd.push_str(&format!(" --isolation {isolation}"));
    }
    if let Some(clock) = &args.clock {
        cmd.push_str(&format!(" --clock {clock}"));
    }
    if let Some(count) = args.lab {
        cmd.push_str(&format!(" --lab {count}"));
        if let Some(name) = &args.lab_name {
            cmd.push_str(&format!(" --lab-name {name}"));
        }
    }
    if !args.hosts.is_empty() {
        cmd.push_str(&format!(" --hosts {}", args.hosts.join(",")));
        if let Some(user) = &args.username {
            cmd.push_str(&format!(" --username {user}"));
        }
        if let Some(key) = &args.ssh_private_key {
            cmd.push_str(&format!(" --ssh-private-key {}", key.display()));
        }
        if let Some(port) = args.ssh_port {
            cmd.push_str(&format!(" --ssh-port {port}"));
        }
        if args.strict_host_key_checking {
            cmd.push_str(" --strict-host-key-checking");
        }
    }
    if args.store != Path::new("store") {
        cmd.push_str(&format!(" --store {}", args.store.display()));
    }
    cmd.push_str(&format!(" --seed {seed}"));
    cmd
}

fn run_one(
    session: &Session,
    args: &TestArgs,
    cluster: &Cluster,
    seed: u64,
    output: &RunOutput,
) -> anyhow::Result<Outcome> {
    let Session {
        runtime,
        interrupted,
        stop_slot,
        argv,
    } = session;
    let started = std::time::Instant::now();
    let start_time = utc_timestamp(SystemTime::now());
    let mut test = test_config(args, cluster, seed, &start_time, argv);
    let dir = create_run_dir(&args.store, &test.name, &start_time)?;
    let nodes_dir = std::path::absolute(dir.join("nodes")).context("locating the run")?;
    if cluster.is_local() {
        // Local nodes keep their data directories and logs in the run's directory.
        test.target_options
            .insert("data_dir".to_string(), json!(nodes_dir.to_string_lossy()));
    }
    let target = faultline_targets::build(&test)?;
    test.nodes = target.nodes.clone();
    if !cluster.is_local() {
        let homeless: Vec<&String> = test
            .nodes
            .iter()
            .filter(|n| !test.addresses.contains_key(*n))
            .collect();
        if !homeless.is_empty() {
            bail!(
                "target {} placed nodes {homeless:?} that have no host (the hosts are {})",
                test.target,
                test.addresses
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let workload = faultline_workloads::build(&test)?;
    // test.json records every workload option the run used, defaults included.
    test.workload_options = workload.options.clone();
    set_log_file(Some(
        File::create(dir.join("faultline.log")).context("creating faultline.log")?,
    ));
    tracing::info!("seed {seed}");
    tracing::info!("run directory {}", dir.display());
    std::fs::write(
        dir.join("test.json"),
        serde_json::to_string_pretty(&test).expect("a test serializes") + "\n",
    )
    .context("writing test.json")?;
    update_latest(&args.store, &dir).context("updating store/latest")?;
    if let Some(file) = &args.target_file {
        // The file as it was for this run: it may change before the run is looked at again.
        if let Err(e) = std::fs::copy(file, dir.join("target.toml")) {
            tracing::warn!("copying {} into the run: {e}", file.display());
        }
    }
    output.say(format_args!(
        "{}: {} workers, {} s, {}, seed {seed}",
        test.name,
        test.concurrency,
        args.time_limit,
        match test.rate_ops_per_sec {
            Some(rate) => format!("{rate} ops/s"),
            None => "no rate limit".to_string(),
        }
    ));
    output.say(format_args!("store: {}", dir.display()));

    let history_path = dir.join("history.jsonl");
    let history = HistoryWriter::create(&history_path).context("creating history.jsonl")?;
    let test = Arc::new(test);
    let nodes: Vec<Node> = test
        .nodes
        .iter()
        .map(|name| {
            let remote: Arc<dyn Remote> = match &cluster.ssh {
                Some(ssh) => Arc::new(SshRemote::new(name, &test.addresses[name], ssh.clone())),
                // A local process (the memory target runs nothing on its node).
                None => Arc::new(LocalRemote::new(name)),
            };
            Node {
                name: name.clone(),
                remote,
            }
        })
        .collect();
    // Network faults: iptables on hosts of their own; locally, whatever the target wires
    // itself (`Db::as_net`, the fault proxy), if anything.
    let net: Option<Arc<dyn Net>> = match cluster.ssh {
        Some(_) => Some(Arc::new(IptablesNet::new(nodes.clone()))),
        None => None,
    };
    let mut nemesis =
        faultline_nemesis::build(&test.nemesis, target.db.clone(), nodes.clone(), net.clone())?;
    let counters = Arc::new(Counters::default());
    let stop = Stop::default();
    *stop_slot.lock().expect("stop slot") = Some(stop.clone());
    if interrupted.load(Ordering::SeqCst) {
        stop.stop();
    }

    let lifecycle = async {
        let mut first_error: Option<String> = None;
        let setup_limit = Duration::from_millis(test.limits.setup_timeout_ms);
        // Setup: every node, concurrently, each bounded.
        tracing::info!("setting up {} on {}", test.target, test.nodes.join(", "));
        let setups = nodes.iter().map(|node| {
            let db = target.db.clone();
            let test = test.clone();
            async move {
                match tokio::time::timeout(setup_limit, db.setup(&test, node)).await {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(_) => Err(format!(
                        "setup on {} took longer than {setup_limit:?}",
                        node.name
                    )),
                }
            }
        });
        for result in join_all(setups).await {
            if let Err(e) = result {
                tracing::error!("{e}");
                first_error.get_or_insert(e);
            }
        }
        if first_error.is_none() {
            if let Err(e) = nemesis.setup(&test).await {
                first_error.get_or_insert(e.to_string());
            }
        }
        let mut recorded: Option<Recorded> = None;
        if first_error.is_none() {
            tracing::info!("running the {} workload", test.workload);
            let generator =
                faultline_workloads::plan(&test, workload.generator, workload.final_generator);
            let clock = MonotonicClock::starting_now();
            let current = nemesis.current();
            let current_fault: CurrentFault =
                Arc::new(move || current.lock().expect("current fault").clone());
            let progress = tokio::spawn(show_progress(
                counters.clone(),
                clock,
                current_fault,
                output.progress_prefix.clone(),
            ));
            // A bound on the whole run even if a generator never ends.
            let watchdog_limit =
                Duration::from_millis(test.time_limit_ms + 2 * test.limits.op_timeout_ms + 10_000);
            let watchdog_stop = stop.clone();
            let watchdog = tokio::spawn(async move {
                tokio::time::sleep(watchdog_limit).await;
                tracing::warn!("the run passed its time bound; stopping");
                watchdog_stop.stop();
            });
            let interpreter = Interpreter {
                test: test.clone(),
                client: target.client.clone(),
                generator,
                clock,
                counters: counters.clone(),
                stop: stop.clone(),
            };
            let nemesis = &mut nemesis;
            let done = interpreter
                .run_with_nemesis(history, |recorder, nemesis_stop| {
                    nemesis.run(&test, recorder, nemesis_stop)
                })
                .await;
            watchdog.abort();
            progress.abort();
            let _ = progress.await;
            if std::io::stderr().is_terminal() {
                if output.quiet {
                    // test-all redraws its own line over this one.
                    eprint!("\r\x1b[K");
                } else {
                    eprintln!();
                }
            }
            if let Some(e) = &done.error {
                tracing::error!("{e}");
                first_error.get_or_insert(e.to_string());
            }
            recorded = Some(done);
        }
        // Heal and tear down on every path, going on past failures. Each step is bounded by
        // the setup bound, so a node that no longer answers (or an SSH command stuck behind
        // a setup that timed out) cannot hold the run: at most four bounds in all.
        match tokio::time::timeout(setup_limit, nemesis.teardown(&test)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!("nemesis teardown: {e}");
                first_error.get_or_insert(e.to_string());
            }
            Err(_) => {
                let e = format!("nemesis teardown (healing) took longer than {setup_limit:?}");
                tracing::error!("{e}");
                first_error.get_or_insert(e);
            }
        }
        // The network's own heal removes every rule it may have made, also ones a crashed
        // nemesis left behind (it works from the hosts, not from memory).
        if let Some(net) = net.as_deref().or(target.db.as_net()) {
            match tokio::time::timeout(setup_limit, net.heal(&test)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!("network heal: {e}");
                    first_error.get_or_insert(format!("network heal: {e}"));
                }
                Err(_) => {
                    let e = format!("network heal took longer than {setup_limit:?}");
                    tracing::error!("{e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        let teardowns = nodes.iter().map(|node| {
            let db = target.db.clone();
            let test = test.clone();
            async move {
                match tokio::time::timeout(setup_limit, db.teardown(&test, node)).await {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(_) => Err(format!(
                        "teardown on {} took longer than {setup_limit:?}",
                        node.name
                    )),
                }
            }
        });
        for result in join_all(teardowns).await {
            if let Err(e) = result {
                tracing::error!("{e}");
                first_error.get_or_insert(e);
            }
        }
        let logs = collect_logs(
            target.db.as_ref(),
            &test,
            &nodes,
            &nodes_dir,
            cluster.is_local(),
        );
        if tokio::time::timeout(setup_limit, logs).await.is_err() {
            tracing::warn!("collecting the nodes' logs took longer than {setup_limit:?}; gave up");
        }
        (recorded, first_error)
    };
    let (recorded, harness_error) = runtime.block_on(lifecycle);
    *stop_slot.lock().expect("stop slot") = None;
    let was_interrupted = interrupted.load(Ordering::SeqCst);

    // Check what was recorded, as `faultline check` would read it.
    tracing::info!("checking {}", history_path.display());
    let checked = if recorded.is_some() {
        match read_jsonl_file(&history_path) {
            Ok(history) => {
                let checker = workload.checker;
                catch_unwind(AssertUnwindSafe(|| checker(&test, &history))).unwrap_or_else(|_| {
                    Checked::unknown("checker", "the checker panicked (a faultline bug)".into())
                })
            }
            Err(e) => Checked::unknown("checker", format!("cannot read the history: {e}")),
        }
    } else {
        Checked::unknown("checker", "nothing was recorded".into())
    };
    let exit = if harness_error.is_some() {
        EXIT_INTERNAL
    } else if was_interrupted && checked.valid == Validity::Valid {
        Validity::Unknown.exit_code() as u8
    } else {
        checked.valid.exit_code() as u8
    };
    let results = results_json(
        &test,
        recorded.as_ref(),
        &checked,
        harness_error.as_deref(),
        was_interrupted,
    );
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&results).expect("results serialize") + "\n",
    )
    .context("writing results.json")?;

    // The summary.
    if let Some(r) = &recorded {
        let secs = r.elapsed.as_secs_f64();
        let rate = if secs > 0.0 { r.ok as f64 / secs } else { 0.0 };
        let line = format!(
            "recorded {} ops in {secs:.2} s ({:.0} ops/s): {} ok, {} fail, {} info{}",
            r.invoked,
            (r.ok + r.fail + r.info) as f64 / secs.max(1e-9),
            r.ok,
            r.fail,
            r.info,
            if r.abandoned > 0 {
                format!(", {} abandoned in flight", r.abandoned)
            } else {
                String::new()
            }
        );
        tracing::info!("{line} ({rate:.0} ok/s)");
        output.say(format_args!("{line}"));
    }
    let explanation: String = checked
        .explanation
        .lines()
        .take(60)
        .map(|line| format!("{line}\n"))
        .collect();
    for line in explanation.lines() {
        output.say(format_args!("  {line}"));
    }
    let verdict = match checked.valid {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    };
    let mut notes = Vec::new();
    if was_interrupted {
        notes.push("interrupted".to_string());
    }
    if let Some(e) = &harness_error {
        notes.push(format!("harness error: {e}"));
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    output.say(format_args!(
        "verdict: {verdict}{notes} [{}]",
        checked.checker
    ));
    tracing::info!("verdict: {verdict}{notes}");
    let rerun = rerun_command(args, seed);
    output.say(format_args!("rerun: {rerun}"));
    tracing::info!("rerun: {rerun}");
    set_log_file(None);
    // The report reads faultline.log, so it comes after the log is closed. A report that
    // cannot be written is a warning: the verdict and the files it is made from stand.
    let report = match faultline_reports::write_report(&dir) {
        Ok(path) => {
            output.say(format_args!("report: {}", path.display()));
            Some(path)
        }
        Err(e) => {
            eprintln!("faultline test: no report: {e}");
            None
        }
    };
    Ok(Outcome {
        exit,
        validity: Some(checked.valid),
        seed,
        dir,
        explanation,
        harness_error,
        report,
        rerun,
        elapsed: started.elapsed(),
    })
}

fn results_json(
    test: &Test,
    recorded: Option<&Recorded>,
    checked: &Checked,
    harness_error: Option<&str>,
    interrupted: bool,
) -> Value {
    let mut results = json!({
        "valid": checked.valid,
        "test": test.name,
        "workload": test.workload,
        "checker": checked.checker,
        "seed": test.seed,
        "interrupted": interrupted,
        "result": checked.result,
    });
    let map = results.as_object_mut().expect("an object");
    if let Some(r) = recorded {
        let secs = r.elapsed.as_secs_f64();
        map.insert(
            "stats".into(),
            json!({
                "ops": r.invoked,
                "ok": r.ok,
                "fail": r.fail,
                "info": r.info,
                "events": r.events,
                "abandoned": r.abandoned,
                "elapsed_ms": (secs * 1e6).round() / 1e3,
                "ops_per_sec": if secs > 0.0 { ((r.ok + r.fail + r.info) as f64 / secs).round() } else { 0.0 },
            }),
        );
    }
    if let Some(e) = harness_error {
        map.insert("harness_error".into(), json!(e));
    }
    results
}

/// Copies every file of `db.log_files` of each node into `<run>/nodes/<node>/`, through the
/// node's remote (a download over SSH, a copy locally). A file that cannot be copied is a
/// warning in the log, not a harness failure: the verdict does not depend on it.
async fn collect_logs(
    db: &dyn faultline_core::Db,
    test: &Test,
    nodes: &[Node],
    nodes_dir: &Path,
    local: bool,
) {
    let copies = nodes.iter().map(|node| async move {
        let node_dir = nodes_dir.join(&node.name);
        let files = db.log_files(test, node);
        if files.is_empty() {
            return;
        }
        if let Err(e) = std::fs::create_dir_all(&node_dir) {
            tracing::warn!(
                "logs of {}: creating {}: {e}",
                node.name,
                node_dir.display()
            );
            return;
        }
        let mut taken = std::collections::BTreeSet::new();
        for file in files {
            // A local node's logs may already be in its directory of the run.
            if local {
                let canonical = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
                let home = std::fs::canonicalize(&node_dir).unwrap_or_else(|_| node_dir.clone());
                if canonical.starts_with(&home) {
                    continue;
                }
            }
            let Some(base) = file.file_name().map(|n| n.to_string_lossy().to_string()) else {
                continue;
            };
            // Two files of the same name (from different directories) both get a place.
            let mut name = base.clone();
            let mut suffix = 1;
            while !taken.insert(name.clone()) {
                suffix += 1;
                name = format!("{base}.{suffix}");
            }
            let destination = node_dir.join(&name);
            if let Err(e) = node
                .remote
                .download(&file.to_string_lossy(), &destination)
                .await
            {
                tracing::warn!("logs of {}: {e}", node.name);
            }
        }
    });
    join_all(copies).await;
}

/// Ctrl-C once: stop drawing operations, let in-flight ones finish, check, exit. Twice: exit
/// at once (the history on disk stays readable).
async fn watch_ctrl_c(interrupted: Arc<AtomicBool>, stop_slot: Arc<Mutex<Option<Stop>>>) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    interrupted.store(true, Ordering::SeqCst);
    eprintln!(
        "\nfaultline test: interrupted; letting in-flight operations finish (Ctrl-C again to \
         quit at once)"
    );
    tracing::warn!("interrupted (Ctrl-C)");
    if let Some(stop) = stop_slot.lock().expect("stop slot").as_ref() {
        stop.stop();
    }
    if tokio::signal::ctrl_c().await.is_ok() {
        eprintln!("faultline test: interrupted twice; exiting without checking");
        // Exiting skips destructors: take down a lab brought up for this run here.
        lab::take_down_temporary_labs();
        std::process::exit(i32::from(EXIT_INTERNAL));
    }
}

/// One line on stderr, redrawn, when stderr is a terminal: elapsed time, ops/s, ok / fail /
/// info, and the fault in force (`current_fault`).
async fn show_progress(
    counters: Arc<Counters>,
    clock: MonotonicClock,
    current_fault: CurrentFault,
    prefix: String,
) {
    use faultline_workloads::clock::Clock;
    if !std::io::stderr().is_terminal() {
        return;
    }
    let mut last = (0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(PROGRESS_INTERVAL_MS));
    // The first tick is immediate; there is nothing to show yet.
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = clock.now_ns();
        let done = counters.completed();
        let rate = if now > last.0 {
            (done - last.1) as f64 / ((now - last.0) as f64 / 1e9)
        } else {
            0.0
        };
        last = (now, done);
        let fault = current_fault()
            .map(|f| format!("  fault: {f}"))
            .unwrap_or_default();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{prefix}[{:>7.1} s] {:>8.0} ops/s  ok {}  fail {}  info {}{fault}\x1b[K",
            now as f64 / 1e9,
            rate,
            counters.ok.load(Ordering::Relaxed),
            counters.fail.load(Ordering::Relaxed),
            counters.info.load(Ordering::Relaxed),
        );
        let _ = err.flush();
    }
}

/// Creates `store/<name>/<timestamp>`, with a suffix if a run started in the same millisecond.
fn create_run_dir(store: &Path, name: &str, timestamp: &str) -> anyhow::Result<PathBuf> {
    let parent = store.join(name);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    for attempt in 0..100 {
        let dir = if attempt == 0 {
            parent.join(timestamp)
        } else {
            parent.join(format!("{timestamp}-{attempt}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!(
        "cannot create a fresh run directory under {}",
        parent.display()
    )
}

/// Points `store/latest` at `dir` (relative), replacing it atomically: a new symlink under a
/// temporary name, renamed over the old one.
fn update_latest(store: &Path, dir: &Path) -> std::io::Result<()> {
    let relative = dir.strip_prefix(store).unwrap_or(dir);
    let temporary = store.join(format!(".latest.{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(relative, &temporary)?;
    std::fs::rename(&temporary, store.join("latest"))
}

/// `YYYYMMDDTHHMMSS.mmmZ` in UTC.
fn utc_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The current run's `faultline.log`, where every tracing event goes.
fn log_file() -> &'static Mutex<Option<File>> {
    static LOG: OnceLock<Mutex<Option<File>>> = OnceLock::new();
    LOG.get_or_init(|| Mutex::new(None))
}

fn set_log_file(file: Option<File>) {
    *log_file().lock().expect("log lock") = file;
}

/// Writes into the current run's log file, if any.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match log_file().lock().expect("log lock").as_mut() {
            Some(file) => file.write_all(buf).map(|()| buf.len()),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match log_file().lock().expect("log lock").as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

fn install_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FAULTLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(|| LogWriter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_and_sortable() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "19700101T000000.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(utc_timestamp(t), "20240229T123456.789Z");
    }

    #[test]
    fn latest_is_replaced_atomically() {
        let store = std::env::temp_dir().join(format!("faultline-latest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&store);
        let a = create_run_dir(&store, "t", "1").unwrap();
        let b = create_run_dir(&store, "t", "1").unwrap();
        assert!(b.ends_with("1-1"));
        update_latest(&store, &a).unwrap();
        update_latest(&store, &b).unwrap();
        assert_eq!(
            std::fs::read_link(store.join("latest")).unwrap(),
            Path::new("t/1-1")
        );
        let _ = std::fs::remove_dir_all(&store);
    }
}
