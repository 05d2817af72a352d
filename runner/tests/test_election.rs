//! `faultline test --workload election` and `--workload unique-ids` end to end: against the
//! in-process `memory` store (correct: valid; with its `two-leaders` / `duplicate-id` bugs:
//! invalid, with the anomaly named), and against local etcd, ZooKeeper and raftkv processes
//! under faults. Arguments that do not apply are refused with exit 254.

use serde_json::Value;
use std::path::Path;
use std::process::Output;

mod run_support;
use run_support::{faultline, read_json, text, Store};

/// One run; returns its output and its results.json.
fn run(store: &Store, args: &[&str]) -> (Output, Value) {
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

fn memory_args<'a>(workload: &'a str, bug: Option<&'a str>, seed: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "--target",
        "memory",
        "--workload",
        workload,
        "--latency-ms",
        "2",
        "--time-limit",
        "3",
        "--seed",
        seed,
    ];
    if workload == "election" {
        args.extend_from_slice(&["--lease-ms", "200"]);
    }
    if let Some(bug) = bug {
        args.extend_from_slice(&["--bug", bug]);
    }
    args
}

#[test]
fn memory_election_is_valid_and_records_its_options() {
    let store = Store::new("election", "memory");
    let (out, results) = run(&store, &memory_args("election", None, "41"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--lease-ms 200"));
    assert_eq!(results["checker"], "election");
    let result = &results["result"];
    assert!(result["elected"].as_u64().unwrap() > 5, "{result}");
    assert!(result["observations"].as_u64().unwrap() > result["elected"].as_u64().unwrap());
    assert!(result["counts"].as_object().unwrap().is_empty(), "{result}");
    assert_eq!(result["termination"]["valid"], true, "{result}");
    let test = read_json(&store.latest().join("test.json"));
    assert_eq!(test["workload_options"]["lease_ms"], 200);
    assert_eq!(test["workload_options"]["candidates"], "clients");
    // The stored history checks the same offline.
    let history = store.latest().join("history.jsonl");
    let out = faultline(&["check", "--model", "election", &history.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn memory_two_leaders_breaks_agreement() {
    let store = Store::new("election", "two-leaders");
    let (out, results) = run(&store, &memory_args("election", Some("two-leaders"), "42"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("uniform agreement broken"), "{stdout}");
    let counts = &results["result"]["counts"];
    assert!(counts["agreement"].as_u64().unwrap() > 0, "{counts}");
    assert!(counts["integrity"].as_u64().unwrap() > 0, "{counts}");
    let history = store.latest().join("history.jsonl");
    let out = faultline(&["check", "--model", "election", &history.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn memory_unique_ids_are_unique_and_duplicate_id_is_caught() {
    let store = Store::new("unique-ids", "memory");
    let (out, results) = run(&store, &memory_args("unique-ids", None, "43"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let result = &results["result"];
    assert_eq!(results["checker"], "unique-ids");
    assert!(result["acknowledged"].as_u64().unwrap() > 100, "{result}");
    assert_eq!(result["duplicate_count"], 0);
    // One counter, every request acknowledged: one run of consecutive ids.
    assert_eq!(result["range_count"], 1, "{result}");

    let (out, results) = run(
        &store,
        &memory_args("unique-ids", Some("duplicate-id"), "44"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("handed out more than once"));
    assert!(results["result"]["duplicate_count"].as_u64().unwrap() > 0);
    let history = store.latest().join("history.jsonl");
    let out = faultline(&["check", "--model", "unique-ids", &history.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn arguments_that_do_not_apply_are_bad_arguments() {
    let store = Store::new("election", "bad");
    for args in [
        &[
            "--target",
            "memory",
            "--workload",
            "register",
            "--bug",
            "two-leaders",
        ][..],
        &[
            "--target",
            "memory",
            "--workload",
            "election",
            "--bug",
            "duplicate-id",
        ][..],
        &[
            "--target",
            "memory",
            "--workload",
            "election",
            "--candidates",
            "nodes",
        ][..],
        &[
            "--target",
            "memory",
            "--workload",
            "election",
            "--lease-ms",
            "1",
        ][..],
        &[
            "--target",
            "memory",
            "--workload",
            "lock",
            "--termination-bound-ms",
            "5",
        ][..],
        &[
            "--target",
            "memory",
            "--workload",
            "unique-ids",
            "--lease-ms",
            "500",
        ][..],
        &[
            "--target",
            "raftkv",
            "--workload",
            "election",
            "--candidates",
            "clients",
        ][..],
        &[
            "--target",
            "etcd",
            "--workload",
            "election",
            "--candidates",
            "nodes",
        ][..],
        &["--target", "postgres", "--workload", "election"][..],
        &["--target", "postgres", "--workload", "unique-ids"][..],
    ] {
        let path = store.path();
        let mut all = vec!["test", "--store", &path];
        all.extend_from_slice(args);
        let out = faultline(&all);
        assert_eq!(out.status.code(), Some(254), "{args:?}: {}", text(&out));
    }
}

/// One workload on a real target under faults: valid, and the faults happened.
fn under_faults(
    workload: &str,
    target: &str,
    nemesis: &str,
    seed: &str,
    expected: &[&str],
) -> Value {
    let store = Store::new(workload, target);
    let args = [
        "--target",
        target,
        "--workload",
        workload,
        "--nemesis",
        nemesis,
        "--concurrency",
        "5",
        "--time-limit",
        "8",
        "--seed",
        seed,
    ];
    let (out, results) = run(&store, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let seen = faults(&store.latest());
    for fault in expected {
        assert!(seen.contains(*fault), "{fault} not in {seen:?}");
    }
    results["result"].clone()
}

fn elections_under_faults(target: &str, nemesis: &str, seed: &str, expected: &[&str]) {
    let result = under_faults("election", target, nemesis, seed, expected);
    assert!(result["observations"].as_u64().unwrap() >= 3, "{result}");
    assert_eq!(result["termination"]["valid"], true, "{result}");
}

fn ids_under_faults(target: &str, nemesis: &str, seed: &str, expected: &[&str]) {
    let result = under_faults("unique-ids", target, nemesis, seed, expected);
    assert!(result["acknowledged"].as_u64().unwrap() >= 20, "{result}");
    assert_eq!(result["duplicate_count"], 0);
}

#[test]
fn etcd_election_is_valid_under_pauses_and_kills() {
    elections_under_faults("etcd", "pause,kill", "45", &[]);
}

#[test]
fn zookeeper_election_is_valid_under_pauses() {
    elections_under_faults("zookeeper", "pause", "46", &[]);
}

#[test]
fn raftkv_election_is_valid_under_partitions_pauses_and_kills() {
    elections_under_faults("raftkv", "partition,pause,kill", "47", &[]);
}

#[test]
fn etcd_unique_ids_are_unique_under_pauses_and_kills() {
    ids_under_faults("etcd", "pause,kill", "48", &[]);
}

#[test]
fn zookeeper_unique_ids_are_unique_under_pauses() {
    ids_under_faults("zookeeper", "pause", "49", &[]);
}

#[test]
fn raftkv_unique_ids_are_unique_under_partitions_pauses_and_kills() {
    ids_under_faults("raftkv", "partition,pause,kill", "50", &[]);
}
