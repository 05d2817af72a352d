//! The set workload: adds of unique integers across a few keys, then one final read per key,
//! checked by [`faultline_checker::set`] for lost, stale, unexpected and never-read elements.

use rand::Rng;
use serde_json::{json, Value};

use faultline_checker::set;
use faultline_core::{History, Test};

use crate::generator::{self, BoxGen, Draft};
use crate::{Checked, Workload};

/// How many sets the adds are spread over.
pub const KEYS: u64 = 5;

/// Endless adds: elements 0, 1, 2, ... (unique), each to a random key.
pub fn generator() -> BoxGen {
    let mut next = 0u64;
    generator::from_fn(move |ctx| {
        let element = next;
        next += 1;
        Draft::new("add", json!(element)).with_key(json!(ctx.rng.gen_range(0..KEYS)))
    })
}

/// One read of each key, after every add has completed.
pub fn final_generator() -> BoxGen {
    generator::seq(
        (0..KEYS)
            .map(|key| generator::once(Draft::new("read", Value::Null).with_key(json!(key))))
            .collect(),
    )
}

pub fn workload() -> Workload {
    Workload {
        options: Default::default(),
        name: "set",
        generator: generator(),
        final_generator: Some(final_generator()),
        checker: check,
    }
}

pub fn check(_test: &Test, history: &History) -> Checked {
    let result = set::check(history);
    Checked {
        valid: result.valid,
        checker: "set",
        explanation: result.explain(),
        result: serde_json::to_value(&result).expect("results serialize"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::tests::simulate;

    #[test]
    fn adds_are_unique_and_final_reads_cover_every_key() {
        let mut gen = generator::with_final(
            generator::time_limit(1_000_000, generator()),
            Some(final_generator()),
        );
        let drawn = simulate(&mut gen, 4, 1_000, u64::MAX);
        let adds: Vec<u64> = drawn
            .iter()
            .filter(|d| d.draft.f == "add")
            .map(|d| d.draft.value.as_u64().unwrap())
            .collect();
        assert_eq!(adds.len(), 4_000);
        let unique: std::collections::HashSet<&u64> = adds.iter().collect();
        assert_eq!(unique.len(), adds.len());
        let reads: Vec<u64> = drawn
            .iter()
            .filter(|d| d.draft.f == "read")
            .map(|d| d.draft.key.as_ref().unwrap().as_u64().unwrap())
            .collect();
        assert_eq!(reads, (0..KEYS).collect::<Vec<_>>());
    }
}
