//! `faultline report` and `faultline check --report`, seen in a real headless browser
//! (Debian's chromium): the verdict, the anomaly explanation, the plots and the timeline are in
//! the rendered page; values from a history, an error or a log render as text; a 100k-op
//! report loads in seconds. Screenshots are kept under the target directory's tmp.

mod report_support;

use report_support::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Runs `faultline test --target memory` into `store` and returns the run directory.
fn memory_run(store: &Path, extra: &[&str], expected_exit: i32) -> PathBuf {
    let mut args = vec![
        "test",
        "--target",
        "memory",
        "--store",
        store.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = faultline(&args);
    assert_eq!(out.status.code(), Some(expected_exit), "{}", text(&out));
    store.join(std::fs::read_link(store.join("latest")).unwrap())
}

/// `faultline report DIR`: the report's path, checked against what it printed.
fn report(run: &Path) -> PathBuf {
    let out = faultline(&["report", run.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(printed, run.join("report.html"));
    assert!(printed.is_file());
    printed
}

/// Checks what every rendered report has: its scripts ran (the timeline says what it shows)
/// and the plots are there.
fn assert_rendered_with_plots(dom: &str) {
    assert!(
        dom.contains("data-ready=\"true\""),
        "the timeline's script ran"
    );
    assert!(dom.contains("operations in this window"), "timeline status");
    for plot in ["latency", "quantiles", "throughput"] {
        let marker = format!("data-plot=\"{plot}\"");
        let at = dom
            .find(&marker)
            .unwrap_or_else(|| panic!("no {plot} plot"));
        assert!(dom[at..].starts_with(&marker));
        let svg = dom[at..].find("<svg").expect("an svg");
        assert!(svg < 200, "the {plot} plot is drawn");
    }
}

#[test]
fn a_valid_memory_run_reports_valid_with_plots_and_a_timeline() {
    let store = TempDir::new("report-valid");
    let run = memory_run(
        store.path(),
        &["--time-limit", "2", "--seed", "21", "--latency-ms", "3"],
        0,
    );
    let page = report(&run);
    let (dom, took) = rendered_dom(&file_url(&page));
    assert!(
        dom.contains("<header class=\"banner valid\">"),
        "{}",
        &dom[..2000.min(dom.len())]
    );
    assert!(dom.contains(">VALID<"));
    assert!(dom.contains("linearizability: no anomaly found in"));
    assert!(dom.contains("--seed 21"), "the rerun command");
    assert!(dom.contains("href=\"history.jsonl\"") && dom.contains("href=\"faultline.log\""));
    assert_rendered_with_plots(&dom);
    eprintln!("valid report rendered in {took:?}");
    screenshot(
        &file_url(&page),
        &screenshot_dir().join("memory-valid.png"),
        2400,
    );
}

#[test]
fn a_stale_read_run_reports_invalid_and_explains_the_anomaly() {
    let store = TempDir::new("report-stale-read");
    let run = memory_run(
        store.path(),
        &[
            "--bug",
            "stale-read",
            "--time-limit",
            "2",
            "--rate",
            "2000",
            "--seed",
            "12",
        ],
        1,
    );
    let page = report(&run);
    let (dom, _) = rendered_dom(&file_url(&page));
    assert!(dom.contains("<header class=\"banner invalid\">"));
    assert!(dom.contains(">INVALID<"));
    assert!(
        dom.contains("not linearizable (explained below)"),
        "the banner says what"
    );
    // The explanation, its window drawing and table, and the jump into the timeline.
    assert!(dom.contains("Not linearizable on key"));
    assert!(dom.contains("No order of the operations on key"));
    assert!(dom.contains("but before it the state could only be"));
    assert!(dom.contains("Smallest failing window"));
    assert!(dom.contains("<svg class=\"window\""));
    assert!(dom.contains("impossible"));
    assert!(dom.contains("cannot be linearized"));
    assert!(
        dom.contains("<button>go to impossible read"),
        "timeline marks"
    );
    assert!(dom.contains("--bug stale-read"));
    assert_rendered_with_plots(&dom);
    screenshot(
        &file_url(&page),
        &screenshot_dir().join("memory-stale-read.png"),
        3000,
    );
    // A link to an anomaly opens the timeline around it.
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let index = results["result"]["failures"][0]["op"]["index"]
        .as_u64()
        .unwrap();
    let (dom, _) = rendered_dom(&format!("{}#op-{index}", file_url(&page)));
    assert!(
        !dom.contains(&format!(
            "of {} operations in this window, 0.000 ms",
            results["stats"]["ops"]
        )),
        "the window moved to the operation"
    );
}

/// The report `faultline test` wrote for a run, rendered.
fn rendered_report(run: &Path) -> (PathBuf, String) {
    let page = run.join("report.html");
    assert!(page.is_file(), "faultline test wrote {}", page.display());
    let (dom, _) = rendered_dom(&file_url(&page));
    (page, dom)
}

#[test]
fn a_double_grant_lock_run_draws_the_two_holders_and_the_stale_write() {
    let store = TempDir::new("report-lock");
    let run = memory_run(
        store.path(),
        &[
            "--workload",
            "lock",
            "--bug",
            "double-grant",
            "--fencing",
            "off",
            "--lease-ms",
            "200",
            "--latency-ms",
            "2",
            "--time-limit",
            "3",
            "--seed",
            "32",
        ],
        1,
    );
    let (page, dom) = rendered_report(&run);
    assert!(
        dom.contains("pair(s) of holders at once, mutex model violated"),
        "the banner says what"
    );
    assert!(dom.contains("data-drawing=\"lock\""), "the lock drawing");
    assert!(dom.contains("<svg class=\"coord lock-holds\""));
    assert!(dom.contains("class=\"hold-bar"));
    // Two holders at once, boxed and labelled; the resource's lower token after a higher.
    assert!(dom.contains("<g class=\"overlap\">"));
    assert!(dom.contains("2 holders: p"));
    assert!(dom.contains("<g class=\"fencing-anomaly\">"));
    assert!(dom.contains("accepted after token"));
    assert!(dom.contains("zoomed on the first"));
    screenshot(
        &file_url(&page),
        &screenshot_dir().join("memory-lock-double-grant.png"),
        2000,
    );
}

#[test]
fn a_two_leaders_election_run_draws_the_epochs_with_two_leaders() {
    let store = TempDir::new("report-election");
    let run = memory_run(
        store.path(),
        &[
            "--workload",
            "election",
            "--bug",
            "two-leaders",
            "--lease-ms",
            "200",
            "--latency-ms",
            "2",
            "--time-limit",
            "3",
            "--seed",
            "42",
        ],
        1,
    );
    let (page, dom) = rendered_report(&run);
    assert!(
        dom.contains("data-drawing=\"election\""),
        "the election drawing"
    );
    assert!(dom.contains("<svg class=\"coord election-epochs\""));
    assert!(dom.contains("<g class=\"two-leaders\">"));
    assert!(dom.contains("had two leaders (agreement broken)"));
    assert!(dom.contains(" leaders in epoch "));
    screenshot(
        &file_url(&page),
        &screenshot_dir().join("memory-election-two-leaders.png"),
        2000,
    );
}

#[test]
fn broadcast_and_queue_runs_draw_their_anomalies() {
    let store = TempDir::new("report-log");
    let run = memory_run(
        store.path(),
        &[
            "--workload",
            "broadcast",
            "--bug",
            "reorder-append",
            "--latency-ms",
            "2",
            "--time-limit",
            "3",
            "--seed",
            "51",
        ],
        1,
    );
    let (_, dom) = rendered_report(&run);
    assert!(dom.contains("data-drawing=\"broadcast\""));
    assert!(dom.contains("<svg class=\"coord broadcast-reads\""));
    assert!(dom.contains("class=\"anomalous-"), "an anomaly is marked");
    let run = memory_run(
        store.path(),
        &[
            "--workload",
            "queue",
            "--bug",
            "duplicate-delivery",
            "--latency-ms",
            "2",
            "--time-limit",
            "3",
            "--seed",
            "52",
        ],
        1,
    );
    let (page, dom) = rendered_report(&run);
    assert!(dom.contains("data-drawing=\"queue\""));
    assert!(dom.contains("<svg class=\"coord queue-jobs\""));
    assert!(dom.contains("queue-anomaly violation duplicate-delivery"));
    screenshot(
        &file_url(&page),
        &screenshot_dir().join("memory-queue-duplicate-delivery.png"),
        1600,
    );
}

/// Script-like values in every place a report shows text from a history, a database error or
/// a log. Each payload, if it ran or became markup, would leave a trace in the DOM
/// (`data-pwned`, a changed title, an injected element).
#[test]
fn script_like_values_render_as_text() {
    let dir = TempDir::new("report-escaping");
    let run = dir.path();
    let payload = "<script>document.body.setAttribute('data-pwned','1')</script>";
    let image = "<img src=x onerror=\"document.title='pwned'\">";
    let close = "</script><script>document.title='pwned'</script>";
    let history = [
        json!({"index":0,"time":1000,"process":0,"type":"invoke","f":image,"key":payload,"value":payload}),
        json!({"index":1,"time":2000,"process":"nemesis","type":"info","f":"kill","value":image}),
        json!({"index":2,"time":3000,"process":0,"type":"info","f":image,"key":payload,"value":close,"error":close}),
        json!({"index":3,"time":4000,"process":1,"type":"invoke","f":"read","value":null}),
        json!({"index":4,"time":5000000,"process":1,"type":"ok","f":"read","value":payload}),
        json!({"index":5,"time":6000000,"process":"nemesis","type":"info","f":"start","value":image}),
    ];
    let lines: Vec<String> = history.iter().map(Value::to_string).collect();
    std::fs::write(run.join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    let op = json!({"index":3,"completion_index":4,"process":"1","f":"read","type":"ok",
                    "value":null,"result":payload,"invoke_time":4000,"complete_time":5000000});
    let results = json!({"valid": false, "checker": "linearizability", "seed": 1,
        "harness_error": close,
        "result": {"valid": false, "model": image, "ops": 2, "keys": 1,
            "failures": [{"key": payload, "op": op, "prefix_length": 0, "prefix_tail": [],
                "states": [close], "window": [op], "window_from_any_state": true}]}});
    std::fs::write(run.join("results.json"), results.to_string()).unwrap();
    let test = json!({"name": payload, "target": image, "workload": close,
        "nemesis": [image], "seed": 1, "concurrency": 2, "start_time": close,
        "argv": ["faultline", "test", "--target", image]});
    std::fs::write(run.join("test.json"), test.to_string()).unwrap();
    std::fs::write(
        run.join("faultline.log"),
        format!("2026-01-01T00:00:00Z  WARN db: {payload} {image}\n"),
    )
    .unwrap();
    std::fs::create_dir_all(run.join("nodes")).unwrap();
    std::fs::write(run.join("nodes").join("x\"><svg onload=alert(1)>.log"), "x").unwrap();

    let page = report(run);
    let (dom, _) = rendered_dom(&file_url(&page));
    assert!(!dom.contains("data-pwned=\"1\""), "an injected script ran");
    assert!(!dom.contains("<title>pwned"), "an injected handler ran");
    assert!(!dom.contains("<img src=\"x\""), "an injected element");
    assert!(!dom.contains("<svg onload"), "an injected element");
    assert!(
        !dom.contains("<script>document"),
        "an injected script element"
    );
    // The values are there, as text.
    assert!(
        dom.contains("&lt;script&gt;document.body.setAttribute('data-pwned','1')&lt;/script&gt;")
    );
    assert!(dom.contains("&lt;img src=x onerror=\"document.title='pwned'\"&gt;"));
    assert!(dom.contains("harness error: &lt;/script&gt;&lt;script&gt;"));
    assert!(dom.contains("WARN db: &lt;script&gt;"), "the log line");
    // The timeline parsed its data (which holds the payloads) and ran.
    assert!(dom.contains("data-ready=\"true\""));
    assert!(
        dom.contains("2 of 2 operations in this window"),
        "{}",
        dom.len()
    );
}

#[test]
fn check_writes_a_report_for_an_imported_history() {
    let dir = TempDir::new("report-check");
    let history = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/histories/register-stale-read.jsonl");
    let out_file = dir.path().join("stale.html");
    let out = faultline(&[
        "check",
        "--report",
        out_file.to_str().unwrap(),
        history.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("report written to"));
    let (dom, _) = rendered_dom(&file_url(&out_file));
    assert!(dom.contains("<header class=\"banner invalid\">"));
    assert!(dom.contains("Not linearizable on key \"x\""));
    assert!(
        dom.contains("register-stale-read.jsonl"),
        "the history is linked"
    );
    assert!(dom.contains("data-ready=\"true\""));

    // One report is of one history.
    let out = faultline(&[
        "check",
        "--report",
        out_file.to_str().unwrap(),
        history.to_str().unwrap(),
        history.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(254), "{}", text(&out));
}

#[test]
fn check_draws_a_transactional_cycle_in_the_report() {
    // Elle's corpus sits beside the repository (../shared); a checkout without it skips.
    let history = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/elle/si-without-g-single.edn");
    if !history.is_file() {
        eprintln!("note: {} is absent; skipped", history.display());
        return;
    }
    let dir = TempDir::new("report-txn");
    let out_file = dir.path().join("txn.html");
    let out = faultline(&[
        "check",
        "--model",
        "list-append",
        "--consistency",
        "serializable",
        "--report",
        out_file.to_str().unwrap(),
        history.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("report written to"));
    let page = std::fs::read_to_string(&out_file).unwrap();
    assert!(page.contains("<header class=\"banner invalid\">"));
    assert!(page.contains("G2-item"));
    assert!(
        page.contains("Not <b>repeatable-read</b>"),
        "what it rules out"
    );
    let at = page
        .find("<svg class=\"cycle\"")
        .expect("the cycle is drawn");
    let svg = &page[at..at + page[at..].find("</svg>").unwrap()];
    assert!(svg.contains("<g class=\"edge e-rw\">"), "an rw edge");
    assert!(
        svg.contains(">rw 9</text>"),
        "labelled with its kind and key"
    );
    assert!(
        svg.contains(">append 9 5</text>"),
        "a box lists its transaction's ops"
    );

    // The browser renders it, scripts and all.
    let (dom, _) = rendered_dom(&file_url(&out_file));
    assert!(dom.contains("data-ready=\"true\""));
    assert!(dom.contains("<svg class=\"cycle\""));
    screenshot(
        &file_url(&out_file),
        &screenshot_dir().join("txn-cycle.png"),
        1400,
    );
}

#[test]
fn report_refuses_a_directory_that_is_not_a_run() {
    let dir = TempDir::new("report-not-a-run");
    let out = faultline(&["report", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(254), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a run directory"));
}

/// 100,000 operations: the report is written and opens (scripts done) in seconds; the plots
/// stay bounded. Figures are printed (see docs/reports.md for the release-build figures).
#[test]
fn a_100k_op_report_loads_in_seconds() {
    let dir = TempDir::new("report-100k");
    write_synthetic_run(dir.path(), 100_000);
    let started = Instant::now();
    let page = report(dir.path());
    let written = started.elapsed();
    let size = std::fs::metadata(&page).unwrap().len();
    let (dom, took) = rendered_dom(&file_url(&page));
    eprintln!(
        "100k ops: report written in {written:?} (debug build), {:.1} MB, rendered in {took:?}",
        size as f64 / 1e6
    );
    assert!(dom.contains("of 100,000 operations in this window"));
    assert_rendered_with_plots(&dom);
    assert!(dom.contains("kill n2"), "fault bands are labelled");
    // Plots downsample: far fewer points than operations.
    let circles = dom.matches("<circle").count();
    assert!(circles < 20_000, "{circles} points drawn");
    assert!(size < 8_000_000, "{size} bytes");
    // Generous bounds: a frozen page or a report written op by op would take minutes.
    assert!(took.as_secs() < 60, "the browser took {took:?}");
    screenshot(
        &file_url(&page),
        &screenshot_dir().join("synthetic-100k.png"),
        2400,
    );
}
