//! [`RawNode`]: one Raft server as a state machine over events.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{
    Config, Entry, EntryKind, HardState, Message, MessageBody, NodeId, NotLeader, RaftLog,
    ReadState, Ready, Recovered, Role, Snapshot,
};
use crate::bug::Bug;

/// What the leader knows of one follower (Figure 2's nextIndex / matchIndex, plus liveness).
#[derive(Clone, Debug)]
struct Progress {
    match_index: u64,
    next_index: u64,
    /// Heard from since the last check-quorum round.
    recent_active: bool,
    /// Highest heartbeat sequence number the follower echoed in this term.
    acked_seq: u64,
    /// The leader's tick at which the follower last answered (the lease-read bug uses it).
    last_ack_tick: Option<u64>,
}

/// A ReadIndex request waiting for a quorum to acknowledge heartbeat `seq` or later.
#[derive(Clone, Copy, Debug)]
struct PendingRead {
    context: u64,
    index: u64,
    seq: u64,
}

/// One Raft server, sans-IO. See the [module docs](super) for how a driver runs it.
///
/// # Correctness
/// The driver must handle every [`Ready`] fully (persist, send, apply) and call
/// [`RawNode::advance`] before the next event; the node asserts this.
#[derive(Debug)]
pub struct RawNode {
    config: Config,
    rng: SmallRng,
    term: u64,
    vote: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,
    /// The node's own clock, in ticks since it started.
    ticks: u64,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_election_ticks: u32,
    votes: BTreeMap<NodeId, bool>,
    progress: BTreeMap<NodeId, Progress>,
    heartbeat_seq: u64,
    reads_waiting_for_term_commit: Vec<u64>,
    pending_reads: Vec<PendingRead>,
    read_states: Vec<ReadState>,
    aborted_reads: Vec<u64>,
    messages: Vec<Message>,
    /// The hard state last handed out to persist, as this node sees it.
    handed_out_hard_state: HardState,
    pending_snapshot: Option<Snapshot>,
    /// Set by `ready`, cleared by `advance`: the last index that `Ready` persists.
    awaiting_advance: Option<u64>,
    violations: Vec<String>,
}

impl RawNode {
    /// Starts a node from what storage recovered (`Recovered::default()` for a new node).
    /// `seed` drives the node's randomized election timeouts and nothing else.
    pub fn new(config: Config, recovered: Recovered, seed: u64) -> RawNode {
        config.validate();
        let Recovered {
            hard_state,
            snapshot,
            entries,
        } = recovered;
        let log = RaftLog::recovered(snapshot, entries, hard_state.commit);
        let mut node = RawNode {
            config,
            rng: SmallRng::seed_from_u64(seed),
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            ticks: 0,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_ticks: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            heartbeat_seq: 0,
            reads_waiting_for_term_commit: Vec::new(),
            pending_reads: Vec::new(),
            read_states: Vec::new(),
            aborted_reads: Vec::new(),
            messages: Vec::new(),
            handed_out_hard_state: hard_state,
            pending_snapshot: None,
            awaiting_advance: None,
            violations: Vec::new(),
        };
        node.handed_out_hard_state.commit = node.log.committed();
        node.reset_election_timer();
        node
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The leader this node follows in its current term, if it knows one.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Invariants a bug switch broke. Without bugs these are assertions and the node panics
    /// instead; with a safety-breaking bug on, they are recorded here so that a test can
    /// report the seed rather than crash.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    fn quorum(&self) -> usize {
        self.config.members.len() / 2 + 1
    }

    fn peers(&self) -> Vec<NodeId> {
        self.config
            .members
            .iter()
            .copied()
            .filter(|&m| m != self.config.id)
            .collect()
    }

    fn assert_advanced(&self) {
        assert!(
            self.awaiting_advance.is_none(),
            "advance() must follow ready() before the next event"
        );
    }

    fn invariant_broken(&mut self, what: String) {
        let bugs = &self.config.bugs;
        let may_break = [Bug::NoFsync, Bug::ForgetVote, Bug::OldTermCommit]
            .iter()
            .any(|&b| bugs.contains(b));
        assert!(may_break, "node {}: {what}", self.config.id);
        self.violations.push(what);
    }

    fn send(&mut self, to: NodeId, term: u64, body: MessageBody) {
        self.messages.push(Message {
            from: self.config.id,
            to,
            term,
            body,
        });
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let base = self.config.election_ticks;
        self.randomized_election_ticks = self.rng.gen_range(base..2 * base);
    }

    // ----- events -----

    /// Advances the node's clock by one tick: heartbeats on a leader, elections elsewhere.
    pub fn tick(&mut self) {
        self.assert_advanced();
        self.ticks += 1;
        if self.role == Role::Leader {
            self.heartbeat_elapsed += 1;
            self.election_elapsed += 1;
            if self.config.check_quorum && self.election_elapsed >= self.config.election_ticks {
                self.election_elapsed = 0;
                let active = 1 + self.progress.values().filter(|p| p.recent_active).count();
                self.progress
                    .values_mut()
                    .for_each(|p| p.recent_active = false);
                if active < self.quorum() {
                    // A leader cut off from a quorum steps down, so clients go elsewhere.
                    self.become_follower(self.term, None);
                    return;
                }
            }
            if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
                self.heartbeat_elapsed = 0;
                self.heartbeat_seq += 1;
                self.broadcast_append();
            }
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.randomized_election_ticks {
                self.campaign();
            } else if self.role == Role::Candidate {
                self.heartbeat_elapsed += 1;
                if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
                    self.heartbeat_elapsed = 0;
                    self.retry_vote_requests();
                }
            }
        }
    }

    /// Starts an election now (on timeout; tests call it to script scenarios).
    pub fn campaign(&mut self) {
        self.assert_advanced();
        match self.role {
            Role::Leader => {}
            _ if self.config.pre_vote => self.become_pre_candidate(),
            _ => self.become_candidate(),
        }
    }

    /// Appends a command if this node is the leader. Returns its (index, term): the command
    /// is committed at that index only if the entry applied there has that term.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(u64, u64), NotLeader> {
        self.assert_advanced();
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader,
            });
        }
        let index = self.log.last_index() + 1;
        self.log.append(Entry {
            index,
            term: self.term,
            kind: EntryKind::Command(data),
        });
        self.broadcast_append();
        Ok((index, self.term))
    }

    /// Requests a linearizable read (ReadIndex, thesis §6.4). Its answer is a [`ReadState`]
    /// with this `context` in a later `Ready`, or the context in [`Ready::aborted_reads`].
    pub fn read_index(&mut self, context: u64) -> Result<(), NotLeader> {
        self.assert_advanced();
        if self.config.bugs.contains(Bug::StaleRead) {
            // Bug: answer from whatever this node has applied, leader or not.
            self.read_states.push(ReadState {
                context,
                index: self.log.applied(),
            });
            return Ok(());
        }
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader,
            });
        }
        if self.config.bugs.contains(Bug::LeaseRead) && self.lease_valid() {
            // Bug: trust the lease (counted on this node's own clock) instead of a heartbeat
            // round, and do not wait for an entry of this term to commit.
            self.read_states.push(ReadState {
                context,
                index: self.log.applied(),
            });
            return Ok(());
        }
        if !self.committed_in_current_term() {
            // A new leader does not know the latest commit index until it commits an entry
            // of its own term (its no-op).
            self.reads_waiting_for_term_commit.push(context);
            return Ok(());
        }
        self.start_read_round(vec![context]);
        Ok(())
    }

    /// Handles a message from another server.
    pub fn step(&mut self, msg: Message) {
        self.assert_advanced();
        assert_eq!(
            msg.to, self.config.id,
            "message delivered to the wrong node"
        );
        assert!(
            msg.from != self.config.id && self.config.members.contains(&msg.from),
            "unknown sender"
        );
        if msg.term > self.term {
            match &msg.body {
                // A pre-vote never disturbs the receiver's term, and a granted pre-vote
                // echoes the term the pre-candidate would campaign in.
                MessageBody::PreVote { .. } | MessageBody::PreVoteResponse { granted: true } => {}
                MessageBody::AppendEntries { .. } | MessageBody::InstallSnapshot { .. } => {
                    self.become_follower(msg.term, Some(msg.from))
                }
                _ => self.become_follower(msg.term, None),
            }
        } else if msg.term < self.term {
            match msg.body {
                // Tell a stale leader or pre-candidate about the newer term.
                MessageBody::AppendEntries { .. } | MessageBody::InstallSnapshot { .. } => {
                    let body = MessageBody::AppendEntriesResponse {
                        success: false,
                        match_index: 0,
                        rejected_prev_index: 0,
                        conflict_index: 0,
                        conflict_term: None,
                        heartbeat_seq: 0,
                    };
                    self.send(msg.from, self.term, body);
                }
                MessageBody::PreVote { .. } => self.send(
                    msg.from,
                    self.term,
                    MessageBody::PreVoteResponse { granted: false },
                ),
                _ => {}
            }
            return;
        }
        let from = msg.from;
        match msg.body {
            MessageBody::PreVote {
                last_log_index,
                last_log_term,
            } => {
                // Leader stickiness: a node that heard from a leader within the minimum
                // election timeout does not help anyone start an election.
                let in_lease =
                    self.leader.is_some() && self.election_elapsed < self.config.election_ticks;
                let granted = msg.term > self.term
                    && self.role != Role::Leader
                    && !in_lease
                    && self.log.is_up_to_date(last_log_index, last_log_term);
                let term = if granted { msg.term } else { self.term };
                self.send(from, term, MessageBody::PreVoteResponse { granted });
            }
            MessageBody::PreVoteResponse { granted } => {
                if self.role == Role::PreCandidate && msg.term == self.term + 1 {
                    self.votes.insert(from, granted);
                    self.count_votes();
                }
            }
            MessageBody::RequestVote {
                last_log_index,
                last_log_term,
            } => {
                let can_vote = self.vote.is_none() || self.vote == Some(from);
                let granted = can_vote && self.log.is_up_to_date(last_log_index, last_log_term);
                if granted {
                    self.vote = Some(from);
                    self.reset_election_timer();
                }
                self.send(
                    from,
                    self.term,
                    MessageBody::RequestVoteResponse { granted },
                );
            }
            MessageBody::RequestVoteResponse { granted } => {
                if self.role == Role::Candidate {
                    self.votes.insert(from, granted);
                    self.count_votes();
                }
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                heartbeat_seq,
            } => {
                if !self.accept_leader(from) {
                    return;
                }
                self.handle_append(
                    from,
                    prev_log_index,
                    prev_log_term,
                    entries,
                    leader_commit,
                    heartbeat_seq,
                );
            }
            MessageBody::InstallSnapshot {
                snapshot,
                heartbeat_seq,
            } => {
                if !self.accept_leader(from) {
                    return;
                }
                self.handle_snapshot(from, snapshot, heartbeat_seq);
            }
            MessageBody::AppendEntriesResponse {
                success,
                match_index,
                rejected_prev_index,
                conflict_index,
                conflict_term,
                heartbeat_seq,
            } => {
                if self.role == Role::Leader {
                    self.handle_append_response(
                        from,
                        success,
                        match_index,
                        rejected_prev_index,
                        conflict_index,
                        conflict_term,
                        heartbeat_seq,
                    );
                }
            }
        }
    }

    // ----- output -----

    /// Whether [`RawNode::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        self.pending_snapshot.is_some()
            || self.log.stable() < self.log.last_index()
            || self.current_hard_state() != self.handed_out_hard_state
            || !self.messages.is_empty()
            || self.log.applied() < self.log.committed()
            || !self.read_states.is_empty()
            || !self.aborted_reads.is_empty()
    }

    /// Hands out what the driver must persist, send and apply. Call [`RawNode::advance`] once
    /// it is done.
    pub fn ready(&mut self) -> Ready {
        self.assert_advanced();
        let snapshot = self.pending_snapshot.take();
        let entries = self.log.take_unstable();
        let hard_state = self.current_hard_state();
        let hard_state = (hard_state != self.handed_out_hard_state).then(|| {
            self.handed_out_hard_state = hard_state;
            if self.config.bugs.contains(Bug::ForgetVote) {
                // Bug: the vote never reaches disk, so a restarted node may vote again.
                HardState {
                    vote: None,
                    ..hard_state
                }
            } else {
                hard_state
            }
        });
        let persisted_to = entries
            .last()
            .map(|e| e.index)
            .or(snapshot.as_ref().map(|s| s.index));
        self.awaiting_advance = Some(persisted_to.unwrap_or(0));
        Ready {
            snapshot,
            entries,
            hard_state,
            messages: std::mem::take(&mut self.messages),
            committed_entries: self.log.take_committed(),
            read_states: std::mem::take(&mut self.read_states),
            aborted_reads: std::mem::take(&mut self.aborted_reads),
        }
    }

    /// Tells the node the last `Ready` was handled: its entries are durable.
    pub fn advance(&mut self) {
        let persisted_to = self
            .awaiting_advance
            .take()
            .expect("advance() without ready()");
        self.log.mark_stable(persisted_to);
        if self.role == Role::Leader {
            // The leader counts itself only for what it has persisted.
            self.maybe_commit();
        }
    }

    /// Compacts the log up to `index` (already applied) behind `data`, the state machine's
    /// snapshot at that index. The driver persists the same snapshot.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Snapshot {
        self.log.compact(index, data);
        self.log.snapshot().clone()
    }

    fn current_hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed(),
        }
    }

    // ----- roles -----

    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        assert!(term >= self.term, "terms only grow");
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.progress.clear();
        self.reset_election_timer();
        self.abort_reads();
    }

    fn become_pre_candidate(&mut self) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes = BTreeMap::from([(self.config.id, true)]);
        self.reset_election_timer();
        self.abort_reads();
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for peer in self.peers() {
            self.send(
                peer,
                self.term + 1,
                MessageBody::PreVote {
                    last_log_index,
                    last_log_term,
                },
            );
        }
        self.count_votes();
    }

    fn become_candidate(&mut self) {
        self.term += 1;
        self.vote = Some(self.config.id);
        self.role = Role::Candidate;
        self.leader = None;
        self.votes = BTreeMap::from([(self.config.id, true)]);
        self.reset_election_timer();
        self.heartbeat_elapsed = 0;
        self.abort_reads();
        self.request_votes(self.peers());
        self.count_votes();
    }

    /// Sends RequestVote for the current term to `peers`.
    fn request_votes(&mut self, peers: Vec<NodeId>) {
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for peer in peers {
            self.send(
                peer,
                self.term,
                MessageBody::RequestVote {
                    last_log_index,
                    last_log_term,
                },
            );
        }
    }

    /// A candidate asks again, every heartbeat interval, the peers that have not answered its
    /// RequestVote: the paper's servers retry RPCs that get no response (§5.1). A request can
    /// be lost with a connection (a peer that crashed and restarted, a link that was cut and
    /// came back), and without a retry the election would wait for the next timeout. A peer
    /// that answered, granting or not, is not asked again in this term.
    fn retry_vote_requests(&mut self) {
        let silent: Vec<NodeId> = self
            .peers()
            .into_iter()
            .filter(|peer| !self.votes.contains_key(peer))
            .collect();
        self.request_votes(silent);
    }

    fn become_leader(&mut self) {
        assert_eq!(self.role, Role::Candidate);
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        let next_index = self.log.last_index() + 1;
        self.progress = self
            .peers()
            .into_iter()
            .map(|peer| {
                let progress = Progress {
                    match_index: 0,
                    next_index,
                    recent_active: true,
                    acked_seq: 0,
                    last_ack_tick: None,
                };
                (peer, progress)
            })
            .collect();
        // §5.4.2 and §8: a no-op of the new term lets the leader commit everything before it.
        self.log.append(Entry {
            index: next_index,
            term: self.term,
            kind: EntryKind::Noop,
        });
        self.heartbeat_seq += 1;
        self.broadcast_append();
    }

    fn count_votes(&mut self) {
        let granted = self.votes.values().filter(|&&g| g).count();
        let rejected = self.votes.values().filter(|&&g| !g).count();
        if granted >= self.quorum() {
            match self.role {
                Role::PreCandidate => self.become_candidate(),
                Role::Candidate => self.become_leader(),
                _ => unreachable!("only candidates count votes"),
            }
        } else if rejected >= self.quorum() {
            self.become_follower(self.term, None);
        }
    }

    /// A message from the leader of our term. Returns false if we are that term's leader too.
    fn accept_leader(&mut self, from: NodeId) -> bool {
        if self.role == Role::Leader {
            self.invariant_broken(format!(
                "two leaders in term {}: {} and {from}",
                self.term, self.config.id
            ));
            return false;
        }
        if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(self.term, Some(from));
        }
        self.election_elapsed = 0;
        true
    }

    fn abort_reads(&mut self) {
        self.aborted_reads
            .append(&mut self.reads_waiting_for_term_commit);
        self.aborted_reads
            .extend(self.pending_reads.drain(..).map(|r| r.context));
    }

    // ----- replication, follower side -----

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Entry>,
        leader_commit: u64,
        heartbeat_seq: u64,
    ) {
        let committed = self.log.committed();
        let reply = |success, match_index, conflict_index, conflict_term| {
            MessageBody::AppendEntriesResponse {
                success,
                match_index,
                rejected_prev_index: prev_log_index,
                conflict_index,
                conflict_term,
                heartbeat_seq,
            }
        };
        if prev_log_index < committed {
            // Everything up to our commit index matches the leader (Leader Completeness), so
            // this is an old or duplicated message: tell the leader where we are.
            self.send(from, self.term, reply(true, committed, 0, None));
            return;
        }
        match self.log.term(prev_log_index) {
            None => {
                // Our log is too short: the leader can back off straight to our end.
                let body = reply(false, 0, self.log.last_index() + 1, None);
                self.send(from, self.term, body);
            }
            Some(term) if term != prev_log_term => {
                // Skip the whole conflicting term at once (§5.3's optimization).
                let first = self.log.first_index_of_term(prev_log_index, committed + 1);
                self.send(from, self.term, reply(false, 0, first, Some(term)));
            }
            Some(_) => {
                let last_new = prev_log_index + entries.len() as u64;
                for entry in entries {
                    match self.log.term(entry.index) {
                        // Already have it: a duplicated or reordered message must not
                        // truncate entries that followed it.
                        Some(term) if term == entry.term => continue,
                        Some(_) => {
                            assert!(
                                entry.index > self.log.committed(),
                                "committed entries never conflict"
                            );
                            self.log.truncate_from(entry.index);
                            self.log.append(entry);
                        }
                        None => self.log.append(entry),
                    }
                }
                self.log.commit_to(leader_commit.min(last_new));
                self.send(from, self.term, reply(true, last_new, 0, None));
            }
        }
    }

    fn handle_snapshot(&mut self, from: NodeId, snapshot: Snapshot, heartbeat_seq: u64) {
        let match_index = if snapshot.index <= self.log.committed() {
            self.log.committed()
        } else if self.log.term(snapshot.index) == Some(snapshot.term) {
            // Our log already contains the snapshot's last entry, hence everything before.
            self.log.commit_to(snapshot.index);
            snapshot.index
        } else {
            let index = snapshot.index;
            self.log.restore(snapshot.clone());
            self.pending_snapshot = Some(snapshot);
            index
        };
        let body = MessageBody::AppendEntriesResponse {
            success: true,
            match_index,
            rejected_prev_index: 0,
            conflict_index: 0,
            conflict_term: None,
            heartbeat_seq,
        };
        self.send(from, self.term, body);
    }

    // ----- replication, leader side -----

    fn broadcast_append(&mut self) {
        for peer in self.peers() {
            self.send_append(peer);
        }
    }

    fn send_append(&mut self, to: NodeId) {
        let progress = &self.progress[&to];
        let prev_log_index = progress.next_index - 1;
        assert!(
            prev_log_index <= self.log.last_index(),
            "next_index past the leader's log"
        );
        let body = match self.log.term(prev_log_index) {
            Some(prev_log_term) => {
                let last = self
                    .log
                    .last_index()
                    .min(prev_log_index + self.config.max_entries_per_message as u64);
                MessageBody::AppendEntries {
                    prev_log_index,
                    prev_log_term,
                    entries: self.log.slice(prev_log_index + 1, last).to_vec(),
                    leader_commit: self.log.committed(),
                    heartbeat_seq: self.heartbeat_seq,
                }
            }
            // The entries the follower needs are compacted: send the snapshot (§7).
            None => MessageBody::InstallSnapshot {
                snapshot: self.log.snapshot().clone(),
                heartbeat_seq: self.heartbeat_seq,
            },
        };
        self.send(to, self.term, body);
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        match_index: u64,
        rejected_prev_index: u64,
        conflict_index: u64,
        conflict_term: Option<u64>,
        heartbeat_seq: u64,
    ) {
        let last_index = self.log.last_index();
        let ticks = self.ticks;
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        progress.last_ack_tick = Some(ticks);
        progress.acked_seq = progress.acked_seq.max(heartbeat_seq);
        if success {
            // A follower only acknowledges entries this leader sent it in this term.
            progress.match_index = progress.match_index.max(match_index.min(last_index));
            progress.next_index = progress.next_index.max(progress.match_index + 1);
            let behind = progress.next_index <= last_index;
            self.maybe_commit();
            if behind && self.role == Role::Leader {
                self.send_append(from);
            }
        } else if rejected_prev_index + 1 == progress.next_index {
            // Fast back-off: jump past the follower's conflicting term, or to its end.
            let hint = match conflict_term {
                Some(term) => self
                    .log
                    .last_index_of_term(term, rejected_prev_index)
                    .map_or(conflict_index, |i| i + 1),
                None => conflict_index,
            };
            let progress = self.progress.get_mut(&from).expect("progress present");
            progress.next_index = hint
                .min(rejected_prev_index)
                .max(progress.match_index + 1)
                .max(1);
            self.send_append(from);
        }
        // Otherwise: a rejection of an older message, already acted on.
        self.check_pending_reads();
    }

    /// Commits the highest index a quorum stores — only if it is of the current term
    /// (§5.4.2: counting replicas never commits an entry of an earlier term, Figure 8).
    fn maybe_commit(&mut self) {
        let mut matches: Vec<u64> = self
            .config
            .members
            .iter()
            .map(|&m| {
                if m == self.config.id {
                    self.log.stable()
                } else {
                    self.progress[&m].match_index
                }
            })
            .collect();
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let quorum_index = matches[self.quorum() - 1];
        if quorum_index <= self.log.committed() {
            return;
        }
        let term = self
            .log
            .term(quorum_index)
            .expect("entry above commit is present");
        if term == self.term || self.config.bugs.contains(Bug::OldTermCommit) {
            self.log.commit_to(quorum_index);
            if self.committed_in_current_term() && !self.reads_waiting_for_term_commit.is_empty() {
                let contexts = std::mem::take(&mut self.reads_waiting_for_term_commit);
                self.start_read_round(contexts);
            } else {
                // Followers learn the new commit index without waiting for a heartbeat.
                self.broadcast_append();
            }
        }
    }

    // ----- ReadIndex -----

    fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.committed()) == Some(self.term)
    }

    /// Records the reads at the current commit index and broadcasts a fresh heartbeat; they
    /// are answered once a quorum acknowledges it (this node was still leader then).
    fn start_read_round(&mut self, contexts: Vec<u64>) {
        self.heartbeat_seq += 1;
        let (index, seq) = (self.log.committed(), self.heartbeat_seq);
        self.pending_reads
            .extend(contexts.into_iter().map(|context| PendingRead {
                context,
                index,
                seq,
            }));
        self.broadcast_append();
        self.check_pending_reads();
    }

    fn check_pending_reads(&mut self) {
        let quorum = self.quorum();
        let progress = &self.progress;
        let mut confirmed = Vec::new();
        self.pending_reads.retain(|read| {
            let acks = 1 + progress
                .values()
                .filter(|p| p.acked_seq >= read.seq)
                .count();
            if acks >= quorum {
                confirmed.push(ReadState {
                    context: read.context,
                    index: read.index,
                });
            }
            acks < quorum
        });
        self.read_states.extend(confirmed);
    }

    /// A quorum (counting this node) answered within the last election timeout, on this
    /// node's clock. Used only by the lease-read bug.
    fn lease_valid(&self) -> bool {
        let window = u64::from(self.config.election_ticks);
        let fresh = self
            .progress
            .values()
            .filter(|p| p.last_ack_tick.is_some_and(|t| self.ticks - t < window))
            .count();
        1 + fresh >= self.quorum()
    }
}
