//! `faultline raftkv-server`: one raftkv node, run in this process (hidden; the raftkv target
//! starts each node this way, so testing raftkv needs only the faultline binary).
//!
//! The flags mirror the `raftkv` binary's (`raftkv --help`), which keeps its parser private.

use anyhow::Context as _;
use clap::Args;
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use faultline_raftkv::raft::NodeId;
use faultline_raftkv::server::{Server, ServerConfig};
use faultline_raftkv::Bugs;

use crate::EXIT_INTERNAL;

#[derive(Args, Debug, Clone)]
pub struct RaftkvServerArgs {
    /// This node's id: a key of --peers.
    #[arg(long)]
    id: NodeId,
    /// Every member's peer address, this node's included: `1=127.0.0.1:7001,2=...`.
    #[arg(long, value_parser = parse_peers)]
    peers: BTreeMap<NodeId, SocketAddr>,
    /// Address of the HTTP client API.
    #[arg(long)]
    listen_client: SocketAddr,
    /// Directory of the write-ahead log and snapshot (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// Bugs to switch on, comma-separated.
    #[arg(long = "bug", value_parser = parse_bugs)]
    bugs: Option<Bugs>,
    /// Per-request deadline; past it a write is answered 504 timeout (indefinite).
    #[arg(long, default_value_t = 2_000)]
    request_timeout_ms: u64,
}

fn parse_bugs(list: &str) -> Result<Bugs, String> {
    Bugs::parse_list(list).map_err(|e| e.to_string())
}

fn parse_peers(list: &str) -> Result<BTreeMap<NodeId, SocketAddr>, String> {
    let mut peers = BTreeMap::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not ID=HOST:PORT"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|e| format!("bad id in {item:?}: {e}"))?;
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

pub fn run(args: RaftkvServerArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("raftkv-server")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("faultline raftkv-server: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("faultline raftkv-server: {e:#}");
            ExitCode::from(EXIT_INTERNAL)
        }
    }
}

async fn serve(args: RaftkvServerArgs) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let config = ServerConfig {
        bugs: args.bugs.unwrap_or_else(Bugs::none),
        request_timeout_ms: args.request_timeout_ms,
        ..ServerConfig::new(
            args.id,
            args.peers,
            args.listen_client,
            args.data_dir.clone(),
        )
    };
    let mut server = Server::start(config)
        .await
        .with_context(|| format!("starting node {} on {}", args.id, args.data_dir.display()))?;
    tracing::info!(client = %server.client_addr(), "raftkv node {} serving", args.id);
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
        result = server.stopped() => return result.context("the node failed"),
    }
    tracing::info!("signal received: stopping");
    server.shutdown().await.context("stopping the node")
}
