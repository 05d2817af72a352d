//! Drawings of the coordination workloads' results, from the checker's result and the history
//! itself:
//! - **lock** / **fenced-lock**: one lane per process, a bar for each period a client believed
//!   it held the lock (the lock checker's holds), coloured by fencing token; pairs of holders
//!   whose beliefs overlap drawn over both lanes in red and labelled; writes to the protected
//!   resource as ticks, rejected ones (`stale-token`) as red crosses, writes the resource
//!   accepted out of token order (the fencing checker's evidence) as red triangles; and, when
//!   something is wrong, the same drawing zoomed on the first anomaly.
//! - **election**: one row per epoch, a bar per leader observed in it (from its first to its
//!   last observation), rows with two leaders shaded red; the last heal and the first leader
//!   seen after it marked (termination).
//! - **broadcast**: each read's length over time against the count of acknowledged appends,
//!   the reads that disagree ringed in red with the position where they diverge, lost
//!   appends marked on the time axis.
//! - **queue**: jobs enqueued, delivered and completed over time, each lost, duplicated or
//!   twice-completed job marked where its operations happened.
//!
//! Every drawing is bounded whatever the history's length: bars narrower than a unit merge
//! with their neighbours, ticks and dots keep one per unit of x, read points are downsampled
//! ([`crate::downsample`]), and at most [`MAX_EPOCH_ROWS`] epochs and [`MAX_LANES`] lanes
//! are drawn.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use faultline_core::{History, Op, OpType, Process};

use crate::downsample::downsample;
use crate::drawing::{duration_text, Chart, ANOMALY, LEFT, PALETTE};
use crate::escape::{html, truncate};
use crate::faults::FaultInterval;

/// Most lanes a lock drawing has; past it processes fold into their workers.
pub const MAX_LANES: usize = 32;
/// Most epochs an election drawing has rows for.
pub const MAX_EPOCH_ROWS: usize = 40;
/// Most read points a broadcast drawing draws.
pub const MAX_READ_POINTS: usize = 1_500;
/// Most message ids a broadcast drawing compares to find every divergent read.
pub const MAX_COMPARED_IDS: usize = 50_000_000;
/// Anomalies labelled with text in one chart (every one has a tooltip).
pub const MAX_LABELS: usize = 6;

const LANE_HEIGHT: f64 = 22.0;
const ROW_HEIGHT: f64 = 18.0;
const INFO_COLOR: &str = "#f08c00";

/// What the drawings read besides the checker's result.
pub struct Input<'a> {
    pub history: &'a History,
    pub faults: &'a [FaultInterval],
    /// From test.json: processes fold into workers (`p mod concurrency`) when there are more
    /// than [`MAX_LANES`].
    pub concurrency: Option<u64>,
}

/// The drawing of one checker's result, as HTML (a heading, how to read it, a legend and the
/// SVG), or `None` for a checker these drawings do not cover. A history the drawing cannot
/// use gives a note instead.
pub fn draw(checker: &str, result: &Value, input: &Input) -> Option<String> {
    let drawn = match checker {
        "lock" => lock(result, input),
        "election" => election(result, input),
        "broadcast" => broadcast(result, input),
        "queue" => queue(result, input),
        _ => return None,
    };
    Some(match drawn {
        Ok(html) => html,
        Err(why) => format!(
            "<p class=\"note\">No drawing of the {} result: {}.</p>",
            html(checker),
            html(&why)
        ),
    })
}

/// An operation with its completion.
struct Done<'a> {
    invoke: &'a Op,
    completion: Option<&'a Op>,
}

impl Done<'_> {
    fn kind(&self) -> Option<OpType> {
        self.completion.map(|c| c.kind)
    }
    fn process(&self) -> u64 {
        match self.invoke.process {
            Process::Client(p) => p,
            Process::Nemesis => u64::MAX,
        }
    }
    /// The completion's time, else the invocation's.
    fn at(&self) -> u64 {
        self.completion
            .and_then(|c| c.time)
            .or(self.invoke.time)
            .unwrap_or(0)
    }
    fn error(&self) -> String {
        match self.completion.and_then(|c| c.error.as_ref()) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }
}

fn done_ops(history: &History) -> Result<Vec<Done<'_>>, String> {
    if history.client_ops().any(|op| op.time.is_none()) {
        return Err("some operations have no time".into());
    }
    Ok(history
        .pairs()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|pair| Done {
            invoke: &history.ops[pair.invoke],
            completion: pair.completion.map(|c| &history.ops[c]),
        })
        .filter(|d| !d.invoke.is_nemesis())
        .collect())
}

/// The span drawn: from 0 (the test's start) to the last event; a history whose times start
/// far from 0 (imported) starts at its first event.
fn span(history: &History) -> (u64, u64) {
    let times = history.ops.iter().filter_map(|op| op.time);
    let (low, high) = times.fold((u64::MAX, 0), |(l, h), t| (l.min(t), h.max(t)));
    if low == u64::MAX {
        return (0, 1);
    }
    let t0 = if low > high / 10 { low } else { 0 };
    (t0, high.max(t0 + 1))
}

fn seconds(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => truncate(&other.to_string(), 40),
    }
}

/// A stable colour for a value (tokens: consecutive tokens get different colours).
fn palette_color(value: &Value) -> &'static str {
    let n = match value.as_i64() {
        Some(n) => n.unsigned_abs(),
        None => value
            .to_string()
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
    };
    PALETTE[(n % PALETTE.len() as u64) as usize]
}

fn legend(items: &[(&str, &str)]) -> String {
    let mut out = String::from("<div class=\"legend\">");
    for (style, label) in items {
        let _ = write!(out, "<span><i style=\"{style}\"></i>{}</span>", html(label));
    }
    out.push_str("</div>");
    out
}

/// Lanes of processes: one per process, or per worker when there are too many.
struct Lanes {
    labels: Vec<String>,
    of: HashMap<u64, usize>,
    folded: bool,
}

impl Lanes {
    fn new(processes: &BTreeSet<u64>, concurrency: Option<u64>) -> Lanes {
        let mut of = HashMap::new();
        if processes.len() > MAX_LANES {
            if let Some(c) = concurrency.filter(|&c| c > 0 && c as usize <= MAX_LANES) {
                let workers: BTreeSet<u64> = processes.iter().map(|p| p % c).collect();
                let rank: HashMap<u64, usize> =
                    workers.iter().enumerate().map(|(i, &w)| (w, i)).collect();
                for &p in processes {
                    of.insert(p, rank[&(p % c)]);
                }
                return Lanes {
                    labels: workers.iter().map(|w| format!("worker {w}")).collect(),
                    of,
                    folded: true,
                };
            }
        }
        let kept: Vec<u64> = processes.iter().copied().take(MAX_LANES).collect();
        for (i, &p) in kept.iter().enumerate() {
            of.insert(p, i);
        }
        Lanes {
            labels: kept.iter().map(|p| format!("process {p}")).collect(),
            of,
            folded: false,
        }
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

// ---------------------------------------------------------------------------------------
// Locks

/// A hold as drawn.
struct HoldBar {
    lane: usize,
    process: u64,
    token: Value,
    from: u64,
    /// `None`: still held at the end.
    until: Option<u64>,
    ended_by: String,
}

/// A write to the protected resource as drawn.
struct WriteMark {
    lane: usize,
    at: u64,
    /// `ok`, `rejected` (fail other than lease-expired), `expired` (the client's own check
    /// refused it), `info`.
    class: &'static str,
    title: String,
}

/// Two holders at once, from the checker's evidence.
struct OverlapMark {
    lanes: (usize, usize),
    from: u64,
    until: u64,
    label: String,
}

/// A write the resource accepted that shows a fencing anomaly.
struct FencingMark {
    lane: usize,
    at: u64,
    label: String,
}

struct LockDrawing {
    lanes: Lanes,
    holds: Vec<HoldBar>,
    /// Every stretch of a hold during which another process also believed it held the lock:
    /// (lane, from, until).
    conflicts: Vec<(usize, u64, u64)>,
    writes: Vec<WriteMark>,
    overlaps: Vec<OverlapMark>,
    fencing: Vec<FencingMark>,
}

fn hold_from_json(value: &Value) -> Option<(u64, Value, u64, Option<u64>)> {
    Some((
        value.get("process")?.as_u64()?,
        value.get("token").cloned().unwrap_or(Value::Null),
        value.get("from_ns")?.as_u64()?,
        value.get("until_ns").and_then(Value::as_u64),
    ))
}

fn lock(result: &Value, input: &Input) -> Result<String, String> {
    let history = input.history;
    let dones = done_ops(history)?;
    let holds = faultline_checker::lock::holds(history).map_err(|e| e.to_string())?;
    let (t0, t1) = span(history);
    let writes: Vec<&Done> = dones
        .iter()
        .filter(|d| d.invoke.f == faultline_core::lock::WRITE)
        .collect();
    let processes: BTreeSet<u64> = holds
        .iter()
        .map(|h| h.process)
        .chain(writes.iter().map(|d| d.process()))
        .collect();
    if processes.is_empty() {
        return Err("no process held the lock or wrote to its resource".into());
    }
    let lanes = Lanes::new(&processes, input.concurrency);
    let bars: Vec<HoldBar> = holds
        .iter()
        .filter_map(|h| {
            Some(HoldBar {
                lane: *lanes.of.get(&h.process)?,
                process: h.process,
                token: h.token.clone(),
                from: h.from_ns,
                until: h.until_ns,
                ended_by: h.ended_by.to_string(),
            })
        })
        .collect();
    // Writes by their id, to place the resource's evidence.
    let mut write_by_id: HashMap<String, &Done> = HashMap::new();
    let mut marks = Vec::new();
    for d in &writes {
        let id = d.invoke.value.get("id").unwrap_or(&d.invoke.value);
        write_by_id.insert(id.to_string(), *d);
        let Some(&lane) = lanes.of.get(&d.process()) else {
            continue;
        };
        let error = d.error();
        let class = match d.kind() {
            Some(OpType::Ok) => "ok",
            Some(OpType::Fail) if error == "lease-expired" => "expired",
            Some(OpType::Fail) => "rejected",
            _ => "info",
        };
        marks.push(WriteMark {
            lane,
            at: d.at(),
            class,
            title: format!(
                "write {} by process {} at {}: {}",
                value_text(id),
                d.process(),
                seconds(d.at()),
                match class {
                    "ok" => "accepted".to_string(),
                    "info" => "outcome unknown".to_string(),
                    _ => format!("refused ({error})"),
                }
            ),
        });
    }
    let mut overlaps = Vec::new();
    for overlap in result
        .get("overlaps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(first), Some(second)) = (
            overlap.get("first").and_then(hold_from_json),
            overlap.get("second").and_then(hold_from_json),
        ) else {
            continue;
        };
        let (Some(&a), Some(&b)) = (lanes.of.get(&first.0), lanes.of.get(&second.0)) else {
            continue;
        };
        let from = first.2.max(second.2);
        let until = match (first.3, second.3) {
            (Some(x), Some(y)) => x.min(y),
            (x, y) => x.or(y).unwrap_or(t1),
        }
        .max(from);
        overlaps.push(OverlapMark {
            lanes: (a.min(b), a.max(b)),
            from,
            until,
            label: format!(
                "2 holders: p{} (token {}) and p{} (token {}), {}",
                first.0,
                value_text(&first.1),
                second.0,
                value_text(&second.1),
                duration_text(
                    overlap
                        .get("overlap_ns")
                        .and_then(Value::as_u64)
                        .unwrap_or(until - from)
                )
            ),
        });
    }
    let mut fencing_marks = Vec::new();
    let mut fencing_counts: BTreeMap<String, u64> = BTreeMap::new();
    for fencing in result
        .get("fencing")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for (kind, n) in fencing
            .get("counts")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            *fencing_counts.entry(kind.clone()).or_default() += n.as_u64().unwrap_or(0);
        }
        for anomaly in fencing
            .get("anomalies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let kind = anomaly.get("kind").and_then(Value::as_str).unwrap_or("?");
            let Some(write) = anomaly.get("write").filter(|w| !w.is_null()) else {
                continue;
            };
            let id = write.get("id").cloned().unwrap_or(Value::Null);
            let Some(d) = write_by_id.get(&id.to_string()) else {
                continue;
            };
            let Some(&lane) = lanes.of.get(&d.process()) else {
                continue;
            };
            let label = match (kind, anomaly.get("earlier")) {
                ("stale-token", Some(earlier)) => format!(
                    "stale token {} accepted after token {}",
                    value_text(write.get("token").unwrap_or(&Value::Null)),
                    value_text(earlier.get("token").unwrap_or(&Value::Null))
                ),
                _ => format!("{kind}: write {}", value_text(&id)),
            };
            fencing_marks.push(FencingMark {
                lane,
                at: d.at(),
                label,
            });
        }
    }
    let conflicts = conflicts(&bars, t1);
    let drawing = LockDrawing {
        lanes,
        conflicts,
        holds: bars,
        writes: marks,
        overlaps,
        fencing: fencing_marks,
    };

    let overlap_count = result
        .get("overlap_count")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let rejected = drawing
        .writes
        .iter()
        .filter(|w| w.class == "rejected")
        .count();
    let mut out = String::from("<div class=\"coord-drawing\" data-drawing=\"lock\">");
    let _ = write!(
        out,
        "<h4>Holds of the lock</h4><p>Each bar is a period a client believed it held the \
         lock: from its acquire's completion to its release, the end of its lease as it \
         measured it, or the moment it gave up; the colour and the number are its fencing \
         token. {} holds by {} processes{}. Ticks above the bars are writes to the protected \
         resource.",
        drawing.holds.len(),
        processes.len(),
        if drawing.lanes.folded {
            " (processes folded into their workers' lanes)"
        } else if processes.len() > drawing.lanes.len() {
            " (the first processes' lanes only)"
        } else {
            ""
        }
    );
    if overlap_count > 0 {
        let _ = write!(
            out,
            " <b class=\"bad\">{overlap_count} pair(s) of holders believed they held it at \
             once</b>: a red strip under a bar marks every stretch of it during which another \
             process held the lock too; red boxes joined by a dashed line mark the pairs the \
             checker lists{}.",
            if overlap_count as usize > drawing.overlaps.len() {
                format!(" (its first {})", drawing.overlaps.len())
            } else {
                String::new()
            }
        );
    }
    if rejected > 0 {
        let _ = write!(
            out,
            " {rejected} writes were rejected by the resource (red crosses): their holder's \
             token was lower than one it had accepted."
        );
    }
    let stale: u64 = fencing_counts.values().sum();
    if stale > 0 {
        let listed: Vec<String> = fencing_counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let _ = write!(
            out,
            " <b class=\"bad\">The resource's order is wrong: {}</b> (red triangles mark the \
             accepted writes that show it).",
            html(&listed.join(", "))
        );
    }
    out.push_str("</p>");
    out.push_str(&legend(&[
        ("background:#1f77b4", "hold (colour: fencing token)"),
        ("background:#adb5bd", "several short holds merged"),
        (
            "background:rgba(214,39,40,.3);border:2px solid #d62728",
            "two holders at once (the checker's evidence)",
        ),
        (
            "background:#d62728;height:3px",
            "another process held it too",
        ),
        ("background:#212529;width:2px", "write accepted"),
        ("background:#d62728;width:8px;height:8px", "write rejected"),
        (
            "background:#adb5bd;width:8px;height:8px",
            "write refused: lease over",
        ),
        ("background:#f08c00;width:2px", "write outcome unknown"),
    ]));
    out.push_str(&lock_chart(
        &drawing,
        "every hold (whole run)",
        (t0, t1),
        input.faults,
        1,
    ));
    // Zoomed on the first anomaly, where a person can see it.
    let first = drawing
        .overlaps
        .iter()
        .map(|o| (o.from, o.until, "first overlapping holders"))
        .chain(
            drawing
                .fencing
                .iter()
                .map(|f| (f.at, f.at, "first write out of token order")),
        )
        .min_by_key(|&(from, _, _)| from);
    if let Some((from, until, what)) = first {
        // Both holds of an overlap, and a little around them.
        let context = drawing
            .holds
            .iter()
            .filter(|h| h.from <= until && h.until.unwrap_or(t1) >= from)
            .fold((from, until), |(a, b), h| {
                (a.min(h.from), b.max(h.until.unwrap_or(t1)))
            });
        let width = (context.1 - context.0).max(2_000_000);
        let pad = width / 8;
        let zoom = (
            context.0.saturating_sub(pad).max(t0),
            (context.1 + pad).min(t1),
        );
        if (zoom.1 - zoom.0) * 4 < t1 - t0 {
            out.push_str(&lock_chart(
                &drawing,
                &format!(
                    "zoomed on the {what}: {} to {}",
                    seconds(zoom.0),
                    seconds(zoom.1)
                ),
                zoom,
                input.faults,
                MAX_LABELS,
            ));
        }
    }
    out.push_str("</div>");
    Ok(out)
}

/// Most writes a lock chart draws a mark for; past it, only the rejected ones.
pub const MAX_WRITE_MARKS: usize = 2_000;
/// Most pairs of overlapping holds `conflicts` looks at.
pub const MAX_CONFLICT_PAIRS: usize = 200_000;

/// Where each hold overlaps another process's hold (of any lock key: the workload uses one),
/// on both lanes; the checker's evidence names only the first pairs, this marks them all.
fn conflicts(holds: &[HoldBar], end: u64) -> Vec<(usize, u64, u64)> {
    let mut order: Vec<&HoldBar> = holds.iter().collect();
    order.sort_by_key(|h| h.from);
    let until = |h: &HoldBar| h.until.unwrap_or(end);
    let mut active: Vec<&HoldBar> = Vec::new();
    let mut out = Vec::new();
    let mut pairs = 0;
    for &hold in &order {
        active.retain(|a| until(a) > hold.from);
        for &other in &active {
            if other.process == hold.process || pairs >= MAX_CONFLICT_PAIRS {
                continue;
            }
            pairs += 1;
            let stop = until(other).min(until(hold));
            out.push((other.lane, hold.from, stop));
            out.push((hold.lane, hold.from, stop));
        }
        if until(hold) > hold.from {
            active.push(hold);
        }
    }
    out
}

fn lock_chart(
    drawing: &LockDrawing,
    title: &str,
    view: (u64, u64),
    faults: &[FaultInterval],
    max_labels: usize,
) -> String {
    // Past MAX_WRITE_MARKS writes in view, only the rejected ones are drawn: a tick per
    // write would hide the holds (a zoomed chart shows them all).
    let in_view = drawing
        .writes
        .iter()
        .filter(|w| w.at >= view.0 && w.at <= view.1)
        .count();
    let dense = in_view > MAX_WRITE_MARKS;
    let title = if dense {
        format!("{title}: {in_view} writes, only the rejected ones drawn at this scale")
    } else {
        title.to_string()
    };
    let mut chart = Chart::new(
        "lock-holds",
        &title,
        view,
        LANE_HEIGHT * drawing.lanes.len() as f64 + 4.0,
        faults,
    );
    let lane_top = |lane: usize, chart: &Chart| chart.top + 4.0 + LANE_HEIGHT * lane as f64;
    for (lane, label) in drawing.lanes.labels.iter().enumerate() {
        let y = lane_top(lane, &chart) + LANE_HEIGHT - 2.0;
        chart.lane_label(y - 8.0, label, "");
    }
    // Holds, lane by lane, narrow neighbours merged.
    let mut by_lane: Vec<Vec<&HoldBar>> = vec![Vec::new(); drawing.lanes.len()];
    for hold in &drawing.holds {
        let until = hold.until.unwrap_or(view.1);
        if until >= view.0 && hold.from <= view.1 {
            by_lane[hold.lane].push(hold);
        }
    }
    for (lane, holds) in by_lane.iter_mut().enumerate() {
        holds.sort_by_key(|h| h.from);
        let y = lane_top(lane, &chart) + 6.0;
        // (x0, x1, the holds in it)
        let mut group: Option<(f64, f64, Vec<&HoldBar>)> = None;
        let emit = |group: (f64, f64, Vec<&HoldBar>), chart: &mut Chart| {
            let (x0, x1, holds) = group;
            let w = (x1 - x0).max(1.5);
            if let [hold] = holds.as_slice() {
                let mut svg = format!(
                    "<g class=\"hold\"><title>process {} held token {} from {} to {} (ended by \
                     {})</title><rect class=\"hold-bar\" x=\"{x0:.1}\" y=\"{y:.1}\" \
                     width=\"{w:.1}\" height=\"12\" fill=\"{}\"/>",
                    hold.process,
                    html(&value_text(&hold.token)),
                    seconds(hold.from),
                    hold.until.map_or("the end".into(), seconds),
                    html(&hold.ended_by),
                    palette_color(&hold.token)
                );
                let text = value_text(&hold.token);
                if w > 7.0 * text.chars().count() as f64 + 4.0 {
                    let _ = write!(
                        svg,
                        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"bar-text\">{}</text>",
                        x0 + 2.0,
                        y + 10.0,
                        html(&text)
                    );
                }
                svg.push_str("</g>");
                chart.push(&svg);
            } else {
                let first = holds.first().expect("a group has holds");
                let last = holds.last().expect("a group has holds");
                chart.push(&format!(
                    "<g class=\"hold merged\"><title>{} holds from {} to {} (tokens {} to {})\
                     </title><rect class=\"hold-bar merged\" x=\"{x0:.1}\" y=\"{y:.1}\" \
                     width=\"{w:.1}\" height=\"12\" fill=\"#adb5bd\"/></g>",
                    holds.len(),
                    seconds(first.from),
                    last.until.map_or("the end".into(), seconds),
                    html(&value_text(&first.token)),
                    html(&value_text(&last.token))
                ));
            }
        };
        for &hold in holds.iter() {
            let x0 = chart.x(hold.from);
            let x1 = chart.x(hold.until.unwrap_or(view.1));
            let narrow = x1 - x0 < 2.0;
            group = match group.take() {
                // A narrow hold joins a group of narrow ones it touches; a wide one stands alone.
                Some((g0, g1, mut members))
                    if narrow && x0 <= g1 + 1.0 && (members.len() > 1 || g1 - g0 < 2.0) =>
                {
                    members.push(hold);
                    Some((g0, g1.max(x1), members))
                }
                Some(done) => {
                    emit(done, &mut chart);
                    Some((x0, x1, vec![hold]))
                }
                None => Some((x0, x1, vec![hold])),
            };
        }
        if let Some(done) = group {
            emit(done, &mut chart);
        }
    }
    // Every overlapping stretch as a red strip under its bars, touching strips merged.
    let mut strips: Vec<(usize, f64, f64)> = drawing
        .conflicts
        .iter()
        .filter(|c| c.2 >= view.0 && c.1 <= view.1)
        .map(|&(lane, from, until)| (lane, chart.x(from), chart.x(until)))
        .collect();
    strips.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut merged: Vec<(usize, f64, f64)> = Vec::new();
    for strip in strips {
        match merged.last_mut() {
            Some(last) if last.0 == strip.0 && strip.1 <= last.2 + 1.0 => {
                last.2 = last.2.max(strip.2)
            }
            _ => merged.push(strip),
        }
    }
    for (lane, x0, x1) in merged {
        let y = lane_top(lane, &chart) + 18.0;
        chart.push(&format!(
            "<rect class=\"overlap-strip\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" \
             height=\"3\" fill=\"{ANOMALY}\"><title>another process held the lock too\
             </title></rect>",
            (x1 - x0).max(2.0)
        ));
    }
    // Writes: one mark per class, lane and unit of x.
    let mut seen: HashSet<(usize, i64, &str)> = HashSet::new();
    for write in &drawing.writes {
        if write.at < view.0 || write.at > view.1 || (dense && write.class != "rejected") {
            continue;
        }
        let x = chart.x(write.at);
        if !seen.insert((write.lane, x as i64, write.class)) {
            continue;
        }
        let y = lane_top(write.lane, &chart);
        let svg = match write.class {
            "rejected" | "expired" => format!(
                "<g class=\"write write-{}\"><title>{}</title><path d=\"M{:.1} {:.1}l6 6m0 -6l-6 \
                 6\" stroke=\"{}\" stroke-width=\"2\"/></g>",
                write.class,
                html(&write.title),
                x - 3.0,
                y + 9.0,
                if write.class == "rejected" {
                    ANOMALY
                } else {
                    "#868e96"
                }
            ),
            _ => format!(
                "<g class=\"write write-{}\"><title>{}</title><line x1=\"{x:.1}\" x2=\"{x:.1}\" \
                 y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"1.2\"/></g>",
                write.class,
                html(&write.title),
                y + 1.0,
                y + 6.0,
                if write.class == "info" {
                    INFO_COLOR
                } else {
                    "#212529"
                }
            ),
        };
        chart.push(&svg);
    }
    // Anomalies last, over everything, labelled (the first few in view).
    let mut labelled = 0;
    for overlap in &drawing.overlaps {
        if overlap.until < view.0 || overlap.from > view.1 {
            continue;
        }
        let (x0, x1) = (chart.x(overlap.from), chart.x(overlap.until));
        let w = (x1 - x0).max(4.0);
        let x0 = x0 - (w - (x1 - x0)) / 2.0;
        let ya = lane_top(overlap.lanes.0, &chart) + 3.0;
        let yb = lane_top(overlap.lanes.1, &chart) + 3.0;
        chart.push(&format!(
            "<g class=\"overlap\"><title>{}</title><rect x=\"{x0:.1}\" y=\"{ya:.1}\" \
             width=\"{w:.1}\" height=\"18\" fill=\"{ANOMALY}\" fill-opacity=\"0.2\" \
             stroke=\"{ANOMALY}\" stroke-width=\"2\"/><rect x=\"{x0:.1}\" y=\"{yb:.1}\" \
             width=\"{w:.1}\" height=\"18\" fill=\"{ANOMALY}\" fill-opacity=\"0.2\" \
             stroke=\"{ANOMALY}\" stroke-width=\"2\"/><line x1=\"{x0:.1}\" x2=\"{x0:.1}\" \
             y1=\"{:.1}\" y2=\"{yb:.1}\" stroke=\"{ANOMALY}\" stroke-width=\"1.5\" \
             stroke-dasharray=\"3 2\"/></g>",
            html(&overlap.label),
            ya + 18.0
        ));
        if labelled < max_labels
            && chart.free_label(x0 + w, ya + 1.0, &overlap.label, "anomaly-label")
        {
            labelled += 1;
        }
    }
    for mark in &drawing.fencing {
        if mark.at < view.0 || mark.at > view.1 {
            continue;
        }
        let x = chart.x(mark.at);
        let y = lane_top(mark.lane, &chart) + 2.0;
        chart.push(&format!(
            "<g class=\"fencing-anomaly\"><title>{}</title><path d=\"M{x:.1} {:.1}l-6 -9h12z\" \
             fill=\"{ANOMALY}\" stroke=\"#fff\"/></g>",
            html(&mark.label),
            y + 8.0
        ));
        if labelled < max_labels && chart.free_label(x + 4.0, y + 2.0, &mark.label, "anomaly-label")
        {
            labelled += 1;
        }
    }
    chart.finish()
}

// ---------------------------------------------------------------------------------------
// Election

struct Observation {
    process: u64,
    decision: bool,
    at: u64,
}

fn election(result: &Value, input: &Input) -> Result<String, String> {
    let history = input.history;
    let dones = done_ops(history)?;
    let (t0, t1) = span(history);
    let mut epochs: BTreeMap<i64, BTreeMap<String, Vec<Observation>>> = BTreeMap::new();
    for d in &dones {
        let f = d.invoke.f.as_str();
        if !matches!(
            f,
            faultline_core::election::CAMPAIGN | faultline_core::election::LEADER
        ) || d.kind() != Some(OpType::Ok)
        {
            continue;
        }
        let value = &d.completion.expect("ok has a completion").value;
        let (Some(epoch), Some(leader)) = (
            value.get("epoch").and_then(Value::as_i64),
            value.get("leader"),
        ) else {
            continue;
        };
        let leader = value_text(leader);
        epochs
            .entry(epoch)
            .or_default()
            .entry(leader)
            .or_default()
            .push(Observation {
                process: d.process(),
                decision: f == faultline_core::election::CAMPAIGN,
                at: d.at(),
            });
    }
    if epochs.is_empty() {
        return Err("no leader was observed".into());
    }
    // The checker's broken properties per epoch.
    let mut broken: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for anomaly in result
        .get("anomalies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(kind), Some(epoch)) = (
            anomaly.get("kind").and_then(Value::as_str),
            anomaly.get("epoch").and_then(Value::as_i64),
        ) {
            broken.entry(epoch).or_default().insert(kind.to_string());
        }
    }
    for (epoch, leaders) in &epochs {
        if leaders.len() > 1 {
            broken
                .entry(*epoch)
                .or_default()
                .insert("agreement".to_string());
        }
    }
    let termination = result.get("termination");
    let healed = termination
        .and_then(|t| t.get("healed_ns"))
        .and_then(Value::as_u64)
        .filter(|_| {
            termination
                .and_then(|t| t.get("nemesis_events"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
                > 0
        });
    let first_leader = termination.and_then(|t| t.get("first_leader"));
    let first_epoch = first_leader
        .and_then(|o| o.get("epoch"))
        .and_then(Value::as_i64);
    // The epochs drawn: every broken one and the first after the heal, then an even sample;
    // each has a row per leader observed in it, at most MAX_EPOCH_ROWS rows in all.
    let all: Vec<i64> = epochs.keys().copied().collect();
    let mut chosen: BTreeSet<i64> = BTreeSet::new();
    let mut used = 0;
    for &epoch in all
        .iter()
        .filter(|e| broken.contains_key(e) || Some(**e) == first_epoch)
    {
        if used >= MAX_EPOCH_ROWS {
            break;
        }
        chosen.insert(epoch);
        used += epochs[&epoch].len();
    }
    let room = MAX_EPOCH_ROWS.saturating_sub(used);
    let others: Vec<i64> = all
        .iter()
        .copied()
        .filter(|e| !chosen.contains(e))
        .collect();
    if others.len() <= room {
        chosen.extend(others);
    } else {
        chosen.extend((0..room).map(|i| others[i * others.len() / room]));
    }
    let rows: Vec<(i64, &String)> = chosen
        .iter()
        .flat_map(|e| epochs[e].keys().map(move |l| (*e, l)))
        .take(MAX_EPOCH_ROWS)
        .collect();
    let leaders: BTreeSet<&String> = epochs.values().flat_map(|l| l.keys()).collect();
    let leader_color: HashMap<&String, &str> = leaders
        .iter()
        .enumerate()
        .map(|(i, l)| (*l, PALETTE[i % PALETTE.len()]))
        .collect();

    let two_leaders: Vec<i64> = epochs
        .iter()
        .filter(|(_, l)| l.len() > 1)
        .map(|(e, _)| *e)
        .collect();
    let mut out = String::from("<div class=\"coord-drawing\" data-drawing=\"election\">");
    let _ = write!(
        out,
        "<h4>Leaders by epoch</h4><p>Epochs oldest at the top, a row for each leader \
         observed in one: its bar runs from the first observation of that leader in that epoch \
         to the last (a diamond: the campaign that won it; a dot: a leader query). {} epochs \
         and {} leaders observed{}.",
        epochs.len(),
        leaders.len(),
        if chosen.len() < epochs.len() {
            format!(
                "; {} epochs drawn in {} rows: every epoch with a broken property, the first \
                 after the last heal, and an even sample of the rest",
                chosen.len(),
                rows.len()
            )
        } else {
            String::new()
        }
    );
    if !two_leaders.is_empty() {
        let listed: Vec<String> = two_leaders.iter().take(10).map(i64::to_string).collect();
        let _ = write!(
            out,
            " <b class=\"bad\">{} epoch(s) had two leaders (agreement broken): {}{}</b>, the \
             rows shaded red.",
            two_leaders.len(),
            listed.join(", "),
            if two_leaders.len() > 10 { ", ..." } else { "" }
        );
    }
    let after = termination
        .and_then(|t| t.get("leader_after_ms"))
        .and_then(Value::as_f64);
    match (healed, first_leader, after) {
        (Some(_), Some(first), Some(ms)) => {
            let _ = write!(
                out,
                " The dashed line is the last heal; the star, the first leader seen after it \
                 ({}, epoch {}, {ms:.0} ms later).",
                html(&first.get("leader").map(value_text).unwrap_or_default()),
                first.get("epoch").map(value_text).unwrap_or_default()
            );
        }
        (Some(_), _, _) => out.push_str(" The dashed line is the last heal."),
        _ => {}
    }
    out.push_str("</p>");
    out.push_str(&legend(&[
        ("background:#1f77b4", "a leader (colour: who)"),
        (
            "background:rgba(214,39,40,.2);border:1px solid #d62728",
            "two leaders in one epoch",
        ),
        ("border-left:2px dashed #212529;width:2px", "last heal"),
        (
            "background:#f59f00;border-radius:6px",
            "first leader after it",
        ),
    ]));

    let mut chart = Chart::new(
        "election-epochs",
        "leaders observed, by epoch",
        (t0, t1),
        ROW_HEIGHT * rows.len() as f64 + 4.0,
        input.faults,
    );
    let row_y: HashMap<(i64, &String), f64> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| (*row, chart.top + 4.0 + ROW_HEIGHT * i as f64))
        .collect();
    let mut labelled = 0;
    for epoch in &chosen {
        let leaders = &epochs[epoch];
        let drawn: Vec<&String> = leaders
            .keys()
            .filter(|l| row_y.contains_key(&(*epoch, *l)))
            .collect();
        let Some(&first) = drawn.first() else {
            continue;
        };
        let y = row_y[&(*epoch, first)];
        let bad = broken.contains_key(epoch);
        if let Some(kinds) = broken.get(epoch) {
            let names: Vec<&str> = leaders.keys().map(String::as_str).collect();
            let title = format!(
                "epoch {epoch}: {} ({})",
                kinds.iter().cloned().collect::<Vec<_>>().join(", "),
                names.join(", ")
            );
            let class = if leaders.len() > 1 {
                "two-leaders"
            } else {
                "broken-epoch"
            };
            chart.push(&format!(
                "<g class=\"{class}\"><title>{}</title><rect x=\"{LEFT}\" y=\"{y:.1}\" \
                 width=\"{:.1}\" height=\"{:.1}\" fill=\"{ANOMALY}\" fill-opacity=\"0.15\" \
                 stroke=\"{ANOMALY}\"/></g>",
                html(&title),
                chart.right() - LEFT,
                ROW_HEIGHT * drawn.len() as f64
            ));
        }
        for (i, leader) in drawn.iter().enumerate() {
            let y = row_y[&(*epoch, *leader)];
            chart.lane_label(
                y + ROW_HEIGHT / 2.0,
                &if i == 0 {
                    format!("epoch {epoch}")
                } else {
                    String::new()
                },
                if bad { "bad" } else { "" },
            );
            let observations = &leaders[*leader];
            let color = leader_color[*leader];
            let from = observations.iter().map(|o| o.at).min().unwrap_or(0);
            let until = observations.iter().map(|o| o.at).max().unwrap_or(0);
            let (x0, x1) = (chart.x(from), chart.x(until));
            let w = (x1 - x0).max(3.0);
            let observers: BTreeSet<u64> = observations.iter().map(|o| o.process).collect();
            chart.push(&format!(
                "<g class=\"leader\"><title>epoch {epoch}: {} leads, seen {} times by {} \
                 process(es) from {} to {}</title><rect x=\"{x0:.1}\" y=\"{:.1}\" \
                 width=\"{w:.1}\" height=\"8\" fill=\"{color}\" fill-opacity=\"0.55\"/>",
                html(leader),
                observations.len(),
                observers.len(),
                seconds(from),
                seconds(until),
                y + 5.0
            ));
            let mut seen: HashSet<(i64, bool)> = HashSet::new();
            for o in observations {
                let x = chart.x(o.at);
                if !seen.insert((x as i64, o.decision)) {
                    continue;
                }
                if o.decision {
                    chart.push(&format!(
                        "<path class=\"decision\" d=\"M{x:.1} {:.1}l4 4l-4 4l-4 -4z\" \
                         fill=\"{color}\" stroke=\"#212529\" stroke-width=\"0.6\"/>",
                        y + 5.0
                    ));
                } else {
                    chart.push(&format!(
                        "<circle class=\"query\" cx=\"{x:.1}\" cy=\"{:.1}\" r=\"2\" \
                         fill=\"{color}\"/>",
                        y + 9.0
                    ));
                }
            }
            chart.push("</g>");
            chart.label(
                x0 + w,
                y + 13.0,
                leader,
                if bad { "anomaly-label" } else { "leader-label" },
            );
        }
        if leaders.len() > 1 && labelled < MAX_LABELS {
            labelled += 1;
            let names: Vec<&str> = leaders.keys().map(String::as_str).collect();
            let x = chart.right() - 4.0;
            chart.push(&format!(
                "<text x=\"{x:.1}\" y=\"{:.1}\" class=\"anomaly-label\" text-anchor=\"end\">\
                 {} leaders in epoch {epoch}: {}</text>",
                y + 13.0,
                leaders.len(),
                html(&truncate(&names.join(", "), 50))
            ));
        }
    }
    if let Some(healed) = healed.filter(|&h| h >= t0 && h <= t1) {
        let x = chart.x(healed);
        let (top, bottom) = (chart.top, chart.bottom());
        chart.push(&format!(
            "<g class=\"heal\"><title>the last heal, at {}</title><line x1=\"{x:.1}\" \
             x2=\"{x:.1}\" y1=\"{top:.1}\" y2=\"{bottom:.1}\" stroke=\"#212529\" \
             stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/></g>",
            seconds(healed)
        ));
        chart.label(x, top - 3.0, "last heal", "heal-label");
        let valid = termination.and_then(|t| t.get("valid"));
        if valid == Some(&Value::Bool(false)) {
            let bound_ms = termination
                .and_then(|t| t.get("bound_ms"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let end = (healed + bound_ms * 1_000_000).min(t1);
            let x1 = chart.x(end);
            chart.push(&format!(
                "<g class=\"no-termination\"><title>no leader within {bound_ms} ms of the last \
                 heal</title><rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{:.1}\" \
                 height=\"{:.1}\" fill=\"{ANOMALY}\" fill-opacity=\"0.12\"/></g>",
                (x1 - x).max(2.0),
                bottom - top
            ));
            chart.label(
                x,
                bottom - 4.0,
                &format!("no leader within {bound_ms} ms"),
                "anomaly-label",
            );
        }
    }
    if let Some(first) = first_leader {
        let at = first.get("complete_ns").and_then(Value::as_u64);
        let epoch = first.get("epoch").and_then(Value::as_i64);
        let leader = first.get("leader").map(value_text).unwrap_or_default();
        if let (Some(at), Some(y)) = (at, epoch.and_then(|e| row_y.get(&(e, &leader)))) {
            let x = chart.x(at);
            chart.push(&format!(
                "<g class=\"first-leader\"><title>the first leader seen after the last heal: \
                 {} in epoch {}, at {}</title><path d=\"{}\" fill=\"#f59f00\" stroke=\"#212529\" \
                 stroke-width=\"0.8\"/></g>",
                html(&leader),
                epoch.unwrap_or(0),
                seconds(at),
                star(x, y + ROW_HEIGHT / 2.0, 7.0)
            ));
        }
    }
    out.push_str(&chart.finish());
    out.push_str("</div>");
    Ok(out)
}

/// A five-pointed star's path centred on `(x, y)`.
fn star(x: f64, y: f64, r: f64) -> String {
    let mut d = String::new();
    for i in 0..10 {
        let radius = if i % 2 == 0 { r } else { r * 0.45 };
        let angle = std::f64::consts::PI * (i as f64 / 5.0 - 0.5);
        let _ = write!(
            d,
            "{}{:.1} {:.1}",
            if i == 0 { "M" } else { "L" },
            x + radius * angle.cos(),
            y + radius * angle.sin()
        );
    }
    d.push('Z');
    d
}

// ---------------------------------------------------------------------------------------
// Counts over time (broadcast, queue)

/// A chart with a y axis of counts from 0 to `y_max`.
struct CountChart {
    chart: Chart,
    y_max: f64,
}

impl CountChart {
    fn new(class: &str, title: &str, view: (u64, u64), y_max: f64, input: &Input) -> CountChart {
        let y_max = crate::drawing::nice_step(y_max.max(1.0) / 5.0) * 5.0 * 1.15;
        let mut chart = Chart::new(class, title, view, 220.0, input.faults);
        let step = crate::drawing::nice_step(y_max / 5.0);
        let mut v = 0.0;
        while v <= y_max {
            let y = chart.bottom() - v / y_max * chart.plot_height;
            chart.push(&format!(
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{v}</text>",
                chart.right(),
                LEFT - 6.0,
                y + 4.0
            ));
            v += step;
        }
        CountChart { chart, y_max }
    }

    fn y(&self, v: f64) -> f64 {
        self.chart.bottom() - v.min(self.y_max) / self.y_max * self.chart.plot_height
    }

    /// A step line through `(time, count)` points sorted by time, at most two segments per
    /// unit of x.
    fn steps(&mut self, points: &[(u64, f64)], color: &str, class: &str, title: &str) {
        let (mut cx, mut cy) = (LEFT, self.y(0.0));
        let mut path = format!("M{cx:.1} {cy:.1}");
        let mut pending = cy;
        for &(t, v) in points {
            let x = self.chart.x(t);
            if x - cx >= 1.0 {
                if (pending - cy).abs() >= 0.1 {
                    let _ = write!(path, "L{cx:.1} {pending:.1}");
                    cy = pending;
                }
                let _ = write!(path, "L{x:.1} {cy:.1}");
                cx = x;
            }
            pending = self.y(v);
        }
        if (pending - cy).abs() >= 0.1 {
            let _ = write!(path, "L{cx:.1} {pending:.1}");
            cy = pending;
        }
        let _ = write!(path, "L{:.1} {cy:.1}", self.chart.right());
        self.chart.push(&format!(
            "<g class=\"{class}\"><title>{}</title><path d=\"{path}\" fill=\"none\" \
             stroke=\"{color}\" stroke-width=\"2\"/></g>",
            html(title)
        ));
    }
}

/// Each history op by its index.
fn by_index(history: &History) -> HashMap<u64, &Op> {
    history.ops.iter().map(|op| (op.index, op)).collect()
}

// ---------------------------------------------------------------------------------------
// Broadcast

fn broadcast(result: &Value, input: &Input) -> Result<String, String> {
    let history = input.history;
    let dones = done_ops(history)?;
    let view = span(history);
    let logs: Vec<&Value> = result
        .get("logs")
        .and_then(Value::as_array)
        .map(|l| l.iter().collect())
        .unwrap_or_default();
    let keys: Vec<Option<Value>> = if logs.is_empty() {
        vec![None]
    } else {
        logs.iter().map(|l| l.get("key").cloned()).collect()
    };
    let ops = by_index(history);
    let mut out = String::from("<div class=\"coord-drawing\" data-drawing=\"broadcast\">");
    out.push_str(
        "<h4>The log as readers saw it</h4><p>Each dot is a read: when it completed and how \
         many messages it returned (larger dots: the final reads after the last heal). The \
         line counts the appends acknowledged so far: a correct log never shows less than \
         that to a read that began after them, except a reader that lags (a stale read, \
         allowed). Reads that disagree on the order are ringed in red, with a dashed line at \
         the position where they diverge; acknowledged appends missing from the final log are \
         red marks on the time axis.</p>",
    );
    out.push_str(&legend(&[
        ("background:#1f77b4;border-radius:6px", "read"),
        (
            "background:#d62728;border-radius:6px",
            "read not a prefix of the longest",
        ),
        ("background:#2ca02c", "appends acknowledged"),
        (
            "border:2px solid #d62728;border-radius:6px",
            "read in an anomaly",
        ),
        ("background:#d62728;width:3px", "lost or misordered append"),
    ]));
    for (n, key) in keys.iter().enumerate().take(4) {
        let on_key = |op: &Op| key.is_none() || op.key.as_ref() == key.as_ref();
        let mut acked: Vec<u64> = dones
            .iter()
            .filter(|d| d.invoke.f == "append" && d.kind() == Some(OpType::Ok) && on_key(d.invoke))
            .map(Done::at)
            .collect();
        acked.sort_unstable();
        // (time, length, final, completion index)
        let reads: Vec<(u64, usize, bool, u64)> = dones
            .iter()
            .filter(|d| d.invoke.f == "read" && d.kind() == Some(OpType::Ok) && on_key(d.invoke))
            .filter_map(|d| {
                let c = d.completion?;
                Some((
                    d.at(),
                    c.value.as_array()?.len(),
                    d.invoke.value.as_str() == Some("final"),
                    c.index,
                ))
            })
            .collect();
        let y_max = reads
            .iter()
            .map(|r| r.1)
            .max()
            .unwrap_or(0)
            .max(acked.len()) as f64;
        let title = match key {
            Some(k) if keys.len() > 1 => format!("log {}: read lengths", value_text(k)),
            _ => "read lengths and acknowledged appends".to_string(),
        };
        let mut chart = CountChart::new("broadcast-reads", &title, view, y_max, input);
        let steps: Vec<(u64, f64)> = acked
            .iter()
            .enumerate()
            .map(|(i, &t)| (t, (i + 1) as f64))
            .collect();
        chart.steps(&steps, "#2ca02c", "acked", "appends acknowledged so far");
        let anomalies: Vec<&Value> = logs
            .get(n)
            .and_then(|l| l.get("anomalies"))
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let anomalous_reads: HashSet<u64> = anomalies
            .iter()
            .flat_map(|a| a.get("ops").and_then(Value::as_array).into_iter().flatten())
            .filter_map(Value::as_u64)
            .collect();
        // Reads that are not a prefix of the longest read: every one, not only the checker's
        // first few (the comparison stops at the first difference, and is skipped past
        // MAX_COMPARED_IDS ids in all).
        let values: HashMap<u64, &Vec<Value>> = dones
            .iter()
            .filter_map(|d| d.completion)
            .filter_map(|c| Some((c.index, c.value.as_array()?)))
            .collect();
        let longest = reads
            .iter()
            .max_by_key(|r| (r.1, std::cmp::Reverse(r.3)))
            .and_then(|r| values.get(&r.3));
        let total_ids: usize = reads.iter().map(|r| r.1).sum();
        let divergent: HashSet<u64> = match longest {
            Some(longest) if total_ids <= MAX_COMPARED_IDS => reads
                .iter()
                .filter(|r| {
                    values
                        .get(&r.3)
                        .is_some_and(|v| v.iter().zip(longest.iter()).any(|(a, b)| a != b))
                })
                .map(|r| r.3)
                .collect(),
            _ => HashSet::new(),
        };
        let mut kept: Vec<usize> = Vec::new();
        for wanted in [false, true] {
            let series: Vec<usize> = (0..reads.len())
                .filter(|&i| divergent.contains(&reads[i].3) == wanted)
                .collect();
            let points: Vec<(f64, f64)> = series
                .iter()
                .map(|&i| (reads[i].0 as f64, reads[i].1 as f64))
                .collect();
            kept.extend(
                downsample(&points, MAX_READ_POINTS)
                    .into_iter()
                    .map(|k| series[k]),
            );
        }
        // Every read of an anomaly and every final read is drawn whatever the sample.
        for (i, r) in reads.iter().enumerate() {
            if r.2 || anomalous_reads.contains(&r.3) {
                kept.push(i);
            }
        }
        kept.sort_unstable();
        kept.dedup();
        for i in kept {
            let (t, len, is_final, index) = reads[i];
            let (x, y) = (chart.chart.x(t), chart.y(len as f64));
            let bad = divergent.contains(&index);
            chart.chart.push(&format!(
                "<circle class=\"read{}{}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{}\" fill=\"{}\" \
                 fill-opacity=\"0.7\"><title>read at index {index}, {} s: {len} messages{}\
                 </title></circle>",
                if is_final { " final" } else { "" },
                if bad { " divergent" } else { "" },
                if is_final { 4.5 } else { 2.5 },
                if bad { ANOMALY } else { "#1f77b4" },
                t as f64 / 1e9,
                if bad {
                    ", not a prefix of the longest read"
                } else {
                    ""
                }
            ));
        }
        if !divergent.is_empty() {
            let _ = write!(
                out,
                "<p class=\"bad\">{} of {} reads (red dots) are not a prefix of the longest \
                 read: they saw the messages in another order.</p>",
                divergent.len(),
                reads.len()
            );
        }
        let read_len: HashMap<u64, (u64, usize)> =
            reads.iter().map(|r| (r.3, (r.0, r.1))).collect();
        let mut labelled = 0;
        let mut axis_marks: HashSet<i64> = HashSet::new();
        for anomaly in &anomalies {
            let kind = anomaly.get("kind").and_then(Value::as_str).unwrap_or("?");
            let detail = anomaly.get("detail").and_then(Value::as_str).unwrap_or("");
            let indexes: Vec<u64> = anomaly
                .get("ops")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect();
            let mut label_at: Option<(f64, f64)> = None;
            for &index in &indexes {
                if let Some(&(t, len)) = read_len.get(&index) {
                    let (x, y) = (chart.chart.x(t), chart.y(len as f64));
                    chart.chart.push(&format!(
                        "<circle class=\"anomalous-read {}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"7\" \
                         fill=\"none\" stroke=\"{ANOMALY}\" stroke-width=\"2\"><title>{kind}: {}\
                         </title></circle>",
                        html(kind),
                        html(detail)
                    ));
                    label_at.get_or_insert((x, y));
                } else if let Some(t) = ops.get(&index).and_then(|op| op.time) {
                    let x = chart.chart.x(t);
                    let bottom = chart.chart.bottom();
                    if axis_marks.insert(x as i64) {
                        chart.chart.push(&format!(
                            "<g class=\"anomalous-append {}\"><title>{kind}: {}</title><line \
                             x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{bottom:.1}\" \
                             stroke=\"{ANOMALY}\" stroke-width=\"3\"/></g>",
                            html(kind),
                            html(detail),
                            bottom - 12.0
                        ));
                    }
                    label_at.get_or_insert((x, bottom - 14.0));
                }
            }
            // Where two reads diverge: the length of their common prefix.
            if kind == "divergent-reads" {
                let values: Vec<&Vec<Value>> = indexes
                    .iter()
                    .filter_map(|i| ops.get(i).and_then(|op| op.value.as_array()))
                    .collect();
                let times: Vec<u64> = indexes
                    .iter()
                    .filter_map(|i| ops.get(i).and_then(|op| op.time))
                    .collect();
                if let ([a, b, ..], [ta, tb, ..]) = (values.as_slice(), times.as_slice()) {
                    let common = a.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
                    let (x0, x1) = (
                        chart.chart.x(*ta.min(tb)) - 8.0,
                        chart.chart.x(*ta.max(tb)) + 8.0,
                    );
                    let y = chart.y(common as f64);
                    chart.chart.push(&format!(
                        "<g class=\"divergence\"><title>the reads agree on {common} messages, \
                         then differ</title><line x1=\"{x0:.1}\" x2=\"{x1:.1}\" y1=\"{y:.1}\" \
                         y2=\"{y:.1}\" stroke=\"{ANOMALY}\" stroke-width=\"1.5\" \
                         stroke-dasharray=\"4 3\"/></g>"
                    ));
                    if labelled < MAX_LABELS
                        && chart.chart.free_label(
                            x1,
                            y + 12.0,
                            &format!("reads diverge after message {common}"),
                            "anomaly-label",
                        )
                    {
                        labelled += 1;
                    }
                    continue;
                }
            }
            if let (Some((x, y)), true) = (label_at, labelled < MAX_LABELS) {
                if chart
                    .chart
                    .free_label(x + 6.0, y - 6.0, &truncate(detail, 80), "anomaly-label")
                {
                    labelled += 1;
                }
            }
        }
        out.push_str(&chart.chart.finish());
        if let Some(counts) = logs
            .get(n)
            .and_then(|l| l.get("counts"))
            .and_then(Value::as_object)
            .filter(|c| !c.is_empty())
        {
            let listed: Vec<String> = counts
                .iter()
                .map(|(k, v)| format!("{} {k}", v.as_u64().unwrap_or(0)))
                .collect();
            let _ = write!(
                out,
                "<p class=\"bad\">Found: {}{}.</p>",
                html(&listed.join(", ")),
                if anomalies.len() < counts.values().filter_map(Value::as_u64).sum::<u64>() as usize
                {
                    format!(" (the first {} are marked)", anomalies.len())
                } else {
                    String::new()
                }
            );
        }
    }
    out.push_str("</div>");
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Queue

fn queue(result: &Value, input: &Input) -> Result<String, String> {
    use faultline_core::queue::{CLAIM, COMPLETE, DRAIN, ENQUEUE};
    let history = input.history;
    let dones = done_ops(history)?;
    let view = span(history);
    let series = |f: &str, keep: &dyn Fn(&Done) -> bool| -> Vec<(u64, f64)> {
        let mut times: Vec<u64> = dones
            .iter()
            .filter(|d| d.invoke.f == f && d.kind() == Some(OpType::Ok) && keep(d))
            .map(Done::at)
            .collect();
        times.sort_unstable();
        times
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, (i + 1) as f64))
            .collect()
    };
    let enqueued = series(ENQUEUE, &|_: &Done| true);
    let delivered = series(CLAIM, &|d: &Done| {
        d.completion.is_some_and(|c| !c.value.is_null())
    });
    let completed = series(COMPLETE, &|_: &Done| true);
    let y_max = enqueued.len().max(delivered.len()).max(completed.len()) as f64;
    let counts = result.get("counts").and_then(Value::as_object);
    let violation = |kind: &str| counts.is_some_and(|c| c.contains_key(kind));
    let mut out = String::from("<div class=\"coord-drawing\" data-drawing=\"queue\">");
    let _ = write!(
        out,
        "<h4>Jobs over time</h4><p>How many jobs were enqueued (acknowledged), delivered (a \
         claim returned a job) and completed so far. In a healthy run the three lines end \
         together after the drain (the dashed line); a delivered line above the enqueued one \
         means jobs handed out twice, a completed line that stays below means jobs that never \
         finished. Each anomaly's operations are marked on their line: red for what the \
         {} promise forbids, orange for what it allows.</p>",
        html(
            result
                .get("delivery")
                .and_then(Value::as_str)
                .unwrap_or("target's")
        )
    );
    out.push_str(&legend(&[
        ("background:#1f77b4", "enqueued"),
        ("background:#9467bd", "delivered"),
        ("background:#2ca02c", "completed"),
        (
            "border:2px solid #d62728;border-radius:6px",
            "a violation's operation",
        ),
        (
            "border:2px solid #f08c00;border-radius:6px",
            "allowed by the promise",
        ),
        (
            "background:#d62728;width:2px",
            "a job delivered or completed again",
        ),
    ]));
    let mut chart = CountChart::new("queue-jobs", "jobs over time", view, y_max, input);
    chart.steps(&enqueued, "#1f77b4", "enqueued", "jobs enqueued so far");
    chart.steps(&delivered, "#9467bd", "delivered", "deliveries so far");
    chart.steps(&completed, "#2ca02c", "completed", "jobs completed so far");
    if let Some(drain) = dones
        .iter()
        .filter(|d| d.invoke.f == CLAIM && d.invoke.value.as_str() == Some(DRAIN))
        .filter_map(|d| d.invoke.time)
        .min()
    {
        let x = chart.chart.x(drain);
        let (top, bottom) = (chart.chart.top, chart.chart.bottom());
        chart.chart.push(&format!(
            "<g class=\"drain\"><title>the drain begins at {}</title><line x1=\"{x:.1}\" \
             x2=\"{x:.1}\" y1=\"{top:.1}\" y2=\"{bottom:.1}\" stroke=\"#212529\" \
             stroke-dasharray=\"5 3\"/></g>",
            seconds(drain)
        ));
        chart.chart.label(x, top + 10.0, "drain", "heal-label");
    }
    // Every delivery of a job already delivered, and every completion of a job already
    // completed (the checker's evidence keeps the first 20 anomalies): a tick on its line.
    let mut repeats = 0;
    for (f, line, kind) in [
        (CLAIM, &delivered, "duplicate-delivery"),
        (COMPLETE, &completed, "completed-twice"),
    ] {
        let mut times: Vec<(u64, String)> = dones
            .iter()
            .filter(|d| d.invoke.f == f && d.kind() == Some(OpType::Ok))
            .filter_map(|d| {
                let job = &d.completion?.value;
                (!job.is_null()).then(|| (d.at(), job.to_string()))
            })
            .collect();
        times.sort();
        let mut seen: HashSet<String> = HashSet::new();
        let mut drawn: HashSet<i64> = HashSet::new();
        let color = if violation(kind) || kind == "completed-twice" {
            ANOMALY
        } else {
            INFO_COLOR
        };
        for (t, job) in times {
            if seen.insert(job.clone()) {
                continue;
            }
            repeats += 1;
            let x = chart.chart.x(t);
            if !drawn.insert(x as i64) {
                continue;
            }
            let y = chart.y(line[line
                .partition_point(|p| p.0 <= t)
                .saturating_sub(1)
                .min(line.len() - 1)]
            .1);
            chart.chart.push(&format!(
                "<path class=\"repeat {kind}\" d=\"M{x:.1} {:.1}v8\" stroke=\"{color}\" \
                 stroke-width=\"2\"><title>{kind}: job {} again at {}</title></path>",
                y + 3.0,
                html(&truncate(&job, 30)),
                seconds(t)
            ));
        }
    }
    if repeats > 0 {
        let _ = write!(
            out,
            "<p>{repeats} deliveries or completions repeated a job: a tick under the line at \
             each.</p>"
        );
    }
    // The value of each series at a time (the count reached by then).
    let at = |points: &[(u64, f64)], t: u64| -> f64 {
        let i = points.partition_point(|p| p.0 <= t);
        if i == 0 {
            0.0
        } else {
            points[i - 1].1
        }
    };
    let ops = by_index(history);
    let mut labelled = 0;
    for anomaly in result
        .get("anomalies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = anomaly.get("kind").and_then(Value::as_str).unwrap_or("?");
        let job = anomaly.get("job").map(value_text).unwrap_or_default();
        let detail = anomaly.get("detail").and_then(Value::as_str).unwrap_or("");
        let color = if violation(kind) { ANOMALY } else { INFO_COLOR };
        let class = if violation(kind) {
            "violation"
        } else {
            "allowed"
        };
        let mut first: Option<(f64, f64)> = None;
        for index in anomaly
            .get("ops")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
        {
            let Some(op) = ops.get(&index) else { continue };
            let Some(t) = op.time else { continue };
            let line: &[(u64, f64)] = match op.f.as_str() {
                ENQUEUE => &enqueued,
                CLAIM => &delivered,
                _ => &completed,
            };
            let (x, y) = (chart.chart.x(t), chart.y(at(line, t)));
            chart.chart.push(&format!(
                "<circle class=\"queue-anomaly {class} {}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"6\" \
                 fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"><title>{kind} job {}: {} \
                 ({} at {})</title></circle>",
                html(kind),
                html(&job),
                html(detail),
                html(&op.f),
                seconds(t)
            ));
            first.get_or_insert((x, y));
        }
        if let (Some((x, y)), true) = (first, labelled < MAX_LABELS && violation(kind)) {
            labelled += 1;
            let text = format!("{kind} job {job}");
            // Above the mark, or higher when another label is there.
            let _ = (0..4).any(|up| {
                chart
                    .chart
                    .free_label(x + 6.0, y - 8.0 - 13.0 * up as f64, &text, "anomaly-label")
            });
        }
    }
    out.push_str(&chart.chart.finish());
    let mut found: Vec<String> = Vec::new();
    for (name, how) in [("counts", "forbidden"), ("allowed", "allowed")] {
        for (kind, n) in result
            .get(name)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            found.push(format!("{} {kind} ({how})", n.as_u64().unwrap_or(0)));
        }
    }
    if !found.is_empty() {
        let _ = write!(
            out,
            "<p class=\"{}\">Found: {}; the checker keeps the first 20 as evidence, marked \
             above.</p>",
            if counts.is_some_and(|c| !c.is_empty()) {
                "bad"
            } else {
                "note"
            },
            html(&found.join(", "))
        );
    }
    out.push_str("</div>");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::NemesisEvent;
    use crate::faults::fault_intervals;
    use serde_json::json;

    const MS: u64 = 1_000_000;

    /// Events with their position as index and the given times in ms.
    fn history(events: Vec<(Op, u64)>) -> History {
        History::new(
            events
                .into_iter()
                .enumerate()
                .map(|(i, (op, ms))| {
                    let mut op = op.with_time(ms * MS);
                    op.index = i as u64;
                    op
                })
                .collect(),
        )
    }

    fn nemesis(f: &str, value: Value) -> Op {
        Op {
            index: 0,
            time: None,
            process: Process::Nemesis,
            kind: OpType::Info,
            f: f.to_string(),
            key: None,
            value,
            error: None,
        }
    }

    fn input<'a>(history: &'a History, faults: &'a [FaultInterval]) -> Input<'a> {
        Input {
            history,
            faults,
            concurrency: Some(2),
        }
    }

    /// Two processes granted the lock at once (the memory target's double-grant), the
    /// second's lower-token write accepted after the first's higher one, one write
    /// rejected.
    fn double_grant() -> History {
        let lock = |op: Op| op.with_key(json!("lock"));
        history(vec![
            (lock(Op::invoke(0, "acquire", json!({"lease_ms": 1000}))), 0),
            (
                lock(Op::complete(
                    0,
                    OpType::Ok,
                    "acquire",
                    json!({"token": 1, "lease_ms": 1000}),
                )),
                10,
            ),
            (
                lock(Op::invoke(1, "acquire", json!({"lease_ms": 1000}))),
                20,
            ),
            (
                lock(Op::complete(
                    1,
                    OpType::Ok,
                    "acquire",
                    json!({"token": 2, "lease_ms": 1000}),
                )),
                30,
            ),
            (lock(Op::invoke(1, "write", json!({"id": 1}))), 40),
            (
                lock(Op::complete(1, OpType::Ok, "write", json!({"id": 1}))),
                45,
            ),
            (lock(Op::invoke(0, "write", json!({"id": 2}))), 50),
            (
                lock(Op::complete(0, OpType::Ok, "write", json!({"id": 2}))),
                55,
            ),
            (lock(Op::invoke(0, "write", json!({"id": 3}))), 60),
            (
                lock(Op::complete(0, OpType::Fail, "write", json!({"id": 3})))
                    .with_error(json!("stale-token")),
                65,
            ),
            (lock(Op::invoke(0, "release", json!(null))), 100),
            (
                lock(Op::complete(0, OpType::Ok, "release", json!(null))),
                110,
            ),
            (lock(Op::invoke(1, "release", json!(null))), 300),
            (
                lock(Op::complete(1, OpType::Ok, "release", json!(null))),
                310,
            ),
            (lock(Op::invoke(0, "read", json!(null))), 9_000),
            (
                lock(Op::complete(0, OpType::Ok, "read", json!([[2, 1], [1, 2]]))),
                9_010,
            ),
        ])
    }

    #[test]
    fn a_double_grant_is_drawn_as_two_holders_at_once_with_the_stale_write() {
        let history = double_grant();
        let result = serde_json::to_value(
            faultline_checker::lock::check(&history, &Default::default()).unwrap(),
        )
        .unwrap();
        let html = draw("lock", &result, &input(&history, &[])).unwrap();
        // One bar per hold, coloured by token, in its process's lane.
        // Two holds, in the whole run's chart and in the zoomed one.
        assert_eq!(html.matches("class=\"hold-bar\"").count(), 4, "{html}");
        assert!(html.contains("process 0 held token 1 from 0.010 s to 0.100 s"));
        assert!(html.contains("process 1 held token 2 from 0.030 s"));
        assert!(html.contains(">process 0<") && html.contains(">process 1<"));
        // The overlap over both lanes, labelled, in red.
        assert!(html.contains("<g class=\"overlap\">"), "{html}");
        // Under both holds, the stretch where the other held it too.
        assert!(html.contains("<rect class=\"overlap-strip\""));
        assert!(html.contains("2 holders: p0 (token 1) and p1 (token 2), 70 ms"));
        assert!(html.contains(&format!("stroke=\"{ANOMALY}\"")));
        // The rejected write, and the accepted lower token after a higher one.
        assert!(html.contains("write write-rejected"));
        assert!(html.contains("refused (stale-token)"));
        assert!(html.contains("<g class=\"fencing-anomaly\">"));
        assert!(html.contains("stale token 1 accepted after token 2"));
        // The anomaly is 70 ms in a 9 s run: a second chart zooms on it.
        assert_eq!(html.matches("<svg class=\"coord lock-holds\"").count(), 2);
        assert!(html.contains("zoomed on the first overlapping holders"));
        assert!(html.contains("1 pair(s) of holders believed they held it at once"));
    }

    #[test]
    fn a_correct_lock_run_has_bars_and_no_anomaly_marks() {
        let lock = |op: Op| op.with_key(json!("lock"));
        let history = history(vec![
            (lock(Op::invoke(0, "acquire", json!({"lease_ms": 100}))), 0),
            (
                lock(Op::complete(
                    0,
                    OpType::Ok,
                    "acquire",
                    json!({"token": 1, "lease_ms": 100}),
                )),
                5,
            ),
            (lock(Op::invoke(1, "acquire", json!({"lease_ms": 100}))), 6),
            (
                lock(Op::complete(1, OpType::Fail, "acquire", json!(null)))
                    .with_error(json!("held")),
                8,
            ),
            (lock(Op::invoke(0, "release", json!(null))), 50),
            (
                lock(Op::complete(0, OpType::Ok, "release", json!(null))),
                55,
            ),
        ]);
        let result = serde_json::to_value(
            faultline_checker::lock::check(&history, &Default::default()).unwrap(),
        )
        .unwrap();
        let html = draw("lock", &result, &input(&history, &[])).unwrap();
        assert!(html.contains("class=\"hold-bar\""));
        assert!(!html.contains("class=\"overlap\""));
        assert!(!html.contains("fencing-anomaly"));
        assert!(!html.contains("zoomed"));
    }

    #[test]
    fn thousands_of_short_holds_stay_bounded() {
        let mut events = Vec::new();
        for i in 0..20_000u64 {
            let p = i % 4;
            let t = i * 3;
            events.push((Op::invoke(p, "acquire", json!({"lease_ms": 1})), t));
            events.push((
                Op::complete(p, OpType::Ok, "acquire", json!({"token": i, "lease_ms": 1})),
                t + 1,
            ));
            events.push((Op::invoke(p, "release", json!(null)), t + 2));
            events.push((Op::complete(p, OpType::Ok, "release", json!(null)), t + 2));
        }
        let history = history(events);
        let html = draw("lock", &json!({"valid": true}), &input(&history, &[])).unwrap();
        let bars = html.matches("<rect class=\"hold-bar").count();
        // Four lanes, about a thousand units wide each.
        assert!(bars <= 4 * 1_000, "{bars}");
        assert!(html.contains("holds from"), "merged holds say how many");
        // 3,000 accepted writes and one rejected: only the rejected one is drawn.
        let mut events = Vec::new();
        for i in 0..3_000u64 {
            let d = if i == 1_500 {
                (Op::complete(0, OpType::Fail, "write", json!({"id": i})))
                    .with_error(json!("stale-token"))
            } else {
                Op::complete(0, OpType::Ok, "write", json!({"id": i}))
            };
            events.push((Op::invoke(0, "write", json!({"id": i})), i * 2));
            events.push((d, i * 2 + 1));
        }
        let writes = self::history(events);
        let html = draw("lock", &json!({"valid": true}), &input(&writes, &[])).unwrap();
        assert!(
            html.contains("3000 writes, only the rejected ones drawn"),
            "{html}"
        );
        assert_eq!(html.matches("class=\"write write-").count(), 1);
        assert!(html.contains("write write-rejected"));
    }

    #[test]
    fn two_leaders_in_an_epoch_are_highlighted_and_termination_marked() {
        let mut kill = nemesis("kill", json!("n1"));
        kill.index = 4;
        let mut start = nemesis("start", json!("n1"));
        start.index = 5;
        let campaign = |p: u64| Op::invoke(p, "campaign", json!(null)).with_key(json!("election"));
        let won = |p: u64, epoch: i64| {
            Op::complete(
                p,
                OpType::Ok,
                "campaign",
                json!({"epoch": epoch, "leader": format!("p{p}")}),
            )
            .with_key(json!("election"))
        };
        let query = |p: u64| Op::invoke(p, "leader", json!(null)).with_key(json!("election"));
        let saw = |p: u64, epoch: i64, leader: &str| {
            Op::complete(
                p,
                OpType::Ok,
                "leader",
                json!({"epoch": epoch, "leader": leader}),
            )
            .with_key(json!("election"))
        };
        let history = history(vec![
            (campaign(0), 0),
            (won(0, 1), 10),
            (campaign(1), 20),
            (won(1, 1), 30),
            (kill, 1_000),
            (start, 2_000),
            (query(2), 2_100),
            (saw(2, 2, "p0"), 2_150),
            (campaign(0), 2_200),
            (won(0, 2), 2_210),
        ]);
        let result = serde_json::to_value(
            faultline_checker::election::check(&history, &Default::default()).unwrap(),
        )
        .unwrap();
        let faults = fault_intervals(&[
            NemesisEvent {
                index: 4,
                time: 1_000 * MS,
                f: "kill".into(),
                value: json!("n1"),
            },
            NemesisEvent {
                index: 5,
                time: 2_000 * MS,
                f: "start".into(),
                value: json!("n1"),
            },
        ]);
        let html = draw("election", &result, &input(&history, &faults)).unwrap();
        assert!(html.contains("<g class=\"two-leaders\">"), "{html}");
        assert!(html.contains("2 leaders in epoch 1: p0, p1"));
        assert!(html.contains("1 epoch(s) had two leaders (agreement broken): 1"));
        assert!(html.contains("lane-label bad"));
        // A row per leader of epoch 1 (p0 and p1), one for epoch 2.
        assert_eq!(html.matches("<g class=\"leader\">").count(), 3);
        // Epoch 2 has one leader: no highlight on it.
        assert_eq!(html.matches("class=\"two-leaders\"").count(), 1);
        // The kill is shaded; the heal line and the first leader after it are marked.
        assert!(html.contains("kill n1"));
        assert!(html.contains("<g class=\"heal\">"));
        assert!(html.contains("<g class=\"first-leader\">"));
        assert!(html.contains("the first leader seen after the last heal: p0 in epoch 2"));
    }

    #[test]
    fn no_leader_after_the_heal_shades_the_bound() {
        let history = history(vec![
            (Op::invoke(0, "campaign", json!(null)), 0),
            (
                Op::complete(
                    0,
                    OpType::Ok,
                    "campaign",
                    json!({"epoch": 1, "leader": "p0"}),
                ),
                10,
            ),
            (nemesis("kill", json!("n1")), 1_000),
            (nemesis("start", json!("n1")), 2_000),
            (Op::invoke(1, "leader", json!(null)), 19_000),
            (Op::complete(1, OpType::Ok, "leader", json!(null)), 19_010),
        ]);
        let result = serde_json::to_value(
            faultline_checker::election::check(&history, &Default::default()).unwrap(),
        )
        .unwrap();
        assert_eq!(result["termination"]["valid"], false, "{result}");
        let html = draw("election", &result, &input(&history, &[])).unwrap();
        assert!(html.contains("<g class=\"heal\">"), "{html}");
        assert!(html.contains("<g class=\"no-termination\">"));
        assert!(html.contains("no leader within 15000 ms"));
        assert!(!html.contains("first-leader"));
    }

    #[test]
    fn many_epochs_keep_the_broken_ones() {
        let mut events = Vec::new();
        for epoch in 0..500i64 {
            let p = (epoch % 3) as u64;
            let t = epoch as u64 * 10;
            events.push((Op::invoke(p, "campaign", json!(null)), t));
            events.push((
                Op::complete(
                    p,
                    OpType::Ok,
                    "campaign",
                    json!({"epoch": epoch, "leader": format!("p{p}")}),
                ),
                t + 1,
            ));
        }
        // Epoch 333 has a second leader.
        events.push((Op::invoke(9, "leader", json!(null)), 5_000));
        events.push((
            Op::complete(
                9,
                OpType::Ok,
                "leader",
                json!({"epoch": 333, "leader": "p9"}),
            ),
            5_001,
        ));
        let history = history(events);
        let html = draw("election", &json!({"valid": false}), &input(&history, &[])).unwrap();
        assert_eq!(html.matches("class=\"lane-label").count(), MAX_EPOCH_ROWS);
        assert!(html.contains(">epoch 333<"));
        assert!(html.contains("2 leaders in epoch 333"));
        assert!(html.contains("39 epochs drawn in 40 rows"), "{html}");
    }

    #[test]
    fn divergent_reads_and_lost_appends_are_marked() {
        let history = history(vec![
            (Op::invoke(0, "append", json!(1)), 0),
            (Op::complete(0, OpType::Ok, "append", json!(1)), 1),
            (Op::invoke(1, "append", json!(2)), 2),
            (Op::complete(1, OpType::Ok, "append", json!(2)), 3),
            (Op::invoke(2, "read", json!(null)), 4),
            (Op::complete(2, OpType::Ok, "read", json!([1, 2])), 5),
            (Op::invoke(2, "read", json!(null)), 6),
            (Op::complete(2, OpType::Ok, "read", json!([2, 1])), 7),
            (Op::invoke(0, "append", json!(3)), 8),
            (Op::complete(0, OpType::Ok, "append", json!(3)), 9),
            (Op::invoke(1, "read", json!("final")), 20),
            (Op::complete(1, OpType::Ok, "read", json!([2, 1])), 21),
        ]);
        let result =
            serde_json::to_value(faultline_checker::broadcast::check(&history).unwrap()).unwrap();
        let html = draw("broadcast", &result, &input(&history, &[])).unwrap();
        assert!(html.contains("anomalous-read divergent-reads"), "{html}");
        // Every read that is not a prefix of the longest ([1,2] is the first longest).
        assert_eq!(
            html.matches("class=\"read divergent\"").count(),
            1,
            "{html}"
        );
        assert!(html.contains("class=\"read final divergent\""));
        assert!(html.contains("2 of 3 reads (red dots) are not a prefix"));
        assert!(html.contains("<g class=\"divergence\">"));
        assert!(html.contains("reads diverge after message 0"));
        assert!(html.contains("anomalous-append lost"));
        assert!(html.contains("Found: "));
    }

    #[test]
    fn lost_and_duplicated_jobs_are_marked_on_their_lines() {
        let history = history(vec![
            (Op::invoke(0, "enqueue", json!(1)), 0),
            (Op::complete(0, OpType::Ok, "enqueue", json!(1)), 1),
            (Op::invoke(0, "enqueue", json!(2)), 2),
            (Op::complete(0, OpType::Ok, "enqueue", json!(2)), 3),
            (Op::invoke(1, "claim", json!(null)), 4),
            (Op::complete(1, OpType::Ok, "claim", json!(1)), 5),
            (Op::invoke(2, "claim", json!(null)), 6),
            (Op::complete(2, OpType::Ok, "claim", json!(1)), 7),
            (Op::invoke(1, "complete", json!(1)), 8),
            (Op::complete(1, OpType::Ok, "complete", json!(1)), 9),
            (Op::invoke(3, "claim", json!("drain")), 20),
            (Op::complete(3, OpType::Ok, "claim", json!(null)), 21),
        ]);
        let result = serde_json::to_value(
            faultline_checker::queue::check(&history, faultline_core::queue::Delivery::ExactlyOnce)
                .unwrap(),
        )
        .unwrap();
        let html = draw("queue", &result, &input(&history, &[])).unwrap();
        assert!(
            html.contains("queue-anomaly violation duplicate-delivery"),
            "{html}"
        );
        assert!(html.contains("queue-anomaly violation lost"));
        assert!(html.contains("lost job 2"));
        assert!(html.contains("<path class=\"repeat duplicate-delivery\""));
        assert!(html.contains("duplicate-delivery: job 1 again at 0.007 s"));
        assert!(html.contains("<g class=\"drain\">"));
        for line in ["enqueued", "delivered", "completed"] {
            assert!(html.contains(&format!("<g class=\"{line}\">")), "{line}");
        }
        // At least once, a second delivery is allowed: orange, not red.
        let result = serde_json::to_value(
            faultline_checker::queue::check(&history, faultline_core::queue::Delivery::AtLeastOnce)
                .unwrap(),
        )
        .unwrap();
        let html = draw("queue", &result, &input(&history, &[])).unwrap();
        assert!(
            html.contains("queue-anomaly allowed duplicate-delivery"),
            "{html}"
        );
    }

    #[test]
    fn other_checkers_are_not_drawn_and_untimed_histories_say_why() {
        let history = History::new(vec![Op::invoke(0, "acquire", json!(null))]);
        assert!(draw("set", &json!({}), &input(&history, &[])).is_none());
        let note = draw("lock", &json!({}), &input(&history, &[])).unwrap();
        assert!(note.contains("no time"), "{note}");
    }
}
