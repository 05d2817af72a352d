//! Failures of the harness itself (not of the system under test).
//!
//! An operation's outcome is never an error: it is a completion in the history (`ok`, `fail`,
//! `info`). A [`HarnessError`] is what stops a test: a node that cannot be set up, a command that
//! failed, a client that cannot connect. Each variant carries what an operator needs to act.

/// Why the harness could not go on.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A command run through a `Remote` exited non-zero or could not run.
    #[error("on {node}: `{command}` exited with {status:?}: {stderr}")]
    Command {
        node: String,
        command: String,
        /// The exit status; `None` when the command was killed by a signal or never ran.
        status: Option<i32>,
        stderr: String,
    },
    /// Setting up or tearing down a node failed.
    #[error("{phase} on {node}: {why}")]
    Db {
        node: String,
        /// `setup`, `teardown`, `kill`, `start`, `pause`, `resume`, ...
        phase: &'static str,
        why: String,
    },
    /// A client could not connect to a node.
    #[error("client for {node}: {why}")]
    Client { node: String, why: String },
    /// The nemesis could not inject or heal a fault.
    #[error("nemesis {f}: {why}")]
    Nemesis { f: String, why: String },
    /// A bounded step took longer than its limit.
    #[error("{what} took longer than {limit_ms} ms")]
    Timeout { what: String, limit_ms: u64 },
    /// Reading or writing the store failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}
