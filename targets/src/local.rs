//! [`LocalRemote`]: the [`Remote`] for processes on this machine.
//!
//! `exec` runs the program directly (no shell, so nothing to escape); `signal` runs the
//! `kill` command (`kill -STOP <pid>`), which keeps the crate free of `unsafe`. Upload and
//! download are file copies.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use faultline_core::remote::{Command, ExecOutput, Remote, Signal};
use faultline_core::{BoxFuture, HarnessError};

/// Runs commands on this machine, as the user faultline runs as.
#[derive(Debug, Clone)]
pub struct LocalRemote {
    node: String,
}

impl LocalRemote {
    pub fn new(node: &str) -> LocalRemote {
        LocalRemote {
            node: node.to_string(),
        }
    }

    /// Copies a file on this machine (upload and download are the same thing locally).
    async fn copy(&self, from: &Path, to: &Path) -> Result<(), HarnessError> {
        tokio::fs::copy(from, to)
            .await
            .map(|_| ())
            .map_err(|source| HarnessError::Io {
                what: format!(
                    "on {}: copying {} to {}",
                    self.node,
                    from.display(),
                    to.display()
                ),
                source,
            })
    }
}

/// A free loopback port: bound, read, released. (Another process may still take it before the
/// node binds it; the node then fails to start and setup says so.)
pub fn free_port() -> Result<SocketAddr, std::io::Error> {
    // Below the kernel's ephemeral range (32768 and up), so no outgoing connection can be
    // handed this port between choosing it and the node binding it; each process starts at
    // its own offset so that concurrent test processes rarely probe the same ports.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    let offset = (std::process::id() % 100) * (COUNT / 100);
    for _ in 0..COUNT {
        let port = FIRST + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT;
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port as u16)) {
            return listener.local_addr();
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free loopback port below 32000",
    ))
}

/// The `kill` command's name for a signal.
pub fn signal_name(signal: Signal) -> &'static str {
    match signal {
        Signal::Stop => "STOP",
        Signal::Cont => "CONT",
        Signal::Term => "TERM",
        Signal::Kill => "KILL",
    }
}

/// Sends `signal` to `pid` with the `kill` command. A process that no longer exists is `Ok`
/// (kill and pause are idempotent).
pub async fn send_signal(node: &str, pid: u32, signal: Signal) -> Result<(), HarnessError> {
    assert!(pid > 0, "pid 0 would signal the whole process group");
    let name = signal_name(signal);
    let output = tokio::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .output()
        .await
        .map_err(|e| HarnessError::Command {
            node: node.to_string(),
            command: format!("kill -{name} {pid}"),
            status: None,
            stderr: e.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    if stderr.contains("No such process") {
        return Ok(());
    }
    Err(HarnessError::Command {
        node: node.to_string(),
        command: format!("kill -{name} {pid}"),
        status: output.status.code(),
        stderr,
    })
}

impl Remote for LocalRemote {
    fn node(&self) -> &str {
        &self.node
    }

    fn exec<'a>(&'a self, command: &'a Command) -> BoxFuture<'a, Result<ExecOutput, HarnessError>> {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt;
            let mut child = tokio::process::Command::new(&command.program)
                .args(&command.args)
                // Daemons started through this remote inherit it: `faultline heal` finds
                // them again if the harness dies (see `crate::orphans`).
                .env(crate::orphans::MARKER, crate::orphans::marker())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| HarnessError::Command {
                    node: self.node.clone(),
                    command: command.display(),
                    status: None,
                    stderr: e.to_string(),
                })?;
            let mut stdin = child.stdin.take().expect("stdin is piped");
            if let Some(bytes) = &command.stdin {
                // A command that exits without reading its input is not an error here.
                let _ = stdin.write_all(bytes).await;
            }
            drop(stdin);
            let output = child
                .wait_with_output()
                .await
                .map_err(|e| HarnessError::Command {
                    node: self.node.clone(),
                    command: command.display(),
                    status: None,
                    stderr: e.to_string(),
                })?;
            Ok(ExecOutput {
                status: output.status.code(),
                stdout: output.stdout,
                stderr: output.stderr,
            })
        })
    }

    fn upload<'a>(
        &'a self,
        local: &'a Path,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(self.copy(local, Path::new(remote)))
    }

    fn download<'a>(
        &'a self,
        remote: &'a str,
        local: &'a Path,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(self.copy(Path::new(remote), local))
    }

    fn signal<'a>(&'a self, pid: u32, signal: Signal) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(send_signal(&self.node, pid, signal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_reports_status_and_output_and_signals_to_gone_processes_are_ok() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let remote = LocalRemote::new("n1");
            let mut cat = Command::new("cat", &[]);
            cat.stdin = Some(b"hello".to_vec());
            let out = remote.exec(&cat).await.unwrap();
            assert!(out.success());
            assert_eq!(out.stdout, b"hello");
            let out = remote.exec(&Command::new("false", &[])).await.unwrap();
            assert_eq!(out.status, Some(1));
            // A child that has exited and been reaped: its pid no longer exists.
            let mut child = tokio::process::Command::new("true").spawn().unwrap();
            let pid = child.id().unwrap();
            child.wait().await.unwrap();
            remote.signal(pid, Signal::Kill).await.unwrap();
        });
    }
}
