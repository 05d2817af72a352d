//! The systems under test, one module per target: raftkv, etcd, zookeeper, postgres, memory.
//!
//! Each target implements the `Db` seam (set up and tear down a cluster) and a `Client` that
//! turns workload operations into requests. This crate is filled by the harness issue.
