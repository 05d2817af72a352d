//! The nemesis seam: the fault injector.
//!
//! A nemesis is set up once, then invoked with fault operations (`start-partition`, `kill`,
//! `stop-partition`, ...) drawn from its own generator, and torn down at the end. Its events are
//! recorded in the history with `process: "nemesis"` and type `info`.

use serde_json::Value;

use crate::client::Invocation;
use crate::future::BoxFuture;
use crate::harness_error::HarnessError;
use crate::test::Test;

/// A fault injector.
///
/// # Correctness
/// - `invoke` returns the fault's result as data (which nodes were cut off, which were
///   killed); a fault that could not be applied is `Err` (a harness error, stopping the test).
/// - `teardown` heals every fault this nemesis may have caused (it resumes every node, removes
///   every partition), whether or not `invoke` was ever called, and must succeed when run twice.
///   The runner calls it on every exit path: error, panic, Ctrl-C.
pub trait Nemesis: Send {
    fn setup<'a>(&'a mut self, test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>>;

    fn invoke<'a>(
        &'a mut self,
        test: &'a Test,
        op: &'a Invocation,
    ) -> BoxFuture<'a, Result<Value, HarnessError>>;

    fn teardown<'a>(&'a mut self, test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>>;
}

/// The nemesis of `--nemesis none`: injects nothing, heals nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopNemesis;

impl Nemesis for NoopNemesis {
    fn setup<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async { Ok(()) })
    }

    fn invoke<'a>(
        &'a mut self,
        _test: &'a Test,
        op: &'a Invocation,
    ) -> BoxFuture<'a, Result<Value, HarnessError>> {
        Box::pin(async move { Ok(op.value.clone()) })
    }

    fn teardown<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async { Ok(()) })
    }
}
