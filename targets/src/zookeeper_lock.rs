//! The lock workloads on ZooKeeper: the ephemeral sequential znode recipe (one attempt), the
//! node's sequence number as the fencing token, and a resource znode changed only by
//! versioned `set_data`.
//!
//! - acquire: `create` an ephemeral sequential `/faultline/locks/<name>/lock-`, then list the
//!   lock's children: when this client's node has the lowest sequence it holds the lock, with
//!   that sequence as its token (a holder's node was created after every earlier holder's was,
//!   so tokens grow with holders); otherwise it deletes its node (held). A node whose delete
//!   failed would block others until the session ends, so that acquire is `info` (the worker
//!   then closes this session, and the node goes with it).
//! - the hold lasts as long as the node: until release (`delete`) or until the session
//!   expires (the server's session timeout, [`crate::zookeeper::SESSION_TIMEOUT_MS`]); the
//!   client counts its own `lease_ms` from the acquire's start. With a lease longer than the
//!   session timeout, a holder cut off from the ensemble believes it holds after its node is
//!   gone; that is what the holders' check is for.
//! - release: `delete` of the client's node; `NoNode` -> `not-held` (the session expired).
//! - write: read `/faultline/resource/<name>` (`{"highest": h, "log": [[token, id], ...]}` and
//!   its version); with fencing a token lower than `highest` -> `stale-token`; else
//!   `set_data` of the log with the write appended at the version read (a concurrent write
//!   makes it `BadVersion`: read again, a bounded number of times).
//! - read: the resource's log.
//!
//! Outcomes as [`crate::zookeeper::classify_error`]: a definite rejection `fail`; connection
//! loss, session expiry, a timeout on a request that may write: `info`.

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zookeeper_client as zk;

use faultline_core::lock::LockSpec;
use faultline_core::{BoxFuture, Client, Completion, HarnessError, Invocation, Test};

use crate::lock::{Grant, Holder, LockService};
use crate::zookeeper::{classify_error, LazySession, ZookeeperDb, ROOT};

/// A resource write that meets a changed version reads again, at most this many times.
pub const WRITE_ATTEMPTS: usize = 5;

/// A lock client of one ZooKeeper node: one session (a template until opened).
pub struct ZookeeperLockClient {
    db: Arc<ZookeeperDb>,
    spec: LockSpec,
    request_timeout: Duration,
    session: LazySession,
    /// The client's lock node while it holds the lock.
    node: Option<String>,
    holder: Holder,
}

impl ZookeeperLockClient {
    pub fn new(db: Arc<ZookeeperDb>, spec: LockSpec, request_timeout: Duration) -> Self {
        ZookeeperLockClient {
            db,
            spec,
            request_timeout,
            session: LazySession::default(),
            node: None,
            holder: Holder::default(),
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

struct Service<'a> {
    session: &'a zk::Client,
    node: &'a mut Option<String>,
    request_timeout: Duration,
}

impl Service<'_> {
    async fn timed<T>(
        &self,
        request: impl std::future::Future<Output = Result<T, zk::Error>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.request_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Failure::Error(e)),
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// Creates `path` (persistent, empty) unless it exists.
    async fn ensure(&self, path: &str) -> Result<(), Failure> {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match self.timed(self.session.create(path, b"", &options)).await {
            Ok(_) | Err(Failure::Error(zk::Error::NodeExists)) => Ok(()),
            Err(failure) => Err(failure),
        }
    }

    /// The resource's data and version (an empty resource when it does not exist yet).
    async fn resource(&self, path: &str) -> Result<(Value, Option<i32>), Failure> {
        match self.timed(self.session.get_data(path)).await {
            Ok((data, stat)) => {
                let value = serde_json::from_slice(&data).unwrap_or(Value::Null);
                Ok((value, Some(stat.version)))
            }
            Err(Failure::Error(zk::Error::NoNode)) => Ok((json!({"highest": 0, "log": []}), None)),
            Err(failure) => Err(failure),
        }
    }
}

fn lock_dir(lock: &str) -> String {
    format!("{ROOT}/locks/{lock}")
}

fn resource_path(lock: &str) -> String {
    format!("{ROOT}/resource-{lock}")
}

/// The sequence number of a sequential node's name (`lock-0000000042` -> 42).
pub fn sequence_of(name: &str) -> Option<i64> {
    name.rsplit('-').next()?.parse().ok()
}

impl LockService for Service<'_> {
    fn acquire<'a>(
        &'a mut self,
        lock: &'a str,
        _lease: Duration,
    ) -> BoxFuture<'a, Result<Grant, Completion>> {
        Box::pin(async move {
            let dir = lock_dir(lock);
            // Nothing of the lock exists before these: failures here are certain.
            for path in [format!("{ROOT}/locks"), dir.clone()] {
                self.ensure(&path).await.map_err(|f| f.completion(false))?;
            }
            let options = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
            let prefix = format!("{dir}/lock-");
            let (_, sequence) = self
                .timed(self.session.create(&prefix, b"", &options))
                .await
                .map_err(|f| f.completion(true))?;
            let token = sequence.into_i64();
            let mine = format!("{prefix}{sequence}");
            let lowest = match self.timed(self.session.list_children(&dir)).await {
                Ok(children) => children.iter().filter_map(|c| sequence_of(c)).min(),
                Err(_) => None,
            };
            if lowest == Some(token) {
                *self.node = Some(mine);
                return Ok(Grant::Granted(token));
            }
            // Not the lowest (or unknown): give the attempt up, and make sure the node goes.
            match self.timed(self.session.delete(&mine, None)).await {
                Ok(()) | Err(Failure::Error(zk::Error::NoNode)) => Ok(Grant::Held),
                Err(_) => Err(Completion::info("lock node left behind")),
            }
        })
    }

    fn release<'a>(&'a mut self, _lock: &'a str, _token: i64) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let Some(node) = self.node.take() else {
                return Completion::fail("not-held");
            };
            match self.timed(self.session.delete(&node, None)).await {
                Ok(()) => Completion::Ok(Value::Null),
                Err(Failure::Error(zk::Error::NoNode)) => Completion::fail("not-held"),
                Err(failure) => failure.completion(true),
            }
        })
    }

    fn write<'a>(
        &'a mut self,
        lock: &'a str,
        token: i64,
        id: &'a Value,
        fencing: bool,
    ) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let path = resource_path(lock);
            for _ in 0..WRITE_ATTEMPTS {
                let (mut resource, version) = match self.resource(&path).await {
                    Ok(read) => read,
                    Err(failure) => return failure.completion(false),
                };
                let highest = resource["highest"].as_i64().unwrap_or(0);
                if fencing && token < highest {
                    return Completion::fail("stale-token");
                }
                resource["highest"] = json!(highest.max(token));
                match resource["log"].as_array_mut() {
                    Some(log) => log.push(json!([token, id])),
                    None => return Completion::fail(format!("unreadable resource {resource}")),
                }
                let data = resource.to_string().into_bytes();
                let written = match version {
                    Some(version) => self
                        .timed(self.session.set_data(&path, &data, Some(version)))
                        .await
                        .map(|_| ()),
                    None => {
                        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                        self.timed(self.session.create(&path, &data, &options))
                            .await
                            .map(|_| ())
                    }
                };
                match written {
                    Ok(()) => return Completion::Ok(id.clone()),
                    // Another write came between the read and this one: nothing applied.
                    Err(Failure::Error(zk::Error::BadVersion))
                    | Err(Failure::Error(zk::Error::NodeExists)) => continue,
                    Err(failure) => return failure.completion(true),
                }
            }
            Completion::fail("resource-contended")
        })
    }

    fn read<'a>(&'a mut self, lock: &'a str) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            match self.resource(&resource_path(lock)).await {
                Ok((resource, _)) => match resource.get("log") {
                    Some(log @ Value::Array(_)) => Completion::Ok(log.clone()),
                    _ => Completion::fail(format!("unreadable resource {resource}")),
                },
                Err(failure) => failure.completion(false),
            }
        })
    }
}

impl Client for ZookeeperLockClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async move {
            let session = LazySession::open(&self.db, node, self.request_timeout).await?;
            let mut client =
                ZookeeperLockClient::new(self.db.clone(), self.spec, self.request_timeout);
            client.session = session;
            Ok(Box::new(client) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let started = Instant::now();
            let session = match self.session.get(self.request_timeout).await {
                Ok(session) => session,
                Err(failed) => return failed,
            };
            let mut service = Service {
                session: &session,
                node: &mut self.node,
                request_timeout: self
                    .request_timeout
                    .saturating_sub(started.elapsed())
                    .max(Duration::from_millis(1)),
            };
            let mut completion = self.holder.invoke(&mut service, &self.spec, op).await;
            // An expired (or closed) session answers nothing again: a new one at the next
            // invoke (its lock node went with the old one). Without this a worker whose
            // session expired under a partition failed every acquire until the run ended,
            // and the final read of the resource failed too (seed 132 in the lab).
            if self.session.forget_if_over(&completion) {
                self.node = None;
                // A read changes nothing: asked once more, on a new session, within its time
                // (the run's one read of the resource would otherwise be lost).
                if op.f == "read" {
                    let remaining = self.request_timeout.saturating_sub(started.elapsed());
                    if let Ok(session) = self.session.get(remaining).await {
                        let mut service = Service {
                            session: &session,
                            node: &mut self.node,
                            request_timeout: self
                                .request_timeout
                                .saturating_sub(started.elapsed())
                                .max(Duration::from_millis(1)),
                        };
                        completion = self.holder.invoke(&mut service, &self.spec, op).await;
                        self.session.forget_if_over(&completion);
                    }
                }
            }
            completion
        })
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            // Dropping the last handle closes the session (and its ephemeral nodes).
            self.session.forget();
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_are_read_from_node_names() {
        assert_eq!(sequence_of("lock-0000000042"), Some(42));
        assert_eq!(sequence_of("lock-x"), None);
    }
}
