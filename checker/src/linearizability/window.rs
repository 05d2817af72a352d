//! The smallest failing window: a short stretch of the history that is already impossible.
//!
//! Cut the history at the completion of the operation that cannot be linearized (F), and at
//! some earlier time t. The window holds every operation invoked before F completes and not
//! completed before t. Within it:
//! - operations invoked at or after t that completed by F's completion must be placed;
//! - operations that straddle t, that complete after F, or whose outcome is unknown may be
//!   placed or not (they may have taken effect before t, or after the cut);
//! - the state at t may be anything the model can be in.
//!
//! If no starting state linearizes the window, the history is not linearizable either: in any
//! linearization, every operation invoked at or after t comes after every operation that
//! completed before t, so the linearization's suffix after the last of those is a
//! linearization of the window from the state at that point. The search moves t back from F's
//! invocation until the window fails, so the window it reports is the shortest such stretch.

use std::time::{Duration, Instant};

use super::search::{Budget, Outcome, Search, SearchOp};
use crate::models::Model;

/// How many cut points to try before giving up on a window.
const MAX_CUTS: usize = 512;
/// How long the window search may take, on top of the check itself.
const MAX_WINDOW_TIME: Duration = Duration::from_secs(5);

/// Returns the operations of the smallest failing window (indices into `ops`, each with
/// whether it is optional there), and whether it
/// fails from any starting state (`true`) or only from the initial state (`false`, when the
/// model's states cannot be enumerated and the window is the whole prefix).
pub(crate) fn smallest<M: Model>(
    model: &M,
    ops: &[SearchOp<M::Op>],
    blocked: usize,
    budget: &Budget<'_>,
) -> Option<(Vec<(usize, bool)>, bool)> {
    let end = ops[blocked].ret?;
    let started = Instant::now();
    let Some(states) = model.all_states() else {
        return Some((prefix_window(ops, end), false));
    };
    let mut cuts: Vec<u64> = ops
        .iter()
        .filter(|op| op.ret.is_some() && op.call <= ops[blocked].call)
        .map(|op| op.call)
        .collect();
    cuts.sort_unstable_by(|a, b| b.cmp(a));
    cuts.dedup();
    for &cut in cuts.iter().take(MAX_CUTS) {
        if started.elapsed() > MAX_WINDOW_TIME {
            break;
        }
        let (members, window) = window_at(ops, cut, end);
        let mut search = Search::new(&window);
        let fails_everywhere = states.iter().all(|state| {
            let (outcome, _) = search.run(model, &window, state.clone(), budget, None);
            matches!(outcome, Outcome::Invalid(_))
        });
        if fails_everywhere {
            return Some((members, true));
        }
    }
    Some((prefix_window(ops, end), false))
}

/// The window between `cut` and `end`, as indices into `ops` and as a search problem.
fn window_at<O: Clone>(
    ops: &[SearchOp<O>],
    cut: u64,
    end: u64,
) -> (Vec<(usize, bool)>, Vec<SearchOp<O>>) {
    let mut members = Vec::new();
    let mut window = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if op.call > end || op.ret.is_some_and(|ret| ret < cut) {
            continue;
        }
        let required = op.call >= cut && op.ret.is_some_and(|ret| ret <= end);
        members.push((i, !required));
        window.push(SearchOp {
            ret: if required { op.ret } else { None },
            ..op.clone()
        });
    }
    (members, window)
}

/// Every operation invoked before `end`: the history's prefix, from the initial state.
fn prefix_window<O>(ops: &[SearchOp<O>], end: u64) -> Vec<(usize, bool)> {
    (0..ops.len())
        .filter(|&i| ops[i].call <= end)
        .map(|i| (i, ops[i].ret.is_none_or(|ret| ret > end)))
        .collect()
}
