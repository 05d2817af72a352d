//! `faultline test --target raftkv` end to end: local node processes started from the
//! faultline binary itself (`faultline raftkv-server`), with kill and pause faults. Each run is
//! a few seconds of operations plus setup and teardown.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("faultline runs")
}

/// A fresh store directory for one test.
fn store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-raftkv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn history(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .expect("history.jsonl exists")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// The pids of every node process the run started, from its log.
fn started_pids(run: &Path) -> Vec<u32> {
    let log = std::fs::read_to_string(run.join("faultline.log")).expect("faultline.log");
    log.lines()
        .filter(|l| l.contains("started raftkv node"))
        .map(|l| {
            let pid = l.split("pid=").nth(1).expect("a pid field");
            let digits: String = pid.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().expect("a pid")
        })
        .collect()
}

/// Whether `pid` is still a raftkv node of this run (a reused pid running something else is
/// not).
fn is_our_node(pid: u32, run: &Path) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("raftkv-server") && cmdline.contains(&*run.to_string_lossy())
        }
        Err(_) => false,
    }
}

fn latest(store: &Path) -> PathBuf {
    std::fs::canonicalize(store.join("latest")).expect("store/latest")
}

#[test]
fn kill_and_pause_run_valid_and_leave_no_node_behind() {
    let store = store("faults");
    let out = faultline(&[
        "test",
        "--target",
        "raftkv",
        "--nodes",
        "3",
        "--nemesis",
        "kill,pause",
        "--time-limit",
        "8",
        "--seed",
        "7",
        "--store",
        &store.to_string_lossy(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout.contains("verdict: valid"), "{stdout}");
    let run = latest(&store);
    let events = history(&run);
    let nemesis: Vec<&Value> = events
        .iter()
        .filter(|e| e["process"] == "nemesis")
        .collect();
    assert!(!nemesis.is_empty(), "no nemesis events");
    for event in &nemesis {
        assert_eq!(event["type"], "info", "{event}");
        assert!(
            ["kill", "start", "pause", "resume", "heal"].contains(&event["f"].as_str().unwrap()),
            "{event}"
        );
        if event["f"] != "heal" {
            let nodes = event["value"]["nodes"]
                .as_array()
                .expect("the nodes acted on");
            assert!(
                nodes.iter().all(|n| n.as_str().unwrap().starts_with('n')),
                "{event}"
            );
        }
    }
    // Every fault was undone before the run ended: as many undos as faults.
    let count = |f: &str| nemesis.iter().filter(|e| e["f"] == f).count();
    assert_eq!(count("kill"), count("start"));
    assert_eq!(count("pause"), count("resume"));
    assert!(
        events.iter().any(|e| e["type"] == "ok"),
        "no operation succeeded"
    );
    let pids = started_pids(&run);
    assert!(pids.len() >= 3, "{pids:?}");
    let alive: Vec<u32> = pids.into_iter().filter(|&p| is_our_node(p, &run)).collect();
    assert!(alive.is_empty(), "node processes left running: {alive:?}");
    for node in ["n1", "n2", "n3"] {
        assert!(run.join("nodes").join(format!("{node}.log")).is_file());
    }
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn stale_read_under_pauses_completes_with_a_checkable_history() {
    let store = store("stale");
    let out = faultline(&[
        "test",
        "--target",
        "raftkv",
        "--nodes",
        "3",
        "--bug",
        "stale-read",
        "--nemesis",
        "pause",
        "--time-limit",
        "6",
        "--store",
        &store.to_string_lossy(),
    ]);
    // Whether this run catches a stale read is up to timing: valid or invalid, not an error.
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    let run = latest(&store);
    let check = faultline(&["check", &run.join("history.jsonl").to_string_lossy()]);
    assert_eq!(check.status.code(), out.status.code(), "{check:?}");
    let alive: Vec<u32> = started_pids(&run)
        .into_iter()
        .filter(|&p| is_our_node(p, &run))
        .collect();
    assert!(alive.is_empty(), "node processes left running: {alive:?}");
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn a_nemesis_the_target_cannot_apply_is_a_bad_argument() {
    let out = faultline(&["test", "--target", "memory", "--nemesis", "kill"]);
    assert_eq!(out.status.code(), Some(254), "{out:?}");
    // etcd (Go) reads the clock without libc, so libfaketime cannot move it.
    let out = faultline(&["test", "--target", "etcd", "--nemesis", "clock"]);
    assert_eq!(out.status.code(), Some(254), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("clock"),
        "{out:?}"
    );
}

/// The `election` nemesis cuts the leader off and pauses it, and resumes it while it is still
/// cut off. raftkv's lease-read bug (a lease counted in the leader's ticks, which stop while it
/// is paused) then answers reads from the resumed old leader's stale state: INVALID. The
/// correct store under the same faults is valid (its reads need a quorum the old leader no
/// longer has).
///
/// A fault exposes the bug when one of the old leader's two workers reads in the ~100 ms its
/// lease outlives the pause (a third to a half of the faults, see docs/bug-table.md); a 20 s
/// run has four or five faults (seeds 1-8 of this debug build: 8 of 8 runs INVALID), and
/// `--test-count 3` runs again, with a derived seed, after a run that missed it, so a miss of
/// all three is well under one in a thousand. The correct store runs 10 s (two faults).
#[test]
fn election_faults_catch_lease_reads_and_leave_the_correct_store_valid() {
    let store = store("election");
    let run = |bug: Option<&str>, seconds: &str, test_count: &str| {
        let mut args = vec![
            "test",
            "--target",
            "raftkv",
            "--nemesis",
            "election",
            "--time-limit",
            seconds,
            "--seed",
            "1",
            "--test-count",
            test_count,
            "--store",
        ];
        let store = store.to_string_lossy().to_string();
        args.push(&store);
        if let Some(bug) = bug {
            args.extend(["--bug", bug]);
        }
        faultline(&args)
    };
    let out = run(Some("lease-read"), "20", "3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout.contains("verdict: INVALID"), "{stdout}");
    let invalid = latest(&store);
    let nemesis: Vec<String> = history(&invalid)
        .into_iter()
        .filter(|e| e["process"] == "nemesis")
        .map(|e| e["f"].as_str().unwrap().to_string())
        .collect();
    // Each election fault: the leader cut off, paused, resumed while cut off, then healed.
    let faults: Vec<&[String]> = nemesis[..nemesis.len() - 1].chunks(4).collect();
    assert!(!faults.is_empty(), "{nemesis:?}");
    for fault in faults {
        assert_eq!(
            fault,
            ["start-partition", "pause", "resume", "stop-partition"],
            "{nemesis:?}"
        );
    }
    assert_eq!(nemesis.last().map(String::as_str), Some("heal"));

    let out = run(None, "10", "1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout.contains("verdict: valid"), "{stdout}");
    let valid = latest(&store);
    for run in [&invalid, &valid] {
        let alive: Vec<u32> = started_pids(run)
            .into_iter()
            .filter(|&p| is_our_node(p, run))
            .collect();
        assert!(alive.is_empty(), "node processes left running: {alive:?}");
    }
    let _ = std::fs::remove_dir_all(&store);
}

/// The `restart-voter` nemesis makes two candidates campaign in one term with one voter in
/// common, and kills and restarts that voter after it voted for the first and before the
/// second asks it. raftkv's forget-vote bug (the vote is not persisted) lets the restarted
/// voter vote again: two leaders in one term, each committing its own writes: INVALID, and
/// the nodes log the broken invariant. The correct store under the same faults is valid.
///
/// The fault steers every step (cuts, pauses, one kill); about half the faults of a run
/// elected two leaders in the release runs of docs/bug-table.md (the first of a run 4 times in
/// 5; later ones meet logs that an earlier split brain left disagreeing). A 20 s run has
/// three faults, and `--test-count 3` runs again, with a derived seed, after a run that
/// missed it. The correct store runs 12 s (one or two faults).
#[test]
fn restart_voter_faults_catch_forgotten_votes_and_leave_the_correct_store_valid() {
    let store = store("restart-voter");
    let run = |bug: Option<&str>, seconds: &str, test_count: &str| {
        let mut args = vec![
            "test",
            "--target",
            "raftkv",
            "--nemesis",
            "restart-voter",
            "--time-limit",
            seconds,
            "--seed",
            "1",
            "--test-count",
            test_count,
            "--store",
        ];
        let store = store.to_string_lossy().to_string();
        args.push(&store);
        if let Some(bug) = bug {
            args.extend(["--bug", bug]);
        }
        faultline(&args)
    };
    let node_logs = |run: &Path| -> String {
        (1..=5)
            .map(|i| {
                std::fs::read_to_string(run.join(format!("nodes/n{i}.log"))).unwrap_or_default()
            })
            .collect()
    };
    let out = run(Some("forget-vote"), "20", "3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout.contains("verdict: INVALID"), "{stdout}");
    let invalid = latest(&store);
    assert!(
        node_logs(&invalid).contains("two leaders in term"),
        "the INVALID run elected two leaders in one term"
    );
    let nemesis: Vec<String> = history(&invalid)
        .into_iter()
        .filter(|e| e["process"] == "nemesis")
        .map(|e| e["f"].as_str().unwrap().to_string())
        .collect();
    // Each fault: 13 steps, from the first cut to the heal of every link.
    assert_eq!(nemesis[0], "start-partition", "{nemesis:?}");
    assert!(nemesis[..13].contains(&"kill".to_string()), "{nemesis:?}");
    assert_eq!(nemesis[12], "stop-partition", "{nemesis:?}");
    assert_eq!(nemesis.last().map(String::as_str), Some("heal"));

    let out = run(None, "12", "1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout.contains("verdict: valid"), "{stdout}");
    let valid = latest(&store);
    assert!(!node_logs(&valid).contains("invariant broken"));
    for run in [&invalid, &valid] {
        let alive: Vec<u32> = started_pids(run)
            .into_iter()
            .filter(|&p| is_our_node(p, run))
            .collect();
        assert!(alive.is_empty(), "node processes left running: {alive:?}");
    }
    let _ = std::fs::remove_dir_all(&store);
}

/// The `figure-8` nemesis builds Raft's Figure 8 step by step: a leader's writes stored on
/// it and one follower, a second leader elected without them whose first entry conflicts with
/// them, the first leader elected again shipping the first of its old writes past the second
/// leader's log to a third node and cut off from it before its own no-op follows, then the
/// second leader elected over the nodes whose logs end in the old term. raftkv's
/// old-term-commit bug (a leader commits an entry of an earlier term once a majority stores
/// it) acknowledges that write, and the last election overwrites it: the set workload's final
/// reads miss an acknowledged element, INVALID. The correct store keeps the write pending until
/// it times out (`info`) under the same faults: valid.
///
/// The set workload, because every element is added once: a lost add is missing from every
/// later read whatever else was written (the register workload's values 0-4 let a concurrent
/// write of the second leader's hide a lost write). 10 workers at 50 ops/s, as in
/// docs/bug-table.md: light enough that the followers are often level with the leader when
/// the fault starts, which the nemesis needs (else it ends the fault early and tries again
/// later). A wrong commit leaves the old leader and its partner holding an entry the others
/// overwrote, which they never drop, so later faults of the run wait for logs that never
/// converge and are skipped; `--test-count 4` runs again, with a derived seed, after a run in
/// which no fault took every step.
#[test]
fn figure_8_faults_catch_old_term_commits_and_leave_the_correct_store_valid() {
    let store = store("figure-8");
    let run = |bug: Option<&str>, seconds: &str, test_count: &str| {
        let store = store.to_string_lossy().to_string();
        let mut args = vec![
            "test",
            "--target",
            "raftkv",
            "--workload",
            "set",
            "--nemesis",
            "figure-8",
            "--time-limit",
            seconds,
            "--seed",
            "1",
            "--test-count",
            test_count,
            "--concurrency",
            "10",
            "--rate",
            "50",
            "--store",
            &store,
        ];
        if let Some(bug) = bug {
            args.extend(["--bug", bug]);
        }
        faultline(&args)
    };
    let out = run(Some("old-term-commit"), "20", "4");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout.contains("verdict: INVALID"), "{stdout}");
    let invalid = latest(&store);
    let stages: Vec<String> = history(&invalid)
        .into_iter()
        .filter(|e| e["process"] == "nemesis" && e["f"] == "start-partition")
        .map(|e| e["value"]["stage"].as_str().unwrap_or("").to_string())
        .collect();
    // A fault that took every step: the old leader cut from the follower that completed its
    // old entries' majority, then the overwrite.
    for stage in ["pair", "elect", "reelect", "cut", "overwrite"] {
        assert!(stages.iter().any(|s| s == stage), "{stage}: {stages:?}");
    }
    let test_json: Value =
        serde_json::from_str(&std::fs::read_to_string(invalid.join("test.json")).unwrap()).unwrap();
    assert_eq!(test_json["limits"]["op_timeout_ms"], 20_000, "{test_json}");
    // The loss itself: an acknowledged add that the final reads, through the leader that
    // overwrote it, do not contain.
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(invalid.join("results.json")).unwrap())
            .unwrap();
    let lost = results["result"]["lost_count"].as_u64().unwrap_or(0);
    assert!(lost >= 1, "{results}");
    assert_eq!(results["result"]["unexpected_count"], 0, "{results}");

    let out = run(None, "15", "1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout.contains("verdict: valid"), "{stdout}");
    let valid = latest(&store);
    for run in [&invalid, &valid] {
        let alive: Vec<u32> = started_pids(run)
            .into_iter()
            .filter(|&p| is_our_node(p, run))
            .collect();
        assert!(alive.is_empty(), "node processes left running: {alive:?}");
    }
    let _ = std::fs::remove_dir_all(&store);
}
