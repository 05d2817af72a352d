//! raftkv: faultline's own replicated key-value store, built on Raft.
//!
//! It is a product of its own: it depends on no other faultline crate, and the harness tests
//! it from the outside like any other store. The pieces, one module each:
//!
//! - [`raft`]: a sans-IO Raft core. The main type is [`raft::RawNode`]: events in (ticks,
//!   messages, proposals, read requests), a [`raft::Ready`] out (what to persist, send and
//!   apply). Pre-vote, fast log back-off, the Figure 8 commit rule, a no-op on election,
//!   ReadIndex reads, snapshots and InstallSnapshot. Static membership.
//! - [`storage`]: a CRC32-checksummed write-ahead log with atomic snapshot files
//!   ([`storage::FileStorage`]) and an in-memory twin ([`storage::MemStorage`]) that can
//!   lose unsynced writes on a simulated crash.
//! - [`kv`]: the deterministic key-value state machine (get, put, cas, delete, transactions).
//! - [`bug`]: switches that break the store on purpose, each naming the rule it breaks.
//! - [`sim`]: a deterministic simulation of a cluster on virtual time, driven by one seed.
//! - [`server`]: the tokio shell that makes a node a process: an event loop per node that
//!   owns the core and storage, a TCP peer transport (outgoing links bound to the node's own
//!   address), and a small HTTP/1.1 + JSON client API. The `raftkv` binary wraps
//!   [`server::Server`]; see `raftkv --help`.
//!
//! # The server
//! ```text
//! raftkv --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \
//!        --listen-client 127.0.0.1:8001 --data-dir /var/lib/raftkv [--bug NAME[,NAME]]
//! curl -X PUT -d '3' localhost:8001/kv/x                      # {"ok":true,"index":2}
//! curl localhost:8001/kv/x                                    # {"ok":true,"value":3}
//! curl -X POST -d '{"expected":3,"new":4}' localhost:8001/kv/x/cas
//! curl -X DELETE localhost:8001/kv/x
//! curl -X POST -d '[["r","x",null],["append","l",1]]' localhost:8001/txn
//! curl localhost:8001/status       # {"id","term","leader","role","commit","applied",...}
//! ```
//! `GET /kv/{key}` is linearizable (ReadIndex); `?stale=true` reads the node's local state.
//! Followers forward requests to the leader. Every error body carries `definite`: `true` when
//! the request certainly had no effect (503 not-leader, 409 compare-failed, 400), `false` when
//! it may have (504 timeout, 500 leadership-lost). The [`server`] module documents the rest.
//!
//! # Example
//! A one-node cluster elects itself and commits a proposal:
//! ```
//! use faultline_raftkv::raft::{Config, RawNode, Recovered, Role};
//! use faultline_raftkv::storage::{persist_ready, MemStorage, Storage, SyncMode};
//!
//! let mut storage = MemStorage::new(SyncMode::Fsync);
//! let mut node = RawNode::new(Config::new(1, vec![1]), Recovered::default(), 42);
//! let mut applied = Vec::new();
//! let mut drive = |node: &mut RawNode, applied: &mut Vec<u64>| {
//!     while node.has_ready() {
//!         let ready = node.ready();
//!         persist_ready(&mut storage, &ready).unwrap(); // 1. persist
//!         assert!(ready.messages.is_empty());            // 2. send (no peers here)
//!         applied.extend(ready.committed_entries.iter().map(|e| e.index)); // 3. apply
//!         node.advance();
//!     }
//! };
//! node.campaign();
//! drive(&mut node, &mut applied);
//! assert_eq!(node.role(), Role::Leader);
//! let (index, _term) = node.propose(b"put x 1".to_vec()).unwrap();
//! drive(&mut node, &mut applied);
//! assert_eq!(applied, vec![1, index]); // the leader's no-op, then the command
//! ```
//!
//! # The design decision a reader would question
//! The core is sans-IO: it never writes a file, reads a clock or sends a packet, and it owns
//! no thread. That costs a driver loop in every user (the server shell, the simulation), and
//! the strict handle-then-`advance` contract. It buys determinism: the simulation runs five
//! nodes on virtual time in one thread, and one `u64` seed replays a run exactly — including
//! the election timeouts, which come from an RNG seeded by the caller rather than the OS.
//! Bugs live in the same code path as the correct behaviour, behind [`bug::Bugs`], so the
//! switch a test flips is the code a user would run.

pub mod bug;
pub mod cli;
pub mod kv;
pub mod raft;
pub mod server;
pub mod sim;
pub mod storage;

pub use bug::{Bug, Bugs};

use std::path::PathBuf;

/// Errors of the raftkv library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bug switch name that does not exist.
    #[error("unknown bug {0:?}; known: stale-read, no-fsync, lease-read, forget-vote, old-term-commit, snapshot-isolation-txn")]
    UnknownBug(String),
    /// A file operation failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Stored or received bytes that do not decode (past what recovery may truncate).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A server configuration that cannot work (flags that contradict each other).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}
