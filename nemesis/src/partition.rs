//! Network topologies as grudges: pure functions of the node names and a seeded RNG.
//!
//! Each function says which traffic every node drops ([`Grudge`]: node -> the nodes it does not
//! hear); a [`faultline_core::Net`] applies it. They are computed here, alone, so that each can
//! be tested over many cluster sizes without a network (see the property tests below).
//!
//! Every grudge here is symmetric (when `a` drops `b`, `b` drops `a`): the systems under test
//! talk over TCP, where a one-way cut breaks both directions anyway, so an asymmetric grudge
//! would cut more than it says.

use faultline_core::net::{complete_grudge, Grudge};
use rand::seq::SliceRandom;
use rand::Rng;

/// The smallest majority of `n` nodes.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// The nodes, shuffled.
fn shuffled<R: Rng>(nodes: &[String], rng: &mut R) -> Vec<String> {
    let mut order = nodes.to_vec();
    order.shuffle(rng);
    order
}

/// Two random halves that cannot talk to each other: the first has `n / 2` nodes (a minority,
/// or exactly half), the second the rest. Empty for fewer than two nodes.
pub fn random_halves<R: Rng>(nodes: &[String], rng: &mut R) -> Grudge {
    let order = shuffled(nodes, rng);
    let (small, large) = order.split_at(order.len() / 2);
    complete_grudge(small, large)
}

/// `node` cut off from every other node; the others still talk among themselves.
pub fn isolate(nodes: &[String], node: &str) -> Grudge {
    let rest: Vec<&str> = nodes
        .iter()
        .map(String::as_str)
        .filter(|n| *n != node)
        .collect();
    complete_grudge(&[node], &rest)
}

/// How many neighbours on each side a node of the ring sees: the fewest `k` for which the
/// node and its `2k` neighbours are a majority.
pub fn ring_reach(n: usize) -> usize {
    (n / 2).div_ceil(2)
}

/// The majorities ring: the nodes in a random cyclic order, each seeing itself and its `k`
/// nearest neighbours on each side ([`ring_reach`]), which is a majority, and dropping the
/// rest. For 5 nodes each node sees itself and its two neighbours. Since every window is
/// centred on a different node, no two nodes see the same majority: every node can believe it
/// is in the majority, yet no two agree on which one (Raft leaders elected by one majority
/// cannot reach part of it).
///
/// With fewer than four nodes every window is the whole cluster, so the grudge is empty
/// (there is no such partition of 2 or 3 nodes with symmetric links).
pub fn majorities_ring<R: Rng>(nodes: &[String], rng: &mut R) -> Grudge {
    let order = shuffled(nodes, rng);
    let n = order.len();
    let reach = ring_reach(n);
    let mut grudge = Grudge::new();
    if 2 * reach + 1 >= n {
        return grudge;
    }
    for (i, node) in order.iter().enumerate() {
        // The distance around the ring from `i` to `j`, the shorter way.
        let far: std::collections::BTreeSet<String> = (0..n)
            .filter(|j| {
                let d = i.abs_diff(*j);
                d.min(n - d) > reach
            })
            .map(|j| order[j].clone())
            .collect();
        grudge.insert(node.clone(), far);
    }
    grudge
}

/// The bridge: two halves that cannot talk to each other, plus one node (the bridge, the
/// returned name) that talks to both. Jepsen's `bridge`: split the shuffled nodes in two, take
/// the first node of the second half as the bridge. Empty grudge for fewer than three nodes
/// (the bridge is then the first shuffled node).
pub fn bridge<R: Rng>(nodes: &[String], rng: &mut R) -> (String, Grudge) {
    let order = shuffled(nodes, rng);
    let (left, right) = order.split_at(order.len() / 2);
    let Some((bridge, right)) = right.split_first() else {
        return (String::new(), Grudge::new());
    };
    if left.is_empty() {
        return (bridge.clone(), Grudge::new());
    }
    (bridge.clone(), complete_grudge(left, right))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    /// The nodes `node` hears (itself included).
    fn heard(nodes: &[String], grudge: &Grudge, node: &str) -> BTreeSet<String> {
        let dropped = grudge.get(node).cloned().unwrap_or_default();
        nodes
            .iter()
            .filter(|n| !dropped.contains(*n))
            .cloned()
            .collect()
    }

    fn assert_symmetric(grudge: &Grudge) {
        for (a, dropped) in grudge {
            for b in dropped {
                assert!(grudge[b].contains(a), "{b} hears {a} but {a} drops {b}");
            }
        }
    }

    #[test]
    fn isolating_a_node_cuts_it_from_all_and_nothing_else() {
        let nodes = names(5);
        let g = isolate(&nodes, "n3");
        assert_eq!(heard(&nodes, &g, "n3"), BTreeSet::from(["n3".to_string()]));
        for other in ["n1", "n2", "n4", "n5"] {
            assert_eq!(heard(&nodes, &g, other).len(), 4);
            assert!(!heard(&nodes, &g, other).contains("n3"));
        }
        assert_symmetric(&g);
    }

    #[test]
    fn the_ring_of_five_shows_each_node_itself_and_two_neighbours() {
        let nodes = names(5);
        let g = majorities_ring(&nodes, &mut SmallRng::seed_from_u64(3));
        // "Sees" is a 5-cycle: each node sees exactly two others, and following the links
        // from any node visits all five.
        for node in &nodes {
            assert_eq!(heard(&nodes, &g, node).len(), 3, "{g:?}");
        }
        let mut seen = BTreeSet::from([nodes[0].clone()]);
        let mut at = nodes[0].clone();
        let mut previous = String::new();
        for _ in 0..4 {
            let next = heard(&nodes, &g, &at)
                .into_iter()
                .find(|n| *n != at && *n != previous)
                .unwrap();
            previous = std::mem::replace(&mut at, next.clone());
            seen.insert(next);
        }
        assert_eq!(seen.len(), 5, "one ring through every node");
    }

    #[test]
    fn small_clusters_have_no_ring_and_the_bridge_needs_three() {
        for n in 1..=3 {
            assert!(majorities_ring(&names(n), &mut SmallRng::seed_from_u64(1)).is_empty());
        }
        assert!(bridge(&names(2), &mut SmallRng::seed_from_u64(1))
            .1
            .is_empty());
        assert!(!bridge(&names(3), &mut SmallRng::seed_from_u64(1))
            .1
            .is_empty());
    }

    #[test]
    fn topologies_follow_the_seed() {
        let nodes = names(7);
        let a = majorities_ring(&nodes, &mut SmallRng::seed_from_u64(9));
        let b = majorities_ring(&nodes, &mut SmallRng::seed_from_u64(9));
        assert_eq!(a, b);
        let differs = (0..20u64).any(|s| {
            random_halves(&nodes, &mut SmallRng::seed_from_u64(s))
                != random_halves(&nodes, &mut SmallRng::seed_from_u64(s + 100))
        });
        assert!(differs, "different seeds draw different halves");
    }

    proptest! {
        #[test]
        fn halves_are_a_partition_of_the_nodes(n in 2usize..=9, seed: u64) {
            let nodes = names(n);
            let g = random_halves(&nodes, &mut SmallRng::seed_from_u64(seed));
            assert_symmetric(&g);
            // Each node hears exactly its own side; the sides are disjoint, cover every node,
            // are both non-empty, and differ in size by at most one.
            let sides: BTreeSet<BTreeSet<String>> =
                nodes.iter().map(|node| heard(&nodes, &g, node)).collect();
            prop_assert_eq!(sides.len(), 2);
            let all: BTreeSet<String> = sides.iter().flatten().cloned().collect();
            prop_assert_eq!(all.len(), n);
            prop_assert_eq!(sides.iter().map(BTreeSet::len).sum::<usize>(), n);
            let sizes: Vec<usize> = sides.iter().map(BTreeSet::len).collect();
            prop_assert!(sizes[0].abs_diff(sizes[1]) <= 1);
            for node in &nodes {
                prop_assert!(heard(&nodes, &g, node).contains(node));
            }
        }

        #[test]
        fn every_node_of_the_ring_sees_a_majority_and_no_two_see_the_same(
            n in 2usize..=9,
            seed: u64,
        ) {
            let nodes = names(n);
            let g = majorities_ring(&nodes, &mut SmallRng::seed_from_u64(seed));
            assert_symmetric(&g);
            let views: Vec<BTreeSet<String>> =
                nodes.iter().map(|node| heard(&nodes, &g, node)).collect();
            for (node, view) in nodes.iter().zip(&views) {
                prop_assert!(view.contains(node));
                prop_assert!(view.len() >= majority(n), "{} sees {:?}", node, view);
            }
            if n >= 4 {
                // A real partition: nobody sees everyone, and all views differ.
                prop_assert!(views.iter().all(|v| v.len() < n));
                let distinct: BTreeSet<&BTreeSet<String>> = views.iter().collect();
                prop_assert_eq!(distinct.len(), n);
            }
        }

        #[test]
        fn the_bridge_hears_all_and_the_two_sides_are_cut(n in 3usize..=9, seed: u64) {
            let nodes = names(n);
            let (bridge, g) = bridge(&nodes, &mut SmallRng::seed_from_u64(seed));
            assert_symmetric(&g);
            prop_assert_eq!(heard(&nodes, &g, &bridge).len(), n);
            prop_assert!(nodes.iter().all(|node| heard(&nodes, &g, node).contains(&bridge)));
            // Without the bridge, the others fall in two non-empty sides that hear only
            // themselves and the bridge.
            let sides: BTreeSet<BTreeSet<String>> = nodes
                .iter()
                .filter(|node| **node != bridge)
                .map(|node| {
                    let mut view = heard(&nodes, &g, node);
                    view.remove(&bridge);
                    view
                })
                .collect();
            prop_assert_eq!(sides.len(), 2);
            prop_assert_eq!(sides.iter().map(BTreeSet::len).sum::<usize>(), n - 1);
            prop_assert!(sides.iter().all(|side| !side.is_empty()));
        }

        #[test]
        fn an_isolated_node_hears_only_itself(n in 2usize..=9, which in 0usize..9) {
            let nodes = names(n);
            let node = &nodes[which % n];
            let g = isolate(&nodes, node);
            assert_symmetric(&g);
            prop_assert_eq!(heard(&nodes, &g, node).len(), 1);
            for other in nodes.iter().filter(|o| *o != node) {
                prop_assert_eq!(heard(&nodes, &g, other).len(), n - 1);
            }
        }
    }
}
