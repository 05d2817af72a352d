//! `zookeeper`: Debian's ZooKeeper 3.8, one JVM per node, through any
//! [`faultline_core::Remote`].
//!
//! [`ZookeeperDb`] writes each node's `zoo.cfg` (tickTime 2000, initLimit 10, syncLimit 5,
//! its `dataDir`, `clientPort` + `clientPortAddress`, the admin server off, every
//! four-letter word allowed, one `server.N` line per node), its `myid` and a
//! `log4j.properties` copied from `/etc/zookeeper/conf_example/`, starts the JVM with
//! [`Daemon`] (`-Xmx128m`, SerialGC, C1 only, the two log jars on the class path, logging to
//! the console, which is the daemon's log file), and waits (bounded) until the four-letter
//! word `srvr` shows `Mode: leader` or `follower` and a session can create the root znode
//! [`ROOT`]. Node `node` keeps its files under `<base>/<node>/` ([`crate::cluster`]):
//! `data/`, `conf/`, `zookeeper.pid`, `zookeeper.log`, `faketime`. In local mode each node has
//! its own client, quorum and election ports on 127.0.0.1; in remote mode 2181, 2888 and 3888
//! on its address. Teardown kills the JVM and removes everything but the log.
//!
//! Capabilities: kill / start and pause / resume of the JVM's pid only, primary (`srvr` says
//! `Mode: leader`), log files, and clock skew when `test.nemesis` names `clock`: the JVM then
//! runs with libfaketime (`LD_PRELOAD`, `FAKETIME_TIMESTAMP_FILE` = the node's `faketime`
//! file, `FAKETIME_NO_CACHE=1`), the file holds `+0` before the JVM starts, and
//! [`faultline_core::ClockSkew::set_offset`] rewrites it (picked up at once). libfaketime
//! leaves `/dev/shm/faketime_shm_<pid>` and `sem.faketime_sem_<pid>` behind when the JVM dies
//! by a signal; kill and teardown remove those of the pid they killed.
//!
//! [`ZookeeperClient`] holds one session per worker, on its node only: read -> `get_data`
//! (after `sync` when option `sync_reads` is true), missing -> `null`; write -> `set_data`
//! with any version, creating the znode when missing; cas `[old, new]` -> `get_data`, then
//! `set_data` with the version read (a compare-and-set on the version). Values are stored as
//! their JSON text (an integer as decimal text). How errors map to `ok` / `fail` / `info`:
//! [`classify_error`] and `docs/targets.md`.
//!
//! Options: `nodes`, `data_dir`, `sync_reads`, `request_timeout_ms`, `ready_timeout_ms`.
//!
//! Design decision: each worker's session talks to its own node only (as Jepsen's clients),
//! so faults on one node show up in that node's history instead of being hidden by a client
//! that fails over; every request carries its own timeout, because the client queues
//! requests without limit while disconnected.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_core::election::{Candidates, ElectionSpec};
use faultline_core::ephemeral::EphemeralSpec;
use faultline_core::lock::LockSpec;
use faultline_core::remote::{Command, Signal};
use faultline_core::watch::WatchSpec;
use faultline_core::{
    BoxFuture, Client, ClockSkew, Completion, Db, HarnessError, Invocation, Kill, Node, Pause,
    Primary, Remote, Test,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zookeeper_client as zk;

use crate::cluster::{self, log_tail, resolve, Cluster, Options};
use crate::daemon::{self, Daemon};
use crate::zookeeper_election::{Mode as ElectionMode, ZookeeperElectionClient};
use crate::zookeeper_ephemeral::{
    ZookeeperEphemeralClient, MAX_SESSION_TIMEOUT_MS, MIN_SESSION_TIMEOUT_MS,
};
use crate::zookeeper_lock::ZookeeperLockClient;
use crate::zookeeper_log::{LogMode, ZookeeperLogClient};
use crate::zookeeper_watch::ZookeeperWatchClient;
use crate::{Target, TargetError};

pub const JAVA: &str = "/usr/bin/java";
/// The server's class path after the node's conf directory: ZooKeeper (its manifest names
/// its other jars) and the two jars without which it writes no log.
pub const CLASS_PATH: [&str; 3] = [
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
];
pub const LOG4J_PROPERTIES: &str = "/etc/zookeeper/conf_example/log4j.properties";
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// Nodes when neither `test.nodes` nor option `nodes` says.
pub const DEFAULT_NODES: usize = 3;
/// Standard ports (remote mode): client, quorum, election.
pub const STANDARD_PORTS: [u16; 3] = [2181, 2888, 3888];
const CLIENT: usize = 0;
const QUORUM: usize = 1;
const ELECTION: usize = 2;
/// The znode every key lives under: `/faultline/<key>`.
pub const ROOT: &str = "/faultline";
/// How long setup waits for a node to serve.
pub const READY_TIMEOUT_MS: u64 = 45_000;
const READY_POLL_MS: u64 = 200;
/// One `srvr` probe.
const PROBE_TIMEOUT_MS: u64 = 2_000;
/// The session timeout clients ask for. A leader expires a silent session after it; the
/// server bounds it to 2..20 ticks (4-40 s).
pub const SESSION_TIMEOUT_MS: u64 = 10_000;
/// A cas whose `set_data` meets a changed version reads again, at most this many times.
pub const CAS_ATTEMPTS: usize = 5;
/// The option names this target reads.
pub const OPTIONS: [&str; 5] = [
    "nodes",
    "data_dir",
    "sync_reads",
    "request_timeout_ms",
    "ready_timeout_ms",
];

/// The ZooKeeper ensemble: one JVM per node.
#[derive(Debug)]
pub struct ZookeeperDb {
    cluster: Cluster,
    /// Run under libfaketime (`clock` in `test.nemesis`).
    faketime: bool,
    ready_timeout: Duration,
    /// Nodes whose directory this db prepared; a second setup only makes sure the JVM runs.
    prepared: Mutex<BTreeSet<String>>,
}

fn db_error(node: &str, phase: &'static str, why: impl Into<String>) -> HarnessError {
    HarnessError::Db {
        node: node.to_string(),
        phase,
        why: why.into(),
    }
}

/// A libfaketime offset file's text for `offset_ms`: seconds with millisecond fractions
/// (`+1.250s`, `-30s`, `+0`).
pub fn faketime_offset(offset_ms: i64) -> String {
    if offset_ms == 0 {
        return "+0".to_string();
    }
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let ms = offset_ms.unsigned_abs();
    if ms.is_multiple_of(1_000) {
        format!("{sign}{}s", ms / 1_000)
    } else {
        format!("{sign}{}.{:03}s", ms / 1_000, ms % 1_000)
    }
}

/// A `srvr` reply's mode (`leader`, `follower`, `standalone`, ...), if it has one.
pub fn srvr_mode(reply: &str) -> Option<&str> {
    reply
        .lines()
        .find_map(|line| line.strip_prefix("Mode:"))
        .map(str::trim)
}

/// The znode of a key: `/faultline/<key>`, the key's text percent-encoded so that it is one
/// path segment (no `/`, never `.` or `..`).
pub fn znode_path(key: Option<&Value>) -> String {
    let text = cluster::key_text(key);
    let mut path = format!("{ROOT}/");
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_~".contains(&b) {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path
}

impl ZookeeperDb {
    fn node_dir(&self, node: &str) -> String {
        self.cluster.node_dir(node)
    }

    fn data_dir(&self, node: &str) -> String {
        format!("{}/data", self.node_dir(node))
    }

    fn conf_dir(&self, node: &str) -> String {
        format!("{}/conf", self.node_dir(node))
    }

    /// `node`'s log (the JVM's console), on the node.
    pub fn log_path(&self, node: &str) -> String {
        format!("{}/zookeeper.log", self.node_dir(node))
    }

    fn pidfile(&self, node: &str) -> String {
        format!("{}/zookeeper.pid", self.node_dir(node))
    }

    /// The libfaketime offset file of `node`.
    pub fn faketime_file(&self, node: &str) -> String {
        format!("{}/faketime", self.node_dir(node))
    }

    /// The JVM without its command line: enough to find, signal and kill it.
    fn process(&self, node: &str) -> Daemon {
        Daemon::new(JAVA, &self.pidfile(node), &self.log_path(node))
    }

    /// The JVM's full command line and environment.
    fn daemon(&self, node: &str) -> Daemon {
        let conf = self.conf_dir(node);
        let mut class_path = vec![conf.clone()];
        class_path.extend(CLASS_PATH.iter().map(|s| s.to_string()));
        let mut daemon = self.process(node);
        if self.faketime {
            daemon = daemon
                .env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", &self.faketime_file(node))
                .env("FAKETIME_NO_CACHE", "1")
                // libfaketime reads fractions of a second with the locale's decimal point.
                .env("LC_NUMERIC", "C");
        }
        daemon.args([
            "-Xms64m".to_string(),
            "-Xmx128m".to_string(),
            "-XX:+UseSerialGC".to_string(),
            "-XX:TieredStopAtLevel=1".to_string(),
            // No /tmp/hsperfdata_<user>/<pid> file per JVM.
            "-XX:-UsePerfData".to_string(),
            format!("-Dzookeeper.log.dir={}", self.node_dir(node)),
            "-Dzookeeper.root.logger=INFO,CONSOLE".to_string(),
            "-cp".to_string(),
            class_path.join(":"),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain".to_string(),
            format!("{conf}/zoo.cfg"),
        ])
    }

    /// `node`'s `zoo.cfg`.
    pub fn zoo_cfg(&self, node: &str) -> Result<String, HarnessError> {
        let endpoints = self.cluster.endpoints()?;
        let own = &endpoints[node];
        let mut cfg = format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
             clientPortAddress={}\nadmin.enableServer=false\n4lw.commands.whitelist=*\n",
            self.data_dir(node),
            own.ports[CLIENT],
            own.host
        );
        for (i, name) in self.cluster.nodes.iter().enumerate() {
            let e = &endpoints[name];
            cfg.push_str(&format!(
                "server.{}={}:{}:{}\n",
                i + 1,
                e.host,
                e.ports[QUORUM],
                e.ports[ELECTION]
            ));
        }
        Ok(cfg)
    }

    /// Where `node`'s clients connect (`host:port`; in local mode known after the first
    /// setup chose the ports).
    pub fn client_addr(&self, node: &str) -> Result<String, HarnessError> {
        Ok(self.cluster.endpoint(node)?.addr(CLIENT))
    }

    /// Kills a JVM left by an earlier setup in this directory, and writes a fresh data dir
    /// and configuration.
    async fn prepare(&self, node: &Node) -> Result<(), HarnessError> {
        let name = &node.name;
        if self.prepared.lock().expect("prepared lock").contains(name) {
            return Ok(());
        }
        let remote = &*node.remote;
        let id = self
            .cluster
            .id(name)
            .ok_or_else(|| db_error(name, "setup", "not a member of this ensemble"))?;
        self.kill_process(remote, name).await?;
        let (data, conf) = (self.data_dir(name), self.conf_dir(name));
        daemon::run(remote, &Command::new("rm", &["-rf", &data, &conf])).await?;
        daemon::run(remote, &Command::new("mkdir", &["-p", &data, &conf])).await?;
        daemon::write_file(
            remote,
            &format!("{data}/myid"),
            format!("{id}\n").as_bytes(),
        )
        .await?;
        daemon::write_file(
            remote,
            &format!("{conf}/zoo.cfg"),
            self.zoo_cfg(name)?.as_bytes(),
        )
        .await?;
        daemon::run(
            remote,
            &Command::new(
                "cp",
                &[LOG4J_PROPERTIES, &format!("{conf}/log4j.properties")],
            ),
        )
        .await?;
        if self.faketime {
            // The offset file exists before the JVM starts, so it never reads a missing one.
            daemon::write_file(
                remote,
                &self.faketime_file(name),
                faketime_offset(0).as_bytes(),
            )
            .await?;
        }
        self.prepared
            .lock()
            .expect("prepared lock")
            .insert(name.clone());
        Ok(())
    }

    /// SIGKILL of the JVM (idempotent), then removal of libfaketime's shared memory of the
    /// pid in the pid file, which a JVM killed by a signal (by us, or dead of its own) cannot
    /// remove itself. Only a pid that is no longer alive is cleaned.
    async fn kill_process(&self, remote: &dyn Remote, node: &str) -> Result<(), HarnessError> {
        let process = self.process(node);
        let recorded = remote
            .exec(&Command::new("cat", &[&self.pidfile(node)]))
            .await?;
        let pid = recorded
            .success()
            .then(|| {
                String::from_utf8_lossy(&recorded.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            })
            .flatten()
            .filter(|&pid| pid > 0);
        process.kill(remote).await?;
        if let Some(pid) = pid {
            if !daemon::alive(remote, pid).await? {
                daemon::run(
                    remote,
                    &Command::new(
                        "rm",
                        &[
                            "-f",
                            &format!("/dev/shm/faketime_shm_{pid}"),
                            &format!("/dev/shm/sem.faketime_sem_{pid}"),
                        ],
                    ),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Waits until `srvr` shows the node in a quorum, then makes sure the root znode exists
    /// (which also proves a session can be made through this node).
    async fn await_ready(&self, node: &Node) -> Result<(), HarnessError> {
        let addr = self.client_addr(&node.name)?;
        let deadline = Instant::now() + self.ready_timeout;
        let process = self.process(&node.name);
        loop {
            if process.pid(&*node.remote).await?.is_none() {
                return Err(db_error(
                    &node.name,
                    "setup",
                    format!(
                        "the JVM exited: {}",
                        log_tail(&*node.remote, &self.log_path(&node.name)).await
                    ),
                ));
            }
            let last = match four_letter_word(&addr, "srvr").await {
                Ok(reply) => match srvr_mode(&reply) {
                    Some("leader" | "follower" | "standalone") => {
                        let remaining = deadline.saturating_duration_since(Instant::now());
                        match create_root(&addr, remaining).await {
                            Ok(()) => return Ok(()),
                            Err(e) => format!("creating {ROOT}: {e}"),
                        }
                    }
                    mode => format!("mode {mode:?}"),
                },
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(db_error(
                    &node.name,
                    "setup",
                    format!("not serving after {:?}: {last}", self.ready_timeout),
                ));
            }
            tokio::time::sleep(Duration::from_millis(READY_POLL_MS)).await;
        }
    }

    async fn setup_node(&self, node: &Node) -> Result<(), HarnessError> {
        self.prepare(node).await?;
        let pid = self.daemon(&node.name).start(&*node.remote).await?;
        tracing::info!(node = %node.name, pid, faketime = self.faketime, "started zookeeper");
        self.await_ready(node).await
    }

    async fn teardown_node(&self, node: &Node) -> Result<(), HarnessError> {
        let remote = &*node.remote;
        let name = &node.name;
        self.kill_process(remote, name).await?;
        daemon::run(
            remote,
            &Command::new(
                "rm",
                &[
                    "-rf",
                    &self.data_dir(name),
                    &self.conf_dir(name),
                    &self.pidfile(name),
                    &self.faketime_file(name),
                ],
            ),
        )
        .await?;
        self.prepared.lock().expect("prepared lock").remove(name);
        Ok(())
    }
}

/// Sends a four-letter word (`srvr`, `ruok`, ...) and returns the whole reply.
pub async fn four_letter_word(addr: &str, word: &str) -> Result<String, String> {
    let exchange = async {
        let addr = resolve(addr).await?;
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream
            .write_all(word.as_bytes())
            .await
            .map_err(|e| format!("sending {word}: {e}"))?;
        let mut reply = Vec::new();
        (&mut stream)
            .take(64 * 1024)
            .read_to_end(&mut reply)
            .await
            .map_err(|e| format!("reading the reply to {word}: {e}"))?;
        Ok(String::from_utf8_lossy(&reply).into_owned())
    };
    tokio::time::timeout(Duration::from_millis(PROBE_TIMEOUT_MS), exchange)
        .await
        .unwrap_or_else(|_| Err(format!("{word} took longer than {PROBE_TIMEOUT_MS} ms")))
}

/// Opens a session on `addr` only, bounded by `limit`.
/// A client's session with one node, made when first needed: at `open` if the node answers,
/// else at the next operation. The coordination clients (locks, elections, logs and queues)
/// keep theirs in one.
#[derive(Default)]
pub(crate) struct LazySession {
    addr: Option<String>,
    session: Option<zk::Client>,
}

impl LazySession {
    /// `node`'s address, and a session if one can be made within `limit`. A node that is down
    /// is not a harness error: the session is made at the first operation then, and failing
    /// to make it fails that operation.
    pub(crate) async fn open(
        db: &ZookeeperDb,
        node: &str,
        limit: Duration,
    ) -> Result<LazySession, HarnessError> {
        let addr = db.client_addr(node).map_err(|e| HarnessError::Client {
            node: node.to_string(),
            why: e.to_string(),
        })?;
        let session = connect(&addr, limit).await.ok();
        Ok(LazySession {
            addr: Some(addr),
            session,
        })
    }

    /// The session, made now if there is none. Nothing is sent before a session exists, so
    /// failing to make one is a certain `fail`, returned as the operation's completion.
    pub(crate) async fn get(&mut self, limit: Duration) -> Result<zk::Client, Completion> {
        if let Some(session) = &self.session {
            return Ok(session.clone());
        }
        let Some(addr) = &self.addr else {
            return Err(Completion::fail("not-opened"));
        };
        match connect(addr, limit).await {
            Ok(session) => {
                self.session = Some(session.clone());
                Ok(session)
            }
            Err(e) => Err(Completion::fail(format!("connect: {e}"))),
        }
    }

    /// Drops the session (closing it): the next operation makes a new one.
    pub(crate) fn forget(&mut self) {
        self.session = None;
    }

    /// Drops the session when `completion` says it answers nothing again (expired, closed):
    /// a failed read is a `fail`, so the worker keeps this client, and without a new session
    /// every later operation would fail the same way. Returns whether it did; the session's
    /// ephemeral nodes went with it.
    pub(crate) fn forget_if_over(&mut self, completion: &Completion) -> bool {
        let over = match completion {
            Completion::Fail(why) | Completion::Info(why) => {
                why.as_str().is_some_and(|w| TERMINAL_ERRORS.contains(&w))
            }
            _ => false,
        };
        if over {
            self.forget();
        }
        over
    }
}

/// How the client library words the errors after which a session answers nothing again
/// (its `Error::is_terminated`).
pub(crate) const TERMINAL_ERRORS: [&str; 3] = [
    "session expired",
    "no available hosts",
    "client has been closed",
];

pub(crate) async fn connect(addr: &str, limit: Duration) -> Result<zk::Client, String> {
    let connecting = zk::Client::connector()
        .with_session_timeout(Duration::from_millis(SESSION_TIMEOUT_MS))
        // One host: give up when it refuses instead of cycling until the session timeout.
        .with_fail_eagerly()
        .connect(addr);
    match tokio::time::timeout(limit, connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no session within {limit:?}")),
    }
}

async fn create_root(addr: &str, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let client = connect(addr, limit).await?;
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let remaining = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(remaining, client.create(ROOT, b"", &options)).await {
        Ok(Ok(_)) | Ok(Err(zk::Error::NodeExists)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no reply within {limit:?}")),
    }
}

impl Db for ZookeeperDb {
    fn setup<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(self.setup_node(node))
    }

    fn teardown<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(self.teardown_node(node))
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

    fn as_clock(&self) -> Option<&dyn ClockSkew> {
        // Without libfaketime loaded, an offset file would move nothing.
        self.faketime.then_some(self as &dyn ClockSkew)
    }

    fn log_files(&self, _test: &Test, node: &Node) -> Vec<PathBuf> {
        vec![PathBuf::from(self.log_path(&node.name))]
    }
}

impl Kill for ZookeeperDb {
    fn kill<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(self.kill_process(&*node.remote, &node.name))
    }

    fn start<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        // No readiness wait: a node restarted while the ensemble has no quorum must not block
        // the nemesis. Its offset file (if any) is kept: a restarted node keeps its clock.
        Box::pin(async move {
            let pid = self.daemon(&node.name).start(&*node.remote).await?;
            tracing::info!(node = %node.name, pid, "restarted zookeeper");
            Ok(())
        })
    }
}

impl Pause for ZookeeperDb {
    fn pause<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.process(&node.name)
                .signal(&*node.remote, Signal::Stop)
                .await
        })
    }

    fn resume<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.process(&node.name)
                .signal(&*node.remote, Signal::Cont)
                .await
        })
    }
}

impl Primary for ZookeeperDb {
    fn primaries<'a>(
        &'a self,
        _test: &'a Test,
        nodes: &'a [Node],
    ) -> BoxFuture<'a, Result<Vec<String>, HarnessError>> {
        Box::pin(async move {
            let mut probes = tokio::task::JoinSet::new();
            for node in nodes {
                let name = node.name.clone();
                let addr = self.client_addr(&name)?;
                probes.spawn(async move {
                    let reply = four_letter_word(&addr, "srvr").await.ok()?;
                    matches!(srvr_mode(&reply), Some("leader" | "standalone")).then_some(name)
                });
            }
            let mut leaders = Vec::new();
            while let Some(joined) = probes.join_next().await {
                if let Ok(Some(name)) = joined {
                    leaders.push(name);
                }
            }
            leaders.sort();
            Ok(leaders)
        })
    }
}

impl ClockSkew for ZookeeperDb {
    fn set_offset<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
        offset_ms: i64,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let file = self.faketime_file(&node.name);
            if offset_ms == 0 {
                // Healing runs on every exit path, also for a node whose setup never wrote
                // the file (or after teardown removed it): no file, no JVM reading it,
                // nothing to reset.
                let exists = node
                    .remote
                    .exec(&Command::new("test", &["-e", &file]))
                    .await?;
                if !exists.success() {
                    return Ok(());
                }
            }
            daemon::write_file(&*node.remote, &file, faketime_offset(offset_ms).as_bytes()).await
        })
    }
}

/// Whether a ZooKeeper error says the request certainly changed nothing: the server answered
/// with a definite rejection (no node, version mismatch, exists, ...) or the client refused
/// to send it. Connection loss, session expiry, timeouts and unknown errors do not say.
pub fn is_definite(error: &zk::Error) -> bool {
    use zk::Error::*;
    matches!(
        error,
        NoNode
            | NoAuth
            | BadVersion
            | NoChildrenForEphemerals
            | NodeExists
            | NotEmpty
            | InvalidAcl
            | AuthFailed
            | BadArguments(_)
            | NotReadOnly
            | NoWatcher
            | QuotaExceeded
            | Throttled
            | MarshallingError
            | Unimplemented
            | ReconfigDisabled
            | NoHosts
    )
}

/// What a failed request means. `wrote` = the request may change state (`set_data`,
/// `create`): an indefinite error is then `info`; a read (`get_data`, `sync`, a cas's
/// read) changes nothing, so any error leaves it a certain `fail`.
pub fn classify_error(error: &zk::Error, wrote: bool) -> Completion {
    if wrote && !is_definite(error) {
        Completion::info(error.to_string())
    } else {
        Completion::fail(error.to_string())
    }
}

/// Whether the session is finished and a new one is needed.
fn session_is_over(error: &zk::Error) -> bool {
    matches!(
        error,
        zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed
    )
}

/// A client of one ZooKeeper node: one session (a template until opened).
pub struct ZookeeperClient {
    db: Arc<ZookeeperDb>,
    sync_reads: bool,
    request_timeout: Duration,
    addr: Option<String>,
    session: Option<zk::Client>,
}

impl std::fmt::Debug for ZookeeperClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZookeeperClient")
            .field("addr", &self.addr)
            .field("sync_reads", &self.sync_reads)
            .field("connected", &self.session.is_some())
            .finish()
    }
}

/// Why one request did not complete normally.
enum Failure {
    /// The server or client answered with an error.
    Error(zk::Error),
    /// No answer within the request's time.
    Timeout,
}

impl ZookeeperClient {
    /// Runs one request bounded by the op's deadline.
    async fn timed<T>(
        deadline: Instant,
        request: impl std::future::Future<Output = Result<T, zk::Error>>,
    ) -> Result<T, Failure> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Failure::Error(e)),
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// The completion of a failed request; forgets a finished session.
    fn failed(&mut self, failure: Failure, wrote: bool) -> Completion {
        match failure {
            Failure::Error(e) => {
                if session_is_over(&e) {
                    self.session = None;
                }
                classify_error(&e, wrote)
            }
            Failure::Timeout if wrote => Completion::info("timeout"),
            Failure::Timeout => Completion::fail("timeout"),
        }
    }

    async fn call(&mut self, op: &Invocation) -> Completion {
        let deadline = Instant::now() + self.request_timeout;
        let Some(addr) = self.addr.clone() else {
            return Completion::fail("not-opened");
        };
        let written = match (op.f.as_str(), op.value.as_array().map(Vec::as_slice)) {
            ("read", _) => None,
            ("write", _) => Some(&op.value),
            ("cas", Some([_, new])) => Some(new),
            ("cas", _) => return Completion::fail("bad-request: cas takes [expected, new]"),
            (other, _) => return Completion::fail(format!("unsupported: {other}")),
        };
        if let Err(why) = written.map_or(Ok(()), cluster::check_writable) {
            return Completion::fail(why);
        }
        if self.session.is_none() {
            // Nothing is sent before a session exists: failing to make one is certain.
            match connect(&addr, deadline.saturating_duration_since(Instant::now())).await {
                Ok(session) => self.session = Some(session),
                Err(e) => return Completion::fail(format!("connect: {e}")),
            }
        }
        let session = self.session.clone().expect("connected above");
        let path = znode_path(op.key.as_ref());
        match op.f.as_str() {
            "read" => match self.read(&session, &path, deadline).await {
                Ok(Some((value, _))) => Completion::Ok(value),
                Ok(None) => Completion::Ok(Value::Null),
                Err(failure) => self.failed(failure, false),
            },
            "write" => self.write(&session, &path, &op.value, deadline).await,
            _ => match op.value.as_array().map(Vec::as_slice) {
                Some([expected, new]) => {
                    self.cas(&session, &path, expected, new, deadline, &op.value)
                        .await
                }
                _ => Completion::fail("bad-request: cas takes [expected, new]"),
            },
        }
    }

    /// `get_data` (after `sync` with `sync_reads`): the value and version, `None` when the
    /// znode does not exist.
    async fn read(
        &self,
        session: &zk::Client,
        path: &str,
        deadline: Instant,
    ) -> Result<Option<(Value, i32)>, Failure> {
        if self.sync_reads {
            Self::timed(deadline, session.sync(ROOT)).await?;
        }
        match Self::timed(deadline, session.get_data(path)).await {
            Ok((data, stat)) => Ok(Some((cluster::decode_value(&data), stat.version))),
            Err(Failure::Error(zk::Error::NoNode)) => Ok(None),
            Err(failure) => Err(failure),
        }
    }

    /// `set_data` with any version; `create` when the znode is missing; `set_data` again
    /// when another client created it first. Each step before the last was definitely
    /// rejected, so only the last one can have applied.
    async fn write(
        &mut self,
        session: &zk::Client,
        path: &str,
        value: &Value,
        deadline: Instant,
    ) -> Completion {
        let data = cluster::encode_value(value);
        match Self::timed(deadline, session.set_data(path, &data, None)).await {
            Ok(_) => return Completion::Ok(value.clone()),
            Err(Failure::Error(zk::Error::NoNode)) => {}
            Err(failure) => return self.failed(failure, true),
        }
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match Self::timed(deadline, session.create(path, &data, &options)).await {
            Ok(_) => return Completion::Ok(value.clone()),
            Err(Failure::Error(zk::Error::NodeExists)) => {}
            Err(failure) => return self.failed(failure, true),
        }
        match Self::timed(deadline, session.set_data(path, &data, None)).await {
            Ok(_) => Completion::Ok(value.clone()),
            Err(failure) => self.failed(failure, true),
        }
    }

    /// Reads the value and its version; a different value is `compare-failed` (observed by
    /// that read); else `set_data` with the version read, which applies only if nothing
    /// changed in between. A changed version proves a write came between, not that the
    /// value differs (it may have been written again), so it reads again rather than
    /// report `compare-failed`.
    async fn cas(
        &mut self,
        session: &zk::Client,
        path: &str,
        expected: &Value,
        new: &Value,
        deadline: Instant,
        argument: &Value,
    ) -> Completion {
        let data = cluster::encode_value(new);
        for _ in 0..CAS_ATTEMPTS {
            let current = match self.read(session, path, deadline).await {
                Ok(current) => current,
                // Nothing written yet: certain.
                Err(failure) => return self.failed(failure, false),
            };
            match current {
                None if expected.is_null() => {
                    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                    match Self::timed(deadline, session.create(path, &data, &options)).await {
                        Ok(_) => return Completion::Ok(argument.clone()),
                        // Created by someone else since: read again.
                        Err(Failure::Error(zk::Error::NodeExists)) => continue,
                        Err(failure) => return self.failed(failure, true),
                    }
                }
                None => return Completion::fail("compare-failed"),
                Some((value, _)) if value != *expected => {
                    return Completion::fail("compare-failed")
                }
                Some((_, version)) => {
                    match Self::timed(deadline, session.set_data(path, &data, Some(version))).await
                    {
                        Ok(_) => return Completion::Ok(argument.clone()),
                        Err(Failure::Error(zk::Error::BadVersion)) => continue,
                        Err(failure) => return self.failed(failure, true),
                    }
                }
            }
        }
        // Every attempt met a concurrent write; none applied.
        Completion::fail("version-changed")
    }
}

impl Client for ZookeeperClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async move {
            let addr = self
                .db
                .client_addr(node)
                .map_err(|e| HarnessError::Client {
                    node: node.to_string(),
                    why: e.to_string(),
                })?;
            // A node that is down (killed, cut off) is not a harness error: the session is
            // made at the first invoke then, and failing to make it fails that operation.
            let session = match connect(&addr, self.request_timeout).await {
                Ok(session) => Some(session),
                Err(e) => {
                    tracing::debug!(node, "no session yet: {e}");
                    None
                }
            };
            Ok(Box::new(ZookeeperClient {
                db: self.db.clone(),
                sync_reads: self.sync_reads,
                request_timeout: self.request_timeout,
                addr: Some(addr),
                session,
            }) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(self.call(op))
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            // Dropping the last handle closes the session in the background.
            self.session = None;
            Ok(())
        })
    }
}

impl ZookeeperDb {
    /// The ensemble `test` describes (nodes, mode, directories, option `ready_timeout_ms`;
    /// libfaketime when `test.nemesis` names `clock`), not yet set up.
    pub fn from_test(test: &Test) -> Result<ZookeeperDb, TargetError> {
        let options = Options::new("zookeeper", test, &OPTIONS)?;
        let cluster = Cluster::new(test, &options, DEFAULT_NODES, &STANDARD_PORTS)?;
        let ready_timeout_ms = options
            .u64_in("ready_timeout_ms", 1, 3_600_000)?
            .unwrap_or(READY_TIMEOUT_MS);
        Ok(ZookeeperDb {
            cluster,
            faketime: test.nemesis.iter().any(|n| n == "clock"),
            ready_timeout: Duration::from_millis(ready_timeout_ms),
            prepared: Mutex::new(BTreeSet::new()),
        })
    }

    /// The node names.
    pub fn nodes(&self) -> &[String] {
        &self.cluster.nodes
    }
}

impl ZookeeperClient {
    /// A template client of `db`; with `sync_reads` every read (also a cas's) `sync`s first;
    /// each operation is bounded by `request_timeout`.
    pub fn new(db: Arc<ZookeeperDb>, sync_reads: bool, request_timeout: Duration) -> Self {
        ZookeeperClient {
            db,
            sync_reads,
            request_timeout,
            addr: None,
            session: None,
        }
    }
}

/// The ZooKeeper target for `test`.
pub fn target(test: &Test) -> Result<Target, TargetError> {
    if matches!(test.workload.as_str(), "watch" | "ephemeral") {
        return coordination_target(test);
    }
    enum Kind {
        Register,
        Lock(LockSpec),
        Election(ElectionMode),
        Log(LogMode),
    }
    let kind = match test.workload.as_str() {
        "register" => Kind::Register,
        "broadcast" | "log" => Kind::Log(LogMode::Broadcast),
        "queue" => Kind::Log(LogMode::Queue),
        "lock" | "fenced-lock" => {
            Kind::Lock(
                LockSpec::from_test(test).map_err(|why| TargetError::BadOption {
                    target: "zookeeper".into(),
                    option: "lock".into(),
                    why,
                })?,
            )
        }
        "election" => {
            let spec = ElectionSpec::from_test(test).map_err(|why| TargetError::BadOption {
                target: "zookeeper".into(),
                option: "election".into(),
                why,
            })?;
            if spec.candidates != Candidates::Clients {
                return Err(TargetError::BadOption {
                    target: "zookeeper".into(),
                    option: "candidates".into(),
                    why: "ZooKeeper's election recipe elects among its clients; its servers' \
                          own leader is not exposed as an election"
                        .into(),
                });
            }
            Kind::Election(ElectionMode::Election(spec))
        }
        "unique-ids" => Kind::Election(ElectionMode::UniqueIds),
        _ => {
            return Err(TargetError::UnsupportedWorkload {
                target: "zookeeper".into(),
                workload: test.workload.clone(),
            })
        }
    };
    let options = Options::new("zookeeper", test, &OPTIONS)?;
    let sync_reads = options.bool("sync_reads")?.unwrap_or(false);
    let request_timeout_ms = options
        .u64_in("request_timeout_ms", 1, 3_600_000)?
        .unwrap_or_else(|| cluster::default_request_timeout_ms(test));
    let db = Arc::new(ZookeeperDb::from_test(test)?);
    let request_timeout = Duration::from_millis(request_timeout_ms);
    let client: Arc<dyn Client> = match kind {
        Kind::Log(mode) => Arc::new(ZookeeperLogClient::new(
            db.clone(),
            mode,
            sync_reads,
            request_timeout,
        )),
        Kind::Lock(spec) => Arc::new(ZookeeperLockClient::new(db.clone(), spec, request_timeout)),
        Kind::Election(mode) => Arc::new(ZookeeperElectionClient::new(
            db.clone(),
            mode,
            request_timeout,
        )),
        Kind::Register => Arc::new(ZookeeperClient::new(
            db.clone(),
            sync_reads,
            request_timeout,
        )),
    };
    Ok(Target {
        db: db.clone(),
        nodes: db.nodes().to_vec(),
        client,
    })
}

/// The ZooKeeper target for the `watch` and `ephemeral` workloads.
fn coordination_target(test: &Test) -> Result<Target, TargetError> {
    let bad = |option: &str, why: String| TargetError::BadOption {
        target: "zookeeper".into(),
        option: option.into(),
        why,
    };
    let options = Options::new("zookeeper", test, &OPTIONS)?;
    let request_timeout_ms = options
        .u64_in("request_timeout_ms", 1, 3_600_000)?
        .unwrap_or_else(|| cluster::default_request_timeout_ms(test));
    let request_timeout = Duration::from_millis(request_timeout_ms);
    let db = Arc::new(ZookeeperDb::from_test(test)?);
    let client: Arc<dyn Client> = if test.workload == "watch" {
        WatchSpec::from_test(test).map_err(|why| bad("watch", why))?;
        Arc::new(ZookeeperWatchClient::new(db.clone(), request_timeout))
    } else {
        let spec = EphemeralSpec::from_test(test).map_err(|why| bad("ttl_ms", why))?;
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&spec.ttl_ms) {
            return Err(bad(
                "ttl_ms",
                format!(
                    "ZooKeeper negotiates session timeouts of 2 to 20 ticks ({MIN_SESSION_TIMEOUT_MS} \
                     to {MAX_SESSION_TIMEOUT_MS} ms with this ensemble's tick), got {}",
                    spec.ttl_ms
                ),
            ));
        }
        Arc::new(ZookeeperEphemeralClient::new(db.clone(), request_timeout))
    };
    Ok(Target {
        db: db.clone(),
        nodes: db.nodes().to_vec(),
        client,
    })
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn offsets_are_written_as_libfaketime_reads_them() {
        assert_eq!(faketime_offset(0), "+0");
        assert_eq!(faketime_offset(30_000), "+30s");
        assert_eq!(faketime_offset(-120_000), "-120s");
        assert_eq!(faketime_offset(1_250), "+1.250s");
        assert_eq!(faketime_offset(-5), "-0.005s");
    }

    #[test]
    fn srvr_replies_give_the_mode() {
        let reply = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nZxid: 0x0\n\
                     Mode: follower\nNode count: 5\n";
        assert_eq!(srvr_mode(reply), Some("follower"));
        assert_eq!(srvr_mode("Mode: leader\n"), Some("leader"));
        assert_eq!(
            srvr_mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }

    #[test]
    fn keys_are_one_path_segment_under_the_root() {
        assert_eq!(znode_path(Some(&json!(12))), "/faultline/12");
        assert_eq!(znode_path(Some(&json!("a/b"))), "/faultline/a%2Fb");
        assert_eq!(znode_path(Some(&json!(".."))), "/faultline/%2E%2E");
        assert_eq!(znode_path(None), "/faultline/_");
    }

    #[test]
    fn errors_map_to_fail_or_info() {
        // A write that may have been sent: unknown unless the server said no.
        assert_eq!(
            classify_error(&zk::Error::ConnectionLoss, true).kind(),
            faultline_core::OpType::Info
        );
        assert_eq!(
            classify_error(&zk::Error::SessionExpired, true).kind(),
            faultline_core::OpType::Info
        );
        assert_eq!(
            classify_error(&zk::Error::Timeout, true).kind(),
            faultline_core::OpType::Info
        );
        assert_eq!(
            classify_error(&zk::Error::BadVersion, true).kind(),
            faultline_core::OpType::Fail
        );
        assert_eq!(
            classify_error(&zk::Error::NoHosts, true).kind(),
            faultline_core::OpType::Fail
        );
        // A read changes nothing: always a certain failure.
        assert_eq!(
            classify_error(&zk::Error::ConnectionLoss, false),
            Completion::fail("connection to server has lost")
        );
        assert!(session_is_over(&zk::Error::SessionExpired));
        assert!(!session_is_over(&zk::Error::ConnectionLoss));
    }

    #[test]
    fn zoo_cfg_names_every_server_and_the_clock_is_optional() {
        let mut test = Test::example("zookeeper", "register", 3);
        test.nodes = Vec::new();
        test.target_options
            .insert("data_dir".into(), json!("/tmp/faultline-zk-unit"));
        test.addresses = (1..=3)
            .map(|i| (format!("n{i}"), format!("10.88.0.1{i}")))
            .collect();
        let target = target(&test).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(target.nodes, ["n1", "n2", "n3"]);
        assert!(
            target.db.as_clock().is_none(),
            "no clock nemesis, no libfaketime"
        );
        let mut db = ZookeeperDb::from_test(&test).unwrap_or_else(|e| panic!("{e}"));
        db.faketime = true;
        let cfg = db.zoo_cfg("n2").unwrap();
        assert!(
            cfg.contains("dataDir=/tmp/faultline-zk-unit/n2/data\n"),
            "{cfg}"
        );
        assert!(
            cfg.contains("clientPort=2181\nclientPortAddress=10.88.0.12\n"),
            "{cfg}"
        );
        assert!(cfg.contains("server.1=10.88.0.11:2888:3888\n"), "{cfg}");
        assert!(cfg.contains("server.3=10.88.0.13:2888:3888\n"), "{cfg}");
        assert!(
            cfg.contains("4lw.commands.whitelist=*\n") && cfg.contains("admin.enableServer=false")
        );
        let daemon = db.daemon("n1");
        assert!(daemon
            .env
            .contains(&("FAKETIME_NO_CACHE".into(), "1".into())));
        assert!(!daemon
            .env
            .iter()
            .any(|(k, _)| k == "FAKETIME_DONT_FAKE_MONOTONIC"));
        assert!(daemon.args.contains(&"-Xmx128m".to_string()));
        assert!(db.as_clock().is_some());
        test.nemesis = vec!["clock".into()];
        test.target_options
            .insert("sync_reads".into(), json!("yes"));
        let Err(e) = super::target(&test) else {
            panic!("a string for a bool")
        };
        assert!(e.to_string().contains("expected true or false"), "{e}");
    }
}
