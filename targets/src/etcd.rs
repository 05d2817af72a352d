//! `etcd`: Debian's etcd 3.4 (`/usr/bin/etcd`), one member per node, through any
//! [`faultline_core::Remote`].
//!
//! [`EtcdDb`] starts each member with [`Daemon`] (`start-stop-daemon`, pid file, log file)
//! with a static `--initial-cluster` of every member, a token unique to the run and
//! `--pre-vote=true`, and waits (bounded) until the member answers a linearizable range
//! request, which needs an elected leader and a quorum. Member `node` keeps its files under
//! `<base>/<node>/` ([`crate::cluster`]): `data/` (etcd's `--data-dir`), `etcd.pid`, `etcd.log`.
//! Teardown kills the member and removes `data/` and the pid file; the log stays for the store.
//!
//! Capabilities: kill (SIGKILL of the member's pid) and start (the same command line: etcd
//! 3.4 restarts from its existing data dir and ignores the `--initial-cluster*` flags then),
//! pause / resume (SIGSTOP / SIGCONT of that pid only), primary (`/v3/maintenance/status`:
//! the leader's id equals the member's own), log files. No clock: libfaketime does not move
//! Go's clock.
//!
//! [`EtcdClient`] speaks to one member's JSON gateway ([`crate::http`]), keys and values
//! base64-encoded: read -> `/v3/kv/range` (with `"serializable": true` when option
//! `read_mode` is `serializable`), write -> `/v3/kv/put`, cas `[old, new]` -> `/v3/kv/txn`
//! comparing the VALUE with `old`; a txn reply without `succeeded` is `fail` /
//! `compare-failed`. Values are stored as their JSON text (an integer as decimal text) and
//! parsed back. How errors map to `ok` / `fail` / `info`: [`classify_reply`] and
//! `docs/targets.md`. Transactions (list-append, rw-register) and the bank's transfers and
//! reads are optimistic: a read of every key at one revision, then a `/v3/kv/txn` that commits
//! the writes only if no key read changed (`mod_revision` comparisons); see [`crate::etcd_txn`].
//!
//! Options: `nodes`, `data_dir`, `read_mode` (`linearizable` | `serializable`), `lock_api`
//! (the lock workloads through etcd's lock API, see [`crate::etcd_lock`]), `program`,
//! `request_timeout_ms`, `ready_timeout_ms`.
//!
//! Design decision: the JSON gateway and the crate's own HTTP client rather than the gRPC
//! `etcd-client` crate, which needs `protoc` at build time; the gateway's replies say enough
//! (status and the gRPC error text) to tell a definite failure from an unknown outcome.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_core::election::{Candidates, ElectionSpec};
use faultline_core::ephemeral::EphemeralSpec;
use faultline_core::lock::LockSpec;
use faultline_core::remote::{Command, Signal};
use faultline_core::txn::{parse_txn, Bank, Transfer};
use faultline_core::unique_ids::GENERATE;
use faultline_core::watch::WatchSpec;
use faultline_core::{
    BoxFuture, Client, Completion, Db, HarnessError, Invocation, Kill, Node, Pause, Primary, Test,
};

use crate::cluster::{self, log_tail, resolve, Cluster, Endpoint, Options};
use crate::daemon::{self, Daemon};
use crate::election::Candidate;
use crate::etcd_election::{self, EtcdElections};
use crate::etcd_lock::EtcdLocks;
use crate::etcd_txn::{self, Read};
use crate::http::{Connection, RequestError, Response};
use crate::lock::Holder;
use crate::{Target, TargetError};

/// Debian's etcd server.
pub const PROGRAM: &str = "/usr/bin/etcd";
/// Members when neither `test.nodes` nor option `nodes` says.
pub const DEFAULT_NODES: usize = 5;
/// etcd's standard ports (remote mode); index 0 = client, 1 = peer.
pub const STANDARD_PORTS: [u16; 2] = [2379, 2380];
const CLIENT: usize = 0;
const PEER: usize = 1;
/// How long setup waits for a member to serve.
pub const READY_TIMEOUT_MS: u64 = 30_000;
const READY_POLL_MS: u64 = 100;
/// One readiness or status probe.
const PROBE_TIMEOUT_MS: u64 = 2_000;
/// Connecting to a member (a partitioned host drops the SYN: without a bound we would wait
/// for the kernel's retries).
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// The option names this target reads.
pub const OPTIONS: [&str; 7] = [
    "nodes",
    "data_dir",
    "read_mode",
    "lock_api",
    "program",
    "request_timeout_ms",
    "ready_timeout_ms",
];
/// The key setup reads to know a member serves.
const READY_KEY: &str = "faultline-ready";

/// How reads are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Through the leader and a quorum (etcd's default).
    Linearizable,
    /// From the member's local state: fast, possibly stale.
    Serializable,
}

/// The etcd cluster: one member per node.
#[derive(Debug)]
pub struct EtcdDb {
    cluster: Cluster,
    program: String,
    token: String,
    ready_timeout: Duration,
    /// Members whose directory this db prepared (killed any stale member, removed old data):
    /// a second setup only makes sure the member runs.
    prepared: Mutex<BTreeSet<String>>,
}

fn db_error(node: &str, phase: &'static str, why: impl Into<String>) -> HarnessError {
    HarnessError::Db {
        node: node.to_string(),
        phase,
        why: why.into(),
    }
}

impl EtcdDb {
    fn node_dir(&self, node: &str) -> String {
        self.cluster.node_dir(node)
    }

    fn data_dir(&self, node: &str) -> String {
        format!("{}/data", self.node_dir(node))
    }

    /// `node`'s log (etcd's stderr), on the node.
    pub fn log_path(&self, node: &str) -> String {
        format!("{}/etcd.log", self.node_dir(node))
    }

    fn pidfile(&self, node: &str) -> String {
        format!("{}/etcd.pid", self.node_dir(node))
    }

    /// The member's process without its command line: enough to find, signal and kill it.
    fn process(&self, node: &str) -> Daemon {
        Daemon::new(&self.program, &self.pidfile(node), &self.log_path(node))
    }

    /// The member's full command line.
    fn daemon(&self, node: &str) -> Result<Daemon, HarnessError> {
        let endpoints = self.cluster.endpoints()?;
        let own = endpoints
            .get(node)
            .ok_or_else(|| db_error(node, "start", "not a member of this cluster"))?;
        let peer_url = |e: &Endpoint| format!("http://{}", e.addr(PEER));
        let client_url = format!("http://{}", own.addr(CLIENT));
        let initial_cluster: Vec<String> = endpoints
            .iter()
            .map(|(name, e)| format!("{name}={}", peer_url(e)))
            .collect();
        Ok(self.process(node).args([
            "--name".to_string(),
            node.to_string(),
            "--data-dir".to_string(),
            self.data_dir(node),
            "--listen-peer-urls".to_string(),
            peer_url(own),
            "--initial-advertise-peer-urls".to_string(),
            peer_url(own),
            "--listen-client-urls".to_string(),
            client_url.clone(),
            "--advertise-client-urls".to_string(),
            client_url,
            "--initial-cluster".to_string(),
            initial_cluster.join(","),
            // On a restart etcd finds its data dir and ignores the three initial-cluster flags.
            "--initial-cluster-state".to_string(),
            "new".to_string(),
            "--initial-cluster-token".to_string(),
            self.token.clone(),
            "--pre-vote=true".to_string(),
            "--logger=zap".to_string(),
            "--log-outputs=stderr".to_string(),
        ]))
    }

    /// Where `node`'s clients connect (`host:port`; in local mode known after the first
    /// setup chose the ports).
    pub fn client_addr(&self, node: &str) -> Result<String, HarnessError> {
        Ok(self.cluster.endpoint(node)?.addr(CLIENT))
    }

    /// Kills a member left by an earlier setup in this directory and removes its data.
    async fn prepare(&self, node: &Node) -> Result<(), HarnessError> {
        let name = &node.name;
        if self.prepared.lock().expect("prepared lock").contains(name) {
            return Ok(());
        }
        let remote = &*node.remote;
        self.process(name).kill(remote).await?;
        daemon::run(remote, &Command::new("rm", &["-rf", &self.data_dir(name)])).await?;
        daemon::run(
            remote,
            &Command::new("mkdir", &["-p", &self.node_dir(name)]),
        )
        .await?;
        self.prepared
            .lock()
            .expect("prepared lock")
            .insert(name.clone());
        Ok(())
    }

    /// Waits until `node` answers a linearizable range request, or its process dies.
    async fn await_ready(&self, node: &Node) -> Result<(), HarnessError> {
        let addr = resolve(&self.client_addr(&node.name)?)
            .await
            .map_err(|e| db_error(&node.name, "setup", e))?;
        let deadline = Instant::now() + self.ready_timeout;
        let process = self.process(&node.name);
        loop {
            if process.pid(&*node.remote).await?.is_none() {
                return Err(db_error(
                    &node.name,
                    "setup",
                    format!(
                        "etcd exited: {}",
                        log_tail(&*node.remote, &self.log_path(&node.name)).await
                    ),
                ));
            }
            let probe = json!({"key": base64_encode(READY_KEY.as_bytes())});
            let last = match post(addr, "/v3/kv/range", &probe, PROBE_TIMEOUT_MS).await {
                Ok(response) if response.status == 200 && response.body.get("header").is_some() => {
                    return Ok(())
                }
                Ok(response) => format!("HTTP {}: {}", response.status, response.body),
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
        let daemon = self.daemon(&node.name)?;
        let pid = daemon.start(&*node.remote).await?;
        tracing::info!(node = %node.name, pid, "started etcd");
        self.await_ready(node).await
    }

    async fn teardown_node(&self, node: &Node) -> Result<(), HarnessError> {
        let remote = &*node.remote;
        self.process(&node.name).kill(remote).await?;
        daemon::run(
            remote,
            &Command::new(
                "rm",
                &["-rf", &self.data_dir(&node.name), &self.pidfile(&node.name)],
            ),
        )
        .await?;
        self.prepared
            .lock()
            .expect("prepared lock")
            .remove(&node.name);
        Ok(())
    }
}

/// One request on a fresh connection, bounded by `timeout_ms` (for probes, not for ops).
async fn post(
    addr: SocketAddr,
    path: &str,
    body: &Value,
    timeout_ms: u64,
) -> Result<Response, String> {
    let request = async {
        let mut connection = Connection::connect(addr)
            .await
            .map_err(|e| format!("{e:?}"))?;
        connection
            .request("POST", path, Some(body))
            .await
            .map_err(|e| format!("{e:?}"))
    };
    tokio::time::timeout(Duration::from_millis(timeout_ms), request)
        .await
        .unwrap_or_else(|_| Err(format!("{path} took longer than {timeout_ms} ms")))
}

impl Db for EtcdDb {
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

    fn log_files(&self, _test: &Test, node: &Node) -> Vec<PathBuf> {
        vec![PathBuf::from(self.log_path(&node.name))]
    }
}

impl Kill for EtcdDb {
    fn kill<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move { self.process(&node.name).kill(&*node.remote).await })
    }

    fn start<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        // No readiness wait: a member restarted while the cluster has no quorum must not
        // block the nemesis; it rejoins in its own time.
        Box::pin(async move {
            let pid = self.daemon(&node.name)?.start(&*node.remote).await?;
            tracing::info!(node = %node.name, pid, "restarted etcd");
            Ok(())
        })
    }
}

impl Pause for EtcdDb {
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

/// Whether a `/v3/maintenance/status` reply comes from the leader: `leader` equals the
/// member's own id (`header.member_id`). Both are uint64 sent as strings.
pub fn is_leader_status(status: &Value) -> bool {
    let own = status["header"]["member_id"].as_str();
    let leader = status["leader"].as_str();
    matches!((own, leader), (Some(own), Some(leader)) if own == leader && leader != "0")
}

impl Primary for EtcdDb {
    fn primaries<'a>(
        &'a self,
        _test: &'a Test,
        nodes: &'a [Node],
    ) -> BoxFuture<'a, Result<Vec<String>, HarnessError>> {
        Box::pin(async move {
            // Every node at once, each bounded: a paused or cut-off member must not delay
            // the answer by more than one probe.
            let mut probes = tokio::task::JoinSet::new();
            for node in nodes {
                let name = node.name.clone();
                let addr = self.client_addr(&name)?;
                probes.spawn(async move {
                    let addr = resolve(&addr).await.ok()?;
                    let reply = post(addr, "/v3/maintenance/status", &json!({}), PROBE_TIMEOUT_MS)
                        .await
                        .ok()?;
                    (reply.status == 200 && is_leader_status(&reply.body)).then_some(name)
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

/// Standard base64 with padding (etcd's gateway encodes `bytes` fields this way).
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); `None` on any other character.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let text = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= digit(c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    Some(out)
}

/// The gateway request for an operation: path and JSON body. `Err` = the operation cannot be
/// expressed (a definite `fail`, nothing sent).
pub fn request_for(op: &Invocation, read_mode: ReadMode) -> Result<(&'static str, Value), String> {
    let key = base64_encode(cluster::key_text(op.key.as_ref()).as_bytes());
    let encode = |v: &Value| base64_encode(&cluster::encode_value(v));
    match op.f.as_str() {
        "read" => {
            let mut body = json!({"key": key});
            if read_mode == ReadMode::Serializable {
                body["serializable"] = json!(true);
            }
            Ok(("/v3/kv/range", body))
        }
        "write" => {
            cluster::check_writable(&op.value)?;
            Ok((
                "/v3/kv/put",
                json!({"key": key, "value": encode(&op.value)}),
            ))
        }
        "cas" => match op.value.as_array().map(Vec::as_slice) {
            Some([expected, new]) => {
                cluster::check_writable(new)?;
                // `null` is the model's never-written register: the key must not exist
                // (etcd fails a VALUE comparison on a missing key).
                let compare = if expected.is_null() {
                    json!({"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
                } else {
                    json!({"key": key, "target": "VALUE", "result": "EQUAL", "value": encode(expected)})
                };
                Ok((
                    "/v3/kv/txn",
                    json!({
                        "compare": [compare],
                        "success": [{"requestPut": {"key": key, "value": encode(new)}}],
                    }),
                ))
            }
            _ => Err("bad-request: cas takes [expected, new]".to_string()),
        },
        other => Err(format!("unsupported: {other}")),
    }
}

/// An outcome that is unknown for an operation that may change state. A read changes
/// nothing, so an unknown read is recorded as `fail` (it certainly had no effect), which keeps
/// the worker on its process.
fn indefinite(f: &str, error: impl Into<Value>) -> Completion {
    if f == "read" {
        Completion::Fail(error.into())
    } else {
        Completion::Info(error.into())
    }
}

/// What a gateway reply means for `op`.
///
/// - 200: `read` -> `ok` with the value (`null` when the key has no value), `write` -> `ok`,
///   `cas` -> `ok` when the txn `succeeded`, else `fail` / `compare-failed`. A 200 whose body
///   cannot be read is unknown.
/// - 4xx except 408: `fail` with etcd's error text (a definite rejection: bad request,
///   too many requests, ...). 408 is gRPC's `Canceled`, which may come after a proposal.
/// - 5xx and anything else ("request timed out", "context deadline exceeded", "leader
///   changed", no leader): unknown -> `info` (a read: `fail`).
pub fn classify_reply(op: &Invocation, response: &Response) -> Completion {
    if response.status == 200 {
        if !response.body.get("header").is_some_and(Value::is_object) {
            return indefinite(&op.f, format!("unreadable reply: {}", response.body));
        }
        return match op.f.as_str() {
            "read" => match response.body.get("kvs").and_then(Value::as_array) {
                None => Completion::Ok(Value::Null),
                Some(kvs) if kvs.is_empty() => Completion::Ok(Value::Null),
                Some(kvs) => {
                    // An empty value is omitted from the JSON.
                    let text = kvs[0].get("value").and_then(Value::as_str).unwrap_or("");
                    match base64_decode(text) {
                        Some(bytes) => Completion::Ok(cluster::decode_value(&bytes)),
                        None => Completion::fail(format!("unreadable value {text:?}")),
                    }
                }
            },
            "cas" => {
                if response.body.get("succeeded") == Some(&Value::Bool(true)) {
                    Completion::Ok(op.value.clone())
                } else {
                    Completion::fail("compare-failed")
                }
            }
            _ => Completion::Ok(op.value.clone()),
        };
    }
    let error = response
        .body
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("http-{}", response.status));
    if (400..500).contains(&response.status) && response.status != 408 {
        Completion::fail(error)
    } else {
        indefinite(&op.f, error)
    }
}

/// The operations a client speaks: the register workload's, transactions (list-append,
/// rw-register), or the bank's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    Register,
    Txn,
    Bank(Bank),
    /// The lock workloads (see [`crate::etcd_lock`]).
    Lock(LockSpec),
    /// Total order broadcast (see [`crate::etcd_log`]).
    Broadcast,
    /// The election workload (see [`crate::etcd_election`]).
    Election(ElectionSpec),
    /// The unique-ids workload (see [`crate::etcd_election`]).
    UniqueIds,
    /// Change notification (see [`crate::etcd_watch`]).
    Watch(WatchSpec),
    /// Ephemeral registrations (see [`crate::etcd_ephemeral`]).
    Ephemeral(EphemeralSpec),
}

/// What became of one request.
pub(crate) enum Delivery {
    Reply(Response),
    /// It never left (no connection): the member never saw it.
    NotSent(String),
    /// Sent, then no reply (connection lost, timeout): it may still apply.
    Lost(String),
}

/// A client of one etcd member (a template until opened).
#[derive(Debug)]
pub struct EtcdClient {
    db: Arc<EtcdDb>,
    mode: ClientMode,
    pub(crate) read_mode: ReadMode,
    request_timeout: Duration,
    addr: Option<SocketAddr>,
    connection: Option<Connection>,
    /// The lock workloads: this client's hold, the lease behind it, and whether it made sure
    /// the fence key exists.
    holder: Holder,
    lock_lease: Option<String>,
    fence_ready: bool,
    /// The lock workloads go through etcd's lock API (option `lock_api`).
    lock_api: bool,
    lock_key: Option<String>,
    /// The election workload: the epoch this client leads, and the lease and leader key of
    /// the campaign that won it.
    candidate: Candidate,
    election_lease: Option<String>,
    election_leader: Option<Value>,
    /// The watch workload: this client's watch stream.
    watch: crate::etcd_watch::WatchState,
    /// The ephemeral workload: this client's registration and its keepalive task.
    registration: Option<crate::etcd_ephemeral::Registration>,
}

impl EtcdClient {
    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The member's gateway address, once opened.
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// One gateway request, bounded by `deadline` (connecting first if needed).
    pub(crate) async fn post(&mut self, path: &str, body: &Value, deadline: Instant) -> Delivery {
        let Some(addr) = self.addr else {
            return Delivery::NotSent("not-opened".into());
        };
        if !self
            .connection
            .as_ref()
            .is_some_and(Connection::is_reusable)
        {
            self.connection = None;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let limit = Duration::from_millis(CONNECT_TIMEOUT_MS).min(remaining);
            match tokio::time::timeout(limit, Connection::connect(addr)).await {
                Ok(Ok(connection)) => self.connection = Some(connection),
                Ok(Err(RequestError::Connect(e))) | Ok(Err(RequestError::Lost(e))) => {
                    return Delivery::NotSent(format!("connect: {e}"))
                }
                Err(_) => return Delivery::NotSent("connect-timeout".into()),
            }
        }
        let connection = self.connection.as_mut().expect("connected above");
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, connection.request("POST", path, Some(body))).await {
            Ok(Ok(response)) => Delivery::Reply(response),
            // Sent, then no reply: the request may still apply. The connection may carry a
            // late reply, so it is never reused.
            Ok(Err(RequestError::Lost(e))) | Ok(Err(RequestError::Connect(e))) => {
                self.connection = None;
                Delivery::Lost(format!("connection-lost: {e}"))
            }
            Err(_) => {
                self.connection = None;
                Delivery::Lost("timeout".into())
            }
        }
    }

    async fn call(&mut self, op: &Invocation) -> Completion {
        let deadline = Instant::now() + self.request_timeout;
        match (self.mode, op.f.as_str()) {
            (ClientMode::Register, _) => self.register(op, deadline).await,
            (ClientMode::Txn, "txn") => self.txn(op, deadline).await,
            (ClientMode::Bank(bank), "read") => self.bank_read(&bank, deadline).await,
            (ClientMode::Bank(bank), "transfer") => self.transfer(&bank, op, deadline).await,
            (ClientMode::Lock(spec), _) => {
                // The holder and the lease live in the client, which the service borrows.
                let mut holder = std::mem::take(&mut self.holder);
                let mut lease = self.lock_lease.take();
                let mut fence_ready = self.fence_ready;
                let mut api_key = self.lock_key.take();
                let api = self.lock_api;
                let completion = {
                    let mut service = EtcdLocks {
                        client: self,
                        lease: &mut lease,
                        fence_ready: &mut fence_ready,
                        api,
                        api_key: &mut api_key,
                    };
                    holder.invoke(&mut service, &spec, op).await
                };
                self.holder = holder;
                self.lock_lease = lease;
                self.fence_ready = fence_ready;
                self.lock_key = api_key;
                completion
            }
            (ClientMode::Broadcast, _) => self.broadcast(op).await,
            (ClientMode::Election(spec), _) => {
                let mut candidate = std::mem::take(&mut self.candidate);
                let mut lease = self.election_lease.take();
                let mut leader = self.election_leader.take();
                let completion = {
                    let mut service = EtcdElections {
                        client: self,
                        lease: &mut lease,
                        leader: &mut leader,
                    };
                    candidate.invoke(&mut service, &spec, op).await
                };
                self.candidate = candidate;
                self.election_lease = lease;
                self.election_leader = leader;
                completion
            }
            (ClientMode::UniqueIds, GENERATE) => etcd_election::generate(self, op.process).await,
            (ClientMode::Watch(_), "write") => crate::etcd_watch::write(self, op).await,
            (ClientMode::Watch(_), "watch") => {
                let mut state = std::mem::take(&mut self.watch);
                let completion = crate::etcd_watch::watch(self, &mut state, op).await;
                self.watch = state;
                completion
            }
            (ClientMode::Ephemeral(_), _) => {
                let mut registration = self.registration.take();
                let completion = crate::etcd_ephemeral::invoke(self, &mut registration, op).await;
                self.registration = registration;
                completion
            }
            (mode, f) => Completion::fail(format!("unsupported: {f} in {mode:?} mode")),
        }
    }

    async fn register(&mut self, op: &Invocation, deadline: Instant) -> Completion {
        let (path, body) = match request_for(op, self.read_mode) {
            Ok(request) => request,
            Err(why) => return Completion::fail(why),
        };
        match self.post(path, &body, deadline).await {
            Delivery::Reply(response) => classify_reply(op, &response),
            Delivery::NotSent(why) => Completion::fail(why),
            Delivery::Lost(why) => indefinite(&op.f, why),
        }
    }

    /// The read half of a transaction: `keys` at one revision. Any failure is a `fail`: a
    /// read changes nothing.
    async fn read_keys(
        &mut self,
        keys: &[String],
        deadline: Instant,
    ) -> Result<Vec<Read>, Completion> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let serializable = self.read_mode == ReadMode::Serializable;
        let body = etcd_txn::read_request(keys, serializable);
        match self.post("/v3/kv/txn", &body, deadline).await {
            Delivery::Reply(response) if response.status == 200 => {
                etcd_txn::parse_reads(keys, &response.body)
                    .map_err(|why| Completion::fail(format!("unreadable reply: {why}")))
            }
            Delivery::Reply(response) => Err(match classify_reply(&read_op(), &response) {
                Completion::Info(why) | Completion::Fail(why) => Completion::Fail(why),
                Completion::Ok(_) => unreachable!("a non-200 reply is never ok"),
            }),
            Delivery::NotSent(why) | Delivery::Lost(why) => Err(Completion::fail(why)),
        }
    }

    /// The commit half: compares every read key's revision, puts every write. `ok` with
    /// `result` when it committed.
    async fn commit(
        &mut self,
        keys: &[String],
        reads: &[Read],
        writes: &[(String, Value)],
        result: Value,
        deadline: Instant,
    ) -> Completion {
        for (_, value) in writes {
            if let Err(why) = cluster::check_writable(value) {
                return Completion::fail(why);
            }
        }
        let body = etcd_txn::commit_request(keys, reads, writes);
        match self.post("/v3/kv/txn", &body, deadline).await {
            Delivery::Reply(response) if response.status == 200 => {
                if !response.body.get("header").is_some_and(Value::is_object) {
                    Completion::info(format!("unreadable reply: {}", response.body))
                } else if etcd_txn::committed(&response.body) {
                    Completion::Ok(result)
                } else {
                    Completion::fail("compare-failed")
                }
            }
            Delivery::Reply(response) => classify_reply(&write_op(), &response),
            Delivery::NotSent(why) => Completion::fail(why),
            Delivery::Lost(why) => Completion::info(why),
        }
    }

    /// A list-append / rw-register transaction: read, compute, commit if nothing read
    /// changed (see [`etcd_txn`]).
    async fn txn(&mut self, op: &Invocation, deadline: Instant) -> Completion {
        let ops = match parse_txn(&op.value) {
            Ok(ops) => ops,
            Err(why) => return Completion::fail(format!("bad-request: {why}")),
        };
        let keys = etcd_txn::keys_to_read(&ops);
        let reads = match self.read_keys(&keys, deadline).await {
            Ok(reads) => reads,
            Err(completion) => return completion,
        };
        let plan = match etcd_txn::plan(&ops, &keys, &reads) {
            Ok(plan) => plan,
            Err(why) => return Completion::fail(format!("bad-request: {why}")),
        };
        if plan.writes.is_empty() {
            // Reads only: the read request was the whole transaction, at one revision.
            return Completion::Ok(plan.result);
        }
        self.commit(&keys, &reads, &plan.writes, plan.result, deadline)
            .await
    }

    /// Every balance at one revision.
    async fn bank_read(&mut self, bank: &Bank, deadline: Instant) -> Completion {
        let keys: Vec<String> = (0..bank.accounts).map(|a| a.to_string()).collect();
        let reads = match self.read_keys(&keys, deadline).await {
            Ok(reads) => reads,
            Err(completion) => return completion,
        };
        let mut balances = Vec::with_capacity(reads.len());
        for (account, read) in reads.iter().enumerate() {
            match balance_of(bank, account as u64, &read.value) {
                Ok(balance) => balances.push(balance),
                Err(why) => return Completion::fail(why),
            }
        }
        Completion::Ok(Bank::balances_json(&balances))
    }

    /// A transfer: read both balances, refuse an overdraft, commit both new balances if
    /// neither account changed since the read.
    async fn transfer(&mut self, bank: &Bank, op: &Invocation, deadline: Instant) -> Completion {
        let t = match Transfer::parse(&op.value, bank) {
            Ok(t) => t,
            Err(why) => return Completion::fail(format!("bad-request: {why}")),
        };
        let keys = [t.from.to_string(), t.to.to_string()];
        let reads = match self.read_keys(&keys, deadline).await {
            Ok(reads) => reads,
            Err(completion) => return completion,
        };
        let (Ok(from), Ok(to)) = (
            balance_of(bank, t.from, &reads[0].value),
            balance_of(bank, t.to, &reads[1].value),
        ) else {
            return Completion::fail("bad-request: an account does not hold a balance");
        };
        if from < t.amount {
            return Completion::fail("insufficient-funds");
        }
        let writes = [
            (keys[0].clone(), json!(from - t.amount)),
            (keys[1].clone(), json!(to + t.amount)),
        ];
        self.commit(&keys, &reads, &writes, t.to_json(), deadline)
            .await
    }
}

/// An account's balance from what was read: never written = its initial balance.
fn balance_of(bank: &Bank, account: u64, value: &Value) -> Result<i64, String> {
    match value {
        Value::Null => Ok(bank.initial_balance(account)),
        other => other
            .as_i64()
            .ok_or_else(|| format!("account {account} holds {other}, not a balance")),
    }
}

/// Stand-ins that tell [`classify_reply`] whether a request could change state.
fn read_op() -> Invocation {
    Invocation {
        process: 0,
        f: "read".into(),
        key: None,
        value: Value::Null,
    }
}

fn write_op() -> Invocation {
    Invocation {
        process: 0,
        f: "write".into(),
        key: None,
        value: Value::Null,
    }
}

impl Client for EtcdClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async move {
            // No connection yet: a member that is down is a failed operation at invoke time,
            // not a harness error.
            let addr = self
                .db
                .client_addr(node)
                .map_err(|e| HarnessError::Client {
                    node: node.to_string(),
                    why: e.to_string(),
                })?;
            let addr = resolve(&addr).await.map_err(|why| HarnessError::Client {
                node: node.to_string(),
                why,
            })?;
            Ok(Box::new(EtcdClient {
                db: self.db.clone(),
                mode: self.mode,
                read_mode: self.read_mode,
                request_timeout: self.request_timeout,
                addr: Some(addr),
                connection: None,
                holder: Holder::default(),
                lock_lease: None,
                fence_ready: false,
                lock_api: self.lock_api,
                lock_key: None,
                candidate: Candidate::default(),
                election_lease: None,
                election_leader: None,
                watch: Default::default(),
                registration: None,
            }) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(self.call(op))
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let mut registration = self.registration.take();
            crate::etcd_ephemeral::close(self, &mut registration).await;
            self.connection = None;
            Ok(())
        })
    }
}

impl EtcdDb {
    /// The cluster `test` describes (members, mode, directories, options `program` and
    /// `ready_timeout_ms`), not yet set up.
    pub fn from_test(test: &Test) -> Result<EtcdDb, TargetError> {
        let options = Options::new("etcd", test, &OPTIONS)?;
        let cluster = Cluster::new(test, &options, DEFAULT_NODES, &STANDARD_PORTS)?;
        let program = options
            .string("program")?
            .unwrap_or_else(|| PROGRAM.to_string());
        let ready_timeout_ms = options
            .u64_in("ready_timeout_ms", 1, 3_600_000)?
            .unwrap_or(READY_TIMEOUT_MS);
        Ok(EtcdDb {
            cluster,
            program,
            token: cluster::unique_token(test),
            ready_timeout: Duration::from_millis(ready_timeout_ms),
            prepared: Mutex::new(BTreeSet::new()),
        })
    }

    /// The member names.
    pub fn nodes(&self) -> &[String] {
        &self.cluster.nodes
    }
}

impl EtcdClient {
    /// A template client of `db` whose reads are served as `read_mode` says, each request
    /// bounded by `request_timeout`.
    pub fn new(db: Arc<EtcdDb>, read_mode: ReadMode, request_timeout: Duration) -> EtcdClient {
        EtcdClient::with_mode(db, ClientMode::Register, read_mode, request_timeout)
    }

    /// A template client for the operations `mode` names.
    pub fn with_mode(
        db: Arc<EtcdDb>,
        mode: ClientMode,
        read_mode: ReadMode,
        request_timeout: Duration,
    ) -> EtcdClient {
        EtcdClient {
            db,
            mode,
            read_mode,
            request_timeout,
            addr: None,
            connection: None,
            holder: Holder::default(),
            lock_lease: None,
            fence_ready: false,
            lock_api: false,
            lock_key: None,
            candidate: Candidate::default(),
            election_lease: None,
            election_leader: None,
            watch: Default::default(),
            registration: None,
        }
    }
}

/// The etcd target for `test`.
pub fn target(test: &Test) -> Result<Target, TargetError> {
    let mode =
        match test.workload.as_str() {
            "register" => ClientMode::Register,
            "list-append" | "rw-register" => ClientMode::Txn,
            "broadcast" | "log" => ClientMode::Broadcast,
            "lock" | "fenced-lock" => {
                ClientMode::Lock(LockSpec::from_test(test).map_err(|why| {
                    TargetError::BadOption {
                        target: "etcd".into(),
                        option: "bank".into(),
                        why,
                    }
                })?)
            }
            "election" => {
                let spec = ElectionSpec::from_test(test).map_err(|why| TargetError::BadOption {
                    target: "etcd".into(),
                    option: "election".into(),
                    why,
                })?;
                if spec.candidates != Candidates::Clients {
                    return Err(TargetError::BadOption {
                        target: "etcd".into(),
                        option: "candidates".into(),
                        why: "etcd's election API elects among its clients; its members' own \
                          Raft leader is not exposed as an election"
                            .into(),
                    });
                }
                ClientMode::Election(spec)
            }
            "unique-ids" => ClientMode::UniqueIds,
            "bank" => {
                ClientMode::Bank(Bank::from_test(test).map_err(|why| TargetError::BadOption {
                    target: "etcd".into(),
                    option: "bank".into(),
                    why,
                })?)
            }
            "watch" => ClientMode::Watch(WatchSpec::from_test(test).map_err(|why| {
                TargetError::BadOption {
                    target: "etcd".into(),
                    option: "watch".into(),
                    why,
                }
            })?),
            "ephemeral" => {
                let bad = |why: String| TargetError::BadOption {
                    target: "etcd".into(),
                    option: "ttl_ms".into(),
                    why,
                };
                let spec = EphemeralSpec::from_test(test).map_err(bad)?;
                if spec.ttl_ms % 1000 != 0 {
                    return Err(bad(format!(
                        "etcd's leases count whole seconds: a multiple of 1000, got {}",
                        spec.ttl_ms
                    )));
                }
                ClientMode::Ephemeral(spec)
            }
            other => {
                return Err(TargetError::UnsupportedWorkload {
                    target: "etcd".into(),
                    workload: other.to_string(),
                })
            }
        };
    let options = Options::new("etcd", test, &OPTIONS)?;
    let read_mode = match options.string("read_mode")?.as_deref() {
        None | Some("linearizable") => ReadMode::Linearizable,
        Some("serializable") => ReadMode::Serializable,
        Some(other) => {
            return Err(options.bad(
                "read_mode",
                format!("{other:?}; expected linearizable or serializable"),
            ))
        }
    };
    let request_timeout_ms = options
        .u64_in("request_timeout_ms", 1, 3_600_000)?
        .unwrap_or_else(|| cluster::default_request_timeout_ms(test));
    let lock_api = options.bool("lock_api")?.unwrap_or(false);
    if lock_api && !matches!(mode, ClientMode::Lock(_)) {
        return Err(options.bad(
            "lock_api",
            "applies only to the lock and fenced-lock workloads",
        ));
    }
    let db = Arc::new(EtcdDb::from_test(test)?);
    let mut client = EtcdClient::with_mode(
        db.clone(),
        mode,
        read_mode,
        Duration::from_millis(request_timeout_ms),
    );
    client.lock_api = lock_api;
    Ok(Target {
        db: db.clone(),
        nodes: db.nodes().to_vec(),
        client: Arc::new(client),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: &str, value: Value) -> Invocation {
        Invocation {
            process: 0,
            f: f.to_string(),
            key: Some(json!(7)),
            value,
        }
    }

    fn reply(status: u16, body: Value) -> Response {
        Response { status, body }
    }

    #[test]
    fn base64_round_trips_and_matches_known_encodings() {
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"3"), "Mw==");
        assert_eq!(base64_encode(b"12"), "MTI=");
        assert_eq!(base64_encode(b""), "");
        for bytes in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"abcd",
            &[0, 255, 128, 7, 63],
        ] {
            assert_eq!(base64_decode(&base64_encode(bytes)).unwrap(), bytes);
        }
        assert_eq!(base64_decode("Mw").unwrap(), b"3");
        assert_eq!(base64_decode("M!=="), None);
        assert_eq!(base64_decode("M"), None);
    }

    #[test]
    fn requests_encode_keys_values_and_the_read_mode() {
        let (path, body) = request_for(&op("read", Value::Null), ReadMode::Linearizable).unwrap();
        assert_eq!((path, body), ("/v3/kv/range", json!({"key": "Nw=="})));
        let (_, body) = request_for(&op("read", Value::Null), ReadMode::Serializable).unwrap();
        assert_eq!(body["serializable"], json!(true));
        let (path, body) = request_for(&op("write", json!(3)), ReadMode::Linearizable).unwrap();
        assert_eq!(
            (path, body),
            ("/v3/kv/put", json!({"key": "Nw==", "value": "Mw=="}))
        );
        let (path, body) = request_for(&op("cas", json!([3, 4])), ReadMode::Linearizable).unwrap();
        assert_eq!(path, "/v3/kv/txn");
        assert_eq!(body["compare"][0]["value"], "Mw==");
        assert_eq!(body["compare"][0]["target"], "VALUE");
        assert_eq!(body["success"][0]["requestPut"]["value"], "NA==");
        let (_, body) = request_for(&op("cas", json!([null, 4])), ReadMode::Linearizable).unwrap();
        assert_eq!(
            body["compare"][0]["target"], "CREATE",
            "never written: no such key"
        );
        assert_eq!(body["compare"][0]["create_revision"], "0");
        assert!(request_for(&op("cas", json!(3)), ReadMode::Linearizable).is_err());
        assert!(request_for(&op("write", Value::Null), ReadMode::Linearizable).is_err());
        assert!(request_for(&op("cas", json!([1, null])), ReadMode::Linearizable).is_err());
        assert!(request_for(&op("add", json!(3)), ReadMode::Linearizable).is_err());
    }

    #[test]
    fn replies_map_to_ok_fail_and_info() {
        let header = json!({"cluster_id": "1", "member_id": "2", "revision": "5"});
        // Reads.
        let read = op("read", Value::Null);
        assert_eq!(
            classify_reply(&read, &reply(200, json!({"header": header}))),
            Completion::Ok(Value::Null)
        );
        assert_eq!(
            classify_reply(
                &read,
                &reply(
                    200,
                    json!({"header": header, "kvs": [{"key": "Nw==", "value": "Mw=="}], "count": "1"})
                )
            ),
            Completion::Ok(json!(3))
        );
        // Writes and cas.
        let write = op("write", json!(3));
        assert_eq!(
            classify_reply(&write, &reply(200, json!({"header": header}))),
            Completion::Ok(json!(3))
        );
        let cas = op("cas", json!([3, 4]));
        assert_eq!(
            classify_reply(
                &cas,
                &reply(200, json!({"header": header, "succeeded": true}))
            ),
            Completion::Ok(json!([3, 4]))
        );
        assert_eq!(
            classify_reply(&cas, &reply(200, json!({"header": header}))),
            Completion::fail("compare-failed")
        );
        // Indefinite errors: info for writes, fail for reads.
        let timed_out = reply(
            503,
            json!({"error": "etcdserver: request timed out", "code": 14}),
        );
        assert_eq!(
            classify_reply(&write, &timed_out),
            Completion::info("etcdserver: request timed out")
        );
        assert_eq!(
            classify_reply(&read, &timed_out),
            Completion::fail("etcdserver: request timed out")
        );
        let deadline = reply(
            500,
            json!({"error": "context deadline exceeded", "code": 2}),
        );
        assert_eq!(
            classify_reply(&cas, &deadline),
            Completion::info("context deadline exceeded")
        );
        assert_eq!(
            classify_reply(&cas, &reply(408, Value::Null)),
            Completion::info("http-408")
        );
        assert_eq!(
            classify_reply(&write, &reply(200, Value::Null)).kind(),
            faultline_core::OpType::Info
        );
        // Definite errors.
        let bad = reply(
            400,
            json!({"error": "etcdserver: key is not provided", "code": 3}),
        );
        assert_eq!(
            classify_reply(&write, &bad),
            Completion::fail("etcdserver: key is not provided")
        );
    }

    #[test]
    fn the_leader_is_the_member_whose_id_is_the_leader_id() {
        let status = |own: &str, leader: &str| json!({"header": {"member_id": own}, "leader": leader, "version": "3.4.23"});
        assert!(is_leader_status(&status("42", "42")));
        assert!(!is_leader_status(&status("42", "7")));
        assert!(!is_leader_status(&status("0", "0")));
        assert!(!is_leader_status(&json!({"header": {}})));
    }

    #[test]
    fn options_are_checked() {
        let mut test = Test::example("etcd", "register", 1);
        test.nodes = Vec::new();
        let target = target(&test).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(target.nodes.len(), DEFAULT_NODES);
        assert!(target.db.as_kill().is_some() && target.db.as_primary().is_some());
        assert!(
            target.db.as_clock().is_none(),
            "libfaketime does not move Go's clock"
        );
        test.target_options
            .insert("read_mode".into(), json!("eventual"));
        let Err(e) = super::target(&test) else {
            panic!("bad read mode accepted")
        };
        assert!(
            e.to_string().contains("linearizable or serializable"),
            "{e}"
        );
        test.target_options
            .insert("read_mode".into(), json!("serializable"));
        assert!(super::target(&test).is_ok());
        for workload in ["list-append", "rw-register", "bank"] {
            test.workload = workload.into();
            assert!(super::target(&test).is_ok(), "{workload}");
        }
        test.workload = "set".into();
        assert!(matches!(
            super::target(&test),
            Err(TargetError::UnsupportedWorkload { .. })
        ));
    }
}
