//! ZooKeeper 3.8 as real local ensembles of 3 JVMs (Debian's package): the client's operations
//! and their outcomes, sync reads, kill / start and pause / resume of a node, the leader, a
//! clock offset the JVM sees through libfaketime, and teardown leaving nothing behind.

mod etcd_and_zookeeper;

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use faultline_core::{Client, Completion, Db, OpType};
use faultline_targets::zookeeper::{ZookeeperClient, ZookeeperDb, ROOT};
use zookeeper_client as zk;

use etcd_and_zookeeper::{
    await_state, eventually, invoke, local_nodes, process_state, processes_under, read_until,
    setup_all, teardown_all, test_config, with_loopback_addresses, Guard,
};

const REQUEST_TIMEOUT: Duration = Duration::from_millis(2_000);
const RECOVERY: Duration = Duration::from_secs(30);

fn shm_files(pid: u32) -> [String; 2] {
    [
        format!("/dev/shm/faketime_shm_{pid}"),
        format!("/dev/shm/sem.faketime_sem_{pid}"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_writes_cas_and_sync_reads() {
    let guard = Guard::new("zookeeper", "ops");
    let test = test_config("zookeeper", 3, &guard.path());
    let zookeeper = Arc::new(ZookeeperDb::from_test(&test).unwrap());
    let db: Arc<dyn Db> = zookeeper.clone();
    let nodes = local_nodes(&test);
    let started = Instant::now();
    setup_all(&db, &test, &nodes).await.unwrap();
    eprintln!("3 nodes serving after {:?}", started.elapsed());
    db.setup(&test, &nodes[0])
        .await
        .expect("a second setup is a no-op");
    assert!(db.as_clock().is_none(), "no clock nemesis, no libfaketime");

    let plain = ZookeeperClient::new(zookeeper.clone(), false, REQUEST_TIMEOUT);
    let synced = ZookeeperClient::new(zookeeper.clone(), true, REQUEST_TIMEOUT);
    let mut n1 = plain.open(&test, "n1").await.unwrap();
    let mut n2 = plain.open(&test, "n2").await.unwrap();
    let mut n3 = synced.open(&test, "n3").await.unwrap();
    assert_eq!(
        invoke(&mut n1, &test, "read", 1, Value::Null).await,
        Completion::Ok(Value::Null),
        "never written"
    );
    assert_eq!(
        invoke(&mut n1, &test, "write", 1, json!(3)).await,
        Completion::Ok(json!(3)),
        "creates the znode"
    );
    assert_eq!(
        invoke(&mut n1, &test, "write", 1, json!(3)).await,
        Completion::Ok(json!(3)),
        "sets the znode"
    );
    assert_eq!(
        invoke(&mut n1, &test, "read", 1, Value::Null).await,
        Completion::Ok(json!(3))
    );
    assert_eq!(
        invoke(&mut n1, &test, "cas", 1, json!([3, 4])).await,
        Completion::Ok(json!([3, 4]))
    );
    assert_eq!(
        invoke(&mut n1, &test, "cas", 1, json!([3, 0])).await,
        Completion::fail("compare-failed")
    );
    // A synced read on another node sees the latest write at once.
    assert_eq!(
        invoke(&mut n3, &test, "read", 1, Value::Null).await,
        Completion::Ok(json!(4))
    );
    assert_eq!(
        invoke(&mut n3, &test, "cas", 1, json!([4, 1])).await,
        Completion::Ok(json!([4, 1]))
    );
    read_until(
        "a plain read on a follower catches up",
        &mut n2,
        &test,
        1,
        |v| *v == json!(1),
        RECOVERY,
    )
    .await;
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
    let log = std::fs::read_to_string(guard.dir.join("n1/zookeeper.log")).unwrap();
    assert!(log.contains("QuorumPeer"), "the log stays and has lines");
}

/// A session of the test's own on `addr`, writing `path` until it succeeds; the znode's
/// modification time (set from the leader's clock) minus this machine's time, in ms.
async fn mtime_skew_ms(addr: &str, path: &str) -> Result<i64, String> {
    let session = tokio::time::timeout(
        REQUEST_TIMEOUT,
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .with_fail_eagerly()
            .connect(addr),
    )
    .await
    .map_err(|_| "no session".to_string())?
    .map_err(|e| e.to_string())?;
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let stat = match tokio::time::timeout(REQUEST_TIMEOUT, session.create(path, b"x", &options))
        .await
        .map_err(|_| "create timed out".to_string())?
    {
        Ok((stat, _)) => stat,
        Err(zk::Error::NodeExists) => {
            tokio::time::timeout(REQUEST_TIMEOUT, session.set_data(path, b"y", None))
                .await
                .map_err(|_| "set timed out".to_string())?
                .map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    Ok(stat.mtime - now_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_survive_kill_and_pause_and_the_jvm_sees_the_clock_offset() {
    let guard = Guard::new("zookeeper", "faults");
    let mut test = test_config("zookeeper", 3, &guard.path());
    test.nemesis = vec!["clock".into()];
    let zookeeper = Arc::new(ZookeeperDb::from_test(&test).unwrap());
    let db: Arc<dyn Db> = zookeeper.clone();
    let nodes = local_nodes(&test);
    setup_all(&db, &test, &nodes).await.unwrap();
    let mut pids: Vec<u32> = nodes
        .iter()
        .map(|n| guard.pid(&n.name, "zookeeper.pid").unwrap())
        .collect();
    for &pid in &pids {
        for file in shm_files(pid) {
            assert!(
                std::path::Path::new(&file).exists(),
                "{file}: libfaketime is loaded"
            );
        }
    }
    let primary = db.as_primary().unwrap();
    let leaders = primary.primaries(&test, &nodes).await.unwrap();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    let leader = nodes.iter().position(|n| n.name == leaders[0]).unwrap();
    let follower = (leader + 1) % nodes.len();
    let template = ZookeeperClient::new(zookeeper.clone(), true, REQUEST_TIMEOUT);
    let mut on_leader = template.open(&test, &nodes[leader].name).await.unwrap();
    let mut on_follower = template.open(&test, &nodes[follower].name).await.unwrap();
    assert_eq!(
        invoke(&mut on_leader, &test, "write", 1, json!(1)).await,
        Completion::Ok(json!(1))
    );

    // Kill a follower: the others go on; its libfaketime files go with it; it restarts.
    let kill = db.as_kill().unwrap();
    let pid = pids[follower];
    kill.kill(&test, &nodes[follower]).await.unwrap();
    kill.kill(&test, &nodes[follower]).await.unwrap();
    assert_eq!(process_state(pid), None, "killed");
    for file in shm_files(pid) {
        assert!(!std::path::Path::new(&file).exists(), "{file} cleaned");
    }
    assert_eq!(
        invoke(&mut on_leader, &test, "write", 1, json!(2)).await,
        Completion::Ok(json!(2)),
        "two of three are a quorum"
    );
    kill.start(&test, &nodes[follower]).await.unwrap();
    pids[follower] = guard.pid(&nodes[follower].name, "zookeeper.pid").unwrap();
    assert_ne!(pids[follower], pid);
    read_until(
        "the restarted follower serves the latest value",
        &mut on_follower,
        &test,
        1,
        |v| *v == json!(2),
        RECOVERY,
    )
    .await;

    // Pause it: a read times out (fail), a write is unknown (info); resumed, it serves.
    let pause = db.as_pause().unwrap();
    pause.pause(&test, &nodes[follower]).await.unwrap();
    await_state(pids[follower], Some('T')).await;
    assert_eq!(
        invoke(&mut on_follower, &test, "read", 1, Value::Null).await,
        Completion::fail("timeout")
    );
    assert_eq!(
        invoke(&mut on_follower, &test, "write", 1, json!(3)).await,
        Completion::info("timeout")
    );
    pause.resume(&test, &nodes[follower]).await.unwrap();
    pause.resume(&test, &nodes[follower]).await.unwrap();
    read_until(
        "the resumed follower serves",
        &mut on_follower,
        &test,
        1,
        |v| *v == json!(2) || *v == json!(3),
        RECOVERY,
    )
    .await;

    // Every clock 5 minutes ahead: a znode written now carries the leader's skewed time.
    let clock = db.as_clock().expect("clock in the nemesis: libfaketime");
    const OFFSET_MS: i64 = 300_000;
    for node in &nodes {
        clock.set_offset(&test, node, OFFSET_MS).await.unwrap();
    }
    let offset_file = std::fs::read_to_string(guard.dir.join("n1/faketime")).unwrap();
    assert_eq!(offset_file, "+300s");
    let path = format!("{ROOT}/clock-check");
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| zookeeper.client_addr(&n.name).unwrap())
        .collect();
    let skew = eventually(
        "a write stamped with the skewed clock",
        RECOVERY,
        || async {
            let mut last = String::new();
            for addr in &addrs {
                match mtime_skew_ms(addr, &path).await {
                    Ok(skew) if skew > OFFSET_MS / 2 => return Ok(skew),
                    Ok(skew) => last = format!("skew {skew} ms"),
                    Err(e) => last = e,
                }
            }
            Err(last)
        },
    )
    .await;
    eprintln!("a znode written with every clock +{OFFSET_MS} ms has mtime {skew} ms ahead");
    assert!(
        (OFFSET_MS - 30_000..OFFSET_MS + 30_000).contains(&skew),
        "mtime is {skew} ms ahead"
    );
    for node in &nodes {
        clock.reset(&test, node).await.unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(guard.dir.join("n1/faketime")).unwrap(),
        "+0"
    );
    eventually(
        "the ensemble serves again on the real clock",
        RECOVERY,
        || async {
            let mut last = String::new();
            for addr in &addrs {
                match mtime_skew_ms(addr, &path).await {
                    Ok(skew) if skew.abs() < 30_000 => return Ok(()),
                    Ok(skew) => last = format!("skew {skew} ms"),
                    Err(e) => last = e,
                }
            }
            Err(last)
        },
    )
    .await;

    for client in [&mut on_leader, &mut on_follower] {
        client.close(&test).await.unwrap();
    }
    // A JVM that dies without the db's kill (a crash) leaves libfaketime's files too;
    // teardown removes them.
    let crashed = std::process::Command::new("kill")
        .args(["-KILL", &pids[leader].to_string()])
        .status()
        .unwrap();
    assert!(crashed.success());
    teardown_all(&db, &test, &nodes).await.unwrap();
    assert_eq!(processes_under(&guard.path()), Vec::<String>::new());
    for pid in pids {
        for file in shm_files(pid) {
            assert!(!std::path::Path::new(&file).exists(), "{file} cleaned");
        }
    }
    assert!(!guard.dir.join("n1/faketime").exists());
    // Healing resets every clock on every exit path, also after teardown: a no-op.
    for node in &nodes {
        clock.reset(&test, node).await.unwrap();
    }
    assert!(!guard.dir.join("n1/faketime").exists());
}

/// Remote mode: every node on its own address at ZooKeeper's standard ports (distinct
/// loopback addresses here, lab or VM addresses in a real run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_mode_uses_the_standard_ports_on_each_address() {
    let guard = Guard::new("zookeeper", "remote");
    let mut test = test_config("zookeeper", 3, &guard.path());
    with_loopback_addresses(&mut test);
    let zookeeper = Arc::new(ZookeeperDb::from_test(&test).unwrap());
    let db: Arc<dyn Db> = zookeeper.clone();
    let nodes = local_nodes(&test);
    setup_all(&db, &test, &nodes).await.unwrap();
    let cfg = std::fs::read_to_string(guard.dir.join("n2/conf/zoo.cfg")).unwrap();
    let n2 = &test.addresses["n2"];
    assert!(
        cfg.contains(&format!("clientPort=2181\nclientPortAddress={n2}\n")),
        "{cfg}"
    );
    assert!(cfg.contains(&format!("server.2={n2}:2888:3888\n")), "{cfg}");
    let template = ZookeeperClient::new(zookeeper.clone(), true, REQUEST_TIMEOUT);
    let mut client = template.open(&test, "n2").await.unwrap();
    assert_eq!(
        invoke(&mut client, &test, "write", 1, json!(2)).await,
        Completion::Ok(json!(2))
    );
    assert_eq!(
        invoke(&mut client, &test, "read", 1, Value::Null).await,
        Completion::Ok(json!(2))
    );
    let leaders = db
        .as_primary()
        .unwrap()
        .primaries(&test, &nodes)
        .await
        .unwrap();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    client.close(&test).await.unwrap();
    teardown_all(&db, &test, &nodes).await.unwrap();
    assert_eq!(processes_under(&guard.path()), Vec::<String>::new());
}
