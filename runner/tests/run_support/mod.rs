//! What the end-to-end tests of `faultline test` share: running the binary, showing its
//! output, reading the JSON files a run leaves, and a store directory removed when a test ends.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use serde_json::Value;
use std::path::{Path, PathBuf};
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

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A fresh store directory, removed when the test ends.
pub struct Store(pub PathBuf);

impl Store {
    /// `faultline-<suite>-<name>-<pid>` in the temporary directory, empty.
    pub fn new(suite: &str, name: &str) -> Store {
        let dir =
            std::env::temp_dir().join(format!("faultline-{suite}-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Store(dir)
    }

    pub fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }

    /// The run `store/latest` points at.
    pub fn latest(&self) -> PathBuf {
        std::fs::canonicalize(self.0.join("latest")).expect("store/latest")
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
