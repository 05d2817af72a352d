//! `faultline check --model list-append|rw-register|bank [--consistency C]` and
//! `--model register --consistency causal`, on our JSON Lines and Elle's EDN: verdict lines,
//! `--json` fields, exit codes (CONTRACTS.md §2).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("faultline runs")
}

fn elle(name: &str) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/elle")
        .join(name);
    if path.is_file() {
        Some(path.display().to_string())
    } else {
        eprintln!("note: {} is absent; skipped", path.display());
        None
    }
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-check-txn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json_lines(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each stdout line is JSON"))
        .collect()
}

/// Write skew in our JSON Lines: each transaction read the key the other appended to.
const WRITE_SKEW: &str = r#"{"process":0,"type":"invoke","f":"txn","value":[["r","x",null],["append","y",1]]}
{"process":1,"type":"invoke","f":"txn","value":[["r","y",null],["append","x",1]]}
{"process":0,"type":"ok","f":"txn","value":[["r","x",[]],["append","y",1]]}
{"process":1,"type":"ok","f":"txn","value":[["r","y",[]],["append","x",1]]}
"#;

#[test]
fn elle_edn_histories_check_as_list_append() {
    let Some(file) = elle("si-without-g-single.edn") else {
        return;
    };
    let out = faultline(&["check", "--model", "list-append", &file]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).contains("NOT strict-serializable"),
        "{}",
        stdout(&out)
    );
    let out = faultline(&[
        "check",
        "--model",
        "list-append",
        "--consistency",
        "snapshot-isolation",
        &file,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = faultline(&[
        "check",
        "--model",
        "list-append",
        "--consistency",
        "snapshot-isolation,repeatable-read",
        "--json",
        &file,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let line = &json_lines(&out)[0];
    assert_eq!(line["valid"], false);
    assert_eq!(line["model"], "list-append");
    assert_eq!(line["ops"], 4);
    assert_eq!(line["anomaly-types"], serde_json::json!(["G2-item"]));
    assert_eq!(line["anomaly_types"], serde_json::json!(["G2-item"]));
    assert_eq!(line["not"], serde_json::json!(["repeatable-read"]));
    assert!(line["also-not"].as_array().unwrap().len() >= 2);
    let witness = &line["anomalies"]["G2-item"][0];
    assert!(witness["explanation"]
        .as_str()
        .unwrap()
        .contains("However,"));
    assert!(!witness["cycle"].as_array().unwrap().is_empty());
    assert!(line["elapsed_ms"].is_number());
}

#[test]
fn our_json_lines_check_too() {
    let file = scratch("skew.jsonl", WRITE_SKEW);
    let file = file.to_str().unwrap();
    let out = faultline(&[
        "check",
        "--model",
        "list-append",
        "--consistency",
        "serializable",
        file,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("G2-item"), "{}", stdout(&out));
    let out = faultline(&[
        "check",
        "--model",
        "list-append",
        "--consistency",
        "snapshot-isolation",
        file,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let rw = scratch(
        "rw.jsonl",
        r#"{"process":0,"type":"invoke","f":"txn","value":[["w","x",1]]}
{"process":0,"type":"ok","f":"txn","value":[["w","x",1]]}
{"process":1,"type":"invoke","f":"txn","value":[["r","x",null]]}
{"process":1,"type":"ok","f":"txn","value":[["r","x",1]]}
"#,
    );
    let out = faultline(&["check", "--model", "rw-register", rw.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("valid: strict-serializable"));
}

#[test]
fn bank_histories_take_the_total_from_init() {
    let file = scratch(
        "bank.jsonl",
        r#"{"process":0,"type":"invoke","f":"read","value":null}
{"process":0,"type":"ok","f":"read","value":{"0":10,"1":10}}
{"process":1,"type":"invoke","f":"transfer","value":{"from":0,"to":1,"amount":5}}
{"process":1,"type":"ok","f":"transfer","value":{"from":0,"to":1,"amount":5}}
{"process":0,"type":"invoke","f":"read","value":null}
{"process":0,"type":"ok","f":"read","value":{"0":5,"1":10}}
"#,
    );
    let file = file.to_str().unwrap();
    let out = faultline(&["check", "--model", "bank", "--init", "20", "--json", file]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        json_lines(&out)[0]["anomaly-types"],
        serde_json::json!(["wrong-total"])
    );
    let out = faultline(&["check", "--model", "bank", "--init", "15", file]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let out = faultline(&["check", "--model", "bank", "--init", "\"lots\"", file]);
    assert_eq!(out.status.code(), Some(254));
}

#[test]
fn registers_check_for_causal_consistency() {
    let file = scratch(
        "ryw.jsonl",
        r#"{"process":0,"type":"invoke","f":"write","key":"x","value":1}
{"process":0,"type":"ok","f":"write","key":"x","value":1}
{"process":0,"type":"invoke","f":"read","key":"x","value":null}
{"process":0,"type":"ok","f":"read","key":"x","value":null}
"#,
    );
    let file = file.to_str().unwrap();
    let out = faultline(&[
        "check",
        "--model",
        "register",
        "--consistency",
        "causal",
        "--json",
        file,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let line = &json_lines(&out)[0];
    assert_eq!(
        line["anomaly-types"],
        serde_json::json!(["read-your-writes"])
    );
    assert_eq!(line["not"], serde_json::json!(["read-your-writes"]));
    // Without --model, a causal --consistency means registers too.
    let out = faultline(&["check", "--consistency", "causal", file]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    // And linearizability is still the default for registers.
    let out = faultline(&["check", "--model", "register", file]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("NOT linearizable"));
}

#[test]
fn bad_arguments_and_inputs_exit_254() {
    let file = scratch("skew2.jsonl", WRITE_SKEW);
    let file = file.to_str().unwrap();
    for args in [
        vec![
            "check",
            "--model",
            "list-append",
            "--consistency",
            "bogus",
            file,
        ],
        vec![
            "check",
            "--model",
            "bank",
            "--consistency",
            "causal-memory",
            file,
        ],
        vec![
            "check",
            "--model",
            "register",
            "--consistency",
            "serializable",
            file,
        ],
        vec!["check", "--model", "no-such-model", file],
        vec!["check", "--model", "list-append", "/no/such/file.jsonl"],
    ] {
        let out = faultline(&args);
        assert_eq!(out.status.code(), Some(254), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty());
    }
    // Appends that are not unique break list-append's assumption: bad input, named.
    let dup = scratch(
        "dup.jsonl",
        r#"{"process":0,"type":"invoke","f":"txn","value":[["append","x",1]]}
{"process":0,"type":"ok","f":"txn","value":[["append","x",1]]}
{"process":1,"type":"invoke","f":"txn","value":[["append","x",1]]}
{"process":1,"type":"ok","f":"txn","value":[["append","x",1]]}
"#,
    );
    let out = faultline(&["check", "--model", "list-append", dup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unique appends"));
}

#[test]
fn a_tiny_time_limit_is_unknown_exit_2() {
    let Some(file) = elle("huge-scc.edn") else {
        return;
    };
    let out = faultline(&[
        "check",
        "--model",
        "list-append",
        "--time-limit",
        "0.000001",
        "--json",
        &file,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let line = &json_lines(&out)[0];
    assert_eq!(line["valid"], "unknown");
    assert!(line["reason"].as_str().unwrap().contains("time limit"));
}
