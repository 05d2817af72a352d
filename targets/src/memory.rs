//! `memory`: an in-process, linearizable key-value store with switchable bugs.
//!
//! It holds registers (read / write / cas), grow-only sets (add / read) and transactional
//! keys (list-append and rw-register transactions, bank transfers and reads; see
//! [`faultline_core::txn`]) in maps behind one mutex, so every operation takes effect
//! atomically at one instant between its invocation and its completion: linearizable, and
//! transactions strict serializable, by construction. Bug switches break that on purpose, with
//! the same names as raftkv's where they mean the same thing in-process:
//!
//! | bug | what it does | what the checkers find |
//! |---|---|---|
//! | `stale-read` | reads are served from a replica copy of each key refreshed at most every `replica_lag_ms` (default 20 ms) | register: a read returns a value overwritten before it began (not linearizable); set: stale or lost elements in reads |
//! | `lost-write` | one in `lost_write_one_in` (default 10) writes and adds is acknowledged and dropped | register: reads miss an acknowledged write (not linearizable); set: lost elements |
//! | `snapshot-isolation-txn` | a transaction reads a snapshot when it starts and commits `si_window_ms` (default 2 ms) later, aborting only if a key it *writes* changed meanwhile (first committer wins) | rw-register / list-append: write skew (G2-item), not serializable; valid under snapshot-isolation |
//! | `double-grant` | one in `double_grant_one_in` (default 3) acquires of a held lock is granted anyway (with the next token) | lock: two processes believe they hold the lock at once, and the mutex model fails; without fencing, the resource accepts a lower token after a higher one |
//! | `two-leaders` | one in [`TWO_LEADERS_ONE_IN`] campaigns while another leads wins anyway, in the leader's epoch | election: two leaders for one epoch (agreement and integrity broken) |
//! | `duplicate-id` | one in [`DUPLICATE_ID_ONE_IN`] generates hands out the previous id again | unique-ids: duplicates |
//! | `drop-event` | a watch leaves out one event in 5 | watch: a gap in a watch that promised every change |
//! | `reorder-event` | a watch swaps one event in 5 with the next of its key | watch: events of a key out of revision order |
//! | `outlive-lease` | registrations never expire | ephemeral: a registration listed after its TTL and slack |
//!
//! `stale-read` applies to registers and sets; `lost-write` to registers, sets, broadcast
//! appends and queue enqueues (acknowledged and dropped: lost); `snapshot-isolation-txn` to the
//! transactional workloads; `double-grant` to the lock workloads; `reorder-append` to
//! broadcast; `duplicate-delivery` to queues; `two-leaders` to `election`; `duplicate-id` to
//! `unique-ids`; `drop-event` and `reorder-event` to `watch`, `outlive-lease` to `ephemeral`
//! (both in [`crate::memory_coordination`]). Asking for a bug the workload cannot show is a
//! bad argument.
//!
//! Broadcast (`broadcast`, `log`; see [`faultline_core::broadcast`]): a log is a list of
//! message ids. Queues (`queue`; see [`faultline_core::queue`]): ready jobs in enqueue order,
//! claimed jobs with their claimant (one per opened client), done jobs; a claim takes the
//! oldest ready job out of the queue (exactly-once), a complete succeeds only for the claimant
//! in force.
//!
//! Elections (`election`, candidates `clients`; see [`faultline_core::election`]): an election
//! holds its last epoch and its leader (epoch, name, lease end); a campaign wins when no lease
//! is in force, with the next epoch. Unique ids: one counter.
//!
//! Locks (`lock`, `fenced-lock`; see [`faultline_core::lock`]): a lock holds its holder's token
//! and lease end (on this process's monotonic clock), a counter of grants for tokens, and a
//! protected resource: the list of accepted `[token, id]` writes and the highest token
//! accepted.
//!
//! (raftkv's `no-fsync` loses acknowledged writes only when nodes crash together; this store
//! has no crash, so its bug is named for what it does: `lost-write`.)
//!
//! Options (`test.target_options`): `latency_ms` (each operation waits a random time in
//! `0..=latency_ms`, part before it takes effect and the rest after, so operations overlap as
//! on a network), `replica_lag_ms`, `lost_write_one_in`, `si_window_ms`.
//!
//! Design decision: the store is shared by the db and every client through an `Arc`, and the
//! db's setup / teardown only open and close it (teardown also empties it); so the lifecycle
//! is the real targets' (setup, open clients, invoke, close, teardown) with nothing to install.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use faultline_core::election::{Candidates, ElectionSpec};
use faultline_core::ephemeral::{stall_request, EphemeralSpec};
use faultline_core::lock::LockSpec;
use faultline_core::txn::{parse_txn, txn_json, Bank, MicroOp, MopKind, Transfer};
use faultline_core::watch::{key_name, watch_request, WatchSpec};
use faultline_core::{broadcast, queue};
use faultline_core::{BoxFuture, Client, Completion, Db, HarnessError, Invocation, Node, Test};

use crate::election::{Candidate, ElectionService, Won};
use crate::lock::{Grant, Holder, LockService};
use crate::memory_coordination::{Registry, WatchLog};
use crate::{Target, TargetError};

/// The bugs this target can switch on.
pub const BUGS: [&str; 11] = [
    "stale-read",
    "lost-write",
    "snapshot-isolation-txn",
    "double-grant",
    "reorder-append",
    "duplicate-delivery",
    "two-leaders",
    "duplicate-id",
    "drop-event",
    "reorder-event",
    "outlive-lease",
];
/// `two-leaders`: one in this many campaigns while another leads wins anyway.
pub const TWO_LEADERS_ONE_IN: u64 = 3;
/// `duplicate-id`: one in this many generates repeats the previous id.
pub const DUPLICATE_ID_ONE_IN: u64 = 10;
/// The workloads whose operations are transactions.
const TXN_WORKLOADS: [&str; 3] = ["list-append", "rw-register", "bank"];
/// Default time between a `snapshot-isolation-txn` transaction's snapshot and its commit.
pub const DEFAULT_SI_WINDOW_MS: u64 = 2;
/// Default share of acquires of a held lock `double-grant` grants: one in this many.
pub const DEFAULT_DOUBLE_GRANT_ONE_IN: u64 = 3;
/// Default share of appends `reorder-append` puts before the log's last message.
pub const DEFAULT_REORDER_ONE_IN: u64 = 5;
/// Default share of claims `duplicate-delivery` leaves in the queue.
pub const DEFAULT_DUPLICATE_DELIVERY_ONE_IN: u64 = 5;
/// Default lag of the `stale-read` replica.
pub const DEFAULT_REPLICA_LAG_MS: u64 = 20;
/// Default share of writes `lost-write` drops: one in this many.
pub const DEFAULT_LOST_WRITE_ONE_IN: u64 = 10;

/// How the store behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryOptions {
    pub stale_read: bool,
    pub lost_write: bool,
    /// Transactions read a snapshot and commit later, checking write-write conflicts only.
    pub snapshot_isolation_txn: bool,
    /// `snapshot-isolation-txn`: how long after its snapshot a transaction commits.
    pub si_window: Duration,
    pub replica_lag: Duration,
    pub lost_write_one_in: u64,
    /// Acquires of a held lock are granted anyway, one in `double_grant_one_in`.
    pub double_grant: bool,
    pub double_grant_one_in: u64,
    /// Broadcast: one append in `reorder_one_in` goes before the log's last message.
    pub reorder_append: bool,
    pub reorder_one_in: u64,
    /// Queue: one claim in `duplicate_delivery_one_in` leaves its job in the queue.
    pub duplicate_delivery: bool,
    pub duplicate_delivery_one_in: u64,
    /// Campaigns sometimes win while another leads, in its epoch.
    pub two_leaders: bool,
    /// Generates sometimes repeat the previous id.
    pub duplicate_id: bool,
    /// Watches leave events out / reorder them; registrations never expire.
    pub drop_event: bool,
    pub reorder_event: bool,
    pub outlive_lease: bool,
    /// Each operation waits up to this long (uniformly), split around the instant it applies.
    pub latency: Duration,
    /// Seeds the store's own random choices (which writes `lost-write` drops).
    pub seed: u64,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions {
            stale_read: false,
            lost_write: false,
            snapshot_isolation_txn: false,
            si_window: Duration::from_millis(DEFAULT_SI_WINDOW_MS),
            replica_lag: Duration::from_millis(DEFAULT_REPLICA_LAG_MS),
            lost_write_one_in: DEFAULT_LOST_WRITE_ONE_IN,
            double_grant: false,
            double_grant_one_in: DEFAULT_DOUBLE_GRANT_ONE_IN,
            reorder_append: false,
            reorder_one_in: DEFAULT_REORDER_ONE_IN,
            duplicate_delivery: false,
            duplicate_delivery_one_in: DEFAULT_DUPLICATE_DELIVERY_ONE_IN,
            two_leaders: false,
            duplicate_id: false,
            drop_event: false,
            reorder_event: false,
            outlive_lease: false,
            latency: Duration::ZERO,
            seed: 0,
        }
    }
}

impl MemoryOptions {
    /// Reads `test.bugs` and `test.target_options`.
    pub fn from_test(test: &Test) -> Result<MemoryOptions, TargetError> {
        let mut options = MemoryOptions {
            seed: test.seed_for("memory-store"),
            ..MemoryOptions::default()
        };
        for bug in &test.bugs {
            match bug.as_str() {
                "stale-read" => options.stale_read = true,
                "lost-write" => options.lost_write = true,
                "snapshot-isolation-txn" => options.snapshot_isolation_txn = true,
                "double-grant" => options.double_grant = true,
                "reorder-append" => options.reorder_append = true,
                "duplicate-delivery" => options.duplicate_delivery = true,
                "two-leaders" => options.two_leaders = true,
                "duplicate-id" => options.duplicate_id = true,
                "drop-event" => options.drop_event = true,
                "reorder-event" => options.reorder_event = true,
                "outlive-lease" => options.outlive_lease = true,
                other => {
                    return Err(TargetError::UnknownBug {
                        target: "memory".into(),
                        bug: other.into(),
                        known: BUGS.join(", "),
                    })
                }
            }
        }
        for (name, value) in &test.target_options {
            let number = || {
                value.as_u64().ok_or_else(|| TargetError::BadOption {
                    target: "memory".into(),
                    option: name.clone(),
                    why: format!("expected a non-negative integer, got {value}"),
                })
            };
            match name.as_str() {
                "latency_ms" => options.latency = Duration::from_millis(number()?),
                "replica_lag_ms" => options.replica_lag = Duration::from_millis(number()?),
                "si_window_ms" => options.si_window = Duration::from_millis(number()?),
                "lost_write_one_in" => {
                    options.lost_write_one_in = number()?.max(1);
                }
                "double_grant_one_in" => {
                    options.double_grant_one_in = number()?.max(1);
                }
                "reorder_one_in" => options.reorder_one_in = number()?.max(1),
                "duplicate_delivery_one_in" => {
                    options.duplicate_delivery_one_in = number()?.max(1);
                }
                // The runner gives every local target the run's node directory; the memory
                // store keeps nothing on disk.
                "data_dir" => {}
                _ => {
                    return Err(TargetError::BadOption {
                        target: "memory".into(),
                        option: name.clone(),
                        why: "unknown option; known: latency_ms, replica_lag_ms, \
                              lost_write_one_in, si_window_ms, double_grant_one_in, \
                              reorder_one_in, duplicate_delivery_one_in, data_dir"
                            .into(),
                    })
                }
            }
        }
        Ok(options)
    }
}

/// A key's value and, for `stale-read`, its lagging replica copy.
#[derive(Debug, Clone)]
struct Versioned<T> {
    value: T,
    replica: T,
    replica_refreshed: Instant,
}

impl<T: Clone> Versioned<T> {
    fn new(initial: T) -> Self {
        Versioned {
            value: initial.clone(),
            replica: initial,
            replica_refreshed: Instant::now(),
        }
    }

    /// The value a read sees: the latest, or with `stale-read` the replica, refreshed only
    /// when it is older than `lag`.
    fn read(&mut self, options: &MemoryOptions) -> T {
        if !options.stale_read {
            return self.value.clone();
        }
        let now = Instant::now();
        if now.duration_since(self.replica_refreshed) >= options.replica_lag {
            self.replica = self.value.clone();
            self.replica_refreshed = now;
        }
        self.replica.clone()
    }
}

/// A transactional key's value and the commit that last wrote it.
#[derive(Debug, Clone)]
struct Cell {
    value: Value,
    written_at: u64,
}

#[derive(Debug)]
struct State {
    up: bool,
    registers: HashMap<String, Versioned<Value>>,
    sets: HashMap<String, Versioned<Vec<Value>>>,
    /// Keys of transactions and bank accounts.
    cells: HashMap<String, Cell>,
    /// Transactions committed so far: the version a snapshot is taken at.
    commits: u64,
    locks: HashMap<String, LockCell>,
    /// Broadcast logs: message ids in log order.
    logs: HashMap<String, Vec<Value>>,
    queues: HashMap<String, QueueCell>,
    elections: HashMap<String, ElectionCell>,
    /// The last id handed out by `generate`.
    last_id: i64,
    watch_log: WatchLog,
    registry: Registry,
    rng: SmallRng,
}

/// A work queue: jobs ready in enqueue order, jobs claimed (by which claimant), jobs done.
#[derive(Debug, Default)]
struct QueueCell {
    ready: std::collections::VecDeque<u64>,
    claimed: HashMap<u64, u64>,
    done: std::collections::HashSet<u64>,
}

/// An election: its last epoch and its leader.
#[derive(Debug, Default)]
struct ElectionCell {
    epoch: i64,
    /// The leader's epoch, name, and when its lease ends.
    leader: Option<(i64, String, Instant)>,
}

/// A lock and the resource it protects.
#[derive(Debug, Default)]
struct LockCell {
    /// The holder's token and when its lease ends.
    holder: Option<(i64, Instant)>,
    /// The last token granted.
    last_token: i64,
    /// Accepted writes, `[token, id]`, in order.
    resource: Vec<Value>,
    /// The highest token the resource accepted.
    highest: i64,
}

impl State {
    fn cell(&self, key: &str) -> Value {
        self.cells
            .get(key)
            .map_or(Value::Null, |cell| cell.value.clone())
    }
}

/// Why the store refused an operation (it certainly did not apply).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the store is not set up")]
    Down,
    #[error("compare-failed")]
    CompareFailed,
    /// `snapshot-isolation-txn`: a key the transaction writes changed after its snapshot.
    #[error("txn-aborted")]
    Aborted,
    #[error("insufficient-funds")]
    InsufficientFunds,
    #[error("not-held")]
    NotHeld,
    #[error("stale-token")]
    StaleToken,
    #[error("not-claimed")]
    NotClaimed,
    #[error("not-leader")]
    NotLeader,
    #[error("bad-request: {0}")]
    BadRequest(String),
}

/// A transaction computed on one state of the store, not yet committed: what it answers, and
/// the final value of every key it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The answer: the micro-operations with reads filled in, or a bank read's balances.
    pub result: Value,
    writes: Vec<(String, Value)>,
    /// The number of commits when it read (its snapshot).
    snapshot: u64,
}

/// Reads and writes of one transaction over a state: reads see the transaction's own writes.
struct Overlay<'a> {
    state: &'a State,
    writes: Vec<(String, Value)>,
}

impl<'a> Overlay<'a> {
    fn new(state: &'a State) -> Self {
        Overlay {
            state,
            writes: Vec::new(),
        }
    }

    fn get(&self, key: &str) -> Value {
        match self.writes.iter().find(|(k, _)| k == key) {
            Some((_, value)) => value.clone(),
            None => self.state.cell(key),
        }
    }

    fn set(&mut self, key: &str, value: Value) {
        match self.writes.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.writes.push((key.to_string(), value)),
        }
    }

    fn prepared(self, result: Value) -> Prepared {
        Prepared {
            result,
            writes: self.writes,
            snapshot: self.state.commits,
        }
    }
}

/// A list-append / rw-register transaction on `state`.
fn prepare_txn(state: &State, ops: &[MicroOp]) -> Result<Prepared, StoreError> {
    let mut overlay = Overlay::new(state);
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        let key = op.key_text();
        let mut done = op.clone();
        match op.kind {
            MopKind::Read => done.value = overlay.get(&key),
            MopKind::Write => overlay.set(&key, op.value.clone()),
            MopKind::Append => {
                let list = match overlay.get(&key) {
                    Value::Null => vec![op.value.clone()],
                    Value::Array(mut items) => {
                        items.push(op.value.clone());
                        items
                    }
                    other => {
                        return Err(StoreError::BadRequest(format!(
                            "append to key {key}, which holds {other}, not a list"
                        )))
                    }
                };
                overlay.set(&key, Value::Array(list));
            }
        }
        results.push(done);
    }
    Ok(overlay.prepared(txn_json(&results)))
}

/// An account's balance as the overlay sees it: never written = its initial balance.
fn balance(overlay: &Overlay<'_>, bank: &Bank, account: u64) -> Result<i64, StoreError> {
    match overlay.get(&account.to_string()) {
        Value::Null => Ok(bank.initial_balance(account)),
        value => value.as_i64().ok_or_else(|| {
            StoreError::BadRequest(format!("account {account} holds {value}, not a balance"))
        }),
    }
}

/// A bank transfer on `state`: refused when it would overdraw.
fn prepare_transfer(state: &State, bank: &Bank, t: &Transfer) -> Result<Prepared, StoreError> {
    let mut overlay = Overlay::new(state);
    let from = balance(&overlay, bank, t.from)?;
    let to = balance(&overlay, bank, t.to)?;
    if from < t.amount {
        return Err(StoreError::InsufficientFunds);
    }
    overlay.set(&t.from.to_string(), Value::from(from - t.amount));
    overlay.set(&t.to.to_string(), Value::from(to + t.amount));
    Ok(overlay.prepared(t.to_json()))
}

/// A read of every balance on `state`.
fn prepare_balances(state: &State, bank: &Bank) -> Result<Prepared, StoreError> {
    let overlay = Overlay::new(state);
    let balances = (0..bank.accounts)
        .map(|account| balance(&overlay, bank, account))
        .collect::<Result<Vec<i64>, _>>()?;
    Ok(overlay.prepared(Bank::balances_json(&balances)))
}

/// What one transactional operation does, before it is prepared on a state.
#[derive(Debug, Clone)]
pub enum TxnRequest {
    Txn(Vec<MicroOp>),
    Transfer(Bank, Transfer),
    Balances(Bank),
}

impl TxnRequest {
    fn prepare(&self, state: &State) -> Result<Prepared, StoreError> {
        match self {
            TxnRequest::Txn(ops) => prepare_txn(state, ops),
            TxnRequest::Transfer(bank, transfer) => prepare_transfer(state, bank, transfer),
            TxnRequest::Balances(bank) => prepare_balances(state, bank),
        }
    }
}

/// The store itself.
#[derive(Debug)]
pub struct MemoryStore {
    options: MemoryOptions,
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new(options: MemoryOptions) -> MemoryStore {
        let rng = SmallRng::seed_from_u64(options.seed);
        MemoryStore {
            options,
            state: Mutex::new(State {
                up: false,
                registers: HashMap::new(),
                sets: HashMap::new(),
                cells: HashMap::new(),
                commits: 0,
                locks: HashMap::new(),
                logs: HashMap::new(),
                queues: HashMap::new(),
                elections: HashMap::new(),
                last_id: 0,
                watch_log: WatchLog::default(),
                registry: Registry::default(),
                rng,
            }),
        }
    }

    pub fn options(&self) -> &MemoryOptions {
        &self.options
    }

    fn up(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        let state = self.state.lock().expect("store lock");
        if state.up {
            Ok(state)
        } else {
            Err(StoreError::Down)
        }
    }

    /// Whether `lost-write` drops this write.
    fn drops(&self, state: &mut State) -> bool {
        self.options.lost_write && state.rng.gen_range(0..self.options.lost_write_one_in) == 0
    }

    pub fn is_up(&self) -> bool {
        self.state.lock().expect("store lock").up
    }

    /// Opens the store (idempotent).
    pub fn start(&self) {
        self.state.lock().expect("store lock").up = true;
    }

    /// Closes the store and forgets its data (idempotent).
    pub fn stop(&self) {
        let mut state = self.state.lock().expect("store lock");
        state.up = false;
        state.registers.clear();
        state.sets.clear();
        state.cells.clear();
        state.commits = 0;
        state.locks.clear();
        state.logs.clear();
        state.queues.clear();
        state.elections.clear();
        state.last_id = 0;
        state.watch_log = WatchLog::default();
        state.registry = Registry::default();
    }

    /// Appends message `id` to `log` (with `lost-write`, sometimes acknowledged and dropped;
    /// with `reorder-append`, sometimes put before the last message).
    pub fn log_append(&self, log: &str, id: Value) -> Result<(), StoreError> {
        let mut state = self.up()?;
        if self.drops(&mut state) {
            return Ok(());
        }
        let reorder =
            self.options.reorder_append && state.rng.gen_range(0..self.options.reorder_one_in) == 0;
        let entries = state.logs.entry(log.to_string()).or_default();
        match entries.len() {
            n if reorder && n > 0 => entries.insert(n - 1, id),
            _ => entries.push(id),
        }
        Ok(())
    }

    /// The whole log.
    pub fn log_read(&self, log: &str) -> Result<Value, StoreError> {
        let state = self.up()?;
        Ok(Value::Array(
            state.logs.get(log).cloned().unwrap_or_default(),
        ))
    }

    /// Enqueues `job` (with `lost-write`, sometimes acknowledged and dropped).
    pub fn queue_enqueue(&self, queue: &str, job: u64) -> Result<(), StoreError> {
        let mut state = self.up()?;
        if self.drops(&mut state) {
            return Ok(());
        }
        state
            .queues
            .entry(queue.to_string())
            .or_default()
            .ready
            .push_back(job);
        Ok(())
    }

    /// Claims the oldest ready job for `claimant` (with `duplicate-delivery`, sometimes
    /// leaving it ready too); `None` when no job is ready.
    pub fn queue_claim(&self, queue: &str, claimant: u64) -> Result<Option<u64>, StoreError> {
        let mut state = self.up()?;
        let duplicate = self.options.duplicate_delivery
            && state
                .rng
                .gen_range(0..self.options.duplicate_delivery_one_in)
                == 0;
        let cell = state.queues.entry(queue.to_string()).or_default();
        let job = if duplicate {
            cell.ready.front().copied()
        } else {
            cell.ready.pop_front()
        };
        if let Some(job) = job {
            cell.claimed.insert(job, claimant);
        }
        Ok(job)
    }

    /// Completes `job` if `claimant`'s claim on it is in force.
    pub fn queue_complete(&self, queue: &str, job: u64, claimant: u64) -> Result<(), StoreError> {
        let mut state = self.up()?;
        let cell = state.queues.entry(queue.to_string()).or_default();
        if cell.claimed.get(&job) != Some(&claimant) {
            return Err(StoreError::NotClaimed);
        }
        cell.claimed.remove(&job);
        cell.done.insert(job);
        Ok(())
    }

    /// Grants `lock` for `lease` if it is free or its lease has ended (or, with
    /// `double-grant`, sometimes anyway), with the next token.
    pub fn lock_acquire(&self, lock: &str, lease: Duration) -> Result<Grant, StoreError> {
        let mut state = self.up()?;
        let now = Instant::now();
        let double = self.options.double_grant
            && state.rng.gen_range(0..self.options.double_grant_one_in) == 0;
        let cell = state.locks.entry(lock.to_string()).or_default();
        if cell.holder.is_some_and(|(_, end)| end > now) && !double {
            return Ok(Grant::Held);
        }
        cell.last_token += 1;
        cell.holder = Some((cell.last_token, now + lease));
        Ok(Grant::Granted(cell.last_token))
    }

    /// Releases `lock` if `token` still holds it (its lease not ended); else `NotHeld`.
    pub fn lock_release(&self, lock: &str, token: i64) -> Result<(), StoreError> {
        let mut state = self.up()?;
        let now = Instant::now();
        let cell = state.locks.entry(lock.to_string()).or_default();
        match cell.holder {
            Some((holder, end)) if holder == token && end > now => {
                cell.holder = None;
                Ok(())
            }
            _ => Err(StoreError::NotHeld),
        }
    }

    /// Appends `[token, id]` to the lock's resource; with `fencing`, only if no higher token
    /// was accepted before (else `StaleToken`).
    pub fn resource_write(
        &self,
        lock: &str,
        token: i64,
        id: &Value,
        fencing: bool,
    ) -> Result<(), StoreError> {
        let mut state = self.up()?;
        let cell = state.locks.entry(lock.to_string()).or_default();
        if fencing && token < cell.highest {
            return Err(StoreError::StaleToken);
        }
        cell.highest = cell.highest.max(token);
        cell.resource.push(serde_json::json!([token, id]));
        Ok(())
    }

    /// The lock's resource: accepted `[token, id]` writes in order.
    pub fn resource_read(&self, lock: &str) -> Result<Value, StoreError> {
        let state = self.up()?;
        Ok(Value::Array(
            state
                .locks
                .get(lock)
                .map(|cell| cell.resource.clone())
                .unwrap_or_default(),
        ))
    }

    /// Makes `me` the leader of `election` for the next epoch if no lease is in force (or,
    /// with `two-leaders`, sometimes anyway, in the current leader's epoch).
    pub fn election_campaign(
        &self,
        election: &str,
        me: &str,
        lease: Duration,
    ) -> Result<Won, StoreError> {
        let mut state = self.up()?;
        let now = Instant::now();
        let twice = self.options.two_leaders && state.rng.gen_range(0..TWO_LEADERS_ONE_IN) == 0;
        let cell = state.elections.entry(election.to_string()).or_default();
        let epoch = match &cell.leader {
            Some((epoch, _, end)) if *end > now => {
                if !twice {
                    return Ok(Won::NotElected);
                }
                *epoch
            }
            _ => {
                cell.epoch += 1;
                cell.epoch
            }
        };
        cell.leader = Some((epoch, me.to_string(), now + lease));
        Ok(Won::Elected(epoch))
    }

    /// The leader of `election` whose lease is in force: `{"epoch", "leader"}` or null.
    pub fn election_leader(&self, election: &str) -> Result<Value, StoreError> {
        let state = self.up()?;
        let now = Instant::now();
        Ok(
            match state
                .elections
                .get(election)
                .and_then(|c| c.leader.as_ref())
            {
                Some((epoch, name, end)) if *end > now => {
                    faultline_core::election::observation(*epoch, name)
                }
                _ => Value::Null,
            },
        )
    }

    /// `me` gives up leading `epoch` of `election`; `NotLeader` when it no longer does.
    pub fn election_resign(&self, election: &str, me: &str, epoch: i64) -> Result<(), StoreError> {
        let mut state = self.up()?;
        let now = Instant::now();
        let cell = state.elections.entry(election.to_string()).or_default();
        match &cell.leader {
            Some((e, name, end)) if *e == epoch && name == me && *end > now => {
                cell.leader = None;
                Ok(())
            }
            _ => Err(StoreError::NotLeader),
        }
    }

    /// The next id (with `duplicate-id`, sometimes the previous one again).
    pub fn generate_id(&self) -> Result<i64, StoreError> {
        let mut state = self.up()?;
        let repeat = self.options.duplicate_id
            && state.last_id > 0
            && state.rng.gen_range(0..DUPLICATE_ID_ONE_IN) == 0;
        if !repeat {
            state.last_id += 1;
        }
        Ok(state.last_id)
    }

    /// The register's value; null when never written.
    pub fn read(&self, key: &str) -> Result<Value, StoreError> {
        let mut state = self.up()?;
        Ok(match state.registers.get_mut(key) {
            Some(register) => register.read(&self.options),
            None => Value::Null,
        })
    }

    pub fn write(&self, key: &str, value: Value) -> Result<(), StoreError> {
        let mut state = self.up()?;
        if self.drops(&mut state) {
            return Ok(());
        }
        state
            .registers
            .entry(key.to_string())
            .or_insert_with(|| Versioned::new(Value::Null))
            .value = value;
        Ok(())
    }

    /// Sets the register to `new` if it holds `expected`; else `CompareFailed` (nothing changed).
    pub fn cas(&self, key: &str, expected: &Value, new: Value) -> Result<(), StoreError> {
        let mut state = self.up()?;
        let register = state
            .registers
            .entry(key.to_string())
            .or_insert_with(|| Versioned::new(Value::Null));
        if register.value != *expected {
            return Err(StoreError::CompareFailed);
        }
        register.value = new;
        Ok(())
    }

    pub fn add(&self, key: &str, element: Value) -> Result<(), StoreError> {
        let mut state = self.up()?;
        if self.drops(&mut state) {
            return Ok(());
        }
        state
            .sets
            .entry(key.to_string())
            .or_insert_with(|| Versioned::new(Vec::new()))
            .value
            .push(element);
        Ok(())
    }

    /// Performs a transactional request atomically: strict serializable.
    pub fn txn(&self, request: &TxnRequest) -> Result<Value, StoreError> {
        let mut state = self.up()?;
        let prepared = request.prepare(&state)?;
        Self::commit(&mut state, &prepared);
        Ok(prepared.result)
    }

    /// `snapshot-isolation-txn`, first half: the request computed on the current state (its
    /// snapshot), nothing written yet.
    pub fn txn_read_phase(&self, request: &TxnRequest) -> Result<Prepared, StoreError> {
        let state = self.up()?;
        request.prepare(&state)
    }

    /// `snapshot-isolation-txn`, second half: commits what the read phase computed unless a
    /// key it writes was written after its snapshot (first committer wins). Keys it only read
    /// are not checked: that is the bug (write skew).
    pub fn txn_commit(&self, prepared: Prepared) -> Result<Value, StoreError> {
        let mut state = self.up()?;
        let conflict = prepared.writes.iter().any(|(key, _)| {
            state
                .cells
                .get(key)
                .is_some_and(|cell| cell.written_at > prepared.snapshot)
        });
        if conflict {
            return Err(StoreError::Aborted);
        }
        Self::commit(&mut state, &prepared);
        Ok(prepared.result)
    }

    fn commit(state: &mut State, prepared: &Prepared) {
        if prepared.writes.is_empty() {
            return;
        }
        state.commits += 1;
        let written_at = state.commits;
        for (key, value) in &prepared.writes {
            state.cells.insert(
                key.clone(),
                Cell {
                    value: value.clone(),
                    written_at,
                },
            );
        }
    }

    /// The set's elements in the order they were added; empty when never added to.
    pub fn read_set(&self, key: &str) -> Result<Vec<Value>, StoreError> {
        let mut state = self.up()?;
        Ok(match state.sets.get_mut(key) {
            Some(set) => set.read(&self.options),
            None => Vec::new(),
        })
    }
}

/// Which operations a client speaks: the register's, the set's, transactions (list-append,
/// rw-register) or the bank's (`read` means what the mode says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Register,
    Set,
    Txn,
    Bank(Bank),
    Lock(LockSpec),
    /// Total order broadcast (see [`faultline_core::broadcast`]).
    Broadcast,
    /// Work queues (see [`faultline_core::queue`]).
    Queue,
    Election(ElectionSpec),
    UniqueIds,
    Watch(WatchSpec),
    Ephemeral(EphemeralSpec),
}

/// The memory store as an election service.
struct MemoryElections<'a>(&'a MemoryStore);

impl ElectionService for MemoryElections<'_> {
    fn campaign<'a>(
        &'a mut self,
        election: &'a str,
        me: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Won, Completion>> {
        Box::pin(async move {
            self.0
                .election_campaign(election, me, lease)
                .map_err(|e| completion(Err(e)))
        })
    }

    fn leader<'a>(&'a mut self, election: &'a str) -> BoxFuture<'a, Completion> {
        Box::pin(async move { completion(self.0.election_leader(election)) })
    }

    fn resign<'a>(
        &'a mut self,
        election: &'a str,
        me: &'a str,
        epoch: i64,
    ) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            completion(
                self.0
                    .election_resign(election, me, epoch)
                    .map(|()| Value::Null),
            )
        })
    }
}

/// Every memory client opened gets its own claimant id for queue claims.
static NEXT_CLAIMANT: AtomicU64 = AtomicU64::new(1);

/// The memory store as a lock service.
struct MemoryLocks<'a>(&'a MemoryStore);

impl LockService for MemoryLocks<'_> {
    fn acquire<'a>(
        &'a mut self,
        lock: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Grant, Completion>> {
        Box::pin(async move {
            self.0
                .lock_acquire(lock, lease)
                .map_err(|e| completion(Err(e)))
        })
    }

    fn release<'a>(&'a mut self, lock: &'a str, token: i64) -> BoxFuture<'a, Completion> {
        Box::pin(async move { completion(self.0.lock_release(lock, token).map(|()| Value::Null)) })
    }

    fn write<'a>(
        &'a mut self,
        lock: &'a str,
        token: i64,
        id: &'a Value,
        fencing: bool,
    ) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            completion(
                self.0
                    .resource_write(lock, token, id, fencing)
                    .map(|()| id.clone()),
            )
        })
    }

    fn read<'a>(&'a mut self, lock: &'a str) -> BoxFuture<'a, Completion> {
        Box::pin(async move { completion(self.0.resource_read(lock)) })
    }
}

/// The memory target's db: one node, `n1`; setup opens the store, teardown closes and empties
/// it. Both idempotent.
#[derive(Debug, Clone)]
pub struct MemoryDb {
    pub store: Arc<MemoryStore>,
}

impl Db for MemoryDb {
    fn setup<'a>(
        &'a self,
        _test: &'a Test,
        _node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.store.start();
            Ok(())
        })
    }

    fn teardown<'a>(
        &'a self,
        _test: &'a Test,
        _node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.store.stop();
            Ok(())
        })
    }
}

/// What a store outcome means: every refusal is definite (the store checked before changing
/// anything), so it is a `fail`.
fn completion(outcome: Result<Value, StoreError>) -> Completion {
    match outcome {
        Ok(value) => Completion::Ok(value),
        Err(StoreError::Down) => Completion::fail("unavailable"),
        Err(e) => Completion::fail(e.to_string()),
    }
}

/// A client of the memory store.
#[derive(Debug)]
pub struct MemoryClient {
    store: Arc<MemoryStore>,
    mode: Mode,
    /// The lock workloads: this client's hold.
    holder: Holder,
    /// The queue workload: whose claims this client's are.
    claimant: u64,
    /// The election workload: the epoch this client leads.
    candidate: Candidate,
    /// The watch workload: where this client's watch continues (`None`: start over).
    watch_next: Option<i64>,
    /// The ephemeral workload: this client's registration.
    registration: Option<String>,
    rng: SmallRng,
    /// Clients opened from this one (as a template).
    opened: AtomicU64,
}

impl MemoryClient {
    pub fn new(store: Arc<MemoryStore>, mode: Mode, seed: u64) -> MemoryClient {
        MemoryClient {
            store,
            mode,
            holder: Holder::default(),
            claimant: NEXT_CLAIMANT.fetch_add(1, Ordering::Relaxed),
            candidate: Candidate::default(),
            watch_next: None,
            registration: None,
            rng: SmallRng::seed_from_u64(seed),
            opened: AtomicU64::new(0),
        }
    }

    /// Applies one operation, at once.
    fn apply(&self, op: &Invocation) -> Completion {
        let key = op.key.as_ref().map_or_else(String::new, Value::to_string);
        let store = &self.store;
        let outcome = match (self.mode, op.f.as_str()) {
            (Mode::Register, "read") => store.read(&key),
            (Mode::Register, "write") => store
                .write(&key, op.value.clone())
                .map(|()| op.value.clone()),
            (Mode::Register, "cas") => match op.value.as_array().map(Vec::as_slice) {
                Some([expected, new]) => store
                    .cas(&key, expected, new.clone())
                    .map(|()| op.value.clone()),
                _ => return Completion::fail("bad-request: cas takes [expected, new]"),
            },
            (Mode::Set, "add") => store.add(&key, op.value.clone()).map(|()| op.value.clone()),
            (Mode::Set, "read") => store.read_set(&key).map(Value::Array),
            (Mode::Broadcast, broadcast::APPEND) => match broadcast::message_id(&op.value) {
                Ok(_) => store
                    .log_append(&broadcast::log_name(op.key.as_ref()), op.value.clone())
                    .map(|()| op.value.clone()),
                Err(why) => return Completion::fail(format!("bad-request: {why}")),
            },
            (Mode::Broadcast, broadcast::READ) => {
                store.log_read(&broadcast::log_name(op.key.as_ref()))
            }
            (Mode::Queue, queue::ENQUEUE) => match queue::job_id(&op.value) {
                Ok(job) => store
                    .queue_enqueue(&queue::queue_name(op.key.as_ref()), job)
                    .map(|()| op.value.clone()),
                Err(why) => return Completion::fail(format!("bad-request: {why}")),
            },
            (Mode::Queue, queue::CLAIM) => store
                .queue_claim(&queue::queue_name(op.key.as_ref()), self.claimant)
                .map(|job| job.map_or(Value::Null, |j| json!(j))),
            (Mode::Queue, queue::COMPLETE) => match queue::job_id(&op.value) {
                Ok(job) => store
                    .queue_complete(&queue::queue_name(op.key.as_ref()), job, self.claimant)
                    .map(|()| op.value.clone()),
                Err(why) => return Completion::fail(format!("bad-request: {why}")),
            },
            (mode, f) => return Completion::fail(format!("unsupported: {f} in {mode:?} mode")),
        };
        completion(outcome)
    }

    /// A `watch` workload operation: a write commits at once; a watch starts over with a read
    /// when it has nowhere to continue from, waits its duration, then takes every change since.
    async fn apply_watch(&mut self, op: &Invocation) -> Completion {
        let store = &self.store;
        match op.f.as_str() {
            "write" => {
                let key = key_name(op.key.as_ref());
                completion(store.up().map(|mut state| {
                    let revision = state.watch_log.write(&key, op.value.clone());
                    json!({"value": op.value, "revision": revision})
                }))
            }
            "watch" => {
                let (keys, duration_ms) = match watch_request(&op.value) {
                    Ok(request) => request,
                    Err(why) => return Completion::fail(format!("bad-request: {why}")),
                };
                let mut events = Vec::new();
                let from = match self.watch_next {
                    Some(next) => next,
                    None => match store.up() {
                        Ok(state) => {
                            let (read, from) = state.watch_log.read(&keys);
                            events.extend(read);
                            from
                        }
                        Err(e) => return completion(Err(e)),
                    },
                };
                tokio::time::sleep(Duration::from_millis(duration_ms)).await;
                let told = match store.up() {
                    Ok(mut state) => {
                        let state = &mut *state;
                        state.watch_log.since(
                            &keys,
                            from,
                            store.options.drop_event,
                            store.options.reorder_event,
                            &mut state.rng,
                        )
                    }
                    // Whatever was read is lost with the store: start over next time.
                    Err(e) => {
                        self.watch_next = None;
                        return completion(Err(e));
                    }
                };
                events.extend(told.events);
                self.watch_next = Some(told.next);
                let events: Vec<Value> = events
                    .into_iter()
                    .map(|(k, v, r)| json!([k, v, r]))
                    .collect();
                Completion::Ok(json!({"events": events, "from": from, "next": told.next}))
            }
            f => Completion::fail(format!("unsupported: {f} in the watch workload")),
        }
    }

    /// An `ephemeral` workload operation on the store's registry.
    async fn apply_ephemeral(&mut self, op: &Invocation) -> Completion {
        let outlive = self.store.options.outlive_lease;
        let name = key_name(op.key.as_ref());
        let registry = |f: &mut dyn FnMut(&mut Registry) -> Completion| match self.store.up() {
            Ok(mut state) => f(&mut state.registry),
            Err(e) => completion(Err(e)),
        };
        match op.f.as_str() {
            "register" => {
                if self.registration.is_some() {
                    return Completion::fail("already-registered");
                }
                let Some(ttl_ms) = op.value.get("ttl_ms").and_then(Value::as_u64) else {
                    return Completion::fail("bad-request: register takes {\"ttl_ms\": T}");
                };
                let ttl = Duration::from_millis(ttl_ms);
                let done = registry(&mut |r| {
                    if r.register(&name, ttl, Instant::now(), outlive) {
                        Completion::Ok(json!({ "ttl_ms": ttl_ms }))
                    } else {
                        Completion::fail("name-taken")
                    }
                });
                if matches!(done, Completion::Ok(_)) {
                    self.registration = Some(name);
                }
                done
            }
            "stall" => {
                let ms = match stall_request(&op.value) {
                    Ok(ms) => ms,
                    Err(why) => return Completion::fail(format!("bad-request: {why}")),
                };
                if self.registration.as_deref() != Some(name.as_str()) {
                    return Completion::fail("not-registered");
                }
                let stalled = registry(&mut |r| {
                    if r.stall(&name, Instant::now(), outlive) {
                        Completion::Ok(Value::Null)
                    } else {
                        Completion::fail("not-registered")
                    }
                });
                if !matches!(stalled, Completion::Ok(_)) {
                    self.registration = None;
                    return stalled;
                }
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let resumed = registry(&mut |r| {
                    let alive = r.resume(&name, Instant::now(), outlive);
                    Completion::Ok(json!({"quiet_after_ms": 0, "alive": alive}))
                });
                if resumed != Completion::Ok(json!({"quiet_after_ms": 0, "alive": true})) {
                    self.registration = None;
                }
                resumed
            }
            "deregister" => {
                if self.registration.take().as_deref() != Some(name.as_str()) {
                    return Completion::fail("not-registered");
                }
                registry(&mut |r| {
                    if r.deregister(&name, Instant::now(), outlive) {
                        Completion::Ok(Value::Null)
                    } else {
                        Completion::fail("not-registered")
                    }
                })
            }
            "list" => registry(&mut |r| Completion::Ok(r.list(Instant::now(), outlive))),
            f => Completion::fail(format!("unsupported: {f} in the ephemeral workload")),
        }
    }

    /// The transactional request an operation asks for; `Err` is a definite `fail` (nothing
    /// was done).
    fn txn_request(&self, op: &Invocation) -> Result<TxnRequest, Completion> {
        let bad = |why: String| Completion::fail(format!("bad-request: {why}"));
        match (self.mode, op.f.as_str()) {
            (Mode::Txn, "txn") => parse_txn(&op.value).map(TxnRequest::Txn).map_err(bad),
            (Mode::Bank(bank), "transfer") => Transfer::parse(&op.value, &bank)
                .map(|t| TxnRequest::Transfer(bank, t))
                .map_err(bad),
            (Mode::Bank(bank), "read") => Ok(TxnRequest::Balances(bank)),
            (mode, f) => Err(Completion::fail(format!(
                "unsupported: {f} in {mode:?} mode"
            ))),
        }
    }

    /// Performs a transactional operation: at once, or with `snapshot-isolation-txn` as a read
    /// phase and, `si_window` later, a commit.
    async fn apply_txn(&self, op: &Invocation) -> Completion {
        let request = match self.txn_request(op) {
            Ok(request) => request,
            Err(completion) => return completion,
        };
        if !self.store.options.snapshot_isolation_txn {
            return completion(self.store.txn(&request));
        }
        let prepared = match self.store.txn_read_phase(&request) {
            Ok(prepared) => prepared,
            Err(e) => return completion(Err(e)),
        };
        tokio::time::sleep(self.store.options.si_window).await;
        completion(self.store.txn_commit(prepared))
    }
}

impl Client for MemoryClient {
    fn open<'a>(
        &'a self,
        test: &'a Test,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async move {
            if !self.store.is_up() {
                return Err(HarnessError::Client {
                    node: node.to_string(),
                    why: "the memory store is not set up".into(),
                });
            }
            // Each opened client draws its latencies from its own stream: the n-th client
            // opened from this template gets the n-th derived seed.
            let n = self.opened.fetch_add(1, Ordering::Relaxed);
            let seed = test.seed_for(&format!("memory-client-{n}"));
            Ok(Box::new(MemoryClient::new(self.store.clone(), self.mode, seed)) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let latency = self.store.options.latency;
            let (before, after) = if latency.is_zero() {
                (Duration::ZERO, Duration::ZERO)
            } else {
                let total = self.rng.gen_range(Duration::ZERO..=latency);
                let before = self.rng.gen_range(Duration::ZERO..=total);
                (before, total - before)
            };
            if !before.is_zero() {
                tokio::time::sleep(before).await;
            }
            let completion = match self.mode {
                Mode::Register | Mode::Set | Mode::Broadcast | Mode::Queue => self.apply(op),
                Mode::Txn | Mode::Bank(_) => self.apply_txn(op).await,
                Mode::Lock(spec) => {
                    let mut service = MemoryLocks(&self.store);
                    self.holder.invoke(&mut service, &spec, op).await
                }
                Mode::Election(spec) => {
                    let mut service = MemoryElections(&self.store);
                    self.candidate.invoke(&mut service, &spec, op).await
                }
                Mode::UniqueIds if op.f == faultline_core::unique_ids::GENERATE => {
                    completion(self.store.generate_id().map(Value::from))
                }
                Mode::UniqueIds => {
                    Completion::fail(format!("unsupported: {} in the unique-ids workload", op.f))
                }
                Mode::Watch(_) => self.apply_watch(op).await,
                Mode::Ephemeral(_) => self.apply_ephemeral(op).await,
            };
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            completion
        })
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async {
            // A closed session's registration goes with it.
            if let Some(name) = self.registration.take() {
                if let Ok(mut state) = self.store.up() {
                    state.registry.deregister(
                        &name,
                        Instant::now(),
                        self.store.options.outlive_lease,
                    );
                }
            }
            Ok(())
        })
    }
}

/// The memory target for `test`: its store, db and a client for the test's workload.
pub fn target(test: &Test) -> Result<Target, TargetError> {
    let options = MemoryOptions::from_test(test)?;
    let mode = match test.workload.as_str() {
        "register" => Mode::Register,
        "set" => Mode::Set,
        "list-append" | "rw-register" => Mode::Txn,
        "broadcast" | "log" => Mode::Broadcast,
        "queue" => Mode::Queue,
        "lock" | "fenced-lock" => {
            Mode::Lock(
                LockSpec::from_test(test).map_err(|why| TargetError::BadOption {
                    target: "memory".into(),
                    option: "lock".into(),
                    why,
                })?,
            )
        }
        "watch" => {
            Mode::Watch(
                WatchSpec::from_test(test).map_err(|why| TargetError::BadOption {
                    target: "memory".into(),
                    option: "watch".into(),
                    why,
                })?,
            )
        }
        "ephemeral" => Mode::Ephemeral(EphemeralSpec::from_test(test).map_err(|why| {
            TargetError::BadOption {
                target: "memory".into(),
                option: "ephemeral".into(),
                why,
            }
        })?),
        "bank" => Mode::Bank(Bank::from_test(test).map_err(|why| TargetError::BadOption {
            target: "memory".into(),
            option: "bank".into(),
            why,
        })?),
        "election" => {
            let spec = ElectionSpec::from_test(test).map_err(|why| TargetError::BadOption {
                target: "memory".into(),
                option: "election".into(),
                why,
            })?;
            if spec.candidates != Candidates::Clients {
                return Err(TargetError::BadOption {
                    target: "memory".into(),
                    option: "candidates".into(),
                    why: "the memory store has no nodes that elect among themselves; its \
                          candidates are the clients"
                        .into(),
                });
            }
            Mode::Election(spec)
        }
        "unique-ids" => Mode::UniqueIds,
        other => {
            return Err(TargetError::UnsupportedWorkload {
                target: "memory".into(),
                workload: other.into(),
            })
        }
    };
    // A bug the workload's operations never meet would pass silently: refuse it.
    let transactional = TXN_WORKLOADS.contains(&test.workload.as_str());
    let locking = matches!(mode, Mode::Lock(_));
    let watching = matches!(mode, Mode::Watch(_));
    let registering = matches!(mode, Mode::Ephemeral(_));
    for bug in &test.bugs {
        let applies = match bug.as_str() {
            "double-grant" => locking,
            "two-leaders" => matches!(mode, Mode::Election(_)),
            "duplicate-id" => mode == Mode::UniqueIds,
            "snapshot-isolation-txn" => transactional,
            "reorder-append" => mode == Mode::Broadcast,
            "duplicate-delivery" => mode == Mode::Queue,
            "lost-write" => matches!(
                mode,
                Mode::Register | Mode::Set | Mode::Broadcast | Mode::Queue
            ),
            "drop-event" | "reorder-event" => watching,
            "outlive-lease" => registering,
            _ => matches!(mode, Mode::Register | Mode::Set),
        };
        if !applies {
            return Err(TargetError::BugNotApplicable {
                target: "memory".into(),
                bug: bug.clone(),
                workload: test.workload.clone(),
            });
        }
    }
    let store = Arc::new(MemoryStore::new(options));
    Ok(Target {
        db: Arc::new(MemoryDb {
            store: store.clone(),
        }),
        client: Arc::new(MemoryClient::new(
            store,
            mode,
            test.seed_for("memory-client"),
        )),
        nodes: vec!["n1".to_string()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store(options: MemoryOptions) -> MemoryStore {
        let store = MemoryStore::new(options);
        store.start();
        store
    }

    #[test]
    fn registers_read_write_and_cas() {
        let s = store(MemoryOptions::default());
        assert_eq!(s.read("x"), Ok(Value::Null));
        s.write("x", json!(1)).unwrap();
        assert_eq!(s.read("x"), Ok(json!(1)));
        assert_eq!(
            s.cas("x", &json!(2), json!(3)),
            Err(StoreError::CompareFailed)
        );
        assert_eq!(s.cas("x", &json!(1), json!(3)), Ok(()));
        assert_eq!(s.read("x"), Ok(json!(3)));
        assert_eq!(s.read("y"), Ok(Value::Null), "keys are independent");
    }

    #[test]
    fn sets_keep_every_added_element() {
        let s = store(MemoryOptions::default());
        s.add("k", json!(1)).unwrap();
        s.add("k", json!(2)).unwrap();
        assert_eq!(s.read_set("k"), Ok(vec![json!(1), json!(2)]));
        assert_eq!(s.read_set("other"), Ok(vec![]));
    }

    #[test]
    fn setup_and_teardown_are_idempotent_and_a_down_store_refuses() {
        let s = MemoryStore::new(MemoryOptions::default());
        s.stop();
        assert_eq!(s.read("x"), Err(StoreError::Down));
        s.start();
        s.start();
        s.write("x", json!(1)).unwrap();
        s.stop();
        s.stop();
        s.start();
        assert_eq!(s.read("x"), Ok(Value::Null), "teardown forgets the data");
    }

    #[test]
    fn stale_read_serves_a_lagging_replica() {
        let s = store(MemoryOptions {
            stale_read: true,
            replica_lag: Duration::from_secs(3600),
            ..MemoryOptions::default()
        });
        s.write("x", json!(1)).unwrap();
        assert_eq!(
            s.read("x"),
            Ok(Value::Null),
            "the replica has not caught up"
        );
        let s = store(MemoryOptions {
            stale_read: true,
            replica_lag: Duration::ZERO,
            ..MemoryOptions::default()
        });
        s.write("x", json!(1)).unwrap();
        assert_eq!(s.read("x"), Ok(json!(1)), "no lag, no stale read");
    }

    #[test]
    fn lost_write_drops_some_acknowledged_writes() {
        let s = store(MemoryOptions {
            lost_write: true,
            lost_write_one_in: 2,
            ..MemoryOptions::default()
        });
        for e in 0..100 {
            s.add("k", json!(e)).unwrap();
        }
        let kept = s.read_set("k").unwrap().len();
        assert!((20..80).contains(&kept), "{kept}");
    }

    #[test]
    fn options_come_from_the_test_and_unknown_bugs_are_refused() {
        let mut test = Test::example("memory", "register", 3);
        test.bugs = vec!["stale-read".into()];
        test.target_options.insert("latency_ms".into(), json!(2));
        let options = MemoryOptions::from_test(&test).unwrap();
        assert!(options.stale_read && !options.lost_write);
        assert_eq!(options.latency, Duration::from_millis(2));
        test.bugs = vec!["no-such-bug".into()];
        let err = MemoryOptions::from_test(&test).unwrap_err().to_string();
        assert!(err.contains("stale-read, lost-write"), "{err}");
    }

    fn txn(value: Value) -> TxnRequest {
        TxnRequest::Txn(parse_txn(&value).unwrap())
    }

    #[test]
    fn transactions_apply_atomically_and_read_their_own_writes() {
        let s = store(MemoryOptions::default());
        let result = s
            .txn(&txn(json!([
                ["r", 1, null],
                ["append", 1, 5],
                ["r", 1, null],
                ["w", 2, 7]
            ])))
            .unwrap();
        assert_eq!(
            result,
            json!([["r", 1, null], ["append", 1, 5], ["r", 1, [5]], ["w", 2, 7]])
        );
        let result = s
            .txn(&txn(json!([
                ["append", 1, 6],
                ["r", 1, null],
                ["r", 2, null]
            ])))
            .unwrap();
        assert_eq!(
            result,
            json!([["append", 1, 6], ["r", 1, [5, 6]], ["r", 2, 7]])
        );
        // Appending to a register is refused as a whole: nothing of it is written.
        assert!(matches!(
            s.txn(&txn(json!([["append", 3, 1], ["append", 2, 1]]))),
            Err(StoreError::BadRequest(_))
        ));
        assert_eq!(
            s.txn(&txn(json!([["r", 3, null]]))).unwrap(),
            json!([["r", 3, null]])
        );
    }

    #[test]
    fn snapshot_isolation_commits_write_skew_but_not_lost_updates() {
        let s = store(MemoryOptions::default());
        // Write skew: both read x and y from one snapshot, each writes one of them.
        let t1 = s
            .txn_read_phase(&txn(json!([
                ["r", "x", null],
                ["r", "y", null],
                ["w", "x", 1]
            ])))
            .unwrap();
        let t2 = s
            .txn_read_phase(&txn(json!([
                ["r", "x", null],
                ["r", "y", null],
                ["w", "y", 1]
            ])))
            .unwrap();
        assert!(s.txn_commit(t1).is_ok());
        assert!(s.txn_commit(t2).is_ok(), "disjoint writes both commit");
        // Two writers of one key: the first committer wins.
        let t3 = s.txn_read_phase(&txn(json!([["w", "x", 2]]))).unwrap();
        let t4 = s.txn_read_phase(&txn(json!([["w", "x", 3]]))).unwrap();
        assert!(s.txn_commit(t3).is_ok());
        assert_eq!(s.txn_commit(t4), Err(StoreError::Aborted));
        assert_eq!(
            s.txn(&txn(json!([["r", "x", null], ["r", "y", null]])))
                .unwrap(),
            json!([["r", "x", 2], ["r", "y", 1]])
        );
    }

    #[test]
    fn the_bank_starts_even_refuses_overdrafts_and_keeps_its_total() {
        let s = store(MemoryOptions::default());
        let bank = Bank {
            accounts: 3,
            total: 30,
        };
        assert_eq!(
            s.txn(&TxnRequest::Balances(bank)).unwrap(),
            json!({"0": 10, "1": 10, "2": 10})
        );
        let transfer = |from, to, amount| TxnRequest::Transfer(bank, Transfer { from, to, amount });
        assert!(s.txn(&transfer(0, 1, 4)).is_ok());
        assert_eq!(
            s.txn(&transfer(0, 2, 7)),
            Err(StoreError::InsufficientFunds)
        );
        assert!(s.txn(&transfer(0, 2, 6)).is_ok());
        assert_eq!(
            s.txn(&TxnRequest::Balances(bank)).unwrap(),
            json!({"0": 0, "1": 14, "2": 16})
        );
    }

    #[test]
    fn logs_keep_append_order_and_reorder_append_breaks_it() {
        let s = store(MemoryOptions::default());
        for id in 0..5 {
            s.log_append("log", json!(id)).unwrap();
        }
        assert_eq!(s.log_read("log"), Ok(json!([0, 1, 2, 3, 4])));
        let s = store(MemoryOptions {
            reorder_append: true,
            reorder_one_in: 1,
            ..MemoryOptions::default()
        });
        for id in 0..3 {
            s.log_append("log", json!(id)).unwrap();
        }
        // Each append after the first goes before the last message.
        assert_eq!(s.log_read("log"), Ok(json!([1, 2, 0])));
    }

    #[test]
    fn a_claim_takes_the_oldest_job_and_only_its_claimant_completes_it() {
        let s = store(MemoryOptions::default());
        s.queue_enqueue("q", 1).unwrap();
        s.queue_enqueue("q", 2).unwrap();
        assert_eq!(s.queue_claim("q", 7), Ok(Some(1)));
        assert_eq!(s.queue_complete("q", 1, 8), Err(StoreError::NotClaimed));
        assert_eq!(s.queue_complete("q", 1, 7), Ok(()));
        assert_eq!(s.queue_complete("q", 1, 7), Err(StoreError::NotClaimed));
        assert_eq!(s.queue_claim("q", 8), Ok(Some(2)));
        assert_eq!(s.queue_claim("q", 8), Ok(None));
        let s = store(MemoryOptions {
            duplicate_delivery: true,
            duplicate_delivery_one_in: 1,
            ..MemoryOptions::default()
        });
        s.queue_enqueue("q", 1).unwrap();
        assert_eq!(s.queue_claim("q", 7), Ok(Some(1)));
        assert_eq!(s.queue_claim("q", 8), Ok(Some(1)), "delivered twice");
        assert_eq!(s.queue_complete("q", 1, 7), Err(StoreError::NotClaimed));
        assert_eq!(s.queue_complete("q", 1, 8), Ok(()));
    }

    #[test]
    fn bugs_must_apply_to_the_workload() {
        for (workload, bug) in [
            ("register", "snapshot-isolation-txn"),
            ("list-append", "stale-read"),
            ("bank", "lost-write"),
            ("broadcast", "duplicate-delivery"),
            ("queue", "reorder-append"),
            ("queue", "stale-read"),
            ("register", "reorder-append"),
        ] {
            let mut test = Test::example("memory", workload, 1);
            test.bugs = vec![bug.into()];
            let Err(e) = target(&test) else {
                panic!("{bug} on {workload}")
            };
            assert!(e.to_string().contains("does not apply"), "{e}");
        }
        let mut test = Test::example("memory", "rw-register", 1);
        test.bugs = vec!["snapshot-isolation-txn".into()];
        assert!(target(&test).is_ok());
        for (workload, bug) in [
            ("broadcast", "reorder-append"),
            ("log", "lost-write"),
            ("queue", "duplicate-delivery"),
            ("queue", "lost-write"),
        ] {
            let mut test = Test::example("memory", workload, 1);
            test.bugs = vec![bug.into()];
            assert!(target(&test).is_ok(), "{bug} on {workload}");
        }
    }

    #[test]
    fn the_client_answers_transactions_and_refuses_malformed_ones() {
        let test = Test::example("memory", "list-append", 1);
        let target = target(&test).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let node = Node {
                name: "n1".into(),
                remote: Arc::new(faultline_core::remote::NoopRemote::new("n1")),
            };
            target.db.setup(&test, &node).await.unwrap();
            let mut client = target.client.open(&test, "n1").await.unwrap();
            let op = |f: &str, value: Value| Invocation {
                process: 0,
                f: f.into(),
                key: None,
                value,
            };
            assert_eq!(
                client
                    .invoke(&test, &op("txn", json!([["append", 0, 1], ["r", 0, null]])))
                    .await,
                Completion::Ok(json!([["append", 0, 1], ["r", 0, [1]]]))
            );
            for bad in [op("txn", json!([])), op("transfer", json!({}))] {
                assert!(matches!(
                    client.invoke(&test, &bad).await,
                    Completion::Fail(_)
                ));
            }
            target.db.teardown(&test, &node).await.unwrap();
        });
    }

    #[test]
    fn the_client_reports_definite_cas_mismatches_as_compare_failed() {
        let test = Test::example("memory", "register", 1);
        let target = target(&test).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let node = Node {
                name: "n1".into(),
                remote: Arc::new(faultline_core::remote::NoopRemote::new("n1")),
            };
            assert!(
                target.client.open(&test, "n1").await.is_err(),
                "not set up yet"
            );
            target.db.setup(&test, &node).await.unwrap();
            let mut client = target.client.open(&test, "n1").await.unwrap();
            let op = |f: &str, value: Value| Invocation {
                process: 0,
                f: f.into(),
                key: Some(json!(1)),
                value,
            };
            assert_eq!(
                client.invoke(&test, &op("write", json!(2))).await,
                Completion::Ok(json!(2))
            );
            assert_eq!(
                client.invoke(&test, &op("cas", json!([1, 3]))).await,
                Completion::fail("compare-failed")
            );
            assert_eq!(
                client.invoke(&test, &op("cas", json!([2, 3]))).await,
                Completion::Ok(json!([2, 3]))
            );
            assert_eq!(
                client.invoke(&test, &op("read", Value::Null)).await,
                Completion::Ok(json!(3))
            );
            client.close(&test).await.unwrap();
            target.db.teardown(&test, &node).await.unwrap();
            target.db.teardown(&test, &node).await.unwrap();
        });
    }
}
