//! Generators: what operation each worker performs next, and when.
//!
//! A [`Generator`] is asked for an operation by a worker thread through [`Generator::op`] and
//! answers with one of three things: an operation ([`GenOp::Op`]), "not yet, ask again at this
//! time" ([`GenOp::Pending`]), or "no more, ever" ([`GenOp::Exhausted`]). Exhausted is global:
//! the worker that hears it stops. Combinators build workloads from small pieces, as Jepsen's
//! `generator` namespace: [`mix`], [`rate`], [`stagger`], [`phases`], [`time_limit`],
//! [`each_thread`], [`once`], [`limit`], [`seq`], [`independent`] and [`with_final`].
//!
//! ```
//! use faultline_workloads::generator::{self, Context, Draft, GenOp, Generator};
//! use rand::{rngs::SmallRng, SeedableRng};
//! use serde_json::json;
//! let mut gen = generator::time_limit(
//!     1_000_000_000,
//!     generator::rate(10.0, generator::repeat(Draft::new("read", json!(null)))),
//! );
//! let mut rng = SmallRng::seed_from_u64(1);
//! let mut ctx = Context { time_ns: 0, thread: 0, threads: 1, in_flight: 0, rng: &mut rng };
//! assert!(matches!(gen.op(&mut ctx), GenOp::Op(_)));
//! // The next slot is 100 ms later.
//! assert_eq!(gen.op(&mut ctx), GenOp::Pending(100_000_000));
//! ```
//!
//! Design decision: generators are mutable objects behind one lock, not Jepsen's immutable
//! values. Workers are few (tens), each call is a few hundred nanoseconds, and a mutable
//! generator is far simpler to write in Rust. Generators see time only through [`Context`], so
//! every combinator is tested on a simulated clock (see the tests below), and they draw every
//! random choice from the context's seeded RNG.

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use faultline_core::Op;

/// How long a worker waits before asking again when a generator waits on other workers (a
/// phase barrier, other threads' copies): 1 ms.
pub const WAIT_POLL_NS: u64 = 1_000_000;

/// An operation a generator wants performed; the interpreter adds the process.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub f: String,
    pub key: Option<Value>,
    pub value: Value,
}

impl Draft {
    pub fn new(f: &str, value: Value) -> Draft {
        Draft {
            f: f.to_string(),
            key: None,
            value,
        }
    }

    pub fn with_key(mut self, key: Value) -> Draft {
        self.key = Some(key);
        self
    }
}

/// A generator's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum GenOp {
    /// Perform this operation now.
    Op(Draft),
    /// Nothing now; ask again at this time (ns since the test started).
    Pending(u64),
    /// Nothing more, for any thread.
    Exhausted,
}

/// What a generator may know when asked: the time, who asks, and the seeded RNG.
pub struct Context<'a> {
    /// Nanoseconds since the test started (real or simulated).
    pub time_ns: u64,
    /// The asking worker thread, `0..threads`. (Its process changes after an `info`; its
    /// thread never does.)
    pub thread: usize,
    pub threads: usize,
    /// Operations invoked by other threads and not yet completed.
    pub in_flight: usize,
    pub rng: &'a mut SmallRng,
}

/// A source of operations.
///
/// # Correctness
/// - `op` must not block and must not read a clock: the time is `ctx.time_ns`.
/// - `Pending(t)` should name a time `t > ctx.time_ns` when it can (the worker sleeps until
///   then); `Exhausted` is final: once returned, every later call returns it.
/// - Every random choice comes from `ctx.rng`, so one seed reproduces the sequence of choices.
pub trait Generator: Send {
    fn op(&mut self, ctx: &mut Context<'_>) -> GenOp;

    /// Sees every completion (ok / fail / info) of an operation it may have produced.
    fn update(&mut self, _event: &Op) {}
}

impl Generator for Box<dyn Generator> {
    fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
        (**self).op(ctx)
    }

    fn update(&mut self, event: &Op) {
        (**self).update(event)
    }
}

/// A boxed generator, the currency of the combinators.
pub type BoxGen = Box<dyn Generator>;

/// An endless generator computed by a function of the context.
pub fn from_fn<F>(f: F) -> BoxGen
where
    F: FnMut(&mut Context<'_>) -> Draft + Send + 'static,
{
    struct FromFn<F>(F);
    impl<F: FnMut(&mut Context<'_>) -> Draft + Send> Generator for FromFn<F> {
        fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
            GenOp::Op((self.0)(ctx))
        }
    }
    Box::new(FromFn(f))
}

/// The same operation, forever.
pub fn repeat(draft: Draft) -> BoxGen {
    from_fn(move |_| draft.clone())
}

/// One operation, then exhausted.
pub fn once(draft: Draft) -> BoxGen {
    struct Once(Option<Draft>);
    impl Generator for Once {
        fn op(&mut self, _ctx: &mut Context<'_>) -> GenOp {
            self.0.take().map_or(GenOp::Exhausted, GenOp::Op)
        }
    }
    Box::new(Once(Some(draft)))
}

/// At most `n` operations of `gen`.
pub fn limit(n: u64, gen: BoxGen) -> BoxGen {
    struct Limit {
        left: u64,
        gen: BoxGen,
    }
    impl Generator for Limit {
        fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
            if self.left == 0 {
                return GenOp::Exhausted;
            }
            let next = self.gen.op(ctx);
            if matches!(next, GenOp::Op(_)) {
                self.left -= 1;
            }
            next
        }
        fn update(&mut self, event: &Op) {
            self.gen.update(event)
        }
    }
    Box::new(Limit { left: n, gen })
}

/// Each generator in turn, the next one as soon as the current is exhausted (no waiting for
/// the previous one's operations to complete: see [`phases`] for that).
pub fn seq(gens: Vec<BoxGen>) -> BoxGen {
    struct Seq(VecDeque<BoxGen>);
    impl Generator for Seq {
        fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
            while let Some(front) = self.0.front_mut() {
                match front.op(ctx) {
                    GenOp::Exhausted => {
                        self.0.pop_front();
                    }
                    other => return other,
                }
            }
            GenOp::Exhausted
        }
        fn update(&mut self, event: &Op) {
            for gen in &mut self.0 {
                gen.update(event);
            }
        }
    }
    Box::new(Seq(gens.into()))
}

/// A random choice among generators for each operation (uniform), until all are exhausted.
pub fn mix(gens: Vec<BoxGen>) -> BoxGen {
    struct Mix(Vec<BoxGen>);
    impl Generator for Mix {
        fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
            while !self.0.is_empty() {
                let i = ctx.rng.gen_range(0..self.0.len());
                match self.0[i].op(ctx) {
                    GenOp::Exhausted => {
                        self.0.swap_remove(i);
                    }
                    other => return other,
                }
            }
            GenOp::Exhausted
        }
        fn update(&mut self, event: &Op) {
            for gen in &mut self.0 {
                gen.update(event);
            }
        }
    }
    Box::new(Mix(gens))
}

/// How far apart paced operations start.
#[derive(Debug, Clone, Copy)]
enum Interval {
    Fixed(u64),
    /// Uniform in `[0, 2 * mean)`: Jepsen's stagger.
    Uniform(u64),
}

/// Starts of operations paced across all threads. Each asking thread reserves the next slot,
/// so a thread sleeps until its own slot instead of every thread waking for every slot. A
/// target slower than the pace gets no burst afterwards: slots never lie in the past.
struct Paced {
    gen: BoxGen,
    interval: Interval,
    next_ns: Option<u64>,
    reserved: Vec<Option<u64>>,
}

impl Generator for Paced {
    fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
        if self.reserved.len() <= ctx.thread {
            self.reserved.resize(ctx.thread + 1, None);
        }
        let slot = match self.reserved[ctx.thread] {
            Some(slot) => slot,
            None => {
                let slot = self
                    .next_ns
                    .map_or(ctx.time_ns, |next| next.max(ctx.time_ns));
                let gap = match self.interval {
                    Interval::Fixed(ns) => ns,
                    Interval::Uniform(0) => 0,
                    Interval::Uniform(mean) => ctx.rng.gen_range(0..2 * mean),
                };
                self.next_ns = Some(slot + gap);
                self.reserved[ctx.thread] = Some(slot);
                slot
            }
        };
        if slot > ctx.time_ns {
            return GenOp::Pending(slot);
        }
        let next = self.gen.op(ctx);
        if !matches!(next, GenOp::Pending(_)) {
            self.reserved[ctx.thread] = None;
        }
        next
    }
    fn update(&mut self, event: &Op) {
        self.gen.update(event)
    }
}

/// At most `ops_per_sec` operations per second across all threads, evenly spaced.
pub fn rate(ops_per_sec: f64, gen: BoxGen) -> BoxGen {
    assert!(
        ops_per_sec.is_finite() && ops_per_sec > 0.0,
        "a rate must be positive, not {ops_per_sec}"
    );
    let ns = (1e9 / ops_per_sec).round().max(1.0) as u64;
    Box::new(Paced {
        gen,
        interval: Interval::Fixed(ns),
        next_ns: None,
        reserved: Vec::new(),
    })
}

/// Operations spaced by random intervals averaging `mean_ns` across all threads.
pub fn stagger(mean_ns: u64, gen: BoxGen) -> BoxGen {
    Box::new(Paced {
        gen,
        interval: Interval::Uniform(mean_ns),
        next_ns: None,
        reserved: Vec::new(),
    })
}

/// Operations of `gen` for `limit_ns` from the first time it is asked; then exhausted.
pub fn time_limit(limit_ns: u64, gen: BoxGen) -> BoxGen {
    struct TimeLimit {
        limit_ns: u64,
        deadline_ns: Option<u64>,
        gen: BoxGen,
    }
    impl Generator for TimeLimit {
        fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
            let deadline = *self
                .deadline_ns
                .get_or_insert(ctx.time_ns.saturating_add(self.limit_ns));
            if ctx.time_ns >= deadline {
                return GenOp::Exhausted;
            }
            match self.gen.op(ctx) {
                GenOp::Pending(t) => GenOp::Pending(t.min(deadline)),
                other => other,
            }
        }
        fn update(&mut self, event: &Op) {
            self.gen.update(event)
        }
    }
    Box::new(TimeLimit {
        limit_ns,
        deadline_ns: None,
        gen,
    })
}

/// Each generator in turn; before starting the next, every operation of the previous one has
/// completed (a barrier, as Jepsen's `phases`).
pub fn phases(gens: Vec<BoxGen>) -> BoxGen {
    struct Phases {
        gens: VecDeque<BoxGen>,
        barrier: bool,
    }
    impl Generator for Phases {
        fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
            loop {
                if self.barrier {
                    if ctx.in_flight > 0 {
                        return GenOp::Pending(ctx.time_ns + WAIT_POLL_NS);
                    }
                    self.barrier = false;
                }
                let Some(front) = self.gens.front_mut() else {
                    return GenOp::Exhausted;
                };
                match front.op(ctx) {
                    GenOp::Exhausted => {
                        self.gens.pop_front();
                        self.barrier = !self.gens.is_empty();
                    }
                    other => return other,
                }
            }
        }
        fn update(&mut self, event: &Op) {
            if let Some(front) = self.gens.front_mut() {
                front.update(event);
            }
        }
    }
    Box::new(Phases {
        gens: gens.into(),
        barrier: false,
    })
}

/// The main generator, then (after its operations complete) the final one: final reads.
pub fn with_final(main: BoxGen, final_generator: Option<BoxGen>) -> BoxGen {
    match final_generator {
        Some(last) => phases(vec![main, last]),
        None => main,
    }
}

/// Each worker thread gets its own generator, made by `make(thread)`. Exhausted when every
/// thread's generator is.
pub fn each_thread<F>(make: F) -> BoxGen
where
    F: FnMut(usize) -> BoxGen + Send + 'static,
{
    struct EachThread<F> {
        make: F,
        gens: Vec<Option<BoxGen>>,
        exhausted: Vec<bool>,
    }
    impl<F: FnMut(usize) -> BoxGen + Send> Generator for EachThread<F> {
        fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
            let threads = ctx.threads.max(ctx.thread + 1);
            if self.gens.len() < threads {
                self.gens.resize_with(threads, || None);
                self.exhausted.resize(threads, false);
            }
            let t = ctx.thread;
            if !self.exhausted[t] {
                let make = &mut self.make;
                let gen = self.gens[t].get_or_insert_with(|| make(t));
                match gen.op(ctx) {
                    GenOp::Exhausted => {
                        self.exhausted[t] = true;
                        self.gens[t] = None;
                    }
                    other => return other,
                }
            }
            if self.exhausted.iter().all(|&done| done) {
                GenOp::Exhausted
            } else {
                GenOp::Pending(ctx.time_ns + WAIT_POLL_NS)
            }
        }
        fn update(&mut self, event: &Op) {
            for gen in self.gens.iter_mut().flatten() {
                gen.update(event);
            }
        }
    }
    Box::new(EachThread {
        make,
        gens: Vec::new(),
        exhausted: Vec::new(),
    })
}

/// Key rotation, as Jepsen's `independent/concurrent-generator`: threads form groups of
/// `threads_per_key`; each group works on one key at a time with the generator `make(key)`,
/// and moves to a fresh key (0, 1, 2, ... across all groups) when that is exhausted. Each
/// key's history stays short and has few concurrent processes, so checking it stays cheap.
/// Every draft gets its key set. Never exhausted unless `make` yields exhausted generators.
pub fn independent<F>(threads_per_key: usize, make: F) -> BoxGen
where
    F: FnMut(u64) -> BoxGen + Send + 'static,
{
    independent_counted(threads_per_key, make, Arc::default())
}

/// [`independent`], also counting in `keys_used` how many keys it has handed out (keys are
/// `0..keys_used`), so that a final generator can visit every one of them.
pub fn independent_counted<F>(threads_per_key: usize, make: F, keys_used: Arc<AtomicU64>) -> BoxGen
where
    F: FnMut(u64) -> BoxGen + Send + 'static,
{
    assert!(threads_per_key > 0, "a key needs at least one thread");
    struct Independent<F> {
        threads_per_key: usize,
        make: F,
        next_key: u64,
        groups: Vec<Option<(u64, BoxGen)>>,
        keys_used: Arc<AtomicU64>,
    }
    impl<F: FnMut(u64) -> BoxGen + Send> Generator for Independent<F> {
        fn op(&mut self, ctx: &mut Context<'_>) -> GenOp {
            let group = ctx.thread / self.threads_per_key;
            if self.groups.len() <= group {
                self.groups.resize_with(group + 1, || None);
            }
            // A fresh key whose generator is immediately exhausted ends the rotation.
            for _ in 0..2 {
                if self.groups[group].is_none() {
                    let key = self.next_key;
                    self.next_key += 1;
                    self.keys_used.store(self.next_key, Ordering::Relaxed);
                    self.groups[group] = Some((key, (self.make)(key)));
                }
                let (key, gen) = self.groups[group].as_mut().expect("just set");
                match gen.op(ctx) {
                    GenOp::Op(draft) => return GenOp::Op(draft.with_key(Value::from(*key))),
                    GenOp::Pending(t) => return GenOp::Pending(t),
                    GenOp::Exhausted => self.groups[group] = None,
                }
            }
            GenOp::Exhausted
        }
        fn update(&mut self, event: &Op) {
            let key = event.key.as_ref().and_then(Value::as_u64);
            for (k, gen) in self.groups.iter_mut().flatten() {
                if Some(*k) == key {
                    gen.update(event);
                }
            }
        }
    }
    Box::new(Independent {
        threads_per_key,
        make,
        next_key: 0,
        groups: Vec::new(),
        keys_used,
    })
}

/// One `draft` per key `0..keys_used` (read when first asked), each with its key set, shared
/// out among the threads; then exhausted. The final reads of a keyed workload.
pub fn each_key(draft: Draft, keys_used: Arc<AtomicU64>) -> BoxGen {
    struct EachKey {
        draft: Draft,
        keys_used: Arc<AtomicU64>,
        next: u64,
    }
    impl Generator for EachKey {
        fn op(&mut self, _ctx: &mut Context<'_>) -> GenOp {
            if self.next >= self.keys_used.load(Ordering::Relaxed) {
                return GenOp::Exhausted;
            }
            let key = self.next;
            self.next += 1;
            GenOp::Op(self.draft.clone().with_key(Value::from(key)))
        }
    }
    Box::new(EachKey {
        draft,
        keys_used,
        next: 0,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    /// One drawn operation in a simulation: when, by which thread, what.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Drawn {
        pub time_ns: u64,
        pub thread: usize,
        pub draft: Draft,
    }

    /// Runs a generator on a simulated clock: `threads` workers, every operation taking
    /// `latency_ns`, until every thread has heard `Exhausted` or the clock passes `until_ns`.
    pub fn simulate(
        gen: &mut BoxGen,
        threads: usize,
        latency_ns: u64,
        until_ns: u64,
    ) -> Vec<Drawn> {
        let mut rng = SmallRng::seed_from_u64(7);
        // Per thread: when it is next free, and when its current op completes.
        let mut wake = vec![0u64; threads];
        let mut busy_until = vec![0u64; threads];
        let mut done = vec![false; threads];
        let mut drawn = Vec::new();
        while let Some(thread) = (0..threads)
            .filter(|&t| !done[t])
            .min_by_key(|&t| (wake[t], t))
        {
            let now = wake[thread];
            if now > until_ns {
                break;
            }
            let in_flight = (0..threads)
                .filter(|&t| t != thread && busy_until[t] > now)
                .count();
            let mut ctx = Context {
                time_ns: now,
                thread,
                threads,
                in_flight,
                rng: &mut rng,
            };
            match gen.op(&mut ctx) {
                GenOp::Op(draft) => {
                    drawn.push(Drawn {
                        time_ns: now,
                        thread,
                        draft,
                    });
                    busy_until[thread] = now + latency_ns;
                    wake[thread] = now + latency_ns;
                }
                GenOp::Pending(t) => wake[thread] = t.max(now + 1),
                GenOp::Exhausted => done[thread] = true,
            }
        }
        drawn
    }

    fn read() -> Draft {
        Draft::new("read", Value::Null)
    }

    fn ctx_at(rng: &mut SmallRng, time_ns: u64) -> Context<'_> {
        Context {
            time_ns,
            thread: 0,
            threads: 1,
            in_flight: 0,
            rng,
        }
    }

    #[test]
    fn once_gives_one_op_then_exhausted_forever() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut gen = once(read());
        assert_eq!(gen.op(&mut ctx_at(&mut rng, 0)), GenOp::Op(read()));
        assert_eq!(gen.op(&mut ctx_at(&mut rng, 0)), GenOp::Exhausted);
        assert_eq!(gen.op(&mut ctx_at(&mut rng, 5)), GenOp::Exhausted);
    }

    #[test]
    fn limit_counts_operations() {
        let mut gen = limit(3, repeat(read()));
        assert_eq!(simulate(&mut gen, 2, 10, u64::MAX).len(), 3);
    }

    #[test]
    fn rate_spaces_operations_evenly_across_threads() {
        // 100 ops/s for one simulated second with 10 fast threads: 100 ops, 10 ms apart.
        let mut gen = time_limit(1_000_000_000, rate(100.0, repeat(read())));
        let drawn = simulate(&mut gen, 10, 1_000, u64::MAX);
        assert_eq!(drawn.len(), 100);
        for pair in drawn.windows(2) {
            assert_eq!(pair[1].time_ns - pair[0].time_ns, 10_000_000);
        }
        // Every thread took part: slots are reserved per thread, not raced for.
        let threads: std::collections::HashSet<usize> = drawn.iter().map(|d| d.thread).collect();
        assert_eq!(threads.len(), 10);
    }

    #[test]
    fn rate_is_not_exceeded_after_a_slow_stretch() {
        // Ops take 50 ms with one thread: the pace is the latency, and no burst follows.
        let mut gen = time_limit(1_000_000_000, rate(100.0, repeat(read())));
        let drawn = simulate(&mut gen, 1, 50_000_000, u64::MAX);
        assert_eq!(drawn.len(), 20);
    }

    #[test]
    fn stagger_averages_its_mean() {
        let mut gen = time_limit(10_000_000_000, stagger(10_000_000, repeat(read())));
        let drawn = simulate(&mut gen, 4, 1_000, u64::MAX);
        // 10 s at a 10 ms mean: about 1000 ops.
        assert!((900..1100).contains(&drawn.len()), "{}", drawn.len());
        let gaps: std::collections::HashSet<u64> = drawn
            .windows(2)
            .map(|p| p[1].time_ns - p[0].time_ns)
            .collect();
        assert!(gaps.len() > 100, "gaps are random");
    }

    #[test]
    fn time_limit_starts_at_the_first_request_and_clamps_pending() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut gen = time_limit(100, rate(1.0, repeat(read())));
        assert!(matches!(gen.op(&mut ctx_at(&mut rng, 1_000)), GenOp::Op(_)));
        // The next rate slot is 1 s away, past the deadline: wake at the deadline instead.
        assert_eq!(gen.op(&mut ctx_at(&mut rng, 1_050)), GenOp::Pending(1_100));
        assert_eq!(gen.op(&mut ctx_at(&mut rng, 1_100)), GenOp::Exhausted);
    }

    #[test]
    fn mix_draws_from_every_generator_until_all_are_exhausted() {
        let mut gen = mix(vec![
            limit(50, repeat(Draft::new("a", Value::Null))),
            limit(50, repeat(Draft::new("b", Value::Null))),
        ]);
        let drawn = simulate(&mut gen, 1, 1, u64::MAX);
        assert_eq!(drawn.len(), 100);
        let first_half_a = drawn[..50].iter().filter(|d| d.draft.f == "a").count();
        assert!(
            (10..40).contains(&first_half_a),
            "interleaved: {first_half_a}"
        );
    }

    #[test]
    fn mix_is_reproducible_from_the_seed() {
        let run = || {
            let mut gen = limit(
                30,
                mix(vec![
                    repeat(Draft::new("a", Value::Null)),
                    repeat(Draft::new("b", Value::Null)),
                ]),
            );
            simulate(&mut gen, 3, 5, u64::MAX)
                .into_iter()
                .map(|d| d.draft.f)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn phases_wait_for_in_flight_operations() {
        // Phase one: 3 writes on 3 threads taking 100 ns each; phase two starts only when
        // all have completed.
        let mut gen = phases(vec![
            limit(3, repeat(Draft::new("write", json!(1)))),
            once(read()),
        ]);
        let drawn = simulate(&mut gen, 3, 100, u64::MAX);
        assert_eq!(drawn.len(), 4);
        let last_write = drawn
            .iter()
            .filter(|d| d.draft.f == "write")
            .map(|d| d.time_ns)
            .max();
        let read_at = drawn.iter().find(|d| d.draft.f == "read").unwrap().time_ns;
        assert!(read_at >= last_write.unwrap() + 100, "{drawn:?}");
    }

    #[test]
    fn seq_does_not_wait() {
        let mut gen = seq(vec![
            limit(3, repeat(Draft::new("write", json!(1)))),
            once(read()),
        ]);
        let drawn = simulate(&mut gen, 4, 100, u64::MAX);
        assert!(drawn.iter().all(|d| d.time_ns == 0), "{drawn:?}");
    }

    #[test]
    fn with_final_runs_the_final_generator_after_the_main_one() {
        let mut gen = with_final(
            time_limit(1_000, repeat(Draft::new("add", json!(1)))),
            Some(seq(vec![once(read()), once(read())])),
        );
        let drawn = simulate(&mut gen, 2, 100, u64::MAX);
        let fs: Vec<&str> = drawn.iter().map(|d| d.draft.f.as_str()).collect();
        assert_eq!(&fs[fs.len() - 2..], ["read", "read"]);
        assert!(fs[..fs.len() - 2].iter().all(|f| *f == "add"));
        assert_eq!(drawn.iter().filter(|d| d.draft.f == "add").count(), 20);
    }

    #[test]
    fn each_thread_gives_every_thread_its_own_copy() {
        let mut gen = each_thread(|t| once(Draft::new("read", json!(t))));
        let drawn = simulate(&mut gen, 4, 10, u64::MAX);
        let mut threads: Vec<(usize, Value)> = drawn
            .into_iter()
            .map(|d| (d.thread, d.draft.value))
            .collect();
        threads.sort_by_key(|(t, _)| *t);
        assert_eq!(
            threads,
            (0..4).map(|t| (t, json!(t))).collect::<Vec<_>>(),
            "one op per thread, made for that thread"
        );
    }

    #[test]
    fn independent_rotates_keys_per_group_of_threads() {
        let mut gen = limit(
            40,
            independent(2, |_key| limit(5, repeat(Draft::new("write", json!(1))))),
        );
        let drawn = simulate(&mut gen, 4, 10, u64::MAX);
        assert_eq!(drawn.len(), 40);
        let mut per_key: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
        for d in &drawn {
            let key = d.draft.key.as_ref().and_then(Value::as_u64).expect("keyed");
            per_key.entry(key).or_default().push(d.thread);
        }
        // 5 ops per key, 8 keys, and a key is only ever used by one group of two threads.
        assert_eq!(per_key.len(), 8);
        for threads in per_key.values() {
            assert_eq!(threads.len(), 5);
            let group = threads[0] / 2;
            assert!(threads.iter().all(|t| t / 2 == group), "{threads:?}");
        }
    }
}
