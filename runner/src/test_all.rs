//! `faultline test-all --matrix matrix.toml [--junit FILE]`: a matrix of tests — targets x
//! workloads x nemeses x repetitions — run one after another, with a live progress line, a
//! summary table (verdict and seed per run), JUnit XML for CI, and the exit status of the
//! worst run.
//!
//! Every cell of the matrix is an ordinary `faultline test` run: its flags are built from the
//! matrix, parsed by the same argument parser and checked by the same validation before any
//! run starts (a typo in the last cell is found before the first runs for ten minutes), then
//! run in one [`Session`] (one runtime, one Ctrl-C). Each run is stored as `faultline test`
//! stores it, so its report and rerun command are where users expect them.
//!
//! The matrix file (`examples/matrix.toml`, `docs/byo-store.md`):
//!
//! ```toml
//! workloads = ["register"]          # default for every target
//! nemeses = ["partition", "none"]   # each entry is one --nemesis value
//! repetitions = 1
//! time_limit = 10                   # seconds per run
//! seed = 42                         # optional: each run's seed derives from it and its cell
//!
//! [[target]]
//! name = "memory"                   # a built-in target (its label in the table)
//! nemeses = ["none"]                # overrides the default
//!
//! [[target]]
//! name = "python-kv"
//! target_file = "python-kv/store.toml"   # relative to the matrix file
//! vars = { reads = "backup" }
//! args = ["--rate", "200"]          # any further `faultline test` flags
//! ```
//!
//! Exit status: the worst run's, worst first: 255 (a harness failure), 254 (bad arguments),
//! 1 (invalid), 2 (unknown, also a run skipped after Ctrl-C), 0 (every run valid).
//!
//! Design decision: runs go one at a time, never in parallel: faults are timed, ports and lab
//! hosts are shared, and two runs competing for two cores would make each other's timeouts
//! fire — a matrix must find the store's bugs, not the machine's load.

use anyhow::{bail, Context as _};
use clap::{Args, Parser};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use faultline_checker::Validity;
use faultline_core::test::derive_seed;

use crate::test::{check_args, Outcome, RunOutput, Session, TestArgs};
use crate::{EXIT_BAD_INPUT, EXIT_INTERNAL};

/// The most runs one matrix may ask for.
pub const MAX_RUNS: usize = 10_000;
/// Seconds per run when the matrix does not say.
pub const DEFAULT_TIME_LIMIT_S: f64 = 10.0;
/// The longest failure message in the JUnit file (its body carries the whole explanation).
const MESSAGE_CHARS: usize = 300;

#[derive(Args, Debug)]
pub struct TestAllArgs {
    /// The matrix: targets x workloads x nemeses x repetitions (a TOML file).
    #[arg(long)]
    matrix: PathBuf,

    /// Write JUnit XML here: one test case per run, failures carrying the anomaly and the
    /// path of the run's report.
    #[arg(long)]
    junit: Option<PathBuf>,

    /// Where runs are stored (overrides the matrix's `store`; default `store`).
    #[arg(long)]
    store: Option<PathBuf>,

    /// The seed every run's seed derives from (overrides the matrix's `seed`; default random).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Matrix {
    #[serde(default)]
    target: Vec<MatrixTarget>,
    workloads: Option<Vec<String>>,
    nemeses: Option<Vec<String>>,
    repetitions: Option<u32>,
    time_limit: Option<f64>,
    seed: Option<u64>,
    store: Option<PathBuf>,
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixTarget {
    /// The label in the table and the JUnit class; a built-in target's name when neither
    /// `target` nor `target_file` is given.
    name: String,
    target: Option<String>,
    target_file: Option<PathBuf>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    workloads: Option<Vec<String>>,
    nemeses: Option<Vec<String>>,
    #[serde(default)]
    args: Vec<String>,
}

/// One cell of the matrix, ready to run.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The target's label.
    pub target: String,
    pub workload: String,
    pub nemesis: String,
    /// 1-based.
    pub repetition: u32,
    /// The `faultline test` flags of this run.
    pub argv: Vec<String>,
}

impl Cell {
    /// `register partition #1`: the JUnit test case's name (no seed: it stays the same from
    /// one CI run to the next).
    pub fn case_name(&self) -> String {
        format!("{} {} #{}", self.workload, self.nemesis, self.repetition)
    }
}

/// What became of a cell.
#[derive(Debug, Clone)]
pub enum CellResult {
    Ran(Outcome),
    /// The run could not start: its exit status and why.
    NotStarted(u8, String),
    /// Ctrl-C came first.
    Skipped,
}

/// `faultline test`'s parser, for a cell's flags.
#[derive(Parser, Debug)]
#[command(name = "faultline test", no_binary_name = true)]
struct TestCommand {
    #[command(flatten)]
    args: TestArgs,
}

/// Parses a cell's flags exactly as `faultline test` would.
fn parse_test_args(argv: &[String]) -> anyhow::Result<TestArgs> {
    TestCommand::try_parse_from(argv)
        .map(|c| c.args)
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim()))
}

/// Reads the matrix and expands it into cells, in order: target, workload, nemesis,
/// repetition.
pub fn cells(path: &Path, store: Option<&Path>, seed: Option<u64>) -> anyhow::Result<Vec<Cell>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let matrix: Matrix = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    if matrix.target.is_empty() {
        bail!("{}: no [[target]]", path.display());
    }
    let repetitions = matrix.repetitions.unwrap_or(1);
    if repetitions == 0 {
        bail!("{}: repetitions must be at least 1", path.display());
    }
    let time_limit = matrix.time_limit.unwrap_or(DEFAULT_TIME_LIMIT_S);
    let store = store
        .map(Path::to_path_buf)
        .or(matrix.store.clone())
        .unwrap_or_else(|| PathBuf::from("store"));
    let seed = seed.or(matrix.seed);
    let mut labels = std::collections::BTreeSet::new();
    let mut cells = Vec::new();
    for target in &matrix.target {
        if !labels.insert(&target.name) {
            bail!(
                "{}: two targets are named {:?}",
                path.display(),
                target.name
            );
        }
        let mut placement: Vec<String> = match (&target.target, &target.target_file) {
            (Some(_), Some(_)) => bail!(
                "{}: target {:?} has both target and target_file",
                path.display(),
                target.name
            ),
            (_, Some(file)) => {
                let file = dir.join(file);
                vec!["--target-file".into(), file.to_string_lossy().into()]
            }
            (Some(name), None) => vec!["--target".into(), name.clone()],
            (None, None) => vec!["--target".into(), target.name.clone()],
        };
        if !target.vars.is_empty() && target.target_file.is_none() {
            bail!(
                "{}: target {:?}: vars apply only with target_file",
                path.display(),
                target.name
            );
        }
        for (name, value) in &target.vars {
            placement.push("--var".into());
            placement.push(format!("{name}={value}"));
        }
        let default_workloads = vec!["register".to_string()];
        let default_nemeses = vec!["none".to_string()];
        let workloads = target
            .workloads
            .as_ref()
            .or(matrix.workloads.as_ref())
            .unwrap_or(&default_workloads);
        let nemeses = target
            .nemeses
            .as_ref()
            .or(matrix.nemeses.as_ref())
            .unwrap_or(&default_nemeses);
        for workload in workloads {
            for nemesis in nemeses {
                for repetition in 1..=repetitions {
                    let mut argv = placement.clone();
                    argv.extend([
                        "--workload".into(),
                        workload.clone(),
                        "--nemesis".into(),
                        nemesis.clone(),
                        "--time-limit".into(),
                        time_limit.to_string(),
                        "--store".into(),
                        store.to_string_lossy().into(),
                    ]);
                    if let Some(seed) = seed {
                        // Derived from the cell, not its position: adding a target to the
                        // matrix does not change the seeds of the others.
                        let cell = format!("{}/{workload}/{nemesis}/{repetition}", target.name);
                        argv.extend(["--seed".into(), derive_seed(seed, &cell).to_string()]);
                    }
                    argv.extend(matrix.args.iter().cloned());
                    argv.extend(target.args.iter().cloned());
                    cells.push(Cell {
                        target: target.name.clone(),
                        workload: workload.clone(),
                        nemesis: nemesis.clone(),
                        repetition,
                        argv,
                    });
                    if cells.len() > MAX_RUNS {
                        bail!("{}: more than {MAX_RUNS} runs", path.display());
                    }
                }
            }
        }
    }
    Ok(cells)
}

/// How bad an exit status is, for "the exit status of the worst run".
pub fn severity(exit: u8) -> u8 {
    match exit {
        0 => 0,
        2 => 1,
        1 => 2,
        EXIT_BAD_INPUT => 3,
        _ => 4,
    }
}

impl CellResult {
    pub fn exit(&self) -> u8 {
        match self {
            CellResult::Ran(outcome) => outcome.exit,
            CellResult::NotStarted(exit, _) => *exit,
            CellResult::Skipped => Validity::Unknown.exit_code() as u8,
        }
    }

    /// `valid`, `INVALID`, `unknown`, `error`, `skipped`.
    pub fn verdict(&self) -> &'static str {
        match self {
            CellResult::Ran(o) if o.harness_error.is_some() => "error",
            CellResult::Ran(o) => match o.validity {
                Some(Validity::Valid) if o.exit == 0 => "valid",
                Some(Validity::Invalid) => "INVALID",
                None => "error",
                _ => "unknown",
            },
            CellResult::NotStarted(..) => "error",
            CellResult::Skipped => "skipped",
        }
    }
}

pub fn run(args: TestAllArgs) -> ExitCode {
    let cells = match cells(&args.matrix, args.store.as_deref(), args.seed) {
        Ok(cells) => cells,
        Err(e) => {
            eprintln!("faultline test-all: {e:#}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    // Every cell's flags are checked before the first run.
    let mut parsed = Vec::with_capacity(cells.len());
    for cell in &cells {
        let checked = parse_test_args(&cell.argv).and_then(|a| check_args(&a).map(|()| a));
        match checked {
            Ok(test_args) => parsed.push(test_args),
            Err(e) => {
                eprintln!(
                    "faultline test-all: {} {}: {e:#}\n  (faultline test {})",
                    cell.target,
                    cell.case_name(),
                    cell.argv.join(" ")
                );
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        }
    }
    crate::heal::before_run("test-all");
    let session = match Session::start() {
        Ok(session) => session,
        Err(e) => {
            eprintln!("faultline test-all: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    println!(
        "faultline test-all: {} runs from {}",
        cells.len(),
        args.matrix.display()
    );
    let started = Instant::now();
    let total = cells.len();
    let mut results = Vec::with_capacity(total);
    for (i, (cell, test_args)) in cells.iter().zip(parsed).enumerate() {
        if session.interrupted() {
            results.push(CellResult::Skipped);
            continue;
        }
        let position = format!("[{}/{total}]", i + 1);
        let label = format!("{} {}", cell.target, cell.case_name());
        let output = RunOutput {
            quiet: true,
            progress_prefix: format!("{position} {label} "),
        };
        let terminal = std::io::stderr().is_terminal();
        if terminal {
            // Until the run's own live line takes over (once its nodes are set up).
            eprint!("\r{position} {label}: setting up\x1b[K");
        } else {
            eprintln!("{position} {label}: running");
        }
        let result = match session.run_test(test_args, &output) {
            Ok(mut outcomes) => match outcomes.pop() {
                Some(outcome) => CellResult::Ran(outcome),
                None => CellResult::Skipped,
            },
            Err((exit, why)) => CellResult::NotStarted(exit, why),
        };
        if terminal {
            eprint!("\r\x1b[K");
        }
        println!("{position} {label}: {}", one_line(&result));
        let _ = std::io::stdout().flush();
        results.push(result);
    }
    session.finish();
    let elapsed = started.elapsed();
    print!("{}", summary_table(&cells, &results, elapsed));
    let mut exit = results
        .iter()
        .map(CellResult::exit)
        .max_by_key(|&e| severity(e))
        .unwrap_or(0);
    if let Some(path) = &args.junit {
        let suite = args
            .matrix
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "matrix".into());
        match write_atomically(path, &junit_xml(&suite, &cells, &results, elapsed)) {
            Ok(()) => println!("junit: {}", path.display()),
            Err(e) => {
                eprintln!("faultline test-all: writing {}: {e}", path.display());
                exit = if severity(EXIT_INTERNAL) > severity(exit) {
                    EXIT_INTERNAL
                } else {
                    exit
                };
            }
        }
    }
    ExitCode::from(exit)
}

/// A run's result on one line: verdict, seed, time, where it is.
fn one_line(result: &CellResult) -> String {
    match result {
        CellResult::Ran(o) => {
            let mut line = format!(
                "{} (seed {}, {:.1} s) {}",
                result.verdict(),
                o.seed,
                o.elapsed.as_secs_f64(),
                o.dir.display()
            );
            if let Some(e) = &o.harness_error {
                line.push_str(&format!(": {e}"));
            } else if !o.explanation.trim().is_empty() {
                line.push_str(&format!(": {}", anomaly_summary(&o.explanation)));
            }
            line
        }
        CellResult::NotStarted(exit, why) => format!("error (exit {exit}): {why}"),
        CellResult::Skipped => "skipped (interrupted)".into(),
    }
}

/// The anomaly in one line: the first two lines of the checker's explanation (for
/// linearizability: which operation cannot be placed, and the operation itself).
fn anomaly_summary(explanation: &str) -> String {
    explanation
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The table printed at the end: one row per run.
pub fn summary_table(cells: &[Cell], results: &[CellResult], elapsed: Duration) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for result in results {
        *counts.entry(result.verdict()).or_default() += 1;
    }
    let header = [
        "target", "workload", "nemesis", "run", "verdict", "seed", "time", "store",
    ];
    let mut rows: Vec<[String; 8]> = vec![header.map(str::to_string)];
    for (cell, result) in cells.iter().zip(results) {
        let (seed, time, dir) = match result {
            CellResult::Ran(o) => (
                o.seed.to_string(),
                format!("{:.1} s", o.elapsed.as_secs_f64()),
                o.dir.display().to_string(),
            ),
            _ => ("-".into(), "-".into(), "-".into()),
        };
        rows.push([
            cell.target.clone(),
            cell.workload.clone(),
            cell.nemesis.clone(),
            cell.repetition.to_string(),
            result.verdict().to_string(),
            seed,
            time,
            dir,
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::from("\n");
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let counted: Vec<String> = ["valid", "INVALID", "unknown", "error", "skipped"]
        .iter()
        .filter_map(|v| counts.get(v).map(|n| format!("{n} {}", v.to_lowercase())))
        .collect();
    out.push_str(&format!(
        "{} runs in {:.1} s: {}\n",
        results.len(),
        elapsed.as_secs_f64(),
        counted.join(", ")
    ));
    out
}

/// `text` safe inside XML text and attribute values: the five special characters escaped,
/// characters XML 1.0 forbids (most control characters) dropped.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || matches!(c as u32, 0xFFFE | 0xFFFF) => {}
            c => out.push(c),
        }
    }
    out
}

fn truncate(text: &str, chars: usize) -> String {
    let mut out: String = text.chars().take(chars).collect();
    if out.len() < text.len() {
        out.push_str("...");
    }
    out
}

/// The JUnit XML of a matrix: one `<testsuite>`, one `<testcase>` per run (class
/// `faultline.<target>`, name `<workload> <nemesis> #<n>`). An invalid or unknown run is a
/// `<failure>` whose message is the first lines of the anomaly and whose body holds the whole
/// explanation, the report's path and the rerun command; a run that could not run is an
/// `<error>`; a run skipped after Ctrl-C is `<skipped>`.
pub fn junit_xml(suite: &str, cells: &[Cell], results: &[CellResult], elapsed: Duration) -> String {
    let count = |v: &[&str]| results.iter().filter(|r| v.contains(&r.verdict())).count();
    let (failures, errors, skipped) = (
        count(&["INVALID", "unknown"]),
        count(&["error"]),
        count(&["skipped"]),
    );
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let totals = format!(
        "tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" \
         time=\"{:.3}\"",
        results.len(),
        elapsed.as_secs_f64()
    );
    xml.push_str(&format!(
        "<testsuites name=\"faultline test-all\" {totals}>\n"
    ));
    xml.push_str(&format!(
        "  <testsuite name=\"{}\" {totals}>\n",
        xml_escape(suite)
    ));
    for (cell, result) in cells.iter().zip(results) {
        let time = match result {
            CellResult::Ran(o) => o.elapsed.as_secs_f64(),
            _ => 0.0,
        };
        xml.push_str(&format!(
            "    <testcase classname=\"faultline.{}\" name=\"{}\" time=\"{time:.3}\">\n",
            xml_escape(&cell.target),
            xml_escape(&cell.case_name())
        ));
        let mut out = format!("faultline test {}\n", cell.argv.join(" "));
        match result {
            CellResult::Ran(o) => {
                out.push_str(&format!("seed: {}\nstore: {}\n", o.seed, o.dir.display()));
                let mut body = String::new();
                if let Some(e) = &o.harness_error {
                    body.push_str(&format!("harness error: {e}\n"));
                }
                body.push_str(&o.explanation);
                if let Some(report) = &o.report {
                    body.push_str(&format!("report: {}\n", report.display()));
                }
                body.push_str(&format!("store: {}\nrerun: {}\n", o.dir.display(), o.rerun));
                let verdict = result.verdict();
                let message = match &o.harness_error {
                    Some(e) => format!("harness error: {e}"),
                    None if o.explanation.trim().is_empty() => verdict.to_string(),
                    None => format!("{verdict}: {}", anomaly_summary(&o.explanation)),
                };
                let message = match &o.report {
                    Some(report) => format!(
                        "{} (report: {})",
                        truncate(&message, MESSAGE_CHARS),
                        report.display()
                    ),
                    None => truncate(&message, MESSAGE_CHARS),
                };
                let element = match verdict {
                    "valid" => None,
                    "error" => Some(("error", "harness-error")),
                    "unknown" => Some(("failure", "unknown")),
                    _ => Some(("failure", "invalid")),
                };
                if let Some((element, kind)) = element {
                    xml.push_str(&format!(
                        "      <{element} message=\"{}\" type=\"{kind}\">{}</{element}>\n",
                        xml_escape(&message),
                        xml_escape(&body)
                    ));
                }
            }
            CellResult::NotStarted(exit, why) => {
                xml.push_str(&format!(
                    "      <error message=\"{}\" type=\"exit-{exit}\">{}</error>\n",
                    xml_escape(&truncate(why, MESSAGE_CHARS)),
                    xml_escape(why)
                ));
            }
            CellResult::Skipped => {
                xml.push_str("      <skipped message=\"interrupted before it ran\"/>\n");
            }
        }
        xml.push_str(&format!(
            "      <system-out>{}</system-out>\n",
            xml_escape(&out)
        ));
        xml.push_str("    </testcase>\n");
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// Writes `text` to `path` through a temporary file renamed over it, so CI never reads half a
/// report.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "junit.xml".into());
    let temporary = path.with_file_name(format!(".{name}.{}", std::process::id()));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_matrix_expands_in_order_with_stable_seeds() {
        let dir = std::env::temp_dir().join(format!("faultline-matrix-{}", std::process::id()));
        let text = r#"
workloads = ["register"]
nemeses = ["none", "partition"]
repetitions = 2
time_limit = 3
seed = 9
args = ["--rate", "100"]
[[target]]
name = "memory"
nemeses = ["none"]
[[target]]
name = "kv-fixed"
target_file = "kv/store.toml"
vars = { reads = "primary" }
"#;
        let path = write(&dir, "m.toml", text);
        let cells = cells(&path, None, None).unwrap();
        let names: Vec<String> = cells
            .iter()
            .map(|c| format!("{} {}", c.target, c.case_name()))
            .collect();
        assert_eq!(
            names,
            [
                "memory register none #1",
                "memory register none #2",
                "kv-fixed register none #1",
                "kv-fixed register none #2",
                "kv-fixed register partition #1",
                "kv-fixed register partition #2",
            ]
        );
        let argv = &cells[2].argv;
        assert_eq!(argv[0], "--target-file");
        assert!(argv[1].ends_with("kv/store.toml"), "{argv:?}");
        assert_eq!(&argv[2..4], ["--var", "reads=primary"]);
        assert!(argv.ends_with(&["--rate".to_string(), "100".to_string()]));
        let seed_of = |c: &Cell| {
            let i = c.argv.iter().position(|a| a == "--seed").unwrap();
            c.argv[i + 1].clone()
        };
        assert_ne!(seed_of(&cells[0]), seed_of(&cells[1]));
        // Stable: the same cell of another matrix gets the same seed.
        let other = write(
            &dir,
            "n.toml",
            &text.replace("name = \"memory\"\nnemeses = [\"none\"]\n[[target]]\n", ""),
        );
        let fewer = super::cells(&other, None, None).unwrap();
        assert_eq!(seed_of(&fewer[0]), seed_of(&cells[2]));
        // The flags parse as `faultline test`'s.
        parse_test_args(&cells[0].argv).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_matrices_are_refused() {
        let dir = std::env::temp_dir().join(format!("faultline-matrix-bad-{}", std::process::id()));
        for (text, why) in [
            ("workloads = [\"register\"]", "no [[target]]"),
            (
                "[[target]]\nname = \"a\"\n[[target]]\nname = \"a\"",
                "two targets",
            ),
            ("[[target]]\nname = \"a\"\ncolour = 1", "colour"),
            ("repetitions = 0\n[[target]]\nname = \"a\"", "repetitions"),
            (
                "[[target]]\nname = \"memory\"\nvars = { a = \"b\" }",
                "vars apply only",
            ),
        ] {
            let path = write(&dir, "m.toml", text);
            let err = cells(&path, None, None).unwrap_err().to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_worst_exit_wins() {
        let worst = |exits: &[u8]| *exits.iter().max_by_key(|&&e| severity(e)).unwrap();
        assert_eq!(worst(&[0, 2, 0]), 2);
        assert_eq!(worst(&[2, 1, 0]), 1);
        assert_eq!(worst(&[1, 254]), 254);
        assert_eq!(worst(&[255, 254, 1]), 255);
    }

    #[test]
    fn xml_text_is_escaped_and_control_characters_dropped() {
        assert_eq!(
            xml_escape("a<b & \"c\" 'd'>\u{1}\n"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\n"
        );
    }
}
