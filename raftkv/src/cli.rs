//! The command line of one raftkv node: its flags and the loop that serves until a signal.
//! Shared by the `raftkv` binary and `faultline raftkv-server`, so the two cannot drift apart;
//! [`main_from_args`] runs a node from a whole command line, for programs that embed one
//! (test binaries that double as the node program).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::raft::NodeId;
use crate::server::{Server, ServerConfig};
use crate::{Bug, Bugs};

/// The client API, bugs and an example, printed after `--help`.
pub const AFTER_HELP: &str = r#"CLIENT API (HTTP/1.1 + JSON on --listen-client; curl-able):
  GET    /kv/{key}              linearizable read (ReadIndex)  -> {"ok":true,"value":V}
  GET    /kv/{key}?stale=true   this node's local state, possibly stale
  PUT    /kv/{key}              body: a JSON value             -> {"ok":true,"index":I}
  POST   /kv/{key}/cas          body: {"expected":E,"new":N}   -> 200, or 409 compare-failed
  DELETE /kv/{key}                                             -> {"ok":true,"index":I}
  POST   /txn                   body: [["r","x",null],["w","y",1],["append","z",3]]
                                -> {"ok":true,"value":[["r","x",V],["w","y",1],["append","z",3]]}
                                ["cas",k,[E,N]] writes N if k holds E (null: absent), else
                                the whole txn aborts: 409 compare-failed
  GET    /status                -> {"ok":true,"id","term","leader","role","commit","applied",...}

  Followers forward requests to the leader over the peer link and relay its answer.
  Every error says whether the request certainly had no effect:
    {"ok":false,"error":E,"definite":true}   did not happen (record fail)
    {"ok":false,"error":E,"definite":false}  unknown (record info)
  503 not-leader / read-aborted / superseded (definite), 409 compare-failed (definite),
  504 timeout and 500 leadership-lost (indefinite for writes), 400 malformed request.

BUGS (--bug, off by default):
  stale-read              any node answers reads from local state, no ReadIndex
  lease-read              the leader answers reads under a lease counted in its ticks, no ReadIndex
  no-fsync                acknowledges writes before they are durable
  forget-vote             the vote is not persisted (two leaders in a term after a restart)
  old-term-commit         commits earlier-term entries by counting replicas (Figure 8)
  snapshot-isolation-txn  txns read a snapshot and check only write-write conflicts

EXAMPLE (three nodes on one machine):
  raftkv --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \
         --listen-client 127.0.0.1:8001 --data-dir /tmp/raftkv1
  curl -X PUT -d '3' localhost:8001/kv/x && curl localhost:8001/kv/x

Logs go to stderr; RUST_LOG filters them (default info). SIGTERM or SIGINT stops cleanly."#;

/// The flags of one raftkv node, shared by the `raftkv` binary and `faultline raftkv-server`.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// This node's id: a key of --peers.
    #[arg(long)]
    pub id: NodeId,
    /// Every member's peer address, this node's included: `1=10.0.0.1:7001,2=10.0.0.2:7001`.
    /// Outgoing peer connections are bound to this node's own address from this list.
    #[arg(long, value_parser = parse_peers)]
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Address of the HTTP client API.
    #[arg(long)]
    pub listen_client: SocketAddr,
    /// Address to accept peers on [default: this node's address in --peers].
    #[arg(long)]
    pub listen_peer: Option<SocketAddr>,
    /// Directory of the write-ahead log and snapshot (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Bugs to switch on, comma-separated or repeated (see BUGS below).
    #[arg(long = "bug", value_name = "NAME[,NAME]", value_parser = parse_bugs)]
    pub bugs: Vec<Bugs>,
    /// Length of one Raft tick.
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// Election timeout in ticks: each election waits a random [N, 2N) ticks.
    #[arg(long, default_value_t = 15)]
    pub election_ticks: u32,
    /// The leader's heartbeat interval in ticks.
    #[arg(long, default_value_t = 3)]
    pub heartbeat_ticks: u32,
    /// Per-request deadline; past it a write is answered 504 timeout (indefinite).
    #[arg(long, default_value_t = 2_000)]
    pub request_timeout_ms: u64,
    /// At most this many log entries per AppendEntries message. 1 makes a new leader send
    /// the entries a follower lacks one message at a time, ahead of its own no-op: the
    /// interleaving of Raft's Figure 8 (`old-term-commit` needs it to show).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_append_entries: u64,
    /// Snapshot the state machine and compact the log every N applied entries.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// Stop when the process that started this node exits (its parent changes; checked every
    /// 200 ms), so that a node started by a harness that dies, even of SIGKILL, does not
    /// outlive it.
    #[arg(long)]
    pub exit_with_parent: bool,
}

/// How often `--exit-with-parent` looks at the parent process.
pub const PARENT_POLL_MS: u64 = 200;

impl NodeArgs {
    /// Starts the node and serves until SIGTERM or SIGINT (then stops cleanly) or until the
    /// node fails.
    pub async fn serve_until_signal(self) -> anyhow::Result<()> {
        // Read first, before anything slow: the parent that started this process.
        let parent = parent_id();
        if self.exit_with_parent && parent.is_none() {
            bail!("--exit-with-parent needs a Unix system");
        }
        let mut bugs = Bugs::none();
        for bug in self
            .bugs
            .iter()
            .flat_map(|list| Bug::ALL.into_iter().filter(|&b| list.contains(b)))
        {
            bugs.insert(bug);
        }
        if !self.peers.contains_key(&self.id) {
            bail!("--peers must include this node's id {}", self.id);
        }
        let config = ServerConfig {
            listen_peer: self.listen_peer,
            bugs,
            tick_ms: self.tick_ms,
            election_ticks: self.election_ticks,
            heartbeat_ticks: self.heartbeat_ticks,
            request_timeout_ms: self.request_timeout_ms,
            max_append_entries: self.max_append_entries as usize,
            snapshot_every: self.snapshot_every,
            ..ServerConfig::new(
                self.id,
                self.peers,
                self.listen_client,
                self.data_dir.clone(),
            )
        };
        let mut server = Server::start(config)
            .await
            .with_context(|| format!("starting node {} on {}", self.id, self.data_dir.display()))?;
        tracing::info!(
            client = %server.client_addr(),
            peer = %server.peer_addr(),
            "raftkv node {} serving",
            self.id
        );
        tokio::select! {
            signal = wait_for_signal() => {
                tracing::info!("{} received: stopping", signal?);
                server.shutdown().await.context("stopping the node")?;
                Ok(())
            }
            result = server.stopped() => result.context("the node failed"),
            _ = parent_exit(parent.unwrap_or(0)), if self.exit_with_parent => {
                tracing::info!("the parent process {parent:?} exited: stopping");
                server.shutdown().await.context("stopping the node")?;
                Ok(())
            }
        }
    }
}

/// `raftkv-server FLAGS...`: one node's command line as the raftkv target writes it.
#[derive(Debug, clap::Parser)]
#[command(name = "raftkv-server", after_help = AFTER_HELP)]
struct ServerCommandLine {
    #[command(flatten)]
    node: NodeArgs,
}

/// Runs one node from `argv` (the program name first, then the flags): parses it (help and
/// bad flags exit as clap does), logs to stderr (RUST_LOG, default info), serves until a
/// signal. Exit status 0 after a clean stop, 1 when the node failed.
pub fn main_from_args<I, T>(argv: I) -> std::process::ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = <ServerCommandLine as clap::Parser>::parse_from(argv);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("raftkv-server")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("raftkv-server: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(args.node.serve_until_signal()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("raftkv-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

pub fn parse_bugs(list: &str) -> Result<Bugs, String> {
    Bugs::parse_list(list).map_err(|e| e.to_string())
}

pub fn parse_peers(list: &str) -> Result<BTreeMap<NodeId, SocketAddr>, String> {
    let mut peers = BTreeMap::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not ID=HOST:PORT"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|e| format!("bad id in {item:?}: {e}"))?;
        // Host names resolve once, at start (static membership).
        let addr = addr
            .trim()
            .to_socket_addrs()
            .map_err(|e| format!("bad address in {item:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("{item:?} resolves to no address"))?;
        if peers.insert(id, addr).is_some() {
            return Err(format!("id {id} appears twice"));
        }
    }
    if peers.is_empty() {
        return Err("no peers".into());
    }
    Ok(peers)
}

/// Returns once this process's parent is no longer `parent` (it exited and this process was
/// re-parented to init or a subreaper). Polling is the portable way: Linux's
/// `PR_SET_PDEATHSIG` needs `unsafe`, which the workspace forbids.
async fn parent_exit(parent: u32) {
    let mut interval = tokio::time::interval(std::time::Duration::from_millis(PARENT_POLL_MS));
    loop {
        interval.tick().await;
        if parent_id() != Some(parent) {
            return;
        }
    }
}

#[cfg(unix)]
fn parent_id() -> Option<u32> {
    Some(std::os::unix::process::parent_id())
}

#[cfg(not(unix))]
fn parent_id() -> Option<u32> {
    None
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate =
            signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        tokio::select! {
            _ = terminate.recv() => Ok("SIGTERM"),
            _ = interrupt.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("waiting for ctrl-c")?;
        Ok("ctrl-c")
    }
}
