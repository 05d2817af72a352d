//! Processes a harness started on this machine, found again after that harness died.
//!
//! Every process the harness starts locally (raftkv nodes, etcd and ZooKeeper daemons, a
//! custom store's commands, client programs) carries [`MARKER`] in its environment, naming the
//! harness process by pid and start time. A harness killed with SIGKILL cannot stop what it
//! started: daemons detached by `start-stop-daemon` live on, and a node paused with SIGSTOP
//! cannot even notice that its parent is gone. [`find`] scans `/proc` for processes whose
//! marker names a harness that no longer runs; [`kill`] ends them with SIGKILL (which also ends
//! a stopped process). `faultline heal` does both, and `faultline test` does it before it starts
//! anything, so a crashed run's leftovers never outlive the next run.
//!
//! ```
//! let marker = faultline_targets::orphans::marker();
//! let (pid, _start) = marker.split_once(':').unwrap();
//! assert_eq!(pid.parse::<u32>().unwrap(), std::process::id());
//! ```
//!
//! Design decision: the environment, not a ledger file. Environments are inherited, so a
//! daemon's own children (a JVM's, a shell's) are marked too, and nothing has to be written
//! before a process starts or removed after it stops; the start time guards against a new
//! process that reuses a dead harness's pid.

use std::path::Path;
use std::sync::OnceLock;

/// The environment variable: `<harness pid>:<harness start time in clock ticks since boot>`.
pub const MARKER: &str = "FAULTLINE_HARNESS";

/// This process's marker value.
pub fn marker() -> &'static str {
    static MARKER_VALUE: OnceLock<String> = OnceLock::new();
    MARKER_VALUE.get_or_init(|| {
        let pid = std::process::id();
        let start = start_time(Path::new("/proc/self")).unwrap_or(0);
        format!("{pid}:{start}")
    })
}

/// A process whose harness is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub pid: u32,
    /// The dead harness's marker.
    pub harness: String,
    /// Its command line, for the operator.
    pub command: String,
    /// Stopped by SIGSTOP (a paused node).
    pub stopped: bool,
}

/// Every process on this machine whose marker names a harness that no longer runs.
pub fn find() -> Vec<Orphan> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id();
    let mut orphans = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let dir = entry.path();
        // Other users' processes and processes that exited meanwhile cannot be read: skip.
        let Ok(environ) = std::fs::read(dir.join("environ")) else {
            continue;
        };
        let Some(harness) = marker_in(&environ) else {
            continue;
        };
        if harness_alive(&harness) {
            continue;
        }
        let command = std::fs::read(dir.join("cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let stopped = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|stat| state_of(&stat))
            == Some('T');
        orphans.push(Orphan {
            pid,
            harness,
            command,
            stopped,
        });
    }
    orphans.sort_by_key(|o| o.pid);
    orphans
}

/// Ends `orphans` with SIGKILL; returns those that could not be signalled (with why).
pub fn kill(orphans: &[Orphan]) -> Vec<(Orphan, String)> {
    let mut failed = Vec::new();
    for orphan in orphans {
        // `kill(1)` rather than libc: the workspace forbids unsafe code.
        let output = std::process::Command::new("kill")
            .args(["-KILL", &orphan.pid.to_string()])
            .output();
        match output {
            Ok(o) if o.status.success() => {}
            // Gone meanwhile: that is what we wanted.
            Ok(_) if !Path::new(&format!("/proc/{}", orphan.pid)).exists() => {}
            Ok(o) => failed.push((
                orphan.clone(),
                String::from_utf8_lossy(&o.stderr).trim().to_string(),
            )),
            Err(e) => failed.push((orphan.clone(), e.to_string())),
        }
    }
    failed
}

/// Finds and kills every orphan; returns what it found and what it could not kill.
pub fn heal() -> (Vec<Orphan>, Vec<(Orphan, String)>) {
    let found = find();
    let failed = kill(&found);
    (found, failed)
}

/// The marker value in a NUL-separated environment block.
fn marker_in(environ: &[u8]) -> Option<String> {
    let prefix = format!("{MARKER}=");
    environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(prefix.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

/// Whether the harness a marker names still runs: same pid, same start time.
fn harness_alive(marker: &str) -> bool {
    let Some((pid, start)) = marker.split_once(':') else {
        // Not ours to judge: leave a process with a malformed marker alone.
        return true;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return true;
    };
    start_time(Path::new(&format!("/proc/{pid}"))) == Some(start)
}

/// Field 22 of `/proc/<pid>/stat`: the start time in clock ticks since boot.
fn start_time(proc_dir: &Path) -> Option<u64> {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses:
    // count fields from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Field 3 of a `/proc/<pid>/stat` line: the process state.
fn state_of(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
                    1000 100";
        assert_eq!(state_of(stat), Some('S'));
        let dir = std::env::temp_dir().join(format!("orphans-stat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("stat"), stat).unwrap();
        assert_eq!(start_time(&dir), Some(987654));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_marker_is_read_from_an_environment_block() {
        let block = b"PATH=/bin\0FAULTLINE_HARNESS=12:34\0HOME=/root\0";
        assert_eq!(marker_in(block).as_deref(), Some("12:34"));
        assert_eq!(marker_in(b"PATH=/bin\0"), None);
        assert_eq!(marker_in(b"XFAULTLINE_HARNESS=1:2\0"), None);
    }

    #[test]
    fn this_harness_is_alive_and_a_made_up_one_is_not() {
        assert!(harness_alive(marker()));
        let (pid, start) = marker().split_once(':').unwrap();
        let older: u64 = start.parse::<u64>().unwrap() + 1;
        assert!(!harness_alive(&format!("{pid}:{older}")));
        assert!(harness_alive("garbage"));
    }

    /// A marked process whose harness is gone is found, even when stopped, and killed.
    #[test]
    fn a_stopped_child_of_a_dead_harness_is_found_and_killed() {
        // The "harness": a pid that existed but is gone (a child that already exited).
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        let dead = format!("{gone_pid}:1");
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .env(MARKER, &dead)
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap()
            .success());
        // The stop is asynchronous: wait until /proc shows it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let found = loop {
            let found: Vec<Orphan> = find().into_iter().filter(|o| o.pid == pid).collect();
            if found.first().is_some_and(|o| o.stopped) || std::time::Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].harness, dead);
        assert!(found[0].stopped, "{found:?}");
        assert!(found[0].command.starts_with("sleep 60"), "{found:?}");
        assert!(kill(&found).is_empty());
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
        // A child marked with this (live) harness is not an orphan.
        let mut live = std::process::Command::new("sleep")
            .arg("60")
            .env(MARKER, marker())
            .spawn()
            .unwrap();
        assert!(find().iter().all(|o| o.pid != live.id()));
        live.kill().unwrap();
        live.wait().unwrap();
    }
}
