//! The nemesis: faults (partitions, pauses, kills, clock skew) and the schedules that inject
//! them, each recorded as a nemesis event and healed on every exit path.
//!
//! Today only `none` exists: [`build`] returns the [`NoopNemesis`] for it and a clear error for
//! every other fault kind, which is named but not available yet.
//!
//! ```
//! let nemesis = faultline_nemesis::build(&["none".to_string()]);
//! assert!(nemesis.is_ok());
//! let Err(e) = faultline_nemesis::build(&["partition".to_string()]) else { panic!() };
//! assert!(e.to_string().contains("not available yet"));
//! ```
//!
//! Design decision: the seam ([`faultline_core::Nemesis`]) lives in core so targets can offer
//! capabilities to it; this crate holds the faults and their schedules.

pub use faultline_core::nemesis::NoopNemesis;
use faultline_core::Nemesis;

/// Every fault kind `--nemesis` names.
pub const NAMES: [&str; 6] = ["partition", "pause", "kill", "clock", "loss", "none"];

/// Why a nemesis cannot be built (a bad argument).
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    #[error("nemesis {0:?} is not available yet: only none can run today")]
    NotAvailable(String),
    #[error("unknown nemesis {0:?}; known: {known}", known = NAMES.join(", "))]
    Unknown(String),
}

/// The nemesis for the given fault kinds (`--nemesis a,b`).
pub fn build(names: &[String]) -> Result<Box<dyn Nemesis>, NemesisError> {
    for name in names {
        match name.as_str() {
            "none" => {}
            known if NAMES.contains(&known) => {
                return Err(NemesisError::NotAvailable(known.to_string()))
            }
            other => return Err(NemesisError::Unknown(other.to_string())),
        }
    }
    Ok(Box::new(NoopNemesis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_builds_and_unknown_names_are_refused() {
        assert!(build(&[]).is_ok());
        let Err(e) = build(&["bogus".to_string()]) else {
            panic!()
        };
        assert!(e.to_string().contains("unknown nemesis"));
    }
}
