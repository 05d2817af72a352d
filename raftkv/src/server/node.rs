//! The event loop of one node: the only owner of its [`RawNode`], storage and [`Kv`].
//!
//! It runs on a thread of its own (storage calls block on fsync, and a Raft node handles one
//! event at a time anyway) and takes events from one channel: client requests, frames from
//! peers, and its own ticks. After each batch of events it handles every [`Ready`] in the
//! order the core's contract gives: persist, send, apply, reads, advance.
//!
//! Each client request ends in exactly one [`ApiResponse`], and the response says whether
//! the request certainly had no effect (`definite: true`) or may have (`definite: false`).
//! The rules:
//! - a proposal is answered when the entry at its (index, term) applies; if another entry
//!   applies at its index, it certainly never commits (definite);
//! - at its deadline, a proposal is answered `timeout` (still leader in its term) or
//!   `leadership-lost` (not), both indefinite: it may still commit;
//! - reads and the read phase of a transaction never change state, so their failures are
//!   definite;
//! - a follower forwards to the leader over the peer link; if nothing was forwarded (no known
//!   leader, link down) the answer is `not-leader`, definite; once forwarded, a write that
//!   gets no answer is indefinite.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use super::api::{ApiResponse, ClientRequest};
use super::transport::{PeerFrame, PeerLink};
use crate::bug::{Bug, Bugs};
use crate::kv::{Command, Kv, MicroOp, Outcome, Request};
use crate::raft::{Entry, EntryKind, Message, MessageBody, NodeId, RawNode, Ready, Role};
use crate::storage::{persist_ready, FileStorage, Storage};
use crate::Error;

/// At most this many queued events are handled before the node persists and sends: a batch
/// shares one fsync (group commit) without starving ticks.
const MAX_EVENTS_PER_BATCH: usize = 512;

/// What the event loop reacts to (besides its ticks).
#[derive(Debug)]
pub enum Event {
    Client {
        request: ClientRequest,
        reply: oneshot::Sender<ApiResponse>,
        deadline: Instant,
    },
    Peer(PeerFrame),
}

/// Where an answer goes: an HTTP handler on this node, or a follower that forwarded.
#[derive(Debug)]
enum Responder {
    Local(oneshot::Sender<ApiResponse>),
    Remote { peer: NodeId, id: u64 },
}

#[derive(Debug)]
enum ProposalKind {
    Put,
    Cas,
    Delete,
    Txn,
    /// The snapshot-isolation-txn bug's commit: answered with the read phase's results.
    TxnSnapshotIsolation {
        results: Vec<MicroOp>,
    },
}

#[derive(Debug)]
struct Proposal {
    term: u64,
    request_id: u64,
    kind: ProposalKind,
    responder: Responder,
    deadline: Instant,
}

#[derive(Debug)]
enum ReadKind {
    Get {
        key: String,
    },
    /// The snapshot-isolation-txn bug's read phase.
    TxnReadPhase {
        ops: Vec<MicroOp>,
    },
}

#[derive(Debug)]
struct PendingRead {
    kind: ReadKind,
    responder: Responder,
    deadline: Instant,
    /// Set by the ReadState: answer once the state machine has applied this index.
    index: Option<u64>,
}

#[derive(Debug)]
struct Forwarded {
    responder: Responder,
    deadline: Instant,
    read_only: bool,
}

/// Marks the AppendEntries of a Ready that a later one in the same Ready makes redundant.
///
/// The core emits an AppendEntries per peer on every proposal, read round, commit and
/// acknowledgement, each carrying every entry the peer has not acknowledged yet (up to the
/// per-message cap); a batch of `k` client requests thus yields `k` messages per peer whose
/// entries overlap, `O(k^2)` entries to encode, send and decode. A later message in the same
/// term with the same `prev_log_index`/`prev_log_term` carries the earlier one's entries
/// (a leader only appends within its term) plus more, a commit index and a heartbeat
/// sequence number at least as high: a follower that gets only the later one acknowledges
/// everything the earlier one would have made it acknowledge. Leaving the earlier one out is
/// a dropped message, which Raft tolerates anyway; this only removes the redundancy.
fn superseded_appends(messages: &[Message]) -> Vec<bool> {
    let mut superseded = vec![false; messages.len()];
    // The AppendEntries kept so far, walking from the last message back.
    let mut kept: Vec<&Message> = Vec::new();
    for (i, msg) in messages.iter().enumerate().rev() {
        if !matches!(msg.body, MessageBody::AppendEntries { .. }) {
            continue;
        }
        if kept.iter().any(|later| append_covers(later, msg)) {
            superseded[i] = true;
        } else {
            kept.push(msg);
        }
    }
    superseded
}

/// Whether AppendEntries `later` carries everything AppendEntries `earlier` does.
fn append_covers(later: &Message, earlier: &Message) -> bool {
    let (
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            heartbeat_seq,
        },
        MessageBody::AppendEntries {
            prev_log_index: earlier_prev_index,
            prev_log_term: earlier_prev_term,
            entries: earlier_entries,
            leader_commit: earlier_commit,
            heartbeat_seq: earlier_seq,
        },
    ) = (&later.body, &earlier.body)
    else {
        return false;
    };
    let same_start = later.from == earlier.from
        && later.to == earlier.to
        && later.term == earlier.term
        && prev_log_index == earlier_prev_index
        && prev_log_term == earlier_prev_term;
    // Same start, so position `n - 1` holds the same index; the same term there means the
    // same entries up to it (the Log Matching Property).
    let extends = match earlier_entries.last() {
        None => true,
        Some(last) => entries
            .get(earlier_entries.len() - 1)
            .is_some_and(|e| e.index == last.index && e.term == last.term),
    };
    same_start && extends && leader_commit >= earlier_commit && heartbeat_seq >= earlier_seq
}

/// The event loop's settings.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub bugs: Bugs,
    pub tick: Duration,
    pub snapshot_every: u64,
}

pub struct NodeLoop {
    id: NodeId,
    raft: RawNode,
    storage: FileStorage,
    kv: Kv,
    options: NodeOptions,
    peers: BTreeMap<NodeId, PeerLink>,
    proposals: BTreeMap<u64, Proposal>,
    reads: BTreeMap<u64, PendingRead>,
    forwards: BTreeMap<u64, Forwarded>,
    next_read_context: u64,
    next_request_id: u64,
    next_forward_id: u64,
    observed: (u64, Role, Option<NodeId>),
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

impl NodeLoop {
    pub fn new(
        raft: RawNode,
        storage: FileStorage,
        kv: Kv,
        options: NodeOptions,
        peers: BTreeMap<NodeId, PeerLink>,
        request_id_base: u64,
    ) -> NodeLoop {
        let observed = (raft.term(), raft.role(), raft.leader());
        NodeLoop {
            id: raft.id(),
            raft,
            storage,
            kv,
            options,
            peers,
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            forwards: BTreeMap::new(),
            next_read_context: 1,
            next_request_id: request_id_base,
            next_forward_id: 1,
            observed,
        }
    }

    /// Runs until `shutdown` turns true or every event sender is gone. An error is a storage
    /// failure: the node cannot go on without breaking the Ready contract.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let mut ticker = tokio::time::interval(self.options.tick);
        // After a stall, do not fire a burst of ticks (a burst would start elections at once).
        // So the node's clock, counted in ticks, does not advance while the process is
        // stopped: the lease-read bug's lease outlives a pause (see `crate::bug::Bug`).
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let result = loop {
            tokio::select! {
                _ = shutdown.changed() => break Ok(()),
                _ = ticker.tick() => {
                    self.raft.tick();
                    self.expire(Instant::now());
                }
                event = events.recv() => {
                    let Some(event) = event else { break Ok(()) };
                    self.handle(event);
                    for _ in 1..MAX_EVENTS_PER_BATCH {
                        match events.try_recv() {
                            Ok(event) => self.handle(event),
                            Err(_) => break,
                        }
                    }
                }
            }
            if let Err(e) = self.drive() {
                break Err(e);
            }
        };
        self.stop();
        result
    }

    /// Answers everything still open: the node is going away.
    fn stop(&mut self) {
        for (_, proposal) in std::mem::take(&mut self.proposals) {
            let response = ApiResponse::error(503, "shutting-down", false);
            self.respond(proposal.responder, response);
        }
        for (_, read) in std::mem::take(&mut self.reads) {
            self.respond(
                read.responder,
                ApiResponse::error(503, "shutting-down", true),
            );
        }
        for (_, forwarded) in std::mem::take(&mut self.forwards) {
            let response = ApiResponse::error(503, "shutting-down", forwarded.read_only);
            self.respond(forwarded.responder, response);
        }
        if let Err(e) = self.storage.sync() {
            tracing::error!("flushing storage at shutdown failed: {e}");
        }
        tracing::info!(id = self.id, "node stopped");
    }

    fn respond(&self, responder: Responder, response: ApiResponse) {
        match responder {
            // The handler may have given up already; then nobody is waiting.
            Responder::Local(reply) => drop(reply.send(response)),
            Responder::Remote { peer, id } => {
                if let Some(link) = self.peers.get(&peer) {
                    if !link.send(PeerFrame::ForwardReply { id, response }) {
                        tracing::debug!(peer, "dropped a forwarded reply: link queue full");
                    }
                }
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Client {
                request,
                reply,
                deadline,
            } => self.handle_client(request, Responder::Local(reply), deadline),
            Event::Peer(PeerFrame::Raft(msg)) => {
                if !self.raft.config().members.contains(&msg.from) || msg.from == self.id {
                    return;
                }
                self.raft.step(msg);
            }
            Event::Peer(PeerFrame::Forward {
                from,
                id,
                timeout_ms,
                request,
            }) => {
                let deadline = Instant::now() + Duration::from_millis(timeout_ms);
                self.handle_client(request, Responder::Remote { peer: from, id }, deadline);
            }
            Event::Peer(PeerFrame::ForwardReply { id, response }) => {
                if let Some(forwarded) = self.forwards.remove(&id) {
                    self.respond(forwarded.responder, response);
                }
            }
            Event::Peer(PeerFrame::Hello { .. }) => {}
        }
    }

    fn status(&self) -> ApiResponse {
        ApiResponse::ok(json!({
            "id": self.id,
            "term": self.raft.term(),
            "leader": self.raft.leader(),
            "role": role_name(self.raft.role()),
            "commit": self.raft.log().committed(),
            "applied": self.kv.applied_index(),
            "last_index": self.raft.log().last_index(),
            "last_term": self.raft.log().last_term(),
            "snapshot_index": self.raft.log().snapshot().index,
            // This node's wall clock (ms since the epoch): how a harness sees the clock skew
            // it injects (libfaketime). Raft itself counts ticks and never reads it.
            "wall_clock_ms": SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }))
    }

    fn handle_client(&mut self, request: ClientRequest, responder: Responder, deadline: Instant) {
        let bugs = &self.options.bugs;
        let command = match request {
            ClientRequest::Status => return self.respond(responder, self.status()),
            ClientRequest::Get { key, stale } => {
                // The lease-read bug lives in the core: its `read_index` answers at once while
                // the leader's tick-counted lease holds.
                if stale || bugs.contains(Bug::StaleRead) {
                    let value = self.kv.get(&key);
                    return self.respond(responder, ApiResponse::value(value));
                }
                return self.start_read(
                    ReadKind::Get { key: key.clone() },
                    ClientRequest::Get { key, stale },
                    responder,
                    deadline,
                );
            }
            ClientRequest::Txn { ops } if bugs.contains(Bug::SnapshotIsolationTxn) => {
                let request = ClientRequest::Txn { ops: ops.clone() };
                return self.start_read(
                    ReadKind::TxnReadPhase { ops },
                    request,
                    responder,
                    deadline,
                );
            }
            ClientRequest::Put { ref key, ref value } => (
                Command::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                ProposalKind::Put,
            ),
            ClientRequest::Cas {
                ref key,
                ref expected,
                ref new,
            } => (
                Command::Cas {
                    key: key.clone(),
                    expected: expected.clone(),
                    new: new.clone(),
                },
                ProposalKind::Cas,
            ),
            ClientRequest::Delete { ref key } => {
                (Command::Delete { key: key.clone() }, ProposalKind::Delete)
            }
            ClientRequest::Txn { ref ops } => {
                (Command::Txn { ops: ops.clone() }, ProposalKind::Txn)
            }
        };
        let (command, kind) = command;
        if !self.raft.is_leader() {
            return self.forward(request, responder, deadline);
        }
        self.propose(command, kind, responder, deadline);
    }

    fn propose(
        &mut self,
        command: Command,
        kind: ProposalKind,
        responder: Responder,
        deadline: Instant,
    ) {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let data = Request {
            id: request_id,
            command,
        }
        .encode();
        match self.raft.propose(data) {
            Ok((index, term)) => {
                let proposal = Proposal {
                    term,
                    request_id,
                    kind,
                    responder,
                    deadline,
                };
                let previous = self.proposals.insert(index, proposal);
                assert!(previous.is_none(), "two proposals at index {index}");
            }
            Err(not_leader) => self.respond(responder, ApiResponse::not_leader(not_leader.leader)),
        }
    }

    fn start_read(
        &mut self,
        kind: ReadKind,
        request: ClientRequest,
        responder: Responder,
        deadline: Instant,
    ) {
        let context = self.next_read_context;
        match self.raft.read_index(context) {
            Ok(()) => {
                self.next_read_context += 1;
                let read = PendingRead {
                    kind,
                    responder,
                    deadline,
                    index: None,
                };
                self.reads.insert(context, read);
            }
            Err(_) => self.forward(request, responder, deadline),
        }
    }

    /// Hands a request to the leader, or answers `not-leader` (definite: nothing was sent).
    fn forward(&mut self, request: ClientRequest, responder: Responder, deadline: Instant) {
        let leader = self.raft.leader();
        let link = leader
            .filter(|&l| l != self.id)
            .and_then(|l| self.peers.get(&l))
            .filter(|link| link.is_connected());
        // One hop at most: a forwarded request is never forwarded again.
        let (Responder::Local(_), Some(link)) = (&responder, link) else {
            return self.respond(responder, ApiResponse::not_leader(leader));
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        // Leave the leader's answer time to travel back before our own deadline.
        let margin = (remaining / 4).min(Duration::from_millis(250));
        let id = self.next_forward_id;
        let read_only = request.is_read_only();
        let frame = PeerFrame::Forward {
            from: self.id,
            id,
            timeout_ms: (remaining - margin).as_millis() as u64,
            request,
        };
        if link.send(frame) {
            self.next_forward_id += 1;
            let forwarded = Forwarded {
                responder,
                deadline,
                read_only,
            };
            self.forwards.insert(id, forwarded);
        } else {
            self.respond(responder, ApiResponse::not_leader(leader));
        }
    }

    /// Answers whatever passed its deadline.
    fn expire(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .proposals
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(&index, _)| index)
            .collect();
        for index in expired {
            let proposal = self.proposals.remove(&index).expect("present");
            let still_leading = self.raft.is_leader() && self.raft.term() == proposal.term;
            let response = if still_leading {
                ApiResponse::timeout()
            } else {
                ApiResponse::leadership_lost()
            };
            self.respond(proposal.responder, response);
        }
        let expired: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(&context, _)| context)
            .collect();
        for context in expired {
            let read = self.reads.remove(&context).expect("present");
            // Nothing was proposed for a read: it certainly had no effect.
            self.respond(read.responder, ApiResponse::error(504, "timeout", true));
        }
        let expired: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            let forwarded = self.forwards.remove(&id).expect("present");
            let response = ApiResponse::error(504, "timeout", forwarded.read_only);
            self.respond(forwarded.responder, response);
        }
    }

    /// Handles every Ready, answers reads, compacts.
    fn drive(&mut self) -> Result<(), Error> {
        loop {
            while self.raft.has_ready() {
                let ready = self.raft.ready();
                self.handle_ready(&ready)?;
                self.raft.advance();
            }
            // Answering a transaction's read phase may propose its commit: drive again.
            if !self.answer_reads() && !self.raft.has_ready() {
                break;
            }
        }
        self.maybe_compact()?;
        self.observe();
        if let Some(what) = self.raft.violations().first() {
            tracing::error!(
                id = self.id,
                "Raft invariant broken (a bug switch is on): {what}"
            );
        }
        Ok(())
    }

    fn handle_ready(&mut self, ready: &Ready) -> Result<(), Error> {
        // 1. Persist (fsync inside, unless the no-fsync bug is on).
        persist_ready(&mut self.storage, ready)?;
        // 2. Send: only now may the messages acknowledge what step 1 stored.
        let superseded = superseded_appends(&ready.messages);
        for (msg, superseded) in ready.messages.iter().zip(superseded) {
            if superseded {
                continue;
            }
            if let Some(link) = self.peers.get(&msg.to) {
                // A full queue drops the message: Raft tolerates loss and resends.
                link.send(PeerFrame::Raft(msg.clone()));
            }
        }
        // 3. Apply.
        if let Some(snapshot) = &ready.snapshot {
            self.kv = Kv::restore(&snapshot.data)?;
            assert_eq!(
                self.kv.applied_index(),
                snapshot.index,
                "snapshot data matches its index"
            );
            // Proposals the snapshot covers may or may not be in it: unknown.
            let covered: Vec<u64> = self
                .proposals
                .range(..=snapshot.index)
                .map(|(&i, _)| i)
                .collect();
            for index in covered {
                let proposal = self.proposals.remove(&index).expect("present");
                self.respond(proposal.responder, ApiResponse::leadership_lost());
            }
        }
        for entry in &ready.committed_entries {
            self.apply(entry);
        }
        // 4. Reads: record where each may be answered; fail the aborted ones.
        for read_state in &ready.read_states {
            if let Some(read) = self.reads.get_mut(&read_state.context) {
                read.index = Some(read_state.index);
            }
        }
        for context in &ready.aborted_reads {
            if let Some(read) = self.reads.remove(context) {
                let response = ApiResponse::error(503, "read-aborted", true);
                self.respond(read.responder, response);
            }
        }
        Ok(())
    }

    fn apply(&mut self, entry: &Entry) {
        let applied = match &entry.kind {
            EntryKind::Noop => {
                self.kv.apply_noop(entry.index);
                None
            }
            EntryKind::Command(bytes) => match Request::decode(bytes) {
                Ok(request) => {
                    let outcome = self.kv.apply(entry.index, &request.command);
                    Some((request.id, outcome))
                }
                Err(e) => {
                    // Every node proposes well-formed requests; skip rather than diverge.
                    tracing::error!(index = entry.index, "undecodable command: {e}");
                    self.kv.apply_noop(entry.index);
                    None
                }
            },
        };
        let Some(proposal) = self.proposals.remove(&entry.index) else {
            return;
        };
        let response = match applied {
            Some((id, outcome)) if entry.term == proposal.term && id == proposal.request_id => {
                let index = json!(entry.index);
                match (proposal.kind, outcome) {
                    (
                        ProposalKind::Cas,
                        Outcome::Cas {
                            swapped: false,
                            current,
                        },
                    ) => ApiResponse::error(409, "compare-failed", true).with("current", current),
                    (ProposalKind::Txn, Outcome::Txn(results)) => {
                        ApiResponse::value(json!(results)).with("index", index)
                    }
                    (ProposalKind::Txn, Outcome::Aborted) => {
                        ApiResponse::error(409, "compare-failed", true)
                    }
                    (ProposalKind::TxnSnapshotIsolation { .. }, Outcome::Aborted) => {
                        ApiResponse::error(409, "txn-aborted", true)
                    }
                    (ProposalKind::TxnSnapshotIsolation { results }, _) => {
                        ApiResponse::value(json!(results)).with("index", index)
                    }
                    _ => ApiResponse::ok(json!({ "index": index })),
                }
            }
            // Another entry is committed at the proposal's index, so the proposal never will
            // be (an index holds one committed entry, forever).
            _ => ApiResponse::error(503, "superseded", true),
        };
        self.respond(proposal.responder, response);
    }

    /// Answers reads whose index the state machine has reached. Returns whether it proposed
    /// (a snapshot-isolation transaction's commit).
    fn answer_reads(&mut self) -> bool {
        let applied = self.kv.applied_index();
        let ready: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.index.is_some_and(|i| i <= applied))
            .map(|(&c, _)| c)
            .collect();
        let mut proposed = false;
        for context in ready {
            let read = self.reads.remove(&context).expect("present");
            match read.kind {
                ReadKind::Get { key } => {
                    let value = self.kv.get(&key);
                    self.respond(read.responder, ApiResponse::value(value));
                }
                ReadKind::TxnReadPhase { ops } => {
                    // Bug: read now, commit later checking only write-write conflicts. A
                    // transaction whose reads another concurrent one overwrites still commits.
                    let (results, command) = self.kv.txn_read_phase(&ops);
                    if ops.iter().all(|op| matches!(op, MicroOp::Read { .. })) {
                        self.respond(read.responder, ApiResponse::value(json!(results)));
                        continue;
                    }
                    let kind = ProposalKind::TxnSnapshotIsolation { results };
                    self.propose(command, kind, read.responder, read.deadline);
                    proposed = true;
                }
            }
        }
        proposed
    }

    fn maybe_compact(&mut self) -> Result<(), Error> {
        let applied = self.kv.applied_index();
        if applied < self.raft.log().snapshot().index + self.options.snapshot_every {
            return Ok(());
        }
        assert_eq!(
            applied,
            self.raft.log().applied(),
            "every handed-out entry is applied"
        );
        let snapshot = self.raft.compact(applied, self.kv.snapshot());
        self.storage.compact(&snapshot)?;
        tracing::debug!(
            id = self.id,
            index = applied,
            "compacted the log behind a snapshot"
        );
        Ok(())
    }

    /// Logs role changes.
    fn observe(&mut self) {
        let now = (self.raft.term(), self.raft.role(), self.raft.leader());
        if now == self.observed {
            return;
        }
        if now.1 != self.observed.1 || now.2 != self.observed.2 {
            tracing::info!(
                id = self.id,
                term = now.0,
                role = role_name(now.1),
                leader = ?now.2,
                "role changed"
            );
        }
        self.observed = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            kind: EntryKind::Noop,
        }
    }

    fn append(to: NodeId, term: u64, prev: u64, last: u64, commit: u64, seq: u64) -> Message {
        Message {
            from: 1,
            to,
            term,
            body: MessageBody::AppendEntries {
                prev_log_index: prev,
                prev_log_term: term,
                entries: (prev + 1..=last).map(|i| entry(i, term)).collect(),
                leader_commit: commit,
                heartbeat_seq: seq,
            },
        }
    }

    #[test]
    fn a_later_append_with_more_entries_supersedes_earlier_ones_to_the_same_peer() {
        let messages = vec![
            append(2, 3, 10, 11, 10, 5),
            append(3, 3, 10, 11, 10, 5),
            append(2, 3, 10, 12, 10, 6),
            append(2, 3, 10, 13, 11, 7),
            append(3, 3, 10, 12, 10, 6),
        ];
        assert_eq!(
            superseded_appends(&messages),
            vec![true, true, true, false, false]
        );
    }

    #[test]
    fn appends_that_differ_in_start_term_or_progress_are_all_sent() {
        let other_term = append(2, 4, 10, 11, 10, 1);
        let other_start = append(2, 3, 9, 13, 11, 9);
        let lower_commit = append(2, 3, 10, 14, 9, 9);
        let lower_seq = append(2, 3, 10, 14, 12, 1);
        for later in [other_term, other_start, lower_commit, lower_seq] {
            let messages = vec![append(2, 3, 10, 11, 10, 5), later];
            assert_eq!(superseded_appends(&messages), vec![false, false]);
        }
        // Fewer entries than the earlier one: not covered.
        let messages = vec![append(2, 3, 10, 13, 10, 5), append(2, 3, 10, 12, 10, 6)];
        assert_eq!(superseded_appends(&messages), vec![false, false]);
        // Other messages are never left out.
        let vote = Message {
            from: 1,
            to: 2,
            term: 3,
            body: MessageBody::RequestVoteResponse { granted: true },
        };
        let messages = vec![vote.clone(), vote];
        assert_eq!(superseded_appends(&messages), vec![false, false]);
    }
}
