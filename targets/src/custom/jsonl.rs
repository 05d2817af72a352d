//! [`JsonLinesClient`]: a client program in any language, spoken to in JSON Lines over its
//! standard input and output.
//!
//! The program is started once per worker (once per [`Client::open`]) on this machine. For
//! each operation faultline writes one line and reads one line:
//!
//! ```text
//! -> {"id":1,"f":"write","key":3,"value":4}
//! <- {"id":1,"type":"ok"}
//! -> {"id":2,"f":"cas","key":3,"value":[4,1]}
//! <- {"id":2,"type":"fail","error":"compare-failed"}
//! ```
//!
//! `type` is `ok` (it happened; `value` is the result: the value read, or absent for the
//! operation's own value), `fail` (it certainly did not happen; `error` says why) or `info`
//! (unknown). Blank lines are skipped; anything else on stdout is a protocol error. The
//! program's stderr goes to the run's log.
//!
//! A freshly started program gets [`START_GRACE_MS`] more for its first answer. Whatever
//! faultline cannot read as the answer becomes `info` — the program may have sent the
//! request before it went wrong — and the program is replaced by a new process before the next
//! operation, since the old one may still act on the old request:
//! - no answer within the client timeout: `info`, error `timeout`;
//! - a line that is not a JSON object with this `id` and a known `type`: `info`, error
//!   `client-protocol: ...`;
//! - the program exits (or closes stdout, or will not take input): `info`, error
//!   `client-exited: ...`.
//!
//! ```
//! use std::time::Duration;
//! use faultline_core::remote::Command;
//! use faultline_core::{Client, Completion, Invocation, Test};
//! use faultline_targets::custom::jsonl::JsonLinesClient;
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! // A client that answers every operation `ok` with its own value, in 3 lines of Python.
//! let program = r#"
//! import json, sys
//! for line in sys.stdin:
//!     op = json.loads(line); print(json.dumps({"id": op["id"], "type": "ok"}), flush=True)
//! "#;
//! let command = Command::new("python3", &["-c", program]);
//! let mut client = JsonLinesClient::new("n1", command, std::env::temp_dir(), Duration::from_secs(5));
//! let test = Test::example("memory", "register", 1);
//! let op = Invocation { process: 0, f: "write".into(), key: Some(3.into()), value: 4.into() };
//! assert_eq!(client.invoke(&test, &op).await, Completion::Ok(4.into()));
//! client.close(&test).await.unwrap();
//! # });
//! ```
//!
//! Design decision: one program per worker and one operation at a time on it, rather than one
//! shared program with interleaved ids: a worker is one process of the history, so a program
//! that hangs or dies takes exactly one operation's outcome with it, and replacing it is the
//! same step as the interpreter's move to a new process after `info`.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::task::JoinHandle;

use faultline_core::remote::Command;
use faultline_core::{BoxFuture, Client, Completion, HarnessError, Invocation, Test};

/// How much longer than the client timeout a freshly started program may take to answer its
/// first operation: interpreters and virtual machines take a while to start, and a program
/// that is still starting must not be taken for one that hangs (the interpreter's op timeout
/// still bounds the wait).
pub const START_GRACE_MS: u64 = 2_000;
/// The longest line read from a client program.
pub const MAX_LINE_BYTES: u64 = 1 << 20;
/// How long a closed client program may take to exit after its stdin closed, before SIGKILL.
pub const EXIT_GRACE_MS: u64 = 100;
/// How long SIGKILL may take to end a client program.
pub const KILL_WAIT_MS: u64 = 2_000;
/// The most stderr lines of one client process copied into the run's log.
pub const MAX_STDERR_LINES: usize = 1_000;
/// How much of a bad line an error quotes.
const QUOTE_CHARS: usize = 200;

/// One running client program.
struct Running {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: JoinHandle<()>,
    /// A request was written and its answer not read (the invoke was cancelled or failed):
    /// the program may still answer it, so it cannot take another request.
    in_flight: bool,
}

/// A client program speaking JSON Lines (see the module documentation).
pub struct JsonLinesClient {
    node: String,
    command: Command,
    dir: PathBuf,
    timeout: Duration,
    running: Option<Running>,
    /// The running program has answered nothing yet (it may still be starting).
    fresh: bool,
    next_id: u64,
    /// How many processes this client has started (the first is 1).
    started: u64,
}

impl std::fmt::Debug for JsonLinesClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesClient")
            .field("node", &self.node)
            .field("command", &self.command.display())
            .field("pid", &self.pid())
            .finish()
    }
}

/// Why an exchange produced no answer: the error recorded with the `info`.
fn quote(line: &str) -> String {
    let mut quoted: String = line.chars().take(QUOTE_CHARS).collect();
    if quoted.len() < line.len() {
        quoted.push_str("...");
    }
    format!("{quoted:?}")
}

/// Reads what a program answered: the completion, or why the line is not an answer to `id`.
pub fn parse_completion(line: &str, id: u64, op: &Invocation) -> Result<Completion, String> {
    let reply: Value =
        serde_json::from_str(line).map_err(|_| format!("not JSON: {}", quote(line)))?;
    let Some(object) = reply.as_object() else {
        return Err(format!("not a JSON object: {}", quote(line)));
    };
    match object.get("id") {
        Some(got) if got.as_u64() == Some(id) => {}
        Some(got) => {
            return Err(format!(
                "answer to id {got}, expected {id}: {}",
                quote(line)
            ))
        }
        None => return Err(format!("no id: {}", quote(line))),
    }
    let error = || object.get("error").cloned().filter(|e| !e.is_null());
    match object.get("type").and_then(Value::as_str) {
        Some("ok") => Ok(Completion::Ok(match object.get("value") {
            Some(value) => value.clone(),
            // A read with no value read nothing: null, never written.
            None if op.f == "read" => Value::Null,
            None => op.value.clone(),
        })),
        Some("fail") => Ok(Completion::Fail(error().unwrap_or_else(|| json!("fail")))),
        Some("info") => Ok(Completion::Info(error().unwrap_or_else(|| json!("info")))),
        _ => Err(format!(
            "type must be \"ok\", \"fail\" or \"info\": {}",
            quote(line)
        )),
    }
}

impl JsonLinesClient {
    /// A client that runs `command` (in `dir`) for `node`, each answer awaited at most
    /// `timeout`. Nothing runs until the first operation or [`JsonLinesClient::start`].
    pub fn new(node: &str, command: Command, dir: PathBuf, timeout: Duration) -> JsonLinesClient {
        JsonLinesClient {
            node: node.to_string(),
            command,
            dir,
            timeout,
            running: None,
            fresh: false,
            next_id: 1,
            started: 0,
        }
    }

    /// The pid of the running program, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.pid)
    }

    /// How many processes this client has started so far.
    pub fn processes_started(&self) -> u64 {
        self.started
    }

    fn client_error(&self, why: String) -> HarnessError {
        HarnessError::Client {
            node: self.node.clone(),
            why,
        }
    }

    /// Starts the program unless it runs and can take a request.
    pub async fn start(&mut self) -> Result<(), HarnessError> {
        if self.running.as_ref().is_some_and(|r| !r.in_flight) {
            return Ok(());
        }
        self.stop().await;
        let mut child = tokio::process::Command::new(&self.command.program)
            .args(&self.command.args)
            .current_dir(&self.dir)
            .env(crate::orphans::MARKER, crate::orphans::marker())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                self.client_error(format!(
                    "starting the client program `{}` in {}: {e}",
                    self.command.display(),
                    self.dir.display()
                ))
            })?;
        let pid = child.id().unwrap_or(0);
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let node = self.node.clone();
        let stderr = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut copied = 0;
            while let Ok(Some(line)) = lines.next_line().await {
                copied += 1;
                if copied <= MAX_STDERR_LINES {
                    tracing::info!(node, pid, "client stderr: {}", line);
                } else if copied == MAX_STDERR_LINES + 1 {
                    tracing::info!(node, pid, "client stderr: further lines not copied");
                }
            }
        });
        self.started += 1;
        self.fresh = true;
        tracing::debug!(node = self.node, pid, "started client program");
        self.running = Some(Running {
            child,
            pid,
            stdin,
            stdout,
            stderr,
            in_flight: false,
        });
        Ok(())
    }

    /// Ends the program: closes its stdin, gives it [`EXIT_GRACE_MS`] to exit, then SIGKILL.
    pub async fn stop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        let Running {
            mut child,
            pid,
            stdin,
            stderr,
            ..
        } = running;
        drop(stdin);
        let grace = Duration::from_millis(EXIT_GRACE_MS);
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let _ = child.start_kill();
            if tokio::time::timeout(Duration::from_millis(KILL_WAIT_MS), child.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    node = self.node,
                    pid,
                    "client program did not die on SIGKILL"
                );
            }
        }
        // Its stderr ends with it; a grandchild holding the pipe must not keep the task.
        stderr.abort();
    }

    /// Why the program is gone, for the error of the `info`.
    fn exit_reason(&mut self, what: &str) -> String {
        let status = self
            .running
            .as_mut()
            .and_then(|r| r.child.try_wait().ok().flatten());
        match status {
            Some(status) => format!("client-exited: {what} ({status})"),
            None => format!("client-exited: {what}"),
        }
    }

    /// Sends one operation and reads its answer; `Err` is the error of an `info` after which
    /// the program must be replaced.
    async fn exchange(&mut self, op: &Invocation) -> Result<Completion, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = json!({
            "id": id,
            "f": op.f,
            "key": op.key.clone().unwrap_or(Value::Null),
            "value": op.value,
        })
        .to_string();
        line.push('\n');
        let running = self.running.as_mut().expect("started before an exchange");
        running.in_flight = true;
        let sent = async {
            running.stdin.write_all(line.as_bytes()).await?;
            running.stdin.flush().await
        };
        if let Err(e) = sent.await {
            return Err(self.exit_reason(&format!("writing the operation: {e}")));
        }
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            let read = (&mut running.stdout)
                .take(MAX_LINE_BYTES)
                .read_until(b'\n', &mut buffer)
                .await;
            match read {
                Err(e) => return Err(self.exit_reason(&format!("reading stdout: {e}"))),
                Ok(0) => return Err(self.exit_reason("stdout closed")),
                Ok(_) => {}
            }
            if buffer.last() != Some(&b'\n') {
                if buffer.len() as u64 >= MAX_LINE_BYTES {
                    return Err(format!(
                        "client-protocol: a line longer than {MAX_LINE_BYTES} bytes"
                    ));
                }
                return Err(self.exit_reason("stdout closed mid-line"));
            }
            let text = String::from_utf8_lossy(&buffer);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let completion =
                parse_completion(text, id, op).map_err(|why| format!("client-protocol: {why}"))?;
            running.in_flight = false;
            return Ok(completion);
        }
    }

    async fn call(&mut self, op: &Invocation) -> Completion {
        if let Err(e) = self.start().await {
            // Nothing was sent: the operation certainly did not happen.
            return Completion::fail(format!("client-start: {e}"));
        }
        let mut limit = self.timeout;
        if self.fresh {
            limit += Duration::from_millis(START_GRACE_MS);
        }
        let outcome = tokio::time::timeout(limit, self.exchange(op)).await;
        let why = match outcome {
            Ok(Ok(completion)) => {
                self.fresh = false;
                return completion;
            }
            Ok(Err(why)) => why,
            Err(_) => "timeout".to_string(),
        };
        tracing::warn!(
            node = self.node,
            pid = self.pid(),
            "client program: {why}; replacing it"
        );
        self.stop().await;
        Completion::info(why)
    }
}

impl Client for JsonLinesClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        _node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async move {
            let mut client = JsonLinesClient::new(
                &self.node,
                self.command.clone(),
                self.dir.clone(),
                self.timeout,
            );
            client.start().await?;
            Ok(Box::new(client) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(self.call(op))
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.stop().await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client program that misbehaves on request: the key of each operation says how.
    /// `pid` answers ok with its own pid, so a test sees when the process was replaced.
    const MISBEHAVING: &str = r#"
import json, os, sys, time
for line in sys.stdin:
    op = json.loads(line)
    how = op["key"]
    if how == "garbage":
        print("hello, this is not JSON", flush=True)
    elif how == "wrong-id":
        print(json.dumps({"id": op["id"] + 1, "type": "ok"}), flush=True)
    elif how == "die":
        sys.exit(3)
    elif how == "hang":
        time.sleep(60)
    elif how == "blank":
        print("", flush=True)
        print(json.dumps({"id": op["id"], "type": "ok", "value": os.getpid()}), flush=True)
    else:
        print(json.dumps({"id": op["id"], "type": "ok", "value": os.getpid()}), flush=True)
"#;

    fn misbehaving(timeout_ms: u64) -> JsonLinesClient {
        JsonLinesClient::new(
            "n1",
            Command::new("python3", &["-c", MISBEHAVING]),
            std::env::temp_dir(),
            Duration::from_millis(timeout_ms),
        )
    }

    fn keyed(how: &str) -> Invocation {
        Invocation {
            process: 0,
            f: "read".into(),
            key: Some(json!(how)),
            value: Value::Null,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// The pid the program reports, after a healthy exchange.
    async fn healthy_pid(client: &mut JsonLinesClient, test: &Test) -> u64 {
        match client.invoke(test, &keyed("pid")).await {
            Completion::Ok(pid) => pid.as_u64().expect("a pid"),
            other => panic!("a healthy exchange: {other:?}"),
        }
    }

    fn alive(pid: u64) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        !stat.is_empty() && !stat.contains(") Z ")
    }

    #[test]
    fn garbage_death_and_hangs_are_info_and_the_program_is_replaced() {
        runtime().block_on(async {
            let test = Test::example("memory", "register", 1);
            let mut client = misbehaving(1_000);
            let first = healthy_pid(&mut client, &test).await;
            assert_eq!(healthy_pid(&mut client, &test).await, first, "one program");
            // Blank lines are skipped.
            assert_eq!(
                client.invoke(&test, &keyed("blank")).await,
                Completion::Ok(json!(first))
            );
            let mut previous = first;
            for (how, error) in [
                ("garbage", "client-protocol: not JSON"),
                ("wrong-id", "client-protocol: answer to id"),
                ("die", "client-exited"),
                ("hang", "timeout"),
            ] {
                let started = std::time::Instant::now();
                let completion = client.invoke(&test, &keyed(how)).await;
                let Completion::Info(Value::String(why)) = &completion else {
                    panic!("{how}: expected info, got {completion:?}")
                };
                assert!(why.starts_with(error), "{how}: {why}");
                assert!(started.elapsed() < Duration::from_secs(5), "{how} bounded");
                assert!(client.pid().is_none(), "{how}: the program was stopped");
                assert!(!alive(previous), "{how}: pid {previous} is gone");
                let next = healthy_pid(&mut client, &test).await;
                assert_ne!(next, previous, "{how}: a new process answers");
                previous = next;
            }
            assert_eq!(client.processes_started(), 5);
            client.close(&test).await.unwrap();
            assert!(!alive(previous), "close ends the program");
        });
    }

    #[test]
    fn a_cancelled_exchange_is_never_answered_by_the_old_program() {
        runtime().block_on(async {
            let test = Test::example("memory", "register", 1);
            let mut client = misbehaving(10_000);
            let first = healthy_pid(&mut client, &test).await;
            // The interpreter's op timeout drops the invoke mid-exchange.
            let hang = keyed("hang");
            let cut = tokio::time::timeout(Duration::from_millis(200), client.invoke(&test, &hang));
            assert!(cut.await.is_err());
            let next = healthy_pid(&mut client, &test).await;
            assert_ne!(next, first, "the program that owed an answer was replaced");
            client.close(&test).await.unwrap();
        });
    }

    #[test]
    fn a_program_that_cannot_start_fails_open_clearly() {
        runtime().block_on(async {
            let test = Test::example("memory", "register", 1);
            let template = JsonLinesClient::new(
                "n2",
                Command::new("/nonexistent/client", &[]),
                std::env::temp_dir(),
                Duration::from_secs(1),
            );
            let Err(e) = template.open(&test, "n2").await else {
                panic!("opened a program that does not exist")
            };
            assert!(e.to_string().contains("/nonexistent/client"), "{e}");
        });
    }

    fn op(f: &str, value: Value) -> Invocation {
        Invocation {
            process: 0,
            f: f.into(),
            key: Some(json!(1)),
            value,
        }
    }

    #[test]
    fn answers_are_read_strictly() {
        let write = op("write", json!(3));
        assert_eq!(
            parse_completion(r#"{"id":4,"type":"ok"}"#, 4, &write),
            Ok(Completion::Ok(json!(3)))
        );
        let read = op("read", Value::Null);
        assert_eq!(
            parse_completion(r#"{"id":4,"type":"ok"}"#, 4, &read),
            Ok(Completion::Ok(Value::Null))
        );
        assert_eq!(
            parse_completion(r#"{"id":4,"type":"ok","value":2}"#, 4, &read),
            Ok(Completion::Ok(json!(2)))
        );
        assert_eq!(
            parse_completion(
                r#"{"id":4,"type":"fail","error":"compare-failed"}"#,
                4,
                &write
            ),
            Ok(Completion::fail("compare-failed"))
        );
        assert_eq!(
            parse_completion(r#"{"id":4,"type":"info"}"#, 4, &write),
            Ok(Completion::info("info"))
        );
        for (line, why) in [
            ("hello", "not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"type":"ok"}"#, "no id"),
            (r#"{"id":3,"type":"ok"}"#, "expected 4"),
            (r#"{"id":4,"type":"maybe"}"#, "type must be"),
        ] {
            let err = parse_completion(line, 4, &write).unwrap_err();
            assert!(err.contains(why), "{line}: {err}");
        }
        let long = "x".repeat(1_000);
        assert!(parse_completion(&long, 1, &write).unwrap_err().len() < 300);
    }
}
