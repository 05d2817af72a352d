//! `faultline lab` end to end (root only: namespaces, a bridge, sshd): hosts reached through
//! [`SshRemote`] exactly as VMs would be, partitions made with [`IptablesNet`], and `lab down`
//! leaving nothing behind — also after an `up` killed halfway. Each lab has a name unique to
//! this test process, and a guard takes it down even when an assertion fails.

mod lab_support;

use lab_support::{faultline, root, text, Down};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_core::net::complete_grudge;
use faultline_core::remote::{Command as RemoteCommand, Signal};
use faultline_core::{Impairment, Net, Node, Remote, Test};
use faultline_targets::iptables::IptablesNet;
use faultline_targets::ssh::{SshConfig, SshRemote};

const LABS_DIR: &str = "/var/lib/faultline/labs";

/// A lab name unique to this test process and test (at most 8 characters).
fn lab_name(letter: char) -> String {
    format!("t{}{letter}", std::process::id() % 1_000_000)
}

fn state(name: &str) -> Value {
    let path = Path::new(LABS_DIR).join(name).join("state.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Each host's SshRemote, with strict host-key checking against the lab's known_hosts.
fn remotes(name: &str) -> Vec<(String, String, Arc<SshRemote>)> {
    let state = state(name);
    let dir = PathBuf::from(state["dir"].as_str().unwrap());
    let mut config = SshConfig::new("root", dir.join("id_ed25519"));
    config.strict_host_key_checking = true;
    config.known_hosts = Some(dir.join("known_hosts"));
    state["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let node = h["name"].as_str().unwrap().to_string();
            let address = h["address"].as_str().unwrap().to_string();
            let remote = Arc::new(SshRemote::new(&node, &address, config.clone()));
            (node, address, remote)
        })
        .collect()
}

fn shell(command: &str) -> RemoteCommand {
    RemoteCommand::new("sh", &["-c", command])
}

async fn stdout_of(remote: &SshRemote, command: &RemoteCommand) -> String {
    let out = remote.exec(command).await.unwrap();
    assert!(
        out.success(),
        "{}: {:?} {}",
        command.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether `from` opens a TCP connection to `address:port` within a second.
async fn reaches(from: &SshRemote, address: &str, port: u16) -> bool {
    let probe = RemoteCommand::new("nc", &["-z", "-w1", address, &port.to_string()]);
    from.exec(&probe).await.unwrap().success()
}

fn control_reaches(address: &str, port: u16) -> bool {
    let socket = format!("{address}:{port}").parse().unwrap();
    std::net::TcpStream::connect_timeout(&socket, Duration::from_secs(1)).is_ok()
}

/// Nothing of lab `name` is left: no namespace, link, sshd, rule, claim or directory.
fn assert_gone(name: &str) {
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(
        !netns.contains(&format!("fl-{name}-")),
        "namespaces left: {netns}"
    );
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        !links.contains(&format!("flbr-{name}")),
        "bridge left: {links}"
    );
    assert!(
        !links.contains(&format!("flv-{name}-")),
        "veths left: {links}"
    );
    let dir = Path::new(LABS_DIR).join(name);
    let sshd = Command::new("pgrep")
        .args(["-f", &format!("{}/n", dir.display())])
        .output()
        .unwrap();
    assert!(
        sshd.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&sshd.stdout)
    );
    let forward = Command::new("iptables")
        .args(["-S", "FORWARD"])
        .output()
        .unwrap();
    let forward = String::from_utf8_lossy(&forward.stdout);
    assert!(
        !forward.contains(&format!("flbr-{name}")),
        "rule left: {forward}"
    );
    assert!(!dir.exists(), "{} left", dir.display());
    for claim in std::fs::read_dir(Path::new(LABS_DIR).join(".subnets")).unwrap() {
        let owner = std::fs::read_to_string(claim.unwrap().path()).unwrap_or_default();
        assert_ne!(owner.trim(), name, "subnet claim left");
    }
}

/// SIGKILLs the per-connection sshd processes (not the listener) of `host` in lab `name`, which
/// drops every SSH session to it. Returns how many there were.
fn kill_ssh_sessions(name: &str, host: &str) -> usize {
    let namespace = format!("fl-{name}-{host}");
    let pids = Command::new("ip")
        .args(["netns", "pids", &namespace])
        .output()
        .unwrap();
    let mut killed = 0;
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        // Sessions retitle themselves `sshd: root@notty` (the listener `sshd: /usr/sbin/sshd`).
        if cmdline.starts_with(b"sshd: root@") {
            let status = Command::new("kill").args(["-KILL", pid]).status().unwrap();
            killed += usize::from(status.success());
        }
    }
    // Let the kernel close the connections before the caller goes on.
    std::thread::sleep(Duration::from_millis(100));
    killed
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn lab_hosts_are_driven_over_ssh_partitioned_with_iptables_and_removed_by_down() {
    if !root() {
        return;
    }
    let name = lab_name('a');
    let guard = Down(name.clone());
    let started = Instant::now();
    let out = faultline(&["lab", "up", "--hosts", "3", "--name", &name]);
    assert!(out.status.success(), "{}", text(&out));
    eprintln!("lab up --hosts 3: {:?}", started.elapsed());
    // A name that exists is refused.
    let again = faultline(&["lab", "up", "--hosts", "1", "--name", &name]);
    assert_eq!(again.status.code(), Some(254), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    let hosts = remotes(&name);
    let addresses: BTreeMap<String, String> = hosts
        .iter()
        .map(|(n, a, _)| (n.clone(), a.clone()))
        .collect();
    let rt = runtime();
    rt.block_on(async {
        // Hostnames, and peers by name through the lab's hosts file (hosts in parallel).
        let mut checks = tokio::task::JoinSet::new();
        for (node, _, remote) in hosts.clone() {
            let addresses = addresses.clone();
            checks.spawn(async move {
                let hostname = stdout_of(&remote, &RemoteCommand::new("hostname", &[])).await;
                assert_eq!(hostname.trim(), node);
                let mut getent = RemoteCommand::new("getent", &["hosts"]);
                getent.args.extend(addresses.keys().cloned());
                let lines = stdout_of(&remote, &getent).await;
                for ((peer, address), line) in addresses.iter().zip(lines.lines()) {
                    assert!(
                        line.starts_with(&format!("{address} ")),
                        "{node}: {peer}: {line}"
                    );
                    assert!(
                        line.ends_with(&format!(" {peer}")),
                        "{node}: {peer}: {line}"
                    );
                }
                assert_eq!(lines.lines().count(), addresses.len(), "{lines}");
            });
        }
        while let Some(check) = checks.join_next().await {
            check.unwrap();
        }
        let n1 = &hosts[0].2;

        // sshd gives the login shell SHLVL=1, so bash runs at level 2 and does not source
        // root's ~/.bashrc for a command (a slow one stalled every command; docs/lab.md).
        // bash sets the level back before it execs a lone command, so the command sees 1 (without
        // the setting: 0 under bash, nothing under other shells).
        let level = stdout_of(n1, &RemoteCommand::new("printenv", &["SHLVL"])).await;
        assert_eq!(level.trim(), "1", "SHLVL as sshd set it");

        // A call whose caller gave up (a timeout drops it) stops reading at once and lets go
        // of the node's session: the next command does not wait out the first one's 3 s.
        let sleep = shell("sleep 3");
        let slow = tokio::time::timeout(Duration::from_millis(300), n1.exec(&sleep)).await;
        assert!(slow.is_err(), "sleep 3 outlasted its 300 ms");
        let started = Instant::now();
        let hostname = stdout_of(n1, &RemoteCommand::new("hostname", &[])).await;
        assert_eq!(hostname.trim(), "n1");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the next command waited {:?}",
            started.elapsed()
        );

        // Status, stdin, stderr, a signal's death, and words a shell would mangle.
        let out = n1.exec(&shell("echo oops >&2; exit 3")).await.unwrap();
        assert_eq!(out.status, Some(3));
        assert_eq!(out.stderr, b"oops\n");
        let mut cat = RemoteCommand::new("cat", &[]);
        cat.stdin = Some(b"line one\nline two\n".to_vec());
        assert_eq!(n1.exec(&cat).await.unwrap().stdout, b"line one\nline two\n");
        // More on stderr than an SSH window holds, while stdout waits behind it, and a pause
        // longer than one read's wait: both streams arrive whole.
        let out = n1
            .exec(&shell(
                "head -c 3000000 /dev/zero >&2; sleep 0.3; echo done; echo late >&2",
            ))
            .await
            .unwrap();
        assert_eq!(out.status, Some(0));
        assert_eq!(out.stdout, b"done\n");
        assert_eq!(out.stderr.len(), 3_000_005);
        assert!(out.stderr.ends_with(b"late\n"));
        let out = n1.exec(&shell("kill -9 $$")).await.unwrap();
        assert_eq!(out.status, None, "killed by a signal");
        let nasty = "it's $(echo no) `echo no` \"q\" ; | & * ~ \\ \n end";
        let echo = RemoteCommand::new("printf", &["%s", nasty]);
        assert_eq!(stdout_of(n1, &echo).await, nasty);

        // Upload and download, mode kept, bytes unchanged (200 kB: several SFTP packets).
        let scratch = std::env::temp_dir().join(format!("faultline-lab-{name}"));
        std::fs::create_dir_all(&scratch).unwrap();
        let local = scratch.join("payload");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&local, &bytes).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o750)).unwrap();
        let remote_path = format!("/tmp/faultline-lab-{name}-uploaded");
        n1.upload(&local, &remote_path).await.unwrap();
        // A second upload replaces the file.
        n1.upload(&local, &remote_path).await.unwrap();
        let mode = stdout_of(n1, &RemoteCommand::new("stat", &["-c", "%a", &remote_path])).await;
        assert_eq!(mode.trim(), "750");
        let back = scratch.join("downloaded");
        n1.download(&remote_path, &back).await.unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), bytes);
        let missing = n1.download("/nonexistent/file", &back).await;
        assert!(missing.is_err(), "downloading a missing file fails");
        n1.exec(&RemoteCommand::new("rm", &["-f", &remote_path]))
            .await
            .unwrap();
        let _ = std::fs::remove_dir_all(&scratch);
        // The session survives an error: the next command runs.
        assert_eq!(
            stdout_of(n1, &RemoteCommand::new("hostname", &[]))
                .await
                .trim(),
            "n1"
        );

        // A session lost mid-command is an error, and the command is not run again; the
        // next call reconnects.
        let marker = format!("/tmp/faultline-lab-{name}-ran");
        let _ = std::fs::remove_file(&marker);
        let slow = {
            let n1 = n1.clone();
            let script = format!("sleep 1; echo ran >> {marker}");
            tokio::spawn(async move { n1.exec(&shell(&script)).await })
        };
        tokio::time::sleep(Duration::from_millis(400)).await;
        let killed = kill_ssh_sessions(&name, "n1");
        assert!(killed > 0, "n1 had a session");
        let lost = slow.await.unwrap();
        assert!(lost.is_err(), "a lost session is an error: {lost:?}");
        assert_eq!(
            stdout_of(n1, &RemoteCommand::new("hostname", &[]))
                .await
                .trim(),
            "n1"
        );
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let ran = std::fs::read_to_string(&marker).unwrap_or_default();
        assert_eq!(ran, "ran\n", "the command ran once, never resent");
        let _ = std::fs::remove_file(&marker);
        // A kept session that died between calls is replaced before anything is sent.
        assert!(kill_ssh_sessions(&name, "n1") > 0);
        assert_eq!(
            stdout_of(n1, &RemoteCommand::new("hostname", &[]))
                .await
                .trim(),
            "n1"
        );

        // Signals: a paused process shows as stopped; a gone one is fine to signal.
        let pid: u32 = stdout_of(n1, &shell("sleep 60 >/dev/null 2>&1 & echo $!"))
            .await
            .trim()
            .parse()
            .unwrap();
        n1.signal(pid, Signal::Stop).await.unwrap();
        let stat = stdout_of(
            n1,
            &RemoteCommand::new("cat", &[&format!("/proc/{pid}/stat")]),
        )
        .await;
        assert!(stat.contains(") T "), "stopped: {stat}");
        n1.signal(pid, Signal::Kill).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        n1.signal(pid, Signal::Kill).await.unwrap();

        // A partition between n1 and n2: TCP between them is cut, nothing else.
        let (n2, n2_address) = (&hosts[1].2, hosts[1].1.clone());
        let (n3, n1_address) = (&hosts[2].2, hosts[0].1.clone());
        let port = 7777;
        stdout_of(
            n2,
            &shell(&format!(
                "nc -lk {port} </dev/null >/dev/null 2>&1 & echo $!"
            )),
        )
        .await;
        stdout_of(
            n1,
            &shell(&format!(
                "nc -lk {port} </dev/null >/dev/null 2>&1 & echo $!"
            )),
        )
        .await;
        let listening = Instant::now();
        while !control_reaches(&n2_address, port) {
            assert!(
                listening.elapsed() < Duration::from_secs(5),
                "nc never listened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(reaches(n1, &n2_address, port).await, "before the partition");
        let nodes: Vec<Node> = hosts
            .iter()
            .map(|(n, _, r)| Node {
                name: n.clone(),
                remote: r.clone() as Arc<dyn Remote>,
            })
            .collect();
        let net = IptablesNet::new(nodes);
        let mut test = Test::example("etcd", "register", 1);
        test.nodes = addresses.keys().cloned().collect();
        test.addresses = addresses.clone();
        net.partition(&test, &complete_grudge(&["n1"], &["n2"]))
            .await
            .unwrap();
        assert!(!reaches(n1, &n2_address, port).await, "n1 -> n2 is cut");
        assert!(!reaches(n2, &n1_address, port).await, "n2 -> n1 is cut");
        assert!(reaches(n3, &n2_address, port).await, "n3 -> n2 still works");
        assert!(
            control_reaches(&n2_address, port),
            "the control node reaches n2"
        );
        assert!(
            control_reaches(&n1_address, port),
            "the control node reaches n1"
        );
        // A new partition replaces the old one.
        net.partition(&test, &complete_grudge(&["n3"], &["n2"]))
            .await
            .unwrap();
        assert!(
            reaches(n1, &n2_address, port).await,
            "replaced: n1 -> n2 again"
        );
        assert!(!reaches(n3, &n2_address, port).await, "n3 -> n2 is cut");
        // Loss of every packet from the other nodes, then the refused latency.
        let all_lost = Impairment {
            loss: 1.0,
            latency_ms: 0,
        };
        net.impair(&test, &all_lost).await.unwrap();
        assert!(!reaches(n1, &n2_address, port).await, "all packets lost");
        let slow = Impairment {
            loss: 0.0,
            latency_ms: 10,
        };
        assert!(
            net.impair(&test, &slow).await.is_err(),
            "no netem: no latency"
        );
        // Heal: everything flows again and no chain is left; healing twice is fine.
        net.heal(&test).await.unwrap();
        net.heal(&test).await.unwrap();
        assert!(reaches(n1, &n2_address, port).await, "healed: n1 -> n2");
        assert!(reaches(n3, &n2_address, port).await, "healed: n3 -> n2");
        for (node, _, remote) in &hosts {
            let rules = stdout_of(remote, &RemoteCommand::new("iptables", &["-S"])).await;
            assert!(!rules.contains("FAULTLINE"), "{node}: {rules}");
        }
    });
    drop(rt);

    // `faultline test` on the lab that is up: it uses it and leaves it up.
    let store = std::env::temp_dir().join(format!("faultline-lab-store-{name}"));
    let _ = std::fs::remove_dir_all(&store);
    let out = faultline(&[
        "test",
        "--target",
        "memory",
        "--lab",
        "2",
        "--lab-name",
        &name,
        "--time-limit",
        "0.5",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let test_json: Value =
        serde_json::from_str(&std::fs::read_to_string(store.join("latest/test.json")).unwrap())
            .unwrap();
    assert_eq!(test_json["addresses"]["n1"], addresses["n1"].as_str());
    assert_eq!(test_json["addresses"]["n2"], addresses["n2"].as_str());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("--lab 2 --lab-name {name}")));
    let status = faultline(&["lab", "status", "--name", &name]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains(", up"),
        "the lab stays up: {}",
        text(&status)
    );

    // The same hosts as real machines (`--hosts`): reached over SSH with the given key; with
    // strict host-key checking and hosts missing from ~/.ssh/known_hosts, the run fails
    // as a harness error that says why.
    let key = Path::new(LABS_DIR).join(&name).join("id_ed25519");
    let listed = format!("{},{}", addresses["n1"], addresses["n2"]);
    let mut args = vec![
        "test",
        "--target",
        "memory",
        "--hosts",
        &listed,
        "--ssh-private-key",
        key.to_str().unwrap(),
        "--time-limit",
        "0.5",
        "--store",
        store.to_str().unwrap(),
    ];
    let out = faultline(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("--hosts {listed}")));
    let home = std::env::temp_dir().join(format!("faultline-lab-home-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    args.push("--strict-host-key-checking");
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(&args)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("known_hosts"),
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&home);
    let _ = std::fs::remove_dir_all(&store);

    // Down removes everything, the processes started over SSH too; twice is fine.
    drop(guard);
    assert_gone(&name);
    let again = faultline(&["lab", "down", "--name", &name]);
    assert!(again.status.success(), "{}", text(&again));
}

#[test]
fn down_removes_a_lab_whose_up_was_killed_halfway() {
    if !root() {
        return;
    }
    let name = lab_name('b');
    let _guard = Down(name.clone());
    // Slow steps, so the kill lands after the namespaces exist and before every sshd runs.
    let mut up = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["lab", "up", "--hosts", "3", "--name", &name])
        .args(["--step-delay-ms", "400"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first_sshd = format!("{LABS_DIR}/{name}/n1/sshd_config");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sshd = Command::new("pgrep")
            .args(["-f", &first_sshd])
            .output()
            .unwrap();
        if !sshd.stdout.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the first sshd never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    up.kill().unwrap(); // SIGKILL
    up.wait().unwrap();
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&netns.stdout).contains(&format!("fl-{name}-n3")),
        "killed halfway: the namespaces exist"
    );
    let status = faultline(&["lab", "status", "--name", &name]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("NOT up"),
        "{}",
        text(&status)
    );
    // `faultline test` refuses a lab that is not up rather than using it.
    let refused = faultline(&[
        "test",
        "--target",
        "memory",
        "--lab",
        "1",
        "--lab-name",
        &name,
    ]);
    assert_eq!(refused.status.code(), Some(254), "{}", text(&refused));
    let out = faultline(&["lab", "down", "--name", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert_gone(&name);
}

#[test]
fn a_test_brings_up_a_lab_for_its_run_and_takes_it_down() {
    if !root() {
        return;
    }
    let name = lab_name('c');
    let _guard = Down(name.clone());
    let store = std::env::temp_dir().join(format!("faultline-lab-store-{name}"));
    let _ = std::fs::remove_dir_all(&store);
    let out = faultline(&[
        "test",
        "--target",
        "memory",
        "--lab",
        "2",
        "--lab-name",
        &name,
        "--time-limit",
        "0.5",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("brought up lab {name}")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("lab {name} (brought up for this run) is down")));
    assert_gone(&name);
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn lab_commands_without_root_are_refused_clearly() {
    if !root() {
        return;
    }
    // Drop to nobody for one command (setpriv is in util-linux).
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_faultline"))
        .args(["lab", "up", "--hosts", "1", "--name", &lab_name('d')])
        .output()
        .unwrap();
    if String::from_utf8_lossy(&out.stderr).contains("Permission denied") {
        eprintln!("skipped: nobody cannot run the test binary here");
        return;
    }
    assert_eq!(out.status.code(), Some(254), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
}

/// Starts `faultline test` on a lab brought up for the run, waits until operations are being
/// recorded, sends SIGINT `interrupts` times, and returns the exit status.
fn interrupted_lab_run(name: &str, interrupts: usize) -> Option<i32> {
    let store = std::env::temp_dir().join(format!("faultline-lab-store-{name}-{interrupts}"));
    let _ = std::fs::remove_dir_all(&store);
    let stderr_path =
        std::env::temp_dir().join(format!("faultline-lab-stderr-{name}-{interrupts}"));
    let mut run = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "test",
            "--target",
            "memory",
            "--lab",
            "2",
            "--lab-name",
            name,
        ])
        .args(["--time-limit", "60", "--store", store.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(&stderr_path).expect("stderr file"),
        ))
        .spawn()
        .unwrap();
    let history = store.join("latest/history.jsonl");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&history).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the run never started recording");
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..interrupts {
        let sent = Command::new("kill")
            .args(["-INT", &run.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        // The next one only once this one was handled: two pending SIGINTs would merge into
        // one (a fixed sleep was too short on a loaded machine).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&stderr_path)
            .unwrap_or_default()
            .contains("interrupted;")
        {
            assert!(Instant::now() < deadline, "the interrupt was never handled");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = run.kill();
            panic!("the interrupted run did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_dir_all(&store);
    let _ = std::fs::remove_file(&stderr_path);
    status.code()
}

#[test]
fn ctrl_c_once_or_twice_takes_down_a_lab_brought_up_for_the_run() {
    if !root() {
        return;
    }
    let name = lab_name('e');
    let _guard = Down(name.clone());
    // Once: the run stops, heals, checks (valid but interrupted: unknown), then the lab goes.
    assert_eq!(interrupted_lab_run(&name, 1), Some(2));
    assert_gone(&name);
    // Twice: the run exits at once, and still takes the lab down first.
    assert_eq!(interrupted_lab_run(&name, 2), Some(255));
    assert_gone(&name);
}

/// Heavy cluster runs share two cores: one at a time within this test binary.
static CLUSTERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The last line of `stdout` that starts with `prefix`.
fn line_starting<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .rev()
        .find(|l| l.starts_with(prefix))
        .unwrap_or("")
}

/// The fault kinds recorded in a run's history (`kill`, `start-partition`, ...).
fn nemesis_events(history: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(history)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|op| op["process"] == "nemesis")
        .filter_map(|op| op["f"].as_str().map(str::to_string))
        .collect()
}

/// The lab runs, short: raftkv (5 hosts) and ZooKeeper (3 hosts, reads after `sync`)
/// under partitions, pauses, kills and clock skew, etcd (5 hosts, linearizable reads) under
/// partitions, pauses and kills — each driven over SSH with iptables faults, each valid.
#[test]
fn raftkv_etcd_and_zookeeper_in_the_lab_are_valid_under_faults() {
    if !root() {
        return;
    }
    let _one_at_a_time = CLUSTERS.lock().unwrap_or_else(|e| e.into_inner());
    let name = lab_name('r');
    let _guard = Down(name.clone());
    let up = faultline(&["lab", "up", "--hosts", "5", "--name", &name]);
    assert!(up.status.success(), "{}", text(&up));
    let store = std::env::temp_dir().join(format!("faultline-lab-store-{name}"));
    let _ = std::fs::remove_dir_all(&store);
    let runs: [(&str, &str, &str, &[&str]); 3] = [
        ("raftkv", "5", "partition,pause,kill,clock", &[]),
        ("etcd", "5", "partition,pause,kill", &[]),
        (
            "zookeeper",
            "3",
            "partition,pause,kill,clock",
            &["--sync-reads"],
        ),
    ];
    for (target, hosts, nemesis, extra) in runs {
        let mut args = vec![
            "test",
            "--target",
            target,
            "--lab",
            hosts,
            "--lab-name",
            &name,
            "--nemesis",
            nemesis,
            "--time-limit",
            "12",
            "--seed",
            "4",
            "--store",
            store.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let started = Instant::now();
        let out = faultline(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        eprintln!(
            "{target} in the lab ({:.1} s): {} / {}",
            started.elapsed().as_secs_f64(),
            line_starting(&stdout, "recorded"),
            line_starting(&stdout, "verdict")
        );
        assert_eq!(out.status.code(), Some(0), "{target}: {}", text(&out));
        let run = store.join(format!("{target}-register")).join("latest");
        let run = store.join("latest").canonicalize().unwrap_or(run);
        let events = nemesis_events(&run.join("history.jsonl"));
        assert!(
            events.iter().any(|f| f != "heal"),
            "{target}: faults were injected: {events:?}"
        );
        // Every node's log came back from its host.
        let nodes = std::fs::read_dir(run.join("nodes")).unwrap().count();
        assert!(nodes >= hosts.parse().unwrap(), "{target}: node logs");
    }
    // The lab is still up (the runs used it, they did not own it) and free of faults.
    let status = faultline(&["lab", "status", "--name", &name]);
    assert!(status.status.success(), "{}", text(&status));
    let _ = std::fs::remove_dir_all(&store);
}

/// etcd's transactions through the JSON gateway (read at one revision, then a txn comparing
/// every read key's revision): list-append on 3 lab hosts under partitions and kills is
/// strict serializable, and transactions did commit and conflict.
#[test]
fn etcd_list_append_in_the_lab_is_strict_serializable_under_faults() {
    if !root() {
        return;
    }
    let _one_at_a_time = CLUSTERS.lock().unwrap_or_else(|e| e.into_inner());
    let name = lab_name('t');
    let _guard = Down(name.clone());
    let up = faultline(&["lab", "up", "--hosts", "3", "--name", &name]);
    assert!(up.status.success(), "{}", text(&up));
    let store = std::env::temp_dir().join(format!("faultline-lab-store-{name}"));
    let _ = std::fs::remove_dir_all(&store);
    let out = faultline(&[
        "test",
        "--target",
        "etcd",
        "--workload",
        "list-append",
        "--lab",
        "3",
        "--lab-name",
        &name,
        "--nemesis",
        "partition,kill",
        "--time-limit",
        "10",
        "--seed",
        "5",
        "--store",
        store.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!(
        "etcd list-append in the lab: {} / {}",
        line_starting(&stdout, "recorded"),
        line_starting(&stdout, "verdict")
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains("verdict: valid [transactional]"),
        "{stdout}"
    );
    let run = store.join("latest").canonicalize().unwrap();
    let events: Vec<Value> = std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let committed_appends = events
        .iter()
        .filter(|e| e["type"] == "ok" && e["f"] == "txn")
        .filter(|e| {
            e["value"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m[0] == "append")
        })
        .count();
    assert!(committed_appends > 50, "{committed_appends}");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "fail" && e["error"] == "compare-failed"),
        "concurrent transactions conflicted at commit"
    );
    let faults = nemesis_events(&run.join("history.jsonl"));
    assert!(faults.iter().any(|f| f != "heal"), "{faults:?}");
    let _ = std::fs::remove_dir_all(&store);
}

/// A `faultline test` killed with SIGKILL in the middle of a run, with a node paused or cut
/// off: the history on disk is still checkable, and `lab down` then leaves no namespace, rule,
/// stopped or orphaned process behind.
#[test]
fn a_lab_run_killed_with_sigkill_leaves_a_checkable_history_and_down_cleans_up() {
    if !root() {
        return;
    }
    let _one_at_a_time = CLUSTERS.lock().unwrap_or_else(|e| e.into_inner());
    let name = lab_name('k');
    let _guard = Down(name.clone());
    let store = std::env::temp_dir().join(format!("faultline-lab-store-{name}"));
    let _ = std::fs::remove_dir_all(&store);
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "test",
            "--target",
            "raftkv",
            "--lab",
            "3",
            "--lab-name",
            &name,
            "--nemesis",
            "pause,partition",
            "--time-limit",
            "60",
            "--store",
            store.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until a fault is in force and operations were recorded.
    let deadline = Instant::now() + Duration::from_secs(60);
    let path = loop {
        let found = std::fs::read_dir(store.join("raftkv-register"))
            .ok()
            .and_then(|mut dirs| dirs.next())
            .map(|d| d.unwrap().path().join("history.jsonl"));
        if let Some(path) = found {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let last_fault = text
                .lines()
                .rev()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|op| op["process"] == "nemesis");
            let in_force =
                last_fault.is_some_and(|op| op["f"] == "pause" || op["f"] == "start-partition");
            if in_force && text.lines().count() > 100 {
                break path;
            }
        }
        assert!(Instant::now() < deadline, "no fault within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Every process on the lab's hosts now (sshd, the nodes, one of them maybe stopped).
    let mut pids = Vec::new();
    for host in ["n1", "n2", "n3"] {
        let out = Command::new("ip")
            .args(["netns", "pids", &format!("fl-{name}-{host}")])
            .output()
            .unwrap();
        pids.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_string),
        );
    }
    assert!(pids.len() >= 6, "sshd and a node on each host: {pids:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let check = faultline(&["check", path.to_str().unwrap()]);
    assert!(
        matches!(check.status.code(), Some(0..=2)),
        "the history of a killed run is checkable: {}",
        text(&check)
    );
    let down = faultline(&["lab", "down", "--name", &name]);
    assert!(down.status.success(), "{}", text(&down));
    assert_gone(&name);
    // No process of the lab's hosts survives, stopped or not (a zombie is dead: it waits for
    // its parent, here the machine's init, to collect its status).
    let alive = |pid: &String| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, None | Some("Z") | Some("X"))
    };
    let left: Vec<&String> = pids.iter().filter(|pid| alive(pid)).collect();
    assert!(left.is_empty(), "processes left: {left:?}");
    let _ = std::fs::remove_dir_all(&store);
}

/// PostgreSQL in the lab, short: the server on the first of 3 hosts (the others idle), the
/// clients on the control node connecting over the lab's bridge with a password, every
/// operation a serializable transaction, under kills (crash recovery) and pauses of every
/// server process: list-append strict serializable, the bank's total kept.
#[test]
fn postgres_in_the_lab_is_valid_under_kill_and_pause() {
    if !root() {
        return;
    }
    let _one_at_a_time = CLUSTERS.lock().unwrap_or_else(|e| e.into_inner());
    let name = lab_name('g');
    let _guard = Down(name.clone());
    let up = faultline(&["lab", "up", "--hosts", "3", "--name", &name]);
    assert!(up.status.success(), "{}", text(&up));
    let store = std::env::temp_dir().join(format!("faultline-lab-store-{name}"));
    let _ = std::fs::remove_dir_all(&store);
    for workload in ["list-append", "bank"] {
        let started = Instant::now();
        let out = faultline(&[
            "test",
            "--target",
            "postgres",
            "--workload",
            workload,
            "--lab",
            "3",
            "--lab-name",
            &name,
            "--nemesis",
            "pause,kill",
            "--time-limit",
            "12",
            "--rate",
            "300",
            "--seed",
            "5",
            "--store",
            store.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        eprintln!(
            "postgres {workload} in the lab ({:.1} s): {} / {}",
            started.elapsed().as_secs_f64(),
            line_starting(&stdout, "recorded"),
            line_starting(&stdout, "verdict")
        );
        assert_eq!(out.status.code(), Some(0), "{workload}: {}", text(&out));
        let run = store.join("latest").canonicalize().unwrap();
        let test: Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
        assert_eq!(test["nodes"], serde_json::json!(["n1"]), "one server");
        assert_eq!(test["target_options"]["isolation"], "serializable");
        let events = nemesis_events(&run.join("history.jsonl"));
        assert!(
            events.contains("kill") || events.contains("pause"),
            "{workload}: faults were injected: {events:?}"
        );
        assert!(
            run.join("nodes/n1/postgres.log").exists(),
            "the server's log came back from its host"
        );
    }
    let _ = std::fs::remove_dir_all(&store);
}
