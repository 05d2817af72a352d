//! What the lab tests share: running the faultline binary, showing its output, the root check,
//! and a guard that takes a lab down when a test ends, passed or failed.

#![allow(dead_code)] // Each test binary uses its own part of this module.

#[path = "../run_support/mod.rs"]
mod run_support;
pub use run_support::{faultline, text};

/// Labs need root; without it these tests say why and pass.
pub fn root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string));
    if euid.as_deref() == Some("0") {
        true
    } else {
        eprintln!("skipped: lab tests need root (network namespaces, a bridge, sshd)");
        false
    }
}

/// Takes the lab down when the test ends, passed or failed (a no-op when the run already
/// took down the lab it brought up).
pub struct Down(pub String);

impl Drop for Down {
    fn drop(&mut self) {
        let out = faultline(&["lab", "down", "--name", &self.0]);
        if !out.status.success() {
            eprintln!("lab down {}: {}", self.0, text(&out));
        }
    }
}
