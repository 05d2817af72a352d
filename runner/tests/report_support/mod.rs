//! Shared by the report and serve tests: the `faultline` binary, fresh stores, and a real
//! headless browser (Debian's chromium) that renders a page, runs its scripts and returns the
//! resulting DOM or a screenshot.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use faultline_core::jsonl::HistoryWriter;
use faultline_core::{Op, OpType, Process};
use serde_json::json;

pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Bound on one browser run (it starts in about a second).
const BROWSER_TIMEOUT_S: &str = "120";

#[path = "../run_support/mod.rs"]
mod run_support;
pub use run_support::{faultline, text};

/// A fresh directory for one test, removed when dropped (also when the test fails).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("faultline-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where screenshots are kept for a person to look at after the tests.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn browser(extra: &[&str], url: &str) -> Output {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/install-deps (it installs Debian's chromium)"
    );
    let profile = TempDir::new(&format!(
        "chromium-profile-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let profile_flag = format!("--user-data-dir={}", profile.path().display());
    let mut args = vec![
        BROWSER_TIMEOUT_S,
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        &profile_flag,
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let output = Command::new("timeout")
        .args(&args)
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        text(&output)
    );
    output
}

/// The DOM after the page's scripts ran, and how long the browser took.
pub fn rendered_dom(url: &str) -> (String, Duration) {
    let started = Instant::now();
    let output = browser(&["--dump-dom"], url);
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        started.elapsed(),
    )
}

/// Saves a screenshot of the page and checks it is a real PNG.
pub fn screenshot(url: &str, png: &Path, height: u32) {
    let _ = std::fs::remove_file(png);
    let shot = format!("--screenshot={}", png.display());
    let size = format!("--window-size=1400,{height}");
    browser(&[&shot, &size], url);
    let bytes = std::fs::read(png).expect("the screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        bytes.len() > 20_000,
        "a blank page would be smaller: {} bytes",
        bytes.len()
    );
}

pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

/// Writes a synthetic run of `ops` operations into `dir`: 10 workers in rounds of 5 ms
/// (2,000 ops/s), latencies of 1-4 ms, 80% ok / 15% fail / 5% info (after which the worker
/// continues as a new process), and node n2 killed and restarted every two seconds; events
/// are written in time order, as the recorder does.
pub fn write_synthetic_run(dir: &Path, ops: u64) {
    const WORKERS: u64 = 10;
    const ROUND_NS: u64 = 5_000_000;
    const FAULT_EVERY_NS: u64 = 2_000_000_000;
    std::fs::create_dir_all(dir).unwrap();
    let mut history = HistoryWriter::create(&dir.join("history.jsonl")).unwrap();
    let mut process: Vec<u64> = (0..WORKERS).collect();
    let mut index = 0u64;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut killed = false;
    let rounds = ops.div_ceil(WORKERS);
    for round in 0..rounds {
        let round_start = round * ROUND_NS;
        let mut events: Vec<Op> = Vec::new();
        if round_start.is_multiple_of(FAULT_EVERY_NS) && round > 0 {
            events.push(Op {
                index: 0,
                time: Some(round_start),
                process: Process::Nemesis,
                kind: OpType::Info,
                f: if killed { "start" } else { "kill" }.into(),
                key: None,
                value: json!("n2"),
                error: None,
            });
            killed = !killed;
        }
        for worker in 0..WORKERS.min(ops - round * WORKERS) {
            let start = round_start + worker * 50_000;
            let p = process[worker as usize];
            let f = ["read", "write", "cas"][(next() % 3) as usize];
            let key = json!(round / 100);
            events.push(
                Op::invoke(p, f, json!(next() % 5))
                    .with_key(key.clone())
                    .with_time(start),
            );
            let kind = match next() % 100 {
                0..=79 => OpType::Ok,
                80..=94 => OpType::Fail,
                _ => OpType::Info,
            };
            let mut done = Op::complete(p, kind, f, json!(next() % 5))
                .with_key(key)
                .with_time(start + 1_000_000 + next() % 3_000_000);
            if kind == OpType::Info {
                done = done.with_error(json!("timeout"));
                process[worker as usize] += WORKERS;
            }
            events.push(done);
        }
        events.sort_by_key(|op| op.time);
        for mut op in events {
            op.index = index;
            index += 1;
            history.write(&op).unwrap();
        }
    }
    drop(history);
    let test = json!({"name": "synthetic-register", "target": "memory", "workload": "register",
        "nemesis": ["kill"], "nodes": ["n1", "n2", "n3"], "concurrency": WORKERS,
        "seed": 5, "time_limit_ms": rounds * ROUND_NS / 1_000_000,
        "start_time": "20260101T000000.000Z", "argv": ["faultline", "test"]});
    let results = json!({"valid": true, "checker": "linearizability",
        "result": {"valid": true, "model": "cas-register", "ops": ops, "keys": rounds / 100},
        "stats": {"ops": ops}});
    for (name, value) in [("test.json", test), ("results.json", results)] {
        let mut file = std::fs::File::create(dir.join(name)).unwrap();
        writeln!(file, "{value}").unwrap();
    }
}
