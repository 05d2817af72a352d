//! `faultline test --target-file --lab 3`: the Python example on lab hosts (root only:
//! network namespaces with sshd), driven over SSH exactly as VMs would be — the store uploaded
//! and started through each host's SSH remote, partitioned with iptables, its logs downloaded.
//! The flaw is found, and the fix passes. Each test brings up a lab with a name unique to it
//! for its run, and a guard takes that lab down even when an assertion fails.

mod lab_support;

use lab_support::{faultline, root, text, Down};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A lab name unique to this test process and test (at most 8 characters; `b` for
/// bring-your-own, so it never meets the names of the other lab tests).
fn lab_name(letter: char) -> String {
    format!("b{}{letter}", std::process::id() % 1_000_000)
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/python-kv/store.toml")
        .to_string_lossy()
        .to_string()
}

fn store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-byo-lab-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs the example on lab `name` of 3 hosts, brought up for the run; returns the run's
/// output and store.
fn lab_run(name: &str, reads: &str, nemesis: &str, seconds: &str) -> (Output, PathBuf) {
    let store = store(name);
    let out = faultline(&[
        "test",
        "--target-file",
        &example(),
        "--var",
        &format!("reads={reads}"),
        "--lab",
        "3",
        "--lab-name",
        name,
        "--nemesis",
        nemesis,
        // One worker per node: each is a Python program, and they all start at once.
        "--concurrency",
        "3",
        "--time-limit",
        seconds,
        "--rate",
        "100",
        "--seed",
        "21",
        "--store",
        &store.to_string_lossy(),
    ]);
    (out, store)
}

/// What a lab run leaves: addresses of the lab's hosts in test.json, each host's store log
/// downloaded, iptables partitions in the history, and the lab taken down.
fn assert_lab_run(store: &Path, name: &str, out: &Output) {
    let run = std::fs::canonicalize(store.join("latest")).expect("store/latest");
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
    let addresses = test["addresses"].as_object().expect("addresses");
    assert_eq!(addresses.len(), 3, "{addresses:?}");
    assert!(addresses
        .values()
        .all(|a| a.as_str().unwrap().starts_with("10.88.")));
    for node in ["n1", "n2", "n3"] {
        let log = run.join("nodes").join(node).join("store.log");
        let log = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{log:?}: {e}"));
        // Each store listened on its own host's address, not on loopback.
        let address = addresses[node].as_str().unwrap();
        assert!(
            log.contains(&format!("serving clients on {address}:8100")),
            "{log}"
        );
    }
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"start-partition\""),
        "partitions were injected"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("lab {name} (brought up for this run) is down")),
        "{stderr}"
    );
}

#[test]
fn the_python_stores_flaw_is_found_in_the_lab() {
    if !root() {
        return;
    }
    let name = lab_name('f');
    let _guard = Down(name.clone());
    let (out, store) = lab_run(&name, "backup", "partition", "10");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verdict: INVALID"));
    assert_lab_run(&store, &name, &out);
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn the_fixed_python_store_passes_in_the_lab() {
    if !root() {
        return;
    }
    let name = lab_name('p');
    let _guard = Down(name.clone());
    let (out, store) = lab_run(&name, "primary", "partition,kill", "6");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verdict: valid"));
    assert_lab_run(&store, &name, &out);
    let _ = std::fs::remove_dir_all(&store);
}
