//! `faultline check --model broadcast|queue|queue-exactly-once|queue-at-least-once`: a total
//! order broadcast or work queue history (see `faultline_checker::broadcast` and
//! `faultline_checker::queue`), checked offline as `faultline test` checks it. `queue` takes the
//! delivery promise from the `test.json` beside the history (a stored run's); the other two
//! name it.

use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use faultline_checker::{broadcast, queue, Validity};
use faultline_core::import::read_history_file;
use faultline_core::queue::Delivery;

use crate::check::{combined_exit, print_not_checked};
use crate::check_lock::Inputs;
use crate::EXIT_BAD_INPUT;

/// The model names this checker takes.
pub const MODELS: [&str; 4] = [
    "broadcast",
    "queue",
    "queue-exactly-once",
    "queue-at-least-once",
];

struct Checked {
    valid: Validity,
    result: Value,
    explanation: String,
    summary: String,
}

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

fn check_file(model: &str, inputs: &Inputs, file: &Path) -> Result<(Checked, usize), String> {
    let (history, _format) = read_history_file(file, inputs.format).map_err(|e| e.to_string())?;
    let ops = history.client_ops().count() / 2;
    let checked = if model == "broadcast" {
        let result = broadcast::check(&history).map_err(|e| e.to_string())?;
        let appends: usize = result.logs.iter().map(|l| l.appends_ok).sum();
        Checked {
            valid: result.valid,
            explanation: result.explain(),
            summary: format!("{appends} acknowledged appends"),
            result: serde_json::to_value(&result).expect("results serialize"),
        }
    } else {
        let delivery = promise(model, file)?;
        let result = queue::check(&history, delivery).map_err(|e| e.to_string())?;
        Checked {
            valid: result.valid,
            explanation: result.explain(),
            summary: format!("{}, {} jobs enqueued", result.delivery, result.enqueued_ok),
            result: serde_json::to_value(&result).expect("results serialize"),
        }
    };
    Ok((checked, ops))
}

pub fn run(model: &str, inputs: &Inputs) -> ExitCode {
    let stdout = std::io::stdout();
    let mut codes = Vec::new();
    for file in inputs.files {
        let started = Instant::now();
        let outcome = check_file(model, inputs, file);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        let mut out = stdout.lock();
        match outcome {
            Ok((checked, ops)) => {
                codes.push(checked.valid.exit_code() as u8);
                if inputs.json {
                    let mut line = json!({
                        "file": file.display().to_string(),
                        "model": model,
                        "valid": checked.valid.to_json(),
                        "ops": ops,
                        "elapsed_ms": (elapsed_ms * 1000.0).round() / 1000.0,
                    });
                    if checked.valid != Validity::Valid {
                        line["result"] = checked.result;
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
                        "{}: {verdict} ({model}, {ops} ops, {}, {elapsed_ms:.1} ms)",
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
