//! How long `write_report` takes on a 100,000-operation run, and how big the report is.
//!
//! `cargo bench -p faultline-reports --bench report_100k` writes a synthetic run (10 workers,
//! 1-4 ms latencies, 80% ok / 15% fail / 5% info, a node killed and restarted every two
//! seconds) into a temporary directory, then writes its report three times and prints each
//! time, the time to read the history alone, and the report's size. The figures are in
//! `docs/reports.md`.

use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use faultline_core::jsonl::HistoryWriter;
use faultline_core::{Op, OpType, Process};
use faultline_reports::digest::Digest;
use faultline_reports::write_report;

const OPS: u64 = 100_000;
const WORKERS: u64 = 10;
const ROUND_NS: u64 = 5_000_000;
const FAULT_EVERY_NS: u64 = 2_000_000_000;

fn write_run(dir: &Path) {
    let mut history = HistoryWriter::create(&dir.join("history.jsonl")).unwrap();
    let mut process: Vec<u64> = (0..WORKERS).collect();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut index, mut killed) = (0u64, false);
    for round in 0..OPS / WORKERS {
        let round_start = round * ROUND_NS;
        let mut events = Vec::new();
        if round > 0 && round_start.is_multiple_of(FAULT_EVERY_NS) {
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
        for worker in 0..WORKERS {
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
    let test = json!({"name": "bench-register", "target": "memory", "workload": "register",
        "nemesis": ["kill"], "nodes": ["n1", "n2", "n3"], "concurrency": WORKERS, "seed": 1,
        "time_limit_ms": OPS / WORKERS * ROUND_NS / 1_000_000, "start_time": "20260101T000000.000Z"});
    let results = json!({"valid": true, "checker": "linearizability",
        "result": {"valid": true, "model": "cas-register", "ops": OPS, "keys": OPS / 1000}});
    for (name, value) in [("test.json", test), ("results.json", results)] {
        writeln!(std::fs::File::create(dir.join(name)).unwrap(), "{value}").unwrap();
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("faultline-report-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_run(&dir);
    let history_bytes = std::fs::metadata(dir.join("history.jsonl")).unwrap().len();
    let started = Instant::now();
    let digest = Digest::read(&dir.join("history.jsonl")).unwrap();
    let read = started.elapsed();
    assert_eq!(digest.ops.len() as u64, OPS);
    println!(
        "history: {OPS} ops, {} events, {:.1} MB; reading it for the report: {read:.2?}",
        digest.events,
        history_bytes as f64 / 1e6
    );
    for attempt in 1..=3 {
        let started = Instant::now();
        let report = write_report(&dir).unwrap();
        let took = started.elapsed();
        let size = std::fs::metadata(&report).unwrap().len();
        println!(
            "report {attempt}: written in {took:.2?}, {:.2} MB",
            size as f64 / 1e6
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
