//! `faultline check --model watch` and `--model ephemeral`: a change-notification or an
//! ephemeral-registration history (see `faultline_checker::watch` and
//! `faultline_checker::ephemeral`), checked offline as `faultline test` checks it. The
//! ephemeral checker's slack is `--slack-ms` (default as the workload's).

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use faultline_checker::ephemeral::{self, EphemeralOptions};
use faultline_checker::{watch, Validity};
use faultline_core::import::{read_history_file, Format};

use crate::check::{combined_exit, print_not_checked};
use crate::EXIT_BAD_INPUT;

/// The model names `--model` takes for these checkers.
pub const MODELS: [&str; 2] = ["watch", "ephemeral"];

/// What `check` passes on.
pub struct Inputs<'a> {
    pub model: &'a str,
    pub files: &'a [PathBuf],
    pub format: Format,
    pub json: bool,
    pub slack_ms: u64,
}

/// A verdict with its counts line, full result and explanation.
struct Checked {
    valid: Validity,
    summary: String,
    result: Value,
    explanation: String,
}

fn check_file(inputs: &Inputs, file: &Path) -> Result<Checked, String> {
    let (history, _format) = read_history_file(file, inputs.format).map_err(|e| e.to_string())?;
    if inputs.model == "watch" {
        let r = watch::check(&history).map_err(|e| e.to_string())?;
        Ok(Checked {
            valid: r.valid,
            summary: format!("{} events, {} watchers", r.events, r.watchers),
            result: serde_json::to_value(&r).expect("results serialize"),
            explanation: r.explain(),
        })
    } else {
        let options = EphemeralOptions {
            slack_ms: inputs.slack_ms,
        };
        let r = ephemeral::check(&history, &options).map_err(|e| e.to_string())?;
        Ok(Checked {
            valid: r.valid,
            summary: format!("{} lists, {} bounded registrations", r.lists, r.bounded),
            result: serde_json::to_value(&r).expect("results serialize"),
            explanation: r.explain(),
        })
    }
}

pub fn run(inputs: &Inputs) -> ExitCode {
    let stdout = std::io::stdout();
    let mut codes = Vec::new();
    let model = inputs.model;
    for file in inputs.files {
        let started = Instant::now();
        let outcome = check_file(inputs, file);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        let mut out = stdout.lock();
        match outcome {
            Ok(checked) => {
                codes.push(checked.valid.exit_code() as u8);
                if inputs.json {
                    let mut line = json!({
                        "file": file.display().to_string(),
                        "model": model,
                        "valid": checked.valid.to_json(),
                        "elapsed_ms": (elapsed_ms * 1000.0).round() / 1000.0,
                        "result": checked.result,
                    });
                    if !checked.explanation.is_empty() {
                        line["explanation"] = Value::String(checked.explanation);
                    }
                    let _ = writeln!(out, "{line}");
                } else {
                    let verdict = match checked.valid {
                        Validity::Valid => "valid",
                        Validity::Invalid => "INVALID",
                        Validity::Unknown => "unknown",
                    };
                    let _ = writeln!(
                        out,
                        "{}: {verdict} ({model}, {}, {elapsed_ms:.1} ms)",
                        file.display(),
                        checked.summary
                    );
                    for line in checked.explanation.lines() {
                        let _ = writeln!(out, "  {line}");
                    }
                }
            }
            Err(why) => {
                codes.push(EXIT_BAD_INPUT);
                if inputs.json {
                    let line = json!({"file": file.display().to_string(), "model": model,
                                      "valid": "unknown", "reason": why});
                    let _ = writeln!(out, "{line}");
                } else {
                    print_not_checked(&mut out, file.display(), "cannot check", &why);
                }
            }
        }
    }
    ExitCode::from(combined_exit(codes.into_iter()))
}
