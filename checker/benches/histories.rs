//! Generated histories of correct stores, for the benchmark and for tests of long histories
//! (shared with `checker/tests/long_histories.rs` by path).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use faultline_core::{Op, OpType};

/// A concurrent history of a correct cas register: each operation takes effect at a random
/// moment between its invocation and its completion. A share of writes and cas crash (`info`),
/// taking effect or not; a crashed process continues as a new process.
pub fn generate_cas_register(count: usize, workers: u64, crash_rate: f64, seed: u64) -> Vec<Op> {
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
                // A crashed worker records `info` and continues as a new process.
                let mut crash = |op: &Op, out: &mut Vec<Op>| {
                    let info = Op::complete(process, OpType::Info, &op.f, op.value.clone());
                    out.push(info.with_time(time));
                    next_process += 1;
                    processes[w] = next_process - 1;
                    Phase::Idle
                };
                if crashed && rng.gen_bool(0.5) {
                    // Crashed without taking effect.
                    crash(&op, &mut out)
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
                        crash(&op, &mut out)
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
pub fn generate_string_kv(count: usize, workers: u64, keys: usize, seed: u64) -> Vec<Op> {
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
