//! Workloads: generators of operations and the interpreter that records them as a history.
//!
//! The interpreter, not the client, builds each recorded `Op`, so a client cannot write a
//! malformed history. This crate is filled by the harness issue.
