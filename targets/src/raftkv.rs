//! `raftkv`: faultline's own Raft key-value store, as N local processes on loopback.
//!
//! Each node is a process running `faultline raftkv-server ...` (the faultline binary runs the
//! raftkv server in-process, so nothing else needs building). [`RaftkvDb`] picks free loopback
//! ports, creates each node's data directory under `data_dir` (the run's store directory),
//! starts the nodes and waits (bounded) until each knows a leader. It can kill a node
//! (SIGKILL, restart on the same data directory) and pause it (SIGSTOP / SIGCONT), always by
//! the pid it started, through the node's [`faultline_core::Remote`].
//!
//! [`RaftkvClient`] speaks HTTP/1.1 to one node over a keep-alive TCP connection: read ->
//! `GET /kv/{key}`, write -> `PUT`, cas -> `POST /kv/{key}/cas`. 200 is `ok`; an error whose
//! body says `"definite": true` is `fail`; anything else (an indefinite error, a connection
//! lost after the request was sent, a reply that cannot be read) is `info`. A connection
//! refused before anything was sent is `fail`: the node never saw the request.
//!
//! Options (`test.target_options`): `nodes` (default 5), `data_dir` (default a directory
//! under the system temp dir), `program` (default this executable) with the arguments
//! `raftkv-server ...`.
//!
//! Design decision: the db spawns the node processes itself (it must own their pids to kill
//! and pause exactly them), and sends signals through the node's `Remote`; a remote host
//! target would start them with `Remote::exec` instead.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use faultline_core::remote::Signal;
use faultline_core::{
    BoxFuture, Client, Completion, Db, HarnessError, Invocation, Kill, Node, Pause, Test,
};

use crate::http::{Connection, RequestError, Response};
use crate::local::free_port;
use crate::{Target, TargetError};

/// raftkv's bug switches (`raftkv --help`).
pub const BUGS: [&str; 6] = [
    "stale-read",
    "lease-read",
    "no-fsync",
    "forget-vote",
    "old-term-commit",
    "snapshot-isolation-txn",
];
/// Nodes when `--nodes` is not given.
pub const DEFAULT_NODES: usize = 5;
/// The most nodes a local cluster may have.
pub const MAX_NODES: usize = 15;
/// How long a node's setup (or restart) waits for it to know a leader.
pub const READY_TIMEOUT_MS: u64 = 10_000;
/// How often readiness is polled.
const READY_POLL_MS: u64 = 50;
/// How long a killed node's process may take to be reaped.
const REAP_TIMEOUT_MS: u64 = 5_000;

/// Loopback addresses of one node.
#[derive(Debug, Clone, Copy)]
struct Ports {
    id: u64,
    peer: SocketAddr,
    client: SocketAddr,
}

/// A node process this db started.
#[derive(Debug)]
struct Running {
    child: tokio::process::Child,
    pid: u32,
}

/// The raftkv db: N local processes.
#[derive(Debug)]
pub struct RaftkvDb {
    program: PathBuf,
    names: Vec<String>,
    data_dir: PathBuf,
    bugs: Vec<String>,
    /// How long setup waits for a node to know a leader.
    ready_timeout: Duration,
    /// Chosen at the first setup, kept across restarts (static membership).
    ports: Mutex<Option<BTreeMap<String, Ports>>>,
    running: Mutex<BTreeMap<String, Running>>,
    /// Every pid ever started, for tests that check nothing is left behind.
    started_pids: Mutex<BTreeSet<u32>>,
}

fn db_error(node: &str, phase: &'static str, why: impl Into<String>) -> HarnessError {
    HarnessError::Db {
        node: node.to_string(),
        phase,
        why: why.into(),
    }
}

impl RaftkvDb {
    pub fn new(program: PathBuf, names: Vec<String>, data_dir: PathBuf, bugs: Vec<String>) -> Self {
        RaftkvDb {
            program,
            names,
            data_dir,
            bugs,
            ready_timeout: Duration::from_millis(READY_TIMEOUT_MS),
            ports: Mutex::new(None),
            running: Mutex::new(BTreeMap::new()),
            started_pids: Mutex::new(BTreeSet::new()),
        }
    }

    /// Waits at most `timeout` for each node to be ready (default [`READY_TIMEOUT_MS`]).
    pub fn with_ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Every pid this db has started.
    pub fn started_pids(&self) -> Vec<u32> {
        self.started_pids
            .lock()
            .expect("pids lock")
            .iter()
            .copied()
            .collect()
    }

    /// The pid of `node`'s running process, if any.
    pub fn pid(&self, node: &str) -> Option<u32> {
        self.running
            .lock()
            .expect("running lock")
            .get(node)
            .map(|r| r.pid)
    }

    /// The client address of `node`, once ports are chosen.
    pub fn client_addr(&self, node: &str) -> Option<SocketAddr> {
        self.ports
            .lock()
            .expect("ports lock")
            .as_ref()
            .and_then(|p| p.get(node))
            .map(|p| p.client)
    }

    fn ports(&self) -> Result<BTreeMap<String, Ports>, HarnessError> {
        let mut slot = self.ports.lock().expect("ports lock");
        if let Some(ports) = slot.as_ref() {
            return Ok(ports.clone());
        }
        let mut ports = BTreeMap::new();
        for (i, name) in self.names.iter().enumerate() {
            let pick = || free_port().map_err(|e| db_error(name, "setup", e.to_string()));
            ports.insert(
                name.clone(),
                Ports {
                    id: i as u64 + 1,
                    peer: pick()?,
                    client: pick()?,
                },
            );
        }
        *slot = Some(ports.clone());
        Ok(ports)
    }

    fn node_dir(&self, node: &str) -> PathBuf {
        self.data_dir.join(node)
    }

    /// `node`'s stderr log.
    pub fn log_path(&self, node: &str) -> PathBuf {
        self.data_dir.join(format!("{node}.log"))
    }

    /// Starts `node`'s process unless it is running. Does not wait for readiness.
    fn spawn(&self, node: &str, phase: &'static str) -> Result<(), HarnessError> {
        let ports = self.ports()?;
        let own = ports
            .get(node)
            .ok_or_else(|| db_error(node, phase, "not a node of this cluster"))?;
        let mut running = self.running.lock().expect("running lock");
        if let Some(r) = running.get_mut(node) {
            match r.child.try_wait() {
                Ok(None) => return Ok(()),
                // Exited by itself: start it again.
                Ok(Some(_)) | Err(_) => {
                    running.remove(node);
                }
            }
        }
        let dir = self.node_dir(node);
        std::fs::create_dir_all(&dir)
            .map_err(|e| db_error(node, phase, format!("creating {}: {e}", dir.display())))?;
        let log_path = self.log_path(node);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| db_error(node, phase, format!("opening {}: {e}", log_path.display())))?;
        let peers: Vec<String> = ports
            .values()
            .map(|p| format!("{}={}", p.id, p.peer))
            .collect();
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg("raftkv-server")
            .arg("--id")
            .arg(own.id.to_string())
            .arg("--peers")
            .arg(peers.join(","))
            .arg("--listen-client")
            .arg(own.client.to_string())
            .arg("--data-dir")
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            // A harness that dies leaves no node behind (best effort: a SIGKILLed harness can).
            .kill_on_drop(true);
        if !self.bugs.is_empty() {
            command.arg("--bug").arg(self.bugs.join(","));
        }
        let child = command.spawn().map_err(|e| {
            db_error(
                node,
                phase,
                format!("starting {}: {e}", self.program.display()),
            )
        })?;
        let pid = child
            .id()
            .ok_or_else(|| db_error(node, phase, "the node exited at once"))?;
        tracing::info!(node, pid, client = %own.client, "started raftkv node");
        self.started_pids.lock().expect("pids lock").insert(pid);
        running.insert(node.to_string(), Running { child, pid });
        Ok(())
    }

    /// Waits until `node` answers `/status` with a known leader.
    async fn await_ready(&self, node: &str, phase: &'static str) -> Result<(), HarnessError> {
        let addr = self
            .client_addr(node)
            .ok_or_else(|| db_error(node, phase, "no ports chosen"))?;
        let deadline = Instant::now() + self.ready_timeout;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some(Some(status)) = self
                .running
                .lock()
                .expect("running lock")
                .get_mut(node)
                .map(|r| r.child.try_wait().ok().flatten())
            {
                return Err(db_error(
                    node,
                    phase,
                    format!(
                        "the node exited with {status} (see {})",
                        self.log_path(node).display()
                    ),
                ));
            }
            let poll =
                tokio::time::timeout(Duration::from_millis(1_000), http_get_status(addr)).await;
            match poll {
                Ok(Ok(status)) if !status["leader"].is_null() => return Ok(()),
                Ok(Ok(status)) => last = format!("no leader yet: {status}"),
                Ok(Err(e)) => last = e,
                Err(_) => last = "/status timed out".into(),
            }
            tokio::time::sleep(Duration::from_millis(READY_POLL_MS)).await;
        }
        Err(db_error(
            node,
            phase,
            format!("not ready after {:?}: {last}", self.ready_timeout),
        ))
    }

    /// SIGCONT (a stopped process cannot die of SIGKILL until continued on some systems, and
    /// must not stay stopped), SIGKILL, and reap. Idempotent.
    async fn stop_process(&self, node: &Node, phase: &'static str) -> Result<(), HarnessError> {
        let taken = self
            .running
            .lock()
            .expect("running lock")
            .remove(&node.name);
        let Some(mut running) = taken else {
            return Ok(());
        };
        node.remote.signal(running.pid, Signal::Cont).await?;
        node.remote.signal(running.pid, Signal::Kill).await?;
        match tokio::time::timeout(Duration::from_millis(REAP_TIMEOUT_MS), running.child.wait())
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(db_error(&node.name, phase, format!("reaping: {e}"))),
            Err(_) => Err(db_error(
                &node.name,
                phase,
                format!("pid {} still running after SIGKILL", running.pid),
            )),
        }
    }
}

impl Db for RaftkvDb {
    fn setup<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.spawn(&node.name, "setup")?;
            self.await_ready(&node.name, "setup").await
        })
    }

    fn teardown<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(self.stop_process(node, "teardown"))
    }

    fn as_kill(&self) -> Option<&dyn Kill> {
        Some(self)
    }

    fn as_pause(&self) -> Option<&dyn Pause> {
        Some(self)
    }

    fn log_files(&self, _test: &Test, node: &Node) -> Vec<PathBuf> {
        vec![self.log_path(&node.name)]
    }
}

impl Kill for RaftkvDb {
    fn kill<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(self.stop_process(node, "kill"))
    }

    fn start<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        // No readiness wait: a restarted node rejoins in its own time, and a restart during a
        // fault (no quorum) must not block the nemesis.
        Box::pin(async move { self.spawn(&node.name, "start") })
    }
}

impl Pause for RaftkvDb {
    fn pause<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(self.signal(node, Signal::Stop))
    }

    fn resume<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(self.signal(node, Signal::Cont))
    }
}

impl RaftkvDb {
    /// Signals the node's own process, if it is running (never anything else on the host).
    async fn signal(&self, node: &Node, signal: Signal) -> Result<(), HarnessError> {
        match self.pid(&node.name) {
            Some(pid) => node.remote.signal(pid, signal).await,
            None => Ok(()),
        }
    }
}

async fn http_get_status(addr: SocketAddr) -> Result<Value, String> {
    let mut connection = Connection::connect(addr)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let response = connection
        .request("GET", "/status", None)
        .await
        .map_err(|e| format!("{e:?}"))?;
    if response.status != 200 {
        return Err(format!("/status answered {}", response.status));
    }
    Ok(response.body)
}

/// The key of an operation as a path segment: its JSON text (strings unquoted),
/// percent-encoded.
fn key_path(key: Option<&Value>) -> String {
    let text = match key {
        None | Some(Value::Null) => "_".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let mut path = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path
}

/// What a non-200 answer means: `definite: true` = it did not happen.
fn error_completion(response: &Response) -> Completion {
    let error = response
        .body
        .get("error")
        .cloned()
        .unwrap_or_else(|| json!(format!("http-{}", response.status)));
    if response.body.get("definite") == Some(&Value::Bool(true)) {
        Completion::Fail(error)
    } else {
        Completion::Info(error)
    }
}

/// A client of one raftkv node (a template until opened).
#[derive(Debug)]
pub struct RaftkvClient {
    /// Node name -> client address; shared with the db, known after setup.
    db: std::sync::Arc<RaftkvDb>,
    addr: Option<SocketAddr>,
    connection: Option<Connection>,
}

impl RaftkvClient {
    pub fn new(db: std::sync::Arc<RaftkvDb>) -> RaftkvClient {
        RaftkvClient {
            db,
            addr: None,
            connection: None,
        }
    }

    async fn call(&mut self, op: &Invocation) -> Completion {
        let key = key_path(op.key.as_ref());
        let (method, path, body) = match op.f.as_str() {
            "read" => ("GET", format!("/kv/{key}"), None),
            "write" => ("PUT", format!("/kv/{key}"), Some(op.value.clone())),
            "cas" => match op.value.as_array().map(Vec::as_slice) {
                Some([expected, new]) => (
                    "POST",
                    format!("/kv/{key}/cas"),
                    Some(json!({"expected": expected, "new": new})),
                ),
                _ => return Completion::fail("bad-request: cas takes [expected, new]"),
            },
            other => return Completion::fail(format!("unsupported: {other}")),
        };
        let Some(addr) = self.addr else {
            return Completion::fail("not-opened");
        };
        if self.connection.is_none() {
            match Connection::connect(addr).await {
                Ok(c) => self.connection = Some(c),
                // Nothing was sent: the node never saw this request.
                Err(RequestError::Connect(e)) | Err(RequestError::Lost(e)) => {
                    return Completion::fail(json!(format!("connect: {e}")))
                }
            }
        }
        let connection = self.connection.as_mut().expect("connected above");
        match connection.request(method, &path, body.as_ref()).await {
            Ok(response) if response.status == 200 => match op.f.as_str() {
                "read" => {
                    Completion::Ok(response.body.get("value").cloned().unwrap_or(Value::Null))
                }
                _ => Completion::Ok(op.value.clone()),
            },
            Ok(response) => error_completion(&response),
            // The request may have been sent: its outcome is unknown.
            Err(RequestError::Lost(e)) | Err(RequestError::Connect(e)) => {
                self.connection = None;
                Completion::info(json!(format!("connection-lost: {e}")))
            }
        }
    }
}

impl Client for RaftkvClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async move {
            // No connection yet: a node that is down (killed by the nemesis) is a failed
            // operation at invoke time, not a harness error.
            let addr = self
                .db
                .client_addr(node)
                .ok_or_else(|| HarnessError::Client {
                    node: node.to_string(),
                    why: "the raftkv cluster is not set up".into(),
                })?;
            Ok(Box::new(RaftkvClient {
                db: self.db.clone(),
                addr: Some(addr),
                connection: None,
            }) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(self.call(op))
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.connection = None;
            Ok(())
        })
    }
}

/// The raftkv target for `test`.
pub fn target(test: &Test) -> Result<Target, TargetError> {
    if test.workload != "register" {
        return Err(TargetError::UnsupportedWorkload {
            target: "raftkv".into(),
            workload: test.workload.clone(),
        });
    }
    for bug in &test.bugs {
        if !BUGS.contains(&bug.as_str()) {
            return Err(TargetError::UnknownBug {
                target: "raftkv".into(),
                bug: bug.clone(),
                known: BUGS.join(", "),
            });
        }
    }
    let bad = |option: &str, why: String| TargetError::BadOption {
        target: "raftkv".into(),
        option: option.into(),
        why,
    };
    let mut nodes = DEFAULT_NODES;
    let mut data_dir = std::env::temp_dir().join(format!(
        "faultline-raftkv-{}-{}",
        std::process::id(),
        test.seed
    ));
    let mut program = None;
    for (name, value) in &test.target_options {
        match name.as_str() {
            "nodes" => {
                nodes = value
                    .as_u64()
                    .filter(|n| (1..=MAX_NODES as u64).contains(n))
                    .ok_or_else(|| bad(name, format!("expected 1 to {MAX_NODES}, got {value}")))?
                    as usize;
            }
            "data_dir" => {
                data_dir = PathBuf::from(
                    value
                        .as_str()
                        .ok_or_else(|| bad(name, format!("expected a path, got {value}")))?,
                )
            }
            "program" => {
                program =
                    Some(PathBuf::from(value.as_str().ok_or_else(|| {
                        bad(name, format!("expected a path, got {value}"))
                    })?))
            }
            _ => {
                return Err(bad(
                    name,
                    "unknown option; known: nodes, data_dir, program".into(),
                ))
            }
        }
    }
    let program = match program {
        Some(p) => p,
        None => std::env::current_exe()
            .map_err(|e| bad("program", format!("cannot find this executable: {e}")))?,
    };
    let names: Vec<String> = (1..=nodes).map(|i| format!("n{i}")).collect();
    let db = std::sync::Arc::new(RaftkvDb::new(
        program,
        names.clone(),
        data_dir,
        test.bugs.clone(),
    ));
    Ok(Target {
        db: db.clone(),
        client: std::sync::Arc::new(RaftkvClient::new(db)),
        nodes: names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn keys_are_percent_encoded_path_segments() {
        assert_eq!(key_path(Some(&json!(3))), "3");
        assert_eq!(key_path(Some(&json!("a/b c"))), "a%2Fb%20c");
        assert_eq!(key_path(None), "_");
    }

    #[test]
    fn definite_errors_fail_and_the_rest_are_info() {
        let response = |status, body| Response { status, body };
        assert_eq!(
            error_completion(&response(
                409,
                json!({"ok":false,"error":"compare-failed","definite":true})
            )),
            Completion::fail("compare-failed")
        );
        assert_eq!(
            error_completion(&response(
                504,
                json!({"ok":false,"error":"timeout","definite":false})
            )),
            Completion::info("timeout")
        );
        assert_eq!(
            error_completion(&response(502, Value::Null)),
            Completion::info("http-502")
        );
    }

    /// A node that never becomes ready (a script that ignores its arguments and sleeps): setup
    /// fails within its bound, and teardown still kills the process, twice over.
    #[test]
    fn teardown_kills_a_node_whose_setup_failed() {
        let dir = std::env::temp_dir().join(format!("faultline-raftkv-db-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("never-ready.sh");
        std::fs::write(&script, "#!/bin/sh\nexec sleep 60\n").unwrap();
        let chmod = std::process::Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .unwrap();
        assert!(chmod.success());
        let db = RaftkvDb::new(script, vec!["n1".into()], dir.join("nodes"), Vec::new())
            .with_ready_timeout(Duration::from_millis(300));
        let test = Test::example("raftkv", "register", 1);
        let node = Node {
            name: "n1".into(),
            remote: std::sync::Arc::new(crate::local::LocalRemote::new("n1")),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let err = db.setup(&test, &node).await.unwrap_err().to_string();
            assert!(err.contains("not ready"), "{err}");
            let pid = db.pid("n1").expect("the process was started");
            assert!(Path::new(&format!("/proc/{pid}")).exists());
            db.as_pause().unwrap().pause(&test, &node).await.unwrap();
            db.teardown(&test, &node).await.unwrap();
            db.teardown(&test, &node).await.unwrap();
            assert!(db.pid("n1").is_none());
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "pid {pid} survived"
            );
            // Resume and kill of a node that is not running are no-ops.
            db.as_pause().unwrap().resume(&test, &node).await.unwrap();
            db.as_kill().unwrap().kill(&test, &node).await.unwrap();
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn options_and_bugs_are_checked() {
        let mut test = Test::example("raftkv", "register", 1);
        test.target_options.insert("nodes".into(), json!(3));
        let target = target(&test).unwrap_or_else(|_| panic!("builds"));
        assert_eq!(target.nodes, vec!["n1", "n2", "n3"]);
        test.bugs = vec!["nope".into()];
        assert!(matches!(
            super::target(&test),
            Err(TargetError::UnknownBug { .. })
        ));
    }
}
