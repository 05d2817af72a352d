//! What the real-cluster tests of etcd and ZooKeeper share: a test configuration on a
//! directory of its own, a guard that kills every member and removes the directory even when
//! a test panics, concurrent setup / teardown, and polling with a bound.

#![allow(dead_code)] // Each test crate uses its own part of this module.

use serde_json::Value;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_core::{Client, Completion, Db, Invocation, Node, Test};
use faultline_targets::local::LocalRemote;

/// A directory of its own for one test, removed (with every member still running in it) when
/// the guard drops.
pub struct Guard {
    pub dir: PathBuf,
}

impl Guard {
    pub fn new(target: &str, name: &str) -> Guard {
        let dir = std::env::temp_dir().join(format!(
            "faultline-test-{target}-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Guard { dir }
    }

    pub fn path(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    /// The pid in `<dir>/<node>/<file>`, if the file exists.
    pub fn pid(&self, node: &str, file: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(node).join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Guard {
    /// Kills, by the pids in their pid files, every server a test started under the
    /// directory, and removes the directory: a failed assertion must not leave a cluster
    /// running.
    fn drop(&mut self) {
        for pid in pids_in(&self.dir) {
            for signal in ["-CONT", "-KILL"] {
                let _ = std::process::Command::new("kill")
                    .args([signal, &pid.to_string()])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
            let _ = std::fs::remove_file(format!("/dev/shm/faketime_shm_{pid}"));
            let _ = std::fs::remove_file(format!("/dev/shm/sem.faketime_sem_{pid}"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The pids in every `*.pid` file one level below `dir`.
fn pids_in(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(nodes) = std::fs::read_dir(dir) else {
        return pids;
    };
    for node in nodes.flatten() {
        let Ok(files) = std::fs::read_dir(node.path()) else {
            continue;
        };
        for file in files.flatten() {
            if file.path().extension().is_some_and(|e| e == "pid") {
                if let Some(pid) = std::fs::read_to_string(file.path())
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    pids.push(pid);
                }
            }
        }
    }
    pids
}

/// Processes whose command line names `dir` (servers of this test still running).
pub fn processes_under(dir: &str) -> Vec<String> {
    let out = std::process::Command::new("pgrep")
        .args(["-a", "-f", dir])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| !line.contains("pgrep"))
        .map(str::to_string)
        .collect()
}

/// A register test of `nodes` members on loopback, with its files under `dir`.
pub fn test_config(target: &str, nodes: usize, dir: &str) -> Test {
    let mut test = Test::example(target, "register", 42);
    test.nodes = (1..=nodes).map(|i| format!("n{i}")).collect();
    test.target_options
        .insert("data_dir".into(), Value::String(dir.to_string()));
    test
}

pub fn local_nodes(test: &Test) -> Vec<Node> {
    test.nodes
        .iter()
        .map(|name| Node {
            name: name.clone(),
            remote: Arc::new(LocalRemote::new(name)),
        })
        .collect()
}

/// `setup` on every node at once, as the runner does; the first error, if any.
pub async fn setup_all(db: &Arc<dyn Db>, test: &Test, nodes: &[Node]) -> Result<(), String> {
    let mut setups = tokio::task::JoinSet::new();
    for node in nodes {
        let (db, test, node) = (db.clone(), test.clone(), node.clone());
        setups.spawn(async move {
            db.setup(&test, &node)
                .await
                .map_err(|e| format!("setup {}: {e}", node.name))
        });
    }
    let mut first = Ok(());
    while let Some(result) = setups.join_next().await {
        if let Err(e) = result.unwrap() {
            first = first.and(Err(e));
        }
    }
    first
}

/// `teardown` on every node at once; the first error, if any.
pub async fn teardown_all(db: &Arc<dyn Db>, test: &Test, nodes: &[Node]) -> Result<(), String> {
    let mut teardowns = tokio::task::JoinSet::new();
    for node in nodes {
        let (db, test, node) = (db.clone(), test.clone(), node.clone());
        teardowns.spawn(async move {
            db.teardown(&test, &node)
                .await
                .map_err(|e| format!("teardown {}: {e}", node.name))
        });
    }
    let mut first = Ok(());
    while let Some(result) = teardowns.join_next().await {
        if let Err(e) = result.unwrap() {
            first = first.and(Err(e));
        }
    }
    first
}

/// One operation through `client`.
pub async fn invoke(
    client: &mut Box<dyn Client>,
    test: &Test,
    f: &str,
    key: u64,
    value: Value,
) -> Completion {
    let op = Invocation {
        process: 0,
        f: f.to_string(),
        key: Some(Value::from(key)),
        value,
    };
    client.invoke(test, &op).await
}

/// Calls `attempt` until it returns `Some`, at most for `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {limit:?}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The state letter of `/proc/<pid>/stat` (`S`, `R`, `T` = stopped, ...), if it lives. A
/// zombie (`Z`: dead, not yet reaped by its parent, init) counts as gone.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
    (!matches!(state, 'Z' | 'X')).then_some(state)
}

/// Reads `key` through `client` until the read succeeds with a value `accept`s, at most for
/// `limit`; returns that value.
pub async fn read_until(
    what: &str,
    client: &mut Box<dyn Client>,
    test: &Test,
    key: u64,
    accept: impl Fn(&Value) -> bool,
    limit: Duration,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let last = match invoke(client, test, "read", key, Value::Null).await {
            Completion::Ok(value) if accept(&value) => return value,
            other => other,
        };
        if Instant::now() >= deadline {
            panic!("{what}: not within {limit:?}; last read: {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (at most 2 s) until `pid` is in state `state`: a signal is delivered
/// asynchronously, so a stopped process may still show `R` just after `kill -STOP`.
pub async fn await_state(pid: u32, state: Option<char>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while process_state(pid) != state {
        assert!(
            Instant::now() < deadline,
            "pid {pid} is {:?}, not {state:?}",
            process_state(pid)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Gives each node of `test` an address of its own in 127.88.X.0/24 (X from this process,
/// so concurrent test runs do not collide): remote mode, with the servers' standard ports,
/// yet only loopback traffic.
pub fn with_loopback_addresses(test: &mut Test) {
    let subnet = std::process::id() % 250;
    test.addresses = test
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node.clone(), format!("127.88.{subnet}.{}", 11 + i)))
        .collect();
}
