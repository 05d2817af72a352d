//! The work queue on PostgreSQL ([`faultline_core::queue`]): a `jobs` table claimed with
//! `SELECT ... FOR UPDATE SKIP LOCKED`, the claim being the row lock of an open transaction.
//!
//! One connection per worker, READ COMMITTED (the server's default):
//! - enqueue: `INSERT INTO jobs (queue, id) VALUES ($1, $2)` (autocommit).
//! - claim: `BEGIN`, then `SELECT id FROM jobs WHERE queue = $1 AND NOT done ORDER BY seq
//!   LIMIT 1 FOR UPDATE SKIP LOCKED`. A row: the transaction stays open, holding the row's
//!   lock, and the job is this worker's (`Ok(id)`); other claimants skip it. No row:
//!   `ROLLBACK`, `Ok(null)`.
//! - complete: on the claim's transaction, `UPDATE jobs SET done = true WHERE queue = $1 AND
//!   id = $2 AND NOT done`, then `COMMIT`. `ok` when the commit succeeded; a complete of a job
//!   this connection does not hold, or whose transaction is gone, is `Fail("not-claimed")`.
//!   Only a `COMMIT` whose answer was lost is `info`.
//! - a claim holds nothing durable: when the worker vanishes (its connection closed, or silent
//!   for `idle_in_transaction_session_timeout` = [`CLAIM_TIMEOUT_MS`], set on each connection),
//!   the server aborts the transaction, the row lock goes, and the job is claimable again. So a
//!   claim that failed or whose answer was lost certainly took nothing for good (`fail`), and
//!   delivery is at-least-once: a job whose worker vanished before its commit is delivered
//!   again.
//!
//! A worker that claims or enqueues while it still holds a claim gives the held one back
//! (`ROLLBACK`) first.

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

use faultline_core::queue::{self, CLAIM, COMPLETE, ENQUEUE};
use faultline_core::{BoxFuture, Client, Completion, HarnessError, Invocation, Test};

use super::client::describe;
use super::PostgresDb;

/// How long the server lets a claim's transaction sit idle before it aborts it (releasing the
/// job), in ms.
pub const CLAIM_TIMEOUT_MS: u64 = 3_000;

/// The task that drives a connection, aborted (closing the socket) when dropped.
struct ConnectionTask(tokio::task::JoinHandle<()>);

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Session {
    client: tokio_postgres::Client,
    _connection: ConnectionTask,
    /// The job whose row this connection's open transaction holds.
    claim: Option<i64>,
}

/// A queue client of the server (a template until opened).
pub struct PostgresQueueClient {
    db: Arc<PostgresDb>,
    request_timeout: Duration,
    session: Option<Session>,
}

impl PostgresQueueClient {
    pub fn new(db: Arc<PostgresDb>, request_timeout: Duration) -> Self {
        PostgresQueueClient {
            db,
            request_timeout,
            session: None,
        }
    }

    async fn connect(&mut self) -> Result<&mut Session, Completion> {
        if self.session.is_none() {
            let config = self
                .db
                .client_config(super::DATABASE)
                .map_err(|e| Completion::fail(format!("connect: {e}")))?;
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| Completion::fail(format!("connect: {}", describe(&e))))?;
            let connection = ConnectionTask(tokio::spawn(async move {
                let _ = connection.await;
            }));
            client
                .batch_execute(&format!(
                    "SET idle_in_transaction_session_timeout = {CLAIM_TIMEOUT_MS}"
                ))
                .await
                .map_err(|e| Completion::fail(format!("connect: {}", describe(&e))))?;
            self.session = Some(Session {
                client,
                _connection: connection,
                claim: None,
            });
        }
        Ok(self.session.as_mut().expect("connected above"))
    }

    /// Gives a held claim back: `ROLLBACK` (a lost rollback leaves the server to abort it).
    async fn release_claim(&mut self) -> Result<(), Completion> {
        let session = self.connect().await?;
        if session.claim.take().is_some() {
            session
                .client
                .batch_execute("ROLLBACK")
                .await
                .map_err(|e| Completion::fail(format!("rollback: {}", describe(&e))))?;
        }
        Ok(())
    }

    async fn call(&mut self, op: &Invocation) -> Completion {
        let name = queue::queue_name(op.key.as_ref());
        match op.f.as_str() {
            ENQUEUE => {
                let id = match queue::job_id(&op.value) {
                    Ok(id) => id as i64,
                    Err(why) => return Completion::fail(format!("bad-request: {why}")),
                };
                if let Err(c) = self.release_claim().await {
                    return c;
                }
                let session = self.session.as_mut().expect("connected");
                match session
                    .client
                    .execute(
                        "INSERT INTO jobs (queue, id) VALUES ($1, $2)",
                        &[&name, &id],
                    )
                    .await
                {
                    Ok(_) => Completion::Ok(op.value.clone()),
                    Err(e) if e.as_db_error().is_some() && !e.is_closed() => {
                        Completion::fail(describe(&e))
                    }
                    Err(e) => Completion::info(describe(&e)),
                }
            }
            CLAIM => {
                if let Err(c) = self.release_claim().await {
                    return c;
                }
                let session = self.session.as_mut().expect("connected");
                // Nothing durable changes: any failure leaves no claim behind (the server
                // aborts the transaction with the connection, or after the idle timeout).
                if let Err(e) = session.client.batch_execute("BEGIN").await {
                    return Completion::fail(describe(&e));
                }
                let rows = session
                    .client
                    .query(
                        "SELECT id FROM jobs WHERE queue = $1 AND NOT done ORDER BY seq \
                         LIMIT 1 FOR UPDATE SKIP LOCKED",
                        &[&name],
                    )
                    .await;
                match rows {
                    Ok(rows) => match rows.first().map(|row| row.try_get::<_, i64>(0)) {
                        Some(Ok(id)) => {
                            session.claim = Some(id);
                            Completion::Ok(json!(id))
                        }
                        Some(Err(e)) => {
                            let _ = session.client.batch_execute("ROLLBACK").await;
                            Completion::fail(format!("unreadable job id: {e}"))
                        }
                        None => match session.client.batch_execute("ROLLBACK").await {
                            Ok(()) => Completion::Ok(Value::Null),
                            Err(e) => Completion::fail(describe(&e)),
                        },
                    },
                    Err(e) => {
                        let _ = session.client.batch_execute("ROLLBACK").await;
                        Completion::fail(describe(&e))
                    }
                }
            }
            COMPLETE => {
                let id = match queue::job_id(&op.value) {
                    Ok(id) => id as i64,
                    Err(why) => return Completion::fail(format!("bad-request: {why}")),
                };
                let session = match self.connect().await {
                    Ok(session) => session,
                    Err(c) => return c,
                };
                if session.claim != Some(id) {
                    return Completion::fail("not-claimed");
                }
                session.claim = None;
                let updated = session
                    .client
                    .execute(
                        "UPDATE jobs SET done = true WHERE queue = $1 AND id = $2 AND NOT done",
                        &[&name, &id],
                    )
                    .await;
                match updated {
                    Ok(1) => {}
                    Ok(_) => {
                        let _ = session.client.batch_execute("ROLLBACK").await;
                        return Completion::fail("not-claimed");
                    }
                    // Not committed: the transaction is aborted, the job goes back.
                    Err(e) => {
                        let _ = session.client.batch_execute("ROLLBACK").await;
                        return Completion::fail(format!("not-claimed: {}", describe(&e)));
                    }
                }
                match session.client.batch_execute("COMMIT").await {
                    Ok(()) => Completion::Ok(op.value.clone()),
                    Err(e) if e.as_db_error().is_some() && !e.is_closed() => {
                        Completion::fail(describe(&e))
                    }
                    Err(e) => Completion::info(describe(&e)),
                }
            }
            other => Completion::fail(format!("unsupported: {other}")),
        }
    }
}

impl Client for PostgresQueueClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async move {
            self.db.server_addr().map_err(|e| HarnessError::Client {
                node: node.to_string(),
                why: e.to_string(),
            })?;
            Ok(Box::new(PostgresQueueClient::new(
                self.db.clone(),
                self.request_timeout,
            )) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let completion = match tokio::time::timeout(self.request_timeout, self.call(op)).await {
                Ok(completion) => completion,
                // A timed-out complete may have sent its COMMIT; anything else changed nothing
                // durable (the dropped connection aborts its transaction).
                Err(_) if op.f == COMPLETE => Completion::info("timeout"),
                Err(_) => Completion::fail("timeout"),
            };
            let refused_here = matches!(&completion, Completion::Fail(why)
                if why == "not-claimed" || why.as_str().is_some_and(|w| w.starts_with("bad-request")));
            if !matches!(completion, Completion::Ok(_)) && !refused_here {
                // A connection in an unknown state is never reused: closing it aborts its
                // transaction, so no claim outlives it.
                self.session = None;
            }
            completion
        })
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.session = None;
            Ok(())
        })
    }
}
