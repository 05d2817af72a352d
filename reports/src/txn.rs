//! The transactional (and causal) checker's result (`checker/src/txn`): the verdict, the
//! models ruled out, and every anomaly with its explanation; a dependency cycle is drawn next
//! to its text as transactions (boxes with their micro-operations) on a ring, joined by arrows
//! labelled with the edge's kind (`ww`, `wr`, `rw`, `process`, `realtime`, ...) and key.
//!
//! The result is read as JSON (`TxnResult` serialized: `anomaly-types`, `anomalies` {type ->
//! [{type, txns, cycle, details, explanation}]}, `anomaly-counts`, `not`, `also-not`, `stats`),
//! so that a report can be rebuilt from any faultline's results.json.

use serde_json::Value;
use std::f64::consts::PI;
use std::fmt::Write as _;

use crate::checkers::{Mark, Rendered};
use crate::escape::{html, truncate};

/// Anomalies shown per type (each with its text and drawing); the rest are counted.
pub const MAX_SHOWN_PER_TYPE: usize = 20;
/// Anomalies shown open across all types; the rest are folded (a page stays short).
pub const MAX_OPEN: usize = 3;
/// Transactions a cycle drawing shows; a longer cycle is listed by its text only.
pub const MAX_DRAWN_TXNS: usize = 16;
/// Micro-operations listed in a transaction's box.
pub const MAX_BOX_OPS: usize = 6;

/// Whether `result` is the transactional checker's.
pub fn is_txn_result(name: &str, result: &Value) -> bool {
    name == "transactional"
        || result.get("anomaly-types").is_some()
        || result.get("also-not").is_some()
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A value as an operation shows it: strings bare, everything else as compact JSON.
fn bare(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "nil".to_string(),
        other => other.to_string(),
    }
}

/// A transaction's micro-operations, one per line: `append 8 1`, `r 9 [1 2]`.
fn micro_ops(value: &Value) -> Vec<String> {
    match value {
        Value::Array(ops) if ops.iter().all(Value::is_array) => ops
            .iter()
            .map(|op| {
                op.as_array()
                    .map(|parts| parts.iter().map(bare).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default()
            })
            .collect(),
        other => vec![bare(other)],
    }
}

/// A CSS class from a name the checker gave (an edge kind): letters, digits and `-` only.
fn class_word(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// Renders a transactional result into `out`.
pub(crate) fn render(result: &Value, out: &mut Rendered) {
    let model = result.get("model").and_then(Value::as_str).unwrap_or("?");
    let consistency = strings(result.get("consistency")).join(", ");
    let stats = result.get("stats");
    let stat = |name: &str| {
        stats
            .and_then(|s| s.get(name))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let _ = write!(
        out.html,
        "<p>Is this <code>{}</code> history {}?",
        html(model),
        if consistency.is_empty() {
            "consistent".to_string()
        } else {
            format!("<b>{}</b>", html(&consistency))
        },
    );
    // A history that could not be read has no sizes; its reason says why.
    if stats.is_some() {
        let _ = write!(
            out.html,
            " {} transactions ({} ok, {} failed, {} of unknown outcome) over {} keys; the \
             dependency graph has {} edges.",
            stat("txns"),
            stat("ok"),
            stat("fail"),
            stat("info"),
            stat("keys"),
            stat("graph_edges"),
        );
    }
    out.html.push_str("</p>");
    let not = strings(result.get("not"));
    let also_not = strings(result.get("also-not"));
    if !not.is_empty() {
        let _ = write!(
            out.html,
            "<p class=\"ruled-out\">Not <b>{}</b> (the weakest models the anomalies rule out)",
            html(&not.join(", "))
        );
        if !also_not.is_empty() {
            let _ = write!(
                out.html,
                "; therefore also not {}",
                html(&also_not.join(", "))
            );
        }
        out.html.push_str(".</p>");
    }
    let Some(anomalies) = result.get("anomalies").and_then(Value::as_object) else {
        return;
    };
    let count_of = |kind: &str, listed: usize| {
        result
            .get("anomaly-counts")
            .and_then(|c| c.get(kind))
            .and_then(Value::as_u64)
            .map_or(listed, |c| c as usize)
            .max(listed)
    };
    if !anomalies.is_empty() {
        out.html.push_str("<table class=\"counts\"><tr>");
        for (kind, listed) in anomalies {
            let listed = listed.as_array().map_or(0, Vec::len);
            let _ = write!(
                out.html,
                "<td class=\"bad\"><b>{}</b><br>{}</td>",
                count_of(kind, listed),
                html(kind)
            );
        }
        out.html.push_str("</tr></table>");
    }
    let mut shown = 0;
    for (kind, listed) in anomalies {
        let listed: &[Value] = listed.as_array().map_or(&[], Vec::as_slice);
        let count = count_of(kind, listed.len());
        out.findings.push(format!("{count} {kind}"));
        let _ = write!(
            out.html,
            "<h4 class=\"anomaly-type\">{} ({count})</h4>",
            html(kind)
        );
        for (n, anomaly) in listed.iter().take(MAX_SHOWN_PER_TYPE).enumerate() {
            anomaly_html(kind, n, anomaly, shown < MAX_OPEN, out);
            shown += 1;
            out.anomalies += 1;
        }
        let drawn = listed.len().min(MAX_SHOWN_PER_TYPE);
        if count > drawn {
            let _ = write!(
                out.html,
                "<p class=\"note\">{} more {} found: {} shown here, {} listed in results.json.\
                 </p>",
                count - drawn,
                html(kind),
                drawn,
                listed.len()
            );
        }
    }
}

/// One anomaly: its explanation next to its cycle drawn, or its transactions listed.
fn anomaly_html(kind: &str, n: usize, anomaly: &Value, open: bool, out: &mut Rendered) {
    let txns: &[Value] = anomaly
        .get("txns")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let cycle: &[Value] = anomaly
        .get("cycle")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let explanation = anomaly
        .get("explanation")
        .and_then(Value::as_str)
        .unwrap_or("");
    let names: Vec<String> = txns
        .iter()
        .map(|t| t.get("name").map(bare).unwrap_or_default())
        .collect();
    if n == 0 {
        if let Some(index) = txns
            .first()
            .and_then(|t| t.get("index"))
            .and_then(Value::as_u64)
        {
            out.marks.push(Mark {
                index,
                label: format!("{kind} {}", names.first().cloned().unwrap_or_default()),
            });
        }
    }
    let _ = write!(
        out.html,
        "<article class=\"anomaly txn-anomaly\" id=\"txn-{}-{n}\"><details{}><summary>{} #{} \
         ({})</summary><div class=\"txn-anomaly-body\"><pre class=\"explanation\">{}</pre>",
        html(&class_word(kind)),
        if open { " open" } else { "" },
        html(kind),
        n + 1,
        html(&names.join(", ")),
        html(explanation)
    );
    if cycle.is_empty() {
        txn_table(txns, &mut out.html);
    } else if txns.len() > MAX_DRAWN_TXNS {
        let _ = write!(
            out.html,
            "<p class=\"note\">A cycle of {} transactions is too long to draw; the text lists \
             every step.</p>",
            txns.len()
        );
    } else {
        out.html.push_str(&cycle_svg(txns, cycle));
    }
    if let Some(details) = anomaly.get("details").filter(|d| !d.is_null()) {
        let _ = write!(
            out.html,
            "<p class=\"details\">details: <code>{}</code></p>",
            html(&truncate(&details.to_string(), 400))
        );
    }
    out.html.push_str("</div></details></article>");
}

/// The transactions of an anomaly without a cycle (G1a, internal, duplicate elements, ...).
fn txn_table(txns: &[Value], out: &mut String) {
    if txns.is_empty() {
        return;
    }
    out.push_str(
        "<table class=\"ops\"><thead><tr><th>txn</th><th>index</th><th>process</th>\
         <th>outcome</th><th>operations</th></tr></thead><tbody>",
    );
    for t in txns {
        let field = |name: &str| t.get(name).map(bare).unwrap_or_default();
        let ops = t.get("value").map(micro_ops).unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            html(&field("name")),
            html(&field("index")),
            html(&field("process")),
            html(&field("type")),
            html(&truncate(&ops.join("; "), 400))
        );
    }
    out.push_str("</tbody></table>");
}

const BOX_W: f64 = 230.0;
const LINE_H: f64 = 14.0;

/// Where a ray from a box's centre towards `(dx, dy)` leaves the box.
fn box_exit(cx: f64, cy: f64, half_h: f64, dx: f64, dy: f64) -> (f64, f64) {
    let half_w = BOX_W / 2.0 + 4.0;
    let half_h = half_h + 4.0;
    let tx = if dx.abs() < 1e-9 {
        f64::INFINITY
    } else {
        half_w / dx.abs()
    };
    let ty = if dy.abs() < 1e-9 {
        f64::INFINITY
    } else {
        half_h / dy.abs()
    };
    let t = tx.min(ty);
    (cx + dx * t, cy + dy * t)
}

/// A dependency cycle as SVG: each transaction a box (name, process, outcome, its
/// micro-operations) on an ellipse in cycle order, clockwise; each step an arrow from the
/// earlier transaction to the later one, labelled `kind key` and titled with why the edge
/// holds. Arrows bow outwards so that the two directions between a pair stay apart.
pub fn cycle_svg(txns: &[Value], cycle: &[Value]) -> String {
    let n = txns.len().max(1);
    let lines: Vec<Vec<String>> = txns
        .iter()
        .map(|t| {
            let ops = t.get("value").map(micro_ops).unwrap_or_default();
            let mut shown: Vec<String> = ops
                .iter()
                .take(MAX_BOX_OPS)
                .map(|op| truncate(op, 34))
                .collect();
            if ops.len() > MAX_BOX_OPS {
                shown.push(format!("… {} more", ops.len() - MAX_BOX_OPS));
            }
            shown
        })
        .collect();
    let half_h: Vec<f64> = lines
        .iter()
        .map(|l| (22.0 + LINE_H * l.len() as f64) / 2.0)
        .collect();
    let tallest = half_h.iter().copied().fold(20.0, f64::max);
    // Two transactions sit side by side; more go round an ellipse wide enough that
    // neighbouring boxes do not overlap.
    let (rx, ry) = if n <= 2 {
        (BOX_W * 0.85, 0.0)
    } else {
        let rx = (n as f64 * (BOX_W + 50.0) / (2.0 * PI)).max(BOX_W * 0.9);
        let ry = (n as f64 * (2.0 * tallest + 50.0) / (2.0 * PI)).max(tallest + 60.0);
        (rx, ry)
    };
    let margin_x = BOX_W / 2.0 + 30.0;
    let margin_y = tallest + 40.0;
    let width = 2.0 * (rx + margin_x);
    let height = 2.0 * (ry + margin_y);
    let (cx, cy) = (width / 2.0, height / 2.0);
    let centre: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let angle = PI + 2.0 * PI * i as f64 / n as f64;
            (cx + rx * angle.cos(), cy + ry * angle.sin())
        })
        .collect();
    let position = |name: &str| {
        txns.iter()
            .position(|t| t.get("name").and_then(Value::as_str) == Some(name))
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<div class=\"cycle-scroll\"><svg class=\"cycle\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">\
         <defs><marker id=\"cycle-arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L10,5 L0,10 z\" class=\"arrow-head\"/></marker></defs>"
    );
    for (i, t) in txns.iter().enumerate() {
        let (x, y) = centre[i];
        let h = 2.0 * half_h[i];
        let (left, top) = (x - BOX_W / 2.0, y - half_h[i]);
        let field = |name: &str| t.get(name).map(bare).unwrap_or_default();
        let outcome = field("type");
        let _ = write!(
            svg,
            "<g class=\"txn\"><title>{}</title><rect class=\"txn-box o-{}\" x=\"{left:.1}\" \
             y=\"{top:.1}\" width=\"{BOX_W}\" height=\"{h:.1}\" rx=\"4\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"txn-name\">{} · process {} · {} · #{}</text>",
            html(&format!(
                "{} = index {}, process {}, {}: {}",
                field("name"),
                field("index"),
                field("process"),
                outcome,
                micro_ops(t.get("value").unwrap_or(&Value::Null)).join(" ")
            )),
            html(&class_word(&outcome)),
            left + 6.0,
            top + 15.0,
            html(&truncate(&field("name"), 12)),
            html(&truncate(&field("process"), 10)),
            html(&truncate(&outcome, 6)),
            html(&truncate(&field("index"), 12)),
        );
        for (l, line) in lines[i].iter().enumerate() {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"txn-op\">{}</text>",
                left + 8.0,
                top + 31.0 + LINE_H * l as f64,
                html(line)
            );
        }
        svg.push_str("</g>");
    }
    for step in cycle {
        let field = |name: &str| step.get(name).map(bare).unwrap_or_default();
        let (Some(from), Some(to)) = (position(&field("from")), position(&field("to"))) else {
            continue;
        };
        if from >= centre.len() || to >= centre.len() {
            continue;
        }
        let kind = field("type");
        let label = match step.get("key") {
            Some(key) => format!("{kind} {}", bare(key)),
            None => kind.clone(),
        };
        let (x0, y0) = centre[from];
        let (x1, y1) = centre[to];
        // Bow each arrow to its left (seen along it): from the ellipse's ring that is
        // outwards for clockwise steps, and the reverse step bows the other way.
        let (dx, dy) = (x1 - x0, y1 - y0);
        let length = (dx * dx + dy * dy).sqrt().max(1.0);
        let bow = 0.22 * length;
        let (qx, qy) = (
            (x0 + x1) / 2.0 + dy / length * bow,
            (y0 + y1) / 2.0 - dx / length * bow,
        );
        let (sx, sy) = box_exit(x0, y0, half_h[from], qx - x0, qy - y0);
        let (ex, ey) = box_exit(x1, y1, half_h[to], qx - x1, qy - y1);
        // The curve's midpoint, where the label goes.
        let (mx, my) = (
            0.25 * sx + 0.5 * qx + 0.25 * ex,
            0.25 * sy + 0.5 * qy + 0.25 * ey,
        );
        let label = truncate(&label, 24);
        let label_w = 7.0 * label.chars().count() as f64 + 8.0;
        let _ = write!(
            svg,
            "<g class=\"edge e-{}\"><title>{} → {}: {}</title>\
             <path d=\"M{sx:.1},{sy:.1} Q{qx:.1},{qy:.1} {ex:.1},{ey:.1}\" \
             marker-end=\"url(#cycle-arrow)\"/><rect class=\"edge-label-bg\" x=\"{:.1}\" \
             y=\"{:.1}\" width=\"{label_w:.1}\" height=\"16\" rx=\"3\"/>\
             <text class=\"edge-label\" x=\"{mx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             </g>",
            html(&class_word(&kind)),
            html(&field("from")),
            html(&field("to")),
            html(&field("because")),
            mx - label_w / 2.0,
            my - 8.0,
            my + 4.0,
            html(&label)
        );
    }
    svg.push_str("</svg></div>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers;
    use serde_json::json;

    /// Write skew, as the checker writes it, with a hostile value in one transaction.
    fn write_skew(value: Value) -> Value {
        json!({
            "valid": false,
            "checker": "transactional",
            "result": {
                "valid": false, "model": "list-append", "consistency": ["serializable"],
                "anomaly-types": ["G2-item", "G1a"],
                "anomalies": {
                    "G2-item": [{
                        "type": "G2-item",
                        "txns": [
                            {"name": "T1", "index": 0, "completion_index": 2, "process": 0,
                             "type": "ok", "value": [["r", "x", null], ["append", "y", value]]},
                            {"name": "T2", "index": 1, "completion_index": 3, "process": 1,
                             "type": "ok", "value": [["r", "y", null], ["append", "x", 1]]}
                        ],
                        "cycle": [
                            {"from": "T1", "to": "T2", "type": "rw", "key": "x",
                             "because": "T1 read x = nil, which missed T2's append of 1"},
                            {"from": "T2", "to": "T1", "type": "rw", "key": "y",
                             "because": "T2 read y = nil, which missed T1's append"}
                        ],
                        "explanation": "Let:\n  T1 = ...\nHowever, T1 < T2 < T1 (G2-item)."
                    }],
                    "G1a": [{
                        "type": "G1a",
                        "txns": [{"name": "T1", "index": 7, "process": 2, "type": "ok",
                                  "value": [["r", "z", [value]]]}],
                        "explanation": "T1 read an element written by an aborted transaction"
                    }]
                },
                "anomaly-counts": {"G2-item": 25, "G1a": 1},
                "not": ["repeatable-read"],
                "also-not": ["serializable"],
                "stats": {"txns": 2, "ok": 2, "fail": 0, "info": 0, "keys": 2,
                          "graph_edges": 2}
            }
        })
    }

    #[test]
    fn a_cycle_is_drawn_with_labelled_edges_next_to_its_text() {
        let rendered = checkers::render(&write_skew(json!(5)));
        let page = &rendered.html;
        assert!(page.contains("Not <b>repeatable-read</b>"), "{page}");
        assert!(page.contains("also not serializable"));
        assert!(page.contains("<pre class=\"explanation\">Let:"));
        let svg = &page[page.find("<svg class=\"cycle\"").expect("a cycle drawing")..];
        assert!(svg.contains("<g class=\"edge e-rw\">"));
        assert!(svg.contains(">rw x</text>") && svg.contains(">rw y</text>"));
        assert!(
            svg.contains("T2 read y = nil"),
            "the edge says why it holds"
        );
        assert!(svg.contains(">append x 1</text>"), "the box lists the ops");
        // 25 found, 1 listed: the rest are counted.
        assert!(page.contains("24 more G2-item found"));
        assert!(rendered.findings.contains(&"25 G2-item".to_string()));
        assert_eq!(rendered.anomalies, 2);
        let mark = |label: &str| rendered.marks.iter().find(|m| m.label == label);
        assert_eq!(mark("G2-item T1").map(|m| m.index), Some(0));
        assert_eq!(mark("G1a T1").map(|m| m.index), Some(7));
        // A non-cycle anomaly lists its transaction.
        assert!(page.contains("<td><code>r z [5]</code></td>"));
    }

    #[test]
    fn values_in_transactions_are_escaped() {
        let hostile = "<b>bold</b><script>alert(1)</script>";
        let rendered = checkers::render(&write_skew(json!(hostile)));
        let page = &rendered.html;
        assert!(!page.contains("<b>bold"), "{page}");
        assert!(!page.contains("<script>"));
        assert!(page.contains("append y &lt;b&gt;bold&lt;/b&gt;&lt;script&gt;"));
    }

    #[test]
    fn many_anomalies_are_capped_per_type() {
        let mut results = write_skew(json!(1));
        let one = results["result"]["anomalies"]["G2-item"][0].clone();
        results["result"]["anomalies"]["G2-item"] = Value::Array(vec![one; 30]);
        results["result"]["anomaly-counts"]["G2-item"] = json!(120);
        let rendered = checkers::render(&results);
        let drawn = rendered.html.matches("<svg class=\"cycle\"").count();
        assert_eq!(drawn, MAX_SHOWN_PER_TYPE);
        assert!(rendered
            .html
            .contains("100 more G2-item found: 20 shown here, 30 listed"));
        assert_eq!(
            rendered.html.matches("<details open>").count(),
            MAX_OPEN,
            "only the first anomalies are open"
        );
    }

    #[test]
    fn edge_endpoints_leave_the_boxes() {
        let (x, y) = box_exit(100.0, 100.0, 20.0, 1.0, 0.0);
        assert!((x - (100.0 + BOX_W / 2.0 + 4.0)).abs() < 1e-6 && (y - 100.0).abs() < 1e-6);
        let (x, y) = box_exit(100.0, 100.0, 20.0, 0.0, -1.0);
        assert!((x - 100.0).abs() < 1e-6 && (y - 76.0).abs() < 1e-6);
    }
}
