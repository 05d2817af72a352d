//! The `election` workload: clients campaign for leadership of one election and observe who
//! leads; checked by [`faultline_checker::election`] (agreement, integrity, validity,
//! termination). What a client receives and answers is in [`faultline_core::election`].
//!
//! With `candidates: clients` (memory, etcd, ZooKeeper) every worker thread runs a cycle on
//! the election `"election"`: `campaign` (one attempt); elected, it queries the `leader`
//! [`QUERIES_PER_TERM`] times over half its lease, then `resign`s; not elected, one `leader`
//! query, a random back-off, and another campaign. With `candidates: nodes` (raftkv) every
//! thread queries its node's `leader` after a random pause. A thread whose operation ended
//! `info` starts over as a new process. After the main phase (and the nemesis's final heal),
//! thread 0 resigns (a term the main phase cut short) and campaigns once, and every thread
//! queries the leader once: the observations termination is judged on.
//!
//! Options (`test.workload_options`): `lease_ms` (default 2000), `termination_bound_ms`
//! (default 15000), `candidates` (`clients` or `nodes`; default `nodes` on raftkv).
//!
//! Design decision: as in [`crate::lock`], each thread's cycle is a small state machine fed by
//! the completions it sees, so terms follow what the target actually granted.

use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use faultline_checker::election::{self as election_checker, ElectionOptions};
use faultline_core::election::{
    Candidates, ElectionSpec, CAMPAIGN, LEADER, OPTION_CANDIDATES, OPTION_LEASE_MS,
    OPTION_TERMINATION_BOUND_MS, RESIGN,
};
use faultline_core::{History, Op, OpType, Process, Test};

use crate::generator::{self, BoxGen, Context, Draft, GenOp, Generator, WAIT_POLL_NS};
use crate::{Checked, Workload, WorkloadError};

/// The election every thread takes part in.
pub const ELECTION: &str = "election";
/// Leader queries a leader makes before it resigns.
pub const QUERIES_PER_TERM: u64 = 2;
/// The shortest mean back-off between a thread's campaigns (or queries), in ms.
pub const MIN_BACKOFF_MEAN_MS: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Campaign (or, observing only, query) at or after this time (ns).
    Idle { at_ns: u64 },
    /// Leading: the next query (or, with none left, the resignation) at or after this time.
    Leading { at_ns: u64 },
    /// Not elected: query the leader now.
    Observing,
    /// An operation is outstanding.
    Waiting,
}

struct Cycle {
    thread: usize,
    threads: usize,
    started: bool,
    phase: Phase,
    spec: ElectionSpec,
    /// Won a campaign and not yet resigned (nor given up).
    in_term: bool,
    queries_left: u64,
    /// The next `op` adds a random back-off to an `Idle` phase (the RNG lives in the context).
    back_off: bool,
}

impl Cycle {
    fn new(thread: usize, spec: ElectionSpec) -> Cycle {
        Cycle {
            thread,
            threads: 0,
            started: false,
            phase: Phase::Idle { at_ns: 0 },
            spec,
            in_term: false,
            queries_left: 0,
            back_off: true,
        }
    }

    fn gap_ns(&self) -> u64 {
        self.spec.lease_ms * 1_000_000 / 2 / (QUERIES_PER_TERM + 1)
    }

    /// Mean back-off: a twentieth of the lease, so candidates do not flood the service.
    fn backoff_mean_ns(&self) -> u64 {
        (self.spec.lease_ms / 20).max(MIN_BACKOFF_MEAN_MS) * 1_000_000
    }
}

impl Generator for Cycle {
    fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
        self.threads = ctx.threads;
        if !self.started {
            self.started = true;
            self.phase = Phase::Idle { at_ns: ctx.time_ns };
        }
        if self.back_off {
            self.back_off = false;
            if let Phase::Idle { at_ns } = self.phase {
                self.phase = Phase::Idle {
                    at_ns: at_ns + ctx.rng.gen_range(0..2 * self.backoff_mean_ns()),
                };
            }
        }
        let key = json!(ELECTION);
        let observe_only = self.spec.candidates == Candidates::Nodes;
        match self.phase {
            Phase::Waiting => GenOp::Pending(ctx.time_ns + WAIT_POLL_NS),
            Phase::Idle { at_ns } | Phase::Leading { at_ns } if ctx.time_ns < at_ns => {
                GenOp::Pending(at_ns)
            }
            Phase::Idle { .. } => {
                self.phase = Phase::Waiting;
                let f = if observe_only { LEADER } else { CAMPAIGN };
                GenOp::Op(Draft::new(f, Value::Null).with_key(key))
            }
            Phase::Leading { .. } if self.queries_left > 0 => {
                self.queries_left -= 1;
                self.phase = Phase::Waiting;
                GenOp::Op(Draft::new(LEADER, Value::Null).with_key(key))
            }
            Phase::Leading { .. } => {
                self.phase = Phase::Waiting;
                GenOp::Op(Draft::new(RESIGN, Value::Null).with_key(key))
            }
            Phase::Observing => {
                self.phase = Phase::Waiting;
                GenOp::Op(Draft::new(LEADER, Value::Null).with_key(key))
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
        let idle = |cycle: &mut Cycle| {
            cycle.back_off = true;
            Phase::Idle { at_ns: now }
        };
        self.phase = match (event.f.as_str(), event.kind) {
            (_, OpType::Invoke) => return,
            // A new process from here on: it leads nothing.
            (_, OpType::Info) => {
                self.in_term = false;
                Phase::Idle { at_ns: now }
            }
            (CAMPAIGN, OpType::Ok) => {
                self.in_term = true;
                self.queries_left = QUERIES_PER_TERM;
                Phase::Leading {
                    at_ns: now + self.gap_ns(),
                }
            }
            (CAMPAIGN, _) => Phase::Observing,
            (LEADER, _) if self.in_term => Phase::Leading {
                at_ns: now + self.gap_ns(),
            },
            (LEADER, _) => idle(self),
            (RESIGN, _) => {
                self.in_term = false;
                idle(self)
            }
            _ => return,
        };
    }
}

/// The endless main generator: every thread runs its cycle.
pub fn generator(spec: ElectionSpec) -> BoxGen {
    generator::each_thread(move |thread| Box::new(Cycle::new(thread, spec)) as BoxGen)
}

/// After the main phase: thread 0 resigns whatever term it still holds and campaigns
/// (clients as candidates), then every thread asks who leads.
pub fn final_generator(spec: ElectionSpec) -> BoxGen {
    generator::each_thread(move |thread| {
        let query = generator::once(Draft::new(LEADER, Value::Null).with_key(json!(ELECTION)));
        if thread == 0 && spec.candidates == Candidates::Clients {
            // A term the main phase cut short is given up first, so the campaign is a real
            // one (a client that still believes it leads refuses to campaign).
            let resign = generator::once(Draft::new(RESIGN, Value::Null).with_key(json!(ELECTION)));
            let campaign =
                generator::once(Draft::new(CAMPAIGN, Value::Null).with_key(json!(ELECTION)));
            generator::seq(vec![resign, campaign, query])
        } else {
            query
        }
    })
}

pub fn workload(test: &Test) -> Result<Workload, WorkloadError> {
    let bad = |option: &str, why: String| WorkloadError::BadOption {
        workload: test.workload.clone(),
        option: option.to_string(),
        why,
    };
    let known = [
        OPTION_LEASE_MS,
        OPTION_TERMINATION_BOUND_MS,
        OPTION_CANDIDATES,
    ];
    for name in test.workload_options.keys() {
        if !known.contains(&name.as_str()) {
            return Err(bad(
                name,
                format!("unknown option; known: {}", known.join(", ")),
            ));
        }
    }
    let spec = ElectionSpec::from_test(test).map_err(|why| {
        let option = why.split(':').next().unwrap_or(OPTION_LEASE_MS).to_string();
        bad(&option, why)
    })?;
    let options: BTreeMap<String, Value> = [
        (OPTION_LEASE_MS, json!(spec.lease_ms)),
        (
            OPTION_TERMINATION_BOUND_MS,
            json!(spec.termination_bound_ms),
        ),
        (OPTION_CANDIDATES, json!(spec.candidates.as_str())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Ok(Workload {
        name: "election",
        options,
        generator: generator(spec),
        final_generator: Some(final_generator(spec)),
        checker: check,
    })
}

/// The checker's options for `test`: its termination bound, and the nodes as the candidates
/// when they elect among themselves.
pub fn check_options(test: &Test) -> ElectionOptions {
    let spec = ElectionSpec::from_test(test).ok();
    ElectionOptions {
        termination_bound_ms: spec.map_or(
            faultline_core::election::DEFAULT_TERMINATION_BOUND_MS,
            |s| s.termination_bound_ms,
        ),
        candidates: match spec.map(|s| s.candidates) {
            Some(Candidates::Nodes) => Some(test.nodes.clone()),
            _ => None,
        },
    }
}

/// The election checker.
pub fn check(test: &Test, history: &History) -> Checked {
    match election_checker::check(history, &check_options(test)) {
        Ok(result) => Checked {
            valid: result.valid,
            checker: "election",
            explanation: result.explain(),
            result: serde_json::to_value(&result).expect("results serialize"),
        },
        Err(e) => Checked::unknown("election", format!("malformed history: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_checker::Validity;
    use faultline_core::election::{candidate_name, observation};
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    /// An election service on a simulated clock, applied at each operation's invocation;
    /// every operation takes 1 ms.
    #[derive(Default)]
    struct SimElection {
        epoch: i64,
        leader: Option<(i64, String, u64)>,
        /// Every campaign while another leads wins anyway, in its epoch.
        two_leaders: bool,
    }

    impl SimElection {
        fn apply(
            &mut self,
            now: u64,
            spec: &ElectionSpec,
            process: u64,
            f: &str,
        ) -> (OpType, Value) {
            let me = candidate_name(process);
            let live = self.leader.clone().filter(|(_, _, end)| *end > now);
            match f {
                CAMPAIGN => {
                    let epoch = match live {
                        Some((epoch, _, _)) if self.two_leaders => epoch,
                        Some(_) => return (OpType::Fail, json!("not-elected")),
                        None => {
                            self.epoch += 1;
                            self.epoch
                        }
                    };
                    self.leader = Some((epoch, me.clone(), now + spec.lease_ms * 1_000_000));
                    (OpType::Ok, observation(epoch, &me))
                }
                LEADER => match live {
                    Some((epoch, name, _)) => (OpType::Ok, observation(epoch, &name)),
                    None => (OpType::Ok, Value::Null),
                },
                RESIGN => match live {
                    Some((_, name, _)) if name == me => {
                        self.leader = None;
                        (OpType::Ok, Value::Null)
                    }
                    _ => (OpType::Fail, json!("not-leader")),
                },
                other => panic!("unexpected {other}"),
            }
        }
    }

    fn simulate(
        service: &mut SimElection,
        spec: ElectionSpec,
        threads: usize,
        until_ns: u64,
    ) -> History {
        let mut gen = generator::with_final(
            generator::time_limit(until_ns, generator(spec)),
            Some(final_generator(spec)),
        );
        let mut rng = SmallRng::seed_from_u64(5);
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
                    let (kind, value) = service.apply(now, &spec, thread as u64, &draft.f);
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

    fn spec() -> ElectionSpec {
        ElectionSpec {
            lease_ms: 100,
            termination_bound_ms: 1_000,
            candidates: Candidates::Clients,
        }
    }

    #[test]
    fn a_correct_election_gives_terms_one_after_another_and_a_valid_history() {
        let mut service = SimElection::default();
        let history = simulate(&mut service, spec(), 5, 2_000_000_000);
        let result = election_checker::check(&history, &ElectionOptions::default()).unwrap();
        assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
        assert!(result.elected > 10, "{} terms", result.elected);
        assert!(result.not_elected > 0 && result.leaderless > 0);
        let fs: std::collections::BTreeSet<&str> =
            history.ops.iter().map(|op| op.f.as_str()).collect();
        assert_eq!(fs, [CAMPAIGN, LEADER, RESIGN].into_iter().collect());
        // The final phase ends with leader queries, one per thread.
        assert_eq!(history.ops.last().unwrap().f, LEADER);
    }

    #[test]
    fn two_leaders_in_one_epoch_are_caught() {
        let mut service = SimElection {
            two_leaders: true,
            ..SimElection::default()
        };
        let history = simulate(&mut service, spec(), 5, 1_000_000_000);
        let result = election_checker::check(&history, &ElectionOptions::default()).unwrap();
        assert_eq!(result.valid, Validity::Invalid);
        assert!(result.counts["agreement"] > 0);
    }

    #[test]
    fn observing_nodes_only_query_and_options_are_checked() {
        let mut test = Test::example("raftkv", "election", 1);
        test.nodes = vec!["n1".into(), "n2".into()];
        let workload = workload(&test).unwrap();
        assert_eq!(workload.options[OPTION_CANDIDATES], json!("nodes"));
        assert_eq!(
            check_options(&test).candidates,
            Some(vec!["n1".to_string(), "n2".to_string()])
        );
        let spec = ElectionSpec::from_test(&test).unwrap();
        let mut service = SimElection::default();
        let history = simulate(&mut service, spec, 3, 500_000_000);
        assert!(history.ops.iter().all(|op| op.f == LEADER));
        test.workload_options.insert("nosuch".into(), json!(1));
        assert!(matches!(
            workload_err(&test),
            WorkloadError::BadOption { .. }
        ));
    }

    fn workload_err(test: &Test) -> WorkloadError {
        match workload(test) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }
}
