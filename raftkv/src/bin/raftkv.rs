//! `raftkv`: one node of faultline's own Raft key-value store. See `raftkv --help`.

use clap::Parser;
use faultline_raftkv::cli::{NodeArgs, AFTER_HELP};

/// One node of faultline's Raft key-value store.
#[derive(Debug, Parser)]
#[command(name = "raftkv", version, about, after_help = AFTER_HELP)]
struct Args {
    #[command(flatten)]
    node: NodeArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    args.node.serve_until_signal().await
}
