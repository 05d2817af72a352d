//! Reads every history in the shared corpus (`/work/shared/corpus`) with format detection and
//! checks what each folder's `EXPECTED.tsv` says about it: the detected format, the number of
//! client invocations, processes, and completions of each type. Every history must also pair
//! cleanly (each process alternates invoke / completion).
//!
//! The corpus lives outside the crate; when it is absent the tests print a note and pass, so
//! the crate still tests on its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use faultline_core::{read_history_file, Format, History, OpType, Process};

fn corpus_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    if root.is_dir() {
        Some(root)
    } else {
        eprintln!("note: no corpus at {}; skipping", root.display());
        None
    }
}

/// One row of an `EXPECTED.tsv`, by column name.
struct Row(HashMap<String, String>);

impl Row {
    fn text(&self, column: &str) -> &str {
        self.0
            .get(column)
            .unwrap_or_else(|| panic!("EXPECTED.tsv has no column {column}"))
    }

    fn count(&self, column: &str) -> usize {
        let text = self.text(column);
        text.parse()
            .unwrap_or_else(|_| panic!("column {column} is not a count: {text:?}"))
    }

    fn has(&self, column: &str) -> bool {
        self.0.contains_key(column)
    }

    /// The `name=count` pairs of the `detail` column.
    fn detail(&self) -> HashMap<String, usize> {
        self.text("detail")
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .map(|(name, count)| (name.to_string(), count.parse().expect("detail count")))
            .collect()
    }
}

fn expected_rows(folder: &Path) -> BTreeMap<String, Row> {
    let text = std::fs::read_to_string(folder.join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header line").split('\t').collect();
    lines
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let cells = line.split('\t').map(str::to_string);
            let row: HashMap<String, String> =
                header.iter().map(|h| h.to_string()).zip(cells).collect();
            (row["file"].clone(), Row(row))
        })
        .collect()
}

/// Every history file under `folder`, relative to it: all but the READMEs and `.tsv` tables.
fn history_files(folder: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable corpus folder") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy();
            if name == "README.md" || name.ends_with(".tsv") {
                continue;
            }
            let relative = path
                .strip_prefix(folder)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            files.insert(relative);
        }
    }
    files
}

/// What the tables count, computed from a history.
#[derive(Debug, Default)]
struct Counts {
    /// Invocations by integer (client) processes.
    ops: usize,
    processes: usize,
    ok: usize,
    fail: usize,
    info: usize,
    never_completed: usize,
    /// Invocations per `f`.
    by_f: HashMap<String, usize>,
    keys: usize,
}

fn counts(history: &History) -> Counts {
    let mut counts = Counts::default();
    let mut processes = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for op in history.client_ops() {
        let Process::Client(process) = op.process else {
            unreachable!()
        };
        processes.insert(process);
        if let Some(key) = &op.key {
            keys.insert(key.to_string());
        }
        match op.kind {
            OpType::Invoke => {
                counts.ops += 1;
                *counts.by_f.entry(op.f.clone()).or_default() += 1;
            }
            OpType::Ok => counts.ok += 1,
            OpType::Fail => counts.fail += 1,
            OpType::Info => counts.info += 1,
        }
    }
    counts.processes = processes.len();
    counts.keys = keys.len();
    let pairs = history
        .pairs()
        .unwrap_or_else(|e| panic!("the history does not pair: {e}"));
    counts.never_completed = pairs
        .iter()
        .filter(|pair| pair.completion.is_none())
        .count();
    counts
}

/// Reads every file of a corpus folder, checks detection and the common columns, and hands each
/// history to `check` for the folder's own columns.
fn check_folder(folder_name: &str, check: impl Fn(&str, &Row, &History, Format)) {
    let Some(root) = corpus_root() else { return };
    let folder = root.join(folder_name);
    let expected = expected_rows(&folder);
    let files = history_files(&folder);
    let listed: BTreeSet<String> = expected.keys().cloned().collect();
    assert_eq!(
        files, listed,
        "{folder_name}: the files on disk and in EXPECTED.tsv differ"
    );
    let started = Instant::now();
    for file in &files {
        let path = folder.join(file);
        let (history, format) = read_history_file(&path, Format::Auto)
            .unwrap_or_else(|e| panic!("{folder_name}/{file}: {e}"));
        let row = &expected[file];
        let counts = counts(&history);
        assert_eq!(counts.ops, row.count("ops"), "{folder_name}/{file}: ops");
        for (column, got) in [
            ("ok", counts.ok),
            ("fail", counts.fail),
            ("info", counts.info),
        ] {
            if row.has(column) {
                assert_eq!(got, row.count(column), "{folder_name}/{file}: {column}");
            }
        }
        check(file, row, &history, format);
    }
    eprintln!(
        "{folder_name}: read {} files in {:.1} ms",
        files.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
}

#[test]
fn knossos_histories() {
    check_folder("knossos", |file, row, history, format| {
        assert_eq!(format, Format::Edn, "{file}");
        let counts = counts(history);
        assert_eq!(
            counts.processes,
            row.count("processes"),
            "{file}: processes"
        );
        assert_eq!(
            counts.never_completed,
            row.count("never_completed"),
            "{file}"
        );
        // `checked_ops` = ops - fail, as the README defines it.
        assert_eq!(counts.ops - counts.fail, row.count("checked_ops"), "{file}");
    });
}

#[test]
fn elle_histories() {
    check_folder("elle", |file, row, history, format| {
        assert_eq!(format, Format::Edn, "{file}");
        assert!(
            history.client_ops().all(|op| op.f == "txn"),
            "{file}: every client op is a txn"
        );
        let counts = counts(history);
        if row.count("processes") == 0 && counts.ops > 0 {
            // paper-example.edn names no processes: the reader gives each invocation and its
            // completion a fresh one.
            assert_eq!(
                counts.processes, counts.ops,
                "{file}: one process per invocation"
            );
        } else {
            assert_eq!(
                counts.processes,
                row.count("processes"),
                "{file}: processes"
            );
        }
        if file == "huge-scc.edn" {
            // Its `:index` is the position in the file, nemesis events included.
            assert!(history
                .ops
                .iter()
                .enumerate()
                .all(|(i, op)| op.index == i as u64));
            assert!(history.ops.iter().any(|op| op.is_nemesis()));
        }
    });
}

#[test]
fn porcupine_histories() {
    check_folder("porcupine", |file, row, history, format| {
        let counts = counts(history);
        let detail = row.detail();
        let renamed = if file.starts_with("jepsen/") {
            renamed_processes(file)
        } else {
            0
        };
        assert_eq!(
            counts.processes,
            row.count("processes") + renamed,
            "{file}: processes"
        );
        // No Porcupine file gives indexes: they are the positions.
        assert!(history
            .ops
            .iter()
            .enumerate()
            .all(|(i, op)| op.index == i as u64));
        if file.starts_with("jepsen/") {
            assert_eq!(format, Format::PorcupineEtcd, "{file}");
            for f in ["read", "write", "cas"] {
                let got = counts.by_f.get(f).copied().unwrap_or(0);
                assert_eq!(got, detail[f], "{file}: {f} invocations");
            }
            assert_eq!(counts.ok, detail["ok"], "{file}: ok");
            // `:fail :cas` is the only fail; a `:fail :read :timed-out` becomes info.
            assert_eq!(counts.fail, detail["cas_fail"], "{file}: fail");
            assert_eq!(
                counts.info,
                detail["read_timeout"] + detail["info_timeout"],
                "{file}"
            );
            // Upstream counts `:info ... :timed-out` as never completed; here they are info
            // completions, and only invocations with no line at all stay open.
            assert_eq!(
                counts.never_completed,
                row.count("never_completed") - detail["info_timeout"],
                "{file}: never completed"
            );
            let compare_failed = history
                .ops
                .iter()
                .filter(|op| op.error.as_ref().and_then(|e| e.as_str()) == Some("compare-failed"))
                .count();
            assert_eq!(
                compare_failed, detail["cas_fail"],
                "{file}: compare-failed errors"
            );
        } else {
            assert!(file.starts_with("kv/"), "{file}");
            assert_eq!(format, Format::PorcupineKv, "{file}");
            for f in ["get", "put", "append"] {
                assert_eq!(counts.by_f[f], detail[f], "{file}: {f} invocations");
            }
            assert_eq!(counts.ok, detail["ok"], "{file}: ok");
            assert_eq!(counts.keys, detail["keys"], "{file}: keys");
            assert_eq!(
                counts.never_completed,
                row.count("never_completed"),
                "{file}"
            );
        }
    });
}

/// How many times an etcd log reuses a process after `:fail :read :timed-out`. The reader makes
/// that completion `info`, so the process's next invocation goes on as a new process.
fn renamed_processes(file: &str) -> usize {
    let path = corpus_root()
        .expect("the corpus")
        .join("porcupine")
        .join(file);
    let text = std::fs::read_to_string(path).expect("readable log");
    let mut timed_out = BTreeSet::new();
    let mut renamed = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `INFO jepsen.util - <process> <type> <f> <value>`; a cas value spans two fields.
        if let [_, _, _, process, kind, f, value, ..] = fields[..] {
            if kind == ":fail" && f == ":read" && value == ":timed-out" {
                timed_out.insert(process.to_string());
            } else if kind == ":invoke" && timed_out.remove(process) {
                renamed += 1;
            }
        }
    }
    renamed
}
