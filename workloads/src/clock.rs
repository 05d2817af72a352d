//! Time for the interpreter and generators: one monotonic clock per run, or a simulated one.
//!
//! The history's `time` field and every generator's notion of "now" come from the same
//! [`Clock`], counted in nanoseconds since the test started.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Nanoseconds since the test started.
pub trait Clock: Send + Sync {
    fn now_ns(&self) -> u64;
}

/// The real clock: a monotonic `Instant` taken when the test started.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    start: Instant,
}

impl MonotonicClock {
    pub fn starting_now() -> MonotonicClock {
        MonotonicClock {
            start: Instant::now(),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug, Default)]
pub struct SimulatedClock {
    now_ns: AtomicU64,
}

impl SimulatedClock {
    pub fn advance(&self, ns: u64) {
        self.now_ns.fetch_add(ns, Ordering::SeqCst);
    }

    pub fn set(&self, ns: u64) {
        self.now_ns.store(ns, Ordering::SeqCst);
    }
}

impl Clock for SimulatedClock {
    fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clock_moves_only_when_told() {
        let clock = SimulatedClock::default();
        assert_eq!(clock.now_ns(), 0);
        clock.advance(5);
        clock.advance(5);
        assert_eq!(clock.now_ns(), 10);
        clock.set(3);
        assert_eq!(clock.now_ns(), 3);
    }

    #[test]
    fn monotonic_clock_never_goes_back() {
        let clock = MonotonicClock::starting_now();
        let a = clock.now_ns();
        let b = clock.now_ns();
        assert!(b >= a);
    }
}
