//! Bring your own store: a target described by a TOML file (`faultline test --target-file
//! store.toml`), for stores written in any language.
//!
//! The file ([`file::TargetFile`], format in `docs/byo-store.md`) says, per node: files to
//! upload, setup commands, the start command, a readiness probe, teardown commands and log
//! files; and how clients talk to the store: a program speaking JSON Lines on stdin / stdout
//! ([`jsonl::JsonLinesClient`]), or HTTP requests from a template per operation
//! ([`http_client::HttpJsonClient`]). Commands are argv lists (no shell) or `sh -c` lines whose
//! placeholder values are single-quoted ([`template`]).
//!
//! [`CustomDb`] runs everything through the node's [`faultline_core::Remote`], so the same file
//! works for local processes, lab hosts and machines over SSH; the server is a [`Daemon`]
//! (`start-stop-daemon`, pid file `<dir>/store.pid`, log `<dir>/store.log`), and kill, pause and
//! resume signal exactly the pid its start recorded. The two modes follow `test.addresses`, as
//! for the other server targets ([`Cluster`]):
//! - **local**: every node on 127.0.0.1 with free ports, its directory `<data_dir>/<node>` (the
//!   run's `nodes/<node>/`). When the file names a `peer_port`, each node reaches the others'
//!   peer ports through a [`FaultProxy`] link of its own (`{peers}` holds the proxy's addresses),
//!   so partitions work without root;
//! - **remote**: each node on its host's address at the file's port numbers, its directory
//!   under `/tmp`; the runner partitions hosts with iptables.
//!
//! ```
//! use faultline_core::Test;
//! let mut test = Test::example("python-kv", "register", 1);
//! test.nodes = Vec::new();
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/python-kv/store.toml");
//! test.target_options.insert("target_file".into(), path.into());
//! let target = faultline_targets::build(&test).unwrap();
//! assert_eq!(target.nodes, ["n1", "n2", "n3"]);
//! assert!(target.db.as_kill().is_some() && target.db.as_pause().is_some());
//! assert!(target.db.as_net().is_some(), "local peers are wired through the fault proxy");
//! ```
//!
//! Design decision: the client runs on the control machine (where faultline runs), never on
//! the nodes: it is part of the harness, sees every node the way faultline's own clients do,
//! and a partition between nodes never cuts it off from the history.

pub mod file;
pub mod http_client;
pub mod jsonl;
pub mod template;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_core::remote::{Command, Signal};
use faultline_core::{
    BoxFuture, Client, Completion, Db, HarnessError, Invocation, Kill, Net, Node, Pause, Test,
};

use crate::cluster::{self, log_tail, resolve, Cluster, Options};
use crate::daemon::{self, Daemon};
use crate::proxy::FaultProxy;
use crate::{Target, TargetError};

use file::{ClientSpec, CommandTemplate, Probe, TargetFile};
use http_client::HttpJsonClient;
use jsonl::JsonLinesClient;

/// The name errors and directories use for this kind of target.
pub const KIND: &str = "target-file";
/// The option names this target reads: `target_file` (the path), `vars` (an object of
/// variable overrides), and the cluster's `nodes` and `data_dir`.
pub const OPTIONS: [&str; 4] = ["target_file", "vars", "nodes", "data_dir"];
/// How often readiness is polled.
const READY_POLL_MS: u64 = 100;
/// One readiness probe (a TCP connect, or the probe command).
const PROBE_TIMEOUT_MS: u64 = 2_000;

fn db_error(node: &str, phase: &'static str, why: impl Into<String>) -> HarnessError {
    HarnessError::Db {
        node: node.to_string(),
        phase,
        why: why.into(),
    }
}

/// A store described by a target file, on every node of the test.
#[derive(Debug)]
pub struct CustomDb {
    file: Arc<TargetFile>,
    vars: BTreeMap<String, String>,
    cluster: Cluster,
    /// Local mode with a `peer_port`: the links between nodes.
    proxy: Option<FaultProxy>,
    /// Each node's `{peers}`, made once (the proxy's links are fixed at the first setup).
    peers: Mutex<Option<BTreeMap<String, String>>>,
    /// Nodes whose directory this db prepared; a second setup only makes sure the node runs.
    prepared: Mutex<BTreeSet<String>>,
}

impl CustomDb {
    /// The cluster `test` describes, running the store of `file` with `vars`.
    pub fn new(
        test: &Test,
        file: Arc<TargetFile>,
        vars: BTreeMap<String, String>,
    ) -> Result<CustomDb, TargetError> {
        let options = Options::new(KIND, test, &OPTIONS)?;
        let standard_ports: Vec<u16> = file.ports.iter().map(|(_, p)| *p).collect();
        let cluster = Cluster::new(test, &options, file.nodes, &standard_ports)?;
        let proxy = (cluster.is_local() && file.peer_port.is_some())
            .then(|| FaultProxy::new(cluster.nodes.clone(), test.seed_for("proxy")));
        Ok(CustomDb {
            file,
            vars,
            cluster,
            proxy,
            peers: Mutex::new(None),
            prepared: Mutex::new(BTreeSet::new()),
        })
    }

    /// The member names.
    pub fn nodes(&self) -> &[String] {
        &self.cluster.nodes
    }

    /// The target file this db runs.
    pub fn file(&self) -> &TargetFile {
        &self.file
    }

    /// `<base>/<node>`: the node's uploads, pid file and log.
    pub fn node_dir(&self, node: &str) -> String {
        self.cluster.node_dir(node)
    }

    /// `<base>/<node>/data`: created before setup, removed at teardown.
    pub fn data_dir(&self, node: &str) -> String {
        format!("{}/data", self.node_dir(node))
    }

    /// The server's log (its stdout and stderr), on the node.
    pub fn log_path(&self, node: &str) -> String {
        format!("{}/store.log", self.node_dir(node))
    }

    fn pidfile(&self, node: &str) -> String {
        format!("{}/store.pid", self.node_dir(node))
    }

    fn port_index(&self, name: &str) -> usize {
        self.file
            .ports
            .iter()
            .position(|(n, _)| n == name)
            .expect("port names are checked when the file is read")
    }

    /// Where `node`'s port `name` is, seen from this machine.
    pub fn addr(&self, node: &str, port: &str) -> Result<String, HarnessError> {
        Ok(self.cluster.endpoint(node)?.addr(self.port_index(port)))
    }

    /// The placeholders every context shares: the node, its address and ports, the variables.
    fn common_values(&self, node: &str) -> Result<BTreeMap<String, String>, HarnessError> {
        let endpoint = self.cluster.endpoint(node)?;
        let mut values = BTreeMap::new();
        values.insert("name".into(), self.file.name.clone());
        values.insert("node".into(), node.to_string());
        let id = self.cluster.id(node).expect("a member");
        values.insert("id".into(), id.to_string());
        values.insert("address".into(), endpoint.host.clone());
        values.insert("nodes".into(), self.cluster.nodes.len().to_string());
        for (i, (name, _)) in self.file.ports.iter().enumerate() {
            values.insert(format!("port.{name}"), endpoint.ports[i].to_string());
        }
        for (name, value) in &self.vars {
            values.insert(format!("var.{name}"), value.clone());
        }
        Ok(values)
    }

    /// Every node's `{peers}`: each member rendered with `start.peer` as the node sees it —
    /// itself at its own address, the others (local mode, with a proxy) at the proxy's port
    /// for that link.
    fn peers(&self, node: &str) -> Result<String, HarnessError> {
        let mut slot = self.peers.lock().expect("peers lock");
        if slot.is_none() {
            let endpoints = self.cluster.endpoints()?;
            let mut all = BTreeMap::new();
            for from in &self.cluster.nodes {
                let mut entries = Vec::new();
                for to in &self.cluster.nodes {
                    let endpoint = &endpoints[to];
                    let mut values = BTreeMap::new();
                    values.insert("node".to_string(), to.clone());
                    let id = self.cluster.id(to).expect("a member");
                    values.insert("id".into(), id.to_string());
                    values.insert("address".into(), endpoint.host.clone());
                    for (i, (name, _)) in self.file.ports.iter().enumerate() {
                        values.insert(format!("port.{name}"), endpoint.ports[i].to_string());
                    }
                    if let (Some(proxy), Some(peer_port)) = (&self.proxy, &self.file.peer_port) {
                        if from != to {
                            let target: SocketAddr = endpoint
                                .addr(self.port_index(peer_port))
                                .parse()
                                .map_err(|e| db_error(from, "setup", format!("{e}")))?;
                            let via = proxy.add_link(from, to, target)?;
                            values.insert("address".into(), via.ip().to_string());
                            values.insert(format!("port.{peer_port}"), via.port().to_string());
                        }
                    }
                    let entry = self
                        .file
                        .start
                        .peer
                        .render(&|n| values.get(n).cloned())
                        .map_err(|e| db_error(from, "setup", e))?;
                    entries.push(entry);
                }
                all.insert(from.clone(), entries.join(&self.file.start.peer_separator));
            }
            *slot = Some(all);
        }
        Ok(slot.as_ref().expect("made above")[node].clone())
    }

    /// The values of a command run on `node`.
    fn node_values(&self, node: &str) -> Result<BTreeMap<String, String>, HarnessError> {
        let mut values = self.common_values(node)?;
        values.insert("dir".into(), self.node_dir(node));
        values.insert("data_dir".into(), self.data_dir(node));
        values.insert("peers".into(), self.peers(node)?);
        Ok(values)
    }

    fn render(
        &self,
        node: &str,
        phase: &'static str,
        command: &CommandTemplate,
    ) -> Result<Command, HarnessError> {
        let values = self.node_values(node)?;
        command
            .render(&|n| values.get(n).cloned())
            .map_err(|e| db_error(node, phase, e))
    }

    /// The node's process, without its command line: enough to find, signal and kill it.
    fn process(&self, node: &str) -> Daemon {
        Daemon::new("true", &self.pidfile(node), &self.log_path(node))
    }

    /// The node's server, as the file's `start` says.
    fn daemon(&self, node: &str, phase: &'static str) -> Result<Daemon, HarnessError> {
        let values = self.node_values(node)?;
        let lookup = |n: &str| values.get(n).cloned();
        let command = self
            .file
            .start
            .command
            .render(&lookup)
            .map_err(|e| db_error(node, phase, e))?;
        let mut daemon = Daemon::new(&command.program, &self.pidfile(node), &self.log_path(node))
            .dir(&self.node_dir(node))
            .args(command.args);
        for (key, value) in &self.file.start.env {
            let value = value
                .render(&lookup)
                .map_err(|e| db_error(node, phase, e))?;
            daemon = daemon.env(key, &value);
        }
        Ok(daemon)
    }

    /// Runs each of `commands` on `node`; with `keep_going`, past failures (teardown), else
    /// stopping at the first. Returns the first error.
    async fn run_all(
        &self,
        node: &Node,
        phase: &'static str,
        commands: &[CommandTemplate],
        keep_going: bool,
    ) -> Result<(), HarnessError> {
        let mut first = None;
        for command in commands {
            let result = match self.render(&node.name, phase, command) {
                Ok(command) => daemon::run(&*node.remote, &command).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                if !keep_going {
                    return Err(e);
                }
                tracing::warn!(node = node.name, "{phase}: {e}");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// First setup of a node whose server does not run: a fresh data directory, the uploads,
    /// the setup commands. (Each command is a round trip, a third of a second over SSH on a
    /// busy machine: they are few on purpose.)
    async fn prepare(&self, node: &Node) -> Result<(), HarnessError> {
        let name = &node.name;
        if self.prepared.lock().expect("prepared lock").contains(name) {
            return Ok(());
        }
        let remote = &*node.remote;
        let (dir, data) = (self.node_dir(name), self.data_dir(name));
        // Data left by an earlier run in this directory goes; the arguments are passed as
        // positional parameters, never spliced into the script.
        let fresh = Command::new(
            "sh",
            &[
                "-c",
                "rm -rf \"$2\" && mkdir -p \"$1\" \"$2\"",
                "sh",
                &dir,
                &data,
            ],
        );
        daemon::run(remote, &fresh).await?;
        let values = self.node_values(name)?;
        for upload in &self.file.uploads {
            let to = upload
                .to
                .render(&|n| values.get(n).cloned())
                .map_err(|e| db_error(name, "setup", e))?;
            match to.rsplit_once('/') {
                Some((parent, _)) if !parent.is_empty() && parent != dir => {
                    daemon::run(remote, &Command::new("mkdir", &["-p", parent])).await?;
                }
                _ => {}
            }
            remote.upload(&upload.from, &to).await?;
        }
        self.run_all(node, "setup", &self.file.setup, false).await?;
        self.prepared
            .lock()
            .expect("prepared lock")
            .insert(name.clone());
        Ok(())
    }

    /// Waits (bounded by the file's `ready.timeout_ms`) until the probe says `node` serves,
    /// failing early when its process has died.
    async fn await_ready(&self, node: &Node) -> Result<(), HarnessError> {
        let timeout = Duration::from_millis(self.file.ready_timeout_ms);
        let deadline = Instant::now() + timeout;
        let process = self.process(&node.name);
        let probe_limit = Duration::from_millis(PROBE_TIMEOUT_MS);
        loop {
            let ready = match &self.file.probe {
                Probe::Running => Ok(()),
                Probe::Tcp(port) => {
                    let addr = self.addr(&node.name, port)?;
                    let connect = async {
                        let addr = resolve(&addr).await?;
                        tokio::net::TcpStream::connect(addr)
                            .await
                            .map_err(|e| format!("connecting to {addr}: {e}"))
                    };
                    match tokio::time::timeout(probe_limit, connect).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(format!("connecting to {addr} took over {probe_limit:?}")),
                    }
                }
                Probe::Command(command) => {
                    let command = self.render(&node.name, "setup", command)?;
                    match tokio::time::timeout(probe_limit, node.remote.exec(&command)).await {
                        Ok(Ok(out)) if out.success() => Ok(()),
                        Ok(Ok(out)) => Err(format!(
                            "`{}` exited with {:?}: {}",
                            command.display(),
                            out.status,
                            String::from_utf8_lossy(&out.stderr).trim()
                        )),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("`{}` took over {probe_limit:?}", command.display())),
                    }
                }
            };
            // A probe may pass by accident (a port of another process): the server must run.
            if process.pid(&*node.remote).await?.is_none() {
                return Err(db_error(
                    &node.name,
                    "setup",
                    format!(
                        "the store exited: {}",
                        log_tail(&*node.remote, &self.log_path(&node.name)).await
                    ),
                ));
            }
            let Err(last) = ready else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(db_error(
                    &node.name,
                    "setup",
                    format!("not ready after {timeout:?}: {last}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(READY_POLL_MS)).await;
        }
    }

    async fn start_node(&self, node: &Node, phase: &'static str) -> Result<(), HarnessError> {
        if let Some(proxy) = &self.proxy {
            // The node's outgoing links serve before the node dials them.
            self.peers(&node.name)?;
            proxy.start_from(&node.name).await?;
        }
        let pid = self.daemon(&node.name, phase)?.start(&*node.remote).await?;
        tracing::info!(node = node.name, pid, "started {}", self.file.name);
        Ok(())
    }

    async fn setup_node(&self, node: &Node) -> Result<(), HarnessError> {
        if self.process(&node.name).pid(&*node.remote).await?.is_none() {
            self.prepare(node).await?;
            self.start_node(node, "setup").await?;
        }
        self.await_ready(node).await
    }

    async fn teardown_node(&self, node: &Node) -> Result<(), HarnessError> {
        let remote = &*node.remote;
        let mut first = self.process(&node.name).kill(remote).await.err();
        if let Some(proxy) = &self.proxy {
            proxy.stop_from(&node.name).await;
        }
        // A node whose setup never ran has nothing for its teardown commands to act on.
        let was_prepared = self
            .prepared
            .lock()
            .expect("prepared lock")
            .remove(&node.name);
        if was_prepared {
            if let Err(e) = self
                .run_all(node, "teardown", &self.file.teardown, true)
                .await
            {
                first.get_or_insert(e);
            }
        }
        let (data, pidfile) = (self.data_dir(&node.name), self.pidfile(&node.name));
        if let Err(e) = daemon::run(remote, &Command::new("rm", &["-rf", &data, &pidfile])).await {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }
}

impl Db for CustomDb {
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

    fn as_net(&self) -> Option<&dyn Net> {
        self.proxy.as_ref().map(|p| p as &dyn Net)
    }

    fn log_files(&self, _test: &Test, node: &Node) -> Vec<PathBuf> {
        let mut files = vec![PathBuf::from(self.log_path(&node.name))];
        if let Ok(values) = self.node_values(&node.name) {
            for log in &self.file.logs {
                match log.render(&|n| values.get(n).cloned()) {
                    Ok(path) => files.push(PathBuf::from(path)),
                    Err(e) => tracing::warn!(node = node.name, "logs: {e}"),
                }
            }
        }
        files
    }
}

impl Kill for CustomDb {
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
        // No readiness wait: a node restarted during a fault must not block the nemesis.
        Box::pin(self.start_node(node, "start"))
    }
}

impl Pause for CustomDb {
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

/// The template client of a target file: opens a [`JsonLinesClient`] or an
/// [`HttpJsonClient`] for the worker's node.
#[derive(Debug)]
pub struct CustomClient {
    db: Arc<CustomDb>,
    timeout: Duration,
}

impl CustomClient {
    pub fn new(db: Arc<CustomDb>, timeout: Duration) -> CustomClient {
        CustomClient { db, timeout }
    }

    async fn open_for(&self, node: &str) -> Result<Box<dyn Client>, HarnessError> {
        let client_error = |why: String| HarnessError::Client {
            node: node.to_string(),
            why,
        };
        let file = &self.db.file;
        match &file.client {
            ClientSpec::JsonLines { command } => {
                let mut values = self.db.common_values(node)?;
                values.insert("target_dir".into(), file.dir.to_string_lossy().to_string());
                let command = command
                    .render(&|n| values.get(n).cloned())
                    .map_err(client_error)?;
                let mut client =
                    JsonLinesClient::new(node, command, file.dir.clone(), self.timeout);
                client.start().await?;
                Ok(Box::new(client))
            }
            ClientSpec::Http(spec) => {
                let addr = self.db.addr(node, &spec.port)?;
                let addr = resolve(&addr).await.map_err(client_error)?;
                Ok(Box::new(HttpJsonClient::new(
                    Arc::new(spec.clone()),
                    addr,
                    self.timeout,
                )))
            }
        }
    }
}

impl Client for CustomClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(self.open_for(node))
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, _op: &'a Invocation) -> BoxFuture<'a, Completion> {
        // The template is never invoked; a worker invokes the client `open` returned.
        Box::pin(async { Completion::fail("not-opened") })
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The operations each workload sends, which an HTTP client needs a request for.
fn workload_ops(workload: &str) -> &'static [&'static str] {
    match workload {
        "register" => &["read", "write", "cas"],
        "set" => &["add", "read"],
        "list-append" | "rw-register" => &["txn"],
        "bank" => &["transfer", "read"],
        _ => &[],
    }
}

/// The variable overrides of option `vars` (an object of strings).
fn var_overrides(test: &Test) -> Result<BTreeMap<String, String>, TargetError> {
    let bad = |why: String| TargetError::BadOption {
        target: KIND.into(),
        option: "vars".into(),
        why,
    };
    match test.target_options.get("vars") {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(bad(format!("{k}: expected a string, got {other}"))),
            })
            .collect(),
        Some(other) => Err(bad(format!("expected an object of strings, got {other}"))),
    }
}

/// Reads the target file that option `target_file` names.
pub fn load(test: &Test) -> Result<TargetFile, TargetError> {
    let bad = |why: String| TargetError::BadOption {
        target: KIND.into(),
        option: "target_file".into(),
        why,
    };
    let path = match test.target_options.get("target_file") {
        Some(Value::String(path)) => path.clone(),
        Some(other) => return Err(bad(format!("expected a path, got {other}"))),
        None => return Err(bad("no target file given".into())),
    };
    TargetFile::load(Path::new(&path)).map_err(bad)
}

/// The target of option `target_file`, with option `vars` applied.
pub fn target(test: &Test) -> Result<Target, TargetError> {
    let file = load(test)?;
    if let Some(workloads) = &file.workloads {
        if !workloads.contains(&test.workload) {
            return Err(TargetError::UnsupportedWorkload {
                target: file.name.clone(),
                workload: test.workload.clone(),
            });
        }
    }
    if let ClientSpec::Http(spec) = &file.client {
        let missing: Vec<&str> = workload_ops(&test.workload)
            .iter()
            .copied()
            .filter(|f| !spec.ops.contains_key(*f))
            .collect();
        if !missing.is_empty() {
            return Err(TargetError::BadOption {
                target: KIND.into(),
                option: "target_file".into(),
                why: format!(
                    "{}: the {} workload sends {}, but the file has no [client.http.{}]",
                    file.path.display(),
                    test.workload,
                    workload_ops(&test.workload).join(", "),
                    missing.join("], [client.http.")
                ),
            });
        }
    }
    let vars = file
        .vars_with(&var_overrides(test)?)
        .map_err(|why| TargetError::BadOption {
            target: KIND.into(),
            option: "vars".into(),
            why,
        })?;
    let timeout_ms = file
        .client_timeout_ms
        .unwrap_or_else(|| cluster::default_request_timeout_ms(test));
    let db = Arc::new(CustomDb::new(test, Arc::new(file), vars)?);
    Ok(Target {
        db: db.clone(),
        nodes: db.nodes().to_vec(),
        client: Arc::new(CustomClient::new(db, Duration::from_millis(timeout_ms))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_test(addresses: &[(&str, &str)]) -> Test {
        let mut test = Test::example("python-kv", "register", 5);
        test.nodes = addresses.iter().map(|(n, _)| n.to_string()).collect();
        test.addresses = addresses
            .iter()
            .map(|(n, a)| (n.to_string(), a.to_string()))
            .collect();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/python-kv/store.toml"
        );
        test.target_options
            .insert("target_file".into(), Value::String(path.into()));
        test
    }

    fn db(test: &Test) -> CustomDb {
        let file = Arc::new(load(test).unwrap());
        let vars = file.vars_with(&var_overrides(test).unwrap()).unwrap();
        CustomDb::new(test, file, vars).unwrap()
    }

    /// Locally each node sees itself at its own peer port and every other node through its
    /// own proxy link; on hosts, everyone at the host's address and the file's port.
    #[test]
    fn peers_go_through_the_proxy_locally_and_straight_to_hosts_remotely() {
        let mut test = example_test(&[]);
        test.target_options
            .insert("vars".into(), serde_json::json!({"reads": "primary"}));
        let local = db(&test);
        assert_eq!(local.nodes(), ["n1", "n2", "n3"]);
        let n1 = local.node_values("n1").unwrap();
        let own_peer = n1["port.peer"].clone();
        let peers: Vec<&str> = n1["peers"].split(',').collect();
        assert_eq!(peers.len(), 3);
        assert_eq!(peers[0], format!("1=127.0.0.1:{own_peer}"));
        let proxy = local.proxy.as_ref().unwrap();
        let via = proxy.listen_addr("n1", "n2").unwrap();
        assert_eq!(peers[1], format!("2={via}"));
        assert_ne!(
            via.port().to_string(),
            local.node_values("n2").unwrap()["port.peer"]
        );
        assert_eq!(n1["var.reads"], "primary");
        assert!(n1["data_dir"].ends_with("/n1/data"), "{}", n1["data_dir"]);
        // The start command is the file's, filled in, one argument per word.
        let daemon = local.daemon("n2", "setup").unwrap();
        assert_eq!(daemon.program, "python3");
        assert!(daemon.args.windows(2).any(|w| w == ["--reads", "primary"]));
        assert!(daemon
            .args
            .windows(2)
            .any(|w| w[0] == "--id" && w[1] == "2"));
        assert_eq!(
            daemon.env,
            [("PYTHONUNBUFFERED".to_string(), "1".to_string())]
        );

        let remote = db(&example_test(&[
            ("n1", "10.88.0.11"),
            ("n2", "10.88.0.12"),
            ("n3", "10.88.0.13"),
        ]));
        assert!(remote.proxy.is_none() && remote.as_net().is_none());
        let n2 = remote.node_values("n2").unwrap();
        assert_eq!(
            n2["peers"],
            "1=10.88.0.11:8200,2=10.88.0.12:8200,3=10.88.0.13:8200"
        );
        assert_eq!(n2["address"], "10.88.0.12");
        assert!(n2["dir"].starts_with("/tmp/faultline-target-file-"));
        assert_eq!(remote.addr("n3", "client").unwrap(), "10.88.0.13:8100");
        assert_eq!(
            remote.log_files(
                &test,
                &Node {
                    name: "n1".into(),
                    remote: Arc::new(faultline_core::remote::NoopRemote::new("n1")),
                }
            ),
            [PathBuf::from(format!(
                "{}/store.log",
                remote.node_dir("n1")
            ))]
        );
    }

    #[test]
    fn options_are_checked_against_the_file() {
        let mut test = example_test(&[]);
        test.target_options
            .insert("vars".into(), serde_json::json!({"colour": "red"}));
        let Err(e) = target(&test) else {
            panic!("an undeclared variable")
        };
        assert!(e.to_string().contains("not declared"), "{e}");
        let mut test = example_test(&[]);
        test.workload = "set".into();
        assert!(matches!(
            target(&test),
            Err(TargetError::UnsupportedWorkload { .. })
        ));
        let mut test = example_test(&[]);
        test.target_options.insert(
            "target_file".into(),
            Value::String("/nonexistent.toml".into()),
        );
        let Err(e) = target(&test) else {
            panic!("a missing file")
        };
        assert!(e.to_string().contains("/nonexistent.toml"), "{e}");
    }
}
