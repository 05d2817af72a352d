//! The `faultline` command.
//!
//! `faultline check` checks history files offline (`CONTRACTS.md` §2). Exit codes follow
//! Jepsen: 0 valid, 1 invalid, 2 unknown, 254 bad arguments or unreadable input, 255 internal
//! error.

mod check;
mod check_txn;
mod raftkv_server;
mod test;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit status for bad arguments or unreadable input.
pub const EXIT_BAD_INPUT: u8 = 254;
/// Exit status for a failure of faultline itself.
pub const EXIT_INTERNAL: u8 = 255;

#[derive(Parser, Debug)]
#[command(
    name = "faultline",
    version,
    about = "Finds consistency bugs in distributed systems: injects faults, records histories, \
             and checks them (linearizability, and more to come)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check history files offline (JSON Lines, Jepsen/Knossos/Elle EDN, Porcupine logs).
    Check(check::CheckArgs),
    /// Run a test: set up a target, record a history under a workload, check it, store it.
    Test(test::TestArgs),
    /// One raftkv node in this process (how the raftkv target starts its nodes).
    #[command(hide = true)]
    RaftkvServer(raftkv_server::RaftkvServerArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version are successes; anything else is a usage error.
            return if e.use_stderr() {
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Test(args) => test::run(args),
        Command::RaftkvServer(args) => raftkv_server::run(args),
    }
}
