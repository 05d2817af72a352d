//! The report page: one self-contained HTML file (styles, scripts, SVG and data embedded), so
//! it opens from disk, from a CI artifact, or through `faultline serve` alike.

use serde_json::Value;
use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};

use crate::checkers::{self, Verdict};
use crate::coordination;
use crate::digest::{Digest, Outcome, TimeAxis};
use crate::escape::{href_path, html, json_for_script, truncate};
use crate::faults::{fault_intervals, FaultInterval};
use crate::plots::plots;
use crate::timeline::timeline_data;
use crate::ReportError;

const CSS: &str = include_str!("assets/report.css");
const TIMELINE_JS: &str = include_str!("assets/timeline.js");

/// A link in the report's file list.
#[derive(Debug, Clone, PartialEq)]
pub struct FileLink {
    /// Relative to the report (already a URL path; it is percent-encoded when written).
    pub href: String,
    pub label: String,
    /// An absolute `file://` URL, written as it is (percent-encoded by its maker).
    pub absolute: bool,
}

/// Everything a report shows; each part may be missing (a run killed early has no results).
#[derive(Default)]
pub struct Page<'a> {
    pub title: String,
    pub test: Option<&'a Value>,
    pub results: Option<&'a Value>,
    pub digest: Option<&'a Digest>,
    /// Problems met while gathering the run (a missing or unreadable file).
    pub problems: Vec<String>,
    pub files: Vec<FileLink>,
    /// Warnings and errors from faultline.log.
    pub log_lines: Vec<String>,
    /// The whole history, for the coordination checkers' drawings (`coordination.rs`); read
    /// only for those checkers.
    pub history: Option<&'a faultline_core::History>,
}

/// A fresh value for the Content-Security-Policy nonce: only the report's own scripts carry
/// it, so a script that got into the page some other way would not run.
fn nonce() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!(
        "{:016x}{:016x}",
        hasher.finish(),
        RandomState::new().build_hasher().finish()
    )
}

/// `20261202T023609.210Z` as `2026-12-02 02:36:09.210 UTC`; other text as it is.
pub fn readable_start_time(stamp: &str) -> String {
    let b = stamp.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() >= 16 && digits(0..8) && b[8] == b'T' && digits(9..15) {
        let rest = stamp[15..].trim_end_matches('Z');
        format!(
            "{}-{}-{} {}:{}:{}{} UTC",
            &stamp[0..4],
            &stamp[4..6],
            &stamp[6..8],
            &stamp[9..11],
            &stamp[11..13],
            &stamp[13..15],
            rest
        )
    } else {
        stamp.to_string()
    }
}

/// Quotes an argument for a POSIX shell when it needs it.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./,:=@%+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// The command that reruns a run, from its `test.json`: the command line it was started with
/// (`argv`), with the run's own seed instead of any `--seed`, and without `--test-count` (a
/// later run of a `--test-count` series has a seed derived from the first). Without `argv`
/// (an older test.json), it is rebuilt from the parameters.
pub fn rerun_command(test: &Value) -> Option<String> {
    let seed = test.get("seed").and_then(Value::as_u64)?;
    let argv: Vec<&str> = test
        .get("argv")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut words: Vec<String> = vec!["faultline".to_string()];
    if argv.len() > 1 {
        let mut args = argv[1..].iter();
        while let Some(&arg) = args.next() {
            if arg == "--seed" || arg == "--test-count" {
                args.next();
                continue;
            }
            if arg.starts_with("--seed=") || arg.starts_with("--test-count=") {
                continue;
            }
            words.push(shell_quote(arg));
        }
    } else {
        let field = |name: &str| test.get(name).and_then(Value::as_str).map(shell_quote);
        words.push("test".into());
        for (flag, value) in [
            ("--target", field("target")),
            ("--workload", field("workload")),
        ] {
            if let Some(value) = value {
                words.push(flag.into());
                words.push(value);
            }
        }
        let list = |name: &str| -> Vec<String> {
            test.get(name)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let nemesis = list("nemesis");
        if !nemesis.is_empty() {
            words.push("--nemesis".into());
            words.push(shell_quote(&nemesis.join(",")));
        }
        if let Some(ms) = test.get("time_limit_ms").and_then(Value::as_u64) {
            words.push("--time-limit".into());
            words.push(format!("{}", ms as f64 / 1000.0));
        }
        if let Some(c) = test.get("concurrency").and_then(Value::as_u64) {
            words.push("--concurrency".into());
            words.push(c.to_string());
        }
        let bugs = list("bugs");
        if !bugs.is_empty() {
            words.push("--bug".into());
            words.push(shell_quote(&bugs.join(",")));
        }
    }
    words.push("--seed".into());
    words.push(seed.to_string());
    Some(words.join(" "))
}

fn field_text(test: Option<&Value>, name: &str) -> Option<String> {
    let value = test?.get(name)?;
    Some(match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Null => return None,
        other => other.to_string(),
    })
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Renders the report page.
pub fn render(page: &Page<'_>) -> Result<String, ReportError> {
    let nonce = nonce();
    let results = page.results;
    let verdict = results.map_or(Verdict::Unknown, |r| Verdict::of(r.get("valid")));
    let rendered = results.map(checkers::render);
    let faults: Vec<FaultInterval> = page
        .digest
        .map(|d| fault_intervals(&d.nemesis))
        .unwrap_or_default();
    let mut out = String::with_capacity(1 << 20);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; img-src data:; script-src 'nonce-{nonce}'\">\
         <title>{} — faultline report</title><style>{CSS}</style></head><body><main>",
        html(&page.title)
    );

    // The verdict banner.
    let checker_names: Vec<String> = results
        .map(checkers::checker_results)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let why = match (verdict, &rendered, results) {
        (_, _, None) => "no results.json: the run was not checked (still running, or stopped \
                         before its history was checked)"
            .to_string(),
        (Verdict::Invalid, Some(r), _) if !r.findings.is_empty() => format!(
            "{}: {} (explained below)",
            checker_names.join(", "),
            r.findings.join(", ")
        ),
        (Verdict::Invalid, _, _) => format!(
            "{}: invalid (see the checker's result below)",
            checker_names.join(", ")
        ),
        (Verdict::Valid, _, _) => format!(
            "{}: no anomaly found{}",
            checker_names.join(", "),
            page.digest
                .map(|d| format!(" in {} operations", thousands(d.ops.len() as u64)))
                .unwrap_or_default()
        ),
        (_, _, Some(r)) => {
            let reason = checkers::checker_results(r)
                .into_iter()
                .find_map(|(_, v)| v.get("reason").and_then(Value::as_str).map(str::to_string))
                .or_else(|| r.get("reason").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| "the checker could not decide".into());
            format!("{}: {}", checker_names.join(", "), reason)
        }
    };
    let _ = write!(
        out,
        "<header class=\"banner {}\"><div class=\"verdict\">{}</div><div class=\"why\">{}</div>",
        verdict.as_str(),
        verdict.as_str().to_uppercase(),
        html(&why)
    );
    if let Some(e) = results
        .and_then(|r| r.get("harness_error"))
        .and_then(Value::as_str)
    {
        let _ = write!(
            out,
            "<div class=\"harness\">harness error: {}</div>",
            html(&truncate(e, 2000))
        );
    }
    if results
        .and_then(|r| r.get("interrupted"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        out.push_str("<div class=\"harness\">the run was interrupted</div>");
    }
    out.push_str("</header>");
    let _ = write!(
        out,
        "<h1>{}</h1><nav><a href=\"#run\">run</a><a href=\"#results\">results</a>\
         <a href=\"#plots\">plots</a><a href=\"#timeline-section\">timeline</a>\
         <a href=\"#faults\">faults</a><a href=\"#files\">files</a></nav>",
        html(&page.title)
    );

    // The run.
    out.push_str("<h2 id=\"run\">The run</h2><dl class=\"summary\">");
    let test = page.test;
    let mut row = |label: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", html(label), html(&value));
        }
    };
    row("test", field_text(test, "name"));
    row(
        "started",
        field_text(test, "start_time").map(|s| readable_start_time(&s)),
    );
    row("target", field_text(test, "target"));
    row("workload", field_text(test, "workload"));
    row("faults", field_text(test, "nemesis"));
    row("nodes", field_text(test, "nodes"));
    row("bugs switched on", field_text(test, "bugs"));
    row(
        "time limit",
        test.and_then(|t| t.get("time_limit_ms"))
            .and_then(Value::as_u64)
            .map(|ms| format!("{} s", ms as f64 / 1000.0)),
    );
    row("concurrency", field_text(test, "concurrency"));
    row(
        "rate",
        test.and_then(|t| t.get("rate_ops_per_sec"))
            .map(|r| match r.as_f64() {
                Some(r) => format!("{r} ops/s"),
                None => "unlimited".into(),
            }),
    );
    row("seed", field_text(test, "seed"));
    if let Some(options) = test
        .and_then(|t| t.get("target_options"))
        .and_then(Value::as_object)
        .filter(|o| !o.is_empty())
    {
        row(
            "target options",
            Some(Value::Object(options.clone()).to_string()),
        );
    }
    if let Some(d) = page.digest {
        let open = d.count(Outcome::Open);
        row(
            "operations",
            Some(format!(
                "{} ({} ok, {} fail, {} info{})",
                thousands(d.ops.len() as u64),
                thousands(d.count(Outcome::Ok) as u64),
                thousands(d.count(Outcome::Fail) as u64),
                thousands(d.count(Outcome::Info) as u64),
                if open > 0 {
                    format!(", {} never completed", thousands(open as u64))
                } else {
                    String::new()
                }
            )),
        );
    }
    let stats = results.and_then(|r| r.get("stats"));
    let elapsed_ms = stats
        .and_then(|s| s.get("elapsed_ms"))
        .and_then(Value::as_f64)
        .filter(|&ms| ms > 0.0);
    if let (Some(stats), Some(elapsed_ms)) = (stats, elapsed_ms) {
        let abandoned = stats.get("abandoned").and_then(Value::as_u64).unwrap_or(0);
        row(
            "recorded",
            Some(format!(
                "in {:.2} s, {} ops/s{}",
                elapsed_ms / 1000.0,
                stats
                    .get("ops_per_sec")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0),
                if abandoned > 0 {
                    format!(", {abandoned} operations abandoned in flight")
                } else {
                    String::new()
                }
            )),
        );
    }
    if let Some(file) = results.and_then(|r| r.get("file")).and_then(Value::as_str) {
        row("history file", Some(file.to_string()));
    }
    out.push_str("</dl>");
    if let Some(command) = test.and_then(rerun_command) {
        let _ = write!(
            out,
            "<p>Rerun this run (same seed):</p><pre class=\"rerun\">{}</pre>",
            html(&command)
        );
    }
    let mut problems = page.problems.clone();
    if let Some(d) = page.digest {
        if d.unreadable_count > 0 {
            problems.push(format!(
                "{} lines of the history could not be read and were skipped (a run killed \
                 while writing leaves a cut last line): {}",
                d.unreadable_count,
                d.problems.join("; ")
            ));
        }
        if d.unpaired_completions > 0 {
            problems.push(format!(
                "{} completions have no invocation by their process",
                d.unpaired_completions
            ));
        }
    }
    if !problems.is_empty() {
        out.push_str("<ul class=\"problems\">");
        for p in &problems {
            let _ = write!(out, "<li class=\"note\">{}</li>", html(p));
        }
        out.push_str("</ul>");
    }

    // The results.
    out.push_str("<h2 id=\"results\">Results</h2>");
    match &rendered {
        Some(r) => out.push_str(&r.html),
        None => out.push_str("<p class=\"note\">No results.json.</p>"),
    }
    if let (Some(results), Some(history)) = (results, page.history) {
        let input = coordination::Input {
            history,
            faults: &faults,
            concurrency: page
                .test
                .and_then(|t| t.get("concurrency"))
                .and_then(Value::as_u64),
        };
        for (name, result) in checkers::checker_results(results) {
            if let Some(drawing) = coordination::draw(&name, result, &input) {
                out.push_str(&drawing);
            }
        }
    }

    // Plots.
    out.push_str("<h2 id=\"plots\">Plots</h2>");
    match page.digest {
        None => out.push_str("<p class=\"note\">No history to plot.</p>"),
        Some(digest) => {
            let drawn = plots(digest, &faults)?;
            for note in &drawn.notes {
                let _ = write!(out, "<p class=\"note\">{}</p>", html(note));
            }
            out.push_str("<div class=\"plots-grid\">");
            for (f, svg) in &drawn.latency {
                let _ = write!(
                    out,
                    "<div class=\"plot\" data-plot=\"latency\" data-f=\"{}\">{svg}</div>",
                    html(f)
                );
            }
            if let Some(svg) = &drawn.quantiles {
                let _ = write!(
                    out,
                    "<div class=\"plot\" data-plot=\"quantiles\">{svg}</div>"
                );
            }
            if let Some(svg) = &drawn.throughput {
                let _ = write!(
                    out,
                    "<div class=\"plot\" data-plot=\"throughput\">{svg}</div>"
                );
            }
            out.push_str("</div>");
        }
    }

    // The timeline.
    out.push_str("<h2 id=\"timeline-section\">Timeline</h2>");
    if let Some(digest) = page.digest {
        let marks = rendered
            .as_ref()
            .map(|r| r.marks.clone())
            .unwrap_or_default();
        let concurrency = test
            .and_then(|t| t.get("concurrency"))
            .and_then(Value::as_u64);
        let data = timeline_data(digest, &faults, &marks, concurrency);
        let unit = if digest.axis == TimeAxis::Position {
            "by position in the history"
        } else {
            "by time"
        };
        let _ = write!(
            out,
            "<p>Every operation {unit}, one lane per {}: drag to pan, use the slider or the \
             overview strip to move, hover an operation for its details.</p>\
             <div class=\"legend\"><span><i style=\"background:#1f77b4\"></i>ok</span>\
             <span><i style=\"background:#d62728\"></i>fail</span><span><i \
             style=\"background:#f08c00\"></i>info / never completed</span><span><i \
             style=\"border:2px solid #000\"></i>part of an anomaly</span></div>\
             <div id=\"timeline\"><div class=\"controls\"><button id=\"tl-left\">◀</button>\
             <button id=\"tl-right\">▶</button><button id=\"tl-zoom-in\">zoom in</button>\
             <button id=\"tl-zoom-out\">zoom out</button><button id=\"tl-all\">whole history\
             </button><input type=\"range\" id=\"timeline-slider\" min=\"0\" max=\"1000\" \
             value=\"0\" aria-label=\"window position\"></div><div id=\"timeline-marks\" \
             class=\"controls\"></div><canvas id=\"timeline-overview\"></canvas>\
             <canvas id=\"timeline-canvas\"></canvas><div id=\"timeline-status\">the timeline \
             needs JavaScript</div><div id=\"timeline-tip\"></div></div>\
             <script type=\"application/json\" id=\"timeline-data\">{}</script>\
             <script nonce=\"{nonce}\">{TIMELINE_JS}</script>",
            if concurrency.is_some() {
                "worker (a worker continues as a new process after an info)"
            } else {
                "process"
            },
            json_for_script(&data)
        );
    } else {
        out.push_str("<p class=\"note\">No history.</p>");
    }

    // Faults.
    out.push_str("<h2 id=\"faults\">Faults</h2>");
    if faults.is_empty() {
        out.push_str("<p>No fault was injected in this history.</p>");
    } else {
        let digest = page.digest.expect("faults come from a history");
        let unit = match digest.axis {
            TimeAxis::Nanos => "s",
            TimeAxis::Position => "event",
        };
        let _ = write!(
            out,
            "<table class=\"ops\"><thead><tr><th>fault</th><th>from ({unit})</th><th>to \
             ({unit})</th><th>lasted ({unit})</th><th>undone by</th></tr></thead><tbody>"
        );
        for fault in &faults {
            let s = |t: u64| match digest.axis {
                TimeAxis::Nanos => format!("{:.3}", digest.axis_seconds(t)),
                TimeAxis::Position => t.to_string(),
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html(&fault.label),
                s(fault.start),
                fault.end.map_or("(end of history)".into(), s),
                s(fault.end_or(digest.end) - fault.start),
                html(
                    fault
                        .end_f
                        .as_deref()
                        .unwrap_or("nothing: still in effect at the end")
                )
            );
        }
        out.push_str("</tbody></table>");
    }

    // The log's warnings and errors.
    if !page.log_lines.is_empty() {
        let _ = write!(
            out,
            "<h2 id=\"log\">Warnings and errors in faultline.log</h2><pre class=\"log\">"
        );
        for line in &page.log_lines {
            out.push_str(&html(line));
            out.push('\n');
        }
        out.push_str("</pre>");
    }

    // Files.
    out.push_str("<h2 id=\"files\">Files</h2><ul class=\"files\">");
    for file in &page.files {
        let href = if file.absolute {
            html(&file.href)
        } else {
            href_path(&file.href)
        };
        let _ = write!(out, "<li><a href=\"{href}\">{}</a></li>", html(&file.label));
    }
    let _ = writeln!(
        out,
        "</ul><p class=\"note\">Written by faultline {}.</p></main></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rerun_uses_argv_with_the_runs_seed() {
        let test = json!({"seed": 42, "argv": ["/x/faultline", "test", "--target", "memory",
            "--seed", "7", "--test-count", "5", "--store", "/tmp/my store", "--bug=stale-read"]});
        assert_eq!(
            rerun_command(&test).unwrap(),
            "faultline test --target memory --store '/tmp/my store' --bug=stale-read --seed 42"
        );
    }

    #[test]
    fn rerun_without_argv_is_rebuilt_from_the_parameters() {
        let test = json!({"seed": 9, "target": "raftkv", "workload": "register",
            "nemesis": ["pause", "kill"], "time_limit_ms": 2500, "concurrency": 10,
            "bugs": ["lost-write"], "argv": []});
        assert_eq!(
            rerun_command(&test).unwrap(),
            "faultline test --target raftkv --workload register --nemesis pause,kill \
             --time-limit 2.5 --concurrency 10 --bug lost-write --seed 9"
        );
        assert_eq!(rerun_command(&json!({})), None);
    }

    #[test]
    fn quoting_defeats_shell_metacharacters() {
        assert_eq!(shell_quote("a'b; rm"), r#"'a'\''b; rm'"#);
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn start_times_read_as_dates() {
        assert_eq!(
            readable_start_time("20261202T023609.210Z"),
            "2026-12-02 02:36:09.210 UTC"
        );
        assert_eq!(readable_start_time("yesterday"), "yesterday");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }
}
