//! [`SshRemote`]: the [`Remote`] for lab hosts and real machines, over SSH.
//!
//! One session per node is opened on first use and kept (an exec on a kept session costs
//! ~0.14 s in the lab against ~0.34 s for a new `ssh` process), behind a mutex, so commands to
//! one node run one at a time while nodes proceed in parallel. libssh2 (the `ssh2` crate) is
//! blocking, so every call runs on tokio's blocking pool.
//!
//! ```no_run
//! # async fn f() -> Result<(), faultline_core::HarnessError> {
//! use faultline_core::remote::Command;
//! use faultline_core::Remote;
//! use faultline_targets::ssh::{SshConfig, SshRemote};
//! let config = SshConfig::new("root", "/var/lib/faultline/labs/default/id_ed25519");
//! let n1 = SshRemote::new("n1", "10.88.1.11", config);
//! let out = n1.exec(&Command::new("hostname", &[])).await?;
//! assert_eq!(out.stdout, b"n1\n");
//! # Ok(()) }
//! ```
//!
//! Design decisions:
//! - **Retries on connect only.** Opening the TCP connection, the handshake and authentication
//!   are retried (bounded, with backoff); a command is never re-sent once it may have started,
//!   because running `kill` or a write twice could change what the history means. When a kept
//!   session turns out dead *before* the command is sent (opening the channel fails), the
//!   remote reconnects once and sends it on the new session: nothing ran yet. Any failure
//!   after the command was sent drops the session (the next call reconnects) and is an `Err`:
//!   its outcome is unknown.
//! - **Commands are one shell line** built from the program and its arguments with POSIX
//!   single-quote escaping ([`shell_quote`]), done here once so callers never quote. The
//!   remote user's login shell must be a POSIX shell (sh, bash, dash, zsh).
//! - **Host keys**: with `strict_host_key_checking`, the server's key must be in the
//!   `known_hosts` file (the lab writes one for its hosts); without it any key is accepted.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssh2::{CheckResult, KnownHostFileKind, OpenFlags, OpenType, Session};

use faultline_core::remote::{Command, ExecOutput, Remote, Signal};
use faultline_core::{BoxFuture, HarnessError};

use crate::local::signal_name;

/// How long one TCP connect (and the handshake and authentication after it) may take.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// How many times connecting is tried before giving up.
pub const CONNECT_ATTEMPTS: u32 = 5;
/// The pause after the first failed connect; it doubles after each further failure.
pub const CONNECT_BACKOFF_FIRST_MS: u64 = 100;
/// The longest pause between two connect attempts.
pub const CONNECT_BACKOFF_MAX_MS: u64 = 2_000;
/// After connecting failed every attempt (about 50 s against a host that accepts TCP but
/// never answers), calls fail at once for this long instead of trying again: otherwise every
/// step of a teardown (heal the network, reset clocks, resume, tear down, fetch logs) waits
/// the whole retry again on a dead host, minutes in all.
pub const UNREACHABLE_HOLD_MS: u64 = 60_000;
/// The longest a command may run before the remote gives up on it (an `Err`; the command
/// may still be running on the node).
pub const COMMAND_TIMEOUT_MS: u64 = 600_000;
/// Bound on one SSH request that is not reading a command's output (opening a channel,
/// sending a request, one SFTP read or write): past it the session is considered lost.
pub const REQUEST_TIMEOUT_MS: u32 = 30_000;
/// While a command runs, its stdout and stderr are read in turns, each wait bounded by this,
/// so that neither stream fills its window while the other is waited on.
const STREAM_POLL_MS: u32 = 50;

/// How to reach nodes over SSH: the same for every node of a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    pub username: String,
    /// The TCP port of sshd.
    pub port: u16,
    /// The private key file (OpenSSH or PEM format, no passphrase).
    pub private_key: PathBuf,
    /// Refuse a host whose key is not in `known_hosts` (or differs from it).
    pub strict_host_key_checking: bool,
    /// The known-hosts file; `None` = `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    pub connect_timeout_ms: u64,
    pub connect_attempts: u32,
    pub command_timeout_ms: u64,
}

impl SshConfig {
    /// Port 22, no host-key checking, the default limits.
    pub fn new(username: &str, private_key: impl Into<PathBuf>) -> SshConfig {
        SshConfig {
            username: username.to_string(),
            port: 22,
            private_key: private_key.into(),
            strict_host_key_checking: false,
            known_hosts: None,
            connect_timeout_ms: CONNECT_TIMEOUT_MS,
            connect_attempts: CONNECT_ATTEMPTS,
            command_timeout_ms: COMMAND_TIMEOUT_MS,
        }
    }

    /// The known-hosts file strict checking reads.
    pub fn known_hosts_path(&self) -> PathBuf {
        match &self.known_hosts {
            Some(path) => path.clone(),
            None => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                Path::new(&home).join(".ssh").join("known_hosts")
            }
        }
    }
}

/// Runs commands and moves files on one node over a kept SSH session.
pub struct SshRemote {
    node: String,
    /// The address or host name sshd listens on.
    host: String,
    config: Arc<SshConfig>,
    /// The kept session; `None` before the first call and after a session was lost.
    session: Arc<Mutex<Option<Session>>>,
    /// When connecting last failed every attempt, and why (see [`UNREACHABLE_HOLD_MS`]).
    unreachable: Arc<Mutex<Option<(Instant, String)>>>,
}

impl std::fmt::Debug for SshRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshRemote")
            .field("node", &self.node)
            .field("host", &self.host)
            .field("config", &self.config)
            .finish()
    }
}

impl SshRemote {
    /// A remote for `node` at `host`. Nothing is connected until the first call.
    pub fn new(node: &str, host: &str, config: SshConfig) -> SshRemote {
        SshRemote {
            node: node.to_string(),
            host: host.to_string(),
            config: Arc::new(config),
            session: Arc::new(Mutex::new(None)),
            unreachable: Arc::new(Mutex::new(None)),
        }
    }

    /// The address or host name this remote connects to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Runs `work` with this node's session slot on tokio's blocking pool.
    async fn with_session<T, F>(&self, what: String, work: F) -> Result<T, HarnessError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Link) -> Result<T, HarnessError> + Send + 'static,
    {
        // The blocking call outlives this future when the caller gives up (a timeout drops
        // it): the guard tells the call, which then stops reading a command's output, or does
        // not start at all if it still waits for the session, so that it does not hold the
        // node's session (and run a command nobody waits for) long after.
        struct Abandon(Arc<AtomicBool>);
        impl Drop for Abandon {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let abandoned = Arc::new(AtomicBool::new(false));
        let _guard = Abandon(abandoned.clone());
        let mut link = Link {
            node: self.node.clone(),
            host: self.host.clone(),
            config: self.config.clone(),
            slot: self.session.clone(),
            unreachable: self.unreachable.clone(),
            abandoned,
        };
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || work(&mut link))
            .await
            .map_err(|e| HarnessError::Command {
                node,
                command: what,
                status: None,
                stderr: format!("the SSH task failed: {e}"),
            })?
    }
}

/// What a blocking call needs: where to connect, and the slot of the kept session.
struct Link {
    node: String,
    host: String,
    config: Arc<SshConfig>,
    slot: Arc<Mutex<Option<Session>>>,
    unreachable: Arc<Mutex<Option<(Instant, String)>>>,
    /// Set when the caller stopped waiting for this call.
    abandoned: Arc<AtomicBool>,
}

/// How one call on a session failed.
enum Failure {
    /// Nothing was sent yet (opening a channel failed): safe to try on a fresh session.
    BeforeStart(String),
    /// The session broke after the request was sent: its outcome is unknown.
    Lost(String),
    /// The server answered with an error (no such file, permission denied): the session is
    /// fine.
    Answer(String),
    /// A bound was reached.
    Timeout { limit_ms: u64 },
}

/// Why one connect attempt failed.
enum Refused {
    /// The connection itself failed (refused, timed out, reset during the handshake).
    Retry(String),
    /// The server was reached and said no (host key, authentication): trying again will not
    /// help.
    Final(String),
}

impl Link {
    fn error(&self, command: &str, why: impl std::fmt::Display) -> HarnessError {
        HarnessError::Command {
            node: self.node.clone(),
            command: command.to_string(),
            status: None,
            stderr: why.to_string(),
        }
    }

    /// `user@host:port`, for errors.
    fn target(&self) -> String {
        format!(
            "{}@{}:{}",
            self.config.username, self.host, self.config.port
        )
    }

    /// Runs `work` on the kept session, connecting first when there is none. When a kept
    /// session fails before anything was sent, `work` runs once more on a fresh session.
    /// After any other failure the session is dropped, so the next call reconnects.
    fn run<T>(
        &self,
        what: &str,
        mut work: impl FnMut(&Session) -> Result<T, Failure>,
    ) -> Result<T, HarnessError> {
        // A panic while the lock was held leaves a session in an unknown state: drop it.
        let mut slot = self.slot.lock().unwrap_or_else(|poisoned| {
            let mut slot = poisoned.into_inner();
            *slot = None;
            slot
        });
        if self.abandoned.load(Ordering::SeqCst) {
            // The caller gave up while this call waited for the session: nothing was sent.
            return Err(self.error(what, "not started: the caller stopped waiting for it"));
        }
        let kept = slot.is_some();
        if !kept {
            *slot = Some(self.connect()?);
        }
        let mut result = work(slot.as_ref().expect("connected above"));
        if let (Err(Failure::BeforeStart(why)), true) = (&result, kept) {
            tracing::debug!(
                "ssh to {}: the kept session is gone ({why}); reconnecting",
                self.node
            );
            *slot = None;
            *slot = Some(self.connect()?);
            result = work(slot.as_ref().expect("connected above"));
        }
        result.map_err(|failure| {
            if !matches!(failure, Failure::Answer(_)) {
                *slot = None;
            }
            match failure {
                Failure::BeforeStart(why) => self.error(what, format!("SSH: {why}")),
                Failure::Lost(why) => self.error(
                    what,
                    format!("SSH session lost; the outcome is unknown: {why}"),
                ),
                Failure::Answer(why) => self.error(what, why),
                Failure::Timeout { limit_ms } => HarnessError::Timeout {
                    what: format!("on {}: `{what}`", self.node),
                    limit_ms,
                },
            }
        })
    }

    /// Connects, retrying (bounded, with backoff) failures of the connection itself; a
    /// refused host key or private key is final.
    fn connect(&self) -> Result<Session, HarnessError> {
        let mut unreachable = self
            .unreachable
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((when, why)) = unreachable.as_ref() {
            let since = when.elapsed();
            if since < Duration::from_millis(UNREACHABLE_HOLD_MS) {
                return Err(self.error(
                    &self.target(),
                    format!(
                        "not tried again within {UNREACHABLE_HOLD_MS} ms of a failed connect \
                         ({:.1} s ago): {why}",
                        since.as_secs_f64()
                    ),
                ));
            }
        }
        let attempts = self.config.connect_attempts.max(1);
        let mut backoff = Duration::from_millis(CONNECT_BACKOFF_FIRST_MS);
        let mut attempt = 1;
        loop {
            match self.connect_once() {
                Ok(session) => {
                    *unreachable = None;
                    return Ok(session);
                }
                Err(Refused::Final(why)) => return Err(self.error(&self.target(), why)),
                Err(Refused::Retry(why)) if attempt >= attempts => {
                    let why = format!("cannot connect after {attempts} attempts: {why}");
                    *unreachable = Some((Instant::now(), why.clone()));
                    return Err(self.error(&self.target(), why));
                }
                Err(Refused::Retry(why)) => {
                    tracing::debug!(
                        "ssh to {} ({}): attempt {attempt} failed: {why}",
                        self.node,
                        self.target()
                    );
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(CONNECT_BACKOFF_MAX_MS));
                    attempt += 1;
                }
            }
        }
    }

    fn connect_once(&self) -> Result<Session, Refused> {
        let limit = Duration::from_millis(self.config.connect_timeout_ms.max(1));
        let addresses: Vec<_> = (self.host.as_str(), self.config.port)
            .to_socket_addrs()
            .map_err(|e| Refused::Retry(format!("resolving {}: {e}", self.host)))?
            .collect();
        let mut last = format!("{} resolves to no address", self.host);
        let mut tcp = None;
        for address in addresses {
            match TcpStream::connect_timeout(&address, limit) {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = format!("connecting to {address}: {e}"),
            }
        }
        let tcp = tcp.ok_or(Refused::Retry(last))?;
        // Commands are small request/response exchanges: do not let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
        let mut session =
            Session::new().map_err(|e| Refused::Final(format!("creating a session: {e}")))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(limit.as_millis().min(u128::from(u32::MAX)) as u32);
        session
            .handshake()
            .map_err(|e| Refused::Retry(format!("SSH handshake: {e}")))?;
        self.check_host_key(&session).map_err(Refused::Final)?;
        session
            .userauth_pubkey_file(&self.config.username, None, &self.config.private_key, None)
            .map_err(|e| {
                Refused::Final(format!(
                    "authenticating as {} with {}: {e}",
                    self.config.username,
                    self.config.private_key.display()
                ))
            })?;
        if !session.authenticated() {
            return Err(Refused::Final(format!(
                "{} was not accepted for {}",
                self.config.private_key.display(),
                self.config.username
            )));
        }
        session.set_timeout(REQUEST_TIMEOUT_MS);
        Ok(session)
    }

    fn check_host_key(&self, session: &Session) -> Result<(), String> {
        if !self.config.strict_host_key_checking {
            return Ok(());
        }
        let (key, _) = session
            .host_key()
            .ok_or_else(|| "the server sent no host key".to_string())?;
        let path = self.config.known_hosts_path();
        let mut known = session
            .known_hosts()
            .map_err(|e| format!("reading known hosts: {e}"))?;
        known
            .read_file(&path, KnownHostFileKind::OpenSSH)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        match known.check_port(&self.host, self.config.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::NotFound => Err(format!(
                "strict host-key checking: {} is not in {}",
                self.host,
                path.display()
            )),
            CheckResult::Mismatch => Err(format!(
                "strict host-key checking: the host key of {} differs from the one in {} \
                 (another machine, or a re-installed one)",
                self.host,
                path.display()
            )),
            CheckResult::Failure => Err(format!(
                "strict host-key checking: cannot check {} against {}",
                self.host,
                path.display()
            )),
        }
    }

    /// Runs one command line and returns its status and output.
    fn exec(&self, line: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, HarnessError> {
        let limit_ms = self.config.command_timeout_ms;
        self.run(line, |session| {
            let mut channel = session
                .channel_session()
                .map_err(|e| Failure::BeforeStart(format!("opening a channel: {e}")))?;
            let lost =
                |what: &str, e: &dyn std::fmt::Display| Failure::Lost(format!("{what}: {e}"));
            channel.exec(line).map_err(|e| lost("starting it", &e))?;
            if let Some(bytes) = stdin {
                channel
                    .write_all(bytes)
                    .map_err(|e| lost("writing its input", &e))?;
            }
            channel
                .send_eof()
                .map_err(|e| lost("closing its input", &e))?;
            // Read stdout and stderr in turns with short waits, so that neither fills its
            // window (which would stall the command) while the other is waited on.
            session.set_timeout(STREAM_POLL_MS);
            let output = read_both(
                &mut channel,
                Duration::from_millis(limit_ms),
                &self.abandoned,
            );
            // On a failure the channel is dropped with the short wait still set: freeing an
            // open channel waits for the server to close it, which a running command does only
            // when it ends. The session is dropped after such a failure anyway.
            let (stdout, stderr) = output?;
            session.set_timeout(REQUEST_TIMEOUT_MS);
            channel
                .wait_close()
                .map_err(|e| lost("waiting for it to exit", &e))?;
            let code = channel
                .exit_status()
                .map_err(|e| lost("reading its exit status", &e))?;
            let killed = channel
                .exit_signal()
                .map_err(|e| lost("reading its exit signal", &e))?
                .exit_signal
                .is_some();
            Ok(ExecOutput {
                status: (!killed).then_some(code),
                stdout,
                stderr,
            })
        })
    }

    /// Copies a local file to `remote`: written under a temporary name, then renamed over the
    /// target, so a reader (or a running binary) never sees half a file.
    fn upload(&self, local: &Path, remote: &str) -> Result<(), HarnessError> {
        let what = format!("upload {} -> {remote}", local.display());
        let mut file = std::fs::File::open(local)
            .map_err(|e| self.error(&what, format!("opening {}: {e}", local.display())))?;
        let mode = file
            .metadata()
            .map_err(|e| self.error(&what, format!("reading {}: {e}", local.display())))?
            .permissions()
            .mode()
            & 0o7777;
        let temporary = format!("{remote}.faultline-upload-{}", std::process::id());
        self.run(&what, |session| {
            let sftp = session
                .sftp()
                .map_err(|e| Failure::BeforeStart(format!("starting SFTP: {e}")))?;
            // A second try (on a fresh session) starts the file over.
            std::io::Seek::rewind(&mut file)
                .map_err(|e| Failure::Answer(format!("rewinding {}: {e}", local.display())))?;
            let mut target = sftp
                .open_mode(
                    Path::new(&temporary),
                    OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE,
                    mode as i32,
                    OpenType::File,
                )
                .map_err(|e| Failure::Answer(format!("creating {temporary}: {e}")))?;
            std::io::copy(&mut file, &mut target)
                .map_err(|e| Failure::Lost(format!("writing {temporary}: {e}")))?;
            drop(target);
            // OpenSSH's SFTP server refuses to rename over an existing file: remove it first.
            match sftp.unlink(Path::new(remote)) {
                Ok(()) => {}
                Err(e) => {
                    let e = std::io::Error::from(e);
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(Failure::Answer(format!("replacing {remote}: {e}")));
                    }
                }
            }
            sftp.rename(Path::new(&temporary), Path::new(remote), None)
                .map_err(|e| Failure::Answer(format!("renaming {temporary} to {remote}: {e}")))
        })
    }

    /// Copies `remote` to a local file.
    fn download(&self, remote: &str, local: &Path) -> Result<(), HarnessError> {
        let what = format!("download {remote} -> {}", local.display());
        self.run(&what, |session| {
            let sftp = session
                .sftp()
                .map_err(|e| Failure::BeforeStart(format!("starting SFTP: {e}")))?;
            let mut source = sftp
                .open(Path::new(remote))
                .map_err(|e| Failure::Answer(format!("opening {remote}: {e}")))?;
            let mut target = std::fs::File::create(local)
                .map_err(|e| Failure::Answer(format!("creating {}: {e}", local.display())))?;
            std::io::copy(&mut source, &mut target)
                .map_err(|e| Failure::Lost(format!("reading {remote}: {e}")))?;
            Ok(())
        })
    }
}

/// Reads a command's stdout and stderr until both end, bounded by `limit`.
/// Stops early when `abandoned` is set: the session is then dropped (the command may still run).
fn read_both(
    channel: &mut ssh2::Channel,
    limit: Duration,
    abandoned: &AtomicBool,
) -> Result<(Vec<u8>, Vec<u8>), Failure> {
    let deadline = Instant::now() + limit;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut err_stream = channel.stderr();
    let (mut stdout_done, mut stderr_done) = (false, false);
    let mut buffer = vec![0u8; 32 * 1024];
    while !(stdout_done && stderr_done) {
        if Instant::now() >= deadline {
            return Err(Failure::Timeout {
                limit_ms: limit.as_millis() as u64,
            });
        }
        if abandoned.load(Ordering::SeqCst) {
            return Err(Failure::Lost(
                "the caller stopped waiting for it; the command may still run".into(),
            ));
        }
        if !stdout_done {
            match channel.read(&mut buffer) {
                Ok(0) => stdout_done = true,
                Ok(n) => stdout.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => return Err(Failure::Lost(format!("reading its output: {e}"))),
            }
        }
        if !stderr_done {
            match err_stream.read(&mut buffer) {
                Ok(0) => stderr_done = true,
                Ok(n) => stderr.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => return Err(Failure::Lost(format!("reading its errors: {e}"))),
            }
        }
    }
    Ok((stdout, stderr))
}

/// `s` as one word of a POSIX shell command line: unchanged when it holds only characters no
/// shell treats specially, otherwise in single quotes, each `'` written as `'\''` (inside
/// single quotes nothing else is special: not `$`, `` ` ``, `\`, `!` in sh, nor newlines).
pub fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-+=.,/:@%".contains(c);
    // A leading `=` is plain in sh but special in zsh; `~` and `#` are special only at the
    // start of a word; quoting them all costs nothing.
    if !s.is_empty() && s.chars().all(plain) && !s.starts_with('=') {
        return s.to_string();
    }
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('\'');
    for c in s.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// The shell line that runs `command`: each word quoted with [`shell_quote`]. A NUL byte cannot
/// be passed through a command line, so it is an error.
pub fn command_line(command: &Command) -> Result<String, String> {
    let words = std::iter::once(&command.program).chain(&command.args);
    let mut line = String::new();
    for word in words {
        if word.contains('\0') {
            return Err(format!("argument {word:?} contains a NUL byte"));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&shell_quote(word));
    }
    Ok(line)
}

impl Remote for SshRemote {
    fn node(&self) -> &str {
        &self.node
    }

    fn exec<'a>(&'a self, command: &'a Command) -> BoxFuture<'a, Result<ExecOutput, HarnessError>> {
        Box::pin(async move {
            let line = command_line(command).map_err(|why| HarnessError::Command {
                node: self.node.clone(),
                command: command.display(),
                status: None,
                stderr: why,
            })?;
            let stdin = command.stdin.clone();
            self.with_session(line.clone(), move |link| link.exec(&line, stdin.as_deref()))
                .await
        })
    }

    fn upload<'a>(
        &'a self,
        local: &'a Path,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        let (local, remote) = (local.to_path_buf(), remote.to_string());
        let what = format!("upload {} -> {remote}", local.display());
        Box::pin(self.with_session(what, move |link| link.upload(&local, &remote)))
    }

    fn download<'a>(
        &'a self,
        remote: &'a str,
        local: &'a Path,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        let (local, remote) = (local.to_path_buf(), remote.to_string());
        let what = format!("download {remote} -> {}", local.display());
        Box::pin(self.with_session(what, move |link| link.download(&remote, &local)))
    }

    fn signal<'a>(&'a self, pid: u32, signal: Signal) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            assert!(pid > 0, "pid 0 would signal the whole process group");
            let name = signal_name(signal);
            let kill = Command::new("kill", &[&format!("-{name}"), &pid.to_string()]);
            let out = self.exec(&kill).await?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            // Kill and pause are idempotent: a process that is gone already is fine.
            if out.success() || stderr.contains("No such process") {
                return Ok(());
            }
            Err(HarnessError::Command {
                node: self.node.clone(),
                command: kill.display(),
                status: out.status,
                stderr: stderr.trim().to_string(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings a shell would mangle if quoting were wrong.
    const NASTY: [&str; 16] = [
        "",
        " ",
        "plain",
        "two words",
        "it's",
        "'",
        "''",
        "\"double\"",
        "$HOME $(echo injected) `echo injected`",
        "a;b|c&d>e<f",
        "*?[a-z]{1,2}",
        "~root #not-a-comment",
        "back\\slash\\",
        "new\nline\ttab",
        "=equals -dash !bang",
        "ünïcødé ✓",
    ];

    #[test]
    fn quoted_words_reach_the_program_unchanged_through_a_real_shell() {
        for word in NASTY {
            let mut command = Command::new("printf", &["%s|"]);
            command.args.push(word.to_string());
            command.args.push(word.to_string());
            let line = command_line(&command).unwrap();
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&line)
                .output()
                .unwrap();
            assert!(out.status.success(), "{line}");
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                format!("{word}|{word}|"),
                "the line was {line:?}"
            );
        }
    }

    #[test]
    fn plain_words_stay_unquoted_and_the_rest_is_single_quoted() {
        assert_eq!(shell_quote("kill"), "kill");
        assert_eq!(shell_quote("-STOP"), "-STOP");
        assert_eq!(shell_quote("/var/lib/x.log"), "/var/lib/x.log");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("=x"), "'=x'");
        assert_eq!(shell_quote("$x"), "'$x'");
    }

    #[test]
    fn a_nul_byte_is_refused_not_truncated() {
        let command = Command::new("echo", &["a\0b"]);
        let Err(why) = command_line(&command) else {
            panic!("a NUL cannot pass through a command line")
        };
        assert!(why.contains("NUL"), "{why}");
    }

    #[test]
    fn connecting_to_a_closed_port_fails_after_bounded_retries() {
        let port = crate::local::free_port().unwrap().port();
        let mut config = SshConfig::new("root", "/nonexistent/key");
        config.port = port;
        config.connect_attempts = 2;
        let remote = SshRemote::new("n1", "127.0.0.1", config);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = Instant::now();
        let result = rt.block_on(remote.exec(&Command::new("true", &[])));
        let Err(HarnessError::Command { node, stderr, .. }) = result else {
            panic!("nothing listens there: {result:?}")
        };
        assert_eq!(node, "n1");
        assert!(stderr.contains("after 2 attempts"), "{stderr}");
        // One backoff between the two attempts, and no more.
        assert!(started.elapsed() < Duration::from_millis(CONNECT_BACKOFF_FIRST_MS * 10));
        // The next call does not try again for a while: it fails at once, saying why.
        let again = Instant::now();
        let result = rt.block_on(remote.exec(&Command::new("true", &[])));
        let Err(HarnessError::Command { stderr, .. }) = result else {
            panic!("still nothing there: {result:?}")
        };
        assert!(stderr.contains("not tried again"), "{stderr}");
        assert!(stderr.contains("after 2 attempts"), "{stderr}");
        assert!(again.elapsed() < Duration::from_millis(CONNECT_BACKOFF_FIRST_MS));
    }
}
