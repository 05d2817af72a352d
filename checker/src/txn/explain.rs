//! Explanations: every anomaly as text a person can follow, and as data.
//!
//! Transactions are named `T1`, `T2`, ... in the order an anomaly mentions them; each name is
//! then listed with where the transaction is in the history and what it did. A cycle is told
//! edge by edge, each with its justification, as Elle does:
//!
//! ```text
//! Let:
//!   T1 = index 4..5, process 1, ok: [append 256 4] [r 255 [2 3 4 5 8]]
//!   T2 = index 6..7, process 2, ok: [append 250 10] [r 255 [2 3 4 5]]
//! Then:
//!   - T2 < T3, because T2 read 255 = [2 3 4 5], which missed T3's append of 8 (rw).
//!   ...
//! However, T1 < T2 < T3 < T1: a cycle with exactly one anti-dependency (rw) edge.
//! ```

use serde_json::Value;
use std::fmt::Write as _;

use super::anomaly::{Anomaly, AnomalyType, Step, TxnSummary};
use super::graph::rel;
use super::history::TxnHistory;

/// Names transactions `T1`, `T2`, ... in order of first mention.
#[derive(Debug, Default, Clone)]
pub struct Names {
    ids: Vec<u32>,
}

impl Names {
    pub fn new() -> Names {
        Names::default()
    }

    /// The name of a transaction, naming it if it is new.
    pub fn name(&mut self, txn: u32) -> String {
        let position = match self.ids.iter().position(|&t| t == txn) {
            Some(p) => p,
            None => {
                self.ids.push(txn);
                self.ids.len() - 1
            }
        };
        format!("T{}", position + 1)
    }

    /// The name of a transaction already named.
    pub fn get(&self, txn: u32) -> String {
        let position = self
            .ids
            .iter()
            .position(|&t| t == txn)
            .expect("the transaction was named");
        format!("T{}", position + 1)
    }

    /// The name of a transaction, if it has one.
    pub fn lookup(&self, txn: u32) -> Option<String> {
        self.ids
            .iter()
            .position(|&t| t == txn)
            .map(|p| format!("T{}", p + 1))
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Every named transaction as evidence.
    pub fn summaries(&self, history: &TxnHistory) -> Vec<TxnSummary> {
        self.ids
            .iter()
            .enumerate()
            .map(|(i, &t)| summary(history, t, format!("T{}", i + 1)))
            .collect()
    }

    /// The "Let:" block: each name with its transaction.
    pub fn legend(&self, history: &TxnHistory) -> String {
        let mut out = String::from("Let:\n");
        for (i, &t) in self.ids.iter().enumerate() {
            let _ = writeln!(out, "  T{} = {}", i + 1, describe(history, t));
        }
        out
    }
}

pub fn summary(history: &TxnHistory, txn: u32, name: String) -> TxnSummary {
    let t = &history.txns[txn as usize];
    TxnSummary {
        name,
        index: history.index_of(txn),
        completion_index: history.completion_index_of(txn),
        process: t.process,
        outcome: t.status.as_str().to_string(),
        value: history.mops_json(txn),
    }
}

/// `index 4..5, process 1, ok: [append x 4] [r y [1 2]]`.
pub fn describe(history: &TxnHistory, txn: u32) -> String {
    let t = &history.txns[txn as usize];
    let span = match history.completion_index_of(txn) {
        Some(c) => format!("{}..{}", history.index_of(txn), c),
        None => format!("{}..", history.index_of(txn)),
    };
    format!(
        "index {span}, process {}, {}: {}",
        t.process,
        t.status,
        history.mops_text(txn)
    )
}

/// Builds an anomaly that is not a cycle: the transactions (named in order), details, and the
/// explanation, which may use the names.
pub fn simple_anomaly(
    history: &TxnHistory,
    kind: AnomalyType,
    txns: &[u32],
    details: Value,
    explanation: impl FnOnce(&Names) -> String,
) -> Anomaly {
    let mut names = Names::new();
    for &t in txns {
        names.name(t);
    }
    let text = explanation(&names);
    Anomaly {
        kind,
        txns: names.summaries(history),
        cycle: Vec::new(),
        details,
        explanation: format!("{}{}", names.legend(history), text),
    }
}

/// Justifies one edge of a dependency graph. Implemented by each data model for its own data
/// dependencies; process and real-time edges are explained here.
pub trait EdgeExplainer: Sync {
    /// Why `from` precedes `to` by data relation `rel` (one of the bits of [`rel`]): the key
    /// (if any) and a sentence using the transactions' names.
    fn explain(
        &self,
        history: &TxnHistory,
        from: u32,
        to: u32,
        rel: u16,
        names: &Names,
    ) -> (Option<Value>, String);
}

/// Explains a process or real-time edge; `None` for data relations.
pub fn explain_order(
    history: &TxnHistory,
    from: u32,
    to: u32,
    rel: u16,
    names: &Names,
) -> Option<String> {
    let (a, b) = (names.get(from), names.get(to));
    match rel {
        rel::PROCESS => Some(format!(
            "{a} and {b} ran on process {}, {a} first",
            history.txns[from as usize].process
        )),
        rel::REALTIME => Some(format!(
            "{a} completed (index {}) before {b} was invoked (index {})",
            history
                .completion_index_of(from)
                .expect("a real-time predecessor completed"),
            history.index_of(to)
        )),
        _ => None,
    }
}

/// What a cycle of these relations is, as Elle classifies it: by how many anti-dependency
/// (rw) edges it has and whether two are adjacent, then by whether it needs process or
/// real-time order.
pub fn classify(rels: &[u16]) -> AnomalyType {
    let count = |mask: u16| rels.iter().filter(|&&r| r & mask != 0).count();
    let rw = count(rel::ALL_RW);
    let wr = count(rel::WR);
    let ww = count(rel::ALL_WW);
    let realtime = count(rel::ANY_REALTIME) > 0;
    let process = count(rel::ANY_PROCESS) > 0;
    let adjacent = (0..rels.len())
        .any(|i| rels[i] & rel::ALL_RW != 0 && rels[(i + 1) % rels.len()] & rel::ALL_RW != 0);
    use AnomalyType as A;
    let [plain, with_process, with_realtime] = if rw == 1 {
        [
            A::GSingleItem,
            A::GSingleItemProcess,
            A::GSingleItemRealtime,
        ]
    } else if rw > 1 && adjacent {
        [A::G2Item, A::G2ItemProcess, A::G2ItemRealtime]
    } else if rw > 1 {
        [
            A::GNonadjacentItem,
            A::GNonadjacentItemProcess,
            A::GNonadjacentItemRealtime,
        ]
    } else if wr > 0 {
        [A::G1c, A::G1cProcess, A::G1cRealtime]
    } else {
        debug_assert!(
            ww > 0,
            "a cycle of process and real-time order alone is impossible"
        );
        [A::G0, A::G0Process, A::G0Realtime]
    };
    if realtime {
        with_realtime
    } else if process {
        with_process
    } else {
        plain
    }
}

/// One sentence on what makes a cycle of this type.
pub fn describe_cycle_type(kind: AnomalyType) -> &'static str {
    use AnomalyType as A;
    match kind {
        A::G0 | A::G0Process | A::G0Realtime => "a cycle of write-write dependencies (G0)",
        A::G1c | A::G1cProcess | A::G1cRealtime => {
            "a cycle of write-write and write-read dependencies (G1c)"
        }
        A::GSingleItem | A::GSingleItemProcess | A::GSingleItemRealtime => {
            "a cycle with exactly one anti-dependency (rw) edge (G-single)"
        }
        A::GNonadjacentItem | A::GNonadjacentItemProcess | A::GNonadjacentItemRealtime => {
            "a cycle with several anti-dependency (rw) edges, no two adjacent (G-nonadjacent)"
        }
        A::G2Item | A::G2ItemProcess | A::G2ItemRealtime => {
            "a cycle with two or more anti-dependency (rw) edges, two of them adjacent (G2-item)"
        }
        _ => "a cycle",
    }
}

/// A cycle anomaly: `txns[i]` precedes `txns[i + 1]` (and the last the first) by `rels[i]`,
/// one relation bit each.
pub fn cycle_anomaly(
    history: &TxnHistory,
    explainer: &dyn EdgeExplainer,
    txns: &[u32],
    rels: &[u16],
) -> Anomaly {
    assert_eq!(txns.len(), rels.len());
    assert!(txns.len() >= 2, "a cycle has two transactions or more");
    let kind = classify(rels);
    let mut names = Names::new();
    for &t in txns {
        names.name(t);
    }
    let mut steps = Vec::with_capacity(txns.len());
    let mut text = names.legend(history);
    text.push_str("Then:\n");
    for i in 0..txns.len() {
        let (from, to, r) = (txns[i], txns[(i + 1) % txns.len()], rels[i]);
        let (key, because) = match explain_order(history, from, to, r, &names) {
            Some(why) => (None, why),
            None => explainer.explain(history, from, to, r, &names),
        };
        let note = match r {
            rel::WW_PROCESS | rel::RW_PROCESS => {
                " (a version order that holds only if each session is sequential)"
            }
            rel::WW_REALTIME | rel::RW_REALTIME => {
                " (a version order that holds only if each key is linearizable)"
            }
            _ => "",
        };
        let _ = writeln!(
            text,
            "  - {} < {}, because {because}{note} ({}).",
            names.get(from),
            names.get(to),
            rel::name(r)
        );
        steps.push(Step {
            from: names.get(from),
            to: names.get(to),
            relation: rel::name(r).to_string(),
            key,
            because: format!("{because}{note}"),
        });
    }
    let chain: Vec<String> = txns
        .iter()
        .chain(std::iter::once(&txns[0]))
        .map(|&t| names.get(t))
        .collect();
    let _ = write!(
        text,
        "However, {}: {}.",
        chain.join(" < "),
        describe_cycle_type(kind)
    );
    Anomaly {
        kind,
        txns: names.summaries(history),
        cycle: steps,
        details: Value::Null,
        explanation: text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AnomalyType as A;

    #[test]
    fn cycles_are_classified_as_elle_does() {
        assert_eq!(classify(&[rel::WW, rel::WW]), A::G0);
        assert_eq!(classify(&[rel::WW, rel::WR]), A::G1c);
        assert_eq!(classify(&[rel::RW, rel::WR]), A::GSingleItem);
        assert_eq!(
            classify(&[rel::RW, rel::WR, rel::REALTIME]),
            A::GSingleItemRealtime
        );
        assert_eq!(classify(&[rel::RW, rel::RW]), A::G2Item);
        assert_eq!(
            classify(&[rel::RW, rel::WW, rel::RW, rel::WR]),
            A::GNonadjacentItem
        );
        // The last edge and the first are adjacent too.
        assert_eq!(classify(&[rel::RW, rel::WW, rel::RW]), A::G2Item);
        assert_eq!(classify(&[rel::WR, rel::PROCESS]), A::G1cProcess);
        assert_eq!(
            classify(&[rel::RW_REALTIME, rel::WR]),
            A::GSingleItemRealtime
        );
    }
}
