//! The JSON Lines history format: a streaming reader and a writer that flushes op by op.
//!
//! The reader keeps only the parsed ops in memory, never the whole file: it reads bounded
//! chunks, splits them at line ends, and parses the lines of a chunk in parallel (histories of
//! millions of events are common and parsing dominates checking time on easy histories).

mod fast;

use rayon::prelude::*;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::ops::ControlFlow;
use std::path::Path;

use crate::error::HistoryError;
use crate::history::{History, Op, UNASSIGNED_INDEX};

/// How many bytes the parallel reader takes from the file at a time.
pub const READ_CHUNK_BYTES: usize = 8 << 20;
/// How many lines one parallel task parses.
const LINES_PER_TASK: usize = 4096;

/// Parses one line of JSON Lines. `file` and `line` (1-based) only label the error.
///
/// Lines of the common flat shape take a fast path ([`fast`]); anything else, including every
/// bad line, goes through serde_json, which writes the error.
pub fn parse_line(text: &str, file: &str, line: usize) -> Result<Op, HistoryError> {
    if let Some(op) = fast::parse_simple(text) {
        return Ok(op);
    }
    parse_with_serde(text, file, line)
}

fn parse_with_serde(text: &str, file: &str, line: usize) -> Result<Op, HistoryError> {
    serde_json::from_str::<Op>(text)
        .map_err(|e| HistoryError::parse(file, line, format!("expected an operation object: {e}")))
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

/// Reads a whole JSON Lines history from any reader, in parallel chunks.
///
/// Blank lines are skipped; an index missing from an event becomes its position in the file.
pub fn read_jsonl<R: Read + Send>(reader: R, file: &str) -> Result<History, HistoryError> {
    read_jsonl_sized(reader, file, 0)
}

/// As [`read_jsonl`], with the input's size in bytes when known, so the history is allocated
/// once instead of grown (growing a vector of millions of events copies it repeatedly).
pub fn read_jsonl_sized<R: Read + Send>(
    reader: R,
    file: &str,
    size_hint_bytes: u64,
) -> Result<History, HistoryError> {
    // Events are rarely shorter than 48 bytes; untouched capacity costs no memory.
    let mut ops: Vec<Op> = Vec::with_capacity((size_hint_bytes / 48) as usize);
    read_jsonl_batches(reader, file, READ_CHUNK_BYTES, |batch| {
        ops.append(batch);
        ControlFlow::Continue(())
    })?;
    Ok(History::new(ops))
}

/// Reads a JSON Lines history `chunk_bytes` at a time and hands its events to `each` in
/// batches, in file order, while the next chunk is parsed; `each` may stop the reading. Memory
/// holds at most two chunks' events, however long the file.
///
/// The events left in a batch are recycled: later lines are parsed into them, reusing their
/// string buffers, so a reader that keeps few events allocates little. `each` takes what it
/// keeps (`append`, `std::mem::swap`).
///
/// An event without an index gets its position among the file's events (blank lines are
/// skipped). The first bad line in file order is the error, with its line number; the earlier
/// chunks' events have been handed over by then, but not those of the bad line's chunk.
pub fn read_jsonl_batches<R: Read + Send>(
    mut reader: R,
    file: &str,
    chunk_bytes: usize,
    mut each: impl FnMut(&mut Vec<Op>) -> ControlFlow<()> + Send,
) -> Result<(), HistoryError> {
    let mut carry: Vec<u8> = Vec::with_capacity(chunk_bytes + 4096);
    let mut first_line = 1usize;
    let mut next_index = 0u64;
    // The chunk handed over and the chunk parsed swap roles every round.
    let mut ready: Vec<Vec<Op>> = Vec::new();
    let mut parsing: Vec<Vec<Op>> = Vec::new();
    let mut finished = false;
    while !finished {
        let read = (&mut reader)
            .take(chunk_bytes as u64)
            .read_to_end(&mut carry)
            .map_err(|e| HistoryError::parse(file, first_line, format!("read failed: {e}")))?;
        finished = read == 0;
        // Parse only complete lines unless this is the end of the input.
        let cut = if finished {
            carry.len()
        } else {
            match memchr::memrchr(b'\n', &carry) {
                Some(end) => end + 1,
                None => continue,
            }
        };
        let (flow, parsed) = rayon::join(
            || hand_over(&mut ready, &mut each),
            || parse_lines_into(&carry[..cut], file, first_line, &mut parsing),
        );
        if flow.is_break() {
            return Ok(());
        }
        first_line += parsed?;
        for op in parsing.iter_mut().flatten() {
            if op.index == UNASSIGNED_INDEX {
                op.index = next_index;
            }
            next_index += 1;
        }
        std::mem::swap(&mut ready, &mut parsing);
        carry.drain(..cut);
    }
    let _ = hand_over(&mut ready, &mut each);
    // Two chunks' events, freed on every core rather than on this thread alone.
    ready.into_par_iter().chain(parsing).for_each(drop);
    Ok(())
}

fn hand_over(
    batches: &mut [Vec<Op>],
    each: &mut impl FnMut(&mut Vec<Op>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    for batch in batches.iter_mut().filter(|b| !b.is_empty()) {
        each(batch)?;
    }
    ControlFlow::Continue(())
}

/// Parses the complete lines of one chunk in parallel into `runs` (runs of lines in order,
/// parsed into the events already there where there are some), and returns how many line
/// ends the chunk holds.
fn parse_lines_into(
    chunk: &[u8],
    file: &str,
    first_line: usize,
    runs: &mut Vec<Vec<Op>>,
) -> Result<usize, HistoryError> {
    let mut lines: Vec<(usize, usize)> = Vec::with_capacity(chunk.len() / 64);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', chunk) {
        lines.push((start, end));
        start = end + 1;
    }
    let ends = lines.len();
    if start < chunk.len() {
        lines.push((start, chunk.len()));
    }
    runs.resize_with(lines.len().div_ceil(LINES_PER_TASK), Vec::new);
    let results: Vec<Result<(), HistoryError>> = runs
        .par_iter_mut()
        .zip(lines.par_chunks(LINES_PER_TASK))
        .enumerate()
        .map(|(run, (events, lines))| {
            // The task's lines are checked as UTF-8 in one go, which costs far less than line
            // by line. Where that fails, each line is checked alone, so that the error names
            // the bad line and the lines before it are still read.
            let base = lines.first().map_or(0, |line| line.0);
            let whole = std::str::from_utf8(&chunk[base..lines.last().map_or(0, |line| line.1)]);
            let mut kept = 0;
            for (i, &(start, end)) in lines.iter().enumerate() {
                let line = &chunk[start..end];
                if is_blank(line) {
                    continue;
                }
                let number = first_line + run * LINES_PER_TASK + i;
                let text = match whole
                    .ok()
                    .and_then(|text| text.get(start - base..end - base))
                {
                    Some(text) => text,
                    None => std::str::from_utf8(line).map_err(|e| {
                        HistoryError::parse(file, number, format!("not UTF-8: {e}"))
                    })?,
                };
                match events.get_mut(kept) {
                    Some(event) => {
                        if !fast::parse_simple_into(text, event) {
                            *event = parse_with_serde(text, file, number)?;
                        }
                    }
                    None => events.push(parse_line(text, file, number)?),
                }
                kept += 1;
            }
            events.truncate(kept);
            Ok(())
        })
        .collect();
    // The first bad line in file order is the one reported.
    results.into_iter().collect::<Result<(), _>>()?;
    Ok(ends)
}

/// Reads a JSON Lines history file.
pub fn read_jsonl_file(path: &Path) -> Result<History, HistoryError> {
    let file = File::open(path).map_err(|source| HistoryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let size = file.metadata().map_or(0, |m| m.len());
    read_jsonl_sized(file, &path.display().to_string(), size)
}

/// A sequential reader, one event at a time, for tools that follow a file as it grows.
pub struct JsonlReader<R> {
    lines: std::io::Lines<BufReader<R>>,
    file: String,
    line: usize,
    next_index: u64,
}

impl<R: Read> JsonlReader<R> {
    pub fn new(reader: R, file: &str) -> Self {
        JsonlReader {
            lines: BufReader::new(reader).lines(),
            file: file.to_string(),
            line: 0,
            next_index: 0,
        }
    }
}

impl<R: Read> Iterator for JsonlReader<R> {
    type Item = Result<Op, HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line += 1;
            let text = match self.lines.next()? {
                Ok(text) => text,
                Err(e) => {
                    return Some(Err(HistoryError::parse(
                        &self.file,
                        self.line,
                        e.to_string(),
                    )))
                }
            };
            if is_blank(text.as_bytes()) {
                continue;
            }
            return Some(parse_line(&text, &self.file, self.line).map(|mut op| {
                if op.index == UNASSIGNED_INDEX {
                    op.index = self.next_index;
                }
                self.next_index += 1;
                op
            }));
        }
    }
}

/// Writes a history as JSON Lines, flushing after every event so that a run killed at any
/// moment still leaves every recorded event on disk, each on a whole line.
pub struct HistoryWriter<W: Write> {
    out: BufWriter<W>,
    line: Vec<u8>,
}

impl HistoryWriter<File> {
    /// Creates (or truncates) a history file.
    pub fn create(path: &Path) -> Result<Self, HistoryError> {
        let file = File::create(path).map_err(|source| HistoryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(HistoryWriter::new(file))
    }
}

impl<W: Write> HistoryWriter<W> {
    pub fn new(out: W) -> Self {
        HistoryWriter {
            out: BufWriter::new(out),
            line: Vec::with_capacity(256),
        }
    }

    /// Appends one event and flushes it. The line is built first and written in one call, so a
    /// crash never leaves half an event followed by another.
    pub fn write(&mut self, op: &Op) -> std::io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, op)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.out.flush()
    }

    /// Writes many events with a single flush at the end (for exporting whole histories).
    pub fn write_all(&mut self, ops: &[Op]) -> std::io::Result<()> {
        for op in ops {
            serde_json::to_writer(&mut self.out, op)?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }

    pub fn into_inner(self) -> std::io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpType, Process};
    use serde_json::json;

    const EXAMPLE: &str = r#"{"index":0,"time":1000,"process":0,"type":"invoke","f":"write","key":"x","value":3}
{"index":1,"time":1500,"process":1,"type":"invoke","f":"read","key":"x","value":null}
{"index":2,"time":2000,"process":0,"type":"ok","f":"write","key":"x","value":3}
{"index":3,"time":2600,"process":1,"type":"ok","f":"read","key":"x","value":3}
"#;

    #[test]
    fn reads_the_contract_example() {
        let h = read_jsonl(EXAMPLE.as_bytes(), "example").unwrap();
        assert_eq!(h.len(), 4);
        assert_eq!(h.ops[3].value, json!(3));
        assert_eq!(h.ops[3].kind, OpType::Ok);
        assert_eq!(h.ops[1].process, Process::Client(1));
    }

    #[test]
    fn sequential_and_parallel_readers_agree() {
        let parallel = read_jsonl(EXAMPLE.as_bytes(), "example").unwrap();
        let sequential: Vec<Op> = JsonlReader::new(EXAMPLE.as_bytes(), "example")
            .map(Result::unwrap)
            .collect();
        assert_eq!(parallel.ops, sequential);
    }

    #[test]
    fn missing_indexes_come_from_file_order_and_blank_lines_are_skipped() {
        let text = "\n{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n\n   \n{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":1}";
        let h = read_jsonl(text.as_bytes(), "t").unwrap();
        assert_eq!(
            h.ops.iter().map(|o| o.index).collect::<Vec<_>>(),
            vec![0, 1]
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n\n{\"process\":0,\"type\":\"done\"}\n";
        let err = read_jsonl(text.as_bytes(), "h.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("h.jsonl:3: expected an operation object"),
            "{err}"
        );
        let err: Vec<_> = JsonlReader::new(text.as_bytes(), "h.jsonl").collect();
        assert!(err[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .starts_with("h.jsonl:3:"));
    }

    #[test]
    fn a_line_that_is_not_utf8_is_named_among_good_ones() {
        let good = "{\"process\":0,\"type\":\"invoke\",\"f\":\"w\",\"value\":\"\u{e9}t\u{e9}\"}\n";
        let mut text = good.repeat(3).into_bytes();
        text.extend_from_slice(b"{\"process\":0,\"type\":\"ok\",\"f\":\"w\",\"value\":\"\xff\"}\n");
        text.extend_from_slice(good.as_bytes());
        let err = read_jsonl(&text[..], "h.jsonl").unwrap_err().to_string();
        assert!(err.starts_with("h.jsonl:4: not UTF-8"), "{err}");
        // Without the bad line, the others read, their text intact.
        let history = read_jsonl(good.repeat(3).as_bytes(), "h.jsonl").unwrap();
        assert_eq!(history.ops[2].value, serde_json::json!("\u{e9}t\u{e9}"));
    }

    #[test]
    fn writer_output_reads_back() {
        let h = read_jsonl(EXAMPLE.as_bytes(), "example").unwrap();
        let mut w = HistoryWriter::new(Vec::new());
        for op in &h.ops {
            w.write(op).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        assert_eq!(String::from_utf8(bytes).unwrap(), EXAMPLE);
    }

    /// Events recycled for later lines of other shapes read as the sequential reader reads
    /// them, whatever the chunk size.
    #[test]
    fn recycled_events_read_as_fresh_ones() {
        let shapes = [
            r#"{"index":7,"time":5,"process":0,"type":"invoke","f":"put","key":"k","value":"a b c"}"#,
            r#"{"process":"nemesis","type":"info","f":"start","value":null,"error":"e"}"#,
            r#"{"process":1,"type":"ok","f":"cas","key":3,"value":[1,2],"error":"x"}"#,
            r#"{"process":2,"type":"fail","f":"r","value":true}"#,
            "",
            r#"{"process":3,"type":"ok","f":"w","key":null,"value":12}"#,
            r#"{"time":9,"process":4,"type":"invoke","f":"a\"b","value":"t"}"#,
        ];
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(shapes[(i * 5) % shapes.len()]);
            text.push('\n');
        }
        let expected: Vec<Op> = JsonlReader::new(text.as_bytes(), "t")
            .map(Result::unwrap)
            .collect();
        for chunk in [1, 64, 300, 1 << 20] {
            let mut seen = Vec::new();
            read_jsonl_batches(text.as_bytes(), "t", chunk, |batch| {
                seen.extend(batch.iter().cloned());
                ControlFlow::Continue(())
            })
            .unwrap();
            assert_eq!(seen, expected, "chunks of {chunk} bytes");
        }
    }

    #[test]
    fn large_input_spans_chunks_with_correct_line_numbers() {
        let mut text = String::new();
        let line = r#"{"process":0,"type":"invoke","f":"write","value":"padding-padding-padding-padding"}"#;
        let count = READ_CHUNK_BYTES / line.len() + 1000;
        for i in 0..count {
            text.push_str(line);
            text.push('\n');
            if i == count - 5 {
                text.push_str("{oops}\n");
            }
        }
        let err = read_jsonl(text.as_bytes(), "big").unwrap_err().to_string();
        assert!(err.starts_with(&format!("big:{}:", count - 3)), "{err}");
    }
}
