//! `postgres`: Debian's PostgreSQL 15 (`/usr/lib/postgresql/15/bin`), one server, through any
//! [`faultline_core::Remote`].
//!
//! PostgreSQL is a single server: the target's only node is the first node of the test (with
//! `--lab N` or `--hosts`, the first host; the other hosts stay idle), and every worker's
//! client connects to it. [`PostgresDb`] keeps the server's files under `<base>/<node>/`
//! ([`crate::cluster`]): `data/` (the cluster made by `initdb`), `postgres.log` (the server's
//! log, kept after teardown for the store). Setup, on the first call:
//! 1. crashes a server left in `data/` by an earlier run and forgets it (below), removes `data/`;
//! 2. `initdb --no-sync -E UTF8 --locale=C` with superuser `postgres` and a password unique to
//!    the run (SCRAM for TCP clients), run as the OS user `postgres` through `runuser` when the
//!    remote is root (the server refuses to run as root), as the remote's own user otherwise;
//! 3. `data/faultline.conf` (included from `postgresql.conf`): the port, `listen_addresses`
//!    (127.0.0.1 locally; the node's address on a host), no Unix socket (a run directory's
//!    path can be longer than a socket path may be), `max_connections` from the concurrency,
//!    `idle_in_transaction_session_timeout`, a `deadlock_timeout` of 100 ms; on a host,
//!    `pg_hba.conf` admits TCP clients from anywhere with the password;
//! 4. `pg_ctl start -w`, then a connect loop from this machine (bounded by `ready_timeout_ms`);
//! 5. database `faultline` with the tables of every workload ([`SCHEMA`]) and, for `bank`, a
//!    row per account holding its initial balance ([`faultline_core::txn::Bank`]).
//!
//! A second setup only makes sure the server runs. Teardown crashes the server (so it also
//! works on a paused or half-started one), forgets it and removes `data/`.
//!
//! Capabilities:
//! - kill / start: SIGKILL of the postmaster and every process it forked (all at once: the
//!   postmaster is stopped first, so it cannot fork while its children are listed), then
//!   `pg_ctl start -w`: crash recovery replays the WAL. Every child of the postmaster calls
//!   `setsid`, so there is no process group to signal; children are found by their parent pid.
//!   Before a start the dead server is *forgotten*: its `postmaster.pid` lock file and its
//!   System V shared-memory interlock segment are removed once no process is attached to it
//!   (a segment still attached means backends of the old server live on: start refuses).
//!   This is what postgres itself does on start, except that it takes an unreaped zombie
//!   postmaster for a live one, and on hosts whose init reaps orphans slowly (~2 s here) a
//!   restart would fail.
//! - pause / resume: SIGSTOP of the postmaster, then of each of its children (backends,
//!   checkpointer, WAL writer, ...), SIGCONT in reverse order. Stopping the postmaster alone
//!   would not stop the backends that serve clients.
//! - log files: `postgres.log`.
//!
//! Not offered: partitions and packet loss (`partition`, `loss`). The clients run on the
//! control node and talk to the one server directly; iptables faults cut nodes off from each
//! other and never from the control node, so they would not touch a single byte between a
//! client and the server. Asking for them is a bad argument that says so. No clock skew:
//! nothing in a single server's correctness depends on its clock.
//!
//! Isolation: target option `isolation` (`--isolation read-committed | repeatable-read |
//! serializable`, default `serializable`); every operation is one transaction at that level
//! (`BEGIN ISOLATION LEVEL ...` ... `COMMIT`). The client and how errors map to `ok` / `fail`
//! / `info`: [`client`].
//!
//! Options: `nodes` (1 only), `data_dir`, `isolation`, `bin_dir`, `request_timeout_ms`,
//! `ready_timeout_ms`. The bank's accounts and total are the workload's
//! ([`faultline_core::txn::Bank::from_test`]).
//!
//! ```
//! use faultline_core::Test;
//! let mut test = Test::example("postgres", "list-append", 1);
//! test.target_options.insert("isolation".into(), serde_json::json!("repeatable-read"));
//! let target = faultline_targets::postgres::target(&test).unwrap();
//! assert_eq!(target.nodes, ["n1"]);
//! assert!(target.db.as_kill().is_some() && target.db.as_pause().is_some());
//! ```
//!
//! Design decision: the server is managed with PostgreSQL's own tools (`initdb`, `pg_ctl`)
//! and its own lock file (`postmaster.pid` names the postmaster), not with
//! [`crate::daemon::Daemon`]: `pg_ctl start -w` knows when recovery is done and the server
//! accepts connections, and the lock file is where any other tool would look.

pub mod client;
pub mod lock;
pub mod queue;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_core::lock::LockSpec;
use faultline_core::remote::Command;
use faultline_core::txn::Bank;
use faultline_core::{BoxFuture, Db, HarnessError, Kill, Node, Pause, Remote, Test};

use crate::cluster::{self, log_tail, Cluster, Options};
use crate::daemon;
use crate::{Target, TargetError};

pub use client::{DataModel, Isolation, PostgresClient};

/// Debian's PostgreSQL 15 programs.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The server's standard port (on a host; locally a free loopback port).
pub const STANDARD_PORT: u16 = 5432;
/// The OS user the server runs as when the remote is root.
pub const OS_USER: &str = "postgres";
/// The database superuser the clients log in as.
pub const DB_USER: &str = "postgres";
/// The database holding the workloads' tables.
pub const DATABASE: &str = "faultline";
/// How long setup waits for the server to accept connections.
pub const READY_TIMEOUT_MS: u64 = 60_000;
/// `pg_ctl start -w -t`: how long a start (with crash recovery) may take, in seconds.
pub const START_TIMEOUT_S: u64 = 60;
const READY_POLL_MS: u64 = 100;
/// How long a kill waits for the killed postmaster to be gone (a zombie counts as gone).
const KILL_WAIT_MS: u64 = 5_000;
/// How long a start waits for the killed server's processes to let go of its shared memory.
const FORGET_WAIT_MS: u64 = 10_000;
const POLL_MS: u64 = 25;
/// One connection attempt (readiness probes, setup's schema, a client's connect).
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// A session idle inside a transaction this long is ended by the server (a bound on how long
/// an abandoned client can hold locks).
pub const IDLE_IN_TRANSACTION_TIMEOUT_S: u64 = 60;
/// How long a lock wait lasts before the server looks for a deadlock (its default is 1 s).
/// Transactions of random keys lock rows in random order and deadlock now and then; a worker
/// idle for a second each time would slow the whole test down.
pub const DEADLOCK_TIMEOUT_MS: u64 = 100;
/// `max_connections` is twice the concurrency plus this (clients reconnect after `info`, and
/// an old connection may linger until the server notices it is gone), at least
/// [`MIN_CONNECTIONS`] and at most [`MAX_CONNECTIONS`].
const SPARE_CONNECTIONS: usize = 20;
pub const MIN_CONNECTIONS: usize = 100;
pub const MAX_CONNECTIONS: usize = 1_000;
/// The workloads this target's client can perform.
pub const WORKLOADS: [&str; 4] = ["register", "list-append", "rw-register", "bank"];
/// Faults that cannot reach a single server whose clients run on the control node.
pub const UNSUPPORTED_FAULTS: [&str; 2] = ["partition", "loss"];
/// The option names this target reads.
pub const OPTIONS: [&str; 6] = [
    "nodes",
    "data_dir",
    "isolation",
    "bin_dir",
    "request_timeout_ms",
    "ready_timeout_ms",
];

/// The tables of every workload: keys and values are JSON (`jsonb`), so a key or value reads
/// back exactly as the workload wrote it. `registers`: register and rw-register, one row per
/// key. `lists`: list-append, one row per key holding a JSON array. `accounts`: bank.
pub const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS registers (k jsonb PRIMARY KEY, v jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS lists (k jsonb PRIMARY KEY, v jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE IF NOT EXISTS lease (name text PRIMARY KEY, holder text, token bigint NOT NULL DEFAULT 0, expires timestamptz);
CREATE TABLE IF NOT EXISTS fence (name text PRIMARY KEY, highest bigint NOT NULL);
CREATE TABLE IF NOT EXISTS resource (seq bigserial PRIMARY KEY, name text NOT NULL, token bigint NOT NULL, id jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (queue text NOT NULL, id bigint NOT NULL, done boolean NOT NULL DEFAULT false, seq bigserial, PRIMARY KEY (queue, id));";

/// The shell script behind every signal this target sends, run as `sh -c SCRIPT postgres
/// VERB DATA_DIR`. The postmaster is the pid on the first line of `DATA_DIR/postmaster.pid`,
/// and only while that process is alive with `DATA_DIR` among its arguments (a zombie has no
/// arguments; a reused pid has other ones), so nothing else is ever signalled.
/// - `pid`: prints the postmaster's pid if it runs;
/// - `pause` / `resume`: SIGSTOP the postmaster then its children / SIGCONT them in reverse;
/// - `kill`: SIGSTOP the postmaster (it can no longer fork), then SIGKILL it and its children;
///   prints the pid killed;
/// - `forget`: for a server that does not run, removes its shared-memory interlock segment
///   (the key and id on line 7 of the lock file) when nothing is attached to it, then the lock
///   file. Exit 3 when the segment is still attached (its backends live on), 4 when the
///   server runs.
pub const SIGNAL_SCRIPT: &str = r#"
verb=$1
data=$2
pidfile="$data/postmaster.pid"
pid=
if [ -r "$pidfile" ]; then pid=$(head -n 1 "$pidfile"); fi
case "$pid" in ''|*[!0-9]*) pid= ;; esac
running=
if [ -n "$pid" ] && tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$data"; then
  running=$pid
fi
children() { pgrep -P "$1" || true; }
case "$verb" in
  pid)
    if [ -n "$running" ]; then echo "$running"; fi ;;
  pause)
    if [ -n "$running" ]; then
      kill -STOP "$running"
      kids=$(children "$running")
      if [ -n "$kids" ]; then kill -STOP $kids 2>/dev/null; fi
    fi ;;
  resume)
    if [ -n "$running" ]; then
      kids=$(children "$running")
      if [ -n "$kids" ]; then kill -CONT $kids 2>/dev/null; fi
      kill -CONT "$running"
    fi ;;
  kill)
    if [ -n "$running" ]; then
      kill -STOP "$running"
      kids=$(children "$running")
      kill -KILL "$running" $kids 2>/dev/null
      echo "$running"
    fi ;;
  forget)
    if [ -n "$running" ]; then echo "the server (pid $running) still runs" >&2; exit 4; fi
    if [ ! -e "$pidfile" ]; then exit 0; fi
    set -- $(sed -n 7p "$pidfile")
    if [ $# -eq 2 ]; then
      key=$(printf '0x%08x' "$1")
      nattch=$(ipcs -m | awk -v k="$key" -v i="$2" '$1 == k && $2 == i { print $6 }')
      if [ -n "$nattch" ] && [ "$nattch" != 0 ]; then
        echo "shared memory segment $2 of the killed server still has $nattch processes attached" >&2
        exit 3
      fi
      if [ -n "$nattch" ]; then ipcrm -m "$2"; fi
    fi
    rm -f "$pidfile" ;;
  *)
    echo "unknown verb $verb" >&2; exit 2 ;;
esac
exit 0
"#;

/// How the remote's commands reach the server's OS user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunAs {
    /// The remote is root: the server's tools run as `postgres` through `runuser`.
    Postgres,
    /// The remote's own user runs the server.
    Itself,
}

/// The server: one PostgreSQL cluster on the test's first node.
#[derive(Debug)]
pub struct PostgresDb {
    /// The layout of the one server (a cluster of one node).
    cluster: Cluster,
    /// The node the server runs on.
    server: String,
    bin_dir: String,
    /// The superuser's password, unique to the run.
    password: String,
    ready_timeout: Duration,
    max_connections: usize,
    /// The accounts setup creates (bank workload only).
    bank: Option<Bank>,
    /// Whether setup made this run's data directory already (a second setup only makes sure
    /// the server runs).
    prepared: Mutex<bool>,
    /// Decided at the first command that needs it (`id -u` on the node).
    run_as: Mutex<Option<RunAs>>,
}

fn db_error(node: &str, phase: &'static str, why: impl Into<String>) -> HarnessError {
    HarnessError::Db {
        node: node.to_string(),
        phase,
        why: why.into(),
    }
}

/// A password of 24 letters and digits.
fn new_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..24)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `max_connections` for `concurrency` workers.
pub fn max_connections(concurrency: usize) -> usize {
    (concurrency.saturating_mul(2) + SPARE_CONNECTIONS).clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

/// The server's settings (`faultline.conf`) for a server listening on `host:port` (the node's
/// address on a host, `127.0.0.1` locally). Only there: on a host, loopback's standard port
/// may belong to another server.
pub fn server_conf(host: &str, port: u16, max_connections: usize) -> String {
    format!(
        "# Written by faultline for one test run.\n\
         listen_addresses = '{host}'\n\
         port = {port}\n\
         unix_socket_directories = ''\n\
         max_connections = {max_connections}\n\
         idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT_S}s'\n\
         deadlock_timeout = '{DEADLOCK_TIMEOUT_MS}ms'\n\
         log_line_prefix = '%m [%p] %q%a '\n\
         log_connections = off\n"
    )
}

/// The `pg_hba.conf` line that lets TCP clients from other hosts in, with the password.
pub const HBA_REMOTE_CLIENTS: &str = "host all all 0.0.0.0/0 scram-sha-256\n";

impl PostgresDb {
    /// The server `test` describes (on its first node; options `nodes`, `data_dir`,
    /// `bin_dir`, `ready_timeout_ms`; the bank from the workload's options), not yet set up.
    pub fn from_test(test: &Test) -> Result<PostgresDb, TargetError> {
        let options = Options::new("postgres", test, &OPTIONS)?;
        if let Some(n) = options.u64_in("nodes", 1, cluster::MAX_NODES as u64)? {
            if n != 1 {
                return Err(options.bad(
                    "nodes",
                    format!("{n}: PostgreSQL is a single server; its target has one node"),
                ));
            }
        }
        // The server lives on the first node; with hosts, the other hosts stay idle.
        let mut single = test.clone();
        single.nodes.truncate(1);
        single.target_options.remove("nodes");
        let cluster = Cluster::new(&single, &options, 1, &[STANDARD_PORT])?;
        assert_eq!(cluster.nodes.len(), 1, "one server");
        let server = cluster.nodes[0].clone();
        let bin_dir = options
            .string("bin_dir")?
            .unwrap_or_else(|| BIN_DIR.to_string());
        if !bin_dir.starts_with('/') {
            return Err(options.bad("bin_dir", format!("{bin_dir:?} is not an absolute path")));
        }
        let ready_timeout_ms = options
            .u64_in("ready_timeout_ms", 1, 3_600_000)?
            .unwrap_or(READY_TIMEOUT_MS);
        let bank = match test.workload.as_str() {
            "bank" => Some(Bank::from_test(test).map_err(|why| TargetError::BadOption {
                target: "postgres".into(),
                option: "the bank workload's".into(),
                why,
            })?),
            _ => None,
        };
        Ok(PostgresDb {
            cluster,
            server,
            bin_dir: bin_dir.trim_end_matches('/').to_string(),
            password: new_password(),
            ready_timeout: Duration::from_millis(ready_timeout_ms),
            max_connections: max_connections(test.concurrency),
            bank,
            prepared: Mutex::new(false),
            run_as: Mutex::new(None),
        })
    }

    /// The node the server runs on.
    pub fn server_node(&self) -> &str {
        &self.server
    }

    /// The bank this db sets up, if the workload is bank.
    pub fn bank(&self) -> Option<Bank> {
        self.bank
    }

    fn node_dir(&self) -> String {
        self.cluster.node_dir(&self.server)
    }

    /// The server's data directory (`initdb`'s), on its node.
    pub fn data_dir(&self) -> String {
        format!("{}/data", self.node_dir())
    }

    /// The server's log, on its node.
    pub fn log_path(&self) -> String {
        format!("{}/postgres.log", self.node_dir())
    }

    fn pwfile(&self) -> String {
        format!("{}/pwfile", self.node_dir())
    }

    fn program(&self, name: &str) -> String {
        format!("{}/{name}", self.bin_dir)
    }

    /// Where clients connect: `(host, port)` (locally known after the first setup chose the
    /// port).
    pub fn server_addr(&self) -> Result<(String, u16), HarnessError> {
        let endpoint = self.cluster.endpoint(&self.server)?;
        Ok((endpoint.host.clone(), endpoint.ports[0]))
    }

    /// The connection settings of a client of database `dbname`.
    pub fn client_config(&self, dbname: &str) -> Result<tokio_postgres::Config, HarnessError> {
        let (host, port) = self.server_addr()?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&host)
            .port(port)
            .user(DB_USER)
            .password(self.password.as_bytes())
            .dbname(dbname)
            .application_name("faultline")
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS));
        Ok(config)
    }

    async fn run_as(&self, remote: &dyn Remote) -> Result<RunAs, HarnessError> {
        if let Some(run_as) = *self.run_as.lock().expect("run_as lock") {
            return Ok(run_as);
        }
        let out = daemon::run(remote, &Command::new("id", &["-u"])).await?;
        let run_as = if String::from_utf8_lossy(&out.stdout).trim() == "0" {
            RunAs::Postgres
        } else {
            RunAs::Itself
        };
        *self.run_as.lock().expect("run_as lock") = Some(run_as);
        Ok(run_as)
    }

    /// `program args` as the server's OS user.
    async fn as_server_user(
        &self,
        remote: &dyn Remote,
        program: &str,
        args: &[&str],
    ) -> Result<Command, HarnessError> {
        Ok(match self.run_as(remote).await? {
            RunAs::Postgres => {
                let mut all = vec!["-u", OS_USER, "--", program];
                all.extend_from_slice(args);
                Command::new("runuser", &all)
            }
            RunAs::Itself => Command::new(program, args),
        })
    }

    /// Writes (or with `append`, appends) `bytes` to `path` as the server's OS user, so the
    /// server owns what it reads; `umask 077` keeps the password file private.
    async fn write_as_server_user(
        &self,
        remote: &dyn Remote,
        path: &str,
        bytes: &[u8],
        append: bool,
    ) -> Result<(), HarnessError> {
        let script = if append {
            r#"umask 077; cat >> "$1""#
        } else {
            r#"umask 077; cat > "$1""#
        };
        let mut command = self
            .as_server_user(remote, "sh", &["-c", script, "sh", path])
            .await?;
        command.stdin = Some(bytes.to_vec());
        daemon::run(remote, &command).await.map(|_| ())
    }

    /// Runs [`SIGNAL_SCRIPT`] with `verb`; its output.
    async fn signal_script(
        &self,
        remote: &dyn Remote,
        verb: &str,
    ) -> Result<faultline_core::remote::ExecOutput, HarnessError> {
        let data = self.data_dir();
        remote
            .exec(&Command::new(
                "sh",
                &["-c", SIGNAL_SCRIPT, "postgres", verb, &data],
            ))
            .await
    }

    /// The postmaster's pid, if the server runs.
    pub async fn postmaster_pid(&self, remote: &dyn Remote) -> Result<Option<u32>, HarnessError> {
        let out = self.signal_script(remote, "pid").await?;
        if !out.success() {
            return Err(script_error(remote, "pid", &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse().ok())
    }

    /// SIGKILL of every process of the server, then a bounded wait until the postmaster is
    /// gone (a zombie counts as gone). Idempotent.
    async fn crash(&self, remote: &dyn Remote) -> Result<(), HarnessError> {
        let out = self.signal_script(remote, "kill").await?;
        if !out.success() {
            return Err(script_error(remote, "kill", &out));
        }
        let Ok(pid) = String::from_utf8_lossy(&out.stdout).trim().parse::<u32>() else {
            return Ok(()); // Nothing ran.
        };
        let deadline = Instant::now() + Duration::from_millis(KILL_WAIT_MS);
        while daemon::alive(remote, pid).await? {
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("on {}: postmaster {pid} dying after SIGKILL", remote.node()),
                    limit_ms: KILL_WAIT_MS,
                });
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        Ok(())
    }

    /// Removes a dead server's lock file and shared-memory segment, waiting (bounded) for its
    /// last processes to detach.
    async fn forget(&self, remote: &dyn Remote, phase: &'static str) -> Result<(), HarnessError> {
        let deadline = Instant::now() + Duration::from_millis(FORGET_WAIT_MS);
        loop {
            let out = self.signal_script(remote, "forget").await?;
            match out.status {
                Some(0) => return Ok(()),
                Some(3) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                }
                _ => {
                    return Err(db_error(
                        remote.node(),
                        phase,
                        format!(
                            "cannot forget the old server in {}: {}",
                            self.data_dir(),
                            String::from_utf8_lossy(&out.stderr).trim()
                        ),
                    ))
                }
            }
        }
    }

    /// Starts the server unless it runs (after forgetting a crashed one), and waits for
    /// `pg_ctl` to see it accept connections (crash recovery included).
    async fn start_server(
        &self,
        remote: &dyn Remote,
        phase: &'static str,
    ) -> Result<(), HarnessError> {
        if let Some(pid) = self.postmaster_pid(remote).await? {
            tracing::debug!(node = remote.node(), pid, "postgres already runs");
            return Ok(());
        }
        self.forget(remote, phase).await?;
        let data = self.data_dir();
        let log = self.log_path();
        let timeout = START_TIMEOUT_S.to_string();
        let command = self
            .as_server_user(
                remote,
                &self.program("pg_ctl"),
                &["-D", &data, "-l", &log, "-w", "-t", &timeout, "start"],
            )
            .await?;
        let out = remote.exec(&command).await?;
        if !out.success() {
            return Err(db_error(
                remote.node(),
                phase,
                format!(
                    "`{}` exited with {:?}: {} {}",
                    command.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stdout).trim(),
                    log_tail(remote, &log).await
                ),
            ));
        }
        let pid = self.postmaster_pid(remote).await?;
        tracing::info!(node = remote.node(), ?pid, "started postgres");
        Ok(())
    }

    /// Makes a fresh cluster in the data directory: `initdb`, the settings, the password.
    async fn init_cluster(&self, remote: &dyn Remote) -> Result<(), HarnessError> {
        let node = remote.node().to_string();
        let (node_dir, data, pwfile) = (self.node_dir(), self.data_dir(), self.pwfile());
        self.crash(remote).await?;
        self.forget(remote, "setup").await?;
        daemon::run(remote, &Command::new("rm", &["-rf", &data, &pwfile])).await?;
        daemon::run(remote, &Command::new("mkdir", &["-p", &node_dir])).await?;
        if self.run_as(remote).await? == RunAs::Postgres {
            // The server writes its log and data here; the directory above stays ours.
            daemon::run(
                remote,
                &Command::new("chown", &[&format!("{OS_USER}:"), &node_dir]),
            )
            .await?;
            let reach = self
                .as_server_user(remote, "test", &["-w", &node_dir])
                .await?;
            if !remote.exec(&reach).await?.success() {
                return Err(db_error(
                    &node,
                    "setup",
                    format!(
                        "the {OS_USER} user cannot write {node_dir}: every directory above it \
                         must be searchable by {OS_USER} (store runs elsewhere, or set option \
                         data_dir)"
                    ),
                ));
            }
        }
        self.write_as_server_user(remote, &pwfile, self.password.as_bytes(), false)
            .await?;
        let pwfile_arg = format!("--pwfile={pwfile}");
        let initdb = self
            .as_server_user(
                remote,
                &self.program("initdb"),
                &[
                    "-D",
                    &data,
                    "-U",
                    DB_USER,
                    &pwfile_arg,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
            )
            .await?;
        let out = remote.exec(&initdb).await;
        // The password file is not needed past initdb, whatever it did.
        let removed = daemon::run(remote, &Command::new("rm", &["-f", &pwfile])).await;
        let out = out?;
        if !out.success() {
            return Err(db_error(
                &node,
                "setup",
                format!(
                    "`{}` exited with {:?}: {}",
                    initdb.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        removed?;
        let (host, port) = self.server_addr()?;
        let conf = server_conf(&host, port, self.max_connections);
        self.write_as_server_user(
            remote,
            &format!("{data}/faultline.conf"),
            conf.as_bytes(),
            false,
        )
        .await?;
        self.write_as_server_user(
            remote,
            &format!("{data}/postgresql.conf"),
            b"\ninclude 'faultline.conf'\n",
            true,
        )
        .await?;
        if !self.cluster.is_local() {
            self.write_as_server_user(
                remote,
                &format!("{data}/pg_hba.conf"),
                HBA_REMOTE_CLIENTS.as_bytes(),
                true,
            )
            .await?;
        }
        Ok(())
    }

    /// Connects to `dbname` from this machine, retrying until the server answers or
    /// `ready_timeout` passes; the connection is driven by a task that ends with the client.
    async fn connect_until_ready(
        &self,
        node: &str,
        dbname: &str,
    ) -> Result<tokio_postgres::Client, HarnessError> {
        let config = self.client_config(dbname)?;
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            let last = match config.connect(tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    return Ok(client);
                }
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(db_error(
                    node,
                    "setup",
                    format!(
                        "no connection to {dbname} after {:?}: {last}",
                        self.ready_timeout
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(READY_POLL_MS)).await;
        }
    }

    /// Database `faultline`, its tables, and the bank's accounts.
    async fn create_schema(&self, node: &str) -> Result<(), HarnessError> {
        let sql_error = |what: &str, e: tokio_postgres::Error| {
            db_error(node, "setup", format!("{what}: {}", client::describe(&e)))
        };
        let admin = self.connect_until_ready(node, "postgres").await?;
        let exists = admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
            .await
            .map_err(|e| sql_error("looking for the database", e))?;
        if exists.is_none() {
            admin
                .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
                .await
                .map_err(|e| sql_error("creating the database", e))?;
        }
        drop(admin);
        let client = self.connect_until_ready(node, DATABASE).await?;
        client
            .batch_execute(SCHEMA)
            .await
            .map_err(|e| sql_error("creating the tables", e))?;
        if let Some(bank) = self.bank {
            for account in 0..bank.accounts {
                let balance = bank.initial_balance(account);
                let account = account as i64;
                client
                    .execute(
                        "INSERT INTO accounts (id, balance) VALUES ($1, $2) \
                         ON CONFLICT (id) DO NOTHING",
                        &[&account, &balance],
                    )
                    .await
                    .map_err(|e| sql_error("opening the accounts", e))?;
            }
        }
        Ok(())
    }

    async fn setup_node(&self, node: &Node) -> Result<(), HarnessError> {
        if node.name != self.server {
            return Ok(());
        }
        let remote = &*node.remote;
        let first = !*self.prepared.lock().expect("prepared lock");
        if first {
            self.init_cluster(remote).await?;
        }
        self.start_server(remote, "setup").await?;
        if first {
            self.create_schema(&node.name).await?;
            *self.prepared.lock().expect("prepared lock") = true;
        } else {
            drop(self.connect_until_ready(&node.name, DATABASE).await?);
        }
        Ok(())
    }

    async fn teardown_node(&self, node: &Node) -> Result<(), HarnessError> {
        if node.name != self.server {
            return Ok(());
        }
        let remote = &*node.remote;
        self.crash(remote).await?;
        self.forget(remote, "teardown").await?;
        daemon::run(
            remote,
            &Command::new("rm", &["-rf", &self.data_dir(), &self.pwfile()]),
        )
        .await?;
        *self.prepared.lock().expect("prepared lock") = false;
        Ok(())
    }
}

/// A [`SIGNAL_SCRIPT`] run that failed.
fn script_error(
    remote: &dyn Remote,
    verb: &str,
    out: &faultline_core::remote::ExecOutput,
) -> HarnessError {
    HarnessError::Command {
        node: remote.node().to_string(),
        command: format!("sh -c <postgres signal script> {verb}"),
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

impl Db for PostgresDb {
    fn setup<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(self.setup_node(node))
    }

    fn teardown<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(self.teardown_node(node))
    }

    fn as_kill(&self) -> Option<&dyn Kill> {
        Some(self)
    }

    fn as_pause(&self) -> Option<&dyn Pause> {
        Some(self)
    }

    fn log_files(&self, _test: &Test, node: &Node) -> Vec<PathBuf> {
        if node.name == self.server {
            vec![PathBuf::from(self.log_path())]
        } else {
            Vec::new()
        }
    }
}

impl Kill for PostgresDb {
    fn kill<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            if node.name == self.server {
                self.crash(&*node.remote).await?;
                tracing::info!(node = %node.name, "killed postgres");
            }
            Ok(())
        })
    }

    fn start<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            if node.name == self.server {
                self.start_server(&*node.remote, "start").await?;
            }
            Ok(())
        })
    }
}

impl Pause for PostgresDb {
    fn pause<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            if node.name != self.server {
                return Ok(());
            }
            let out = self.signal_script(&*node.remote, "pause").await?;
            if out.success() {
                Ok(())
            } else {
                Err(script_error(&*node.remote, "pause", &out))
            }
        })
    }

    fn resume<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a Node,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            if node.name != self.server {
                return Ok(());
            }
            let out = self.signal_script(&*node.remote, "resume").await?;
            if out.success() {
                Ok(())
            } else {
                Err(script_error(&*node.remote, "resume", &out))
            }
        })
    }
}

/// The postgres target for `test`.
pub fn target(test: &Test) -> Result<Target, TargetError> {
    let options = Options::new("postgres", test, &OPTIONS)?;
    let lock_spec = match test.workload.as_str() {
        "lock" | "fenced-lock" => {
            Some(
                LockSpec::from_test(test).map_err(|why| TargetError::BadOption {
                    target: "postgres".into(),
                    option: "lock".into(),
                    why,
                })?,
            )
        }
        _ => None,
    };
    let model = DataModel::for_workload(&test.workload);
    let queue = test.workload == "queue";
    if model.is_none() && lock_spec.is_none() && !queue {
        return Err(TargetError::UnsupportedWorkload {
            target: "postgres".into(),
            workload: test.workload.clone(),
        });
    }
    if let Some(fault) = test
        .nemesis
        .iter()
        .find(|f| UNSUPPORTED_FAULTS.contains(&f.as_str()))
    {
        return Err(TargetError::UnsupportedFault {
            target: "postgres".into(),
            fault: fault.clone(),
            why: "PostgreSQL is one server and the clients run on the control node; network \
                  faults cut nodes off from each other, never from the control node, so they \
                  would not reach any client's connection (try pause or kill)"
                .into(),
        });
    }
    let isolation = match options.string("isolation")? {
        None => Isolation::Serializable,
        Some(text) => text
            .parse()
            .map_err(|why: String| options.bad("isolation", why))?,
    };
    let request_timeout_ms = options
        .u64_in("request_timeout_ms", 1, 3_600_000)?
        .unwrap_or_else(|| cluster::default_request_timeout_ms(test));
    let db = Arc::new(PostgresDb::from_test(test)?);
    let request_timeout = Duration::from_millis(request_timeout_ms);
    let client: Arc<dyn faultline_core::Client> = match (model, lock_spec) {
        _ if queue => Arc::new(queue::PostgresQueueClient::new(db.clone(), request_timeout)),
        (Some(model), _) => Arc::new(PostgresClient::new(
            db.clone(),
            model,
            isolation,
            request_timeout,
        )),
        (None, Some(spec)) => Arc::new(lock::PostgresLockClient::new(
            db.clone(),
            spec,
            request_timeout,
        )),
        (None, None) => unreachable!("refused above"),
    };
    Ok(Target {
        db: db.clone(),
        nodes: vec![db.server_node().to_string()],
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_listen_where_clients_connect() {
        let local = server_conf("127.0.0.1", 20_001, 120);
        assert!(
            local.contains("listen_addresses = '127.0.0.1'\n"),
            "{local}"
        );
        assert!(local.contains("port = 20001\n"));
        assert!(local.contains("unix_socket_directories = ''\n"));
        assert!(local.contains("max_connections = 120\n"));
        let remote = server_conf("10.88.0.11", 5432, 100);
        assert!(
            remote.contains("listen_addresses = '10.88.0.11'\n"),
            "{remote}"
        );
        assert_eq!(max_connections(5), MIN_CONNECTIONS);
        assert_eq!(max_connections(200), 420);
        assert_eq!(max_connections(1_024), MAX_CONNECTIONS);
    }

    #[test]
    fn one_server_on_the_first_node() {
        let mut test = Test::example("postgres", "register", 1);
        test.nodes = vec![];
        let target = target(&test).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(target.nodes, vec!["n1".to_string()]);
        assert!(target.db.as_kill().is_some() && target.db.as_pause().is_some());
        assert!(target.db.as_clock().is_none() && target.db.as_primary().is_none());

        let mut test = Test::example("postgres", "list-append", 1);
        test.nodes = vec!["n1".into(), "n2".into(), "n3".into()];
        for (i, node) in test.nodes.clone().iter().enumerate() {
            test.addresses
                .insert(node.clone(), format!("10.88.0.{}", 11 + i));
        }
        let db = PostgresDb::from_test(&test).unwrap();
        assert_eq!(db.server_node(), "n1");
        assert_eq!(
            db.server_addr().unwrap(),
            ("10.88.0.11".to_string(), STANDARD_PORT)
        );
        assert!(db.data_dir().starts_with("/tmp/faultline-postgres-"));
        assert!(db.data_dir().ends_with("/n1/data"));
        assert_eq!(super::target(&test).unwrap().nodes, vec!["n1".to_string()]);
    }

    #[test]
    fn options_are_checked() {
        let mut test = Test::example("postgres", "register", 1);
        test.target_options.insert("nodes".into(), json!(3));
        let Err(e) = target(&test) else {
            panic!("three nodes accepted")
        };
        assert!(e.to_string().contains("single server"), "{e}");

        let mut test = Test::example("postgres", "register", 1);
        test.target_options
            .insert("isolation".into(), json!("snapshot"));
        let Err(e) = target(&test) else {
            panic!("a bad isolation level accepted")
        };
        assert!(e.to_string().contains("read-committed"), "{e}");
        test.target_options
            .insert("isolation".into(), json!("repeatable-read"));
        assert!(target(&test).is_ok());

        let mut test = Test::example("postgres", "set", 1);
        assert!(matches!(
            target(&test),
            Err(TargetError::UnsupportedWorkload { .. })
        ));
        test.workload = "register".into();
        test.nemesis = vec!["pause".into(), "partition".into()];
        let Err(e) = target(&test) else {
            panic!("a partition accepted")
        };
        assert!(e.to_string().contains("control node"), "{e}");

        let mut test = Test::example("postgres", "bank", 1);
        test.workload_options.insert("accounts".into(), json!(4));
        test.workload_options.insert("total".into(), json!(10));
        let db = PostgresDb::from_test(&test).unwrap();
        assert_eq!(
            db.bank(),
            Some(Bank {
                accounts: 4,
                total: 10
            })
        );
        test.workload_options.insert("accounts".into(), json!(0));
        assert!(
            PostgresDb::from_test(&test).is_err(),
            "a bank without accounts"
        );
    }
}
