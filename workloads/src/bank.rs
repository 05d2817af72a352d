//! The bank workload (Jepsen's `bank`): transfers between accounts and reads of every balance,
//! each one transaction; checked by [`faultline_checker::txn`]'s bank checker: every read sees
//! the bank's total (a read that sees part of a transfer, or a lost update, does not) and no
//! negative balance (transfers never overdraw, so one means two transfers spent the same
//! money: a lost update or write skew).
//!
//! What a client receives and returns is in [`faultline_core::txn`]: `transfer` with
//! `{"from", "to", "amount"}` (`Fail("insufficient-funds")` when it would overdraw), `read`
//! with `null`, answered `{"0": b0, ...}`. Accounts `0..accounts` start with the total split
//! evenly ([`faultline_core::txn::Bank::initial_balance`]): an account never written holds
//! that, so no setup step is needed.
//!
//! Options (`test.workload_options`): `accounts` (default 5), `total` (default 100),
//! `max_transfer` (default 5; amounts are `1..=max_transfer`). Half the operations are
//! transfers between two distinct random accounts, half are reads; after the main phase each
//! worker reads every balance once more.

use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use faultline_checker::txn::BankOptions;
use faultline_core::txn::{Bank, Transfer, OPTION_ACCOUNTS, OPTION_TOTAL, READ, TRANSFER};
use faultline_core::{History, Test};

use crate::generator::{self, BoxGen, Draft};
use crate::{Checked, Workload, WorkloadError};

/// Workload option: the largest amount one transfer moves.
pub const OPTION_MAX_TRANSFER: &str = "max_transfer";
/// The largest transfer when the test does not say (Jepsen's default).
pub const DEFAULT_MAX_TRANSFER: i64 = 5;

/// The shape of a bank workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankWorkloadOptions {
    pub bank: Bank,
    pub max_transfer: i64,
}

impl BankWorkloadOptions {
    pub fn from_test(test: &Test) -> Result<BankWorkloadOptions, WorkloadError> {
        let bad = |option: &str, why: String| WorkloadError::BadOption {
            workload: test.workload.clone(),
            option: option.to_string(),
            why,
        };
        let bank = Bank::from_test(test).map_err(|why| {
            let option = why.split(':').next().unwrap_or("accounts").to_string();
            bad(&option, why)
        })?;
        let mut max_transfer = DEFAULT_MAX_TRANSFER;
        for (name, value) in &test.workload_options {
            match name.as_str() {
                OPTION_ACCOUNTS | OPTION_TOTAL => {}
                // The bank is checked for its own invariants; a model name is still
                // accepted, so `--consistency` reads the same for every transactional workload.
                crate::txn::OPTION_CONSISTENCY => {
                    crate::txn::parse_consistency(value).map_err(|why| bad(name, why))?;
                }
                OPTION_MAX_TRANSFER => {
                    max_transfer = value
                        .as_i64()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad(name, format!("expected at least 1, got {value}")))?
                }
                _ => {
                    return Err(bad(
                        name,
                        "unknown option; known: accounts, total, max_transfer, consistency".into(),
                    ))
                }
            }
        }
        Ok(BankWorkloadOptions { bank, max_transfer })
    }

    pub fn to_map(&self, test: &Test) -> BTreeMap<String, Value> {
        let mut map: BTreeMap<String, Value> = [
            (OPTION_ACCOUNTS, json!(self.bank.accounts)),
            (OPTION_TOTAL, json!(self.bank.total)),
            (OPTION_MAX_TRANSFER, json!(self.max_transfer)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let consistency = match test.workload_options.get(crate::txn::OPTION_CONSISTENCY) {
            Some(value) => crate::txn::parse_consistency(value).unwrap_or_default(),
            None => vec![crate::txn::DEFAULT_CONSISTENCY],
        };
        map.insert(crate::txn::OPTION_CONSISTENCY.into(), json!(consistency));
        map
    }
}

/// A transfer of `1..=max_transfer` between two distinct random accounts.
pub fn random_transfer(options: &BankWorkloadOptions, rng: &mut impl Rng) -> Transfer {
    let accounts = options.bank.accounts;
    let from = rng.gen_range(0..accounts);
    // A uniform choice among the other accounts.
    let to = (from + rng.gen_range(1..accounts)) % accounts;
    Transfer {
        from,
        to,
        amount: rng.gen_range(1..=options.max_transfer),
    }
}

/// Endless transfers and reads, half each.
pub fn generator(options: BankWorkloadOptions) -> BoxGen {
    generator::from_fn(move |ctx| {
        if ctx.rng.gen_bool(0.5) {
            Draft::new(TRANSFER, random_transfer(&options, ctx.rng).to_json())
        } else {
            Draft::new(READ, Value::Null)
        }
    })
}

/// One read of every balance per worker.
pub fn final_generator() -> BoxGen {
    generator::each_thread(|_| generator::once(Draft::new(READ, Value::Null)))
}

pub fn workload(test: &Test) -> Result<Workload, WorkloadError> {
    let options = BankWorkloadOptions::from_test(test)?;
    Ok(Workload {
        name: "bank",
        options: options.to_map(test),
        generator: generator(options),
        final_generator: Some(final_generator()),
        checker: check,
    })
}

/// The bank checker, with the total the test's bank holds (not inferred from the reads).
pub fn check(test: &Test, history: &History) -> Checked {
    let bank = match BankWorkloadOptions::from_test(test) {
        Ok(options) => options.bank,
        Err(e) => return Checked::unknown("transactional", e.to_string()),
    };
    let options = BankOptions {
        total: Some(bank.total),
        negative_allowed: false,
    };
    crate::txn::check_with(test, history, Some(options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::tests::simulate;
    use faultline_checker::Validity;

    #[test]
    fn transfers_move_money_between_distinct_accounts_and_reads_are_half() {
        let mut test = Test::example("memory", "bank", 1);
        test.workload_options.insert("accounts".into(), json!(3));
        test.workload_options
            .insert("max_transfer".into(), json!(4));
        let workload = workload(&test).unwrap();
        assert_eq!(
            workload.options,
            [
                ("accounts", json!(3)),
                ("consistency", json!(["strict-serializable"])),
                ("max_transfer", json!(4)),
                ("total", json!(100))
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
        );
        let bank = Bank {
            accounts: 3,
            total: 100,
        };
        let mut gen = generator::limit(2_000, workload.generator);
        let drawn = simulate(&mut gen, 4, 1_000, u64::MAX);
        let mut pairs = std::collections::BTreeSet::new();
        let mut amounts = std::collections::BTreeSet::new();
        let mut reads = 0;
        for d in &drawn {
            match d.draft.f.as_str() {
                "transfer" => {
                    let t = Transfer::parse(&d.draft.value, &bank).unwrap();
                    pairs.insert((t.from, t.to));
                    amounts.insert(t.amount);
                }
                "read" => {
                    assert!(d.draft.value.is_null());
                    reads += 1;
                }
                other => panic!("{other}"),
            }
        }
        assert_eq!(pairs.len(), 6, "every ordered pair of distinct accounts");
        assert_eq!(amounts, (1..=4).collect());
        assert!((800..1200).contains(&reads), "{reads}");
    }

    #[test]
    fn the_final_generator_reads_once_per_worker() {
        let mut gen = final_generator();
        let drawn = simulate(&mut gen, 5, 1_000, u64::MAX);
        assert_eq!(drawn.len(), 5);
        assert!(drawn.iter().all(|d| d.draft.f == "read"));
    }

    fn history(text: &str) -> History {
        faultline_core::jsonl::read_jsonl(text.as_bytes(), "t").unwrap()
    }

    #[test]
    fn a_read_with_the_wrong_total_or_a_negative_balance_is_invalid() {
        let test = Test::example("memory", "bank", 1);
        let good = r#"{"process":0,"type":"invoke","f":"transfer","value":{"from":0,"to":1,"amount":5}}
{"process":0,"type":"ok","f":"transfer","value":{"from":0,"to":1,"amount":5}}
{"process":1,"type":"invoke","f":"read","value":null}
{"process":1,"type":"ok","f":"read","value":{"0":15,"1":25,"2":20,"3":20,"4":20}}"#;
        let checked = check(&test, &history(good));
        assert_eq!(checked.valid, Validity::Valid, "{}", checked.explanation);
        let wrong_total = good.replace("\"1\":25", "\"1\":20");
        let checked = check(&test, &history(&wrong_total));
        assert_eq!(checked.valid, Validity::Invalid);
        assert!(
            checked.explanation.contains("100"),
            "{}",
            checked.explanation
        );
        let negative = good.replace("\"0\":15,\"1\":25", "\"0\":-5,\"1\":45");
        let checked = check(&test, &history(&negative));
        assert_eq!(checked.valid, Validity::Invalid);
        assert!(
            checked.explanation.contains("account 0 = -5"),
            "{}",
            checked.explanation
        );
    }

    #[test]
    fn bad_options_are_refused() {
        for (name, value) in [
            ("accounts", json!(1)),
            ("total", json!(-3)),
            ("max_transfer", json!(0)),
            ("key_count", json!(3)),
        ] {
            let mut test = Test::example("memory", "bank", 1);
            test.workload_options.insert(name.into(), value.clone());
            let Err(e) = workload(&test) else {
                panic!("{name} = {value} accepted")
            };
            assert!(e.to_string().contains(name), "{e}");
        }
    }
}
