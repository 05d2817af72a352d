//! [`IptablesNet`]: the [`Net`] of lab hosts and VMs, as iptables rules on each node,
//! applied through the node's [`faultline_core::Remote`].
//!
//! Every rule lives in chains of faultline's own, jumped to from `INPUT`: `FAULTLINE` holds the
//! partition, `FAULTLINE-LOSS` the impairment, so one replaces its own rules without touching
//! the other's. A node drops what it must not *receive* (`-s <peer> -j DROP`), which is what a
//! [`Grudge`] says; only addresses of other nodes of the test are named, so the control node
//! (clients, SSH) is never cut off. A chain is rewritten in one `iptables-restore --noflush`
//! transaction, so a partition never exists half-applied on a node.
//!
//! ```
//! use std::collections::BTreeMap;
//! use faultline_core::net::complete_grudge;
//! use faultline_targets::iptables::partition_rules;
//! let addresses = BTreeMap::from([
//!     ("n1".to_string(), "10.88.1.11".to_string()),
//!     ("n2".to_string(), "10.88.1.12".to_string()),
//! ]);
//! let grudge = complete_grudge(&["n1"], &["n2"]);
//! let rules = partition_rules(&grudge, "n1", &addresses).unwrap();
//! assert!(rules.contains("-A FAULTLINE -s 10.88.1.12 -j DROP"));
//! ```
//!
//! Design decision: `heal` flushes and deletes both chains and the jumps to them, whatever
//! state this process believes the nodes are in, so a heal after a crashed run cleans up too.
//! This kernel has no netem, so latency cannot be done with iptables: asking for it is an
//! error (the local fault proxy does latency).

use std::collections::BTreeMap;
use std::sync::Arc;

use faultline_core::remote::Command;
use faultline_core::{BoxFuture, Grudge, HarnessError, Impairment, Net, Node, Remote, Test};

use crate::daemon::run;

/// The chain that holds the partition.
pub const PARTITION_CHAIN: &str = "FAULTLINE";
/// The chain that holds random packet loss.
pub const LOSS_CHAIN: &str = "FAULTLINE-LOSS";

/// Partitions and packet loss among the nodes of a test, as iptables rules on each node.
pub struct IptablesNet {
    nodes: Vec<Node>,
}

impl IptablesNet {
    /// The network of `nodes`; their addresses come from each call's `test.addresses`.
    pub fn new(nodes: Vec<Node>) -> IptablesNet {
        IptablesNet { nodes }
    }

    /// Rewrites `chain` on every node with the rules `rules_for(node)`, concurrently.
    async fn rewrite(
        &self,
        f: &str,
        chain: &'static str,
        rules_for: impl Fn(&str) -> Result<String, HarnessError>,
    ) -> Result<(), HarnessError> {
        let mut tasks = tokio::task::JoinSet::new();
        for node in &self.nodes {
            let rules = rules_for(&node.name)?;
            let remote = node.remote.clone();
            tasks.spawn(async move { rewrite_chain(remote.as_ref(), chain, &rules).await });
        }
        first_error(f, tasks).await
    }
}

/// Waits for every task and returns the first error.
async fn first_error(
    f: &str,
    mut tasks: tokio::task::JoinSet<Result<(), HarnessError>>,
) -> Result<(), HarnessError> {
    let mut first = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap_or_else(|e| {
            Err(HarnessError::Nemesis {
                f: f.to_string(),
                why: format!("a task failed: {e}"),
            })
        });
        if let Err(e) = result {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// The address of `node`, or an error naming it.
fn address<'a>(
    addresses: &'a BTreeMap<String, String>,
    node: &str,
) -> Result<&'a str, HarnessError> {
    addresses
        .get(node)
        .map(String::as_str)
        .ok_or_else(|| HarnessError::Nemesis {
            f: "partition".into(),
            why: format!(
                "node {node} has no address in the test (iptables partitions need nodes on \
                 their own hosts)"
            ),
        })
}

/// The `iptables-restore` input that sets `FAULTLINE` on `node` to drop what it must not hear.
/// Nodes absent from the grudge get an empty chain (they hear everyone).
pub fn partition_rules(
    grudge: &Grudge,
    node: &str,
    addresses: &BTreeMap<String, String>,
) -> Result<String, HarnessError> {
    let mut rules = String::new();
    for peer in grudge.get(node).into_iter().flatten() {
        assert_ne!(peer, node, "a grudge never names a node against itself");
        rules.push_str(&format!(
            "-A {PARTITION_CHAIN} -s {} -j DROP\n",
            address(addresses, peer)?
        ));
    }
    Ok(rules)
}

/// The rules that make `node` lose each packet from every other node with probability `loss`.
pub fn loss_rules(
    nodes: &[String],
    node: &str,
    loss: f64,
    addresses: &BTreeMap<String, String>,
) -> Result<String, HarnessError> {
    assert!((0.0..=1.0).contains(&loss), "loss is a probability");
    let mut rules = String::new();
    if loss == 0.0 {
        return Ok(rules);
    }
    for peer in nodes.iter().filter(|peer| *peer != node) {
        rules.push_str(&format!(
            "-A {LOSS_CHAIN} -s {} -m statistic --mode random --probability {loss} -j DROP\n",
            address(addresses, peer)?
        ));
    }
    Ok(rules)
}

/// Replaces every rule of `chain` on the node with `rules` (one transaction), then makes sure
/// `INPUT` jumps to it (once).
async fn rewrite_chain(remote: &dyn Remote, chain: &str, rules: &str) -> Result<(), HarnessError> {
    // Declaring the chain in iptables-restore creates it if needed and flushes it; with
    // --noflush nothing else in the table is touched.
    let input = format!("*filter\n:{chain} - [0:0]\n{rules}COMMIT\n");
    let script = format!(
        "iptables-restore -w --noflush && \
         {{ iptables -w -C INPUT -j {chain} 2>/dev/null || iptables -w -I INPUT 1 -j {chain}; }}"
    );
    let mut command = Command::new("sh", &["-c", &script]);
    command.stdin = Some(input.into_bytes());
    run(remote, &command).await.map(|_| ())
}

/// Removes both chains and every jump to them. Fails only when iptables itself does not work
/// on the node (so a heal that could not run is never taken for one that did).
async fn remove_chains(remote: &dyn Remote) -> Result<(), HarnessError> {
    let script = format!(
        "set -e; iptables -w -S INPUT >/dev/null; \
         for chain in {PARTITION_CHAIN} {LOSS_CHAIN}; do \
           while iptables -w -D INPUT -j $chain 2>/dev/null; do :; done; \
           if iptables -w -S $chain >/dev/null 2>&1; then \
             iptables -w -F $chain; iptables -w -X $chain; \
           fi; \
         done"
    );
    run(remote, &Command::new("sh", &["-c", &script]))
        .await
        .map(|_| ())
}

impl Net for IptablesNet {
    fn partition<'a>(
        &'a self,
        test: &'a Test,
        grudge: &'a Grudge,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.rewrite("partition", PARTITION_CHAIN, |node| {
                partition_rules(grudge, node, &test.addresses)
            })
            .await
        })
    }

    fn impair<'a>(
        &'a self,
        test: &'a Test,
        impairment: &'a Impairment,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let refuse = |why: String| HarnessError::Nemesis {
                f: "impair".into(),
                why,
            };
            if impairment.latency_ms > 0 {
                return Err(refuse(format!(
                    "latency ({} ms) cannot be added with iptables, and this kernel has no \
                     netem; only packet loss is available on lab hosts and VMs",
                    impairment.latency_ms
                )));
            }
            if !(0.0..=1.0).contains(&impairment.loss) {
                return Err(refuse(format!(
                    "loss must be a probability in [0, 1], got {}",
                    impairment.loss
                )));
            }
            let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
            self.rewrite("impair", LOSS_CHAIN, |node| {
                loss_rules(&names, node, impairment.loss, &test.addresses)
            })
            .await
        })
    }

    fn heal<'a>(&'a self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for node in &self.nodes {
                let remote: Arc<dyn Remote> = node.remote.clone();
                tasks.spawn(async move { remove_chains(remote.as_ref()).await });
            }
            first_error("heal", tasks).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::net::complete_grudge;
    use faultline_core::remote::NoopRemote;

    fn addresses() -> BTreeMap<String, String> {
        (1..=3)
            .map(|i| (format!("n{i}"), format!("10.88.9.{}", 10 + i)))
            .collect()
    }

    #[test]
    fn each_node_drops_only_the_peers_it_holds_a_grudge_against() {
        let grudge = complete_grudge(&["n1"], &["n2", "n3"]);
        let n1 = partition_rules(&grudge, "n1", &addresses()).unwrap();
        assert_eq!(
            n1,
            "-A FAULTLINE -s 10.88.9.12 -j DROP\n-A FAULTLINE -s 10.88.9.13 -j DROP\n"
        );
        let n2 = partition_rules(&grudge, "n2", &addresses()).unwrap();
        assert_eq!(n2, "-A FAULTLINE -s 10.88.9.11 -j DROP\n");
        // A node outside the grudge gets an empty chain: the previous partition is replaced.
        let healed = partition_rules(&Grudge::new(), "n1", &addresses()).unwrap();
        assert_eq!(healed, "");
    }

    #[test]
    fn a_node_without_an_address_is_an_error_that_names_it() {
        let grudge = complete_grudge(&["n1"], &["n9"]);
        let e = partition_rules(&grudge, "n1", &addresses()).unwrap_err();
        assert!(e.to_string().contains("n9"), "{e}");
    }

    #[test]
    fn loss_applies_to_traffic_from_every_other_node() {
        let names: Vec<String> = (1..=3).map(|i| format!("n{i}")).collect();
        let rules = loss_rules(&names, "n2", 0.25, &addresses()).unwrap();
        assert_eq!(rules.lines().count(), 2);
        assert!(rules.contains("-s 10.88.9.11 -m statistic --mode random --probability 0.25"));
        assert!(!rules.contains("10.88.9.12"));
        assert_eq!(loss_rules(&names, "n2", 0.0, &addresses()).unwrap(), "");
    }

    #[test]
    fn latency_is_refused_and_heal_runs_on_every_node() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let remotes: Vec<Arc<NoopRemote>> = (1..=2)
            .map(|i| Arc::new(NoopRemote::new(&format!("n{i}"))))
            .collect();
        let nodes = remotes
            .iter()
            .map(|r| Node {
                name: r.node().to_string(),
                remote: r.clone(),
            })
            .collect();
        let net = IptablesNet::new(nodes);
        let mut test = Test::example("etcd", "register", 1);
        test.addresses = addresses();
        let slow = Impairment {
            loss: 0.0,
            latency_ms: 50,
        };
        let e = rt.block_on(net.impair(&test, &slow)).unwrap_err();
        assert!(e.to_string().contains("netem"), "{e}");
        rt.block_on(net.heal(&test)).unwrap();
        for remote in &remotes {
            let requests = remote.requests.lock().unwrap();
            assert_eq!(requests.len(), 1, "{requests:?}");
            assert!(
                requests[0].contains("iptables -w -X $chain"),
                "{requests:?}"
            );
        }
    }
}
