//! faultline's shared vocabulary: the operation record, histories and their file formats.
//!
//! Every part of faultline speaks one history: a sequence of [`Op`] events (invoke, then ok /
//! fail / info) in real-time order, stored as JSON Lines (see `CONTRACTS.md` §1). Workloads
//! record it, checkers read it, reports draw it.
//!
//! ```
//! use faultline_core::{jsonl, OpType};
//! let text = r#"{"process":0,"type":"invoke","f":"write","value":3}
//! {"process":0,"type":"ok","f":"write","value":3}"#;
//! let history = jsonl::read_jsonl(text.as_bytes(), "example").unwrap();
//! assert_eq!(history.ops[1].kind, OpType::Ok);
//! assert_eq!(history.pairs().unwrap().len(), 1);
//! ```
//!
//! Design decision: values stay `serde_json::Value` here, untyped. Each checker parses the
//! values it understands into its own types first, so one history format serves registers,
//! queues and transactions alike, and a history a checker cannot read yields `unknown` with a
//! reason instead of a panic.

pub mod broadcast;
pub mod client;
pub mod db;
pub mod edn;
pub mod election;
pub mod ephemeral;
pub mod error;
pub mod future;
pub mod harness_error;
pub mod history;
pub mod import;
pub mod jsonl;
pub mod lock;
mod names;
pub mod nemesis;
pub mod net;
pub mod queue;
pub mod remote;
pub mod test;
pub mod txn;
pub mod unique_ids;
pub mod watch;

pub use client::{Client, Completion, Invocation};
pub use db::{ClockSkew, Db, Kill, LogProbe, LogStatus, Node, Pause, Primary};
pub use error::HistoryError;
pub use future::BoxFuture;
pub use harness_error::HarnessError;
pub use history::{History, Op, OpType, Pair, Process};
pub use import::{read_history_file, Format};
pub use nemesis::Nemesis;
pub use net::{Grudge, Impairment, LinkDelays, Net};
pub use remote::Remote;
pub use test::{Limits, Test};
