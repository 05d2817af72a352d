//! `faultline test --workload queue` end to end: against the in-process `memory` store
//! (correct: valid; with `duplicate-delivery` and `lost-write`: invalid, with the anomaly
//! named), and against local PostgreSQL, ZooKeeper and raftkv under faults.
//!
//! One run at a time: the real targets start their own servers on fixed ports.

use serde_json::Value;
use std::process::Output;
use std::sync::Mutex;

mod run_support;
use run_support::{faultline, read_json, text, Store};

static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One run; returns its output and its results.json.
fn run(store: &Store, args: &[&str]) -> (Output, Value) {
    let _one_at_a_time = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let store_path = store.path();
    let mut all = vec!["test", "--store", &store_path, "--workload", "queue"];
    all.extend_from_slice(args);
    let started = std::time::Instant::now();
    let out = faultline(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or("")
            .to_string()
    };
    eprintln!(
        "{args:?}: {} / {} ({:.1} s)",
        line("recorded"),
        line("verdict"),
        started.elapsed().as_secs_f64()
    );
    let results = read_json(&store.latest().join("results.json"));
    (out, results)
}

#[test]
fn memory_queue_is_valid_and_records_its_promise() {
    let store = Store::new("queue", "memory");
    let (out, results) = run(
        &store,
        &[
            "--target",
            "memory",
            "--latency-ms",
            "2",
            "--time-limit",
            "2",
            "--seed",
            "51",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(results["checker"], "queue");
    let result = &results["result"];
    assert!(result["enqueued_ok"].as_u64().unwrap() > 50, "{result}");
    assert_eq!(result["delivered"], result["enqueued_ok"], "{result}");
    assert_eq!(result["drained"], true);
    assert_eq!(result["delivery"], "exactly-once");
    let test = read_json(&store.latest().join("test.json"));
    assert_eq!(test["workload_options"]["delivery"], "exactly-once");
}

#[test]
fn memory_duplicate_deliveries_and_lost_jobs_are_caught() {
    let store = Store::new("queue", "bugs");
    let (out, results) = run(
        &store,
        &[
            "--target",
            "memory",
            "--bug",
            "duplicate-delivery",
            "--latency-ms",
            "2",
            "--time-limit",
            "2",
            "--seed",
            "52",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let counts = &results["result"]["counts"];
    assert!(
        counts["duplicate-delivery"].as_u64().unwrap() > 0,
        "{counts}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("exactly-once promise"));
    // The stored history checks the same offline, the promise read from the run's test.json.
    let history = store.latest().join("history.jsonl");
    let history = history.to_string_lossy();
    let offline = faultline(&["check", "--model", "queue", &history]);
    assert_eq!(offline.status.code(), Some(1), "{}", text(&offline));
    let strict = faultline(&["check", "--model", "queue-exactly-once", &history]);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));

    let (out, results) = run(
        &store,
        &[
            "--target",
            "memory",
            "--bug",
            "lost-write",
            "--latency-ms",
            "2",
            "--time-limit",
            "2",
            "--seed",
            "53",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let counts = &results["result"]["counts"];
    assert!(counts["lost"].as_u64().unwrap() > 0, "{counts}");
}

/// The fault kinds a run's history recorded.
fn faults(store: &Store) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(store.latest().join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|op| op["process"] == "nemesis")
        .map(|op| op["f"].as_str().unwrap().to_string())
        .collect()
}

/// A queue on a real target under faults: valid for the target's promise, with jobs done,
/// and the faults happened.
fn queue_under_faults(target: &str, nemesis: &str, seed: &str, promise: &str, expected: &[&str]) {
    let store = Store::new("queue", target);
    let (out, results) = run(
        &store,
        &[
            "--target",
            target,
            "--nemesis",
            nemesis,
            "--concurrency",
            "5",
            "--time-limit",
            "4",
            "--seed",
            seed,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let result = &results["result"];
    assert_eq!(result["delivery"], promise);
    assert!(result["completed"].as_u64().unwrap() >= 10, "{result}");
    assert_eq!(result["drained"], true);
    // At least one of the faults asked for happened (a short run draws only a few).
    let seen = faults(&store);
    assert!(
        expected.iter().any(|fault| seen.contains(*fault)),
        "none of {expected:?} in {seen:?}"
    );
}

#[test]
fn postgres_queue_is_at_least_once_under_pauses_and_kills() {
    queue_under_faults(
        "postgres",
        "pause,kill",
        "54",
        "at-least-once",
        &["pause", "kill"],
    );
}

#[test]
fn zookeeper_queue_is_valid_under_pauses() {
    queue_under_faults("zookeeper", "pause", "55", "exactly-once", &["pause"]);
}

#[test]
fn raftkv_queue_is_valid_under_partitions_pauses_and_kills() {
    queue_under_faults(
        "raftkv",
        "partition,pause,kill",
        "56",
        "exactly-once",
        &["start-partition", "pause", "kill"],
    );
}

#[test]
fn a_target_without_a_queue_client_is_refused() {
    let store = Store::new("queue", "etcd");
    let path = store.path();
    let out = faultline(&[
        "test",
        "--target",
        "etcd",
        "--store",
        &path,
        "--workload",
        "queue",
    ]);
    assert_eq!(out.status.code(), Some(254), "{}", text(&out));
    assert!(text(&out).contains("has no queue client"), "{}", text(&out));
}
