//! The interpreter: worker tasks that draw operations from a generator, hand them to clients,
//! and record every invocation and completion in the history as it happens.
//!
//! Each of `test.concurrency` workers is a tokio task with a thread number and a process id.
//! A worker draws an operation (under one lock shared with the other workers), sends the
//! invocation to the history writer, awaits the client with the per-op timeout (a timeout is
//! `info` with error `"timeout"`), sends the completion, and draws again. After an `info` the
//! worker continues as a new process (`process + concurrency`, never reused), since the old
//! request may still land, and with a freshly opened client.
//!
//! A nemesis task may run beside the workers ([`Interpreter::run_with_nemesis`]); it counts as
//! one operation in flight until it returns, so the final generator (after a barrier) starts
//! only once the nemesis has healed every fault and waited out its recovery time.
//!
//! The history writer is one OS thread fed by a bounded channel. It assigns `index` (the
//! position in the file) and writes each event through [`HistoryWriter`], which flushes it, so
//! a run killed at any moment leaves a readable history.
//!
//! Why the file order is real-time order: a worker enqueues an invocation *before* it calls
//! the client and a completion *after* the client returns, and the channel keeps enqueue order.
//! So when a completion precedes an invocation in the file, the operation really finished
//! before the other began; the checker never sees a precedence that did not happen. `time` is
//! read by the worker at those moments; the writer keeps it monotonic in file order (two events
//! racing for the channel may swap by a few microseconds).

use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use faultline_core::jsonl::HistoryWriter;
use faultline_core::{Client, Completion, HarnessError, Invocation, Op, OpType, Process, Test};

use crate::clock::{Clock, MonotonicClock};
use crate::generator::{BoxGen, Context, GenOp};
use crate::WorkloadError;

/// The longest a worker sleeps before looking at the generator (and the stop signal) again.
pub const MAX_IDLE_MS: u64 = 100;

/// Live counts for progress displays, updated by the workers.
#[derive(Debug, Default)]
pub struct Counters {
    pub invoked: AtomicU64,
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
}

impl Counters {
    pub fn completed(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
            + self.fail.load(Ordering::Relaxed)
            + self.info.load(Ordering::Relaxed)
    }
}

/// A stop signal: once raised, workers draw no more operations (in-flight ones finish).
#[derive(Debug, Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl Default for Stop {
    fn default() -> Self {
        let (tx, rx) = watch::channel(false);
        Stop {
            tx: Arc::new(tx),
            rx,
        }
    }
}

impl Stop {
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_stopped(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once the stop is raised.
    pub async fn stopped(&self) {
        let mut rx = self.rx.clone();
        // The sender lives as long as any clone of this `Stop`, so this cannot fail.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// What a run recorded.
#[derive(Debug)]
pub struct Recorded {
    /// Events written to the history.
    pub events: u64,
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// Workers still in an operation when the drain timeout ran out; their invocations have
    /// no completion (the checker reads them as unknown).
    pub abandoned: usize,
    /// From the first event to the last, on the run's clock.
    pub elapsed: Duration,
    /// The harness error that stopped the run early, if any. The history up to it is on disk.
    pub error: Option<WorkloadError>,
}

/// The generator and what it needs, behind the lock the workers share.
struct Shared {
    generator: BoxGen,
    rng: SmallRng,
    in_flight: usize,
    /// The nemesis task counts as one more operation in flight until it returns (after its
    /// final heal and recovery wait), as Jepsen's nemesis is one more thread: a barrier
    /// (`phases`, and so the final generator of `plan`) waits for it. This is what keeps final
    /// reads from starting before the cluster is healed and has had time to recover.
    nemesis_running: bool,
    drawn: u64,
    /// Stop drawing at this many operations (half the history's event limit).
    max_ops: u64,
}

impl Shared {
    fn draw(&mut self, thread: usize, threads: usize, time_ns: u64) -> GenOp {
        if self.drawn >= self.max_ops {
            return GenOp::Exhausted;
        }
        let mut ctx = Context {
            time_ns,
            thread,
            threads,
            // The asking thread is idle, so every in-flight op is another thread's (or the
            // nemesis's).
            in_flight: self.in_flight + usize::from(self.nemesis_running),
            rng: &mut self.rng,
        };
        let next = self.generator.op(&mut ctx);
        if matches!(next, GenOp::Op(_)) {
            self.in_flight += 1;
            self.drawn += 1;
        }
        next
    }

    fn complete(&mut self, event: &Op) {
        assert!(
            self.in_flight > 0,
            "a completion with no operation in flight"
        );
        self.in_flight -= 1;
        self.generator.update(event);
    }

    fn nemesis_returned(&mut self) {
        self.nemesis_running = false;
    }
}

/// Everything one run of the interpreter needs.
pub struct Interpreter {
    pub test: Arc<Test>,
    /// The template client; each worker opens its own from it.
    pub client: Arc<dyn Client>,
    pub generator: BoxGen,
    pub clock: MonotonicClock,
    pub counters: Arc<Counters>,
    pub stop: Stop,
}

/// What each worker task holds.
struct Worker {
    thread: usize,
    test: Arc<Test>,
    template: Arc<dyn Client>,
    shared: Arc<Mutex<Shared>>,
    events: mpsc::Sender<Op>,
    clock: MonotonicClock,
    counters: Arc<Counters>,
    stop: Stop,
}

impl Interpreter {
    /// Runs the workers until the generator is exhausted or the stop is raised, writing every
    /// event to `history`. Returns once every worker has finished (or the drain timeout after
    /// the stop ran out) and the writer has flushed the last event.
    pub async fn run<W: Write + Send + 'static>(self, history: HistoryWriter<W>) -> Recorded {
        self.run_with_nemesis(history, |_recorder, _stop| async { Ok(()) })
            .await
    }

    /// As [`Interpreter::run`], with a nemesis task beside the workers. `nemesis` gets a
    /// [`NemesisRecorder`] that writes its events through the same history writer (so they
    /// take their place in the file's real-time order) and a [`Stop`] raised when the
    /// workers stop drawing (the run's stop, or every worker done); it must heal and return
    /// soon after. Its error stops the run like a worker's.
    ///
    /// # Correctness
    /// Until the nemesis future returns, the generator sees it as one operation in flight, so
    /// a barrier (the final generator of [`crate::plan`]) opens only once it has returned.
    /// The nemesis must therefore return on its own once the main phase is over (after its
    /// final heal and recovery wait), not only when `stop` is raised: otherwise the final
    /// generator never starts and the workers never finish.
    pub async fn run_with_nemesis<W, F, Fut>(
        self,
        history: HistoryWriter<W>,
        nemesis: F,
    ) -> Recorded
    where
        W: Write + Send + 'static,
        F: FnOnce(NemesisRecorder, Stop) -> Fut,
        Fut: std::future::Future<Output = Result<(), HarnessError>>,
    {
        let test = self.test;
        let threads = test.concurrency;
        assert!(threads > 0, "a run needs at least one worker");
        assert!(!test.nodes.is_empty(), "a run needs at least one node");
        let limits = &test.limits;
        let (events_tx, events_rx) = mpsc::channel::<Op>(limits.event_channel_capacity.max(1));
        let writer = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || write_history(history, events_rx))
            .expect("spawning the history writer");
        let shared = Arc::new(Mutex::new(Shared {
            generator: self.generator,
            rng: SmallRng::seed_from_u64(test.seed_for("generator")),
            in_flight: 0,
            nemesis_running: true,
            drawn: 0,
            max_ops: limits.max_history_events / 2,
        }));
        let mut workers = JoinSet::new();
        for thread in 0..threads {
            let worker = Worker {
                thread,
                test: test.clone(),
                template: self.client.clone(),
                shared: shared.clone(),
                events: events_tx.clone(),
                clock: self.clock,
                counters: self.counters.clone(),
                stop: self.stop.clone(),
            };
            workers.spawn(worker.run());
        }
        let nemesis_stop = Stop::default();
        let recorder = NemesisRecorder {
            events: events_tx.clone(),
            clock: self.clock,
        };
        drop(events_tx);
        // Boxed, so that it can be dropped (with its recorder, a sender of the history) if it
        // does not return in time after the stop.
        let mut nemesis = Box::pin(nemesis(recorder, nemesis_stop.clone()));
        let mut nemesis_done = false;

        let mut first_error: Option<WorkloadError> = None;
        let mut abandoned = 0;
        let drain = Duration::from_millis(limits.drain_timeout_ms);
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        loop {
            let until = drain_deadline;
            tokio::select! {
                result = &mut nemesis, if !nemesis_done => {
                    nemesis_done = true;
                    // Healed and recovered: the final generator may start.
                    shared.lock().expect("generator lock").nemesis_returned();
                    if let Err(e) = result {
                        tracing::error!("nemesis stopped: {e}");
                        first_error.get_or_insert(e.into());
                        self.stop.stop();
                    }
                }
                joined = workers.join_next() => match joined {
                    None => break,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => {
                        // Keep the first harness error and stop drawing: a controlled stop.
                        tracing::error!("worker stopped: {e}");
                        first_error.get_or_insert(e);
                        self.stop.stop();
                    }
                    Some(Err(join)) => {
                        first_error.get_or_insert(WorkloadError::Worker(join.to_string()));
                        self.stop.stop();
                    }
                },
                _ = self.stop.stopped(), if drain_deadline.is_none() => {
                    nemesis_stop.stop();
                    drain_deadline = Some(tokio::time::Instant::now() + drain);
                }
                _ = tokio::time::sleep_until(until.unwrap_or_else(tokio::time::Instant::now)),
                    if until.is_some() => {
                    abandoned = workers.len();
                    tracing::warn!(
                        "{abandoned} workers still busy {} ms after the stop; abandoning their \
                         operations (recorded without completion)",
                        limits.drain_timeout_ms
                    );
                    workers.abort_all();
                    while workers.join_next().await.is_some() {}
                    break;
                }
            }
        }
        drop(workers);
        // The workers are done: the nemesis heals and returns (its recorder is the last
        // sender of the history channel).
        nemesis_stop.stop();
        if !nemesis_done {
            // Bounded like a setup: a heal stuck on a node that no longer answers must not
            // hold the run (the runner's teardown heals again, also bounded).
            let limit_ms = limits.setup_timeout_ms;
            match tokio::time::timeout(Duration::from_millis(limit_ms), nemesis.as_mut()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!("nemesis stopped: {e}");
                    first_error.get_or_insert(e.into());
                }
                Err(_) => {
                    let e = HarnessError::Timeout {
                        what: "the nemesis's return (its heal) after the stop".into(),
                        limit_ms,
                    };
                    tracing::error!("{e}");
                    first_error.get_or_insert(e.into());
                }
            }
        }
        drop(nemesis);
        // Every sender is gone now, so the writer drains the channel and returns.
        let written = tokio::task::spawn_blocking(move || writer.join())
            .await
            .expect("joining the writer thread");
        let (events, last_time_ns) = match written {
            Ok(Ok(done)) => done,
            Ok(Err((done, e))) => {
                first_error.get_or_insert(WorkloadError::HistoryWrite(e));
                done
            }
            Err(_) => {
                first_error
                    .get_or_insert(WorkloadError::Worker("the history writer panicked".into()));
                (0, 0)
            }
        };
        let counters = &self.counters;
        Recorded {
            events,
            invoked: counters.invoked.load(Ordering::Relaxed),
            ok: counters.ok.load(Ordering::Relaxed),
            fail: counters.fail.load(Ordering::Relaxed),
            info: counters.info.load(Ordering::Relaxed),
            abandoned,
            elapsed: Duration::from_nanos(last_time_ns),
            error: first_error,
        }
    }
}

/// How the nemesis task writes its events into the history: `process: "nemesis"`, type
/// `info`, stamped on the run's clock.
#[derive(Debug, Clone)]
pub struct NemesisRecorder {
    events: mpsc::Sender<Op>,
    clock: MonotonicClock,
}

impl NemesisRecorder {
    /// Records one nemesis event (`kill`, `start`, `pause`, `resume`, ...). `false` when the
    /// history writer has stopped (it reports why).
    pub async fn record(&self, f: &str, value: serde_json::Value) -> bool {
        let event = Op {
            index: 0,
            time: Some(self.clock.now_ns()),
            process: Process::Nemesis,
            kind: OpType::Info,
            f: f.to_string(),
            key: None,
            value,
            error: None,
        };
        self.events.send(event).await.is_ok()
    }

    /// Nanoseconds since the run started.
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }
}

/// The writer thread: index, keep time monotonic, write and flush each event.
/// Returns (events written, last time) or the first write error with the same.
#[allow(clippy::type_complexity)]
fn write_history<W: Write>(
    mut history: HistoryWriter<W>,
    mut events: mpsc::Receiver<Op>,
) -> Result<(u64, u64), ((u64, u64), std::io::Error)> {
    let mut index = 0u64;
    let mut last_time = 0u64;
    while let Some(mut op) = events.blocking_recv() {
        op.index = index;
        let time = op.time.unwrap_or(last_time).max(last_time);
        op.time = Some(time);
        last_time = time;
        if let Err(e) = history.write(&op) {
            // Closing the channel makes every worker stop at its next send.
            events.close();
            return Err(((index, last_time), e));
        }
        index += 1;
    }
    Ok((index, last_time))
}

impl Worker {
    async fn run(self) -> Result<(), WorkloadError> {
        let test = &*self.test;
        let threads = test.concurrency;
        let node = &test.nodes[self.thread % test.nodes.len()];
        let op_timeout = Duration::from_millis(test.limits.op_timeout_ms);
        let mut process = self.thread as u64;
        let mut client = self.open(node).await?;
        loop {
            if self.stop.is_stopped() {
                break;
            }
            let now = self.clock.now_ns();
            let next = self
                .shared
                .lock()
                .expect("generator lock")
                .draw(self.thread, threads, now);
            let draft = match next {
                GenOp::Op(draft) => draft,
                GenOp::Exhausted => break,
                GenOp::Pending(until) => {
                    let wait_ns = until.saturating_sub(now).min(MAX_IDLE_MS * 1_000_000);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_nanos(wait_ns)) => {}
                        _ = self.stop.stopped() => {}
                    }
                    continue;
                }
            };
            let invocation = Invocation {
                process,
                f: draft.f,
                key: draft.key,
                value: draft.value,
            };
            let invoke = Op {
                index: 0,
                time: Some(self.clock.now_ns()),
                process: Process::Client(process),
                kind: OpType::Invoke,
                f: invocation.f.clone(),
                key: invocation.key.clone(),
                value: invocation.value.clone(),
                error: None,
            };
            // The invocation is in the history before the client sees the request.
            if self.events.send(invoke).await.is_err() {
                // The writer failed; it reports why.
                break;
            }
            self.counters.invoked.fetch_add(1, Ordering::Relaxed);
            let completion =
                match tokio::time::timeout(op_timeout, client.invoke(test, &invocation)).await {
                    Ok(completion) => completion,
                    Err(_elapsed) => Completion::info("timeout"),
                };
            let time = self.clock.now_ns();
            let kind = completion.kind();
            let (value, error) = match completion {
                Completion::Ok(value) => (value, None),
                Completion::Fail(error) | Completion::Info(error) => {
                    (invocation.value, Some(error))
                }
            };
            let event = Op {
                index: 0,
                time: Some(time),
                process: Process::Client(process),
                kind,
                f: invocation.f,
                key: invocation.key,
                value,
                error,
            };
            match kind {
                OpType::Ok => &self.counters.ok,
                OpType::Fail => &self.counters.fail,
                _ => &self.counters.info,
            }
            .fetch_add(1, Ordering::Relaxed);
            self.shared.lock().expect("generator lock").complete(&event);
            if self.events.send(event).await.is_err() {
                break;
            }
            if kind == OpType::Info {
                // The old request may still land: this worker is a new process from now on,
                // with a new connection.
                process += threads as u64;
                let closing = tokio::time::timeout(op_timeout, client.close(test)).await;
                if !matches!(closing, Ok(Ok(()))) {
                    tracing::warn!(node, "closing a client after info failed or timed out");
                }
                client = self.open(node).await?;
            }
        }
        let closing = tokio::time::timeout(op_timeout, client.close(test)).await;
        match closing {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(HarnessError::Timeout {
                what: format!("closing the client for {node}"),
                limit_ms: test.limits.op_timeout_ms,
            }
            .into()),
        }
    }

    async fn open(&self, node: &str) -> Result<Box<dyn Client>, WorkloadError> {
        let test = &*self.test;
        let limit_ms = test.limits.setup_timeout_ms;
        match tokio::time::timeout(
            Duration::from_millis(limit_ms),
            self.template.open(test, node),
        )
        .await
        {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(HarnessError::Timeout {
                what: format!("opening a client for {node}"),
                limit_ms,
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::{self, Draft};
    use faultline_core::client::NoopClient;
    use faultline_core::jsonl::read_jsonl;
    use faultline_core::BoxFuture;
    use serde_json::{json, Value};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn run(test: Test, client: Arc<dyn Client>, generator: BoxGen) -> (Recorded, Vec<Op>) {
        run_with_nemesis(test, client, generator, |_recorder, _stop| async { Ok(()) })
    }

    fn run_with_nemesis<F, Fut>(
        test: Test,
        client: Arc<dyn Client>,
        generator: BoxGen,
        nemesis: F,
    ) -> (Recorded, Vec<Op>)
    where
        F: FnOnce(NemesisRecorder, Stop) -> Fut,
        Fut: std::future::Future<Output = Result<(), HarnessError>>,
    {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let interpreter = Interpreter {
            test: Arc::new(test),
            client,
            generator,
            clock: MonotonicClock::starting_now(),
            counters: Arc::default(),
            stop: Stop::default(),
        };
        let recorded = runtime().block_on(
            interpreter.run_with_nemesis(HistoryWriter::new(Shared(bytes.clone())), nemesis),
        );
        let text = bytes.lock().unwrap().clone();
        let history = read_jsonl(text.as_slice(), "test").unwrap();
        (recorded, history.ops)
    }

    #[test]
    fn every_operation_is_recorded_as_a_well_formed_history() {
        let mut test = Test::example("noop", "register", 1);
        test.concurrency = 4;
        let gen = generator::limit(100, generator::repeat(Draft::new("write", json!(1))));
        let (recorded, ops) = run(test, Arc::new(NoopClient), gen);
        assert!(recorded.error.is_none());
        assert_eq!((recorded.events, recorded.ok), (200, 100));
        assert_eq!(ops.len(), 200);
        let history = faultline_core::History::new(ops.clone());
        assert_eq!(history.pairs().unwrap().len(), 100);
        for (i, op) in ops.iter().enumerate() {
            assert_eq!(op.index, i as u64);
        }
        assert!(ops.windows(2).all(|w| w[0].time <= w[1].time));
    }

    /// A client that never answers a `hang`, fails a `reject`, and echoes anything else.
    struct Slow;
    impl Client for Slow {
        fn open<'a>(
            &'a self,
            _test: &'a Test,
            _node: &'a str,
        ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
            Box::pin(async { Ok(Box::new(Slow) as Box<dyn Client>) })
        }
        fn invoke<'a>(
            &'a mut self,
            _test: &'a Test,
            op: &'a Invocation,
        ) -> BoxFuture<'a, Completion> {
            Box::pin(async move {
                match op.f.as_str() {
                    "hang" => std::future::pending().await,
                    "reject" => Completion::fail("nope"),
                    _ => Completion::Ok(op.value.clone()),
                }
            })
        }
        fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[test]
    fn a_timeout_is_info_and_the_worker_continues_as_a_new_process() {
        let mut test = Test::example("slow", "register", 1);
        test.concurrency = 2;
        test.limits.op_timeout_ms = 50;
        let gen = generator::seq(vec![
            generator::once(Draft::new("hang", json!(1))),
            generator::limit(6, generator::repeat(Draft::new("write", json!(2)))),
            generator::once(Draft::new("reject", json!(3))),
        ]);
        let (recorded, ops) = run(test, Arc::new(Slow), gen);
        assert!(recorded.error.is_none(), "{:?}", recorded.error);
        assert_eq!((recorded.ok, recorded.fail, recorded.info), (6, 1, 1));
        let info = ops.iter().find(|o| o.kind == OpType::Info).unwrap();
        assert_eq!(info.error, Some(json!("timeout")));
        assert_eq!(info.value, json!(1));
        let fail = ops.iter().find(|o| o.kind == OpType::Fail).unwrap();
        assert_eq!(
            (fail.error.clone(), fail.value.clone()),
            (Some(json!("nope")), json!(3))
        );
        // The worker that timed out never invokes again as its old process.
        let Process::Client(crashed) = info.process else {
            panic!()
        };
        let after: Vec<&Op> = ops.iter().skip_while(|o| o.index <= info.index).collect();
        assert!(after.iter().all(|o| o.process != Process::Client(crashed)));
        // ... but does go on as process crashed + concurrency, if it drew another op.
        let history = faultline_core::History::new(ops.clone());
        history.pairs().expect("well formed");
        let processes: std::collections::BTreeSet<String> =
            ops.iter().map(|o| o.process.to_string()).collect();
        assert!(
            processes
                .iter()
                .all(|p| ["0", "1", "2", "3"].contains(&p.as_str())),
            "{processes:?}"
        );
        let _ = Value::Null;
    }

    /// The final generator (final reads) waits for the nemesis to return, that is until it
    /// has healed and waited out the recovery time, even when the main phase ended long
    /// before.
    #[test]
    fn final_operations_start_only_after_the_nemesis_has_healed_and_recovered() {
        let mut test = Test::example("noop", "set", 1);
        test.concurrency = 3;
        let main = generator::time_limit(
            50_000_000,
            generator::rate(500.0, generator::repeat(Draft::new("add", json!(1)))),
        );
        let last = generator::once(Draft::new("read", Value::Null));
        let recovery = Duration::from_millis(150);
        let (recorded, ops) = run_with_nemesis(
            test,
            Arc::new(NoopClient),
            generator::with_final(main, Some(last)),
            |recorder, _stop| async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                assert!(recorder.record("heal", json!({})).await);
                tokio::time::sleep(recovery).await;
                Ok(())
            },
        );
        assert!(recorded.error.is_none(), "{:?}", recorded.error);
        let heal = ops
            .iter()
            .position(|o| o.f == "heal")
            .expect("a heal event");
        let read = ops
            .iter()
            .position(|o| o.f == "read" && o.kind == OpType::Invoke)
            .expect("the final read");
        assert!(
            ops[..heal].iter().any(|o| o.f == "add"),
            "the main phase ran"
        );
        assert!(read > heal, "the final read comes after the heal");
        let waited_ns = ops[read].time.unwrap() - ops[heal].time.unwrap();
        assert!(
            waited_ns >= recovery.as_nanos() as u64,
            "the final read waited for the recovery: {waited_ns} ns"
        );
        assert!(ops[heal..].iter().all(|o| o.f != "add"));
    }

    /// A client that cannot connect.
    struct Unreachable;
    impl Client for Unreachable {
        fn open<'a>(
            &'a self,
            _test: &'a Test,
            node: &'a str,
        ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
            Box::pin(async move {
                Err(HarnessError::Client {
                    node: node.to_string(),
                    why: "connection refused".into(),
                })
            })
        }
        fn invoke<'a>(
            &'a mut self,
            _test: &'a Test,
            _op: &'a Invocation,
        ) -> BoxFuture<'a, Completion> {
            unreachable!("never opened")
        }
        fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[test]
    fn a_client_that_cannot_connect_is_a_harness_error_not_a_completion() {
        let test = Test::example("down", "register", 1);
        let gen = generator::repeat(Draft::new("read", Value::Null));
        let (recorded, ops) = run(test, Arc::new(Unreachable), gen);
        let error = recorded.error.expect("a harness error").to_string();
        assert!(error.contains("connection refused"), "{error}");
        assert!(
            ops.is_empty(),
            "nothing was invoked, so nothing is recorded"
        );
    }

    #[test]
    fn a_nemesis_that_does_not_return_after_the_stop_is_dropped_after_the_setup_bound() {
        let mut test = Test::example("noop", "register", 1);
        test.concurrency = 2;
        test.limits.setup_timeout_ms = 200;
        let gen = generator::limit(10, generator::repeat(Draft::new("write", json!(1))));
        let started = std::time::Instant::now();
        let (recorded, ops) = run_with_nemesis(test, Arc::new(NoopClient), gen, |recorder, _| {
            async move {
                recorder.record("kill", json!({"nodes": ["n1"]})).await;
                // A heal stuck forever (an SSH command on a dead host).
                std::future::pending::<()>().await;
                Ok(())
            }
        });
        let error = recorded.error.expect("a harness error").to_string();
        assert!(error.contains("nemesis"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // The history is whole: the workers' operations and the nemesis's event.
        assert_eq!(recorded.ok, 10);
        assert_eq!(ops.len(), 21);
    }

    #[test]
    fn the_stop_lets_in_flight_operations_finish_then_ends() {
        let mut test = Test::example("noop", "register", 1);
        test.concurrency = 3;
        let stop = Stop::default();
        let interpreter = Interpreter {
            test: Arc::new(test),
            client: Arc::new(NoopClient),
            generator: generator::repeat(Draft::new("read", Value::Null)),
            clock: MonotonicClock::starting_now(),
            counters: Arc::default(),
            stop: stop.clone(),
        };
        let rt = runtime();
        let recorded = rt.block_on(async {
            let stopper = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                stopper.stop();
            });
            interpreter.run(HistoryWriter::new(std::io::sink())).await
        });
        assert!(recorded.ok > 0);
        assert_eq!(recorded.invoked, recorded.ok, "every drawn op completed");
        assert_eq!(recorded.events, 2 * recorded.ok);
        assert_eq!(recorded.abandoned, 0);
    }

    /// Two workers whose operations never complete; a 50 ms drain limit.
    fn hanging_interpreter() -> (Interpreter, Stop) {
        let mut test = Test::example("slow", "register", 1);
        test.concurrency = 2;
        test.limits.op_timeout_ms = 60_000;
        test.limits.drain_timeout_ms = 50;
        let stop = Stop::default();
        let interpreter = Interpreter {
            test: Arc::new(test),
            client: Arc::new(Slow),
            generator: generator::repeat(Draft::new("hang", Value::Null)),
            clock: MonotonicClock::starting_now(),
            counters: Arc::default(),
            stop: stop.clone(),
        };
        (interpreter, stop)
    }

    #[test]
    fn operations_stuck_past_the_drain_timeout_are_abandoned() {
        let (interpreter, stop) = hanging_interpreter();
        stop.stop();
        // Stopped before the start: nothing is drawn, nothing abandoned.
        let recorded = runtime().block_on(interpreter.run(HistoryWriter::new(std::io::sink())));
        assert_eq!((recorded.events, recorded.abandoned), (0, 0));

        let (interpreter, stop) = hanging_interpreter();
        let recorded = runtime().block_on(async {
            let stopper = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                stopper.stop();
            });
            interpreter.run(HistoryWriter::new(std::io::sink())).await
        });
        assert_eq!(recorded.abandoned, 2);
        assert_eq!(
            (recorded.invoked, recorded.events),
            (2, 2),
            "invocations without completions"
        );
    }
}
