//! `faultline check --model list-append|rw-register|bank [--consistency C]`, and
//! `--model register --consistency causal`: the transactional and causal checkers on history
//! files (our JSON Lines, Elle's EDN), printed as `faultline check` prints every verdict.

use rayon::prelude::*;
use serde_json::{json, Value};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use faultline_checker::txn::{self, BankOptions, CheckOptions, DataModel, Model, TxnResult};
use faultline_checker::Validity;
use faultline_core::import::{read_history_file, Format};

use crate::check::{self, combined_exit};
use crate::{EXIT_BAD_INPUT, EXIT_INTERNAL};

/// A transactional (or causal register) check: the data model and the models to check.
pub(crate) struct Request {
    model: DataModel,
    consistency: Vec<Model>,
}

/// The arguments of `faultline check` this checker uses.
pub(crate) struct Inputs<'a> {
    pub files: &'a [PathBuf],
    pub format: Format,
    pub init: Option<&'a Value>,
    pub nil_read: Option<&'a str>,
    pub time_limit: Option<f64>,
    pub memory_limit_mb: u64,
    pub json: bool,
    /// Write the (one) history's HTML report here.
    pub report: Option<&'a Path>,
}

/// Whether `--model` / `--consistency` ask for this checker: `Ok(None)` when they ask for
/// linearizability, an error for a bad combination.
pub(crate) fn requested(
    model: Option<&str>,
    consistency: Option<&str>,
) -> Result<Option<Request>, String> {
    let models = |text: &str| -> Result<Vec<Model>, String> {
        text.split(',')
            .map(|m| m.trim().parse::<Model>())
            .collect::<Result<Vec<_>, _>>()
    };
    let data = match model.map(str::parse::<DataModel>) {
        Some(Ok(DataModel::Register)) | None => {
            // Register histories go here only for the causal family.
            let Some(text) = consistency.filter(|c| *c != "linearizable") else {
                return Ok(None);
            };
            let consistency = models(text)?;
            let causal = [
                Model::Causal,
                Model::CausalConvergence,
                Model::CausalMemory,
                Model::Pram,
                Model::ReadYourWrites,
                Model::MonotonicReads,
                Model::MonotonicWrites,
                Model::WritesFollowReads,
            ];
            if model.is_some() || consistency.iter().all(|m| causal.contains(m)) {
                if let Some(m) = consistency.iter().find(|m| !causal.contains(m)) {
                    return Err(format!(
                        "--consistency {m} does not apply to register histories: they are \
                         checked for linearizable, or for causal, causal-convergence, \
                         causal-memory, PRAM and the session guarantees"
                    ));
                }
                return Ok(Some(Request {
                    model: DataModel::Register,
                    consistency,
                }));
            }
            return Ok(None);
        }
        Some(Ok(data)) => data,
        Some(Err(_)) => return Ok(None),
    };
    let consistency = match consistency {
        None => vec![Model::StrictSerializable],
        Some(text) => models(text)?,
    };
    if let Some(m) = consistency
        .iter()
        .find(|m| m.domain() == txn::consistency::Domain::Registers)
    {
        return Err(format!(
            "--consistency {m} is a register model; {} histories are transactional",
            data.as_str()
        ));
    }
    Ok(Some(Request {
        model: data,
        consistency,
    }))
}

enum Outcome {
    Checked(Box<TxnResult>),
    BadInput(String),
    Internal(String),
}

impl Outcome {
    fn exit_code(&self) -> u8 {
        match self {
            Outcome::Checked(result) => result.valid.exit_code() as u8,
            Outcome::BadInput(_) => EXIT_BAD_INPUT,
            Outcome::Internal(_) => EXIT_INTERNAL,
        }
    }
}

pub(crate) fn run(request: Request, inputs: &Inputs) -> ExitCode {
    let mut options = CheckOptions::new(request.model, request.consistency);
    options.time_limit = inputs.time_limit.map(Duration::from_secs_f64);
    options.memory_limit_bytes = inputs.memory_limit_mb.saturating_mul(1 << 20);
    if request.model == DataModel::Bank {
        match BankOptions::from_init(inputs.init.unwrap_or(&Value::Null)) {
            Ok(bank) => options.bank = bank,
            Err(why) => {
                eprintln!("faultline check: {why}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        }
    }
    let checked: Vec<(Outcome, Option<Format>, f64)> = inputs
        .files
        .par_iter()
        .map(|file| {
            let started = Instant::now();
            let (outcome, format) = check_file(&options, inputs, file);
            (outcome, format, started.elapsed().as_secs_f64() * 1e3)
        })
        .collect();
    let stdout = std::io::stdout();
    let mut codes = Vec::new();
    for (file, (outcome, format, elapsed_ms)) in inputs.files.iter().zip(checked) {
        codes.push(outcome.exit_code());
        let mut out = stdout.lock();
        if inputs.json {
            let line = json_line(file, &options, &outcome, format, elapsed_ms);
            let _ = writeln!(out, "{line}");
        } else {
            print_human(&mut out, file, &options, &outcome, elapsed_ms);
        }
        if let Some(report) = inputs.report {
            let results = report_results(file, &options, &outcome);
            match faultline_reports::write_report_for_history(file, &results, report) {
                Ok(path) => eprintln!("faultline check: report written to {}", path.display()),
                Err(e) => {
                    eprintln!("faultline check: cannot write the report: {e}");
                    codes.push(EXIT_INTERNAL);
                }
            }
        }
    }
    ExitCode::from(combined_exit(codes.into_iter()))
}

/// The check's outcome in the shape of a run's results.json, which the report reads.
fn report_results(file: &Path, options: &CheckOptions, outcome: &Outcome) -> Value {
    let (valid, result) = match outcome {
        Outcome::Checked(result) => (
            result.valid.to_json(),
            serde_json::to_value(result).expect("results serialize"),
        ),
        Outcome::BadInput(why) | Outcome::Internal(why) => (
            json!("unknown"),
            json!({"valid": "unknown", "reason": why, "model": options.model.as_str(),
                   "consistency": options.consistency}),
        ),
    };
    json!({
        "valid": valid,
        "checker": "transactional",
        "file": file.display().to_string(),
        "model": options.model.as_str(),
        "result": result,
    })
}

fn check_file(options: &CheckOptions, inputs: &Inputs, file: &Path) -> (Outcome, Option<Format>) {
    let (history, format) = match read_history_file(file, inputs.format) {
        Ok(read) => read,
        Err(e) => return (Outcome::BadInput(e.to_string()), None),
    };
    let mut options = options.clone();
    options.nil_read_is_unknown = match inputs.nil_read {
        Some(choice) => choice == "unknown",
        None => format == Format::Edn,
    };
    let checked = catch_unwind(AssertUnwindSafe(|| txn::check(&history, &options)));
    let outcome = match checked {
        Ok(Ok(result)) => Outcome::Checked(Box::new(result)),
        Ok(Err(e)) => Outcome::BadInput(format!("{}: {e}", file.display())),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Outcome::Internal(format!("the checker failed on {}: {why}", file.display()))
        }
    };
    (outcome, Some(format))
}

fn consistency_names(options: &CheckOptions) -> String {
    options
        .consistency
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn json_line(
    file: &Path,
    options: &CheckOptions,
    outcome: &Outcome,
    format: Option<Format>,
    elapsed_ms: f64,
) -> Value {
    let mut line = json!({
        "file": file.display().to_string(),
        "model": options.model.as_str(),
        "consistency": options.consistency,
        "elapsed_ms": (elapsed_ms * 1000.0).round() / 1000.0,
    });
    let map = line.as_object_mut().expect("an object");
    if let Some(format) = format {
        map.insert("format".into(), json!(format.as_str()));
    }
    match outcome {
        Outcome::Checked(result) => {
            map.insert("ops".into(), json!(result.stats.txns));
            if let Value::Object(fields) = serde_json::to_value(result).expect("results serialize")
            {
                for (k, v) in fields {
                    map.insert(k, v);
                }
            }
            // The spelling every other model of `faultline check --json` uses, too.
            map.insert("anomaly_types".into(), json!(result.anomaly_types));
        }
        Outcome::BadInput(why) => {
            map.insert("valid".into(), json!("unknown"));
            map.insert("error".into(), json!(why));
        }
        Outcome::Internal(why) => {
            map.insert("valid".into(), json!("unknown"));
            map.insert("error".into(), json!(why));
            map.insert("reason".into(), json!("internal error"));
        }
    }
    line
}

fn print_human(
    out: &mut impl Write,
    file: &Path,
    options: &CheckOptions,
    outcome: &Outcome,
    elapsed_ms: f64,
) {
    let name = file.display();
    let consistency = consistency_names(options);
    match outcome {
        Outcome::Checked(result) => {
            let verdict = match result.valid {
                Validity::Valid => format!("valid: {consistency}"),
                Validity::Invalid => format!("NOT {consistency}"),
                Validity::Unknown => "unknown".to_string(),
            };
            let _ = writeln!(
                out,
                "{name}: {verdict} ({}, {} transactions, {elapsed_ms:.1} ms)",
                options.model.as_str(),
                result.stats.txns,
            );
            for line in result.explain().lines() {
                if line.is_empty() {
                    let _ = writeln!(out);
                } else {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
        Outcome::BadInput(why) => check::print_not_checked(out, name, "cannot check", why),
        Outcome::Internal(why) => check::print_not_checked(out, name, "internal error", why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_route_to_the_right_checker() {
        let r = requested(Some("list-append"), None).unwrap().unwrap();
        assert_eq!(r.model, DataModel::ListAppend);
        assert_eq!(r.consistency, [Model::StrictSerializable]);
        let r = requested(
            Some("rw-register"),
            Some("snapshot-isolation,repeatable-read"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            r.consistency,
            [Model::SnapshotIsolation, Model::RepeatableRead]
        );
        let r = requested(Some("register"), Some("causal"))
            .unwrap()
            .unwrap();
        assert_eq!(r.model, DataModel::Register);
        let r = requested(None, Some("causal")).unwrap().unwrap();
        assert_eq!(r.model, DataModel::Register);
        assert!(requested(Some("register"), None).unwrap().is_none());
        assert!(requested(Some("cas-register"), None).unwrap().is_none());
        assert!(requested(None, Some("linearizable")).unwrap().is_none());
        assert!(requested(Some("bank"), Some("causal-memory")).is_err());
        assert!(requested(Some("register"), Some("serializable")).is_err());
        assert!(requested(Some("list-append"), Some("bogus")).is_err());
    }
}
