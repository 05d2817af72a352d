//! The deterministic simulation, many short seeds per test. A failure prints its seed and how
//! to rerun it. Seed counts are bounded so the whole suite stays well under a minute in a
//! debug build on two cores.

use faultline_raftkv::sim::{run, SimConfig, SimFailure};
use faultline_raftkv::{Bug, Bugs};

/// Runs seeds `0..seeds` of `profile` and panics with the first failure.
fn sweep(profile: fn(u64, usize) -> SimConfig, node_count: usize, seeds: u64) {
    let mut writes = 0;
    for seed in 0..seeds {
        let config = profile(seed, node_count);
        match run(&config) {
            Ok(report) => {
                assert!(
                    report.final_write_ms >= config.safety_phase_ms,
                    "the final write lands after healing"
                );
                writes += report
                    .history
                    .iter()
                    .filter(|e| e.kind == faultline_raftkv::sim::EventType::Ok)
                    .count();
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    assert!(writes > 0, "the clients got some operations through");
}

/// The first seed below `max_seeds` whose run with `bug` fails, with its failure. The same
/// seed without the bug must pass: the failure is the bug's, not the profile's.
fn first_exposing_seed(
    profile: fn(u64, usize) -> SimConfig,
    node_count: usize,
    bug: Bug,
    max_seeds: u64,
) -> Box<SimFailure> {
    for seed in 0..max_seeds {
        if let Err(failure) = run(&profile(seed, node_count).with_bugs(Bugs::only(bug))) {
            eprintln!("bug {bug} exposed by seed {seed}:\n{failure}");
            if let Err(without) = run(&profile(seed, node_count)) {
                panic!("seed {seed} fails without the bug too:\n{without}");
            }
            return failure;
        }
    }
    panic!("bug {bug} was not exposed by seeds 0..{max_seeds}");
}

// ----- the correct store: Raft's safety properties hold, and it recovers -----
// Each run asserts, after every event, election safety (at most one leader per term), leader
// append-only, log matching, leader completeness and state machine safety; at the end, that
// no read was stale and that the healed cluster committed a final write.

#[test]
fn safety_properties_hold_and_healed_cluster_commits_3_nodes() {
    sweep(SimConfig::new, 3, 1000);
}

#[test]
fn safety_properties_hold_and_healed_cluster_commits_5_nodes() {
    sweep(SimConfig::new, 5, 200);
}

#[test]
fn leader_completeness_holds_under_leader_churn() {
    sweep(SimConfig::leader_churn, 3, 300);
    sweep(SimConfig::leader_churn, 5, 150);
}

#[test]
fn election_safety_holds_on_a_slow_network_with_crash_restarts() {
    sweep(SimConfig::slow_network_with_crashes, 3, 300);
    sweep(SimConfig::slow_network_with_crashes, 5, 150);
}

#[test]
fn one_seed_reproduces_a_run() {
    let a = run(&SimConfig::new(99, 5)).expect("seed 99 passes");
    let b = run(&SimConfig::new(99, 5)).expect("seed 99 passes");
    assert_eq!(a.history, b.history);
    assert_eq!(a.nemesis_log, b.nemesis_log);
    assert_eq!(a.leaders, b.leaders);
    let c = run(&SimConfig::new(100, 5)).expect("seed 100 passes");
    assert_ne!(a.history, c.history, "another seed, another run");
}

#[test]
fn history_pairs_every_invocation_with_one_completion() {
    use faultline_raftkv::sim::EventType;
    use std::collections::BTreeMap;
    let report = run(&SimConfig::new(3, 3)).expect("seed 3 passes");
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    for event in report.history() {
        match event.kind {
            EventType::Invoke => assert!(
                open.insert(event.process, event.index as usize).is_none(),
                "one op per process"
            ),
            _ => assert!(
                open.remove(&event.process).is_some(),
                "completion without invocation"
            ),
        }
    }
    assert!(open.is_empty(), "every op completes (info when unknown)");
    let kinds = |k| report.history().iter().filter(|e| e.kind == k).count();
    assert!(kinds(EventType::Ok) > 0 && kinds(EventType::Info) + kinds(EventType::Fail) > 0);
}

// ----- each bug switch in the core is caught by some seed -----

#[test]
fn stale_read_bug_is_caught_as_a_stale_read() {
    let failure = first_exposing_seed(SimConfig::new, 3, Bug::StaleRead, 100);
    assert_eq!(failure.violation.property, "linearizable reads");
}

#[test]
fn lease_read_bug_is_caught_as_a_stale_read() {
    let failure = first_exposing_seed(SimConfig::new, 3, Bug::LeaseRead, 300);
    assert_eq!(failure.violation.property, "linearizable reads");
}

#[test]
fn no_fsync_bug_loses_acknowledged_entries_on_crash() {
    let failure = first_exposing_seed(SimConfig::new, 3, Bug::NoFsync, 100);
    assert_ne!(
        failure.violation.property, "liveness",
        "a safety property broke: {}",
        failure.violation.detail
    );
}

#[test]
fn forget_vote_bug_breaks_election_safety() {
    let failure = first_exposing_seed(
        SimConfig::slow_network_with_crashes,
        3,
        Bug::ForgetVote,
        300,
    );
    assert!(
        failure.violation.detail.contains("election safety"),
        "{}",
        failure.violation.detail
    );
}

#[test]
fn old_term_commit_bug_loses_a_committed_entry() {
    let failure = first_exposing_seed(SimConfig::leader_churn, 3, Bug::OldTermCommit, 600);
    assert_ne!(
        failure.violation.property, "liveness",
        "a safety property broke: {}",
        failure.violation.detail
    );
}

// ----- transactions: the write-skew workload ("doctors on call") -----

/// The default profile plus two transactional clients, one per doctor.
fn with_write_skew_workload(seed: u64, node_count: usize) -> SimConfig {
    SimConfig::new(seed, node_count).with_txn_clients(2)
}

#[test]
fn transactions_are_serializable_under_faults() {
    use faultline_raftkv::sim::{EventType, Function};
    let mut committed = 0;
    for seed in 0..200 {
        let report =
            run(&with_write_skew_workload(seed, 3)).unwrap_or_else(|failure| panic!("{failure}"));
        committed += report
            .history
            .iter()
            .filter(|e| e.f == Function::Txn && e.kind == EventType::Ok)
            .count();
    }
    assert!(committed > 0, "some transactions committed");
}

#[test]
fn snapshot_isolation_txn_bug_allows_write_skew() {
    let failure = first_exposing_seed(with_write_skew_workload, 3, Bug::SnapshotIsolationTxn, 300);
    assert_eq!(
        failure.violation.property, "serializability (write skew)",
        "{}",
        failure.violation.detail
    );
}
