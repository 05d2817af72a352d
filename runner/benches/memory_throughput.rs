//! Benchmark: recorded operations per second against the `memory` target.
//!
//! 50 workers, the register workload, no rate limit, for a few seconds; every event goes
//! through the interpreter's channel and the history writer to a real file, flushed event by
//! event, exactly as in `faultline test`. The harness must never be the bottleneck of a real
//! test: the goal is at least 50,000 recorded ops/s.
//!
//! `cargo bench -p faultline-runner --bench memory_throughput` (set `BENCH_SECONDS` to change
//! the duration; default 5).

use std::sync::Arc;
use std::time::Instant;

use faultline_core::jsonl::HistoryWriter;
use faultline_core::remote::NoopRemote;
use faultline_core::{Node, Test};
use faultline_workloads::clock::MonotonicClock;
use faultline_workloads::interpreter::{Counters, Interpreter, Stop};

const WORKERS: usize = 50;

fn main() {
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let mut test = Test::example("memory", "register", 1);
    test.concurrency = WORKERS;
    test.rate_ops_per_sec = None;
    test.time_limit_ms = (seconds * 1e3) as u64;
    let target = faultline_targets::build(&test).expect("the memory target");
    test.nodes = target.nodes.clone();
    let workload = faultline_workloads::build(&test).expect("the register workload");
    let generator = faultline_workloads::plan(&test, workload.generator, workload.final_generator);
    let path = std::env::temp_dir().join(format!("faultline-bench-{}.jsonl", std::process::id()));
    let history = HistoryWriter::create(&path).expect("creating the history file");
    let test = Arc::new(test);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let node = Node {
        name: "n1".into(),
        remote: Arc::new(NoopRemote::new("n1")),
    };
    runtime
        .block_on(target.db.setup(&test, &node))
        .expect("setup");
    let interpreter = Interpreter {
        test: test.clone(),
        client: target.client.clone(),
        generator,
        clock: MonotonicClock::starting_now(),
        counters: Arc::new(Counters::default()),
        stop: Stop::default(),
    };
    let started = Instant::now();
    let recorded = runtime.block_on(interpreter.run(history));
    let wall = started.elapsed().as_secs_f64();
    assert!(recorded.error.is_none(), "{:?}", recorded.error);
    let completed = recorded.ok + recorded.fail + recorded.info;
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());

    // Check it, too: the recorded history must be well formed and linearizable.
    let checked_at = Instant::now();
    let history = faultline_core::jsonl::read_jsonl_file(&path).expect("reading back");
    let checked = (workload.checker)(&test, &history);
    let check_secs = checked_at.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);

    println!(
        "memory_throughput: {WORKERS} workers, {wall:.2} s: {completed} ops recorded \
         ({} events, {:.1} MB), {:.0} ops/s ({:.0} events/s); checked {} in {check_secs:.2} s",
        recorded.events,
        bytes as f64 / 1e6,
        completed as f64 / wall,
        recorded.events as f64 / wall,
        checked.valid
    );
    assert_eq!(checked.valid, faultline_checker::Validity::Valid);
}
