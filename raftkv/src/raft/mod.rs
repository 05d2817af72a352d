//! A sans-IO Raft core after Ongaro & Ousterhout, "In Search of an Understandable Consensus
//! Algorithm" (2014), with pre-vote and ReadIndex from Ongaro's thesis.
//!
//! [`RawNode`] does no I/O, reads no clock and starts no thread. It is driven by four kinds of
//! event — [`RawNode::tick`], [`RawNode::step`] (an incoming [`Message`]),
//! [`RawNode::propose`] and [`RawNode::read_index`] — and reports what the driver must do as a
//! [`Ready`]. The driver handles a `Ready` in this order (the contract every driver keeps):
//!
//! 1. persist [`Ready::snapshot`], [`Ready::entries`] and [`Ready::hard_state`] durably;
//! 2. send [`Ready::messages`] (they may acknowledge what step 1 persisted);
//! 3. install the snapshot into the state machine, then apply [`Ready::committed_entries`];
//! 4. answer each [`ReadState`] once the state machine has applied its index, and fail each
//!    aborted read;
//! 5. call [`RawNode::advance`].

mod log;
mod node;

pub use log::RaftLog;
pub use node::RawNode;

use serde::{Deserialize, Serialize};

use crate::bug::Bugs;

/// A server's identity. Members are given at start and never change (static membership).
pub type NodeId = u64;

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// Appended by a new leader so that it commits an entry of its own term (§5.4.2, §8).
    Noop,
    /// An opaque command for the state machine.
    Command(Vec<u8>),
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    pub kind: EntryKind,
}

/// The state Raft persists before answering RPCs (Figure 2), plus the commit index so that a
/// restarted server can re-apply what it knew committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub vote: Option<NodeId>,
    pub commit: u64,
}

/// A state machine snapshot that replaces the log up to and including `index`.
/// Index 0 (term 0, no data) is the empty snapshot every log starts from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub index: u64,
    pub term: u64,
    pub data: Vec<u8>,
}

/// What a node recovers from storage at restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Snapshot,
    /// Entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

/// A server's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Asked for pre-votes without raising its term (thesis §9.6).
    PreCandidate,
    Candidate,
    Leader,
}

/// A message between servers. `term` is the sender's term, except in pre-vote traffic where a
/// pre-candidate sends the term it would campaign in and a granted pre-vote echoes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: u64,
    pub body: MessageBody,
}

/// The RPCs of Figure 2, pre-vote, and InstallSnapshot (§7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    PreVote {
        last_log_index: u64,
        last_log_term: u64,
    },
    PreVoteResponse {
        granted: bool,
    },
    RequestVote {
        last_log_index: u64,
        last_log_term: u64,
    },
    RequestVoteResponse {
        granted: bool,
    },
    /// Also the heartbeat. `heartbeat_seq` is echoed so the leader knows which of its
    /// broadcasts a follower acknowledged (ReadIndex confirms leadership with it).
    AppendEntries {
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Entry>,
        leader_commit: u64,
        heartbeat_seq: u64,
    },
    /// `success`: the follower's log matches the leader's up to `match_index`.
    /// Otherwise `rejected_prev_index` is the `prev_log_index` that failed the consistency
    /// check and (`conflict_index`, `conflict_term`) is the fast back-off hint: the follower's
    /// first index of the conflicting term, or its last index + 1 when its log is too short
    /// (`conflict_term` = None).
    AppendEntriesResponse {
        success: bool,
        match_index: u64,
        rejected_prev_index: u64,
        conflict_index: u64,
        conflict_term: Option<u64>,
        heartbeat_seq: u64,
    },
    /// Answered with an `AppendEntriesResponse`.
    InstallSnapshot {
        snapshot: Snapshot,
        heartbeat_seq: u64,
    },
}

/// A linearizable read may be answered from the state machine once it has applied `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's context given to [`RawNode::read_index`].
    pub context: u64,
    pub index: u64,
}

/// What the driver must do; see the module docs for the order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// A snapshot received from the leader: persist it (it replaces the whole log), then
    /// restore the state machine from it before applying `committed_entries`.
    pub snapshot: Option<Snapshot>,
    /// Entries to persist. Stored entries at or after `entries[0].index` are replaced.
    pub entries: Vec<Entry>,
    /// Hard state to persist, if it changed.
    pub hard_state: Option<HardState>,
    /// Messages to send after persisting.
    pub messages: Vec<Message>,
    /// Entries to apply to the state machine, in order.
    pub committed_entries: Vec<Entry>,
    /// Reads that may be answered once the state machine has applied their index.
    pub read_states: Vec<ReadState>,
    /// Contexts of reads this node will never answer (it lost leadership): fail them.
    pub aborted_reads: Vec<u64>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == Ready::default()
    }
}

/// Configuration of one node. Times are in ticks; the driver decides how long a tick is.
#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// Every voter, including `id`.
    pub members: Vec<NodeId>,
    /// The election timeout is drawn uniformly from `[election_ticks, 2 * election_ticks)`.
    pub election_ticks: u32,
    /// A leader sends AppendEntries to every follower this often.
    pub heartbeat_ticks: u32,
    /// At most this many entries per AppendEntries.
    pub max_entries_per_message: usize,
    /// Campaign with a pre-vote round first (thesis §9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout steps down.
    pub check_quorum: bool,
    pub bugs: Bugs,
}

impl Config {
    /// Defaults that suit the simulation: 10-tick elections, heartbeats every 2 ticks.
    pub fn new(id: NodeId, members: Vec<NodeId>) -> Config {
        Config {
            id,
            members,
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_entries_per_message: 16,
            pre_vote: true,
            check_quorum: true,
            bugs: Bugs::none(),
        }
    }

    fn validate(&self) {
        assert!(
            self.members.contains(&self.id),
            "members must include the node itself"
        );
        let mut sorted = self.members.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), self.members.len(), "members must be distinct");
        assert!(self.heartbeat_ticks >= 1 && self.election_ticks > self.heartbeat_ticks);
        assert!(self.max_entries_per_message >= 1);
    }
}

/// A proposal or read sent to a node that is not the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not the leader (leader hint: {leader:?})")]
pub struct NotLeader {
    pub leader: Option<NodeId>,
}
