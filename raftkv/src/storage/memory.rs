//! [`MemStorage`]: the [`Storage`] trait in memory, with an optional model of a disk that
//! loses unsynced writes when the machine crashes.

use super::{LogState, Storage};
use crate::raft::{Entry, HardState, Recovered, Snapshot};
use crate::Error;

/// Whether writes are durable when a call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Every call is durable when it returns (as [`super::FileStorage`] with fsync).
    Fsync,
    /// Calls return before their writes are durable (the no-fsync bug). Writes become
    /// durable only at [`MemStorage::sync`] (the OS writing back dirty pages) and are lost
    /// at [`MemStorage::crash`].
    NoFsync,
}

#[derive(Clone, Debug)]
enum Write {
    Append(Vec<Entry>),
    HardState(HardState),
    InstallSnapshot(Snapshot),
    Compact(Snapshot),
}

/// In-memory storage for tests and the simulation.
#[derive(Clone, Debug)]
pub struct MemStorage {
    mode: SyncMode,
    durable: LogState,
    /// Writes acknowledged but not yet durable, oldest first (always empty under `Fsync`).
    unsynced: Vec<Write>,
}

impl MemStorage {
    pub fn new(mode: SyncMode) -> MemStorage {
        MemStorage {
            mode,
            durable: LogState::default(),
            unsynced: Vec::new(),
        }
    }

    /// Makes every acknowledged write durable.
    pub fn sync(&mut self) {
        for write in std::mem::take(&mut self.unsynced) {
            apply(&mut self.durable, &write);
        }
    }

    /// A machine crash (power loss): unsynced writes are gone.
    pub fn crash(&mut self) {
        self.unsynced.clear();
    }

    /// How many acknowledged writes are not yet durable.
    pub fn unsynced_writes(&self) -> usize {
        self.unsynced.len()
    }

    fn write(&mut self, write: Write) {
        match self.mode {
            SyncMode::Fsync => apply(&mut self.durable, &write),
            SyncMode::NoFsync => self.unsynced.push(write),
        }
    }
}

fn apply(state: &mut LogState, write: &Write) {
    match write {
        Write::Append(entries) => state.append(entries),
        Write::HardState(hard_state) => state.hard_state = *hard_state,
        Write::InstallSnapshot(snapshot) => state.install_snapshot(snapshot),
        Write::Compact(snapshot) => state.compact(snapshot),
    }
}

impl Storage for MemStorage {
    fn append(&mut self, entries: &[Entry]) -> Result<(), Error> {
        self.write(Write::Append(entries.to_vec()));
        Ok(())
    }

    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), Error> {
        self.write(Write::HardState(*hard_state));
        Ok(())
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        self.write(Write::InstallSnapshot(snapshot.clone()));
        Ok(())
    }

    fn compact(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        self.write(Write::Compact(snapshot.clone()));
        Ok(())
    }

    /// Durable state plus the unsynced writes still in memory (a process restart without a
    /// machine crash keeps them; call [`MemStorage::crash`] first to lose them).
    fn recover(&self) -> Result<Recovered, Error> {
        let mut state = self.durable.clone();
        for write in &self.unsynced {
            apply(&mut state, write);
        }
        Ok(state.recovered())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryKind;

    fn entries(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
        (lo..=hi)
            .map(|index| Entry {
                index,
                term,
                kind: EntryKind::Noop,
            })
            .collect()
    }

    #[test]
    fn append_replaces_the_suffix_from_the_first_new_index() {
        let mut storage = MemStorage::new(SyncMode::Fsync);
        storage.append(&entries(1, 5, 1)).unwrap();
        storage.append(&entries(3, 4, 2)).unwrap();
        let terms: Vec<u64> = storage
            .recover()
            .unwrap()
            .entries
            .iter()
            .map(|e| e.term)
            .collect();
        assert_eq!(terms, vec![1, 1, 2, 2]);
    }

    #[test]
    fn fsync_mode_survives_a_crash() {
        let mut storage = MemStorage::new(SyncMode::Fsync);
        storage.append(&entries(1, 3, 1)).unwrap();
        storage
            .save_hard_state(&HardState {
                term: 1,
                vote: Some(2),
                commit: 3,
            })
            .unwrap();
        storage.crash();
        let recovered = storage.recover().unwrap();
        assert_eq!(recovered.entries.len(), 3);
        assert_eq!(recovered.hard_state.vote, Some(2));
    }

    #[test]
    fn no_fsync_mode_loses_unsynced_writes_on_crash() {
        let mut storage = MemStorage::new(SyncMode::NoFsync);
        storage.append(&entries(1, 2, 1)).unwrap();
        storage.sync();
        storage.append(&entries(3, 4, 1)).unwrap();
        assert_eq!(
            storage.recover().unwrap().entries.len(),
            4,
            "a process restart keeps the page cache"
        );
        storage.crash();
        assert_eq!(
            storage.recover().unwrap().entries.len(),
            2,
            "a machine crash does not"
        );
    }

    #[test]
    fn compact_keeps_the_suffix_and_install_replaces_everything() {
        let mut storage = MemStorage::new(SyncMode::Fsync);
        storage.append(&entries(1, 5, 1)).unwrap();
        storage
            .compact(&Snapshot {
                index: 3,
                term: 1,
                data: vec![1],
            })
            .unwrap();
        let recovered = storage.recover().unwrap();
        assert_eq!((recovered.snapshot.index, recovered.entries.len()), (3, 2));
        storage
            .install_snapshot(&Snapshot {
                index: 9,
                term: 2,
                data: vec![2],
            })
            .unwrap();
        let recovered = storage.recover().unwrap();
        assert_eq!((recovered.snapshot.index, recovered.entries.len()), (9, 0));
    }
}
