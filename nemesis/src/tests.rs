//! Tests of the whole nemesis against the fake db: build, every fault and its undo, the
//! schedule under the interpreter, the final heal, teardown.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use faultline_core::client::NoopClient;
use faultline_core::db::NoopDb;
use faultline_core::jsonl::{read_jsonl, HistoryWriter};
use faultline_core::{Invocation, Nemesis, Op, Test};
use faultline_workloads::clock::MonotonicClock;
use faultline_workloads::generator::{self, Draft};
use faultline_workloads::interpreter::{Interpreter, Stop};

use crate::action::{Action, Partition, Target, Topology};
use crate::fake::{nodes, FakeDb};
use crate::schedule::{Election, Plan, Schedule};
use crate::{build, Faults, Kind, NemesisError, Timing, NAMES};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn test_of(n: usize, seed: u64, time_limit_ms: u64) -> Test {
    let mut test = Test::example("fake", "register", seed);
    test.nodes = (1..=n).map(|i| format!("n{i}")).collect();
    test.time_limit_ms = time_limit_ms;
    test.concurrency = 2;
    test
}

/// A fast pace for tests: short gaps and faults, a short recovery.
fn fast() -> Timing {
    Timing {
        gap_ms: 30..=80,
        fault_ms: 60..=150,
        recovery_ms: 200,
    }
}

/// Every kind but `restart-voter` and `figure-8`, whose steps are not fault / undo pairs
/// (`restart-voter` has tests of its own below; `figure-8` waits on a real log's steps and is
/// tested against raftkv in runner/tests/test_raftkv.rs).
fn all_faults(fake: &Arc<FakeDb>, n: usize) -> Faults {
    let names: Vec<&str> = NAMES
        .into_iter()
        .filter(|name| !matches!(*name, "restart-voter" | "figure-8"))
        .collect();
    build(
        &strings(&names),
        fake.clone(),
        nodes(n),
        // The fake's own network, as the local fault proxy would be.
        None,
    )
    .unwrap()
}

#[test]
fn build_checks_names_and_capabilities() {
    let noop = Arc::new(NoopDb);
    assert!(build(&strings(&["none"]), noop.clone(), nodes(3), None)
        .unwrap()
        .kinds()
        .is_empty());
    let Err(NemesisError::Unknown(name)) = build(&strings(&["flood"]), noop.clone(), vec![], None)
    else {
        panic!()
    };
    assert_eq!(name, "flood");
    for kind in [
        "partition",
        "loss",
        "kill",
        "pause",
        "clock",
        "election",
        "restart-voter",
        "figure-8",
    ] {
        let Err(e) = build(&strings(&[kind]), noop.clone(), vec![], None) else {
            panic!("{kind} built on a db without capabilities")
        };
        assert!(matches!(e, NemesisError::Unsupported { .. }), "{e}");
    }
    // Partitions: through the db's own network, or through a network given by the runner.
    let no_net = Arc::new(FakeDb::default());
    assert!(build(&strings(&["partition"]), no_net.clone(), vec![], None).is_err());
    let given: Arc<dyn faultline_core::Net> = Arc::new(FakeDb::default());
    assert!(build(
        &strings(&["partition", "loss"]),
        no_net,
        vec![],
        Some(given)
    )
    .is_ok());
    // An election fault cuts and pauses: it needs both.
    let net_only: Arc<dyn faultline_core::Net> = Arc::new(FakeDb::default());
    let Err(e) = build(
        &strings(&["election"]),
        noop.clone(),
        vec![],
        Some(net_only),
    ) else {
        panic!("election built on a db that cannot pause")
    };
    assert!(e.to_string().contains("paused"), "{e}");
    // figure-8 waits on the nodes' logs: a db with its own network and pauses but no log
    // status cannot take it.
    let Err(e) = build(
        &strings(&["figure-8"]),
        Arc::new(FakeDb::with_own_net()),
        nodes(5),
        None,
    ) else {
        panic!("figure-8 built on a db that reports no log")
    };
    assert!(e.to_string().contains("replicated log"), "{e}");
    let own = Arc::new(FakeDb::with_own_net());
    let faults = all_faults(&own, 3);
    assert_eq!(
        faults.kinds(),
        &[
            Kind::Partition,
            Kind::Loss,
            Kind::Pause,
            Kind::Kill,
            Kind::Clock,
            Kind::Election,
        ]
    );
}

/// `pause-isolated-leader`: the leader is cut off, then paused; resumed while still cut off,
/// and only then is the network healed. Each step is recorded after it took effect, and the
/// pause and the isolation name the same node.
#[test]
fn an_election_fault_pauses_the_isolated_leader_and_resumes_it_before_the_heal() {
    let fake = Arc::new(FakeDb::with_own_net());
    *fake.leaders.lock().unwrap() = strings(&["n4"]);
    let faults = build(&strings(&["election"]), fake.clone(), nodes(5), None)
        .unwrap()
        .with_timing(fast());
    let run = run_schedule(test_of(5, 3, 1_000), faults);
    let (last, steps) = run.events.split_last().expect("events");
    assert_eq!(last.0, "heal");
    assert!(steps.len() >= 8, "at least two election faults: {steps:?}");
    for fault in steps.chunks(4) {
        let fs: Vec<&str> = fault.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fs, ["start-partition", "pause", "resume", "stop-partition"]);
        assert_eq!(fault[0].1["partition"], json!("isolate-leader"));
        assert_eq!(fault[0].1["isolated"], json!("n4"));
        assert_eq!(fault[0].1["leader"], json!("n4"));
        assert_eq!(fault[1].1, json!({"target": "leader", "nodes": ["n4"]}));
        assert_eq!(fault[2].1, json!({"nodes": ["n4"]}));
        assert_eq!(fault[3].1["partition"], json!("isolate-leader"));
    }
    // The resumed leader stayed cut off for a while before the heal.
    let times: Vec<(String, u64)> = run
        .ops
        .iter()
        .filter(|op| op.is_nemesis())
        .map(|op| (op.f.clone(), op.time.unwrap()))
        .collect();
    let resumed = times.iter().position(|(f, _)| f == "resume").unwrap();
    assert_eq!(times[resumed + 1].0, "stop-partition");
    let cut_off_ms = (times[resumed + 1].1 - times[resumed].1) / 1_000_000;
    assert!(
        cut_off_ms >= fast().fault_ms.start() / 2,
        "resumed but cut off for {cut_off_ms} ms"
    );
    // What the fake saw, in order: who leads, the cut, the pause, the resume, the heal.
    let calls = fake.calls();
    let first: Vec<&str> = calls
        .iter()
        .map(|c| c.split(' ').next().unwrap())
        .take(5)
        .collect();
    assert_eq!(
        first,
        ["primaries", "partition", "pause", "resume", "heal"],
        "{calls:?}"
    );
    assert!(calls.contains(&"pause n4".to_string()));
    assert!(fake.state().is_healed(), "{:?}", fake.state());
    assert!(run
        .shown
        .iter()
        .any(|s| s == "election pause-isolated-leader n4"));
    assert_eq!(run.shown_after, None);
}

/// The `restart-voter` fault over 5 nodes: the leader (n2) is the first candidate; each step
/// is recorded after it took effect, in the documented order; the voter is killed only while
/// both candidates are paused; at the end everything is running and healed.
#[test]
fn a_restart_voter_fault_runs_its_steps_in_order_and_leaves_everything_healed() {
    let fake = Arc::new(FakeDb::with_own_net());
    *fake.leaders.lock().unwrap() = strings(&["n2"]);
    let faults = build(&strings(&["restart-voter"]), fake.clone(), nodes(5), None)
        .unwrap()
        .with_timing(fast());
    // Long enough for one whole fault (its steps take about 4 s).
    let run = run_schedule(test_of(5, 8, 5_000), faults);
    let (last, steps) = run.events.split_last().expect("events");
    assert_eq!(last.0, "heal");
    let fs: Vec<&str> = steps.iter().take(13).map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fs,
        [
            "start-partition",
            "pause",
            "start-partition",
            "pause",
            "start-partition",
            "resume",
            "resume",
            "pause",
            "kill",
            "start",
            "resume",
            "resume",
            "stop-partition"
        ],
        "{steps:?}"
    );
    let stage = |i: usize| steps[i].1["stage"].as_str().unwrap().to_string();
    assert_eq!(
        [stage(0), stage(2), stage(4)],
        ["candidates", "campaign", "split"]
    );
    let first = steps[0].1["candidates"][0].as_str().unwrap().to_string();
    let second = steps[0].1["candidates"][1].as_str().unwrap().to_string();
    let voter = steps[0].1["voter"].as_str().unwrap().to_string();
    assert_eq!(first, "n2", "the leader is the first candidate");
    // Only the candidates talk in the first stage.
    let grudge = &steps[0].1["grudge"];
    assert!(grudge
        .get(&first)
        .is_some_and(|d| !d.as_array().unwrap().contains(&json!(second))));
    assert_eq!(grudge[&voter].as_array().unwrap().len(), 4);
    let nodes_of =
        |i: usize| -> Vec<String> { serde_json::from_value(steps[i].1["nodes"].clone()).unwrap() };
    assert_eq!(nodes_of(1)[0], voter);
    assert_eq!(nodes_of(3), [first.clone(), second.clone()]);
    assert_eq!(nodes_of(5), [voter.as_str()]);
    assert_eq!(nodes_of(6), [first.as_str()]);
    assert_eq!(nodes_of(7), [first.as_str()]);
    assert_eq!(nodes_of(8), [voter.as_str()]);
    assert_eq!(nodes_of(9), [voter.as_str()]);
    assert_eq!(nodes_of(10)[0], second);
    assert_eq!(nodes_of(11)[0], first);
    // Every node paused is resumed, in the end.
    let mut paused = BTreeSet::new();
    for i in [1, 3, 7] {
        paused.extend(nodes_of(i));
    }
    for i in [5, 6, 10, 11] {
        for node in nodes_of(i) {
            paused.remove(&node);
        }
    }
    assert!(paused.is_empty(), "left paused: {paused:?}");
    // The split stage cut the candidates apart and kept the voter between them.
    let split = &steps[4].1["grudge"];
    assert!(split[&first].as_array().unwrap().contains(&json!(second)));
    assert!(!split[&first].as_array().unwrap().contains(&json!(voter)));
    assert!(fake.state().is_healed(), "{:?}", fake.state());
    assert!(run
        .shown
        .iter()
        .any(|s| s.starts_with("restart-voter: candidates n2 and")));
}

/// A `restart-voter` fault cut short by the end of the main phase undoes what is in force
/// (the voter started if it was down, every paused node resumed, the network healed) before
/// the final heal.
#[test]
fn a_restart_voter_fault_cut_short_undoes_what_is_in_force() {
    for time_limit_ms in [200, 700, 2_900] {
        let fake = Arc::new(FakeDb::with_own_net());
        *fake.leaders.lock().unwrap() = strings(&["n1"]);
        let faults = build(&strings(&["restart-voter"]), fake.clone(), nodes(5), None)
            .unwrap()
            .with_timing(fast());
        let run = run_schedule(test_of(5, 2, time_limit_ms), faults);
        let (last, steps) = run.events.split_last().expect("events");
        assert_eq!(last.0, "heal");
        // Nothing was left for the final heal to resume or start.
        assert_eq!(last.1["started"], json!([]), "{steps:?}");
        let (stop_partition, before) = steps.split_last().expect("a fault");
        assert_eq!(stop_partition.0, "stop-partition", "{steps:?}");
        let mut paused = BTreeSet::new();
        for (f, value) in before {
            let nodes: Vec<String> =
                serde_json::from_value(value["nodes"].clone()).unwrap_or_default();
            match f.as_str() {
                "pause" => paused.extend(nodes),
                "resume" => nodes.iter().for_each(|n| {
                    paused.remove(n);
                }),
                _ => {}
            }
        }
        assert!(
            paused.is_empty(),
            "left paused at {time_limit_ms} ms: {steps:?}"
        );
        assert!(fake.state().is_healed(), "{:?}", fake.state());
    }
}

/// Every fault the schedule draws changes what is in force, and its undo restores it all.
#[test]
fn every_fault_has_an_undo_that_heals_it() {
    let rt = runtime();
    let test = test_of(5, 1, 1_000);
    let names: Vec<String> = test.nodes.clone();
    let kinds = [
        Kind::Partition,
        Kind::Loss,
        Kind::Pause,
        Kind::Kill,
        Kind::Clock,
    ];
    let mut schedule = Schedule::new(3, &kinds, &names, true, Timing::default());
    let mut fs = BTreeSet::new();
    for _ in 0..300 {
        let Plan::Apply(fault) = schedule.next_fault().plan else {
            continue;
        };
        let fake = Arc::new(FakeDb::with_own_net());
        let mut faults = all_faults(&fake, 5);
        rt.block_on(async {
            let value = faults.apply(&test, &fault).await.unwrap();
            assert_eq!(value, fault.value(), "the record is what was asked");
            assert!(!fake.state().is_healed(), "{} did nothing", fault.f());
            let undo = fault.undo().unwrap();
            faults.apply(&test, &undo).await.unwrap();
            assert!(
                fake.state().is_healed(),
                "{} left {:?}",
                undo.f(),
                fake.state()
            );
        });
        fs.insert(fault.f());
    }
    assert_eq!(fs.len(), 6, "{fs:?}");
}

#[test]
fn the_leader_is_isolated_when_known_and_a_random_node_otherwise() {
    let rt = runtime();
    let test = test_of(5, 1, 1_000);
    let fake = Arc::new(FakeDb::with_own_net());
    let mut faults = all_faults(&fake, 5);
    // n9 is no node of this test: ignored.
    *fake.leaders.lock().unwrap() = strings(&["n9", "n4"]);
    let plan = Plan::IsolateLeader {
        fallback: "n2".into(),
        pick: 7,
    };
    let action = rt.block_on(faults.resolve(&test, plan.clone())).unwrap();
    let Action::StartPartition(Partition { topology, grudge }) = &action else {
        panic!()
    };
    assert_eq!(
        *topology,
        Topology::IsolateLeader {
            isolated: "n4".into(),
            leader: Some("n4".into())
        }
    );
    assert_eq!(grudge["n4"].len(), 4);
    rt.block_on(faults.apply(&test, &action)).unwrap();
    assert_eq!(fake.state().grudge.as_ref(), Some(grudge));

    fake.leaders.lock().unwrap().clear();
    let action = rt.block_on(faults.resolve(&test, plan)).unwrap();
    assert_eq!(action.value()["leader"], Value::Null, "recorded as unknown");
    assert_eq!(action.value()["isolated"], json!("n2"), "the fallback");
    assert_eq!(action.value()["grudge"]["n2"].as_array().unwrap().len(), 4);
}

#[test]
fn teardown_heals_whatever_was_asked_for_even_when_nothing_was_injected_and_twice() {
    let rt = runtime();
    let test = test_of(3, 1, 1_000);
    let fake = Arc::new(FakeDb::with_own_net());
    let mut faults = all_faults(&fake, 3);
    rt.block_on(faults.teardown(&test)).unwrap();
    let calls = fake.calls();
    let expected = strings(&[
        "heal",
        "clock n1 0",
        "clock n2 0",
        "clock n3 0",
        "resume n1",
        "resume n2",
        "resume n3",
    ]);
    assert_eq!(calls, expected, "no node was killed, so none is started");
    rt.block_on(faults.teardown(&test)).unwrap();
    assert_eq!(fake.calls().len(), 2 * expected.len());

    // Only kills asked for: nothing to heal but killed nodes, and none were killed.
    let fake = Arc::new(FakeDb::with_own_net());
    let mut faults = build(&strings(&["kill"]), fake.clone(), nodes(3), None).unwrap();
    rt.block_on(faults.teardown(&test)).unwrap();
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[test]
fn teardown_in_the_middle_of_a_fault_heals_it_and_goes_on_past_errors() {
    let rt = runtime();
    let test = test_of(5, 1, 1_000);
    let fake = Arc::new(FakeDb::with_own_net());
    let mut faults = all_faults(&fake, 5);
    let kill = Action::parse(
        "kill",
        &json!({"target": "minority", "nodes": ["n1", "n3"]}),
    )
    .unwrap();
    rt.block_on(faults.apply(&test, &kill)).unwrap();
    assert_eq!(fake.state().killed.len(), 2);
    fake.failing.lock().unwrap().push("resume n2".into());
    let e = rt.block_on(faults.teardown(&test)).unwrap_err();
    assert!(e.to_string().contains("resume n2"), "the first error: {e}");
    let calls = fake.calls();
    for after in ["resume n5", "start n1", "start n3"] {
        assert!(
            calls.contains(&after.to_string()),
            "{after} after the error: {calls:?}"
        );
    }
    assert!(fake.state().is_healed(), "{:?}", fake.state());
}

#[test]
fn a_bad_invocation_is_refused_before_anything_is_done() {
    let rt = runtime();
    let test = test_of(3, 1, 1_000);
    let fake = Arc::new(FakeDb::with_own_net());
    let mut faults = all_faults(&fake, 3);
    let op = |f: &str, value: Value| Invocation {
        process: 0,
        f: f.into(),
        key: None,
        value,
    };
    let bad = op("pause", json!({"target": "all", "nodes": ["n1", "n7"]}));
    let e = rt.block_on(faults.invoke(&test, &bad)).unwrap_err();
    assert!(e.to_string().contains("n7"), "{e}");
    let bad = op("start-loss", json!({"loss": 1.5, "latency_ms": 0}));
    assert!(rt.block_on(faults.invoke(&test, &bad)).is_err());
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    let good = op("pause", json!({"target": "one", "nodes": ["n2"]}));
    assert_eq!(
        rt.block_on(faults.invoke(&test, &good)).unwrap(),
        good.value
    );
    assert_eq!(fake.calls(), strings(&["pause n2"]));
}

#[test]
fn a_strobe_flips_the_clocks_for_its_duration_and_reset_clock_undoes_it() {
    let rt = runtime();
    let test = test_of(3, 1, 1_000);
    let fake = Arc::new(FakeDb::with_own_net());
    let mut faults = all_faults(&fake, 3);
    let strobe = Invocation {
        process: 0,
        f: "strobe-clock".into(),
        key: None,
        value: json!({"offsets_ms": {"n2": 500}, "period_ms": 10, "duration_ms": 200}),
    };
    rt.block_on(faults.invoke(&test, &strobe)).unwrap();
    let calls = fake.calls();
    let flips = calls.iter().filter(|c| *c == "clock n2 0").count();
    assert!(flips >= 3, "flipped a few times in 200 ms: {calls:?}");
    assert!(calls
        .iter()
        .all(|c| c == "clock n2 0" || c == "clock n2 500"));
    for pair in calls.windows(2) {
        assert_ne!(pair[0], pair[1], "alternates: {calls:?}");
    }
    let undo = Action::parse("strobe-clock", &strobe.value)
        .unwrap()
        .undo()
        .unwrap();
    rt.block_on(faults.apply(&test, &undo)).unwrap();
    assert!(fake.state().is_healed());
}

/// What one run of the schedule under the interpreter left.
struct Run {
    ops: Vec<Op>,
    /// The nemesis events, as (f, value).
    events: Vec<(String, Value)>,
    /// The descriptions `Faults::current` showed while it ran.
    shown: BTreeSet<String>,
    /// `Faults::current` after the run.
    shown_after: Option<String>,
}

/// Runs the schedule of `faults` beside workers for `test.time_limit_ms`, with final reads
/// after the nemesis (as `faultline_workloads::plan` arranges).
fn run_schedule(test: Test, mut faults: Faults) -> Run {
    let test = Arc::new(test);
    let main = generator::rate(200.0, generator::repeat(Draft::new("read", Value::Null)));
    let last = generator::once(Draft::new("final-read", Value::Null));
    let interpreter = Interpreter {
        test: test.clone(),
        client: Arc::new(NoopClient),
        generator: faultline_workloads::plan(&test, main, Some(last)),
        clock: MonotonicClock::starting_now(),
        counters: Arc::default(),
        stop: Stop::default(),
    };
    let bytes = Arc::new(Mutex::new(Vec::new()));
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let current = faults.current();
    let shown = Arc::new(Mutex::new(BTreeSet::new()));
    let rt = runtime();
    let watcher = {
        let (current, shown) = (current.clone(), shown.clone());
        rt.spawn(async move {
            loop {
                if let Some(what) = current.lock().unwrap().clone() {
                    shown.lock().unwrap().insert(what);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let recorded = rt.block_on(interpreter.run_with_nemesis(
        HistoryWriter::new(Shared(bytes.clone())),
        |recorder, stop| faults.run(&test, recorder, stop),
    ));
    watcher.abort();
    assert!(recorded.error.is_none(), "{:?}", recorded.error);
    let text = bytes.lock().unwrap().clone();
    let history = read_jsonl(text.as_slice(), "test").unwrap();
    history.pairs().expect("well formed with nemesis events");
    let events = history
        .ops
        .iter()
        .filter(|op| op.is_nemesis())
        .map(|op| (op.f.clone(), op.value.clone()))
        .collect();
    let shown = shown.lock().unwrap().clone();
    let shown_after = current.lock().unwrap().clone();
    Run {
        ops: history.ops,
        events,
        shown,
        shown_after,
    }
}

/// The schedule records each fault and its undo as a pair, applies exactly what it records,
/// ends with the final heal, and the final reads wait for the recovery.
#[test]
fn the_schedule_records_every_fault_and_its_undo_then_heals_and_recovers() {
    let fake = Arc::new(FakeDb::with_own_net());
    *fake.leaders.lock().unwrap() = strings(&["n3"]);
    let faults = all_faults(&fake, 5).with_timing(fast());
    let run = run_schedule(test_of(5, 11, 1_500), faults);
    let (last, faults_and_undos) = run.events.split_last().expect("events");
    assert_eq!(last.0, "heal", "{:?}", run.events);
    assert!(
        faults_and_undos.len() >= 6,
        "several faults in 1.5 s: {:?}",
        run.events
    );
    assert_eq!(faults_and_undos.len() % 2, 0);
    let mut partitions = Vec::new();
    for fault in faults_with_their_undos(faults_and_undos) {
        if let Action::StartPartition(p) = &fault {
            // The topology's own promise holds for the grudge recorded.
            match &p.topology {
                Topology::IsolateOne { isolated } | Topology::IsolateLeader { isolated, .. } => {
                    assert_eq!(p.grudge[isolated].len(), 4, "{p:?}");
                }
                Topology::Bridge { bridge } => {
                    assert!(!p.grudge.contains_key(bridge));
                    assert!(p.grudge.values().all(|dropped| !dropped.contains(bridge)));
                }
                Topology::Halves | Topology::MajoritiesRing => {
                    assert!(p.grudge.values().all(|dropped| dropped.len() <= 3));
                }
                Topology::RestartVoter { .. } | Topology::Figure8 { .. } => {
                    unreachable!("not asked for")
                }
            }
            if let Topology::IsolateLeader { leader, isolated } = &p.topology {
                assert_eq!((leader.as_deref(), isolated.as_str()), (Some("n3"), "n3"));
            }
            partitions.push(serde_json::to_string(&p.grudge).unwrap());
        }
    }
    // The grudges applied are the grudges recorded, in order.
    let applied: Vec<String> = fake
        .calls()
        .iter()
        .filter_map(|c| c.strip_prefix("partition ").map(str::to_string))
        .collect();
    assert_eq!(applied, partitions);
    assert!(fake.state().is_healed(), "{:?}", fake.state());
    assert_eq!(last.1["net"], json!(true));
    assert_eq!(last.1["resumed"].as_array().unwrap().len(), 5);

    // The final read came after the heal and the recovery time.
    let heal = run.ops.iter().find(|o| o.f == "heal").unwrap();
    let read = run.ops.iter().find(|o| o.f == "final-read").unwrap();
    assert!(read.index > heal.index);
    assert!(read.time.unwrap() - heal.time.unwrap() >= fast().recovery_ms * 1_000_000);

    // The progress line saw faults come and go, and nothing once healed.
    assert!(!run.shown.is_empty());
    assert!(run.shown.iter().all(|s| s == "heal"
        || [
            "partition",
            "loss",
            "latency",
            "kill",
            "pause",
            "clock",
            "election"
        ]
        .iter()
        .any(|kind| s.starts_with(kind))));
    assert_eq!(run.shown_after, None);
}

/// The faults in `events`, checking that each is undone, in nesting order: a fault, maybe a
/// companion fault and its undo, then the fault's own undo.
fn faults_with_their_undos(events: &[(String, Value)]) -> Vec<Action> {
    let mut open: Vec<Action> = Vec::new();
    let mut faults = Vec::new();
    for (f, value) in events {
        if let Some(top) = open.last() {
            let undo = top.undo().expect("every drawn fault has an undo");
            if (undo.f(), undo.value()) == (f.as_str(), value.clone()) {
                open.pop();
                continue;
            }
        }
        let fault = Action::parse(f, value).unwrap();
        assert!(fault.undo().is_some(), "an undo with no fault: {f} {value}");
        assert!(
            open.len() < 2,
            "at most a fault and its companion: {events:?}"
        );
        if let Some(outer) = open.first() {
            // A clock fault's companion, or the pause inside an election fault's isolation.
            let isolated_then_paused = match (outer, &fault) {
                (
                    Action::StartPartition(Partition {
                        topology: Topology::IsolateLeader { isolated, .. },
                        ..
                    }),
                    Action::Pause(t),
                ) => t.nodes == [isolated.clone()],
                _ => false,
            };
            assert!(
                matches!(outer, Action::BumpClock(_) | Action::StrobeClock(_))
                    || isolated_then_paused,
                "only a clock fault or an election fault nests another: {events:?}"
            );
        }
        open.push(fault.clone());
        faults.push(fault);
    }
    assert!(open.is_empty(), "faults left undone: {open:?}");
    faults
}

/// The same seed gives the same sequence of faults: the recorded events are exactly the
/// schedule's draws, so two runs agree on all the faults both had time for.
#[test]
fn the_schedule_is_reproducible_from_the_seed() {
    let events = |seed: u64| {
        let fake = Arc::new(FakeDb::with_own_net());
        *fake.leaders.lock().unwrap() = strings(&["n2"]);
        let faults = all_faults(&fake, 5).with_timing(fast());
        let test = test_of(5, seed, 800);
        let mut events = run_schedule(test.clone(), faults).events;
        assert_eq!(events.pop().map(|e| e.0).as_deref(), Some("heal"));
        let starts: Vec<(String, Value)> = faults_with_their_undos(&events)
            .into_iter()
            .map(|a| (a.f().to_string(), a.value()))
            .collect();
        (test, starts)
    };
    let (test, first) = events(21);
    let (_, second) = events(21);
    let common = first.len().min(second.len());
    assert!(common >= 3, "{first:?}");
    assert_eq!(first[..common], second[..common]);
    // ... and they are the pure schedule's draws for this seed.
    let mut schedule = Schedule::new(
        test.seed_for("nemesis"),
        &[
            Kind::Partition,
            Kind::Loss,
            Kind::Pause,
            Kind::Kill,
            Kind::Clock,
            Kind::Election,
        ],
        &test.nodes,
        true,
        fast(),
    );
    let mut drawn = Vec::new();
    while drawn.len() < first.len() {
        let planned = schedule.next_fault();
        if let Plan::Election(Election::PauseIsolatedLeader { .. }) = &planned.plan {
            // Recorded as the isolation of the leader, then its pause.
            drawn.push(Plan::IsolateLeader {
                fallback: "n2".into(),
                pick: 0,
            });
            drawn.push(Plan::Apply(Action::Pause(crate::action::Targets {
                target: Target::Leader,
                nodes: vec!["n2".into()],
            })));
            continue;
        }
        drawn.push(planned.plan);
        drawn.extend(planned.with);
    }
    for ((f, value), plan) in first.iter().zip(drawn) {
        match plan {
            Plan::Apply(Action::Kill(t) | Action::Pause(t)) if t.target == Target::Leader => {
                assert_eq!(
                    value["nodes"],
                    json!(["n2"]),
                    "the leader, not the stand-in"
                );
            }
            Plan::Apply(action) => {
                assert_eq!((action.f(), action.value()), (f.as_str(), value.clone()))
            }
            Plan::IsolateLeader { .. } => {
                assert_eq!(value["partition"], json!("isolate-leader"));
                assert_eq!(value["isolated"], json!("n2"));
            }
            Plan::Election(election) => unreachable!("expanded above: {election:?}"),
        }
    }
    let (_, other) = events(22);
    assert_ne!(
        first[..common.min(other.len())],
        other[..common.min(other.len())]
    );
}

/// Dropping the schedule in the middle of a fault (a panic or an abort elsewhere) leaves it in
/// force; teardown heals it.
#[test]
fn teardown_heals_a_fault_left_by_an_abandoned_schedule() {
    let fake = Arc::new(FakeDb::with_own_net());
    let timing = Timing {
        gap_ms: 10..=20,
        fault_ms: 5_000..=5_000,
        recovery_ms: 0,
    };
    let mut faults = all_faults(&fake, 5).with_timing(timing);
    let test = Arc::new(test_of(5, 4, 10_000));
    let interpreter = Interpreter {
        test: test.clone(),
        client: Arc::new(NoopClient),
        generator: generator::time_limit(
            300_000_000,
            generator::rate(100.0, generator::repeat(Draft::new("read", Value::Null))),
        ),
        clock: MonotonicClock::starting_now(),
        counters: Arc::default(),
        stop: Stop::default(),
    };
    let rt = runtime();
    let recorded = rt.block_on(interpreter.run_with_nemesis(
        HistoryWriter::new(std::io::sink()),
        |recorder, stop| {
            let faults = &mut faults;
            let test = test.clone();
            async move {
                // Abandon the schedule 200 ms in: within the first fault's 5 s hold.
                let run = faults.run(&test, recorder, stop);
                let _ = tokio::time::timeout(Duration::from_millis(200), run).await;
                Ok(())
            }
        },
    ));
    assert!(recorded.error.is_none());
    assert!(!fake.state().is_healed(), "a fault was left in force");
    assert!(faults.current().lock().unwrap().is_some());
    rt.block_on(faults.teardown(&test)).unwrap();
    assert!(fake.state().is_healed(), "{:?}", fake.state());
    assert_eq!(*faults.current().lock().unwrap(), None);
    rt.block_on(faults.teardown(&test)).unwrap();
}

#[test]
fn none_and_tiny_clusters_inject_nothing() {
    let fake = Arc::new(FakeDb::with_own_net());
    let faults = build(&strings(&["none"]), fake.clone(), nodes(3), None)
        .unwrap()
        .with_timing(fast());
    let run = run_schedule(test_of(3, 1, 300), faults);
    assert!(run.events.is_empty());
    // One node cannot be partitioned: the partition-only nemesis does nothing.
    let faults = build(&strings(&["partition"]), fake.clone(), nodes(1), None)
        .unwrap()
        .with_timing(fast());
    let run = run_schedule(test_of(1, 1, 300), faults);
    assert!(run.events.is_empty());
    assert!(fake.calls().is_empty());
}
