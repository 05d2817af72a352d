//! The bank: transfers move money between accounts; reads see every balance at once. A read
//! of a consistent snapshot sees the total conserved and, when transfers refuse to overdraw,
//! no negative balance. A wrong total is read skew or a lost update; a negative balance is a
//! lost update or write skew: both impossible under snapshot isolation or repeatable read.
//!
//! Accepted shapes (Jepsen's bank, in either history format):
//! - `transfer`: `{"from": a, "to": b, "amount": n}` (only counted: the reads decide);
//! - `read`: the balances as an object `{"0": 10, "1": 20}` (EDN `{0 10, 1 20}`), as pairs
//!   `[[0, 10], [1, 20]]`, or as a read-only transaction `[["r", 0, 10], ["r", 1, 20]]`
//!   (`f` = `txn`).
//!
//! The total is `BankOptions::total` when known (`--init`); otherwise the total most reads
//! agree on (ties: the smallest), and the explanation says it was inferred.

use rustc_hash::FxHashMap;
use serde_json::{json, Value};

use faultline_core::{History, OpType};

use super::anomaly::{Anomaly, AnomalyType as A, TxnSummary};
use super::consistency::Domain;
use super::{Assembly, CheckOptions, Found, TxnError, TxnResult, TxnStats};

/// What the bank checker knows beyond the history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BankOptions {
    /// The money in the bank, conserved by every transfer.
    pub total: Option<i64>,
    /// Whether balances may go negative (transfers that do not check the balance).
    pub negative_allowed: bool,
}

impl BankOptions {
    /// From `--init`: a number (the total) or an object of initial balances (summed).
    pub fn from_init(init: &Value) -> Result<BankOptions, String> {
        let total = match init {
            Value::Null => None,
            Value::Number(n) => Some(
                n.as_i64()
                    .ok_or_else(|| format!("the bank's total {n} is not an integer"))?,
            ),
            Value::Object(balances) => {
                let mut sum = 0i64;
                for (account, balance) in balances {
                    sum += balance.as_i64().ok_or_else(|| {
                        format!("account {account}'s initial balance {balance} is not an integer")
                    })?;
                }
                Some(sum)
            }
            other => {
                return Err(format!(
                    "--init for bank is the total or the initial balances, not {other}"
                ))
            }
        };
        Ok(BankOptions {
            total,
            negative_allowed: false,
        })
    }
}

/// One successful read: its position, and the balances it saw.
struct Snapshot {
    invoke: usize,
    completion: usize,
    balances: Vec<(String, i64)>,
}

pub(crate) fn check(history: &History, options: &CheckOptions) -> Result<TxnResult, TxnError> {
    let pairs = history.pairs().map_err(TxnError::History)?;
    let mut stats = TxnStats::default();
    let mut snapshots = Vec::new();
    for pair in &pairs {
        let invoke = &history.ops[pair.invoke];
        let completion = pair.completion.map(|c| &history.ops[c]);
        stats.txns += 1;
        match completion.map(|c| c.kind) {
            Some(OpType::Ok) => stats.ok += 1,
            Some(OpType::Fail) => stats.fail += 1,
            _ => stats.info += 1,
        }
        let (Some(completion), Some(c)) = (completion, pair.completion) else {
            continue;
        };
        let is_read = match invoke.f.as_str() {
            "read" | "txn" => true,
            "transfer" => false,
            other => {
                return Err(TxnError::Malformed {
                    index: invoke.index,
                    why: format!("the bank knows read and transfer, not {other}"),
                })
            }
        };
        if !is_read || completion.kind != OpType::Ok {
            continue;
        }
        let balances = balances(&completion.value).map_err(|why| TxnError::Malformed {
            index: completion.index,
            why,
        })?;
        snapshots.push(Snapshot {
            invoke: pair.invoke,
            completion: c,
            balances,
        });
    }
    let mut result = Assembly::new(options, stats);
    if snapshots.is_empty() {
        result.unknown("the history has no successful reads of the balances".into());
        return Ok(result.finish(Domain::Transactions));
    }
    let sums: Vec<i64> = snapshots
        .iter()
        .map(|s| s.balances.iter().map(|(_, b)| b).sum())
        .collect();
    let (total, inferred) = match options.bank.total {
        Some(total) => (total, false),
        None => {
            let mut votes: FxHashMap<i64, usize> = FxHashMap::default();
            for &sum in &sums {
                *votes.entry(sum).or_default() += 1;
            }
            let (&total, _) = votes
                .iter()
                .max_by_key(|(&sum, &count)| (count, std::cmp::Reverse(sum)))
                .expect("at least one read");
            (total, true)
        }
    };
    for (snapshot, &sum) in snapshots.iter().zip(&sums) {
        if sum != total {
            let how = if inferred {
                " (the total most reads saw; give --init for the real one)"
            } else {
                ""
            };
            result.push(Found::from(read_anomaly(
                history,
                snapshot,
                A::WrongTotal,
                json!({"total": sum, "expected": total}),
                format!(
                    "T1 read balances summing to {sum}, but the bank holds {total}{how}: the \
                     read saw part of a transfer, or a transfer was lost."
                ),
            )));
        }
        if !options.bank.negative_allowed {
            let negative: Vec<&(String, i64)> =
                snapshot.balances.iter().filter(|(_, b)| *b < 0).collect();
            if !negative.is_empty() {
                let listed: Vec<String> = negative
                    .iter()
                    .map(|(account, balance)| format!("account {account} = {balance}"))
                    .collect();
                result.push(Found::from(read_anomaly(
                    history,
                    snapshot,
                    A::NegativeValue,
                    json!({"negative": negative.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>()}),
                    format!(
                        "T1 read {}: transfers never overdraw, so two of them spent the same \
                         money (a lost update or write skew).",
                        listed.join(", ")
                    ),
                )));
            }
        }
    }
    Ok(result.finish(Domain::Transactions))
}

/// The balances a read returned, in any of the accepted shapes.
fn balances(value: &Value) -> Result<Vec<(String, i64)>, String> {
    let account = |k: &Value| match k {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let amount = |v: &Value, a: &str| {
        v.as_i64()
            .ok_or_else(|| format!("account {a}'s balance {v} is not an integer"))
    };
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            for (a, v) in map {
                out.push((a.clone(), amount(v, a)?));
            }
        }
        Value::Array(items) => {
            for item in items {
                let parts = item
                    .as_array()
                    .ok_or_else(|| format!("balance entry {item} is not [account, balance]"))?;
                let (a, v) = match parts.as_slice() {
                    [a, v] => (account(a), v),
                    [f, a, v] if f == "r" || f == "read" => (account(a), v),
                    _ => return Err(format!("balance entry {item} is not [account, balance]")),
                };
                let balance = amount(v, &a)?;
                out.push((a, balance));
            }
        }
        other => return Err(format!("a bank read returns the balances, not {other}")),
    }
    out.sort();
    Ok(out)
}

fn read_anomaly(
    history: &History,
    snapshot: &Snapshot,
    kind: A,
    details: Value,
    text: String,
) -> Anomaly {
    let invoke = &history.ops[snapshot.invoke];
    let completion = &history.ops[snapshot.completion];
    let process = match invoke.process {
        faultline_core::Process::Client(p) => p,
        faultline_core::Process::Nemesis => unreachable!("pairs are client operations"),
    };
    let legend = format!(
        "Let:\n  T1 = index {}..{}, process {process}, ok: read {}\n",
        invoke.index, completion.index, completion.value
    );
    Anomaly {
        kind,
        txns: vec![TxnSummary {
            name: "T1".into(),
            index: invoke.index,
            completion_index: Some(completion.index),
            process,
            outcome: "ok".into(),
            value: completion.value.clone(),
        }],
        cycle: Vec::new(),
        details,
        explanation: format!("{legend}{text}"),
    }
}
