//! `faultline test --target-file`: bring-your-own stores, end to end with local processes.
//!
//! The worked example (`examples/python-kv`): its replication flaw is found (invalid) and the
//! variable that fixes it makes the run pass (valid), with the JSON Lines client program and
//! with the HTTP request templates. A client program that sends garbage, dies or hangs is
//! recorded as `info` and replaced by a new process, and the history stays checkable.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// One store cluster at a time: each is a dozen Python processes, and on two cores two of them
/// at once would mostly measure each other.
static CLUSTERS: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    CLUSTERS.lock().unwrap_or_else(|e| e.into_inner())
}

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("faultline runs")
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn example(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/python-kv")
        .join(file)
        .to_string_lossy()
        .to_string()
}

/// A fresh store directory for one test.
fn store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-byo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn latest(store: &Path) -> PathBuf {
    std::fs::canonicalize(store.join("latest")).expect("store/latest")
}

fn history(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .expect("history.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn results(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap()
}

/// The pids the run logged as started (`started <name> node=.. pid=..` from the target, or
/// `client stderr: started <pid>` from a test client).
fn logged_pids(run: &Path, marker: &str) -> Vec<u32> {
    let log = std::fs::read_to_string(run.join("faultline.log")).expect("faultline.log");
    log.lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| {
            let pid = l.split("pid=").nth(1)?;
            pid.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .collect()
}

/// Whether `pid` runs a command line mentioning `what` (a reused pid running something else
/// does not count).
fn runs(pid: u32, what: &str) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).contains(what) && !stat.contains(") Z ")
}

/// One run of the Python store: `reads` is its `--var reads=` (backup = the flaw).
fn python_kv(file: &str, reads: &str, nemesis: &str, seed: &str, store: &Path) -> Output {
    faultline(&[
        "test",
        "--target-file",
        &example(file),
        "--var",
        &format!("reads={reads}"),
        "--nemesis",
        nemesis,
        "--concurrency",
        "6",
        "--time-limit",
        "6",
        "--rate",
        "100",
        "--seed",
        seed,
        "--store",
        &store.to_string_lossy(),
    ])
}

/// What every run of the example leaves: the target file beside the history, each node's
/// log, faults in the history, and no store process running.
fn assert_run_is_complete(run: &Path) {
    assert!(run.join("target.toml").is_file(), "the target file is kept");
    for node in ["n1", "n2", "n3"] {
        let log = run.join("nodes").join(node).join("store.log");
        let log = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{log:?}: {e}"));
        assert!(log.contains("kvstore: node"), "{node}'s log: {log}");
    }
    let faults: Vec<String> = history(run)
        .iter()
        .filter(|op| op["process"] == "nemesis")
        .map(|op| op["f"].as_str().unwrap().to_string())
        .collect();
    assert!(
        faults.iter().any(|f| f.starts_with("start-partition")),
        "partitions were injected: {faults:?}"
    );
    let started = logged_pids(run, "started python-kv");
    assert!(started.len() >= 3, "three nodes started: {started:?}");
    for pid in started {
        assert!(!runs(pid, "kvstore.py"), "node pid {pid} outlived the run");
    }
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
    assert!(test["target_options"]["target_file"]
        .as_str()
        .unwrap()
        .ends_with(".toml"));
}

#[test]
fn the_python_stores_stale_reads_are_found_under_partitions() {
    let _one = one_at_a_time();
    let store = store("flaw");
    let out = python_kv("store.toml", "backup", "partition", "11", &store);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stdout.contains("verdict: INVALID"), "{stdout}");
    assert!(stdout.contains("no linearization"), "{stdout}");
    assert!(
        stdout.contains("--target-file") && stdout.contains("--var reads=backup"),
        "the rerun command names the file and the variable: {stdout}"
    );
    let run = latest(&store);
    assert!(
        run.parent()
            .unwrap()
            .ends_with("python-kv-register-reads-backup"),
        "{run:?}"
    );
    let results = results(&run);
    assert_eq!(results["valid"], Value::Bool(false));
    // The evidence involves a read: a stale value served by a backup.
    let failure = &results["result"]["failures"][0];
    let ops = std::iter::once(&failure["op"]).chain(failure["window"].as_array().unwrap().iter());
    assert!(ops.into_iter().any(|op| op["f"] == "read"), "{failure:#}");
    assert_run_is_complete(&run);
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn the_fixed_python_store_passes_under_partitions_kills_and_pauses() {
    let _one = one_at_a_time();
    let store = store("fixed");
    let out = python_kv(
        "store.toml",
        "primary",
        "partition,kill,pause",
        "12",
        &store,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout.contains("verdict: valid"), "{stdout}");
    let run = latest(&store);
    let ok = history(&run)
        .iter()
        .filter(|op| op["type"] == "ok" && op["process"] != "nemesis")
        .count();
    assert!(ok > 50, "the store served operations: {ok} ok");
    assert_run_is_complete(&run);
    let _ = std::fs::remove_dir_all(&store);
}

/// The same store through the HTTP request templates (`store-http.toml`), no client program.
#[test]
fn the_http_client_variant_finds_the_flaw_and_passes_the_fix() {
    let _one = one_at_a_time();
    let store = store("http");
    let out = python_kv("store-http.toml", "backup", "partition", "13", &store);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = python_kv("store-http.toml", "primary", "partition", "13", &store);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = latest(&store);
    let log = std::fs::read_to_string(run.join("faultline.log")).unwrap();
    assert!(
        !log.contains("client stderr"),
        "no client program runs with HTTP templates"
    );
    // cas mismatches are definite failures that the checker reads as observations.
    assert!(history(&run)
        .iter()
        .any(|op| op["type"] == "fail" && op["error"] == "compare-failed"));
    let _ = std::fs::remove_dir_all(&store);
}

/// A client program that misbehaves after applying its operation, in each of the three ways
/// the protocol must survive. Its "store" is a JSON file updated under an exclusive lock, so
/// every operation is atomic and the history must check valid, whatever the client did after.
const MISBEHAVING_CLIENT: &str = r#"
import fcntl, json, os, sys, time
state_path, every = sys.argv[1], int(sys.argv[2])
sys.stderr.write("started pid=%d\n" % os.getpid())
sys.stderr.flush()
count = 0
for line in sys.stdin:
    op = json.loads(line)
    count += 1
    with open(state_path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        state = json.loads(f.read() or "{}")
        key, value, current = str(op["key"]), op["value"], None
        current = state.get(key)
        reply = {"id": op["id"], "type": "ok"}
        if op["f"] == "read":
            reply["value"] = current
        elif op["f"] == "write":
            state[key] = value
        elif op["f"] == "cas":
            if current == value[0]:
                state[key] = value[1]
            else:
                reply = {"id": op["id"], "type": "fail", "error": "compare-failed"}
        f.seek(0)
        f.truncate()
        f.write(json.dumps(state))
        f.flush()
    if count % every == 0:
        how = os.getpid() % 3
        if how == 0:
            print("<html>oops</html>", flush=True)
            continue
        if how == 1:
            sys.exit(7)
        time.sleep(60)
    print(json.dumps(reply), flush=True)
"#;

#[test]
fn a_client_that_sends_garbage_dies_or_hangs_is_info_and_replaced() {
    let _one = one_at_a_time();
    let store = store("protocol");
    let dir = store.join("target");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("client.py"), MISBEHAVING_CLIENT).unwrap();
    let target = dir.join("store.toml");
    std::fs::write(
        &target,
        r#"
name = "flock-register"
nodes = 1
[start]
# The store is the client's state file; the server is only something to start and stop.
command = ["sleep", "600"]
[client]
command = ["python3", "{target_dir}/client.py", "{target_dir}/state.json", "5"]
timeout_ms = 1000
"#,
    )
    .unwrap();
    let out = faultline(&[
        "test",
        "--target-file",
        &target.to_string_lossy(),
        "--nemesis",
        "none",
        "--concurrency",
        "6",
        "--time-limit",
        "4",
        "--rate",
        "200",
        "--seed",
        "14",
        "--store",
        &store.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = latest(&store);
    let history = history(&run);
    let infos: Vec<String> = history
        .iter()
        .filter(|op| op["type"] == "info")
        .map(|op| op["error"].as_str().unwrap_or_default().to_string())
        .collect();
    for kind in ["client-protocol: not JSON", "client-exited", "timeout"] {
        assert!(
            infos.iter().any(|e| e.starts_with(kind)),
            "an info for {kind}: {infos:?}"
        );
    }
    // After an info the worker is a new process of the history: the old one never invokes
    // again.
    let mut ended = std::collections::BTreeSet::new();
    for op in &history {
        let Some(process) = op["process"].as_u64() else {
            continue;
        };
        assert!(
            !ended.contains(&process),
            "process {process} went on after info: {op}"
        );
        if op["type"] == "info" {
            ended.insert(process);
        }
    }
    // And a new client program: one per worker at the start, one after each info (a last one
    // closed at the end of the run may not have got to say it started).
    let clients = logged_pids(&run, "client stderr: started");
    assert!(
        clients.len() >= infos.len().max(7),
        "{} client programs for {} infos",
        clients.len(),
        infos.len()
    );
    for pid in clients {
        assert!(!runs(pid, "client.py"), "client pid {pid} outlived the run");
    }
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn bad_target_files_and_variables_are_bad_arguments() {
    let store = store("bad");
    std::fs::create_dir_all(&store).unwrap();
    let bad = store.join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[start]\ncommand = [\"s\", \"{nope}\"]\n",
    )
    .unwrap();
    let out = faultline(&["test", "--target-file", &bad.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(254), "{}", text(&out));
    assert!(
        text(&out).contains("missing field `client`"),
        "{}",
        text(&out)
    );
    std::fs::write(
        &bad,
        "name = \"x\"\n[start]\ncommand = [\"s\", \"{nope}\"]\n[client]\ncommand = [\"c\"]\n",
    )
    .unwrap();
    let out = faultline(&["test", "--target-file", &bad.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(254), "{}", text(&out));
    assert!(text(&out).contains("`{nope}`"), "{}", text(&out));
    let example = example("store.toml");
    for (flags, why) in [
        (vec!["--var", "colour=red"], "not declared"),
        (vec!["--var", "reads"], "NAME=VALUE"),
        (vec!["--target", "etcd"], "cannot be used with"),
        (vec!["--nemesis", "clock"], "clock"),
    ] {
        let mut args = vec!["test", "--target-file", &example];
        args.extend(flags);
        args.extend(["--store", store.to_str().unwrap()]);
        let out = faultline(&args);
        assert_eq!(out.status.code(), Some(254), "{why}: {}", text(&out));
        assert!(text(&out).contains(why), "{why}: {}", text(&out));
    }
    assert!(
        !store.join("latest").exists(),
        "no run starts with bad arguments"
    );
    let _ = std::fs::remove_dir_all(&store);
}
