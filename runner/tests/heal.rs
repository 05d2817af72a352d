//! A `faultline test` killed with SIGKILL mid-run, locally: its history stays checkable, and
//! `faultline heal` ends what it left behind — a raftkv node it had paused (which cannot notice
//! its parent's death) and etcd members detached by `start-stop-daemon`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The tests run one at a time: each one's `faultline heal` (and `faultline test`, which heals
/// first) would kill the other's leftovers before it could look at them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("faultline runs")
}

fn store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-heal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Every live process marked as started by the harness with pid `harness`, with its state.
fn marked_by(harness: u32) -> Vec<(u32, char, String)> {
    let needle = format!("FAULTLINE_HARNESS={harness}:");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let marked = environ
            .split(|&b| b == 0)
            .any(|var| var.starts_with(needle.as_bytes()));
        if !marked {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .and_then(|s| s.chars().next())
            .unwrap_or('?');
        // A zombie is dead already: it only waits for its parent to reap it.
        if state == 'Z' {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        found.push((
            pid,
            state,
            String::from_utf8_lossy(&cmdline).replace('\0', " "),
        ));
    }
    found
}

/// Waits (bounded) until `ready` holds, polling.
fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The run directory `faultline test` made under `store` (store/<test>/<timestamp>).
fn run_dir(store: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(store.join("latest")).ok()
}

/// Kills the harness with SIGKILL, like an operator's `kill -9` or the OOM killer.
fn sigkill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Runs `faultline heal` and checks it ended everything `harness` left behind.
fn heal_and_check(harness: u32) -> String {
    let out = faultline(&["heal"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    wait_until("the leftovers to be gone", Duration::from_secs(10), || {
        marked_by(harness).is_empty()
    });
    // Nothing is left to heal now.
    let again = faultline(&["heal", "--dry-run"]);
    let again = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(
        !again.contains(&format!("harness {harness}:")),
        "still left behind: {again}"
    );
    stdout
}

fn check_history(run: &Path) {
    let history = run.join("history.jsonl");
    let out = faultline(&["check", "--json", &history.to_string_lossy()]);
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "the history of a killed run must be checkable: {out:?}"
    );
}

#[test]
fn a_paused_raftkv_node_of_a_killed_harness_is_healed() {
    let _one = one_at_a_time();
    let store = store("raftkv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "test",
            "--target",
            "raftkv",
            "--nodes",
            "3",
            "--nemesis",
            "pause",
            "--time-limit",
            "120",
            "--seed",
            "3",
            "--store",
            &store.to_string_lossy(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let harness = child.id();
    // Kill the harness while one of its nodes is stopped.
    wait_until("a paused node", Duration::from_secs(90), || {
        marked_by(harness)
            .iter()
            .any(|(_, state, cmd)| *state == 'T' && cmd.contains("raftkv-server"))
    });
    sigkill(&mut child);
    // The running nodes notice their parent's death and exit; the stopped one cannot.
    std::thread::sleep(Duration::from_secs(3));
    let left = marked_by(harness);
    assert!(
        left.iter()
            .any(|(_, state, cmd)| *state == 'T' && cmd.contains("raftkv-server")),
        "the paused node should outlive the harness until healed: {left:?}"
    );
    let stdout = heal_and_check(harness);
    assert!(stdout.contains("(paused)"), "{stdout}");
    assert!(stdout.contains("killed"), "{stdout}");
    check_history(&run_dir(&store).expect("the run directory"));
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn etcd_members_of_a_killed_harness_are_healed() {
    if !Path::new("/usr/bin/etcd").exists() && std::env::var_os("CI").is_none() {
        eprintln!("skipped: /usr/bin/etcd is not installed (scripts/install-deps installs it)");
        return;
    }
    let _one = one_at_a_time();
    let store = store("etcd");
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "test",
            "--target",
            "etcd",
            "--nodes",
            "3",
            "--nemesis",
            "none",
            "--time-limit",
            "120",
            "--seed",
            "4",
            "--store",
            &store.to_string_lossy(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let harness = child.id();
    // Kill the harness once the cluster serves operations.
    wait_until("operations on etcd", Duration::from_secs(90), || {
        run_dir(&store)
            .and_then(|run| std::fs::read_to_string(run.join("history.jsonl")).ok())
            .is_some_and(|h| h.contains("\"type\":\"ok\""))
    });
    sigkill(&mut child);
    std::thread::sleep(Duration::from_secs(1));
    let members = marked_by(harness)
        .into_iter()
        .filter(|(_, _, cmd)| cmd.contains("etcd"))
        .count();
    assert_eq!(members, 3, "detached etcd members outlive the harness");
    let stdout = heal_and_check(harness);
    assert!(stdout.contains("etcd"), "{stdout}");
    check_history(&run_dir(&store).expect("the run directory"));
    let _ = std::fs::remove_dir_all(&store);
}
