//! Scripted scenarios from the Raft paper, one claim per test, on a hand-driven cluster of
//! `RawNode`s: the test decides which messages arrive, so each scenario is exact.

use std::collections::BTreeMap;

use faultline_raftkv::raft::{
    Config, Entry, EntryKind, Message, MessageBody, NodeId, RawNode, ReadState, Role, Snapshot,
};
use faultline_raftkv::storage::{persist_ready, MemStorage, Storage, SyncMode};
use faultline_raftkv::{Bug, Bugs};

/// A cluster whose network is the test: messages wait in `in_flight` until delivered.
struct Cluster {
    nodes: BTreeMap<NodeId, Option<RawNode>>,
    storage: BTreeMap<NodeId, MemStorage>,
    applied: BTreeMap<NodeId, Vec<Entry>>,
    read_states: BTreeMap<NodeId, Vec<ReadState>>,
    aborted_reads: BTreeMap<NodeId, Vec<u64>>,
    in_flight: Vec<Message>,
    configs: BTreeMap<NodeId, Config>,
}

impl Cluster {
    fn new(size: u64, bugs: Bugs, tweak: impl Fn(&mut Config)) -> Cluster {
        let members: Vec<NodeId> = (1..=size).collect();
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            storage: BTreeMap::new(),
            applied: BTreeMap::new(),
            read_states: BTreeMap::new(),
            aborted_reads: BTreeMap::new(),
            in_flight: Vec::new(),
            configs: BTreeMap::new(),
        };
        for &id in &members {
            let mut config = Config::new(id, members.clone());
            config.bugs = bugs.clone();
            tweak(&mut config);
            cluster.nodes.insert(
                id,
                Some(RawNode::new(config.clone(), Default::default(), id)),
            );
            cluster.configs.insert(id, config);
            cluster.storage.insert(id, MemStorage::new(SyncMode::Fsync));
            cluster.applied.insert(id, Vec::new());
            cluster.read_states.insert(id, Vec::new());
            cluster.aborted_reads.insert(id, Vec::new());
        }
        cluster
    }

    /// Plain Raft as the paper describes it: no pre-vote, no check-quorum.
    fn paper(size: u64, bugs: Bugs) -> Cluster {
        Cluster::new(size, bugs, |c| {
            c.pre_vote = false;
            c.check_quorum = false;
        })
    }

    fn node(&mut self, id: NodeId) -> &mut RawNode {
        self.nodes
            .get_mut(&id)
            .unwrap()
            .as_mut()
            .expect("node running")
    }

    fn drive(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let Some(node) = self.nodes.get_mut(&id).unwrap().as_mut() else {
                continue;
            };
            while node.has_ready() {
                let ready = node.ready();
                persist_ready(self.storage.get_mut(&id).unwrap(), &ready).unwrap();
                self.in_flight.extend(ready.messages);
                self.applied
                    .get_mut(&id)
                    .unwrap()
                    .extend(ready.committed_entries);
                self.read_states
                    .get_mut(&id)
                    .unwrap()
                    .extend(ready.read_states);
                self.aborted_reads
                    .get_mut(&id)
                    .unwrap()
                    .extend(ready.aborted_reads);
                node.advance();
            }
        }
    }

    /// Delivers the in-flight messages `allow` accepts and holds the rest (they are only
    /// delayed); one round. Messages to a crashed node are lost.
    fn round(&mut self, allow: impl Fn(&Message) -> bool) -> usize {
        self.drive();
        let (deliver, hold): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|m| allow(m));
        self.in_flight = hold;
        let mut delivered = 0;
        for msg in deliver {
            if let Some(node) = self.nodes.get_mut(&msg.to).unwrap().as_mut() {
                node.step(msg);
                delivered += 1;
            }
        }
        self.drive();
        delivered
    }

    /// Rounds until no allowed message is left.
    fn settle(&mut self, allow: impl Fn(&Message) -> bool) {
        for _ in 0..1_000 {
            if self.round(&allow) == 0 {
                return;
            }
        }
        panic!("cluster did not settle");
    }

    /// Loses every message in flight.
    fn drop_in_flight(&mut self) {
        self.drive();
        self.in_flight.clear();
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes.insert(id, None);
        self.storage.get_mut(&id).unwrap().crash();
        self.applied.get_mut(&id).unwrap().clear();
    }

    fn restart(&mut self, id: NodeId) {
        let recovered = self.storage[&id].recover().unwrap();
        let node = RawNode::new(self.configs[&id].clone(), recovered, 100 + id);
        self.nodes.insert(id, Some(node));
        self.drive();
    }

    fn leaders(&self) -> Vec<(NodeId, u64)> {
        let running = self.nodes.values().flatten();
        running
            .filter(|n| n.is_leader())
            .map(|n| (n.id(), n.term()))
            .collect()
    }

    fn applied_at(&self, id: NodeId, index: u64) -> Option<&Entry> {
        self.applied[&id].iter().find(|e| e.index == index)
    }
}

fn all(_: &Message) -> bool {
    true
}

fn among(ids: &'static [NodeId]) -> impl Fn(&Message) -> bool {
    move |m| ids.contains(&m.from) && ids.contains(&m.to)
}

fn votes_among(ids: &'static [NodeId]) -> impl Fn(&Message) -> bool {
    move |m| {
        among(ids)(m)
            && matches!(
                m.body,
                MessageBody::RequestVote { .. } | MessageBody::RequestVoteResponse { .. }
            )
    }
}

fn command(data: &str) -> EntryKind {
    EntryKind::Command(data.as_bytes().to_vec())
}

/// Elects node 1 in a healthy cluster.
fn cluster_with_leader_1(size: u64) -> Cluster {
    let mut cluster = Cluster::paper(size, Bugs::none());
    cluster.node(1).campaign();
    cluster.settle(all);
    assert_eq!(cluster.leaders(), vec![(1, 1)]);
    cluster
}

#[test]
fn election_safety_at_most_one_leader_per_term() {
    // Three nodes campaign at once in term 1; each votes for itself, so at most one can win.
    let mut cluster = Cluster::paper(5, Bugs::none());
    for id in [1, 2, 3] {
        cluster.node(id).campaign();
    }
    cluster.settle(all);
    let leaders = cluster.leaders();
    assert!(leaders.len() <= 1, "leaders {leaders:?}");
    let terms: Vec<u64> = cluster
        .nodes
        .values()
        .flatten()
        .map(RawNode::term)
        .collect();
    assert!(terms.iter().all(|&t| t == 1));
}

#[test]
fn vote_survives_restart_so_a_node_votes_once_per_term() {
    let mut cluster = Cluster::paper(3, Bugs::none());
    cluster.node(1).campaign();
    cluster.node(3).campaign();
    // Node 2 hears node 1 first, then restarts before node 3's request arrives.
    cluster.round(|m| m.from == 1 && m.to == 2);
    cluster.crash(2);
    cluster.restart(2);
    cluster.settle(all);
    assert!(
        cluster.leaders().len() <= 1,
        "leaders {:?}",
        cluster.leaders()
    );
}

#[test]
fn forget_vote_bug_elects_two_leaders_in_one_term() {
    let mut cluster = Cluster::paper(3, Bugs::only(Bug::ForgetVote));
    cluster.node(1).campaign();
    cluster.node(3).campaign();
    cluster.round(|m| m.from == 1 && m.to == 2);
    cluster.crash(2);
    cluster.restart(2);
    cluster.settle(|m| m.to == 2 || m.from == 2);
    // Both candidates got node 2's vote in term 1.
    let leaders = cluster.leaders();
    assert_eq!(leaders.len(), 2, "leaders {leaders:?}");
    assert!(leaders.iter().all(|&(_, term)| term == 1));
}

#[test]
fn candidate_retries_request_vote_to_peers_that_did_not_answer() {
    // §5.1: servers retry RPCs that get no response. Node 2 answers node 1's request; the
    // requests to 3, 4 and 5 are lost. A heartbeat interval later node 1, still a candidate
    // in term 1, asks again exactly those that did not answer, and wins in term 1.
    let mut cluster = Cluster::paper(5, Bugs::none());
    cluster.node(1).campaign();
    cluster.round(|m| m.to == 2);
    cluster.round(|m| m.from == 2);
    cluster.drop_in_flight();
    assert_eq!(cluster.node(1).role(), Role::Candidate);
    let heartbeat_ticks = cluster.configs[&1].heartbeat_ticks;
    for _ in 0..heartbeat_ticks {
        cluster.node(1).tick();
    }
    cluster.drive();
    let asked: Vec<NodeId> = cluster
        .in_flight
        .iter()
        .filter(|m| matches!(m.body, MessageBody::RequestVote { .. }))
        .map(|m| {
            assert_eq!(m.term, 1, "a retry, not a new election");
            m.to
        })
        .collect();
    assert_eq!(asked, vec![3, 4, 5]);
    cluster.settle(all);
    assert_eq!(cluster.leaders(), vec![(1, 1)]);
}

#[test]
fn election_restriction_candidate_with_stale_log_is_not_elected() {
    let mut cluster = cluster_with_leader_1(3);
    cluster.node(1).propose(b"x".to_vec()).unwrap();
    // Only node 2 receives entry 2; node 3 misses it.
    cluster.settle(among(&[1, 2]));
    cluster.drop_in_flight();
    cluster.crash(1);
    cluster.node(3).campaign();
    cluster.settle(all);
    assert!(
        cluster.leaders().is_empty(),
        "node 3's log is behind node 2's: §5.4.1"
    );
    cluster.node(2).campaign();
    cluster.settle(all);
    assert_eq!(cluster.leaders()[0].0, 2);
}

#[test]
fn leader_append_only_stale_append_from_old_leader_is_rejected() {
    let mut cluster = cluster_with_leader_1(3);
    cluster.node(1).propose(b"a".to_vec()).unwrap();
    cluster.settle(all);
    cluster.node(2).campaign();
    cluster.settle(among(&[2, 3]));
    assert!(cluster.node(2).is_leader());
    let before = cluster.node(2).log().last_index();
    // Node 1, still leader of term 1 in its own view, sends node 2 a conflicting suffix.
    let stale = Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::AppendEntries {
            prev_log_index: 1,
            prev_log_term: 1,
            entries: vec![Entry {
                index: 2,
                term: 1,
                kind: command("stale"),
            }],
            leader_commit: 0,
            heartbeat_seq: 0,
        },
    };
    cluster.node(2).step(stale);
    cluster.drive();
    assert!(cluster.node(2).is_leader());
    assert_eq!(
        cluster.node(2).log().last_index(),
        before,
        "a leader never overwrites or deletes its entries"
    );
    // The reply tells node 1 about term 2, and it steps down.
    cluster.settle(all);
    assert_eq!(cluster.leaders(), vec![(2, 2)]);
}

#[test]
fn log_matching_follower_conflicting_suffix_is_replaced() {
    let mut cluster = cluster_with_leader_1(3);
    // Node 1 appends three entries that only it has, then loses leadership to node 2.
    for data in ["a", "b", "c"] {
        cluster.node(1).propose(data.as_bytes().to_vec()).unwrap();
    }
    cluster.drive();
    cluster.in_flight.clear();
    cluster.node(2).campaign();
    cluster.settle(among(&[2, 3]));
    cluster.node(2).propose(b"d".to_vec()).unwrap();
    cluster.settle(all);
    let logs: Vec<Vec<(u64, u64)>> = [1, 2, 3]
        .iter()
        .map(|&id| {
            let log = cluster.node(id).log().clone();
            log.slice(1, log.last_index())
                .iter()
                .map(|e| (e.index, e.term))
                .collect()
        })
        .collect();
    assert_eq!(logs[0], logs[1]);
    assert_eq!(logs[1], logs[2]);
    assert!(
        logs[0].iter().all(|&(index, term)| index == 1 || term == 2),
        "node 1's term-1 suffix is gone"
    );
}

#[test]
fn fast_back_off_skips_a_whole_conflicting_term_per_round_trip() {
    let mut cluster = Cluster::new(3, Bugs::none(), |c| {
        c.pre_vote = false;
        c.check_quorum = false;
        c.max_entries_per_message = 100;
    });
    cluster.node(1).campaign();
    cluster.settle(all);
    // Node 1 writes 30 entries only it stores; node 2 then leads term 2 and writes its own.
    for i in 0..30 {
        cluster
            .node(1)
            .propose(format!("old{i}").into_bytes())
            .unwrap();
    }
    cluster.drive();
    cluster.in_flight.clear();
    cluster.node(2).campaign();
    cluster.settle(among(&[2, 3]));
    cluster.node(2).propose(b"new".to_vec()).unwrap();
    cluster.settle(among(&[2, 3]));
    // Reconnect node 1 and count leader -> node 1 round trips until its log matches.
    let mut round_trips = 0;
    while cluster.node(1).log().last_term() != 2 {
        cluster.round(|m| m.from == 2 && m.to == 1);
        cluster.round(|m| m.from == 1 && m.to == 2);
        round_trips += 1;
        assert!(round_trips < 10, "no progress");
    }
    assert!(
        round_trips <= 3,
        "took {round_trips} round trips; one per entry would be ~30"
    );
}

#[test]
fn figure8_entry_from_old_term_not_committed_by_counting() {
    let outcome = figure8(Bugs::none());
    assert_eq!(
        outcome.commit_after_counting, 1,
        "index 2 (term 1) is on a majority but not committed"
    );
    assert!(outcome.node1_applied_2.is_none());
    // Node 5 later overwrites index 2, which is safe: nobody applied it.
    assert_eq!(outcome.node5_applied_2.map(|e| e.term), Some(2));
}

#[test]
fn old_term_commit_bug_commits_by_counting_and_breaks_state_machine_safety() {
    let outcome = figure8(Bugs::only(Bug::OldTermCommit));
    assert_eq!(outcome.commit_after_counting, 2);
    let applied_by_1 = outcome.node1_applied_2.expect("node 1 applied index 2");
    let applied_by_5 = outcome.node5_applied_2.expect("node 5 applied index 2");
    assert_ne!(
        applied_by_1, applied_by_5,
        "two nodes applied different entries at index 2"
    );
}

struct Figure8 {
    commit_after_counting: u64,
    node1_applied_2: Option<Entry>,
    node5_applied_2: Option<Entry>,
}

/// Figure 8 of the paper, with a no-op on election and one entry per message so that the
/// old-term entry can reach a majority before the new leader's no-op does.
fn figure8(bugs: Bugs) -> Figure8 {
    let mut cluster = Cluster::new(5, bugs, |c| {
        c.pre_vote = false;
        c.check_quorum = false;
        c.max_entries_per_message = 1;
    });
    // (a) S1 leads term 1 and replicates its no-op at index 1 everywhere.
    cluster.node(1).campaign();
    cluster.settle(all);
    // S1 writes index 2 (term 1), which reaches S2 only.
    cluster.node(1).propose(b"X".to_vec()).unwrap();
    cluster.settle(among(&[1, 2]));
    cluster.drop_in_flight();
    // (b) S1 crashes. S5 leads term 2 with votes from S3, S4; its no-op at index 2 reaches
    // no one, and S5 crashes too.
    cluster.crash(1);
    cluster.restart(1);
    cluster.node(5).campaign();
    cluster.settle(votes_among(&[3, 4, 5]));
    assert_eq!(cluster.leaders(), vec![(5, 2)]);
    cluster.drop_in_flight();
    cluster.crash(5);
    cluster.restart(5);
    // (c) S1 leads term 3 (after a lost campaign in term 2) with votes from S2, S3, S4.
    cluster.node(1).campaign();
    cluster.drop_in_flight();
    cluster.node(1).campaign();
    cluster.settle(votes_among(&[1, 2, 3, 4]));
    assert_eq!(cluster.leaders(), vec![(1, 3)]);
    // S1 replicates index 2 (term 1) to S3 and S4, one entry per message. S1, S2, S3, S4
    // now hold it — a majority — while S1's no-op at index 3 has reached no one.
    cluster.in_flight.retain(|m| m.to == 3 || m.to == 4);
    let s1_to_s3_s4 = |m: &Message| m.from == 1 && (m.to == 3 || m.to == 4);
    let s3_s4_to_s1 = |m: &Message| m.to == 1 && (m.from == 3 || m.from == 4);
    cluster.round(s1_to_s3_s4); // prev 2: too short, rejected
    cluster.round(s3_s4_to_s1); // back off to index 2
    cluster.round(s1_to_s3_s4); // index 2 (term 1)
    cluster.round(s3_s4_to_s1); // acknowledged
    let commit_after_counting = cluster.node(1).log().committed();
    let node1_applied_2 = cluster.applied_at(1, 2).cloned();
    // (d) S1 crashes; S5 leads term 4 with votes from S2, S3, S4 (its last term, 2, beats
    // their 1) and replicates its own index 2 over the old one.
    cluster.crash(1);
    cluster.drop_in_flight();
    for _ in 0..2 {
        cluster.node(5).campaign();
        cluster.settle(votes_among(&[2, 3, 4, 5]));
    }
    assert_eq!(cluster.leaders(), vec![(5, 4)]);
    cluster.settle(among(&[2, 3, 4, 5]));
    let node5_applied_2 = cluster.applied_at(5, 2).cloned();
    Figure8 {
        commit_after_counting,
        node1_applied_2,
        node5_applied_2,
    }
}

#[test]
fn new_leader_commits_prior_entries_through_its_noop() {
    let mut cluster = cluster_with_leader_1(3);
    cluster.node(1).propose(b"x".to_vec()).unwrap();
    cluster.settle(among(&[1, 2]));
    cluster.drop_in_flight();
    cluster.crash(1);
    cluster.node(2).campaign();
    cluster.settle(all);
    let applied: Vec<(u64, u64, EntryKind)> = cluster.applied[&3]
        .iter()
        .map(|e| (e.index, e.term, e.kind.clone()))
        .collect();
    assert_eq!(
        applied,
        vec![
            (1, 1, EntryKind::Noop),
            (2, 1, command("x")),
            (3, 2, EntryKind::Noop)
        ]
    );
}

#[test]
fn read_index_answers_only_after_a_heartbeat_quorum() {
    let mut cluster = cluster_with_leader_1(3);
    cluster.node(1).read_index(7).unwrap();
    cluster.drop_in_flight(); // partitioned: the heartbeat round is lost
    assert!(
        cluster.read_states[&1].is_empty(),
        "no quorum confirmed leadership yet"
    );
    // The partition heals; the next heartbeat round, sent after the read, confirms it.
    for _ in 0..2 {
        cluster.node(1).tick();
    }
    cluster.settle(all);
    assert_eq!(
        cluster.read_states[&1],
        vec![ReadState {
            context: 7,
            index: 1
        }]
    );
    assert!(
        cluster.node(2).read_index(8).is_err(),
        "followers redirect reads"
    );
}

#[test]
fn read_index_waits_for_an_entry_of_the_leaders_term() {
    let mut cluster = cluster_with_leader_1(3);
    cluster.node(1).propose(b"x".to_vec()).unwrap();
    cluster.settle(among(&[1, 2]));
    cluster.drop_in_flight();
    cluster.crash(1);
    cluster.node(2).campaign();
    cluster.settle(votes_among(&[2, 3]));
    assert!(cluster.node(2).is_leader());
    // Node 2 does not yet know index 2 is committed; the read must wait for its no-op.
    cluster.node(2).read_index(9).unwrap();
    cluster.drive();
    assert!(cluster.read_states[&2].is_empty());
    cluster.settle(among(&[2, 3]));
    assert_eq!(
        cluster.read_states[&2],
        vec![ReadState {
            context: 9,
            index: 3
        }]
    );
}

#[test]
fn deposed_leader_aborts_pending_reads() {
    let mut cluster = cluster_with_leader_1(3);
    cluster.node(1).read_index(5).unwrap();
    cluster.in_flight.clear();
    cluster.node(2).campaign();
    cluster.settle(among(&[2, 3]));
    // Node 1 hears of term 2 and gives the read up rather than answering it.
    cluster.settle(all);
    assert!(cluster.read_states[&1].is_empty());
    assert_eq!(cluster.aborted_reads[&1], vec![5]);
    assert!(!cluster.node(1).is_leader());
}

#[test]
fn lagging_follower_catches_up_via_install_snapshot() {
    let mut cluster = cluster_with_leader_1(3);
    for i in 0..20 {
        cluster
            .node(1)
            .propose(format!("v{i}").into_bytes())
            .unwrap();
    }
    cluster.settle(among(&[1, 2]));
    cluster.drop_in_flight();
    let applied = cluster.node(1).log().applied();
    assert_eq!(applied, 21);
    let snapshot = cluster.node(1).compact(applied, b"state at 21".to_vec());
    cluster
        .storage
        .get_mut(&1)
        .unwrap()
        .compact(&snapshot)
        .unwrap();
    assert_eq!(cluster.node(1).log().first_index(), 22);
    // Node 3 rejoins: the entries it lacks are gone, so it gets the snapshot.
    cluster.node(1).propose(b"after".to_vec()).unwrap();
    cluster.settle(all);
    let node3 = cluster.node(3);
    assert_eq!(
        node3.log().snapshot(),
        &Snapshot {
            index: 21,
            term: 1,
            data: b"state at 21".to_vec()
        }
    );
    assert_eq!(node3.log().committed(), 22);
    assert_eq!(
        cluster.applied_at(3, 22).map(|e| e.kind.clone()),
        Some(command("after"))
    );
    assert_eq!(
        cluster.storage[&3].recover().unwrap().snapshot.index,
        21,
        "the snapshot was persisted"
    );
}

#[test]
fn pre_vote_keeps_a_rejoining_partitioned_node_from_raising_the_term() {
    let mut cluster = Cluster::new(3, Bugs::none(), |c| c.check_quorum = true);
    cluster.node(1).campaign();
    cluster.settle(all);
    assert_eq!(cluster.leaders(), vec![(1, 1)]);
    // Node 3 is cut off and times out many times; without pre-vote its term would climb.
    for _ in 0..100 {
        cluster.node(3).tick();
        cluster.drive();
        cluster.in_flight.retain(|m| m.from != 3 && m.to != 3);
        for id in [1, 2] {
            cluster.node(id).tick();
        }
        cluster.settle(among(&[1, 2]));
    }
    assert_eq!(cluster.node(3).term(), 1);
    cluster.node(3).tick();
    cluster.settle(all);
    assert_eq!(
        cluster.leaders(),
        vec![(1, 1)],
        "the leader was not disrupted"
    );
}

#[test]
fn duplicated_and_reordered_appends_do_not_truncate_the_log() {
    let mut cluster = cluster_with_leader_1(3);
    cluster.node(1).propose(b"a".to_vec()).unwrap();
    cluster.drive();
    let first: Vec<Message> = cluster
        .in_flight
        .iter()
        .filter(|m| m.to == 2)
        .cloned()
        .collect();
    cluster.settle(all);
    cluster.node(1).propose(b"b".to_vec()).unwrap();
    cluster.settle(all);
    assert_eq!(cluster.node(2).log().last_index(), 3);
    // The old message for index 2 arrives again, late: index 3 must survive.
    for msg in first {
        cluster.node(2).step(msg);
    }
    cluster.drive();
    assert_eq!(cluster.node(2).log().last_index(), 3);
}

#[test]
fn restart_recovers_term_vote_log_and_reapplies_committed_entries() {
    let mut cluster = cluster_with_leader_1(3);
    cluster.node(1).propose(b"a".to_vec()).unwrap();
    cluster.settle(all);
    let (term, vote, last) = {
        let n = cluster.node(2);
        (n.term(), n.vote(), n.log().last_index())
    };
    cluster.crash(2);
    cluster.restart(2);
    let n = cluster.node(2);
    assert_eq!(
        (n.term(), n.vote(), n.log().last_index()),
        (term, vote, last)
    );
    assert_eq!(n.role(), Role::Follower);
    let reapplied: Vec<u64> = cluster.applied[&2].iter().map(|e| e.index).collect();
    assert_eq!(
        reapplied,
        vec![1, 2],
        "the committed prefix is applied again after restart"
    );
}

#[test]
fn granted_vote_is_persisted_in_the_ready_that_sends_it() {
    let mut voter = RawNode::new(Config::new(2, vec![1, 2, 3]), Default::default(), 2);
    let request = Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::RequestVote {
            last_log_index: 0,
            last_log_term: 0,
        },
    };
    voter.step(request.clone());
    let ready = voter.ready();
    let granted = MessageBody::RequestVoteResponse { granted: true };
    assert!(ready.messages.iter().any(|m| m.body == granted));
    // Persisted before the response is sent (Figure 2: "before responding to RPCs").
    assert_eq!(
        ready.hard_state.map(|h| (h.term, h.vote)),
        Some((1, Some(1)))
    );
    voter.advance();

    let mut config = Config::new(2, vec![1, 2, 3]);
    config.bugs = Bugs::only(Bug::ForgetVote);
    let mut forgetful = RawNode::new(config, Default::default(), 2);
    forgetful.step(request);
    let ready = forgetful.ready();
    assert_eq!(
        ready.hard_state.map(|h| h.vote),
        Some(None),
        "the bug drops the vote"
    );
}

#[test]
#[should_panic(expected = "advance() must follow ready()")]
fn stepping_before_advance_is_a_driver_bug() {
    let mut node = RawNode::new(Config::new(1, vec![1, 2, 3]), Default::default(), 1);
    node.campaign();
    let _ready = node.ready();
    node.tick();
}
