//! [`FaultProxy`]: a TCP fault proxy on every peer link of a cluster of local processes, and
//! its [`Net`]: partitions, latency and loss without root.
//!
//! Local nodes share one address (loopback), so iptables cannot tell their links apart, and
//! this kernel has no netem. Instead every ordered peer link `a -> b` gets its own listener on
//! `127.0.0.1:<port>` that forwards to `b`'s real peer address, and node `a` is configured to
//! reach `b` through that port. The proxy then decides, link by link, what gets through:
//!
//! - **Partition.** Link `a -> b` is cut when `b` drops traffic from `a` *or* `a` drops traffic
//!   from `b`: with real packet drops in either direction no TCP connection survives (its
//!   data or its acknowledgements are lost), so a one-way grudge cuts the connections `a`
//!   opened to `b` and those `b` opened to `a` alike. Cutting shuts down every open connection
//!   on the link at once and closes new ones right after accepting them. A stream is never
//!   forwarded in part after a cut (that would corrupt the receiver's framing): it ends.
//! - **Latency.** Every forwarded chunk is held `latency_ms` before it is written on; a link
//!   delayed on its own ([`Net::delay_links`]) holds what `from` sends to `to` that much
//!   longer (its answers, on `to`'s own link, are not touched). A cut drops what a delayed
//!   link still holds: it was never delivered.
//! - **Loss.** TCP never loses bytes, it retransmits them later; so a lost chunk is modelled
//!   as a delayed one: with probability `loss` a chunk is held one retransmission timeout more
//!   ([`RTO_MIN_MS`], doubling on each further loss of the same chunk up to [`RTO_MAX_MS`],
//!   at most [`MAX_RETRANSMITS`] times). Chunks keep their order: one held back holds back
//!   those behind it, as TCP's in-order delivery does.
//!
//! The proxy runs in the harness process (its tasks on the caller's tokio runtime). Its
//! random choices come from the seed given to [`FaultProxy::new`], one stream per connection
//! and direction.
//!
//! ```
//! use faultline_core::net::{complete_grudge, Net};
//! use faultline_core::Test;
//! use faultline_targets::proxy::FaultProxy;
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
//! let proxy = FaultProxy::new(vec!["n1".into(), "n2".into()], 7);
//! // n1 reaches n2 through `via` from now on.
//! let via = proxy.add_link("n1", "n2", server.local_addr().unwrap()).unwrap();
//! proxy.start_from("n1").await.unwrap();
//! let test = Test::example("raftkv", "register", 7);
//! proxy.partition(&test, &complete_grudge(&["n1"], &["n2"])).await.unwrap();
//! assert!(proxy.is_cut("n1", "n2"));
//! proxy.heal(&test).await.unwrap();
//! proxy.stop().await;
//! # let _ = via;
//! # });
//! ```
//!
//! Design decision: one listener per ordered link rather than one per node. A receiver cannot
//! tell which proxy port a connection came through, but the proxy can: the port *is* the
//! link, so no handshake has to be parsed and any TCP protocol can be proxied.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_core::net::{Grudge, Impairment, LinkDelays, Net};
use faultline_core::test::derive_seed;
use faultline_core::{BoxFuture, HarnessError, Test};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The first retransmission timeout a lost chunk waits (Linux's minimum RTO).
pub const RTO_MIN_MS: u64 = 200;
/// The longest one retransmission timeout grows to.
pub const RTO_MAX_MS: u64 = 3_200;
/// The most times one chunk is lost in a row; past it, it gets through (so `loss = 1` slows a
/// link to a crawl instead of freezing it; a cut is what `partition` is for).
pub const MAX_RETRANSMITS: u32 = 6;
/// The most bytes read and forwarded as one chunk.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks read but not yet delivered, per direction of a connection (back-pressure past it).
pub const QUEUE_CHUNKS: usize = 256;
/// How long the proxy waits to connect to a link's target.
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;

fn proxy_error(f: &str, why: impl Into<String>) -> HarnessError {
    HarnessError::Nemesis {
        f: f.to_string(),
        why: why.into(),
    }
}

/// The fault proxy of one cluster: a listener per ordered peer link.
///
/// # Correctness
/// - Once `partition` returns, every connection on a cut link is closed and new ones are
///   closed on accept, until the next `partition` or `heal`.
/// - Bytes of one direction of a connection are delivered in order, each at most once, and
///   never after a gap: a connection either forwards its whole stream or ends.
/// - `stop` (and dropping the proxy) aborts every task and closes every listener.
pub struct FaultProxy {
    nodes: BTreeSet<String>,
    seed: u64,
    impairment: Arc<Mutex<Impairment>>,
    links: Mutex<BTreeMap<(String, String), Link>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("nodes", &self.nodes)
            .field("seed", &self.seed)
            .finish()
    }
}

/// One ordered link `from -> to`.
struct Link {
    /// Where `from` connects.
    listen: SocketAddr,
    /// `to`'s real address.
    target: SocketAddr,
    /// The listener reserved by `add_link`, until the link starts.
    reserved: Option<std::net::TcpListener>,
    accept: Option<JoinHandle<()>>,
    state: Arc<Mutex<LinkState>>,
    /// This link's own extra delay, `from -> to` only (ms).
    delay_ms: Arc<AtomicU64>,
}

#[derive(Default)]
struct LinkState {
    cut: bool,
    /// The forwarding task of every open connection.
    connections: Vec<JoinHandle<()>>,
    /// Connections accepted so far: names each one's random stream.
    accepted: u64,
}

impl LinkState {
    /// Marks the link cut or not; when cut, hands back the open connections to end.
    fn set_cut(&mut self, cut: bool) -> Vec<JoinHandle<()>> {
        self.cut = cut;
        if cut {
            std::mem::take(&mut self.connections)
        } else {
            Vec::new()
        }
    }
}

/// Whether the link `from -> to` is cut under `grudge`: when `to` drops `from`'s traffic or
/// `from` drops `to`'s (a TCP connection needs both directions).
pub fn is_cut_by(grudge: &Grudge, from: &str, to: &str) -> bool {
    let drops = |node: &str, other: &str| grudge.get(node).is_some_and(|s| s.contains(other));
    drops(to, from) || drops(from, to)
}

/// How long one chunk is held under `impairment`: the latency, plus a retransmission timeout
/// for each time it is lost in a row (doubling, capped).
pub fn chunk_delay(impairment: &Impairment, rng: &mut impl Rng) -> Duration {
    let mut delay_ms = impairment.latency_ms;
    let mut rto_ms = RTO_MIN_MS;
    let mut losses = 0;
    while impairment.loss > 0.0 && losses < MAX_RETRANSMITS && rng.gen_bool(impairment.loss) {
        delay_ms += rto_ms;
        rto_ms = (rto_ms * 2).min(RTO_MAX_MS);
        losses += 1;
    }
    Duration::from_millis(delay_ms)
}

/// Aborts `tasks` and waits until each has ended (its sockets closed).
async fn end_all(tasks: Vec<JoinHandle<()>>) {
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
}

impl FaultProxy {
    /// A proxy for a cluster of `nodes`, drawing its random choices from `seed` (give it
    /// `test.seed_for("proxy")`). It has no links until [`FaultProxy::add_link`].
    pub fn new(nodes: Vec<String>, seed: u64) -> FaultProxy {
        FaultProxy {
            nodes: nodes.into_iter().collect(),
            seed,
            impairment: Arc::new(Mutex::new(Impairment::default())),
            links: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds the link `from -> to` forwarding to `target` and returns the address `from` must
    /// connect to instead of `target`. The port (below the ephemeral range, as
    /// [`crate::local::free_port`] picks) is bound at once, so nothing else can take it;
    /// connections are served from [`FaultProxy::start_from`] on. Adding a link twice returns
    /// the first address.
    pub fn add_link(
        &self,
        from: &str,
        to: &str,
        target: SocketAddr,
    ) -> Result<SocketAddr, HarnessError> {
        for node in [from, to] {
            if !self.nodes.contains(node) {
                return Err(proxy_error(
                    "proxy",
                    format!("{node} is not a node of this cluster"),
                ));
            }
        }
        assert_ne!(from, to, "a node has no link to itself");
        let mut links = self.links.lock().expect("links lock");
        let key = (from.to_string(), to.to_string());
        if let Some(link) = links.get(&key) {
            return Ok(link.listen);
        }
        let reserve = || -> std::io::Result<std::net::TcpListener> {
            // free_port releases the port it found; bind it again at once (retrying the rare
            // port that another process took in between).
            let mut last = None;
            for _ in 0..16 {
                let port = crate::local::free_port()?;
                match std::net::TcpListener::bind(port) {
                    Ok(listener) => return Ok(listener),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.expect("tried at least once"))
        };
        let listener = reserve()
            .map_err(|e| proxy_error("proxy", format!("a port for {from} -> {to}: {e}")))?;
        let listen = listener
            .local_addr()
            .map_err(|e| proxy_error("proxy", format!("{from} -> {to}: {e}")))?;
        links.insert(
            key,
            Link {
                listen,
                target,
                reserved: Some(listener),
                accept: None,
                state: Arc::new(Mutex::new(LinkState::default())),
                delay_ms: Arc::new(AtomicU64::new(0)),
            },
        );
        Ok(listen)
    }

    /// The address `from` connects to in order to reach `to`, if that link was added.
    pub fn listen_addr(&self, from: &str, to: &str) -> Option<SocketAddr> {
        self.links
            .lock()
            .expect("links lock")
            .get(&(from.to_string(), to.to_string()))
            .map(|l| l.listen)
    }

    /// Whether the link `from -> to` is cut right now.
    pub fn is_cut(&self, from: &str, to: &str) -> bool {
        self.links
            .lock()
            .expect("links lock")
            .get(&(from.to_string(), to.to_string()))
            .is_some_and(|l| l.state.lock().expect("link lock").cut)
    }

    /// Serves every link from `node` (call it inside a tokio runtime). Idempotent; a link
    /// stopped by [`FaultProxy::stop_from`] listens again on the same port.
    pub async fn start_from(&self, node: &str) -> Result<(), HarnessError> {
        let mut links = self.links.lock().expect("links lock");
        for ((from, to), link) in links.iter_mut() {
            if from != node || link.accept.is_some() {
                continue;
            }
            let listener = match link.reserved.take() {
                Some(reserved) => reserved
                    .set_nonblocking(true)
                    .and_then(|()| TcpListener::from_std(reserved)),
                // Stopped before: the port may have connections in TIME_WAIT, so rebind it
                // with SO_REUSEADDR.
                None => TcpSocket::new_v4()
                    .and_then(|s| s.set_reuseaddr(true).map(|()| s))
                    .and_then(|s| s.bind(link.listen).map(|()| s))
                    .and_then(|s| s.listen(1024)),
            }
            .map_err(|e| proxy_error("proxy", format!("listening for {from} -> {to}: {e}")))?;
            let context = LinkContext {
                name: format!("{from}->{to}"),
                target: link.target,
                seed: derive_seed(self.seed, &format!("{from}->{to}")),
                impairment: self.impairment.clone(),
                state: link.state.clone(),
                delay_ms: link.delay_ms.clone(),
            };
            link.accept = Some(tokio::spawn(accept_loop(listener, context)));
            tracing::debug!(from, to, listen = %link.listen, target = %link.target, "proxy link up");
        }
        Ok(())
    }

    /// Stops every link from `node`: its listener closes (a reserved port is released) and
    /// its connections end. Idempotent.
    pub async fn stop_from(&self, node: &str) {
        let tasks = {
            let mut links = self.links.lock().expect("links lock");
            let mut tasks = Vec::new();
            for ((from, _), link) in links.iter_mut() {
                if from == node {
                    // A link that never started holds its reserved port: release it too.
                    link.reserved = None;
                    tasks.extend(link.accept.take());
                    tasks.extend(std::mem::take(
                        &mut link.state.lock().expect("link lock").connections,
                    ));
                }
            }
            tasks
        };
        end_all(tasks).await;
    }

    /// Stops every link. Idempotent.
    pub async fn stop(&self) {
        for node in self.nodes.clone() {
            self.stop_from(&node).await;
        }
    }

    /// Cuts exactly the links `grudge` names (see [`is_cut_by`]) and restores the others.
    async fn apply(&self, grudge: &Grudge) {
        let tasks = {
            let links = self.links.lock().expect("links lock");
            let mut tasks = Vec::new();
            for ((from, to), link) in links.iter() {
                let cut = is_cut_by(grudge, from, to);
                tasks.extend(link.state.lock().expect("link lock").set_cut(cut));
            }
            tasks
        };
        end_all(tasks).await;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Without a runtime to wait on, abort is the most that can be done: each task ends
        // (closing its sockets) the next time the runtime polls it, or with the runtime.
        // Even after a panic elsewhere poisoned a lock: a panic here would abort.
        let links = self.links.get_mut().unwrap_or_else(|e| e.into_inner());
        for link in links.values_mut() {
            if let Some(accept) = link.accept.take() {
                accept.abort();
            }
            let mut state = link.state.lock().unwrap_or_else(|e| e.into_inner());
            for connection in state.connections.drain(..) {
                connection.abort();
            }
        }
    }
}

impl Net for FaultProxy {
    fn partition<'a>(
        &'a self,
        _test: &'a Test,
        grudge: &'a Grudge,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let named = grudge
                .iter()
                .flat_map(|(node, from)| std::iter::once(node).chain(from.iter()));
            for node in named {
                if !self.nodes.contains(node) {
                    return Err(proxy_error(
                        "partition",
                        format!(
                            "{node} is not a node of this cluster ({})",
                            self.nodes.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
            tracing::info!(?grudge, "proxy: partition");
            self.apply(grudge).await;
            Ok(())
        })
    }

    fn impair<'a>(
        &'a self,
        _test: &'a Test,
        impairment: &'a Impairment,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            if !(impairment.loss.is_finite() && (0.0..=1.0).contains(&impairment.loss)) {
                return Err(proxy_error(
                    "impair",
                    format!("loss must be in [0, 1], got {}", impairment.loss),
                ));
            }
            tracing::info!(
                loss = impairment.loss,
                latency_ms = impairment.latency_ms,
                "proxy: impair"
            );
            *self.impairment.lock().expect("impairment lock") = *impairment;
            Ok(())
        })
    }

    fn delay_links<'a>(
        &'a self,
        _test: &'a Test,
        delays: &'a LinkDelays,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let links = self.links.lock().expect("links lock");
            for (from, to) in delays
                .iter()
                .flat_map(|(f, to)| to.keys().map(move |t| (f, t)))
            {
                if !links.contains_key(&(from.clone(), to.clone())) {
                    return Err(proxy_error(
                        "delay-links",
                        format!("no link {from} -> {to} in this cluster"),
                    ));
                }
            }
            for ((from, to), link) in links.iter() {
                let ms = delays
                    .get(from)
                    .and_then(|t| t.get(to))
                    .copied()
                    .unwrap_or(0);
                link.delay_ms.store(ms, Ordering::Relaxed);
            }
            tracing::info!(?delays, "proxy: link delays");
            Ok(())
        })
    }

    fn heal<'a>(&'a self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            *self.impairment.lock().expect("impairment lock") = Impairment::default();
            for link in self.links.lock().expect("links lock").values() {
                link.delay_ms.store(0, Ordering::Relaxed);
            }
            self.apply(&Grudge::new()).await;
            tracing::info!("proxy: healed");
            Ok(())
        })
    }
}

/// What a link's tasks share.
#[derive(Clone)]
struct LinkContext {
    /// `from->to`, for logs.
    name: String,
    target: SocketAddr,
    seed: u64,
    impairment: Arc<Mutex<Impairment>>,
    state: Arc<Mutex<LinkState>>,
    delay_ms: Arc<AtomicU64>,
}

async fn accept_loop(listener: TcpListener, context: LinkContext) {
    loop {
        let inbound = match listener.accept().await {
            Ok((inbound, _)) => inbound,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(link = context.name, "proxy accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut state = context.state.lock().expect("link lock");
        if state.cut {
            // Closed right after accept: the link is cut.
            drop(inbound);
            continue;
        }
        state.accepted += 1;
        let seed = derive_seed(context.seed, &state.accepted.to_string());
        // Registered under the same lock `partition` takes, so a cut either sees this
        // connection or this accept saw the cut.
        state.connections.retain(|c| !c.is_finished());
        state.connections.push(tokio::spawn(forward(
            inbound,
            context.target,
            context.impairment.clone(),
            context.delay_ms.clone(),
            seed,
        )));
    }
}

/// Forwards one connection both ways until both directions end, or either fails.
async fn forward(
    inbound: TcpStream,
    target: SocketAddr,
    impairment: Arc<Mutex<Impairment>>,
    delay_ms: Arc<AtomicU64>,
    seed: u64,
) {
    let connect = tokio::time::timeout(
        Duration::from_millis(CONNECT_TIMEOUT_MS),
        TcpStream::connect(target),
    );
    // The target is down: closing the inbound connection tells the dialer so.
    let Ok(Ok(outbound)) = connect.await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (client_read, client_write) = inbound.into_split();
    let (server_read, server_write) = outbound.into_split();
    let there = pipe(
        client_read,
        server_write,
        impairment.clone(),
        Some(delay_ms),
        SmallRng::seed_from_u64(derive_seed(seed, "there")),
    );
    let back = pipe(
        server_read,
        client_write,
        impairment,
        None,
        SmallRng::seed_from_u64(derive_seed(seed, "back")),
    );
    // An error on either side ends both (dropping all four halves closes both sockets).
    let _ = tokio::try_join!(there, back);
}

/// Copies one direction: a reader stamps each chunk with its delivery time (never earlier
/// than the chunk before it, so order holds), a writer delivers it then. At end of stream the
/// writer half-closes its side after the last chunk.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    impairment: Arc<Mutex<Impairment>>,
    link_delay_ms: Option<Arc<AtomicU64>>,
    mut rng: SmallRng,
) -> std::io::Result<()> {
    let (queue, mut chunks) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_CHUNKS);
    let read = async move {
        let mut buffer = vec![0u8; CHUNK_BYTES];
        let mut previous = Instant::now();
        loop {
            let n = from.read(&mut buffer).await?;
            if n == 0 {
                return Ok(());
            }
            let now = Instant::now();
            let impairment = *impairment.lock().expect("impairment lock");
            let extra = link_delay_ms
                .as_ref()
                .map_or(0, |d| d.load(Ordering::Relaxed));
            let at = (now + chunk_delay(&impairment, &mut rng) + Duration::from_millis(extra))
                .max(previous);
            previous = at;
            queue
                .send((at, buffer[..n].to_vec()))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        }
    };
    let write = async move {
        while let Some((at, chunk)) = chunks.recv().await {
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
            }
            to.write_all(&chunk).await?;
        }
        to.shutdown().await
    };
    tokio::try_join!(read, write).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::net::complete_grudge;
    use std::time::Instant as StdInstant;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// An echo server: every connection gets its bytes back. Returns its address.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    fn two_nodes(seed: u64) -> FaultProxy {
        FaultProxy::new(vec!["n1".into(), "n2".into()], seed)
    }

    /// Sends `bytes` and reads as many back, with a bound.
    async fn round_trip(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(bytes).await?;
        let mut back = vec![0u8; bytes.len()];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut back))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        Ok(back)
    }

    /// Whether the proxy closes `stream` (EOF or reset) within a second.
    async fn closed(stream: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), stream.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    #[test]
    fn a_link_is_cut_when_either_end_holds_a_grudge() {
        let one_way: Grudge = [("n2".to_string(), BTreeSet::from(["n1".to_string()]))].into();
        assert!(is_cut_by(&one_way, "n1", "n2"), "n2 drops n1's traffic");
        assert!(
            is_cut_by(&one_way, "n2", "n1"),
            "n1's replies to n2 need n2 <- n1"
        );
        assert!(!is_cut_by(&one_way, "n1", "n3"));
        let halves = complete_grudge(&["n1"], &["n2", "n3"]);
        assert!(is_cut_by(&halves, "n3", "n1"));
        assert!(!is_cut_by(&halves, "n2", "n3"));
        assert!(!is_cut_by(&Grudge::new(), "n1", "n2"));
    }

    #[test]
    fn loss_only_adds_retransmission_timeouts_and_latency_is_added_to_every_chunk() {
        let mut rng = SmallRng::seed_from_u64(1);
        let none = Impairment::default();
        assert_eq!(chunk_delay(&none, &mut rng), Duration::ZERO);
        let latency = Impairment {
            loss: 0.0,
            latency_ms: 40,
        };
        assert_eq!(chunk_delay(&latency, &mut rng), Duration::from_millis(40));
        // Always lost: every retransmission, doubling to the cap, then through.
        let all = Impairment {
            loss: 1.0,
            latency_ms: 5,
        };
        let expected = 5 + 200 + 400 + 800 + 1_600 + 3_200 + 3_200;
        assert_eq!(chunk_delay(&all, &mut rng), Duration::from_millis(expected));
        // Half lost: delays are sums of the retransmission series, about half are zero.
        let half = Impairment {
            loss: 0.5,
            latency_ms: 0,
        };
        let series = [0, 200, 600, 1_400, 3_000, 6_200, 9_400];
        let delays: Vec<u64> = (0..2_000)
            .map(|_| chunk_delay(&half, &mut rng).as_millis() as u64)
            .collect();
        assert!(delays.iter().all(|d| series.contains(d)), "{delays:?}");
        let lost = delays.iter().filter(|&&d| d > 0).count();
        assert!((800..1_200).contains(&lost), "{lost} of 2000 lost");
    }

    #[test]
    fn a_cut_closes_open_connections_and_refuses_new_ones_until_heal() {
        runtime().block_on(async {
            let test = Test::example("raftkv", "register", 1);
            let echo = echo_server().await;
            let proxy = two_nodes(1);
            let via = proxy.add_link("n1", "n2", echo).unwrap();
            assert_eq!(proxy.add_link("n1", "n2", echo).unwrap(), via, "idempotent");
            // A link whose node never starts: its port is reserved until the proxy stops.
            let idle = proxy.add_link("n2", "n1", echo).unwrap();
            proxy.start_from("n1").await.unwrap();
            proxy.start_from("n1").await.unwrap();
            let mut open = TcpStream::connect(via).await.unwrap();
            assert_eq!(round_trip(&mut open, b"hello").await.unwrap(), b"hello");

            // A one-way grudge is enough to cut the link.
            let grudge: Grudge = [("n1".to_string(), BTreeSet::from(["n2".to_string()]))].into();
            proxy.partition(&test, &grudge).await.unwrap();
            assert!(proxy.is_cut("n1", "n2"));
            assert!(closed(&mut open).await, "the open connection was closed");
            let mut new = TcpStream::connect(via).await.unwrap();
            assert!(closed(&mut new).await, "a new connection is closed at once");

            // A partition replaces the previous one: an empty grudge cuts nothing.
            proxy.partition(&test, &Grudge::new()).await.unwrap();
            assert!(!proxy.is_cut("n1", "n2"));
            proxy.partition(&test, &grudge).await.unwrap();
            proxy.heal(&test).await.unwrap();
            assert!(!proxy.is_cut("n1", "n2"));
            let mut healed = TcpStream::connect(via).await.unwrap();
            assert_eq!(round_trip(&mut healed, b"again").await.unwrap(), b"again");

            let unknown = complete_grudge(&["n1"], &["n9"]);
            let e = proxy.partition(&test, &unknown).await.unwrap_err();
            assert!(e.to_string().contains("n9 is not a node"), "{e}");
            assert!(proxy.add_link("n1", "n9", echo).is_err());

            // Stopping closes the connections and the listener; starting listens again.
            proxy.stop_from("n1").await;
            assert!(closed(&mut healed).await);
            assert!(TcpStream::connect(via).await.is_err(), "listener closed");
            proxy.start_from("n1").await.unwrap();
            let mut restarted = TcpStream::connect(via).await.unwrap();
            assert_eq!(round_trip(&mut restarted, b"back").await.unwrap(), b"back");
            proxy.stop().await;
            assert!(TcpStream::connect(via).await.is_err(), "listener closed");
            drop(std::net::TcpListener::bind(idle).expect("the reserved port was released"));
        });
    }

    #[test]
    fn latency_delays_every_chunk_and_keeps_order() {
        runtime().block_on(async {
            let test = Test::example("raftkv", "register", 2);
            let echo = echo_server().await;
            let proxy = two_nodes(2);
            let via = proxy.add_link("n1", "n2", echo).unwrap();
            proxy.start_from("n1").await.unwrap();
            let mut stream = TcpStream::connect(via).await.unwrap();
            stream.set_nodelay(true).unwrap();
            assert_eq!(round_trip(&mut stream, b"warm").await.unwrap(), b"warm");
            proxy
                .impair(
                    &test,
                    &Impairment {
                        loss: 0.0,
                        latency_ms: 100,
                    },
                )
                .await
                .unwrap();
            // One round trip crosses the proxy twice: at least 200 ms.
            let started = StdInstant::now();
            assert_eq!(round_trip(&mut stream, b"ping").await.unwrap(), b"ping");
            let elapsed = started.elapsed();
            assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
            // Many small writes in a row: every byte back, in order, and pipelined (the
            // delays overlap rather than add up).
            let started = StdInstant::now();
            let mut sent = Vec::new();
            for i in 0..50u32 {
                let bytes = format!("{i:04},");
                stream.write_all(bytes.as_bytes()).await.unwrap();
                sent.extend_from_slice(bytes.as_bytes());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let mut back = vec![0u8; sent.len()];
            stream.read_exact(&mut back).await.unwrap();
            assert_eq!(back, sent);
            let elapsed = started.elapsed();
            assert!(
                elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(3),
                "{elapsed:?}"
            );
            // Healing removes the latency.
            proxy.heal(&test).await.unwrap();
            let started = StdInstant::now();
            assert_eq!(round_trip(&mut stream, b"fast").await.unwrap(), b"fast");
            assert!(started.elapsed() < Duration::from_millis(150));
            proxy.stop().await;
        });
    }

    #[test]
    fn a_link_delay_holds_one_direction_and_a_cut_drops_what_it_holds() {
        runtime().block_on(async {
            let test = Test::example("raftkv", "register", 4);
            let echo = echo_server().await;
            let proxy = two_nodes(4);
            let via = proxy.add_link("n1", "n2", echo).unwrap();
            proxy.add_link("n2", "n1", echo).unwrap();
            proxy.start_from("n1").await.unwrap();
            let mut stream = TcpStream::connect(via).await.unwrap();
            stream.set_nodelay(true).unwrap();
            assert_eq!(round_trip(&mut stream, b"warm").await.unwrap(), b"warm");
            let delays = |from: &str, to: &str, ms: u64| {
                LinkDelays::from([(from.to_string(), BTreeMap::from([(to.to_string(), ms)]))])
            };
            // Another link's delay does not touch this one.
            proxy
                .delay_links(&test, &delays("n2", "n1", 400))
                .await
                .unwrap();
            let started = StdInstant::now();
            assert_eq!(round_trip(&mut stream, b"fast").await.unwrap(), b"fast");
            assert!(started.elapsed() < Duration::from_millis(400));
            // n1 -> n2 held 300 ms, once per round trip (the answer is not delayed).
            proxy
                .delay_links(&test, &delays("n1", "n2", 300))
                .await
                .unwrap();
            let started = StdInstant::now();
            assert_eq!(round_trip(&mut stream, b"slow").await.unwrap(), b"slow");
            assert!(started.elapsed() >= Duration::from_millis(300));
            // A link that does not exist is refused.
            let unknown = delays("n1", "n9", 10);
            assert!(proxy.delay_links(&test, &unknown).await.is_err());
            // Bytes still held when the link is cut are never delivered.
            stream.write_all(b"lost").await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            proxy
                .partition(&test, &complete_grudge(&["n1"], &["n2"]))
                .await
                .unwrap();
            let mut back = Vec::new();
            let _ = stream.read_to_end(&mut back).await;
            assert!(back.is_empty(), "{back:?}");
            proxy.heal(&test).await.unwrap();
            proxy.stop().await;
        });
    }

    #[test]
    fn loss_only_delays_bytes_and_never_drops_or_reorders_them() {
        runtime().block_on(async {
            let test = Test::example("raftkv", "register", 3);
            let echo = echo_server().await;
            let proxy = two_nodes(3);
            let via = proxy.add_link("n1", "n2", echo).unwrap();
            proxy.start_from("n1").await.unwrap();
            let mut stream = TcpStream::connect(via).await.unwrap();
            stream.set_nodelay(true).unwrap();
            proxy
                .impair(
                    &test,
                    &Impairment {
                        loss: 0.3,
                        latency_ms: 0,
                    },
                )
                .await
                .unwrap();
            let mut slow = 0;
            for i in 0..20u32 {
                let message = format!("message {i}");
                let started = StdInstant::now();
                let back = round_trip(&mut stream, message.as_bytes()).await.unwrap();
                assert_eq!(back, message.as_bytes());
                if started.elapsed() >= Duration::from_millis(RTO_MIN_MS) {
                    slow += 1;
                }
            }
            // Each round trip is lost on a crossing with probability 1 - 0.7^2 = 0.51.
            assert!((3..=18).contains(&slow), "{slow} of 20 round trips delayed");
            let bad = Impairment {
                loss: 1.5,
                latency_ms: 0,
            };
            assert!(proxy.impair(&test, &bad).await.is_err());
            proxy.stop().await;
        });
    }
}
