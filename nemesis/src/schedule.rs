//! The fault schedule: a pure, seeded sequence of faults to inject.
//!
//! [`Schedule::next_fault`] draws, in this order and from one RNG seeded from the test's seed: the
//! quiet gap before the fault, how long it is held, its kind (uniformly from the mix), its
//! variant (uniformly from those that make sense for this many nodes), and its parameters
//! (nodes, offsets, probabilities). Nothing here reads a clock or asks a node, so the same
//! seed gives the same sequence; the one choice made at run time (which node leads, for
//! `isolate-leader`, the `leader` targets and the `election` faults) is drawn here as a
//! fallback node and an index, so that the RNG stream does not depend on what the cluster
//! answered.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use faultline_core::{Grudge, Impairment};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::action::{Action, Offsets, Partition, Strobe, Target, Targets, Topology};
use crate::partition::{self, majority};

/// A fault kind, as `--nemesis` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Partition,
    Loss,
    Pause,
    Kill,
    Clock,
    /// Faults aimed at leader elections (see [`Election`]).
    Election,
    /// An election contested by two candidates in one term, with a voter killed and restarted
    /// between their requests ([`Election::RestartVoter`]).
    RestartVoter,
    /// Raft's Figure 8: an entry of an old term replicated to a majority by a later leader,
    /// then overwritten ([`Election::Figure8`]).
    Figure8,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Partition => "partition",
            Kind::Loss => "loss",
            Kind::Pause => "pause",
            Kind::Kill => "kill",
            Kind::Clock => "clock",
            Kind::Election => "election",
            Kind::RestartVoter => "restart-voter",
            Kind::Figure8 => "figure-8",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        [
            Kind::Partition,
            Kind::Loss,
            Kind::Pause,
            Kind::Kill,
            Kind::Clock,
            Kind::Election,
            Kind::RestartVoter,
            Kind::Figure8,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }

    /// Partitions and loss act on links between nodes: with one node there are none. An
    /// election fault cuts the leader off from a majority that can elect another: three
    /// nodes at least. `restart-voter` gives two candidates a majority each with one voter in
    /// common: an odd number of nodes, five at least (see [`RestartVoterRoles`]).
    pub fn applies_to(self, nodes: usize) -> bool {
        match self {
            Kind::Partition | Kind::Loss => nodes >= 2,
            Kind::Election => nodes >= 3,
            Kind::RestartVoter => nodes >= 5 && nodes % 2 == 1,
            Kind::Figure8 => nodes == 5,
            Kind::Pause | Kind::Kill | Kind::Clock => nodes >= 1,
        }
    }
}

/// The schedule's pace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// The quiet time before each fault is drawn from this range (ms).
    pub gap_ms: RangeInclusive<u64>,
    /// How long each fault is held before it is undone, drawn from this range (ms).
    pub fault_ms: RangeInclusive<u64>,
    /// After the final heal, how long the cluster gets to recover before the final
    /// operations (final reads) start (ms). Skipped when no fault kind was asked for.
    pub recovery_ms: u64,
}

/// Quiet gaps of 0.5 to 1.5 s between faults.
pub const GAP_MS: RangeInclusive<u64> = 500..=1_500;
/// Faults held 1 to 3 s.
pub const FAULT_MS: RangeInclusive<u64> = 1_000..=3_000;
/// 3 s to recover: a few Raft election timeouts of raftkv. ZooKeeper needs more after long
/// partitions (its election back-off), so its runs should set a longer one.
pub const RECOVERY_MS: u64 = 3_000;
/// A clock bump moves a node by 100 ms to 60 s (either way), log-uniformly: small skews,
/// which leases and timeouts are most sensitive to, are as likely per decade as large ones.
pub const CLOCK_OFFSET_MS: RangeInclusive<i64> = 100..=60_000;
/// A strobe flips every 5 to 100 ms (a lower bound: each flip is a command per node).
pub const STROBE_PERIOD_MS: RangeInclusive<u64> = 5..=100;
/// Loss drops 20 % to 50 % of packets (chunks, for a proxy), in whole percents.
pub const LOSS_PERCENT: RangeInclusive<u32> = 20..=50;
/// Added latency, when the network can delay: 10 to 200 ms.
pub const LATENCY_MS: RangeInclusive<u64> = 10..=200;

/// The pace of a `restart-voter` fault ([`Election::RestartVoter`]), in ms. Each wait is
/// long enough for what it waits for in raftkv (10 ms ticks, elections after 150-300 ms, a
/// dialer that backs off up to 1 s on a cut link) on a loaded machine, and no longer.
pub mod restart_voter_ms {
    /// Only the two candidates-to-be talk (to each other): the leader among them, if it is
    /// one, steps down (check-quorum) after sending the other everything it appended, and
    /// every node's leader lease runs out.
    pub const CANDIDATES: u64 = 600;
    /// The campaign links are open and the voter is paused: dialers reconnect and both
    /// candidates-to-be queue pre-vote requests at the voter.
    pub const CAMPAIGN: u64 = 2_000;
    /// Between resuming the voter and the first candidate: the voter's pre-vote grants are
    /// waiting when the candidate resumes.
    pub const GRANTS: u64 = 20;
    /// The first candidate asks for votes and the voter answers.
    pub const VOTE: u64 = 100;
    /// The voter's restart (process start, log recovery), with both candidates paused.
    pub const RESTART: u64 = 1_000;
    /// The second candidate asks the restarted voter and its supporters, and may win.
    pub const SECOND_ELECTION: u64 = 300;
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            gap_ms: GAP_MS,
            fault_ms: FAULT_MS,
            recovery_ms: RECOVERY_MS,
        }
    }
}

/// A fault to inject, as drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Inject exactly this.
    Apply(Action),
    /// Isolate the leader: known only at run time. When several nodes claim to lead, the one
    /// at `pick` modulo their number (in name order); when none does, `fallback`.
    IsolateLeader { fallback: String, pick: u64 },
    /// A fault aimed at elections: a sequence of actions, resolved against the leader at run
    /// time.
    Election(Election),
}

/// The `election` faults: sequences that steer a leader change rather than one action held
/// and undone. Each is recorded as the ordinary actions it is made of (a partition, a pause,
/// ...), each undone in reverse order, so a history shows exactly what was done when.
#[derive(Debug, Clone, PartialEq)]
pub enum Election {
    /// Cut the leader off and pause it at once (so it cannot notice it lost its quorum and
    /// step down); hold the pause `pause_ms` (2-4 s by default) while the others elect a new
    /// leader and take writes; resume it while it is still cut off and keep it cut off for
    /// `isolated_ms` (0.5-1 s by default);
    /// then heal. A resumed old leader that trusts a lease taken before the pause (or any
    /// state it held as leader) answers its clients from stale state meanwhile; a correct one
    /// answers nothing it cannot confirm with a quorum. The leader is resolved as for
    /// [`Plan::IsolateLeader`] (`fallback`, `pick`).
    PauseIsolatedLeader {
        fallback: String,
        pick: u64,
        pause_ms: u64,
        isolated_ms: u64,
    },
    /// Two candidates in one term whose majorities share one voter, and that voter killed
    /// and restarted after it voted for the first and before the second asks it: Raft's
    /// persisted vote (Figure 2) is all that keeps the second from winning too. The steps
    /// (timings in [`restart_voter_ms`]; roles in [`RestartVoterRoles`], `order` with the
    /// leader moved first at run time):
    ///
    /// 1. only the two candidates-to-be talk, to each other (one is the leader, when one is
    ///    known, so both end with its whole log); everyone loses its leader;
    /// 2. the voter and one late supporter of each candidate are paused; the campaign links
    ///    open; both candidates-to-be send pre-votes, which queue at the paused voter;
    /// 3. both candidates-to-be are paused, and the link between them is cut;
    /// 4. the voter resumes (granting both pre-votes at once), then the first candidate,
    ///    which becomes a candidate and gets the voter's vote but not yet a majority (its
    ///    late supporter is paused);
    /// 5. the first candidate is paused again, the voter is killed and restarted;
    /// 6. the second candidate and its late supporter resume: it becomes a candidate in the
    ///    same term and asks the restarted voter;
    /// 7. the first candidate and its late supporter resume: with the supporter's vote it has
    ///    a majority, counting the voter's first vote;
    /// 8. held `hold_ms`, then every link healed.
    ///
    /// A correct store elects one leader in that term: the restarted voter remembers its vote,
    /// so the second candidate waits for its next election (a later term). A store that
    /// forgets votes (raftkv's `forget-vote` bug) elects both, and two leaders take writes.
    RestartVoter {
        order: Vec<String>,
        pick: u64,
        hold_ms: u64,
    },
    /// Raft's Figure 8 on five nodes, built step by step (timings in [`figure_8_ms`]). The
    /// leader A (resolved at run time; `order` gives the others, B first) and:
    ///
    /// 1. `pair` (once every log ends at the same entry, or after [`figure_8_ms::CATCH_UP`]):
    ///    only A and B talk: A appends the writes it takes now on A and B alone, and only its
    ///    own clients and B's can hear its answers;
    /// 2. A is paused (still leader, its clients' writes pending);
    /// 3. `elect`: E (of the other three, the one with the longest log) reaches C and D, its
    ///    own messages delayed [`figure_8_ms::DELAY`] (the fault ends here unless E's log
    ///    holds every entry A had before step 1, and B holds one more): E is elected; the
    ///    moment it leads,
    ///    `reelect` cuts it off (its first AppendEntries, with the no-op of its term that
    ///    conflicts with A's writes, still in the delay) and E is paused;
    /// 4. `reelect`: A resumed reaches B, and C through a delayed link: A is elected again
    ///    and sends C what it lacks one entry per message (the server's flag); the moment C
    ///    holds A's first old-term write past E's log (and A, if it is going to, has
    ///    committed it), `cut` leaves only A and B talking. A majority (A, B, C) now stores
    ///    that write, but not A's new no-op, and C knows nothing committed past E's log;
    /// 5. `overwrite`: E resumed reaches C and D, whose logs end in an older term than E's:
    ///    E is elected and overwrites C from its no-op on; the heal then overwrites A and B.
    ///
    /// A correct leader never commits an entry of an earlier term by counting replicas
    /// (§5.4.2), so A's writes stay pending and end `info`, and A and B take E's log at the
    /// heal. One that does (raftkv's `old-term-commit`) acknowledges the write in step 4 and
    /// loses it in step 5; A and B then hold a committed entry E's log does not, which
    /// they never drop, but E, C and D are a majority that goes on serving and shows the
    /// loss to any later read.
    Figure8 { order: Vec<String>, pick: u64 },
}

/// The pace of a `figure-8` fault ([`Election::Figure8`]), in ms, for raftkv run with
/// `FIGURE_8_SERVER_FLAGS` (10 ms ticks, elections after 400-800 ms).
pub mod figure_8_ms {
    /// Before the first step, the longest wait for every node's log to come within
    /// [`CONVERGED`] entries of the others (followers repairing their logs after an earlier
    /// fault); past it, the fault is skipped.
    pub const CONVERGE: u64 = 10_000;
    /// How far apart (in entries) the nodes' last indexes may be when the fault starts.
    pub const CONVERGED: u64 = 50;
    /// Then, the longest wait for every log to end at the same entry before the first step.
    pub const CATCH_UP: u64 = 2_000;
    /// A and B alone: A takes writes, shorter than an election timeout (check-quorum).
    pub const PAIR: u64 = 300;
    /// The one-way delay of E's links while it campaigns: its first AppendEntries must not
    /// outrun the nemesis's cut.
    pub const DELAY: u64 = 150;
    /// The one-way delay of A's link to C while A ships it entries one per message: A's next
    /// message, with the commit index, must not outrun the nemesis's cut.
    pub const SHIP_DELAY: u64 = 300;
    /// How often a node's log status is asked for while a step is awaited.
    pub const POLL: u64 = 10;
    /// The longest wait for one step (an election, an entry reaching C).
    pub const STEP: u64 = 8_000;
    /// After C stored the entry, the longest wait for A to report it committed (a leader
    /// that counts replicas of an old-term entry does so as C's acknowledgement arrives on
    /// an undelayed link; a correct one never does). Well under [`SHIP_DELAY`], which holds A's
    /// next message to C.
    pub const ACK: u64 = 60;
    /// A applies and answers, E's overwrite settles, before the next stage.
    pub const SETTLE: u64 = 500;
}

impl Election {
    /// The variant's name, as the documentation and the progress line spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Election::PauseIsolatedLeader { .. } => "pause-isolated-leader",
            Election::RestartVoter { .. } => "restart-voter",
            Election::Figure8 { .. } => "figure-8",
        }
    }
}

/// The roles of a `restart-voter` fault over an odd number `2k + 1 >= 5` of nodes: two
/// candidates, the voter they share, and `k - 1` supporters of each, one of which (the late
/// one) is paused until the end so that its candidate has no majority before then.
///
/// A majority is `k + 1`: `first`, `voter` and `first_supporters` make one, `second`,
/// `voter` and `second_supporters` the other. Before the voter resumes, each candidate-to-be
/// has `k` pre-vote grants (itself, the other candidate-to-be, its `k - 2` running
/// supporters), one short of a majority: the voter's grant makes both candidates at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartVoterRoles {
    pub first: String,
    pub second: String,
    pub voter: String,
    /// The first's supporters; `[0]` is the late one.
    pub first_supporters: Vec<String>,
    /// The second's supporters; `[0]` is the late one.
    pub second_supporters: Vec<String>,
}

impl RestartVoterRoles {
    /// Roles in `order`: first, second, voter, then the first's supporters, then the
    /// second's. Panics unless `order` has an odd length of 5 or more.
    pub fn from_order(order: &[String]) -> RestartVoterRoles {
        assert!(
            Kind::RestartVoter.applies_to(order.len()),
            "restart-voter needs an odd number of nodes, at least 5: {order:?}"
        );
        let each = (order.len() - 3) / 2;
        RestartVoterRoles {
            first: order[0].clone(),
            second: order[1].clone(),
            voter: order[2].clone(),
            first_supporters: order[3..3 + each].to_vec(),
            second_supporters: order[3 + each..].to_vec(),
        }
    }

    /// The grudge that leaves exactly `links` (unordered pairs) open among `nodes`.
    pub(crate) fn only(nodes: &[String], links: &[(&String, &String)]) -> Grudge {
        let open = |a: &String, b: &String| {
            links
                .iter()
                .any(|(x, y)| (*x == a && *y == b) || (*x == b && *y == a))
        };
        let mut grudge = Grudge::new();
        for a in nodes {
            for b in nodes {
                if a != b && !open(a, b) {
                    grudge.entry(a.clone()).or_default().insert(b.clone());
                }
            }
        }
        grudge
    }

    /// Stage `candidates`: only the two candidates-to-be talk, to each other.
    pub fn candidates_grudge(&self, nodes: &[String]) -> Grudge {
        RestartVoterRoles::only(nodes, &[(&self.first, &self.second)])
    }

    /// Stage `campaign` (`with_candidate_link`) or `split` (without): each candidate-to-be
    /// reaches the voter and its own supporters.
    pub fn campaign_grudge(&self, nodes: &[String], with_candidate_link: bool) -> Grudge {
        let mut links = vec![(&self.first, &self.voter), (&self.second, &self.voter)];
        if with_candidate_link {
            links.push((&self.first, &self.second));
        }
        links.extend(self.first_supporters.iter().map(|s| (&self.first, s)));
        links.extend(self.second_supporters.iter().map(|s| (&self.second, s)));
        RestartVoterRoles::only(nodes, &links)
    }
}

/// One step of the schedule: wait `gap_ms`, inject `plan`, hold it `hold_ms`, undo it.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub gap_ms: u64,
    pub hold_ms: u64,
    pub plan: Plan,
    /// A second fault of another kind, injected after `plan` and undone before it. Drawn for
    /// clock faults when the mix has other kinds: a skewed clock alone rarely matters; it
    /// matters when the node that trusts it is also cut off or paused (a lease outliving a
    /// partition, as in Jepsen's combined clock and partition nemeses).
    pub with: Option<Plan>,
}

/// The seeded sequence of faults for one run.
pub struct Schedule {
    rng: SmallRng,
    kinds: Vec<Kind>,
    nodes: Vec<String>,
    /// Whether the network can delay packets (the local fault proxy can; iptables cannot,
    /// as this kernel has no netem), so latency is drawn only where it can be applied.
    latency: bool,
    timing: Timing,
}

impl Schedule {
    /// The schedule over `nodes` for the fault `kinds`. Kinds that need more nodes than there
    /// are (a partition of one node) are left out of the mix; see [`Schedule::kinds`].
    pub fn new(
        seed: u64,
        kinds: &[Kind],
        nodes: &[String],
        latency: bool,
        timing: Timing,
    ) -> Schedule {
        assert!(
            !timing.gap_ms.is_empty() && !timing.fault_ms.is_empty(),
            "empty timing ranges: {timing:?}"
        );
        let mut kinds: Vec<Kind> = kinds
            .iter()
            .copied()
            .filter(|kind| kind.applies_to(nodes.len()))
            .collect();
        kinds.sort();
        kinds.dedup();
        Schedule {
            rng: SmallRng::seed_from_u64(seed),
            kinds,
            nodes: nodes.to_vec(),
            latency,
            timing,
        }
    }

    /// The kinds this schedule draws from (those that apply to this many nodes).
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// The next fault. Panics when [`Schedule::kinds`] is empty: there is nothing to draw.
    pub fn next_fault(&mut self) -> Planned {
        assert!(!self.kinds.is_empty(), "a schedule with no fault kinds");
        let gap_ms = self.rng.gen_range(self.timing.gap_ms.clone());
        let hold_ms = self.rng.gen_range(self.timing.fault_ms.clone());
        let kind = self.kinds[self.rng.gen_range(0..self.kinds.len())];
        let plan = self.plan(kind, hold_ms);
        let others: Vec<Kind> = self
            .kinds
            .iter()
            .copied()
            .filter(|k| {
                !matches!(
                    k,
                    Kind::Clock | Kind::Election | Kind::RestartVoter | Kind::Figure8
                )
            })
            .collect();
        let with = (kind == Kind::Clock && !others.is_empty()).then(|| {
            let other = others[self.rng.gen_range(0..others.len())];
            self.plan(other, hold_ms)
        });
        Planned {
            gap_ms,
            hold_ms,
            plan,
            with,
        }
    }

    fn plan(&mut self, kind: Kind, hold_ms: u64) -> Plan {
        match kind {
            Kind::Partition => self.partition(),
            Kind::Loss => Plan::Apply(Action::StartLoss(self.loss())),
            Kind::Kill => Plan::Apply(Action::Kill(self.targets())),
            Kind::Pause => Plan::Apply(Action::Pause(self.targets())),
            Kind::Clock => Plan::Apply(self.clock(hold_ms)),
            Kind::Election => Plan::Election(self.election(hold_ms)),
            Kind::Figure8 => {
                let mut order = self.nodes.clone();
                order.shuffle(&mut self.rng);
                let pick = self.rng.gen();
                Plan::Election(Election::Figure8 { order, pick })
            }
            Kind::RestartVoter => {
                let mut order = self.nodes.clone();
                order.shuffle(&mut self.rng);
                let pick = self.rng.gen();
                Plan::Election(Election::RestartVoter {
                    order,
                    pick,
                    hold_ms,
                })
            }
        }
    }

    fn election(&mut self, hold_ms: u64) -> Election {
        let n = self.nodes.len();
        let fallback = self.nodes[self.rng.gen_range(0..n)].clone();
        let pick = self.rng.gen();
        // The pause: the hold drawn plus the shortest hold (2-4 s by default), longer than
        // the request timeouts of the stores tested (raftkv: 2 s), so that every request the
        // paused leader took has timed out when it resumes and its clients send new ones
        // right away, while it may still trust what it believed before the pause.
        let pause_ms = hold_ms + self.timing.fault_ms.start();
        // Resumed but cut off for half to all of the shortest hold (0.5-1 s by default):
        // longer than the election timeouts of the stores tested (raftkv: 150-300 ms), so a
        // lease or leadership the resumed node still trusts runs out before it hears of the
        // new leader, and no longer, since nothing more happens there.
        let shortest = *self.timing.fault_ms.start();
        let isolated_ms = self.rng.gen_range(shortest / 2..=shortest);
        Election::PauseIsolatedLeader {
            fallback,
            pick,
            pause_ms,
            isolated_ms,
        }
    }

    fn partition(&mut self) -> Plan {
        let n = self.nodes.len();
        // (variant, the fewest nodes it is a real partition of)
        let variants: Vec<&str> = [
            ("halves", 2),
            ("isolate-one", 2),
            ("isolate-leader", 2),
            ("bridge", 3),
            ("majorities-ring", 4),
        ]
        .into_iter()
        .filter(|(_, min)| n >= *min)
        .map(|(name, _)| name)
        .collect();
        let rng = &mut self.rng;
        let nodes = &self.nodes;
        let (topology, grudge) = match variants[rng.gen_range(0..variants.len())] {
            "halves" => (Topology::Halves, partition::random_halves(nodes, rng)),
            "isolate-one" => {
                let isolated = nodes[rng.gen_range(0..n)].clone();
                let grudge = partition::isolate(nodes, &isolated);
                (Topology::IsolateOne { isolated }, grudge)
            }
            "isolate-leader" => {
                let fallback = nodes[rng.gen_range(0..n)].clone();
                let pick = rng.gen();
                return Plan::IsolateLeader { fallback, pick };
            }
            "bridge" => {
                let (bridge, grudge) = partition::bridge(nodes, rng);
                (Topology::Bridge { bridge }, grudge)
            }
            _ => (
                Topology::MajoritiesRing,
                partition::majorities_ring(nodes, rng),
            ),
        };
        Plan::Apply(Action::StartPartition(Partition { topology, grudge }))
    }

    fn loss(&mut self) -> Impairment {
        let variants: &[(bool, bool)] = if self.latency {
            &[(true, false), (false, true), (true, true)]
        } else {
            &[(true, false)]
        };
        let (loss, latency) = variants[self.rng.gen_range(0..variants.len())];
        let loss = if loss {
            f64::from(self.rng.gen_range(LOSS_PERCENT)) / 100.0
        } else {
            0.0
        };
        let latency_ms = if latency {
            self.rng.gen_range(LATENCY_MS)
        } else {
            0
        };
        Impairment { loss, latency_ms }
    }

    /// `size` distinct random nodes, in the nodes' own order.
    fn subset(&mut self, size: usize) -> Vec<String> {
        let mut chosen: Vec<usize> = (0..self.nodes.len()).collect();
        chosen.shuffle(&mut self.rng);
        chosen.truncate(size);
        chosen.sort_unstable();
        chosen.into_iter().map(|i| self.nodes[i].clone()).collect()
    }

    fn targets(&mut self) -> Targets {
        let n = self.nodes.len();
        let minority = majority(n) - 1;
        let variants: Vec<Target> = [
            Target::One,
            Target::Minority,
            Target::Majority,
            Target::All,
            Target::Leader,
        ]
        .into_iter()
        .filter(|t| *t != Target::Minority || minority > 0)
        .collect();
        let target = variants[self.rng.gen_range(0..variants.len())];
        let size = match target {
            Target::One => 1,
            Target::Minority => minority,
            Target::Majority => majority(n),
            Target::All => n,
            // A stand-in, drawn now so the schedule stays reproducible; replaced by the
            // leader at run time when one is known.
            Target::Leader => 1,
            Target::Role => unreachable!("drawn only by election faults"),
        };
        Targets {
            target,
            nodes: self.subset(size),
        }
    }

    fn clock(&mut self, hold_ms: u64) -> Action {
        let strobe = self.rng.gen_bool(0.5);
        let size = self.rng.gen_range(1..=self.nodes.len());
        let nodes = self.subset(size);
        let (low, high) = (
            (*CLOCK_OFFSET_MS.start() as f64).ln(),
            (*CLOCK_OFFSET_MS.end() as f64).ln(),
        );
        let offsets_ms: BTreeMap<String, i64> = nodes
            .into_iter()
            .map(|node| {
                let magnitude = (self.rng.gen_range(low..=high).exp().round() as i64)
                    .clamp(*CLOCK_OFFSET_MS.start(), *CLOCK_OFFSET_MS.end());
                let sign = if self.rng.gen_bool(0.5) { 1 } else { -1 };
                (node, sign * magnitude)
            })
            .collect();
        if strobe {
            Action::StrobeClock(Strobe {
                offsets_ms,
                period_ms: self.rng.gen_range(STROBE_PERIOD_MS),
                duration_ms: hold_ms,
            })
        } else {
            Action::BumpClock(Offsets { offsets_ms })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Nodes;
    use std::collections::BTreeSet;

    const ALL: [Kind; 6] = [
        Kind::Partition,
        Kind::Loss,
        Kind::Pause,
        Kind::Kill,
        Kind::Clock,
        Kind::Election,
    ];

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn draw(seed: u64, n: usize, count: usize) -> Vec<Planned> {
        let mut schedule = Schedule::new(seed, &ALL, &names(n), true, Timing::default());
        (0..count).map(|_| schedule.next_fault()).collect()
    }

    #[test]
    fn the_same_seed_draws_the_same_schedule() {
        assert_eq!(draw(77, 5, 200), draw(77, 5, 200));
        assert_ne!(draw(77, 5, 20), draw(78, 5, 20));
    }

    #[test]
    fn every_kind_and_variant_is_drawn_and_within_its_bounds() {
        let n = 5;
        let nodes: BTreeSet<String> = names(n).into_iter().collect();
        let mut seen = BTreeSet::new();
        for planned in draw(5, n, 2_000) {
            assert!(GAP_MS.contains(&planned.gap_ms));
            assert!(FAULT_MS.contains(&planned.hold_ms));
            let action = match planned.plan {
                Plan::IsolateLeader { fallback, .. } => {
                    assert!(nodes.contains(&fallback));
                    seen.insert("partition isolate-leader".to_string());
                    continue;
                }
                Plan::Election(election) => {
                    let Election::PauseIsolatedLeader {
                        fallback,
                        pause_ms,
                        isolated_ms,
                        ..
                    } = &election
                    else {
                        unreachable!("restart-voter is not among the kinds drawn here")
                    };
                    assert!(nodes.contains(fallback));
                    assert_eq!(*pause_ms, planned.hold_ms + FAULT_MS.start());
                    assert!((FAULT_MS.start() / 2..=*FAULT_MS.start()).contains(isolated_ms));
                    assert!(planned.with.is_none(), "an election fault has no companion");
                    seen.insert(format!("election {}", election.name()));
                    continue;
                }
                Plan::Apply(action) => action,
            };
            match &action {
                Action::StartPartition(p) => {
                    assert!(!p.grudge.is_empty(), "{p:?}");
                    assert!(p.grudge.keys().all(|k| nodes.contains(k)));
                    seen.insert(format!("partition {}", p.topology.name()));
                }
                Action::StartLoss(i) => {
                    assert!(i.loss == 0.0 || (0.2..=0.5).contains(&i.loss), "{i:?}");
                    assert!(i.latency_ms == 0 || LATENCY_MS.contains(&i.latency_ms));
                    assert!(
                        i.loss > 0.0 || i.latency_ms > 0,
                        "an impairment that does nothing"
                    );
                    seen.insert(format!("loss {} {}", i.loss > 0.0, i.latency_ms > 0));
                }
                Action::Kill(t) | Action::Pause(t) => {
                    let expected = match t.target {
                        Target::One => 1,
                        Target::Minority => 2,
                        Target::Majority => 3,
                        Target::All => 5,
                        Target::Leader => 1,
                        Target::Role => unreachable!("drawn only by restart-voter"),
                    };
                    assert_eq!(t.nodes.len(), expected, "{t:?}");
                    let distinct: BTreeSet<&String> = t.nodes.iter().collect();
                    assert_eq!(distinct.len(), expected);
                    assert!(t.nodes.iter().all(|node| nodes.contains(node)));
                    seen.insert(format!("{} {}", action.f(), t.target.name()));
                }
                Action::BumpClock(Offsets { offsets_ms })
                | Action::StrobeClock(Strobe { offsets_ms, .. }) => {
                    assert!(!offsets_ms.is_empty());
                    for offset in offsets_ms.values() {
                        assert!(CLOCK_OFFSET_MS.contains(&offset.abs()), "{offset}");
                    }
                    if let Action::StrobeClock(s) = &action {
                        assert!(STROBE_PERIOD_MS.contains(&s.period_ms));
                        assert_eq!(s.duration_ms, planned.hold_ms);
                    }
                    seen.insert(action.f().to_string());
                }
                other => panic!("the schedule drew an undo: {other:?}"),
            }
            // And each fault's undo names the same nodes.
            if let Some(Action::Start(Nodes { nodes: undone }))
            | Some(Action::Resume(Nodes { nodes: undone })) = action.undo()
            {
                let (Action::Kill(t) | Action::Pause(t)) = &action else {
                    unreachable!()
                };
                assert_eq!(undone, t.nodes);
            }
        }
        let expected = [
            "partition halves",
            "partition isolate-one",
            "partition isolate-leader",
            "partition majorities-ring",
            "partition bridge",
            "loss true false",
            "loss false true",
            "loss true true",
            "kill one",
            "kill minority",
            "kill majority",
            "kill all",
            "pause one",
            "pause minority",
            "pause majority",
            "pause all",
            "kill leader",
            "pause leader",
            "bump-clock",
            "strobe-clock",
            "election pause-isolated-leader",
        ];
        for variant in expected {
            assert!(seen.contains(variant), "{variant} never drawn: {seen:?}");
        }
        assert_eq!(seen.len(), expected.len(), "{seen:?}");
    }

    /// The roles of `restart-voter` over 5, 7 and 9 nodes: each candidate's majority shares
    /// exactly the voter with the other's; before the voter's grant each candidate-to-be has
    /// one pre-vote fewer than a majority (itself, the other, its running supporters); and
    /// each stage's grudge leaves open exactly the links it names, both ways.
    #[test]
    fn restart_voter_roles_give_two_majorities_that_share_only_the_voter() {
        for n in [5, 7, 9] {
            let nodes = names(n);
            let roles = RestartVoterRoles::from_order(&nodes);
            let mut first = vec![&roles.first, &roles.voter];
            first.extend(&roles.first_supporters);
            let mut second = vec![&roles.second, &roles.voter];
            second.extend(&roles.second_supporters);
            assert_eq!(first.len(), majority(n));
            assert_eq!(second.len(), majority(n));
            let all: BTreeSet<&String> = first.iter().chain(&second).copied().collect();
            assert_eq!(all.len(), n, "every node has a role");
            // Itself, the other candidate-to-be, its running (not late) supporters.
            let pre_votes = 2 + roles.first_supporters.len() - 1;
            assert_eq!(pre_votes + 1, majority(n), "the voter's grant decides");

            let open = |grudge: &Grudge, a: &String, b: &String| {
                let cut = grudge.get(a).is_some_and(|d| d.contains(b));
                assert_eq!(cut, grudge.get(b).is_some_and(|d| d.contains(a)));
                !cut
            };
            let candidates = roles.candidates_grudge(&nodes);
            let split = roles.campaign_grudge(&nodes, false);
            let campaign = roles.campaign_grudge(&nodes, true);
            for a in &nodes {
                for b in nodes.iter().filter(|b| *b != a) {
                    let pair = |x: &String, y: &String| (a == x && b == y) || (a == y && b == x);
                    let (f, s, v) = (&roles.first, &roles.second, &roles.voter);
                    let links = pair(f, v)
                        || pair(s, v)
                        || roles.first_supporters.iter().any(|x| pair(f, x))
                        || roles.second_supporters.iter().any(|y| pair(s, y));
                    assert_eq!(open(&candidates, a, b), pair(f, s), "{a}-{b}");
                    assert_eq!(open(&split, a, b), links, "{a}-{b}");
                    assert_eq!(open(&campaign, a, b), links || pair(f, s), "{a}-{b}");
                }
            }
        }
        assert!(!Kind::RestartVoter.applies_to(3));
        assert!(!Kind::RestartVoter.applies_to(6));
    }

    #[test]
    fn without_latency_only_loss_is_drawn() {
        let mut schedule = Schedule::new(1, &[Kind::Loss], &names(3), false, Timing::default());
        for _ in 0..200 {
            let Plan::Apply(Action::StartLoss(i)) = schedule.next_fault().plan else {
                panic!()
            };
            assert_eq!(i.latency_ms, 0);
            assert!(i.loss >= 0.2);
        }
    }

    #[test]
    fn small_clusters_draw_only_what_applies_to_them() {
        let one = Schedule::new(1, &ALL, &names(1), true, Timing::default());
        assert_eq!(one.kinds(), &[Kind::Pause, Kind::Kill, Kind::Clock]);
        // Two nodes: no majority is left to elect another leader once one is cut off.
        let two = Schedule::new(1, &ALL, &names(2), true, Timing::default());
        assert!(!two.kinds().contains(&Kind::Election));
        let three = Schedule::new(1, &ALL, &names(3), true, Timing::default());
        assert!(three.kinds().contains(&Kind::Election));
        // Three nodes: partitions, but never a (degenerate) ring.
        let mut three = Schedule::new(2, &[Kind::Partition], &names(3), true, Timing::default());
        for _ in 0..300 {
            if let Plan::Apply(Action::StartPartition(p)) = three.next_fault().plan {
                assert_ne!(p.topology, Topology::MajoritiesRing);
                assert!(!p.grudge.is_empty());
            }
        }
    }
}
