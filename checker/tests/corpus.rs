//! Every history in `../shared/corpus` (Porcupine and Knossos) gets the verdict its
//! `EXPECTED.tsv` records. Read with format detection, as `faultline check` reads them.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

use faultline_checker::linearizability::{check, CheckOptions};
use faultline_checker::{ModelKind, Validity};
use faultline_core::import::{read_history_file, Format};

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "note: {} is absent; corpus verdict tests skipped",
            dir.display()
        );
        None
    }
}

/// Rows of a tab-separated file with a header, as (column -> value) lookups.
fn rows(path: &Path) -> Vec<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).expect("EXPECTED.tsv is readable");
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .expect("a header")
        .split('\t')
        .map(String::from)
        .collect();
    lines
        .map(|line| {
            header
                .iter()
                .cloned()
                .zip(line.split('\t').map(String::from))
                .collect()
        })
        .collect()
}

fn column<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    &row.iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("column {name}"))
        .1
}

fn expected_validity(expected: &str) -> Option<Validity> {
    match expected {
        "linearizable" => Some(Validity::Valid),
        "not-linearizable" => Some(Validity::Invalid),
        _ => None,
    }
}

fn verdict(file: &Path, model: ModelKind, init: Value) -> Validity {
    let (history, format) = read_history_file(file, Format::Auto)
        .unwrap_or_else(|e| panic!("{} does not read: {e}", file.display()));
    let mut options = CheckOptions::new(model).with_init(init);
    options.model_options.nil_read_is_unknown = format == Format::Edn;
    let result = check(&history, &options).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    if result.valid == Validity::Invalid {
        // A violation always comes with evidence a person can act on.
        let failure = &result.failures[0];
        assert!(
            failure.op.is_some(),
            "{}: no failing op named",
            file.display()
        );
        assert!(
            !failure.window.is_empty(),
            "{}: no failing window",
            file.display()
        );
    }
    result.valid
}

/// Checks every row of `dir/EXPECTED.tsv` that `pick` gives a model, initial state and verdict
/// for; returns how many were checked.
fn compare_verdicts(
    dir: &Path,
    pick: impl Fn(&[(String, String)]) -> Option<(ModelKind, Value, Validity)>,
) -> usize {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for row in rows(&dir.join("EXPECTED.tsv")) {
        let Some((model, init, expected)) = pick(&row) else {
            continue;
        };
        let file = dir.join(column(&row, "file"));
        let got = verdict(&file, model, init);
        if got != expected {
            wrong.push(format!(
                "{}: expected {expected}, got {got}",
                file.display()
            ));
        }
        checked += 1;
    }
    assert!(wrong.is_empty(), "verdicts differ:\n{}", wrong.join("\n"));
    checked
}

#[test]
fn porcupine_corpus_verdicts() {
    let Some(corpus) = corpus() else { return };
    let checked = compare_verdicts(&corpus.join("porcupine"), |row| {
        let expected = expected_validity(column(row, "expected"))?;
        let model = match column(row, "model") {
            "etcd-cas-register" => ModelKind::CasRegister,
            "kv-get-put-append" => ModelKind::StringKv,
            other => panic!("unexpected model {other}"),
        };
        Some((model, Value::Null, expected))
    });
    assert_eq!(
        checked, 108,
        "102 etcd histories and 6 kv histories have verdicts"
    );
}

#[test]
fn knossos_corpus_verdicts() {
    let Some(corpus) = corpus() else { return };
    let checked = compare_verdicts(&corpus.join("knossos"), |row| {
        let expected = expected_validity(column(row, "expected")).expect("a verdict");
        let (model, init) = match column(row, "model") {
            "cas-register" => (ModelKind::CasRegister, json!(0)),
            "multi-register" => (ModelKind::MultiRegister, json!({"x": 0, "y": 0})),
            "mutex" => (ModelKind::Mutex, Value::Null),
            other => panic!("unexpected model {other}"),
        };
        Some((model, init, expected))
    });
    assert_eq!(checked, 122);
}

/// The cas-register files were also checked with `nil` as the initial value upstream; the
/// verdicts are the same.
#[test]
fn knossos_cas_register_verdicts_hold_with_a_nil_initial_value() {
    let Some(corpus) = corpus() else { return };
    let checked = compare_verdicts(&corpus.join("knossos"), |row| {
        let expected = expected_validity(column(row, "expected")).expect("a verdict");
        (column(row, "model") == "cas-register").then_some((
            ModelKind::CasRegister,
            Value::Null,
            expected,
        ))
    });
    assert!(checked > 100);
}
