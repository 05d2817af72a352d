//! `memory`: an in-process, linearizable key-value store with switchable bugs.
//!
//! It holds registers (read / write / cas) and grow-only sets (add / read) in maps behind one
//! mutex, so every operation takes effect atomically at one instant between its invocation and
//! its completion: linearizable by construction. Bug switches break that on purpose, with the
//! same names as raftkv's where they mean the same thing in-process:
//!
//! | bug | what it does | what the checkers find |
//! |---|---|---|
//! | `stale-read` | reads are served from a replica copy of each key refreshed at most every `replica_lag_ms` (default 20 ms) | register: a read returns a value overwritten before it began (not linearizable); set: stale or lost elements in reads |
//! | `lost-write` | one in `lost_write_one_in` (default 10) writes and adds is acknowledged and dropped | register: reads miss an acknowledged write (not linearizable); set: lost elements |
//!
//! (raftkv's `no-fsync` loses acknowledged writes only when nodes crash together; this store
//! has no crash, so its bug is named for what it does: `lost-write`.)
//!
//! Options (`test.target_options`): `latency_ms` (each operation waits a random time in
//! `0..=latency_ms`, part before it takes effect and the rest after, so operations overlap as
//! on a network), `replica_lag_ms`, `lost_write_one_in`.
//!
//! Design decision: the store is shared by the db and every client through an `Arc`, and the
//! db's setup / teardown only open and close it (teardown also empties it); so the lifecycle
//! is the real targets' (setup, open clients, invoke, close, teardown) with nothing to install.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use faultline_core::{BoxFuture, Client, Completion, Db, HarnessError, Invocation, Node, Test};

use crate::{Target, TargetError};

/// The bugs this target can switch on.
pub const BUGS: [&str; 2] = ["stale-read", "lost-write"];
/// Default lag of the `stale-read` replica.
pub const DEFAULT_REPLICA_LAG_MS: u64 = 20;
/// Default share of writes `lost-write` drops: one in this many.
pub const DEFAULT_LOST_WRITE_ONE_IN: u64 = 10;

/// How the store behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryOptions {
    pub stale_read: bool,
    pub lost_write: bool,
    pub replica_lag: Duration,
    pub lost_write_one_in: u64,
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
            replica_lag: Duration::from_millis(DEFAULT_REPLICA_LAG_MS),
            lost_write_one_in: DEFAULT_LOST_WRITE_ONE_IN,
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
                "lost_write_one_in" => {
                    options.lost_write_one_in = number()?.max(1);
                }
                // The runner gives every local target the run's node directory; the memory
                // store keeps nothing on disk.
                "data_dir" => {}
                _ => {
                    return Err(TargetError::BadOption {
                        target: "memory".into(),
                        option: name.clone(),
                        why: "unknown option; known: latency_ms, replica_lag_ms, \
                              lost_write_one_in, data_dir"
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

#[derive(Debug)]
struct State {
    up: bool,
    registers: HashMap<String, Versioned<Value>>,
    sets: HashMap<String, Versioned<Vec<Value>>>,
    rng: SmallRng,
}

/// Why the store refused an operation (it certainly did not apply).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the store is not set up")]
    Down,
    #[error("compare-failed")]
    CompareFailed,
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

    /// The set's elements in the order they were added; empty when never added to.
    pub fn read_set(&self, key: &str) -> Result<Vec<Value>, StoreError> {
        let mut state = self.up()?;
        Ok(match state.sets.get_mut(key) {
            Some(set) => set.read(&self.options),
            None => Vec::new(),
        })
    }
}

/// Which operations a client speaks: the register's or the set's (`read` means either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Register,
    Set,
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

/// A client of the memory store.
#[derive(Debug)]
pub struct MemoryClient {
    store: Arc<MemoryStore>,
    mode: Mode,
    rng: SmallRng,
    /// Clients opened from this one (as a template).
    opened: AtomicU64,
}

impl MemoryClient {
    pub fn new(store: Arc<MemoryStore>, mode: Mode, seed: u64) -> MemoryClient {
        MemoryClient {
            store,
            mode,
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
            (mode, f) => return Completion::fail(format!("unsupported: {f} in {mode:?} mode")),
        };
        match outcome {
            Ok(value) => Completion::Ok(value),
            // Both refusals are definite: the store checked before changing anything.
            Err(StoreError::CompareFailed) => Completion::fail("compare-failed"),
            Err(StoreError::Down) => Completion::fail("unavailable"),
        }
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
            if latency.is_zero() {
                return self.apply(op);
            }
            let total = self.rng.gen_range(Duration::ZERO..=latency);
            let before = self.rng.gen_range(Duration::ZERO..=total);
            tokio::time::sleep(before).await;
            let completion = self.apply(op);
            tokio::time::sleep(total - before).await;
            completion
        })
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The memory target for `test`: its store, db and a client for the test's workload.
pub fn target(test: &Test) -> Result<Target, TargetError> {
    let options = MemoryOptions::from_test(test)?;
    let mode = match test.workload.as_str() {
        "register" => Mode::Register,
        "set" => Mode::Set,
        other => {
            return Err(TargetError::UnsupportedWorkload {
                target: "memory".into(),
                workload: other.into(),
            })
        }
    };
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
