//! faultline's runner as a library: only its documentation. The `faultline` binary
//! (`src/main.rs`) is the runner itself; this library holds the tutorial so that its code
//! is compiled and run by `cargo test` (`cargo test -p faultline-runner --doc`).
//!
//! Design decision: the tutorial lives in `docs/tutorial.md`, where readers look for it, and
//! is included here rather than copied, so the text people read is the text that is tested.

#[doc = include_str!("../../docs/tutorial.md")]
pub mod tutorial {}
