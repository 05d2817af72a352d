//! One small readable history per anomaly type, in the DSL of `txn::dsl` (Elle's "ax1ry12"),
//! with the cases that must pass beside the ones that must fail.

use faultline_checker::txn::{check, dsl, CheckOptions, DataModel, Model, TxnResult};
use faultline_checker::Validity;

fn run(model: DataModel, text: &str, consistency: &[&str]) -> TxnResult {
    let history = match model {
        DataModel::ListAppend => dsl::list_append(text),
        DataModel::RwRegister => dsl::rw_register(text),
        _ => unreachable!(),
    };
    let models: Vec<Model> = consistency.iter().map(|m| m.parse().unwrap()).collect();
    check(&history, &CheckOptions::new(model, models)).expect("the history checks")
}

fn la(text: &str, consistency: &[&str]) -> TxnResult {
    run(DataModel::ListAppend, text, consistency)
}

fn rw(text: &str, consistency: &[&str]) -> TxnResult {
    run(DataModel::RwRegister, text, consistency)
}

fn types(result: &TxnResult) -> Vec<&'static str> {
    result.anomaly_types.iter().map(|t| t.as_str()).collect()
}

fn not(result: &TxnResult) -> Vec<&'static str> {
    result.not.iter().map(|m| m.as_str()).collect()
}

/// The history fails `consistency` with `anomaly` among its anomaly types.
#[track_caller]
fn fails(result: TxnResult, anomaly: &str) -> TxnResult {
    assert_eq!(result.valid, Validity::Invalid, "{}", result.explain());
    assert!(
        types(&result).contains(&anomaly),
        "expected {anomaly}, found {:?}\n{}",
        types(&result),
        result.explain()
    );
    let witness = &result.anomalies[anomaly][0];
    assert!(
        witness.explanation.starts_with("Let:\n"),
        "{}",
        witness.explanation
    );
    result
}

#[track_caller]
fn passes(result: TxnResult) {
    assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
}

const ALL: &[&str] = &["strict-serializable"];

// List-append.

#[test]
fn a_serial_history_passes_everything() {
    passes(la("0:ax1 1:rx1ax2 2:rx12ay1 0:ry1rx12", ALL));
    passes(la(
        "0:ax1 1:rx1ax2 2:rx12ay1 0:ry1rx12",
        &["causal", "read-atomic"],
    ));
}

#[test]
fn concurrent_transactions_may_commit_in_either_order() {
    // T1 and T2 overlap; T2 committed first in the version order.
    passes(la("0<ax1 1<ax2 0>ax1 1>ax2 2:rx21", ALL));
}

#[test]
fn g0_is_a_cycle_of_writes() {
    let r = fails(
        la(
            "0<ax1ay2 1<ax2ay1 0>ax1ay2 1>ax2ay1 2:rx12ry12",
            &["serializable"],
        ),
        "G0",
    );
    assert_eq!(not(&r), ["read-uncommitted"]);
    let w = &r.anomalies["G0"][0];
    assert!(w.cycle.iter().all(|s| s.relation == "ww"));
    assert!(w.explanation.contains("right after"), "{}", w.explanation);
}

#[test]
fn g1a_is_an_aborted_read() {
    let r = fails(la("0!ax1 1:rx1", ALL), "G1a");
    assert_eq!(not(&r), ["read-committed"]);
    passes(la("0!ax1 1:rx", ALL));
}

#[test]
fn g1b_is_an_intermediate_read() {
    fails(la("0:ax1ax2 1:rx1", ALL), "G1b");
    passes(la("0:ax1ax2 1:rx12", ALL));
}

#[test]
fn g1c_is_circular_information_flow() {
    let r = fails(
        la("0<ax1ry1 1<ay1rx1 0>ax1ry1 1>ay1rx1", &["read-committed"]),
        "G1c",
    );
    assert!(r.anomalies["G1c"][0]
        .cycle
        .iter()
        .all(|s| s.relation == "wr"));
}

#[test]
fn g_single_is_read_skew() {
    // T2 sees T1's y but not its x.
    let r = fails(
        la("0<ax1ay1 1<rxry 0>ax1ay1 1>rxry1", &["snapshot-isolation"]),
        "G-single-item",
    );
    assert_eq!(not(&r), ["repeatable-read", "snapshot-isolation"]);
    // Read committed allows it.
    passes(la("0<ax1ay1 1<rxry 0>ax1ay1 1>rxry1", &["read-committed"]));
}

#[test]
fn g_nonadjacent_breaks_snapshot_isolation() {
    // T1 -rw-> T2 -wr-> T3 -rw-> T4 -wr-> T1: two rw edges, never adjacent.
    let text = "0<rard 1<aa1ac1 2<rcrb 3<ab1ad1 0>rard1 1>aa1ac1 2>rc1rb 3>ab1ad1";
    let r = fails(la(text, &["snapshot-isolation"]), "G-nonadjacent-item");
    assert_eq!(not(&r), ["repeatable-read", "snapshot-isolation"]);
    passes(la(text, &["read-committed"]));
}

#[test]
fn g2_item_is_write_skew_which_snapshot_isolation_allows() {
    let text = "0<rxay1 1<ryax1 0>rxay1 1>ryax1";
    let r = fails(la(text, &["serializable"]), "G2-item");
    assert_eq!(not(&r), ["repeatable-read"]);
    passes(la(text, &["snapshot-isolation"]));
    let w = &r.anomalies["G2-item"][0];
    assert!(w.cycle.iter().all(|s| s.relation == "rw"));
    assert!(
        w.explanation.contains("T2's append of 1"),
        "{}",
        w.explanation
    );
}

#[test]
fn real_time_variants_need_strict_serializability() {
    // A stale read: T2 began after T1 committed, and missed its append.
    let r = fails(la("0:ax1 1:rx", ALL), "G-single-item-realtime");
    assert_eq!(not(&r), ["strong-snapshot-isolation"]);
    passes(la("0:ax1 1:rx", &["serializable", "snapshot-isolation"]));
    // Writes out of real-time order.
    fails(la("0:ax1 1:ax2 2:rx21", ALL), "G0-realtime");
    // Reading a write that began after the read finished.
    fails(la("0:rx1 1:ax1", ALL), "G1c-realtime");
    // Two stale reads: write skew across real time.
    fails(
        la("0:ax1 1:ay1 2<rxay2 3<ryax2 2>rxay2 3>ryax2", ALL),
        "G-single-item-realtime",
    );
}

#[test]
fn process_variants_need_strong_session_models() {
    // A process that does not read its own write.
    let r = fails(
        la("0:ax1 0:rx", &["strong-session-serializable"]),
        "G-single-item-process",
    );
    assert_eq!(not(&r), ["strong-session-snapshot-isolation"]);
    passes(la("0:ax1 0:rx", &["serializable"]));
    fails(
        la("0:ax1 0:ax2 1:rx21", &["strong-session-read-uncommitted"]),
        "G0-process",
    );
    fails(
        la("0:rx1 0:ax1", &["strong-session-read-committed"]),
        "G1c-process",
    );
}

#[test]
fn internal_inconsistency() {
    let r = fails(la("0:rxax1rx", ALL), "internal");
    assert!(r.anomalies["internal"][0].explanation.contains("imply [1]"));
    fails(la("0:ax1 1:ax2rx1", ALL), "internal");
    passes(la("0:ax1 1:ax2rx12", ALL));
}

#[test]
fn duplicate_elements() {
    fails(la("0:ax1 1:rx11", ALL), "duplicate-elements");
}

#[test]
fn incompatible_order() {
    let r = fails(la("0:ax1 1:ax2 2:rx12 3:rx21", ALL), "incompatible-order");
    assert!(r.anomalies["incompatible-order"][0]
        .explanation
        .contains("neither is a prefix"));
}

#[test]
fn dirty_update() {
    fails(la("0!ax1 1:ax2 2:rx12", ALL), "dirty-update");
}

#[test]
fn lost_update() {
    let r = fails(
        la("0<rxax1 1<rxax2 0>rxax1 1>rxax2", &["repeatable-read"]),
        "lost-update",
    );
    assert!(r.not.iter().any(|m| m.as_str() == "repeatable-read"));
}

#[test]
fn future_read() {
    fails(la("0:rx1ax1", ALL), "future-read");
}

#[test]
fn thin_air_read() {
    fails(la("0:ax1 1:rx19", ALL), "thin-air-read");
}

#[test]
fn crashed_transactions_may_or_may_not_have_committed() {
    // An info append may be seen, or not.
    passes(la("0?ax1 1:rx1", ALL));
    passes(la("0?ax1 1:rx", ALL));
    // But if seen, it committed: reading it and then not is a cycle.
    fails(la("0?ax1 1:rx1 2:rx", ALL), "G-single-item-realtime");
}

#[test]
fn explanations_are_deterministic() {
    let text = "0<rxay1 1<ryax1 0>rxay1 1>ryax1 2<rzaw1 3<rwaz1 2>rzaw1 3>rwaz1";
    let a = la(text, ALL);
    let b = la(text, ALL);
    assert_eq!(a, b);
    assert_eq!(a.anomaly_counts["G2-item"], 2);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}

// rw-register.

#[test]
fn rw_register_serial_history_passes() {
    passes(rw("0:wx1 1:rx1wx2 2:rx2wy3 0:ry3", ALL));
}

#[test]
fn rw_register_aborted_and_intermediate_reads() {
    fails(rw("0!wx1 1:rx1", ALL), "G1a");
    fails(rw("0:wx1wx2 1:rx1", ALL), "G1b");
    fails(rw("0:rx5", ALL), "thin-air-read");
}

#[test]
fn rw_register_internal_and_future_reads() {
    fails(rw("0:wx1 1:wx2rx1", ALL), "internal");
    fails(rw("0:rx1wx1", ALL), "future-read");
    passes(rw("0:wx1 1:wx2rx2", ALL));
}

#[test]
fn rw_register_lost_update_and_write_skew() {
    let r = fails(
        rw("0<rxwx1 1<rxwx2 0>rxwx1 1>rxwx2", &["serializable"]),
        "lost-update",
    );
    assert!(types(&r).contains(&"G2-item"), "{:?}", types(&r));
    let skew = "0<rxwy1 1<rywx1 0>rxwy1 1>rywx1";
    fails(rw(skew, &["serializable"]), "G2-item");
    passes(rw(skew, &["snapshot-isolation"]));
}

#[test]
fn rw_register_cyclic_versions() {
    fails(
        rw("0<rx1wx2 1<rx2wx1 0>rx1wx2 1>rx2wx1", ALL),
        "cyclic-versions",
    );
}

#[test]
fn rw_register_dirty_update() {
    fails(rw("0!wx1 1:rx1wx2", ALL), "dirty-update");
}

#[test]
fn rw_register_g_single_from_writes_follow_reads() {
    // T2 read x = 1, wrote x = 2 (so 1 < 2); T3 read y from T2 but x = 1, before T2's 2.
    let text = "0:wx1 1<rx1wx2wy2 2<ry2rx1 1>rx1wx2wy2 2>ry2rx1";
    fails(rw(text, &["snapshot-isolation"]), "G-single-item");
}

#[test]
fn rw_register_real_time_order_only_under_strong_models() {
    // T1 wrote 1 and finished; T2 wrote 2 and finished; T3 then read 1: stale under strict
    // serializability (keys are linearizable), fine under serializability.
    let text = "0:wx1 1:wx2 2:rx1";
    let r = fails(rw(text, ALL), "G-single-item-realtime");
    assert_eq!(not(&r), ["strong-snapshot-isolation"]);
    let w = &r.anomalies["G-single-item-realtime"][0];
    assert!(
        w.explanation
            .contains("holds only if each key is linearizable")
            || w.cycle.iter().all(|s| !s.because.contains("linearizable")),
        "{}",
        w.explanation
    );
    passes(rw(text, &["serializable"]));
}

#[test]
fn rw_register_process_order_only_under_strong_session_models() {
    // Process 0 wrote 1 then 2; process 1 read 2, then 1.
    let text = "0:wx1 0:wx2 1<rx2 1>rx2 1:rx1";
    let r = fails(
        rw(text, &["strong-session-snapshot-isolation"]),
        "G-single-item-process",
    );
    assert_eq!(not(&r), ["strong-session-snapshot-isolation"]);
    passes(rw(text, &["serializable"]));
}

#[test]
fn bad_input_is_an_error_not_a_verdict() {
    let history = dsl::list_append("0:ax1 1:ax1");
    let err = check(
        &history,
        &CheckOptions::new(DataModel::ListAppend, vec![Model::Serializable]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("unique appends"), "{err}");
    let history = dsl::rw_register("0:wx1 1:wx1");
    let err = check(
        &history,
        &CheckOptions::new(DataModel::RwRegister, vec![Model::Serializable]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("unique writes"), "{err}");
}

#[test]
fn the_time_limit_gives_unknown_with_a_reason() {
    let history = dsl::list_append("0<rxay1 1<ryax1 0>rxay1 1>ryax1");
    let mut options = CheckOptions::new(DataModel::ListAppend, vec![Model::Serializable]);
    options.time_limit = Some(std::time::Duration::ZERO);
    let r = check(&history, &options).unwrap();
    assert_eq!(r.valid, Validity::Unknown, "{}", r.explain());
    assert!(r.reason.as_deref().unwrap().contains("time limit"));
}
