//! The `ephemeral` workload on ZooKeeper (contract: [`faultline_core::ephemeral`]): an
//! ephemeral znode bound to the registrant's own session, whose pings keep it alive.
//!
//! - register: a new session with the session timeout = `ttl_ms` (ZooKeeper negotiates it
//!   within 2 to 20 ticks, 4 s to 40 s with this ensemble's 2 s tick, so the target refuses
//!   other TTLs), through a [`Relay`] of its own, then `create` of the ephemeral
//!   `/faultline/member-<name>`.
//! - stall: the relay cuts the session's connection (its sockets reset, so no buffered ping
//!   is sent later) and refuses new ones for the stall's length: no ping reaches the server
//!   after the cut (`quiet_after_ms` = 0). Then the relay lets the session reconnect, and the
//!   client asks for its znode: `alive` = the session survived and the znode is there
//!   (`SessionExpired` or no znode: `false`). No answer within the request timeout: `Info`.
//! - deregister: closes the session (its ephemeral znode goes with it).
//! - list: `list_children` of `/faultline` (with `sync` first), the `member-` ones, on the
//!   client's observer session; any failure is a `fail` (a list changes nothing).
//!
//! Design decision: the stall cuts the registrant's own TCP connection rather than pausing
//! the library's pings (it has no switch for that): to the server this is exactly a client
//! that went silent, and the client library's reconnection afterwards is what a real
//! application's would do.

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use zookeeper_client as zk;

use faultline_core::ephemeral::stall_request;
use faultline_core::watch::key_name;
use faultline_core::{BoxFuture, Client, Completion, HarnessError, Invocation, Test};

use crate::cluster::resolve;
use crate::zookeeper::{classify_error, connect, ZookeeperDb, ROOT};

/// The shortest session timeout this ensemble grants (2 ticks of 2 s).
pub const MIN_SESSION_TIMEOUT_MS: u64 = 4_000;
/// The longest (20 ticks).
pub const MAX_SESSION_TIMEOUT_MS: u64 = 40_000;
/// Registrations' znodes are `/faultline/member-<name>`.
pub const MEMBER_PREFIX: &str = "member-";

/// A TCP relay to one server that can cut its connections and refuse new ones.
pub struct Relay {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// The forwarding tasks of open connections.
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(server: SocketAddr) -> std::io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (cut, links) = (cut.clone(), links.clone());
            tokio::spawn(async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        reset(&inbound);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        let Ok(outbound) = TcpStream::connect(server).await else {
                            return;
                        };
                        // Whenever the link ends (a cut aborts this task), both sockets reset.
                        reset(&inbound);
                        reset(&outbound);
                        let (mut a, mut b) = (inbound, outbound);
                        let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                    });
                    links.lock().expect("relay links").push(task);
                }
            })
        };
        Ok(Relay {
            addr,
            cut,
            links,
            accept,
        })
    }

    /// Cuts every connection now and refuses new ones until [`Relay::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        // Aborting a link drops its sockets, which reset (see `reset`).
        for task in self.links.lock().expect("relay links").drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.links.lock().expect("relay links").drain(..) {
            task.abort();
        }
    }
}

/// `SO_LINGER` 0: closing the socket resets it and discards unsent bytes at once (it blocks
/// only with a positive linger, which is why tokio deprecates the call).
#[allow(deprecated)]
fn reset(stream: &TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}

/// One registration: its session through its relay.
struct Registration {
    name: String,
    session: zk::Client,
    relay: Relay,
}

/// An ephemeral-registration client of one ZooKeeper node (a template until opened).
pub struct ZookeeperEphemeralClient {
    db: Arc<ZookeeperDb>,
    request_timeout: Duration,
    addr: Option<String>,
    /// The observer's session, for lists.
    observer: Option<zk::Client>,
    registration: Option<Registration>,
}

impl ZookeeperEphemeralClient {
    pub fn new(db: Arc<ZookeeperDb>, request_timeout: Duration) -> Self {
        ZookeeperEphemeralClient {
            db,
            request_timeout,
            addr: None,
            observer: None,
            registration: None,
        }
    }

    fn member_path(name: &str) -> String {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{ROOT}/{MEMBER_PREFIX}{safe}")
    }

    async fn timed<T>(
        &self,
        request: impl std::future::Future<Output = Result<T, zk::Error>>,
    ) -> Result<T, zk::Error> {
        tokio::time::timeout(self.request_timeout, request)
            .await
            .unwrap_or(Err(zk::Error::Timeout))
    }

    async fn register(&mut self, name: String, ttl_ms: u64) -> Completion {
        if self.registration.is_some() {
            return Completion::fail("already-registered");
        }
        let Some(addr) = self.addr.clone() else {
            return Completion::fail("not-opened");
        };
        let server = match resolve(&addr).await {
            Ok(server) => server,
            Err(why) => return Completion::fail(why),
        };
        let relay = match Relay::start(server).await {
            Ok(relay) => relay,
            Err(e) => return Completion::fail(format!("relay: {e}")),
        };
        let relay_addr = relay.addr.to_string();
        let connecting = zk::Client::connector()
            .with_session_timeout(Duration::from_millis(ttl_ms))
            .with_fail_eagerly()
            .connect(&relay_addr);
        let session = match tokio::time::timeout(self.request_timeout, connecting).await {
            Ok(Ok(session)) => session,
            Ok(Err(e)) => return Completion::fail(format!("connect: {e}")),
            Err(_) => return Completion::fail("connect: timeout"),
        };
        let granted_ms = session.session_timeout().as_millis() as u64;
        if granted_ms != ttl_ms {
            return Completion::fail(format!(
                "the server granted a session timeout of {granted_ms} ms, not {ttl_ms}"
            ));
        }
        let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        let path = Self::member_path(&name);
        match self.timed(session.create(&path, b"", &options)).await {
            Ok(_) => {
                self.registration = Some(Registration {
                    name,
                    session,
                    relay,
                });
                Completion::Ok(json!({ "ttl_ms": ttl_ms }))
            }
            // Its session (and so any znode it made) ends when dropped here.
            Err(e) => classify_error(&e, true),
        }
    }

    async fn stall(&mut self, name: &str, ms: u64) -> Completion {
        let Some(r) = self.registration.as_ref().filter(|r| r.name == name) else {
            return Completion::fail("not-registered");
        };
        let started = Instant::now();
        r.relay.cut();
        tokio::time::sleep(Duration::from_millis(ms).saturating_sub(started.elapsed())).await;
        r.relay.restore();
        let path = Self::member_path(name);
        let alive = match self.timed(r.session.check_stat(&path)).await {
            Ok(stat) => Some(stat.is_some()),
            Err(zk::Error::SessionExpired) => Some(false),
            Err(_) => None,
        };
        match alive {
            Some(alive) => {
                if !alive {
                    self.registration = None;
                }
                Completion::Ok(json!({"quiet_after_ms": 0, "alive": alive}))
            }
            None => {
                self.registration = None;
                Completion::info("no answer after the stall")
            }
        }
    }

    async fn deregister(&mut self, name: &str) -> Completion {
        let Some(r) = self.registration.take().filter(|r| r.name == name) else {
            return Completion::fail("not-registered");
        };
        // Deleting the znode first makes the answer certain; closing the session then ends
        // it either way.
        let path = Self::member_path(name);
        let deleted = self.timed(r.session.delete(&path, None)).await;
        drop(r);
        match deleted {
            Ok(()) => Completion::Ok(Value::Null),
            Err(zk::Error::NoNode) | Err(zk::Error::SessionExpired) => {
                Completion::fail("not-registered")
            }
            Err(e) => classify_error(&e, true),
        }
    }

    async fn list(&mut self) -> Completion {
        let session = match &self.observer {
            Some(session)
                if !matches!(
                    session.state(),
                    zk::SessionState::Expired | zk::SessionState::Closed
                ) =>
            {
                session.clone()
            }
            _ => {
                let Some(addr) = self.addr.clone() else {
                    return Completion::fail("not-opened");
                };
                match connect(&addr, self.request_timeout).await {
                    Ok(session) => {
                        self.observer = Some(session.clone());
                        session
                    }
                    Err(why) => return Completion::fail(format!("connect: {why}")),
                }
            }
        };
        if let Err(e) = self.timed(session.sync(ROOT)).await {
            return Completion::fail(e.to_string());
        }
        match self.timed(session.list_children(ROOT)).await {
            Ok(children) => {
                let mut names: Vec<&str> = children
                    .iter()
                    .filter_map(|c| c.strip_prefix(MEMBER_PREFIX))
                    .collect();
                names.sort();
                Completion::Ok(json!(names))
            }
            Err(e) => Completion::fail(e.to_string()),
        }
    }
}

impl Client for ZookeeperEphemeralClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async move {
            let addr = self
                .db
                .client_addr(node)
                .map_err(|e| HarnessError::Client {
                    node: node.to_string(),
                    why: e.to_string(),
                })?;
            Ok(Box::new(ZookeeperEphemeralClient {
                db: self.db.clone(),
                request_timeout: self.request_timeout,
                addr: Some(addr),
                observer: None,
                registration: None,
            }) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let name = key_name(op.key.as_ref());
            match op.f.as_str() {
                "register" => match op.value.get("ttl_ms").and_then(Value::as_u64) {
                    Some(ttl_ms) => self.register(name, ttl_ms).await,
                    None => Completion::fail("bad-request: register takes {\"ttl_ms\": T}"),
                },
                "stall" => match stall_request(&op.value) {
                    Ok(ms) => self.stall(&name, ms).await,
                    Err(why) => Completion::fail(format!("bad-request: {why}")),
                },
                "deregister" => self.deregister(&name).await,
                "list" => self.list().await,
                f => Completion::fail(format!("unsupported: {f} in the ephemeral workload")),
            }
        })
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            // Dropping the sessions closes them; the registration's znode goes with its own.
            self.registration = None;
            self.observer = None;
            Ok(())
        })
    }
}
