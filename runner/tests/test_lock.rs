//! `faultline test --workload lock|fenced-lock` end to end: against the in-process `memory`
//! store (correct: valid; with its `double-grant` bug: two holders at once), against a local
//! PostgreSQL server's lease table with and without fencing, and the fenced lock of raftkv,
//! etcd and ZooKeeper (local processes) under faults.
//!
//! One run at a time: the PostgreSQL runs each start their own server.

use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::sync::Mutex;

mod run_support;
use run_support::{faultline, read_json, text, Store};

static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One run; returns its output and its results.json.
fn run(store: &Store, args: &[&str]) -> (Output, Value) {
    let _one_at_a_time = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let store_path = store.0.to_string_lossy().into_owned();
    let mut all = vec!["test", "--store", &store_path];
    all.extend_from_slice(args);
    let out = faultline(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or("")
            .to_string()
    };
    eprintln!("{args:?}: {} / {}", line("recorded"), line("verdict"));
    let results = read_json(&store.latest().join("results.json"));
    (out, results)
}

/// Kinds of fencing anomalies with their counts, as one map.
fn fencing_counts(results: &Value) -> serde_json::Map<String, Value> {
    let mut counts = serde_json::Map::new();
    for fencing in results["result"]["fencing"].as_array().expect("fencing") {
        for (kind, n) in fencing["counts"].as_object().expect("counts") {
            counts.insert(kind.clone(), n.clone());
        }
    }
    counts
}

#[test]
fn memory_lock_is_valid_and_records_its_options() {
    let store = Store::new("lock", "memory");
    for workload in ["lock", "fenced-lock"] {
        let (out, results) = run(
            &store,
            &[
                "--target",
                "memory",
                "--workload",
                workload,
                "--lease-ms",
                "200",
                "--latency-ms",
                "2",
                "--time-limit",
                "3",
                "--seed",
                "31",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{workload}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("--lease-ms 200"));
        assert_eq!(results["checker"], "lock");
        let result = &results["result"];
        assert!(result["holds"].as_u64().unwrap() > 10, "{result}");
        assert_eq!(result["overlap_count"], 0);
        assert_eq!(result["mutex"]["valid"], true);
        let fencing = &result["fencing"][0];
        assert_eq!(fencing["valid"], true, "{fencing}");
        assert_eq!(fencing["accepted"], fencing["writes_ok"]);
        let test = read_json(&store.latest().join("test.json"));
        assert_eq!(test["workload_options"]["lease_ms"], 200);
        assert_eq!(
            test["workload_options"]["fencing"],
            workload == "fenced-lock"
        );
    }
}

#[test]
fn memory_double_grant_is_caught_by_the_holders_and_the_mutex_and_fencing_contains_it() {
    let store = Store::new("lock", "double");
    let args = |fencing: &'static str| {
        [
            "--target",
            "memory",
            "--workload",
            "lock",
            "--bug",
            "double-grant",
            "--fencing",
            fencing,
            "--lease-ms",
            "200",
            "--latency-ms",
            "2",
            "--time-limit",
            "3",
            "--seed",
            "32",
        ]
    };
    let (out, results) = run(&store, &args("off"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("believed they held the lock"), "{stdout}");
    let result = &results["result"];
    assert!(result["overlap_count"].as_u64().unwrap() > 0);
    assert_eq!(result["mutex"]["valid"], false);
    assert!(
        fencing_counts(&results).contains_key("stale-token"),
        "{result}"
    );

    // With fencing, the same bug still gives two holders, but the resource stays in order.
    let (out, results) = run(&store, &args("on"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(results["result"]["overlap_count"].as_u64().unwrap() > 0);
    assert!(fencing_counts(&results).is_empty(), "{results}");
    assert!(
        results["result"]["fencing"][0]["writes_rejected"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn a_bug_or_option_that_does_not_apply_is_a_bad_argument() {
    let store = Store::new("lock", "bad");
    for args in [
        &["--workload", "register", "--bug", "double-grant"][..],
        &["--workload", "lock", "--bug", "lost-write"][..],
        &["--workload", "fenced-lock", "--fencing", "off"][..],
        &["--workload", "lock", "--lease-ms", "1"][..],
        &["--workload", "lock", "--etcd-lock", "api"][..],
    ] {
        let mut all = vec!["test", "--target", "memory", "--store"];
        let path = store.0.to_string_lossy().into_owned();
        all.push(&path);
        all.extend_from_slice(args);
        let out = faultline(&all);
        assert_eq!(out.status.code(), Some(254), "{args:?}: {}", text(&out));
    }
}

/// The "done when": on PostgreSQL's lease table, holders whose writes stall past their
/// lease (a paused holder process) give two holders writing at once without fencing; with
/// fencing the resource rejects the stale holder and stays in token order, also while the
/// server itself is paused.
#[test]
fn postgres_lease_without_fencing_splits_the_brain_and_fencing_keeps_the_resource_consistent() {
    let store = Store::new("lock", "postgres");
    let args = |workload: &'static str, nemesis: &'static str, seconds: &'static str| {
        [
            "--target",
            "postgres",
            "--workload",
            workload,
            "--nemesis",
            nemesis,
            "--lease-ms",
            "300",
            "--client-pause-ms",
            "500",
            "--concurrency",
            "5",
            "--time-limit",
            seconds,
            "--seed",
            "33",
        ]
    };
    let (out, results) = run(&store, &args("lock", "none", "6"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let counts = fencing_counts(&results);
    assert!(counts.contains_key("stale-token"), "{counts:?}");
    // The lease table itself never granted the lock twice.
    assert_eq!(results["result"]["overlap_count"], 0, "{results}");
    assert_eq!(results["result"]["mutex"]["valid"], true);

    let (out, results) = run(&store, &args("fenced-lock", "none", "6"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(fencing_counts(&results).is_empty(), "{results}");
    let history = std::fs::read_to_string(store.latest().join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"error\":\"stale-token\""),
        "the resource rejected a stale holder"
    );

    let (out, results) = run(&store, &args("fenced-lock", "pause", "10"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(fencing_counts(&results).is_empty(), "{results}");
}

/// The fault kinds a run's history recorded.
fn faults(run: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|op| op["process"] == "nemesis")
        .map(|op| op["f"].as_str().unwrap().to_string())
        .collect()
}

/// A fenced lock on a real target under faults: valid, with holds, and the faults happened.
fn fenced_lock_under_faults(target: &str, nemesis: &str, seed: &str, expected: &[&str]) {
    fenced_lock_with(target, &[], nemesis, seed, expected);
}

/// [`fenced_lock_under_faults`] with more arguments.
fn fenced_lock_with(target: &str, extra: &[&str], nemesis: &str, seed: &str, expected: &[&str]) {
    // Its own directory per target and arguments: tests of one target run in parallel.
    let store = Store::new("lock", &format!("{target}{}", extra.concat()));
    let mut args = vec![
        "--target",
        target,
        "--workload",
        "fenced-lock",
        "--nemesis",
        nemesis,
        "--lease-ms",
        "1000",
        "--concurrency",
        "5",
        "--time-limit",
        "12",
        "--seed",
        seed,
    ];
    args.extend_from_slice(extra);
    let (out, results) = run(&store, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let result = &results["result"];
    assert!(result["holds"].as_u64().unwrap() >= 3, "{result}");
    assert_eq!(result["overlap_count"], 0);
    let seen = faults(&store.latest());
    for fault in expected {
        assert!(seen.contains(*fault), "{fault} not in {seen:?}");
    }
    if extra.contains(&"api") {
        let test = read_json(&store.latest().join("test.json"));
        assert_eq!(test["target_options"]["lock_api"], true, "{test}");
    }
}

#[test]
fn raftkv_fenced_lock_is_valid_under_partitions_pauses_and_kills() {
    fenced_lock_under_faults(
        "raftkv",
        "partition,pause,kill",
        "34",
        &["start-partition", "kill"],
    );
}

#[test]
fn etcd_fenced_lock_is_valid_under_pauses_and_kills() {
    fenced_lock_under_faults("etcd", "pause,kill", "35", &["pause", "kill"]);
}

/// etcd's own lock API (`/v3/lock/lock`, which waits for the lock) under pauses: valid, and
/// test.json records the choice.
#[test]
fn etcd_lock_api_fenced_lock_is_valid_under_pauses() {
    fenced_lock_with("etcd", &["--etcd-lock", "api"], "pause", "37", &["pause"]);
}

/// Pauses only: after kills of every node, three restarting JVMs may not serve again before
/// the final read, which then fails and leaves the resource unchecked (unknown).
#[test]
fn zookeeper_fenced_lock_is_valid_under_pauses() {
    fenced_lock_under_faults("zookeeper", "pause", "36", &["pause"]);
}
