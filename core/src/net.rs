//! The network seam: cutting, slowing and dropping traffic between the nodes of a test.
//!
//! Like Jepsen's `Net`, one small trait whatever does the work underneath: iptables rules on
//! lab hosts and VMs (reached through each node's [`crate::Remote`]), or, for local processes
//! that share one address, a TCP fault proxy on every peer link that the target wires itself.
//! A nemesis only says *which* traffic to drop ([`Grudge`]) or how to impair it
//! ([`Impairment`]); the topologies (halves, isolate the leader, a ring of majorities, a
//! bridge) are computed in the nemesis crate.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::future::BoxFuture;
use crate::harness_error::HarnessError;
use crate::test::Test;

/// For each node, the nodes whose traffic it must not receive. A symmetric partition lists
/// each side in the other's set; a node absent from the map hears everyone.
pub type Grudge = BTreeMap<String, BTreeSet<String>>;

/// Extra one-way delay on single ordered links: `from -> (to -> ms)`. Traffic from `from` to
/// `to` is held that long; the other direction is not touched.
pub type LinkDelays = BTreeMap<String, BTreeMap<String, u64>>;

/// Degraded links: applied to every link between two nodes of the test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Impairment {
    /// The probability in `[0, 1]` that a packet (for a proxy: a chunk of a stream) is lost.
    pub loss: f64,
    /// Extra delay added to every packet or chunk, in milliseconds.
    pub latency_ms: u64,
}

/// Network faults among the nodes of one test.
///
/// # Correctness
/// - `partition` replaces whatever partition was in force (it does not add to it) and returns
///   only once the cut is in effect on every node: traffic named by the grudge is dropped,
///   including on connections that were already open.
/// - `heal` removes every partition and impairment this `Net` may have made, including ones
///   left by an earlier process that crashed (it removes by owner, not from memory); it
///   succeeds when nothing is in force, and when run twice. The runner calls it on every exit
///   path.
/// - Traffic between the harness (clients, the control node) and the nodes is never cut:
///   only node-to-node links.
pub trait Net: Send + Sync {
    fn partition<'a>(
        &'a self,
        test: &'a Test,
        grudge: &'a Grudge,
    ) -> BoxFuture<'a, Result<(), HarnessError>>;

    fn impair<'a>(
        &'a self,
        test: &'a Test,
        impairment: &'a Impairment,
    ) -> BoxFuture<'a, Result<(), HarnessError>>;

    fn heal<'a>(&'a self, test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>>;

    /// Delays single ordered links ([`LinkDelays`]), replacing the link delays in force (an
    /// empty map removes them); `heal` removes them too. A network that cannot delay one
    /// link alone (iptables without netem) refuses a non-empty map.
    fn delay_links<'a>(
        &'a self,
        _test: &'a Test,
        delays: &'a LinkDelays,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            if delays.values().all(|to| to.is_empty()) {
                Ok(())
            } else {
                Err(HarnessError::Nemesis {
                    f: "delay-links".into(),
                    why: "this network cannot delay single links".into(),
                })
            }
        })
    }
}

/// A grudge that cuts every link between the two sides (both directions).
pub fn complete_grudge<S: AsRef<str>>(side_a: &[S], side_b: &[S]) -> Grudge {
    let mut grudge = Grudge::new();
    for a in side_a {
        for b in side_b {
            grudge
                .entry(a.as_ref().to_string())
                .or_default()
                .insert(b.as_ref().to_string());
            grudge
                .entry(b.as_ref().to_string())
                .or_default()
                .insert(a.as_ref().to_string());
        }
    }
    grudge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_grudge_cuts_both_directions_and_nothing_within_a_side() {
        let g = complete_grudge(&["n1", "n2"], &["n3"]);
        assert_eq!(g["n1"], BTreeSet::from(["n3".to_string()]));
        assert_eq!(g["n2"], BTreeSet::from(["n3".to_string()]));
        assert_eq!(
            g["n3"],
            BTreeSet::from(["n1".to_string(), "n2".to_string()])
        );
    }
}
