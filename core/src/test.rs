//! The test configuration: every parameter of one run, saved as `test.json`.
//!
//! Everything that shapes a run is here, including the one `u64` seed from which every random
//! choice derives (generators, fault schedule, a target's simulated faults), so that `test.json`
//! alone says how to rerun it. Limits live in [`Limits`], one place, with units last.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Every parameter of one test run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Test {
    /// `<target>-<workload>[-<bug>...]`: the directory under the store.
    pub name: String,
    /// The system under test: `memory`, `raftkv`, `etcd`, `zookeeper`, `postgres`.
    pub target: String,
    /// The workload: `register`, `set`, ...
    pub workload: String,
    /// Fault kinds, `none` alone for no faults.
    pub nemesis: Vec<String>,
    /// The nodes the target runs on (names; a `Remote` per node reaches them).
    pub nodes: Vec<String>,
    /// Where each node is reached, for nodes on other hosts (lab namespaces, VMs): node name
    /// to IP address or host name. Empty when every node is a local process on loopback.
    #[serde(default)]
    pub addresses: BTreeMap<String, String>,
    /// How long the main phase draws operations, in milliseconds.
    pub time_limit_ms: u64,
    /// How many worker tasks invoke operations at once.
    pub concurrency: usize,
    /// Operations per second across all workers; `None` = as fast as the target answers.
    pub rate_ops_per_sec: Option<f64>,
    /// The seed every random choice of this run derives from.
    pub seed: u64,
    /// Deliberate bugs switched on in the target.
    pub bugs: Vec<String>,
    /// Target-specific options (`latency_ms`, `read_mode`, ...), as given.
    #[serde(default)]
    pub target_options: BTreeMap<String, Value>,
    /// Workload-specific options (`consistency`, `key_count`, `accounts`, ...), every one the
    /// workload used, with its defaults filled in.
    #[serde(default)]
    pub workload_options: BTreeMap<String, Value>,
    pub limits: Limits,
    /// When the run started, UTC, as `YYYYMMDDTHHMMSS.mmmZ` (also the run's directory name).
    pub start_time: String,
    /// The command line that started this run.
    #[serde(default)]
    pub argv: Vec<String>,
}

/// Every bound of a run, in one place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// An operation still running after this completes as `info` with error `timeout`.
    pub op_timeout_ms: u64,
    /// Capacity of the channel from workers to the history writer (events).
    pub event_channel_capacity: usize,
    /// After the stop, how long in-flight operations may take to finish before they are
    /// abandoned (left without completion, which the checker reads as unknown).
    pub drain_timeout_ms: u64,
    /// Bound on one node's `setup` (and on `teardown`).
    pub setup_timeout_ms: u64,
    /// Past this the checker's verdict is `unknown`.
    pub checker_time_limit_ms: u64,
    /// The most worker tasks a run may have.
    pub max_concurrency: usize,
    /// The most events a history may hold; the run stops drawing operations at this length.
    pub max_history_events: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            op_timeout_ms: 5_000,
            event_channel_capacity: 4_096,
            drain_timeout_ms: 10_000,
            setup_timeout_ms: 60_000,
            checker_time_limit_ms: 120_000,
            max_concurrency: 1_024,
            max_history_events: 50_000_000,
        }
    }
}

impl Test {
    /// A small configuration for tests of the harness itself: one node, no faults.
    pub fn example(target: &str, workload: &str, seed: u64) -> Test {
        Test {
            name: format!("{target}-{workload}"),
            target: target.to_string(),
            workload: workload.to_string(),
            nemesis: vec!["none".to_string()],
            nodes: vec!["n1".to_string()],
            addresses: BTreeMap::new(),
            time_limit_ms: 1_000,
            concurrency: 5,
            rate_ops_per_sec: None,
            seed,
            bugs: Vec::new(),
            target_options: BTreeMap::new(),
            workload_options: BTreeMap::new(),
            limits: Limits::default(),
            start_time: String::new(),
            argv: Vec::new(),
        }
    }

    /// A seed for one part of the run (`"generator"`, `"memory-store"`, ...), derived from the
    /// run's seed so that parts do not share a stream yet all follow from `seed`.
    pub fn seed_for(&self, part: &str) -> u64 {
        derive_seed(self.seed, part)
    }
}

/// Mixes a seed with a label (FNV-1a over the label, then SplitMix64's finalizer).
pub fn derive_seed(seed: u64, part: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in part.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ h;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_round_trips_through_json() {
        let test = Test::example("memory", "register", 42);
        let text = serde_json::to_string(&test).unwrap();
        assert!(text.contains("\"seed\":42"), "{text}");
        let back: Test = serde_json::from_str(&text).unwrap();
        assert_eq!(back, test);
    }

    #[test]
    fn derived_seeds_differ_by_part_and_follow_the_seed() {
        let test = Test::example("memory", "register", 7);
        assert_ne!(test.seed_for("generator"), test.seed_for("store"));
        assert_eq!(test.seed_for("generator"), derive_seed(7, "generator"));
        assert_ne!(derive_seed(7, "generator"), derive_seed(8, "generator"));
    }
}
