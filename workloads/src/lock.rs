//! The lock workloads (`lock`, `fenced-lock`): clients take one lock with a lease, write to
//! the resource it protects, and release it; checked by [`faultline_checker::lock`].
//!
//! Every worker thread runs the same cycle on the lock `"lock"`: `acquire` (one attempt with
//! `{"lease_ms": L}`); when granted, [`WRITES_PER_HOLD`] writes `{"id": n}` (ids unique in the
//! run) spread over half the lease, then `release`; when refused, a short random back-off and
//! another attempt. A thread whose operation ended `info` starts over as a new process. After
//! the main phase, one read of the resource lists every accepted write in acceptance order.
//! What a client receives and answers is in [`faultline_core::lock`].
//!
//! Options (`test.workload_options`): `lease_ms` (default 1000), `fencing` (`lock`: off by
//! default; `fenced-lock`: always on), `client_pause_ms` (default 0): when positive, a quarter
//! of the holds have one write whose holder stalls that long after checking its lease and
//! before sending, as a process paused by garbage collection or the scheduler would.
//!
//! Design decision: each thread's cycle is a small state machine fed by the completions it
//! sees ([`Generator::update`]), so holds follow what the target actually granted, and the
//! generator stays pure (time from its context, randomness from its seeded RNG).

use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

use faultline_checker::lock::{self as lock_checker, LockOptions};
use faultline_core::lock::{
    LockSpec, ACQUIRE, OPTION_CLIENT_PAUSE_MS, OPTION_FENCING, OPTION_LEASE_MS, READ, RELEASE,
    WRITE,
};
use faultline_core::{History, Op, OpType, Process, Test};

use crate::generator::{self, BoxGen, Context, Draft, GenOp, Generator, WAIT_POLL_NS};
use crate::{Checked, Workload, WorkloadError};

/// The lock every thread contends for (one lock: contention is the point).
pub const LOCK: &str = "lock";
/// Writes to the protected resource per hold.
pub const WRITES_PER_HOLD: u64 = 3;
/// Mean back-off after a refused acquire or a release, in ms (uniform in `0..2 * mean`).
pub const BACKOFF_MEAN_MS: u64 = 10;
/// Share of holds in which one write stalls (when `client_pause_ms` is positive): one in this.
pub const PAUSED_HOLD_ONE_IN: u32 = 4;

/// What a thread does next.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Acquire at or after this time (ns).
    Idle { at_ns: u64 },
    /// Holding: the next write (or, with none left, the release) at or after this time.
    Holding { at_ns: u64 },
    /// Release now.
    Releasing,
    /// An operation is outstanding.
    Waiting,
}

/// One thread's cycle.
struct Cycle {
    thread: usize,
    /// Worker threads, learned from the first context.
    threads: usize,
    started: bool,
    phase: Phase,
    spec: LockSpec,
    /// Writes left in this hold.
    writes_left: u64,
    /// Which write of this hold stalls (counted as `writes_left` when it is made), if any.
    paused_write: Option<u64>,
    /// Whether this hold's stall was drawn yet.
    pause_drawn: bool,
    /// Writes get ids `thread, thread + threads, ...`: unique without shared state.
    next_write: u64,
}

impl Cycle {
    fn new(thread: usize, spec: LockSpec) -> Cycle {
        Cycle {
            thread,
            threads: 0,
            started: false,
            phase: Phase::Idle { at_ns: 0 },
            spec,
            writes_left: 0,
            paused_write: None,
            pause_drawn: false,
            next_write: thread as u64,
        }
    }

    fn gap_ns(&self) -> u64 {
        // Writes spread over half the lease: a holder normally releases in time.
        self.spec.lease_ms * 1_000_000 / 2 / (WRITES_PER_HOLD + 1)
    }

    fn backoff_ns(ctx: &mut Context<'_>) -> u64 {
        ctx.rng.gen_range(0..2 * BACKOFF_MEAN_MS * 1_000_000)
    }
}

impl Generator for Cycle {
    fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
        self.threads = ctx.threads;
        if !self.started {
            // A first attempt at a random moment, so threads do not all ask at once.
            self.started = true;
            self.phase = Phase::Idle {
                at_ns: ctx.time_ns + Cycle::backoff_ns(ctx),
            };
        }
        let key = json!(LOCK);
        match self.phase {
            Phase::Waiting => GenOp::Pending(ctx.time_ns + WAIT_POLL_NS),
            Phase::Idle { at_ns } | Phase::Holding { at_ns } if ctx.time_ns < at_ns => {
                GenOp::Pending(at_ns)
            }
            Phase::Idle { .. } => {
                self.phase = Phase::Waiting;
                GenOp::Op(
                    Draft::new(ACQUIRE, json!({ OPTION_LEASE_MS: self.spec.lease_ms }))
                        .with_key(key),
                )
            }
            Phase::Holding { .. } if self.writes_left > 0 => {
                let id = self.next_write;
                self.next_write += ctx.threads.max(1) as u64;
                let value = if self.paused_write == Some(self.writes_left) {
                    json!({"id": id, "pause_ms": self.spec.client_pause_ms})
                } else {
                    json!({ "id": id })
                };
                self.writes_left -= 1;
                self.phase = Phase::Waiting;
                GenOp::Op(Draft::new(WRITE, value).with_key(key))
            }
            Phase::Holding { .. } | Phase::Releasing => {
                self.phase = Phase::Waiting;
                GenOp::Op(Draft::new(RELEASE, Value::Null).with_key(key))
            }
        }
    }

    fn update(&mut self, event: &Op) {
        let Process::Client(process) = event.process else {
            return;
        };
        if self.threads == 0 || process as usize % self.threads != self.thread {
            return;
        }
        let now = event.time.unwrap_or(0);
        let backoff = BACKOFF_MEAN_MS * 1_000_000;
        self.phase = match (event.f.as_str(), event.kind) {
            (_, OpType::Invoke) => return,
            // A new process from here on: it holds nothing.
            (_, OpType::Info) => Phase::Idle { at_ns: now },
            (ACQUIRE, OpType::Ok) => {
                self.writes_left = WRITES_PER_HOLD;
                self.paused_write = None;
                self.pause_drawn = false;
                Phase::Holding {
                    at_ns: now + self.gap_ns(),
                }
            }
            (ACQUIRE, _) => Phase::Idle {
                at_ns: now + backoff,
            },
            (WRITE, OpType::Ok) => Phase::Holding {
                at_ns: now + self.gap_ns(),
            },
            // Rejected or too late: this hold is over.
            (WRITE, _) => Phase::Releasing,
            (RELEASE, _) => Phase::Idle {
                at_ns: now + backoff,
            },
            _ => return,
        };
    }
}

/// A cycle that draws, once per hold, whether one of its writes stalls (the draw needs the
/// RNG, which only [`Generator::op`] sees).
struct PausingCycle(Cycle);

impl Generator for PausingCycle {
    fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
        let cycle = &mut self.0;
        if matches!(cycle.phase, Phase::Holding { .. })
            && !cycle.pause_drawn
            && cycle.spec.client_pause_ms > 0
        {
            cycle.pause_drawn = true;
            if ctx.rng.gen_ratio(1, PAUSED_HOLD_ONE_IN) {
                cycle.paused_write = Some(ctx.rng.gen_range(1..=WRITES_PER_HOLD));
            }
        }
        cycle.op(ctx)
    }

    fn update(&mut self, event: &Op) {
        self.0.update(event)
    }
}

/// The endless main generator: every thread runs its cycle.
pub fn generator(spec: LockSpec) -> BoxGen {
    generator::each_thread(move |thread| Box::new(PausingCycle(Cycle::new(thread, spec))) as BoxGen)
}

/// One read of the protected resource.
pub fn final_generator() -> BoxGen {
    generator::once(Draft::new(READ, Value::Null).with_key(json!(LOCK)))
}

pub fn workload(test: &Test) -> Result<Workload, WorkloadError> {
    let bad = |option: &str, why: String| WorkloadError::BadOption {
        workload: test.workload.clone(),
        option: option.to_string(),
        why,
    };
    for name in test.workload_options.keys() {
        if ![OPTION_LEASE_MS, OPTION_FENCING, OPTION_CLIENT_PAUSE_MS].contains(&name.as_str()) {
            return Err(bad(
                name,
                "unknown option; known: lease_ms, fencing, client_pause_ms".into(),
            ));
        }
    }
    let spec = LockSpec::from_test(test).map_err(|why| {
        let option = why.split(':').next().unwrap_or(OPTION_LEASE_MS).to_string();
        bad(&option, why)
    })?;
    if spec.client_pause_ms >= test.limits.op_timeout_ms {
        return Err(bad(
            OPTION_CLIENT_PAUSE_MS,
            format!(
                "a stalled write must finish within the op timeout ({} ms)",
                test.limits.op_timeout_ms
            ),
        ));
    }
    let options: BTreeMap<String, Value> = [
        (OPTION_LEASE_MS, json!(spec.lease_ms)),
        (OPTION_FENCING, json!(spec.fencing)),
        (OPTION_CLIENT_PAUSE_MS, json!(spec.client_pause_ms)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Ok(Workload {
        name: if spec.fencing && test.workload == "fenced-lock" {
            "fenced-lock"
        } else {
            "lock"
        },
        options,
        generator: generator(spec),
        final_generator: Some(final_generator()),
        checker: check,
    })
}

/// The lock checker: the mutex model, the holders' beliefs in real time, and fencing.
pub fn check(test: &Test, history: &History) -> Checked {
    let options = LockOptions {
        time_limit: Some(Duration::from_millis(test.limits.checker_time_limit_ms)),
    };
    match lock_checker::check(history, &options) {
        Ok(result) => Checked {
            valid: result.valid,
            checker: "lock",
            explanation: result.explain(),
            result: serde_json::to_value(&result).expect("results serialize"),
        },
        Err(e) => Checked::unknown("lock", format!("malformed history: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_checker::Validity;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    /// A lock service on a simulated clock, applied at each operation's invocation; every
    /// operation takes 1 ms.
    #[derive(Default)]
    struct SimLock {
        holder: Option<(i64, u64)>,
        last_token: i64,
        resource: Vec<Value>,
        highest: i64,
        /// Grant even when held.
        double_grant: bool,
    }

    impl SimLock {
        fn apply(
            &mut self,
            now: u64,
            spec: &LockSpec,
            hold: &mut Option<i64>,
            d: &Draft,
        ) -> (OpType, Value) {
            match d.f.as_str() {
                ACQUIRE => {
                    if self.holder.is_some_and(|(_, end)| end > now) && !self.double_grant {
                        return (OpType::Fail, json!("held"));
                    }
                    self.last_token += 1;
                    self.holder = Some((self.last_token, now + spec.lease_ms * 1_000_000));
                    *hold = Some(self.last_token);
                    (
                        OpType::Ok,
                        json!({"token": self.last_token, "lease_ms": spec.lease_ms}),
                    )
                }
                WRITE => {
                    let token = hold.expect("writes only while holding");
                    if spec.fencing && token < self.highest {
                        return (OpType::Fail, json!("stale-token"));
                    }
                    self.highest = self.highest.max(token);
                    self.resource.push(json!([token, d.value["id"]]));
                    (OpType::Ok, d.value.clone())
                }
                RELEASE => {
                    let token = hold.take();
                    match self.holder {
                        Some((t, _)) if Some(t) == token => {
                            self.holder = None;
                            (OpType::Ok, Value::Null)
                        }
                        _ => (OpType::Fail, json!("not-held")),
                    }
                }
                READ => (OpType::Ok, Value::Array(self.resource.clone())),
                other => panic!("unexpected {other}"),
            }
        }
    }

    fn simulate(service: &mut SimLock, spec: LockSpec, threads: usize, until_ns: u64) -> History {
        let mut gen = generator::with_final(
            generator::time_limit(until_ns, generator(spec)),
            Some(final_generator()),
        );
        let mut rng = SmallRng::seed_from_u64(5);
        let mut wake = vec![0u64; threads];
        let mut done = vec![false; threads];
        let mut holds: Vec<Option<i64>> = vec![None; threads];
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
                    let (kind, value) = service.apply(now, &spec, &mut holds[thread], &draft);
                    let end = now + 1_000_000;
                    let invoke = Op::invoke(thread as u64, &draft.f, draft.value.clone())
                        .with_key(draft.key.clone().unwrap())
                        .with_time(now);
                    let mut completion = Op::complete(thread as u64, kind, &draft.f, value)
                        .with_key(draft.key.clone().unwrap())
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

    fn spec(fencing: bool) -> LockSpec {
        LockSpec {
            lease_ms: 100,
            fencing,
            client_pause_ms: 0,
        }
    }

    #[test]
    fn a_correct_lock_gives_holds_one_after_another_and_a_valid_history() {
        let mut service = SimLock::default();
        let history = simulate(&mut service, spec(false), 5, 2_000_000_000);
        let result = lock_checker::check(&history, &LockOptions::default()).unwrap();
        assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
        // Two seconds of 100 ms leases, holds of about 50 ms: many holds, every one writing.
        assert!(result.holds > 10, "{} holds", result.holds);
        assert_eq!(result.fencing[0].accepted, Some(result.holds * 3));
        let fs: std::collections::BTreeSet<&str> =
            history.ops.iter().map(|op| op.f.as_str()).collect();
        assert_eq!(fs, [ACQUIRE, READ, RELEASE, WRITE].into_iter().collect());
        // The read comes last.
        assert_eq!(history.ops.last().unwrap().f, READ);
    }

    #[test]
    fn a_lock_granted_twice_is_caught_by_every_check_without_fencing() {
        let mut service = SimLock {
            double_grant: true,
            ..SimLock::default()
        };
        let history = simulate(&mut service, spec(false), 5, 1_000_000_000);
        let result = lock_checker::check(&history, &LockOptions::default()).unwrap();
        assert_eq!(result.valid, Validity::Invalid);
        assert!(result.overlap_count > 0);
        assert_eq!(result.mutex.as_ref().unwrap().valid, Validity::Invalid);
        assert!(result.fencing[0].counts.contains_key("stale-token"));
    }

    #[test]
    fn fencing_keeps_the_resource_in_token_order_even_when_granted_twice() {
        let mut service = SimLock {
            double_grant: true,
            ..SimLock::default()
        };
        let history = simulate(&mut service, spec(true), 5, 1_000_000_000);
        let result = lock_checker::check(&history, &LockOptions::default()).unwrap();
        assert!(result.overlap_count > 0);
        assert_eq!(
            result.fencing[0].valid,
            Validity::Valid,
            "{}",
            result.explain()
        );
        assert!(result.fencing[0].writes_rejected > 0);
    }

    #[test]
    fn client_pauses_are_drawn_per_hold_and_options_are_checked() {
        let mut test = Test::example("memory", "lock", 1);
        test.workload_options
            .insert(OPTION_CLIENT_PAUSE_MS.into(), json!(200));
        test.workload_options
            .insert(OPTION_LEASE_MS.into(), json!(100));
        let workload = workload(&test).unwrap();
        assert_eq!(workload.options[OPTION_FENCING], json!(false));
        let mut service = SimLock::default();
        let spec = LockSpec::from_test(&test).unwrap();
        let history = simulate(&mut service, spec, 3, 3_000_000_000);
        let paused = history
            .ops
            .iter()
            .filter(|op| op.kind == OpType::Invoke && op.value.get("pause_ms").is_some())
            .count();
        let holds = history
            .ops
            .iter()
            .filter(|op| op.f == ACQUIRE && op.kind == OpType::Ok)
            .count();
        // About one hold in four, never more than one write per hold.
        assert!(paused > 0 && paused <= holds / 2, "{paused} of {holds}");
        test.workload_options.insert("nosuch".into(), json!(1));
        assert!(workload_err(&test).contains("unknown option"));
        test.workload_options.remove("nosuch");
        test.workload_options.insert(
            OPTION_CLIENT_PAUSE_MS.into(),
            json!(test.limits.op_timeout_ms),
        );
        assert!(workload_err(&test).contains("op timeout"));
    }

    fn workload_err(test: &Test) -> String {
        match workload(test) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }
}
