//! Bug switches: deliberate, documented ways to break raftkv so that faultline can show it
//! catches them.
//!
//! Every switch is off by default. Each one names the rule of the Raft paper (or of storage
//! durability) it breaks and the symptom a user of the store sees, so that a failing
//! faultline run can be traced back to its cause.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// One deliberate bug. Parsed from and printed as its kebab-case name (`"stale-read"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// Any node, follower or leader, answers reads from its local state machine, without
    /// ReadIndex.
    ///
    /// Breaks: §8 of the Raft paper (a read must not return stale data: the leader must check
    /// it has not been deposed and that it knows the latest commit).
    /// Symptom: a read returns a value that a write which completed before the read began had
    /// already overwritten (a stale read; the history is not linearizable).
    StaleRead,
    /// Writes (entries and hard state) are acknowledged without fsync.
    ///
    /// Breaks: Raft's persistence requirement (Figure 2: "updated on stable storage before
    /// responding to RPCs").
    /// Symptom: after a machine crash (power loss) a node forgets entries it acknowledged, so
    /// an acknowledged write disappears, or two nodes apply different commands at one index.
    ///
    /// The server's WAL also keeps acknowledged records in a write-back buffer for up to
    /// [`crate::storage::WRITE_BACK_MS`] (as an operating system keeps dirty pages), so
    /// that killing processes (SIGKILL), which cannot empty the real page cache, loses them
    /// as a power loss would.
    NoFsync,
    /// The leader answers reads from local state while it holds a lease (a quorum acknowledged
    /// it within the last election timeout, counted in its own ticks), without ReadIndex and
    /// without waiting to commit an entry of its term. This is etcd's lease-based read
    /// (`ReadOnlyLeaseBased`), which is safe only while every node's clock runs at the same
    /// rate.
    ///
    /// Breaks: the lease is only safe under bounded clock drift and no process pauses; and a
    /// new leader may not yet know the commit index of the previous term (§8).
    /// Symptom: after a pause (GC, VM migration, SIGSTOP) the old leader returns stale values
    /// until its lease runs out. Its clock is its ticks, and a paused process misses its ticks
    /// (the server's event loop skips them rather than firing a burst on resume), so the lease
    /// it took before the pause still looks fresh, though the followers, whose clocks kept
    /// running, have elected a new leader that took writes meanwhile.
    LeaseRead,
    /// The vote is not persisted: hard state is saved with no vote.
    ///
    /// Breaks: Figure 2 ("votedFor ... persistent state"); §5.2 election safety relies on each
    /// server voting at most once per term, across crashes.
    /// Symptom: a node that crashes after voting can vote again in the same term, so two
    /// leaders are elected in one term and they can commit different entries at one index.
    ForgetVote,
    /// The leader commits an entry of an earlier term as soon as a majority stores it.
    ///
    /// Breaks: §5.4.2 and Figure 8 (only entries of the leader's current term are committed by
    /// counting replicas).
    /// Symptom: an entry reported committed (and applied) is later overwritten by another
    /// leader: acknowledged writes are lost, nodes apply different commands at one index.
    OldTermCommit,
    /// Transactions read from a snapshot and, at commit, check only write-write conflicts.
    ///
    /// Breaks: serializability of multi-key transactions (snapshot isolation permits it).
    /// Symptom: write skew (G2-item): two transactions each read what the other writes and
    /// both commit. Lives in the KV layer; see [`crate::kv::Kv::txn_read_phase`].
    SnapshotIsolationTxn,
}

impl Bug {
    /// Every bug, in a fixed order.
    pub const ALL: [Bug; 6] = [
        Bug::StaleRead,
        Bug::NoFsync,
        Bug::LeaseRead,
        Bug::ForgetVote,
        Bug::OldTermCommit,
        Bug::SnapshotIsolationTxn,
    ];

    /// The kebab-case name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Bug::StaleRead => "stale-read",
            Bug::NoFsync => "no-fsync",
            Bug::LeaseRead => "lease-read",
            Bug::ForgetVote => "forget-vote",
            Bug::OldTermCommit => "old-term-commit",
            Bug::SnapshotIsolationTxn => "snapshot-isolation-txn",
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Bug, crate::Error> {
        Bug::ALL
            .into_iter()
            .find(|bug| bug.name() == s)
            .ok_or_else(|| crate::Error::UnknownBug(s.to_string()))
    }
}

/// A set of enabled bugs. Empty (every bug off) by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bugs(BTreeSet<Bug>);

impl Bugs {
    /// No bug enabled.
    pub fn none() -> Bugs {
        Bugs::default()
    }

    /// Exactly one bug enabled.
    pub fn only(bug: Bug) -> Bugs {
        Bugs(BTreeSet::from([bug]))
    }

    /// Whether `bug` is enabled.
    pub fn contains(&self, bug: Bug) -> bool {
        self.0.contains(&bug)
    }

    /// Whether no bug is enabled.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Enables `bug`.
    pub fn insert(&mut self, bug: Bug) {
        self.0.insert(bug);
    }

    /// Parses a comma-separated list such as `"stale-read,no-fsync"` (empty string: none).
    pub fn parse_list(list: &str) -> Result<Bugs, crate::Error> {
        let mut bugs = Bugs::none();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            bugs.insert(name.parse()?);
        }
        Ok(bugs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bug_names_round_trip() {
        for bug in Bug::ALL {
            assert_eq!(bug.name().parse::<Bug>().unwrap(), bug);
        }
        assert!("no-such-bug".parse::<Bug>().is_err());
    }

    #[test]
    fn bug_list_parses_and_defaults_to_none() {
        let bugs = Bugs::parse_list("stale-read, forget-vote").unwrap();
        assert!(bugs.contains(Bug::StaleRead) && bugs.contains(Bug::ForgetVote));
        assert!(!bugs.contains(Bug::NoFsync));
        assert!(Bugs::parse_list("").unwrap().is_empty());
        assert!(Bugs::default().is_empty());
    }
}
