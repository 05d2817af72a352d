//! Benchmark of `faultline check` on the shapes Porcupine is measured on (issue: foundation).
//!
//! Run: `cargo bench -p faultline-checker --bench linearizability` (all cases), or pass case
//! names to run only those: `porcupine-etcd porcupine-kv knossos register-100k kv-1m`.
//! Each case runs in a child process, so its peak memory (VmHWM) is its own. Times include
//! parsing the files, as Porcupine's figures do.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use faultline_checker::linearizability::{check, CheckOptions};
use faultline_checker::{ModelKind, Validity};
use faultline_core::import::{read_history_file, Format};
use faultline_core::jsonl::HistoryWriter;
use faultline_core::{Op, OpType};

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
    let mut ops = 0;
    let mut verdicts = HashMap::new();
    for file in files {
        let (history, format) = read_history_file(file, Format::Auto).expect("readable");
        let model = model.unwrap_or(match format {
            Format::PorcupineKv => ModelKind::StringKv,
            _ => ModelKind::CasRegister,
        });
        let mut options = CheckOptions::new(model).with_init(init.clone());
        options.model_options.nil_read_is_unknown = format == Format::Edn;
        let result = check(&history, &options).expect("well formed");
        ops += result.ops;
        *verdicts.entry(result.valid).or_insert(0) += 1;
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
            // The multi-register and mutex files need their own models; time them together.
            let started = Instant::now();
            let cas = files_under(&corpus().join("knossos/cas-register"), "edn");
            let (mut ops, mut verdicts) = check_files(&cas, Some(ModelKind::CasRegister), json!(0));
            for (dir, model, init) in [
                (
                    "knossos/multi-register",
                    ModelKind::MultiRegister,
                    json!({"x": 0, "y": 0}),
                ),
                ("knossos/mutex", ModelKind::Mutex, Value::Null),
            ] {
                let (n, v) =
                    check_files(&files_under(&corpus().join(dir), "edn"), Some(model), init);
                ops += n;
                for (k, c) in v {
                    *verdicts.entry(k).or_insert(0) += c;
                }
            }
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

/// A concurrent history of a correct cas register: each operation takes effect at a random
/// moment between its invocation and its completion. A share of writes and cas crash (`info`),
/// taking effect or not; a crashed process continues as a new process.
fn generate_cas_register(count: usize, workers: u64, crash_rate: f64, seed: u64) -> Vec<Op> {
    enum Phase {
        Idle,
        Invoked(Op),
        Applied(Op, Value),
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut register = Value::Null;
    let mut processes: Vec<u64> = (0..workers).collect();
    let mut phases: Vec<Phase> = (0..workers).map(|_| Phase::Idle).collect();
    let mut next_process = workers;
    let mut out = Vec::with_capacity(count * 2 + 64);
    let mut invoked = 0;
    let mut time = 0u64;
    while invoked < count || phases.iter().any(|p| !matches!(p, Phase::Idle)) {
        let w = rng.gen_range(0..workers as usize);
        time += rng.gen_range(1..1000);
        let process = processes[w];
        let phase = std::mem::replace(&mut phases[w], Phase::Idle);
        phases[w] = match phase {
            Phase::Idle if invoked < count => {
                invoked += 1;
                let op = match rng.gen_range(0..3) {
                    0 => Op::invoke(process, "read", Value::Null),
                    1 => Op::invoke(process, "write", json!(rng.gen_range(0..5))),
                    _ => Op::invoke(
                        process,
                        "cas",
                        json!([rng.gen_range(0..5), rng.gen_range(0..5)]),
                    ),
                };
                out.push(op.clone().with_time(time));
                Phase::Invoked(op)
            }
            Phase::Idle => Phase::Idle,
            Phase::Invoked(op) => {
                let crashed = op.f != "read" && rng.gen_bool(crash_rate);
                if crashed && rng.gen_bool(0.5) {
                    // Crashed without taking effect.
                    out.push(
                        Op::complete(process, OpType::Info, &op.f, op.value.clone())
                            .with_time(time),
                    );
                    next_process += 1;
                    processes[w] = next_process - 1;
                    Phase::Idle
                } else {
                    let result = match op.f.as_str() {
                        "read" => register.clone(),
                        "write" => {
                            register = op.value.clone();
                            op.value.clone()
                        }
                        _ => {
                            if register == op.value[0] {
                                register = op.value[1].clone();
                                json!(true)
                            } else {
                                json!(false)
                            }
                        }
                    };
                    if crashed {
                        out.push(
                            Op::complete(process, OpType::Info, &op.f, op.value.clone())
                                .with_time(time),
                        );
                        next_process += 1;
                        processes[w] = next_process - 1;
                        Phase::Idle
                    } else {
                        Phase::Applied(op, result)
                    }
                }
            }
            Phase::Applied(op, result) => {
                let done = match op.f.as_str() {
                    "read" => Op::complete(process, OpType::Ok, "read", result),
                    "write" => Op::complete(process, OpType::Ok, "write", op.value.clone()),
                    _ if result == json!(true) => {
                        Op::complete(process, OpType::Ok, "cas", op.value.clone())
                    }
                    _ => Op::complete(process, OpType::Fail, "cas", op.value.clone())
                        .with_error(json!("compare-failed")),
                };
                out.push(done.with_time(time));
                Phase::Idle
            }
        };
    }
    for (i, op) in out.iter_mut().enumerate() {
        op.index = i as u64;
    }
    out
}

/// A concurrent history of a correct string key-value store (Porcupine's kv model): get, put
/// and append equally likely over `keys` keys, every operation completing.
fn generate_string_kv(count: usize, workers: u64, keys: usize, seed: u64) -> Vec<Op> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut store: Vec<String> = vec![String::new(); keys];
    // (op, result once applied)
    let mut pending: Vec<Option<(Op, Option<Value>)>> = (0..workers).map(|_| None).collect();
    let mut out = Vec::with_capacity(count * 2);
    let mut invoked = 0;
    let mut serial = 0u64;
    let mut time = 0u64;
    while invoked < count || pending.iter().any(Option::is_some) {
        let w = rng.gen_range(0..workers as usize);
        time += rng.gen_range(1..100);
        match pending[w].take() {
            None if invoked < count => {
                invoked += 1;
                serial += 1;
                let key = rng.gen_range(0..keys);
                let op = match rng.gen_range(0..3) {
                    0 => Op::invoke(w as u64, "get", Value::Null),
                    1 => Op::invoke(w as u64, "put", json!(format!("x {w} {serial} y"))),
                    _ => Op::invoke(w as u64, "append", json!(format!("x {w} {serial} y"))),
                }
                .with_key(json!(key.to_string()));
                out.push(op.clone().with_time(time));
                pending[w] = Some((op, None));
            }
            None => {}
            Some((op, None)) => {
                let key: usize = op
                    .key
                    .as_ref()
                    .and_then(Value::as_str)
                    .unwrap()
                    .parse()
                    .unwrap();
                let result = match op.f.as_str() {
                    "get" => json!(store[key]),
                    "put" => {
                        store[key] = op.value.as_str().unwrap().to_string();
                        op.value.clone()
                    }
                    _ => {
                        store[key].push_str(op.value.as_str().unwrap());
                        op.value.clone()
                    }
                };
                pending[w] = Some((op, Some(result)));
            }
            Some((op, Some(result))) => {
                let done = Op::complete(w as u64, OpType::Ok, &op.f, result)
                    .with_key(op.key.clone().unwrap());
                out.push(done.with_time(time));
            }
        }
    }
    for (i, op) in out.iter_mut().enumerate() {
        op.index = i as u64;
    }
    out
}
