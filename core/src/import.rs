//! Reading histories written by other tools: Jepsen / Knossos / Elle EDN, and Porcupine's etcd
//! and key-value logs, besides faultline's own JSON Lines.
//!
//! Every format becomes the same [`History`] of [`Op`]s (`CONTRACTS.md` §1), so a checker never
//! knows where a history came from. [`read_history_file`] guesses the format from the file name
//! and its first bytes when asked to ([`Format::Auto`]) and says which one it used.
//!
//! ```
//! use faultline_core::import::{read_history_str, Format};
//! use faultline_core::{OpType, Process};
//! let text = "[{:process 0, :type :invoke, :f :write, :value 3}\n \
//!             {:process 0, :type :ok, :f :write, :value 3}]";
//! let (history, format) = read_history_str(text, "history.edn", Format::Auto).unwrap();
//! assert_eq!(format, Format::Edn);
//! assert_eq!(history.ops[1].kind, OpType::Ok);
//! assert_eq!(history.ops[1].process, Process::Client(0));
//! ```
//!
//! What each format becomes, where it is not one to one:
//! - EDN (Jepsen, Knossos, Elle): each op map becomes an [`Op`]; keywords become strings and
//!   `:process :nemesis` becomes [`Process::Nemesis`]. Extra keys are ignored; `:time` and
//!   `:index` are kept when they are non-negative integers (Knossos's `:time` is not monotonic
//!   and stays so), else the index is the position in the history. An op map without `:f`
//!   whose value is a transaction gets `f = "txn"`. Op maps without `:process` (Elle's
//!   `paper-example.edn`) get fresh processes: each such invocation opens one, and each such
//!   completion completes the oldest one still open.
//! - Porcupine etcd logs: `:fail` / `:info` with `:timed-out` become `info` with the
//!   invocation's value and error [`TIMED_OUT`]; `:fail :cas` becomes `fail` with error
//!   [`COMPARE_FAILED`]; a process that goes on after a `:fail :read :timed-out` (now `info`)
//!   continues as a new process.
//! - Porcupine kv logs: EDN op maps, checked to be get / put / append on a string key.
//!
//! Design decision: the conversions keep each source's meaning rather than normalising it
//! away. In Porcupine's etcd logs a `:fail :cas` means the comparison ran and failed, an
//! observation of the register, whereas in Jepsen and Knossos `:fail` means "did not happen".
//! So the etcd conversion marks those completions with the error `"compare-failed"`, which the
//! checker treats as a real read of "not the expected value".

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;
use std::str::FromStr;

use serde_json::Value;

use crate::edn::{Edn, EdnReader};
use crate::error::HistoryError;
use crate::history::{History, Op, OpType, Process};
use crate::jsonl;

mod edn_fast;

/// How many bytes from the start of a file [`Format::Auto`] looks at.
pub const DETECT_HEAD_BYTES: usize = 64 << 10;

/// The error a Porcupine etcd `:fail :cas` completion carries: the comparison ran and the
/// register did not hold the expected value. Unlike a Jepsen `:fail`, it is an observation.
pub const COMPARE_FAILED: &str = "compare-failed";

/// The error of a Porcupine completion whose outcome is unknown because the request timed out.
pub const TIMED_OUT: &str = "timed-out";

/// The history file formats faultline reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Guess from the file name and its first bytes (see [`detect_format`]).
    Auto,
    /// faultline's own JSON Lines (`CONTRACTS.md` §1).
    Jsonl,
    /// Jepsen / Knossos / Elle EDN op maps, one after another or in one vector or list.
    Edn,
    /// Porcupine's Jepsen etcd logs: `INFO  jepsen.util - <process> <type> <f> <value>`.
    PorcupineEtcd,
    /// Porcupine's key-value logs: EDN op maps with `:f` get / put / append and a string `:key`.
    PorcupineKv,
}

impl Format {
    /// The spelling `--format` accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Jsonl => "jsonl",
            Format::Edn => "edn",
            Format::PorcupineEtcd => "porcupine-etcd",
            Format::PorcupineKv => "porcupine-kv",
        }
    }

    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 5] = [
        Format::Auto,
        Format::Jsonl,
        Format::Edn,
        Format::PorcupineEtcd,
        Format::PorcupineKv,
    ];
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--format` value that names no format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown history format {0:?} (expected auto, jsonl, edn, porcupine-etcd or porcupine-kv)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        Format::ALL
            .into_iter()
            .find(|format| format.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// Guesses a file's format from its name and its first bytes; never returns [`Format::Auto`].
///
/// In order: a `.jsonl` / `.json` name, or text starting with `{` then `"`, is JSON Lines; a
/// first line `INFO ... jepsen.util ...` is a Porcupine etcd log; EDN whose first op maps have
/// a string `:key` and `:f` one of `:get :put :append` is a Porcupine kv log; other text is
/// EDN. A blank file goes by its name (`.log` is an etcd log, whose empty file means an empty
/// history), else EDN.
pub fn detect_format(path: &Path, head: &[u8]) -> Format {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if extension == "jsonl" || extension == "json" {
        return Format::Jsonl;
    }
    let mut rest = head.iter().skip_while(|b| b.is_ascii_whitespace());
    match rest.next() {
        None => {
            return if extension == "log" {
                Format::PorcupineEtcd
            } else {
                Format::Edn
            };
        }
        Some(b'{') if rest.find(|b| !b.is_ascii_whitespace()) == Some(&b'"') => {
            return Format::Jsonl;
        }
        _ => {}
    }
    // The head may end inside a character: look only at its valid UTF-8 prefix.
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).expect("a valid prefix"),
    };
    let first_line = text
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("");
    if first_line.starts_with("INFO") && first_line.contains("jepsen.util") {
        return Format::PorcupineEtcd;
    }
    if looks_like_porcupine_kv(text) {
        return Format::PorcupineKv;
    }
    Format::Edn
}

/// True when the first (up to 3) op maps of EDN text are Porcupine kv operations. The head may
/// be cut off mid-value, so a parse error after a matching map still counts as a match.
fn looks_like_porcupine_kv(text: &str) -> bool {
    const MAPS_TO_CHECK: usize = 3;
    let mut matched = 0;
    for item in EdnReader::new(text, "")
        .unwrap_top_level_sequences()
        .take(MAPS_TO_CHECK)
    {
        match item {
            Ok((_, value)) if is_porcupine_kv_op(&value) => matched += 1,
            Ok(_) => return false,
            Err(_) => break,
        }
    }
    matched > 0
}

fn is_porcupine_kv_op(value: &Edn) -> bool {
    matches!(value.get("key"), Some(Edn::String(_)))
        && matches!(
            value.get("f").and_then(Edn::as_keyword),
            Some("get" | "put" | "append")
        )
}

/// The format a history file is in: `format` itself, or, for [`Format::Auto`], the format
/// [`read_history_file`] would guess from the file's name and first bytes.
pub fn file_format(path: &Path, format: Format) -> Result<Format, HistoryError> {
    if format != Format::Auto {
        return Ok(format);
    }
    let io_error = |source| HistoryError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = Vec::new();
    File::open(path)
        .map_err(io_error)?
        .take(DETECT_HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(io_error)?;
    Ok(detect_format(path, &head))
}

/// Reads a history file in `format` ([`Format::Auto`] guesses it) and returns the format used.
///
/// JSON Lines is streamed; the other formats are read into memory as text first, then
/// converted op by op.
pub fn read_history_file(path: &Path, format: Format) -> Result<(History, Format), HistoryError> {
    let io_error = |source| HistoryError::Io {
        path: path.to_path_buf(),
        source,
    };
    let label = path.display().to_string();
    let mut file = File::open(path).map_err(io_error)?;
    let mut head = Vec::new();
    (&mut file)
        .take(DETECT_HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(io_error)?;
    let format = match format {
        Format::Auto => detect_format(path, &head),
        chosen => chosen,
    };
    if format == Format::Jsonl {
        let history = if head.len() < DETECT_HEAD_BYTES {
            // The head is the whole file.
            read_small_jsonl(&head, &label)?
        } else {
            let size = file.metadata().map_or(0, |m| m.len());
            jsonl::read_jsonl_sized(Cursor::new(head).chain(file), &label, size)?
        };
        return Ok((history, format));
    }
    let mut bytes = head;
    if let Ok(metadata) = file.metadata() {
        bytes.reserve((metadata.len() as usize).saturating_sub(bytes.len()));
    }
    file.read_to_end(&mut bytes).map_err(io_error)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        HistoryError::parse(&label, line, format!("not UTF-8: {}", e.utf8_error()))
    })?;
    read_text(&text, &label, format).map(|history| (history, format))
}

/// Reads a history from text; `file_label` names it in errors and, for [`Format::Auto`], its
/// extension counts as a file name's would.
pub fn read_history_str(
    text: &str,
    file_label: &str,
    format: Format,
) -> Result<(History, Format), HistoryError> {
    let format = match format {
        Format::Auto => {
            let head = &text.as_bytes()[..text.len().min(DETECT_HEAD_BYTES)];
            detect_format(Path::new(file_label), head)
        }
        chosen => chosen,
    };
    read_text(text, file_label, format).map(|history| (history, format))
}

fn read_text(text: &str, file: &str, format: Format) -> Result<History, HistoryError> {
    match format {
        Format::Jsonl if text.len() < DETECT_HEAD_BYTES => read_small_jsonl(text.as_bytes(), file),
        Format::Jsonl => jsonl::read_jsonl(text.as_bytes(), file),
        Format::Edn => read_edn_history(text, file, EdnFlavor::Jepsen),
        Format::PorcupineKv => read_edn_history(text, file, EdnFlavor::PorcupineKv),
        Format::PorcupineEtcd => read_porcupine_etcd(text, file),
        Format::Auto => unreachable!("Auto is resolved by the callers"),
    }
}

/// Reads a small JSON Lines history sequentially: the parallel reader's chunk buffer
/// (`jsonl::READ_CHUNK_BYTES`, zeroed on every call) costs more than parsing a few lines.
fn read_small_jsonl(bytes: &[u8], file: &str) -> Result<History, HistoryError> {
    jsonl::JsonlReader::new(bytes, file)
        .collect::<Result<Vec<Op>, _>>()
        .map(History::new)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum EdnFlavor {
    Jepsen,
    /// Also checks that each op is a Porcupine kv operation, since the format implies the
    /// string key-value model.
    PorcupineKv,
}

/// Reads EDN op maps, one after another or inside top-level vectors or lists.
///
/// Ops without `:process` (Elle's `paper-example.edn` has none) are paired in file order: an
/// invocation without a process opens a fresh process, and a completion without a process
/// completes the oldest such invocation still open. These processes are numbered after the
/// largest integer process in the file, so they never collide with real ones.
///
/// Flat op maps take a fast path (`edn_fast`) that reads them without building EDN values;
/// any text it does not read is read by the full [`EdnReader`], which also reports errors.
fn read_edn_history(text: &str, file: &str, flavor: EdnFlavor) -> Result<History, HistoryError> {
    // One op per map, near enough (a brace inside a string counts too): counting them is
    // much cheaper than growing the vector of ops.
    let maps = memchr::memchr_iter(b'{', text.as_bytes()).count();
    let mut ops = EdnOps::new(flavor, maps);
    // Lines are not tracked on the fast path: if an op breaks a rule, the full reader below
    // reads the text again and reports the op with its line.
    if edn_fast::read_ops(text, &mut ops).is_some() {
        return Ok(ops.finish());
    }
    let mut ops = EdnOps::new(flavor, 0);
    let mut reader = EdnReader::new(text, file).unwrap_top_level_sequences();
    let mut position = 0u64;
    while let Some((line, value)) = reader.next_value()? {
        let parsed =
            op_from_edn(value, position).map_err(|why| HistoryError::parse(file, line, why))?;
        ops.push(parsed.op, parsed.has_process)
            .map_err(|why| HistoryError::parse(file, line, why))?;
        position += 1;
    }
    Ok(ops.finish())
}

/// The ops of an EDN history as they are read, in file order, and what it takes to give the
/// ops without `:process` their processes once the file is read.
struct EdnOps {
    flavor: EdnFlavor,
    ops: Vec<Op>,
    max_client: Option<u64>,
    /// (position in `ops`, anonymous process number) of every op without `:process`.
    anonymous: Vec<(usize, u64)>,
    open_anonymous: VecDeque<u64>,
    next_anonymous: u64,
}

impl EdnOps {
    fn new(flavor: EdnFlavor, capacity: usize) -> EdnOps {
        EdnOps {
            flavor,
            ops: Vec::with_capacity(capacity),
            max_client: None,
            anonymous: Vec::new(),
            open_anonymous: VecDeque::new(),
            next_anonymous: 0,
        }
    }

    /// Adds the next op; the error is the reason it breaks a rule, without file and line.
    fn push(&mut self, mut op: Op, has_process: bool) -> Result<(), String> {
        if self.flavor == EdnFlavor::PorcupineKv {
            check_porcupine_kv_op(&op)?;
        }
        if has_process {
            if let Process::Client(id) = op.process {
                self.max_client = Some(self.max_client.map_or(id, |max| max.max(id)));
            }
        } else {
            let number = if op.kind == OpType::Invoke {
                let number = self.next_anonymous;
                self.next_anonymous += 1;
                self.open_anonymous.push_back(number);
                number
            } else {
                self.open_anonymous.pop_front().ok_or_else(|| {
                    format!(
                        "{} completion without :process, and no invocation without :process \
                         is open for it to complete",
                        op.kind
                    )
                })?
            };
            self.anonymous.push((self.ops.len(), number));
            // Placeholder until the largest real process is known.
            op.process = Process::Client(number);
        }
        self.ops.push(op);
        Ok(())
    }

    /// The history, with the ops without `:process` numbered after the largest real process.
    fn finish(mut self) -> History {
        let first_anonymous = self.max_client.map_or(0, |max| max.saturating_add(1));
        for (position, number) in self.anonymous {
            self.ops[position].process = Process::Client(first_anonymous.saturating_add(number));
        }
        History::new(self.ops)
    }
}

struct ParsedOp {
    op: Op,
    has_process: bool,
}

/// Converts one EDN op map. `position` is the op's place in the history, its index unless the
/// map gives one. Errors are the reason only; the caller adds file and line.
fn op_from_edn(value: Edn, position: u64) -> Result<ParsedOp, String> {
    let Edn::Map(pairs) = value else {
        return Err(format!(
            "expected an operation map {{:process .. :type .. :f .. :value ..}}, found {}",
            value.type_name()
        ));
    };
    let mut process = None;
    let mut kind = None;
    let mut f = None;
    let mut op_value = None;
    let mut key = None;
    let mut error = None;
    let mut time = None;
    let mut index = None;
    for (k, v) in pairs {
        // Unknown keys, and keys that are not keywords, are extra data and ignored.
        let Edn::Keyword(name) = k else { continue };
        let slot = match name.as_str() {
            "process" => &mut process,
            "type" => &mut kind,
            "f" => &mut f,
            "value" => &mut op_value,
            "key" => &mut key,
            "error" => &mut error,
            "time" => &mut time,
            "index" => &mut index,
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return Err(format!("the operation map has :{name} twice"));
        }
    }
    let kind = match &kind {
        None => return Err("the operation map has no :type".to_string()),
        Some(Edn::Keyword(t) | Edn::String(t)) => match t.as_str() {
            "invoke" => OpType::Invoke,
            "ok" => OpType::Ok,
            "fail" => OpType::Fail,
            "info" => OpType::Info,
            other => {
                return Err(format!(
                    ":type is :{other}; expected :invoke, :ok, :fail or :info"
                ))
            }
        },
        Some(other) => {
            return Err(format!(
                ":type is {} `{other}`; expected :invoke, :ok, :fail or :info",
                other.type_name()
            ))
        }
    };
    let has_process = process.is_some();
    let process = match &process {
        None => Process::Client(0),
        Some(Edn::Int(n)) => {
            Process::Client(u64::try_from(*n).map_err(|_| format!(":process {n} is negative"))?)
        }
        Some(Edn::Keyword(name) | Edn::String(name)) if name == "nemesis" => Process::Nemesis,
        Some(other) => {
            return Err(format!(
                ":process is {} `{other}`; expected a non-negative integer or :nemesis",
                other.type_name()
            ))
        }
    };
    let f = match f {
        Some(Edn::Keyword(name) | Edn::String(name) | Edn::Symbol(name)) => name,
        Some(other) => {
            return Err(format!(
                ":f is {} `{other}`; expected a keyword such as :read",
                other.type_name()
            ))
        }
        // Elle's paper example names no :f; its values are transactions.
        None if op_value.as_ref().is_some_and(is_transaction) => "txn".to_string(),
        None => {
            return Err(
                "the operation map has no :f, and its :value is not a transaction (a \
                        vector of micro-operation vectors) from which to infer one"
                    .to_string(),
            )
        }
    };
    let index = match index {
        Some(Edn::Int(n)) if n >= 0 => n as u64,
        _ => position,
    };
    let time = match time {
        Some(Edn::Int(n)) if n >= 0 => Some(n as u64),
        _ => None,
    };
    let op = Op {
        index,
        time,
        process,
        kind,
        f,
        key: key.map(Edn::into_json),
        value: op_value.map_or(Value::Null, Edn::into_json),
        error: error.map(Edn::into_json),
    };
    Ok(ParsedOp { op, has_process })
}

/// A vector of micro-operation vectors, as in `[[:append 1 2] [:r 1 nil]]`.
fn is_transaction(value: &Edn) -> bool {
    match value {
        Edn::Vector(micro_ops) => micro_ops.iter().all(|m| matches!(m, Edn::Vector(_))),
        _ => false,
    }
}

fn check_porcupine_kv_op(op: &Op) -> Result<(), String> {
    if !matches!(op.f.as_str(), "get" | "put" | "append") {
        return Err(format!(
            "a Porcupine kv operation has :f :get, :put or :append, not :{}",
            op.f
        ));
    }
    if !matches!(op.key, Some(Value::String(_))) {
        return Err("a Porcupine kv operation needs a string :key".to_string());
    }
    if !matches!(op.value, Value::Null | Value::String(_)) {
        return Err(format!(
            "a Porcupine kv :value is nil or a string, not {}",
            op.value
        ));
    }
    Ok(())
}

/// Reads a Porcupine etcd log (see the corpus README and `CONTRACTS.md` §1).
///
/// Conversions, where they are not one to one:
/// - a `:fail` or `:info` completion with value `:timed-out` is `info` (unknown) with the
///   invocation's value and error [`TIMED_OUT`]; Porcupine itself treats both as unknown;
/// - `:fail :cas [a b]` is `fail` with error [`COMPARE_FAILED`]: the comparison ran and failed.
///
/// Jepsen kept the process of a `:fail :read :timed-out`, since to Jepsen it had failed. Read
/// as `info`, that process must not invoke again (`CONTRACTS.md` §1), so its next invocation
/// continues as a new process, numbered after the largest process in the log, as Jepsen
/// itself does after an `:info`.
///
/// Invocations that never complete stay open. Blank lines are skipped.
fn read_porcupine_etcd(text: &str, file: &str) -> Result<History, HistoryError> {
    let mut events = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if !line.trim().is_empty() {
            events.push(parse_etcd_line(line, file, number + 1)?);
        }
    }
    let mut next_fresh = events
        .iter()
        .map(|e| e.process)
        .max()
        .map_or(0, |max| max.saturating_add(1));
    // The process each logged process id currently stands for, when it had to be renamed.
    let mut renamed: HashMap<u64, u64> = HashMap::new();
    // Processes whose last completion was info: their next invocation needs a new process.
    let mut crashed: HashSet<u64> = HashSet::new();
    // The value of each process's open invocation, which a timed-out completion repeats.
    let mut open: HashMap<u64, Value> = HashMap::new();
    let mut ops: Vec<Op> = Vec::with_capacity(events.len());
    for event in events {
        let mut process = renamed
            .get(&event.process)
            .copied()
            .unwrap_or(event.process);
        let timed_out = event.value.as_keyword() == Some("timed-out");
        let mut op = match event.kind {
            OpType::Invoke => {
                if crashed.remove(&process) {
                    process = next_fresh;
                    next_fresh = next_fresh.saturating_add(1);
                    renamed.insert(event.process, process);
                }
                let value = event.value.to_json();
                open.insert(process, value.clone());
                Op::invoke(process, &event.f, value)
            }
            kind if timed_out && kind != OpType::Ok => {
                let value = open.remove(&process).unwrap_or(Value::Null);
                Op::complete(process, OpType::Info, &event.f, value)
                    .with_error(Value::from(TIMED_OUT))
            }
            OpType::Fail if event.f == "cas" => {
                open.remove(&process);
                Op::complete(process, OpType::Fail, &event.f, event.value.to_json())
                    .with_error(Value::from(COMPARE_FAILED))
            }
            kind => {
                open.remove(&process);
                Op::complete(process, kind, &event.f, event.value.to_json())
            }
        };
        if op.kind == OpType::Info {
            crashed.insert(process);
        }
        op.index = ops.len() as u64;
        ops.push(op);
    }
    Ok(History::new(ops))
}

struct EtcdEvent {
    process: u64,
    kind: OpType,
    f: String,
    value: Edn,
}

/// Splits off the first whitespace-separated field.
fn next_field(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let end = text.find(|c: char| c.is_whitespace()).unwrap_or(text.len());
    (&text[..end], &text[end..])
}

fn parse_etcd_line(line: &str, file: &str, number: usize) -> Result<EtcdEvent, HistoryError> {
    let bad = |why: String| HistoryError::parse(file, number, why);
    let (level, rest) = next_field(line);
    let (logger, rest) = next_field(rest);
    let (dash, rest) = next_field(rest);
    if level != "INFO" || logger != "jepsen.util" || dash != "-" {
        return Err(bad(format!(
            "expected an event line `INFO  jepsen.util - <process> <type> <f> <value>`, found \
             `{}`",
            excerpt(line)
        )));
    }
    let (process, rest) = next_field(rest);
    let (kind, rest) = next_field(rest);
    let (f, rest) = next_field(rest);
    let value = rest.trim();
    let process = process.parse::<u64>().map_err(|_| {
        bad(format!(
            "expected a non-negative integer process, found `{}`",
            excerpt(process)
        ))
    })?;
    let kind = match kind {
        ":invoke" => OpType::Invoke,
        ":ok" => OpType::Ok,
        ":fail" => OpType::Fail,
        ":info" => OpType::Info,
        other => {
            return Err(bad(format!(
                "expected the type :invoke, :ok, :fail or :info, found `{}`",
                excerpt(other)
            )))
        }
    };
    let f = match f.strip_prefix(':') {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => {
            return Err(bad(format!(
                "expected an operation keyword such as :read, found `{}`",
                excerpt(f)
            )))
        }
    };
    if value.is_empty() {
        return Err(bad(format!(
            "expected a value after :{f}, found the end of the line"
        )));
    }
    let mut reader = EdnReader::new(value, file).starting_at_line(number);
    let value = match reader.next_value()? {
        Some((_, value)) => value,
        None => return Err(bad(format!("expected a value after :{f}, found none"))),
    };
    if reader.next_value()?.is_some() {
        return Err(bad(format!(
            "expected one value after :{f}, found more: `{}`",
            excerpt(rest.trim())
        )));
    }
    Ok(EtcdEvent {
        process,
        kind,
        f,
        value,
    })
}

/// Cuts long input quoted in error messages, on a character boundary.
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str, format: Format) -> History {
        read_history_str(text, "t", format)
            .unwrap_or_else(|e| panic!("{e}"))
            .0
    }

    fn read_err(text: &str, format: Format) -> String {
        read_history_str(text, "t", format).unwrap_err().to_string()
    }

    #[test]
    fn format_names_round_trip() {
        for format in Format::ALL {
            assert_eq!(format.as_str().parse::<Format>(), Ok(format));
            assert_eq!(format.to_string(), format.as_str());
        }
        let e = "yaml".parse::<Format>().unwrap_err();
        assert!(e.to_string().contains("porcupine-etcd"), "{e}");
    }

    #[test]
    fn detection() {
        let p = |name: &str| Path::new(name).to_path_buf();
        assert_eq!(detect_format(&p("h.jsonl"), b"[:not json]"), Format::Jsonl);
        assert_eq!(detect_format(&p("h.JSON"), b""), Format::Jsonl);
        assert_eq!(
            detect_format(&p("h"), b"\n  { \"process\":0}"),
            Format::Jsonl
        );
        assert_eq!(detect_format(&p("h.txt"), b"{:process 0}"), Format::Edn);
        assert_eq!(
            detect_format(&p("x"), b"\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\n"),
            Format::PorcupineEtcd
        );
        assert_eq!(
            detect_format(&p("etcd_095.log"), b""),
            Format::PorcupineEtcd
        );
        assert_eq!(detect_format(&p("empty.edn"), b"  \n"), Format::Edn);
        let kv = b"{:process 0, :type :invoke, :f :append, :key \"0\", :value \"x\"}\n{:process 0,";
        assert_eq!(detect_format(&p("c01.txt"), kv), Format::PorcupineKv);
        assert_eq!(
            detect_format(
                &p("h"),
                b"[{:process 0 :type :invoke :f :get :key \"k\" :value nil}]"
            ),
            Format::PorcupineKv
        );
        // A kv-looking op followed by something else is plain EDN.
        assert_eq!(
            detect_format(&p("h"), b"{:f :get :key \"k\"} {:f :read :key \"k\"}"),
            Format::Edn
        );
        // Integer keys are Jepsen's independent keys, not Porcupine's kv.
        assert_eq!(
            detect_format(&p("h"), b"{:f :put :key 1 :value 2}"),
            Format::Edn
        );
        assert_eq!(detect_format(&p("h"), b"(oops"), Format::Edn);
        assert_eq!(detect_format(&p("h"), &[0xff, 0xfe, 0x00]), Format::Edn);
    }

    const KNOSSOS: &str = r#"[{:process 0, :type :invoke, :f :cas, :value [1 2], :time 50}
 {:process 0, :type :fail, :f :cas, :value [1 2], :time 20, :error "boom {:x \"y\"}"}
 ; a comment between ops
 {:process :nemesis, :type :info, :f :start, :value nil}
 {:process 1, :type :invoke, :f :read}
 {:type :ok, :process 1, :f :read, :value 3, :index 77, :extra #{1 2}}]"#;

    #[test]
    fn knossos_vector_of_op_maps() {
        let h = read(KNOSSOS, Format::Edn);
        assert_eq!(h.len(), 5);
        let op = &h.ops[0];
        assert_eq!(
            (op.process, op.kind, op.f.as_str()),
            (Process::Client(0), OpType::Invoke, "cas")
        );
        assert_eq!(op.value, json!([1, 2]));
        assert_eq!(op.time, Some(50));
        // Non-monotonic time is kept as it is.
        assert_eq!(h.ops[1].time, Some(20));
        assert_eq!(h.ops[1].error, Some(json!("boom {:x \"y\"}")));
        assert_eq!(h.ops[2].process, Process::Nemesis);
        // A missing :value is null; a missing :index is the position; a given one is kept.
        assert_eq!(h.ops[3].value, Value::Null);
        assert_eq!(h.ops[3].index, 3);
        assert_eq!(h.ops[4].index, 77);
        assert_eq!(h.ops[4].value, json!(3));
        assert!(h.pairs().is_ok());
    }

    #[test]
    fn plain_sequence_and_list_forms_read_alike() {
        let vector = read(KNOSSOS, Format::Edn);
        let list = read(
            &format!("({})", &KNOSSOS[1..KNOSSOS.len() - 1]),
            Format::Edn,
        );
        let sequence = read(&KNOSSOS[1..KNOSSOS.len() - 1], Format::Edn);
        assert_eq!(vector, list);
        assert_eq!(vector, sequence);
    }

    #[test]
    fn keys_and_transactions() {
        let text = "{:process 3, :type :invoke, :f :txn, :key 7, \
                    :value [[:append 9 2] [:r 9 nil]], :time -5, :index -1}";
        let op = &read(text, Format::Edn).ops[0];
        assert_eq!(op.key, Some(json!(7)));
        assert_eq!(op.value, json!([["append", 9, 2], ["r", 9, null]]));
        assert_eq!(op.time, None);
        assert_eq!(op.index, 0);
    }

    #[test]
    fn elle_paper_example_without_process_or_f() {
        let text = "{:index 0 :type :invoke :value [[:append 253 1]]}\n\
                    {:index 1 :type :ok :value [[:append 253 1]]}\n\
                    {:index 2 :type :invoke, :value [[:r 253 nil]]}\n\
                    {:index 3 :type :ok, :value [[:r 253 [1]]]}";
        let h = read(text, Format::Edn);
        assert!(h.ops.iter().all(|op| op.f == "txn"));
        let processes: Vec<Process> = h.ops.iter().map(|op| op.process).collect();
        use Process::Client;
        assert_eq!(processes, vec![Client(0), Client(0), Client(1), Client(1)]);
        assert_eq!(h.pairs().unwrap().len(), 2);
    }

    #[test]
    fn anonymous_processes_come_after_real_ones_and_pair_in_order() {
        let text = "{:process 5 :type :invoke :f :read}\n\
                    {:type :invoke :value [[:r 1 nil]]}\n\
                    {:type :invoke :value [[:r 2 nil]]}\n\
                    {:type :ok :value [[:r 1 []]]}\n\
                    {:type :info :value [[:r 2 nil]]}";
        let h = read(text, Format::Edn);
        let processes: Vec<Process> = h.ops.iter().map(|op| op.process).collect();
        use Process::Client;
        assert_eq!(
            processes,
            vec![Client(5), Client(6), Client(7), Client(6), Client(7)]
        );
        let e = read_err("{:type :ok :value [[:r 1 nil]]}", Format::Edn);
        assert!(e.contains("no invocation without :process"), "{e}");
    }

    #[test]
    fn op_map_errors_name_the_line() {
        let cases = [
            ("{:process 0 :f :read}", "no :type"),
            ("{:process 0 :type :done :f :read}", ":type is :done"),
            ("{:process 0 :type 1 :f :read}", ":type is an integer `1`"),
            (
                "{:process :client :type :ok :f :read}",
                ":process is a keyword `:client`",
            ),
            (
                "{:process -1 :type :ok :f :read}",
                ":process -1 is negative",
            ),
            (
                "{:process 1.5 :type :ok :f :read}",
                "expected a non-negative integer or :nemesis",
            ),
            ("{:process 0 :type :ok :f 3}", ":f is an integer"),
            ("{:process 0 :type :ok :value 3}", "no :f"),
            ("{:process 0 :type :ok :type :ok :f :read}", ":type twice"),
            ("[1]", "expected an operation map"),
            (":x", "expected an operation map"),
        ];
        for (op, why) in cases {
            let e = read_err(
                &format!("{{:process 0 :type :invoke :f :read}}\n\n{op}"),
                Format::Edn,
            );
            assert!(e.starts_with("t:3: "), "{op}: {e}");
            assert!(e.contains(why), "{op}: {e}");
        }
    }

    #[test]
    fn edn_syntax_errors_come_through_with_lines() {
        let e = read_err("{:process 0 :type :invoke\n :f :read\n", Format::Edn);
        assert_eq!(
            e,
            "t:3: expected `}` to close the map opened on line 1, found the end of the input"
        );
    }

    const ETCD: &str = "INFO  jepsen.util - 0\t:invoke\t:read\tnil
INFO  jepsen.util - 0\t:ok\t:read\tnil
INFO  jepsen.util - 1\t:invoke\t:write\t4
INFO  jepsen.util - 2   :invoke :cas    [3 0]
INFO  jepsen.util - 0\t:invoke\t:read\tnil
INFO  jepsen.util - 2\t:fail\t:cas\t[3 0]
INFO  jepsen.util - 1\t:info\t:write\t:timed-out
INFO  jepsen.util - 0\t:fail\t:read\t:timed-out
INFO  jepsen.util - 3\t:invoke\t:cas\t[4 1]
INFO  jepsen.util - 3\t:info\t:cas\t:timed-out
INFO  jepsen.util - 4\t:invoke\t:cas\t[0 1]
INFO  jepsen.util - 4\t:ok\t:cas\t[0 1]
INFO  jepsen.util - 5\t:invoke\t:write\t2
INFO  jepsen.util - 5\t:ok\t:write\t2
INFO  jepsen.util - 6\t:invoke\t:read\tnil
INFO  jepsen.util - 6\t:ok\t:read\t2
INFO  jepsen.util - 7\t:invoke\t:write\t9
INFO  jepsen.util - 0\t:invoke\t:write\t5
INFO  jepsen.util - 0\t:ok\t:write\t5
";

    #[test]
    fn porcupine_etcd_conversions() {
        let (h, format) = read_history_str(ETCD, "etcd_000.log", Format::Auto).unwrap();
        assert_eq!(format, Format::PorcupineEtcd);
        let summary: Vec<(u64, &str, &str, Value, Option<Value>)> = h
            .ops
            .iter()
            .map(|op| {
                let Process::Client(p) = op.process else {
                    panic!()
                };
                (
                    p,
                    op.kind.as_str(),
                    op.f.as_str(),
                    op.value.clone(),
                    op.error.clone(),
                )
            })
            .collect();
        let timed_out = Some(json!("timed-out"));
        assert_eq!(
            summary,
            vec![
                (0, "invoke", "read", json!(null), None),
                (0, "ok", "read", json!(null), None),
                (1, "invoke", "write", json!(4), None),
                (2, "invoke", "cas", json!([3, 0]), None),
                (0, "invoke", "read", json!(null), None),
                (
                    2,
                    "fail",
                    "cas",
                    json!([3, 0]),
                    Some(json!("compare-failed"))
                ),
                (1, "info", "write", json!(4), timed_out.clone()),
                (0, "info", "read", json!(null), timed_out.clone()),
                (3, "invoke", "cas", json!([4, 1]), None),
                (3, "info", "cas", json!([4, 1]), timed_out),
                (4, "invoke", "cas", json!([0, 1]), None),
                (4, "ok", "cas", json!([0, 1]), None),
                (5, "invoke", "write", json!(2), None),
                (5, "ok", "write", json!(2), None),
                (6, "invoke", "read", json!(null), None),
                (6, "ok", "read", json!(2), None),
                (7, "invoke", "write", json!(9), None),
                // Process 0 saw info (its timed-out read) and goes on as a new process.
                (8, "invoke", "write", json!(5), None),
                (8, "ok", "write", json!(5), None),
            ]
        );
        assert!(h.ops.iter().enumerate().all(|(i, op)| op.index == i as u64));
        // Process 7 never completes: its invocation stays open.
        let pairs = h.pairs().unwrap();
        assert_eq!(pairs[pairs.len() - 2].completion, None);
    }

    #[test]
    fn porcupine_etcd_errors_name_the_line() {
        let cases = [
            (
                "WARN  jepsen.util - 0\t:invoke\t:read\tnil",
                "expected an event line",
            ),
            ("some random text", "expected an event line"),
            (
                "INFO  jepsen.core - 0 :invoke :read nil",
                "expected an event line",
            ),
            (
                "INFO  jepsen.util - x :invoke :read nil",
                "non-negative integer process",
            ),
            (
                "INFO  jepsen.util - -1 :invoke :read nil",
                "non-negative integer process",
            ),
            (
                "INFO  jepsen.util - 0 :start :read nil",
                "expected the type",
            ),
            (
                "INFO  jepsen.util - 0 :invoke read nil",
                "operation keyword",
            ),
            (
                "INFO  jepsen.util - 0 :invoke :read",
                "expected a value after :read",
            ),
            (
                "INFO  jepsen.util - 0 :invoke :cas [1 2",
                "expected `]` to close the vector",
            ),
            ("INFO  jepsen.util - 0 :invoke :cas [1 2] 3", "found more"),
        ];
        for (line, why) in cases {
            let text = format!("INFO  jepsen.util - 9\t:invoke\t:read\tnil\n\n{line}\n");
            let e = read_err(&text, Format::PorcupineEtcd);
            assert!(e.starts_with("t:3: "), "{line}: {e}");
            assert!(e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn empty_porcupine_etcd_log_is_an_empty_history() {
        let (h, format) = read_history_str("", "etcd_095.log", Format::Auto).unwrap();
        assert_eq!(format, Format::PorcupineEtcd);
        assert!(h.is_empty());
        assert!(read("\n  \n", Format::PorcupineEtcd).is_empty());
    }

    #[test]
    fn porcupine_kv() {
        let text = "{:process 0, :type :invoke, :f :get, :key \"1\", :value nil}\n\
                    {:process 0, :type :ok, :f :get, :key \"1\", :value \"x 0 0 y\"}\n";
        let (h, format) = read_history_str(text, "c01-ok.txt", Format::Auto).unwrap();
        assert_eq!(format, Format::PorcupineKv);
        assert_eq!(h.ops[1].key, Some(json!("1")));
        assert_eq!(h.ops[1].value, json!("x 0 0 y"));
        assert_eq!(h.ops[1].f, "get");
        for (op, why) in [
            (
                "{:process 0, :type :invoke, :f :read, :key \"1\"}",
                ":f :get, :put or :append",
            ),
            (
                "{:process 0, :type :invoke, :f :get, :key 1}",
                "string :key",
            ),
            (
                "{:process 0, :type :invoke, :f :put, :key \"1\" :value 2}",
                "nil or a string",
            ),
        ] {
            let e = read_err(&format!("{text}{op}"), Format::PorcupineKv);
            assert!(e.starts_with("t:3: ") && e.contains(why), "{e}");
        }
    }

    #[test]
    fn jsonl_through_import() {
        let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n";
        let (h, format) = read_history_str(text, "h", Format::Auto).unwrap();
        assert_eq!(format, Format::Jsonl);
        assert_eq!(h.ops[0].index, 0);
    }

    #[test]
    fn files_are_read_with_detection_and_bad_utf8_is_a_parse_error() {
        let dir = std::env::temp_dir().join(format!("faultline-import-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let etcd = dir.join("etcd.log");
        std::fs::write(&etcd, ETCD).unwrap();
        let (h, format) = read_history_file(&etcd, Format::Auto).unwrap();
        assert_eq!((h.len(), format), (19, Format::PorcupineEtcd));
        let jsonl = dir.join("h.jsonl");
        std::fs::write(
            &jsonl,
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n",
        )
        .unwrap();
        assert_eq!(
            read_history_file(&jsonl, Format::Auto).unwrap().1,
            Format::Jsonl
        );
        let bad = dir.join("bad.edn");
        std::fs::write(&bad, b"{:process 0\n :f \xff}").unwrap();
        let e = read_history_file(&bad, Format::Auto)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.edn:2: not UTF-8"), "{e}");
        // A JSON Lines file longer than the detection head streams through the parallel
        // reader, head first; error lines still count from the start of the file.
        let big = dir.join("big.jsonl");
        let line = "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":\"padding\"}\n";
        let count = DETECT_HEAD_BYTES / line.len() + 100;
        std::fs::write(&big, line.repeat(count)).unwrap();
        let (h, format) = read_history_file(&big, Format::Auto).unwrap();
        assert_eq!((h.len(), format), (count, Format::Jsonl));
        assert_eq!(h.ops[count - 1].index, count as u64 - 1);
        std::fs::write(&big, format!("{}{{oops}}\n", line.repeat(count))).unwrap();
        let e = read_history_file(&big, Format::Jsonl)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("big.jsonl:{}:", count + 1)), "{e}");
        let missing = read_history_file(&dir.join("missing.edn"), Format::Auto).unwrap_err();
        assert!(matches!(missing, HistoryError::Io { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
