//! `faultline check`: read history files, check each, print verdicts, exit as Jepsen does.

use clap::Args;
use rayon::prelude::*;
use serde_json::{json, Value};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use faultline_checker::linearizability::{self, CheckOptions, LinearizabilityResult};
use faultline_checker::{ModelKind, Validity};
use faultline_core::import::{read_history_file, Format};

use crate::{check_coordination, check_lock, check_log, check_txn, EXIT_BAD_INPUT, EXIT_INTERNAL};

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The model: register, cas-register, multi-register, mutex, set, fifo-queue,
    /// unordered-queue, string-kv; transactional: list-append, rw-register, bank; lock (leases
    /// and fencing tokens: the lock workloads' histories); broadcast (total order broadcast);
    /// queue (work queues; the delivery promise from the run's test.json),
    /// queue-exactly-once, queue-at-least-once; election, unique-ids, watch, ephemeral (those
    /// workloads' histories). Default: implied by the format, else guessed from the
    /// operations.
    #[arg(long)]
    model: Option<String>,

    /// --model ephemeral: how long past the TTL the service may take to remove an expired
    /// registration, in milliseconds (default 1000, as the workload's).
    #[arg(long)]
    slack_ms: Option<u64>,

    /// The initial state as JSON (default null; Knossos's corpus uses 0).
    #[arg(long, value_parser = parse_json)]
    init: Option<Value>,

    /// The file format: auto, jsonl, edn, porcupine-etcd, porcupine-kv.
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    format: Format,

    /// The consistency model(s) to check, comma-separated. Register histories: linearizable
    /// (default), or causal, causal-convergence, causal-memory, PRAM and the session
    /// guarantees. Transactional models: strict-serializable (default), serializable,
    /// snapshot-isolation, repeatable-read, read-committed, causal, ...
    #[arg(long)]
    consistency: Option<String>,

    /// How a read that returned null counts: `absent` (the value was never written; the JSON
    /// Lines convention) or `unknown` (it constrains nothing; the Knossos / Jepsen EDN
    /// convention). Default: unknown for EDN, absent otherwise.
    #[arg(long, value_parser = ["absent", "unknown"])]
    nil_read: Option<String>,

    /// Seconds before the verdict becomes unknown.
    #[arg(long)]
    time_limit: Option<f64>,

    /// Memory the search may use for its memo tables, in MiB, before the verdict becomes
    /// unknown.
    #[arg(long, default_value_t = linearizability::DEFAULT_MEMORY_LIMIT_BYTES >> 20)]
    memory_limit_mb: u64,

    /// One JSON object per file on stdout, one per line.
    #[arg(long)]
    json: bool,

    /// Also write an HTML report of the (one) history to OUT: the verdict, each anomaly
    /// explained (a transactional anomaly's cycle drawn), plots and a timeline.
    #[arg(long, value_name = "OUT")]
    report: Option<PathBuf>,

    /// History files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

/// What happened to one file.
enum FileOutcome {
    Checked(Box<LinearizabilityResult>),
    /// The input could not be read or is not a history (exit 254).
    BadInput(String),
    /// faultline itself failed (exit 255).
    Internal(String),
}

impl FileOutcome {
    fn exit_code(&self) -> u8 {
        match self {
            FileOutcome::Checked(result) => result.valid.exit_code() as u8,
            FileOutcome::BadInput(_) => EXIT_BAD_INPUT,
            FileOutcome::Internal(_) => EXIT_INTERNAL,
        }
    }
}

/// The exit status for several files: bad input first (the run means nothing until it is
/// fixed), then internal errors, then invalid, unknown, valid.
pub(crate) fn combined_exit(codes: impl Iterator<Item = u8>) -> u8 {
    let rank = |code: u8| match code {
        EXIT_BAD_INPUT => 5,
        EXIT_INTERNAL => 4,
        1 => 3,
        2 => 2,
        _ => 1,
    };
    codes.max_by_key(|&c| rank(c)).unwrap_or(0)
}

pub fn run(args: CheckArgs) -> ExitCode {
    if let Some(limit) = args.time_limit {
        if !(limit.is_finite() && limit > 0.0) {
            eprintln!("faultline check: --time-limit must be a positive number of seconds");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    }
    if args.report.is_some() && args.files.len() != 1 {
        eprintln!("faultline check: --report writes the report of one history: give one file");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    if args.model.as_deref() == Some(check_lock::MODEL) {
        if args.report.is_some() || args.consistency.is_some() || args.init.is_some() {
            eprintln!("faultline check: --model lock takes no --report, --consistency or --init");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        return check_lock::run(&check_lock::Inputs {
            files: &args.files,
            format: args.format,
            time_limit: args.time_limit,
            json: args.json,
        });
    }
    if let Some(model) = args
        .model
        .as_deref()
        .filter(|m| check_log::MODELS.contains(m) || check_coordination::MODELS.contains(m))
    {
        if args.report.is_some() || args.consistency.is_some() || args.init.is_some() {
            eprintln!(
                "faultline check: --model {model} takes no --report, --consistency or --init"
            );
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        if check_coordination::MODELS.contains(&model) {
            return check_coordination::run(&check_coordination::Inputs {
                model,
                files: &args.files,
                format: args.format,
                json: args.json,
                slack_ms: args
                    .slack_ms
                    .unwrap_or(faultline_core::ephemeral::DEFAULT_SLACK_MS),
            });
        }
        return check_log::run(
            model,
            &check_lock::Inputs {
                files: &args.files,
                format: args.format,
                time_limit: args.time_limit,
                json: args.json,
            },
        );
    }
    // Transactional models, and causal register models, have their own checker.
    match check_txn::requested(args.model.as_deref(), args.consistency.as_deref()) {
        Err(why) => {
            eprintln!("faultline check: {why}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        Ok(Some(request)) => {
            return check_txn::run(
                request,
                &check_txn::Inputs {
                    files: &args.files,
                    format: args.format,
                    init: args.init.as_ref(),
                    nil_read: args.nil_read.as_deref(),
                    time_limit: args.time_limit,
                    memory_limit_mb: args.memory_limit_mb,
                    json: args.json,
                    report: args.report.as_deref(),
                },
            )
        }
        Ok(None) => {}
    }
    let model = match args
        .model
        .as_deref()
        .map(str::parse::<ModelKind>)
        .transpose()
    {
        Ok(model) => model,
        Err(why) => {
            eprintln!("faultline check: {why}, list-append, rw-register, bank");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    if let Some(consistency) = args.consistency.as_deref().filter(|c| *c != "linearizable") {
        eprintln!(
            "faultline check: --consistency {consistency} is not supported for these models; \
             register-style models are checked for linearizable (or causal)",
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let mut codes = Vec::new();
    let stdout = std::io::stdout();
    // Files are checked in parallel (each check is itself parallel over keys), the largest
    // first so that the longest check starts at once, and reported in the order given.
    let mut order: Vec<usize> = (0..args.files.len()).collect();
    order.sort_by_cached_key(|&i| {
        std::cmp::Reverse(std::fs::metadata(&args.files[i]).map_or(0, |m| m.len()))
    });
    let mut checked: Vec<(usize, (FileOutcome, FileMeta, f64))> = order
        .par_iter()
        .map(|&i| {
            let started = Instant::now();
            let (outcome, meta) = check_file(&args, model, &args.files[i]);
            (i, (outcome, meta, started.elapsed().as_secs_f64() * 1e3))
        })
        .collect();
    checked.sort_by_key(|&(i, _)| i);
    let checked = checked.into_iter().map(|(_, checked)| checked);
    for (file, (outcome, meta, elapsed_ms)) in args.files.iter().zip(checked) {
        codes.push(outcome.exit_code());
        let mut out = stdout.lock();
        if args.json {
            let line = json_line(file, &outcome, &meta, elapsed_ms);
            let _ = writeln!(out, "{line}");
        } else {
            print_human(&mut out, file, &outcome, &meta, elapsed_ms);
        }
        if let Some(report) = &args.report {
            let results = report_results(file, &outcome, &meta);
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
fn report_results(file: &Path, outcome: &FileOutcome, meta: &FileMeta) -> Value {
    let (valid, result) = match outcome {
        FileOutcome::Checked(result) => (
            result.valid.to_json(),
            serde_json::to_value(result).expect("results serialize"),
        ),
        FileOutcome::BadInput(why) | FileOutcome::Internal(why) => {
            (json!("unknown"), json!({"valid": "unknown", "reason": why}))
        }
    };
    let mut results = json!({
        "valid": valid,
        "checker": "linearizability",
        "file": file.display().to_string(),
        "result": result,
    });
    if let Some(model) = meta.model {
        results["model"] = json!(model.as_str());
    }
    results
}

/// What we learned about a file before checking it.
#[derive(Default)]
struct FileMeta {
    format: Option<Format>,
    model: Option<ModelKind>,
}

fn check_file(args: &CheckArgs, model: Option<ModelKind>, file: &Path) -> (FileOutcome, FileMeta) {
    if let Some(streamed) = check_streamed(args, model, file) {
        return streamed;
    }
    let mut meta = FileMeta::default();
    let started = Instant::now();
    let (history, format) = match read_history_file(file, args.format) {
        Ok(read) => read,
        Err(e) => return (FileOutcome::BadInput(e.to_string()), meta),
    };
    meta.format = Some(format);
    if std::env::var_os("FAULTLINE_TIMINGS").is_some() {
        eprintln!("timings: read {:?}", started.elapsed());
    }
    let model = match model
        .or_else(|| implied_model(format))
        .or_else(|| ModelKind::infer(&history.ops))
    {
        Some(model) => model,
        None if history.client_ops().next().is_none() => ModelKind::Register,
        None => {
            return (
                FileOutcome::BadInput(format!(
                    "cannot tell which model fits {}: give --model",
                    file.display()
                )),
                meta,
            )
        }
    };
    meta.model = Some(model);
    let options = check_options(args, model, format);
    let checked = catch_unwind(AssertUnwindSafe(|| {
        linearizability::check(&history, &options)
    }));
    let outcome = match checked {
        Ok(Ok(result)) => FileOutcome::Checked(Box::new(result)),
        Ok(Err(e)) => FileOutcome::BadInput(format!("{}: {e}", file.display())),
        Err(panic) => FileOutcome::Internal(checker_panic(file, panic)),
    };
    (outcome, meta)
}

/// A long JSON Lines file is checked as it is read, without holding its events (see
/// [`linearizability::check_jsonl_file`]). `None`: check the whole history instead, which is
/// also what reports a violation's evidence and any trouble opening the file.
fn check_streamed(
    args: &CheckArgs,
    model: Option<ModelKind>,
    file: &Path,
) -> Option<(FileOutcome, FileMeta)> {
    if !linearizability::streams(file, args.format) {
        return None;
    }
    let format = Format::Jsonl;
    let started = Instant::now();
    let options = check_options(args, model.unwrap_or(ModelKind::Register), format);
    let checked = catch_unwind(AssertUnwindSafe(|| {
        linearizability::check_jsonl_file(file, model, &options)
    }));
    if std::env::var_os("FAULTLINE_TIMINGS").is_some() {
        eprintln!("timings: streamed read and check {:?}", started.elapsed());
    }
    let mut meta = FileMeta {
        format: Some(format),
        model: None,
    };
    let outcome = match checked {
        Ok(Ok(Some(streamed))) => {
            meta.model = Some(streamed.model);
            FileOutcome::Checked(Box::new(streamed.result))
        }
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => FileOutcome::BadInput(e.to_string()),
        Err(panic) => FileOutcome::Internal(checker_panic(file, panic)),
    };
    Some((outcome, meta))
}

fn check_options(args: &CheckArgs, model: ModelKind, format: Format) -> CheckOptions {
    let mut options = CheckOptions::new(model);
    options.model_options.init = args.init.clone().unwrap_or(Value::Null);
    options.model_options.nil_read_is_unknown = match args.nil_read.as_deref() {
        Some(choice) => choice == "unknown",
        None => format == Format::Edn,
    };
    options.time_limit = args.time_limit.map(Duration::from_secs_f64);
    options.memory_limit_bytes = args.memory_limit_mb.saturating_mul(1 << 20);
    options
}

fn checker_panic(file: &Path, panic: Box<dyn std::any::Any + Send>) -> String {
    let why = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    format!("the checker failed on {}: {why}", file.display())
}

/// The Porcupine formats come with their model.
fn implied_model(format: Format) -> Option<ModelKind> {
    match format {
        Format::PorcupineEtcd => Some(ModelKind::CasRegister),
        Format::PorcupineKv => Some(ModelKind::StringKv),
        _ => None,
    }
}

fn json_line(file: &Path, outcome: &FileOutcome, meta: &FileMeta, elapsed_ms: f64) -> Value {
    let mut line = json!({
        "file": file.display().to_string(),
        "elapsed_ms": (elapsed_ms * 1000.0).round() / 1000.0,
    });
    let map = line.as_object_mut().expect("an object");
    if let Some(format) = meta.format {
        map.insert("format".into(), json!(format.as_str()));
    }
    if let Some(model) = meta.model {
        map.insert("model".into(), json!(model.as_str()));
    }
    match outcome {
        FileOutcome::Checked(result) => {
            map.insert("valid".into(), result.valid.to_json());
            map.insert("ops".into(), json!(result.ops));
            map.insert("keys".into(), json!(result.keys));
            if result.valid == Validity::Invalid {
                map.insert("not".into(), json!(["linearizable"]));
                let anomalies: Vec<Value> = result
                    .failures
                    .iter()
                    .map(|f| {
                        let mut v = serde_json::to_value(f).expect("failures serialize");
                        v["type"] = json!("nonlinearizable");
                        v["explanation"] = json!(f.explain());
                        v
                    })
                    .collect();
                map.insert("anomaly_types".into(), json!(["nonlinearizable"]));
                map.insert("anomalies".into(), Value::Array(anomalies));
            }
            if let Some(reason) = &result.reason {
                map.insert("reason".into(), json!(reason));
            }
        }
        FileOutcome::BadInput(why) => {
            map.insert("valid".into(), json!("unknown"));
            map.insert("error".into(), json!(why));
        }
        FileOutcome::Internal(why) => {
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
    outcome: &FileOutcome,
    meta: &FileMeta,
    elapsed_ms: f64,
) {
    let name = file.display();
    match outcome {
        FileOutcome::Checked(result) => {
            let verdict = match result.valid {
                Validity::Valid => "linearizable",
                Validity::Invalid => "NOT linearizable",
                Validity::Unknown => "unknown",
            };
            let model = meta.model.map(|m| m.as_str()).unwrap_or("?");
            let keys = if result.keys > 1 {
                format!(", {} keys", result.keys)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "{name}: {verdict} ({model}, {} ops{keys}, {elapsed_ms:.1} ms)",
                result.ops
            );
            let explanation = result.explain();
            for line in explanation.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        FileOutcome::BadInput(why) => print_not_checked(out, name, "cannot check", why),
        FileOutcome::Internal(why) => print_not_checked(out, name, "internal error", why),
    }
}

/// One history file's verdict from a checker of its own (`--model lock`, the coordination
/// models): what [`run_per_file`] prints.
pub(crate) struct FileVerdict {
    pub valid: Validity,
    /// The checker's result as JSON (printed with `--json` when not valid).
    pub result: Value,
    pub explanation: String,
    /// A few words for the text line (`12 holds`).
    pub summary: String,
    /// Client operations in the history.
    pub ops: usize,
}

/// Checks each file with `check` and prints one verdict per file: a text line (`<file>:
/// <verdict> (<model>, <ops> ops, <summary>, <ms> ms)` and the explanation), or one JSON
/// object per file with `json`. An `Err` is a file that could not be checked (bad input).
/// Exits with the worst status ([`combined_exit`]).
pub(crate) fn run_per_file(
    model: &str,
    files: &[PathBuf],
    json: bool,
    check: impl Fn(&Path) -> Result<FileVerdict, String>,
) -> ExitCode {
    let stdout = std::io::stdout();
    let mut codes = Vec::new();
    for file in files {
        let started = Instant::now();
        let outcome = check(file);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        let mut out = stdout.lock();
        match outcome {
            Ok(checked) => {
                codes.push(checked.valid.exit_code() as u8);
                if json {
                    let mut line = json!({
                        "file": file.display().to_string(),
                        "model": model,
                        "valid": checked.valid.to_json(),
                        "ops": checked.ops,
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
                        "{}: {verdict} ({model}, {} ops, {}, {elapsed_ms:.1} ms)",
                        file.display(),
                        checked.ops,
                        checked.summary
                    );
                    for line in checked.explanation.lines() {
                        let _ = writeln!(out, "  {line}");
                    }
                }
            }
            Err(why) => {
                codes.push(EXIT_BAD_INPUT);
                if json {
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

/// A file that got no verdict: `<name>: <what>` on stdout, why on stderr.
pub(crate) fn print_not_checked(
    out: &mut impl Write,
    name: impl std::fmt::Display,
    what: &str,
    why: &str,
) {
    let _ = writeln!(out, "{name}: {what}");
    eprintln!("faultline check: {why}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_outranks_verdicts() {
        assert_eq!(combined_exit([0, 1, 254, 2].into_iter()), 254);
        assert_eq!(combined_exit([0, 2, 1].into_iter()), 1);
        assert_eq!(combined_exit([0, 2].into_iter()), 2);
        assert_eq!(combined_exit([0, 0].into_iter()), 0);
        assert_eq!(combined_exit([0, 255, 1].into_iter()), 255);
    }
}
