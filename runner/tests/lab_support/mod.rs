//! What the lab tests share: running the faultline binary, showing its output, the root check,
//! and a guard that takes a lab down when a test ends, passed or failed.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::process::{Command, Output};

pub fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("faultline runs")
}

pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

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
