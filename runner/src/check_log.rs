//! `faultline check --model broadcast|queue|queue-exactly-once|queue-at-least-once`: a total
//! order broadcast or work queue history (see `faultline_checker::broadcast` and
//! `faultline_checker::queue`), checked offline as `faultline test` checks it. `queue` takes the
//! delivery promise from the `test.json` beside the history (a stored run's); the other two
//! name it.

use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;

use faultline_checker::{broadcast, queue};
use faultline_core::import::read_history_file;
use faultline_core::queue::Delivery;

use crate::check::{run_per_file, FileVerdict};
use crate::check_lock::Inputs;

/// The model names this checker takes.
pub const MODELS: [&str; 4] = [
    "broadcast",
    "queue",
    "queue-exactly-once",
    "queue-at-least-once",
];

/// The promise of a `queue` history: from the model name, else the run's `test.json`.
fn promise(model: &str, file: &Path) -> Result<Delivery, String> {
    if let Some(named) = model.strip_prefix("queue-") {
        return Delivery::parse(named).ok_or_else(|| format!("unknown promise {named}"));
    }
    let test_json = file.with_file_name("test.json");
    let text = std::fs::read_to_string(&test_json).map_err(|e| {
        format!(
            "--model queue takes the delivery promise from {} ({e}); name it with --model \
             queue-exactly-once or queue-at-least-once",
            test_json.display()
        )
    })?;
    let test: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", test_json.display()))?;
    test["workload_options"]["delivery"]
        .as_str()
        .and_then(Delivery::parse)
        .ok_or_else(|| {
            format!(
                "{} records no delivery promise; name it with --model queue-exactly-once or \
                 queue-at-least-once",
                test_json.display()
            )
        })
}

fn check_file(model: &str, inputs: &Inputs, file: &Path) -> Result<FileVerdict, String> {
    let (history, _format) = read_history_file(file, inputs.format).map_err(|e| e.to_string())?;
    let ops = history.client_ops().count() / 2;
    let checked = if model == "broadcast" {
        let result = broadcast::check(&history).map_err(|e| e.to_string())?;
        let appends: usize = result.logs.iter().map(|l| l.appends_ok).sum();
        FileVerdict {
            valid: result.valid,
            explanation: result.explain(),
            summary: format!("{appends} acknowledged appends"),
            result: serde_json::to_value(&result).expect("results serialize"),
            ops,
        }
    } else {
        let delivery = promise(model, file)?;
        let result = queue::check(&history, delivery).map_err(|e| e.to_string())?;
        FileVerdict {
            valid: result.valid,
            explanation: result.explain(),
            summary: format!("{}, {} jobs enqueued", result.delivery, result.enqueued_ok),
            result: serde_json::to_value(&result).expect("results serialize"),
            ops,
        }
    };
    Ok(checked)
}

pub fn run(model: &str, inputs: &Inputs) -> ExitCode {
    run_per_file(model, inputs.files, inputs.json, |file| {
        check_file(model, inputs, file)
    })
}
