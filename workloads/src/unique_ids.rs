//! The `unique-ids` workload: every worker asks for ids (`generate`) as fast as the rate
//! allows; checked by [`faultline_checker::unique_ids`] (no id acknowledged twice). What a
//! client receives and answers is in [`faultline_core::unique_ids`]. No options, no final
//! phase.

use serde_json::Value;

use faultline_checker::unique_ids as unique_ids_checker;
use faultline_core::unique_ids::GENERATE;
use faultline_core::{History, Test};

use crate::generator::{self, Draft};
use crate::{Checked, Workload};

pub fn workload() -> Workload {
    Workload {
        name: "unique-ids",
        options: Default::default(),
        generator: generator::repeat(Draft::new(GENERATE, Value::Null)),
        final_generator: None,
        checker: check,
    }
}

/// The unique-ids checker.
pub fn check(_test: &Test, history: &History) -> Checked {
    match unique_ids_checker::check(history) {
        Ok(result) => Checked {
            valid: result.valid,
            checker: "unique-ids",
            explanation: result.explain(),
            result: serde_json::to_value(&result).expect("results serialize"),
        },
        Err(e) => Checked::unknown("unique-ids", format!("malformed history: {e}")),
    }
}
