//! The `faultline` command.
//!
//! `faultline check` checks history files offline (`CONTRACTS.md` §2); `faultline test` runs a
//! test (§3); `faultline test-all` runs a matrix of tests (§4); `faultline lab` builds and removes network-namespace hosts (`docs/lab.md`). Exit
//! codes follow Jepsen: 0 valid, 1 invalid, 2 unknown, 254 bad arguments or unreadable input,
//! 255 internal error.

mod check;
mod check_coordination;
mod check_lock;
mod check_log;
mod check_txn;
mod heal;
mod lab;
mod raftkv_server;
mod report;
mod serve;
mod test;
mod test_all;

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
    Test(Box<test::TestArgs>),
    /// Run a matrix of tests (targets x workloads x nemeses x repetitions); JUnit XML for CI.
    TestAll(test_all::TestAllArgs),
    /// Network-namespace hosts with sshd on this machine (root): up, down, status.
    Lab(lab::LabArgs),
    /// Kill what a harness killed mid-run left on this machine (daemons, paused nodes).
    Heal(heal::HealArgs),
    /// Rebuild the HTML report of stored runs (`store/<test>/<timestamp>`).
    Report(report::ReportArgs),
    /// Browse the store over HTTP: every run, its report and its files.
    Serve(serve::ServeArgs),
    /// One raftkv node in this process (how the raftkv target starts its nodes).
    #[command(hide = true)]
    RaftkvServer(raftkv_server::RaftkvServerArgs),
}

/// Reading a long history allocates millions of small strings from every core at once, where
/// mimalloc is markedly faster than the system allocator (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::Test(args) => test::run(*args),
        Command::TestAll(args) => test_all::run(args),
        Command::Lab(args) => lab::run(args),
        Command::Heal(args) => heal::run(args),
        Command::Report(args) => report::run(args),
        Command::Serve(args) => serve::run(args),
        Command::RaftkvServer(args) => raftkv_server::run(args),
    }
}
