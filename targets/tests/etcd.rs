//! etcd 3.4 as real local clusters of 3 members (Debian's `/usr/bin/etcd`): the client's
//! operations and their outcomes, serializable reads, kill / start and pause / resume of a
//! member, the leader, and teardown leaving nothing behind.

mod etcd_and_zookeeper;

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_core::{Client, Completion, Db, OpType};
use faultline_targets::etcd::{EtcdClient, EtcdDb, ReadMode};

use etcd_and_zookeeper::{
    await_state, eventually, invoke, local_nodes, process_state, processes_under, read_until,
    setup_all, teardown_all, test_config, with_loopback_addresses, Guard,
};

const REQUEST_TIMEOUT: Duration = Duration::from_millis(1_500);
const RECOVERY: Duration = Duration::from_secs(20);

/// A read through `client` that must succeed, as its value.
async fn read(client: &mut Box<dyn Client>, test: &faultline_core::Test, key: u64) -> Value {
    match invoke(client, test, "read", key, Value::Null).await {
        Completion::Ok(value) => value,
        other => panic!("read of {key}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_writes_and_cas_through_the_json_gateway() {
    let guard = Guard::new("etcd", "ops");
    let test = test_config("etcd", 3, &guard.path());
    let etcd = Arc::new(EtcdDb::from_test(&test).unwrap());
    let db: Arc<dyn Db> = etcd.clone();
    let nodes = local_nodes(&test);
    let started = Instant::now();
    setup_all(&db, &test, &nodes).await.unwrap();
    eprintln!("3 members serving after {:?}", started.elapsed());
    db.setup(&test, &nodes[0])
        .await
        .expect("a second setup is a no-op");

    let linearizable = EtcdClient::new(etcd.clone(), ReadMode::Linearizable, REQUEST_TIMEOUT);
    let mut n1 = linearizable.open(&test, "n1").await.unwrap();
    let mut n2 = linearizable.open(&test, "n2").await.unwrap();
    assert_eq!(read(&mut n1, &test, 1).await, Value::Null, "never written");
    assert_eq!(
        invoke(&mut n1, &test, "write", 1, json!(3)).await,
        Completion::Ok(json!(3))
    );
    assert_eq!(read(&mut n1, &test, 1).await, json!(3));
    assert_eq!(
        invoke(&mut n1, &test, "cas", 1, json!([3, 4])).await,
        Completion::Ok(json!([3, 4]))
    );
    assert_eq!(
        invoke(&mut n1, &test, "cas", 1, json!([3, 0])).await,
        Completion::fail("compare-failed")
    );
    assert_eq!(
        read(&mut n2, &test, 1).await,
        json!(4),
        "through another member"
    );
    assert_eq!(
        invoke(&mut n2, &test, "cas", 2, json!([0, 1])).await,
        Completion::fail("compare-failed"),
        "a missing key holds no value"
    );
    assert_eq!(
        invoke(&mut n2, &test, "cas", 3, json!([null, 1])).await,
        Completion::Ok(json!([null, 1])),
        "a never-written key holds null"
    );
    assert_eq!(
        invoke(&mut n2, &test, "cas", 3, json!([null, 2])).await,
        Completion::fail("compare-failed"),
        "written since"
    );
    assert_eq!(
        invoke(&mut n2, &test, "write", 3, Value::Null).await.kind(),
        OpType::Fail,
        "null means never written"
    );
    assert_eq!(
        invoke(&mut n2, &test, "append", 2, json!(1)).await.kind(),
        OpType::Fail
    );

    let serializable = EtcdClient::new(etcd.clone(), ReadMode::Serializable, REQUEST_TIMEOUT);
    let mut n3 = serializable.open(&test, "n3").await.unwrap();
    read_until(
        "a serializable read sees the write",
        &mut n3,
        &test,
        1,
        |v| *v == json!(4),
        RECOVERY,
    )
    .await;

    let leaders = db
        .as_primary()
        .unwrap()
        .primaries(&test, &nodes)
        .await
        .unwrap();
    assert_eq!(leaders.len(), 1, "one leader: {leaders:?}");

    for client in [&mut n1, &mut n2, &mut n3] {
        client.close(&test).await.unwrap();
    }
    teardown_all(&db, &test, &nodes).await.unwrap();
    teardown_all(&db, &test, &nodes)
        .await
        .expect("a second teardown");
    assert_eq!(processes_under(&guard.path()), Vec::<String>::new());
    assert!(!guard.dir.join("n1/data").exists(), "data removed");
    assert!(guard.dir.join("n1/etcd.log").exists(), "the log stays");
    assert_eq!(
        db.log_files(&test, &nodes[0]),
        vec![guard.dir.join("n1/etcd.log")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_survive_kill_and_pause_and_serializable_reads_need_no_quorum() {
    let guard = Guard::new("etcd", "faults");
    let test = test_config("etcd", 3, &guard.path());
    let etcd = Arc::new(EtcdDb::from_test(&test).unwrap());
    let db: Arc<dyn Db> = etcd.clone();
    let nodes = local_nodes(&test);
    setup_all(&db, &test, &nodes).await.unwrap();
    let primary = db.as_primary().unwrap();
    let leaders = primary.primaries(&test, &nodes).await.unwrap();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    let leader = nodes.iter().position(|n| n.name == leaders[0]).unwrap();
    let follower = (leader + 1) % nodes.len();
    let template = EtcdClient::new(etcd.clone(), ReadMode::Linearizable, REQUEST_TIMEOUT);
    let open = |i: usize| template.open(&test, &nodes[i].name);
    let mut on_leader = open(leader).await.unwrap();
    assert_eq!(
        invoke(&mut on_leader, &test, "write", 1, json!(1)).await,
        Completion::Ok(json!(1))
    );

    // Pause a follower: its requests time out (a read fails, a write is unknown).
    let pid = guard.pid(&nodes[follower].name, "etcd.pid").unwrap();
    let pause = db.as_pause().unwrap();
    pause.pause(&test, &nodes[follower]).await.unwrap();
    pause.pause(&test, &nodes[follower]).await.unwrap();
    await_state(pid, Some('T')).await;
    let mut on_follower = open(follower).await.unwrap();
    assert_eq!(
        invoke(&mut on_follower, &test, "read", 1, Value::Null).await,
        Completion::fail("timeout")
    );
    assert_eq!(
        invoke(&mut on_follower, &test, "write", 1, json!(2)).await,
        Completion::info("timeout")
    );
    pause.resume(&test, &nodes[follower]).await.unwrap();
    // The write sent while paused may have applied after the resume.
    read_until(
        "the resumed follower serves",
        &mut on_follower,
        &test,
        1,
        |v| *v == json!(1) || *v == json!(2),
        RECOVERY,
    )
    .await;

    // Kill the leader: another member leads; the killed one restarts on its data.
    let kill = db.as_kill().unwrap();
    let leader_pid = guard.pid(&nodes[leader].name, "etcd.pid").unwrap();
    kill.kill(&test, &nodes[leader]).await.unwrap();
    kill.kill(&test, &nodes[leader]).await.unwrap();
    assert_eq!(process_state(leader_pid), None, "killed");
    assert_eq!(
        invoke(&mut on_leader, &test, "read", 1, Value::Null)
            .await
            .kind(),
        OpType::Fail,
        "nothing listens"
    );
    let new_leader = eventually("a new leader", RECOVERY, || async {
        match primary.primaries(&test, &nodes).await.unwrap().as_slice() {
            [one] if *one != nodes[leader].name => Ok(one.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let mut on_new_leader = template.open(&test, &new_leader).await.unwrap();
    assert_eq!(
        invoke(&mut on_new_leader, &test, "write", 1, json!(5)).await,
        Completion::Ok(json!(5))
    );
    kill.start(&test, &nodes[leader]).await.unwrap();
    kill.start(&test, &nodes[leader]).await.unwrap();
    assert!(guard.pid(&nodes[leader].name, "etcd.pid").unwrap() != leader_pid);
    read_until(
        "the restarted member serves the latest value",
        &mut on_leader,
        &test,
        1,
        |v| *v == json!(5),
        RECOVERY,
    )
    .await;

    // Kill two of three: the survivor has no quorum. A serializable read answers at once
    // from its local state; a linearizable one cannot.
    let survivor = leader;
    let others: Vec<usize> = (0..nodes.len()).filter(|&i| i != survivor).collect();
    for &i in &others {
        kill.kill(&test, &nodes[i]).await.unwrap();
    }
    let serializable = EtcdClient::new(etcd.clone(), ReadMode::Serializable, REQUEST_TIMEOUT);
    let mut local = serializable
        .open(&test, &nodes[survivor].name)
        .await
        .unwrap();
    let asked = Instant::now();
    assert_eq!(
        invoke(&mut local, &test, "read", 1, Value::Null).await,
        Completion::Ok(json!(5))
    );
    assert!(asked.elapsed() < REQUEST_TIMEOUT, "{:?}", asked.elapsed());
    let mut quorum = template.open(&test, &nodes[survivor].name).await.unwrap();
    assert_eq!(
        invoke(&mut quorum, &test, "read", 1, Value::Null)
            .await
            .kind(),
        OpType::Fail,
        "no quorum, no linearizable read"
    );
    for &i in &others {
        kill.start(&test, &nodes[i]).await.unwrap();
    }
    read_until(
        "a quorum again",
        &mut quorum,
        &test,
        1,
        |v| *v == json!(5),
        RECOVERY,
    )
    .await;

    teardown_all(&db, &test, &nodes).await.unwrap();
    assert_eq!(processes_under(&guard.path()), Vec::<String>::new());
}

/// A "server" that never serves: setup fails within its bound, and teardown still kills the
/// process and removes the data, twice over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_cleans_up_after_a_setup_that_never_served() {
    let guard = Guard::new("etcd", "halfway");
    let script = guard.dir.join("never-serves.sh");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 60\n").unwrap();
    let chmod = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    assert!(chmod.success());
    let mut test = test_config("etcd", 1, &guard.path());
    test.target_options
        .insert("program".into(), json!(script.to_string_lossy()));
    test.target_options
        .insert("ready_timeout_ms".into(), json!(500));
    let db: Arc<dyn Db> = Arc::new(EtcdDb::from_test(&test).unwrap());
    let nodes = local_nodes(&test);
    let err = db.setup(&test, &nodes[0]).await.unwrap_err().to_string();
    assert!(err.contains("not serving"), "{err}");
    let pid = guard.pid("n1", "etcd.pid").expect("started");
    assert!(process_state(pid).is_some());
    db.as_pause()
        .unwrap()
        .pause(&test, &nodes[0])
        .await
        .unwrap();
    db.teardown(&test, &nodes[0]).await.unwrap();
    db.teardown(&test, &nodes[0]).await.unwrap();
    assert_eq!(process_state(pid), None, "pid {pid} survived teardown");
    assert!(!guard.dir.join("n1/data").exists());
    // Resume and kill of a member that is not running are no-ops.
    db.as_pause()
        .unwrap()
        .resume(&test, &nodes[0])
        .await
        .unwrap();
    db.as_kill().unwrap().kill(&test, &nodes[0]).await.unwrap();
}

/// Remote mode: every member on its own address at etcd's standard ports (distinct loopback
/// addresses here, lab or VM addresses in a real run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_mode_uses_the_standard_ports_on_each_address() {
    let guard = Guard::new("etcd", "remote");
    let mut test = test_config("etcd", 3, &guard.path());
    with_loopback_addresses(&mut test);
    let etcd = Arc::new(EtcdDb::from_test(&test).unwrap());
    let db: Arc<dyn Db> = etcd.clone();
    let nodes = local_nodes(&test);
    setup_all(&db, &test, &nodes).await.unwrap();
    for node in &nodes {
        assert_eq!(
            etcd.client_addr(&node.name).unwrap(),
            format!("{}:2379", test.addresses[&node.name])
        );
    }
    let template = EtcdClient::new(etcd.clone(), ReadMode::Linearizable, REQUEST_TIMEOUT);
    let mut n3 = template.open(&test, "n3").await.unwrap();
    assert_eq!(
        invoke(&mut n3, &test, "write", 1, json!(2)).await,
        Completion::Ok(json!(2))
    );
    assert_eq!(read(&mut n3, &test, 1).await, json!(2));
    let leaders = db
        .as_primary()
        .unwrap()
        .primaries(&test, &nodes)
        .await
        .unwrap();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    teardown_all(&db, &test, &nodes).await.unwrap();
    assert_eq!(processes_under(&guard.path()), Vec::<String>::new());
}
