//! The election and unique-ids workloads on ZooKeeper.
//!
//! Election: the recipe of ephemeral sequential znodes (the lowest sequence leads), one
//! attempt per campaign; the epoch is the leader's sequence number (ZooKeeper makes it
//! unique and growing under one parent).
//! - campaign: `create` an ephemeral sequential `/faultline/elections/<name>/c-` holding the
//!   candidate's name, then list the children: lowest -> elected, with its sequence as the
//!   epoch. Otherwise the candidate deletes its node (`not-elected`); a node whose delete
//!   failed would lead once those before it go, so that campaign is `info` (the worker then
//!   closes the session, and the node goes with it). A create whose outcome is unknown is
//!   `info`.
//! - leader: list the children, read the lowest one's data (the leader's name); a child gone
//!   between the two (a resignation) -> list again, a bounded number of times; no children ->
//!   `Ok(null)`. Reads are served by the client's server, possibly behind the leader, which
//!   never changes who led an epoch. A failure is `fail`.
//! - resign: delete the candidate's node; `NoNode` -> `not-leader` (its session expired).
//!
//! Unique ids: `generate` creates an ephemeral sequential `/faultline/ids/id-`; the id is its
//! sequence number.
//!
//! Outcomes as [`crate::zookeeper::classify_error`]: a definite rejection `fail`; connection
//! loss, session expiry, a timeout on a request that may write: `info`. After an expired
//! session (which answers nothing again) the client makes a new one at its next operation.

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zookeeper_client as zk;

use faultline_core::election::{observation, ElectionSpec};
use faultline_core::unique_ids::GENERATE;
use faultline_core::{BoxFuture, Client, Completion, HarnessError, Invocation, Test};

use crate::election::{Candidate, ElectionService, Won};
use crate::zookeeper::{classify_error, LazySession, ZookeeperDb, ROOT};
use crate::zookeeper_lock::sequence_of;

/// A leader query lists the children again at most this many times when the lowest one goes
/// before its data is read.
pub const LEADER_ATTEMPTS: usize = 3;

/// What a client of this module does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Election(ElectionSpec),
    UniqueIds,
}

/// An election or unique-ids client of one ZooKeeper node: one session (a template until
/// opened).
pub struct ZookeeperElectionClient {
    db: Arc<ZookeeperDb>,
    mode: Mode,
    request_timeout: Duration,
    session: LazySession,
    /// The candidate's node while it leads.
    node: Option<String>,
    candidate: Candidate,
}

impl ZookeeperElectionClient {
    pub fn new(db: Arc<ZookeeperDb>, mode: Mode, request_timeout: Duration) -> Self {
        ZookeeperElectionClient {
            db,
            mode,
            request_timeout,
            session: LazySession::default(),
            node: None,
            candidate: Candidate::default(),
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

fn election_dir(election: &str) -> String {
    format!("{ROOT}/elections/{election}")
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

    /// Creates an ephemeral sequential node `<dir>/<prefix>` (making `dir` first) holding
    /// `data`: its path and sequence.
    async fn create_sequential(
        &self,
        dirs: &[String],
        prefix: &str,
        data: &[u8],
    ) -> Result<(String, i64), Completion> {
        // Nothing exists before these: failures here are certain.
        for dir in dirs {
            self.ensure(dir).await.map_err(|f| f.completion(false))?;
        }
        let options = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let (_, sequence) = self
            .timed(self.session.create(prefix, data, &options))
            .await
            .map_err(|f| f.completion(true))?;
        Ok((format!("{prefix}{sequence}"), sequence.into_i64()))
    }

    /// The lowest child of `dir` and its data: `None` when there is none.
    async fn lowest(&self, dir: &str) -> Result<Option<(i64, String)>, Failure> {
        for _ in 0..LEADER_ATTEMPTS {
            let children = match self.timed(self.session.list_children(dir)).await {
                Ok(children) => children,
                Err(Failure::Error(zk::Error::NoNode)) => return Ok(None),
                Err(failure) => return Err(failure),
            };
            let Some((sequence, child)) = children
                .iter()
                .filter_map(|c| Some((sequence_of(c)?, c)))
                .min()
            else {
                return Ok(None);
            };
            match self
                .timed(self.session.get_data(&format!("{dir}/{child}")))
                .await
            {
                Ok((data, _)) => {
                    return Ok(Some((
                        sequence,
                        String::from_utf8_lossy(&data).into_owned(),
                    )))
                }
                // It resigned meanwhile: the next one leads.
                Err(Failure::Error(zk::Error::NoNode)) => continue,
                Err(failure) => return Err(failure),
            }
        }
        Err(Failure::Timeout)
    }
}

impl ElectionService for Service<'_> {
    fn campaign<'a>(
        &'a mut self,
        election: &'a str,
        me: &'a str,
        _lease: Duration,
    ) -> BoxFuture<'a, Result<Won, Completion>> {
        Box::pin(async move {
            let dir = election_dir(election);
            let (mine, sequence) = self
                .create_sequential(
                    &[format!("{ROOT}/elections"), dir.clone()],
                    &format!("{dir}/c-"),
                    me.as_bytes(),
                )
                .await?;
            let lowest = match self.timed(self.session.list_children(&dir)).await {
                Ok(children) => children.iter().filter_map(|c| sequence_of(c)).min(),
                Err(_) => None,
            };
            if lowest == Some(sequence) {
                *self.node = Some(mine);
                return Ok(Won::Elected(sequence));
            }
            // Not the lowest (or unknown): withdraw, and make sure the node goes.
            match self.timed(self.session.delete(&mine, None)).await {
                Ok(()) | Err(Failure::Error(zk::Error::NoNode)) => Ok(Won::NotElected),
                Err(_) => Err(Completion::info("candidate node left behind")),
            }
        })
    }

    fn leader<'a>(&'a mut self, election: &'a str) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            match self.lowest(&election_dir(election)).await {
                Ok(Some((epoch, name))) => Completion::Ok(observation(epoch, &name)),
                Ok(None) => Completion::Ok(Value::Null),
                Err(failure) => failure.completion(false),
            }
        })
    }

    fn resign<'a>(
        &'a mut self,
        _election: &'a str,
        _me: &'a str,
        _epoch: i64,
    ) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let Some(node) = self.node.take() else {
                return Completion::fail("not-leader");
            };
            match self.timed(self.session.delete(&node, None)).await {
                Ok(()) => Completion::Ok(Value::Null),
                Err(Failure::Error(zk::Error::NoNode)) => Completion::fail("not-leader"),
                Err(failure) => failure.completion(true),
            }
        })
    }
}

impl Client for ZookeeperElectionClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async move {
            let session = LazySession::open(&self.db, node, self.request_timeout).await?;
            let mut client =
                ZookeeperElectionClient::new(self.db.clone(), self.mode, self.request_timeout);
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
            let completion = match self.mode {
                Mode::Election(spec) => self.candidate.invoke(&mut service, &spec, op).await,
                Mode::UniqueIds if op.f == GENERATE => {
                    let ids = format!("{ROOT}/ids");
                    match service
                        .create_sequential(std::slice::from_ref(&ids), &format!("{ids}/id-"), b"")
                        .await
                    {
                        Ok((_, sequence)) => Completion::Ok(json!(sequence)),
                        Err(completion) => completion,
                    }
                }
                Mode::UniqueIds => {
                    Completion::fail(format!("unsupported: {} in the unique-ids workload", op.f))
                }
            };
            // An expired (or closed) session answers nothing again, and a read that fails is a `fail`
            // (the worker keeps this client): make a new session at the next invoke. Its
            // ephemeral nodes went with the old one, so it leads nothing.
            if self.session.forget_if_over(&completion) {
                self.node = None;
                self.candidate = Candidate::default();
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
