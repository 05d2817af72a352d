//! A deterministic simulation of a raftkv cluster on virtual time.
//!
//! One `u64` seed drives every random choice: message loss, delay (hence reordering),
//! duplication, partitions, process pauses, machine crashes that lose unsynced writes, node
//! clocks that tick at slightly different rates, the clients' operations and every node's
//! election timeouts. The same [`SimConfig`] always produces the same run.
//!
//! A run has two phases, after TigerBeetle's VOPR: a *safety phase* with faults, then a
//! *liveness phase* in which every fault is healed and the cluster must elect a leader and
//! commit a final write before a deadline. Throughout, [`SafetyChecker`] asserts Raft's
//! safety properties (Figure 3 of the paper) after every event; at the end the client history
//! is checked for stale reads. Any violation stops the run with a [`SimFailure`] that names
//! the seed.
//!
//! Client operations (put, get, cas) are recorded as invoke/complete pairs with honest
//! outcomes — `ok` happened, `fail` certainly did not, `info` unknown (a timeout) — so the
//! history can also be handed to a linearizability checker: see [`SimReport::history`].
//!
//! With [`SimConfig::with_txn_clients`], transactional clients run the write-skew workload
//! ("doctors on call"): each round writes `oncall-a-<round>` and `oncall-b-<round>` to 1, then
//! every doctor transaction reads both and takes its own doctor off call (writes 0). A
//! transaction is a static list of micro-ops, as the server's API takes it, so its write is
//! unconditional; what serializability promises is that the doctors' transactions of a round
//! run one after another, so at most one of them *reads both doctors on call*. Two committed
//! transactions that both did are write skew: each read the key the other wrote, before it
//! was written, and neither saw the other. The correct store commits a transaction as one
//! `Command::Txn`; under the snapshot-isolation-txn bug the node reads at a read index and
//! commits `Command::TxnSnapshotIsolation`, as the server does.

/// The error of a cas whose comparison ran and did not match: definitely not applied, and an
/// observation that the key held another value (faultline's history convention).
pub const COMPARE_FAILED: &str = "compare-failed";

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bug::{Bug, Bugs};
use crate::kv::{Command, Kv, MicroOp, Outcome, Request};
use crate::raft::{Config, Entry, EntryKind, Message, NodeId, RawNode, Role};
use crate::storage::{persist_ready, MemStorage, Storage, SyncMode};

/// Which faults the safety phase injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    pub partitions: bool,
    pub crashes: bool,
    pub pauses: bool,
    /// Crash or isolate the current leader (Jepsen's leader-targeted nemesis): leader churn
    /// while entries are half-replicated.
    pub leader_targeted: bool,
}

/// Everything that shapes a run. Times are virtual milliseconds.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The constructor that made this config, for the rerun line of a failure.
    pub profile: &'static str,
    pub seed: u64,
    pub node_count: usize,
    pub bugs: Bugs,
    pub faults: Faults,
    pub safety_phase_ms: u64,
    /// After healing, the cluster must commit the final write within this long.
    pub liveness_deadline_ms: u64,
    /// Each node ticks every `tick_ms` ± `tick_skew_ms` (its own fixed rate: clock skew).
    pub tick_ms: u64,
    pub tick_skew_ms: u64,
    pub election_ticks: u32,
    pub heartbeat_ticks: u32,
    pub max_entries_per_message: usize,
    pub message_delay_ms: (u64, u64),
    /// This share of messages is slow instead, taking `slow_message_delay_ms`: a long tail
    /// that lets a message outlive a crash and restart of its receiver.
    pub slow_message_share: f64,
    pub slow_message_delay_ms: (u64, u64),
    /// Probabilities during the safety phase; zero after healing.
    pub message_loss: f64,
    pub message_duplication: f64,
    pub nemesis_interval_ms: u64,
    pub restart_delay_ms: (u64, u64),
    pub pause_ms: (u64, u64),
    pub client_count: usize,
    pub key_count: usize,
    /// Transactional clients running the write-skew workload; zero leaves every run as it
    /// was (no extra random draws).
    pub txn_client_count: usize,
    /// The write-skew workload starts a fresh pair of doctors' keys after this many doctor
    /// transactions.
    pub txn_ops_per_round: u64,
    pub op_interval_ms: (u64, u64),
    pub op_timeout_ms: u64,
    /// A node snapshots its state machine once this many applied entries follow its snapshot.
    pub compact_after_entries: u64,
    /// Under the no-fsync bug: the chance per tick that the OS writes a node's dirty pages.
    pub writeback_per_tick: f64,
    /// Whether a message on its way to a node that crashes is still delivered once the node
    /// restarts (true: a datagram network, or any network whose delays can outlast a
    /// restart), or is lost with the crash (false: the server's transport, where a message
    /// travels on a TCP connection to one process and a restarted process gets new
    /// connections).
    pub messages_outlive_crashes: bool,
}

impl SimConfig {
    /// A run of about three virtual seconds of faults, then up to three seconds to recover.
    pub fn new(seed: u64, node_count: usize) -> SimConfig {
        assert!(node_count >= 1);
        SimConfig {
            profile: "new",
            seed,
            node_count,
            bugs: Bugs::none(),
            faults: Faults {
                partitions: true,
                crashes: true,
                pauses: true,
                leader_targeted: true,
            },
            safety_phase_ms: 3_000,
            liveness_deadline_ms: 3_000,
            tick_ms: 10,
            tick_skew_ms: 1,
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_entries_per_message: 8,
            message_delay_ms: (1, 15),
            slow_message_share: 0.02,
            slow_message_delay_ms: (50, 300),
            message_loss: 0.05,
            message_duplication: 0.02,
            nemesis_interval_ms: 300,
            restart_delay_ms: (50, 600),
            pause_ms: (50, 800),
            client_count: 3,
            key_count: 2,
            txn_client_count: 0,
            txn_ops_per_round: 6,
            op_interval_ms: (5, 40),
            op_timeout_ms: 300,
            compact_after_entries: 32,
            writeback_per_tick: 0.1,
            messages_outlive_crashes: true,
        }
    }

    /// Fault profile: leader churn. Only leader-targeted faults (crash or isolate the
    /// current leader) every 30 ms, one entry per message and a busy client load, so leaders
    /// often fall with entries half-replicated: the states of the paper's Figure 8.
    pub fn leader_churn(seed: u64, node_count: usize) -> SimConfig {
        SimConfig {
            profile: "leader_churn",
            faults: Faults {
                partitions: false,
                crashes: false,
                pauses: false,
                leader_targeted: true,
            },
            nemesis_interval_ms: 30,
            restart_delay_ms: (20, 80),
            max_entries_per_message: 1,
            op_interval_ms: (1, 10),
            slow_message_share: 0.05,
            ..SimConfig::new(seed, node_count)
        }
    }

    /// Fault profile: a slow network and quick crash-restarts. Messages take 10-60 ms (some
    /// far longer) and a node restarts within a few ms of crashing, so a vote request sent
    /// before a crash often arrives after the restart; elections overlap more often.
    pub fn slow_network_with_crashes(seed: u64, node_count: usize) -> SimConfig {
        SimConfig {
            profile: "slow_network_with_crashes",
            faults: Faults {
                partitions: false,
                crashes: true,
                pauses: false,
                leader_targeted: false,
            },
            nemesis_interval_ms: 40,
            restart_delay_ms: (3, 12),
            message_delay_ms: (10, 60),
            slow_message_share: 0.05,
            ..SimConfig::new(seed, node_count)
        }
    }

    pub fn with_bugs(mut self, bugs: Bugs) -> SimConfig {
        self.bugs = bugs;
        self
    }

    /// Adds `count` transactional clients running the write-skew workload (see the module
    /// docs); they alternate between the two doctors.
    pub fn with_txn_clients(mut self, count: usize) -> SimConfig {
        self.txn_client_count = count;
        self
    }
}

/// An event's type in the history, as Jepsen names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// The client functions the simulation drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    Get,
    Put,
    Cas,
    /// A multi-key transaction; its `value` is a list of micro-ops, Elle's
    /// `[["r", k, null], ["w", k, v]]`, with the reads filled in on `ok`.
    Txn,
}

/// One history event, shaped like faultline-core's `Op` (`time` in nanoseconds since the
/// run started; `value` is the argument on invoke and the result on completion: a put's
/// value, a get's value read, a cas's `[expected, new]`, a txn's micro-ops). A txn has no
/// single key: its `key` is empty and left out of the JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub index: u64,
    pub time: u64,
    pub process: u64,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub f: Function,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A broken property: which, when, and the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub property: &'static str,
    pub time_ms: u64,
    pub detail: String,
}

/// A run that broke a property. Its `Display` says how to reproduce it.
#[derive(Clone, Debug)]
pub struct SimFailure {
    pub seed: u64,
    /// How to rebuild the config, e.g. `SimConfig::leader_churn(109, 3)` plus its bugs.
    pub rerun: String,
    pub violation: Violation,
    pub history: Vec<HistoryEvent>,
    pub nemesis_log: Vec<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.violation;
        writeln!(
            f,
            "raftkv simulation: {} violated at {} ms: {}",
            v.property, v.time_ms, v.detail
        )?;
        let tail = self.nemesis_log.len().saturating_sub(8);
        writeln!(f, "last faults: {:?}", &self.nemesis_log[tail..])?;
        write!(
            f,
            "rerun with: sim::run(&{})  (seed = {})",
            self.rerun, self.seed
        )
    }
}

/// What a successful run produced.
#[derive(Clone, Debug)]
pub struct SimReport {
    pub seed: u64,
    pub history: Vec<HistoryEvent>,
    pub nemesis_log: Vec<String>,
    /// The leader of each term that had one.
    pub leaders: BTreeMap<u64, NodeId>,
    /// Highest index any node applied.
    pub applied_index: u64,
    /// When the final write of the liveness phase completed.
    pub final_write_ms: u64,
    pub crashes: u64,
    pub messages_delivered: u64,
}

impl SimReport {
    /// The client history as invoke/complete events, ready for a linearizability checker.
    pub fn history(&self) -> &[HistoryEvent] {
        &self.history
    }
}

/// Runs one simulation.
pub fn run(config: &SimConfig) -> Result<SimReport, Box<SimFailure>> {
    let mut sim = Sim::new(config.clone());
    sim.run();
    sim.finish()
}

// ----------------------------------------------------------------------------------------
// Safety properties.

/// Raft's safety properties (Figure 3), checked as the run goes.
#[derive(Debug, Default)]
pub struct SafetyChecker {
    /// Election Safety: at most one leader per term.
    leaders: BTreeMap<u64, NodeId>,
    /// Log Matching: an entry's (index, term) determines its command and, inductively, the
    /// log before it; we record the term of the entry before it.
    entries: BTreeMap<(u64, u64), (EntryKind, u64)>,
    /// State Machine Safety: every node applies the same entry at an index.
    applied: BTreeMap<u64, Entry>,
    /// The term in which each node was last seen leader, to check Leader Completeness once
    /// per election.
    leader_term_seen: BTreeMap<NodeId, u64>,
    /// Leader Append-Only: the last index a leader persisted in its term.
    leader_log_end: BTreeMap<NodeId, (u64, u64)>,
}

impl SafetyChecker {
    /// Election Safety and, on a new leader, Leader Completeness: every entry applied
    /// anywhere in an earlier term is in the new leader's log.
    pub fn check_leader(&mut self, node: &RawNode) -> Result<(), String> {
        if node.role() != Role::Leader {
            return Ok(());
        }
        let (id, term) = (node.id(), node.term());
        let leader = *self.leaders.entry(term).or_insert(id);
        if leader != id {
            return Err(format!(
                "election safety: nodes {leader} and {id} are both leaders of term {term}"
            ));
        }
        if self.leader_term_seen.insert(id, term) == Some(term) {
            return Ok(());
        }
        let log = node.log();
        for (&index, entry) in self.applied.range(log.snapshot().index + 1..) {
            if entry.term < term && log.term(index) != Some(entry.term) {
                return Err(format!(
                    "leader completeness: leader {id} of term {term} has term {:?} at index {index}, \
                     where term {} was committed",
                    log.term(index),
                    entry.term
                ));
            }
        }
        Ok(())
    }

    /// Leader Append-Only: a leader never overwrites or deletes entries in its log.
    pub fn check_leader_persist(
        &mut self,
        node: &RawNode,
        entries: &[Entry],
    ) -> Result<(), String> {
        let (id, term) = (node.id(), node.term());
        if node.role() == Role::Leader {
            if let (Some(&(t, end)), Some(first)) = (self.leader_log_end.get(&id), entries.first())
            {
                if t == term && first.index <= end {
                    return Err(format!(
                        "leader append-only: leader {id} of term {term} rewrote index {} (had persisted up to {end})",
                        first.index
                    ));
                }
            }
            self.leader_log_end
                .insert(id, (term, node.log().last_index()));
        } else {
            self.leader_log_end.remove(&id);
        }
        Ok(())
    }

    /// Log Matching, for entries a node just persisted.
    pub fn check_persisted(&mut self, node: &RawNode, entries: &[Entry]) -> Result<(), String> {
        for entry in entries {
            let Some(prev_term) = node.log().term(entry.index - 1) else {
                continue;
            };
            let record = (entry.kind.clone(), prev_term);
            match self.entries.get(&(entry.index, entry.term)) {
                None => {
                    self.entries.insert((entry.index, entry.term), record);
                }
                Some(seen) if *seen == record => {}
                Some(seen) => {
                    return Err(format!(
                        "log matching: node {} has index {} term {} as {:?} after term {}, elsewhere {:?} after term {}",
                        node.id(),
                        entry.index,
                        entry.term,
                        record.0,
                        record.1,
                        seen.0,
                        seen.1
                    ))
                }
            }
        }
        Ok(())
    }

    /// State Machine Safety: no two nodes apply different entries at one index.
    pub fn check_applied(&mut self, node: NodeId, entry: &Entry) -> Result<(), String> {
        match self.applied.get(&entry.index) {
            None => {
                self.applied.insert(entry.index, entry.clone());
                Ok(())
            }
            Some(seen) if seen == entry => Ok(()),
            Some(seen) => Err(format!(
                "state machine safety: node {node} applied {:?} at index {}, another node applied {:?}",
                (entry.term, &entry.kind),
                entry.index,
                (seen.term, &seen.kind)
            )),
        }
    }
}

/// Reads that returned a value older than one a completed write had already replaced.
///
/// Sound for histories whose writes (put, successful cas) write unique values:
/// `write_index` maps `(key, value)` to the log index of the command that wrote it. A read of
/// `v` is stale if a write with a higher log index completed `ok` before the read was
/// invoked. A read of a value no command wrote is reported too.
pub fn stale_reads(
    history: &[HistoryEvent],
    write_index: &BTreeMap<(String, String), u64>,
) -> Vec<String> {
    let mut invoked: BTreeMap<u64, &HistoryEvent> = BTreeMap::new();
    // Per key: (history index of completion, log index written), in history order.
    let mut completed_writes: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    let mut stale = Vec::new();
    for event in history {
        match event.kind {
            EventType::Invoke => {
                invoked.insert(event.process, event);
            }
            EventType::Ok => {
                let invoke = invoked
                    .remove(&event.process)
                    .expect("completion has an invocation");
                let written = match event.f {
                    Function::Put => Some(event.value.to_string()),
                    Function::Cas => Some(event.value[1].to_string()),
                    Function::Get => None,
                    // Transactions touch only the write-skew workload's keys, never read here.
                    Function::Txn => continue,
                };
                if let Some(value) = written {
                    let index = write_index
                        .get(&(event.key.clone(), value))
                        .copied()
                        .unwrap_or(0);
                    completed_writes
                        .entry(&event.key)
                        .or_default()
                        .push((event.index, index));
                    continue;
                }
                let read_index = if event.value.is_null() {
                    0
                } else {
                    match write_index.get(&(event.key.clone(), event.value.to_string())) {
                        Some(&index) => index,
                        None => {
                            stale.push(format!(
                                "read of {} = {} that no command wrote",
                                event.key, event.value
                            ));
                            continue;
                        }
                    }
                };
                let newest_before = completed_writes
                    .get(event.key.as_str())
                    .into_iter()
                    .flatten()
                    .filter(|&&(done, _)| done < invoke.index)
                    .map(|&(_, index)| index)
                    .max()
                    .unwrap_or(0);
                if newest_before > read_index {
                    stale.push(format!(
                        "stale read: process {} read {} = {} (log index {read_index}) at history index {}, \
                         but the write at log index {newest_before} had completed before it began",
                        event.process, event.key, event.value, event.index
                    ));
                }
            }
            EventType::Fail | EventType::Info => {
                invoked.remove(&event.process);
            }
        }
    }
    stale
}

// ----------------------------------------------------------------------------------------
// The simulator.

#[derive(Debug)]
enum Event {
    Tick(NodeId),
    /// A message, and the incarnation of its receiver when it was sent.
    Deliver(Message, u64),
    ClientInvoke(usize),
    ClientArrive(u64),
    ClientTimeout(u64),
    Nemesis,
    Restart(NodeId),
    Resume(NodeId),
    Heal,
}

#[derive(Debug)]
struct SimNode {
    raft: Option<RawNode>,
    kv: Kv,
    storage: MemStorage,
    tick_ms: u64,
    paused: bool,
    /// Events that reached the node while it was paused, delivered when it resumes.
    backlog: Vec<Event>,
    /// Proposals this node accepted: log index -> (term, op).
    proposals: BTreeMap<u64, (u64, u64)>,
    /// Reads confirmed by ReadIndex, waiting for the state machine: (op, index).
    reads: Vec<(u64, u64)>,
    /// How many times the node crashed: which process a message was sent to.
    incarnation: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientKind {
    /// Put, get and cas on the keys `k0..`.
    Register,
    /// The write-skew workload; `doctor` 0 or 1 is the doctor it takes off call.
    Txn { doctor: usize },
    /// The liveness phase's client: puts to key "final" until one succeeds.
    Final,
}

#[derive(Debug)]
struct Client {
    process: u64,
    leader_hint: Option<NodeId>,
    kind: ClientKind,
}

#[derive(Debug)]
struct OpenOp {
    client: usize,
    process: u64,
    f: Function,
    key: String,
    value: Value,
    node: NodeId,
    /// A snapshot-isolation txn's read-phase results, its answer once the commit applies.
    results: Option<Value>,
}

/// The keys of the write-skew workload's doctors in `round`.
fn on_call_keys(round: u64) -> [String; 2] {
    [format!("oncall-a-{round}"), format!("oncall-b-{round}")]
}

struct Sim {
    config: SimConfig,
    rng: SmallRng,
    now_ms: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Event>>,
    nodes: BTreeMap<NodeId, SimNode>,
    /// Directed links that drop messages.
    blocked: BTreeSet<(NodeId, NodeId)>,
    healed: bool,
    clients: Vec<Client>,
    next_process: u64,
    next_op: u64,
    open_ops: BTreeMap<u64, OpenOp>,
    history: Vec<HistoryEvent>,
    nemesis_log: Vec<String>,
    checker: SafetyChecker,
    write_index: BTreeMap<(String, String), u64>,
    /// The write-skew workload's current round (0: not started) and the doctor transactions
    /// invoked in it.
    txn_round: u64,
    txn_ops_in_round: u64,
    /// Per round, the history index of the committed txn that read both doctors on call.
    read_both_on_call: BTreeMap<u64, u64>,
    violation: Option<Violation>,
    final_write_ms: Option<u64>,
    crashes: u64,
    messages_delivered: u64,
}

impl Sim {
    fn new(config: SimConfig) -> Sim {
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let mut nodes = BTreeMap::new();
        let members: Vec<NodeId> = (1..=config.node_count as u64).collect();
        let mode = if config.bugs.contains(Bug::NoFsync) {
            SyncMode::NoFsync
        } else {
            SyncMode::Fsync
        };
        for &id in &members {
            let skew = rng.gen_range(0..=2 * config.tick_skew_ms);
            let tick_ms = (config.tick_ms + skew)
                .saturating_sub(config.tick_skew_ms)
                .max(1);
            let raft = RawNode::new(node_config(&config, id), Default::default(), rng.gen());
            let node = SimNode {
                raft: Some(raft),
                kv: Kv::new(),
                storage: MemStorage::new(mode),
                tick_ms,
                paused: false,
                backlog: Vec::new(),
                proposals: BTreeMap::new(),
                reads: Vec::new(),
                incarnation: 0,
            };
            nodes.insert(id, node);
        }
        let mut sim = Sim {
            rng,
            now_ms: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            nodes,
            blocked: BTreeSet::new(),
            healed: false,
            clients: Vec::new(),
            next_process: 0,
            next_op: 1,
            open_ops: BTreeMap::new(),
            history: Vec::new(),
            nemesis_log: Vec::new(),
            checker: SafetyChecker::default(),
            write_index: BTreeMap::new(),
            txn_round: 0,
            txn_ops_in_round: 0,
            read_both_on_call: BTreeMap::new(),
            violation: None,
            final_write_ms: None,
            crashes: 0,
            messages_delivered: 0,
            config,
        };
        for id in members {
            let first_tick = sim.rng.gen_range(1..=sim.config.tick_ms);
            sim.schedule(first_tick, Event::Tick(id));
        }
        for _ in 0..sim.config.client_count {
            let client = sim.add_client(ClientKind::Register);
            let delay = sim
                .rng
                .gen_range(sim.config.op_interval_ms.0..=sim.config.op_interval_ms.1);
            sim.schedule(delay, Event::ClientInvoke(client));
        }
        for doctor in 0..sim.config.txn_client_count {
            let client = sim.add_client(ClientKind::Txn { doctor: doctor % 2 });
            let delay = sim
                .rng
                .gen_range(sim.config.op_interval_ms.0..=sim.config.op_interval_ms.1);
            sim.schedule(delay, Event::ClientInvoke(client));
        }
        sim.schedule(sim.config.nemesis_interval_ms, Event::Nemesis);
        sim.schedule(sim.config.safety_phase_ms, Event::Heal);
        sim
    }

    fn add_client(&mut self, kind: ClientKind) -> usize {
        let process = self.next_process;
        self.next_process += 1;
        self.clients.push(Client {
            process,
            leader_hint: None,
            kind,
        });
        self.clients.len() - 1
    }

    /// Events at the same millisecond run in a random order: that is reordering too.
    fn schedule(&mut self, delay_ms: u64, event: Event) {
        let slot = self.events.len();
        self.events.push(Some(event));
        let tiebreak = self.rng.gen();
        self.queue
            .push(Reverse((self.now_ms + delay_ms, tiebreak, slot)));
    }

    fn run(&mut self) {
        let deadline = self.config.safety_phase_ms + self.config.liveness_deadline_ms;
        while let Some(Reverse((time, _, slot))) = self.queue.pop() {
            if time > deadline || self.violation.is_some() || self.final_write_ms.is_some() {
                break;
            }
            self.now_ms = time;
            let event = self.events[slot].take().expect("each event runs once");
            self.handle(event);
        }
    }

    fn fail(&mut self, property: &'static str, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                property,
                time_ms: self.now_ms,
                detail,
            });
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(id) => {
                let node = self.nodes.get_mut(&id).expect("node exists");
                let next = node.tick_ms;
                if self.rng.gen_bool(self.config.writeback_per_tick) {
                    node.storage.sync();
                }
                if !node.paused {
                    if let Some(raft) = node.raft.as_mut() {
                        raft.tick();
                        self.drive(id);
                    }
                }
                self.schedule(next, Event::Tick(id));
            }
            Event::Deliver(msg, incarnation) => {
                let to = msg.to;
                if self.blocked.contains(&(msg.from, to)) {
                    return;
                }
                let node = self.nodes.get_mut(&to).expect("node exists");
                if !self.config.messages_outlive_crashes && incarnation != node.incarnation {
                    // Sent to the process that crashed: lost with its connections.
                    return;
                }
                if node.paused {
                    node.backlog.push(Event::Deliver(msg, incarnation));
                } else if let Some(raft) = node.raft.as_mut() {
                    self.messages_delivered += 1;
                    raft.step(msg);
                    self.drive(to);
                }
            }
            Event::ClientInvoke(client) => self.client_invoke(client),
            Event::ClientArrive(op) => self.client_arrive(op),
            Event::ClientTimeout(op) => {
                if self.open_ops.contains_key(&op) {
                    // The request may still commit later: unknown, never a guessed fail.
                    self.complete(op, EventType::Info, None, Some("timeout".into()));
                }
            }
            Event::Nemesis => {
                if !self.healed {
                    self.nemesis();
                    self.schedule(self.config.nemesis_interval_ms, Event::Nemesis);
                }
            }
            Event::Restart(id) => self.restart(id),
            Event::Resume(id) => self.resume(id),
            Event::Heal => self.heal(),
        }
    }

    // ----- nodes -----

    /// Handles every `Ready` of node `id` as the core's contract says, checking safety.
    fn drive(&mut self, id: NodeId) {
        if !self.drive_ready(id) {
            return;
        }
        // Answering a read can propose (a snapshot-isolation txn's commit): handle that too.
        while self.answer_reads(id) {
            self.drive_ready(id);
        }
        let node = self.nodes.get_mut(&id).expect("node exists");
        let raft = node.raft.as_mut().expect("running");
        if node.kv.applied_index()
            >= raft.log().snapshot().index + self.config.compact_after_entries
        {
            let snapshot = raft.compact(node.kv.applied_index(), node.kv.snapshot());
            node.storage
                .compact(&snapshot)
                .expect("in-memory storage does not fail");
        }
        if let Some(what) = raft.violations().first() {
            let detail = format!("node {id}: {what}");
            self.fail("core invariant", detail);
        }
        let raft = self.nodes[&id].raft.as_ref().expect("running");
        if let Err(detail) = self.checker.check_leader(raft) {
            self.fail("election safety / leader completeness", detail);
        }
    }

    /// Handles `Ready`s until there are none; false if the node is not running.
    fn drive_ready(&mut self, id: NodeId) -> bool {
        loop {
            let node = self.nodes.get_mut(&id).expect("node exists");
            let Some(raft) = node.raft.as_mut() else {
                return false;
            };
            if !raft.has_ready() {
                return true;
            }
            let ready = raft.ready();
            let append_only = self.checker.check_leader_persist(raft, &ready.entries);
            // 1. Persist.
            persist_ready(&mut node.storage, &ready).expect("in-memory storage does not fail");
            if let Err(detail) = append_only {
                self.fail("leader append-only", detail);
            }
            // 2. Send.
            for msg in ready.messages {
                self.send(msg);
            }
            // 3. Apply.
            let node = self.nodes.get_mut(&id).expect("node exists");
            if let Some(snapshot) = &ready.snapshot {
                node.kv = Kv::restore(&snapshot.data).expect("snapshots this run wrote decode");
                assert_eq!(
                    node.kv.applied_index(),
                    snapshot.index,
                    "snapshot data matches its index"
                );
                node.proposals.retain(|&index, _| index > snapshot.index);
            }
            for entry in &ready.committed_entries {
                self.apply(id, entry);
            }
            // 4. Reads.
            let node = self.nodes.get_mut(&id).expect("node exists");
            node.reads
                .extend(ready.read_states.iter().map(|r| (r.context, r.index)));
            for op in ready.aborted_reads {
                // A read that was never answered had no effect: it certainly did not happen.
                self.complete(op, EventType::Fail, None, Some("read-aborted".into()));
            }
            // 5. Advance.
            let node = self.nodes.get_mut(&id).expect("node exists");
            let raft = node.raft.as_mut().expect("running");
            raft.advance();
            if let Err(detail) = self.checker.check_persisted(raft, &ready.entries) {
                self.fail("log matching", detail);
            }
        }
    }

    fn apply(&mut self, id: NodeId, entry: &Entry) {
        if let Err(detail) = self.checker.check_applied(id, entry) {
            self.fail("state machine safety", detail);
        }
        let node = self.nodes.get_mut(&id).expect("node exists");
        let request = match &entry.kind {
            EntryKind::Noop => {
                node.kv.apply_noop(entry.index);
                None
            }
            EntryKind::Command(bytes) => {
                let request =
                    Request::decode(bytes).expect("the simulation proposes valid requests");
                let outcome = node.kv.apply(entry.index, &request.command);
                Some((request, outcome))
            }
        };
        let proposal = node.proposals.remove(&entry.index);
        if let Some((request, outcome)) = &request {
            let written = match (&request.command, outcome) {
                (Command::Put { key, value }, _) => Some((key, value)),
                (Command::Cas { key, new, .. }, Outcome::Cas { swapped: true, .. }) => {
                    Some((key, new))
                }
                _ => None,
            };
            if let Some((key, value)) = written {
                self.write_index
                    .entry((key.clone(), value.to_string()))
                    .or_insert(entry.index);
            }
        }
        let Some((term, op)) = proposal else { return };
        match request {
            Some((request, outcome)) if entry.term == term => {
                assert_eq!(
                    request.id, op,
                    "the entry at a proposal's index and term is that proposal"
                );
                match outcome {
                    Outcome::Cas { swapped: false, .. } => {
                        self.complete(op, EventType::Fail, None, Some(COMPARE_FAILED.into()))
                    }
                    Outcome::Txn(results) => {
                        self.complete(op, EventType::Ok, Some(json!(results)), None)
                    }
                    // A lost write-write conflict: nothing was written.
                    Outcome::Aborted => {
                        self.complete(op, EventType::Fail, None, Some("txn-aborted".into()))
                    }
                    _ => {
                        // A snapshot-isolation commit answers with its read phase's results.
                        let results = self.open_ops.get(&op).and_then(|o| o.results.clone());
                        self.complete(op, EventType::Ok, results, None)
                    }
                }
            }
            // Another entry took the index: this proposal exists nowhere else, so it will
            // never commit.
            _ => self.complete(op, EventType::Fail, None, Some("overwritten".into())),
        }
    }

    /// Answers the reads whose index the state machine reached. Returns whether it proposed
    /// (a snapshot-isolation txn's commit), so the caller drives the node again.
    fn answer_reads(&mut self, id: NodeId) -> bool {
        let node = self.nodes.get_mut(&id).expect("node exists");
        let applied = node.kv.applied_index();
        let (ready, waiting): (Vec<_>, Vec<_>) = node
            .reads
            .drain(..)
            .partition(|&(_, index)| index <= applied);
        node.reads = waiting;
        let mut proposed = false;
        for (op, _) in ready {
            let Some(open) = self.open_ops.get(&op) else {
                continue;
            };
            if open.f != Function::Txn {
                let value = self.nodes[&id].kv.get(&open.key);
                self.complete(op, EventType::Ok, Some(value), None);
                continue;
            }
            proposed |= self.txn_read_phase(id, op);
        }
        proposed
    }

    /// The snapshot-isolation-txn bug, as the server runs it: once a ReadIndex confirmed the
    /// read, read from this node's state, then propose the writes, which abort only on a
    /// write-write conflict. Returns whether it proposed.
    fn txn_read_phase(&mut self, id: NodeId, op: u64) -> bool {
        let open = self.open_ops.get_mut(&op).expect("an open txn");
        let ops: Vec<MicroOp> =
            serde_json::from_value(open.value.clone()).expect("recorded as micro-ops");
        let node = self.nodes.get_mut(&id).expect("node exists");
        let (results, command) = node.kv.txn_read_phase(&ops);
        if ops.iter().all(|op| matches!(op, MicroOp::Read { .. })) {
            self.complete(op, EventType::Ok, Some(json!(results)), None);
            return false;
        }
        open.results = Some(json!(results));
        let raft = node.raft.as_mut().expect("running");
        match raft.propose(Request { id: op, command }.encode()) {
            Ok((index, term)) => {
                node.proposals.insert(index, (term, op));
                true
            }
            Err(_) => {
                // Leadership moved between the read and the commit: nothing was proposed.
                self.complete(op, EventType::Fail, None, Some("not-leader".into()));
                false
            }
        }
    }

    fn send(&mut self, msg: Message) {
        if !self.healed && self.rng.gen_bool(self.config.message_loss) {
            return;
        }
        let copies = if !self.healed && self.rng.gen_bool(self.config.message_duplication) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let slow = !self.healed && self.rng.gen_bool(self.config.slow_message_share);
            let (lo, hi) = if slow {
                self.config.slow_message_delay_ms
            } else {
                self.config.message_delay_ms
            };
            let delay = self.rng.gen_range(lo..=hi);
            let incarnation = self.nodes[&msg.to].incarnation;
            self.schedule(delay, Event::Deliver(msg.clone(), incarnation));
        }
    }

    fn crash(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node exists");
        node.raft = None;
        node.kv = Kv::new();
        node.storage.crash();
        node.paused = false;
        node.backlog.clear();
        node.proposals.clear();
        node.reads.clear();
        node.incarnation += 1;
        self.crashes += 1;
    }

    fn restart(&mut self, id: NodeId) {
        let seed = self.rng.gen();
        let config = node_config(&self.config, id);
        let node = self.nodes.get_mut(&id).expect("node exists");
        if node.raft.is_some() {
            return;
        }
        let recovered = node
            .storage
            .recover()
            .expect("in-memory storage does not fail");
        node.kv = Kv::restore(&recovered.snapshot.data).expect("snapshots this run wrote decode");
        node.raft = Some(RawNode::new(config, recovered, seed));
        self.nemesis_log
            .push(format!("{} ms: restart {id}", self.now_ms));
        self.drive(id);
    }

    fn resume(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node exists");
        if !node.paused {
            return;
        }
        node.paused = false;
        let backlog = std::mem::take(&mut node.backlog);
        self.nemesis_log
            .push(format!("{} ms: resume {id}", self.now_ms));
        for event in backlog {
            let delay = self.rng.gen_range(0..=3);
            self.schedule(delay, event);
        }
    }

    fn nemesis(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let faults = self.config.faults;
        let mut choices = vec!["heal"];
        if faults.partitions && ids.len() > 1 {
            choices.extend(["partition", "isolate"]);
        }
        if faults.crashes {
            choices.push("crash");
        }
        if faults.pauses {
            choices.push("pause");
        }
        if faults.leader_targeted {
            choices.push("crash-leader");
            if ids.len() > 1 {
                choices.push("isolate-leader");
            }
        }
        let mut choice = choices[self.rng.gen_range(0..choices.len())];
        let leader = self
            .nodes
            .iter()
            .find(|(_, n)| n.raft.as_ref().is_some_and(RawNode::is_leader))
            .map(|(&id, _)| id);
        let target = match (choice, leader) {
            ("crash-leader", Some(leader)) => {
                choice = "crash";
                Some(leader)
            }
            ("isolate-leader", Some(leader)) => {
                choice = "isolate";
                Some(leader)
            }
            ("crash-leader" | "isolate-leader", None) => return,
            _ => None,
        };
        match choice {
            "heal" => {
                self.blocked.clear();
                self.nemesis_log
                    .push(format!("{} ms: heal network", self.now_ms));
            }
            "partition" | "isolate" => {
                let side: BTreeSet<NodeId> = if choice == "isolate" {
                    BTreeSet::from(
                        [target.unwrap_or_else(|| ids[self.rng.gen_range(0..ids.len())])],
                    )
                } else {
                    let size = self.rng.gen_range(1..ids.len());
                    let mut shuffled = ids.clone();
                    for i in (1..shuffled.len()).rev() {
                        let j = self.rng.gen_range(0..=i);
                        shuffled.swap(i, j);
                    }
                    shuffled.into_iter().take(size).collect()
                };
                self.blocked.clear();
                for &a in &ids {
                    for &b in &ids {
                        if side.contains(&a) != side.contains(&b) {
                            self.blocked.insert((a, b));
                        }
                    }
                }
                self.nemesis_log.push(format!(
                    "{} ms: partition {side:?} from the rest",
                    self.now_ms
                ));
            }
            "crash" => {
                let running: Vec<NodeId> = ids
                    .iter()
                    .copied()
                    .filter(|id| self.nodes[id].raft.is_some())
                    .collect();
                if running.is_empty() {
                    return;
                }
                let id = target.unwrap_or_else(|| running[self.rng.gen_range(0..running.len())]);
                self.crash(id);
                let (lo, hi) = self.config.restart_delay_ms;
                let delay = self.rng.gen_range(lo..=hi);
                self.nemesis_log
                    .push(format!("{} ms: crash {id}", self.now_ms));
                self.schedule(delay, Event::Restart(id));
            }
            "pause" => {
                let running: Vec<NodeId> = ids
                    .iter()
                    .copied()
                    .filter(|id| self.nodes[id].raft.is_some() && !self.nodes[id].paused)
                    .collect();
                if running.is_empty() {
                    return;
                }
                let id = running[self.rng.gen_range(0..running.len())];
                self.nodes.get_mut(&id).expect("node exists").paused = true;
                let (lo, hi) = self.config.pause_ms;
                let delay = self.rng.gen_range(lo..=hi);
                self.nemesis_log
                    .push(format!("{} ms: pause {id}", self.now_ms));
                self.schedule(delay, Event::Resume(id));
            }
            _ => unreachable!("a listed fault"),
        }
    }

    /// The start of the liveness phase: heal everything, then keep writing until one lands.
    fn heal(&mut self) {
        self.healed = true;
        self.blocked.clear();
        self.nemesis_log
            .push(format!("{} ms: heal all (liveness phase)", self.now_ms));
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            if self.nodes[&id].raft.is_none() {
                self.restart(id);
            }
            self.resume(id);
        }
        let client = self.add_client(ClientKind::Final);
        self.schedule(0, Event::ClientInvoke(client));
    }

    // ----- clients -----

    fn client_invoke(&mut self, client: usize) {
        let op = self.next_op;
        self.next_op += 1;
        let kind = self.clients[client].kind;
        let key_count = self.config.key_count;
        let (f, key, value) = if let ClientKind::Txn { doctor } = kind {
            (Function::Txn, String::new(), self.write_skew_txn(doctor))
        } else if kind == ClientKind::Final {
            (Function::Put, "final".to_string(), json!(op))
        } else {
            let key = format!("k{}", self.rng.gen_range(0..key_count));
            match self.rng.gen_range(0..10) {
                0..=3 => (Function::Put, key, json!(op)),
                4..=7 => (Function::Get, key, Value::Null),
                _ => {
                    // Expect a value recently written to the key, so some swaps succeed.
                    let expected = self
                        .write_index
                        .iter()
                        .filter(|((k, _), _)| *k == key)
                        .max_by_key(|(_, &index)| index)
                        .map(|((_, v), _)| serde_json::from_str(v).expect("recorded as JSON"))
                        .unwrap_or(Value::Null);
                    (Function::Cas, key, json!([expected, op]))
                }
            }
        };
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let node = match self.clients[client].leader_hint {
            Some(hint) if self.rng.gen_bool(0.8) => hint,
            _ => ids[self.rng.gen_range(0..ids.len())],
        };
        let process = self.clients[client].process;
        self.record(process, EventType::Invoke, f, &key, value.clone(), None);
        self.open_ops.insert(
            op,
            OpenOp {
                client,
                process,
                f,
                key,
                value,
                node,
                results: None,
            },
        );
        let (lo, hi) = self.config.message_delay_ms;
        let delay = self.rng.gen_range(lo..=hi);
        self.schedule(delay, Event::ClientArrive(op));
        self.schedule(self.config.op_timeout_ms, Event::ClientTimeout(op));
    }

    fn client_arrive(&mut self, op: u64) {
        let Some(open) = self.open_ops.get(&op) else {
            return;
        };
        let (id, f) = (open.node, open.f);
        let command = match f {
            Function::Put => Command::Put {
                key: open.key.clone(),
                value: open.value.clone(),
            },
            Function::Cas => Command::Cas {
                key: open.key.clone(),
                expected: open.value[0].clone(),
                new: open.value[1].clone(),
            },
            Function::Get => Command::Get {
                key: open.key.clone(),
            },
            Function::Txn => Command::Txn {
                ops: serde_json::from_value(open.value.clone()).expect("recorded as micro-ops"),
            },
        };
        // Under the bug a txn starts with a read phase at a read index, as in the server.
        let read_first = f == Function::Get
            || (f == Function::Txn && self.config.bugs.contains(Bug::SnapshotIsolationTxn));
        let node = self.nodes.get_mut(&id).expect("node exists");
        if node.paused {
            node.backlog.push(Event::ClientArrive(op));
            return;
        }
        let Some(raft) = node.raft.as_mut() else {
            self.complete(op, EventType::Fail, None, Some("connection-refused".into()));
            return;
        };
        let result = if read_first {
            raft.read_index(op).map(|()| None)
        } else {
            raft.propose(Request { id: op, command }.encode()).map(Some)
        };
        match result {
            Err(not_leader) => {
                let client = self.open_ops[&op].client;
                self.clients[client].leader_hint = not_leader.leader;
                self.complete(op, EventType::Fail, None, Some("not-leader".into()));
            }
            Ok(proposal) => {
                if let Some((index, term)) = proposal {
                    node.proposals.insert(index, (term, op));
                }
                let client = self.open_ops[&op].client;
                self.clients[client].leader_hint = Some(id);
                self.drive(id);
            }
        }
    }

    /// Completes an open op. `value` overrides the invocation's value (a read's result).
    fn complete(&mut self, op: u64, kind: EventType, value: Option<Value>, error: Option<String>) {
        let Some(open) = self.open_ops.remove(&op) else {
            return;
        };
        let value = value.unwrap_or(open.value);
        if open.f == Function::Txn && kind == EventType::Ok {
            self.check_write_skew(&value);
        }
        self.record(open.process, kind, open.f, &open.key, value, error);
        let client = &mut self.clients[open.client];
        if kind == EventType::Info {
            // The old request may still land: carry on as a new process.
            client.process = self.next_process;
            self.next_process += 1;
        }
        let is_final = client.kind == ClientKind::Final;
        if is_final && kind == EventType::Ok {
            self.final_write_ms = Some(self.now_ms);
            return;
        }
        let delay = if is_final {
            20
        } else {
            self.rng
                .gen_range(self.config.op_interval_ms.0..=self.config.op_interval_ms.1)
        };
        self.schedule(delay, Event::ClientInvoke(open.client));
    }

    /// The write-skew workload's next txn for a client of `doctor`: a new round writes both
    /// doctors on call; otherwise read both and take `doctor` off call.
    fn write_skew_txn(&mut self, doctor: usize) -> Value {
        let starting =
            self.txn_round == 0 || self.txn_ops_in_round >= self.config.txn_ops_per_round;
        if starting {
            self.txn_round += 1;
            self.txn_ops_in_round = 0;
        } else {
            self.txn_ops_in_round += 1;
        }
        let [a, b] = on_call_keys(self.txn_round);
        if starting {
            return json!([["w", a, 1], ["w", b, 1]]);
        }
        let own = if doctor == 0 { &a } else { &b };
        json!([["r", a, null], ["r", b, null], ["w", own, 0]])
    }

    /// Serializability of the write-skew workload. Only a round's first txn writes both
    /// doctors on call, and every doctor txn writes one of them off call, so in any serial
    /// order at most one doctor txn of a round reads both on call. Checks a txn's completed
    /// micro-ops against the ones already seen.
    fn check_write_skew(&mut self, results: &Value) {
        let ops: Vec<MicroOp> =
            serde_json::from_value(results.clone()).expect("a txn completes with micro-ops");
        let on_call = |key: &str| {
            ops.iter().any(|op| {
                matches!(op, MicroOp::Read { key: k, value } if k == key && *value == json!(1))
            })
        };
        let round = ops
            .first()
            .and_then(|op| op.key().rsplit('-').next()?.parse().ok())
            .expect("write-skew keys end in their round");
        let [a, b] = on_call_keys(round);
        if !(on_call(&a) && on_call(&b)) {
            return;
        }
        let index = self.history.len() as u64;
        if let Some(&first) = self.read_both_on_call.get(&round) {
            let detail = format!(
                "write skew: the txns completed at history indexes {first} and {index} both read \
                 both doctors of round {round} on call and each took one off call: {results}"
            );
            self.fail("serializability (write skew)", detail);
        } else {
            self.read_both_on_call.insert(round, index);
        }
    }

    fn record(
        &mut self,
        process: u64,
        kind: EventType,
        f: Function,
        key: &str,
        value: Value,
        error: Option<String>,
    ) {
        let event = HistoryEvent {
            index: self.history.len() as u64,
            time: self.now_ms * 1_000_000,
            process,
            kind,
            f,
            key: key.to_string(),
            value,
            error,
        };
        self.history.push(event);
    }

    fn finish(mut self) -> Result<SimReport, Box<SimFailure>> {
        // Operations still open when the run stops have unknown outcomes.
        let open: Vec<u64> = self.open_ops.keys().copied().collect();
        for op in open {
            self.complete(op, EventType::Info, None, Some("run-ended".into()));
        }
        if self.violation.is_none() {
            if let Some(stale) = stale_reads(&self.history, &self.write_index)
                .into_iter()
                .next()
            {
                self.fail("linearizable reads", stale);
            }
        }
        if self.violation.is_none() && self.final_write_ms.is_none() {
            let detail = format!(
                "no final write committed within {} ms of healing at {} ms",
                self.config.liveness_deadline_ms, self.config.safety_phase_ms
            );
            self.fail("liveness", detail);
        }
        if let Some(violation) = self.violation {
            return Err(Box::new(SimFailure {
                seed: self.config.seed,
                rerun: rerun_line(&self.config),
                violation,
                history: self.history,
                nemesis_log: self.nemesis_log,
            }));
        }
        Ok(SimReport {
            seed: self.config.seed,
            history: self.history,
            nemesis_log: self.nemesis_log,
            leaders: self.checker.leaders.clone(),
            applied_index: self
                .checker
                .applied
                .keys()
                .next_back()
                .copied()
                .unwrap_or(0),
            final_write_ms: self.final_write_ms.expect("liveness checked"),
            crashes: self.crashes,
            messages_delivered: self.messages_delivered,
        })
    }
}

fn rerun_line(config: &SimConfig) -> String {
    let mut line = format!(
        "SimConfig::{}({}, {})",
        config.profile, config.seed, config.node_count
    );
    if config.txn_client_count > 0 {
        line += &format!(".with_txn_clients({})", config.txn_client_count);
    }
    let bugs: Vec<&str> = Bug::ALL
        .into_iter()
        .filter(|&b| config.bugs.contains(b))
        .map(Bug::name)
        .collect();
    if !bugs.is_empty() {
        line += &format!(
            ".with_bugs(Bugs::parse_list({:?}).unwrap())",
            bugs.join(",")
        );
    }
    line
}

fn node_config(config: &SimConfig, id: NodeId) -> Config {
    let mut node = Config::new(id, (1..=config.node_count as u64).collect());
    node.election_ticks = config.election_ticks;
    node.heartbeat_ticks = config.heartbeat_ticks;
    node.max_entries_per_message = config.max_entries_per_message;
    node.bugs = config.bugs.clone();
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(index: u64, process: u64, kind: EventType, f: Function, value: Value) -> HistoryEvent {
        HistoryEvent {
            index,
            time: index,
            process,
            kind,
            f,
            key: "x".into(),
            value,
            error: None,
        }
    }

    #[test]
    fn stale_read_detector_flags_a_read_of_an_overwritten_value() {
        use EventType::*;
        use Function::*;
        let writes = BTreeMap::from([(("x".into(), "1".into()), 5), (("x".into(), "2".into()), 9)]);
        let history = vec![
            event(0, 1, Invoke, Put, json!(2)),
            event(1, 1, Ok, Put, json!(2)),
            event(2, 2, Invoke, Get, Value::Null),
            event(3, 2, Ok, Get, json!(1)),
        ];
        assert_eq!(stale_reads(&history, &writes).len(), 1);
        // Concurrent with the write, the old value is fine.
        let concurrent = vec![
            event(0, 1, Invoke, Put, json!(2)),
            event(1, 2, Invoke, Get, Value::Null),
            event(2, 1, Ok, Put, json!(2)),
            event(3, 2, Ok, Get, json!(1)),
        ];
        assert!(stale_reads(&concurrent, &writes).is_empty());
    }

    #[test]
    fn same_seed_same_run() {
        let config = SimConfig::new(7, 3);
        let a = run(&config).expect("seed 7 passes");
        let b = run(&config).expect("seed 7 passes");
        assert_eq!(a.history, b.history);
        assert_eq!(a.nemesis_log, b.nemesis_log);
    }
}
