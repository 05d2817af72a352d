//! The transactional checker against a brute-force one on thousands of tiny random histories
//! (at most 6 transactions, 2 keys): the brute force tries every serial order of the committed
//! transactions (and every subset of the crashed ones) and replays it.
//!
//! - list-append: versions are fully traceable, so the graph check is exact: the verdicts for
//!   serializable and strict serializable must agree with the brute force, both ways.
//! - rw-register: version orders are only partly known, so the graph check is sound but not
//!   complete: "invalid" must never be wrong, and a history that passes the brute force must
//!   pass the checker.
//!
//! - causal (Biswas & Enea): strict serializability implies it, so a history the brute force
//!   finds strictly serializable must pass.
//!
//! Histories come from a serial execution with damage: some reads are made stale. Both
//! verdicts must appear in meaningful proportion. Run with `--nocapture` for the counts.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

use faultline_checker::txn::{check, CheckOptions, DataModel, Model};
use faultline_checker::Validity;
use faultline_core::{History, Op, OpType};

const CASES: u32 = 4_000;
const KEYS: [&str; 2] = ["x", "y"];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Outcome {
    Ok,
    Info,
    Fail,
}

/// A micro-operation: (append or write?, read?, key, value).
#[derive(Clone, Debug)]
struct Mop {
    read: bool,
    key: usize,
    /// The value appended / written; for reads, what was read.
    value: Value,
}

#[derive(Clone, Debug)]
struct Txn {
    mops: Vec<Mop>,
    outcome: Outcome,
    invoke: u32,
    complete: u32,
}

/// A random history: transactions with results from a serial run, then some reads damaged.
fn generate(seed: u64, lists: bool) -> Vec<Txn> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let n = rng.gen_range(2..=6);
    let mut next = [1u64; 2];
    let mut txns: Vec<Txn> = (0..n)
        .map(|_| {
            let len = rng.gen_range(1..=3);
            let mops = (0..len)
                .map(|_| {
                    let key = rng.gen_range(0..KEYS.len());
                    if rng.gen_bool(0.5) {
                        Mop {
                            read: true,
                            key,
                            value: Value::Null,
                        }
                    } else {
                        let v = next[key];
                        next[key] += 1;
                        Mop {
                            read: false,
                            key,
                            value: json!(v),
                        }
                    }
                })
                .collect();
            let outcome = match rng.gen_range(0..10) {
                0 => Outcome::Fail,
                1 => Outcome::Info,
                _ => Outcome::Ok,
            };
            let invoke = rng.gen_range(0..20);
            let complete = invoke + rng.gen_range(1..8);
            Txn {
                mops,
                outcome,
                invoke,
                complete,
            }
        })
        .collect();
    // Run the committed ones (and some crashed ones) serially, in order of a random point
    // inside each interval (so often strict serializable).
    let mut order: Vec<(u32, usize)> = Vec::new();
    for (i, t) in txns.iter().enumerate() {
        let runs = match t.outcome {
            Outcome::Ok => true,
            Outcome::Info => rng.gen_bool(0.5),
            Outcome::Fail => false,
        };
        if runs {
            order.push((rng.gen_range(t.invoke..t.complete), i));
        }
    }
    order.sort_unstable();
    let mut state: Vec<Vec<u64>> = vec![Vec::new(); KEYS.len()];
    for (_, i) in order {
        for m in &mut txns[i].mops {
            if m.read {
                m.value = if lists {
                    json!(state[m.key])
                } else {
                    state[m.key].last().map_or(Value::Null, |&v| json!(v))
                };
            } else {
                let v = m.value.as_u64().unwrap();
                if lists {
                    state[m.key].push(v);
                } else {
                    state[m.key] = vec![v];
                }
            }
        }
    }
    // Damage: a stale read (a shorter prefix, or the initial state).
    if rng.gen_bool(0.5) {
        let reads: Vec<(usize, usize)> = txns
            .iter()
            .enumerate()
            .filter(|(_, t)| t.outcome == Outcome::Ok)
            .flat_map(|(i, t)| {
                t.mops
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.read && !m.value.is_null() && m.value != json!([]))
                    .map(move |(j, _)| (i, j))
            })
            .collect();
        if !reads.is_empty() {
            let (i, j) = reads[rng.gen_range(0..reads.len())];
            let m = &mut txns[i].mops[j];
            m.value = if lists {
                let list = m.value.as_array().unwrap();
                json!(list[..rng.gen_range(0..list.len())])
            } else {
                Value::Null
            };
        }
    }
    txns
}

fn history(txns: &[Txn], lists: bool) -> History {
    let write = if lists { "append" } else { "w" };
    let mop_json = |m: &Mop, done: bool| {
        if m.read {
            json!([
                "r",
                KEYS[m.key],
                if done { m.value.clone() } else { Value::Null }
            ])
        } else {
            json!([write, KEYS[m.key], m.value])
        }
    };
    // Events by time; invocations first at equal times, so touching intervals overlap.
    let mut events: Vec<(u32, u8, usize)> = Vec::new();
    for (i, t) in txns.iter().enumerate() {
        events.push((t.invoke * 2, 0, i));
        events.push((t.complete * 2 + 1, 1, i));
    }
    events.sort_unstable();
    let ops = events
        .into_iter()
        .map(|(_, completion, i)| {
            let t = &txns[i];
            let asked = Value::Array(t.mops.iter().map(|m| mop_json(m, false)).collect());
            if completion == 0 {
                return Op::invoke(i as u64, "txn", asked);
            }
            match t.outcome {
                Outcome::Ok => Op::complete(
                    i as u64,
                    OpType::Ok,
                    "txn",
                    Value::Array(t.mops.iter().map(|m| mop_json(m, true)).collect()),
                ),
                Outcome::Info => Op::complete(i as u64, OpType::Info, "txn", asked),
                Outcome::Fail => Op::complete(i as u64, OpType::Fail, "txn", asked),
            }
        })
        .collect();
    let mut h = History::new(ops);
    for (i, op) in h.ops.iter_mut().enumerate() {
        op.index = i as u64;
    }
    h
}

/// Does some serial order of the committed transactions (every `ok` one, any subset of the
/// `info` ones) explain every read? With `strict`, the order must respect real time.
fn brute_force(txns: &[Txn], lists: bool, strict: bool) -> bool {
    let ok: Vec<usize> = (0..txns.len())
        .filter(|&i| txns[i].outcome == Outcome::Ok)
        .collect();
    let info: Vec<usize> = (0..txns.len())
        .filter(|&i| txns[i].outcome == Outcome::Info)
        .collect();
    for subset in 0..1u32 << info.len() {
        let mut members = ok.clone();
        members.extend(
            info.iter()
                .enumerate()
                .filter(|(b, _)| subset & (1 << b) != 0)
                .map(|(_, &i)| i),
        );
        if permutations_explain(txns, &mut members, 0, lists, strict) {
            return true;
        }
    }
    false
}

fn permutations_explain(
    txns: &[Txn],
    members: &mut Vec<usize>,
    fixed: usize,
    lists: bool,
    strict: bool,
) -> bool {
    if fixed == members.len() {
        return replays(txns, members, lists, strict);
    }
    for i in fixed..members.len() {
        members.swap(fixed, i);
        if permutations_explain(txns, members, fixed + 1, lists, strict) {
            members.swap(fixed, i);
            return true;
        }
        members.swap(fixed, i);
    }
    false
}

fn replays(txns: &[Txn], order: &[usize], lists: bool, strict: bool) -> bool {
    if strict {
        for (a, &x) in order.iter().enumerate() {
            for &y in &order[..a] {
                // y runs before x: x must not have completed before y was invoked.
                if txns[x].outcome == Outcome::Ok && txns[x].complete < txns[y].invoke {
                    return false;
                }
            }
        }
    }
    let mut state: Vec<Vec<u64>> = vec![Vec::new(); KEYS.len()];
    for &i in order {
        for m in &txns[i].mops {
            if m.read {
                if txns[i].outcome != Outcome::Ok {
                    continue;
                }
                let seen = if lists {
                    json!(state[m.key])
                } else {
                    state[m.key].last().map_or(Value::Null, |&v| json!(v))
                };
                if seen != m.value {
                    return false;
                }
            } else {
                let v = m.value.as_u64().unwrap();
                if lists {
                    state[m.key].push(v);
                } else {
                    state[m.key] = vec![v];
                }
            }
        }
    }
    true
}

fn verdict(h: &History, lists: bool, model: Model) -> Validity {
    let data = if lists {
        DataModel::ListAppend
    } else {
        DataModel::RwRegister
    };
    check(h, &CheckOptions::new(data, vec![model]))
        .expect("generated histories check")
        .valid
}

#[derive(Default)]
struct Tally {
    valid: AtomicUsize,
    invalid: AtomicUsize,
}

fn compare(lists: bool) {
    let tally = Tally::default();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&any::<u64>(), |seed| {
            let txns = generate(seed, lists);
            let h = history(&txns, lists);
            for (model, strict) in [(Model::Serializable, false), (Model::StrictSerializable, true)] {
                let brute = brute_force(&txns, lists, strict);
                let fast = verdict(&h, lists, model);
                let committed = txns.iter().any(|t| t.outcome == Outcome::Ok);
                let agree = if !committed {
                    // Nothing committed: nothing was checked.
                    fast == Validity::Unknown
                } else if lists {
                    fast == if brute { Validity::Valid } else { Validity::Invalid }
                } else {
                    // Sound, not complete: never invalid when a serial order exists.
                    !(brute && fast != Validity::Valid)
                };
                if !agree {
                    let events: Vec<String> =
                        h.ops.iter().map(|o| serde_json::to_string(o).unwrap()).collect();
                    let options = CheckOptions::new(
                        if lists { DataModel::ListAppend } else { DataModel::RwRegister },
                        vec![model],
                    );
                    return Err(TestCaseError::fail(format!(
                        "seed {seed}, {model}: brute force says {brute}, checker says {fast}\n{}\n{}",
                        events.join("\n"),
                        check(&h, &options).unwrap().explain()
                    )));
                }
                // Strict serializability implies causal consistency (real time contains session
                // order): the causal checks must never reject what the brute force accepts.
                if strict && brute && committed {
                    let causal = verdict(&h, lists, Model::Causal);
                    if causal != Validity::Valid {
                        let options = CheckOptions::new(
                            if lists { DataModel::ListAppend } else { DataModel::RwRegister },
                            vec![Model::Causal],
                        );
                        return Err(TestCaseError::fail(format!(
                            "seed {seed}: strict serializable, but causal says {causal}\n{}",
                            check(&h, &options).unwrap().explain()
                        )));
                    }
                }
                if strict && committed {
                    let counter = if fast == Validity::Valid {
                        &tally.valid
                    } else {
                        &tally.invalid
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        })
        .unwrap();
    let (valid, invalid) = (
        tally.valid.load(Ordering::Relaxed),
        tally.invalid.load(Ordering::Relaxed),
    );
    println!(
        "{}: {valid} strict serializable, {invalid} not",
        if lists { "list-append" } else { "rw-register" }
    );
    let total = (valid + invalid).max(1);
    assert!(
        valid * 100 / total >= 15,
        "too few valid histories: {valid}/{total}"
    );
    assert!(
        invalid * 100 / total >= 15,
        "too few invalid histories: {invalid}/{total}"
    );
}

#[test]
fn list_append_agrees_with_brute_force() {
    compare(true);
}

#[test]
fn rw_register_is_sound_against_brute_force() {
    compare(false);
}
