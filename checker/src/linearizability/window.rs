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
//!
//! Windows are searched relaxed ([`Search::relaxed`]): a crashed operation may take effect any
//! number of times. That only makes a window easier to linearize, so a window that still fails
//! proves the violation, and the search no longer tells apart how many crashed operations of
//! each kind it used, which is what makes long histories with many crashed operations slow.

use std::time::{Duration, Instant};

use super::search::{Budget, Outcome, Search, SearchOp};
use crate::models::Model;

/// How many cut points to try before giving up on a window.
const MAX_CUTS: usize = 512;
/// How long the window search may take, on top of the check itself.
const MAX_WINDOW_TIME: Duration = Duration::from_secs(5);

/// The smallest failing window found.
pub(crate) struct Window {
    /// Indices into the operations, each with whether it is optional in the window.
    pub members: Vec<(usize, bool)>,
    /// True when the window fails from every starting state; false when it is the history's
    /// shortest failing prefix, from the initial state.
    pub from_any_state: bool,
    /// The operation whose completion ends the shortest failing prefix: the one that cannot
    /// be linearized.
    pub last: usize,
}

/// Finds the smallest failing window. First the shortest prefix of the history that is not
/// linearizable (prefixes only get harder as they grow, so a forward then binary search over
/// completions finds it, starting from the completion of the op the search got stuck on);
/// then, when the model's states can be enumerated, the latest cut at which the rest of that
/// prefix fails from every state.
pub(crate) fn smallest<M: Model>(
    model: &M,
    ops: &[SearchOp<M::Op>],
    blocked: usize,
    budget: &Budget<'_>,
) -> Option<Window> {
    let started = Instant::now();
    // A window around the operation the search got stuck on is the common, cheap case.
    if let Some(window) = local(
        model,
        ops,
        blocked,
        budget,
        MAX_CUTS,
        started + MAX_WINDOW_TIME / 2,
    ) {
        return Some(window);
    }
    let from_init = |end: u64| {
        let (_, window) = window_at(ops, 0, end);
        // Exact here: the relaxed search could accept every prefix of a history whose violation
        // needs a crashed operation to take effect at most once.
        let (outcome, _) = Search::new(&window).run(model, &window, model.init(), budget, None);
        matches!(outcome, Outcome::Invalid(_))
    };
    let mut ends: Vec<(u64, usize)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| op.ret.map(|ret| (ret, i)))
        .filter(|&(ret, _)| ret >= ops[blocked].ret.unwrap_or(0))
        .collect();
    ends.sort_unstable();
    // Forward: 1, 2, 4, ... completions past the first, until a failing prefix.
    let mut known_good: Option<usize> = None;
    let mut step = 1;
    let mut probe = 0;
    let failing = loop {
        if probe >= ends.len() || started.elapsed() > MAX_WINDOW_TIME {
            return None;
        }
        if from_init(ends[probe].0) {
            break probe;
        }
        known_good = Some(probe);
        probe = (probe + step).min(ends.len().max(1) - 1).max(probe + 1);
        step *= 2;
    };
    // Binary search between the last good and the first failing prefix.
    let (mut low, mut high) = (known_good.map_or(0, |g| g + 1), failing);
    while low < high {
        let mid = (low + high) / 2;
        if from_init(ends[mid].0) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    let (end, last) = ends[high];
    let prefix = Window {
        members: prefix_window(ops, end),
        from_any_state: false,
        last,
    };
    let deadline = started + MAX_WINDOW_TIME;
    Some(local(model, ops, last, budget, MAX_CUTS, deadline).unwrap_or(prefix))
}

/// Looks for a window ending at `last`'s completion that fails from every state: the cut moves
/// back from `last`'s invocation one invocation at a time, at most `max_cuts` times and until
/// `deadline`. Cheap when the violation is local (a stale read, a read of a value never
/// written), which is why the checker also runs it while a long search is still going.
pub(crate) fn local<M: Model>(
    model: &M,
    ops: &[SearchOp<M::Op>],
    last: usize,
    budget: &Budget<'_>,
    max_cuts: usize,
    deadline: Instant,
) -> Option<Window> {
    let end = ops[last].ret?;
    let states = model.all_states()?;
    let mut cuts: Vec<u64> = ops
        .iter()
        .filter(|op| op.ret.is_some() && op.call <= ops[last].call)
        .map(|op| op.call)
        .collect();
    cuts.sort_unstable_by(|a, b| b.cmp(a));
    cuts.dedup();
    for &cut in cuts.iter().take(max_cuts) {
        if Instant::now() > deadline {
            break;
        }
        let (members, window) = window_at(ops, cut, end);
        let mut search = Search::relaxed(&window);
        let fails_everywhere = states.iter().all(|state| {
            let (outcome, _) = search.run(model, &window, state.clone(), budget, None);
            matches!(outcome, Outcome::Invalid(_))
        });
        if fails_everywhere {
            return Some(Window {
                members,
                from_any_state: true,
                last,
            });
        }
    }
    None
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
