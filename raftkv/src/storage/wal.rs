//! [`FileStorage`]: a write-ahead log plus a snapshot file in one directory.
//!
//! Layout:
//! - `wal`: records, each `[length: u32 LE][crc32 of payload: u32 LE][payload]`, where the
//!   payload is a JSON [`WalRecord`]. Appended and fsynced before each call returns.
//! - `snapshot`: one record of the same framing holding the latest [`Snapshot`], replaced
//!   atomically (write `snapshot.tmp`, fsync, rename, fsync the directory).
//!
//! After a snapshot is saved the WAL is rewritten the same atomic way, holding only the hard
//! state and the entries after the snapshot, so the WAL stays bounded.
//!
//! Recovery reads records until the first torn or corrupt one (short header, length past the
//! end of the file, bad checksum) and truncates the file there: a crash mid-append leaves a
//! partial record that was never acknowledged.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{crc32, LogState, Storage};
use crate::raft::{Entry, HardState, Recovered, Snapshot};
use crate::Error;

/// A record larger than this is treated as corrupt rather than allocated.
const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;
const HEADER_BYTES: usize = 8;
/// Under the no-fsync bug, acknowledged WAL bytes reach the file at the first write this long
/// after the oldest of them (an operating system writes dirty pages back after ~30 s).
pub const WRITE_BACK_MS: u64 = 5_000;
/// ... or once this many bytes wait.
pub const WRITE_BACK_BYTES: usize = 4 << 20;

#[derive(Debug, Serialize, Deserialize)]
enum WalRecord {
    Entries(Vec<Entry>),
    HardState(HardState),
}

/// Durable storage in a directory. Keeps a copy of what it stores in memory, so `recover` is
/// cheap and compaction can rewrite the WAL.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    wal: File,
    /// False only under the no-fsync bug: writes are acknowledged before they are durable.
    fsync: bool,
    /// Under the no-fsync bug: WAL bytes acknowledged but not yet written to the file, and
    /// when the oldest of them was acknowledged. This stands in for the operating system's
    /// page cache, which a power loss empties: a process crash (SIGKILL) would not lose bytes
    /// already handed to `write`, so without it no real crash could show the bug.
    write_back: Vec<u8>,
    write_back_since: Option<std::time::Instant>,
    state: LogState,
    /// The term and vote last made durable: only changing those needs an fsync of the hard
    /// state, since the commit index is volatile state (Raft paper, Figure 2).
    durable_term_vote: (u64, Option<u64>),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= MAX_RECORD_BYTES, "record too large");
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32(payload).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// Splits `bytes` into the payloads of its valid records and the length of the valid
/// prefix; stops at the first torn or corrupt record.
fn read_records(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut records = Vec::new();
    let mut offset = 0;
    while bytes.len() - offset >= HEADER_BYTES {
        let length =
            u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
        let checksum =
            u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().expect("4 bytes"));
        let start = offset + HEADER_BYTES;
        if length > MAX_RECORD_BYTES || length > bytes.len() - start {
            break;
        }
        let payload = &bytes[start..start + length];
        if crc32(payload) != checksum {
            break;
        }
        records.push(payload);
        offset = start + length;
    }
    (records, offset)
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync the directory.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8], fsync: bool) -> Result<(), Error> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
    file.write_all(bytes).map_err(io_error(&tmp))?;
    if fsync {
        file.sync_all().map_err(io_error(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_error(&path))?;
    if fsync {
        sync_dir(dir)?;
    }
    Ok(())
}

impl FileStorage {
    /// Opens (creating if needed) the storage in `dir` and recovers its state, truncating a
    /// torn or corrupt WAL tail. `fsync` is false only for the no-fsync bug.
    pub fn open(dir: &Path, fsync: bool) -> Result<FileStorage, Error> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut state = LogState::default();

        let snapshot_path = dir.join("snapshot");
        if snapshot_path.exists() {
            let bytes = fs::read(&snapshot_path).map_err(io_error(&snapshot_path))?;
            let (records, _) = read_records(&bytes);
            // The snapshot file is replaced atomically, so a bad one is real corruption.
            let payload = records
                .first()
                .ok_or_else(|| Error::Corrupt("snapshot file has no valid record".into()))?;
            state.snapshot = serde_json::from_slice(payload)
                .map_err(|e| Error::Corrupt(format!("snapshot: {e}")))?;
        }

        let wal_path = dir.join("wal");
        let created = !wal_path.exists();
        let mut wal = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&wal_path)
            .map_err(io_error(&wal_path))?;
        if created && fsync {
            // The new file's directory entry must be durable before any append is.
            sync_dir(dir)?;
        }
        let mut bytes = Vec::new();
        wal.read_to_end(&mut bytes).map_err(io_error(&wal_path))?;
        let (records, valid_bytes) = read_records(&bytes);
        let mut replayed = LogState {
            snapshot: Snapshot::default(),
            ..LogState::default()
        };
        for payload in records {
            let record: WalRecord = serde_json::from_slice(payload)
                .map_err(|e| Error::Corrupt(format!("wal record: {e}")))?;
            match record {
                WalRecord::Entries(entries) => replay_append(&mut replayed, &entries),
                WalRecord::HardState(hard_state) => replayed.hard_state = hard_state,
            }
        }
        if valid_bytes < bytes.len() {
            // A torn or corrupt tail: it was never acknowledged, so drop it for good.
            wal.set_len(valid_bytes as u64)
                .map_err(io_error(&wal_path))?;
            wal.sync_all().map_err(io_error(&wal_path))?;
        }
        state.hard_state = replayed.hard_state;
        state.entries = entries_after_snapshot(&state.snapshot, replayed.entries);
        let durable_term_vote = (state.hard_state.term, state.hard_state.vote);
        Ok(FileStorage {
            durable_term_vote,
            dir: dir.to_path_buf(),
            wal,
            fsync,
            write_back: Vec::new(),
            write_back_since: None,
            state,
        })
    }

    /// Flushes the WAL to disk even under the no-fsync bug (a clean shutdown calls it).
    pub fn sync(&mut self) -> Result<(), Error> {
        self.write_back_now()?;
        let path = self.dir.join("wal");
        self.wal.sync_all().map_err(io_error(&path))
    }

    fn append_record(&mut self, record: &WalRecord) -> Result<(), Error> {
        let payload = serde_json::to_vec(record).expect("wal records always serialize");
        self.write_wal(&frame(&payload), true)
    }

    /// Appends framed records to the WAL: written and fsynced (when `needs_sync`) before
    /// returning, or, under the no-fsync bug, kept in the write-back buffer.
    fn write_wal(&mut self, bytes: &[u8], needs_sync: bool) -> Result<(), Error> {
        if !self.fsync {
            self.write_back.extend_from_slice(bytes);
            let since = *self
                .write_back_since
                .get_or_insert_with(std::time::Instant::now);
            if since.elapsed().as_millis() >= u128::from(WRITE_BACK_MS)
                || self.write_back.len() >= WRITE_BACK_BYTES
            {
                self.write_back_now()?;
            }
            return Ok(());
        }
        let path = self.dir.join("wal");
        self.wal.write_all(bytes).map_err(io_error(&path))?;
        if needs_sync {
            self.wal.sync_data().map_err(io_error(&path))?;
        }
        Ok(())
    }

    /// Hands the write-back buffer to the file (no fsync: this is the bug).
    fn write_back_now(&mut self) -> Result<(), Error> {
        if self.write_back.is_empty() {
            return Ok(());
        }
        let path = self.dir.join("wal");
        self.wal
            .write_all(&self.write_back)
            .map_err(io_error(&path))?;
        self.write_back.clear();
        self.write_back_since = None;
        Ok(())
    }

    /// Saves the snapshot file, then rewrites the WAL to hold only what follows it.
    fn save_snapshot(&mut self) -> Result<(), Error> {
        // The rewritten WAL holds everything in memory, the write-back buffer included.
        self.write_back.clear();
        self.write_back_since = None;
        let payload = serde_json::to_vec(&self.state.snapshot).expect("snapshots always serialize");
        write_atomically(&self.dir, "snapshot", &frame(&payload), self.fsync)?;
        let mut wal_bytes = Vec::new();
        for record in [
            WalRecord::HardState(self.state.hard_state),
            WalRecord::Entries(self.state.entries.clone()),
        ] {
            wal_bytes.extend(frame(
                &serde_json::to_vec(&record).expect("wal records always serialize"),
            ));
        }
        write_atomically(&self.dir, "wal", &wal_bytes, self.fsync)?;
        let path = self.dir.join("wal");
        self.wal = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        Ok(())
    }
}

/// Replays an `Entries` record without the snapshot invariants (the WAL may predate the
/// snapshot file if a crash fell between saving the snapshot and rewriting the WAL).
fn replay_append(state: &mut LogState, entries: &[Entry]) {
    let Some(first) = entries.first() else { return };
    let keep = state
        .entries
        .iter()
        .take_while(|e| e.index < first.index)
        .count();
    state.entries.truncate(keep);
    if state
        .entries
        .last()
        .into_iter()
        .all(|last| last.index + 1 == first.index)
    {
        state.entries.extend_from_slice(entries);
    } else {
        // A gap means the older entries belong to a log the snapshot replaced.
        state.entries = entries.to_vec();
    }
}

/// The WAL's entries that follow `snapshot`. If the WAL holds the snapshot's last index with
/// another term, or does not reach it contiguously, its entries belong to a log the
/// snapshot replaced (a crash between saving the snapshot and rewriting the WAL): drop them.
fn entries_after_snapshot(snapshot: &Snapshot, entries: Vec<Entry>) -> Vec<Entry> {
    if snapshot.index == 0 {
        return entries;
    }
    let at_snapshot = entries.iter().find(|e| e.index == snapshot.index);
    let starts_right_after = entries
        .first()
        .is_some_and(|e| e.index == snapshot.index + 1);
    let consistent = match at_snapshot {
        Some(entry) => entry.term == snapshot.term,
        None => starts_right_after,
    };
    if !consistent {
        return Vec::new();
    }
    entries
        .into_iter()
        .filter(|e| e.index > snapshot.index)
        .collect()
}

impl Storage for FileStorage {
    /// Entries and hard state in one write and at most one fsync; none when only the commit
    /// index moved (a node that restarts with an older commit index learns the newer one from
    /// the leader, and every entry it had applied is committed on a majority).
    fn persist(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<(), Error> {
        let mut bytes = Vec::new();
        let mut needs_sync = false;
        if !entries.is_empty() {
            self.state.append(entries);
            let record = WalRecord::Entries(entries.to_vec());
            bytes.extend(frame(
                &serde_json::to_vec(&record).expect("wal records always serialize"),
            ));
            needs_sync = true;
        }
        if let Some(hard_state) = hard_state {
            self.state.hard_state = *hard_state;
            let record = WalRecord::HardState(*hard_state);
            bytes.extend(frame(
                &serde_json::to_vec(&record).expect("wal records always serialize"),
            ));
            needs_sync |= (hard_state.term, hard_state.vote) != self.durable_term_vote;
        }
        if bytes.is_empty() {
            return Ok(());
        }
        self.write_wal(&bytes, needs_sync)?;
        if self.fsync && needs_sync {
            self.durable_term_vote = (self.state.hard_state.term, self.state.hard_state.vote);
        }
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), Error> {
        self.state.append(entries);
        self.append_record(&WalRecord::Entries(entries.to_vec()))
    }

    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), Error> {
        self.state.hard_state = *hard_state;
        self.append_record(&WalRecord::HardState(*hard_state))
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        self.state.install_snapshot(snapshot);
        self.save_snapshot()
    }

    fn compact(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        self.state.compact(snapshot);
        self.save_snapshot()
    }

    fn recover(&self) -> Result<Recovered, Error> {
        Ok(self.state.recovered())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryKind;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("faultline-raftkv-wal-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn entries(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
        (lo..=hi)
            .map(|index| Entry {
                index,
                term,
                kind: EntryKind::Command(vec![index as u8; 3]),
            })
            .collect()
    }

    /// The no-fsync bug keeps acknowledged writes in a write-back buffer that a crash (here:
    /// dropping the storage without `sync`) loses; a clean `sync` keeps them.
    #[test]
    fn no_fsync_loses_acknowledged_entries_in_a_crash_but_not_in_a_clean_shutdown() {
        let dir = TempDir::new();
        let mut storage = FileStorage::open(&dir.0, true).unwrap();
        storage.persist(&entries(1, 2, 1), None).unwrap();
        drop(storage);
        let mut storage = FileStorage::open(&dir.0, false).unwrap();
        storage.persist(&entries(3, 5, 1), None).unwrap();
        assert_eq!(storage.recover().unwrap().entries.len(), 5, "acknowledged");
        drop(storage); // a crash: the write-back buffer is gone
        let mut storage = FileStorage::open(&dir.0, false).unwrap();
        assert_eq!(
            storage.recover().unwrap().entries.len(),
            2,
            "lost in the crash"
        );
        storage.persist(&entries(3, 4, 1), None).unwrap();
        storage.sync().unwrap();
        drop(storage);
        let storage = FileStorage::open(&dir.0, true).unwrap();
        assert_eq!(
            storage.recover().unwrap().entries.len(),
            4,
            "kept by a clean sync"
        );
    }

    #[test]
    fn wal_recovers_entries_and_hard_state_after_reopen() {
        let dir = TempDir::new();
        let mut storage = FileStorage::open(&dir.0, true).unwrap();
        storage.append(&entries(1, 4, 1)).unwrap();
        storage.append(&entries(3, 5, 2)).unwrap();
        storage
            .save_hard_state(&HardState {
                term: 2,
                vote: Some(3),
                commit: 4,
            })
            .unwrap();
        drop(storage);
        let recovered = FileStorage::open(&dir.0, true).unwrap().recover().unwrap();
        assert_eq!(
            recovered.hard_state,
            HardState {
                term: 2,
                vote: Some(3),
                commit: 4
            }
        );
        let terms: Vec<u64> = recovered.entries.iter().map(|e| e.term).collect();
        assert_eq!(terms, vec![1, 1, 2, 2, 2]);
    }

    #[test]
    fn persist_writes_entries_and_hard_state_together_and_commit_only_changes_recover() {
        let dir = TempDir::new();
        let mut storage = FileStorage::open(&dir.0, true).unwrap();
        let voted = HardState {
            term: 3,
            vote: Some(2),
            commit: 0,
        };
        storage.persist(&entries(1, 3, 3), Some(&voted)).unwrap();
        assert_eq!(storage.durable_term_vote, (3, Some(2)));
        // Only the commit index moves: written, not fsynced, and still read back after a
        // clean close.
        let committed = HardState { commit: 3, ..voted };
        storage.persist(&[], Some(&committed)).unwrap();
        drop(storage);
        let recovered = FileStorage::open(&dir.0, true).unwrap().recover().unwrap();
        assert_eq!(recovered.hard_state, committed);
        assert_eq!(recovered.entries.len(), 3);
    }

    #[test]
    fn wal_recovery_truncates_a_torn_tail() {
        let dir = TempDir::new();
        let mut storage = FileStorage::open(&dir.0, true).unwrap();
        storage.append(&entries(1, 2, 1)).unwrap();
        storage.append(&entries(3, 3, 1)).unwrap();
        drop(storage);
        let wal = dir.0.join("wal");
        let full = fs::metadata(&wal).unwrap().len();
        // A crash mid-write: the last record lost its last 5 bytes.
        OpenOptions::new()
            .write(true)
            .open(&wal)
            .unwrap()
            .set_len(full - 5)
            .unwrap();
        let mut storage = FileStorage::open(&dir.0, true).unwrap();
        assert_eq!(storage.recover().unwrap().entries.len(), 2);
        let after_recovery = fs::metadata(&wal).unwrap().len();
        assert!(
            after_recovery < full - 5,
            "the torn record is cut off the file"
        );
        // Appending after recovery produces a readable log.
        storage.append(&entries(3, 4, 2)).unwrap();
        drop(storage);
        assert_eq!(
            FileStorage::open(&dir.0, true)
                .unwrap()
                .recover()
                .unwrap()
                .entries
                .len(),
            4
        );
    }

    #[test]
    fn wal_recovery_at_every_torn_offset_yields_an_acknowledged_prefix() {
        let dir = TempDir::new();
        let mut storage = FileStorage::open(&dir.0, true).unwrap();
        let mut boundaries = vec![0u64];
        for index in 1..=4 {
            storage.append(&entries(index, index, 1)).unwrap();
            boundaries.push(fs::metadata(dir.0.join("wal")).unwrap().len());
        }
        drop(storage);
        let full = fs::read(dir.0.join("wal")).unwrap();
        for cut in 0..=full.len() {
            fs::write(dir.0.join("wal"), &full[..cut]).unwrap();
            let recovered = FileStorage::open(&dir.0, true).unwrap().recover().unwrap();
            // Whole records before the cut survive; the torn one is gone.
            let expected = boundaries
                .iter()
                .filter(|&&b| b > 0 && b <= cut as u64)
                .count();
            assert_eq!(recovered.entries.len(), expected, "cut at byte {cut}");
            assert_eq!(
                fs::metadata(dir.0.join("wal")).unwrap().len(),
                boundaries[expected]
            );
        }
    }

    #[test]
    fn wal_recovery_truncates_at_a_corrupt_checksum() {
        let dir = TempDir::new();
        let mut storage = FileStorage::open(&dir.0, true).unwrap();
        storage.append(&entries(1, 1, 1)).unwrap();
        storage.append(&entries(2, 2, 1)).unwrap();
        drop(storage);
        let wal = dir.0.join("wal");
        let mut bytes = fs::read(&wal).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xFF;
        fs::write(&wal, &bytes).unwrap();
        let recovered = FileStorage::open(&dir.0, true).unwrap().recover().unwrap();
        assert_eq!(recovered.entries.len(), 1);
    }

    #[test]
    fn snapshot_is_saved_atomically_and_compacts_the_wal() {
        let dir = TempDir::new();
        let mut storage = FileStorage::open(&dir.0, true).unwrap();
        storage.append(&entries(1, 10, 1)).unwrap();
        storage
            .save_hard_state(&HardState {
                term: 1,
                vote: None,
                commit: 8,
            })
            .unwrap();
        storage
            .compact(&Snapshot {
                index: 8,
                term: 1,
                data: b"state".to_vec(),
            })
            .unwrap();
        assert!(!dir.0.join("snapshot.tmp").exists());
        storage.append(&entries(11, 11, 1)).unwrap();
        drop(storage);
        let recovered = FileStorage::open(&dir.0, true).unwrap().recover().unwrap();
        assert_eq!(
            recovered.snapshot,
            Snapshot {
                index: 8,
                term: 1,
                data: b"state".to_vec()
            }
        );
        let indexes: Vec<u64> = recovered.entries.iter().map(|e| e.index).collect();
        assert_eq!(indexes, vec![9, 10, 11]);
        assert_eq!(recovered.hard_state.commit, 8);
    }

    #[test]
    fn crash_between_installed_snapshot_and_wal_rewrite_drops_the_replaced_log() {
        let dir = TempDir::new();
        let mut storage = FileStorage::open(&dir.0, true).unwrap();
        storage.append(&entries(1, 6, 1)).unwrap();
        drop(storage);
        // The snapshot file landed (term 3 at index 5) but the WAL still holds the old log.
        let snapshot = Snapshot {
            index: 5,
            term: 3,
            data: vec![],
        };
        write_atomically(
            &dir.0,
            "snapshot",
            &frame(&serde_json::to_vec(&snapshot).unwrap()),
            true,
        )
        .unwrap();
        let recovered = FileStorage::open(&dir.0, true).unwrap().recover().unwrap();
        assert_eq!(recovered.snapshot.index, 5);
        assert!(
            recovered.entries.is_empty(),
            "entry 6 followed a different entry 5"
        );
    }

    #[test]
    fn install_snapshot_replaces_the_whole_log() {
        let dir = TempDir::new();
        let mut storage = FileStorage::open(&dir.0, true).unwrap();
        storage.append(&entries(1, 6, 1)).unwrap();
        storage
            .install_snapshot(&Snapshot {
                index: 3,
                term: 2,
                data: vec![9],
            })
            .unwrap();
        drop(storage);
        let recovered = FileStorage::open(&dir.0, true).unwrap().recover().unwrap();
        assert_eq!((recovered.snapshot.index, recovered.entries.len()), (3, 0));
    }
}
