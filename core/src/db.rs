//! The db seam: installing, starting and removing the system under test on each node.
//!
//! Two required methods, as Jepsen's `DB`: [`Db::setup`] and [`Db::teardown`]. What else a
//! database can do (be killed and restarted, be paused, have log files) is an optional
//! capability reached through an accessor, so a nemesis asks `db.as_kill()` and gets `None`
//! from a target that cannot be killed instead of a method that panics.

use std::path::PathBuf;
use std::sync::Arc;

use crate::future::BoxFuture;
use crate::harness_error::HarnessError;
use crate::remote::Remote;
use crate::test::Test;

/// One node of the test cluster and the remote that reaches it.
#[derive(Clone)]
pub struct Node {
    pub name: String,
    pub remote: Arc<dyn Remote>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("name", &self.name).finish()
    }
}

/// A system under test, set up and torn down node by node.
///
/// # Correctness
/// - `setup` leaves the node serving (it waits for readiness, with a bound) or returns `Err`.
///   It is idempotent: a second `setup` on a set-up node succeeds.
/// - `teardown` removes the node's data and processes. It must succeed on a node where `setup`
///   never ran or stopped halfway, and when run twice.
/// - Both are called for every node, concurrently across nodes.
pub trait Db: Send + Sync {
    fn setup<'a>(
        &'a self,
        test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>>;

    fn teardown<'a>(
        &'a self,
        test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>>;

    /// The kill / start capability, if this database has it.
    fn as_kill(&self) -> Option<&dyn Kill> {
        None
    }

    /// The pause / resume capability, if this database has it.
    fn as_pause(&self) -> Option<&dyn Pause> {
        None
    }

    /// Which nodes believe they lead, if this database has leaders.
    fn as_primary(&self) -> Option<&dyn Primary> {
        None
    }

    /// Each node's view of its replicated log, if this database is built on one (raftkv):
    /// what faults aimed at a consensus protocol's steps wait for.
    fn as_log_probe(&self) -> Option<&dyn LogProbe> {
        None
    }

    /// Per-node clock offsets, if this database's processes run on a clock the harness can
    /// move (libfaketime locally and in the lab, the system clock on VMs).
    fn as_clock(&self) -> Option<&dyn ClockSkew> {
        None
    }

    /// The network between nodes, when the database wires it itself (the local fault proxy
    /// of processes on one machine). `None` means: use the hosts' network (iptables).
    fn as_net(&self) -> Option<&dyn crate::net::Net> {
        None
    }

    /// Files on `node` worth copying into the store after the run (logs, data dirs).
    fn log_files(&self, _test: &Test, _node: &Node) -> Vec<PathBuf> {
        Vec::new()
    }
}

/// Crash and restart.
///
/// # Correctness
/// `kill` is SIGKILL of the database's processes only (never the remote's), and succeeds when
/// they are already dead; `start` succeeds when they are already running.
pub trait Kill: Send + Sync {
    fn kill<'a>(
        &'a self,
        test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>>;
    fn start<'a>(
        &'a self,
        test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>>;
}

/// Pause (SIGSTOP) and resume (SIGCONT).
///
/// # Correctness
/// Both are idempotent; `resume` must be safe on a node that was never paused, because healing
/// resumes every node on every exit path.
pub trait Pause: Send + Sync {
    fn pause<'a>(
        &'a self,
        test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>>;
    fn resume<'a>(
        &'a self,
        test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>>;
}

/// Which nodes are primaries (leaders) right now.
///
/// # Correctness
/// Asks each node in `nodes` that answers; a node that does not answer is left out (never an
/// error: under faults some nodes are expected not to answer). May return several nodes (two
/// leaders in different terms during a partition) or none.
pub trait Primary: Send + Sync {
    fn primaries<'a>(
        &'a self,
        test: &'a Test,
        nodes: &'a [Node],
    ) -> BoxFuture<'a, Result<Vec<String>, HarnessError>>;
}

/// What one node of a replicated log (Raft and its kin) says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStatus {
    /// The node's current term (epoch, ballot).
    pub term: u64,
    /// It believes it leads in `term`.
    pub leader: bool,
    /// The index and term of the last entry of its log.
    pub last_index: u64,
    pub last_term: u64,
    /// The highest index it knows committed.
    pub commit: u64,
}

/// Asking a node for its [`LogStatus`].
///
/// # Correctness
/// `Ok(None)` when the node does not answer within a short bound (it is paused, down or cut
/// off from the harness); an error only when the answer cannot be read.
pub trait LogProbe: Send + Sync {
    fn log_status<'a>(
        &'a self,
        test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<Option<LogStatus>, HarnessError>>;
}

/// Moving one node's clock.
///
/// # Correctness
/// - `set_offset` makes the node's processes read the real time plus `offset_ms` (negative:
///   behind), from then on, without a restart; it replaces the previous offset.
/// - `reset` is `set_offset(0)`; it must succeed on a node whose clock was never moved, and
///   the runner calls it for every node on every exit path.
pub trait ClockSkew: Send + Sync {
    fn set_offset<'a>(
        &'a self,
        test: &'a Test,
        node: &'a Node,
        offset_ms: i64,
    ) -> BoxFuture<'a, Result<(), HarnessError>>;

    fn reset<'a>(
        &'a self,
        test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        self.set_offset(test, node, 0)
    }
}

/// A database that is nothing: setup and teardown succeed and do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopDb;

impl Db for NoopDb {
    fn setup<'a>(
        &'a self,
        _test: &'a Test,
        _node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async { Ok(()) })
    }

    fn teardown<'a>(
        &'a self,
        _test: &'a Test,
        _node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async { Ok(()) })
    }
}
