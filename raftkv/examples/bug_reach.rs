//! How often the simulation reaches the `old-term-commit` and `forget-vote` bugs, and on what
//! it depends: for each setting, how many seeds of `0..SEEDS` (default 600) expose the bug.
//!
//! ```text
//! cargo run --release -p faultline-raftkv --example bug_reach [SEEDS]
//! ```
//!
//! The figures back docs/bug-table.md's account of why random faults against the real server
//! do not reach these two bugs (`forget-vote` is caught there by the `restart-voter` fault,
//! which builds the interleaving step by step instead):
//!
//! - `old-term-commit` changes what commits only when a quorum acknowledges entries of an
//!   earlier term *without* the new leader's no-op, which travels in the same AppendEntries as
//!   the entries before it. That takes a follower whose catch-up needs more than one message:
//!   with one entry per message the bug shows, with the server's 64 it does not.
//! - `forget-vote` needs a vote request that reaches a voter *after* it crashed and restarted
//!   (pre-vote keeps any candidate from starting the same term later). Over TCP, as the server
//!   talks, a message to a process is lost with it; with such links the bug rarely shows,
//!   even though a candidate asks again the peers that have not answered.
//!
//! A measurement, not a test: it asserts nothing and is not run by CI.

use faultline_raftkv::sim::{self, SimConfig};
use faultline_raftkv::{Bug, Bugs};

/// How many of `seeds` fail with `bug` under `config(seed)`, and the first few.
fn exposing(seeds: u64, bug: Bug, config: impl Fn(u64) -> SimConfig) -> (usize, Vec<u64>) {
    let failing: Vec<u64> = (0..seeds)
        .filter(|&seed| sim::run(&config(seed).with_bugs(Bugs::only(bug))).is_err())
        .collect();
    let first = failing.iter().copied().take(5).collect();
    (failing.len(), first)
}

fn main() {
    let seeds: u64 = match std::env::args().nth(1) {
        None => 600,
        Some(arg) => arg.parse().unwrap_or_else(|_| {
            eprintln!("usage: bug_reach [SEEDS]");
            std::process::exit(2)
        }),
    };
    println!("| bug | profile | setting | seeds exposing it (of {seeds}) | first |");
    println!("|---|---|---|---|---|");
    for per_message in [1, 8, 64] {
        let (count, first) = exposing(seeds, Bug::OldTermCommit, |seed| {
            let mut config = SimConfig::leader_churn(seed, 3);
            config.max_entries_per_message = per_message;
            config
        });
        println!(
            "| old-term-commit | leader_churn, 3 nodes | {per_message} entries per AppendEntries | {count} | {first:?} |"
        );
    }
    for nodes in [3, 5] {
        for outlive in [true, false] {
            let (count, first) = exposing(seeds, Bug::ForgetVote, |seed| {
                let mut config = SimConfig::slow_network_with_crashes(seed, nodes);
                config.messages_outlive_crashes = outlive;
                config
            });
            let links = if outlive {
                "messages outlive a crash of their receiver"
            } else {
                "messages die with their receiver (TCP)"
            };
            println!(
                "| forget-vote | slow_network_with_crashes, {nodes} nodes | {links} | {count} | {first:?} |"
            );
        }
    }
}
