//! `faultline check --model lock`: a lock history (acquires and releases with leases, writes to
//! a protected resource and its final read; see `faultline_checker::lock`), checked offline as
//! `faultline test --workload lock` checks it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use faultline_checker::lock::{self, LockOptions};
use faultline_core::import::{read_history_file, Format};

use crate::check::{run_per_file, FileVerdict};

/// The model name `--model` takes for this checker.
pub const MODEL: &str = "lock";

/// What `check` passes on.
pub struct Inputs<'a> {
    pub files: &'a [PathBuf],
    pub format: Format,
    pub time_limit: Option<f64>,
    pub json: bool,
}

fn check_file(inputs: &Inputs, file: &Path) -> Result<FileVerdict, String> {
    let (history, _format) = read_history_file(file, inputs.format).map_err(|e| e.to_string())?;
    let options = LockOptions {
        time_limit: inputs.time_limit.map(Duration::from_secs_f64),
    };
    let ops = history.client_ops().count() / 2;
    let result = lock::check(&history, &options).map_err(|e| e.to_string())?;
    Ok(FileVerdict {
        valid: result.valid,
        summary: format!("{} holds", result.holds),
        explanation: result.explain(),
        result: serde_json::to_value(&result).expect("results serialize"),
        ops,
    })
}

pub fn run(inputs: &Inputs) -> ExitCode {
    run_per_file(MODEL, inputs.files, inputs.json, |file| {
        check_file(inputs, file)
    })
}
