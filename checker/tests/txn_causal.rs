//! Causal consistency that can fail: Bouajjani et al.'s bad patterns on register histories,
//! Biswas & Enea's read committed / read atomic / causal on transactions, and the session
//! guarantees named when a violation has their shape. One small history per pattern, with
//! histories that must pass.

use faultline_checker::txn::{check, dsl, CheckOptions, DataModel, Model, TxnResult};
use faultline_checker::Validity;

fn register(text: &str, consistency: &[&str]) -> TxnResult {
    let models: Vec<Model> = consistency.iter().map(|m| m.parse().unwrap()).collect();
    check(
        &dsl::register(text),
        &CheckOptions::new(DataModel::Register, models),
    )
    .expect("the history checks")
}

fn txns(model: DataModel, text: &str, consistency: &[&str]) -> TxnResult {
    let history = match model {
        DataModel::ListAppend => dsl::list_append(text),
        _ => dsl::rw_register(text),
    };
    let models: Vec<Model> = consistency.iter().map(|m| m.parse().unwrap()).collect();
    check(&history, &CheckOptions::new(model, models)).expect("the history checks")
}

fn types(result: &TxnResult) -> Vec<&'static str> {
    result.anomaly_types.iter().map(|t| t.as_str()).collect()
}

fn not(result: &TxnResult) -> Vec<&'static str> {
    result.not.iter().map(|m| m.as_str()).collect()
}

#[track_caller]
fn fails(result: TxnResult, anomaly: &str) -> TxnResult {
    assert_eq!(result.valid, Validity::Invalid, "{}", result.explain());
    assert!(
        types(&result).contains(&anomaly),
        "expected {anomaly}, found {:?}\n{}",
        types(&result),
        result.explain()
    );
    result
}

#[track_caller]
fn passes(result: TxnResult) {
    assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
}

// Registers.

#[test]
fn causally_consistent_register_histories_pass() {
    passes(register(
        "0:wx1 1:rx1 1:wy2 2:ry2 2:rx1 0:rx1",
        &["causal", "causal-convergence", "causal-memory"],
    ));
    // Concurrent writes seen in different orders by different sessions: causal, not
    // convergent.
    let text = "0:wx1 1:wx2 2:rx1 2:rx2 3:rx2 3:rx1";
    passes(register(text, &["causal"]));
    let r = fails(register(text, &["causal-convergence"]), "cyclic-cf");
    assert_eq!(not(&r), ["causal-convergence"]);
}

#[test]
fn read_your_writes() {
    let r = fails(register("0:wx1 0:rx", &["causal"]), "read-your-writes");
    assert_eq!(not(&r), ["read-your-writes"]);
    assert!(r.anomalies["read-your-writes"][0]
        .explanation
        .contains("This breaks read your writes"));
    passes(register("0:wx1 0:rx1", &["read-your-writes"]));
}

#[test]
fn monotonic_reads() {
    fails(register("0:wx1 1:rx1 1:rx", &["causal"]), "monotonic-reads");
    fails(
        register("0:wx1 1:rx1 1:wx2 2:rx2 2:rx1", &["PRAM"]),
        "monotonic-reads",
    );
    passes(register("0:wx1 1:rx 1:rx1", &["monotonic-reads"]));
}

#[test]
fn monotonic_writes() {
    // Process 0 writes x then y; process 1 sees y but not x.
    let r = fails(
        register("0:wx1 0:wy2 1:ry2 1:rx", &["causal"]),
        "monotonic-writes",
    );
    assert_eq!(not(&r), ["monotonic-writes"]);
}

#[test]
fn writes_follow_reads() {
    // Process 1 read x = 1 and then wrote y; process 2 sees that y, then x's initial value.
    fails(
        register("0:wx1 1:rx1 1:wy2 2:ry2 2:rx", &["causal"]),
        "writes-follow-reads",
    );
}

#[test]
fn write_co_init_read_without_a_session_shape() {
    // The causal chain runs through three sessions before the stale read.
    fails(
        register("0:wx1 1:rx1 1:wy1 2:ry1 2:wz1 3:rz1 3:rx", &["causal"]),
        "write-co-init-read",
    );
}

#[test]
fn write_co_read_without_a_session_shape() {
    fails(
        register(
            "0:wx1 1:rx1 1:wx2 2:rx2 2:wy1 3:ry1 3:wz1 4:rz1 4:rx1",
            &["causal"],
        ),
        "write-co-read",
    );
}

#[test]
fn thin_air_read() {
    let r = fails(register("0:wx1 1:rx7", &["causal"]), "thin-air-read");
    assert!(not(&r).contains(&"read-your-writes"));
    fails(register("0!wx1 1:rx1", &["causal"]), "thin-air-read");
}

#[test]
fn cyclic_co() {
    // Each process reads the value the other writes afterwards.
    fails(
        register("0<rx2 1<rx1 0>rx2 1>rx1 0:wx1 1:wx2", &["causal"]),
        "cyclic-co",
    );
}

#[test]
fn causal_memory_orders_writes_by_reads() {
    // Each process writes x, then reads the other's write: fine for causal, but causal
    // memory's happens-before orders the two writes both ways for a later observer.
    let text = "0:wx1 1:wx2 0:rx2 1:rx1 0:wy1 1:wz1 2:ry1 2:rz1";
    passes(register(text, &["causal"]));
    fails(register(text, &["causal-memory"]), "cyclic-hb");
}

#[test]
fn linearizability_is_not_checked_here() {
    let err = check(
        &dsl::register("0:wx1"),
        &CheckOptions::new(DataModel::Register, vec![Model::Linearizable]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("linearizability checker"), "{err}");
}

// Transactions (Biswas & Enea).

#[test]
fn causal_transactions_pass() {
    passes(txns(
        DataModel::RwRegister,
        "0:wx1 1:rx1wy1 2:ry1rx1 0:rx1",
        &["causal"],
    ));
    passes(txns(
        DataModel::ListAppend,
        "0:ax1 1:rx1ay1 2:ry1rx1",
        &["causal"],
    ));
}

#[test]
fn read_atomic_forbids_fractured_reads() {
    // T2 reads y before x: its read of y may precede T1 (read committed), but having read
    // from T1, read atomic makes all of T1 visible.
    let text = "0:wx1wy1 1:ryrx1";
    passes(txns(DataModel::RwRegister, text, &["read-committed-be"]));
    let r = fails(
        txns(DataModel::RwRegister, text, &["read-atomic"]),
        "read-atomic-cycle",
    );
    assert_eq!(not(&r), ["read-atomic"]);
}

#[test]
fn read_committed_be_forbids_reading_older_after_newer() {
    let r = fails(
        txns(
            DataModel::RwRegister,
            "0:wx1wy1 1:rx1ry",
            &["read-committed-be"],
        ),
        "read-committed-be-cycle",
    );
    assert_eq!(not(&r), ["read-committed-be"]);
}

#[test]
fn causal_transactions_name_the_session_guarantee() {
    fails(
        txns(DataModel::RwRegister, "0:wx1 1:rx1wy1 2:ry1rx", &["causal"]),
        "writes-follow-reads",
    );
    fails(
        txns(DataModel::ListAppend, "0:ax1 1:rx1ay1 2:ry1rx", &["causal"]),
        "writes-follow-reads",
    );
    fails(
        txns(DataModel::RwRegister, "0:wx1 0:rx", &["causal"]),
        "read-your-writes",
    );
}

#[test]
fn causal_cycles_through_forced_commit_order() {
    // The last transaction reads x = 1 from the first, although the second's write of x = 2
    // happened before it (through y, z and q, across four sessions); the second read x = 1
    // first, so the first commits before it, and the forced order "second before first" closes
    // a cycle. The chain is too long for any session guarantee's shape.
    let text = "0:wx1 1:rx1wx2 1:wy2 2:ry2wz2 3:rz2wq2 4:rq2rx1";
    let r = fails(
        txns(DataModel::RwRegister, text, &["causal"]),
        "causal-cycle",
    );
    assert_eq!(not(&r), ["causal"]);
}
