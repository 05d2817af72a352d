//! The nemesis: faults (partitions, pauses, kills, clock skew) and the schedules that inject
//! them, each recorded as a nemesis event and healed on every exit path.
//!
//! Today `kill` (SIGKILL a random node, restart it a few seconds later) and `pause` (SIGSTOP a
//! random node, SIGCONT it a few seconds later) exist, for targets whose db offers the
//! [`faultline_core::Kill`] / [`faultline_core::Pause`] capabilities; `none` injects nothing.
//! The other kinds are named but not available yet.
//!
//! ```
//! use std::sync::Arc;
//! use faultline_core::db::NoopDb;
//! let nemesis = faultline_nemesis::build(&["none".to_string()], Arc::new(NoopDb), Vec::new());
//! assert!(nemesis.is_ok());
//! let Err(e) = faultline_nemesis::build(&["partition".to_string()], Arc::new(NoopDb), Vec::new())
//! else { panic!() };
//! assert!(e.to_string().contains("not available yet"));
//! ```
//!
//! Design decision: the seam ([`faultline_core::Nemesis`]) lives in core so targets can offer
//! capabilities to it; this crate holds the faults ([`Faults`]) and their schedule
//! ([`Faults::run`]). The schedule keeps at most one fault active at a time, so every fault is
//! undone before the next one and a final heal has at most one thing to undo.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

pub use faultline_core::nemesis::NoopNemesis;
use faultline_core::{BoxFuture, Db, HarnessError, Invocation, Nemesis, Node, Test};
use faultline_workloads::interpreter::{NemesisRecorder, Stop};

/// Every fault kind `--nemesis` names.
pub const NAMES: [&str; 6] = ["partition", "pause", "kill", "clock", "loss", "none"];
/// The fault kinds that can run today.
pub const AVAILABLE: [&str; 3] = ["kill", "pause", "none"];
/// The quiet time between two faults is drawn from this range.
pub const GAP_MS: std::ops::RangeInclusive<u64> = 500..=1_500;
/// How long a fault lasts before it is undone, drawn from this range.
pub const FAULT_MS: std::ops::RangeInclusive<u64> = 1_000..=3_000;

/// Why a nemesis cannot be built (a bad argument).
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    #[error("nemesis {0:?} is not available yet: only kill, pause and none can run today")]
    NotAvailable(String),
    #[error("unknown nemesis {0:?}; known: {known}", known = NAMES.join(", "))]
    Unknown(String),
    #[error("nemesis {0:?} needs a target whose nodes can be {0}ed; this one cannot")]
    Unsupported(String),
}

/// A fault the schedule injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Kill,
    Pause,
}

impl Fault {
    /// The history's names for injecting and undoing it.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Fault::Kill => ("kill", "start"),
            Fault::Pause => ("pause", "resume"),
        }
    }
}

/// Kills and pauses nodes of one db.
pub struct Faults {
    faults: Vec<Fault>,
    db: Arc<dyn Db>,
    nodes: Vec<Node>,
    killed: BTreeSet<String>,
    paused: BTreeSet<String>,
}

/// The nemesis for the given fault kinds (`--nemesis a,b`) over `db`'s `nodes`.
pub fn build(names: &[String], db: Arc<dyn Db>, nodes: Vec<Node>) -> Result<Faults, NemesisError> {
    let mut faults = BTreeSet::new();
    for name in names {
        match name.as_str() {
            "none" => {}
            "kill" if db.as_kill().is_none() => {
                return Err(NemesisError::Unsupported("kill".into()))
            }
            "pause" if db.as_pause().is_none() => {
                return Err(NemesisError::Unsupported("pause".into()))
            }
            "kill" => {
                faults.insert(Fault::Kill);
            }
            "pause" => {
                faults.insert(Fault::Pause);
            }
            known if NAMES.contains(&known) => {
                return Err(NemesisError::NotAvailable(known.to_string()))
            }
            other => return Err(NemesisError::Unknown(other.to_string())),
        }
    }
    Ok(Faults {
        faults: faults.into_iter().collect(),
        db,
        nodes,
        killed: BTreeSet::new(),
        paused: BTreeSet::new(),
    })
}

fn nemesis_error(f: &str, why: impl Into<String>) -> HarnessError {
    HarnessError::Nemesis {
        f: f.to_string(),
        why: why.into(),
    }
}

impl Faults {
    /// The fault kinds this nemesis injects (empty for `none`).
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    fn node(&self, f: &str, name: &Value) -> Result<Node, HarnessError> {
        self.nodes
            .iter()
            .find(|n| Some(n.name.as_str()) == name.as_str())
            .cloned()
            .ok_or_else(|| nemesis_error(f, format!("no node {name}")))
    }

    async fn apply(&mut self, test: &Test, f: &str, node: &Value) -> Result<Value, HarnessError> {
        let target = self.node(f, node)?;
        let db = self.db.clone();
        let missing = || nemesis_error(f, "the target lacks this capability");
        match f {
            "kill" => {
                db.as_kill()
                    .ok_or_else(missing)?
                    .kill(test, &target)
                    .await?;
                self.paused.remove(&target.name);
                self.killed.insert(target.name.clone());
            }
            "start" => {
                db.as_kill()
                    .ok_or_else(missing)?
                    .start(test, &target)
                    .await?;
                self.killed.remove(&target.name);
            }
            "pause" => {
                db.as_pause()
                    .ok_or_else(missing)?
                    .pause(test, &target)
                    .await?;
                self.paused.insert(target.name.clone());
            }
            "resume" => {
                db.as_pause()
                    .ok_or_else(missing)?
                    .resume(test, &target)
                    .await?;
                self.paused.remove(&target.name);
            }
            other => return Err(nemesis_error(other, "unknown fault operation")),
        }
        tracing::info!(node = %target.name, "nemesis {f}");
        Ok(node.clone())
    }

    /// Records `f` on `node` in the history, then applies it.
    async fn record_and_apply(
        &mut self,
        test: &Test,
        recorder: &NemesisRecorder,
        f: &str,
        node: &str,
    ) -> Result<(), HarnessError> {
        let op = Invocation {
            process: 0,
            f: f.to_string(),
            key: None,
            value: json!(node),
        };
        self.invoke(test, &op).await?;
        // The event goes in after the fault took effect: a kill recorded at time t means the
        // node was down from t on.
        if !recorder.record(f, json!(node)).await {
            return Err(nemesis_error(f, "the history writer stopped"));
        }
        Ok(())
    }

    /// The fault schedule, seeded from `test.seed_for("nemesis")`: a quiet gap, then one fault
    /// on one random node, held for a while, then undone; again until the main phase ends
    /// (`test.time_limit_ms` on the recorder's clock) or `stop` is raised. Then it heals what
    /// is still active, recording it, and returns.
    pub async fn run(
        &mut self,
        test: &Test,
        recorder: NemesisRecorder,
        stop: Stop,
    ) -> Result<(), HarnessError> {
        if self.faults.is_empty() || self.nodes.is_empty() {
            return Ok(());
        }
        let mut rng = SmallRng::seed_from_u64(test.seed_for("nemesis"));
        let end_ns = test.time_limit_ms.saturating_mul(1_000_000);
        // Sleeps until `ms` pass (true) or the phase ends / the stop is raised (false).
        let wait = |ms: u64, now_ns: u64| {
            let left_ns = end_ns.saturating_sub(now_ns);
            let stop = stop.clone();
            async move {
                let ms_left = left_ns / 1_000_000;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms.min(ms_left))) => ms <= ms_left,
                    _ = stop.stopped() => false,
                }
            }
        };
        let result = async {
            loop {
                if !wait(rng.gen_range(GAP_MS), recorder.now_ns()).await {
                    return Ok(());
                }
                let fault = self.faults[rng.gen_range(0..self.faults.len())];
                let node = self.nodes[rng.gen_range(0..self.nodes.len())].name.clone();
                let (start, _) = fault.names();
                self.record_and_apply(test, &recorder, start, &node).await?;
                // Held until the time passes or the phase ends; undone either way (below).
                let _ = wait(rng.gen_range(FAULT_MS), recorder.now_ns()).await;
                self.heal_recorded(test, &recorder).await?;
                if stop.is_stopped() || recorder.now_ns() >= end_ns {
                    return Ok(());
                }
            }
        }
        .await;
        // The final heal, on every path out of the schedule.
        let healed = self.heal_recorded(test, &recorder).await;
        result.and(healed)
    }

    /// Undoes every active fault, recording each undo.
    async fn heal_recorded(
        &mut self,
        test: &Test,
        recorder: &NemesisRecorder,
    ) -> Result<(), HarnessError> {
        for node in self.paused.clone() {
            self.record_and_apply(test, recorder, "resume", &node)
                .await?;
        }
        for node in self.killed.clone() {
            self.record_and_apply(test, recorder, "start", &node)
                .await?;
        }
        Ok(())
    }
}

impl Nemesis for Faults {
    fn setup<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async { Ok(()) })
    }

    fn invoke<'a>(
        &'a mut self,
        test: &'a Test,
        op: &'a Invocation,
    ) -> BoxFuture<'a, Result<Value, HarnessError>> {
        Box::pin(self.apply(test, &op.f, &op.value))
    }

    /// Resumes every node (safe on nodes never paused) and restarts every killed one.
    fn teardown<'a>(&'a mut self, test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let mut first_error = None;
            if let Some(pause) = self.db.as_pause() {
                for node in &self.nodes {
                    if let Err(e) = pause.resume(test, node).await {
                        first_error.get_or_insert(e);
                    }
                }
            }
            self.paused.clear();
            if let Some(kill) = self.db.as_kill() {
                for name in std::mem::take(&mut self.killed) {
                    if let Some(node) = self.nodes.iter().find(|n| n.name == name) {
                        if let Err(e) = kill.start(test, node).await {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::client::NoopClient;
    use faultline_core::db::NoopDb;
    use faultline_core::jsonl::{read_jsonl, HistoryWriter};
    use faultline_core::remote::NoopRemote;
    use faultline_core::{Kill, Pause};
    use faultline_workloads::clock::MonotonicClock;
    use faultline_workloads::generator::{self, Draft};
    use faultline_workloads::interpreter::Interpreter;
    use std::sync::Mutex;

    /// A db that can be killed and paused, and remembers each call as `kill n1`.
    #[derive(Default)]
    struct FakeDb {
        calls: Mutex<Vec<String>>,
    }

    impl FakeDb {
        fn remember(&self, what: &str, node: &Node) -> BoxFuture<'_, Result<(), HarnessError>> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("{what} {}", node.name));
            Box::pin(async { Ok(()) })
        }
    }

    impl Db for FakeDb {
        fn setup<'a>(
            &'a self,
            _: &'a Test,
            _: &'a Node,
        ) -> BoxFuture<'a, Result<(), HarnessError>> {
            Box::pin(async { Ok(()) })
        }
        fn teardown<'a>(
            &'a self,
            _: &'a Test,
            _: &'a Node,
        ) -> BoxFuture<'a, Result<(), HarnessError>> {
            Box::pin(async { Ok(()) })
        }
        fn as_kill(&self) -> Option<&dyn Kill> {
            Some(self)
        }
        fn as_pause(&self) -> Option<&dyn Pause> {
            Some(self)
        }
    }

    impl Kill for FakeDb {
        fn kill<'a>(&'a self, _: &'a Test, n: &'a Node) -> BoxFuture<'a, Result<(), HarnessError>> {
            self.remember("kill", n)
        }
        fn start<'a>(
            &'a self,
            _: &'a Test,
            n: &'a Node,
        ) -> BoxFuture<'a, Result<(), HarnessError>> {
            self.remember("start", n)
        }
    }

    impl Pause for FakeDb {
        fn pause<'a>(
            &'a self,
            _: &'a Test,
            n: &'a Node,
        ) -> BoxFuture<'a, Result<(), HarnessError>> {
            self.remember("pause", n)
        }
        fn resume<'a>(
            &'a self,
            _: &'a Test,
            n: &'a Node,
        ) -> BoxFuture<'a, Result<(), HarnessError>> {
            self.remember("resume", n)
        }
    }

    /// The schedule runs beside the workers, records each fault and its undo in the history,
    /// and leaves nothing active at the end.
    #[test]
    fn the_schedule_records_every_fault_and_heals_before_it_returns() {
        let mut test = Test::example("fake", "register", 11);
        test.nodes = vec!["n1".into(), "n2".into(), "n3".into()];
        test.time_limit_ms = 2_500;
        let nodes: Vec<Node> = test
            .nodes
            .iter()
            .map(|name| Node {
                name: name.clone(),
                remote: Arc::new(NoopRemote::new(name)),
            })
            .collect();
        let db = Arc::new(FakeDb::default());
        let mut faults = build(&["kill".into(), "pause".into()], db.clone(), nodes).unwrap();
        let test = Arc::new(test);
        let interpreter = Interpreter {
            test: test.clone(),
            client: Arc::new(NoopClient),
            generator: generator::time_limit(
                test.time_limit_ms * 1_000_000,
                generator::rate(200.0, generator::repeat(Draft::new("read", Value::Null))),
            ),
            clock: MonotonicClock::starting_now(),
            counters: Arc::default(),
            stop: Stop::default(),
        };
        let bytes = Arc::new(Mutex::new(Vec::new()));
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Shared {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let recorded = rt.block_on(interpreter.run_with_nemesis(
            HistoryWriter::new(Shared(bytes.clone())),
            |recorder, stop| faults.run(&test, recorder, stop),
        ));
        assert!(recorded.error.is_none(), "{:?}", recorded.error);
        let text = bytes.lock().unwrap().clone();
        let history = read_jsonl(text.as_slice(), "test").unwrap();
        history.pairs().expect("well formed with nemesis events");
        let events: Vec<String> = history
            .ops
            .iter()
            .filter(|op| op.is_nemesis())
            .map(|op| format!("{} {}", op.f, op.value.as_str().unwrap()))
            .collect();
        assert!(!events.is_empty(), "a fault starts within the first 1.5 s");
        assert_eq!(events.len() % 2, 0, "{events:?}");
        for pair in events.chunks(2) {
            let (start, node) = pair[0].split_once(' ').unwrap();
            let undo = if start == "kill" { "start" } else { "resume" };
            assert_eq!(pair[1], format!("{undo} {node}"), "{events:?}");
        }
        assert_eq!(
            *db.calls.lock().unwrap(),
            events,
            "the history says what was done"
        );
    }

    #[test]
    fn none_builds_and_unknown_names_are_refused() {
        assert!(build(&[], Arc::new(NoopDb), Vec::new()).is_ok());
        let Err(e) = build(&["bogus".to_string()], Arc::new(NoopDb), Vec::new()) else {
            panic!()
        };
        assert!(e.to_string().contains("unknown nemesis"));
    }

    #[test]
    fn kill_and_pause_need_the_capability() {
        let Err(e) = build(&["kill".to_string()], Arc::new(NoopDb), Vec::new()) else {
            panic!()
        };
        assert!(matches!(e, NemesisError::Unsupported(_)), "{e}");
    }
}
