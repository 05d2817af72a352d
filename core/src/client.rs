//! The client seam: how a workload's operations reach the system under test.
//!
//! A worker opens one client per process, hands it [`Invocation`]s and gets back a
//! [`Completion`]. The client never builds the recorded [`crate::Op`]: the interpreter does,
//! from the invocation it sent and the completion it got, so a client cannot write a malformed
//! history (a completion with no invocation, the wrong process, a guessed time).

use serde_json::Value;

use crate::future::BoxFuture;
use crate::harness_error::HarnessError;
use crate::test::Test;

/// One operation as handed to a client: which process asks, what, on which key, with what.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub process: u64,
    /// `read`, `write`, `cas`, `add`, ...
    pub f: String,
    /// Operations on different keys are independent.
    pub key: Option<Value>,
    /// The argument: the value to write, `[expected, new]` for a cas, null for a read.
    pub value: Value,
}

/// What a client learned about an operation.
///
/// `Ok` = it happened (with its result), `Fail` = it certainly did not happen, `Info` = the
/// outcome is unknown (a timeout, a connection dropped mid-request). When in doubt, `Info`:
/// a guessed `Fail` makes the checker reason from something false.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// It happened. The value is the result (the value read; the value written).
    Ok(Value),
    /// It certainly did not take effect. The value is why (`"compare-failed"`, `"not-found"`).
    Fail(Value),
    /// Unknown: it may take effect at any time after its invocation, or never.
    Info(Value),
}

impl Completion {
    pub fn fail(error: impl Into<Value>) -> Completion {
        Completion::Fail(error.into())
    }

    pub fn info(error: impl Into<Value>) -> Completion {
        Completion::Info(error.into())
    }

    /// The history's name for this outcome.
    pub fn kind(&self) -> crate::OpType {
        match self {
            Completion::Ok(_) => crate::OpType::Ok,
            Completion::Fail(_) => crate::OpType::Fail,
            Completion::Info(_) => crate::OpType::Info,
        }
    }
}

/// A connection to one node of the system under test.
///
/// A test holds one client as a template; each worker calls [`Client::open`] on it to get its
/// own connected client (as Jepsen's `open!`), uses it for one process at a time, and closes it.
///
/// # Correctness
/// - `invoke` returns `Ok` only when the operation took effect, `Fail` only when it certainly
///   did not (a definite rejection: a cas whose comparison ran and did not match, a refused
///   request that was never applied). A timeout, a dropped connection, or any reply that does
///   not say which is `Info`. Never retry a request whose first attempt may have applied.
/// - `invoke` may be cancelled (its future dropped) when the per-op timeout fires; the
///   interpreter then records `info` and never uses this client again: it closes it and opens
///   a new one for the worker's next process.
/// - `open` may fail (a harness error); `close` must succeed on a client whose last invoke was
///   cancelled, and on a client whose node is down.
pub trait Client: Send + Sync {
    /// Connects to `node` and returns a client for one worker.
    fn open<'a>(
        &'a self,
        test: &'a Test,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>>;

    /// Performs one operation and says what happened.
    fn invoke<'a>(&'a mut self, test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion>;

    /// Releases the connection.
    fn close<'a>(&'a mut self, test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>>;
}

/// A client that talks to nothing: every operation completes `ok` with its own argument.
/// For tests of the interpreter and of generators.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopClient;

impl Client for NoopClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        _node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async { Ok(Box::new(NoopClient) as Box<dyn Client>) })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(async move { Completion::Ok(op.value.clone()) })
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async { Ok(()) })
    }
}
