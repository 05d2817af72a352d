//! A compact reading of a history for drawing: each operation once (invocation and completion
//! paired), the nemesis events, and the time axis.
//!
//! A report must be written for any run, including one killed halfway: a history whose last
//! line is cut off, or whose operations never completed. So this reader is lenient where the
//! checker is strict: an unreadable line is counted and skipped, an operation without
//! completion is drawn as `open` up to the end, and a completion without invocation is counted.
//! The problems are listed in the report instead of stopping it.

use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use faultline_core::history::UNASSIGNED_INDEX;
use faultline_core::import::{detect_format, read_history_file, Format};
use faultline_core::jsonl::JsonlReader;
use faultline_core::{HistoryError, Op, OpType, Process};

use crate::escape::truncate;
use crate::ReportError;

/// How many reading problems the report quotes (all are counted).
pub const MAX_PROBLEMS_LISTED: usize = 10;
/// Longest text kept for one operation's value (the rest is in history.jsonl).
pub const DETAIL_CHARS: usize = 60;

/// What became of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    Fail,
    Info,
    /// Never completed in the history (the run ended or was killed first).
    Open,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
            Outcome::Open => "open",
        }
    }

    /// The code the browser timeline uses (`0..=3`, in this order).
    pub fn code(self) -> u8 {
        self as u8
    }

    fn of(kind: OpType) -> Outcome {
        match kind {
            OpType::Ok => Outcome::Ok,
            OpType::Fail => Outcome::Fail,
            OpType::Info | OpType::Invoke => Outcome::Info,
        }
    }
}

/// The unit of a history's time axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeAxis {
    /// Every event has a `time`: nanoseconds since the test started.
    Nanos,
    /// Some event has no `time` (imported histories often have none): the event's position in
    /// the file stands in for it, which keeps real-time order but not durations.
    Position,
}

/// One client operation: its invocation and, if any, its completion.
#[derive(Debug, Clone, PartialEq)]
pub struct OpRecord {
    /// The invocation's index.
    pub index: u64,
    pub completion_index: Option<u64>,
    pub process: u64,
    /// Position in [`Digest::fs`].
    pub f: u32,
    pub outcome: Outcome,
    /// Invocation and completion on the digest's [`TimeAxis`].
    pub start: u64,
    pub end: Option<u64>,
    /// The key, argument and result as short text: position in [`Digest::texts`].
    pub detail: u32,
    /// The completion's error: position in [`Digest::texts`].
    pub error: Option<u32>,
}

impl OpRecord {
    /// Completion time minus invocation time, for completed operations.
    pub fn latency(&self) -> Option<u64> {
        self.end.map(|end| end.saturating_sub(self.start))
    }
}

/// One nemesis event.
#[derive(Debug, Clone, PartialEq)]
pub struct NemesisEvent {
    pub index: u64,
    /// On the digest's [`TimeAxis`].
    pub time: u64,
    pub f: String,
    pub value: Value,
}

/// A history read for drawing.
#[derive(Debug, Clone)]
pub struct Digest {
    /// Client operations in invocation order.
    pub ops: Vec<OpRecord>,
    /// Operation names (`read`, `write`, ...) in order of first appearance.
    pub fs: Vec<String>,
    /// Interned texts (details and errors): a history repeats them a lot.
    pub texts: Vec<String>,
    pub nemesis: Vec<NemesisEvent>,
    pub axis: TimeAxis,
    /// The latest time on the axis any event has.
    pub end: u64,
    /// Events read (lines that parsed).
    pub events: usize,
    /// Lines that could not be read, and the first few reasons.
    pub unreadable_count: usize,
    pub problems: Vec<String>,
    /// Completions with no outstanding invocation by their process.
    pub unpaired_completions: usize,
}

/// An operation's key, argument and result as text.
struct Parts {
    key: Option<String>,
    argument: Option<String>,
    result: Option<String>,
}

impl Parts {
    /// `key 1: [1,2] → 3`, shortened to [`DETAIL_CHARS`].
    fn text(&self) -> String {
        let mut out = String::new();
        if let Some(key) = &self.key {
            out.push_str(&format!("key {key}: "));
        }
        if let Some(argument) = &self.argument {
            out.push_str(argument);
        }
        if let Some(result) = &self.result {
            if self.argument.is_some() {
                out.push(' ');
            }
            out.push_str(&format!("→ {result}"));
        }
        truncate(out.trim_end(), DETAIL_CHARS)
    }
}

/// Builds a [`Digest`] event by event.
struct Builder {
    ops: Vec<OpRecord>,
    fs: Vec<String>,
    f_ids: HashMap<String, u32>,
    texts: Vec<String>,
    text_ids: HashMap<String, u32>,
    /// Each open op (by position in `ops`) with its key and argument as text, to build its
    /// detail once the result is known.
    open: HashMap<u64, (usize, Parts)>,
    nemesis_invokes: Vec<NemesisEvent>,
    nemesis_completions: Vec<NemesisEvent>,
    /// Each event's time by position; `None` once an event without a time was seen.
    times: Option<Vec<u64>>,
    position: u64,
    unreadable_count: usize,
    problems: Vec<String>,
    unpaired_completions: usize,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            ops: Vec::new(),
            fs: Vec::new(),
            f_ids: HashMap::new(),
            texts: Vec::new(),
            text_ids: HashMap::new(),
            open: HashMap::new(),
            nemesis_invokes: Vec::new(),
            nemesis_completions: Vec::new(),
            times: Some(Vec::new()),
            position: 0,
            unreadable_count: 0,
            problems: Vec::new(),
            unpaired_completions: 0,
        }
    }

    fn intern_text(&mut self, text: String) -> u32 {
        if let Some(&id) = self.text_ids.get(&text) {
            return id;
        }
        let id = self.texts.len() as u32;
        self.text_ids.insert(text.clone(), id);
        self.texts.push(text);
        id
    }

    fn intern_f(&mut self, f: &str) -> u32 {
        if let Some(&id) = self.f_ids.get(f) {
            return id;
        }
        let id = self.fs.len() as u32;
        self.f_ids.insert(f.to_string(), id);
        self.fs.push(f.to_string());
        id
    }

    fn problem(&mut self, why: String) {
        self.unreadable_count += 1;
        if self.problems.len() < MAX_PROBLEMS_LISTED {
            self.problems.push(why);
        }
    }

    fn push(&mut self, mut op: Op) {
        let position = self.position;
        self.position += 1;
        if op.index == UNASSIGNED_INDEX {
            op.index = position;
        }
        if let Some(times) = &mut self.times {
            match op.time {
                Some(time) => times.push(time),
                None => self.times = None,
            }
        }
        let process = match op.process {
            Process::Nemesis => {
                let event = NemesisEvent {
                    index: op.index,
                    time: position,
                    f: op.f,
                    value: op.value,
                };
                if op.kind == OpType::Invoke {
                    self.nemesis_invokes.push(event);
                } else {
                    self.nemesis_completions.push(event);
                }
                return;
            }
            Process::Client(p) => p,
        };
        if op.kind == OpType::Invoke {
            let f = self.intern_f(&op.f);
            let parts = Parts {
                key: op.key.as_ref().map(Value::to_string),
                argument: (!op.value.is_null()).then(|| op.value.to_string()),
                result: None,
            };
            let detail = self.intern_text(parts.text());
            // A second invocation while one is outstanding leaves the first open: the checker
            // rejects such a history; the report still draws it.
            self.open.insert(process, (self.ops.len(), parts));
            self.ops.push(OpRecord {
                index: op.index,
                completion_index: None,
                process,
                f,
                outcome: Outcome::Open,
                start: position,
                end: None,
                detail,
                error: None,
            });
            return;
        }
        let Some((at, mut parts)) = self.open.remove(&process) else {
            self.unpaired_completions += 1;
            return;
        };
        let result = op.value.to_string();
        // A write's completion usually repeats its argument; show only what is new.
        if (parts.argument.as_deref() != Some(result.as_str()) && !op.value.is_null())
            || parts.argument.is_none()
        {
            parts.result = Some(result);
        }
        let detail = self.intern_text(parts.text());
        let error = op.error.as_ref().map(|e| {
            let text = match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            self.intern_text(truncate(&text, 200))
        });
        let record = &mut self.ops[at];
        record.completion_index = Some(op.index);
        record.outcome = Outcome::of(op.kind);
        record.end = Some(position);
        record.detail = detail;
        record.error = error;
    }

    fn finish(mut self) -> Digest {
        let events = self.position as usize;
        // Faultline records nemesis events as completions only; Jepsen records an invocation
        // and a completion per fault. Counting both would start every fault twice, so the
        // completions (the fault is in effect) are used when there are any.
        let nemesis = if self.nemesis_completions.is_empty() {
            std::mem::take(&mut self.nemesis_invokes)
        } else {
            std::mem::take(&mut self.nemesis_completions)
        };
        let mut digest = Digest {
            ops: self.ops,
            fs: self.fs,
            texts: self.texts,
            nemesis,
            axis: TimeAxis::Position,
            end: events.saturating_sub(1) as u64,
            events,
            unreadable_count: self.unreadable_count,
            problems: self.problems,
            unpaired_completions: self.unpaired_completions,
        };
        if let Some(times) = self.times.filter(|t| !t.is_empty()) {
            let at = |position: u64| times[position as usize];
            for op in &mut digest.ops {
                op.start = at(op.start);
                op.end = op.end.map(at);
            }
            for event in &mut digest.nemesis {
                event.time = at(event.time);
            }
            digest.axis = TimeAxis::Nanos;
            digest.end = times.iter().copied().max().unwrap_or(0);
        }
        digest
    }
}

impl Digest {
    /// Reads a history file of any format faultline imports. JSON Lines (a run's own
    /// `history.jsonl`) is read leniently, line by line; other formats are read whole by
    /// faultline's importers, and a file they cannot read is an error.
    pub fn read(path: &Path) -> Result<Digest, ReportError> {
        let io_error = |source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut head = Vec::new();
        {
            use std::io::Read;
            let file = File::open(path).map_err(io_error)?;
            file.take(4096).read_to_end(&mut head).map_err(io_error)?;
        }
        if detect_format(path, &head) == Format::Jsonl {
            let file = File::open(path).map_err(io_error)?;
            let label = path.display().to_string();
            return Ok(Digest::from_results(JsonlReader::new(file, &label)));
        }
        let (history, _) = read_history_file(path, Format::Auto)?;
        Ok(Digest::from_ops(history.ops))
    }

    /// A digest of events in history order.
    pub fn from_ops(ops: impl IntoIterator<Item = Op>) -> Digest {
        Digest::from_results(ops.into_iter().map(Ok))
    }

    /// A digest of events as a reader yields them: unreadable ones are counted and skipped.
    pub fn from_results(events: impl IntoIterator<Item = Result<Op, HistoryError>>) -> Digest {
        let mut builder = Builder::new();
        for event in events {
            match event {
                Ok(op) => builder.push(op),
                Err(e) => builder.problem(e.to_string()),
            }
        }
        builder.finish()
    }

    pub fn f_name(&self, op: &OpRecord) -> &str {
        &self.fs[op.f as usize]
    }

    pub fn text(&self, id: u32) -> &str {
        &self.texts[id as usize]
    }

    /// Seconds (or events, on a position axis) of an axis value, for plots.
    pub fn axis_seconds(&self, t: u64) -> f64 {
        match self.axis {
            TimeAxis::Nanos => t as f64 / 1e9,
            TimeAxis::Position => t as f64,
        }
    }

    pub fn count(&self, outcome: Outcome) -> usize {
        self.ops.iter().filter(|op| op.outcome == outcome).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(op: Op, index: u64, time: u64) -> Op {
        let mut op = op.with_time(time);
        op.index = index;
        op
    }

    fn nemesis(f: &str, value: Value, index: u64, time: u64) -> Op {
        Op {
            index,
            time: Some(time),
            process: Process::Nemesis,
            kind: OpType::Info,
            f: f.to_string(),
            key: None,
            value,
            error: None,
        }
    }

    #[test]
    fn pairs_operations_and_keeps_nemesis_events() {
        let d = Digest::from_ops(vec![
            at(Op::invoke(0, "write", json!(3)).with_key(json!(1)), 0, 10),
            at(Op::invoke(1, "read", json!(null)), 1, 20),
            nemesis("kill", json!("n1"), 2, 25),
            at(Op::complete(1, OpType::Ok, "read", json!(2)), 3, 30),
            at(
                Op::complete(0, OpType::Info, "write", json!(3)).with_error(json!("timeout")),
                4,
                50,
            ),
            at(Op::invoke(2, "cas", json!([1, 2])), 5, 60),
        ]);
        assert_eq!(d.axis, TimeAxis::Nanos);
        assert_eq!(d.ops.len(), 3);
        let write = &d.ops[0];
        assert_eq!(
            (write.outcome, write.start, write.end),
            (Outcome::Info, 10, Some(50))
        );
        assert_eq!(d.text(write.detail), "key 1: 3");
        assert_eq!(d.text(write.error.unwrap()), "timeout");
        let read = &d.ops[1];
        assert_eq!(read.latency(), Some(10));
        assert_eq!(d.text(read.detail), "→ 2");
        assert_eq!(d.ops[2].outcome, Outcome::Open);
        assert_eq!(d.nemesis.len(), 1);
        assert_eq!((d.nemesis[0].time, d.nemesis[0].f.as_str()), (25, "kill"));
        assert_eq!(d.end, 60);
        assert_eq!(d.fs, ["write", "read", "cas"]);
    }

    #[test]
    fn without_times_the_axis_is_the_event_position() {
        let d = Digest::from_ops(vec![
            Op::invoke(0, "write", json!(1)),
            Op::invoke(1, "write", json!(2)),
            Op::complete(0, OpType::Ok, "write", json!(1)),
            Op::complete(1, OpType::Fail, "write", json!(2)),
        ]);
        assert_eq!(d.axis, TimeAxis::Position);
        assert_eq!((d.ops[0].start, d.ops[0].end), (0, Some(2)));
        assert_eq!((d.ops[1].start, d.ops[1].end), (1, Some(3)));
        assert_eq!(d.end, 3);
    }

    #[test]
    fn unreadable_lines_and_unpaired_completions_are_counted() {
        let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time\":1}\n\
                    {\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":1,\"time\":2}\n\
                    {\"process\":5,\"type\":\"ok\",\"f\":\"read\",\"time\":3}\n\
                    {\"process\":0,\"type\":\"inv";
        let d = Digest::from_results(JsonlReader::new(text.as_bytes(), "cut.jsonl"));
        assert_eq!(d.ops.len(), 1);
        assert_eq!(d.unpaired_completions, 1);
        assert_eq!(d.unreadable_count, 1);
        assert!(d.problems[0].contains("cut.jsonl"), "{:?}", d.problems);
    }

    #[test]
    fn jepsen_nemesis_invocations_are_not_counted_twice() {
        let mut invoke = nemesis("start-partition", json!(null), 0, 1);
        invoke.kind = OpType::Invoke;
        let d = Digest::from_ops(vec![
            invoke,
            nemesis("start-partition", json!({"n1": ["n2"]}), 1, 2),
        ]);
        assert_eq!(d.nemesis.len(), 1);
        assert_eq!(d.nemesis[0].time, 2);
    }
}
