//! The failure-detection workload (`ephemeral`): registrants register ephemerally and then
//! stall their keepalives, while observers list the registrations; checked by
//! [`faultline_checker::ephemeral`]. What a client receives and answers is in
//! [`faultline_core::ephemeral`].
//!
//! The first `registrants` worker threads (default: half, at least one) each run a cycle:
//! `register` a fresh name (`r<thread>-<n>`, unique in the run) with `{"ttl_ms": T}`; stay
//! healthy for a TTL; `stall` for either a short time (a quarter TTL: the registration must
//! survive) or a long one (TTL + slack + half a TTL: it must expire), drawn half and half; when
//! it survived, stay a quarter TTL more and `deregister`; then start over. The other threads
//! `list` every [`LIST_INTERVAL_MS`] (or a tenth of the TTL when shorter).
//!
//! Options (`test.workload_options`): `ttl_ms` (default 1000), `slack_ms` (1000),
//! `registrants`.
//!
//! Design decision: `ephemeral`, the name `CONTRACTS.md` gives this workload, rather than
//! "membership": what is tested is the registration bound to a session or lease, the building
//! block of membership and failure detection alike.

use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use faultline_checker::ephemeral::{self as ephemeral_checker, EphemeralOptions};
use faultline_core::ephemeral::{
    EphemeralSpec, DEREGISTER, LIST, OPTION_REGISTRANTS, OPTION_SLACK_MS, OPTION_TTL_MS, REGISTER,
    STALL,
};
use faultline_core::{History, Op, OpType, Process, Test};

use crate::generator::{self, BoxGen, Context, Draft, GenOp, Generator, WAIT_POLL_NS};
use crate::{Checked, Workload, WorkloadError};

/// Longest interval between one observer's lists, in ms.
pub const LIST_INTERVAL_MS: u64 = 50;
/// Pause before a registrant registers again, in ms (long enough that a refusing node is not
/// asked hundreds of times a second).
pub const REGISTER_BACKOFF_MS: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Register at or after this time.
    Idle {
        at_ns: u64,
    },
    /// Registered: stall at or after this time.
    Registered {
        at_ns: u64,
    },
    /// Survived a stall: deregister at or after this time.
    Resumed {
        at_ns: u64,
    },
    Waiting,
}

struct Cycle {
    thread: usize,
    threads: usize,
    spec: EphemeralSpec,
    phase: Phase,
    /// Registrations made so far (for unique names).
    registered: u64,
    /// The current name.
    name: String,
}

impl Cycle {
    fn owns(&self, event: &Op) -> bool {
        let Process::Client(process) = event.process else {
            return false;
        };
        self.threads > 0 && process as usize % self.threads == self.thread
    }

    fn list_interval_ns(&self) -> u64 {
        LIST_INTERVAL_MS.min(self.spec.ttl_ms / 10).max(1) * 1_000_000
    }
}

impl Generator for Cycle {
    fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
        self.threads = ctx.threads;
        if self.phase == Phase::Waiting {
            return GenOp::Pending(ctx.time_ns + WAIT_POLL_NS);
        }
        if ctx.thread >= self.spec.registrant_threads(ctx.threads) {
            let Phase::Idle { at_ns } = self.phase else {
                unreachable!("observers only wait or list")
            };
            if ctx.time_ns < at_ns {
                return GenOp::Pending(at_ns);
            }
            self.phase = Phase::Waiting;
            return GenOp::Op(Draft::new(LIST, Value::Null));
        }
        match self.phase {
            Phase::Idle { at_ns } | Phase::Registered { at_ns } | Phase::Resumed { at_ns }
                if ctx.time_ns < at_ns =>
            {
                GenOp::Pending(at_ns)
            }
            Phase::Idle { .. } => {
                self.name = format!("r{}-{}", self.thread, self.registered);
                self.registered += 1;
                self.phase = Phase::Waiting;
                GenOp::Op(
                    Draft::new(REGISTER, json!({ "ttl_ms": self.spec.ttl_ms }))
                        .with_key(json!(self.name)),
                )
            }
            Phase::Registered { .. } => {
                let ms = if ctx.rng.gen_bool(0.5) {
                    self.spec.short_stall_ms()
                } else {
                    self.spec.long_stall_ms()
                };
                self.phase = Phase::Waiting;
                GenOp::Op(Draft::new(STALL, json!({ "ms": ms })).with_key(json!(self.name)))
            }
            Phase::Resumed { .. } => {
                self.phase = Phase::Waiting;
                GenOp::Op(Draft::new(DEREGISTER, Value::Null).with_key(json!(self.name)))
            }
            Phase::Waiting => unreachable!("handled above"),
        }
    }

    fn update(&mut self, event: &Op) {
        if !event.kind.is_completion() || !self.owns(event) {
            return;
        }
        let now = event.time.unwrap_or(0);
        let ms = 1_000_000;
        let again = Phase::Idle {
            at_ns: now + REGISTER_BACKOFF_MS * ms,
        };
        self.phase = match (event.f.as_str(), event.kind) {
            (LIST, _) => Phase::Idle {
                at_ns: now + self.list_interval_ns(),
            },
            (REGISTER, OpType::Ok) => Phase::Registered {
                at_ns: now + self.spec.ttl_ms * ms,
            },
            (STALL, OpType::Ok) if event.value.get("alive") == Some(&json!(true)) => {
                Phase::Resumed {
                    at_ns: now + self.spec.ttl_ms / 4 * ms,
                }
            }
            _ => again,
        };
    }
}

/// The endless main generator.
pub fn generator(spec: EphemeralSpec) -> BoxGen {
    generator::each_thread(move |thread| {
        Box::new(Cycle {
            thread,
            threads: 0,
            spec,
            phase: Phase::Idle { at_ns: 0 },
            registered: 0,
            name: String::new(),
        }) as BoxGen
    })
}

pub fn workload(test: &Test) -> Result<Workload, WorkloadError> {
    let bad = |option: &str, why: String| WorkloadError::BadOption {
        workload: test.workload.clone(),
        option: option.to_string(),
        why,
    };
    let known = [OPTION_TTL_MS, OPTION_SLACK_MS, OPTION_REGISTRANTS];
    for name in test.workload_options.keys() {
        if !known.contains(&name.as_str()) {
            return Err(bad(
                name,
                format!("unknown option; known: {}", known.join(", ")),
            ));
        }
    }
    let spec = EphemeralSpec::from_test(test).map_err(|why| {
        let option = why.split(':').next().unwrap_or(OPTION_TTL_MS).to_string();
        bad(&option, why)
    })?;
    let registrants = spec.registrant_threads(test.concurrency);
    if test.concurrency < 2 || registrants >= test.concurrency {
        return Err(bad(
            "concurrency",
            format!(
                "the ephemeral workload needs a registrant and an observer: {registrants} registrant thread(s) of {}",
                test.concurrency
            ),
        ));
    }
    let options: BTreeMap<String, Value> = [
        (OPTION_TTL_MS, json!(spec.ttl_ms)),
        (OPTION_SLACK_MS, json!(spec.slack_ms)),
        (OPTION_REGISTRANTS, json!(registrants)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Ok(Workload {
        name: "ephemeral",
        options,
        generator: generator(spec),
        final_generator: None,
        checker: check,
    })
}

/// The ephemeral checker, with the test's slack.
pub fn check(test: &Test, history: &History) -> Checked {
    let slack_ms = EphemeralSpec::from_test(test)
        .map(|spec| spec.slack_ms)
        .unwrap_or(faultline_core::ephemeral::DEFAULT_SLACK_MS);
    match ephemeral_checker::check(history, &EphemeralOptions { slack_ms }) {
        Ok(result) => Checked {
            valid: result.valid,
            checker: "ephemeral",
            explanation: result.explain(),
            result: serde_json::to_value(&result).expect("results serialize"),
        },
        Err(e) => Checked::unknown("ephemeral", format!("malformed history: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::tests::simulate;

    #[test]
    fn registrants_register_fresh_names_and_observers_list() {
        let mut test = Test::example("memory", "ephemeral", 1);
        test.workload_options.insert("ttl_ms".into(), json!(100));
        test.workload_options.insert("slack_ms".into(), json!(50));
        let spec = EphemeralSpec::from_test(&test).unwrap();
        let mut gen = generator(spec);
        // Completions never reach the generator here, so each registrant registers once.
        let drawn = simulate(&mut gen, 4, 1_000_000, 500_000_000);
        let registers: Vec<_> = drawn.iter().filter(|d| d.draft.f == REGISTER).collect();
        assert_eq!(registers.len(), 2);
        assert!(registers.iter().all(|d| d.thread < 2));
        assert_ne!(registers[0].draft.key, registers[1].draft.key);
        assert!(drawn
            .iter()
            .filter(|d| d.draft.f == LIST)
            .all(|d| d.thread >= 2));
    }

    #[test]
    fn options_and_concurrency_are_checked() {
        let mut test = Test::example("memory", "ephemeral", 1);
        test.concurrency = 1;
        assert!(workload(&test).is_err());
        test.concurrency = 4;
        test.workload_options.insert("nosuch".into(), json!(1));
        assert!(workload(&test).is_err());
        test.workload_options.remove("nosuch");
        test.workload_options.insert("ttl_ms".into(), json!(20_000));
        assert!(workload(&test).is_err());
        test.workload_options.insert("ttl_ms".into(), json!(500));
        assert_eq!(workload(&test).unwrap().options["registrants"], 2);
    }
}
