//! `faultline test --workload list-append|rw-register|bank` end to end: the transactional
//! workloads against the in-process `memory` store (correct, and with its
//! `snapshot-isolation-txn` bug) and against local raftkv clusters under faults.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

mod run_support;
use run_support::{faultline, read_json, text};

/// A fresh store directory for one test.
fn store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-txn-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `faultline test` with a store and the given arguments.
fn test_run(store: &Path, args: &[&str]) -> Output {
    let mut all = vec!["test", "--store", store.to_str().unwrap()];
    all.extend_from_slice(args);
    faultline(&all)
}

fn history(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .expect("history.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// Committed transactions (`ok` completions) of `f`.
fn committed<'a>(history: &'a [Value], f: &str) -> Vec<&'a Value> {
    history
        .iter()
        .filter(|op| op["type"] == "ok" && op["f"] == f)
        .collect()
}

#[test]
fn memory_runs_every_transactional_workload_valid_and_records_its_options() {
    for workload in ["list-append", "rw-register", "bank"] {
        let store = store(&format!("memory-{workload}"));
        let out = test_run(
            &store,
            &[
                "--target",
                "memory",
                "--workload",
                workload,
                "--latency-ms",
                "2",
                "--time-limit",
                "2",
                "--seed",
                "21",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{workload}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("verdict: valid [transactional]"),
            "{stdout}"
        );
        assert!(
            stdout.contains("--consistency strict-serializable"),
            "the rerun names the model: {stdout}"
        );
        let run = std::fs::canonicalize(store.join("latest")).unwrap();
        let test = read_json(&run.join("test.json"));
        let results = read_json(&run.join("results.json"));
        assert_eq!(results["valid"], true);
        assert_eq!(results["checker"], "transactional");
        assert_eq!(results["result"]["model"], workload);
        let events = history(&run);
        if workload == "bank" {
            assert_eq!(test["workload_options"]["accounts"], 5);
            assert_eq!(test["workload_options"]["total"], 100);
            let reads = committed(&events, "read");
            assert!(reads.len() > 100, "{}", reads.len());
            for read in reads {
                let sum: i64 = read["value"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|b| b.as_i64().unwrap())
                    .sum();
                assert_eq!(sum, 100, "{read}");
            }
            assert!(committed(&events, "transfer").len() > 100);
        } else {
            assert_eq!(
                test["workload_options"]["consistency"],
                serde_json::json!(["strict-serializable"])
            );
            assert!(test["workload_options"]["key_count"].as_u64().is_some());
            assert!(committed(&events, "txn").len() > 500);
        }
        let _ = std::fs::remove_dir_all(&store);
    }
}

#[test]
fn memory_snapshot_isolation_is_caught_as_write_skew_and_passes_as_snapshot_isolation() {
    let store = store("memory-si");
    let run = |consistency: &str| {
        test_run(
            &store,
            &[
                "--target",
                "memory",
                "--workload",
                "rw-register",
                "--bug",
                "snapshot-isolation-txn",
                "--consistency",
                consistency,
                "--time-limit",
                "2",
                "--seed",
                "22",
            ],
        )
    };
    let out = run("serializable");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("G2-item"), "{stdout}");
    assert!(stdout.contains("verdict: INVALID"), "{stdout}");
    let results = read_json(&store.join("latest/results.json"));
    assert_eq!(results["valid"], false);
    let types: Vec<&str> = results["result"]["anomaly-types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(types.contains(&"G2-item"), "{types:?}");
    assert!(
        results["result"]["not"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "serializable" || m == "repeatable-read"),
        "{}",
        results["result"]["not"]
    );
    // The report draws the cycle.
    let report = std::fs::read_to_string(store.join("latest/report.html")).unwrap();
    assert!(report.contains("G2-item") && report.contains("<svg"));
    // The same bug is snapshot isolation, which is what it promises.
    let out = run("snapshot-isolation");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn workload_options_are_checked_before_anything_runs() {
    let store = store("bad-options");
    for (args, expected) in [
        (
            vec!["--workload", "register", "--key-count", "3"],
            "takes no options",
        ),
        (
            vec!["--workload", "list-append", "--consistency", "linearizable"],
            "register model",
        ),
        (
            vec!["--workload", "list-append", "--key-count", "0"],
            "key_count",
        ),
        (
            vec![
                "--workload",
                "rw-register",
                "--min-txn-length",
                "5",
                "--max-txn-length",
                "2",
            ],
            "min_txn_length",
        ),
        (vec!["--workload", "bank", "--accounts", "1"], "accounts"),
        (
            vec!["--workload", "register", "--bug", "snapshot-isolation-txn"],
            "does not apply",
        ),
    ] {
        let mut all = vec!["--target", "memory"];
        all.extend_from_slice(&args);
        let out = test_run(&store, &all);
        assert_eq!(out.status.code(), Some(254), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert!(!store.exists(), "a bad argument creates nothing");
}

/// Runs `faultline test --target raftkv` on three local nodes with `args`; returns the
/// output and the run's directory.
fn raftkv_run(name: &str, args: &[&str]) -> (Output, PathBuf, PathBuf) {
    let store = store(name);
    let mut all = vec!["--target", "raftkv", "--nodes", "3"];
    all.extend_from_slice(args);
    let out = test_run(&store, &all);
    let run = std::fs::canonicalize(store.join("latest")).expect("store/latest");
    (out, run, store)
}

#[test]
fn raftkv_list_append_is_strict_serializable_under_partitions_pauses_and_kills() {
    let (out, run, store) = raftkv_run(
        "raftkv-append",
        &[
            "--workload",
            "list-append",
            "--nemesis",
            "partition,pause,kill",
            "--time-limit",
            "10",
            "--seed",
            "31",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let events = history(&run);
    let txns = committed(&events, "txn");
    assert!(txns.len() > 100, "{}", txns.len());
    // Committed transactions read real lists, keyed as invoked (integers).
    let read_lists = txns
        .iter()
        .flat_map(|t| t["value"].as_array().unwrap())
        .filter(|m| m[0] == "r" && m[1].is_u64() && m[2].is_array())
        .count();
    assert!(read_lists > 50, "{read_lists}");
    // The seed's schedule of a 10 s run holds at least one fault (which kinds depends on it).
    assert!(
        events
            .iter()
            .any(|e| ["start-partition", "pause", "kill"].contains(&e["f"].as_str().unwrap_or(""))),
        "the nemesis ran"
    );
    let results = read_json(&run.join("results.json"));
    assert_eq!(results["valid"], true, "{results}");
    assert_eq!(results["result"]["model"], "list-append");
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn raftkv_snapshot_isolation_bug_is_not_serializable() {
    let (out, run, store) = raftkv_run(
        "raftkv-si",
        &[
            "--workload",
            "rw-register",
            "--bug",
            "snapshot-isolation-txn",
            "--consistency",
            "serializable",
            "--nemesis",
            "none",
            "--time-limit",
            "8",
            "--seed",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let results = read_json(&run.join("results.json"));
    let types: Vec<&str> = results["result"]["anomaly-types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"G2-item") || types.contains(&"G-single"),
        "{types:?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verdict: INVALID"), "{stdout}");
    assert!(
        stdout.contains("--bug snapshot-isolation-txn --consistency serializable"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn raftkv_bank_keeps_its_total_under_faults() {
    let (out, run, store) = raftkv_run(
        "raftkv-bank",
        &[
            "--workload",
            "bank",
            "--nemesis",
            "partition,kill",
            "--time-limit",
            "8",
            "--seed",
            "33",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let events = history(&run);
    let transfers = committed(&events, "transfer");
    assert!(transfers.len() > 20, "{}", transfers.len());
    let reads = committed(&events, "read");
    assert!(reads.len() > 20, "{}", reads.len());
    for read in reads {
        let balances = read["value"].as_object().unwrap();
        assert_eq!(balances.len(), 5);
        let sum: i64 = balances.values().map(|b| b.as_i64().unwrap()).sum();
        assert_eq!(sum, 100, "{read}");
    }
    // Some transfers raced and were refused by their commit-time comparison; none was lost.
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "fail" && e["error"] == "compare-failed"),
        "concurrent transfers conflict"
    );
    let _ = std::fs::remove_dir_all(&store);
}
