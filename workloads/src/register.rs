//! The register workload: reads, writes and compare-and-sets of small integers, key by key,
//! checked for linearizability against the cas-register model.
//!
//! Keys rotate (see [`generator::independent`]): a group of [`THREADS_PER_KEY`] workers shares a
//! key for [`OPS_PER_KEY`] operations, then moves to a fresh one. Values are drawn from
//! `0..VALUES`, so reads can observe stale values and cas operations often succeed. A cas the
//! target reports as a definite mismatch is recorded as `fail` with error `compare-failed`,
//! which the checker reads as an observation.
//!
//! After the main phase (and after the nemesis healed and the cluster had time to recover),
//! every key used is read once more: an acknowledged write that a crash lost then shows up as
//! a read of an older value, even on a key whose group had moved on.

use rand::Rng;
use serde_json::{json, Value};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use faultline_checker::linearizability::{self, CheckOptions};
use faultline_checker::ModelKind;
use faultline_core::{History, Test};

use crate::generator::{self, BoxGen, Draft};
use crate::{Checked, Workload};

/// Workers sharing one key at a time.
pub const THREADS_PER_KEY: usize = 5;
/// Operations on a key before its group moves to a fresh key.
pub const OPS_PER_KEY: u64 = 200;
/// Values are `0..VALUES`.
pub const VALUES: u64 = 5;

/// One random read, write or cas.
pub fn random_op(rng: &mut impl Rng) -> Draft {
    match rng.gen_range(0..3) {
        0 => Draft::new("read", Value::Null),
        1 => Draft::new("write", json!(rng.gen_range(0..VALUES))),
        _ => Draft::new(
            "cas",
            json!([rng.gen_range(0..VALUES), rng.gen_range(0..VALUES)]),
        ),
    }
}

/// The endless generator of the register workload.
pub fn generator() -> BoxGen {
    generator_counted(Arc::default())
}

/// [`generator`], counting the keys it uses in `keys_used`.
fn generator_counted(keys_used: Arc<AtomicU64>) -> BoxGen {
    generator::independent_counted(
        THREADS_PER_KEY,
        |_key| generator::limit(OPS_PER_KEY, generator::from_fn(|ctx| random_op(ctx.rng))),
        keys_used,
    )
}

pub fn workload() -> Workload {
    let keys_used = Arc::new(AtomicU64::new(0));
    Workload {
        options: Default::default(),
        name: "register",
        generator: generator_counted(keys_used.clone()),
        final_generator: Some(generator::each_key(
            Draft::new("read", Value::Null),
            keys_used,
        )),
        checker: check,
    }
}

/// Linearizability per key, cas-register model, initial value null (never written).
pub fn check(test: &Test, history: &History) -> Checked {
    let mut options = CheckOptions::new(ModelKind::CasRegister);
    options.time_limit = Some(Duration::from_millis(test.limits.checker_time_limit_ms));
    match linearizability::check(history, &options) {
        Ok(result) => Checked {
            valid: result.valid,
            checker: "linearizability",
            explanation: result.explain(),
            result: serde_json::to_value(&result).expect("results serialize"),
        },
        Err(e) => Checked::unknown("linearizability", format!("malformed history: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::tests::simulate;
    use faultline_checker::Validity;

    #[test]
    fn keys_rotate_and_values_stay_small() {
        let mut gen = generator::limit(1_000, generator());
        let drawn = simulate(&mut gen, 10, 100, u64::MAX);
        assert_eq!(drawn.len(), 1_000);
        let mut per_key: std::collections::BTreeMap<u64, u64> = Default::default();
        for d in &drawn {
            *per_key
                .entry(d.draft.key.as_ref().unwrap().as_u64().unwrap())
                .or_default() += 1;
        }
        // Two groups of five threads, at most 200 ops per key: at least five keys for 1000.
        assert!(per_key.len() >= 5, "{per_key:?}");
        assert!(per_key.values().all(|&n| n <= OPS_PER_KEY), "{per_key:?}");
        let fs: std::collections::BTreeSet<&str> =
            drawn.iter().map(|d| d.draft.f.as_str()).collect();
        assert_eq!(fs, ["cas", "read", "write"].into_iter().collect());
        for d in &drawn {
            if d.draft.f == "write" {
                assert!(d.draft.value.as_u64().unwrap() < VALUES);
            }
        }
    }

    /// The final reads visit every key the main phase used, once each.
    #[test]
    fn the_final_generator_reads_every_key_used() {
        let workload = workload();
        let mut main = generator::limit(1_000, workload.generator);
        let drawn = simulate(&mut main, 10, 100, u64::MAX);
        let used: std::collections::BTreeSet<u64> = drawn
            .iter()
            .map(|d| d.draft.key.as_ref().unwrap().as_u64().unwrap())
            .collect();
        let mut last = workload.final_generator.expect("final reads");
        let reads = simulate(&mut last, 10, 100, u64::MAX);
        assert!(reads.iter().all(|d| d.draft.f == "read"));
        let read: Vec<u64> = reads
            .iter()
            .map(|d| d.draft.key.as_ref().unwrap().as_u64().unwrap())
            .collect();
        let max = *used.iter().max().unwrap();
        // Every key handed out (a group may have taken a fresh key it did not use yet).
        assert_eq!(read, (0..read.len() as u64).collect::<Vec<_>>());
        assert!(read.len() as u64 > max, "{read:?} vs {used:?}");
        assert!(read.len() as u64 <= max + 3, "{read:?} vs {used:?}");
    }

    #[test]
    fn a_stale_read_is_invalid() {
        let text = r#"{"process":0,"type":"invoke","f":"write","key":1,"value":3}
{"process":0,"type":"ok","f":"write","key":1,"value":3}
{"process":1,"type":"invoke","f":"read","key":1,"value":null}
{"process":1,"type":"ok","f":"read","key":1,"value":null}"#;
        let history = faultline_core::jsonl::read_jsonl(text.as_bytes(), "t").unwrap();
        let checked = check(&Test::example("memory", "register", 1), &history);
        assert_eq!(checked.valid, Validity::Invalid);
        assert_eq!(checked.result["valid"], json!(false));
    }
}
