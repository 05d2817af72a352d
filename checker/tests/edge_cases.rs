//! Edge cases of `linearizability::check`, one small hand-written history each: degenerate
//! histories, malformed ones, JSON values of every type, the Knossos `nil` convention,
//! independent keys, histories the model cannot read, and the time and memory limits.

use std::time::Duration;

use faultline_checker::linearizability::{check, CheckOptions, LinearizabilityResult};
use faultline_checker::{ModelKind, Validity};
use faultline_core::{History, Op, OpType, Process};
use serde_json::{json, Value};

/// Events in order, indexed by position.
fn history(ops: Vec<Op>) -> History {
    let mut h = History::new(ops);
    for (i, op) in h.ops.iter_mut().enumerate() {
        op.index = i as u64;
    }
    h
}

fn invoke(p: u64, f: &str, value: Value) -> Op {
    Op::invoke(p, f, value)
}

fn ok(p: u64, f: &str, value: Value) -> Op {
    Op::complete(p, OpType::Ok, f, value)
}

fn fail(p: u64, f: &str, value: Value) -> Op {
    Op::complete(p, OpType::Fail, f, value)
}

fn info(p: u64, f: &str, value: Value) -> Op {
    Op::complete(p, OpType::Info, f, value)
}

fn nemesis(f: &str) -> Op {
    let mut op = Op::invoke(0, f, Value::Null);
    op.process = Process::Nemesis;
    op.kind = OpType::Info;
    op
}

/// A completed write followed by a completed read: the most common shape.
fn write_then_read(p: u64, written: Value, read: Value) -> Vec<Op> {
    vec![
        invoke(p, "write", written.clone()),
        ok(p, "write", written),
        invoke(p, "read", Value::Null),
        ok(p, "read", read),
    ]
}

fn run(h: &History, options: &CheckOptions) -> LinearizabilityResult {
    check(h, options).expect("a well-formed history")
}

fn verdict(h: &History, model: ModelKind) -> Validity {
    run(h, &CheckOptions::new(model)).valid
}

#[test]
fn empty_history_is_valid_for_every_model() {
    for model in ModelKind::ALL {
        let result = run(&History::default(), &CheckOptions::new(model));
        assert_eq!(result.valid, Validity::Valid, "{model}");
        assert_eq!(result.ops, 0);
        assert!(result.failures.is_empty());
    }
}

#[test]
fn only_failed_operations_is_valid() {
    let h = history(vec![
        invoke(0, "write", json!(1)),
        fail(0, "write", json!(1)),
        invoke(1, "read", Value::Null),
        fail(1, "read", Value::Null),
        invoke(0, "cas", json!([1, 2])),
        fail(0, "cas", json!([1, 2])),
        invoke(1, "cas", json!([null, 3])),
        fail(1, "cas", json!([null, 3])).with_error(json!("unavailable")),
    ]);
    assert_eq!(verdict(&h, ModelKind::CasRegister), Validity::Valid);
}

#[test]
fn a_failed_write_did_not_happen() {
    let mut ops = vec![invoke(0, "write", json!(1)), fail(0, "write", json!(1))];
    ops.extend([invoke(1, "read", Value::Null), ok(1, "read", json!(1))]);
    assert_eq!(
        verdict(&history(ops), ModelKind::Register),
        Validity::Invalid
    );
}

#[test]
fn only_nemesis_events_is_valid() {
    let h = history(vec![
        nemesis("start-partition"),
        nemesis("stop-partition"),
        nemesis("kill"),
        nemesis("start"),
    ]);
    for model in ModelKind::ALL {
        let result = run(&h, &CheckOptions::new(model));
        assert_eq!(result.valid, Validity::Valid, "{model}");
        assert_eq!(result.ops, 0, "nemesis events are not client operations");
    }
}

#[test]
fn nemesis_events_between_client_operations_change_nothing() {
    let mut ops = write_then_read(0, json!(1), json!(1));
    ops.insert(2, nemesis("start-partition"));
    ops.insert(0, nemesis("pause"));
    let result = run(&history(ops), &CheckOptions::new(ModelKind::Register));
    assert_eq!((result.valid, result.ops), (Validity::Valid, 2));
}

#[test]
fn an_operation_that_never_completes_may_or_may_not_take_effect() {
    let pending_write = |reads: &[Value]| {
        let mut ops = vec![invoke(0, "write", json!(1))];
        for read in reads {
            ops.extend([invoke(1, "read", Value::Null), ok(1, "read", read.clone())]);
        }
        history(ops)
    };
    // Took effect, did not (yet), did later.
    assert_eq!(
        verdict(&pending_write(&[json!(1)]), ModelKind::Register),
        Validity::Valid
    );
    assert_eq!(
        verdict(&pending_write(&[json!(null)]), ModelKind::Register),
        Validity::Valid
    );
    let later = pending_write(&[json!(null), json!(1)]);
    assert_eq!(verdict(&later, ModelKind::Register), Validity::Valid);
    // But once seen it cannot be undone.
    let undone = pending_write(&[json!(1), json!(null)]);
    assert_eq!(verdict(&undone, ModelKind::Register), Validity::Invalid);
}

#[test]
fn a_crashed_operation_may_take_effect_after_later_operations() {
    let h = history(vec![
        invoke(0, "write", json!(1)),
        info(0, "write", json!(1)).with_error(json!("timeout")),
        invoke(1, "read", Value::Null),
        ok(1, "read", json!(null)),
        invoke(1, "read", Value::Null),
        ok(1, "read", json!(1)),
    ]);
    assert_eq!(verdict(&h, ModelKind::Register), Validity::Valid);
}

#[test]
fn a_process_reusing_its_id_after_info_is_an_error() {
    let h = history(vec![
        invoke(0, "write", json!(1)),
        info(0, "write", json!(1)),
        invoke(0, "read", Value::Null),
        ok(0, "read", json!(1)),
    ]);
    let err = check(&h, &CheckOptions::new(ModelKind::Register))
        .unwrap_err()
        .to_string();
    assert!(err.contains("event 2"), "names the offending event: {err}");
    assert!(err.contains("process 0"), "names the process: {err}");
    assert!(
        err.contains("info") && err.contains("new process"),
        "says why: {err}"
    );
}

#[test]
fn a_completion_without_an_invocation_is_an_error() {
    let h = history(vec![ok(3, "read", json!(1))]);
    let err = check(&h, &CheckOptions::new(ModelKind::Register))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no invocation"), "{err}");
}

#[test]
fn values_of_mixed_json_types_share_one_register() {
    let values = [
        json!("a"),
        json!(1),
        json!(1.5),
        json!(true),
        json!({"k": [1, 2], "j": null}),
        json!([1, "b", {"c": 3}]),
        json!(null),
        json!(""),
    ];
    let ops: Vec<Op> = values
        .iter()
        .flat_map(|v| write_then_read(0, v.clone(), v.clone()))
        .collect();
    assert_eq!(verdict(&history(ops), ModelKind::Register), Validity::Valid);
    // Object keys are unordered.
    let same = history(write_then_read(
        0,
        json!({"a": 1, "b": 2}),
        json!({"b": 2, "a": 1}),
    ));
    assert_eq!(verdict(&same, ModelKind::Register), Validity::Valid);
    // Types stay apart: 1 is not "1", and null is not "" nor 0 nor false.
    for (written, read) in [
        (json!(1), json!("1")),
        (json!(null), json!("")),
        (json!(0), json!(null)),
        (json!(false), json!(0)),
        (json!([1, 2]), json!([2, 1])),
    ] {
        let h = history(write_then_read(0, written.clone(), read.clone()));
        assert_eq!(
            verdict(&h, ModelKind::Register),
            Validity::Invalid,
            "{written} then {read}"
        );
    }
}

#[test]
fn a_read_of_null_before_any_write_sees_the_initial_state() {
    let h = history(vec![
        invoke(0, "read", Value::Null),
        ok(0, "read", json!(null)),
        invoke(0, "write", json!(0)),
        ok(0, "write", json!(0)),
    ]);
    assert_eq!(verdict(&h, ModelKind::Register), Validity::Valid);
    let from_zero = CheckOptions::new(ModelKind::Register).with_init(json!(0));
    assert_eq!(
        run(&h, &from_zero).valid,
        Validity::Invalid,
        "with --init 0 there is no null"
    );
    let h = history(vec![
        invoke(0, "read", Value::Null),
        ok(0, "read", json!(0)),
    ]);
    assert_eq!(run(&h, &from_zero).valid, Validity::Valid);
    assert_eq!(verdict(&h, ModelKind::Register), Validity::Invalid);
}

#[test]
fn knossos_nil_reads_observe_nothing() {
    let h = history(write_then_read(0, json!(1), json!(null)));
    let mut options = CheckOptions::new(ModelKind::CasRegister);
    assert_eq!(
        run(&h, &options).valid,
        Validity::Invalid,
        "faultline's null = never written"
    );
    options.model_options.nil_read_is_unknown = true;
    assert_eq!(
        run(&h, &options).valid,
        Validity::Valid,
        "Knossos's nil = unknown"
    );
    // A non-nil read is still checked.
    let h = history(write_then_read(0, json!(1), json!(2)));
    assert_eq!(run(&h, &options).valid, Validity::Invalid);
}

#[test]
fn knossos_nil_reads_in_multi_register_transactions_observe_nothing() {
    let txn = json!([["w", "x", 1], ["r", "y", null]]);
    let h = history(vec![
        invoke(0, "txn", json!([["w", "y", 2]])),
        ok(0, "txn", json!([["w", "y", 2]])),
        invoke(0, "txn", json!([["w", "x", 1], ["r", "y", null]])),
        ok(0, "txn", txn),
    ]);
    let mut options = CheckOptions::new(ModelKind::MultiRegister);
    assert_eq!(run(&h, &options).valid, Validity::Invalid);
    options.model_options.nil_read_is_unknown = true;
    assert_eq!(run(&h, &options).valid, Validity::Valid);
}

#[test]
fn keys_are_independent() {
    // On one register, a read of null after a completed write would be invalid; on two keys
    // it is fine.
    let h = history(vec![
        invoke(0, "write", json!(1)).with_key(json!("x")),
        ok(0, "write", json!(1)).with_key(json!("x")),
        invoke(1, "read", Value::Null).with_key(json!("y")),
        ok(1, "read", json!(null)).with_key(json!("y")),
        invoke(1, "read", Value::Null).with_key(json!("x")),
        ok(1, "read", json!(1)).with_key(json!("x")),
    ]);
    let result = run(&h, &CheckOptions::new(ModelKind::Register));
    assert_eq!((result.valid, result.keys), (Validity::Valid, 2));
    let mut unkeyed = h.clone();
    for op in &mut unkeyed.ops {
        op.key = None;
    }
    assert_eq!(verdict(&unkeyed, ModelKind::Register), Validity::Invalid);
}

#[test]
fn an_invalid_key_is_named_in_the_failure() {
    let mut ops = Vec::new();
    for (p, key, written, read) in [
        (0, "x", 1, 1),
        (1, "y", 2, 3),
        (2, "z", 4, 4),
        (3, "x", 5, 5),
    ] {
        ops.extend(
            write_then_read(p, json!(written), json!(read))
                .into_iter()
                .map(|op| op.with_key(json!(key))),
        );
    }
    let result = run(&history(ops), &CheckOptions::new(ModelKind::CasRegister));
    assert_eq!(result.valid, Validity::Invalid);
    assert_eq!(result.keys, 3);
    assert_eq!(result.failures.len(), 1, "only key y fails");
    let failure = &result.failures[0];
    assert_eq!(failure.key, Some(json!("y")));
    assert!(
        failure.explain().contains("on key \"y\""),
        "{}",
        failure.explain()
    );
    assert!(!failure.window.is_empty());
}

#[test]
fn string_kv_keys_are_independent_and_start_empty() {
    let kv = |p: u64, f: &str, key: &str, value: Value, result: Value| {
        [
            invoke(p, f, value).with_key(json!(key)),
            ok(p, f, result).with_key(json!(key)),
        ]
    };
    let mut ops = Vec::new();
    ops.extend(kv(0, "get", "a", Value::Null, json!("")));
    ops.extend(kv(0, "append", "a", json!("x"), json!("x")));
    ops.extend(kv(1, "put", "b", json!("y"), json!("y")));
    ops.extend(kv(1, "append", "b", json!("z"), json!("z")));
    ops.extend(kv(0, "get", "a", Value::Null, json!("x")));
    ops.extend(kv(1, "get", "b", Value::Null, json!("yz")));
    let valid = history(ops.clone());
    assert_eq!(verdict(&valid, ModelKind::StringKv), Validity::Valid);
    ops.extend(kv(2, "get", "b", Value::Null, json!("zy")));
    let result = run(&history(ops), &CheckOptions::new(ModelKind::StringKv));
    assert_eq!(result.valid, Validity::Invalid);
    assert_eq!(result.failures[0].key, Some(json!("b")));
}

#[test]
fn a_register_history_with_cas_is_unknown_with_a_reason() {
    let h = history(vec![
        invoke(0, "cas", json!([null, 1])),
        ok(0, "cas", json!([null, 1])),
    ]);
    let result = run(&h, &CheckOptions::new(ModelKind::Register));
    assert_eq!(result.valid, Validity::Unknown);
    let reason = result.reason.expect("an unknown verdict says why");
    assert!(
        reason.contains("cas-register"),
        "points at the right model: {reason}"
    );
    assert_eq!(verdict(&h, ModelKind::CasRegister), Validity::Valid);
}

#[test]
fn a_history_the_model_cannot_read_is_unknown() {
    let h = history(vec![
        invoke(0, "enqueue", json!(1)),
        ok(0, "enqueue", json!(1)),
    ]);
    let result = run(&h, &CheckOptions::new(ModelKind::Register));
    assert_eq!(result.valid, Validity::Unknown);
    assert!(result.reason.unwrap().contains("enqueue"));
    let malformed_cas = history(vec![invoke(0, "cas", json!(1)), ok(0, "cas", json!(1))]);
    let result = run(&malformed_cas, &CheckOptions::new(ModelKind::CasRegister));
    assert_eq!(result.valid, Validity::Unknown);
    assert!(result.reason.unwrap().contains("[expected, new]"));
}

#[test]
fn compare_failed_cas_happened_and_saw_another_value() {
    let cas_failed = |p: u64| {
        [
            invoke(p, "cas", json!([0, 1])),
            fail(p, "cas", json!([0, 1])).with_error(json!("compare-failed")),
        ]
    };
    let mut ops = write_then_read(0, json!(2), json!(2));
    ops.extend(cas_failed(1));
    assert_eq!(
        verdict(&history(ops), ModelKind::CasRegister),
        Validity::Valid
    );
    // The register held 0, so a compare-failed cas expecting 0 is impossible.
    let mut ops = write_then_read(0, json!(0), json!(0));
    ops.extend(cas_failed(1));
    assert_eq!(
        verdict(&history(ops), ModelKind::CasRegister),
        Validity::Invalid
    );
    // A plain fail (no compare-failed error) did not happen and constrains nothing.
    let mut ops = write_then_read(0, json!(0), json!(0));
    ops.extend([
        invoke(1, "cas", json!([0, 1])),
        fail(1, "cas", json!([0, 1])),
    ]);
    assert_eq!(
        verdict(&history(ops), ModelKind::CasRegister),
        Validity::Valid
    );
}

/// Many concurrent writes of distinct values that all complete, then reads of 0 and then 1:
/// invalid (1 would have to be written after 0 was read), but only after trying the orders of
/// the writes (about n * 2^(n-1) configurations), so it is slow enough to hit a limit.
fn hard_history(writers: u64) -> History {
    let mut ops: Vec<Op> = (0..writers).map(|p| invoke(p, "write", json!(p))).collect();
    // Crashed writes that may or may not land anywhere add to the work.
    ops.extend((0..3).map(|i| invoke(writers + i, "write", json!(100 + i))));
    ops.extend((0..writers).map(|p| ok(p, "write", json!(p))));
    let reader = writers + 10;
    ops.extend([
        invoke(reader, "read", Value::Null),
        ok(reader, "read", json!(0)),
    ]);
    ops.extend([
        invoke(reader, "read", Value::Null),
        ok(reader, "read", json!(1)),
    ]);
    history(ops)
}

#[test]
fn a_tiny_time_limit_on_a_hard_history_is_unknown() {
    let mut options = CheckOptions::new(ModelKind::CasRegister);
    options.time_limit = Some(Duration::from_nanos(1));
    let result = run(&hard_history(14), &options);
    assert_eq!(result.valid, Validity::Unknown);
    let reason = result
        .reason
        .as_deref()
        .expect("an unknown verdict says why");
    assert!(reason.contains("time limit"), "{reason}");
    assert!(result.explain().contains("time limit"));
}

#[test]
fn the_memory_limit_on_a_hard_history_is_unknown() {
    let mut options = CheckOptions::new(ModelKind::CasRegister);
    options.memory_limit_bytes = 1 << 10;
    let result = run(&hard_history(14), &options);
    assert_eq!(result.valid, Validity::Unknown);
    let reason = result.reason.expect("an unknown verdict says why");
    assert!(reason.contains("memory limit"), "{reason}");
}

#[test]
fn a_generous_limit_still_gives_a_verdict() {
    let mut options = CheckOptions::new(ModelKind::CasRegister);
    options.time_limit = Some(Duration::from_secs(60));
    options.explain = false;
    // Small enough to finish quickly in a debug build.
    assert_eq!(run(&hard_history(6), &options).valid, Validity::Invalid);
}

#[test]
fn an_unknown_key_does_not_hide_an_invalid_one() {
    let mut ops = vec![
        invoke(0, "write", json!(1)).with_key(json!("a")),
        ok(0, "write", json!(1)).with_key(json!("a")),
        invoke(0, "read", Value::Null).with_key(json!("a")),
        ok(0, "read", json!(2)).with_key(json!("a")),
    ];
    // Key b uses an operation the register model cannot read: unknown.
    ops.extend([
        invoke(1, "cas", json!([1, 2])).with_key(json!("b")),
        ok(1, "cas", json!([1, 2])).with_key(json!("b")),
    ]);
    let result = run(&history(ops), &CheckOptions::new(ModelKind::Register));
    assert_eq!(result.valid, Validity::Invalid);
    assert_eq!(result.failures[0].key, Some(json!("a")));
    assert_eq!(result.unknown_keys.len(), 1);
}
