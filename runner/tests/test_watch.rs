//! `faultline test --workload watch|ephemeral` end to end against the in-process `memory`
//! store: correct (valid), and with its bugs `drop-event`, `reorder-event` (watch) and
//! `outlive-lease` (ephemeral), each caught; and, where built, against local etcd and
//! ZooKeeper.

use serde_json::Value;
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
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("verdict"))
        .unwrap_or("");
    eprintln!("{args:?}: {verdict}");
    let results = read_json(&store.latest().join("results.json"));
    (out, results)
}

fn memory_watch(store: &Store, bug: Option<&str>, seed: &str) -> (Output, Value) {
    let mut args = vec![
        "--target",
        "memory",
        "--workload",
        "watch",
        "--watch-ms",
        "100",
        "--final-watch-ms",
        "200",
        "--latency-ms",
        "2",
        "--concurrency",
        "4",
        "--time-limit",
        "2",
        "--seed",
        seed,
    ];
    if let Some(bug) = bug {
        args.extend_from_slice(&["--bug", bug]);
    }
    run(store, &args)
}

#[test]
fn memory_watch_is_valid_and_records_its_options() {
    let store = Store::new("watch", "memory");
    let (out, results) = memory_watch(&store, None, "41");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--watch-ms 100"));
    assert_eq!(results["checker"], "watch");
    let result = &results["result"];
    assert_eq!(result["valid"], true, "{result}");
    assert!(result["events"].as_u64().unwrap() > 20, "{result}");
    assert_eq!(result["watchers"], 2, "{result}");
    assert_eq!(result["final_watches"], 2, "{result}");
    let test = read_json(&store.latest().join("test.json"));
    assert_eq!(test["workload_options"]["watch_ms"], 100);
    assert_eq!(test["workload_options"]["watchers"], 2);
}

#[test]
fn memory_watch_bugs_are_caught_as_gaps_and_reorderings() {
    let store = Store::new("watch", "bugs");
    for (bug, kind) in [("drop-event", "gap"), ("reorder-event", "out-of-order")] {
        let (out, results) = memory_watch(&store, Some(bug), "42");
        assert_eq!(out.status.code(), Some(1), "{bug}: {}", text(&out));
        let result = &results["result"];
        assert!(
            result["anomaly_counts"][kind].as_u64().unwrap_or(0) > 0,
            "{bug}: {result}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(kind));
        // The stored history checks the same offline.
        let history = store.latest().join("history.jsonl");
        let history = history.to_string_lossy();
        let out = faultline(&["check", "--model", "watch", &history]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains(kind), "{}", text(&out));
    }
}

fn memory_ephemeral(store: &Store, bug: Option<&str>, seed: &str) -> (Output, Value) {
    let mut args = vec![
        "--target",
        "memory",
        "--workload",
        "ephemeral",
        "--ttl-ms",
        "200",
        "--slack-ms",
        "100",
        "--latency-ms",
        "2",
        "--concurrency",
        "4",
        "--time-limit",
        "3",
        "--seed",
        seed,
    ];
    if let Some(bug) = bug {
        args.extend_from_slice(&["--bug", bug]);
    }
    run(store, &args)
}

#[test]
fn memory_ephemeral_is_valid_and_expiries_are_seen() {
    let store = Store::new("ephemeral", "memory");
    let (out, results) = memory_ephemeral(&store, None, "43");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(results["checker"], "ephemeral");
    let result = &results["result"];
    assert_eq!(result["valid"], true, "{result}");
    assert!(
        result["stalls"]["expiring"].as_u64().unwrap() >= 2,
        "{result}"
    );
    assert!(result["lists"].as_u64().unwrap() > 20, "{result}");
    // Expiry is exact in memory: within the TTL and the lists' spacing.
    assert!(
        result["slowest_expiry_ms"].as_u64().unwrap() < 300,
        "{result}"
    );
    assert!(
        result["finding_counts"].as_object().unwrap().is_empty(),
        "{result}"
    );
}

#[test]
fn memory_outlive_lease_is_caught() {
    let store = Store::new("ephemeral", "outlive");
    let (out, results) = memory_ephemeral(&store, Some("outlive-lease"), "44");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let result = &results["result"];
    assert!(
        result["finding_counts"]["outlived"].as_u64().unwrap() > 0,
        "{result}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("outlived"));
    let history = store.latest().join("history.jsonl");
    let history = history.to_string_lossy();
    let out = faultline(&[
        "check",
        "--model",
        "ephemeral",
        "--slack-ms",
        "100",
        &history,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("outlived"), "{}", text(&out));
}

/// A real target's run under `nemesis`; returns its results after asserting the exit code.
fn real(store: &Store, args: &[&str], expected_exit: i32) -> Value {
    let (out, results) = run(store, args);
    assert_eq!(out.status.code(), Some(expected_exit), "{}", text(&out));
    results["result"].clone()
}

#[test]
fn etcd_watch_is_gap_free_under_pauses() {
    let store = Store::new("watch", "etcd");
    let result = real(
        &store,
        &[
            "--target",
            "etcd",
            "--workload",
            "watch",
            "--nemesis",
            "pause",
            "--watch-ms",
            "300",
            "--final-watch-ms",
            "1500",
            "--concurrency",
            "4",
            "--time-limit",
            "6",
            "--seed",
            "45",
        ],
        0,
    );
    assert!(result["events"].as_u64().unwrap() > 10, "{result}");
    assert!(result["gapless_watches"].as_u64().unwrap() > 2, "{result}");
    // Both watchers' final watches, and any main-phase watch invoked after the last
    // acknowledged write (a pause at the end of the main phase can stall the writes): every
    // watch invoked after the last ack is held to the latest values.
    assert!(result["final_watches"].as_u64().unwrap() >= 2, "{result}");
}

#[test]
fn zookeeper_watch_is_valid_under_pauses() {
    let store = Store::new("watch", "zookeeper");
    let result = real(
        &store,
        &[
            "--target",
            "zookeeper",
            "--workload",
            "watch",
            "--nemesis",
            "pause",
            "--watch-ms",
            "300",
            "--final-watch-ms",
            "1500",
            "--concurrency",
            "4",
            "--time-limit",
            "6",
            "--seed",
            "46",
        ],
        0,
    );
    assert!(result["events"].as_u64().unwrap() > 10, "{result}");
    assert_eq!(result["gapless_watches"], 0, "{result}");
    assert_eq!(result["final_watches"], 2, "{result}");
}

#[test]
fn etcd_ephemeral_registrations_expire_within_the_ttl() {
    let store = Store::new("ephemeral", "etcd");
    let result = real(
        &store,
        &[
            "--target",
            "etcd",
            "--workload",
            "ephemeral",
            "--nemesis",
            "none",
            "--ttl-ms",
            "2000",
            "--slack-ms",
            "1500",
            "--op-timeout-ms",
            "8000",
            "--concurrency",
            "4",
            "--time-limit",
            "8",
            "--seed",
            "47",
        ],
        0,
    );
    assert!(
        result["registrations"]["ok"].as_u64().unwrap() >= 2,
        "{result}"
    );
    assert!(result["lists"].as_u64().unwrap() > 20, "{result}");
}

#[test]
fn zookeeper_ephemeral_registrations_expire_within_the_session_timeout() {
    let store = Store::new("ephemeral", "zookeeper");
    let result = real(
        &store,
        &[
            "--target",
            "zookeeper",
            "--workload",
            "ephemeral",
            "--nemesis",
            "none",
            "--ttl-ms",
            "4000",
            "--slack-ms",
            "3000",
            "--op-timeout-ms",
            "12000",
            "--concurrency",
            "4",
            "--time-limit",
            "8",
            "--seed",
            "48",
        ],
        0,
    );
    assert!(
        result["registrations"]["ok"].as_u64().unwrap() >= 2,
        "{result}"
    );
    assert!(result["lists"].as_u64().unwrap() > 20, "{result}");
}

/// Targets without these workloads are refused as bad arguments, naming what is missing.
#[test]
fn targets_without_the_workloads_are_refused() {
    for (target, workload) in [("raftkv", "watch"), ("postgres", "ephemeral")] {
        let out = faultline(&["test", "--target", target, "--workload", workload]);
        assert_eq!(out.status.code(), Some(254), "{}", text(&out));
        assert!(text(&out).contains("cannot run the"), "{}", text(&out));
    }
}
