//! The transactional workloads `list-append` and `rw-register`: Elle's generators, checked by
//! [`faultline_checker::txn`] for the consistency model the test names.
//!
//! # What a client receives and must return (the contract every target implements)
//!
//! The full text is in [`faultline_core::txn`]; in short:
//! - invocation: `f` = `"txn"`, no key, value `[[f, key, value], ...]` with `f` in `r` (value
//!   `null`), `w` (`rw-register`) and `append` (`list-append`). Keys are small integers;
//!   values written or appended to a key are unique integers for that key (1, 2, 3, ...).
//! - `Ok(value)`: the transaction committed; `value` is the invocation's list, same order, same
//!   `f` and keys, every read filled in (`rw-register`: the value or `null`; `list-append`:
//!   the whole list, or `null` / `[]` for a key never appended to). A read after the
//!   transaction's own write of that key sees the write.
//! - `Fail(why)`: it certainly did not commit. `Info(why)`: unknown (timeout, connection lost
//!   after the commit was sent).
//!
//! The bank (`f` = `transfer` / `read`) is in [`crate::bank`].
//!
//! # The generator
//!
//! As Elle's (`elle.txn/wr-txns`): a pool of `key_count` live keys; each transaction has
//! `min_txn_length..=max_txn_length` micro-operations, each on a key of the pool drawn
//! `uniform`ly or `exponential`ly (key `i` of the pool is [`KEY_DIST_BASE`] times as likely as
//! key `i + 1`, so a few keys are hot), a read or a write with equal odds. A key that has had
//! `max_writes_per_key` writes is retired and a fresh key takes its place in the pool, so each
//! key's history (and the checker's work per key) stays bounded. Values are unique per key.
//!
//! `rw-register` writes follow a read of the same key in the same transaction (a
//! read-modify-write): the checker can only order a register's versions from what a
//! transaction read before it wrote (Elle's writes-follow-reads inference), so blind writes
//! would leave most version orders unknown. It also gives the shape snapshot isolation gets
//! wrong: two transactions that read `x` and `y` and write one of them each (write skew).
//!
//! The final generator, after the main phase and the nemesis's heal, reads every live key
//! in one transaction, once per worker.
//!
//! ```
//! use faultline_core::Test;
//! let mut test = Test::example("memory", "list-append", 1);
//! test.workload_options.insert("key_count".into(), serde_json::json!(3));
//! let workload = faultline_workloads::build(&test).unwrap();
//! assert_eq!(workload.options["key_count"], 3);
//! assert_eq!(workload.options["consistency"], serde_json::json!(["strict-serializable"]));
//! ```

use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_checker::txn::{self as checker, CheckOptions, DataModel, Model};
use faultline_core::txn::{txn_json, MicroOp, TXN};
use faultline_core::{History, Test};

use crate::generator::{self, BoxGen, Draft};
use crate::{Checked, Workload, WorkloadError};

/// Workload option: the consistency models the history must satisfy (`--consistency`).
pub const OPTION_CONSISTENCY: &str = "consistency";
/// Workload option: live keys at any time.
pub const OPTION_KEY_COUNT: &str = "key_count";
/// Workload option: `uniform` or `exponential`.
pub const OPTION_KEY_DIST: &str = "key_dist";
/// Workload option: the fewest micro-operations in a transaction.
pub const OPTION_MIN_TXN_LENGTH: &str = "min_txn_length";
/// Workload option: the most micro-operations in a transaction.
pub const OPTION_MAX_TXN_LENGTH: &str = "max_txn_length";
/// Workload option: writes to a key before it is retired.
pub const OPTION_MAX_WRITES_PER_KEY: &str = "max_writes_per_key";
/// The consistency model when the test does not name one.
pub const DEFAULT_CONSISTENCY: Model = Model::StrictSerializable;
/// Exponential key distribution: each key of the pool is this many times as likely as the
/// next (Elle's `:key-dist-base`).
pub const KEY_DIST_BASE: f64 = 2.0;
/// The most live keys (the final read reads every one in one transaction).
pub const MAX_KEY_COUNT: usize = 1_000;
/// The longest transaction.
pub const MAX_TXN_LENGTH: usize = 100;

/// How keys of the pool are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDist {
    Uniform,
    Exponential,
}

impl KeyDist {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyDist::Uniform => "uniform",
            KeyDist::Exponential => "exponential",
        }
    }
}

/// The shape of a transactional workload.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnOptions {
    pub model: DataModel,
    pub consistency: Vec<Model>,
    pub key_count: usize,
    pub key_dist: KeyDist,
    pub min_txn_length: usize,
    pub max_txn_length: usize,
    pub max_writes_per_key: u64,
}

impl TxnOptions {
    /// The defaults of a data model's workload. list-append: Elle's (ten keys, exponential,
    /// up to four micro-operations, 32 writes per key). rw-register: three keys drawn
    /// uniformly, two to four micro-operations, so concurrent transactions often read and
    /// write the same keys (where write skew and lost updates live).
    pub fn defaults(model: DataModel) -> TxnOptions {
        let (key_count, key_dist, min_txn_length) = match model {
            DataModel::RwRegister => (3, KeyDist::Uniform, 2),
            _ => (10, KeyDist::Exponential, 1),
        };
        TxnOptions {
            model,
            consistency: vec![DEFAULT_CONSISTENCY],
            key_count,
            key_dist,
            min_txn_length,
            max_txn_length: 4,
            max_writes_per_key: 32,
        }
    }

    /// The options of `test` (its workload's defaults, overridden by `test.workload_options`).
    pub fn from_test(test: &Test, model: DataModel) -> Result<TxnOptions, WorkloadError> {
        let mut options = TxnOptions::defaults(model);
        let bad = |option: &str, why: String| WorkloadError::BadOption {
            workload: test.workload.clone(),
            option: option.to_string(),
            why,
        };
        for (name, value) in &test.workload_options {
            let count = |min: u64, max: u64| {
                value
                    .as_u64()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| bad(name, format!("expected {min} to {max}, got {value}")))
            };
            match name.as_str() {
                OPTION_CONSISTENCY => {
                    options.consistency = parse_consistency(value).map_err(|why| bad(name, why))?
                }
                OPTION_KEY_COUNT => options.key_count = count(1, MAX_KEY_COUNT as u64)? as usize,
                OPTION_KEY_DIST => {
                    options.key_dist = match value.as_str() {
                        Some("uniform") => KeyDist::Uniform,
                        Some("exponential") => KeyDist::Exponential,
                        _ => {
                            return Err(bad(
                                name,
                                format!("expected uniform or exponential, got {value}"),
                            ))
                        }
                    }
                }
                OPTION_MIN_TXN_LENGTH => {
                    options.min_txn_length = count(1, MAX_TXN_LENGTH as u64)? as usize
                }
                OPTION_MAX_TXN_LENGTH => {
                    options.max_txn_length = count(1, MAX_TXN_LENGTH as u64)? as usize
                }
                OPTION_MAX_WRITES_PER_KEY => options.max_writes_per_key = count(1, 1 << 40)?,
                _ => {
                    return Err(bad(
                        name,
                        "unknown option; known: consistency, key_count, key_dist, \
                         min_txn_length, max_txn_length, max_writes_per_key"
                            .into(),
                    ))
                }
            }
        }
        if options.min_txn_length > options.max_txn_length {
            return Err(bad(
                OPTION_MIN_TXN_LENGTH,
                format!(
                    "{} is more than max_txn_length {}",
                    options.min_txn_length, options.max_txn_length
                ),
            ));
        }
        Ok(options)
    }

    /// Every option, defaults included, as `test.json` records them.
    pub fn to_map(&self) -> BTreeMap<String, Value> {
        [
            (OPTION_CONSISTENCY, json!(self.consistency)),
            (OPTION_KEY_COUNT, json!(self.key_count)),
            (OPTION_KEY_DIST, json!(self.key_dist.as_str())),
            (OPTION_MIN_TXN_LENGTH, json!(self.min_txn_length)),
            (OPTION_MAX_TXN_LENGTH, json!(self.max_txn_length)),
            (OPTION_MAX_WRITES_PER_KEY, json!(self.max_writes_per_key)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Consistency models from a workload option: `"a,b"` or `["a", "b"]`. Transactional models
/// only (register models such as `linearizable` need the register workload).
pub fn parse_consistency(value: &Value) -> Result<Vec<Model>, String> {
    let names: Vec<String> = match value {
        Value::String(text) => text.split(',').map(|s| s.trim().to_string()).collect(),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("a model name, not {v}"))
            })
            .collect::<Result<_, _>>()?,
        other => return Err(format!("model names, not {other}")),
    };
    let models = names
        .iter()
        .map(|name| name.parse::<Model>())
        .collect::<Result<Vec<_>, _>>()?;
    if models.is_empty() {
        return Err("name at least one model".into());
    }
    if let Some(m) = models
        .iter()
        .find(|m| m.domain() == checker::consistency::Domain::Registers)
    {
        return Err(format!(
            "{m} is a register model; transactional workloads are checked for transactional \
             models (strict-serializable, serializable, snapshot-isolation, ...)"
        ));
    }
    Ok(models)
}

/// The live keys and how often each was written. Shared by the main generator and the final
/// reads.
#[derive(Debug, Clone)]
pub struct KeyPool {
    /// The live keys, by slot.
    live: Vec<u64>,
    /// Writes so far to the key in each slot; the next value written is this plus one.
    writes: Vec<u64>,
    next_key: u64,
    max_writes_per_key: u64,
    dist: KeyDist,
}

impl KeyPool {
    pub fn new(key_count: usize, dist: KeyDist, max_writes_per_key: u64) -> KeyPool {
        assert!(key_count > 0 && max_writes_per_key > 0);
        KeyPool {
            live: (0..key_count as u64).collect(),
            writes: vec![0; key_count],
            next_key: key_count as u64,
            max_writes_per_key,
            dist,
        }
    }

    /// The live keys, in slot order.
    pub fn live(&self) -> &[u64] {
        &self.live
    }

    /// A slot of the pool, drawn by the distribution.
    fn slot(&self, rng: &mut impl Rng) -> usize {
        let n = self.live.len();
        match self.dist {
            KeyDist::Uniform => rng.gen_range(0..n),
            KeyDist::Exponential => exponential_index(n, KEY_DIST_BASE, rng),
        }
    }

    /// The next value to write to the key in `slot`, unique for that key; retires the key
    /// (a fresh one takes the slot) once it has had `max_writes_per_key` writes.
    fn next_value(&mut self, slot: usize) -> u64 {
        self.writes[slot] += 1;
        let value = self.writes[slot];
        if value >= self.max_writes_per_key {
            self.live[slot] = self.next_key;
            self.next_key += 1;
            self.writes[slot] = 0;
        }
        value
    }
}

/// Elle's exponential key choice over `n` keys: index `i` is `base` times as likely as
/// `i + 1`.
pub fn exponential_index(n: usize, base: f64, rng: &mut impl Rng) -> usize {
    assert!(n > 0 && base > 1.0);
    let top = base.powi(n as i32);
    let u = rng.gen_range(1.0..top);
    let index = (n as f64 - u.ln() / base.ln()).floor();
    (index.max(0.0) as usize).min(n - 1)
}

/// One transaction of the workload, drawn from `pool`.
pub fn random_txn(options: &TxnOptions, pool: &mut KeyPool, rng: &mut impl Rng) -> Vec<MicroOp> {
    let length = rng.gen_range(options.min_txn_length..=options.max_txn_length);
    let mut ops: Vec<MicroOp> = Vec::with_capacity(length);
    while ops.len() < length {
        let slot = pool.slot(rng);
        let key = pool.live[slot];
        let write = rng.gen_bool(0.5);
        match options.model {
            DataModel::ListAppend if write => {
                let value = pool.next_value(slot);
                ops.push(MicroOp::append(json!(key), json!(value)));
            }
            DataModel::RwRegister if write => {
                let accessed = ops.iter().any(|op| op.key == json!(key));
                if !accessed {
                    // Read before writing (see the module's docs); a read alone when there
                    // is no room for both.
                    ops.push(MicroOp::read(json!(key)));
                    if ops.len() == length {
                        break;
                    }
                }
                let value = pool.next_value(slot);
                ops.push(MicroOp::write(json!(key), json!(value)));
            }
            _ => ops.push(MicroOp::read(json!(key))),
        }
    }
    assert_eq!(ops.len(), length, "a transaction has the length drawn");
    ops
}

/// The endless generator of transactions over the shared `pool`.
pub fn generator(options: TxnOptions, pool: Arc<Mutex<KeyPool>>) -> BoxGen {
    generator::from_fn(move |ctx| {
        let mut pool = pool.lock().expect("key pool");
        Draft::new(TXN, txn_json(&random_txn(&options, &mut pool, ctx.rng)))
    })
}

/// The final reads: each worker reads every live key, in one transaction.
pub fn final_generator(pool: Arc<Mutex<KeyPool>>) -> BoxGen {
    generator::each_thread(move |_thread| {
        let live = pool.lock().expect("key pool").live().to_vec();
        let reads: Vec<MicroOp> = live.into_iter().map(|k| MicroOp::read(json!(k))).collect();
        generator::once(Draft::new(TXN, txn_json(&reads)))
    })
}

/// The workload `list-append` or `rw-register` with `test`'s options.
pub fn workload(test: &Test, model: DataModel) -> Result<Workload, WorkloadError> {
    let options = TxnOptions::from_test(test, model)?;
    let pool = Arc::new(Mutex::new(KeyPool::new(
        options.key_count,
        options.key_dist,
        options.max_writes_per_key,
    )));
    let name = match model {
        DataModel::ListAppend => "list-append",
        DataModel::RwRegister => "rw-register",
        other => panic!(
            "{} is not a transactional workload of this module",
            other.as_str()
        ),
    };
    Ok(Workload {
        name,
        options: options.to_map(),
        generator: generator(options, pool.clone()),
        final_generator: Some(final_generator(pool)),
        checker: check,
    })
}

/// The checker's options for `test`: its data model and consistency models, the test's
/// checker time limit.
fn check_options(test: &Test) -> Result<CheckOptions, WorkloadError> {
    let model = match test.workload.as_str() {
        "list-append" => DataModel::ListAppend,
        "rw-register" => DataModel::RwRegister,
        "bank" => DataModel::Bank,
        other => return Err(WorkloadError::Unknown(other.to_string())),
    };
    let consistency = match test.workload_options.get(OPTION_CONSISTENCY) {
        Some(value) => parse_consistency(value).map_err(|why| WorkloadError::BadOption {
            workload: test.workload.clone(),
            option: OPTION_CONSISTENCY.into(),
            why,
        })?,
        None => vec![DEFAULT_CONSISTENCY],
    };
    let mut options = CheckOptions::new(model, consistency);
    options.time_limit = Some(Duration::from_millis(test.limits.checker_time_limit_ms));
    Ok(options)
}

/// Checks a transactional history (`list-append`, `rw-register`, or with `bank_options` the
/// bank) for the test's consistency models.
pub(crate) fn check_with(
    test: &Test,
    history: &History,
    bank_options: Option<checker::BankOptions>,
) -> Checked {
    let mut options = match check_options(test) {
        Ok(options) => options,
        Err(e) => return Checked::unknown("transactional", e.to_string()),
    };
    if let Some(bank) = bank_options {
        options.bank = bank;
    }
    match checker::check(history, &options) {
        Ok(result) => Checked {
            valid: result.valid,
            checker: "transactional",
            explanation: result.explain(),
            result: serde_json::to_value(&result).expect("results serialize"),
        },
        Err(e) => Checked::unknown("transactional", format!("cannot check the history: {e}")),
    }
}

/// The checker of `list-append` and `rw-register`.
pub fn check(test: &Test, history: &History) -> Checked {
    check_with(test, history, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::tests::simulate;
    use faultline_checker::Validity;
    use faultline_core::txn::{parse_txn, MopKind};
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use std::collections::{BTreeMap, BTreeSet, HashSet};

    fn test_with(workload: &str, options: &[(&str, Value)]) -> Test {
        let mut test = Test::example("memory", workload, 3);
        for (k, v) in options {
            test.workload_options.insert(k.to_string(), v.clone());
        }
        test
    }

    /// Draws `n` transactions of `workload` on a simulated clock with 4 workers.
    fn drawn(test: &Test, n: u64) -> Vec<Vec<MicroOp>> {
        let workload = crate::build(test).unwrap();
        let mut gen = generator::limit(n, workload.generator);
        simulate(&mut gen, 4, 1_000, u64::MAX)
            .into_iter()
            .map(|d| {
                assert_eq!(d.draft.f, "txn");
                assert!(d.draft.key.is_none());
                parse_txn(&d.draft.value).unwrap()
            })
            .collect()
    }

    #[test]
    fn transactions_have_lengths_in_range_and_unique_values_per_key() {
        for workload in ["list-append", "rw-register"] {
            let test = test_with(
                workload,
                &[("min_txn_length", json!(2)), ("max_txn_length", json!(5))],
            );
            let txns = drawn(&test, 2_000);
            assert_eq!(txns.len(), 2_000);
            let lengths: BTreeSet<usize> = txns.iter().map(Vec::len).collect();
            assert_eq!(lengths, (2..=5).collect(), "{workload}");
            let mut seen = HashSet::new();
            let mut kinds = BTreeSet::new();
            for op in txns.iter().flatten() {
                kinds.insert(op.kind.as_str());
                if op.kind == MopKind::Read {
                    assert!(op.value.is_null(), "reads are null on invocation");
                } else {
                    assert!(seen.insert((op.key.clone(), op.value.clone())), "{op:?}");
                }
            }
            let expected = if workload == "list-append" {
                ["append", "r"]
            } else {
                ["r", "w"]
            };
            assert_eq!(kinds, expected.into_iter().collect(), "{workload}");
        }
    }

    #[test]
    fn keys_rotate_after_max_writes_and_the_pool_stays_its_size() {
        let test = test_with(
            "list-append",
            &[
                ("key_count", json!(3)),
                ("max_writes_per_key", json!(5)),
                ("key_dist", json!("uniform")),
            ],
        );
        let txns = drawn(&test, 1_000);
        let mut writes: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for op in txns.iter().flatten() {
            if op.kind == MopKind::Append {
                writes
                    .entry(op.key.as_u64().unwrap())
                    .or_default()
                    .push(op.value.as_u64().unwrap());
            }
        }
        // About 1000 * 2.5 / 2 appends over keys of 5 appends each: hundreds of keys.
        assert!(writes.len() > 100, "{}", writes.len());
        for (key, values) in &writes {
            assert!(values.len() <= 5, "key {key}: {values:?}");
            assert_eq!(*values, (1..=values.len() as u64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_pool_keeps_its_size_and_retires_a_key_after_its_last_write() {
        let mut pool = KeyPool::new(3, KeyDist::Uniform, 4);
        let mut rng = SmallRng::seed_from_u64(5);
        let mut written: BTreeMap<u64, u64> = BTreeMap::new();
        for _ in 0..1_000 {
            let slot = pool.slot(&mut rng);
            let key = pool.live()[slot];
            let value = pool.next_value(slot);
            let count = written.entry(key).or_default();
            *count += 1;
            assert_eq!(value, *count, "values of a key count up from 1");
            assert_eq!(pool.live().len(), 3);
            let distinct: BTreeSet<u64> = pool.live().iter().copied().collect();
            assert_eq!(distinct.len(), 3, "{:?}", pool.live());
            if *count == 4 {
                assert!(!pool.live().contains(&key), "key {key} retired");
            }
        }
        assert!(written.values().all(|&n| n <= 4));
        // Keys are handed out in order, never reused.
        assert!(written.keys().all(|k| *k < pool.next_key));
        assert!(written.len() > 200, "{}", written.len());
    }

    #[test]
    fn rw_register_writes_follow_a_read_of_the_key() {
        let txns = drawn(&test_with("rw-register", &[]), 1_000);
        let mut write_skew_shape = 0;
        for txn in &txns {
            for (i, op) in txn.iter().enumerate() {
                if op.kind == MopKind::Write {
                    assert!(
                        txn[..i]
                            .iter()
                            .any(|o| o.kind == MopKind::Read && o.key == op.key),
                        "{txn:?}"
                    );
                }
            }
            let keys = |kind: MopKind| -> BTreeSet<u64> {
                txn.iter()
                    .filter(|o| o.kind == kind)
                    .map(|o| o.key.as_u64().unwrap())
                    .collect()
            };
            let (read, written) = (keys(MopKind::Read), keys(MopKind::Write));
            if read.len() >= 2 && written.len() == 1 {
                write_skew_shape += 1;
            }
        }
        assert!(write_skew_shape > 100, "{write_skew_shape}");
    }

    #[test]
    fn the_exponential_distribution_favours_the_first_keys() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut counts = [0u32; 5];
        for _ in 0..31_000 {
            counts[exponential_index(5, 2.0, &mut rng)] += 1;
        }
        // Expected 16000, 8000, 4000, 2000, 1000.
        for (i, pair) in counts.windows(2).enumerate() {
            let ratio = f64::from(pair[0]) / f64::from(pair[1]);
            assert!(
                (1.7..2.3).contains(&ratio),
                "keys {i}, {}: {counts:?}",
                i + 1
            );
        }
    }

    #[test]
    fn the_final_reads_read_every_live_key_once_per_worker() {
        let test = test_with("list-append", &[("key_count", json!(4))]);
        let workload = crate::build(&test).unwrap();
        let mut gen = generator::with_final(
            generator::limit(500, workload.generator),
            workload.final_generator,
        );
        let all = simulate(&mut gen, 3, 1_000, u64::MAX);
        let finals = &all[500..];
        assert_eq!(finals.len(), 3);
        // The live keys at the end: the highest-numbered key of each slot's lineage; they
        // are at least the pool's size and all distinct.
        for d in finals {
            let ops = parse_txn(&d.draft.value).unwrap();
            assert_eq!(ops.len(), 4);
            assert!(ops.iter().all(|o| o.kind == MopKind::Read));
            let keys: BTreeSet<u64> = ops.iter().map(|o| o.key.as_u64().unwrap()).collect();
            assert_eq!(keys.len(), 4);
        }
        // Every key appended to after its last rotation is read: the final reads read the
        // keys that were still live.
        let last_keys: BTreeSet<u64> = parse_txn(&finals[0].draft.value)
            .unwrap()
            .iter()
            .map(|o| o.key.as_u64().unwrap())
            .collect();
        let max_used = all[..500]
            .iter()
            .flat_map(|d| parse_txn(&d.draft.value).unwrap())
            .map(|o| o.key.as_u64().unwrap())
            .max()
            .unwrap();
        assert!(last_keys.contains(&max_used) || *last_keys.iter().max().unwrap() > max_used);
    }

    #[test]
    fn one_seed_gives_one_sequence() {
        let test = test_with("rw-register", &[]);
        assert_eq!(drawn(&test, 200), drawn(&test, 200));
    }

    #[test]
    fn options_are_checked() {
        for (name, value) in [
            ("key_count", json!(0)),
            ("key_dist", json!("zipf")),
            ("max_txn_length", json!(0)),
            ("consistency", json!("linearizable")),
            ("consistency", json!("bogus")),
            ("keys", json!(3)),
        ] {
            let test = test_with("list-append", &[(name, value.clone())]);
            let Err(e) = crate::build(&test) else {
                panic!("{name} = {value} accepted")
            };
            assert!(e.to_string().contains(name), "{e}");
        }
        let test = test_with(
            "list-append",
            &[("min_txn_length", json!(5)), ("max_txn_length", json!(2))],
        );
        assert!(crate::build(&test).is_err());
        let test = test_with(
            "rw-register",
            &[("consistency", json!("serializable,snapshot-isolation"))],
        );
        let workload = crate::build(&test).unwrap();
        assert_eq!(
            workload.options["consistency"],
            json!(["serializable", "snapshot-isolation"])
        );
    }

    fn history(text: &str) -> History {
        faultline_core::jsonl::read_jsonl(text.as_bytes(), "t").unwrap()
    }

    #[test]
    fn write_skew_is_valid_under_snapshot_isolation_only() {
        // T0 and T1 read x and y concurrently; each writes one of them.
        let text = r#"{"process":0,"type":"invoke","f":"txn","value":[["r",1,null],["r",2,null],["w",1,1]]}
{"process":1,"type":"invoke","f":"txn","value":[["r",1,null],["r",2,null],["w",2,1]]}
{"process":0,"type":"ok","f":"txn","value":[["r",1,null],["r",2,null],["w",1,1]]}
{"process":1,"type":"ok","f":"txn","value":[["r",1,null],["r",2,null],["w",2,1]]}"#;
        let mut test = test_with("rw-register", &[("consistency", json!("serializable"))]);
        let checked = check(&test, &history(text));
        assert_eq!(checked.valid, Validity::Invalid, "{}", checked.explanation);
        assert_eq!(checked.checker, "transactional");
        assert_eq!(checked.result["anomaly-types"], json!(["G2-item"]));
        test.workload_options
            .insert("consistency".into(), json!("snapshot-isolation"));
        assert_eq!(check(&test, &history(text)).valid, Validity::Valid);
    }

    #[test]
    fn a_malformed_history_is_unknown_not_a_panic() {
        let text = r#"{"process":0,"type":"invoke","f":"txn","value":[["append",1,1]]}
{"process":0,"type":"ok","f":"txn","value":[["append",1,1]]}
{"process":1,"type":"invoke","f":"txn","value":[["append",1,1]]}
{"process":1,"type":"ok","f":"txn","value":[["append",1,1]]}"#;
        let checked = check(&test_with("list-append", &[]), &history(text));
        assert_eq!(checked.valid, Validity::Unknown);
        assert!(
            checked.explanation.contains("unique"),
            "{}",
            checked.explanation
        );
    }
}
