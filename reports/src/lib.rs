//! Reports: the store layout of a run, its HTML report and plots, and the store's index.
//!
//! A run directory (`store/<test>/<timestamp>/`) holds `test.json`, `history.jsonl`,
//! `results.json`, `faultline.log` and `nodes/`. [`write_report`] reads them and writes
//! `report.html` beside them: the verdict, the run's parameters and the command that reruns
//! it, each checker's result with every anomaly explained (a linearizability failure's
//! smallest failing window drawn as a small timeline, a transactional anomaly's dependency
//! cycle as transactions joined by labelled edges; the coordination checkers' results drawn
//! over time: a lock's holds with overlapping holders and stale writes, an election's
//! leaders by epoch, a broadcast log's reads, a queue's jobs), latency, quantile and
//! throughput plots with the faults shaded, a timeline of every operation, and links to the
//! files.
//!
//! ```no_run
//! let report = faultline_reports::write_report(std::path::Path::new("store/latest")).unwrap();
//! println!("open {}", report.display());
//! ```
//!
//! Design decisions a reader may question:
//! - **One self-contained file.** CSS, the timeline's script, the SVG plots and the data are
//!   embedded, so the report opens from disk, from a CI artifact or through `faultline
//!   serve` with nothing else to fetch; a Content-Security-Policy lets only its own scripts
//!   run.
//! - **Bounded whatever the history's length.** Plots downsample (at most a few thousand
//!   points each) and the timeline draws only the window on screen from compact embedded
//!   JSON, so a 100k-op report opens in seconds (see `docs/reports.md`).
//! - **Lenient reading.** A run killed halfway still gets a report: a cut last line, open
//!   operations and a missing results.json are shown as such, not errors.
//! - **Everything from a history, a database or a log is escaped** ([`escape`]) in HTML and
//!   in the embedded JSON.

pub mod checkers;
pub mod coordination;
pub mod digest;
pub mod downsample;
pub mod drawing;
pub mod escape;
pub mod faults;
pub mod page;
pub mod plots;
pub mod store;
pub mod timeline;
pub mod txn;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use digest::Digest;
use page::{FileLink, Page};

/// The report's file name in a run directory.
pub const REPORT_FILE: &str = "report.html";
/// The files of a run directory, as `faultline test` writes them.
pub const TEST_FILE: &str = "test.json";
pub const HISTORY_FILE: &str = "history.jsonl";
pub const RESULTS_FILE: &str = "results.json";
pub const LOG_FILE: &str = "faultline.log";
pub const NODES_DIR: &str = "nodes";

/// Most warning and error lines of faultline.log the report quotes.
pub const MAX_LOG_LINES: usize = 200;
/// How much of faultline.log is scanned for them.
pub const MAX_LOG_SCAN_BYTES: u64 = 16 << 20;
/// Most node log files linked.
pub const MAX_NODE_LOGS: usize = 200;
/// Largest history read whole for the coordination checkers' drawings.
pub const MAX_DRAWN_HISTORY_BYTES: u64 = 256 << 20;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0} is not a run directory: it has none of test.json, history.jsonl, results.json")]
    NotARun(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    History(#[from] faultline_core::HistoryError),
    #[error("drawing a plot: {0}")]
    Plot(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a JSON file leniently: a missing or unreadable file is a problem to show, not an
/// error (a run killed before checking has no results.json).
fn read_json(path: &Path, problems: &mut Vec<String>) -> Option<Value> {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str(&text) {
            Ok(value) => Some(value),
            Err(e) => {
                problems.push(format!("{name} is not valid JSON: {e}"));
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            problems.push(format!("{name} is missing"));
            None
        }
        Err(e) => {
            problems.push(format!("{name} cannot be read: {e}"));
            None
        }
    }
}

/// Removes terminal colour sequences (`ESC [ ... letter`) from a log line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The warning and error lines of a tracing log (`... WARN target: message`).
fn log_warnings(path: &Path) -> Vec<String> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for line in BufReader::new(file.take(MAX_LOG_SCAN_BYTES)).lines() {
        let Ok(line) = line else { break };
        let line = strip_ansi(&line);
        if line.contains(" WARN ") || line.contains(" ERROR ") {
            lines.push(escape::truncate(&line, 500));
            if lines.len() == MAX_LOG_LINES {
                break;
            }
        }
    }
    lines
}

fn is_log_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".log", ".out", ".err", ".stdout", ".stderr"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// Log files under a run's `nodes/` directory (relative paths, sorted), at most three levels
/// deep; symbolic links are not followed.
pub fn node_logs(run_dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![(run_dir.join(NODES_DIR), NODES_DIR.to_string(), 0)];
    while let Some((dir, relative, depth)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = format!("{relative}/{name}");
            if kind.is_dir() && depth < 2 {
                pending.push((entry.path(), path, depth + 1));
            } else if kind.is_file() && is_log_name(&name) {
                found.push(path);
            }
        }
    }
    found.sort();
    found.truncate(MAX_NODE_LOGS);
    found
}

/// The whole history, when the results are a coordination checker's that the report draws
/// from it (`coordination.rs`). Read leniently like the digest: unreadable lines are skipped
/// (the digest already counts them).
fn drawn_history(
    path: &Path,
    results: Option<&Value>,
    problems: &mut Vec<String>,
) -> Option<faultline_core::History> {
    let drawn = checkers::checker_results(results?)
        .iter()
        .any(|(name, _)| matches!(name.as_str(), "lock" | "election" | "broadcast" | "queue"));
    if !drawn {
        return None;
    }
    let size = std::fs::metadata(path).ok()?.len();
    if size > MAX_DRAWN_HISTORY_BYTES {
        problems.push(format!(
            "history.jsonl is {} MiB, more than the {} MiB the coordination drawings read: they \
             are left out",
            size >> 20,
            MAX_DRAWN_HISTORY_BYTES >> 20
        ));
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    let label = path.display().to_string();
    let ops: Vec<faultline_core::Op> = faultline_core::jsonl::JsonlReader::new(file, &label)
        .filter_map(Result::ok)
        .collect();
    Some(faultline_core::History::new(ops))
}

/// Writes `text` to `path` through a temporary file renamed over it, so a reader (`faultline
/// serve`) never sees half a report.
fn write_atomically(path: &Path, text: &str) -> Result<(), ReportError> {
    let name = path
        .file_name()
        .map_or_else(|| "report".into(), |n| n.to_string_lossy().into_owned());
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, text).map_err(io_error(&temporary))?;
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        ReportError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    })
}

/// Builds a stored run's `report.html` from the files in its directory and returns its path.
///
/// # Correctness
/// Works on a run killed at any point: a missing or unreadable results.json or test.json, or
/// a history cut off mid-line, is noted in the report. Only a directory with none of the
/// run's files, or a report that cannot be written, is an error.
pub fn write_report(run_dir: &Path) -> Result<PathBuf, ReportError> {
    let exists = |name: &str| run_dir.join(name).is_file();
    if !(exists(TEST_FILE) || exists(HISTORY_FILE) || exists(RESULTS_FILE)) {
        return Err(ReportError::NotARun(run_dir.to_path_buf()));
    }
    let mut problems = Vec::new();
    let test = read_json(&run_dir.join(TEST_FILE), &mut problems);
    let results = read_json(&run_dir.join(RESULTS_FILE), &mut problems);
    let history_path = run_dir.join(HISTORY_FILE);
    let digest = if history_path.is_file() {
        match Digest::read(&history_path) {
            Ok(digest) => Some(digest),
            Err(e) => {
                problems.push(format!("history.jsonl cannot be read: {e}"));
                None
            }
        }
    } else {
        problems.push("history.jsonl is missing".into());
        None
    };
    let mut files = Vec::new();
    for name in [HISTORY_FILE, RESULTS_FILE, LOG_FILE, TEST_FILE] {
        if exists(name) {
            files.push(FileLink {
                href: name.to_string(),
                label: name.to_string(),
                absolute: false,
            });
        }
    }
    for log in node_logs(run_dir) {
        files.push(FileLink {
            label: log.clone(),
            href: log,
            absolute: false,
        });
    }
    let history = drawn_history(&history_path, results.as_ref(), &mut problems);
    let title = test
        .as_ref()
        .and_then(|t| {
            let name = t.get("name")?.as_str()?;
            let start = t.get("start_time").and_then(Value::as_str).unwrap_or("");
            Some(format!("{name} {start}").trim().to_string())
        })
        .unwrap_or_else(|| run_dir.display().to_string());
    let page = Page {
        title,
        test: test.as_ref(),
        results: results.as_ref(),
        digest: digest.as_ref(),
        problems,
        files,
        log_lines: log_warnings(&run_dir.join(LOG_FILE)),
        history: history.as_ref(),
    };
    let text = page::render(&page)?;
    let out = run_dir.join(REPORT_FILE);
    write_atomically(&out, &text)?;
    Ok(out)
}

/// A `file://` URL for an absolute path, percent-encoded.
fn file_url(path: &Path) -> String {
    format!("file://{}", escape::href_path(&path.to_string_lossy()))
}

/// Writes a report for a history checked offline (`faultline check --report OUT`), which has
/// no test.json: `results` has the shape of a run's results.json (`valid`, `checker`,
/// `result`, optionally `file` and `model`). Returns `out`.
pub fn write_report_for_history(
    history: &Path,
    results: &Value,
    out: &Path,
) -> Result<PathBuf, ReportError> {
    let digest = Digest::read(history)?;
    let history_absolute = std::path::absolute(history).map_err(io_error(history))?;
    let out_absolute = std::path::absolute(out).map_err(io_error(out))?;
    // A history beside the report is linked by its name, so the pair can move together.
    let link = if history_absolute.parent() == out_absolute.parent() {
        FileLink {
            href: history_absolute
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            label: history.display().to_string(),
            absolute: false,
        }
    } else {
        FileLink {
            href: file_url(&history_absolute),
            label: history.display().to_string(),
            absolute: true,
        }
    };
    let page = Page {
        title: history.file_name().map_or_else(
            || history.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        test: None,
        results: Some(results),
        digest: Some(&digest),
        problems: Vec::new(),
        files: vec![link],
        log_lines: Vec::new(),
        history: None,
    };
    let text = page::render(&page)?;
    write_atomically(out, &text)?;
    Ok(out.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_colours_are_stripped_and_only_warnings_kept() {
        assert_eq!(strip_ansi("\u{1b}[33m WARN\u{1b}[0m x"), " WARN x");
        let dir =
            std::env::temp_dir().join(format!("faultline-reports-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("faultline.log");
        std::fs::write(
            &log,
            "t  INFO a: fine\nt  WARN b: slow <peer>\nt ERROR c: failed\n",
        )
        .unwrap();
        assert_eq!(
            log_warnings(&log),
            ["t  WARN b: slow <peer>", "t ERROR c: failed"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn node_logs_are_found_without_data_files() {
        let dir =
            std::env::temp_dir().join(format!("faultline-reports-nodes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("nodes/n1")).unwrap();
        std::fs::write(dir.join("nodes/n1.log"), "x").unwrap();
        std::fs::write(dir.join("nodes/n1/wal"), "x").unwrap();
        std::fs::write(dir.join("nodes/n1/etcd.stderr"), "x").unwrap();
        assert_eq!(node_logs(&dir), ["nodes/n1.log", "nodes/n1/etcd.stderr"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_without_run_files_is_not_a_run() {
        let dir =
            std::env::temp_dir().join(format!("faultline-reports-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(write_report(&dir), Err(ReportError::NotARun(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
