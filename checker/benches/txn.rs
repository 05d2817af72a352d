//! Benchmark of the transactional and causal checkers (issue: transactional checking).
//!
//! Run: `cargo bench -p faultline-checker --bench txn` (all cases), or name cases:
//! `list-append-100k list-append-1m rw-register-causal-100k rw-register-causal-100k-crashes
//! elle-huge-scc`.
//! CPU (s) is the check's user + system time, a fairer figure than wall time when other work
//! shares the machine. Each case runs in a child process, so its peak memory (VmHWM) is its
//! own; the peak includes
//! the generated history itself (`serde_json` values), which the check reads. Times are the
//! check alone (`txn::check` on the in-memory history: parsing the transactions, inferring
//! dependencies, the graph, components, cycle search), not generating it.
//!
//! Histories come from a simulated strictly serializable store: each transaction takes effect
//! at a random moment between its invocation and its completion. Elle's workload shape: 1 to 4
//! micro-operations, half reads; list-append keys rotate after 32 appends (so lists stay
//! short, as Elle's `max-writes-per-key`); 5% of transactions abort (`fail`), and in the
//! list-append cases 1% crash (`info`, taking effect or not; the process continues as a new
//! one). The causal case keeps its 10 sessions: no crashes, which would make new ones.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use faultline_checker::txn::{check, CheckOptions, DataModel, Model};
use faultline_core::import::{read_history_file, Format};
use faultline_core::{History, Op, OpType};

const CASES: [&str; 5] = [
    "list-append-100k",
    "list-append-1m",
    "rw-register-causal-100k",
    "rw-register-causal-100k-crashes",
    "elle-huge-scc",
];

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
        "{:<32} {:>9} {:>11} {:>9} {:>10} {:>10}  verdict",
        "case", "txns", "check (ms)", "CPU (s)", "txns/s", "peak MiB"
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

/// CPU seconds this process used (user + system), from `/proc/self/stat`: with other work on
/// the machine, wall time says little, CPU time still says how much work the check was.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) / 100.0
}

fn run_case(case: &str) {
    let (history, model, consistency) = match case {
        "list-append-100k" => (
            generate(100_000, 50, 1000, true, true, 0xE11E),
            DataModel::ListAppend,
            Model::StrictSerializable,
        ),
        "list-append-1m" => (
            generate(1_000_000, 50, 1000, true, true, 0xE11F),
            DataModel::ListAppend,
            Model::StrictSerializable,
        ),
        "rw-register-causal-100k" => (
            generate(100_000, 10, 100, false, false, 0xCA05),
            DataModel::RwRegister,
            Model::Causal,
        ),
        // With 1% crashes every crashed process continues as a new session: about 1,000
        // sessions, so vector clocks a hundred times wider.
        "rw-register-causal-100k-crashes" => (
            generate(100_000, 10, 100, false, true, 0xCA06),
            DataModel::RwRegister,
            Model::Causal,
        ),
        "elle-huge-scc" => {
            let path =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/elle/huge-scc.edn");
            let (history, _) = read_history_file(&path, Format::Auto).expect("the corpus reads");
            (history, DataModel::ListAppend, Model::StrictSerializable)
        }
        other => panic!("unknown case {other}; cases: {CASES:?}"),
    };
    let options = CheckOptions::new(model, vec![consistency]);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let result = check(&history, &options).expect("generated histories check");
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let verdict = if result.anomaly_types.is_empty() {
        format!("{} ({consistency})", result.valid)
    } else {
        let types: Vec<&str> = result.anomaly_types.iter().map(|t| t.as_str()).collect();
        format!("{} ({consistency}): {}", result.valid, types.join(" "))
    };
    println!(
        "{case:<32} {:>9} {:>11.1} {:>9.1} {:>10.0} {:>10.0}  {verdict}; {} graph edges",
        result.stats.txns,
        seconds * 1e3,
        cpu,
        result.stats.txns as f64 / seconds,
        peak_rss_mib(),
        result.stats.graph_edges
    );
}

/// One worker's transaction in flight.
enum Phase {
    Idle,
    Invoked(Vec<Mop>),
    Applied(Vec<Mop>, Outcome),
}

#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Ok,
    Fail,
    Info,
}

#[derive(Clone)]
struct Mop {
    read: bool,
    key: u64,
    /// The value appended or written; what was read.
    value: Value,
}

/// A history of a strictly serializable store: `count` transactions on `workers` workers over
/// `keys` active keys (list-append: rotated after 32 appends each). Without `crashes`, no
/// transaction ends `info`, so the workers are the sessions.
fn generate(
    count: usize,
    workers: usize,
    keys: u64,
    lists: bool,
    crashes: bool,
    seed: u64,
) -> History {
    const APPENDS_PER_KEY: u32 = 32;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut active: Vec<u64> = (0..keys).collect();
    let mut next_key = keys;
    let mut appends: FxHashMap<u64, u32> = FxHashMap::default();
    let mut next_value: FxHashMap<u64, u64> = FxHashMap::default();
    let mut lists_state: FxHashMap<u64, Vec<u64>> = FxHashMap::default();
    let mut registers: FxHashMap<u64, u64> = FxHashMap::default();
    let mut processes: Vec<u64> = (0..workers as u64).collect();
    let mut next_process = workers as u64;
    let mut phases: Vec<Phase> = (0..workers).map(|_| Phase::Idle).collect();
    let mut ops: Vec<Op> = Vec::with_capacity(count * 2 + workers * 2);
    let mut invoked = 0;
    let write = if lists { "append" } else { "w" };
    let render = |mops: &[Mop], with_reads: bool| -> Value {
        Value::Array(
            mops.iter()
                .map(|m| {
                    if m.read {
                        json!([
                            "r",
                            m.key,
                            if with_reads {
                                m.value.clone()
                            } else {
                                Value::Null
                            }
                        ])
                    } else {
                        json!([write, m.key, m.value])
                    }
                })
                .collect(),
        )
    };
    while invoked < count || phases.iter().any(|p| !matches!(p, Phase::Idle)) {
        let w = rng.gen_range(0..workers);
        let process = processes[w];
        match std::mem::replace(&mut phases[w], Phase::Idle) {
            Phase::Idle if invoked < count => {
                invoked += 1;
                let len = rng.gen_range(1..=4);
                let mops: Vec<Mop> = (0..len)
                    .map(|_| {
                        let slot = rng.gen_range(0..active.len());
                        let key = active[slot];
                        if rng.gen_bool(0.5) {
                            return Mop {
                                read: true,
                                key,
                                value: Value::Null,
                            };
                        }
                        let value = next_value.entry(key).or_insert(0);
                        *value += 1;
                        let v = *value;
                        if lists {
                            let n = appends.entry(key).or_insert(0);
                            *n += 1;
                            if *n >= APPENDS_PER_KEY {
                                active[slot] = next_key;
                                next_key += 1;
                            }
                        }
                        Mop {
                            read: false,
                            key,
                            value: json!(v),
                        }
                    })
                    .collect();
                ops.push(Op::invoke(process, "txn", render(&mops, false)));
                phases[w] = Phase::Invoked(mops);
            }
            Phase::Idle => {}
            Phase::Invoked(mut mops) => {
                // Take effect now (or abort, or crash and maybe take effect).
                let outcome = match rng.gen_range(0..100) {
                    0..=4 => Outcome::Fail,
                    5 if crashes => Outcome::Info,
                    _ => Outcome::Ok,
                };
                let applies = match outcome {
                    Outcome::Ok => true,
                    Outcome::Fail => false,
                    Outcome::Info => rng.gen_bool(0.5),
                };
                if applies {
                    for m in &mut mops {
                        if m.read {
                            m.value = if lists {
                                json!(lists_state.get(&m.key).cloned().unwrap_or_default())
                            } else {
                                registers.get(&m.key).map_or(Value::Null, |&v| json!(v))
                            };
                        } else {
                            let v = m.value.as_u64().expect("written values are integers");
                            if lists {
                                lists_state.entry(m.key).or_default().push(v);
                            } else {
                                registers.insert(m.key, v);
                            }
                        }
                    }
                }
                phases[w] = Phase::Applied(mops, outcome);
            }
            Phase::Applied(mops, outcome) => {
                let op = match outcome {
                    Outcome::Ok => Op::complete(process, OpType::Ok, "txn", render(&mops, true)),
                    Outcome::Fail => {
                        Op::complete(process, OpType::Fail, "txn", render(&mops, false))
                    }
                    Outcome::Info => {
                        processes[w] = next_process;
                        next_process += 1;
                        Op::complete(process, OpType::Info, "txn", render(&mops, false))
                    }
                };
                ops.push(op);
            }
        }
    }
    let mut history = History::new(ops);
    for (i, op) in history.ops.iter_mut().enumerate() {
        op.index = i as u64;
        op.time = Some(i as u64 * 1000);
    }
    history
}
