//! `faultline test --target memory` end to end: the binary as users run it, against the
//! in-process store, with and without its bug switches (each run 1-2 s).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod run_support;
use run_support::{faultline, read_json, text};

/// A fresh store directory for one test.
fn store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `faultline test --target memory` with a store and the given extra arguments.
fn test_run(store: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "test",
        "--target",
        "memory",
        "--store",
        store.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    faultline(&args)
}

/// `faultline check --json` on a stored history: (exit status, the JSON line).
fn check(history: &Path) -> (Option<i32>, Value) {
    let out = faultline(&["check", "--json", history.to_str().unwrap()]);
    let line = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(line.lines().next().unwrap_or("null")).unwrap();
    (out.status.code(), value)
}

#[test]
fn a_register_run_is_valid_and_leaves_the_store_layout() {
    let store = store("register");
    let out = test_run(
        &store,
        &[
            "--workload",
            "register",
            "--time-limit",
            "2",
            "--seed",
            "11",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verdict: valid"), "{stdout}");
    assert!(stdout.contains("--seed 11"), "the rerun command: {stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("faultline test: seed 11"));

    let latest = store.join("latest");
    let target = std::fs::read_link(&latest).expect("store/latest is a symlink");
    assert!(
        target.starts_with("memory-register"),
        "{}",
        target.display()
    );
    let run = store.join(&target);
    let test = read_json(&run.join("test.json"));
    assert_eq!(test["seed"], 11);
    assert_eq!(test["workload"], "register");
    assert_eq!(test["concurrency"], 10);
    assert!(test["limits"]["op_timeout_ms"].as_u64().is_some());
    let results = read_json(&run.join("results.json"));
    assert_eq!(results["valid"], true);
    assert_eq!(results["checker"], "linearizability");
    assert!(results["stats"]["ops"].as_u64().unwrap() > 500, "{results}");
    let log = std::fs::read_to_string(run.join("faultline.log")).unwrap();
    assert!(log.contains("seed 11"), "{log}");

    // The stored history is what `faultline check` reads, with the same verdict.
    let (status, line) = check(&latest.join("history.jsonl"));
    assert_eq!(status, Some(0), "{line}");
    assert_eq!(line["valid"], true);
    assert_eq!(line["model"], "cas-register");
    assert_eq!(line["ops"], results["stats"]["ops"]);
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn the_stale_read_bug_is_found_invalid() {
    let store = store("stale-read");
    let out = test_run(
        &store,
        &[
            "--bug",
            "stale-read",
            "--time-limit",
            "2",
            "--rate",
            "2000",
            "--seed",
            "12",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verdict: INVALID"), "{stdout}");
    assert!(stdout.contains("--bug stale-read"), "{stdout}");
    let results = read_json(&store.join("latest/results.json"));
    assert_eq!(results["valid"], false);
    assert!(!results["result"]["failures"].as_array().unwrap().is_empty());
    let (status, line) = check(&store.join("latest/history.jsonl"));
    assert_eq!(
        (status, &line["valid"]),
        (Some(1), &Value::Bool(false)),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn a_set_run_is_valid() {
    let store = store("set");
    let out = test_run(
        &store,
        &["--workload", "set", "--time-limit", "1.5", "--seed", "13"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let results = read_json(&store.join("latest/results.json"));
    assert_eq!(results["checker"], "set");
    let result = &results["result"];
    assert_eq!(result["lost_count"], 0);
    assert_eq!(result["never_read_count"], 0);
    assert_eq!(result["reads"], 5, "one final read per key: {result}");
    assert!(result["acknowledged"].as_u64().unwrap() > 500, "{result}");
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn the_lost_write_bug_loses_set_elements() {
    let store = store("lost-write");
    let out = test_run(
        &store,
        &[
            "--workload",
            "set",
            "--bug",
            "lost-write",
            "--time-limit",
            "1.5",
            "--seed",
            "14",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let results = read_json(&store.join("latest/results.json"));
    assert_eq!(results["valid"], false);
    assert!(
        results["result"]["lost_count"].as_u64().unwrap() > 0,
        "{results}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("lost: "));
    // `faultline check` agrees, with the set model's linearizability.
    let (status, line) = check(&store.join("latest/history.jsonl"));
    assert_eq!(status, Some(1), "{line}");
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn timeouts_are_recorded_as_info_and_the_history_stays_checkable() {
    let store = store("timeouts");
    // Latencies up to 30 ms against a 20 ms timeout: about a third of the operations time out.
    let out = test_run(
        &store,
        &[
            "--latency-ms",
            "30",
            "--op-timeout-ms",
            "20",
            "--time-limit",
            "1.5",
            "--seed",
            "16",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let results = read_json(&store.join("latest/results.json"));
    let stats = &results["stats"];
    assert!(stats["info"].as_u64().unwrap() > 10, "{stats}");
    assert!(stats["ok"].as_u64().unwrap() > 10, "{stats}");
    let history = std::fs::read_to_string(store.join("latest/history.jsonl")).unwrap();
    let timeout = history
        .lines()
        .find(|l| l.contains("\"type\":\"info\""))
        .unwrap();
    assert!(timeout.contains("\"error\":\"timeout\""), "{timeout}");
    // Well formed (no process invokes again after its info) and valid.
    let (status, line) = check(&store.join("latest/history.jsonl"));
    assert_eq!(status, Some(0), "{line}");
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn a_run_killed_with_sigkill_leaves_a_checkable_history() {
    let store = store("sigkill");
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "test",
            "--target",
            "memory",
            "--time-limit",
            "60",
            "--rate",
            "0",
        ])
        .args(["--concurrency", "20", "--store", store.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the history has a good number of events, then kill without warning.
    let history = store.join("latest/history.jsonl");
    let started = Instant::now();
    while std::fs::metadata(&history).map_or(0, |m| m.len()) < 200_000 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the run never started writing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (status, line) = check(&history);
    assert_eq!(status, Some(0), "{line}");
    assert_eq!(line["valid"], true);
    assert!(line["ops"].as_u64().unwrap() > 1_000, "{line}");
    assert!(store.join("latest/test.json").exists());
    assert!(
        !store.join("latest/results.json").exists(),
        "it was killed before checking"
    );
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn ctrl_c_stops_the_run_and_still_checks_and_stores_results() {
    let store = store("sigint");
    let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "test",
            "--target",
            "memory",
            "--time-limit",
            "60",
            "--seed",
            "15",
        ])
        .args(["--store", store.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let history = store.join("latest/history.jsonl");
    let started = Instant::now();
    while std::fs::metadata(&history).map_or(0, |m| m.len()) < 20_000 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the run never started writing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the interrupt was honoured"
    );
    // A valid but interrupted run is not a full pass: unknown, exit 2.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let results = read_json(&store.join("latest/results.json"));
    assert_eq!(results["interrupted"], true);
    assert_eq!(results["valid"], true);
    assert!(String::from_utf8_lossy(&out.stdout).contains("interrupted"));
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn unknown_or_unsuitable_targets_workloads_and_faults_are_bad_arguments() {
    let store = store("bad-args");
    let s = store.to_str().unwrap();
    for (args, expected) in [
        (
            vec![
                "test",
                "--target",
                "postgres",
                "--nemesis",
                "pause,partition",
                "--store",
                s,
            ],
            "cannot take the partition fault",
        ),
        (
            vec![
                "test",
                "--target",
                "postgres",
                "--workload",
                "set",
                "--store",
                s,
            ],
            "cannot run the set workload",
        ),
        (
            vec![
                "test",
                "--target",
                "memory",
                "--isolation",
                "repeatable-read",
                "--store",
                s,
            ],
            "--isolation applies only to --target postgres",
        ),
        (
            vec!["test", "--target", "nosuch", "--store", s],
            "unknown target",
        ),
        (
            vec![
                "test", "--target", "raftkv", "--clock", "system", "--store", s,
            ],
            "--clock system needs --hosts",
        ),
        (
            vec![
                "test",
                "--target",
                "memory",
                "--nemesis",
                "partition",
                "--store",
                s,
            ],
            "nemesis \"partition\" needs a network",
        ),
        (
            vec![
                "test", "--target", "memory", "--bug", "nosuch", "--store", s,
            ],
            "no bug \"nosuch\"",
        ),
        (
            vec![
                "test",
                "--target",
                "memory",
                "--workload",
                "nosuch",
                "--store",
                s,
            ],
            "unknown workload",
        ),
        (
            vec![
                "test",
                "--target",
                "memory",
                "--concurrency",
                "0",
                "--store",
                s,
            ],
            "--concurrency",
        ),
    ] {
        let out = faultline(&args);
        assert_eq!(out.status.code(), Some(254), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert!(!store.exists(), "nothing is stored for a bad argument");
}
