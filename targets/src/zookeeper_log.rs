//! ZooKeeper's total order broadcast ([`faultline_core::broadcast`]) and work queue
//! ([`faultline_core::queue`]) clients: both built on persistent sequential znodes, one
//! session per worker on its own node.
//!
//! Broadcast: the log `name` is the children of `/faultline/logs/<name>`.
//! - `append` of id `n`: `create` a persistent sequential `m<n>-` child; the sequence number
//!   ZooKeeper appends (`m<n>-0000000042`) is the message's place in the order.
//! - `read`: `list_children`, sorted by sequence number. A final read (value `"final"`)
//!   `sync`s first, so a follower has caught up with the leader before it answers; other reads
//!   do so only with `--sync-reads` (without it a follower may answer with an older prefix,
//!   which total order broadcast allows).
//!
//! Queue, the ZooKeeper queue recipe: jobs are the children of `/faultline/queues/<name>/jobs`.
//! - `enqueue` of job `n`: `create` a persistent sequential `j<n>-` child.
//! - `claim`: `sync`, `list_children`, then `delete` the children in sequence order until one
//!   delete succeeds: that job is the claimant's (a `NoNode` means another claimant deleted it
//!   first: try the next). No children: `Ok(null)`. Delivery is exactly-once: a job is handed
//!   out by the one delete that removed its znode; a delete whose outcome is unknown (`info`)
//!   may have taken its job with it.
//! - `complete` of job `n`: `create` the persistent `/faultline/queues/<name>/done/j<n>`;
//!   `NodeExists` -> `Fail("already-completed")`.
//!
//! Outcomes as [`crate::zookeeper::classify_error`]: a definite rejection `fail`; connection
//! loss, session expiry or a timeout on a request that may write: `info`.

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zookeeper_client as zk;

use faultline_core::broadcast::{self, APPEND, FINAL};
use faultline_core::queue::{self, CLAIM, COMPLETE, ENQUEUE};
use faultline_core::{BoxFuture, Client, Completion, HarnessError, Invocation, Test};

use crate::zookeeper::{classify_error, LazySession, ZookeeperDb, ROOT};
use crate::zookeeper_lock::sequence_of;

/// The most deletes one claim tries before it gives up (`Fail("contended")`).
pub const CLAIM_ATTEMPTS: usize = 20;

/// Which workload a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogMode {
    Broadcast,
    Queue,
}

/// A broadcast or queue client of one ZooKeeper node: one session (a template until opened).
pub struct ZookeeperLogClient {
    db: Arc<ZookeeperDb>,
    mode: LogMode,
    sync_reads: bool,
    request_timeout: Duration,
    session: LazySession,
}

impl ZookeeperLogClient {
    pub fn new(
        db: Arc<ZookeeperDb>,
        mode: LogMode,
        sync_reads: bool,
        request_timeout: Duration,
    ) -> Self {
        ZookeeperLogClient {
            db,
            mode,
            sync_reads,
            request_timeout,
            session: LazySession::default(),
        }
    }
}

/// Why a request did not complete normally.
enum Failure {
    Error(zk::Error),
    Timeout,
}

impl Failure {
    /// The completion of a failed request that may (`wrote`) or may not change state.
    fn completion(&self, wrote: bool) -> Completion {
        match self {
            Failure::Error(e) => classify_error(e, wrote),
            Failure::Timeout if wrote => Completion::info("timeout"),
            Failure::Timeout => Completion::fail("timeout"),
        }
    }
}

/// One operation's requests, bounded together by the op's deadline.
struct Requests<'a> {
    session: &'a zk::Client,
    deadline: Instant,
}

impl Requests<'_> {
    async fn timed<T>(
        &self,
        request: impl std::future::Future<Output = Result<T, zk::Error>>,
    ) -> Result<T, Failure> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Failure::Error(e)),
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// Creates each path (persistent, empty) unless it exists. Nothing of the workload's data
    /// depends on these, so a failure is certain.
    async fn ensure(&self, paths: &[String]) -> Result<(), Completion> {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        for path in paths {
            match self.timed(self.session.create(path, b"", &options)).await {
                Ok(_) | Err(Failure::Error(zk::Error::NodeExists)) => {}
                Err(failure) => return Err(failure.completion(false)),
            }
        }
        Ok(())
    }

    /// Creates a persistent sequential child `prefix` of `dir`.
    async fn create_sequential(&self, dir: &str, prefix: &str, data: &[u8]) -> Result<(), Failure> {
        let options = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
        self.timed(
            self.session
                .create(&format!("{dir}/{prefix}"), data, &options),
        )
        .await
        .map(|_| ())
    }

    /// `dir`'s children as `(sequence, id)`, in sequence order (none when `dir` is absent).
    async fn sequenced(&self, dir: &str, sync: bool) -> Result<Vec<(i64, u64, String)>, Failure> {
        if sync {
            self.timed(self.session.sync(ROOT)).await?;
        }
        let children = match self.timed(self.session.list_children(dir)).await {
            Ok(children) => children,
            Err(Failure::Error(zk::Error::NoNode)) => Vec::new(),
            Err(failure) => return Err(failure),
        };
        let mut entries: Vec<(i64, u64, String)> = children
            .into_iter()
            .filter_map(|name| Some((sequence_of(&name)?, id_of(&name)?, name)))
            .collect();
        entries.sort();
        Ok(entries)
    }
}

/// The id in a child's name: `m42-0000000007` -> 42.
pub fn id_of(name: &str) -> Option<u64> {
    name.get(1..)?.split('-').next()?.parse().ok()
}

impl ZookeeperLogClient {
    async fn broadcast(&self, requests: &Requests<'_>, op: &Invocation) -> Completion {
        let dir = format!("{ROOT}/logs/{}", broadcast::log_name(op.key.as_ref()));
        match op.f.as_str() {
            APPEND => {
                let id = match broadcast::message_id(&op.value) {
                    Ok(id) => id,
                    Err(why) => return Completion::fail(format!("bad-request: {why}")),
                };
                if let Err(c) = requests
                    .ensure(&[format!("{ROOT}/logs"), dir.clone()])
                    .await
                {
                    return c;
                }
                let data = id.to_string().into_bytes();
                match requests
                    .create_sequential(&dir, &format!("m{id}-"), &data)
                    .await
                {
                    Ok(()) => Completion::Ok(op.value.clone()),
                    Err(failure) => failure.completion(true),
                }
            }
            broadcast::READ => {
                let sync = self.sync_reads || op.value == FINAL;
                match requests.sequenced(&dir, sync).await {
                    Ok(entries) => {
                        Completion::Ok(entries.into_iter().map(|(_, id, _)| json!(id)).collect())
                    }
                    Err(failure) => failure.completion(false),
                }
            }
            other => Completion::fail(format!("unsupported: {other}")),
        }
    }

    async fn queue(&self, requests: &Requests<'_>, op: &Invocation) -> Completion {
        let base = format!("{ROOT}/queues/{}", queue::queue_name(op.key.as_ref()));
        let jobs = format!("{base}/jobs");
        let done = format!("{base}/done");
        let dirs = [
            format!("{ROOT}/queues"),
            base.clone(),
            jobs.clone(),
            done.clone(),
        ];
        match op.f.as_str() {
            ENQUEUE => {
                let id = match queue::job_id(&op.value) {
                    Ok(id) => id,
                    Err(why) => return Completion::fail(format!("bad-request: {why}")),
                };
                if let Err(c) = requests.ensure(&dirs).await {
                    return c;
                }
                let data = id.to_string().into_bytes();
                match requests
                    .create_sequential(&jobs, &format!("j{id}-"), &data)
                    .await
                {
                    Ok(()) => Completion::Ok(op.value.clone()),
                    Err(failure) => failure.completion(true),
                }
            }
            CLAIM => {
                // Always synced: a follower's stale list would make the drain stop early.
                let entries = match requests.sequenced(&jobs, true).await {
                    Ok(entries) => entries,
                    Err(failure) => return failure.completion(false),
                };
                if entries.is_empty() {
                    return Completion::Ok(Value::Null);
                }
                for (_, id, name) in entries.into_iter().take(CLAIM_ATTEMPTS) {
                    let path = format!("{jobs}/{name}");
                    match requests.timed(requests.session.delete(&path, None)).await {
                        Ok(()) => return Completion::Ok(json!(id)),
                        // Another claimant deleted it first: nothing happened; the next one.
                        Err(Failure::Error(zk::Error::NoNode)) => continue,
                        Err(failure) => return failure.completion(true),
                    }
                }
                Completion::fail("contended")
            }
            COMPLETE => {
                let id = match queue::job_id(&op.value) {
                    Ok(id) => id,
                    Err(why) => return Completion::fail(format!("bad-request: {why}")),
                };
                if let Err(c) = requests.ensure(&dirs).await {
                    return c;
                }
                let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                let path = format!("{done}/j{id}");
                match requests
                    .timed(requests.session.create(&path, b"", &options))
                    .await
                {
                    Ok(_) => Completion::Ok(op.value.clone()),
                    Err(Failure::Error(zk::Error::NodeExists)) => {
                        Completion::fail("already-completed")
                    }
                    Err(failure) => failure.completion(true),
                }
            }
            other => Completion::fail(format!("unsupported: {other}")),
        }
    }
}

impl Client for ZookeeperLogClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async move {
            let session = LazySession::open(&self.db, node, self.request_timeout).await?;
            let mut client = ZookeeperLogClient::new(
                self.db.clone(),
                self.mode,
                self.sync_reads,
                self.request_timeout,
            );
            client.session = session;
            Ok(Box::new(client) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let deadline = Instant::now() + self.request_timeout;
            let session = match self.session.get(self.request_timeout).await {
                Ok(session) => session,
                Err(failed) => return failed,
            };
            let requests = Requests {
                session: &session,
                deadline,
            };
            let mut completion = match self.mode {
                LogMode::Broadcast => self.broadcast(&requests, op).await,
                LogMode::Queue => self.queue(&requests, op).await,
            };
            if matches!(completion, Completion::Info(_)) {
                // The worker closes this client; a new session for the new process.
                self.session.forget();
            } else if self.session.forget_if_over(&completion)
                && self.mode == LogMode::Broadcast
                && op.f == "read"
            {
                // A `fail` on an expired session: the worker keeps this client, so the next
                // invoke makes a new session. A read changes nothing, so it is asked once more
                // on the new session now, within its time: a worker's one final read would
                // otherwise be lost to a session that expired during the last faults.
                let remaining = deadline.saturating_duration_since(Instant::now());
                if let Ok(session) = self.session.get(remaining).await {
                    let requests = Requests {
                        session: &session,
                        deadline,
                    };
                    completion = self.broadcast(&requests, op).await;
                    if !matches!(completion, Completion::Info(_)) {
                        self.session.forget_if_over(&completion);
                    }
                }
            }
            completion
        })
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.session.forget();
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_sequences_are_read_from_child_names() {
        assert_eq!(id_of("m42-0000000007"), Some(42));
        assert_eq!(sequence_of("m42-0000000007"), Some(7));
        assert_eq!(id_of("j3-0000000010"), Some(3));
        assert_eq!(id_of("x"), None);
    }
}
