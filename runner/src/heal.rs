//! `faultline heal`: end what a harness killed mid-run left behind on this machine.
//!
//! A `faultline test` killed with SIGKILL cannot stop the local processes it started: etcd,
//! ZooKeeper or a custom store detached by `start-stop-daemon`, a raftkv node it had paused
//! with SIGSTOP. Each carries the harness's marker in its environment
//! ([`faultline_targets::orphans`]); `heal` kills those whose harness no longer runs, and
//! `faultline test` / `test-all` do the same before they start anything. Lab hosts are the
//! lab's business: `faultline lab down` removes them with everything on them.

use std::process::ExitCode;

use faultline_targets::orphans;

#[derive(clap::Args, Debug)]
pub struct HealArgs {
    /// Only list what would be killed.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: HealArgs) -> ExitCode {
    let found = orphans::find();
    if found.is_empty() {
        println!("faultline heal: nothing left behind by a dead harness");
        return ExitCode::SUCCESS;
    }
    for orphan in &found {
        println!("{}", describe(orphan));
    }
    if args.dry_run {
        println!(
            "faultline heal: {} process(es) left behind (dry run: none killed)",
            found.len()
        );
        return ExitCode::SUCCESS;
    }
    let failed = orphans::kill(&found);
    for (orphan, why) in &failed {
        eprintln!("faultline heal: could not kill {}: {why}", orphan.pid);
    }
    println!(
        "faultline heal: killed {} process(es) left behind by a dead harness",
        found.len() - failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_INTERNAL)
    }
}

/// What `test` and `test-all` do first: kill leftovers of dead harnesses, saying so on stderr.
/// A leftover that cannot be killed is reported, not fatal: it does not share this run's
/// ports or directories.
pub fn before_run(command: &str) {
    let (found, failed) = orphans::heal();
    if found.is_empty() {
        return;
    }
    eprintln!(
        "faultline {command}: killed {} process(es) left behind by a harness that died \
         (faultline heal):",
        found.len() - failed.len()
    );
    for orphan in &found {
        eprintln!("  {}", describe(orphan));
    }
    for (orphan, why) in &failed {
        eprintln!("faultline {command}: could not kill {}: {why}", orphan.pid);
    }
}

fn describe(orphan: &orphans::Orphan) -> String {
    format!(
        "pid {}{}: {} (harness {} is gone)",
        orphan.pid,
        if orphan.stopped { " (paused)" } else { "" },
        orphan.command,
        orphan.harness
    )
}
