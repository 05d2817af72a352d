//! Long-running server processes on a node, started and stopped through its
//! [`faultline_core::Remote`] — the same calls for a local process, a lab host and a VM.
//!
//! A [`Daemon`] is started with Debian's `start-stop-daemon` (detached, its pid written to a
//! pid file, stdout and stderr appended to a log file), so the harness never needs the
//! process to be its child: it finds it again by the pid file, after a restart of the
//! harness too. Kill and pause signal exactly that pid, never everything on the node.
//!
//! ```
//! use faultline_targets::daemon::Daemon;
//! let d = Daemon::new("/usr/bin/etcd", "/tmp/n1/etcd.pid", "/tmp/n1/etcd.log")
//!     .arg("--name").arg("n1").env("GOMAXPROCS", "1");
//! assert_eq!(d.start_command().args[..3], ["--start", "--background", "--make-pidfile"]);
//! assert!(d.start_command().args.contains(&"GOMAXPROCS=1".to_string()));
//! ```

use std::time::{Duration, Instant};

use faultline_core::remote::{Command, ExecOutput, Signal};
use faultline_core::{HarnessError, Remote};

/// How long `start` waits for the pid file to appear.
const PIDFILE_WAIT_MS: u64 = 5_000;
/// How long `kill` waits for the process to be gone after SIGKILL.
const GONE_WAIT_MS: u64 = 5_000;
const POLL_MS: u64 = 25;

/// A server process: what to run, with which environment, and where its pid and log go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    pub program: String,
    pub args: Vec<String>,
    /// Extra environment (`LD_PRELOAD` for libfaketime, ...).
    pub env: Vec<(String, String)>,
    /// The working directory (default `/`).
    pub dir: Option<String>,
    pub pidfile: String,
    pub logfile: String,
}

impl Daemon {
    pub fn new(program: &str, pidfile: &str, logfile: &str) -> Daemon {
        Daemon {
            program: program.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            pidfile: pidfile.to_string(),
            logfile: logfile.to_string(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Daemon {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Daemon {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Daemon {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn dir(mut self, dir: &str) -> Daemon {
        self.dir = Some(dir.to_string());
        self
    }

    /// The `start-stop-daemon` command that starts it (unless its pid file names a live
    /// process: then it does nothing and succeeds).
    pub fn start_command(&self) -> Command {
        let mut args: Vec<String> = [
            "--start",
            "--background",
            "--make-pidfile",
            "--oknodo",
            "--pidfile",
            &self.pidfile,
            "--output",
            &self.logfile,
            "--chdir",
            self.dir.as_deref().unwrap_or("/"),
            // `env` execs the program, so the pid in the pid file is the server's own.
            "--startas",
            "/usr/bin/env",
            "--",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        args.push(self.program.clone());
        args.extend(self.args.iter().cloned());
        Command {
            program: "start-stop-daemon".to_string(),
            args,
            stdin: None,
        }
    }

    /// Starts the process unless it is running, and returns its pid.
    pub async fn start(&self, remote: &dyn Remote) -> Result<u32, HarnessError> {
        if let Some(pid) = self.pid(remote).await? {
            return Ok(pid);
        }
        // A stale pid file (the process died) would make start-stop-daemon think nothing
        // needs doing only if the pid were reused; remove it to be sure.
        run(remote, &Command::new("rm", &["-f", &self.pidfile])).await?;
        run(remote, &self.start_command()).await?;
        let deadline = Instant::now() + Duration::from_millis(PIDFILE_WAIT_MS);
        loop {
            if let Some(pid) = self.pid(remote).await? {
                return Ok(pid);
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Command {
                    node: remote.node().to_string(),
                    command: self.start_command().display(),
                    status: None,
                    stderr: format!(
                        "no live process in {} after {PIDFILE_WAIT_MS} ms (see {})",
                        self.pidfile, self.logfile
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// The pid in the pid file, if that process is alive.
    pub async fn pid(&self, remote: &dyn Remote) -> Result<Option<u32>, HarnessError> {
        let out = remote.exec(&Command::new("cat", &[&self.pidfile])).await?;
        if !out.success() {
            return Ok(None);
        }
        let Ok(pid) = String::from_utf8_lossy(&out.stdout).trim().parse::<u32>() else {
            return Ok(None);
        };
        if pid == 0 {
            return Ok(None);
        }
        Ok(alive(remote, pid).await?.then_some(pid))
    }

    /// Sends `signal` to the process, if it is running.
    pub async fn signal(&self, remote: &dyn Remote, signal: Signal) -> Result<(), HarnessError> {
        if let Some(pid) = self.pid(remote).await? {
            remote.signal(pid, signal).await?;
        }
        Ok(())
    }

    /// SIGCONT then SIGKILL, and waits (bounded) until the process is gone. Idempotent.
    pub async fn kill(&self, remote: &dyn Remote) -> Result<(), HarnessError> {
        let Some(pid) = self.pid(remote).await? else {
            return Ok(());
        };
        remote.signal(pid, Signal::Cont).await?;
        remote.signal(pid, Signal::Kill).await?;
        let deadline = Instant::now() + Duration::from_millis(GONE_WAIT_MS);
        while alive(remote, pid).await? {
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("on {}: pid {pid} dying after SIGKILL", remote.node()),
                    limit_ms: GONE_WAIT_MS,
                });
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        Ok(())
    }
}

/// Whether `pid` is a live (not zombie) process on the node.
pub async fn alive(remote: &dyn Remote, pid: u32) -> Result<bool, HarnessError> {
    // /proc/<pid>/stat's third field is the state; Z is a zombie that SIGKILL already ended.
    let out = remote
        .exec(&Command::new("cat", &[&format!("/proc/{pid}/stat")]))
        .await?;
    if !out.success() {
        return Ok(false);
    }
    let stat = String::from_utf8_lossy(&out.stdout);
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    Ok(!matches!(state, Some("Z") | Some("X")))
}

/// Runs `command` and requires exit status 0.
pub async fn run(remote: &dyn Remote, command: &Command) -> Result<ExecOutput, HarnessError> {
    let out = remote.exec(command).await?;
    if out.success() {
        Ok(out)
    } else {
        Err(HarnessError::Command {
            node: remote.node().to_string(),
            command: command.display(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Writes `bytes` to `path` on the node (through `tee`, so no shell and nothing to escape).
pub async fn write_file(remote: &dyn Remote, path: &str, bytes: &[u8]) -> Result<(), HarnessError> {
    let mut tee = Command::new("tee", &[path]);
    tee.stdin = Some(bytes.to_vec());
    run(remote, &tee).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalRemote;

    /// A real process through the local remote: started once (a second start is a no-op),
    /// found by its pid file, paused, killed, and gone.
    #[test]
    fn start_is_idempotent_and_kill_leaves_nothing() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = std::env::temp_dir().join(format!("faultline-daemon-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let pidfile = dir.join("sleep.pid").to_string_lossy().to_string();
            let logfile = dir.join("sleep.log").to_string_lossy().to_string();
            let remote = LocalRemote::new("n1");
            let daemon = Daemon::new("/bin/sh", &pidfile, &logfile)
                .args(["-c", "echo started $GREETING; exec sleep 60"])
                .env("GREETING", "hello world");
            let pid = daemon.start(&remote).await.unwrap();
            assert_eq!(daemon.start(&remote).await.unwrap(), pid, "second start");
            assert!(alive(&remote, pid).await.unwrap());
            // The shell has run its echo once the log says so (then it execs sleep).
            let logged = || std::fs::read_to_string(&logfile).unwrap_or_default();
            for _ in 0..200 {
                if logged().contains("started hello world") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            daemon.signal(&remote, Signal::Stop).await.unwrap();
            // A signal is delivered asynchronously: wait (bounded) for the stopped state.
            let mut stat = String::new();
            for _ in 0..200 {
                stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
                if stat.contains(") T ") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(stat.contains(") T "), "stopped: {stat}");
            daemon.kill(&remote).await.unwrap();
            assert!(!alive(&remote, pid).await.unwrap());
            daemon.kill(&remote).await.unwrap();
            assert_eq!(daemon.pid(&remote).await.unwrap(), None);
            let log = logged();
            assert!(log.contains("started hello world"), "{log}");
            write_file(&remote, &dir.join("f").to_string_lossy(), b"+30s")
                .await
                .unwrap();
            assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"+30s");
            let _ = std::fs::remove_dir_all(&dir);
        });
    }
}
