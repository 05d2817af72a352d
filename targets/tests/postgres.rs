//! PostgreSQL 15 as a real local server (Debian's `/usr/lib/postgresql/15/bin`, run as the
//! `postgres` user when the tests run as root): every workload's operations as transactions,
//! write skew at repeatable read and its refusal at serializable, a COMMIT in flight that is
//! `info` (and did commit), kill with crash recovery, pause of every server process, a server
//! on a host address, and teardown leaving no process, shared memory or data behind.
//!
//! One server at a time (a lock): each is small, but the machine running the tests is busy.

mod etcd_and_zookeeper;

use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use faultline_core::{Client, Completion, Db, Invocation, Node, OpType, Test};
use faultline_targets::postgres::{self, DataModel, Isolation, PostgresClient, PostgresDb};

use etcd_and_zookeeper::{await_state, local_nodes, process_state, with_loopback_addresses};

/// Generous for a loaded machine, yet short enough for the timeouts the tests provoke.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(3_000);

static ONE_SERVER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A directory of its own for one test; on drop (passed or failed) crashes the server in it
/// and forgets it (lock file, shared memory) with the target's own script, then removes it.
struct Guard {
    dir: std::path::PathBuf,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Guard {
    fn new(name: &str) -> Guard {
        let one_at_a_time = ONE_SERVER_AT_A_TIME
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!(
            "faultline-test-postgres-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Guard {
            dir,
            _one_at_a_time: one_at_a_time,
        }
    }

    fn path(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    fn data_dir(&self) -> String {
        format!("{}/n1/data", self.path())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for verb in ["resume", "kill", "forget"] {
            if verb == "forget" {
                // The killed processes must have exited before their segment can go.
                std::thread::sleep(Duration::from_millis(300));
            }
            let _ = std::process::Command::new("sh")
                .args(["-c", postgres::SIGNAL_SCRIPT, "postgres", verb])
                .arg(self.data_dir())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `workload` test on one local node whose files live under the guard's directory.
fn test_config(workload: &str, guard: &Guard) -> Test {
    let mut test = Test::example("postgres", workload, 42);
    test.target_options
        .insert("data_dir".into(), Value::String(guard.path()));
    test
}

/// The server of `test`, set up.
async fn server(test: &Test) -> (Arc<PostgresDb>, Vec<Node>) {
    let db = Arc::new(PostgresDb::from_test(test).unwrap_or_else(|e| panic!("{e}")));
    let nodes = local_nodes(test);
    let started = Instant::now();
    db.setup(test, &nodes[0])
        .await
        .unwrap_or_else(|e| panic!("setup: {e}"));
    eprintln!("postgres serving after {:?}", started.elapsed());
    (db, nodes)
}

async fn open(
    db: &Arc<PostgresDb>,
    test: &Test,
    model: DataModel,
    isolation: Isolation,
) -> Box<dyn Client> {
    PostgresClient::new(db.clone(), model, isolation, REQUEST_TIMEOUT)
        .open(test, "n1")
        .await
        .unwrap()
}

async fn call(
    client: &mut Box<dyn Client>,
    test: &Test,
    f: &str,
    key: Option<Value>,
    value: Value,
) -> Completion {
    let op = Invocation {
        process: 0,
        f: f.to_string(),
        key,
        value,
    };
    client.invoke(test, &op).await
}

async fn txn(client: &mut Box<dyn Client>, test: &Test, mops: Value) -> Completion {
    call(client, test, "txn", None, mops).await
}

/// A superuser connection to the test database, driven by its own task.
async fn admin(db: &PostgresDb) -> tokio_postgres::Client {
    let config = db.client_config(postgres::DATABASE).unwrap();
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Processes whose command line names `dir`, other than pgrep itself.
fn processes_under(dir: &str) -> Vec<String> {
    etcd_and_zookeeper::processes_under(dir)
}

/// Whether a System V segment of the server's is still there (the key on line 7 of the lock
/// file read while it ran).
fn segment_exists(key_and_id: &str) -> bool {
    let id = key_and_id.split_whitespace().nth(1).unwrap();
    let out = std::process::Command::new("ipcs")
        .arg("-m")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|line| line.split_whitespace().nth(1) == Some(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_as_transactions() {
    let guard = Guard::new("ops");
    let mut test = test_config("bank", &guard);
    test.workload_options.insert("accounts".into(), json!(3));
    test.workload_options.insert("total".into(), json!(30));
    let (db, nodes) = server(&test).await;
    db.setup(&test, &nodes[0])
        .await
        .expect("a second setup is a no-op");
    let serializable = Isolation::Serializable;

    // register: read / write / cas.
    let mut c = open(&db, &test, DataModel::Register, serializable).await;
    let k = Some(json!(1));
    assert_eq!(
        call(&mut c, &test, "read", k.clone(), Value::Null).await,
        Completion::Ok(Value::Null),
        "never written"
    );
    assert_eq!(
        call(&mut c, &test, "write", k.clone(), json!(3)).await,
        Completion::Ok(json!(3))
    );
    assert_eq!(
        call(&mut c, &test, "read", k.clone(), Value::Null).await,
        Completion::Ok(json!(3))
    );
    assert_eq!(
        call(&mut c, &test, "cas", k.clone(), json!([3, 4])).await,
        Completion::Ok(json!([3, 4]))
    );
    assert_eq!(
        call(&mut c, &test, "cas", k.clone(), json!([3, 5])).await,
        Completion::fail("compare-failed")
    );
    assert_eq!(
        call(&mut c, &test, "cas", k.clone(), json!([null, 5])).await,
        Completion::fail("compare-failed"),
        "written, so not null"
    );
    assert_eq!(
        call(&mut c, &test, "cas", Some(json!(2)), json!([null, 1])).await,
        Completion::Ok(json!([null, 1]))
    );
    // Keys are JSON: the integer 1 and the string "1" are different registers.
    assert_eq!(
        call(&mut c, &test, "read", Some(json!("1")), Value::Null).await,
        Completion::Ok(Value::Null)
    );
    assert_eq!(
        call(&mut c, &test, "write", k.clone(), Value::Null)
            .await
            .kind(),
        OpType::Fail
    );

    // list-append: appends and reads in one transaction see each other.
    let mut c = open(&db, &test, DataModel::ListAppend, serializable).await;
    assert_eq!(
        txn(
            &mut c,
            &test,
            json!([
                ["r", "x", null],
                ["append", "x", 1],
                ["append", "x", 2],
                ["r", "x", null]
            ])
        )
        .await,
        Completion::Ok(json!([
            ["r", "x", null],
            ["append", "x", 1],
            ["append", "x", 2],
            ["r", "x", [1, 2]]
        ]))
    );
    assert_eq!(
        txn(&mut c, &test, json!([["append", "y", 3], ["r", "x", null]])).await,
        Completion::Ok(json!([["append", "y", 3], ["r", "x", [1, 2]]]))
    );
    assert_eq!(
        txn(&mut c, &test, json!([["w", "x", 3]])).await.kind(),
        OpType::Fail,
        "list-append has no w"
    );

    // rw-register.
    let mut c = open(&db, &test, DataModel::RwRegister, serializable).await;
    assert_eq!(
        txn(
            &mut c,
            &test,
            json!([["r", 5, null], ["w", 5, 10], ["r", 5, null]])
        )
        .await,
        Completion::Ok(json!([["r", 5, null], ["w", 5, 10], ["r", 5, 10]]))
    );
    assert_eq!(
        txn(
            &mut c,
            &test,
            json!([["w", 5, 11], ["w", 6, 12], ["r", 6, null]])
        )
        .await,
        Completion::Ok(json!([["w", 5, 11], ["w", 6, 12], ["r", 6, 12]]))
    );

    // bank: 3 accounts holding 30.
    let mut c = open(&db, &test, DataModel::Bank, serializable).await;
    assert_eq!(
        call(&mut c, &test, "read", None, Value::Null).await,
        Completion::Ok(json!({"0": 10, "1": 10, "2": 10}))
    );
    let transfer = json!({"from": 0, "to": 2, "amount": 7});
    assert_eq!(
        call(&mut c, &test, "transfer", None, transfer.clone()).await,
        Completion::Ok(transfer)
    );
    assert_eq!(
        call(
            &mut c,
            &test,
            "transfer",
            None,
            json!({"from": 0, "to": 1, "amount": 4})
        )
        .await,
        Completion::fail("insufficient-funds")
    );
    assert_eq!(
        call(&mut c, &test, "read", None, Value::Null).await,
        Completion::Ok(json!({"0": 3, "1": 10, "2": 17}))
    );
    let no_such_account = call(
        &mut c,
        &test,
        "transfer",
        None,
        json!({"from": 9, "to": 1, "amount": 1}),
    )
    .await;
    assert!(
        matches!(&no_such_account, Completion::Fail(e) if e.as_str().is_some_and(|e| e.starts_with("bad-request"))),
        "{no_such_account:?}"
    );

    c.close(&test).await.unwrap();
    db.teardown(&test, &nodes[0]).await.unwrap();
    db.teardown(&test, &nodes[0])
        .await
        .expect("a second teardown");
    assert_eq!(processes_under(&guard.data_dir()), Vec::<String>::new());
    assert!(!guard.dir.join("n1/data").exists(), "data removed");
    let log = guard.dir.join("n1/postgres.log");
    assert!(log.exists(), "the log stays");
    assert_eq!(db.log_files(&test, &nodes[0]), vec![log]);
}

/// The doctors on call: two transactions each read both rows and write one. Returns what
/// the second (through the client) and the first (held open on its own connection) got.
async fn write_skew(isolation: Isolation) -> (Completion, Result<(), String>) {
    let guard = Guard::new(&format!("skew-{}", isolation.as_str()));
    let test = test_config("rw-register", &guard);
    let (db, nodes) = server(&test).await;
    let mut c = open(&db, &test, DataModel::RwRegister, isolation).await;
    assert_eq!(
        txn(&mut c, &test, json!([["w", "x", 1], ["w", "y", 1]]))
            .await
            .kind(),
        OpType::Ok
    );
    let first = admin(&db).await;
    first.batch_execute(isolation.begin_sql()).await.unwrap();
    let rows = first
        .query("SELECT v FROM registers WHERE k IN ('\"x\"', '\"y\"')", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    first
        .batch_execute("UPDATE registers SET v = '2' WHERE k = '\"x\"'")
        .await
        .unwrap();
    let second = txn(
        &mut c,
        &test,
        json!([["r", "x", null], ["r", "y", null], ["w", "y", 3]]),
    )
    .await;
    let first_commit = first
        .batch_execute("COMMIT")
        .await
        .map_err(|e| postgres::client::describe(&e));
    drop(first);
    db.teardown(&test, &nodes[0]).await.unwrap();
    (second, first_commit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_skew_commits_at_repeatable_read_and_is_refused_at_serializable() {
    let (second, first) = write_skew(Isolation::RepeatableRead).await;
    assert_eq!(
        second,
        Completion::Ok(json!([["r", "x", 1], ["r", "y", 1], ["w", "y", 3]])),
        "the second read x before the first's write"
    );
    assert_eq!(first, Ok(()), "both commit: write skew");

    let (second, first) = write_skew(Isolation::Serializable).await;
    eprintln!("serializable: second {second:?}, first {first:?}");
    let second_refused = matches!(&second, Completion::Fail(e) if e.as_str().is_some_and(|e| e.starts_with("40001")));
    let first_refused = first.as_ref().is_err_and(|e| e.starts_with("40001"));
    assert!(
        second_refused != first_refused,
        "exactly one of the two is refused with a serialization failure: {second:?} / {first:?}"
    );
    if !second_refused {
        assert_eq!(second.kind(), OpType::Ok);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_in_flight_is_info_and_may_well_have_committed() {
    let guard = Guard::new("commit");
    let test = test_config("register", &guard);
    let (db, nodes) = server(&test).await;
    let admin = admin(&db).await;
    // Every COMMIT now waits for a synchronous standby that does not exist: the transaction
    // is in the WAL, and the client hears nothing.
    admin
        .batch_execute("ALTER SYSTEM SET synchronous_standby_names = 'nosuch'")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    let mut c = open(&db, &test, DataModel::Register, Isolation::Serializable).await;
    // The reload reaches backends at their next command; a fresh connection has it.
    let started = Instant::now();
    let write = call(&mut c, &test, "write", Some(json!(1)), json!(7)).await;
    assert_eq!(write, Completion::info("timeout during commit"));
    assert!(started.elapsed() >= REQUEST_TIMEOUT);
    // Until the standby requirement is lifted, the backend waits on (the dropped connection
    // does not end the wait) and the write is invisible; then it is there: the info was right
    // not to be a fail. Reads write no WAL, so they do not wait.
    assert_eq!(
        call(&mut c, &test, "read", Some(json!(1)), Value::Null).await,
        Completion::Ok(Value::Null)
    );
    admin
        .batch_execute("ALTER SYSTEM RESET synchronous_standby_names")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let read = call(&mut c, &test, "read", Some(json!(1)), Value::Null).await;
        if read == Completion::Ok(json!(7)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the write never showed: {read:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A statement blocked before COMMIT (a row lock held elsewhere) that times out: fail,
    // and it must not have happened.
    admin
        .batch_execute("BEGIN; UPDATE registers SET v = '8' WHERE k = '1'")
        .await
        .unwrap();
    let blocked = call(&mut c, &test, "write", Some(json!(1)), json!(9)).await;
    assert_eq!(blocked, Completion::fail("timeout before commit"));
    admin.batch_execute("ROLLBACK").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        call(&mut c, &test, "read", Some(json!(1)), Value::Null).await,
        Completion::Ok(json!(7)),
        "the blocked write never committed"
    );
    drop(admin);
    db.teardown(&test, &nodes[0]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_recovers_committed_data_and_pause_stops_every_server_process() {
    let guard = Guard::new("faults");
    let test = test_config("list-append", &guard);
    let (db, nodes) = server(&test).await;
    let node = &nodes[0];
    let mut c = open(&db, &test, DataModel::ListAppend, Isolation::Serializable).await;
    for i in 1..=3 {
        assert_eq!(
            txn(&mut c, &test, json!([["append", 1, i]])).await.kind(),
            OpType::Ok
        );
    }
    let pidfile = guard.dir.join("n1/data/postmaster.pid");
    let lock = std::fs::read_to_string(&pidfile).unwrap();
    let postmaster: u32 = lock.lines().next().unwrap().parse().unwrap();
    let segment = lock.lines().nth(6).unwrap().to_string();
    assert!(segment_exists(&segment), "{segment}");

    // Kill: every process of the server dies at once; the client's connection is gone, so
    // its next transaction fails before COMMIT (nothing was committed).
    let kill = db.as_kill().unwrap();
    kill.kill(&test, node).await.unwrap();
    assert_eq!(process_state(postmaster), None);
    assert_eq!(
        processes_under(&guard.data_dir()),
        Vec::<String>::new(),
        "no backend outlives the postmaster"
    );
    kill.kill(&test, node).await.expect("killing twice");
    let lost = txn(&mut c, &test, json!([["append", 1, 4]])).await;
    assert_eq!(lost.kind(), OpType::Fail, "{lost:?}");
    // Start (even while the killed postmaster may still be an unreaped zombie): crash
    // recovery; every committed append survived.
    let started = Instant::now();
    kill.start(&test, node).await.unwrap();
    eprintln!("restarted with crash recovery in {:?}", started.elapsed());
    kill.start(&test, node).await.expect("starting twice");
    assert!(!segment_exists(&segment), "the old segment was removed");
    assert_eq!(
        txn(&mut c, &test, json!([["r", 1, null]])).await,
        Completion::Ok(json!([["r", 1, [1, 2, 3]]]))
    );
    let log = std::fs::read_to_string(guard.dir.join("n1/postgres.log")).unwrap();
    assert!(
        log.contains("was interrupted") || log.contains("not properly shut down"),
        "the restart recovered from a crash:\n{log}"
    );

    // Pause: the postmaster and every child stop; a transaction times out before COMMIT.
    let lock = std::fs::read_to_string(&pidfile).unwrap();
    let postmaster: u32 = lock.lines().next().unwrap().parse().unwrap();
    let children = children_of(postmaster);
    assert!(
        children.len() >= 3,
        "checkpointer, writers, ...: {children:?}"
    );
    let pause = db.as_pause().unwrap();
    pause.pause(&test, node).await.unwrap();
    pause.pause(&test, node).await.expect("pausing twice");
    for pid in std::iter::once(postmaster).chain(children.iter().copied()) {
        await_state(pid, Some('T')).await;
    }
    assert_eq!(
        txn(&mut c, &test, json!([["append", 1, 5]])).await,
        Completion::fail("timeout before commit")
    );
    pause.resume(&test, node).await.unwrap();
    pause.resume(&test, node).await.expect("resuming twice");
    for pid in std::iter::once(postmaster).chain(children.iter().copied()) {
        assert_ne!(process_state(pid), Some('T'), "{pid} resumed");
    }
    assert_eq!(
        txn(&mut c, &test, json!([["append", 1, 6], ["r", 1, null]])).await,
        Completion::Ok(json!([["append", 1, 6], ["r", 1, [1, 2, 3, 6]]]))
    );

    // Teardown of a paused server: nothing is left, not even its shared memory.
    pause.pause(&test, node).await.unwrap();
    let segment = std::fs::read_to_string(&pidfile)
        .unwrap()
        .lines()
        .nth(6)
        .unwrap()
        .to_string();
    db.teardown(&test, node).await.unwrap();
    assert_eq!(processes_under(&guard.data_dir()), Vec::<String>::new());
    for pid in std::iter::once(postmaster).chain(children) {
        assert_eq!(process_state(pid), None, "{pid} is gone");
    }
    assert!(!segment_exists(&segment), "teardown removed {segment}");
}

/// The direct children of `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// On a host (remote mode: the node's own address, the standard port, password logins from
/// other hosts), with the other nodes idle. Loopback addresses stand in for lab hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_host_the_server_listens_on_its_address() {
    let guard = Guard::new("host");
    let mut test = test_config("register", &guard);
    test.nodes = vec!["n1".into(), "n2".into(), "n3".into()];
    with_loopback_addresses(&mut test);
    let target = postgres::target(&test).unwrap();
    assert_eq!(target.nodes, vec!["n1".to_string()], "one server");
    let db = Arc::new(PostgresDb::from_test(&test).unwrap());
    let (host, port) = db.server_addr().unwrap();
    assert_eq!((host.as_str(), port), (test.addresses["n1"].as_str(), 5432));
    let nodes = local_nodes(&test);
    for node in &nodes {
        db.setup(&test, node)
            .await
            .unwrap_or_else(|e| panic!("setup {}: {e}", node.name));
    }
    let mut c = open(&db, &test, DataModel::Register, Isolation::ReadCommitted).await;
    assert_eq!(
        call(&mut c, &test, "write", Some(json!(1)), json!(1)).await,
        Completion::Ok(json!(1))
    );
    let hba = std::fs::read_to_string(guard.dir.join("n1/data/pg_hba.conf")).unwrap();
    assert!(hba.contains(postgres::HBA_REMOTE_CLIENTS), "{hba}");
    assert!(!guard.dir.join("n2").exists(), "nothing on the idle nodes");
    for node in &nodes {
        db.teardown(&test, node).await.unwrap();
    }
    assert_eq!(processes_under(&guard.data_dir()), Vec::<String>::new());
}
