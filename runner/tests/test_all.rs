//! `faultline test-all`: a small matrix — the memory target plus the Python example, flawed
//! and fixed — writes a JUnit file that an XML parser reads (Python's `xml.etree`, as CI
//! tools would), with exactly one failure: the flawed store. A matrix with a bad cell is
//! refused before anything runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("faultline runs")
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("faultline-test-all-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/python-kv/store.toml")
        .to_string_lossy()
        .to_string()
}

/// Reads the JUnit file with Python's XML parser and prints, per test case, one line:
/// `classname|name|failure type|failure message|failure text`, after a line of the
/// suite's totals.
const READ_JUNIT: &str = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
suite = root.find("testsuite")
print("totals|%s|%s|%s|%s" % tuple(suite.get(a) for a in ("tests", "failures", "errors", "skipped")))
for case in suite.findall("testcase"):
    failure = case.find("failure")
    kind = message = body = ""
    if failure is not None:
        kind, message, body = failure.get("type"), failure.get("message"), failure.text or ""
    body = body.replace("\n", "\\n")
    print("|".join([case.get("classname"), case.get("name"), kind, message, body]))
"#;

#[test]
fn a_small_matrix_writes_junit_with_one_failure_for_the_flawed_store() {
    let dir = scratch("junit");
    let matrix = dir.join("matrix.toml");
    std::fs::write(
        &matrix,
        format!(
            r#"
workloads = ["register"]
nemeses = ["partition"]
time_limit = 5
args = ["--rate", "100", "--concurrency", "6"]

[[target]]
name = "memory"
nemeses = ["none"]

[[target]]
name = "python-kv"
target_file = {file:?}

[[target]]
name = "python-kv-fixed"
target_file = {file:?}
vars = {{ reads = "primary" }}
"#,
            file = example()
        ),
    )
    .unwrap();
    let junit = dir.join("reports/junit.xml");
    let store = dir.join("store");
    let out = faultline(&[
        "test-all",
        "--matrix",
        matrix.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--seed",
        "31",
    ]);
    // The worst run is the flawed store's: invalid.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The summary table: a row per run with its verdict and seed.
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" register ") && !l.starts_with('['))
        .collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    assert!(
        rows[0].starts_with("memory ") && rows[0].contains(" valid "),
        "{stdout}"
    );
    assert!(
        rows[1].starts_with("python-kv ") && rows[1].contains(" INVALID "),
        "{stdout}"
    );
    assert!(
        rows[2].starts_with("python-kv-fixed ") && rows[2].contains(" valid "),
        "{stdout}"
    );
    for row in &rows {
        let seed = row.split_whitespace().nth(5).unwrap();
        assert!(seed.parse::<u64>().is_ok(), "a seed in {row}");
    }
    assert!(stdout.contains("3 runs in"), "{stdout}");

    let parsed = Command::new("python3")
        .args(["-c", READ_JUNIT, junit.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(parsed.status.success(), "{}", text(&parsed));
    let parsed = String::from_utf8(parsed.stdout).unwrap();
    let lines: Vec<Vec<&str>> = parsed.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(lines[0], ["totals", "3", "1", "0", "0"], "{parsed}");
    let cases = &lines[1..];
    assert_eq!(cases.len(), 3, "one test case per run: {parsed}");
    let failed: Vec<&Vec<&str>> = cases.iter().filter(|c| !c[2].is_empty()).collect();
    assert_eq!(failed.len(), 1, "{parsed}");
    let failure = failed[0];
    assert_eq!(failure[0], "faultline.python-kv");
    assert_eq!(failure[1], "register partition #1");
    assert_eq!(failure[2], "invalid");
    // The message carries the anomaly and the report's path; the text the whole explanation
    // and the command that reruns it.
    assert!(
        failure[3].starts_with("INVALID: no linearization"),
        "{}",
        failure[3]
    );
    let report = failure[3]
        .rsplit_once("(report: ")
        .map(|(_, r)| r.trim_end_matches(')'))
        .expect("the report's path");
    assert!(Path::new(report).is_file(), "{report}");
    assert!(
        failure[4].contains("rerun: faultline test --target-file"),
        "{}",
        failure[4]
    );
    assert!(failure[4].contains("--seed "), "{}", failure[4]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_matrix_with_a_bad_cell_runs_nothing() {
    let dir = scratch("bad");
    let matrix = dir.join("matrix.toml");
    // The memory target has no network to partition: its second cell is a bad argument.
    std::fs::write(
        &matrix,
        "nemeses = [\"none\", \"partition\"]\ntime_limit = 1\n[[target]]\nname = \"memory\"\n",
    )
    .unwrap();
    let store = dir.join("store");
    let junit = dir.join("junit.xml");
    let out = faultline(&[
        "test-all",
        "--matrix",
        matrix.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(254), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("memory register partition #1"), "{stderr}");
    assert!(stderr.contains("needs a network"), "{stderr}");
    assert!(!store.exists() && !junit.exists(), "nothing ran");
    let out = faultline(&[
        "test-all",
        "--matrix",
        dir.join("missing.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(254), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
