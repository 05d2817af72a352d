//! Linearizability checking: is there one order of the operations, consistent with real time,
//! in which the model explains every result?
//!
//! The history is split by `key` (operations on different keys are independent, so the history
//! is linearizable iff every key's sub-history is: P-compositionality), and the keys are
//! checked in parallel. Each key is searched with [`search`]: Wing & Gong with Lowe's
//! memoization, iteratively. On a violation the checker explains it: the operation that cannot
//! be linearized, the longest linearizable prefix found with the states it may end in, and the
//! smallest window of operations that is not linearizable from *any* starting state.
//!
//! ```
//! use faultline_checker::linearizability::{check, CheckOptions};
//! use faultline_checker::{ModelKind, Validity};
//! use faultline_core::jsonl::read_jsonl;
//! let text = r#"{"process":0,"type":"invoke","f":"write","value":1}
//! {"process":0,"type":"ok","f":"write","value":1}
//! {"process":1,"type":"invoke","f":"read","value":null}
//! {"process":1,"type":"ok","f":"read","value":2}"#;
//! let history = read_jsonl(text.as_bytes(), "example").unwrap();
//! let result = check(&history, &CheckOptions::new(ModelKind::Register)).unwrap();
//! assert_eq!(result.valid, Validity::Invalid);
//! ```

mod search;
mod stream;
mod window;

pub use stream::{check_jsonl_file, streams, Streamed, STREAM_MIN_BYTES};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use faultline_core::{History, HistoryError, Op, OpType, Pair};

use crate::models::{
    FifoQueue, Interpreted, Model, ModelKind, ModelOptions, MultiRegister, Mutex, Register, Set,
    StringKv, UnorderedQueue,
};
use crate::Validity;
use search::{Budget, Outcome, Run, Search, SearchOp, Stuck};

/// Default cap on the memory of the search's memo tables.
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 4 << 30;

/// How to check a history.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub model: ModelKind,
    pub model_options: ModelOptions,
    /// Past this the verdict is `unknown`.
    pub time_limit: Option<Duration>,
    /// Past this much memo-table memory the verdict is `unknown`.
    pub memory_limit_bytes: u64,
    /// Whether to compute the failing window and the longest prefix for violations.
    pub explain: bool,
}

impl CheckOptions {
    pub fn new(model: ModelKind) -> CheckOptions {
        CheckOptions {
            model,
            model_options: ModelOptions::default(),
            time_limit: None,
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            explain: true,
        }
    }

    pub fn with_init(mut self, init: Value) -> Self {
        self.model_options.init = init;
        self
    }
}

/// One operation as evidence: what was asked, what came back, and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpSummary {
    /// Index of the invocation event.
    pub index: u64,
    /// Index of the completion event, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_index: Option<u64>,
    pub process: String,
    pub f: String,
    /// `ok`, `fail`, `info`, or `open` (never completed).
    #[serde(rename = "type")]
    pub outcome: String,
    /// The invocation's value.
    pub value: Value,
    /// The completion's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoke_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_time: Option<u64>,
    /// The completion's error, if any (`compare-failed` for a cas that did not match).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// In a failing window: the operation may or may not have taken effect inside it (it
    /// straddles the window's start, completes after its end, or crashed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

impl OpSummary {
    fn of(history: &History, pair: &Pair) -> OpSummary {
        let invoke = &history.ops[pair.invoke];
        let completion = pair.completion.map(|c| &history.ops[c]);
        OpSummary {
            index: invoke.index,
            completion_index: completion.map(|c| c.index),
            process: invoke.process.to_string(),
            f: invoke.f.clone(),
            outcome: completion.map_or("open", |c| c.kind.as_str()).to_string(),
            value: invoke.value.clone(),
            result: completion.map(|c| c.value.clone()),
            invoke_time: invoke.time,
            complete_time: completion.and_then(|c| c.time),
            error: completion.and_then(|c| c.error.clone()),
            optional: false,
        }
    }

    /// One line: `index 12..15  process 3  cas [1,2] -> ok`.
    pub fn line(&self) -> String {
        let span = match self.completion_index {
            Some(c) => format!("{}..{}", self.index, c),
            None => format!("{}..", self.index),
        };
        let result = match (&self.result, self.outcome.as_str()) {
            (Some(r), "ok") if *r != self.value || self.value.is_null() => format!(" -> {r}"),
            _ => String::new(),
        };
        let value = if self.value.is_null() {
            String::new()
        } else {
            format!(" {}", self.value)
        };
        let outcome = match (&self.error, self.outcome.as_str()) {
            (Some(Value::String(e)), "fail" | "info") => format!("{}: {e}", self.outcome),
            (Some(e), "fail" | "info") => format!("{}: {e}", self.outcome),
            _ => self.outcome.clone(),
        };
        let optional = if self.optional {
            ", may or may not apply here"
        } else {
            ""
        };
        format!(
            "index {span:<13} process {:<4} {}{value}{result}  ({outcome}{optional})",
            self.process, self.f
        )
    }
}

/// Why one key's history is not linearizable.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The operation that cannot be linearized.
    pub op: Option<OpSummary>,
    /// How many completed operations the longest linearizable prefix found places (the search
    /// skips configurations it can prove lead nowhere, so a longer prefix may exist).
    pub prefix_length: usize,
    /// The last operations of that prefix, in linearization order (at most
    /// [`PREFIX_TAIL`]).
    pub prefix_tail: Vec<OpSummary>,
    /// The states the model may be in after that prefix.
    pub states: Vec<Value>,
    /// The smallest window of operations that is not linearizable.
    pub window: Vec<OpSummary>,
    /// True when the window fails from every possible starting state; false when it is the
    /// history from its beginning (the model's states cannot be enumerated).
    pub window_from_any_state: bool,
}

/// How many operations of the longest prefix the evidence lists.
pub const PREFIX_TAIL: usize = 8;
/// How many operations of a window the text explanation lists.
pub const WINDOW_LINES: usize = 40;

impl Failure {
    /// The explanation as text a person can follow.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let key = self
            .key
            .as_ref()
            .map(|k| format!(" on key {k}"))
            .unwrap_or_default();
        match &self.op {
            Some(op) => {
                let _ = writeln!(
                    out,
                    "no linearization{key} can place this operation:\n  {}",
                    op.line()
                );
            }
            None => {
                let _ = writeln!(out, "no linearization{key} exists");
            }
        }
        let states: Vec<String> = self.states.iter().map(Value::to_string).collect();
        let _ = writeln!(
            out,
            "the longest linearizable prefix found places {} completed operations, after which the \
             state could be: {}",
            self.prefix_length,
            if states.is_empty() {
                "(none)".into()
            } else {
                states.join(", ")
            }
        );
        if !self.prefix_tail.is_empty() {
            let _ = writeln!(out, "its last operations, in linearization order:");
            for op in &self.prefix_tail {
                let _ = writeln!(out, "  {}", op.line());
            }
        }
        if !self.window.is_empty() {
            let from = if self.window_from_any_state {
                "whatever the state before it"
            } else {
                "from the initial state"
            };
            // Crashed operations invoked before the window's first required operation may take
            // effect in it too; they are counted rather than listed.
            let start = self
                .window
                .iter()
                .filter(|op| !op.optional)
                .map(|op| op.index)
                .min()
                .unwrap_or(0);
            let (earlier, shown): (Vec<&OpSummary>, Vec<&OpSummary>) =
                self.window.iter().partition(|op| {
                    op.optional && op.index < start && op.completion_index.is_none_or(|c| c < start)
                });
            let _ = writeln!(
                out,
                "smallest failing window ({} operations, not linearizable {from}):",
                self.window.len()
            );
            for op in shown.iter().take(WINDOW_LINES) {
                let _ = writeln!(out, "  {}", op.line());
            }
            if shown.len() > WINDOW_LINES {
                let _ = writeln!(out, "  ... and {} more", shown.len() - WINDOW_LINES);
            }
            if !earlier.is_empty() {
                let _ = writeln!(
                    out,
                    "  plus {} crashed operations invoked earlier, which may take effect in it",
                    earlier.len()
                );
            }
        }
        out
    }
}

/// The verdict for a whole history.
#[derive(Debug, Clone, Serialize)]
pub struct LinearizabilityResult {
    pub valid: Validity,
    pub model: String,
    /// Client invocations in the history.
    pub ops: usize,
    /// How many keys (independent sub-histories) the history has.
    pub keys: usize,
    /// Keys whose search was stopped because another key was already found invalid.
    #[serde(skip_serializing_if = "is_zero")]
    pub keys_unchecked: usize,
    /// Why the verdict is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// One entry per key that is not linearizable.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// Keys whose verdict is unknown, with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_keys: Vec<(Option<Value>, String)>,
}

impl LinearizabilityResult {
    /// Every failure's explanation, as text.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for failure in &self.failures {
            out.push_str(&failure.explain());
        }
        if let Some(reason) = &self.reason {
            let _ = writeln!(out, "unknown: {reason}");
        }
        out
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Errors that stop a check before it starts: the history itself is malformed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Malformed(#[from] HistoryError),
}

/// Search steps a key gets in the first round; each round doubles it.
const FIRST_SLICE_STEPS: u64 = 4096;
const MAX_SLICE_STEPS: u64 = 1 << 24;

/// Checks a history for linearizability against a model, key by key, in parallel.
pub fn check(
    history: &History,
    options: &CheckOptions,
) -> Result<LinearizabilityResult, CheckError> {
    let timings = std::env::var_os("FAULTLINE_TIMINGS").is_some();
    let started = Instant::now();
    let pairs = history.pairs()?;
    let ops = pairs.len();
    let paired = started.elapsed();
    let (keys, jobs) = new_jobs(history, &pairs, options);
    drop(pairs);
    if timings {
        eprintln!(
            "timings: pair {paired:?}, partition and interpret {:?}",
            started.elapsed() - paired
        );
    }
    Ok(run_jobs(jobs, keys, ops, options))
}

/// Runs the keys' searches to their verdicts and gathers them into the history's.
///
/// Keys are searched in rounds of bounded slices (doubling each round) rather than one after
/// another, so a key with an easy violation is found even when another key's search is hard;
/// once a violation is found the remaining searches stop (their keys are counted in
/// `keys_unchecked`), as the verdict can no longer change.
fn run_jobs(
    mut jobs: Vec<Box<dyn KeyJob + '_>>,
    keys: usize,
    ops: usize,
    options: &CheckOptions,
) -> LinearizabilityResult {
    let memory_used = AtomicU64::new(0);
    let budget = Budget {
        deadline: options.time_limit.map(|limit| Instant::now() + limit),
        memory_limit_bytes: options.memory_limit_bytes,
        memory_used_bytes: &memory_used,
    };
    let mut result = LinearizabilityResult {
        valid: Validity::Valid,
        model: options.model.to_string(),
        ops,
        keys,
        keys_unchecked: 0,
        reason: None,
        failures: Vec::new(),
        unknown_keys: Vec::new(),
    };
    let mut verdicts: Vec<KeyVerdict> = Vec::new();
    let mut slice = FIRST_SLICE_STEPS;
    while !jobs.is_empty() {
        // A finished job is dropped where it ran: a long history's keys hold most of its
        // memory, and freeing it on one thread afterwards would leave the other cores idle.
        let resumed: Vec<Result<KeyVerdict, Box<dyn KeyJob + '_>>> = jobs
            .into_par_iter()
            .map(|mut job| job.resume(&budget, slice).ok_or(job))
            .collect();
        let mut still_running = Vec::with_capacity(resumed.len());
        for outcome in resumed {
            match outcome {
                Ok(verdict) => verdicts.push(verdict),
                Err(job) => still_running.push(job),
            }
        }
        jobs = still_running;
        if verdicts.iter().any(|v| matches!(v, KeyVerdict::Invalid(_))) {
            result.keys_unchecked = jobs.len();
            jobs.into_par_iter().for_each(drop);
            break;
        }
        slice = (slice * 2).min(MAX_SLICE_STEPS);
    }
    for verdict in verdicts {
        match verdict {
            KeyVerdict::Valid => {}
            KeyVerdict::Invalid(failure) => result.failures.push(*failure),
            KeyVerdict::Unknown(key, reason) => result.unknown_keys.push((key, reason)),
        }
    }
    if !result.failures.is_empty() {
        result.valid = Validity::Invalid;
    } else if let Some((key, reason)) = result.unknown_keys.first() {
        result.valid = Validity::Unknown;
        result.reason = Some(match key {
            Some(key) => format!("key {key}: {reason}"),
            None => reason.clone(),
        });
    }
    result
}

/// Numbers the keys of a history in order of appearance. Keys are compared by their JSON
/// text; operations without a key form one group.
#[derive(Default)]
struct KeyGroups<'h> {
    // String keys (the common case) are looked up as they are, without formatting them; a
    // history held in memory lends its keys, a streamed one's are copied when first seen.
    by_text: rustc_hash::FxHashMap<Cow<'h, str>, u32>,
    by_json: rustc_hash::FxHashMap<String, u32>,
    /// The group of the ops without a key (a single register's history).
    no_key: Option<u32>,
    keys: Vec<Option<Value>>,
}

impl<'h> KeyGroups<'h> {
    /// The group of `key`, a new one for a key not seen before.
    fn group(&mut self, key: Option<&'h Value>) -> u32 {
        self.group_with(key, |s| Cow::Borrowed(s.as_str()))
    }

    /// As [`KeyGroups::group`], for a key that is not borrowed for as long as the groups.
    fn group_copied(&mut self, key: Option<&Value>) -> u32 {
        self.group_with(key, |s| Cow::Owned(s.clone()))
    }

    fn group_with<'k>(
        &mut self,
        key: Option<&'k Value>,
        text_key: impl FnOnce(&'k String) -> Cow<'h, str>,
    ) -> u32 {
        let keys = &mut self.keys;
        let mut new_group = || {
            keys.push(key.cloned());
            (keys.len() - 1) as u32
        };
        match key {
            Some(Value::String(s)) => match self.by_text.get(s.as_str()) {
                Some(&group) => group,
                None => {
                    let group = new_group();
                    self.by_text.insert(text_key(s), group);
                    group
                }
            },
            None => *self.no_key.get_or_insert_with(new_group),
            Some(other) => *self
                .by_json
                .entry(format!("j{other}"))
                .or_insert_with(new_group),
        }
    }
}

enum KeyVerdict {
    Valid,
    Invalid(Box<Failure>),
    Unknown(Option<Value>, String),
}

/// One key's check, resumable in slices.
trait KeyJob: Send {
    /// Searches for at most `steps` steps; the verdict once there is one.
    fn resume(&mut self, budget: &Budget<'_>, steps: u64) -> Option<KeyVerdict>;
}

/// A key whose operations the model could not read: its verdict is already known.
struct Decided(Option<KeyVerdict>);

impl KeyJob for Decided {
    fn resume(&mut self, _: &Budget<'_>, _: u64) -> Option<KeyVerdict> {
        Some(self.0.take().expect("a decided job is resumed once"))
    }
}

struct Job<'h, M: Model> {
    /// The events, for evidence; a streamed check has none and reports a violation bare.
    history: Option<&'h History>,
    key: Option<Value>,
    model: M,
    ops: Vec<SearchOp<M::Op>>,
    search: Search<M>,
    run: Option<Run<M::State>>,
    explain: bool,
    /// The stuck operation around which a local failing window was last looked for.
    locally_checked: Option<usize>,
}

/// Search steps per operation after which a key's search is deemed hard, and the checker
/// looks for a local failing window around where the search is stuck.
const HARD_STEPS_PER_OP: u64 = 32;
const HARD_STEPS_MIN: u64 = 1 << 16;
/// Cuts and time the local window check may spend each time.
const LOCAL_WINDOW_CUTS: usize = 64;
const LOCAL_WINDOW_TIME: Duration = Duration::from_millis(500);

/// The history's keys, and a job per key.
fn new_jobs<'h>(
    history: &'h History,
    pairs: &[Pair],
    options: &CheckOptions,
) -> (usize, Vec<Box<dyn KeyJob + 'h>>) {
    let o = &options.model_options;
    let p = pairs;
    let x = options.explain;
    match options.model {
        ModelKind::Register => jobs_for(|| Register::new(o, false), history, p, x),
        ModelKind::CasRegister => jobs_for(|| Register::new(o, true), history, p, x),
        ModelKind::MultiRegister => jobs_for(|| MultiRegister::new(o), history, p, x),
        ModelKind::Mutex => jobs_for(|| Mutex::new(o), history, p, x),
        ModelKind::Set => jobs_for(|| Set::new(o), history, p, x),
        ModelKind::FifoQueue => jobs_for(|| FifoQueue::new(o), history, p, x),
        ModelKind::UnorderedQueue => jobs_for(|| UnorderedQueue::new(o), history, p, x),
        ModelKind::StringKv => jobs_for(|| StringKv::new(o), history, p, x),
    }
}

/// Groups the operations by key in one pass in history order, then interprets each key's
/// operations with its own model and sets up its search, keys in parallel; the jobs come back
/// largest first so the workers finish together.
///
/// The grouping pass only looks up keys (a few thousand at most, so the table stays in cache);
/// interpreting, which interns every value into the key's model, is most of the work and runs
/// on all cores.
fn jobs_for<'h, M>(
    new_model: impl Fn() -> M + Sync,
    history: &'h History,
    pairs: &[Pair],
    explain: bool,
) -> (usize, Vec<Box<dyn KeyJob + 'h>>)
where
    M: Model + Send + 'h,
    M::State: Send,
    M::Op: Send,
{
    let mut groups = KeyGroups::default();
    // Each key's pairs, in history order.
    let mut by_key: Vec<Vec<usize>> = Vec::new();
    for (p, pair) in pairs.iter().enumerate() {
        let group = groups.group(history.ops[pair.invoke].key.as_ref()) as usize;
        if group == by_key.len() {
            by_key.push(Vec::new());
        }
        by_key[group].push(p);
    }
    let count = by_key.len();
    let jobs: Vec<(usize, Box<dyn KeyJob + 'h>)> = groups
        .keys
        .into_par_iter()
        .zip(by_key)
        .map(|(key, mine)| -> (usize, Box<dyn KeyJob + 'h>) {
            let mut model = new_model();
            let mut ops = Vec::with_capacity(mine.len());
            for p in mine {
                match interpret(&mut model, history, &pairs[p]) {
                    Ok(Some(op)) => ops.push(op),
                    Ok(None) => {}
                    Err(reason) => {
                        let verdict = KeyVerdict::Unknown(key, reason);
                        return (0, Box::new(Decided(Some(verdict))));
                    }
                }
            }
            (
                ops.len(),
                Box::new(Job::new(model, Some(history), key, ops, explain)),
            )
        })
        .collect();
    (count, largest_first(jobs))
}

/// The jobs, largest (most operations) first, so the workers finish together.
fn largest_first<'h>(mut jobs: Vec<(usize, Box<dyn KeyJob + 'h>)>) -> Vec<Box<dyn KeyJob + 'h>> {
    jobs.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    jobs.into_iter().map(|(_, job)| job).collect()
}

/// Reads one pair into a search operation (`None`: it cannot affect the verdict). Positions
/// in the history serve as real-time positions.
fn interpret<M: Model>(
    model: &mut M,
    history: &History,
    pair: &Pair,
) -> Result<Option<SearchOp<M::Op>>, String> {
    let invoke: &Op = &history.ops[pair.invoke];
    let completion = pair.completion.map(|c| &history.ops[c]);
    interpret_events(model, invoke, completion, pair)
}

/// As [`interpret`], given the pair's events.
fn interpret_events<M: Model>(
    model: &mut M,
    invoke: &Op,
    completion: Option<&Op>,
    pair: &Pair,
) -> Result<Option<SearchOp<M::Op>>, String> {
    let (op, required) = match model.interpret(invoke, completion)? {
        Interpreted::Required(op) => (op, true),
        Interpreted::Optional(op) => (op, false),
        Interpreted::Skip => return Ok(None),
    };
    debug_assert!(!required || completion.is_some_and(|c| c.kind != OpType::Invoke));
    Ok(Some(SearchOp {
        op,
        call: pair.invoke as u64,
        ret: if required {
            pair.completion.map(|c| c as u64)
        } else {
            None
        },
        invoke: pair.invoke,
        completion: pair.completion,
    }))
}

impl<'h, M> Job<'h, M>
where
    M: Model + Send + 'h,
    M::State: Send,
    M::Op: Send,
{
    fn new(
        mut model: M,
        history: Option<&'h History>,
        key: Option<Value>,
        mut ops: Vec<SearchOp<M::Op>>,
        explain: bool,
    ) -> Self {
        model.settle(ops.iter_mut().map(|op| &mut op.op));
        let search = Search::new(&ops);
        let run = Some(search.start(model.init()));
        Job {
            history,
            key,
            model,
            ops,
            search,
            run,
            explain,
            locally_checked: None,
        }
    }

    /// Builds the evidence for a key whose search failed.
    fn failure(
        &mut self,
        stuck: Stuck<M::State>,
        budget: &Budget<'_>,
        local: Option<window::Window>,
    ) -> Failure {
        let mut failure = Failure {
            key: self.key.clone(),
            op: None,
            prefix_length: stuck.depth,
            prefix_tail: Vec::new(),
            states: stuck
                .states
                .iter()
                .map(|s| self.model.state_json(s))
                .collect(),
            window: Vec::new(),
            window_from_any_state: false,
        };
        let Some(history) = self.history else {
            return failure;
        };
        let ops = &self.ops;
        let summary = |op: usize| OpSummary::of(history, &pair_of(&ops[op]));
        failure.op = stuck.blocked.map(summary);
        if !self.explain {
            return failure;
        }
        let init = self.model.init();
        if let (_, Some(prefix)) =
            self.search
                .run(&self.model, ops, init, budget, Some(stuck.depth))
        {
            let tail = prefix.len().saturating_sub(PREFIX_TAIL);
            failure.prefix_tail = prefix[tail..].iter().map(|&op| summary(op)).collect();
        }
        let window = match local {
            Some(window) => Some(window),
            None => stuck
                .blocked
                .and_then(|b| window::smallest(&self.model, ops, b, budget)),
        };
        {
            if let Some(window) = window {
                failure.op = Some(summary(window.last));
                failure.window = window
                    .members
                    .into_iter()
                    .map(|(op, optional)| OpSummary {
                        optional,
                        ..summary(op)
                    })
                    .collect();
                failure.window_from_any_state = window.from_any_state;
            }
        }
        failure
    }
}

impl<'h, M> KeyJob for Job<'h, M>
where
    M: Model + Send + 'h,
    M::State: Send,
    M::Op: Send,
{
    fn resume(&mut self, budget: &Budget<'_>, steps: u64) -> Option<KeyVerdict> {
        let mut run = self
            .run
            .take()
            .expect("a job is not resumed after its verdict");
        let Some(outcome) = self
            .search
            .resume(&self.model, &self.ops, &mut run, budget, steps)
        else {
            // A long search on an invalid history can wander through every alternative of
            // everything before the violation; a violation is usually local, so look for a
            // window around where the search is stuck that fails whatever the state before it.
            let hard = HARD_STEPS_MIN + HARD_STEPS_PER_OP * self.ops.len() as u64;
            let blocked = run
                .stuck()
                .blocked
                .filter(|&b| Some(b) != self.locally_checked);
            if let Some(last) = blocked.filter(|_| run.steps() > hard) {
                self.locally_checked = Some(last);
                if search::debug_search() {
                    let b = last;
                    eprintln!(
                        "local window check at step {} around op {} (invoke position {}), depth {}",
                        run.steps(),
                        b,
                        self.ops[b].invoke,
                        run.stuck().depth
                    );
                }
                let deadline = Instant::now() + LOCAL_WINDOW_TIME;
                let found = window::local(
                    &self.model,
                    &self.ops,
                    last,
                    budget,
                    LOCAL_WINDOW_CUTS,
                    deadline,
                );
                if let Some(window) = found {
                    let stuck = run.stuck().clone();
                    self.search.finish(run, budget);
                    let failure = self.failure(stuck, budget, Some(window));
                    return Some(KeyVerdict::Invalid(Box::new(failure)));
                }
            }
            self.run = Some(run);
            return None;
        };
        self.search.finish(run, budget);
        Some(match outcome {
            Outcome::Valid => KeyVerdict::Valid,
            Outcome::Unknown(reason) => KeyVerdict::Unknown(self.key.clone(), reason),
            Outcome::Invalid(stuck) => {
                KeyVerdict::Invalid(Box::new(self.failure(stuck, budget, None)))
            }
        })
    }
}

fn pair_of<O>(op: &SearchOp<O>) -> Pair {
    Pair {
        invoke: op.invoke,
        completion: op.completion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::jsonl::read_jsonl;
    use serde_json::json;

    fn history(lines: &str) -> History {
        read_jsonl(lines.as_bytes(), "test").unwrap()
    }

    fn verdict(h: &History, model: ModelKind) -> LinearizabilityResult {
        check(h, &CheckOptions::new(model)).unwrap()
    }

    #[test]
    fn stale_read_after_a_completed_write_is_found_with_evidence() {
        let h = history(include_str!(
            "../../../examples/histories/register-stale-read.jsonl"
        ));
        let r = verdict(&h, ModelKind::CasRegister);
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.keys, 2);
        assert_eq!(r.failures.len(), 1);
        let f = &r.failures[0];
        assert_eq!(f.key, Some(json!("x")));
        let op = f.op.as_ref().unwrap();
        assert_eq!((op.f.as_str(), op.result.clone()), ("read", Some(json!(1))));
        // Write 2 completed before the read began; the read of 1 cannot follow it.
        let window: Vec<u64> = f.window.iter().map(|o| o.index).collect();
        assert_eq!(window, vec![2, 4, 5], "{}", f.explain());
        let optional: Vec<bool> = f.window.iter().map(|o| o.optional).collect();
        assert_eq!(optional, vec![false, false, true]);
        assert!(f.window_from_any_state);
        assert!(f.explain().contains("smallest failing window"));
    }

    #[test]
    fn crashed_cas_may_take_effect_later() {
        let h = history(include_str!(
            "../../../examples/histories/register-valid.jsonl"
        ));
        assert_eq!(verdict(&h, ModelKind::CasRegister).valid, Validity::Valid);
    }

    #[test]
    fn crashed_write_may_never_take_effect() {
        let h = history(
            r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"info","f":"write","value":1}
{"process":1,"type":"invoke","f":"read","value":null}
{"process":1,"type":"ok","f":"read","value":null}"#,
        );
        assert_eq!(verdict(&h, ModelKind::Register).valid, Validity::Valid);
    }

    #[test]
    fn failed_write_never_happened() {
        let h = history(
            r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"fail","f":"write","value":1}
{"process":1,"type":"invoke","f":"read","value":null}
{"process":1,"type":"ok","f":"read","value":1}"#,
        );
        assert_eq!(verdict(&h, ModelKind::Register).valid, Validity::Invalid);
    }

    #[test]
    fn compare_failed_cas_is_an_observation() {
        // The register holds 1 throughout, so a cas expecting 1 cannot have failed its compare.
        let h = history(
            r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"ok","f":"write","value":1}
{"process":1,"type":"invoke","f":"cas","value":[1,2]}
{"process":1,"type":"fail","f":"cas","value":[1,2],"error":"compare-failed"}"#,
        );
        assert_eq!(verdict(&h, ModelKind::CasRegister).valid, Validity::Invalid);
        let plain_fail = h.ops.iter().cloned().map(|mut op| {
            op.error = None;
            op
        });
        let h = History::new(plain_fail.collect());
        assert_eq!(verdict(&h, ModelKind::CasRegister).valid, Validity::Valid);
    }
}
