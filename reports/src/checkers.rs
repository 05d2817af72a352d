//! Each checker's result as HTML: the verdict, what was checked, and every anomaly with its
//! explanation. Linearizability failures get their smallest failing window drawn as a small
//! timeline; the set checker's lost, stale, unexpected and never-read elements are listed
//! with what each kind means; transactional anomalies are drawn as dependency cycles
//! (`txn.rs`).
//!
//! Results are read as JSON (`results.json`), not as the checkers' types: a report is rebuilt
//! from files that an older or newer faultline wrote, and a field it does not know is shown
//! raw rather than failing the report.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::escape::{html, truncate};

/// A checker's verdict as `results.json` writes it: `true`, `false` or `"unknown"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Valid,
    Unknown,
    Invalid,
}

impl Verdict {
    pub fn of(valid: Option<&Value>) -> Verdict {
        match valid {
            Some(Value::Bool(true)) => Verdict::Valid,
            Some(Value::Bool(false)) => Verdict::Invalid,
            _ => Verdict::Unknown,
        }
    }

    /// The CSS class and the word shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Unknown => "unknown",
            Verdict::Invalid => "invalid",
        }
    }
}

/// An operation the timeline offers to jump to: part of an anomaly.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Mark {
    /// The invocation's index.
    pub index: u64,
    /// Why it is marked (shown on the button).
    pub label: String,
}

/// The HTML of every checker's result, and the operations to mark on the timeline.
pub struct Rendered {
    pub html: String,
    pub marks: Vec<Mark>,
    /// How many anomalies were shown (an anomaly is a failing key, or a kind of set error).
    pub anomalies: usize,
    /// What was found, in a few words each (`12 keys not linearizable`, `292 lost
    /// elements`), for the verdict banner.
    pub findings: Vec<String>,
}

/// The checkers' results of a `results.json`: `result` under the name in `checker`; a
/// result that composes several checkers (fields that are objects with a `valid`) gives one
/// entry per part.
pub fn checker_results(results: &Value) -> Vec<(String, &Value)> {
    let name = results
        .get("checker")
        .and_then(Value::as_str)
        .unwrap_or("checker")
        .to_string();
    let Some(result) = results.get("result") else {
        return Vec::new();
    };
    if result.get("valid").is_some() {
        return vec![(name, result)];
    }
    let parts: Vec<(String, &Value)> = result
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.get("valid").is_some())
        .map(|(k, v)| (k.clone(), v))
        .collect();
    if parts.is_empty() {
        vec![(name, result)]
    } else {
        parts
    }
}

/// Renders every checker's result of a `results.json`.
pub fn render(results: &Value) -> Rendered {
    let mut out = Rendered {
        html: String::new(),
        marks: Vec::new(),
        anomalies: 0,
        findings: Vec::new(),
    };
    let checkers = checker_results(results);
    if checkers.is_empty() {
        out.html.push_str(
            "<p class=\"note\">results.json holds no checker result (the run stopped before \
             its history was checked).</p>",
        );
    }
    for (name, result) in checkers {
        let verdict = Verdict::of(result.get("valid"));
        let _ = write!(
            out.html,
            "<section class=\"checker\"><h3>{} <span class=\"pill {}\">{}</span></h3>",
            html(&name),
            verdict.as_str(),
            verdict.as_str()
        );
        if let Some(reason) = result.get("reason").and_then(Value::as_str) {
            let _ = write!(
                out.html,
                "<p class=\"reason\">Unknown because: {}</p>",
                html(reason)
            );
        }
        if name == "linearizability" || result.get("failures").is_some() {
            linearizability(result, &mut out);
        } else if name == "lock" {
            lock(result, &mut out);
        } else if name == "broadcast" {
            broadcast(result, &mut out);
        } else if name == "queue" {
            queue(result, &mut out);
        } else if name == "set" || result.get("lost_count").is_some() {
            set(result, &mut out);
        } else if crate::txn::is_txn_result(&name, result) {
            crate::txn::render(result, &mut out);
        } else if name == "election" {
            election(result, &mut out);
        } else if name == "unique-ids" {
            unique_ids(result, &mut out);
        } else if let Some(counts) = counted_kinds(result) {
            counted(counts, result, &mut out);
        }
        let raw = serde_json::to_string_pretty(result).unwrap_or_default();
        let shown = if raw.len() > MAX_RAW_RESULT_BYTES {
            let mut cut = MAX_RAW_RESULT_BYTES;
            while !raw.is_char_boundary(cut) {
                cut -= 1;
            }
            format!(
                "{}\n... ({} bytes more in results.json)",
                &raw[..cut],
                raw.len() - cut
            )
        } else {
            raw
        };
        let _ = write!(
            out.html,
            "<details><summary>the checker's full result (JSON)</summary><pre class=\"json\">{}\
             </pre></details></section>",
            html(&shown)
        );
    }
    out
}

fn text_of(value: &Value) -> String {
    truncate(&value.to_string(), 200)
}

fn number(value: Option<&Value>) -> u64 {
    value.and_then(Value::as_u64).unwrap_or(0)
}

/// The linearizability checker's result (`checker/src/linearizability/mod.rs`).
fn linearizability(result: &Value, out: &mut Rendered) {
    let model = result.get("model").and_then(Value::as_str).unwrap_or("?");
    let keys = number(result.get("keys"));
    let _ = write!(
        out.html,
        "<p>Is there one order of the {} operations, consistent with real time, in which the \
         <code>{}</code> model explains every result? Checked per key ({} keys, \
         independently).",
        number(result.get("ops")),
        html(model),
        keys
    );
    let unchecked = number(result.get("keys_unchecked"));
    if unchecked > 0 {
        let _ = write!(
            out.html,
            " {unchecked} keys were left unchecked once a violation was found: the verdict \
             could not change."
        );
    }
    out.html.push_str("</p>");
    if let Some(unknown) = result.get("unknown_keys").and_then(Value::as_array) {
        if !unknown.is_empty() {
            out.html
                .push_str("<p>Keys whose verdict is unknown:</p><ul class=\"unknown-keys\">");
            for entry in unknown.iter().take(50) {
                let (key, reason) = match entry.as_array().map(Vec::as_slice) {
                    Some([key, reason]) => (text_of(key), reason.as_str().unwrap_or("")),
                    _ => (text_of(entry), ""),
                };
                let _ = write!(out.html, "<li>key {}: {}</li>", html(&key), html(reason));
            }
            out.html.push_str("</ul>");
        }
    }
    let failures = result
        .get("failures")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    out.anomalies += failures.len();
    if !failures.is_empty() {
        out.findings.push(format!(
            "{} key{} not linearizable",
            failures.len(),
            if failures.len() == 1 { "" } else { "s" }
        ));
    }
    for (n, failure) in failures.iter().take(MAX_ANOMALIES_SHOWN).enumerate() {
        if n == MAX_ANOMALIES_OPEN {
            let _ = write!(
                out.html,
                "<details class=\"more-anomalies\"><summary>{} more failing keys</summary>",
                failures.len().min(MAX_ANOMALIES_SHOWN) - MAX_ANOMALIES_OPEN
            );
        }
        linearizability_failure(n, failure, out);
    }
    if failures.len() > MAX_ANOMALIES_OPEN {
        out.html.push_str("</details>");
    }
    if failures.len() > MAX_ANOMALIES_SHOWN {
        let _ = write!(
            out.html,
            "<p class=\"note\">{} more failing keys are in results.json.</p>",
            failures.len() - MAX_ANOMALIES_SHOWN
        );
    }
}

/// Anomalies shown open; the rest, up to [`MAX_ANOMALIES_SHOWN`], are folded.
pub const MAX_ANOMALIES_OPEN: usize = 1;
/// Anomalies drawn at all (each has a drawing and tables); the rest are counted.
pub const MAX_ANOMALIES_SHOWN: usize = 50;
/// Longest raw result JSON the report embeds.
pub const MAX_RAW_RESULT_BYTES: usize = 100_000;

/// One operation as the checker summarizes it (`OpSummary`).
struct OpView<'a>(&'a Value);

impl OpView<'_> {
    fn index(&self) -> Option<u64> {
        self.0.get("index").and_then(Value::as_u64)
    }
    fn completion_index(&self) -> Option<u64> {
        self.0.get("completion_index").and_then(Value::as_u64)
    }
    fn str_field(&self, name: &str) -> &str {
        self.0.get(name).and_then(Value::as_str).unwrap_or("")
    }
    fn f(&self) -> &str {
        self.str_field("f")
    }
    fn process(&self) -> String {
        match self.0.get("process") {
            Some(Value::String(p)) => p.clone(),
            Some(other) => other.to_string(),
            None => "?".into(),
        }
    }
    fn outcome(&self) -> &str {
        self.str_field("type")
    }
    fn optional(&self) -> bool {
        self.0.get("optional").and_then(Value::as_bool) == Some(true)
    }
    fn value(&self) -> Option<&Value> {
        self.0.get("value").filter(|v| !v.is_null())
    }
    fn result(&self) -> Option<&Value> {
        self.0.get("result")
    }
    fn error(&self) -> Option<String> {
        self.0.get("error").map(|e| match e {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
    /// `cas [1,2]`, `read → 3`, `write 4`.
    fn call(&self) -> String {
        let mut text = self.f().to_string();
        if let Some(value) = self.value() {
            text.push(' ');
            text.push_str(&text_of(value));
        }
        if let (Some(result), "ok") = (self.result(), self.outcome()) {
            if Some(result) != self.value() || result.is_null() {
                text.push_str(&format!(" → {}", text_of(result)));
            }
        }
        text
    }
    /// `ok`, `fail: compare-failed`, `info: timeout`.
    fn outcome_text(&self) -> String {
        match (self.error(), self.outcome()) {
            (Some(e), o @ ("fail" | "info")) => format!("{o}: {e}"),
            (_, o) => o.to_string(),
        }
    }
    fn time_ms(&self, name: &str) -> Option<f64> {
        self.0
            .get(name)
            .and_then(Value::as_u64)
            .map(|ns| ns as f64 / 1e6)
    }
    fn span(&self) -> String {
        match (self.index(), self.completion_index()) {
            (Some(i), Some(c)) => format!("{i}..{c}"),
            (Some(i), None) => format!("{i}.."),
            _ => "?".into(),
        }
    }
}

fn op_table(ops: &[&Value], impossible: Option<u64>, out: &mut String) {
    out.push_str(
        "<table class=\"ops\"><thead><tr><th>index</th><th>process</th><th>operation</th>\
         <th>outcome</th><th>invoked (ms)</th><th>completed (ms)</th><th></th></tr></thead>\
         <tbody>",
    );
    for op in ops {
        let op = OpView(op);
        let is_impossible = impossible.is_some() && op.index() == impossible;
        let ms = |t: Option<f64>| t.map_or(String::new(), |t| format!("{t:.3}"));
        let note = if is_impossible {
            "cannot be linearized"
        } else if op.optional() {
            "may or may not take effect here"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"o-{}\">{}\
             </td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if is_impossible { "impossible" } else { "" },
            html(&op.span()),
            html(&op.process()),
            html(&op.call()),
            html(op.outcome()),
            html(&op.outcome_text()),
            ms(op.time_ms("invoke_time")),
            ms(op.time_ms("complete_time")),
            note
        );
    }
    out.push_str("</tbody></table>");
}

fn linearizability_failure(n: usize, failure: &Value, out: &mut Rendered) {
    let key = failure.get("key").map(text_of);
    let on_key = key
        .as_ref()
        .map(|k| format!(" on key {k}"))
        .unwrap_or_default();
    let op = failure.get("op").filter(|op| !op.is_null()).map(OpView);
    let states: Vec<String> = failure
        .get("states")
        .and_then(Value::as_array)
        .map(|s| s.iter().take(20).map(text_of).collect())
        .unwrap_or_default();
    let states_text = if states.is_empty() {
        "(none)".to_string()
    } else {
        states.join(", ")
    };
    let _ = write!(
        out.html,
        "<article class=\"anomaly\" id=\"anomaly-{n}\"><h4>Not linearizable{}</h4>",
        html(&on_key)
    );
    match &op {
        Some(op) => {
            if let Some(index) = op.index() {
                out.marks.push(Mark {
                    index,
                    label: format!("impossible {}{on_key}", op.f()),
                });
            }
            let _ = write!(
                out.html,
                "<p class=\"explanation\">No order of the operations{}, consistent with real \
                 time, can place this operation: <code class=\"impossible-op\">index {} \
                 process {} {} ({})</code>",
                html(&on_key),
                html(&op.span()),
                html(&op.process()),
                html(&op.call()),
                html(&op.outcome_text())
            );
            if let Some(index) = op.index() {
                let _ = write!(
                    out.html,
                    " <a href=\"#op-{index}\" class=\"show-op\">show it in the timeline</a>."
                );
            }
            let what = match (op.f(), op.result()) {
                ("read", Some(result)) if op.outcome() == "ok" => {
                    format!("It read {}", text_of(result))
                }
                _ => format!("It is {}", op.call()),
            };
            let _ = write!(
                out.html,
                " {}, but before it the state could only be: <b>{}</b>.</p>",
                html(&what),
                html(&states_text)
            );
        }
        None => {
            let _ = write!(
                out.html,
                "<p class=\"explanation\">No linearization{} exists.</p>",
                html(&on_key)
            );
        }
    }
    let prefix_length = number(failure.get("prefix_length"));
    let _ = write!(
        out.html,
        "<p>The longest linearizable prefix places {prefix_length} completed operations, \
         after which the state could be: {}.</p>",
        html(&states_text)
    );
    let window: Vec<&Value> = failure
        .get("window")
        .and_then(Value::as_array)
        .map(|w| w.iter().collect())
        .unwrap_or_default();
    let impossible = op.as_ref().and_then(|op| op.index());
    if !window.is_empty() {
        let from_any = failure
            .get("window_from_any_state")
            .and_then(Value::as_bool)
            == Some(true);
        let _ = write!(
            out.html,
            "<p>Smallest failing window: these {} operations are not linearizable {}. The \
             impossible operation is outlined in red; pale bars may or may not have taken \
             effect.</p>",
            window.len(),
            if from_any {
                "whatever the state before them"
            } else {
                "from the initial state"
            }
        );
        out.html
            .push_str(&window_svg(&window, impossible, &states_text));
        out.html
            .push_str("<details open><summary>the window's operations</summary>");
        op_table(&window, impossible, &mut out.html);
        out.html.push_str("</details>");
    }
    let tail: Vec<&Value> = failure
        .get("prefix_tail")
        .and_then(Value::as_array)
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    if !tail.is_empty() {
        out.html.push_str(
            "<details><summary>the last operations of the longest linearizable prefix, in \
             linearization order</summary>",
        );
        op_table(&tail, None, &mut out.html);
        out.html.push_str("</details>");
    }
    out.html.push_str("</article>");
}

/// Most operations a window drawing shows (the table lists all).
pub const MAX_WINDOW_OPS_DRAWN: usize = 60;

/// A failing window as a small SVG timeline: one lane per process, each operation a bar from
/// its invocation to its completion. The x axis is the order of events, not time, so that
/// every "completed before invoked" relation the verdict rests on is visible even when the
/// operations are microseconds apart.
pub fn window_svg(window: &[&Value], impossible: Option<u64>, states: &str) -> String {
    let ops: Vec<OpView> = window
        .iter()
        .take(MAX_WINDOW_OPS_DRAWN)
        .map(|v| OpView(v))
        .collect();
    let mut events: Vec<u64> = ops
        .iter()
        .flat_map(|op| [op.index(), op.completion_index()])
        .flatten()
        .collect();
    events.sort_unstable();
    events.dedup();
    let slot_of = |index: u64| events.partition_point(|&e| e < index);
    let mut lanes: BTreeMap<(u64, String), usize> = BTreeMap::new();
    for op in &ops {
        let p = op.process();
        lanes.insert((p.parse().unwrap_or(u64::MAX), p), 0);
    }
    for (i, lane) in lanes.values_mut().enumerate() {
        *lane = i;
    }
    const LEFT: usize = 96;
    const SLOT: usize = 64;
    const LANE: usize = 46;
    const TOP: usize = 24;
    let slots = events.len() + 1;
    let width = LEFT + SLOT * slots + 20;
    let height = TOP + LANE * lanes.len() + 30;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<div class=\"window-scroll\"><svg class=\"window\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">\
         <text x=\"4\" y=\"14\" class=\"axis\">possible states before the impossible \
         operation: {}</text>\
         <text x=\"{}\" y=\"{}\" class=\"axis\" text-anchor=\"end\">history order →</text>",
        html(&truncate(states, 60)),
        width - 8,
        height - 8
    );
    for ((_, process), lane) in &lanes {
        let y = TOP + LANE * lane;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" class=\"lane\"/>\
             <text x=\"4\" y=\"{}\" class=\"lane-label\">process {}</text>",
            width - 10,
            y + 36,
            y + 36,
            y + 32,
            html(process)
        );
    }
    for op in &ops {
        let lane = lanes[&(op.process().parse().unwrap_or(u64::MAX), op.process())];
        let y = TOP + LANE * lane;
        let start = op.index().map_or(0, slot_of);
        let end = op.completion_index().map_or(slots, slot_of);
        let x0 = LEFT + SLOT * start + 4;
        let x1 = (LEFT + SLOT * end + SLOT / 2).max(x0 + 12);
        let is_impossible = impossible.is_some() && op.index() == impossible;
        let class = format!(
            "bar o-{}{}{}",
            html(op.outcome()),
            if op.optional() { " optional" } else { "" },
            if is_impossible { " impossible" } else { "" }
        );
        let label = if is_impossible {
            format!("✗ {}", op.call())
        } else {
            op.call()
        };
        let _ = write!(
            svg,
            "<g><title>{}</title><rect class=\"{class}\" x=\"{x0}\" y=\"{}\" width=\"{}\" \
             height=\"16\" rx=\"3\"/><text x=\"{x0}\" y=\"{}\" class=\"bar-label{}\">{}</text></g>",
            html(&format!(
                "index {} process {} {} ({})",
                op.span(),
                op.process(),
                op.call(),
                op.outcome_text()
            )),
            y + 22,
            x1 - x0,
            y + 16,
            if is_impossible { " impossible" } else { "" },
            html(&truncate(&label, 40))
        );
    }
    svg.push_str("</svg></div>");
    if window.len() > MAX_WINDOW_OPS_DRAWN {
        let _ = write!(
            svg,
            "<p class=\"note\">The drawing shows the first {MAX_WINDOW_OPS_DRAWN} of {} \
             operations; the table lists all.</p>",
            window.len()
        );
    }
    svg
}

/// What each kind of set anomaly means (`checker/src/set.rs`).
const SET_KINDS: [(&str, &str, &str); 4] = [
    (
        "lost",
        "Lost elements",
        "The add was acknowledged (ok), yet the last successful read that began after the add \
         completed does not contain the element: the database lost an acknowledged write.",
    ),
    (
        "stale",
        "Stale reads",
        "A read that began after the acknowledged add completed missed the element, but a later \
         read had it: that read lagged behind a completed write.",
    ),
    (
        "unexpected",
        "Unexpected elements",
        "A read returned an element that was never added, or whose add certainly failed.",
    ),
    (
        "never_read",
        "Never read",
        "The add was acknowledged but no successful read began after it completed, so nothing \
         can be said about it: this makes the verdict unknown rather than valid.",
    ),
];

/// The set checker's result.
/// The election checker's counts, each broken property as a finding, and its evidence.
fn election(result: &Value, out: &mut Rendered) {
    let termination = result.get("termination");
    let after = termination
        .and_then(|t| t.get("leader_after_ms"))
        .and_then(Value::as_f64)
        .map(|ms| format!(", the first leader seen {ms:.0} ms after the last heal"))
        .unwrap_or_default();
    let _ = write!(
        out.html,
        "<p>{} campaigns ({} elected, {} not elected, {} unknown), {} leader queries ({} found          no leader): {} observations of {} epochs and {} leaders. Termination: {}{}.</p>",
        number(result.get("campaigns")),
        number(result.get("elected")),
        number(result.get("not_elected")),
        number(result.get("campaigns_unknown")),
        number(result.get("leader_queries")),
        number(result.get("leaderless")),
        number(result.get("observations")),
        number(result.get("epochs")),
        number(result.get("leaders")),
        html(Verdict::of(termination.and_then(|t| t.get("valid"))).as_str()),
        html(&after),
    );
    if let Some(reason) = termination
        .and_then(|t| t.get("reason"))
        .and_then(Value::as_str)
    {
        let _ = write!(out.html, "<p class=\"explanation\">{}</p>", html(reason));
        if Verdict::of(termination.and_then(|t| t.get("valid"))).as_str() == "invalid" {
            out.anomalies += 1;
            out.findings
                .push("no leader within the termination bound".into());
        }
    }
    for (kind, count) in result
        .get("counts")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let count = number(Some(count));
        out.anomalies += 1;
        out.findings.push(format!("{count} {kind} violation(s)"));
        let _ = write!(
            out.html,
            "<article class=\"anomaly\"><h4>{} ({count})</h4><ul>",
            html(kind)
        );
        for anomaly in result
            .get("anomalies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|a| a.get("kind").and_then(Value::as_str) == Some(kind.as_str()))
        {
            let detail = anomaly.get("detail").and_then(Value::as_str).unwrap_or("");
            // An epoch decided 188 times lists every decision: the drawing below shows them.
            let _ = write!(out.html, "<li>{}</li>", html(&truncate(detail, 600)));
        }
        out.html.push_str("</ul></article>");
    }
}

/// Each `kind: count` of a counts object as a finding (`3 stale-token`), and the list.
fn count_findings(counts: Option<&Value>, out: &mut Rendered) -> Vec<String> {
    let listed: Vec<String> = counts
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(kind, n)| format!("{} {kind}", number(Some(n))))
        .collect();
    out.anomalies += listed.len();
    out.findings.extend(listed.iter().cloned());
    listed
}

fn reasons(result: &Value, out: &mut Rendered) {
    for reason in result
        .get("reasons")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let _ = write!(
            out.html,
            "<p class=\"reason\">Unknown because: {}</p>",
            html(reason)
        );
    }
}

/// The lock checker's counts: holders that overlapped, the mutex model's verdict, and each
/// lock's protected resource (the drawing below shows them in time).
fn lock(result: &Value, out: &mut Rendered) {
    let overlaps = number(result.get("overlap_count"));
    let mutex = Verdict::of(result.get("mutex").and_then(|m| m.get("valid")));
    let _ = write!(
        out.html,
        "<p>{} acquires ({} granted, {} holds). Holders whose beliefs overlapped in real time: \
         <b>{overlaps}</b> pair(s). The acquires and releases, with {} lease expiries, against \
         the mutex model: {}.</p>",
        number(result.get("acquires")),
        number(result.get("acquired")),
        number(result.get("holds")),
        number(result.get("lease_expiries")),
        if result.get("mutex").is_some_and(|m| !m.is_null()) {
            mutex.as_str()
        } else {
            "not checked"
        }
    );
    if overlaps > 0 {
        out.anomalies += 1;
        out.findings
            .push(format!("{overlaps} pair(s) of holders at once"));
    }
    if mutex == Verdict::Invalid {
        out.anomalies += 1;
        out.findings.push("mutex model violated".into());
    }
    for fencing in result
        .get("fencing")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = fencing
            .get("key")
            .filter(|k| !k.is_null())
            .map(|k| format!(" of lock {}", text_of(k)))
            .unwrap_or_default();
        let accepted = fencing
            .get("accepted")
            .and_then(Value::as_u64)
            .map_or("never read".to_string(), |n| {
                format!("{n} in its final read")
            });
        let _ = write!(
            out.html,
            "<p>The protected resource{}: {} writes accepted, {} rejected, {} unknown; {}.",
            html(&key),
            number(fencing.get("writes_ok")),
            number(fencing.get("writes_rejected")),
            number(fencing.get("writes_unknown")),
            accepted
        );
        let listed = count_findings(fencing.get("counts"), out);
        if !listed.is_empty() {
            let _ = write!(
                out.html,
                " <b>Out of order: {}</b>.",
                html(&listed.join(", "))
            );
        }
        if let Some(reason) = fencing.get("reason").and_then(Value::as_str) {
            let _ = write!(out.html, " Unknown because: {}.", html(reason));
        }
        out.html.push_str("</p>");
    }
    reasons(result, out);
}

/// The broadcast checker's counts per log and what it found.
fn broadcast(result: &Value, out: &mut Rendered) {
    for log in result
        .get("logs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = write!(
            out.html,
            "<p>{}{} appends acknowledged ({} failed, {} unknown of which {} are in the log); \
             {} reads ({} final), the longest of {} messages; {} stale reads (allowed: a reader \
             may lag).",
            log.get("key")
                .filter(|k| !k.is_null())
                .map(|k| format!("Log {}: ", text_of(k)))
                .map(|t| html(&t))
                .unwrap_or_default(),
            number(log.get("appends_ok")),
            number(log.get("appends_failed")),
            number(log.get("appends_unknown")),
            number(log.get("appends_unknown_present")),
            number(log.get("reads")),
            number(log.get("final_reads")),
            number(log.get("longest_read")),
            number(log.get("stale_reads")),
        );
        let listed = count_findings(log.get("counts"), out);
        if !listed.is_empty() {
            let _ = write!(out.html, " <b>Found: {}</b>.", html(&listed.join(", ")));
        }
        if let Some(reason) = log.get("reason").and_then(Value::as_str) {
            let _ = write!(out.html, " Unknown because: {}.", html(reason));
        }
        out.html.push_str("</p>");
    }
}

/// The queue checker's counts against the target's delivery promise.
fn queue(result: &Value, out: &mut Rendered) {
    let delivery = result
        .get("delivery")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let _ = write!(
        out.html,
        "<p>Judged against the <b>{}</b> promise: {} jobs enqueued ({} failed, {} unknown), {} \
         deliveries of {} jobs ({} claims unknown), {} jobs completed; the drain {}.",
        html(delivery),
        number(result.get("enqueued_ok")),
        number(result.get("enqueue_failed")),
        number(result.get("enqueue_unknown")),
        number(result.get("deliveries")),
        number(result.get("delivered")),
        number(result.get("claims_unknown")),
        number(result.get("completed")),
        if result.get("drained").and_then(Value::as_bool) == Some(true) {
            "emptied the queue"
        } else {
            "did not empty the queue (lost jobs cannot be told from queued ones)"
        }
    );
    let listed = count_findings(result.get("counts"), out);
    if !listed.is_empty() {
        let _ = write!(out.html, " <b>Forbidden: {}</b>.", html(&listed.join(", ")));
    }
    let allowed: Vec<String> = result
        .get("allowed")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(kind, n)| format!("{} {kind}", number(Some(n))))
        .collect();
    if !allowed.is_empty() {
        let _ = write!(
            out.html,
            " Allowed by the promise: {}.",
            html(&allowed.join(", "))
        );
    }
    if let Some(reason) = result.get("reason").and_then(Value::as_str) {
        let _ = write!(out.html, " Unknown because: {}.", html(reason));
    }
    out.html.push_str("</p>");
}

/// The unique-ids checker's counts and its duplicates.
fn unique_ids(result: &Value, out: &mut Rendered) {
    let _ = write!(
        out.html,
        "<p>{} generates: {} acknowledged ({} distinct ids, {} to {} in {} runs of consecutive          ids), {} failed, {} unknown.</p>",
        number(result.get("generates")),
        number(result.get("acknowledged")),
        number(result.get("distinct")),
        result.get("lowest").map(text_of).unwrap_or_default(),
        result.get("highest").map(text_of).unwrap_or_default(),
        number(result.get("range_count")),
        number(result.get("failed")),
        number(result.get("unknown")),
    );
    let duplicates = number(result.get("duplicate_count"));
    if duplicates == 0 {
        return;
    }
    out.anomalies += 1;
    out.findings.push(format!("{duplicates} duplicate id(s)"));
    let _ = write!(
        out.html,
        "<article class=\"anomaly\"><h4>duplicate ids ({duplicates})</h4><ul>"
    );
    for duplicate in result
        .get("duplicates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = write!(
            out.html,
            "<li>id {} to processes {}</li>",
            html(&duplicate.get("id").map(text_of).unwrap_or_default()),
            html(&duplicate.get("processes").map(text_of).unwrap_or_default())
        );
    }
    out.html.push_str("</ul></article>");
}

/// The counts by kind of the checkers that give them (watch: `anomaly_counts`; ephemeral:
/// `finding_counts`).
fn counted_kinds(result: &Value) -> Option<&serde_json::Map<String, Value>> {
    result
        .get("anomaly_counts")
        .or_else(|| result.get("finding_counts"))
        .and_then(Value::as_object)
}

/// A checker's counts by kind and the evidence it kept (`anomalies` or `findings`: objects
/// with `kind` and `detail`), a few per kind.
fn counted(counts: &serde_json::Map<String, Value>, result: &Value, out: &mut Rendered) {
    const SHOWN_PER_KIND: usize = 5;
    if counts.is_empty() {
        return;
    }
    let evidence: Vec<&Value> = result
        .get("anomalies")
        .or_else(|| result.get("findings"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    out.html.push_str("<ul class=\"findings\">");
    for (kind, n) in counts {
        let n = number(Some(n));
        out.findings.push(format!("{n} {kind}"));
        out.anomalies += 1;
        let _ = write!(out.html, "<li><b>{n} {}</b><ul>", html(kind));
        for item in evidence
            .iter()
            .filter(|e| e.get("kind").and_then(Value::as_str) == Some(kind.as_str()))
            .take(SHOWN_PER_KIND)
        {
            let detail = item.get("detail").and_then(Value::as_str).unwrap_or("");
            let _ = write!(
                out.html,
                "<li>op {}: {}</li>",
                number(item.get("index")),
                html(&truncate(detail, 300))
            );
        }
        out.html.push_str("</ul></li>");
    }
    out.html.push_str("</ul>");
}

fn set(result: &Value, out: &mut Rendered) {
    let _ = write!(
        out.html,
        "<p>{} adds ({} acknowledged) and {} successful reads over {} keys. Recovered (adds of \
         unknown outcome that a read showed): {}.</p><table class=\"counts\"><tr>",
        number(result.get("attempts")),
        number(result.get("acknowledged")),
        number(result.get("reads")),
        number(result.get("keys")),
        number(result.get("recovered_count")),
    );
    for (kind, title, _) in SET_KINDS {
        let count = number(result.get(format!("{kind}_count").as_str()));
        let _ = write!(
            out.html,
            "<td class=\"{}\"><b>{count}</b><br>{}</td>",
            if count > 0 { "bad" } else { "" },
            html(&title.to_lowercase())
        );
    }
    out.html.push_str("</tr></table>");
    for (kind, title, meaning) in SET_KINDS {
        let count = number(result.get(format!("{kind}_count").as_str()));
        if count == 0 {
            continue;
        }
        out.anomalies += 1;
        out.findings
            .push(format!("{count} {}", title.to_lowercase()));
        let listed: &[Value] = result
            .get(kind)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let _ = write!(
            out.html,
            "<article class=\"anomaly\"><h4>{} ({count})</h4><p class=\"explanation\">{}</p>\
             <div class=\"scroll-table\"><table class=\"ops\"><thead><tr><th>element</th><th>key</th><th>add (index)</th>\
             <th>read that shows it (index)</th></tr></thead><tbody>",
            html(title),
            html(meaning)
        );
        for element in listed {
            let field = |name: &str| element.get(name).map(text_of).unwrap_or_default();
            let _ = write!(
                out.html,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html(&field("element")),
                html(&field("key")),
                html(&field("add_index")),
                html(&field("read_index"))
            );
        }
        out.html.push_str("</tbody></table></div>");
        if (listed.len() as u64) < count {
            let _ = write!(
                out.html,
                "<p class=\"note\">{} more are counted but not listed in results.json.</p>",
                count - listed.len() as u64
            );
        }
        out.html.push_str("</article>");
        if let Some(first) = listed.first() {
            let element = first.get("element").map(text_of).unwrap_or_default();
            for (field, what) in [("add_index", "add"), ("read_index", "read")] {
                if let Some(index) = first.get(field).and_then(Value::as_u64) {
                    out.marks.push(Mark {
                        index,
                        label: format!("{} {kind}: {what} of {element}", title.to_lowercase()),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn counted_findings_are_listed_with_their_evidence() {
        let results = serde_json::json!({"checker": "watch", "result": {
            "valid": false,
            "anomaly_counts": {"gap": 2},
            "anomalies": [{"kind": "gap", "key": "w0", "index": 7, "detail": "missed <3>"}],
        }});
        let out = render(&results);
        assert_eq!(out.findings, vec!["2 gap".to_string()]);
        assert!(out.html.contains("op 7: missed &lt;3&gt;"), "{}", out.html);
    }

    use super::*;
    use serde_json::json;

    fn op(index: u64, completion: Option<u64>, process: &str, f: &str, value: Value) -> Value {
        let mut op = json!({"index": index, "process": process, "f": f, "type": "ok",
                            "value": value, "result": value});
        if let Some(c) = completion {
            op["completion_index"] = json!(c);
        }
        op
    }

    #[test]
    fn verdicts_read_like_results_json() {
        assert_eq!(Verdict::of(Some(&json!(true))), Verdict::Valid);
        assert_eq!(Verdict::of(Some(&json!(false))), Verdict::Invalid);
        assert_eq!(Verdict::of(Some(&json!("unknown"))), Verdict::Unknown);
        assert_eq!(Verdict::of(None), Verdict::Unknown);
        assert!(Verdict::Invalid > Verdict::Unknown && Verdict::Unknown > Verdict::Valid);
    }

    #[test]
    fn a_linearizability_failure_is_explained_with_its_window() {
        let mut read = op(4, Some(5), "1", "read", json!(null));
        read["result"] = json!(1);
        let results = json!({
            "valid": false, "checker": "linearizability",
            "result": {"valid": false, "model": "cas-register", "ops": 3, "keys": 1,
                "failures": [{"key": "x", "op": read.clone(), "prefix_length": 1,
                    "prefix_tail": [op(2, Some(3), "0", "write", json!(2))],
                    "states": [2],
                    "window": [op(2, Some(3), "0", "write", json!(2)), read],
                    "window_from_any_state": true}]}
        });
        let rendered = render(&results);
        assert_eq!(rendered.anomalies, 1);
        let text = &rendered.html;
        assert!(
            text.contains("Not linearizable on key &quot;x&quot;"),
            "{text}"
        );
        assert!(text.contains("It read 1, but before it the state could only be: <b>2</b>"));
        assert!(text.contains("whatever the state before them"));
        assert!(text.contains("<svg class=\"window\""));
        assert!(text.contains("bar o-ok impossible"));
        assert!(text.contains("process 0") && text.contains("process 1"));
        assert_eq!(rendered.marks[0].index, 4);
        assert_eq!(rendered.findings, ["1 key not linearizable"]);
    }

    #[test]
    fn window_order_follows_event_indices() {
        let a = op(10, Some(11), "0", "write", json!(1));
        let b = op(12, None, "1", "write", json!(2));
        let svg = window_svg(&[&a, &b], None, "1");
        // Slots: 10, 11, 12, then one past the end for the open operation.
        assert!(svg.contains("x=\"100\""), "{svg}");
        assert!(svg.contains("x=\"228\""), "{svg}");
        assert!(svg.contains("possible states before the impossible operation: 1"));
    }

    #[test]
    fn set_anomalies_list_their_elements_with_the_meaning() {
        let results = json!({
            "valid": false, "checker": "set",
            "result": {"valid": false, "attempts": 3, "acknowledged": 3, "reads": 1, "keys": 1,
                "lost_count": 2, "stale_count": 0, "unexpected_count": 1,
                "never_read_count": 0, "recovered_count": 0,
                "lost": [{"key": 0, "element": 7, "add_index": 3, "read_index": 9}],
                "unexpected": [{"key": 0, "element": "<b>x</b>", "read_index": 9}]}
        });
        let rendered = render(&results);
        assert_eq!(rendered.anomalies, 2);
        assert!(rendered.html.contains("Lost elements (2)"));
        assert_eq!(
            rendered.findings,
            ["2 lost elements", "1 unexpected elements"]
        );
        assert!(rendered
            .html
            .contains("the database lost an acknowledged write"));
        assert!(rendered.html.contains("1 more are counted"));
        assert!(rendered.html.contains("&quot;&lt;b&gt;x&lt;/b&gt;&quot;"));
        assert!(!rendered.html.contains("<b>x</b>"));
        assert_eq!(rendered.marks[0].index, 3);
    }

    #[test]
    fn an_unknown_checker_shows_its_reason_and_raw_result() {
        let results = json!({"valid": "unknown", "checker": "elle",
                             "result": {"valid": "unknown", "reason": "took <too> long"}});
        let rendered = render(&results);
        assert!(rendered
            .html
            .contains("Unknown because: took &lt;too&gt; long"));
        assert!(rendered.html.contains("full result (JSON)"));
    }

    #[test]
    fn election_and_unique_ids_anomalies_become_findings() {
        let rendered = render(&json!({"checker": "election", "result": {
            "valid": false, "campaigns": 3, "elected": 2, "counts": {"agreement": 1},
            "anomalies": [{"kind": "agreement", "epoch": 1, "detail": "epoch 1 has 2 leaders"}],
            "termination": {"valid": true, "leader_after_ms": 12.0}}}));
        assert_eq!(rendered.findings, ["1 agreement violation(s)"]);
        assert!(rendered.html.contains("epoch 1 has 2 leaders"));
        let rendered = render(&json!({"checker": "unique-ids", "result": {
            "valid": false, "generates": 3, "acknowledged": 3, "duplicate_count": 1,
            "duplicates": [{"id": 7, "processes": [0, 1]}]}}));
        assert_eq!(rendered.findings, ["1 duplicate id(s)"]);
        assert!(rendered.html.contains("id 7 to processes [0,1]"));
    }

    #[test]
    fn lock_broadcast_and_queue_results_become_findings() {
        let rendered = render(&json!({"checker": "lock", "result": {
            "valid": false, "acquires": 9, "acquired": 4, "holds": 4, "overlap_count": 2,
            "mutex": {"valid": false}, "lease_expiries": 3,
            "fencing": [{"key": "lock", "valid": false, "writes_ok": 5, "writes_rejected": 1,
                "writes_unknown": 0, "accepted": 5, "counts": {"stale-token": 1}}]}}));
        assert_eq!(
            rendered.findings,
            [
                "2 pair(s) of holders at once",
                "mutex model violated",
                "1 stale-token"
            ]
        );
        assert!(rendered.html.contains("Out of order: 1 stale-token"));
        let rendered = render(&json!({"checker": "broadcast", "result": {"valid": false,
            "logs": [{"valid": false, "appends_ok": 3, "reads": 2, "longest_read": 3,
                "counts": {"divergent-reads": 1, "lost": 2}}]}}));
        assert_eq!(rendered.findings, ["1 divergent-reads", "2 lost"]);
        let rendered = render(&json!({"checker": "queue", "result": {"valid": true,
            "delivery": "at-least-once", "enqueued_ok": 2, "drained": true, "counts": {},
            "allowed": {"duplicate-delivery": 1}}}));
        assert!(rendered.findings.is_empty());
        assert!(rendered
            .html
            .contains("Allowed by the promise: 1 duplicate-delivery"));
        assert!(rendered.html.contains("the drain emptied the queue"));
    }

    #[test]
    fn composed_results_give_one_entry_per_checker() {
        let results = json!({"checker": "composed", "result": {
            "linear": {"valid": true}, "set": {"valid": false}, "note": "x"}});
        let names: Vec<String> = checker_results(&results)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["linear", "set"]);
    }
}
