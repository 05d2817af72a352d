//! `faultline test --workload broadcast` end to end: against the in-process `memory` store
//! (correct: valid; with `reorder-append` and `lost-write`: invalid, with the anomaly named),
//! and against local raftkv, etcd and ZooKeeper clusters under faults.
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
    let mut all = vec!["test", "--store", &store_path, "--workload", "broadcast"];
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

fn log_result(results: &Value) -> &Value {
    &results["result"]["logs"][0]
}

#[test]
fn memory_broadcast_is_valid() {
    let store = Store::new("broadcast", "memory");
    let (out, results) = run(
        &store,
        &[
            "--target",
            "memory",
            "--latency-ms",
            "2",
            "--concurrency",
            "5",
            "--time-limit",
            "2",
            "--seed",
            "41",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(results["checker"], "broadcast");
    let log = log_result(&results);
    assert!(log["appends_ok"].as_u64().unwrap() > 50, "{log}");
    assert_eq!(log["longest_read"], log["appends_ok"]);
    assert_eq!(log["final_reads"], 5, "one final read per worker: {log}");
}

#[test]
fn memory_reordered_and_lost_appends_are_caught() {
    let store = Store::new("broadcast", "bugs");
    let (out, results) = run(
        &store,
        &[
            "--target",
            "memory",
            "--bug",
            "reorder-append",
            "--latency-ms",
            "2",
            "--time-limit",
            "2",
            "--seed",
            "42",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let counts = &log_result(&results)["counts"];
    assert!(counts["divergent-reads"].as_u64().unwrap() > 0, "{counts}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("not prefixes of one order"), "{stdout}");
    // The stored history checks the same offline.
    let history = store.latest().join("history.jsonl");
    let offline = faultline(&["check", "--model", "broadcast", &history.to_string_lossy()]);
    assert_eq!(offline.status.code(), Some(1), "{}", text(&offline));

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
            "43",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let counts = &log_result(&results)["counts"];
    assert!(counts["lost"].as_u64().unwrap() > 0, "{counts}");
}

#[test]
fn a_bug_that_does_not_apply_is_a_bad_argument() {
    let store = Store::new("broadcast", "bad");
    for bug in ["duplicate-delivery", "double-grant", "stale-read"] {
        let path = store.path();
        let out = faultline(&[
            "test",
            "--target",
            "memory",
            "--store",
            &path,
            "--workload",
            "broadcast",
            "--bug",
            bug,
        ]);
        assert_eq!(out.status.code(), Some(254), "{bug}: {}", text(&out));
    }
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

/// A broadcast on a real target under faults: valid, with appends, and the faults happened.
fn broadcast_under_faults(target: &str, nemesis: &str, seed: &str, expected: &[&str]) {
    let store = Store::new("broadcast", target);
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
    let log = log_result(&results);
    assert!(log["appends_ok"].as_u64().unwrap() >= 10, "{log}");
    assert!(log["final_reads"].as_u64().unwrap() >= 1, "{log}");
    // At least one of the faults asked for happened (a short run draws only a few).
    let seen = faults(&store);
    assert!(
        expected.iter().any(|fault| seen.contains(*fault)),
        "none of {expected:?} in {seen:?}"
    );
}

#[test]
fn raftkv_broadcast_is_valid_under_partitions_pauses_and_kills() {
    broadcast_under_faults(
        "raftkv",
        "partition,pause,kill",
        "44",
        &["start-partition", "pause", "kill"],
    );
}

#[test]
fn etcd_broadcast_is_valid_under_pauses_and_kills() {
    broadcast_under_faults("etcd", "pause,kill", "45", &["pause"]);
}

#[test]
fn zookeeper_broadcast_is_valid_under_pauses() {
    broadcast_under_faults("zookeeper", "pause", "46", &["pause"]);
}
