//! What the nemesis does, as data: each [`Action`] is one history event (`f` and `value`),
//! and an event's value parsed back is the same action (so `Nemesis::invoke` of a recorded
//! event does it again).
//!
//! | `f` | value |
//! |---|---|
//! | `start-partition` | `{"partition": "majorities-ring", "grudge": {"n1": ["n3","n4"], ...}}` (plus `isolated`, `leader`, `bridge` for the variants that have them) |
//! | `stop-partition` | `{"partition": "majorities-ring"}` |
//! | `start-loss` / `stop-loss` | `{"loss": 0.31, "latency_ms": 0}` |
//! | `kill` / `pause` | `{"target": "minority", "nodes": ["n2","n4"]}` |
//! | `start` / `resume` | `{"nodes": ["n2","n4"]}` |
//! | `bump-clock` | `{"offsets_ms": {"n2": 1834, "n4": -52011}}` |
//! | `strobe-clock` | `{"offsets_ms": {"n3": 250}, "period_ms": 20, "duration_ms": 2000}` |
//! | `reset-clock` | `{"nodes": ["n2","n4"]}` |
//! | `heal` | `{"net": true, "clocks_reset": [...], "resumed": [...], "started": [...]}` |

use std::collections::BTreeMap;

use faultline_core::{Grudge, Impairment, LinkDelays};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Which partition, and what it needed to know beyond the grudge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "partition", rename_all = "kebab-case")]
pub enum Topology {
    /// Two random halves.
    Halves,
    /// One random node cut off.
    IsolateOne { isolated: String },
    /// The leader cut off. `leader` is the node that said it leads, or `null` when no node
    /// did (or the target has no leaders): then a random node was isolated instead.
    IsolateLeader {
        isolated: String,
        leader: Option<String>,
    },
    /// Each node sees a majority, no two the same one.
    MajoritiesRing,
    /// Two halves that cannot talk, and one node that talks to both.
    Bridge { bridge: String },
    /// One stage of the `restart-voter` election fault: only the links it needs are open
    /// (`stage` says which: `candidates` (the two candidates-to-be talk only to each other),
    /// `campaign` (each candidate also reaches the voter and its own supporters) or `split`
    /// (as `campaign`, without the link between the candidates)).
    RestartVoter {
        stage: String,
        candidates: [String; 2],
        voter: String,
    },
    /// One stage of the `figure-8` fault (Raft's Figure 8, see
    /// [`crate::schedule::Election::Figure8`]): only the links it needs are open, and some
    /// of them are delayed one way (`delays_ms`: from -> to -> ms).
    #[serde(rename = "figure-8")]
    Figure8 {
        stage: String,
        #[serde(default, skip_serializing_if = "LinkDelays::is_empty")]
        delays_ms: LinkDelays,
    },
}

impl Topology {
    /// The variant's name, as `--nemesis` documentation and the history spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Topology::Halves => "halves",
            Topology::IsolateOne { .. } => "isolate-one",
            Topology::IsolateLeader { .. } => "isolate-leader",
            Topology::MajoritiesRing => "majorities-ring",
            Topology::Bridge { .. } => "bridge",
            Topology::RestartVoter { .. } => "restart-voter",
            Topology::Figure8 { .. } => "figure-8",
        }
    }
}

/// A partition: its topology and the grudge that realizes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partition {
    #[serde(flatten)]
    pub topology: Topology,
    pub grudge: Grudge,
}

/// Which nodes a kill or pause was drawn for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    One,
    /// The largest minority: `majority - 1` nodes.
    Minority,
    /// The smallest majority.
    Majority,
    All,
    /// The node that leads when the fault starts (a random one when no node says it leads):
    /// pausing or killing exactly the leader is what exposes lease and failover bugs.
    Leader,
    /// Nodes an election fault chose for their role in it (a voter, a candidate, ...).
    Role,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::One => "one",
            Target::Minority => "minority",
            Target::Majority => "majority",
            Target::All => "all",
            Target::Leader => "leader",
            Target::Role => "role",
        }
    }
}

/// Nodes chosen for a kill or pause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    pub target: Target,
    pub nodes: Vec<String>,
}

/// Nodes an undo applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nodes {
    pub nodes: Vec<String>,
}

/// Clock offsets per node, in milliseconds (negative: behind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offsets {
    pub offsets_ms: BTreeMap<String, i64>,
}

/// A clock strobe: each node's offset flips between its value and 0 every `period_ms`, for
/// `duration_ms` (or until the fault is undone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strobe {
    pub offsets_ms: BTreeMap<String, i64>,
    pub period_ms: u64,
    pub duration_ms: u64,
}

/// What the final heal (and teardown) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealReport {
    /// The network was healed (every partition and impairment removed).
    pub net: bool,
    /// Nodes whose clock offset was set back to 0.
    pub clocks_reset: Vec<String>,
    /// Nodes sent SIGCONT.
    pub resumed: Vec<String>,
    /// Killed nodes started again.
    pub started: Vec<String>,
}

/// One thing the nemesis does: a fault, its undo, or the final heal.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    StartPartition(Partition),
    StopPartition(Topology),
    StartLoss(Impairment),
    StopLoss(Impairment),
    Kill(Targets),
    Start(Nodes),
    Pause(Targets),
    Resume(Nodes),
    BumpClock(Offsets),
    StrobeClock(Strobe),
    ResetClock(Nodes),
    /// Heal everything this nemesis may have done; recorded with a [`HealReport`].
    Heal,
}

impl Action {
    /// The history's `f`.
    pub fn f(&self) -> &'static str {
        match self {
            Action::StartPartition(_) => "start-partition",
            Action::StopPartition(_) => "stop-partition",
            Action::StartLoss(_) => "start-loss",
            Action::StopLoss(_) => "stop-loss",
            Action::Kill(_) => "kill",
            Action::Start(_) => "start",
            Action::Pause(_) => "pause",
            Action::Resume(_) => "resume",
            Action::BumpClock(_) => "bump-clock",
            Action::StrobeClock(_) => "strobe-clock",
            Action::ResetClock(_) => "reset-clock",
            Action::Heal => "heal",
        }
    }

    /// The history's `value` (for `heal`, the [`HealReport`] is recorded instead).
    pub fn value(&self) -> Value {
        let value = match self {
            Action::StartPartition(p) => serde_json::to_value(p),
            Action::StopPartition(t) => serde_json::to_value(t),
            Action::StartLoss(i) | Action::StopLoss(i) => serde_json::to_value(i),
            Action::Kill(t) | Action::Pause(t) => serde_json::to_value(t),
            Action::Start(n) | Action::Resume(n) | Action::ResetClock(n) => serde_json::to_value(n),
            Action::BumpClock(o) => serde_json::to_value(o),
            Action::StrobeClock(s) => serde_json::to_value(s),
            Action::Heal => Ok(json!({})),
        };
        value.expect("nemesis values are plain data")
    }

    /// The action an event (`f`, `value`) describes.
    pub fn parse(f: &str, value: &Value) -> Result<Action, String> {
        fn typed<T: serde::de::DeserializeOwned>(f: &str, value: &Value) -> Result<T, String> {
            T::deserialize(value).map_err(|e| format!("bad value for {f}: {e}: {value}"))
        }
        Ok(match f {
            "start-partition" => Action::StartPartition(typed(f, value)?),
            "stop-partition" => Action::StopPartition(typed(f, value)?),
            "start-loss" => Action::StartLoss(typed(f, value)?),
            "stop-loss" => Action::StopLoss(typed(f, value)?),
            "kill" => Action::Kill(typed(f, value)?),
            "start" => Action::Start(typed(f, value)?),
            "pause" => Action::Pause(typed(f, value)?),
            "resume" => Action::Resume(typed(f, value)?),
            "bump-clock" => Action::BumpClock(typed(f, value)?),
            "strobe-clock" => Action::StrobeClock(typed(f, value)?),
            "reset-clock" => Action::ResetClock(typed(f, value)?),
            "heal" => Action::Heal,
            other => return Err(format!("unknown nemesis operation {other:?}")),
        })
    }

    /// The action that undoes this fault; `None` for undos and the heal.
    pub fn undo(&self) -> Option<Action> {
        let nodes = |names: Vec<String>| Nodes { nodes: names };
        Some(match self {
            Action::StartPartition(p) => Action::StopPartition(p.topology.clone()),
            Action::StartLoss(i) => Action::StopLoss(*i),
            Action::Kill(t) => Action::Start(nodes(t.nodes.clone())),
            Action::Pause(t) => Action::Resume(nodes(t.nodes.clone())),
            Action::BumpClock(o) => {
                Action::ResetClock(nodes(o.offsets_ms.keys().cloned().collect()))
            }
            Action::StrobeClock(s) => {
                Action::ResetClock(nodes(s.offsets_ms.keys().cloned().collect()))
            }
            _ => return None,
        })
    }

    /// A short description for a progress line: `partition majorities-ring`, `kill n2,n4`.
    pub fn describe(&self) -> String {
        match self {
            Action::StartPartition(p) => match &p.topology {
                Topology::IsolateOne { isolated } | Topology::IsolateLeader { isolated, .. } => {
                    format!("partition {} {isolated}", p.topology.name())
                }
                Topology::Bridge { bridge } => format!("partition bridge {bridge}"),
                Topology::RestartVoter { stage, .. } => format!("partition restart-voter {stage}"),
                Topology::Figure8 { stage, .. } => format!("partition figure-8 {stage}"),
                other => format!("partition {}", other.name()),
            },
            Action::StartLoss(i) => match (i.loss > 0.0, i.latency_ms > 0) {
                (true, true) => format!("loss {:.0}% +{} ms", i.loss * 100.0, i.latency_ms),
                (false, true) => format!("latency {} ms", i.latency_ms),
                _ => format!("loss {:.0}%", i.loss * 100.0),
            },
            Action::Kill(t) => format!("kill {}", t.nodes.join(",")),
            Action::Pause(t) => format!("pause {}", t.nodes.join(",")),
            Action::BumpClock(o) => format!("clock bump {}", join_keys(&o.offsets_ms)),
            Action::StrobeClock(s) => format!("clock strobe {}", join_keys(&s.offsets_ms)),
            other => other.f().to_string(),
        }
    }
}

fn join_keys(offsets: &BTreeMap<String, i64>) -> String {
    offsets.keys().cloned().collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values_read_as_documented() {
        let partition = Action::StartPartition(Partition {
            topology: Topology::IsolateLeader {
                isolated: "n2".into(),
                leader: None,
            },
            grudge: faultline_core::net::complete_grudge(&["n2"], &["n1"]),
        });
        assert_eq!(
            partition.value(),
            json!({"partition": "isolate-leader", "isolated": "n2", "leader": null,
                   "grudge": {"n1": ["n2"], "n2": ["n1"]}})
        );
        let kill = Action::Kill(Targets {
            target: Target::Minority,
            nodes: strings(&["n2", "n4"]),
        });
        assert_eq!(
            kill.value(),
            json!({"target": "minority", "nodes": ["n2", "n4"]})
        );
        assert_eq!(kill.undo().unwrap().value(), json!({"nodes": ["n2", "n4"]}));
        assert_eq!(kill.describe(), "kill n2,n4");
        let loss = Action::StartLoss(Impairment {
            loss: 0.25,
            latency_ms: 0,
        });
        assert_eq!(loss.value(), json!({"loss": 0.25, "latency_ms": 0}));
        assert_eq!(loss.describe(), "loss 25%");
    }

    #[test]
    fn every_fault_has_an_undo_and_every_value_parses_back() {
        let offsets = BTreeMap::from([("n1".to_string(), -250i64), ("n3".to_string(), 9_000)]);
        let faults = [
            Action::StartPartition(Partition {
                topology: Topology::Bridge {
                    bridge: "n2".into(),
                },
                grudge: faultline_core::net::complete_grudge(&["n1"], &["n3"]),
            }),
            Action::StartPartition(Partition {
                topology: Topology::MajoritiesRing,
                grudge: Grudge::new(),
            }),
            Action::StartPartition(Partition {
                topology: Topology::Figure8 {
                    stage: "elect".into(),
                    delays_ms: LinkDelays::from([(
                        "n5".to_string(),
                        BTreeMap::from([("n1".to_string(), 150), ("n3".to_string(), 150)]),
                    )]),
                },
                grudge: faultline_core::net::complete_grudge(&["n1"], &["n2"]),
            }),
            Action::StartLoss(Impairment {
                loss: 0.4,
                latency_ms: 30,
            }),
            Action::Kill(Targets {
                target: Target::All,
                nodes: strings(&["n1", "n2", "n3"]),
            }),
            Action::Pause(Targets {
                target: Target::One,
                nodes: strings(&["n3"]),
            }),
            Action::BumpClock(Offsets {
                offsets_ms: offsets.clone(),
            }),
            Action::StrobeClock(Strobe {
                offsets_ms: offsets,
                period_ms: 20,
                duration_ms: 1_000,
            }),
        ];
        for fault in faults {
            let undo = fault.undo().expect("an undo");
            assert!(undo.undo().is_none(), "an undo is not undone");
            for action in [fault, undo] {
                assert_eq!(
                    Action::parse(action.f(), &action.value()),
                    Ok(action.clone())
                );
            }
        }
        assert_eq!(Action::parse("heal", &json!({})), Ok(Action::Heal));
    }

    #[test]
    fn bad_events_are_refused_with_the_reason() {
        let e = Action::parse("kill", &json!({"nodes": "n1"})).unwrap_err();
        assert!(e.contains("bad value for kill"), "{e}");
        let e = Action::parse("explode", &json!({})).unwrap_err();
        assert!(e.contains("unknown nemesis operation"), "{e}");
    }
}
