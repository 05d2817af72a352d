//! The server: a tokio shell around [`RawNode`] with a TCP peer
//! transport and an HTTP/1.1 + JSON client API. The `raftkv` binary is a thin CLI over
//! [`Server`]; tests start nodes in-process with the same code.
//!
//! # Shape
//! - one event loop per node ([`node`]), on a thread of its own, owns the Raft core, the
//!   [`FileStorage`] and the [`Kv`]: it ticks,
//!   steps peer messages, proposes, persists before it sends, applies, answers;
//! - the peer transport ([`transport`]): one outgoing connection per peer, bound to this node's
//!   own peer IP, length-prefixed JSON frames, reconnection with back-off;
//! - the client API ([`http`], [`api`]): a small strict HTTP/1.1 server, one task per
//!   connection, keep-alive.
//!
//! # Client API
//! Every body is JSON; every response says whether the outcome is known. `ok: true` = it
//! happened. `ok: false` comes with `error` and `definite`: `true` = it certainly did not
//! happen (record `fail`), `false` = unknown (record `info`).
//!
//! | request | success | errors |
//! |---|---|---|
//! | `GET /kv/{key}` | 200 `{"ok":true,"value":V}` (null: absent); linearizable (ReadIndex) | 503 not-leader / read-aborted, 504 timeout (all definite) |
//! | `GET /kv/{key}?stale=true` | 200, from this node's state, any node, possibly stale | |
//! | `PUT /kv/{key}`, body = JSON value | 200 `{"ok":true,"index":I}` | 503 not-leader (definite), 504 timeout / 500 leadership-lost (indefinite) |
//! | `POST /kv/{key}/cas`, body `{"expected":E,"new":N}` | 200 | 409 `{"error":"compare-failed","definite":true,"current":V}`, and as PUT |
//! | `DELETE /kv/{key}` | 200 | as PUT |
//! | `POST /txn`, body `[["r","x",null],["w","y",1],["append","z",3]]` | 200 `{"ok":true,"value":[["r","x",V],...]}` | as PUT; 409 txn-aborted (snapshot-isolation-txn bug, definite) |
//! | `GET /status` | 200 `{"ok":true,"id","term","leader","role","commit","applied","last_index","last_term",...,"wall_clock_ms"}` of this node | |
//!
//! Keys are the rest of the path, percent-decoded (`/kv/a%2Fb` is key `a/b`). Requests to a
//! follower are **forwarded to the leader** over the peer link and the leader's answer is
//! relayed (one hop; no redirect for the client to follow). With no known or reachable leader
//! the answer is 503 `{"error":"not-leader","definite":true,"leader":L}`. Other errors: 400
//! malformed HTTP or body, 404 unknown path, 405 wrong method, 413 body too large, 431 head
//! too large, 501 chunked body, 503 superseded (another entry committed at the proposal's
//! index, definite), 503 shutting-down. Each request has a deadline (`--request-timeout-ms`).
//!
//! # Bugs on this path
//! - `stale-read`: every GET answers from local state on any node, no ReadIndex.
//! - `lease-read`: the core's switch ([`crate::bug::Bug::LeaseRead`]): the leader answers GETs
//!   from local state while a quorum acknowledged it within the minimum election timeout,
//!   counted in the node's own ticks. The event loop skips the ticks it missed while the
//!   process was stopped (SIGSTOP, a VM pause), so a resumed leader trusts its pre-pause lease
//!   for up to an election timeout, even if a new leader was elected and took writes
//!   meanwhile. Without a lease it falls back to ReadIndex.
//! - `snapshot-isolation-txn`: `POST /txn` runs a read phase at a ReadIndex, then proposes
//!   only its writes with a write-write conflict check
//!   ([`Kv::txn_read_phase`](crate::kv::Kv::txn_read_phase)): two concurrent transactions that
//!   read each other's write set both commit (write skew).
//!
//! The core's own `stale-read` switch is left off in the server: the shell implements it
//! itself, as above (on any node, without asking the core).

pub mod api;
pub mod http;
pub mod node;
pub mod transport;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::bug::{Bug, Bugs};
use crate::kv::Kv;
use crate::raft::{Config, NodeId, RawNode};
use crate::storage::{FileStorage, Storage};
use crate::Error;
use api::{ApiResponse, ClientRequest};
use http::ReadOutcome;
use node::{Event, NodeLoop, NodeOptions};

/// Events waiting for the event loop; HTTP handlers wait when it is full.
const EVENT_QUEUE: usize = 8192;
/// Open client connections at most; the accept loop waits for one to close past this.
const MAX_CLIENT_CONNECTIONS: usize = 1024;
/// A keep-alive connection idle this long is closed.
const CLIENT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// How long an HTTP handler waits past a request's deadline for the event loop's answer
/// (which normally comes at the deadline) before answering by itself.
const ANSWER_GRACE_MS: u64 = 1_000;
/// How long a rejected connection is drained before it is closed.
const LINGER_MS: u64 = 1_000;

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub id: NodeId,
    /// Every member's peer address, this node's included.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    pub listen_client: SocketAddr,
    /// Where to accept peers; default: this node's entry in `peers`.
    pub listen_peer: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub bugs: Bugs,
    pub tick_ms: u64,
    /// Election timeout: uniformly `[election_ticks, 2 * election_ticks)` ticks.
    pub election_ticks: u32,
    pub heartbeat_ticks: u32,
    pub request_timeout_ms: u64,
    /// At most this many entries per AppendEntries (at least 1).
    pub max_append_entries: usize,
    /// Snapshot the state machine and compact the log every this many applied entries.
    pub snapshot_every: u64,
}

impl ServerConfig {
    /// Defaults: 10 ms ticks, elections after 150-300 ms, heartbeats every 30 ms, 2 s
    /// requests, a snapshot every 10,000 entries.
    pub fn new(
        id: NodeId,
        peers: BTreeMap<NodeId, SocketAddr>,
        listen_client: SocketAddr,
        data_dir: PathBuf,
    ) -> ServerConfig {
        ServerConfig {
            id,
            peers,
            listen_client,
            listen_peer: None,
            data_dir,
            bugs: Bugs::none(),
            tick_ms: 10,
            election_ticks: 15,
            heartbeat_ticks: 3,
            request_timeout_ms: 2_000,
            max_append_entries: 64,
            snapshot_every: 10_000,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let invalid = |why: String| Err(Error::InvalidConfig(why));
        if !self.peers.contains_key(&self.id) {
            return invalid(format!("--peers must include this node's id {}", self.id));
        }
        if self.tick_ms == 0
            || self.request_timeout_ms == 0
            || self.snapshot_every == 0
            || self.max_append_entries == 0
        {
            return invalid(
                "tick, request timeout, snapshot interval and entries per message must be \
                 positive"
                    .into(),
            );
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return invalid(format!(
                "need 0 < heartbeat ticks ({}) < election ticks ({})",
                self.heartbeat_ticks, self.election_ticks
            ));
        }
        Ok(())
    }
}

/// A running node.
#[derive(Debug)]
pub struct Server {
    id: NodeId,
    client_addr: SocketAddr,
    peer_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    stopped: Option<oneshot::Receiver<Result<(), Error>>>,
}

fn bind_error(addr: SocketAddr) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io {
        path: PathBuf::from(addr.to_string()),
        source,
    }
}

impl Server {
    /// Recovers storage, binds both listeners and starts the node. Call it inside a tokio
    /// runtime, which then runs the network tasks; the event loop runs on a thread of its own
    /// (its storage calls block on fsync).
    pub async fn start(config: ServerConfig) -> Result<Server, Error> {
        config.validate()?;
        let id = config.id;
        let own_peer_addr = config.peers[&id];
        let listen_peer = config.listen_peer.unwrap_or(own_peer_addr);
        let client_listener = TcpListener::bind(config.listen_client)
            .await
            .map_err(bind_error(config.listen_client))?;
        let peer_listener = TcpListener::bind(listen_peer)
            .await
            .map_err(bind_error(listen_peer))?;
        let client_addr = client_listener
            .local_addr()
            .map_err(bind_error(config.listen_client))?;
        let peer_addr = peer_listener
            .local_addr()
            .map_err(bind_error(listen_peer))?;

        let fsync = !config.bugs.contains(Bug::NoFsync);
        let storage = FileStorage::open(&config.data_dir, fsync)?;
        let recovered = storage.recover()?;
        let kv = Kv::restore(&recovered.snapshot.data)?;
        let members: Vec<NodeId> = config.peers.keys().copied().collect();
        let mut core_bugs = Bugs::none();
        for bug in Bug::ALL {
            // The shell implements stale-read itself (any node answers without the core).
            if config.bugs.contains(bug) && bug != Bug::StaleRead {
                core_bugs.insert(bug);
            }
        }
        let raft_config = Config {
            election_ticks: config.election_ticks,
            heartbeat_ticks: config.heartbeat_ticks,
            max_entries_per_message: config.max_append_entries,
            bugs: core_bugs,
            ..Config::new(id, members.clone())
        };
        let clock_seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        let seed = clock_seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        tracing::info!(
            id,
            term = recovered.hard_state.term,
            commit = recovered.hard_state.commit,
            snapshot_index = recovered.snapshot.index,
            entries = recovered.entries.len(),
            bugs = ?config.bugs,
            %client_addr,
            %peer_addr,
            "starting raftkv node"
        );
        let raft = RawNode::new(raft_config, recovered, seed);

        let (shutdown, shutdown_rx) = watch::channel(false);
        let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
        // Outgoing links leave from our own peer IP, so per-address rules cut them.
        let bind_ip = Some(own_peer_addr.ip()).filter(|ip| !ip.is_unspecified());
        let peers = config
            .peers
            .iter()
            .filter(|(&peer, _)| peer != id)
            .map(|(&peer, &addr)| {
                let link = transport::spawn_dialer(id, peer, addr, bind_ip, shutdown_rx.clone());
                (peer, link)
            })
            .collect();
        let options = NodeOptions {
            bugs: config.bugs.clone(),
            tick: Duration::from_millis(config.tick_ms),
            snapshot_every: config.snapshot_every,
        };
        let node = NodeLoop::new(raft, storage, kv, options, peers, seed);
        let (stopped_tx, stopped) = oneshot::channel();
        let loop_shutdown = shutdown_rx.clone();
        std::thread::Builder::new()
            .name(format!("raftkv-node-{id}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("a current-thread runtime builds");
                let result = runtime.block_on(node.run(events_rx, loop_shutdown));
                if let Err(e) = &result {
                    tracing::error!(id, "node stopped on a storage error: {e}");
                }
                let _ = stopped_tx.send(result);
            })
            .map_err(|source| Error::Io {
                path: PathBuf::from("raftkv-node thread"),
                source,
            })?;

        tokio::spawn(transport::accept_peers(
            id,
            members,
            peer_listener,
            events.clone(),
            shutdown_rx.clone(),
        ));
        let timeout = Duration::from_millis(config.request_timeout_ms);
        tokio::spawn(accept_clients(
            client_listener,
            events,
            timeout,
            shutdown_rx,
        ));
        Ok(Server {
            id,
            client_addr,
            peer_addr,
            shutdown,
            stopped: Some(stopped),
        })
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Where the client API listens (the real port when started on port 0).
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// Waits until the node stops by itself (a storage failure: `Err`) and returns how. Pending
    /// forever once it has returned or after [`Server::shutdown`].
    pub async fn stopped(&mut self) -> Result<(), Error> {
        let result = match self.stopped.as_mut() {
            Some(stopped) => stopped.await.unwrap_or(Ok(())),
            None => std::future::pending().await,
        };
        self.stopped = None;
        result
    }

    /// Stops accepting, answers what is open, flushes storage and waits for the node.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let _ = self.shutdown.send(true);
        match self.stopped.take() {
            Some(stopped) => stopped.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

async fn accept_clients(
    listener: TcpListener,
    events: mpsc::Sender<Event>,
    timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = std::sync::Arc::new(Semaphore::new(MAX_CLIENT_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("never closed"),
            _ = shutdown.changed() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let events = events.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    serve_client(stream, events, timeout, shutdown).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!("accepting a client connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn serve_client(
    stream: TcpStream,
    events: mpsc::Sender<Event>,
    timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    loop {
        let idle = Duration::from_millis(CLIENT_IDLE_TIMEOUT_MS);
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(idle, http::read_request(&mut reader, &mut writer)) => outcome,
            _ = shutdown.changed() => return,
        };
        let request = match outcome {
            Err(_) | Ok(ReadOutcome::Closed) | Ok(ReadOutcome::Io(_)) => return,
            Ok(ReadOutcome::Bad(error)) => {
                let response = ApiResponse::http_error(&error);
                let body = response.body.to_string();
                let _ = http::write_response(&mut writer, response.status, body.as_bytes(), false)
                    .await;
                lingering_close(reader, writer).await;
                return;
            }
            Ok(ReadOutcome::Request(request)) => request,
        };
        let keep_alive = request.keep_alive();
        let response = match api::route(&request) {
            Ok(client_request) => call(&events, client_request, timeout).await,
            Err(response) => response,
        };
        let body = response.body.to_string();
        if http::write_response(&mut writer, response.status, body.as_bytes(), keep_alive)
            .await
            .is_err()
            || !keep_alive
        {
            return;
        }
    }
}

/// Closes a connection whose request was rejected unread. Closing a socket with unread input
/// makes the kernel send a reset, which can destroy the response before the client reads it;
/// so send FIN first and drain (bounded in bytes and time) what the client still sends.
async fn lingering_close(
    mut reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    mut writer: tokio::net::tcp::OwnedWriteHalf,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = writer.shutdown().await;
    let drain = async {
        let mut buffer = [0u8; 4096];
        let mut drained = 0;
        while drained < http::MAX_BODY_BYTES {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(LINGER_MS), drain).await;
}

/// Hands a request to the event loop and waits for its answer.
async fn call(
    events: &mpsc::Sender<Event>,
    request: ClientRequest,
    timeout: Duration,
) -> ApiResponse {
    let read_only = request.is_read_only();
    let deadline = Instant::now() + timeout;
    let (reply, answer) = oneshot::channel();
    let event = Event::Client {
        request,
        reply,
        deadline,
    };
    match tokio::time::timeout(timeout, events.send(event)).await {
        Ok(Ok(())) => {}
        // The event never reached the loop: nothing happened.
        Ok(Err(_)) => return ApiResponse::error(503, "shutting-down", true),
        Err(_) => return ApiResponse::error(503, "overloaded", true),
    }
    match tokio::time::timeout(timeout + Duration::from_millis(ANSWER_GRACE_MS), answer).await {
        Ok(Ok(response)) => response,
        // The loop stopped with the request open.
        Ok(Err(_)) => ApiResponse::error(503, "shutting-down", read_only),
        Err(_) => ApiResponse::error(504, "timeout", read_only),
    }
}
