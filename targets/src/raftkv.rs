//! `raftkv`: faultline's own Raft key-value store as a target, on local processes or on
//! remote hosts.
//!
//! Every node runs `faultline raftkv-server ...` (the faultline binary runs the raftkv server
//! in-process, so nothing else needs building). [`RaftkvDb`] has two modes, chosen by
//! `test.addresses`:
//!
//! - **Local** (no addresses, the default `faultline test`): N child processes of the harness
//!   on loopback, no root. Each node's data directory and log live under `data_dir` (the
//!   run's store directory). Nodes reach each other only through a [`FaultProxy`]: node `i`'s
//!   `--peers` maps its own id to its real peer address and every other id `j` to the proxy's
//!   port for the link `i -> j`, so [`Db::as_net`] can cut, slow and drop each link on its
//!   own (processes sharing one address cannot be told apart by iptables). Nodes are started
//!   with `--exit-with-parent`, so none outlives a harness killed with SIGKILL.
//! - **Remote** (`test.addresses`: node name -> IP, for lab namespaces and VMs): everything
//!   through the node's [`faultline_core::Remote`]. The faultline binary is uploaded once
//!   per build to `<remote_dir>/bin/` (kept across runs), each node's files go to a
//!   directory unique to the test and the node (lab hosts share one file system), and the
//!   node runs as a [`Daemon`] with `--peers id=IP:peer_port,...` and `--listen-client
//!   IP:client_port`. `as_net` is `None`: the runner cuts links with iptables.
//!
//! In both modes setup waits (bounded) until the node knows a leader; kill is SIGKILL and
//! pause SIGSTOP of the node's own pid; [`Db::as_primary`] asks each node's `/status`; and when
//! the nemesis includes `clock`, nodes run under libfaketime with a per-node offset file that
//! [`Db::as_clock`] rewrites (see [`faketime_offset`]).
//!
//! [`RaftkvClient`] speaks HTTP/1.1 to one node over a keep-alive TCP connection: read ->
//! `GET /kv/{key}`, write -> `PUT`, cas -> `POST /kv/{key}/cas`; a list-append or rw-register
//! transaction -> one `POST /txn` (keys sent as their text, the answer's reads filled into the
//! invocation's micro-ops); the bank's read -> `POST /txn` reading every account, a transfer
//! -> a read-only `POST /txn` of both balances, then a `POST /txn` of two `cas` micro-ops that
//! commits both new balances only if neither changed since (`compare-failed` otherwise). 200
//! is `ok`; an error whose body says `"definite": true` is `fail`; anything else (an
//! indefinite error, a connection lost after the request was sent, a reply that cannot be
//! read) is `info`, except for a transaction of reads only, which changes nothing and so is
//! a `fail`. A connection refused before anything was sent is `fail`: the node never saw the
//! request.
//!
//! Options (`test.target_options`): `nodes` (local: how many, default 5; remote: must match
//! the addresses), `program` (default this executable) run as `program raftkv-server ...`;
//! local: `data_dir` (default a directory under the system temp dir); remote: `peer_port`
//! (default 7001), `client_port` (default 8001), `remote_dir` (default
//! `/tmp/faultline-raftkv`; the node's files go under `<remote_dir>/<run>/<node>/`).
//!
//! ```
//! use faultline_core::Test;
//! let mut test = Test::example("raftkv", "register", 1);
//! test.target_options.insert("nodes".into(), serde_json::json!(3));
//! let target = faultline_targets::raftkv::target(&test).unwrap();
//! assert_eq!(target.nodes, ["n1", "n2", "n3"]);
//! assert!(target.db.as_net().is_some(), "local nodes are wired through the fault proxy");
//! assert!(target.db.as_clock().is_none(), "no libfaketime without the clock nemesis");
//! // Remote: the nodes of `test.nodes` (or, when it is empty, every address).
//! test.nodes = vec!["n1".into(), "n2".into(), "n3".into()];
//! test.addresses = [("n1", "10.88.0.11"), ("n2", "10.88.0.12"), ("n3", "10.88.0.13")]
//!     .into_iter().map(|(n, ip)| (n.to_string(), ip.to_string())).collect();
//! let target = faultline_targets::raftkv::target(&test).unwrap();
//! assert!(target.db.as_net().is_none(), "remote hosts are partitioned with iptables");
//! ```
//!
//! Design decisions: local nodes are the harness's own children (it must own their pids,
//! and a child can watch its parent), while remote nodes are daemons found again by their
//! pid file, because the harness is not their parent. Clock skew fakes only the wall clock
//! (`FAKETIME_DONT_FAKE_MONOTONIC=1`): a stepped system clock does not move
//! `CLOCK_MONOTONIC` either, and a faked monotonic clock would stall or fire every timer of
//! the node's runtime at once (a pause, not a skew).

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use faultline_core::election::{Candidates, ElectionSpec, LEADER};
use faultline_core::lock::LockSpec;
use faultline_core::remote::{Command, Signal};
use faultline_core::txn::{parse_txn, txn_json, Bank, MicroOp, MopKind, Transfer};
use faultline_core::unique_ids::GENERATE;
use faultline_core::{
    BoxFuture, Client, ClockSkew, Completion, Db, HarnessError, Invocation, Kill, LogProbe,
    LogStatus, Net, Node, Pause, Primary, Remote, Test,
};

use crate::daemon::{self, Daemon};
use crate::http::{Connection, RequestError, Response};
use crate::local::free_port;
use crate::lock::Holder;
use crate::proxy::FaultProxy;
use crate::raftkv_election;
use crate::raftkv_lock::RaftkvLocks;
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
/// The peer port of a remote node, unless the `peer_port` option says otherwise.
pub const DEFAULT_PEER_PORT: u16 = 7001;
/// The client port of a remote node, unless the `client_port` option says otherwise.
pub const DEFAULT_CLIENT_PORT: u16 = 8001;
/// Where a remote node's files go, unless the `remote_dir` option says otherwise.
pub const DEFAULT_REMOTE_DIR: &str = "/tmp/faultline-raftkv";
/// libfaketime's preload library (Debian's `libfaketime`), locally and on remote nodes.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// How often readiness is polled.
const READY_POLL_MS: u64 = 50;
/// How long one `/status` request may take.
const STATUS_TIMEOUT_MS: u64 = 1_000;
/// A node's log status is asked for while a fault waits on a step of the protocol: a paused
/// node must not hold the wait up long.
const LOG_STATUS_TIMEOUT_MS: u64 = 200;
/// `raftkv-server` flags under the `figure-8` nemesis: one entry per AppendEntries (so a new
/// leader ships the entries a follower lacks one message at a time, ahead of its no-op, as in
/// Raft's Figure 8); a request timeout long enough for a write to stay pending at its leader
/// across the fault's three elections; elections of 400-800 ms, longer than the delayed
/// round trips the fault builds.
pub const FIGURE_8_SERVER_FLAGS: [&str; 6] = [
    "--max-append-entries",
    "1",
    "--request-timeout-ms",
    "15000",
    "--election-ticks",
    "40",
];
/// How long a killed node's process may take to be reaped.
const REAP_TIMEOUT_MS: u64 = 5_000;

/// Loopback addresses of one local node.
#[derive(Debug, Clone)]
struct LocalPorts {
    id: u64,
    client: SocketAddr,
    /// Its `--peers`: itself at `peer`, every other node through the proxy.
    peers: String,
}

/// A local node process this db started.
#[derive(Debug)]
struct Running {
    child: tokio::process::Child,
    pid: u32,
}

/// Local mode: child processes on loopback, wired through the fault proxy.
#[derive(Debug)]
struct LocalNodes {
    data_dir: PathBuf,
    proxy: FaultProxy,
    /// Chosen at the first setup, kept across restarts (static membership).
    ports: Mutex<Option<BTreeMap<String, LocalPorts>>>,
    running: Mutex<BTreeMap<String, Running>>,
}

/// One node on a remote host.
#[derive(Debug, Clone)]
struct RemoteNode {
    id: u64,
    /// `IP:client_port`, where clients and readiness probes connect.
    client: SocketAddr,
    /// `<remote_dir>/<run>/<node>` on the node.
    dir: String,
}

/// Remote mode: daemons on other hosts, reached through each node's `Remote`.
#[derive(Debug)]
struct RemoteNodes {
    nodes: BTreeMap<String, RemoteNode>,
    /// Every node's `--peers`: `id=IP:peer_port,...`.
    peers: String,
    /// Where the faultline binary is installed on each node: `<remote_dir>/bin/faultline-<size
    /// and mtime of this machine's binary>`, kept across runs (as Jepsen keeps installed
    /// packages), so a host uploads each build once — and lab hosts, which share one file
    /// system, once between them.
    binary: String,
    /// One node installs the binary at a time, so the others find it in place.
    install: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
enum Mode {
    Local(LocalNodes),
    Remote(RemoteNodes),
}

/// The raftkv db: N nodes, local processes or daemons on remote hosts.
#[derive(Debug)]
pub struct RaftkvDb {
    program: PathBuf,
    names: Vec<String>,
    bugs: Vec<String>,
    /// Nodes run under libfaketime (the clock nemesis is on).
    clock: bool,
    /// Extra `raftkv-server` flags ([`FIGURE_8_SERVER_FLAGS`] under the `figure-8` nemesis).
    server_flags: Vec<String>,
    /// How long setup waits for a node to know a leader.
    ready_timeout: Duration,
    mode: Mode,
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

/// A libfaketime offset file's contents for `offset_ms`: `+1.500s`, `-0.250s`, `+0.000s`.
/// (libfaketime 0.9.10 reads fractional seconds; a bare `ms` suffix would mean minutes.)
pub fn faketime_offset(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let abs = offset_ms.unsigned_abs();
    format!("{sign}{}.{:03}s", abs / 1_000, abs % 1_000)
}

/// The environment that runs a node under libfaketime with its offset in `offset_file`.
fn faketime_env(offset_file: &str) -> [(&'static str, String); 4] {
    [
        ("LD_PRELOAD", LIBFAKETIME.to_string()),
        ("FAKETIME_TIMESTAMP_FILE", offset_file.to_string()),
        // Read the file at every clock call, so a new offset applies at once.
        ("FAKETIME_NO_CACHE", "1".to_string()),
        // Only the wall clock moves (see the module's design decisions).
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ]
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().to_string()
}

impl RaftkvDb {
    /// Local mode: `names` as child processes of `program`, their files under `data_dir`,
    /// their peer links through a fault proxy seeded with `proxy_seed`.
    pub fn local(
        program: PathBuf,
        names: Vec<String>,
        data_dir: PathBuf,
        bugs: Vec<String>,
        proxy_seed: u64,
    ) -> Self {
        RaftkvDb {
            program,
            bugs,
            clock: false,
            server_flags: Vec::new(),
            ready_timeout: Duration::from_millis(READY_TIMEOUT_MS),
            mode: Mode::Local(LocalNodes {
                data_dir,
                proxy: FaultProxy::new(names.clone(), proxy_seed),
                ports: Mutex::new(None),
                running: Mutex::new(BTreeMap::new()),
            }),
            names,
            started_pids: Mutex::new(BTreeSet::new()),
        }
    }

    /// Remote mode: one node per entry of `hosts` (name -> IP or host name), in that order
    /// (ids 1, 2, ...), listening on `peer_port` and `client_port`, with its files under
    /// `<run_dir>/<node>` on the node. `program` is this machine's faultline binary, uploaded
    /// at setup.
    pub fn remote(
        program: PathBuf,
        hosts: &BTreeMap<String, String>,
        ports: (u16, u16),
        run_dir: &str,
        bugs: Vec<String>,
    ) -> Result<Self, String> {
        let (peer_port, client_port) = ports;
        let mut nodes = BTreeMap::new();
        let mut peers = Vec::new();
        for (i, (name, host)) in hosts.iter().enumerate() {
            let id = i as u64 + 1;
            let client = (host.as_str(), client_port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut addrs| addrs.next())
                .ok_or_else(|| format!("{name}'s address {host:?} does not resolve"))?;
            peers.push(format!("{id}={host}:{peer_port}"));
            nodes.insert(
                name.clone(),
                RemoteNode {
                    id,
                    client,
                    dir: format!("{}/{name}", run_dir.trim_end_matches('/')),
                },
            );
        }
        let metadata = std::fs::metadata(&program)
            .map_err(|e| format!("the faultline binary {}: {e}", program.display()))?;
        let built = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let run_dir = run_dir.trim_end_matches('/');
        let remote_dir = run_dir.rsplit_once('/').map_or(".", |(parent, _)| parent);
        let binary = format!("{remote_dir}/bin/faultline-{:x}-{built:x}", metadata.len());
        Ok(RaftkvDb {
            program,
            names: hosts.keys().cloned().collect(),
            bugs,
            clock: false,
            server_flags: Vec::new(),
            ready_timeout: Duration::from_millis(READY_TIMEOUT_MS),
            mode: Mode::Remote(RemoteNodes {
                nodes,
                peers: peers.join(","),
                binary,
                install: tokio::sync::Mutex::new(()),
            }),
            started_pids: Mutex::new(BTreeSet::new()),
        })
    }

    /// Runs every node under libfaketime, so that [`Db::as_clock`] can move its clock.
    pub fn with_clock(mut self, clock: bool) -> Self {
        self.clock = clock;
        self
    }

    /// Starts every node with these extra `raftkv-server` flags.
    pub fn with_server_flags(mut self, flags: &[&str]) -> Self {
        self.server_flags = flags.iter().map(|f| f.to_string()).collect();
        self
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

    /// The pid of `node`'s running local process, if any (local mode; remote nodes are found
    /// by their pid file on the node).
    pub fn pid(&self, node: &str) -> Option<u32> {
        match &self.mode {
            Mode::Local(local) => local
                .running
                .lock()
                .expect("running lock")
                .get(node)
                .map(|r| r.pid),
            Mode::Remote(_) => None,
        }
    }

    /// The client address of `node`: in local mode once ports are chosen (first setup).
    pub fn client_addr(&self, node: &str) -> Option<SocketAddr> {
        match &self.mode {
            Mode::Local(local) => local
                .ports
                .lock()
                .expect("ports lock")
                .as_ref()
                .and_then(|p| p.get(node))
                .map(|p| p.client),
            Mode::Remote(remote) => remote.nodes.get(node).map(|n| n.client),
        }
    }

    /// `node`'s log: on this machine in local mode, on the node in remote mode. It survives
    /// teardown, so it can be collected before or after.
    pub fn log_path(&self, node: &str) -> PathBuf {
        match &self.mode {
            Mode::Local(local) => local.data_dir.join(format!("{node}.log")),
            Mode::Remote(remote) => PathBuf::from(format!(
                "{}/raftkv.log",
                remote
                    .nodes
                    .get(node)
                    .map(|n| n.dir.as_str())
                    .unwrap_or("/nonexistent")
            )),
        }
    }

    /// The libfaketime offset file of `node` (on the node).
    pub fn clock_path(&self, node: &str) -> String {
        match &self.mode {
            Mode::Local(local) => path_text(&local.data_dir.join(format!("{node}.faketime"))),
            Mode::Remote(remote) => format!(
                "{}/faketime",
                remote
                    .nodes
                    .get(node)
                    .map(|n| n.dir.as_str())
                    .unwrap_or("/nonexistent")
            ),
        }
    }

    /// The fault proxy between local nodes (`None` in remote mode).
    pub fn proxy(&self) -> Option<&FaultProxy> {
        match &self.mode {
            Mode::Local(local) => Some(&local.proxy),
            Mode::Remote(_) => None,
        }
    }

    fn check_node(&self, node: &str, phase: &'static str) -> Result<(), HarnessError> {
        if self.names.iter().any(|n| n == node) {
            Ok(())
        } else {
            Err(db_error(node, phase, "not a node of this cluster"))
        }
    }

    /// Writes `offset_ms` to `node`'s offset file, atomically (a reader that re-reads the
    /// file at every clock call must never see it empty).
    async fn write_offset(&self, node: &Node, offset_ms: i64) -> Result<(), HarnessError> {
        let path = self.clock_path(&node.name);
        let temp = format!("{path}.tmp");
        let remote = node.remote.as_ref();
        daemon::write_file(remote, &temp, faketime_offset(offset_ms).as_bytes()).await?;
        daemon::run(remote, &Command::new("mv", &["-f", &temp, &path])).await?;
        Ok(())
    }

    /// libfaketime leaves its shared memory behind when a process dies by a signal: remove
    /// it for `pid`.
    async fn remove_faketime_shm(&self, remote: &dyn Remote, pid: u32) {
        if !self.clock {
            return;
        }
        let shm = format!("/dev/shm/faketime_shm_{pid}");
        let sem = format!("/dev/shm/sem.faketime_sem_{pid}");
        // Best effort: a leftover file costs a few bytes, never correctness.
        if let Err(e) = daemon::run(remote, &Command::new("rm", &["-f", &shm, &sem])).await {
            tracing::warn!(
                node = remote.node(),
                pid,
                "removing libfaketime's files: {e}"
            );
        }
    }

    /// Waits until `node` answers `/status` with a known leader; `exited` says why the node
    /// can no longer become ready (it died), checked when it does not answer.
    async fn await_ready<F, Fut>(
        &self,
        node: &str,
        phase: &'static str,
        mut exited: F,
    ) -> Result<(), HarnessError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<String>, HarnessError>>,
    {
        let addr = self
            .client_addr(node)
            .ok_or_else(|| db_error(node, phase, "no ports chosen"))?;
        let deadline = Instant::now() + self.ready_timeout;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            match status(addr).await {
                Ok(status) if !status["leader"].is_null() => return Ok(()),
                Ok(status) => last = format!("no leader yet: {status}"),
                Err(e) => {
                    if let Some(why) = exited().await? {
                        return Err(db_error(node, phase, why));
                    }
                    last = e;
                }
            }
            tokio::time::sleep(Duration::from_millis(READY_POLL_MS)).await;
        }
        Err(db_error(
            node,
            phase,
            format!("not ready after {:?}: {last}", self.ready_timeout),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Local mode.

impl LocalNodes {
    /// Picks every node's ports and the proxy's links, once.
    fn ports(&self, names: &[String]) -> Result<BTreeMap<String, LocalPorts>, HarnessError> {
        let mut slot = self.ports.lock().expect("ports lock");
        if let Some(ports) = slot.as_ref() {
            return Ok(ports.clone());
        }
        let mut own = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            let pick = || free_port().map_err(|e| db_error(name, "setup", e.to_string()));
            own.insert(name.clone(), (i as u64 + 1, pick()?, pick()?));
        }
        let mut ports = BTreeMap::new();
        for (name, &(id, peer, client)) in &own {
            let mut peers = Vec::new();
            for (other, &(other_id, other_peer, _)) in &own {
                let addr = if other == name {
                    peer
                } else {
                    self.proxy.add_link(name, other, other_peer)?
                };
                peers.push(format!("{other_id}={addr}"));
            }
            ports.insert(
                name.clone(),
                LocalPorts {
                    id,
                    client,
                    peers: peers.join(","),
                },
            );
        }
        *slot = Some(ports.clone());
        Ok(ports)
    }

    fn node_dir(&self, node: &str) -> PathBuf {
        self.data_dir.join(node)
    }

    /// Whether `node`'s process has exited by itself, and how.
    fn exited(&self, node: &str) -> Option<std::process::ExitStatus> {
        self.running
            .lock()
            .expect("running lock")
            .get_mut(node)
            .and_then(|r| r.child.try_wait().ok().flatten())
    }
}

impl RaftkvDb {
    fn local_nodes(&self) -> &LocalNodes {
        match &self.mode {
            Mode::Local(local) => local,
            Mode::Remote(_) => unreachable!("called only in local mode"),
        }
    }

    /// Starts local `node`'s process unless it is running. Does not wait for readiness.
    fn spawn_local(&self, node: &str, phase: &'static str) -> Result<(), HarnessError> {
        let local = self.local_nodes();
        let ports = local.ports(&self.names)?;
        let own = ports
            .get(node)
            .ok_or_else(|| db_error(node, phase, "not a node of this cluster"))?;
        let mut running = local.running.lock().expect("running lock");
        if let Some(r) = running.get_mut(node) {
            match r.child.try_wait() {
                Ok(None) => return Ok(()),
                // Exited by itself: start it again.
                Ok(Some(_)) | Err(_) => {
                    running.remove(node);
                }
            }
        }
        let dir = local.node_dir(node);
        std::fs::create_dir_all(&dir)
            .map_err(|e| db_error(node, phase, format!("creating {}: {e}", dir.display())))?;
        let log_path = self.log_path(node);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| db_error(node, phase, format!("opening {}: {e}", log_path.display())))?;
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg("raftkv-server")
            .arg("--id")
            .arg(own.id.to_string())
            .arg("--peers")
            .arg(&own.peers)
            .arg("--listen-client")
            .arg(own.client.to_string())
            .arg("--data-dir")
            .arg(&dir)
            // A harness that dies, even of SIGKILL, leaves no node behind.
            .arg("--exit-with-parent")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            // A FAKETIME in the harness's environment would override the offset file.
            .env_remove("FAKETIME")
            // A paused node cannot notice its parent's death: `faultline heal` finds it.
            .env(crate::orphans::MARKER, crate::orphans::marker())
            .kill_on_drop(true);
        if !self.bugs.is_empty() {
            command.arg("--bug").arg(self.bugs.join(","));
        }
        command.args(&self.server_flags);
        if self.clock {
            command.envs(faketime_env(&self.clock_path(node)));
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

    async fn setup_local(&self, node: &Node) -> Result<(), HarnessError> {
        let local = self.local_nodes();
        local.ports(&self.names)?;
        local
            .proxy
            .start_from(&node.name)
            .await
            .map_err(|e| db_error(&node.name, "setup", e.to_string()))?;
        if self.clock && self.pid(&node.name).is_none() {
            std::fs::create_dir_all(&local.data_dir).map_err(|e| {
                db_error(
                    &node.name,
                    "setup",
                    format!("creating {}: {e}", local.data_dir.display()),
                )
            })?;
            // The offset file must exist before the node starts: a fresh node's clock is
            // not moved.
            self.write_offset(node, 0).await?;
        }
        self.spawn_local(&node.name, "setup")?;
        self.await_ready(&node.name, "setup", || async {
            Ok(local.exited(&node.name).map(|status| {
                format!(
                    "the node exited with {status} (see {})",
                    self.log_path(&node.name).display()
                )
            }))
        })
        .await
    }

    /// SIGCONT (a stopped process must not stay stopped), SIGKILL, and reap. Idempotent.
    async fn stop_local(&self, node: &Node, phase: &'static str) -> Result<(), HarnessError> {
        let local = self.local_nodes();
        let taken = local
            .running
            .lock()
            .expect("running lock")
            .remove(&node.name);
        let Some(mut running) = taken else {
            return Ok(());
        };
        node.remote.signal(running.pid, Signal::Cont).await?;
        node.remote.signal(running.pid, Signal::Kill).await?;
        let reaped =
            tokio::time::timeout(Duration::from_millis(REAP_TIMEOUT_MS), running.child.wait())
                .await;
        match reaped {
            Ok(Ok(_)) => {
                self.remove_faketime_shm(node.remote.as_ref(), running.pid)
                    .await;
                Ok(())
            }
            Ok(Err(e)) => Err(db_error(&node.name, phase, format!("reaping: {e}"))),
            Err(_) => Err(db_error(
                &node.name,
                phase,
                format!("pid {} still running after SIGKILL", running.pid),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Remote mode.

impl RaftkvDb {
    fn remote_node(&self, node: &str, phase: &'static str) -> Result<&RemoteNode, HarnessError> {
        match &self.mode {
            Mode::Remote(remote) => remote
                .nodes
                .get(node)
                .ok_or_else(|| db_error(node, phase, "not a node of this cluster")),
            Mode::Local(_) => unreachable!("called only in remote mode"),
        }
    }

    /// The daemon that runs `node` on its host.
    fn daemon(&self, node: &str, phase: &'static str) -> Result<Daemon, HarnessError> {
        let Mode::Remote(remote) = &self.mode else {
            unreachable!("called only in remote mode")
        };
        let own = self.remote_node(node, phase)?;
        let dir = &own.dir;
        let mut daemon = Daemon::new(
            &remote.binary,
            &format!("{dir}/raftkv.pid"),
            &format!("{dir}/raftkv.log"),
        )
        .dir(dir)
        .arg("raftkv-server")
        .args(["--id".to_string(), own.id.to_string()])
        .args(["--peers", &remote.peers])
        .args(["--listen-client".to_string(), own.client.to_string()])
        .args(["--data-dir".to_string(), format!("{dir}/data")]);
        if !self.bugs.is_empty() {
            daemon = daemon.args(["--bug".to_string(), self.bugs.join(",")]);
        }
        daemon = daemon.args(self.server_flags.clone());
        if self.clock {
            for (key, value) in faketime_env(&self.clock_path(node)) {
                daemon = daemon.env(key, &value);
            }
        }
        Ok(daemon)
    }

    async fn setup_remote(&self, node: &Node) -> Result<(), HarnessError> {
        let remote = node.remote.as_ref();
        let dir = self.remote_node(&node.name, "setup")?.dir.clone();
        let daemon = self.daemon(&node.name, "setup")?;
        let run = |command: Command| async move { daemon::run(remote, &command).await };
        if daemon.pid(remote).await?.is_none() {
            run(Command::new("mkdir", &["-p", &format!("{dir}/data")])).await?;
            if self.clock {
                let found = remote
                    .exec(&Command::new("test", &["-e", LIBFAKETIME]))
                    .await?;
                if !found.success() {
                    return Err(db_error(
                        &node.name,
                        "setup",
                        format!(
                            "the clock nemesis needs libfaketime: {LIBFAKETIME} is missing \
                             (apt-get install libfaketime)"
                        ),
                    ));
                }
                self.write_offset(node, 0).await?;
            }
            self.install_binary(node).await?;
        }
        self.start_remote(node, "setup").await?;
        self.await_ready(&node.name, "setup", || async {
            Ok(match daemon.pid(remote).await? {
                Some(_) => None,
                None => Some(format!(
                    "the node is not running (see {} on the node)",
                    daemon.logfile
                )),
            })
        })
        .await
    }

    /// Uploads this machine's faultline binary to the node unless that build is there.
    async fn install_binary(&self, node: &Node) -> Result<(), HarnessError> {
        let Mode::Remote(nodes) = &self.mode else {
            unreachable!("called only in remote mode")
        };
        let _one_at_a_time = nodes.install.lock().await;
        let remote = node.remote.as_ref();
        let run = |command: Command| async move { daemon::run(remote, &command).await };
        let binary = &nodes.binary;
        let size = std::fs::metadata(&self.program)
            .map(|m| m.len())
            .map_err(|e| db_error(&node.name, "setup", format!("the faultline binary: {e}")))?;
        let there = remote
            .exec(&Command::new("stat", &["-c", "%s", binary]))
            .await?;
        if there.success() && String::from_utf8_lossy(&there.stdout).trim() == size.to_string() {
            return Ok(());
        }
        let dir = binary.rsplit_once('/').map_or(".", |(dir, _)| dir);
        run(Command::new("mkdir", &["-p", dir])).await?;
        // Upload beside, then rename: a binary that is running cannot be overwritten, and a
        // rename leaves a running copy intact.
        let upload = format!("{binary}.upload-{}", node.name);
        remote.upload(&self.program, &upload).await?;
        run(Command::new("chmod", &["755", &upload])).await?;
        run(Command::new("mv", &["-f", &upload, binary])).await?;
        Ok(())
    }

    async fn start_remote(&self, node: &Node, phase: &'static str) -> Result<(), HarnessError> {
        let pid = self
            .daemon(&node.name, phase)?
            .start(node.remote.as_ref())
            .await?;
        if self.started_pids.lock().expect("pids lock").insert(pid) {
            tracing::info!(node = node.name, pid, "started raftkv node");
        }
        Ok(())
    }

    async fn kill_remote(&self, node: &Node, phase: &'static str) -> Result<(), HarnessError> {
        let remote = node.remote.as_ref();
        let daemon = self.daemon(&node.name, phase)?;
        if let Some(pid) = daemon.pid(remote).await? {
            daemon.kill(remote).await?;
            self.remove_faketime_shm(remote, pid).await;
        }
        Ok(())
    }

    async fn teardown_remote(&self, node: &Node) -> Result<(), HarnessError> {
        self.kill_remote(node, "teardown").await?;
        let dir = &self.remote_node(&node.name, "teardown")?.dir;
        // The log stays, to be collected; everything else of this node goes.
        let mut rm = vec!["-rf".to_string()];
        for name in ["data", "faketime", "faketime.tmp", "raftkv.pid"] {
            rm.push(format!("{dir}/{name}"));
        }
        let rm: Vec<&str> = rm.iter().map(String::as_str).collect();
        daemon::run(node.remote.as_ref(), &Command::new("rm", &rm)).await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The seams.

impl Db for RaftkvDb {
    fn setup<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.check_node(&node.name, "setup")?;
            match &self.mode {
                Mode::Local(_) => self.setup_local(node).await,
                Mode::Remote(_) => self.setup_remote(node).await,
            }
        })
    }

    fn teardown<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.check_node(&node.name, "teardown")?;
            match &self.mode {
                Mode::Local(local) => {
                    let stopped = self.stop_local(node, "teardown").await;
                    // The node's outgoing links go with it, whatever happened to the process.
                    local.proxy.stop_from(&node.name).await;
                    stopped
                }
                Mode::Remote(_) => self.teardown_remote(node).await,
            }
        })
    }

    fn as_kill(&self) -> Option<&dyn Kill> {
        Some(self)
    }

    fn as_pause(&self) -> Option<&dyn Pause> {
        Some(self)
    }

    fn as_primary(&self) -> Option<&dyn Primary> {
        Some(self)
    }

    fn as_log_probe(&self) -> Option<&dyn LogProbe> {
        Some(self)
    }

    fn as_clock(&self) -> Option<&dyn ClockSkew> {
        if self.clock {
            Some(self)
        } else {
            None
        }
    }

    fn as_net(&self) -> Option<&dyn Net> {
        self.proxy().map(|proxy| proxy as &dyn Net)
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
        Box::pin(async move {
            self.check_node(&node.name, "kill")?;
            match &self.mode {
                Mode::Local(_) => self.stop_local(node, "kill").await,
                Mode::Remote(_) => self.kill_remote(node, "kill").await,
            }
        })
    }

    fn start<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        // No readiness wait: a restarted node rejoins in its own time, and a restart during a
        // fault (no quorum) must not block the nemesis.
        Box::pin(async move {
            self.check_node(&node.name, "start")?;
            match &self.mode {
                Mode::Local(_) => self.spawn_local(&node.name, "start"),
                Mode::Remote(_) => self.start_remote(node, "start").await,
            }
        })
    }
}

impl Pause for RaftkvDb {
    fn pause<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(self.signal(node, Signal::Stop, "pause"))
    }

    fn resume<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(self.signal(node, Signal::Cont, "resume"))
    }
}

impl RaftkvDb {
    /// Signals the node's own process, if it is running (never anything else on the host).
    async fn signal(
        &self,
        node: &Node,
        signal: Signal,
        phase: &'static str,
    ) -> Result<(), HarnessError> {
        self.check_node(&node.name, phase)?;
        match &self.mode {
            Mode::Local(_) => match self.pid(&node.name) {
                Some(pid) => node.remote.signal(pid, signal).await,
                None => Ok(()),
            },
            Mode::Remote(_) => {
                self.daemon(&node.name, phase)?
                    .signal(node.remote.as_ref(), signal)
                    .await
            }
        }
    }
}

impl Primary for RaftkvDb {
    fn primaries<'a>(
        &'a self,
        _test: &'a Test,
        nodes: &'a [Node],
    ) -> BoxFuture<'a, Result<Vec<String>, HarnessError>> {
        Box::pin(async move {
            // Every node at once: a paused node takes the whole status timeout to not answer.
            let asks: Vec<(String, tokio::task::JoinHandle<Result<Value, String>>)> = nodes
                .iter()
                .filter_map(|node| {
                    let addr = self.client_addr(&node.name)?;
                    Some((node.name.clone(), tokio::spawn(status(addr))))
                })
                .collect();
            let mut leaders = Vec::new();
            for (name, ask) in asks {
                if let Ok(Ok(status)) = ask.await {
                    if status["role"] == "leader" {
                        leaders.push(name);
                    }
                }
            }
            Ok(leaders)
        })
    }
}

impl LogProbe for RaftkvDb {
    fn log_status<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<Option<LogStatus>, HarnessError>> {
        Box::pin(async move {
            let Some(addr) = self.client_addr(&node.name) else {
                return Ok(None);
            };
            let Ok(status) = status_within(addr, LOG_STATUS_TIMEOUT_MS).await else {
                return Ok(None);
            };
            let field = |name: &str| {
                status[name].as_u64().ok_or_else(|| {
                    db_error(
                        &node.name,
                        "status",
                        format!("/status has no number {name}: {status}"),
                    )
                })
            };
            Ok(Some(LogStatus {
                term: field("term")?,
                leader: status["role"] == "leader",
                last_index: field("last_index")?,
                last_term: field("last_term")?,
                commit: field("commit")?,
            }))
        })
    }
}

impl ClockSkew for RaftkvDb {
    fn set_offset<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
        offset_ms: i64,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.check_node(&node.name, "clock")?;
            if !self.clock {
                return Err(db_error(
                    &node.name,
                    "clock",
                    "nodes run without libfaketime: the clock nemesis was not enabled at start",
                ));
            }
            self.write_offset(node, offset_ms).await?;
            tracing::info!(node = node.name, offset_ms, "moved the node's clock");
            Ok(())
        })
    }
}

/// `GET /status` of the node at `addr`, bounded by a second.
pub async fn status(addr: SocketAddr) -> Result<Value, String> {
    status_within(addr, STATUS_TIMEOUT_MS).await
}

/// [`status`] bounded by `timeout_ms`.
async fn status_within(addr: SocketAddr, timeout_ms: u64) -> Result<Value, String> {
    let ask = async {
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
    };
    tokio::time::timeout(Duration::from_millis(timeout_ms), ask)
        .await
        .unwrap_or_else(|_| Err("/status timed out".into()))
}

/// The key of an operation as a path segment: its JSON text (strings unquoted),
/// percent-encoded.
pub(crate) fn key_path(key: Option<&Value>) -> String {
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

/// The operations a client speaks: the register workload's, transactions (list-append,
/// rw-register), or the bank's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    Register,
    Txn,
    Bank(Bank),
    /// The lock workloads (see [`crate::raftkv_lock`]).
    Lock(LockSpec),
    /// Total order broadcast (see [`crate::raftkv_log`]).
    Broadcast,
    /// The set workload: adds and reads of a list per key (see [`crate::raftkv_log`]).
    Set,
    /// Work queues (see [`crate::raftkv_log`]).
    Queue,
    /// The election workload, its nodes as the candidates (see [`crate::raftkv_election`]).
    Election,
    /// The unique-ids workload (see [`crate::raftkv_election`]).
    UniqueIds,
}

/// What became of one request.
pub(crate) enum Delivery {
    Reply(Response),
    /// It never left: the node never saw it.
    NotSent(String),
    /// Sent, then the connection failed: it may have been applied.
    Lost(String),
}

/// A client of one raftkv node (a template until opened).
#[derive(Debug)]
pub struct RaftkvClient {
    /// Node name -> client address; shared with the db, known after setup.
    db: std::sync::Arc<RaftkvDb>,
    mode: ClientMode,
    addr: Option<SocketAddr>,
    connection: Option<Connection>,
    /// The lock workloads: this client's hold, its lease record, and its holder name.
    holder: Holder,
    lock_record: Option<Value>,
    me: String,
}

/// Every raftkv client opened gets its own holder name.
static NEXT_HOLDER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn holder_name() -> String {
    let n = NEXT_HOLDER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("client-{}-{n}", std::process::id())
}

impl RaftkvClient {
    pub fn new(db: std::sync::Arc<RaftkvDb>) -> RaftkvClient {
        RaftkvClient::with_mode(db, ClientMode::Register)
    }

    pub fn with_mode(db: std::sync::Arc<RaftkvDb>, mode: ClientMode) -> RaftkvClient {
        RaftkvClient {
            db,
            mode,
            addr: None,
            connection: None,
            holder: Holder::default(),
            lock_record: None,
            me: holder_name(),
        }
    }

    /// Sends one request on the kept connection (connecting first if there is none).
    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Delivery {
        let Some(addr) = self.addr else {
            return Delivery::NotSent("not-opened".into());
        };
        if self.connection.is_none() {
            match Connection::connect(addr).await {
                Ok(c) => self.connection = Some(c),
                Err(RequestError::Connect(e)) | Err(RequestError::Lost(e)) => {
                    return Delivery::NotSent(format!("connect: {e}"))
                }
            }
        }
        let connection = self.connection.as_mut().expect("connected above");
        match connection.request(method, path, body).await {
            Ok(response) => Delivery::Reply(response),
            Err(RequestError::Lost(e)) | Err(RequestError::Connect(e)) => {
                self.connection = None;
                Delivery::Lost(format!("connection-lost: {e}"))
            }
        }
    }

    async fn call(&mut self, test: &Test, op: &Invocation) -> Completion {
        match (self.mode, op.f.as_str()) {
            (ClientMode::Election, LEADER) => raftkv_election::leader(self, test).await,
            (ClientMode::UniqueIds, GENERATE) => raftkv_election::generate(self).await,
            (ClientMode::Register, _) => self.register(op).await,
            (ClientMode::Txn, "txn") => self.txn(op).await,
            (ClientMode::Bank(bank), "read") => self.bank_read(&bank).await,
            (ClientMode::Bank(bank), "transfer") => self.transfer(&bank, op).await,
            (ClientMode::Lock(spec), _) => {
                // The hold lives in the client, which the service borrows.
                let mut holder = std::mem::take(&mut self.holder);
                let mut record = self.lock_record.take();
                let me = self.me.clone();
                let completion = {
                    let mut service = RaftkvLocks {
                        client: self,
                        record: &mut record,
                        me: &me,
                    };
                    holder.invoke(&mut service, &spec, op).await
                };
                self.holder = holder;
                self.lock_record = record;
                completion
            }
            (ClientMode::Broadcast, _) => self.broadcast(op).await,
            (ClientMode::Set, _) => self.set(op).await,
            (ClientMode::Queue, _) => {
                let me = self.me.clone();
                self.queue(op, &me).await
            }
            (mode, f) => Completion::fail(format!("unsupported: {f} in {mode:?} mode")),
        }
    }

    async fn register(&mut self, op: &Invocation) -> Completion {
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
        match self.send(method, &path, body.as_ref()).await {
            Delivery::Reply(response) if response.status == 200 => match op.f.as_str() {
                "read" => {
                    Completion::Ok(response.body.get("value").cloned().unwrap_or(Value::Null))
                }
                _ => Completion::Ok(op.value.clone()),
            },
            Delivery::Reply(response) => error_completion(&response),
            Delivery::NotSent(why) => Completion::fail(why),
            // The request may have been sent: its outcome is unknown.
            Delivery::Lost(why) => Completion::info(why),
        }
    }

    /// `POST /txn` with `ops`: the micro-ops the node returned, or what the outcome was.
    /// A transaction of reads only changes nothing, so when its outcome is unknown it is
    /// a definite `fail` (it certainly had no effect), which keeps the worker on its process.
    pub(crate) async fn post_txn(&mut self, ops: &[Value]) -> Result<Vec<Value>, Completion> {
        let read_only = ops.iter().all(|op| op[0] == "r");
        let unknown = |why: Value| {
            if read_only {
                Completion::Fail(why)
            } else {
                Completion::Info(why)
            }
        };
        let body = Value::Array(ops.to_vec());
        match self.send("POST", "/txn", Some(&body)).await {
            Delivery::Reply(response) if response.status == 200 => {
                match response.body.get("value").and_then(Value::as_array) {
                    Some(results) if results.len() == ops.len() => Ok(results.clone()),
                    _ => Err(unknown(json!(format!(
                        "unreadable-reply: {}",
                        response.body
                    )))),
                }
            }
            Delivery::Reply(response) => match error_completion(&response) {
                Completion::Info(why) => Err(unknown(why)),
                other => Err(other),
            },
            Delivery::NotSent(why) => Err(Completion::fail(why)),
            Delivery::Lost(why) => Err(unknown(json!(why))),
        }
    }

    /// A list-append / rw-register transaction: one `POST /txn`, the reads filled in from
    /// the reply. raftkv's keys are strings, so each key is sent as its text and the answer
    /// keeps the invocation's own keys.
    async fn txn(&mut self, op: &Invocation) -> Completion {
        let ops = match parse_txn(&op.value) {
            Ok(ops) => ops,
            Err(why) => return Completion::fail(format!("bad-request: {why}")),
        };
        let request: Vec<Value> = ops
            .iter()
            .map(|o| json!([o.kind.as_str(), o.key_text(), o.value]))
            .collect();
        match self.post_txn(&request).await {
            Ok(results) => match fill_reads(&ops, &results) {
                Ok(value) => Completion::Ok(value),
                // It committed, but what it read is unknown.
                Err(why) => Completion::info(format!("unreadable-reply: {why}")),
            },
            Err(completion) => completion,
        }
    }

    /// Every balance, in one read-only transaction.
    async fn bank_read(&mut self, bank: &Bank) -> Completion {
        let reads: Vec<Value> = (0..bank.accounts)
            .map(|a| json!(["r", a.to_string(), null]))
            .collect();
        let results = match self.post_txn(&reads).await {
            Ok(results) => results,
            Err(completion) => return completion,
        };
        let mut balances = Vec::with_capacity(results.len());
        for (account, result) in results.iter().enumerate() {
            match balance_of(bank, account as u64, &result[2]) {
                Ok(balance) => balances.push(balance),
                Err(why) => return Completion::fail(why),
            }
        }
        Completion::Ok(Bank::balances_json(&balances))
    }

    /// A transfer: read both balances (a read-only transaction), then commit both new
    /// balances in one transaction of `cas` micro-ops that aborts if either account changed
    /// since the read. Refused (definitely) when the source holds too little.
    async fn transfer(&mut self, bank: &Bank, op: &Invocation) -> Completion {
        let t = match Transfer::parse(&op.value, bank) {
            Ok(t) => t,
            Err(why) => return Completion::fail(format!("bad-request: {why}")),
        };
        let (from, to) = (t.from.to_string(), t.to.to_string());
        let read = [json!(["r", from, null]), json!(["r", to, null])];
        let results = match self.post_txn(&read).await {
            Ok(results) => results,
            Err(completion) => return completion,
        };
        let (raw_from, raw_to) = (results[0][2].clone(), results[1][2].clone());
        let balances = (
            balance_of(bank, t.from, &raw_from),
            balance_of(bank, t.to, &raw_to),
        );
        let (Ok(from_balance), Ok(to_balance)) = balances else {
            return Completion::fail("bad-request: an account does not hold a balance");
        };
        if from_balance < t.amount {
            return Completion::fail("insufficient-funds");
        }
        let commit = [
            json!(["cas", from, [raw_from, from_balance - t.amount]]),
            json!(["cas", to, [raw_to, to_balance + t.amount]]),
        ];
        match self.post_txn(&commit).await {
            Ok(_) => Completion::Ok(t.to_json()),
            Err(completion) => completion,
        }
    }
}

/// An account's balance from what a read returned: never written = its initial balance.
fn balance_of(bank: &Bank, account: u64, value: &Value) -> Result<i64, String> {
    match value {
        Value::Null => Ok(bank.initial_balance(account)),
        other => other
            .as_i64()
            .ok_or_else(|| format!("account {account} holds {other}, not a balance")),
    }
}

/// The invocation's micro-ops with each read's value taken from the node's answer, entry by
/// entry (same position, same function).
fn fill_reads(ops: &[MicroOp], results: &[Value]) -> Result<Value, String> {
    if ops.len() != results.len() {
        return Err(format!(
            "{} results for {} micro-ops",
            results.len(),
            ops.len()
        ));
    }
    let mut done = Vec::with_capacity(ops.len());
    for (op, result) in ops.iter().zip(results) {
        if result.get(0).and_then(Value::as_str) != Some(op.kind.as_str()) {
            return Err(format!("result {result} does not answer {}", op.to_json()));
        }
        let mut op = op.clone();
        if op.kind == MopKind::Read {
            op.value = result.get(2).cloned().unwrap_or(Value::Null);
        }
        done.push(op);
    }
    Ok(txn_json(&done))
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
                mode: self.mode,
                addr: Some(addr),
                connection: None,
                holder: Holder::default(),
                lock_record: None,
                me: holder_name(),
            }) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(self.call(test, op))
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.connection = None;
            Ok(())
        })
    }
}

/// The raftkv target for `test`: local processes when `test.addresses` is empty, else one
/// node per address.
pub fn target(test: &Test) -> Result<Target, TargetError> {
    let client_mode = match test.workload.as_str() {
        "register" => ClientMode::Register,
        "list-append" | "rw-register" => ClientMode::Txn,
        "broadcast" | "log" => ClientMode::Broadcast,
        "set" => ClientMode::Set,
        "queue" => ClientMode::Queue,
        "lock" | "fenced-lock" => {
            ClientMode::Lock(
                LockSpec::from_test(test).map_err(|why| TargetError::BadOption {
                    target: "raftkv".into(),
                    option: "lock".into(),
                    why,
                })?,
            )
        }
        "election" => {
            let spec = ElectionSpec::from_test(test).map_err(|why| TargetError::BadOption {
                target: "raftkv".into(),
                option: "election".into(),
                why,
            })?;
            if spec.candidates != Candidates::Nodes {
                return Err(TargetError::BadOption {
                    target: "raftkv".into(),
                    option: "candidates".into(),
                    why: "raftkv's nodes elect their leader among themselves; a client cannot \
                          campaign (use candidates: nodes)"
                        .into(),
                });
            }
            ClientMode::Election
        }
        "unique-ids" => ClientMode::UniqueIds,
        "bank" => {
            ClientMode::Bank(Bank::from_test(test).map_err(|why| TargetError::BadOption {
                target: "raftkv".into(),
                option: "bank".into(),
                why,
            })?)
        }
        other => {
            return Err(TargetError::UnsupportedWorkload {
                target: "raftkv".into(),
                workload: other.to_string(),
            })
        }
    };
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
    let path_option = |name: &str, value: &Value| {
        value
            .as_str()
            .map(PathBuf::from)
            .ok_or_else(|| bad(name, format!("expected a path, got {value}")))
    };
    let port_option = |name: &str, value: &Value| {
        value
            .as_u64()
            .filter(|p| (1..=u64::from(u16::MAX)).contains(p))
            .map(|p| p as u16)
            .ok_or_else(|| bad(name, format!("expected a port (1 to 65535), got {value}")))
    };
    let mut nodes = None;
    let mut data_dir = None;
    let mut program = None;
    let mut peer_port = DEFAULT_PEER_PORT;
    let mut client_port = DEFAULT_CLIENT_PORT;
    let mut remote_dir = DEFAULT_REMOTE_DIR.to_string();
    for (name, value) in &test.target_options {
        match name.as_str() {
            "nodes" => {
                nodes = Some(
                    value
                        .as_u64()
                        .filter(|n| (1..=MAX_NODES as u64).contains(n))
                        .ok_or_else(|| {
                            bad(name, format!("expected 1 to {MAX_NODES}, got {value}"))
                        })? as usize,
                );
            }
            "data_dir" => data_dir = Some(path_option(name, value)?),
            "program" => program = Some(path_option(name, value)?),
            "peer_port" => peer_port = port_option(name, value)?,
            "client_port" => client_port = port_option(name, value)?,
            "remote_dir" => {
                let dir = path_option(name, value)?;
                if !dir.is_absolute() {
                    return Err(bad(name, format!("expected an absolute path, got {value}")));
                }
                remote_dir = path_text(&dir);
            }
            _ => {
                return Err(bad(
                    name,
                    "unknown option; known: nodes, data_dir, program, peer_port, client_port, \
                     remote_dir"
                        .into(),
                ))
            }
        }
    }
    let program = match program {
        Some(p) => p,
        None => std::env::current_exe()
            .map_err(|e| bad("program", format!("cannot find this executable: {e}")))?,
    };
    let clock = test.nemesis.iter().any(|n| n == "clock");
    let figure_8 = test.nemesis.iter().any(|n| n == "figure-8");
    if figure_8 && !test.addresses.is_empty() {
        return Err(bad(
            "nemesis figure-8",
            "needs local nodes: it delays single peer links, which only the local fault \
             proxy can do (iptables hosts have no netem)"
                .into(),
        ));
    }
    let db = if test.addresses.is_empty() {
        if clock && !Path::new(LIBFAKETIME).exists() {
            return Err(bad(
                "nemesis clock",
                format!(
                    "needs libfaketime: {LIBFAKETIME} is missing (apt-get install libfaketime)"
                ),
            ));
        }
        let names: Vec<String> = (1..=nodes.unwrap_or(DEFAULT_NODES))
            .map(|i| format!("n{i}"))
            .collect();
        let data_dir = data_dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "faultline-raftkv-{}-{}",
                std::process::id(),
                test.seed
            ))
        });
        RaftkvDb::local(
            program,
            names,
            data_dir,
            test.bugs.clone(),
            test.seed_for("proxy"),
        )
    } else {
        // The nodes the test names, each with an address; else every address.
        let hosts: BTreeMap<String, String> = if test.nodes.is_empty() {
            test.addresses.clone()
        } else {
            let mut hosts = BTreeMap::new();
            for node in &test.nodes {
                let address = test
                    .addresses
                    .get(node)
                    .ok_or_else(|| bad("addresses", format!("node {node} has no address")))?;
                hosts.insert(node.clone(), address.clone());
            }
            hosts
        };
        if hosts.len() > MAX_NODES {
            return Err(bad(
                "addresses",
                format!("{} nodes; at most {MAX_NODES}", hosts.len()),
            ));
        }
        if let Some(n) = nodes.filter(|&n| n != hosts.len()) {
            return Err(bad(
                "nodes",
                format!("{n} nodes, but {} addresses", hosts.len()),
            ));
        }
        // Unique per test run (and per node, below): lab hosts share one file system, and a
        // run must not meet the files of another.
        let run = format!(
            "{}-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
            test.seed
        );
        let run_dir = format!("{}/{run}", remote_dir.trim_end_matches('/'));
        RaftkvDb::remote(
            program,
            &hosts,
            (peer_port, client_port),
            &run_dir,
            test.bugs.clone(),
        )
        .map_err(|why| bad("addresses", why))?
    };
    let flags: &[&str] = if figure_8 {
        &FIGURE_8_SERVER_FLAGS
    } else {
        &[]
    };
    let db = std::sync::Arc::new(db.with_clock(clock).with_server_flags(flags));
    Ok(Target {
        db: db.clone(),
        client: std::sync::Arc::new(RaftkvClient::with_mode(db.clone(), client_mode)),
        nodes: db.names.clone(),
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

    #[test]
    fn transaction_answers_keep_the_invocation_keys_and_fill_in_reads() {
        let ops = parse_txn(&json!([["r", 1, null], ["append", 1, 4], ["r", 2, null]])).unwrap();
        let results = [
            json!(["r", "1", [1, 2]]),
            json!(["append", "1", 4]),
            json!(["r", "2", null]),
        ];
        assert_eq!(
            fill_reads(&ops, &results).unwrap(),
            json!([["r", 1, [1, 2]], ["append", 1, 4], ["r", 2, null]])
        );
        assert!(fill_reads(&ops, &results[..2]).is_err());
        let swapped = [results[1].clone(), results[0].clone(), results[2].clone()];
        assert!(fill_reads(&ops, &swapped).is_err());
    }

    #[test]
    fn an_account_never_written_holds_its_initial_balance() {
        let bank = Bank {
            accounts: 4,
            total: 10,
        };
        assert_eq!(balance_of(&bank, 0, &Value::Null), Ok(4));
        assert_eq!(balance_of(&bank, 3, &Value::Null), Ok(2));
        assert_eq!(balance_of(&bank, 3, &json!(7)), Ok(7));
        assert!(balance_of(&bank, 3, &json!("x")).is_err());
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
        let db = RaftkvDb::local(script, vec!["n1".into()], dir.join("nodes"), Vec::new(), 1)
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

    #[test]
    fn clock_offsets_are_written_as_fractional_seconds() {
        assert_eq!(faketime_offset(0), "+0.000s");
        assert_eq!(faketime_offset(1_500), "+1.500s");
        assert_eq!(faketime_offset(-250), "-0.250s");
        assert_eq!(faketime_offset(-61_005), "-61.005s");
        assert_eq!(faketime_offset(i64::MIN), "-9223372036854775.808s");
    }

    #[test]
    fn remote_nodes_come_from_the_addresses() {
        let mut test = Test::example("raftkv", "register", 1);
        test.nemesis = vec!["clock".into(), "partition".into()];
        test.nodes.clear();
        test.addresses = [("n1", "127.0.0.11"), ("n2", "127.0.0.12")]
            .into_iter()
            .map(|(n, a)| (n.to_string(), a.to_string()))
            .collect();
        test.target_options
            .insert("client_port".into(), json!(9001));
        let Ok(target) = target(&test) else {
            panic!("builds")
        };
        assert_eq!(target.nodes, ["n1", "n2"]);
        assert!(target.db.as_net().is_none());
        assert!(target.db.as_clock().is_some());
        assert!(target.db.as_primary().is_some());
        let log = &target.db.log_files(&test, &node("n2"))[0];
        assert!(log.starts_with(DEFAULT_REMOTE_DIR), "{}", log.display());
        assert!(log.ends_with("n2/raftkv.log"), "{}", log.display());

        // The test's node list picks among the addresses; each needs one.
        test.nodes = vec!["n2".into()];
        let Ok(target) = super::target(&test) else {
            panic!("builds")
        };
        assert_eq!(target.nodes, ["n2"]);
        test.nodes = vec!["n3".into()];
        let Err(e) = super::target(&test) else {
            panic!("n3 has no address")
        };
        assert!(e.to_string().contains("n3 has no address"), "{e}");
        test.nodes.clear();
        for (option, value) in [
            ("nodes", json!(3)),
            ("peer_port", json!(0)),
            ("client_port", json!("x")),
            ("remote_dir", json!("relative")),
            ("colour", json!(1)),
        ] {
            let mut test = test.clone();
            test.target_options.insert(option.into(), value);
            let Err(e) = super::target(&test) else {
                panic!("{option} is rejected")
            };
            assert!(e.to_string().contains(option), "{e}");
        }
    }

    fn node(name: &str) -> Node {
        Node {
            name: name.into(),
            remote: std::sync::Arc::new(crate::local::LocalRemote::new(name)),
        }
    }
}
