//! The total order broadcast workload (`broadcast`, also called `log`): clients append unique
//! messages to one shared log and read the whole log back; checked by
//! [`faultline_checker::broadcast`].
//!
//! Main phase: each operation is an `append` of the next message id (0, 1, 2, ... across
//! all threads) with probability 3/4, else a `read`; all on the log `"log"`. After the main
//! phase (and the nemesis's final heal), every thread reads the log once more with the value
//! `"final"`: those reads must hold every acknowledged append. What a client receives and
//! answers is in [`faultline_core::broadcast`].
//!
//! Design decision: reads are mixed in during the faults, not only at the end, because a
//! reordering shows only as two reads that disagree about what came first; the final reads
//! are what the lost-append check needs.

use rand::Rng;
use serde_json::{json, Value};

use faultline_checker::broadcast as broadcast_checker;
use faultline_core::broadcast::{APPEND, FINAL, LOG, READ};
use faultline_core::{History, Test};

use crate::generator::{self, BoxGen, Draft};
use crate::{Checked, Workload};

/// One operation in this many is a read during the main phase.
pub const READ_ONE_IN: u32 = 4;

/// Endless appends of unique ids, with reads mixed in.
pub fn generator() -> BoxGen {
    let mut next = 0u64;
    generator::from_fn(move |ctx| {
        if ctx.rng.gen_ratio(1, READ_ONE_IN) {
            return Draft::new(READ, Value::Null).with_key(json!(LOG));
        }
        let id = next;
        next += 1;
        Draft::new(APPEND, json!(id)).with_key(json!(LOG))
    })
}

/// One final read per thread, after the main phase and the final heal.
pub fn final_generator() -> BoxGen {
    generator::each_thread(|_| generator::once(Draft::new(READ, json!(FINAL)).with_key(json!(LOG))))
}

pub fn workload() -> Workload {
    Workload {
        name: "broadcast",
        options: Default::default(),
        generator: generator(),
        final_generator: Some(final_generator()),
        checker: check,
    }
}

/// Prefix order, nothing lost, duplicated or unknown, appends in real-time order.
pub fn check(_test: &Test, history: &History) -> Checked {
    match broadcast_checker::check(history) {
        Ok(result) => Checked {
            valid: result.valid,
            checker: "broadcast",
            explanation: result.explain(),
            result: serde_json::to_value(&result).expect("results serialize"),
        },
        Err(e) => Checked::unknown("broadcast", format!("malformed history: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::tests::simulate;

    #[test]
    fn appends_are_unique_and_every_thread_reads_at_the_end() {
        let mut gen = generator::with_final(
            generator::time_limit(100_000_000, generator()),
            Some(final_generator()),
        );
        let drawn = simulate(&mut gen, 3, 1_000_000, 1_000_000_000);
        let appends: Vec<u64> = drawn
            .iter()
            .filter(|d| d.draft.f == APPEND)
            .map(|d| d.draft.value.as_u64().unwrap())
            .collect();
        let unique: std::collections::BTreeSet<u64> = appends.iter().copied().collect();
        assert_eq!(unique.len(), appends.len());
        assert!(drawn
            .iter()
            .any(|d| d.draft.f == READ && d.draft.value.is_null()));
        let finals: Vec<usize> = drawn
            .iter()
            .filter(|d| d.draft.value == json!(FINAL))
            .map(|d| d.thread)
            .collect();
        assert_eq!(finals.len(), 3, "one final read per thread");
    }
}
