//! Process order and real-time order between transactions.
//!
//! Real time is a transitive reduction, not all pairs: a transaction gets an edge only from the
//! completed transactions that are not already before another completed transaction that is
//! before it (the "frontier"). With c concurrent processes that is about c edges per
//! transaction instead of n, and a path in the graph still exists exactly when one transaction
//! completed before the other was invoked.

use rustc_hash::FxHashMap;
use std::collections::VecDeque;

use super::graph::{rel, Edge};
use super::history::{Status, TxnHistory, NO_POSITION};

/// Process order: each transaction that may have committed, after the previous one of its
/// process. (Aborted transactions are not in the graph; the chain skips them.)
pub fn process_edges(history: &TxnHistory) -> Vec<Edge> {
    let mut last: FxHashMap<u64, u32> = FxHashMap::default();
    let mut edges = Vec::new();
    for (id, txn) in history.txns.iter().enumerate() {
        if !txn.status.may_have_committed() {
            continue;
        }
        if let Some(previous) = last.insert(txn.process, id as u32) {
            edges.push(Edge::new(previous, id as u32, rel::PROCESS));
        }
    }
    edges
}

/// Real-time order over every transaction that may have committed.
pub fn realtime_edges(history: &TxnHistory) -> Vec<Edge> {
    let members: Vec<u32> = (0..history.txns.len() as u32)
        .filter(|&t| history.txns[t as usize].status.may_have_committed())
        .collect();
    let mut edges = Vec::new();
    realtime_reduction(history, &members, |a, b| {
        edges.push(Edge::new(a, b, rel::REALTIME))
    });
    edges
}

/// Calls `precedes(a, b)` for the transitive reduction of real-time order among `members`
/// (transaction ids in invocation order): `a` completed `ok` before `b` was invoked, and no
/// member completed in between them both ways.
///
/// # Correctness
/// Only `ok` transactions complete: an `info` one may take effect any time after its
/// invocation, so it precedes nothing, though it follows what completed before it began.
/// `members` must be sorted by invocation position (transaction ids are).
pub fn realtime_reduction(
    history: &TxnHistory,
    members: &[u32],
    mut precedes: impl FnMut(u32, u32),
) {
    debug_assert!(members.windows(2).all(|w| w[0] < w[1]));
    let mut completions: Vec<(u32, u32)> = members
        .iter()
        .filter_map(|&t| {
            let txn = &history.txns[t as usize];
            (txn.status == Status::Ok && txn.complete_pos != NO_POSITION)
                .then_some((txn.complete_pos, t))
        })
        .collect();
    completions.sort_unstable();
    // The frontier: completed transactions no later completed transaction follows yet, with
    // the sequence number of their arrival (so the frontier is sorted by it).
    let mut frontier: VecDeque<(u64, u32)> = VecDeque::new();
    let mut arrivals = 0u64;
    // Sequence number at each member's invocation: at its completion, every frontier entry that
    // arrived before that is followed by it, and leaves.
    let mut seen_at_invoke: FxHashMap<u32, u64> = FxHashMap::default();
    let mut next_completion = completions.iter().peekable();
    for &b in members {
        let invoke_pos = history.txns[b as usize].invoke_pos;
        while let Some(&&(pos, a)) = next_completion.peek() {
            if pos > invoke_pos {
                break;
            }
            next_completion.next();
            complete(&mut frontier, &mut arrivals, &mut seen_at_invoke, a);
        }
        for &(_, a) in &frontier {
            precedes(a, b);
        }
        seen_at_invoke.insert(b, arrivals);
    }
    // Completions after the last invocation create no edges.
}

fn complete(
    frontier: &mut VecDeque<(u64, u32)>,
    arrivals: &mut u64,
    seen_at_invoke: &mut FxHashMap<u32, u64>,
    txn: u32,
) {
    let seen = seen_at_invoke
        .remove(&txn)
        .expect("a completion follows its invocation");
    while frontier.front().is_some_and(|&(arrived, _)| arrived < seen) {
        frontier.pop_front();
    }
    frontier.push_back((*arrivals, txn));
    *arrivals += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::dsl;

    fn pairs(text: &str) -> Vec<(u32, u32)> {
        let history = dsl::list_append(text);
        let t = crate::txn::history::parse(&history).unwrap();
        let members: Vec<u32> = (0..t.txns.len() as u32).collect();
        let mut out = Vec::new();
        realtime_reduction(&t, &members, |a, b| out.push((a, b)));
        out.sort_unstable();
        out
    }

    #[test]
    fn a_sequence_is_a_chain() {
        assert_eq!(pairs("0:ax1 0:ax2 1:ax3 1:ax4"), [(0, 1), (1, 2), (2, 3)]);
    }

    #[test]
    fn concurrent_transactions_share_predecessors_but_not_edges_between_them() {
        // T0 completes; T1 and T2 run concurrently; T3 starts after both.
        assert_eq!(
            pairs("0:ax1 1<ax2 2<ax3 1>ax2 2>ax3 3:ax4"),
            [(0, 1), (0, 2), (1, 3), (2, 3)]
        );
    }

    #[test]
    fn crashed_transactions_precede_nothing() {
        assert_eq!(pairs("0:ax1 1?ax2 2:ax3"), [(0, 1), (0, 2)]);
    }
}
