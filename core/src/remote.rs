//! The remote seam: running commands and moving files on a node.
//!
//! Real targets are installed, started, killed and paused through a [`Remote`]: a local one
//! for processes on this machine, SSH for lab hosts and VMs. The trait is small on purpose (as
//! Jepsen's `Remote`): exec, upload, download, signal. Everything else (install a package, start
//! a daemon) is a function over it.

use std::path::Path;
use std::sync::Mutex;

use crate::future::BoxFuture;
use crate::harness_error::HarnessError;

/// A command to run on a node: a program and its arguments, never one shell string, so that
/// escaping is the remote's job and done once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
    /// Bytes to feed on standard input.
    pub stdin: Option<Vec<u8>>,
}

impl Command {
    pub fn new(program: &str, args: &[&str]) -> Command {
        Command {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            stdin: None,
        }
    }

    /// The command as one line, for logs and errors.
    pub fn display(&self) -> String {
        let mut line = self.program.clone();
        for arg in &self.args {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    /// The exit status; `None` when killed by a signal.
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Signals the harness sends to a node's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGSTOP: pause.
    Stop,
    /// SIGCONT: resume.
    Cont,
    /// SIGTERM: ask to exit.
    Term,
    /// SIGKILL: crash.
    Kill,
}

/// A way to run commands and move files on one node.
///
/// # Correctness
/// - `exec` returns `Ok` whenever the command ran, whatever its exit status (the caller decides
///   what a status means); `Err` only when it could not be run or its status is unknown
///   (connection lost).
/// - A remote may reconnect and retry connecting, but never re-runs a command that may have
///   started.
/// - `signal` on a process that no longer exists is `Ok` (kill and pause must be idempotent).
pub trait Remote: Send + Sync {
    /// The node this remote reaches.
    fn node(&self) -> &str;

    fn exec<'a>(&'a self, command: &'a Command) -> BoxFuture<'a, Result<ExecOutput, HarnessError>>;

    fn upload<'a>(
        &'a self,
        local: &'a Path,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<(), HarnessError>>;

    fn download<'a>(
        &'a self,
        remote: &'a str,
        local: &'a Path,
    ) -> BoxFuture<'a, Result<(), HarnessError>>;

    fn signal<'a>(&'a self, pid: u32, signal: Signal) -> BoxFuture<'a, Result<(), HarnessError>>;
}

/// A remote that runs nothing and remembers what it was asked, for tests of targets and
/// nemeses: every command "succeeds" with empty output.
#[derive(Debug, Default)]
pub struct NoopRemote {
    node: String,
    /// Every request, as a line: `exec ...`, `upload a -> b`, `download a -> b`, `signal 12 Stop`.
    pub requests: Mutex<Vec<String>>,
}

impl NoopRemote {
    pub fn new(node: &str) -> NoopRemote {
        NoopRemote {
            node: node.to_string(),
            requests: Mutex::new(Vec::new()),
        }
    }

    fn remember(&self, line: String) {
        self.requests.lock().expect("not poisoned").push(line);
    }
}

impl Remote for NoopRemote {
    fn node(&self) -> &str {
        &self.node
    }

    fn exec<'a>(&'a self, command: &'a Command) -> BoxFuture<'a, Result<ExecOutput, HarnessError>> {
        self.remember(format!("exec {}", command.display()));
        Box::pin(async {
            Ok(ExecOutput {
                status: Some(0),
                ..ExecOutput::default()
            })
        })
    }

    fn upload<'a>(
        &'a self,
        local: &'a Path,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        self.remember(format!("upload {} -> {remote}", local.display()));
        Box::pin(async { Ok(()) })
    }

    fn download<'a>(
        &'a self,
        remote: &'a str,
        local: &'a Path,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        self.remember(format!("download {remote} -> {}", local.display()));
        Box::pin(async { Ok(()) })
    }

    fn signal<'a>(&'a self, pid: u32, signal: Signal) -> BoxFuture<'a, Result<(), HarnessError>> {
        self.remember(format!("signal {pid} {signal:?}"));
        Box::pin(async { Ok(()) })
    }
}
