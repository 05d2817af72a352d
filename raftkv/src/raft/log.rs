//! The in-memory Raft log: a snapshot followed by entries, with the commit, apply and
//! persistence cursors.

use super::{Entry, Snapshot};

/// The log as the core sees it. Entries up to `snapshot.index` have been compacted away.
///
/// Invariants (asserted after recovery and compaction):
/// `entries[i].index == snapshot.index + 1 + i`, terms never decrease along the log,
/// `snapshot.index <= applied <= committed <= last_index`.
#[derive(Clone, Debug)]
pub struct RaftLog {
    snapshot: Snapshot,
    entries: Vec<Entry>,
    committed: u64,
    /// Highest index handed to the driver to apply.
    applied: u64,
    /// Highest index the driver has reported persisted.
    stable: u64,
    /// Lowest index not yet handed to the driver to persist.
    unstable_from: u64,
}

impl RaftLog {
    /// A log recovered from storage: everything in it is stable; nothing after the snapshot
    /// is applied yet.
    pub(crate) fn recovered(snapshot: Snapshot, entries: Vec<Entry>, commit: u64) -> RaftLog {
        let mut log = RaftLog {
            committed: snapshot.index,
            applied: snapshot.index,
            stable: snapshot.index,
            unstable_from: snapshot.index + 1,
            snapshot,
            entries,
        };
        log.stable = log.last_index();
        log.unstable_from = log.last_index() + 1;
        // A storage that lost an unsynced tail (the no-fsync bug) may hold a commit index past
        // its last entry; a node only knows committed what it still has.
        log.committed = commit.clamp(log.snapshot.index, log.last_index());
        log.assert_invariants();
        log
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn first_index(&self) -> u64 {
        self.snapshot.index + 1
    }

    pub fn last_index(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
    }

    pub fn committed(&self) -> u64 {
        self.committed
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn stable(&self) -> u64 {
        self.stable
    }

    /// The term of the entry at `index`; None if it is compacted or past the end.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.index {
            Some(self.snapshot.term)
        } else if index < self.snapshot.index || index > self.last_index() {
            None
        } else {
            Some(self.entries[self.offset(index)].term)
        }
    }

    /// The entry at `index`, if present (not compacted).
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        if index < self.first_index() || index > self.last_index() {
            None
        } else {
            Some(&self.entries[self.offset(index)])
        }
    }

    /// Entries `lo..=hi`, all of which must be present.
    pub fn slice(&self, lo: u64, hi: u64) -> &[Entry] {
        if lo > hi {
            return &[];
        }
        assert!(
            lo >= self.first_index() && hi <= self.last_index(),
            "slice out of range"
        );
        &self.entries[self.offset(lo)..=self.offset(hi)]
    }

    fn offset(&self, index: u64) -> usize {
        (index - self.first_index()) as usize
    }

    /// §5.4.1: a candidate's log is at least as up to date as ours.
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// The last index holding `term`, searching back from `from` (fast back-off on the leader).
    /// None if no present entry has that term.
    pub fn last_index_of_term(&self, term: u64, from: u64) -> Option<u64> {
        let mut index = from.min(self.last_index());
        // Terms never decrease along the log, so the scan stops at the first smaller term.
        loop {
            let t = self.term(index)?;
            if t == term {
                return Some(index);
            }
            if t < term || index == self.snapshot.index {
                return None;
            }
            index -= 1;
        }
    }

    /// The first index of the run of `term` that contains `index` (fast back-off on the
    /// follower). Does not look below `floor`.
    pub fn first_index_of_term(&self, index: u64, floor: u64) -> u64 {
        let term = self.term(index).expect("index present");
        let mut first = index;
        while first > floor.max(self.first_index()) && self.term(first - 1) == Some(term) {
            first -= 1;
        }
        first
    }

    /// Appends one entry at the end (the leader's path).
    pub(crate) fn append(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "append must extend the log"
        );
        assert!(
            entry.term >= self.last_term(),
            "terms never decrease along the log"
        );
        self.entries.push(entry);
    }

    /// Removes every entry at or after `index` (a follower replacing a conflicting suffix).
    pub(crate) fn truncate_from(&mut self, index: u64) {
        assert!(
            index > self.snapshot.index,
            "cannot truncate into the snapshot"
        );
        let keep = self.offset(index);
        self.entries.truncate(keep);
        self.unstable_from = self.unstable_from.min(index);
        self.stable = self.stable.min(index - 1);
        self.applied = self.applied.min(index - 1);
        self.committed = self.committed.min(index - 1);
    }

    pub(crate) fn commit_to(&mut self, index: u64) {
        assert!(
            index <= self.last_index(),
            "commit {index} past last index {}",
            self.last_index()
        );
        if index > self.committed {
            self.committed = index;
        }
    }

    /// Entries not yet handed out to persist; marks them handed out.
    pub(crate) fn take_unstable(&mut self) -> Vec<Entry> {
        let from = self.unstable_from;
        let last = self.last_index();
        self.unstable_from = last + 1;
        self.slice(from, last).to_vec()
    }

    /// Committed entries not yet handed out to apply; marks them handed out.
    pub(crate) fn take_committed(&mut self) -> Vec<Entry> {
        let from = self.applied + 1;
        let to = self.committed;
        self.applied = to;
        self.slice(from, to).to_vec()
    }

    pub(crate) fn mark_stable(&mut self, index: u64) {
        self.stable = self.stable.max(index.min(self.last_index()));
    }

    /// Replaces the whole log with `snapshot` (InstallSnapshot on a follower).
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        let index = snapshot.index;
        self.snapshot = snapshot;
        self.entries.clear();
        self.committed = index;
        self.applied = index;
        self.stable = index;
        self.unstable_from = index + 1;
    }

    /// Drops entries up to `index` (already applied) behind a snapshot of the state machine.
    pub(crate) fn compact(&mut self, index: u64, data: Vec<u8>) {
        assert!(index <= self.applied, "compact only what is applied");
        if index <= self.snapshot.index {
            return;
        }
        let term = self.term(index).expect("applied entry present");
        let drop = self.offset(index) + 1;
        self.entries.drain(..drop);
        self.snapshot = Snapshot { index, term, data };
        self.assert_invariants();
    }

    pub(crate) fn assert_invariants(&self) {
        for (i, entry) in self.entries.iter().enumerate() {
            assert_eq!(
                entry.index,
                self.snapshot.index + 1 + i as u64,
                "log indexes contiguous"
            );
        }
        assert!(self
            .entries
            .first()
            .into_iter()
            .all(|e| e.term >= self.snapshot.term));
        assert!(
            self.entries.windows(2).all(|w| w[0].term <= w[1].term),
            "terms non-decreasing"
        );
        assert!(
            self.snapshot.index <= self.applied,
            "applied below snapshot"
        );
        assert!(self.applied <= self.committed, "applied past commit");
        assert!(
            self.committed <= self.last_index(),
            "commit past last index"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryKind;

    fn log_with_terms(terms: &[u64]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &term)| Entry {
                index: i as u64 + 1,
                term,
                kind: EntryKind::Noop,
            })
            .collect();
        RaftLog::recovered(Snapshot::default(), entries, 0)
    }

    #[test]
    fn term_lookup_covers_snapshot_entries_and_past_end() {
        let log = log_with_terms(&[1, 1, 2]);
        assert_eq!(log.term(0), Some(0));
        assert_eq!(log.term(3), Some(2));
        assert_eq!(log.term(4), None);
        assert!(log.is_up_to_date(3, 2) && log.is_up_to_date(1, 3) && !log.is_up_to_date(9, 1));
    }

    #[test]
    fn fast_back_off_helpers_find_term_boundaries() {
        let log = log_with_terms(&[1, 1, 2, 2, 2, 4]);
        assert_eq!(log.first_index_of_term(5, 0), 3);
        assert_eq!(log.last_index_of_term(2, 6), Some(5));
        assert_eq!(log.last_index_of_term(3, 6), None);
        assert_eq!(log.last_index_of_term(1, 6), Some(2));
    }

    #[test]
    fn compaction_keeps_terms_at_the_snapshot_boundary() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        log.commit_to(3);
        assert_eq!(log.take_committed().len(), 3);
        log.compact(2, vec![7]);
        assert_eq!(log.first_index(), 3);
        assert_eq!(log.term(2), Some(1));
        assert_eq!(log.term(1), None);
        assert_eq!(log.last_index(), 4);
    }
}
