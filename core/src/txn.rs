//! Transactional operations as a client receives and answers them: the contract between the
//! transactional workloads (`list-append`, `rw-register`, `bank`) and every target's client.
//!
//! **Transactions** (`list-append`, `rw-register`; `CONTRACTS.md` §1). The invocation has
//! `f` = `"txn"`, no key, and as value a list of micro-operations `[f, key, value]`:
//! `["r", k, null]` reads `k`, `["w", k, v]` writes `v`, `["append", k, v]` appends `v` to the
//! list at `k`. Keys are JSON values (the workloads use small integers); written and appended
//! values are unique per key. A client performs the whole list as one transaction and answers:
//! - `Ok(value)`: it committed. `value` is the same list, in the same order, with the same `f`
//!   and key in each entry and every read filled in: the register's value or `null` (never
//!   written) for `rw-register`, the whole list or `null` / `[]` (never appended to) for
//!   `list-append`. A read after the transaction's own write of that key sees that write.
//! - `Fail(why)`: it certainly did not commit (an abort, a failed commit-time comparison, a
//!   request refused before it was applied).
//! - `Info(why)`: unknown (a timeout or a lost connection after the commit was sent).
//!
//! **Bank** (`bank`). Accounts `0..accounts` hold `total` between them; an account never
//! written holds [`Bank::initial_balance`] (the total split evenly, the remainder in account
//! 0), so no client needs a setup step. Two operations, each one transaction:
//! - `f` = `"transfer"`, value `{"from": a, "to": b, "amount": n}` (`a != b`, `n > 0`): moves
//!   `n` from `a` to `b`. `Ok` with the same value; `Fail("insufficient-funds")` when `a`
//!   holds less than `n` (nothing changed: transfers never overdraw), or any other definite
//!   failure; `Info` when unknown.
//! - `f` = `"read"`, value `null`: reads every balance at once. `Ok({"0": b0, "1": b1, ...})`
//!   with every account, keys as decimal strings.
//!
//! The bank's parameters come from [`Test::workload_options`] (`accounts`, `total`), so a
//! target's client and the workload agree through `test.json` alone.
//!
//! ```
//! use faultline_core::txn::{parse_txn, txn_json, Bank, MopKind};
//! use serde_json::json;
//! let ops = parse_txn(&json!([["append", 3, 1], ["r", 4, null]])).unwrap();
//! assert_eq!(ops[0].kind, MopKind::Append);
//! assert_eq!(txn_json(&ops), json!([["append", 3, 1], ["r", 4, null]]));
//! let bank = Bank { accounts: 3, total: 10 };
//! assert_eq!((0..3).map(|a| bank.initial_balance(a)).collect::<Vec<_>>(), [4, 3, 3]);
//! ```
//!
//! Design decision: this lives in `core`, not in the workloads crate, because targets depend
//! on `core` only: the workloads produce these operations, the targets answer them, and
//! neither reaches into the other.

use serde_json::{json, Map, Value};

use crate::test::Test;

/// The `f` of a transaction.
pub const TXN: &str = "txn";
/// The `f` of a bank transfer.
pub const TRANSFER: &str = "transfer";
/// The `f` of a bank read of every balance.
pub const READ: &str = "read";
/// Workload option: how many bank accounts.
pub const OPTION_ACCOUNTS: &str = "accounts";
/// Workload option: the money in the bank.
pub const OPTION_TOTAL: &str = "total";
/// Accounts when the test does not say (Jepsen's bank uses 8; fewer accounts, more conflicts).
pub const DEFAULT_ACCOUNTS: u64 = 5;
/// The money in the bank when the test does not say (Jepsen's default).
pub const DEFAULT_TOTAL: i64 = 100;
/// The most accounts a bank may have: every read returns all of them.
pub const MAX_ACCOUNTS: u64 = 1_000;

/// The function of a micro-operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MopKind {
    /// `r`
    Read,
    /// `w`
    Write,
    /// `append`
    Append,
}

impl MopKind {
    /// The name in a history: `r`, `w`, `append`.
    pub fn as_str(self) -> &'static str {
        match self {
            MopKind::Read => "r",
            MopKind::Write => "w",
            MopKind::Append => "append",
        }
    }

    pub fn is_write(self) -> bool {
        !matches!(self, MopKind::Read)
    }
}

/// One micro-operation `[f, key, value]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MicroOp {
    pub kind: MopKind,
    pub key: Value,
    /// The written or appended value; for a read, `null` on invocation and what was read on
    /// completion.
    pub value: Value,
}

impl MicroOp {
    pub fn read(key: Value) -> MicroOp {
        MicroOp {
            kind: MopKind::Read,
            key,
            value: Value::Null,
        }
    }

    pub fn write(key: Value, value: Value) -> MicroOp {
        MicroOp {
            kind: MopKind::Write,
            key,
            value,
        }
    }

    pub fn append(key: Value, value: Value) -> MicroOp {
        MicroOp {
            kind: MopKind::Append,
            key,
            value,
        }
    }

    /// `[f, key, value]`
    pub fn to_json(&self) -> Value {
        json!([self.kind.as_str(), self.key, self.value])
    }

    /// The key as text, for stores whose keys are strings: a string as itself, anything else
    /// as its JSON text (`3` -> `"3"`).
    pub fn key_text(&self) -> String {
        match &self.key {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// A transaction's micro-operations from an invocation's value. `Err` says what is wrong (a
/// client answers that with a definite `fail`: nothing was sent).
pub fn parse_txn(value: &Value) -> Result<Vec<MicroOp>, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("a transaction is a list of micro-operations, not {value}"))?;
    if items.is_empty() {
        return Err("a transaction needs at least one micro-operation".into());
    }
    items
        .iter()
        .map(|item| {
            let parts = item
                .as_array()
                .filter(|p| p.len() == 3)
                .ok_or_else(|| format!("micro-operation {item} is not [f, key, value]"))?;
            let kind = match parts[0].as_str() {
                Some("r") => MopKind::Read,
                Some("w") => MopKind::Write,
                Some("append") => MopKind::Append,
                _ => return Err(format!("micro-operation {item}: f is r, w or append")),
            };
            if parts[1].is_null() {
                return Err(format!("micro-operation {item} has a null key"));
            }
            if kind.is_write() && parts[2].is_null() {
                return Err(format!("micro-operation {item} writes null"));
            }
            Ok(MicroOp {
                kind,
                key: parts[1].clone(),
                value: parts[2].clone(),
            })
        })
        .collect()
}

/// The history's value of a transaction: `[[f, key, value], ...]`.
pub fn txn_json(ops: &[MicroOp]) -> Value {
    Value::Array(ops.iter().map(MicroOp::to_json).collect())
}

/// The bank a test runs: how many accounts, how much money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bank {
    pub accounts: u64,
    pub total: i64,
}

impl Default for Bank {
    fn default() -> Self {
        Bank {
            accounts: DEFAULT_ACCOUNTS,
            total: DEFAULT_TOTAL,
        }
    }
}

impl Bank {
    /// From `test.workload_options` (`accounts`, `total`), defaults for what is absent.
    pub fn from_test(test: &Test) -> Result<Bank, String> {
        let mut bank = Bank::default();
        if let Some(value) = test.workload_options.get(OPTION_ACCOUNTS) {
            bank.accounts = value
                .as_u64()
                .filter(|n| (2..=MAX_ACCOUNTS).contains(n))
                .ok_or_else(|| format!("accounts: expected 2 to {MAX_ACCOUNTS}, got {value}"))?;
        }
        if let Some(value) = test.workload_options.get(OPTION_TOTAL) {
            bank.total = value
                .as_i64()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("total: expected a non-negative integer, got {value}"))?;
        }
        Ok(bank)
    }

    /// What an account never written holds: the total split evenly, the remainder in
    /// account 0.
    pub fn initial_balance(&self, account: u64) -> i64 {
        assert!(
            account < self.accounts,
            "account {account} of {}",
            self.accounts
        );
        let n = self.accounts as i64;
        self.total / n + if account == 0 { self.total % n } else { 0 }
    }

    /// A read's answer: `{"0": b0, "1": b1, ...}` from the balances of accounts `0..`.
    pub fn balances_json(balances: &[i64]) -> Value {
        let map: Map<String, Value> = balances
            .iter()
            .enumerate()
            .map(|(account, balance)| (account.to_string(), json!(balance)))
            .collect();
        Value::Object(map)
    }
}

/// A transfer's argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    pub from: u64,
    pub to: u64,
    pub amount: i64,
}

impl Transfer {
    /// From a `transfer` invocation's value, checked against `bank`.
    pub fn parse(value: &Value, bank: &Bank) -> Result<Transfer, String> {
        let field = |name: &str| {
            value
                .get(name)
                .ok_or_else(|| format!("a transfer is {{from, to, amount}}, not {value}"))
        };
        let account = |name: &str| -> Result<u64, String> {
            let v = field(name)?;
            v.as_u64()
                .filter(|a| *a < bank.accounts)
                .ok_or_else(|| format!("{name}: no account {v} (accounts 0..{})", bank.accounts))
        };
        let transfer = Transfer {
            from: account("from")?,
            to: account("to")?,
            amount: field("amount")?
                .as_i64()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("amount: a positive integer, not {value}"))?,
        };
        if transfer.from == transfer.to {
            return Err(format!(
                "a transfer moves money between two accounts: {value}"
            ));
        }
        Ok(transfer)
    }

    pub fn to_json(&self) -> Value {
        json!({"from": self.from, "to": self.to, "amount": self.amount})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_round_trip_and_bad_ones_are_refused() {
        let value = json!([["r", "x", null], ["w", 1, 2], ["append", 1, 3]]);
        let ops = parse_txn(&value).unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[1].key_text(), "1");
        assert_eq!(ops[0].key_text(), "x");
        assert_eq!(txn_json(&ops), value);
        for bad in [
            json!([]),
            json!(null),
            json!([["x", 1, 2]]),
            json!([["w", 1, null]]),
            json!([["r", null, null]]),
            json!([["r", 1]]),
        ] {
            assert!(parse_txn(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_bank_comes_from_the_test_and_conserves_its_total() {
        let mut test = Test::example("memory", "bank", 1);
        assert_eq!(Bank::from_test(&test).unwrap(), Bank::default());
        test.workload_options.insert("accounts".into(), json!(7));
        test.workload_options.insert("total".into(), json!(50));
        let bank = Bank::from_test(&test).unwrap();
        assert_eq!(
            bank,
            Bank {
                accounts: 7,
                total: 50
            }
        );
        let sum: i64 = (0..7).map(|a| bank.initial_balance(a)).sum();
        assert_eq!(sum, 50);
        assert_eq!(bank.initial_balance(0), 8);
        assert_eq!(bank.initial_balance(6), 7);
        test.workload_options.insert("accounts".into(), json!(1));
        assert!(Bank::from_test(&test).is_err());
        assert_eq!(Bank::balances_json(&[3, 4]), json!({"0": 3, "1": 4}));
    }

    #[test]
    fn transfers_are_checked() {
        let bank = Bank::default();
        let t = Transfer::parse(&json!({"from": 0, "to": 4, "amount": 3}), &bank).unwrap();
        assert_eq!(
            t,
            Transfer {
                from: 0,
                to: 4,
                amount: 3
            }
        );
        assert_eq!(t.to_json(), json!({"from": 0, "to": 4, "amount": 3}));
        for bad in [
            json!({"from": 0, "to": 0, "amount": 3}),
            json!({"from": 0, "to": 5, "amount": 3}),
            json!({"from": 0, "to": 1, "amount": 0}),
            json!({"from": 0, "to": 1}),
            json!(null),
        ] {
            assert!(Transfer::parse(&bad, &bank).is_err(), "{bad}");
        }
    }
}
