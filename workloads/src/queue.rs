//! The work queue workload (`queue`): producers enqueue jobs with unique ids, workers claim
//! and complete them, and a final drain after the last fault healed takes what is left;
//! checked by [`faultline_checker::queue`] against the target's delivery promise
//! ([`faultline_core::queue::delivery`]).
//!
//! Every worker thread runs a small cycle on the queue `"jobs"`: with probability 1/2 it
//! enqueues the next job id (ids `thread, thread + threads, ...`: unique without shared
//! state), else it claims; a claim that delivered a job is followed by the `complete` of that
//! job after [`WORK_MS`]. A thread whose operation ended `info` starts over as a new process
//! (a job it may have claimed is the target's to redeliver or lose). The drain: each thread
//! claims with the value `"drain"` and completes what it gets, until
//! [`DRAIN_EMPTY_CLAIMS`] claims in a row, [`DRAIN_EMPTY_GAP_MS`] apart, found nothing (so
//! claims held by connections that died, which a target releases after a timeout, come back
//! in time), or [`DRAIN_LIMIT`] claims.
//!
//! The promise judged is the target's, recorded in `test.json` as the workload option
//! `delivery`.
//!
//! Design decision: claim and complete stay separate operations with work between them, so
//! a worker paused or cut off while it holds a job is the common case, not a rare one.

use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use faultline_checker::queue as queue_checker;
use faultline_core::queue::{delivery, Delivery, CLAIM, COMPLETE, DRAIN, ENQUEUE, QUEUE};
use faultline_core::{History, Op, OpType, Process, Test};

use crate::generator::{self, BoxGen, Context, Draft, GenOp, Generator, WAIT_POLL_NS};
use crate::{Checked, Workload, WorkloadError};

/// Time a worker spends on a job between its claim and its complete, in ms.
pub const WORK_MS: u64 = 5;
/// Back-off after a claim found nothing, in ms.
pub const EMPTY_BACKOFF_MS: u64 = 10;
/// The drain ends for a thread after this many empty claims in a row.
pub const DRAIN_EMPTY_CLAIMS: u32 = 4;
/// Time between two empty drain claims, in ms.
pub const DRAIN_EMPTY_GAP_MS: u64 = 1_000;
/// The most claims one thread makes in the drain.
pub const DRAIN_LIMIT: u32 = 10_000;
/// Workload option recording the promise judged.
pub const OPTION_DELIVERY: &str = "delivery";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Draw the next operation at or after this time (ns).
    Idle { at_ns: u64 },
    /// Complete this job at or after this time.
    Working { job: u64, at_ns: u64 },
    /// An operation is outstanding.
    Waiting,
    /// The drain is over for this thread.
    Done,
}

/// One thread's cycle, in the main phase or the drain.
struct Cycle {
    thread: usize,
    threads: usize,
    phase: Phase,
    drain: bool,
    next_job: u64,
    empty_in_a_row: u32,
    drain_claims: u32,
}

impl Cycle {
    fn new(thread: usize, drain: bool) -> Cycle {
        Cycle {
            thread,
            threads: 0,
            phase: Phase::Idle { at_ns: 0 },
            drain,
            next_job: thread as u64,
            empty_in_a_row: 0,
            drain_claims: 0,
        }
    }

    fn claim(&mut self) -> GenOp {
        self.phase = Phase::Waiting;
        let value = if self.drain {
            self.drain_claims += 1;
            json!(DRAIN)
        } else {
            Value::Null
        };
        GenOp::Op(Draft::new(CLAIM, value).with_key(json!(QUEUE)))
    }
}

impl Generator for Cycle {
    fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
        self.threads = ctx.threads;
        match self.phase {
            Phase::Done => GenOp::Exhausted,
            Phase::Waiting => GenOp::Pending(ctx.time_ns + WAIT_POLL_NS),
            Phase::Idle { at_ns } | Phase::Working { at_ns, .. } if ctx.time_ns < at_ns => {
                GenOp::Pending(at_ns)
            }
            Phase::Working { job, .. } => {
                self.phase = Phase::Waiting;
                GenOp::Op(Draft::new(COMPLETE, json!(job)).with_key(json!(QUEUE)))
            }
            Phase::Idle { .. } if self.drain => {
                if self.empty_in_a_row >= DRAIN_EMPTY_CLAIMS || self.drain_claims >= DRAIN_LIMIT {
                    self.phase = Phase::Done;
                    return GenOp::Exhausted;
                }
                self.claim()
            }
            Phase::Idle { .. } => {
                if ctx.rng.gen_bool(0.5) {
                    let job = self.next_job;
                    self.next_job += ctx.threads.max(1) as u64;
                    self.phase = Phase::Waiting;
                    GenOp::Op(Draft::new(ENQUEUE, json!(job)).with_key(json!(QUEUE)))
                } else {
                    self.claim()
                }
            }
        }
    }

    fn update(&mut self, event: &Op) {
        let Process::Client(process) = event.process else {
            return;
        };
        if self.threads == 0
            || process as usize % self.threads != self.thread
            || self.phase != Phase::Waiting
        {
            return;
        }
        let now = event.time.unwrap_or(0);
        let ms = 1_000_000;
        self.phase = match (event.f.as_str(), event.kind) {
            (_, OpType::Invoke) => return,
            (CLAIM, OpType::Ok) => match event.value.as_u64() {
                Some(job) => {
                    self.empty_in_a_row = 0;
                    Phase::Working {
                        job,
                        at_ns: now + WORK_MS * ms,
                    }
                }
                None => {
                    self.empty_in_a_row += 1;
                    let gap = if self.drain {
                        DRAIN_EMPTY_GAP_MS
                    } else {
                        EMPTY_BACKOFF_MS
                    };
                    Phase::Idle {
                        at_ns: now + gap * ms,
                    }
                }
            },
            // A refused or unknown operation: try again shortly (a new process after info).
            (_, OpType::Fail) | (_, OpType::Info) => Phase::Idle {
                at_ns: now + EMPTY_BACKOFF_MS * ms,
            },
            _ => Phase::Idle { at_ns: now },
        };
    }
}

/// The endless main generator: every thread enqueues, claims and completes.
pub fn generator() -> BoxGen {
    generator::each_thread(|thread| Box::new(Cycle::new(thread, false)) as BoxGen)
}

/// The drain: every thread claims and completes until the queue stays empty.
pub fn final_generator() -> BoxGen {
    generator::each_thread(|thread| Box::new(Cycle::new(thread, true)) as BoxGen)
}

/// The promise of `test.target` (a `delivery` workload option overrides it, for a target
/// defined by a file or a history checked again).
pub fn promise(test: &Test) -> Result<Delivery, String> {
    match test.workload_options.get(OPTION_DELIVERY) {
        Some(value) => value.as_str().and_then(Delivery::parse).ok_or_else(|| {
            format!("{OPTION_DELIVERY}: expected exactly-once or at-least-once, got {value}")
        }),
        None => delivery(&test.target).ok_or_else(|| {
            format!(
                "the target {:?} has no queue client (the queue workload runs on memory, \
                 postgres, zookeeper and raftkv), so it states no delivery promise",
                test.target
            )
        }),
    }
}

pub fn workload(test: &Test) -> Result<Workload, WorkloadError> {
    let bad = |option: &str, why: String| WorkloadError::BadOption {
        workload: test.workload.clone(),
        option: option.to_string(),
        why,
    };
    if let Some(name) = test.workload_options.keys().find(|k| *k != OPTION_DELIVERY) {
        return Err(bad(name, "unknown option; known: delivery".into()));
    }
    let promised = promise(test).map_err(|why| bad(OPTION_DELIVERY, why))?;
    let options: BTreeMap<String, Value> =
        [(OPTION_DELIVERY.to_string(), json!(promised.as_str()))].into();
    Ok(Workload {
        name: "queue",
        options,
        generator: generator(),
        final_generator: Some(final_generator()),
        checker: check,
    })
}

/// Lost, duplicated, unexpected and twice-completed jobs, judged against the promise.
pub fn check(test: &Test, history: &History) -> Checked {
    let promised = match promise(test) {
        Ok(p) => p,
        Err(why) => return Checked::unknown("queue", why),
    };
    match queue_checker::check(history, promised) {
        Ok(result) => Checked {
            valid: result.valid,
            checker: "queue",
            explanation: result.explain(),
            result: serde_json::to_value(&result).expect("results serialize"),
        },
        Err(e) => Checked::unknown("queue", format!("malformed history: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_checker::Validity;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use std::collections::{HashMap, VecDeque};

    /// A queue on a simulated clock; each operation takes 1 ms and applies at its invocation.
    #[derive(Default)]
    struct SimQueue {
        ready: VecDeque<u64>,
        /// Job -> the thread whose claim is in force.
        claimed: HashMap<u64, usize>,
        /// Deliver every third claim's job without removing it.
        deliver_twice: bool,
        claims: u64,
    }

    impl SimQueue {
        fn apply(&mut self, thread: usize, d: &Draft) -> (OpType, Value) {
            match d.f.as_str() {
                ENQUEUE => {
                    self.ready.push_back(d.value.as_u64().unwrap());
                    (OpType::Ok, d.value.clone())
                }
                CLAIM => {
                    self.claims += 1;
                    let job = if self.deliver_twice && self.claims.is_multiple_of(3) {
                        self.ready.front().copied()
                    } else {
                        self.ready.pop_front()
                    };
                    match job {
                        Some(job) => {
                            self.claimed.insert(job, thread);
                            (OpType::Ok, json!(job))
                        }
                        None => (OpType::Ok, Value::Null),
                    }
                }
                COMPLETE => {
                    let job = d.value.as_u64().unwrap();
                    if self.claimed.get(&job) == Some(&thread) {
                        self.claimed.remove(&job);
                        (OpType::Ok, d.value.clone())
                    } else {
                        (OpType::Fail, json!("not-claimed"))
                    }
                }
                other => panic!("unexpected {other}"),
            }
        }
    }

    fn simulate(service: &mut SimQueue, threads: usize, until_ns: u64) -> History {
        let mut gen = generator::with_final(
            generator::time_limit(until_ns, generator()),
            Some(final_generator()),
        );
        let mut rng = SmallRng::seed_from_u64(3);
        let mut wake = vec![0u64; threads];
        let mut done = vec![false; threads];
        let mut events: Vec<(u64, usize, Op)> = Vec::new();
        while let Some(thread) = (0..threads)
            .filter(|&t| !done[t])
            .min_by_key(|&t| (wake[t], t))
        {
            let now = wake[thread];
            let mut ctx = Context {
                time_ns: now,
                thread,
                threads,
                in_flight: 0,
                rng: &mut rng,
            };
            match gen.op(&mut ctx) {
                GenOp::Op(draft) => {
                    let (kind, value) = service.apply(thread, &draft);
                    let end = now + 1_000_000;
                    let key = draft.key.clone().unwrap();
                    let invoke = Op::invoke(thread as u64, &draft.f, draft.value.clone())
                        .with_key(key.clone())
                        .with_time(now);
                    let mut completion = Op::complete(thread as u64, kind, &draft.f, value)
                        .with_key(key)
                        .with_time(end);
                    if kind != OpType::Ok {
                        completion.error = Some(completion.value.clone());
                        completion.value = draft.value.clone();
                    }
                    gen.update(&completion);
                    let n = events.len();
                    events.push((now, n, invoke));
                    events.push((end, n + 1, completion));
                    wake[thread] = end;
                }
                GenOp::Pending(t) => wake[thread] = t.max(now + 1),
                GenOp::Exhausted => done[thread] = true,
            }
        }
        events.sort_by_key(|(time, n, _)| (*time, *n));
        let mut ops: Vec<Op> = events.into_iter().map(|(_, _, op)| op).collect();
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        History::new(ops)
    }

    #[test]
    fn a_correct_queue_delivers_every_job_once_and_the_drain_empties_it() {
        let mut service = SimQueue::default();
        let history = simulate(&mut service, 4, 1_000_000_000);
        let result = queue_checker::check(&history, Delivery::ExactlyOnce).unwrap();
        assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
        assert!(result.enqueued_ok > 50, "{} jobs", result.enqueued_ok);
        // Every job delivered; a few claimed as the main phase ended were never completed.
        assert_eq!(result.delivered, result.enqueued_ok);
        assert!(result.completed + 5 >= result.enqueued_ok);
        assert!(result.drained);
        assert!(service.ready.is_empty());
    }

    #[test]
    fn a_queue_that_delivers_twice_breaks_exactly_once_but_not_at_least_once() {
        let mut service = SimQueue {
            deliver_twice: true,
            ..SimQueue::default()
        };
        let history = simulate(&mut service, 4, 1_000_000_000);
        let strict = queue_checker::check(&history, Delivery::ExactlyOnce).unwrap();
        assert_eq!(strict.valid, Validity::Invalid);
        assert!(strict.counts["duplicate-delivery"] > 0);
        let lenient = queue_checker::check(&history, Delivery::AtLeastOnce).unwrap();
        assert!(lenient.allowed["duplicate-delivery"] > 0);
        assert!(!lenient.counts.contains_key("duplicate-delivery"));
        assert!(
            !lenient.counts.contains_key("completed-twice"),
            "{}",
            lenient.explain()
        );
    }

    #[test]
    fn the_promise_is_the_targets_unless_an_option_says_otherwise() {
        let mut test = Test::example("postgres", "queue", 1);
        assert_eq!(promise(&test), Ok(Delivery::AtLeastOnce));
        test.target = "etcd".into();
        assert!(promise(&test).unwrap_err().contains("no queue client"));
        test.workload_options
            .insert(OPTION_DELIVERY.into(), json!("exactly-once"));
        assert_eq!(promise(&test), Ok(Delivery::ExactlyOnce));
        assert_eq!(
            workload(&test).unwrap().options[OPTION_DELIVERY],
            json!("exactly-once")
        );
        test.workload_options.insert("nosuch".into(), json!(1));
        assert!(workload(&test).is_err());
    }
}
