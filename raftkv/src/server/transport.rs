//! The peer transport: Raft messages and forwarded client requests over TCP.
//!
//! Each node dials one outgoing connection to every peer and sends on it only; it receives on
//! the connections its peers dial to it. So the traffic from A to B always flows on a
//! connection A opened, from A's own address (the socket is bound to A's peer IP before it
//! connects): per-address firewall rules and a fault proxy between two addresses cut exactly
//! the link they name.
//!
//! Framing: `[length: u32 big-endian][JSON PeerFrame]`. A connection opens with a `Hello`
//! naming the sender and the member it meant to reach; a receiver drops connections from
//! strangers. A dialer that fails retries with exponential back-off, and drops what was queued
//! meanwhile: Raft retransmits, and a message that sat in a queue for seconds is stale. What
//! was queued just before a connection opened ([`FRESH_FRAME_MS`]) is still sent on it: a
//! node that was paused or cut off answers the requests waiting for it the moment it can run
//! again, while its dialers are reconnecting, and an answer (a vote, a pre-vote grant) is not
//! retransmitted by anyone. A
//! connection closed within a second of opening counts as a failed attempt too (a fault proxy
//! that cuts a link accepts and closes at once).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

use super::api::{ApiResponse, ClientRequest};
use super::node::Event;
use crate::raft::{Message, NodeId};

/// A frame larger than this is a protocol error (snapshots of large states stay below it).
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;
/// Frames waiting for one peer's connection; past this, new frames are dropped.
pub const PEER_QUEUE_FRAMES: usize = 4096;
const CONNECT_TIMEOUT_MS: u64 = 1_000;
const BACKOFF_MIN_MS: u64 = 20;
const BACKOFF_MAX_MS: u64 = 1_000;
/// A connection that lasts this long before failing counts as a working link (reconnect at
/// once); one that fails sooner counts as a failed attempt (back off).
const STABLE_LINK_MS: u64 = 1_000;
const HELLO_TIMEOUT_MS: u64 = 5_000;
const WRITE_TIMEOUT_MS: u64 = 2_000;
/// A frame queued at most this long before its connection opened is sent on it; older ones
/// are dropped as stale (below an election timeout of the defaults: 150 ms).
pub const FRESH_FRAME_MS: u64 = 100;

/// What travels between nodes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PeerFrame {
    /// The first frame of a connection.
    Hello {
        from: NodeId,
        to: NodeId,
    },
    Raft(Message),
    /// A client request a follower hands to the leader; answered by a `ForwardReply` with
    /// the same `id` on the leader's own connection back.
    Forward {
        from: NodeId,
        id: u64,
        timeout_ms: u64,
        request: ClientRequest,
    },
    ForwardReply {
        id: u64,
        response: ApiResponse,
    },
}

fn encode(frame: &PeerFrame) -> Vec<u8> {
    let payload = serde_json::to_vec(frame).expect("peer frames always serialize");
    assert!(payload.len() <= MAX_FRAME_BYTES, "peer frame too large");
    let mut bytes = Vec::with_capacity(4 + payload.len());
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

async fn read_frame<R: AsyncReadExt + Unpin>(reader: &mut R) -> std::io::Result<PeerFrame> {
    let length = reader.read_u32().await? as usize;
    if length > MAX_FRAME_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {length} bytes"),
        ));
    }
    let mut payload = vec![0; length];
    reader.read_exact(&mut payload).await?;
    serde_json::from_slice(&payload)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The sending side of one peer link, as the event loop sees it.
#[derive(Clone, Debug)]
pub struct PeerLink {
    /// Frames with the time they were queued.
    pub queue: mpsc::Sender<(Instant, PeerFrame)>,
    /// Whether the outgoing connection is up right now.
    pub connected: Arc<AtomicBool>,
}

impl PeerLink {
    /// Queues a frame; false if it was dropped (queue full or the dialer gone).
    pub fn send(&self, frame: PeerFrame) -> bool {
        self.queue.try_send((Instant::now(), frame)).is_ok()
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

/// Starts the dialer for `peer` and returns its link.
pub fn spawn_dialer(
    id: NodeId,
    peer: NodeId,
    peer_addr: SocketAddr,
    bind_ip: Option<std::net::IpAddr>,
    shutdown: watch::Receiver<bool>,
) -> PeerLink {
    let (queue, frames) = mpsc::channel(PEER_QUEUE_FRAMES);
    let connected = Arc::new(AtomicBool::new(false));
    let link = PeerLink {
        queue,
        connected: connected.clone(),
    };
    tokio::spawn(dial_loop(
        id, peer, peer_addr, bind_ip, frames, connected, shutdown,
    ));
    link
}

async fn connect(
    peer_addr: SocketAddr,
    bind_ip: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    let socket = if peer_addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = bind_ip {
        // Our own address, any port: the link is identified by (our IP, the peer's IP).
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = tokio::time::timeout(
        Duration::from_millis(CONNECT_TIMEOUT_MS),
        socket.connect(peer_addr),
    )
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn dial_loop(
    id: NodeId,
    peer: NodeId,
    peer_addr: SocketAddr,
    bind_ip: Option<std::net::IpAddr>,
    mut frames: mpsc::Receiver<(Instant, PeerFrame)>,
    connected: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff_ms = BACKOFF_MIN_MS;
    let mut failures = 0u64;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let failure = match connect(peer_addr, bind_ip).await {
            Err(e) => format!("cannot connect to peer: {e}"),
            Ok(stream) => {
                if failures == 0 {
                    tracing::info!(peer, %peer_addr, "connected to peer");
                }
                // Drop what queued up while we were away, except what was queued just now
                // (while this connection opened), then mark the link up.
                let fresh = fresh_frames(&mut frames);
                connected.store(true, Ordering::Relaxed);
                let opened = Instant::now();
                let result = send_frames(id, peer, stream, fresh, &mut frames, &mut shutdown).await;
                connected.store(false, Ordering::Relaxed);
                match result {
                    Ok(()) => return,
                    // A link that stayed up a while: reconnect at once.
                    Err(e) if opened.elapsed() >= Duration::from_millis(STABLE_LINK_MS) => {
                        tracing::warn!(peer, %peer_addr, "peer connection lost: {e}");
                        failures = 0;
                        backoff_ms = BACKOFF_MIN_MS;
                        continue;
                    }
                    // Closed right after it opened (a fault proxy or firewall that cuts the
                    // link, a peer that rejects us): a failed attempt like a refused one, or
                    // this loop would spin reconnecting.
                    Err(e) => format!("peer connection closed at once: {e}"),
                }
            }
        };
        failures += 1;
        if failures.is_power_of_two() {
            tracing::warn!(peer, %peer_addr, failures, "{failure}");
        }
        // Whatever was queued while the link was down is stale: Raft resends.
        while frames.try_recv().is_ok() {}
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
            _ = shutdown.changed() => return,
        }
        backoff_ms = (backoff_ms * 2).min(BACKOFF_MAX_MS);
    }
}

/// Takes every queued frame and returns those queued within the last [`FRESH_FRAME_MS`], in
/// order; the rest are stale and dropped.
fn fresh_frames(frames: &mut mpsc::Receiver<(Instant, PeerFrame)>) -> Vec<PeerFrame> {
    let fresh = Duration::from_millis(FRESH_FRAME_MS);
    let mut kept = Vec::new();
    while let Ok((queued, frame)) = frames.try_recv() {
        if queued.elapsed() <= fresh {
            kept.push(frame);
        }
    }
    kept
}

/// Sends `first`, then frames from the queue, until the connection fails (Err) or the node
/// shuts down (Ok).
async fn send_frames(
    id: NodeId,
    peer: NodeId,
    stream: TcpStream,
    first: Vec<PeerFrame>,
    frames: &mut mpsc::Receiver<(Instant, PeerFrame)>,
    shutdown: &mut watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    writer
        .write_all(&encode(&PeerFrame::Hello { from: id, to: peer }))
        .await?;
    for frame in &first {
        writer.write_all(&encode(frame)).await?;
    }
    writer.flush().await?;
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            frame = frames.recv() => {
                let Some((_, frame)) = frame else { return Ok(()) };
                // A link that accepts nothing for this long (a partition that drops packets)
                // is reopened rather than left to TCP's minutes-long retransmission timeout.
                let write = async {
                    writer.write_all(&encode(&frame)).await?;
                    // Batch whatever else is already queued into one flush.
                    while let Ok((_, frame)) = frames.try_recv() {
                        writer.write_all(&encode(&frame)).await?;
                    }
                    writer.flush().await
                };
                tokio::time::timeout(Duration::from_millis(WRITE_TIMEOUT_MS), write)
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            }
            // The receiver never writes: a readable socket means it closed or reset.
            read = reader.read(&mut probe) => {
                return match read {
                    Ok(0) => Err(std::io::ErrorKind::ConnectionAborted.into()),
                    Ok(_) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "peer wrote to a send-only link")),
                    Err(e) => Err(e),
                };
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// Accepts peers' connections and hands their frames to the event loop.
pub async fn accept_peers(
    id: NodeId,
    members: Vec<NodeId>,
    listener: TcpListener,
    events: mpsc::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                let members = members.clone();
                let events = events.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(e) = receive_frames(id, &members, stream, events, shutdown).await {
                        tracing::debug!(%addr, "incoming peer connection closed: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("accepting a peer connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(BACKOFF_MIN_MS)).await;
            }
        }
    }
}

async fn receive_frames(
    id: NodeId,
    members: &[NodeId],
    stream: TcpStream,
    events: mpsc::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let hello = tokio::time::timeout(
        Duration::from_millis(HELLO_TIMEOUT_MS),
        read_frame(&mut reader),
    )
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let from = match hello {
        PeerFrame::Hello { from, to } if to == id && from != id && members.contains(&from) => from,
        other => {
            tracing::warn!("dropping a peer connection that opened with {other:?}");
            return Ok(());
        }
    };
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader) => frame?,
            _ = shutdown.changed() => return Ok(()),
        };
        let valid = match &frame {
            PeerFrame::Raft(msg) => msg.from == from && msg.to == id,
            PeerFrame::Forward { from: sender, .. } => *sender == from,
            PeerFrame::ForwardReply { .. } => true,
            PeerFrame::Hello { .. } => false,
        };
        if !valid {
            tracing::warn!(peer = from, "dropping a misaddressed frame");
            continue;
        }
        if events.send(Event::Peer(frame)).await.is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_connection_sends_only_what_was_queued_just_before_it() {
        let (queue, mut frames) = mpsc::channel(8);
        let long_ago = Instant::now() - Duration::from_millis(10 * FRESH_FRAME_MS);
        let hello = |from| PeerFrame::Hello { from, to: 9 };
        queue.try_send((long_ago, hello(1))).unwrap();
        queue.try_send((Instant::now(), hello(2))).unwrap();
        queue.try_send((Instant::now(), hello(3))).unwrap();
        let fresh: Vec<NodeId> = fresh_frames(&mut frames)
            .into_iter()
            .map(|frame| match frame {
                PeerFrame::Hello { from, .. } => from,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            fresh,
            [2, 3],
            "the stale frame is dropped, the fresh ones kept in order"
        );
        assert!(frames.try_recv().is_err(), "the queue is drained");
    }

    #[test]
    fn frames_round_trip() {
        let frame = PeerFrame::Hello { from: 1, to: 2 };
        let bytes = encode(&frame);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let decoded = runtime.block_on(read_frame(&mut bytes.as_slice())).unwrap();
        assert!(matches!(decoded, PeerFrame::Hello { from: 1, to: 2 }));
        let mut oversized = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes().to_vec();
        oversized.extend([0; 8]);
        assert!(runtime
            .block_on(read_frame(&mut oversized.as_slice()))
            .is_err());
    }
}
