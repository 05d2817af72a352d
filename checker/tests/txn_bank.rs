//! The bank checker: a snapshot read sees the total conserved and no negative balance.

use serde_json::{json, Value};

use faultline_checker::txn::{check, BankOptions, CheckOptions, DataModel, Model, TxnResult};
use faultline_checker::Validity;
use faultline_core::{History, Op, OpType};

/// Sequential operations: (process, f, invocation value, completion type, completion value).
fn history(ops: &[(u64, &str, Value, OpType, Value)]) -> History {
    let mut events = Vec::new();
    for (process, f, invoke, kind, complete) in ops {
        events.push(Op::invoke(*process, f, invoke.clone()));
        events.push(Op::complete(*process, *kind, f, complete.clone()));
    }
    let mut h = History::new(events);
    for (i, op) in h.ops.iter_mut().enumerate() {
        op.index = i as u64;
    }
    h
}

fn bank(h: &History, total: Option<i64>) -> TxnResult {
    let mut options = CheckOptions::new(DataModel::Bank, vec![Model::SnapshotIsolation]);
    options.bank.total = total;
    check(h, &options).unwrap()
}

fn transfer(from: u64, to: u64, amount: i64) -> Value {
    json!({"from": from, "to": to, "amount": amount})
}

#[test]
fn conserved_totals_pass() {
    let h = history(&[
        (
            0,
            "read",
            json!(null),
            OpType::Ok,
            json!({"0": 10, "1": 10}),
        ),
        (
            1,
            "transfer",
            transfer(0, 1, 5),
            OpType::Ok,
            transfer(0, 1, 5),
        ),
        (0, "read", json!(null), OpType::Ok, json!({"0": 5, "1": 15})),
        (
            1,
            "transfer",
            transfer(1, 0, 20),
            OpType::Fail,
            transfer(1, 0, 20),
        ),
        (0, "read", json!(null), OpType::Ok, json!([[0, 5], [1, 15]])),
    ]);
    let r = bank(&h, Some(20));
    assert_eq!(r.valid, Validity::Valid, "{}", r.explain());
    assert_eq!(r.stats.txns, 5);
    assert_eq!(r.stats.fail, 1);
}

#[test]
fn a_read_of_half_a_transfer_is_a_wrong_total() {
    let h = history(&[
        (
            0,
            "read",
            json!(null),
            OpType::Ok,
            json!({"0": 10, "1": 10}),
        ),
        (
            1,
            "transfer",
            transfer(0, 1, 5),
            OpType::Ok,
            transfer(0, 1, 5),
        ),
        (0, "read", json!(null), OpType::Ok, json!({"0": 5, "1": 10})),
        (0, "read", json!(null), OpType::Ok, json!({"0": 5, "1": 15})),
    ]);
    // With the total given, and inferred from the reads (most agree on 20).
    for total in [Some(20), None] {
        let r = bank(&h, total);
        assert_eq!(r.valid, Validity::Invalid, "{}", r.explain());
        let types: Vec<&str> = r.anomaly_types.iter().map(|t| t.as_str()).collect();
        assert_eq!(types, ["wrong-total"]);
        assert_eq!(r.anomaly_counts["wrong-total"], 1);
        let w = &r.anomalies["wrong-total"][0];
        assert_eq!(w.txns[0].index, 4);
        assert!(w.explanation.contains("summing to 15"), "{}", w.explanation);
        let not: Vec<&str> = r.not.iter().map(|m| m.as_str()).collect();
        assert_eq!(not, ["repeatable-read", "snapshot-isolation"]);
    }
}

#[test]
fn negative_balances_are_found_unless_allowed() {
    let h = history(&[(
        0,
        "read",
        json!(null),
        OpType::Ok,
        json!({"0": -5, "1": 25}),
    )]);
    let r = bank(&h, Some(20));
    let types: Vec<&str> = r.anomaly_types.iter().map(|t| t.as_str()).collect();
    assert_eq!(types, ["negative-value"]);
    let mut options = CheckOptions::new(DataModel::Bank, vec![Model::SnapshotIsolation]);
    options.bank = BankOptions {
        total: Some(20),
        negative_allowed: true,
    };
    assert_eq!(check(&h, &options).unwrap().valid, Validity::Valid);
}

#[test]
fn read_only_transactions_are_reads_and_init_gives_the_total() {
    let h = history(&[(
        0,
        "txn",
        json!([["r", 0, null], ["r", 1, null]]),
        OpType::Ok,
        json!([["r", 0, 7], ["r", 1, 3]]),
    )]);
    let mut options = CheckOptions::new(DataModel::Bank, vec![Model::SnapshotIsolation]);
    options.bank = BankOptions::from_init(&json!({"0": 5, "1": 5})).unwrap();
    assert_eq!(check(&h, &options).unwrap().valid, Validity::Valid);
    options.bank = BankOptions::from_init(&json!(11)).unwrap();
    assert_eq!(check(&h, &options).unwrap().valid, Validity::Invalid);
    assert!(BankOptions::from_init(&json!("x")).is_err());
}

#[test]
fn no_reads_is_unknown_and_bad_reads_are_errors() {
    let h = history(&[(
        1,
        "transfer",
        transfer(0, 1, 5),
        OpType::Ok,
        transfer(0, 1, 5),
    )]);
    let r = bank(&h, None);
    assert_eq!(r.valid, Validity::Unknown);
    assert!(r.reason.unwrap().contains("no successful reads"));
    let h = history(&[(0, "read", json!(null), OpType::Ok, json!(7))]);
    let mut options = CheckOptions::new(DataModel::Bank, vec![Model::SnapshotIsolation]);
    options.bank.total = Some(7);
    let err = check(&h, &options).unwrap_err().to_string();
    assert!(err.contains("balances"), "{err}");
}
