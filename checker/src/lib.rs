//! faultline's checkers: they read a history and return a verdict with its evidence.
//!
//! The main entry point today is [`linearizability::check`]: is there one order of the
//! operations, consistent with real time, that a sequential [`models::Model`] explains?
//! Checkers run offline on a history file, like Elle and Porcupine; they never talk to a
//! database.
//!
//! ```
//! use faultline_checker::{linearizability, ModelKind, Validity};
//! use faultline_core::{History, Op, OpType};
//! use serde_json::json;
//! let history = History::new(vec![
//!     Op::invoke(0, "write", json!(1)),
//!     Op::complete(0, OpType::Ok, "write", json!(1)),
//!     Op::invoke(1, "read", json!(null)),
//!     Op::complete(1, OpType::Ok, "read", json!(1)),
//! ]);
//! let options = linearizability::CheckOptions::new(ModelKind::Register);
//! assert_eq!(linearizability::check(&history, &options).unwrap().valid, Validity::Valid);
//! ```
//!
//! Design decision: a verdict is data ([`Validity`] plus evidence), never an error. Errors are
//! kept for histories that are not histories (malformed pairing); a history the model cannot
//! interpret is `unknown`, with the reason.

pub mod broadcast;
pub mod election;
pub mod ephemeral;
pub mod linearizability;
pub mod lock;
pub mod models;
pub mod queue;
pub mod set;
pub mod txn;
pub mod unique_ids;
mod validity;
pub mod watch;

pub use models::{ModelKind, ModelOptions};
pub use validity::Validity;
