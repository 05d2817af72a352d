//! `faultline raftkv-server`: one raftkv node, run in this process (hidden; the raftkv target
//! starts each node this way, so testing raftkv needs only the faultline binary).
//!
//! The flags and the serving loop are the `raftkv` binary's own (`faultline_raftkv::cli`).

use std::process::ExitCode;

use faultline_raftkv::cli::NodeArgs;

use crate::EXIT_INTERNAL;

/// The flags of one node: exactly the `raftkv` binary's (`raftkv --help`).
pub type RaftkvServerArgs = NodeArgs;

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
    match runtime.block_on(args.serve_until_signal()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("faultline raftkv-server: {e:#}");
            ExitCode::from(EXIT_INTERNAL)
        }
    }
}
