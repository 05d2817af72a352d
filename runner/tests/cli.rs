//! `faultline check` as users' scripts call it: verdict lines, `--json`, exit codes
//! (CONTRACTS.md §2).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("faultline runs")
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/histories")
        .join(name)
        .display()
        .to_string()
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each stdout line is JSON"))
        .collect()
}

#[test]
fn a_valid_history_exits_0() {
    let out = faultline(&["check", &example("register-valid.jsonl")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(": linearizable (cas-register"));
}

#[test]
fn an_invalid_history_exits_1_with_an_explanation() {
    let out = faultline(&["check", &example("register-stale-read.jsonl")]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NOT linearizable"), "{text}");
    assert!(text.contains("smallest failing window"), "{text}");
}

#[test]
fn json_output_has_the_contract_fields() {
    let out = faultline(&[
        "check",
        "--json",
        &example("register-stale-read.jsonl"),
        &example("register-valid.jsonl"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    let bad = &lines[0];
    assert_eq!(bad["valid"], Value::Bool(false));
    assert_eq!(bad["model"], "cas-register");
    assert_eq!(bad["ops"], 6);
    assert!(bad["elapsed_ms"].as_f64().is_some());
    assert!(bad["file"]
        .as_str()
        .unwrap()
        .ends_with("register-stale-read.jsonl"));
    assert_eq!(bad["not"], serde_json::json!(["linearizable"]));
    let anomaly = &bad["anomalies"][0];
    assert_eq!(anomaly["type"], "nonlinearizable");
    assert_eq!(anomaly["key"], "x");
    assert_eq!(anomaly["op"]["f"], "read");
    assert!(anomaly["window"].as_array().is_some_and(|w| !w.is_empty()));
    assert_eq!(lines[1]["valid"], Value::Bool(true));
}

#[test]
fn files_are_reported_in_the_order_given_though_the_largest_is_checked_first() {
    let (small, large) = (
        example("register-valid.jsonl"),
        example("register-stale-read.jsonl"),
    );
    assert!(std::fs::metadata(&small).unwrap().len() < std::fs::metadata(&large).unwrap().len());
    let out = faultline(&["check", "--json", &small, &large, &small]);
    assert_eq!(out.status.code(), Some(1));
    let valid: Vec<Value> = json_lines(&out)
        .iter()
        .map(|l| l["valid"].clone())
        .collect();
    assert_eq!(
        valid,
        [Value::Bool(true), Value::Bool(false), Value::Bool(true)]
    );
}

#[test]
fn the_time_limit_turns_a_hard_search_into_unknown_exit_2() {
    // Sixteen concurrent writes of distinct values, then reads no order can explain: proving
    // it needs every subset of the writes.
    let mut text = String::new();
    for p in 0..16 {
        text.push_str(&format!(
            "{{\"process\":{p},\"type\":\"invoke\",\"f\":\"write\",\"value\":{p}}}\n"
        ));
    }
    for p in 0..16 {
        text.push_str(&format!(
            "{{\"process\":{p},\"type\":\"ok\",\"f\":\"write\",\"value\":{p}}}\n"
        ));
    }
    for (p, v) in [(16, 3), (17, 99)] {
        text.push_str(&format!(
            "{{\"process\":{p},\"type\":\"invoke\",\"f\":\"read\",\"value\":null}}\n"
        ));
        text.push_str(&format!(
            "{{\"process\":{p},\"type\":\"ok\",\"f\":\"read\",\"value\":{v}}}\n"
        ));
    }
    let file = scratch("hard.jsonl", &text);
    let out = faultline(&[
        "check",
        "--json",
        "--time-limit",
        "0.001",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let line = &json_lines(&out)[0];
    assert_eq!(line["valid"], "unknown");
    assert!(
        line["reason"].as_str().unwrap().contains("time limit"),
        "{line}"
    );
}

#[test]
fn unreadable_input_exits_254_naming_file_and_line() {
    let file = scratch(
        "broken.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"process\":0,\"type\":\"okay\"}\n",
    );
    let out = faultline(&["check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(254));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.jsonl:2:"), "{err}");
}

#[test]
fn a_missing_file_exits_254() {
    let out = faultline(&["check", "/nonexistent/history.jsonl"]);
    assert_eq!(out.status.code(), Some(254));
}

#[test]
fn a_malformed_history_exits_254() {
    let file = scratch(
        "reuse.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n\
         {\"process\":0,\"type\":\"info\",\"f\":\"write\",\"value\":1}\n\
         {\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n",
    );
    let out = faultline(&["check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&out.stderr).contains("new process"));
}

#[test]
fn bad_arguments_exit_254() {
    let valid = example("register-valid.jsonl");
    for args in [
        vec!["check", "--model", "bogus", &valid],
        vec!["check", "--format", "xml", &valid],
        vec!["check", "--init", "{not json", &valid],
        vec!["check", "--consistency", "serializable", &valid],
        vec!["check", "--time-limit", "-1", &valid],
        vec!["check"],
        vec!["frobnicate"],
    ] {
        assert_eq!(faultline(&args).status.code(), Some(254), "{args:?}");
    }
}

#[test]
fn help_exits_0() {
    let out = faultline(&["check", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--time-limit"));
}

#[test]
fn edn_histories_take_model_and_init() {
    let file = scratch(
        "knossos.edn",
        "; a Knossos-style history\n[{:type :invoke, :f :write, :value 0, :process 0}\n\
         {:type :ok, :f :write, :value 0, :process 0}\n\
         {:type :invoke, :f :read, :value nil, :process 1}\n\
         {:type :invoke, :f :write, :value 4, :process 2}\n\
         {:type :ok, :f :read, :value 3, :process 1}\n\
         {:type :ok, :f :write, :value 4, :process 2}]\n",
    );
    let out = faultline(&[
        "check",
        "--json",
        "--model",
        "cas-register",
        "--init",
        "0",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let line = &json_lines(&out)[0];
    assert_eq!(line["format"], "edn");
    assert_eq!(line["valid"], Value::Bool(false));
}

#[test]
fn only_nemesis_events_is_valid() {
    let file = scratch(
        "nemesis.jsonl",
        "{\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"start-partition\",\"value\":null}\n",
    );
    assert_eq!(
        faultline(&["check", file.to_str().unwrap()]).status.code(),
        Some(0)
    );
}

#[test]
fn porcupine_logs_are_detected_with_their_model() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/porcupine");
    if !corpus.is_dir() {
        eprintln!("note: corpus absent; skipped");
        return;
    }
    let etcd = corpus.join("jepsen/etcd_002.log");
    let kv = corpus.join("kv/c10-bad.txt");
    let out = faultline(&[
        "check",
        "--json",
        etcd.to_str().unwrap(),
        kv.to_str().unwrap(),
    ]);
    let lines = json_lines(&out);
    assert_eq!(
        (lines[0]["format"].as_str(), lines[0]["model"].as_str()),
        (Some("porcupine-etcd"), Some("cas-register"))
    );
    assert_eq!(lines[0]["valid"], Value::Bool(true));
    assert_eq!(
        (lines[1]["format"].as_str(), lines[1]["model"].as_str()),
        (Some("porcupine-kv"), Some("string-kv"))
    );
    assert_eq!(lines[1]["valid"], Value::Bool(false));
    assert_eq!(out.status.code(), Some(1));
}

/// A JSON Lines file over `linearizability::STREAM_MIN_BYTES`: puts and gets of long values on
/// a few keys, in turn, so every get sees the last put; `last_get` replaces the last get's
/// result.
fn long_history(name: &str, last_get: Option<&str>) -> PathBuf {
    let padding = "p".repeat(1400);
    let mut text = String::new();
    let pairs = 4500;
    for i in 0..pairs {
        // A put, then a get of it on the same key; the pairs rotate over three keys.
        let key = (i / 2) % 3;
        let (f, input, output) = if i % 2 == 0 {
            let value = format!("\"{i} {padding}\"");
            ("put", value.clone(), value)
        } else {
            let value = format!("\"{} {padding}\"", i - 1);
            ("get", "null".to_string(), value)
        };
        let output = match last_get {
            Some(wrong) if i == pairs - 1 => format!("\"{wrong}\""),
            _ => output,
        };
        text.push_str(&format!(
            "{{\"process\":0,\"type\":\"invoke\",\"f\":\"{f}\",\"key\":\"{key}\",\"value\":{input}}}\n\
             {{\"process\":0,\"type\":\"ok\",\"f\":\"{f}\",\"key\":\"{key}\",\"value\":{output}}}\n"
        ));
    }
    assert!(text.len() > 8 << 20, "long enough to be streamed");
    scratch(name, &text)
}

#[test]
fn long_histories_are_checked_as_they_stream_with_the_same_verdicts() {
    let valid = long_history("long-valid.jsonl", None);
    let out = faultline(&["check", "--json", valid.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let line = &json_lines(&out)[0];
    assert_eq!(line["valid"], Value::Bool(true));
    assert_eq!(
        (line["model"].as_str(), line["ops"].as_u64()),
        (Some("string-kv"), Some(4500))
    );
    assert_eq!(line["keys"], 3);
    assert_eq!(line["format"], "jsonl");

    // A violation's evidence comes from the whole history.
    let invalid = long_history("long-invalid.jsonl", Some("stale"));
    let out = faultline(&["check", invalid.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NOT linearizable (string-kv, 4500 ops, 3 keys"),
        "{text}"
    );
    assert!(text.contains("smallest failing window"), "{text}");
    assert!(text.contains("\"stale\""), "{text}");

    // A bad line near the end is reported with its line number, as for any file.
    let mut text = std::fs::read_to_string(&valid).unwrap();
    text.push_str("{\"process\":0,\"type\":\"okay\"}\n");
    let broken = scratch("long-broken.jsonl", &text);
    let out = faultline(&["check", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(254));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("long-broken.jsonl:9001:"), "{err}");
}
