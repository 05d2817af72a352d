//! Durable storage for the Raft core: entries, hard state and snapshots.
//!
//! [`FileStorage`] is the real thing: a write-ahead log of length-prefixed, CRC32-checksummed
//! records, fsynced before every call returns, and snapshot files replaced atomically.
//! [`MemStorage`] implements the same [`Storage`] trait in memory for tests and the
//! simulation, and can model a disk that loses unsynced writes on a crash.

mod crc32;
mod memory;
mod wal;

pub use crc32::crc32;
pub use memory::{MemStorage, SyncMode};
pub use wal::{FileStorage, WRITE_BACK_MS};

use crate::raft::{Entry, HardState, Ready, Recovered, Snapshot};
use crate::Error;

/// Where a node keeps what must survive a crash.
///
/// # Correctness
/// When a method returns `Ok`, what it wrote survives a crash (unless the storage was built
/// with the no-fsync bug). `recover` after a crash returns a state that some prefix of the
/// acknowledged calls, in order, produced — never a mix.
pub trait Storage {
    /// Stores `entries` (contiguous), replacing stored entries at or after
    /// `entries[0].index`.
    fn append(&mut self, entries: &[Entry]) -> Result<(), Error>;
    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), Error>;
    /// Stores a Ready's entries and then its hard state. Implementations may do it with one
    /// write and one fsync, as long as both are durable when it returns (a change of only the
    /// commit index need not be: it is volatile state).
    fn persist(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<(), Error> {
        if !entries.is_empty() {
            self.append(entries)?;
        }
        if let Some(hard_state) = hard_state {
            self.save_hard_state(hard_state)?;
        }
        Ok(())
    }
    /// Replaces the whole log with `snapshot` (a snapshot received from the leader).
    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Error>;
    /// Drops entries up to `snapshot.index`, keeping later ones (local log compaction).
    fn compact(&mut self, snapshot: &Snapshot) -> Result<(), Error>;
    /// What a restarting node starts from.
    fn recover(&self) -> Result<Recovered, Error>;
}

/// Step 1 of handling a [`Ready`]: persist its snapshot, entries and hard state, in that
/// order (a hard state's commit index may refer to the entries saved just before it).
pub fn persist_ready(storage: &mut dyn Storage, ready: &Ready) -> Result<(), Error> {
    if let Some(snapshot) = &ready.snapshot {
        storage.install_snapshot(snapshot)?;
    }
    storage.persist(&ready.entries, ready.hard_state.as_ref())
}

/// The log as storage holds it; both implementations replay their writes into one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct LogState {
    hard_state: HardState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

impl LogState {
    fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        assert!(
            entries.windows(2).all(|w| w[1].index == w[0].index + 1),
            "entries must be contiguous"
        );
        assert!(
            first.index > self.snapshot.index,
            "append below the snapshot"
        );
        let position = (first.index - self.snapshot.index - 1) as usize;
        assert!(
            position <= self.entries.len(),
            "append leaves a gap at {}",
            first.index
        );
        self.entries.truncate(position);
        self.entries.extend_from_slice(entries);
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) {
        self.entries.clear();
        self.snapshot = snapshot.clone();
    }

    fn compact(&mut self, snapshot: &Snapshot) {
        if snapshot.index <= self.snapshot.index {
            return;
        }
        self.entries.retain(|e| e.index > snapshot.index);
        if self
            .entries
            .first()
            .is_some_and(|e| e.index != snapshot.index + 1)
        {
            // The snapshot reaches past a gap: nothing after it can be trusted to follow it.
            self.entries.clear();
        }
        self.snapshot = snapshot.clone();
    }

    fn recovered(&self) -> Recovered {
        Recovered {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}
