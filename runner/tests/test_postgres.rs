//! `faultline test --target postgres` end to end: a local PostgreSQL 15 server (run as the
//! `postgres` user when the tests run as root) and the transactional workloads at each
//! isolation level. What each level lets through is what these tests pin down:
//! - repeatable read is snapshot isolation: rw-register finds write skew (G2-item), which rules
//!   out serializable but not snapshot isolation;
//! - serializable: list-append and rw-register are valid, even for strict serializability,
//!   under kills (crash recovery) and pauses;
//! - bank: valid at serializable and repeatable read under faults; read committed loses
//!   updates (the transfer writes balances it computed from an earlier read): wrong totals.
//!
//! One run at a time: each starts its own server, and the machine is busy.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

mod run_support;
use run_support::{faultline, read_json, text, Store};

static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One `faultline test --target postgres` run; returns its output and run directory.
fn run(store: &Store, workload: &str, isolation: &str, extra: &[&str]) -> (Output, PathBuf) {
    let _one_at_a_time = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let store_path = store.path();
    let mut args = vec![
        "test",
        "--target",
        "postgres",
        "--workload",
        workload,
        "--isolation",
        isolation,
        "--concurrency",
        "10",
        "--store",
        &store_path,
    ];
    args.extend_from_slice(extra);
    let out = faultline(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or("")
            .to_string()
    };
    eprintln!(
        "{workload} at {isolation} {extra:?}: {} / {}",
        line("recorded"),
        line("verdict")
    );
    let dir = store.latest();
    let test = read_json(&dir.join("test.json"));
    assert_eq!(
        test["target_options"]["isolation"], isolation,
        "in test.json"
    );
    // Nothing of the server outlives the run.
    let leftovers = Command::new("pgrep")
        .args(["-a", "-f", &dir.to_string_lossy()])
        .output()
        .unwrap();
    let leftovers: Vec<String> = String::from_utf8_lossy(&leftovers.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(str::to_string)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(
        dir.join("nodes/n1/postgres.log").exists(),
        "the server's log is in the run"
    );
    (out, dir)
}

/// The result's anomaly types and every model it rules out (`not` and `also-not`).
fn anomalies_and_ruled_out(run: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let results = read_json(&run.join("results.json"));
    let names = |field: &str| -> BTreeSet<String> {
        results["result"][field]
            .as_array()
            .unwrap_or_else(|| panic!("results.json has {field}: {results}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let mut ruled_out = names("not");
    ruled_out.extend(names("also-not"));
    (names("anomaly-types"), ruled_out)
}

/// The fault kinds a run's history recorded.
fn faults(run: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|op| op["process"] == "nemesis")
        .map(|op| op["f"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn repeatable_read_lets_write_skew_through_and_serializable_does_not() {
    let store = Store::new("postgres", "skew");
    // rw-register's shape is write skew's: three keys, transactions that read two of them
    // and write one.
    let (out, dir) = run(
        &store,
        "rw-register",
        "repeatable-read",
        &[
            "--nemesis",
            "none",
            "--rate",
            "0",
            "--consistency",
            "serializable",
            "--time-limit",
            "8",
            "--seed",
            "11",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (anomalies, ruled_out) = anomalies_and_ruled_out(&dir);
    assert!(anomalies.contains("G2-item"), "{anomalies:?}");
    assert!(ruled_out.contains("serializable"), "{ruled_out:?}");
    assert!(
        !ruled_out.contains("snapshot-isolation"),
        "PostgreSQL's repeatable read is snapshot isolation: {ruled_out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("G2-item"));

    // Serializable, under kills and pauses, checked for strict serializability (the default).
    for workload in ["rw-register", "list-append"] {
        let (out, dir) = run(
            &store,
            workload,
            "serializable",
            &[
                "--nemesis",
                "pause,kill",
                // Bounded: with the server down, operations fail at once.
                "--rate",
                "300",
                "--time-limit",
                "12",
                "--seed",
                "12",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{workload}: {}", text(&out));
        let results = read_json(&dir.join("results.json"));
        assert_eq!(results["result"]["consistency"][0], "strict-serializable");
        assert!(results["stats"]["ok"].as_u64().unwrap() > 50, "{results}");
        let faults = faults(&dir);
        assert!(
            faults.contains("kill") || faults.contains("pause"),
            "{workload}: faults were injected: {faults:?}"
        );
    }
}

#[test]
fn the_bank_keeps_its_total_unless_reads_are_only_committed() {
    let store = Store::new("postgres", "bank");
    for isolation in ["serializable", "repeatable-read"] {
        let (out, dir) = run(
            &store,
            "bank",
            isolation,
            &[
                "--nemesis",
                "pause,kill",
                "--rate",
                "300",
                "--time-limit",
                "10",
                "--seed",
                "13",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{isolation}: {}", text(&out));
        let results = read_json(&dir.join("results.json"));
        assert!(results["stats"]["ok"].as_u64().unwrap() > 50, "{results}");
    }
    // Read committed: two transfers read the same balance and both write what they computed
    // from it; one of the updates is lost.
    let (out, dir) = run(
        &store,
        "bank",
        "read-committed",
        &[
            "--nemesis",
            "none",
            "--rate",
            "0",
            "--time-limit",
            "8",
            "--seed",
            "14",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (anomalies, ruled_out) = anomalies_and_ruled_out(&dir);
    assert!(anomalies.contains("wrong-total"), "{anomalies:?}");
    assert!(ruled_out.contains("snapshot-isolation"), "{ruled_out:?}");
}
