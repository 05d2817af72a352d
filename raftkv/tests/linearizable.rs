//! The simulation's client histories, checked for linearizability by faultline's own checker:
//! every seed of the correct store is linearizable, and the read bugs are caught by the checker
//! itself (not only by the simulation's direct stale-read check).

use faultline_checker::linearizability::{check, CheckOptions, LinearizabilityResult};
use faultline_checker::{ModelKind, Validity};
use faultline_core::{History, Op};
use faultline_raftkv::sim::{run, Function, HistoryEvent, SimConfig};
use faultline_raftkv::{Bug, Bugs};

/// The simulation speaks get / put / cas; the cas-register model reads / writes / cas.
/// Transactions (the write-skew workload, checked by the simulation itself) are left out.
fn history(events: &[HistoryEvent]) -> History {
    let ops = events
        .iter()
        .filter(|event| event.f != Function::Txn)
        .map(|event| {
            let mut json = serde_json::to_value(event).expect("events serialize");
            let f = match json["f"].as_str() {
                Some("get") => "read",
                Some("put") => "write",
                Some(other) => other,
                None => panic!("an event without f"),
            };
            json["f"] = f.into();
            serde_json::from_value::<Op>(json).expect("events are faultline ops")
        })
        .collect();
    History::new(ops)
}

fn linearizable(events: &[HistoryEvent]) -> LinearizabilityResult {
    check(&history(events), &CheckOptions::new(ModelKind::CasRegister)).expect("well formed")
}

fn sweep(profile: fn(u64, usize) -> SimConfig, nodes: usize, seeds: u64) {
    let mut ops = 0;
    for seed in 0..seeds {
        let report = run(&profile(seed, nodes)).unwrap_or_else(|failure| panic!("{failure}"));
        let result = linearizable(&report.history);
        assert_eq!(
            result.valid,
            Validity::Valid,
            "seed {seed} ({nodes} nodes) is not linearizable:\n{}",
            result.explain()
        );
        ops += result.ops;
    }
    assert!(ops > 0);
}

#[test]
fn client_histories_are_linearizable_3_nodes() {
    sweep(SimConfig::new, 3, 60);
    sweep(SimConfig::leader_churn, 3, 30);
    sweep(SimConfig::slow_network_with_crashes, 3, 30);
}

#[test]
fn client_histories_are_linearizable_5_nodes() {
    sweep(SimConfig::new, 5, 20);
    sweep(SimConfig::leader_churn, 5, 10);
}

/// The first seed below `max_seeds` whose history the checker finds not linearizable.
fn checker_catches(profile: fn(u64, usize) -> SimConfig, bug: Bug, max_seeds: u64) -> u64 {
    for seed in 0..max_seeds {
        let events = match run(&profile(seed, 3).with_bugs(Bugs::only(bug))) {
            Ok(report) => report.history,
            Err(failure) => failure.history,
        };
        let result = linearizable(&events);
        if result.valid == Validity::Invalid {
            eprintln!("{bug}: seed {seed}\n{}", result.explain());
            return seed;
        }
    }
    panic!("the checker found no violation with {bug} in seeds 0..{max_seeds}");
}

#[test]
fn stale_read_bug_is_caught_by_the_checker() {
    checker_catches(SimConfig::new, Bug::StaleRead, 50);
}

#[test]
fn lease_read_bug_is_caught_by_the_checker() {
    checker_catches(SimConfig::new, Bug::LeaseRead, 100);
}
