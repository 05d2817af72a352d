//! Checking a JSON Lines file while it is read, without holding its events.
//!
//! On a long history the whole-history path spends most of its time and memory on the events
//! themselves: every event becomes an [`Op`] (about 170 bytes and three strings), millions of
//! them are kept until the end, and the checker then walks them once more to pair and read
//! them. Here each batch of events is paired and read by the model as soon as it is parsed
//! (while the next chunk is parsed), and the events go back to the reader to be parsed into
//! again; what is kept is what the search needs, each key's operations in the model's form,
//! and each process's open invocation.
//!
//! A valid verdict, or an unknown one, is final. Anything the whole-history path explains in
//! its own words is left to it: the caller checks the file the ordinary way when this returns
//! `None`. That is a violation (its evidence needs the events: values, times, indexes), a
//! malformed history, an operation the model cannot read, an empty history, or a model inferred
//! from the first batch that the whole file would not infer.

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use std::fs::File;
use std::io::Read;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use faultline_core::import::{file_format, Format};
use faultline_core::jsonl::{read_jsonl_batches, READ_CHUNK_BYTES};
use faultline_core::{HistoryError, Op, OpType, Pair, Process};

use super::SearchOp;
use super::{interpret_events, largest_first, run_jobs, CheckOptions, Job, KeyGroups, KeyJob};
use super::{LinearizabilityResult, Validity};
use crate::models::{
    FifoQueue, Model, ModelKind, ModelOptions, MultiRegister, Mutex, Register, Set, StringKv,
    UnorderedQueue,
};

/// Files shorter than this are better read whole: streaming saves little on them, and a
/// violation would read them twice.
pub const STREAM_MIN_BYTES: u64 = READ_CHUNK_BYTES as u64;

/// Whether a file is worth checking with [`check_jsonl_file`]: JSON Lines (`format`, or what
/// [`Format::Auto`] detects) of at least [`STREAM_MIN_BYTES`]. The size is looked at first, so
/// a short file is not opened.
pub fn streams(path: &Path, format: Format) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() >= STREAM_MIN_BYTES)
        && file_format(path, format).is_ok_and(|f| f == Format::Jsonl)
}

/// A streamed check's verdict, with the model it used (given, or inferred from the file).
#[derive(Debug)]
pub struct Streamed {
    pub model: ModelKind,
    pub result: LinearizabilityResult,
}

/// Checks a JSON Lines history file as it is read. `model: None` infers the model as
/// [`ModelKind::infer`] does over the whole file; `options.model` is ignored.
///
/// `Ok(None)`: the verdict needs the whole history (see the module's documentation); check
/// the file with [`super::check`]. An error is the file's first bad line, as the ordinary
/// reader reports it.
pub fn check_jsonl_file(
    path: &Path,
    model: Option<ModelKind>,
    options: &CheckOptions,
) -> Result<Option<Streamed>, HistoryError> {
    let file = File::open(path).map_err(|source| HistoryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let label = path.display().to_string();
    check_jsonl(file, &label, READ_CHUNK_BYTES, model, options)
}

/// As [`check_jsonl_file`], from any reader, `chunk_bytes` at a time.
fn check_jsonl(
    reader: impl Read + Send,
    label: &str,
    chunk_bytes: usize,
    model: Option<ModelKind>,
    options: &CheckOptions,
) -> Result<Option<Streamed>, HistoryError> {
    let started = Instant::now();
    let mut feeder: Option<Box<dyn Feed>> = None;
    let mut chosen = model;
    let mut names: FxHashSet<String> = FxHashSet::default();
    let mut gave_up = false;
    read_jsonl_batches(reader, label, chunk_bytes, |batch| {
        if model.is_none() {
            for op in batch.iter().filter(|op| !op.is_nemesis()) {
                if !names.contains(op.f.as_str()) {
                    names.insert(op.f.clone());
                }
            }
        }
        let feeder = match &mut feeder {
            Some(feeder) => feeder,
            None => {
                let Some(kind) = chosen.or_else(|| ModelKind::infer(batch)) else {
                    gave_up = true;
                    return ControlFlow::Break(());
                };
                chosen = Some(kind);
                feeder.insert(new_feeder(kind, &options.model_options))
            }
        };
        let flow = feeder.feed(batch);
        gave_up |= flow.is_break();
        flow
    })?;
    let (Some(model), Some(feeder), false) = (chosen, feeder, gave_up) else {
        return Ok(None);
    };
    if ModelKind::infer_from_names(names.iter().map(String::as_str)).is_some_and(|m| m != model) {
        return Ok(None);
    }
    if std::env::var_os("FAULTLINE_TIMINGS").is_some() {
        eprintln!("timings: read, pair and interpret {:?}", started.elapsed());
    }
    let options = CheckOptions {
        model,
        ..options.clone()
    };
    Ok(feeder
        .finish(&options)
        .filter(|result| result.valid != Validity::Invalid)
        .map(|result| Streamed { model, result }))
}

fn new_feeder(kind: ModelKind, o: &ModelOptions) -> Box<dyn Feed> {
    fn boxed<M>(new_model: impl Fn() -> M + Send + 'static) -> Box<dyn Feed>
    where
        M: Model + Send + 'static,
        M::State: Send,
        M::Op: Send,
    {
        Box::new(Feeder::new(new_model))
    }
    let o = o.clone();
    match kind {
        ModelKind::Register => boxed(move || Register::new(&o, false)),
        ModelKind::CasRegister => boxed(move || Register::new(&o, true)),
        ModelKind::MultiRegister => boxed(move || MultiRegister::new(&o)),
        ModelKind::Mutex => boxed(move || Mutex::new(&o)),
        ModelKind::Set => boxed(move || Set::new(&o)),
        ModelKind::FifoQueue => boxed(move || FifoQueue::new(&o)),
        ModelKind::UnorderedQueue => boxed(move || UnorderedQueue::new(&o)),
        ModelKind::StringKv => boxed(move || StringKv::new(&o)),
    }
}

/// A streamed check of one model, fed batch by batch.
trait Feed: Send {
    /// Pairs and reads a batch of events, taking the invocations it keeps; `Break` when the
    /// whole history is needed after all.
    fn feed(&mut self, batch: &mut [Op]) -> ControlFlow<()>;

    /// The verdict once every batch is in; `None` when the whole history is needed.
    fn finish(self: Box<Self>, options: &CheckOptions) -> Option<LinearizabilityResult>;
}

/// What a process is doing, as in [`faultline_core::History::pairs`].
#[derive(Clone, Copy, PartialEq)]
enum State {
    Idle,
    /// An operation in flight: where it was invoked, and its key's group.
    Open(usize, u32),
    Crashed,
}

/// A process's state, and its open invocation (once it has had one: the event is swapped
/// with the batch's, so its buffers go back to the reader).
struct Slot {
    state: State,
    invoke: Op,
}

struct Feeder<M: Model, F> {
    new_model: F,
    groups: KeyGroups<'static>,
    /// Each key's model and operations, by group.
    keys: Vec<(M, Vec<SearchOp<M::Op>>)>,
    slots: FxHashMap<u64, Slot>,
    /// The position of the next event in the file's order.
    position: usize,
    /// Client invocations so far.
    invocations: usize,
}

impl<M: Model, F: Fn() -> M> Feeder<M, F> {
    fn new(new_model: F) -> Self {
        Feeder {
            new_model,
            groups: KeyGroups::default(),
            keys: Vec::new(),
            slots: FxHashMap::default(),
            position: 0,
            invocations: 0,
        }
    }
}

/// Reads one pair into its key's operations; `Break` when the model cannot read it.
fn read_pair<M: Model>(
    key: &mut (M, Vec<SearchOp<M::Op>>),
    invoke: &Op,
    completion: Option<&Op>,
    pair: Pair,
) -> ControlFlow<()> {
    let (model, ops) = key;
    match interpret_events(model, invoke, completion, &pair) {
        Ok(Some(op)) => ops.push(op),
        Ok(None) => {}
        Err(_) => return ControlFlow::Break(()),
    }
    ControlFlow::Continue(())
}

impl<M, F> Feed for Feeder<M, F>
where
    M: Model + Send + 'static,
    M::State: Send,
    M::Op: Send,
    F: Fn() -> M + Send,
{
    fn feed(&mut self, batch: &mut [Op]) -> ControlFlow<()> {
        for op in batch {
            let position = self.position;
            self.position += 1;
            let Process::Client(process) = op.process else {
                continue;
            };
            let slot = self.slots.entry(process).or_insert_with(|| Slot {
                state: State::Idle,
                invoke: Op::invoke(process, "", serde_json::Value::Null),
            });
            match (op.kind, slot.state) {
                (OpType::Invoke, State::Idle) => {
                    let group = self.groups.group_copied(op.key.as_ref());
                    if group as usize == self.keys.len() {
                        self.keys.push(((self.new_model)(), Vec::new()));
                    }
                    std::mem::swap(&mut slot.invoke, op);
                    slot.state = State::Open(position, group);
                    self.invocations += 1;
                }
                (OpType::Invoke, _) => return ControlFlow::Break(()),
                (kind, State::Open(at, group)) if slot.invoke.f == op.f => {
                    slot.state = if kind == OpType::Info {
                        State::Crashed
                    } else {
                        State::Idle
                    };
                    let pair = Pair {
                        invoke: at,
                        completion: Some(position),
                    };
                    read_pair(&mut self.keys[group as usize], &slot.invoke, Some(op), pair)?;
                }
                (_, _) => return ControlFlow::Break(()),
            }
        }
        ControlFlow::Continue(())
    }

    fn finish(mut self: Box<Self>, options: &CheckOptions) -> Option<LinearizabilityResult> {
        if self.invocations == 0 {
            return None;
        }
        let mut open: Vec<(usize, u32, Op)> = std::mem::take(&mut self.slots)
            .into_values()
            .filter_map(|slot| match slot.state {
                State::Open(at, group) => Some((at, group, slot.invoke)),
                _ => None,
            })
            .collect();
        open.sort_by_key(|&(at, ..)| at);
        for (at, group, invoke) in open {
            let pair = Pair {
                invoke: at,
                completion: None,
            };
            if read_pair(&mut self.keys[group as usize], &invoke, None, pair).is_break() {
                return None;
            }
        }
        let count = self.keys.len();
        let jobs: Vec<(usize, Box<dyn KeyJob>)> = self
            .groups
            .keys
            .into_par_iter()
            .zip(self.keys)
            .map(|(key, (model, mut ops))| -> (usize, Box<dyn KeyJob>) {
                // Completed pairs arrived in completion order; the search takes invocation order.
                ops.sort_unstable_by_key(|op| op.call);
                (ops.len(), Box::new(Job::new(model, None, key, ops, false)))
            })
            .collect();
        let jobs = largest_first(jobs);
        let started = Instant::now();
        let result = run_jobs(jobs, count, self.invocations, options);
        if std::env::var_os("FAULTLINE_TIMINGS").is_some() {
            eprintln!("timings: search {:?}", started.elapsed());
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::jsonl::HistoryWriter;
    use faultline_core::History;
    use serde_json::{json, Value};

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("faultline-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn streamed(text: &str, model: Option<ModelKind>) -> Option<Streamed> {
        let path = write("h.jsonl", text);
        let options = CheckOptions::new(ModelKind::Register);
        let out = check_jsonl_file(&path, model, &options).unwrap();
        std::fs::remove_file(path).unwrap();
        out
    }

    #[test]
    fn a_valid_history_is_decided_with_its_counts() {
        let text = r#"{"process":0,"type":"invoke","f":"write","key":"a","value":1}
{"process":1,"type":"invoke","f":"read","key":"b","value":null}
{"process":"nemesis","type":"info","f":"start","value":null}
{"process":0,"type":"ok","f":"write","key":"a","value":1}
{"process":1,"type":"ok","f":"read","key":"b","value":null}
{"process":2,"type":"invoke","f":"write","key":"a","value":2}
"#;
        let out = streamed(text, None).expect("decided");
        assert_eq!(out.model, ModelKind::Register);
        assert_eq!(out.result.valid, Validity::Valid);
        assert_eq!((out.result.ops, out.result.keys), (3, 2));
    }

    #[test]
    fn leaves_to_the_whole_history_path_what_it_explains() {
        let invalid = r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"ok","f":"write","value":1}
{"process":1,"type":"invoke","f":"read","value":null}
{"process":1,"type":"ok","f":"read","value":2}
"#;
        let double_invoke = r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"invoke","f":"write","value":2}
"#;
        let unmatched = r#"{"process":0,"type":"ok","f":"write","value":1}
"#;
        let reuse_after_info = r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"info","f":"write","value":1}
{"process":0,"type":"invoke","f":"write","value":2}
"#;
        let unreadable = r#"{"process":0,"type":"invoke","f":"frobnicate","value":1}
{"process":0,"type":"ok","f":"frobnicate","value":1}
"#;
        let nemesis_only = r#"{"process":"nemesis","type":"info","f":"start","value":null}
"#;
        for text in [
            invalid,
            double_invoke,
            unmatched,
            reuse_after_info,
            nemesis_only,
        ] {
            assert!(
                streamed(text, Some(ModelKind::Register)).is_none(),
                "{text}"
            );
        }
        assert!(streamed(unreadable, Some(ModelKind::Register)).is_none());
        assert!(streamed(unreadable, None).is_none());
        assert!(streamed("", None).is_none());
    }

    #[test]
    fn bad_lines_are_errors_with_their_line() {
        let path = write(
            "bad.jsonl",
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{oops\n",
        );
        let err = check_jsonl_file(&path, None, &CheckOptions::new(ModelKind::Register))
            .unwrap_err()
            .to_string();
        std::fs::remove_file(path).unwrap();
        assert!(err.contains("bad.jsonl:2:"), "{err}");
    }

    /// Over many chunks, with completions out of invocation order and crashed operations left
    /// open, the streamed verdict and counts are the whole-history path's.
    #[test]
    fn agrees_with_the_whole_history_path_across_chunks() {
        use rand::{rngs::SmallRng, Rng, SeedableRng};
        let mut rng = SmallRng::seed_from_u64(7);
        let mut ops = Vec::new();
        let mut process = [0u64, 1, 2, 3];
        let mut open: [Option<Op>; 4] = Default::default();
        let mut store: FxHashMap<Value, String> = FxHashMap::default();
        let padding = "p".repeat(100);
        while ops.len() < 6_000 {
            let w = rng.gen_range(0..4);
            let Some(invoke) = open[w].take() else {
                let key = json!(format!("k{}", rng.gen_range(0..20)));
                let invoke = if rng.gen_bool(0.5) {
                    Op::invoke(process[w], "get", Value::Null)
                } else {
                    Op::invoke(
                        process[w],
                        "append",
                        json!(format!("{w} {} {padding}", ops.len())),
                    )
                };
                let invoke = invoke.with_key(key);
                ops.push(invoke.clone());
                open[w] = Some(invoke);
                continue;
            };
            let key = invoke.key.clone().unwrap();
            let text = store.entry(key.clone()).or_default();
            let apply = |text: &mut String| {
                if invoke.f == "put" {
                    text.clear();
                }
                text.push_str(invoke.value.as_str().unwrap());
            };
            let (kind, result) = if invoke.f == "get" {
                (OpType::Ok, json!(text.clone()))
            } else if rng.gen_bool(0.05) {
                // Crashed, applied or not; the worker goes on as a new process.
                if rng.gen_bool(0.5) {
                    apply(text);
                }
                process[w] += 4;
                (OpType::Info, invoke.value.clone())
            } else {
                apply(text);
                (OpType::Ok, invoke.value.clone())
            };
            let client = match invoke.process {
                Process::Client(p) => p,
                Process::Nemesis => unreachable!(),
            };
            ops.push(Op::complete(client, kind, &invoke.f, result).with_key(key));
        }
        // Some operations are still open at the end.
        for invoke in open.into_iter().flatten() {
            assert!(ops.contains(&invoke));
        }
        let mut text = Vec::new();
        HistoryWriter::new(&mut text).write_all(&ops).unwrap();
        let chunk = 16 << 10;
        assert!(text.len() > 20 * chunk);
        let options = CheckOptions::new(ModelKind::StringKv);
        let out = check_jsonl(&text[..], "big", chunk, None, &options)
            .unwrap()
            .expect("decided");
        let whole = super::super::check(&History::new(ops), &options).unwrap();
        assert_eq!(out.model, ModelKind::StringKv);
        assert_eq!(
            (out.result.valid, out.result.ops, out.result.keys),
            (whole.valid, whole.ops, whole.keys)
        );
        assert_eq!(whole.valid, Validity::Valid);
    }
}
