//! The data of the browser timeline: every operation as compact columns of JSON, embedded in
//! the report and drawn by its script on a canvas, one window of time at a time.
//!
//! A DOM element per operation would freeze a browser on a 100k-op history; a canvas redraws
//! only the operations inside the window (found by binary search on the start times), so the
//! page stays responsive at any length. Columns rather than one object per operation keep
//! the JSON to about 40 bytes per operation.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

use crate::checkers::Mark;
use crate::digest::{Digest, TimeAxis};
use crate::faults::FaultInterval;
use crate::plots::fault_color;

/// The most operations the timeline embeds; past it, the first ones in time are shown and the
/// report says so (the whole history is in history.jsonl).
pub const MAX_TIMELINE_OPS: usize = 300_000;

/// A fault band of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Band {
    pub kind: String,
    pub label: String,
    pub start: f64,
    /// `null`: still in effect when the history ends.
    pub end: Option<f64>,
    pub color: String,
}

/// The timeline's data, as the report's script reads it.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineData {
    /// `ms` (times in milliseconds since the test started) or `event` (positions).
    pub unit: &'static str,
    pub end: f64,
    /// Lane labels; an operation's lane is its worker (process modulo the concurrency) when
    /// the concurrency is known, else its process.
    pub lanes: Vec<String>,
    pub fs: Vec<String>,
    pub texts: Vec<String>,
    /// Columns, one entry per operation, sorted by start. Times are integers in thousandths
    /// of the unit (microseconds for `ms`), and the sorted columns `s` and `i` are stored as
    /// differences from the previous entry: small integers keep the JSON short.
    pub lane: Vec<u32>,
    pub f: Vec<u32>,
    /// Outcome code: 0 ok, 1 fail, 2 info, 3 open.
    pub o: Vec<u8>,
    /// Start, as the difference from the previous operation's start.
    pub s: Vec<u64>,
    /// Duration; -1 for an operation that never completed.
    pub d: Vec<i64>,
    /// The invocation's index, as the difference from the previous operation's.
    pub i: Vec<i64>,
    pub p: Vec<u64>,
    /// The detail text (`texts` position).
    pub t: Vec<u32>,
    /// The error text (`texts` position), -1 for none.
    pub e: Vec<i64>,
    pub faults: Vec<Band>,
    pub marks: Vec<Mark>,
    /// Operations in the history, and how many are embedded.
    pub total: usize,
    pub shown: usize,
}

/// Milliseconds (or positions) rounded to microseconds, which keeps the JSON short.
fn on_axis(digest: &Digest, t: u64) -> f64 {
    match digest.axis {
        TimeAxis::Nanos => (t as f64 / 1e3).round() / 1e3,
        TimeAxis::Position => t as f64,
    }
}

/// Thousandths of the axis unit: microseconds, or thousandths of a position.
fn thousandths(digest: &Digest, t: u64) -> u64 {
    match digest.axis {
        TimeAxis::Nanos => (t + 500) / 1_000,
        TimeAxis::Position => t * 1_000,
    }
}

/// Builds the timeline's data. `concurrency` (from test.json) folds processes into worker
/// lanes: after an `info` a worker continues as process `p + concurrency`, and its operations
/// never overlap, so one lane per worker keeps the lanes few without hiding anything.
pub fn timeline_data(
    digest: &Digest,
    faults: &[FaultInterval],
    marks: &[Mark],
    concurrency: Option<u64>,
) -> TimelineData {
    let mut order: Vec<usize> = (0..digest.ops.len()).collect();
    order.sort_by_key(|&i| (digest.ops[i].start, i));
    order.truncate(MAX_TIMELINE_OPS);
    let (lane_of, lanes): (Box<dyn Fn(u64) -> u32>, Vec<String>) = match concurrency {
        Some(c) if c > 0 => {
            let used = order
                .iter()
                .map(|&i| digest.ops[i].process % c)
                .max()
                .map_or(0, |m| m + 1);
            (
                Box::new(move |p| (p % c) as u32),
                (0..used).map(|w| format!("worker {w}")).collect(),
            )
        }
        _ => {
            let processes: BTreeMap<u64, u32> =
                order.iter().map(|&i| (digest.ops[i].process, 0)).collect();
            let rank: HashMap<u64, u32> = processes
                .keys()
                .enumerate()
                .map(|(r, &p)| (p, r as u32))
                .collect();
            let labels = processes.keys().map(|p| format!("process {p}")).collect();
            (Box::new(move |p| rank[&p]), labels)
        }
    };
    let n = order.len();
    let mut data = TimelineData {
        unit: match digest.axis {
            TimeAxis::Nanos => "ms",
            TimeAxis::Position => "event",
        },
        end: on_axis(digest, digest.end),
        lanes,
        fs: digest.fs.clone(),
        texts: digest.texts.clone(),
        lane: Vec::with_capacity(n),
        f: Vec::with_capacity(n),
        o: Vec::with_capacity(n),
        s: Vec::with_capacity(n),
        d: Vec::with_capacity(n),
        i: Vec::with_capacity(n),
        p: Vec::with_capacity(n),
        t: Vec::with_capacity(n),
        e: Vec::with_capacity(n),
        faults: faults
            .iter()
            .map(|fault| {
                let c = fault_color(&fault.kind);
                Band {
                    kind: fault.kind.clone(),
                    label: fault.label.clone(),
                    start: on_axis(digest, fault.start),
                    end: fault.end.map(|e| on_axis(digest, e)),
                    color: format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2),
                }
            })
            .collect(),
        marks: marks.to_vec(),
        total: digest.ops.len(),
        shown: n,
    };
    let (mut previous_start, mut previous_index) = (0u64, 0i64);
    for &k in &order {
        let op = &digest.ops[k];
        let start = thousandths(digest, op.start);
        data.lane.push(lane_of(op.process));
        data.f.push(op.f);
        data.o.push(op.outcome.code());
        data.s.push(start - previous_start);
        previous_start = start;
        data.d.push(op.end.map_or(-1, |end| {
            thousandths(digest, end).saturating_sub(start) as i64
        }));
        data.i.push(op.index as i64 - previous_index);
        previous_index = op.index as i64;
        data.p.push(op.process);
        data.t.push(op.detail);
        data.e.push(op.error.map_or(-1, i64::from));
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escape::json_for_script;
    use faultline_core::{Op, OpType};
    use serde_json::json;

    #[test]
    fn workers_become_lanes_and_columns_line_up() {
        let digest = Digest::from_ops(vec![
            Op::invoke(1, "write", json!(1)).with_time(2_000_000),
            Op::invoke(0, "read", json!(null)).with_time(1_000_000),
            Op::complete(0, OpType::Info, "read", json!(null))
                .with_error(json!("</script>"))
                .with_time(1_500_500),
            Op::invoke(2, "read", json!(null)).with_time(3_000_000),
        ]);
        let data = timeline_data(&digest, &[], &[], Some(2));
        assert_eq!(data.lanes, ["worker 0", "worker 1"]);
        // Sorted by start: process 0 (1 ms), process 1 (2 ms), process 2 (3 ms).
        assert_eq!(data.p, [0, 1, 2]);
        assert_eq!(data.lane, [0, 1, 0]);
        assert_eq!(data.s, [1_000, 1_000, 1_000]);
        assert_eq!(data.d, [501, -1, -1]);
        // Indices 1, 0 and 3 (invocation order in the file: process 1 first).
        assert_eq!(data.i, [1, -1, 3]);
        assert_eq!(data.o, [2, 3, 3]);
        assert_eq!(data.texts[data.e[0] as usize], "</script>");
        let text = json_for_script(&data);
        assert!(!text.contains("</script>"));
    }

    #[test]
    fn without_concurrency_each_process_has_a_lane() {
        let digest = Digest::from_ops(vec![
            Op::invoke(7, "read", json!(null)),
            Op::invoke(3, "read", json!(null)),
        ]);
        let data = timeline_data(&digest, &[], &[], None);
        assert_eq!(data.unit, "event");
        assert_eq!(data.lanes, ["process 3", "process 7"]);
        assert_eq!(data.lane, [1, 0]);
        assert_eq!(
            (data.s.as_slice(), data.d.as_slice()),
            ([0, 1_000].as_slice(), [-1, -1].as_slice())
        );
    }
}
