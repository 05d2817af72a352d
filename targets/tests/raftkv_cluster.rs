//! raftkv clusters end to end, through the target's own seams: local nodes wired through the
//! fault proxy (a partition isolating the leader, then heal), clock skew under libfaketime,
//! nodes that do not outlive their parent, and remote mode through `LocalRemote` on
//! 127.0.0.11-13 (all of 127/8 is loopback, so no root is needed).
//!
//! This binary is also the node program: run as `<this binary> raftkv-server FLAGS...` it
//! serves one raftkv node (so no other binary has to be built first), which is why it has
//! its own `main` instead of libtest's. `cargo test -p faultline-targets --test raftkv_cluster
//! [FILTER]` runs the tests whose names contain FILTER, one after another.
//!
//! Every test tears its cluster down before it asserts the outcome, so a failure leaves no
//! process behind; checks return `Err` (through `check!`) rather than panic while nodes run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use faultline_core::net::complete_grudge;
use faultline_core::{Client, Completion, Db, Invocation, Node, Test};
use faultline_targets::local::{free_port, LocalRemote};
use faultline_targets::raftkv::{status, RaftkvClient, RaftkvDb};
use serde_json::{json, Value};

type Checked = Result<(), String>;

/// Returns `Err` with the message when the condition does not hold.
macro_rules! check {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!("{}: {}", stringify!($cond), format!($($why)+)));
        }
    };
}

type TestFn = fn() -> Checked;

/// Each test function with its name.
macro_rules! tests {
    ($($test:ident),* $(,)?) => {
        vec![$((stringify!($test), $test as TestFn)),*]
    };
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("raftkv-server") {
        return faultline_raftkv::cli::main_from_args(&args[1..]);
    }
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    let tests: Vec<(&str, TestFn)> = tests![
        local_partition_isolating_the_leader_elects_a_new_one_and_heal_rejoins_it,
        local_clock_skew_moves_a_running_node_clock_without_a_restart,
        a_local_node_exits_when_its_parent_is_killed,
        remote_mode_runs_a_cluster_through_a_remote,
    ];
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in tests {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(test)
            .unwrap_or_else(|_| Err("panicked (see above)".to_string()));
        match outcome {
            Ok(()) => println!(
                "test {name} ... ok ({:.1} s)",
                started.elapsed().as_secs_f64()
            ),
            Err(why) => {
                println!("test {name} ... FAILED: {why}");
                failed.push(name);
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "faultline-raftkv-cluster-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

fn this_program() -> PathBuf {
    std::env::current_exe().expect("this test binary")
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
        Err(_) => false,
    }
}

/// The state letter of `pid` (`S`, `R`, `T` for stopped, ...).
fn state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().next().map(str::to_string)
}

/// Waits (at most a second) until `pid` is stopped (`T`) or, with `stopped` false, is not.
async fn await_state(pid: u32, stopped: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    while (state(pid).as_deref() == Some("T")) != stopped {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as i64
}

/// A cluster under test: its db, client template and nodes.
struct Cluster {
    test: Arc<Test>,
    db: Arc<RaftkvDb>,
    client: RaftkvClient,
    nodes: Vec<Node>,
}

impl Cluster {
    fn new(test: Test, db: RaftkvDb) -> Cluster {
        let db = Arc::new(db);
        let nodes = test
            .nodes
            .iter()
            .map(|name| Node {
                name: name.clone(),
                remote: Arc::new(LocalRemote::new(name)),
            })
            .collect();
        Cluster {
            client: RaftkvClient::new(db.clone()),
            test: Arc::new(test),
            db,
            nodes,
        }
    }

    fn local(name: &str, nodes: usize, clock: bool, dir: &Path) -> Cluster {
        let mut test = Test::example("raftkv", "register", 11);
        test.nodes = (1..=nodes).map(|i| format!("n{i}")).collect();
        let db = RaftkvDb::local(
            this_program(),
            test.nodes.clone(),
            dir.join(name),
            Vec::new(),
            test.seed_for("proxy"),
        )
        .with_clock(clock);
        Cluster::new(test, db)
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .expect("a node of the cluster")
    }

    /// Sets up every node at once (a node is ready only once a majority runs).
    async fn setup(&self) -> Checked {
        let setups: Vec<_> = self
            .nodes
            .iter()
            .map(|node| {
                let (db, test, node) = (self.db.clone(), self.test.clone(), node.clone());
                tokio::spawn(async move { db.setup(&test, &node).await })
            })
            .collect();
        for setup in setups {
            setup
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("setup: {e}"))?;
        }
        Ok(())
    }

    /// Tears every node down, twice (it must be idempotent), and checks that no process the
    /// db started is left.
    async fn teardown(&self) -> Checked {
        for _ in 0..2 {
            for node in &self.nodes {
                self.db
                    .teardown(&self.test, node)
                    .await
                    .map_err(|e| format!("teardown: {e}"))?;
            }
        }
        let left: Vec<u32> = self
            .db
            .started_pids()
            .into_iter()
            .filter(|&p| alive(p))
            .collect();
        check!(left.is_empty(), "node processes left running: {left:?}");
        Ok(())
    }

    async fn status(&self, node: &str) -> Result<Value, String> {
        let addr = self
            .db
            .client_addr(node)
            .ok_or_else(|| format!("{node} has no address"))?;
        status(addr).await
    }

    async fn invoke(&self, node: &str, f: &str, value: Value) -> Result<Completion, String> {
        let mut client = self
            .client
            .open(&self.test, node)
            .await
            .map_err(|e| e.to_string())?;
        let op = Invocation {
            process: 0,
            f: f.into(),
            key: Some(json!("k")),
            value,
        };
        let completion = client.invoke(&self.test, &op).await;
        let _ = client.close(&self.test).await;
        Ok(completion)
    }

    /// Writes `value` through `node`, retrying (a few times, each attempt definite or not)
    /// until it is acknowledged.
    async fn write(&self, node: &str, value: i64) -> Checked {
        let mut last = None;
        for _ in 0..10 {
            match self.invoke(node, "write", json!(value)).await? {
                Completion::Ok(_) => return Ok(()),
                other => last = Some(other),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(format!("write {value} through {node}: {last:?}"))
    }

    async fn read(&self, node: &str) -> Result<Completion, String> {
        self.invoke(node, "read", Value::Null).await
    }

    /// Reads through `node` until a read succeeds (bounded), for a node that is rejoining.
    async fn read_eventually(&self, node: &str) -> Result<Value, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let read = self.read(node).await?;
            if let Completion::Ok(value) = read {
                return Ok(value);
            }
            check!(Instant::now() < deadline, "{node} cannot read: {read:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The leaders among `names` (through the db's `Primary`).
    async fn leaders(&self, names: &[&str]) -> Result<Vec<String>, String> {
        let nodes: Vec<Node> = names.iter().map(|n| self.node(n).clone()).collect();
        self.db
            .as_primary()
            .expect("raftkv has leaders")
            .primaries(&self.test, &nodes)
            .await
            .map_err(|e| e.to_string())
    }

    /// Waits (bounded) until exactly one node of `names` leads, and returns it.
    async fn one_leader(&self, names: &[&str], within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            let leaders = self.leaders(names).await?;
            if let [leader] = leaders.as_slice() {
                return Ok(leader.clone());
            }
            if Instant::now() > deadline {
                return Err(format!("no single leader among {names:?}: {leaders:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// This node's wall clock minus the harness's, in ms.
    async fn clock_skew_ms(&self, node: &str) -> Result<i64, String> {
        let before = now_ms();
        let status = self.status(node).await?;
        let after = now_ms();
        let theirs = status["wall_clock_ms"]
            .as_i64()
            .ok_or_else(|| format!("no wall_clock_ms in {status}"))?;
        Ok(theirs - (before + after) / 2)
    }

    /// Waits (bounded) until `node` answers with a clock `offset_ms` off ours, within 1 s.
    async fn await_skew(&self, node: &str, offset_ms: i64) -> Checked {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // A node that is (re)starting does not answer yet.
            let skew = self.clock_skew_ms(node).await;
            if skew
                .as_ref()
                .is_ok_and(|skew| (skew - offset_ms).abs() < 1_000)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{node}'s clock is off by {skew:?} ms, not {offset_ms}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Runs `body` on a set-up cluster, then tears it down whatever happened, then reports the
/// first failure.
async fn with_cluster<'a, F, Fut>(cluster: &'a Cluster, body: F) -> Checked
where
    F: FnOnce(&'a Cluster) -> Fut,
    Fut: std::future::Future<Output = Checked>,
{
    let outcome = match cluster.setup().await {
        Ok(()) => body(cluster).await,
        Err(e) => Err(e),
    };
    let torn_down = cluster.teardown().await;
    outcome.and(torn_down)
}

fn local_partition_isolating_the_leader_elects_a_new_one_and_heal_rejoins_it() -> Checked {
    let dir = scratch("partition");
    let cluster = Cluster::local("nodes", 5, false, &dir);
    let outcome = runtime().block_on(with_cluster(&cluster, |c| async move {
        let all = ["n1", "n2", "n3", "n4", "n5"];
        let old = c.one_leader(&all, Duration::from_secs(10)).await?;
        let old_term = c.status(&old).await?["term"].as_u64().unwrap_or(0);
        let majority: Vec<&str> = all.iter().copied().filter(|&n| n != old).collect();
        let net = c.db.as_net().ok_or("local nodes have a Net")?;
        net.partition(&c.test, &complete_grudge(&[old.as_str()], &majority))
            .await
            .map_err(|e| e.to_string())?;

        // The majority elects a new leader in a later term, and writes through it (and
        // through its followers, forwarded over proxied links) succeed.
        let new = c.one_leader(&majority, Duration::from_secs(15)).await?;
        let new_status = c.status(&new).await?;
        check!(
            new != old,
            "the isolated leader {old} cannot lead the majority"
        );
        check!(
            new_status["term"].as_u64().unwrap_or(0) > old_term,
            "{new_status}"
        );
        let follower = majority.iter().find(|&&n| n != new).expect("4 nodes");
        c.write(follower, 1).await?;
        c.write(&new, 2).await?;
        let read = c.read_eventually(majority[majority.len() - 1]).await?;
        check!(read == json!(2), "{read}");
        // The isolated node cannot commit anything.
        let cut_off = c.invoke(&old, "write", json!(3)).await?;
        check!(
            !matches!(cut_off, Completion::Ok(_)),
            "a write through the isolated {old}: {cut_off:?}"
        );

        // Heal: the old leader hears the new one again and follows it.
        net.heal(&c.test).await.map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let theirs = c.status(&old).await?;
            let leader = c.one_leader(&majority, Duration::from_secs(5)).await?;
            let leader_id = c.status(&leader).await?["id"].clone();
            if theirs["role"] == "follower" && theirs["leader"] == leader_id {
                break;
            }
            check!(
                Instant::now() < deadline,
                "{old} does not follow {leader} after heal: {theirs}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Its link to the leader reconnects within the dialer's back-off (at most 1 s); until
        // then it answers not-leader.
        let read = c.read_eventually(&old).await?;
        check!(read == json!(2) || read == json!(3), "{old} read {read}");
        Ok(())
    }));
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn faketime_files(pid: u32) -> [PathBuf; 2] {
    [
        PathBuf::from(format!("/dev/shm/faketime_shm_{pid}")),
        PathBuf::from(format!("/dev/shm/sem.faketime_sem_{pid}")),
    ]
}

fn local_clock_skew_moves_a_running_node_clock_without_a_restart() -> Checked {
    if !Path::new(faultline_targets::raftkv::LIBFAKETIME).exists() {
        return Err("libfaketime is not installed (scripts/install-deps)".into());
    }
    let dir = scratch("clock");
    let cluster = Cluster::local("nodes", 3, true, &dir);
    let outcome = runtime().block_on(with_cluster(&cluster, |c| async move {
        let clock = c.db.as_clock().ok_or("the clock is on")?;
        let n1 = c.node("n1");
        let pid = c.db.pid("n1").ok_or("n1 runs")?;
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        check!(maps.contains("libfaketime"), "n1 runs without libfaketime");
        c.await_skew("n1", 0).await?;

        for offset_ms in [30_000, -20_500] {
            clock
                .set_offset(&c.test, n1, offset_ms)
                .await
                .map_err(|e| e.to_string())?;
            c.await_skew("n1", offset_ms).await?;
            c.await_skew("n2", 0).await?;
        }
        check!(c.db.pid("n1") == Some(pid), "n1 was not restarted");
        // raftkv works under the preload and with a skewed member.
        c.write("n1", 7).await?;
        let read = c.read_eventually("n2").await?;
        check!(read == json!(7), "{read}");

        // A kill by signal leaves libfaketime's files behind; the db removes them. A
        // restarted node keeps its offset (the file stays).
        check!(
            faketime_files(pid).iter().all(|f| f.exists()),
            "libfaketime made its files"
        );
        let kill = c.db.as_kill().ok_or("kill")?;
        kill.kill(&c.test, n1).await.map_err(|e| e.to_string())?;
        check!(
            faketime_files(pid).iter().all(|f| !f.exists()),
            "libfaketime's files for the killed {pid} were removed"
        );
        kill.start(&c.test, n1).await.map_err(|e| e.to_string())?;
        c.await_skew("n1", -20_500).await?;
        clock.reset(&c.test, n1).await.map_err(|e| e.to_string())?;
        c.await_skew("n1", 0).await?;
        Ok(())
    }));
    let leftover: Vec<PathBuf> = cluster
        .db
        .started_pids()
        .into_iter()
        .flat_map(faketime_files)
        .filter(|f| f.exists())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    outcome?;
    check!(leftover.is_empty(), "{leftover:?}");
    Ok(())
}

fn a_local_node_exits_when_its_parent_is_killed() -> Checked {
    let dir = scratch("orphan");
    let client = free_port().map_err(|e| e.to_string())?;
    let peer = free_port().map_err(|e| e.to_string())?;
    // A shell starts the node in the background, prints its pid and waits: the node's
    // parent is the shell.
    let script = format!(
        "'{program}' raftkv-server --id 1 --peers 1={peer} --listen-client {client} \
         --data-dir '{data}' --exit-with-parent 2>'{log}' & echo $!; wait",
        program = this_program().display(),
        data = dir.join("data").display(),
        log = dir.join("node.log").display(),
    );
    let mut shell = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(shell.stdout.take().expect("piped")),
        &mut line,
    )
    .map_err(|e| e.to_string())?;
    let node: u32 = line.trim().parse().map_err(|e| format!("{line:?}: {e}"))?;
    let outcome = runtime().block_on(async {
        // Serving first, so the node was running (not starting) when its parent died.
        let deadline = Instant::now() + Duration::from_secs(10);
        while status(client).await.is_err() {
            check!(Instant::now() < deadline, "the node never served");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shell.kill().map_err(|e| e.to_string())?;
        shell.wait().map_err(|e| e.to_string())?;
        let killed = Instant::now();
        while alive(node) && killed.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = killed.elapsed();
        check!(
            took < Duration::from_secs(1),
            "the node outlived its parent by {took:?}"
        );
        Ok(())
    });
    if alive(node) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &node.to_string()])
            .status();
    }
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn remote_mode_runs_a_cluster_through_a_remote() -> Checked {
    let dir = scratch("remote");
    let mut test = Test::example("raftkv", "register", 12);
    let hosts: BTreeMap<String, String> = (1..=3)
        .map(|i| (format!("n{i}"), format!("127.0.0.{}", 10 + i)))
        .collect();
    test.nodes = hosts.keys().cloned().collect();
    test.addresses = hosts.clone();
    let ports = (
        free_port().map_err(|e| e.to_string())?.port(),
        free_port().map_err(|e| e.to_string())?.port(),
    );
    let run_dir = dir.join("run").to_string_lossy().to_string();
    let clock = Path::new(faultline_targets::raftkv::LIBFAKETIME).exists();
    let db =
        RaftkvDb::remote(this_program(), &hosts, ports, &run_dir, Vec::new())?.with_clock(clock);
    let cluster = Cluster::new(test, db);
    let (hosts, run_dir) = (&hosts, run_dir.as_str());
    let outcome = runtime().block_on(async {
        // Teardown of nodes never set up succeeds.
        cluster.teardown().await?;
        with_cluster(&cluster, |c| async move {
            check!(
                c.db.as_net().is_none(),
                "remote nodes use the hosts' network"
            );
            for node in ["n1", "n2", "n3"] {
                let addr = c.db.client_addr(node).ok_or("an address")?;
                check!(
                    addr.ip().to_string() == hosts[node],
                    "{node} serves on {addr}"
                );
            }
            c.write("n2", 1).await?;
            let read = c.read_eventually("n3").await?;
            check!(read == json!(1), "{read}");
            c.one_leader(&["n1", "n2", "n3"], Duration::from_secs(5))
                .await?;

            if clock {
                let clock = c.db.as_clock().ok_or("the clock is on")?;
                clock
                    .set_offset(&c.test, c.node("n3"), 10_000)
                    .await
                    .map_err(|e| e.to_string())?;
                c.await_skew("n3", 10_000).await?;
            }

            // Kill and restart n1 by its pid file.
            let pid_file = |node: &str| format!("{run_dir}/{node}/raftkv.pid");
            let pid_of = |node: &str| -> Result<u32, String> {
                std::fs::read_to_string(pid_file(node))
                    .map_err(|e| e.to_string())?
                    .trim()
                    .parse()
                    .map_err(|e| format!("{e}"))
            };
            let first = pid_of("n1")?;
            let kill = c.db.as_kill().ok_or("kill")?;
            kill.kill(&c.test, c.node("n1"))
                .await
                .map_err(|e| e.to_string())?;
            check!(!alive(first), "n1 ({first}) was killed");
            c.write("n2", 2).await?;
            kill.start(&c.test, c.node("n1"))
                .await
                .map_err(|e| e.to_string())?;
            let second = pid_of("n1")?;
            check!(second != first && alive(second), "n1 restarted");
            let read = c.read_eventually("n1").await?;
            check!(read == json!(2), "n1 read {read}");

            // Pause and resume n2 by its pid.
            let pause = c.db.as_pause().ok_or("pause")?;
            let n2 = pid_of("n2")?;
            pause
                .pause(&c.test, c.node("n2"))
                .await
                .map_err(|e| e.to_string())?;
            // A signal is delivered asynchronously: every thread stops soon after.
            check!(await_state(n2, true).await, "n2 paused: {:?}", state(n2));
            c.write("n3", 3).await?;
            pause
                .resume(&c.test, c.node("n2"))
                .await
                .map_err(|e| e.to_string())?;
            check!(await_state(n2, false).await, "n2 resumed: {:?}", state(n2));
            Ok(())
        })
        .await?;
        // The three hosts share this file system: the binary was installed once, in the
        // cache beside the run directory.
        let cache = Path::new(run_dir).with_file_name("bin");
        let installed = std::fs::read_dir(&cache)
            .map_err(|e| e.to_string())?
            .count();
        check!(
            installed == 1,
            "one installed binary in {cache:?}, not {installed}"
        );
        // Teardown removed each node's data, and kept its log.
        for node in ["n1", "n2", "n3"] {
            let node_dir = Path::new(run_dir).join(node);
            check!(!node_dir.join("data").exists(), "{node}'s data remains");
            let log = &cluster.db.log_files(&cluster.test, cluster.node(node))[0];
            let text = std::fs::read_to_string(log).map_err(|e| e.to_string())?;
            check!(text.contains("serving"), "{node}'s log: {text}");
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}
