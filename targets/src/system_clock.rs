//! Clock skew by stepping a host's system clock: for real machines (`--hosts`), where each
//! node has a kernel clock of its own. `faultline test --clock system` puts it in front of
//! any target's db.
//!
//! [`SystemClock`] keeps, per node, the offset it has applied so far, and moves the clock by
//! the difference to the offset asked for: `set_offset(n, 500)` then `set_offset(n, -200)`
//! steps n's clock forward 500 ms, then back 700 ms; `reset` steps back by whatever is still
//! applied. Each step is one shell command on the node (`date` reads the clock with
//! nanoseconds, `awk` adds the step, `date -s` sets it), so the time between reading and
//! setting is a few milliseconds of error, not the round trip to the harness.
//!
//! ```
//! use faultline_targets::system_clock::step_command;
//! let c = step_command(-250);
//! assert_eq!((c.program.as_str(), c.args.last().unwrap().as_str()), ("sh", "-250"));
//! ```
//!
//! Design decision: the lab's namespaces and local nodes share this machine's kernel clock,
//! so stepping it would move every node and the harness together (and the host's own
//! services): `--clock system` is refused there, and libfaketime (each target's own
//! [`ClockSkew`]) is the default everywhere. A time daemon on a VM (chrony, ntpd,
//! systemd-timesyncd) would undo the steps: stop it on the machines under test, as Jepsen does.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use faultline_core::remote::Command;
use faultline_core::{BoxFuture, ClockSkew, Db, HarnessError, Kill, Node, Pause, Primary, Test};

/// The script of one step: `$1` is the step in milliseconds (negative = back).
const STEP_SCRIPT: &str = r#"now=$(date +%s.%N) || exit 1
to=$(awk -v now="$now" -v step="$1" 'BEGIN { printf "%.6f", now + step / 1000 }') || exit 1
date -u -s "@$to" >/dev/null"#;

/// The command that steps a host's clock by `step_ms`.
pub fn step_command(step_ms: i64) -> Command {
    Command::new("sh", &["-c", STEP_SCRIPT, "sh", &step_ms.to_string()])
}

/// Clock skew through each node's system clock.
#[derive(Debug, Default)]
pub struct SystemClock {
    /// Node name -> the offset applied so far (ms).
    applied_ms: Mutex<BTreeMap<String, i64>>,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock::default()
    }

    /// The offset currently applied to `node` (ms).
    pub fn applied_ms(&self, node: &str) -> i64 {
        self.applied_ms
            .lock()
            .expect("clock lock")
            .get(node)
            .copied()
            .unwrap_or(0)
    }
}

impl ClockSkew for SystemClock {
    fn set_offset<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
        offset_ms: i64,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let step = offset_ms - self.applied_ms(&node.name);
            if step == 0 {
                return Ok(());
            }
            let command = step_command(step);
            let output = node.remote.exec(&command).await?;
            if output.status != Some(0) {
                return Err(HarnessError::Command {
                    node: node.name.clone(),
                    command: command.display(),
                    status: output.status,
                    stderr: format!(
                        "stepping the system clock by {step} ms (needs root and a stopped \
                         time daemon): {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ),
                });
            }
            // Only a step that happened is counted, so reset steps back exactly that far.
            self.applied_ms
                .lock()
                .expect("clock lock")
                .insert(node.name.clone(), offset_ms);
            Ok(())
        })
    }
}

/// A db whose clock faults step the system clock; everything else is `inner`'s.
pub struct SystemClockDb {
    inner: Arc<dyn Db>,
    clock: SystemClock,
}

impl SystemClockDb {
    pub fn new(inner: Arc<dyn Db>) -> SystemClockDb {
        SystemClockDb {
            inner,
            clock: SystemClock::new(),
        }
    }
}

impl Db for SystemClockDb {
    fn setup<'a>(
        &'a self,
        test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        self.inner.setup(test, node)
    }

    fn teardown<'a>(
        &'a self,
        test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        self.inner.teardown(test, node)
    }

    fn as_kill(&self) -> Option<&dyn Kill> {
        self.inner.as_kill()
    }

    fn as_pause(&self) -> Option<&dyn Pause> {
        self.inner.as_pause()
    }

    fn as_primary(&self) -> Option<&dyn Primary> {
        self.inner.as_primary()
    }

    fn as_clock(&self) -> Option<&dyn ClockSkew> {
        Some(&self.clock)
    }

    fn as_net(&self) -> Option<&dyn faultline_core::Net> {
        self.inner.as_net()
    }

    fn log_files(&self, test: &Test, node: &Node) -> Vec<PathBuf> {
        self.inner.log_files(test, node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::remote::{ExecOutput, Signal};
    use faultline_core::Remote;
    use std::path::Path;

    /// A remote that records the commands it is given and answers with `status`.
    struct Recording {
        commands: Mutex<Vec<Command>>,
        status: i32,
    }

    impl Remote for Recording {
        fn node(&self) -> &str {
            "n1"
        }
        fn exec<'a>(
            &'a self,
            command: &'a Command,
        ) -> BoxFuture<'a, Result<ExecOutput, HarnessError>> {
            self.commands.lock().unwrap().push(command.clone());
            let status = self.status;
            Box::pin(async move {
                Ok(ExecOutput {
                    status: Some(status),
                    stdout: Vec::new(),
                    stderr: b"date: cannot set date: Operation not permitted".to_vec(),
                })
            })
        }
        fn upload<'a>(
            &'a self,
            _: &'a Path,
            _: &'a str,
        ) -> BoxFuture<'a, Result<(), HarnessError>> {
            Box::pin(async { Ok(()) })
        }
        fn download<'a>(
            &'a self,
            _: &'a str,
            _: &'a Path,
        ) -> BoxFuture<'a, Result<(), HarnessError>> {
            Box::pin(async { Ok(()) })
        }
        fn signal<'a>(&'a self, _: u32, _: Signal) -> BoxFuture<'a, Result<(), HarnessError>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn steps(remote: &Recording) -> Vec<i64> {
        remote
            .commands
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.args.last().unwrap().parse().unwrap())
            .collect()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn offsets_become_steps_and_reset_steps_back_what_was_applied() {
        let remote = Arc::new(Recording {
            commands: Mutex::new(Vec::new()),
            status: 0,
        });
        let node = Node {
            name: "n1".into(),
            remote: remote.clone(),
        };
        let test = Test::example("etcd", "register", 1);
        let clock = SystemClock::new();
        block_on(async {
            clock.set_offset(&test, &node, 500).await.unwrap();
            clock.set_offset(&test, &node, -200).await.unwrap();
            clock.set_offset(&test, &node, -200).await.unwrap(); // no step needed
            assert_eq!(clock.applied_ms("n1"), -200);
            clock.reset(&test, &node).await.unwrap();
        });
        assert_eq!(steps(&remote), [500, -700, 200]);
        assert_eq!(clock.applied_ms("n1"), 0);
    }

    #[test]
    fn a_refused_step_is_a_harness_error_and_is_not_counted() {
        let remote = Arc::new(Recording {
            commands: Mutex::new(Vec::new()),
            status: 1,
        });
        let node = Node {
            name: "n1".into(),
            remote: remote.clone(),
        };
        let test = Test::example("etcd", "register", 1);
        let clock = SystemClock::new();
        let err = block_on(clock.set_offset(&test, &node, 300)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("n1"), "{text}");
        assert!(text.contains("Operation not permitted"), "{text}");
        assert_eq!(clock.applied_ms("n1"), 0);
    }

    /// The script itself, run by `sh` with a stand-in `date` that reports a fixed time and
    /// records what it is asked to set: the arithmetic and the quoting are right.
    #[test]
    fn the_step_script_sets_the_clock_it_read_plus_the_step() {
        let dir = std::env::temp_dir().join(format!("system-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let set = dir.join("set");
        let fake_date = format!(
            "#!/bin/sh\nif [ \"$1\" = +%s.%N ]; then echo 1700000000.123456789; exit 0; fi\n\
             echo \"$@\" > '{}'\n",
            set.display()
        );
        std::fs::write(dir.join("date"), fake_date).unwrap();
        std::process::Command::new("chmod")
            .args(["755", &dir.join("date").to_string_lossy()])
            .status()
            .unwrap();
        let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
        for (step, expected) in [
            (250, "-u -s @1700000000.373457"),
            (-1_500, "-u -s @1699999998.623457"),
            (0, "-u -s @1700000000.123457"),
        ] {
            let command = step_command(step);
            let status = std::process::Command::new(&command.program)
                .args(&command.args)
                .env("PATH", &path)
                .status()
                .unwrap();
            assert!(status.success());
            assert_eq!(std::fs::read_to_string(&set).unwrap().trim(), expected);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every capability but the clock is the inner db's.
    #[test]
    fn the_wrapper_keeps_the_inner_dbs_capabilities() {
        // raftkv's local db has every capability (kill, pause, leader, proxy, libfaketime).
        let inner = crate::raftkv::target(&Test::example("raftkv", "register", 1))
            .unwrap()
            .db;
        assert!(inner.as_kill().is_some() && inner.as_net().is_some());
        let wrapped = SystemClockDb::new(inner.clone());
        assert_eq!(wrapped.as_kill().is_some(), inner.as_kill().is_some());
        assert_eq!(wrapped.as_pause().is_some(), inner.as_pause().is_some());
        assert_eq!(wrapped.as_primary().is_some(), inner.as_primary().is_some());
        assert_eq!(wrapped.as_net().is_some(), inner.as_net().is_some());
        // Without its clock option raftkv moves no clock; wrapped, the system clock moves.
        assert!(inner.as_clock().is_none());
        assert!(wrapped.as_clock().is_some());
    }
}
