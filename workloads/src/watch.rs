//! The change-notification workload (`watch`): writers change a few keys while watchers watch
//! them; checked by [`faultline_checker::watch`]. What a client receives and answers is in
//! [`faultline_core::watch`].
//!
//! The first `watchers` worker threads (default: half, at least one) watch every key, one
//! `watch` of `watch_ms` after another (each continues its process's stream); the others
//! write: a random key, a value unique in the run (`n * threads + thread`), then a random
//! back-off of up to [`WRITE_BACKOFF_MAX_MS`]. A watch that fails is retried after
//! [`WATCH_RETRY_MS`]. After the main phase (and the nemesis's final
//! heal), each watcher thread makes one last watch of `final_watch_ms`, which the checker
//! holds to the latest acknowledged value of every key.
//!
//! Options (`test.workload_options`): `keys` (default 3), `watch_ms` (500), `final_watch_ms`
//! (2000), `watchers`.
//!
//! Design decision: roles are fixed per thread (not per process), so a watcher that saw
//! `info` keeps watching as a new process and starts a new stream, and writers never wait on
//! watchers.

use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use faultline_checker::watch as watch_checker;
use faultline_core::watch::{
    WatchSpec, OPTION_FINAL_WATCH_MS, OPTION_KEYS, OPTION_WATCHERS, OPTION_WATCH_MS, WATCH, WRITE,
};
use faultline_core::{History, Op, OpType, Process, Test};

use crate::generator::{self, BoxGen, Context, Draft, GenOp, Generator};
use crate::{Checked, Workload, WorkloadError};

/// Longest pause between one writer's writes, in ms (uniform in `0..=max`).
pub const WRITE_BACKOFF_MAX_MS: u64 = 20;
/// Pause of a watcher after a watch that did not complete `ok` (a node down refuses at once),
/// in ms.
pub const WATCH_RETRY_MS: u64 = 50;

fn watch_draft(spec: &WatchSpec, duration_ms: u64) -> Draft {
    Draft::new(
        WATCH,
        json!({"keys": spec.key_names(), "duration_ms": duration_ms}),
    )
}

/// One thread's role in the main phase.
struct Role {
    thread: usize,
    spec: WatchSpec,
    /// Writes made so far by this thread.
    written: u64,
    /// A writer's next write at or after this time (ns).
    next_at_ns: u64,
    /// Whether an operation of this thread is outstanding.
    waiting: bool,
    /// Worker threads, learned from the first context.
    threads: usize,
}

impl Generator for Role {
    fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
        self.threads = ctx.threads;
        if self.waiting {
            return GenOp::Pending(ctx.time_ns + generator::WAIT_POLL_NS);
        }
        if ctx.time_ns < self.next_at_ns {
            return GenOp::Pending(self.next_at_ns);
        }
        if ctx.thread < self.spec.watcher_threads(ctx.threads) {
            self.waiting = true;
            return GenOp::Op(watch_draft(&self.spec, self.spec.watch_ms));
        }
        let keys = self.spec.key_names();
        let key = keys[ctx.rng.gen_range(0..keys.len())].clone();
        let value = self.written * ctx.threads.max(1) as u64 + self.thread as u64;
        self.written += 1;
        self.waiting = true;
        self.next_at_ns = ctx.time_ns + ctx.rng.gen_range(0..=WRITE_BACKOFF_MAX_MS) * 1_000_000;
        GenOp::Op(Draft::new(WRITE, json!(value)).with_key(json!(key)))
    }

    fn update(&mut self, event: &Op) {
        if event.kind.is_completion() && self.owns(event) {
            self.waiting = false;
            if let Some(t) = event.time {
                self.next_at_ns = self.next_at_ns.max(t);
                if event.f == WATCH && event.kind != OpType::Ok {
                    self.next_at_ns = t + WATCH_RETRY_MS * 1_000_000;
                }
            }
        }
    }
}

impl Role {
    /// Whether a completion is this thread's: the interpreter numbers processes so that
    /// `process % threads == thread` (a new process after an `info` keeps its thread).
    fn owns(&self, event: &Op) -> bool {
        let Process::Client(process) = event.process else {
            return false;
        };
        self.threads > 0 && process as usize % self.threads == self.thread
    }
}

/// The endless main generator.
pub fn generator(spec: WatchSpec) -> BoxGen {
    generator::each_thread(move |thread| {
        Box::new(Role {
            thread,
            spec,
            written: 0,
            next_at_ns: 0,
            waiting: false,
            threads: 0,
        }) as BoxGen
    })
}

/// One last watch per watcher thread.
pub fn final_generator(spec: WatchSpec) -> BoxGen {
    struct FinalWatch {
        spec: WatchSpec,
        done: bool,
    }
    impl Generator for FinalWatch {
        fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
            if self.done || ctx.thread >= self.spec.watcher_threads(ctx.threads) {
                return GenOp::Exhausted;
            }
            self.done = true;
            GenOp::Op(watch_draft(&self.spec, self.spec.final_watch_ms))
        }
    }
    generator::each_thread(move |_| Box::new(FinalWatch { spec, done: false }) as BoxGen)
}

pub fn workload(test: &Test) -> Result<Workload, WorkloadError> {
    let bad = |option: &str, why: String| WorkloadError::BadOption {
        workload: test.workload.clone(),
        option: option.to_string(),
        why,
    };
    let known = [
        OPTION_KEYS,
        OPTION_WATCH_MS,
        OPTION_FINAL_WATCH_MS,
        OPTION_WATCHERS,
    ];
    for name in test.workload_options.keys() {
        if !known.contains(&name.as_str()) {
            return Err(bad(
                name,
                format!("unknown option; known: {}", known.join(", ")),
            ));
        }
    }
    let spec = WatchSpec::from_test(test).map_err(|why| {
        let option = why.split(':').next().unwrap_or(OPTION_KEYS).to_string();
        bad(&option, why)
    })?;
    if test.concurrency < 2 || spec.watcher_threads(test.concurrency) >= test.concurrency {
        return Err(bad(
            "concurrency",
            format!(
                "the watch workload needs a writer and a watcher: {} watcher thread(s) of {}",
                spec.watcher_threads(test.concurrency),
                test.concurrency
            ),
        ));
    }
    let mut options: BTreeMap<String, Value> = [
        (OPTION_KEYS, json!(spec.keys)),
        (OPTION_WATCH_MS, json!(spec.watch_ms)),
        (OPTION_FINAL_WATCH_MS, json!(spec.final_watch_ms)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    options.insert(
        OPTION_WATCHERS.into(),
        json!(spec.watcher_threads(test.concurrency)),
    );
    Ok(Workload {
        name: "watch",
        options,
        generator: generator(spec),
        final_generator: Some(final_generator(spec)),
        checker: check,
    })
}

/// The watch checker.
pub fn check(_test: &Test, history: &History) -> Checked {
    match watch_checker::check(history) {
        Ok(result) => Checked {
            valid: result.valid,
            checker: "watch",
            explanation: result.explain(),
            result: serde_json::to_value(&result).expect("results serialize"),
        },
        Err(e) => Checked::unknown("watch", format!("malformed history: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::tests::simulate;

    #[test]
    fn watchers_watch_and_writers_write_unique_values() {
        let spec = WatchSpec::from_test(&Test::example("memory", "watch", 1)).unwrap();
        let mut gen = generator(spec);
        let drawn = simulate(&mut gen, 4, 1_000_000, 200_000_000);
        let mut values = std::collections::BTreeSet::new();
        for d in &drawn {
            match d.draft.f.as_str() {
                WATCH => assert!(d.thread < 2, "{d:?}"),
                WRITE => {
                    assert!(d.thread >= 2, "{d:?}");
                    assert!(values.insert(d.draft.value.to_string()), "{d:?}");
                }
                other => panic!("unexpected {other}"),
            }
        }
        // Completions never reach the generator here: one operation per thread, each waiting.
        assert_eq!((drawn.len(), values.len()), (4, 2));
        let mut last = final_generator(spec);
        let finals = simulate(&mut last, 4, 1_000_000, 1_000_000_000);
        assert_eq!(finals.len(), 2, "{finals:?}");
        assert!(finals.iter().all(|d| d.draft.value["duration_ms"] == 2_000));
    }

    #[test]
    fn options_and_concurrency_are_checked() {
        let mut test = Test::example("memory", "watch", 1);
        test.concurrency = 1;
        assert!(workload(&test).is_err());
        test.concurrency = 4;
        test.workload_options.insert("nosuch".into(), json!(1));
        assert!(workload(&test).is_err());
        test.workload_options.remove("nosuch");
        test.workload_options.insert("watchers".into(), json!(4));
        assert!(workload(&test).is_err());
        test.workload_options.insert("watchers".into(), json!(1));
        assert_eq!(workload(&test).unwrap().options["watchers"], 1);
    }
}
