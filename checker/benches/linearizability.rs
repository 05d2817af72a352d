//! Benchmark of `faultline check` on the shapes Porcupine is measured on (issue: foundation).
//!
//! Run: `cargo bench -p faultline-checker --bench linearizability` (all cases), or pass case
//! names to run only those: `porcupine-etcd porcupine-kv knossos register-100k kv-1m`.
//! Each case runs in a child process, so its peak memory (VmHWM) is its own. Times include
//! parsing the files, as Porcupine's figures do.

use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use faultline_checker::linearizability::{check, check_jsonl_file, streams, CheckOptions};
use faultline_checker::{ModelKind, Validity};
use faultline_core::import::{read_history_file, Format};
use faultline_core::jsonl::HistoryWriter;
use faultline_core::Op;

// As the `faultline` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod histories;
use histories::{generate_cas_register, generate_string_kv};

const CASES: [&str; 5] = [
    "porcupine-etcd",
    "porcupine-kv",
    "knossos",
    "register-100k",
    "kv-1m",
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join("faultline-bench");
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if let Some(pos) = std::env::args().position(|a| a == "--case") {
        let case = std::env::args()
            .nth(pos + 1)
            .expect("a case name after --case");
        run_case(&case);
        return;
    }
    let selected: Vec<&str> = CASES
        .iter()
        .copied()
        .filter(|c| args.is_empty() || args.iter().any(|a| a == c))
        .collect();
    println!(
        "{:<16} {:>10} {:>12} {:>10}  verdicts",
        "case", "ops", "time (ms)", "peak MiB"
    );
    for case in selected {
        let exe = std::env::current_exe().expect("own path");
        let output = Command::new(exe)
            .args(["--case", case])
            .output()
            .expect("child runs");
        print!("{}", String::from_utf8_lossy(&output.stdout));
        if !output.status.success() {
            eprintln!("{case} failed: {}", String::from_utf8_lossy(&output.stderr));
            std::process::exit(1);
        }
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Checks files and returns (ops, verdict counts) — parsing included in the caller's timing.
fn check_files(
    files: &[PathBuf],
    model: Option<ModelKind>,
    init: Value,
) -> (usize, HashMap<Validity, usize>) {
    check_jobs(
        files
            .iter()
            .map(|file| (file.clone(), model, init.clone()))
            .collect(),
    )
}

/// Checks each file with its model (`None`: by its format) and initial value.
fn check_jobs(
    mut jobs: Vec<(PathBuf, Option<ModelKind>, Value)>,
) -> (usize, HashMap<Validity, usize>) {
    // As `faultline check` does: files in parallel, largest first so that the longest check
    // starts at once, and each check parallel over its keys.
    jobs.sort_by_cached_key(|(file, _, _)| {
        std::cmp::Reverse(std::fs::metadata(file).map_or(0, |m| m.len()))
    });
    let results: Vec<(usize, Validity)> = jobs
        .par_iter()
        .map(|(file, model, init)| {
            let model = *model;
            // Long JSON Lines files are checked as they are read, as `faultline check` does.
            if streams(file, Format::Auto) {
                let options = CheckOptions::new(ModelKind::Register).with_init(init.clone());
                if let Some(streamed) = check_jsonl_file(file, model, &options).expect("readable") {
                    return (streamed.result.ops, streamed.result.valid);
                }
            }
            let (history, format) = read_history_file(file, Format::Auto).expect("readable");
            let model = model.unwrap_or(match format {
                Format::PorcupineKv => ModelKind::StringKv,
                _ => ModelKind::CasRegister,
            });
            let mut options = CheckOptions::new(model).with_init(init.clone());
            options.model_options.nil_read_is_unknown = format == Format::Edn;
            let result = check(&history, &options).expect("well formed");
            (result.ops, result.valid)
        })
        .collect();
    let mut ops = 0;
    let mut verdicts = HashMap::new();
    for (n, valid) in results {
        ops += n;
        *verdicts.entry(valid).or_insert(0) += 1;
    }
    (ops, verdicts)
}

fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("corpus dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn run_case(case: &str) {
    let (files, model, init): (Vec<PathBuf>, Option<ModelKind>, Value) = match case {
        "porcupine-etcd" => (
            files_under(&corpus().join("porcupine/jepsen"), "log"),
            None,
            Value::Null,
        ),
        "porcupine-kv" => (
            files_under(&corpus().join("porcupine/kv"), "txt"),
            None,
            Value::Null,
        ),
        "knossos" => {
            // One parallel pass over every file, each with its model, as for the other corpora.
            let started = Instant::now();
            let mut jobs: Vec<(PathBuf, Option<ModelKind>, Value)> = Vec::new();
            for (dir, model, init) in [
                ("knossos/cas-register", ModelKind::CasRegister, json!(0)),
                (
                    "knossos/multi-register",
                    ModelKind::MultiRegister,
                    json!({"x": 0, "y": 0}),
                ),
                ("knossos/mutex", ModelKind::Mutex, Value::Null),
            ] {
                for file in files_under(&corpus().join(dir), "edn") {
                    jobs.push((file, Some(model), init.clone()));
                }
            }
            let (ops, verdicts) = check_jobs(jobs);
            report(case, ops, started, &verdicts);
            return;
        }
        "register-100k" => {
            let path = scratch().join("register-100k.jsonl");
            write(&path, &generate_cas_register(100_000, 10, 0.05, 0xFA017));
            (vec![path], Some(ModelKind::CasRegister), Value::Null)
        }
        "kv-1m" => {
            let path = scratch().join("kv-1m.jsonl");
            write(&path, &generate_string_kv(1_000_000, 50, 1000, 0xFA018));
            (vec![path], Some(ModelKind::StringKv), Value::Null)
        }
        other => panic!("unknown case {other}; cases: {CASES:?}"),
    };
    let started = Instant::now();
    let (ops, verdicts) = check_files(&files, model, init);
    report(case, ops, started, &verdicts);
}

fn report(case: &str, ops: usize, started: Instant, verdicts: &HashMap<Validity, usize>) {
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let mut v: Vec<String> = verdicts.iter().map(|(k, c)| format!("{k}={c}")).collect();
    v.sort();
    println!(
        "{case:<16} {ops:>10} {ms:>12.1} {:>10.0}  {}",
        peak_rss_mib(),
        v.join(" ")
    );
}

fn write(path: &Path, ops: &[Op]) {
    let mut writer = HistoryWriter::create(path).expect("create");
    writer.write_all(ops).expect("write");
}
