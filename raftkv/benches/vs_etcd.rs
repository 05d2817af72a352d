//! `vs_etcd`: raftkv against etcd 3.4 under the same closed-loop load, on loopback.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/targets/bench cargo bench -p faultline-raftkv --bench vs_etcd
//! ```
//!
//! It starts a 3-node raftkv cluster (the release `raftkv` binary, fsync on) and then a
//! 3-member etcd cluster (`/usr/bin/etcd`, which fsyncs its WAL by default: equal durability),
//! one after the other on 127.0.0.1 with free ports, and drives each with the same load: N
//! closed-loop clients (one thread each, one keep-alive HTTP/1.1 connection each, client `i` on
//! node `i % 3`), 50% puts and 50% linearizable gets over [`KEYS`] keys with 12-byte values.
//! Each round warms up for [`WARMUP_MS`], then measures for [`MEASURE_MS`]. The result is a
//! Markdown table on stdout: successful ops/s, p50 and p99 latency of successful ops, errors.
//!
//! Both systems are spoken to over HTTP/1.1 + JSON: raftkv's own API and etcd's gRPC gateway
//! (`/v3/kv/put`, `/v3/kv/range`, base64 keys and values). That is etcd's slower door (the
//! gateway re-enters etcd over gRPC), which this comparison accepts on purpose: the same
//! client, the same bytes on the wire, the same connection count.
//!
//! The systems run one after the other, never side by side, so that an idle cluster does not
//! steal CPU from the measured one. Every process it starts is killed and every temporary
//! directory removed when it returns, on an error, on a panic (guards), and on SIGINT, SIGTERM
//! or SIGHUP (a signal thread empties the same registry the guards use).
//!
//! Knobs (environment): `VS_ETCD_CLIENTS` (default `1,8,32`), `VS_ETCD_MEASURE_MS` (8000),
//! `VS_ETCD_WARMUP_MS` (1000), `VS_ETCD_SYSTEMS` (`raftkv,etcd`), `VS_ETCD_SEED` (random,
//! printed), `VS_ETCD_HOLD_MS` (keep the clusters up this long after their rounds, e.g. to
//! attach `perf`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

// ----- limits and defaults, in one place -----

/// The client counts measured, in order.
const DEFAULT_CLIENTS: [usize; 3] = [1, 8, 32];
/// Ops before this are not recorded (connections warm, leader caches hot).
const WARMUP_MS: u64 = 1_000;
/// The measured window of one round.
const MEASURE_MS: u64 = 8_000;
/// Keys `k000`..`k099`, drawn uniformly.
const KEYS: usize = 100;
/// How long a cluster may take to elect a leader and serve its first write.
const CLUSTER_READY_MS: u64 = 30_000;
/// A client socket's connect, read and write timeout; past it the op is an error.
const CLIENT_TIMEOUT_MS: u64 = 5_000;
/// How long the clients may take to connect before a round starts.
const ROUND_START_SLACK_MS: u64 = 300;
/// A response head larger than this is a protocol error.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A response body larger than this is a protocol error.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Lines of a server's log printed when it fails to start.
const LOG_TAIL_LINES: usize = 30;
const ETCD: &str = "/usr/bin/etcd";
const RAFTKV: &str = env!("CARGO_BIN_EXE_raftkv");

// ----- cleanup: every child process and temp dir, on every exit path -----

/// What is still to be cleaned up. Guards own keys into it; the signal thread drains it.
#[derive(Default)]
struct Registry {
    next_key: u64,
    children: BTreeMap<u64, (String, Child)>,
    dirs: BTreeMap<u64, PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_key: 0,
    children: BTreeMap::new(),
    dirs: BTreeMap::new(),
});

/// The registry, even if a panicking thread poisoned it (cleanup must still run).
fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn kill_child(name: &str, child: &mut Child) {
    if let Err(e) = child.kill() {
        eprintln!("killing {name} (pid {}): {e}", child.id());
    }
    let _ = child.wait();
}

/// Kills every registered child and removes every registered directory.
fn clean_up_everything() {
    let (children, dirs) = {
        let mut registry = registry();
        (
            std::mem::take(&mut registry.children),
            std::mem::take(&mut registry.dirs),
        )
    };
    for (_, (name, mut child)) in children {
        kill_child(&name, &mut child);
    }
    for (_, dir) in dirs {
        let _ = fs::remove_dir_all(dir);
    }
}

/// A started child process; dropping it kills the process (SIGKILL) and reaps it.
struct ProcessGuard {
    key: u64,
}

impl ProcessGuard {
    fn spawn(name: &str, command: &mut Command) -> anyhow::Result<ProcessGuard> {
        // Hold the lock across the spawn, so a signal cannot clean up between the two.
        let mut registry = registry();
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        let key = registry.next_key;
        registry.next_key += 1;
        registry.children.insert(key, (name.to_string(), child));
        Ok(ProcessGuard { key })
    }

    /// The process id, if it is still registered.
    fn pid(&self) -> Option<u32> {
        registry().children.get(&self.key).map(|(_, c)| c.id())
    }

    /// Whether it exited by itself, and how.
    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut registry = registry();
        let (_, child) = registry.children.get_mut(&self.key)?;
        child.try_wait().ok().flatten()
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        let entry = registry().children.remove(&self.key);
        if let Some((name, mut child)) = entry {
            kill_child(&name, &mut child);
        }
    }
}

/// A fresh directory under the system temp dir; dropping it removes it.
struct TempDir {
    key: u64,
    path: PathBuf,
}

impl TempDir {
    fn new(name: &str) -> anyhow::Result<TempDir> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "faultline-vs-etcd-{}-{nanos}-{name}",
            std::process::id()
        ));
        let mut registry = registry();
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        let key = registry.next_key;
        registry.next_key += 1;
        registry.dirs.insert(key, path.clone());
        Ok(TempDir { key, path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if registry().dirs.remove(&self.key).is_some() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// On SIGINT, SIGTERM or SIGHUP: clean up everything and exit 130.
fn spawn_signal_thread() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the signal thread's runtime")?;
    // Register in this thread, so that a signal arriving right after is already caught.
    let mut signals = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        ))
    })?;
    thread::Builder::new()
        .name("vs-etcd-signals".into())
        .spawn(move || {
            let (interrupt, terminate, hangup) = &mut signals;
            let name = runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => "SIGINT",
                    _ = terminate.recv() => "SIGTERM",
                    _ = hangup.recv() => "SIGHUP",
                }
            });
            eprintln!("{name}: stopping every server and removing the temp dirs");
            clean_up_everything();
            std::process::exit(130);
        })
        .context("starting the signal thread")?;
    Ok(())
}

// ----- a tiny keep-alive HTTP/1.1 client -----

fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// One keep-alive connection.
struct Connection {
    stream: BufReader<TcpStream>,
    /// The request head and body, reused.
    out: Vec<u8>,
    line: String,
}

#[derive(Debug)]
struct Response {
    status: u16,
    body: Vec<u8>,
    close: bool,
}

fn invalid(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

impl Connection {
    fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let timeout = Duration::from_millis(CLIENT_TIMEOUT_MS);
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Connection {
            stream: BufReader::new(stream),
            out: Vec::with_capacity(512),
            line: String::new(),
        })
    }

    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<Response> {
        self.out.clear();
        write!(
            self.out,
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )?;
        self.out.extend_from_slice(body);
        self.stream.get_mut().write_all(&self.out)?;
        self.read_response()
    }

    /// Reads one response: a `Content-Length` or chunked body.
    fn read_response(&mut self) -> std::io::Result<Response> {
        let mut head_bytes = 0;
        let mut status = None;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        loop {
            self.line.clear();
            let n = self.stream.read_line(&mut self.line)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head_bytes += n;
            if head_bytes > MAX_HEAD_BYTES {
                return Err(invalid("response head too large"));
            }
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            if status.is_none() {
                let code = line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse::<u16>().ok())
                    .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
                status = Some(code);
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(invalid(format!("bad header {line:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|_| invalid("bad length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        let status = status.ok_or_else(|| invalid("no status line"))?;
        let body = if chunked {
            self.read_chunked()?
        } else {
            let length = length.ok_or_else(|| invalid("neither length nor chunked"))?;
            if length > MAX_BODY_BYTES {
                return Err(invalid("response body too large"));
            }
            let mut body = vec![0; length];
            self.stream.read_exact(&mut body)?;
            body
        };
        Ok(Response {
            status,
            body,
            close,
        })
    }

    fn read_chunked(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            self.line.clear();
            self.stream.read_line(&mut self.line)?;
            let size = self.line.trim_end().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if body.len() + size > MAX_BODY_BYTES {
                return Err(invalid("response body too large"));
            }
            let start = body.len();
            body.resize(start + size, 0);
            self.stream.read_exact(&mut body[start..])?;
            // The CRLF after the chunk, or the (empty) trailer after the last one.
            self.line.clear();
            self.stream.read_line(&mut self.line)?;
            if size == 0 {
                return Ok(body);
            }
        }
    }
}

/// One request on a fresh connection (setup and readiness checks, not the measured load).
fn one_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<Response> {
    Connection::open(addr)?.request(method, path, body)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ----- the two systems: how to start them and how to speak to them -----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Raftkv,
    Etcd,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Raftkv => "raftkv",
            System::Etcd => "etcd",
        }
    }

    /// Writes the request for one op into `body` and returns (method, path).
    fn op(self, key: &str, put_value: Option<&str>, body: &mut Vec<u8>) -> (&'static str, String) {
        body.clear();
        match (self, put_value) {
            (System::Raftkv, Some(value)) => {
                body.extend_from_slice(Value::String(value.into()).to_string().as_bytes());
                ("PUT", format!("/kv/{key}"))
            }
            (System::Raftkv, None) => ("GET", format!("/kv/{key}")),
            (System::Etcd, Some(value)) => {
                let _ = write!(
                    body,
                    r#"{{"key":"{}","value":"{}"}}"#,
                    base64(key.as_bytes()),
                    base64(value.as_bytes())
                );
                ("POST", "/v3/kv/put".into())
            }
            (System::Etcd, None) => {
                let _ = write!(body, r#"{{"key":"{}"}}"#, base64(key.as_bytes()));
                ("POST", "/v3/kv/range".into())
            }
        }
    }

    /// The value a successful get returned, in the form `op` wrote it (JSON string for raftkv,
    /// base64 for etcd); `None` if the key is absent.
    fn read_value(self, body: &[u8]) -> anyhow::Result<Option<String>> {
        let body: Value = serde_json::from_slice(body).context("a JSON response")?;
        let value = match self {
            System::Raftkv => &body["value"],
            System::Etcd => &body["kvs"][0]["value"],
        };
        Ok(value.as_str().map(str::to_string))
    }
}

/// A running 3-node cluster of either system.
struct Cluster {
    system: System,
    /// Client addresses, node 1..=3 in order.
    clients: Vec<SocketAddr>,
    logs: Vec<PathBuf>,
    // Dropped in field order: processes first, then their directory.
    processes: Vec<ProcessGuard>,
    dir: TempDir,
}

impl Cluster {
    fn start(system: System) -> anyhow::Result<Cluster> {
        let dir = TempDir::new(system.name())?;
        let peers: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect::<Result<_, _>>()?;
        let clients: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect::<Result<_, _>>()?;
        let mut cluster = Cluster {
            system,
            clients: clients.clone(),
            logs: Vec::new(),
            processes: Vec::new(),
            dir,
        };
        // Unique per run: the temp dir's name carries the pid and the time.
        let token = cluster
            .dir
            .path
            .file_name()
            .map_or_else(|| "vs-etcd".into(), |n| n.to_string_lossy().into_owned());
        for i in 0..3 {
            let id = i + 1;
            let data_dir = cluster.dir.path.join(format!("n{id}"));
            let log_path = cluster.dir.path.join(format!("n{id}.log"));
            let log = fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?;
            let mut command = match system {
                System::Raftkv => {
                    let peer_list: Vec<String> = peers
                        .iter()
                        .enumerate()
                        .map(|(j, addr)| format!("{}={addr}", j + 1))
                        .collect();
                    let mut command = Command::new(RAFTKV);
                    command
                        .args(["--id", &id.to_string()])
                        .args(["--peers", &peer_list.join(",")])
                        .args(["--listen-client", &clients[i].to_string()])
                        .arg("--data-dir")
                        .arg(&data_dir)
                        .env("RUST_LOG", "warn");
                    command
                }
                System::Etcd => {
                    let initial_cluster: Vec<String> = peers
                        .iter()
                        .enumerate()
                        .map(|(j, addr)| format!("n{}=http://{addr}", j + 1))
                        .collect();
                    let peer_url = format!("http://{}", peers[i]);
                    let client_url = format!("http://{}", clients[i]);
                    let mut command = Command::new(ETCD);
                    command
                        .args(["--name", &format!("n{id}")])
                        .arg("--data-dir")
                        .arg(&data_dir)
                        .args(["--listen-peer-urls", &peer_url])
                        .args(["--initial-advertise-peer-urls", &peer_url])
                        .args(["--listen-client-urls", &client_url])
                        .args(["--advertise-client-urls", &client_url])
                        .args(["--initial-cluster", &initial_cluster.join(",")])
                        .args(["--initial-cluster-state", "new"])
                        .args(["--initial-cluster-token", &token])
                        .args(["--logger", "zap", "--log-level", "warn"]);
                    command
                }
            };
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log));
            let name = format!("{} n{id}", system.name());
            cluster
                .processes
                .push(ProcessGuard::spawn(&name, &mut command)?);
            cluster.logs.push(log_path);
        }
        if let Err(e) = cluster.wait_until_ready() {
            cluster.print_log_tails();
            return Err(e.context(format!("{} cluster did not become ready", system.name())));
        }
        Ok(cluster)
    }

    /// raftkv: a leader that a majority names. Both: a put on node 1 and a linearizable get
    /// on node 3 that returns it (which also checks the request adapters).
    fn wait_until_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(CLUSTER_READY_MS);
        let mut last = String::from("nothing tried");
        while Instant::now() < deadline {
            for (i, process) in self.processes.iter().enumerate() {
                if let Some(status) = process.exited() {
                    bail!("node {} exited: {status}", i + 1);
                }
            }
            match self.ready_once() {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("{e:#}"),
            }
            thread::sleep(Duration::from_millis(50));
        }
        bail!("not ready after {CLUSTER_READY_MS} ms; last: {last}")
    }

    fn ready_once(&self) -> anyhow::Result<()> {
        if self.system == System::Raftkv {
            let statuses: Vec<Value> = self
                .clients
                .iter()
                .filter_map(|&addr| one_request(addr, "GET", "/status", b"").ok())
                .filter(|r| r.status == 200)
                .filter_map(|r| serde_json::from_slice(&r.body).ok())
                .collect();
            let leaders: Vec<u64> = statuses
                .iter()
                .filter(|s| s["role"] == "leader")
                .filter_map(|s| s["id"].as_u64())
                .collect();
            let [leader] = leaders.as_slice() else {
                bail!("leaders: {leaders:?}");
            };
            let agree = statuses
                .iter()
                .filter(|s| s["leader"].as_u64() == Some(*leader))
                .count();
            if agree < 2 {
                bail!("only {agree} nodes name leader {leader}");
            }
        }
        let mut body = Vec::new();
        let (method, path) = self.system.op("ready", Some("ready-value"), &mut body);
        let response = one_request(self.clients[0], method, &path, &body)?;
        if response.status != 200 {
            bail!(
                "put answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
        }
        let (method, path) = self.system.op("ready", None, &mut body);
        let response = one_request(self.clients[2], method, &path, &body)?;
        if response.status != 200 {
            bail!("get answered {}", response.status);
        }
        let expected = match self.system {
            System::Raftkv => "ready-value".to_string(),
            System::Etcd => base64(b"ready-value"),
        };
        let got = self.system.read_value(&response.body)?;
        if got.as_deref() != Some(expected.as_str()) {
            bail!("get returned {got:?}, not {expected:?}");
        }
        Ok(())
    }

    fn print_log_tails(&self) {
        for log in &self.logs {
            let text = fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- {} (last {LOG_TAIL_LINES} lines)", log.display());
            for line in &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..] {
                eprintln!("{line}");
            }
        }
    }

    fn pids(&self) -> Vec<u32> {
        self.processes
            .iter()
            .filter_map(ProcessGuard::pid)
            .collect()
    }

    /// Fails if a node died during a round (its errors would otherwise look like slowness).
    fn check_alive(&self) -> anyhow::Result<()> {
        for (i, process) in self.processes.iter().enumerate() {
            if let Some(status) = process.exited() {
                self.print_log_tails();
                bail!("{} node {} exited: {status}", self.system.name(), i + 1);
            }
        }
        Ok(())
    }
}

// ----- the load -----

/// When a round's phases start and end; all clients share it.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    begin: Instant,
    measure_from: Instant,
    stop: Instant,
}

/// What one client saw in the measured window.
#[derive(Debug, Default)]
struct ClientStats {
    /// Latency of each successful op, in microseconds.
    latencies_us: Vec<u32>,
    /// Errors by kind: `HTTP 503`, `io: timed out`, ...
    errors: BTreeMap<String, u64>,
}

fn run_client(
    system: System,
    client: usize,
    addr: SocketAddr,
    seed: u64,
    schedule: Schedule,
    start: &Barrier,
) -> ClientStats {
    let mut rng =
        SmallRng::seed_from_u64(seed ^ (client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let keys: Vec<String> = (0..KEYS).map(|k| format!("k{k:03}")).collect();
    let mut stats = ClientStats {
        latencies_us: Vec::with_capacity(64 * 1024),
        ..ClientStats::default()
    };
    let mut connection = Connection::open(addr).ok();
    start.wait();
    thread::sleep(schedule.begin.saturating_duration_since(Instant::now()));
    let mut body = Vec::with_capacity(256);
    let mut value = String::with_capacity(16);
    let mut sequence = 0u64;
    loop {
        let started = Instant::now();
        if started >= schedule.stop {
            return stats;
        }
        let measured = started >= schedule.measure_from;
        let key = &keys[rng.gen_range(0..KEYS)];
        let put = rng.gen_bool(0.5);
        value.clear();
        let _ = write!(value, "v{:02}-{:08}", client % 100, sequence % 100_000_000);
        sequence += 1;
        let (method, path) = system.op(key, put.then_some(value.as_str()), &mut body);
        let conn = match connection.as_mut() {
            Some(conn) => conn,
            None => match Connection::open(addr) {
                Ok(conn) => connection.insert(conn),
                Err(e) => {
                    if measured {
                        *stats.errors.entry(format!("connect: {e}")).or_default() += 1;
                    }
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let outcome = conn.request(method, &path, &body);
        let finished = Instant::now();
        let error = match outcome {
            Ok(response) => {
                if response.close {
                    connection = None;
                }
                (response.status != 200).then(|| format!("HTTP {}", response.status))
            }
            Err(e) => {
                connection = None;
                Some(format!("io: {e}"))
            }
        };
        // Only ops that both start and finish inside the window count.
        if !measured || finished > schedule.stop {
            continue;
        }
        match error {
            None => {
                let us = finished.duration_since(started).as_micros();
                stats
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Some(kind) => *stats.errors.entry(kind).or_default() += 1,
        }
    }
}

/// One row of the result table.
#[derive(Debug)]
struct Row {
    system: System,
    clients: usize,
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: BTreeMap<String, u64>,
}

impl Row {
    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The `q` quantile (nearest rank) of sorted latencies, in ms.
fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    assert!((0.0..=1.0).contains(&q), "a quantile is in [0, 1]");
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1_000.0
}

fn run_round(
    cluster: &Cluster,
    clients: usize,
    seed: u64,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<Row> {
    let begin = Instant::now() + Duration::from_millis(ROUND_START_SLACK_MS);
    let schedule = Schedule {
        begin,
        measure_from: begin + warmup,
        stop: begin + warmup + measure,
    };
    let start = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|client| {
            let addr = cluster.clients[client % cluster.clients.len()];
            let system = cluster.system;
            let start = start.clone();
            thread::Builder::new()
                .name(format!("client-{client}"))
                .spawn(move || run_client(system, client, addr, seed, schedule, &start))
                .context("starting a client thread")
        })
        .collect::<anyhow::Result<_>>()?;
    let mut latencies_us = Vec::new();
    let mut errors = BTreeMap::new();
    for handle in handles {
        let stats = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
        latencies_us.extend(stats.latencies_us);
        for (kind, n) in stats.errors {
            *errors.entry(kind).or_default() += n;
        }
    }
    cluster.check_alive()?;
    latencies_us.sort_unstable();
    Ok(Row {
        system: cluster.system,
        clients,
        ops_per_s: latencies_us.len() as f64 / measure.as_secs_f64(),
        p50_ms: quantile_ms(&latencies_us, 0.50),
        p99_ms: quantile_ms(&latencies_us, 0.99),
        errors,
    })
}

// ----- settings and the report -----

struct Settings {
    clients: Vec<usize>,
    systems: Vec<System>,
    warmup: Duration,
    measure: Duration,
    seed: u64,
    hold: Duration,
}

fn env_u64(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .with_context(|| format!("{name}={value:?} is not a number")),
        Err(_) => Ok(default),
    }
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let clients = match std::env::var("VS_ETCD_CLIENTS") {
            Ok(list) => list
                .split(',')
                .map(|n| n.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("VS_ETCD_CLIENTS={list:?}"))?,
            Err(_) => DEFAULT_CLIENTS.to_vec(),
        };
        if clients.iter().any(|&n| n == 0 || n > 1024) {
            bail!("client counts must be in 1..=1024: {clients:?}");
        }
        let systems = match std::env::var("VS_ETCD_SYSTEMS") {
            Ok(list) => list
                .split(',')
                .map(|s| match s.trim() {
                    "raftkv" => Ok(System::Raftkv),
                    "etcd" => Ok(System::Etcd),
                    other => Err(anyhow::anyhow!("unknown system {other:?}")),
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            Err(_) => vec![System::Raftkv, System::Etcd],
        };
        let clock_seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        let measure_ms = env_u64("VS_ETCD_MEASURE_MS", MEASURE_MS)?;
        if measure_ms == 0 {
            bail!("VS_ETCD_MEASURE_MS must be positive");
        }
        Ok(Settings {
            clients,
            systems,
            warmup: Duration::from_millis(env_u64("VS_ETCD_WARMUP_MS", WARMUP_MS)?),
            measure: Duration::from_millis(measure_ms),
            seed: env_u64("VS_ETCD_SEED", clock_seed)?,
            hold: Duration::from_millis(env_u64("VS_ETCD_HOLD_MS", 0)?),
        })
    }
}

fn markdown(settings: &Settings, rows: &[Row], etcd_version: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## raftkv vs etcd: 3 nodes on 127.0.0.1, fsync on\n");
    let _ = writeln!(
        out,
        "{} s measured after {} s warm-up per row; 50% put / 50% linearizable get over {KEYS} \
         keys, 12-byte values; closed loop, one keep-alive HTTP/1.1 connection per client, \
         client i on node i % 3. {} CPUs; {}; seed {}.\n",
        settings.measure.as_secs_f64(),
        settings.warmup.as_secs_f64(),
        thread::available_parallelism().map_or(0, |n| n.get()),
        etcd_version,
        settings.seed,
    );
    let _ = writeln!(
        out,
        "| system | clients | ops/s | p50 ms | p99 ms | errors |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} |",
            row.system.name(),
            row.clients,
            row.ops_per_s,
            row.p50_ms,
            row.p99_ms,
            row.error_count()
        );
    }
    let ratios: Vec<String> = settings
        .clients
        .iter()
        .filter_map(|&n| {
            let find = |s| rows.iter().find(|r| r.system == s && r.clients == n);
            let (raftkv, etcd) = (find(System::Raftkv)?, find(System::Etcd)?);
            Some(format!(
                "| {n} | {:.2}x | {:.2}x |",
                raftkv.ops_per_s / etcd.ops_per_s,
                raftkv.p50_ms / etcd.p50_ms
            ))
        })
        .collect();
    if !ratios.is_empty() {
        let _ = writeln!(
            out,
            "\n| clients | raftkv/etcd ops/s | raftkv/etcd p50 |\n|---:|---:|---:|"
        );
        for line in ratios {
            let _ = writeln!(out, "{line}");
        }
    }
    let errors: Vec<String> = rows
        .iter()
        .flat_map(|row| {
            row.errors.iter().map(move |(kind, n)| {
                format!("- {} x{}: {n} x {kind}", row.system.name(), row.clients)
            })
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "\nErrors:");
        for line in errors {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

fn etcd_version() -> String {
    Command::new(ETCD)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "etcd version unknown".into())
}

fn bench(settings: &Settings) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &system in &settings.systems {
        let started = Instant::now();
        let cluster = Cluster::start(system)?;
        eprintln!(
            "{} cluster ready in {} ms (pids {:?}, dir {})",
            system.name(),
            started.elapsed().as_millis(),
            cluster.pids(),
            cluster.dir.path.display()
        );
        for &clients in &settings.clients {
            let row = run_round(
                &cluster,
                clients,
                settings.seed,
                settings.warmup,
                settings.measure,
            )
            .with_context(|| format!("{} with {clients} clients", system.name()))?;
            eprintln!(
                "{:>6} x{:<3} {:>8.0} ops/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
                system.name(),
                clients,
                row.ops_per_s,
                row.p50_ms,
                row.p99_ms,
                row.error_count()
            );
            rows.push(row);
        }
        if !settings.hold.is_zero() {
            eprintln!("holding the cluster for {} ms", settings.hold.as_millis());
            thread::sleep(settings.hold);
        }
        drop(cluster);
    }
    Ok(rows)
}

/// The pure helpers, checked on every run (a bench target has no test harness).
fn self_check() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes()), encoded, "base64 of {plain:?}");
    }
    let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1_000).collect();
    assert_eq!(quantile_ms(&sorted, 0.5), 50.0);
    assert_eq!(quantile_ms(&sorted, 0.99), 99.0);
    assert_eq!(quantile_ms(&sorted[..1], 0.99), 1.0);
}

fn main() -> anyhow::Result<()> {
    self_check();
    // `cargo bench` passes `--bench`; this binary takes its knobs from the environment.
    let settings = Settings::from_env()?;
    if !Path::new(ETCD).exists() && settings.systems.contains(&System::Etcd) {
        bail!("{ETCD} is missing (apt-get install etcd-server)");
    }
    spawn_signal_thread()?;
    eprintln!(
        "vs_etcd: seed {}, clients {:?}, raftkv {RAFTKV}",
        settings.seed, settings.clients
    );
    let result = bench(&settings);
    // Whatever happened, nothing we started outlives us.
    clean_up_everything();
    let rows = result?;
    print!("{}", markdown(&settings, &rows, &etcd_version()));
    Ok(())
}
