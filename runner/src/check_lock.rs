//! `faultline check --model lock`: a lock history (acquires and releases with leases, writes to
//! a protected resource and its final read; see `faultline_checker::lock`), checked offline as
//! `faultline test --workload lock` checks it.

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use faultline_checker::lock::{self, LockOptions, LockResult};
use faultline_checker::Validity;
use faultline_core::import::{read_history_file, Format};

use crate::check::{combined_exit, print_not_checked};
use crate::EXIT_BAD_INPUT;

/// The model name `--model` takes for this checker.
pub const MODEL: &str = "lock";

/// What `check` passes on.
pub struct Inputs<'a> {
    pub files: &'a [PathBuf],
    pub format: Format,
    pub time_limit: Option<f64>,
    pub json: bool,
}

enum Outcome {
    Checked(Box<LockResult>, usize),
    BadInput(String),
}

fn check_file(inputs: &Inputs, file: &Path) -> Outcome {
    let history = match read_history_file(file, inputs.format) {
        Ok((history, _format)) => history,
        Err(e) => return Outcome::BadInput(e.to_string()),
    };
    let options = LockOptions {
        time_limit: inputs.time_limit.map(Duration::from_secs_f64),
    };
    let ops = history.client_ops().count() / 2;
    match lock::check(&history, &options) {
        Ok(result) => Outcome::Checked(Box::new(result), ops),
        Err(e) => Outcome::BadInput(e.to_string()),
    }
}

pub fn run(inputs: &Inputs) -> ExitCode {
    let stdout = std::io::stdout();
    let mut codes = Vec::new();
    for file in inputs.files {
        let started = Instant::now();
        let outcome = check_file(inputs, file);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        let mut out = stdout.lock();
        match &outcome {
            Outcome::Checked(result, ops) => {
                codes.push(result.valid.exit_code() as u8);
                if inputs.json {
                    let mut line = json!({
                        "file": file.display().to_string(),
                        "model": MODEL,
                        "valid": result.valid.to_json(),
                        "ops": ops,
                        "elapsed_ms": (elapsed_ms * 1000.0).round() / 1000.0,
                    });
                    if result.valid != Validity::Valid {
                        line["result"] = serde_json::to_value(result).expect("results serialize");
                        line["explanation"] = Value::String(result.explain());
                    }
                    let _ = writeln!(out, "{line}");
                } else {
                    let verdict = match result.valid {
                        Validity::Valid => "valid",
                        Validity::Invalid => "INVALID",
                        Validity::Unknown => "unknown",
                    };
                    let _ = writeln!(
                        out,
                        "{}: {verdict} ({MODEL}, {ops} ops, {} holds, {elapsed_ms:.1} ms)",
                        file.display(),
                        result.holds
                    );
                    for line in result.explain().lines() {
                        let _ = writeln!(out, "  {line}");
                    }
                }
            }
            Outcome::BadInput(why) => {
                codes.push(EXIT_BAD_INPUT);
                if inputs.json {
                    let line = json!({"file": file.display().to_string(), "model": MODEL,
                                      "valid": "unknown", "reason": why});
                    let _ = writeln!(out, "{line}");
                } else {
                    print_not_checked(&mut out, file.display(), "cannot check", why);
                }
            }
        }
    }
    ExitCode::from(combined_exit(codes.into_iter()))
}
