//! Long histories: a correct store's history checks valid, and one corrupted read deep inside
//! it is found quickly, with a small failing window, even among thousands of crashed
//! operations (each of which the exact search would have to consider taking effect or not).

#[path = "../benches/histories.rs"]
#[allow(dead_code)]
mod histories;

use serde_json::json;

use faultline_checker::linearizability::{check, CheckOptions};
use faultline_checker::{ModelKind, Validity};
use faultline_core::{History, OpType};

fn cas_register(count: usize) -> History {
    History::new(histories::generate_cas_register(count, 10, 0.05, 7))
}

#[test]
fn a_generated_cas_register_history_is_linearizable() {
    let history = cas_register(20_000);
    let result = check(&history, &CheckOptions::new(ModelKind::CasRegister)).unwrap();
    assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
}

#[test]
fn one_impossible_read_deep_in_a_long_history_is_found_with_a_local_window() {
    let mut history = cas_register(20_000);
    let at = (history.len() * 9 / 10..history.len())
        .find(|&i| history.ops[i].kind == OpType::Ok && history.ops[i].f == "read")
        .expect("an ok read late in the history");
    history.ops[at].value = json!(7);
    let result = check(&history, &CheckOptions::new(ModelKind::CasRegister)).unwrap();
    assert_eq!(result.valid, Validity::Invalid);
    let failure = &result.failures[0];
    assert_eq!(
        failure.op.as_ref().unwrap().completion_index,
        Some(at as u64)
    );
    assert!(failure.window_from_any_state, "{}", failure.explain());
    let required = failure.window.iter().filter(|op| !op.optional).count();
    assert!(
        required < 40,
        "the window's required operations are few: {}",
        failure.explain()
    );
}

#[test]
fn a_generated_string_kv_history_is_linearizable() {
    let history = History::new(histories::generate_string_kv(20_000, 20, 50, 8));
    let result = check(&history, &CheckOptions::new(ModelKind::StringKv)).unwrap();
    assert_eq!(result.valid, Validity::Valid, "{}", result.explain());
    assert_eq!(result.keys, 50);
}
