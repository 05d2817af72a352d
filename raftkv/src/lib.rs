//! raftkv: faultline's own replicated key-value store, built on Raft.
//!
//! This crate will hold a sans-IO Raft core (events in; messages, entries to persist and
//! committed entries out), a write-ahead log, the key-value state machine and the `raftkv`
//! server binary. It depends on no other faultline crate: it is a product of its own, and the
//! harness tests it from the outside like any other store.
