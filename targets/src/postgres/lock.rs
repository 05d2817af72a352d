//! The lock workloads on PostgreSQL: a lease table and a fenced resource table.
//!
//! Each primitive of [`crate::lock::LockService`] is one statement, run on its own (autocommit,
//! the server's default READ COMMITTED), on one connection per worker:
//! - acquire: `UPDATE lease SET holder = $me, token = token + 1, expires = now() + ttl WHERE
//!   name = $n AND (expires IS NULL OR expires < now()) RETURNING token` (one row: granted with
//!   that token; none: held). The lock's row is created once per connection with `INSERT ...
//!   ON CONFLICT DO NOTHING`.
//! - release: `UPDATE lease SET holder = NULL, expires = NULL WHERE name = $n AND holder = $me
//!   AND token = $t AND expires > now()` (none updated: `not-held`).
//! - write with fencing: a data-modifying `WITH` that raises `fence.highest` to the token only
//!   if it is not lower (`ON CONFLICT ... DO UPDATE ... WHERE fence.highest <= excluded.highest`,
//!   which holds the row lock, so the check and the append are one atomic step) and appends
//!   `(name, token, id)` to `resource` only then; none inserted: `stale-token`. Without fencing,
//!   a plain insert.
//! - read: `SELECT token, id FROM resource WHERE name = $n ORDER BY seq` (the order of the
//!   `bigserial`; with fencing, writers of one lock are serialized by the fence row's lock, so
//!   that is also the order they committed in).
//!
//! Outcomes: an error the server answered means the statement (its own transaction) rolled back:
//! `fail`; a connection that could not be made: `fail`; a lost connection or a timeout once the
//! statement was sent: `info` (a read: `fail`).

use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use faultline_core::lock::LockSpec;
use faultline_core::{BoxFuture, Client, Completion, HarnessError, Invocation, Test};
use tokio_postgres::types::ToSql;

use super::client::describe;
use super::PostgresDb;
use crate::lock::{Grant, Holder, LockService};

/// Every lock client opened gets its own holder name (`$me`).
static NEXT_HOLDER: AtomicU64 = AtomicU64::new(0);

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
    /// Locks whose lease row this connection made sure of.
    rows: HashSet<String>,
}

/// A lock client of the server (a template until opened).
pub struct PostgresLockClient {
    db: Arc<PostgresDb>,
    spec: LockSpec,
    request_timeout: Duration,
    me: String,
    session: Option<Session>,
    holder: Holder,
}

impl PostgresLockClient {
    pub fn new(db: Arc<PostgresDb>, spec: LockSpec, request_timeout: Duration) -> Self {
        let n = NEXT_HOLDER.fetch_add(1, Ordering::Relaxed);
        PostgresLockClient {
            db,
            spec,
            request_timeout,
            me: format!("client-{}-{n}", std::process::id()),
            session: None,
            holder: Holder::default(),
        }
    }
}

/// The service the holder talks to: this client's connection.
struct Service<'a> {
    db: &'a PostgresDb,
    me: &'a str,
    request_timeout: Duration,
    session: &'a mut Option<Session>,
}

/// How a statement ended when it did not return rows.
enum Failure {
    /// It certainly did not take effect.
    Definite(String),
    /// It may have.
    Unknown(String),
}

impl Failure {
    fn completion(self, read_only: bool) -> Completion {
        match self {
            Failure::Definite(why) => Completion::fail(why),
            Failure::Unknown(why) if read_only => Completion::fail(why),
            Failure::Unknown(why) => Completion::info(why),
        }
    }
}

impl Service<'_> {
    async fn connect(&mut self) -> Result<(), Failure> {
        if self.session.is_some() {
            return Ok(());
        }
        let config = self
            .db
            .client_config(super::DATABASE)
            .map_err(|e| Failure::Definite(format!("connect: {e}")))?;
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| Failure::Definite(format!("connect: {}", describe(&e))))?;
        let connection = ConnectionTask(tokio::spawn(async move {
            let _ = connection.await;
        }));
        *self.session = Some(Session {
            client,
            _connection: connection,
            rows: HashSet::new(),
        });
        Ok(())
    }

    /// Runs one statement (its own transaction) and returns its rows, bounded by the request
    /// timeout. Connects first if needed; `ensure_row` first makes sure the lock's lease row
    /// exists.
    async fn query(
        &mut self,
        lock: Option<&str>,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, Failure> {
        let timeout = self.request_timeout;
        let run = async {
            self.connect().await?;
            let session = self.session.as_mut().expect("connected above");
            if let Some(lock) = lock {
                if !session.rows.contains(lock) {
                    session
                        .client
                        .execute(
                            "INSERT INTO lease (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                            &[&lock],
                        )
                        .await
                        .map_err(|e| Failure::Definite(describe(&e)))?;
                    session.rows.insert(lock.to_string());
                }
            }
            match session.client.query(sql, params).await {
                Ok(rows) => Ok(rows),
                // The server answered with an error: the statement rolled back.
                Err(e) if e.as_db_error().is_some() && !e.is_closed() => {
                    Err(Failure::Definite(describe(&e)))
                }
                Err(e) => Err(Failure::Unknown(describe(&e))),
            }
        };
        let outcome = match tokio::time::timeout(timeout, run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::Unknown("timeout".into())),
        };
        if matches!(outcome, Err(Failure::Unknown(_))) {
            // The statement may still run; nothing more goes over this connection.
            *self.session = None;
        }
        outcome
    }
}

impl LockService for Service<'_> {
    fn acquire<'a>(
        &'a mut self,
        lock: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Grant, Completion>> {
        Box::pin(async move {
            let ms = lease.as_millis() as f64;
            let me = self.me.to_string();
            let rows = self
                .query(
                    Some(lock),
                    "UPDATE lease SET holder = $2, token = token + 1, \
                     expires = now() + $3::float8 * interval '1 millisecond' \
                     WHERE name = $1 AND (expires IS NULL OR expires < now()) RETURNING token",
                    &[&lock, &me, &ms],
                )
                .await
                .map_err(|f| f.completion(false))?;
            match rows.first() {
                None => Ok(Grant::Held),
                Some(row) => row
                    .try_get::<_, i64>(0)
                    .map(Grant::Granted)
                    .map_err(|e| Completion::info(format!("reading the token: {e}"))),
            }
        })
    }

    fn release<'a>(&'a mut self, lock: &'a str, token: i64) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let me = self.me.to_string();
            match self
                .query(
                    None,
                    "UPDATE lease SET holder = NULL, expires = NULL WHERE name = $1 \
                     AND holder = $2 AND token = $3 AND expires > now() RETURNING token",
                    &[&lock, &me, &token],
                )
                .await
            {
                Ok(rows) if rows.is_empty() => Completion::fail("not-held"),
                Ok(_) => Completion::Ok(Value::Null),
                Err(f) => f.completion(false),
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
            let sql = if fencing {
                "WITH fenced AS (\
                   INSERT INTO fence (name, highest) VALUES ($1, $2) \
                   ON CONFLICT (name) DO UPDATE SET highest = excluded.highest \
                   WHERE fence.highest <= excluded.highest RETURNING 1) \
                 INSERT INTO resource (name, token, id) SELECT $1::text, $2::bigint, $3::jsonb FROM fenced \
                 RETURNING seq"
            } else {
                "INSERT INTO resource (name, token, id) VALUES ($1, $2, $3) RETURNING seq"
            };
            match self.query(None, sql, &[&lock, &token, id]).await {
                Ok(rows) if rows.is_empty() => Completion::fail("stale-token"),
                Ok(_) => Completion::Ok(id.clone()),
                Err(f) => f.completion(false),
            }
        })
    }

    fn read<'a>(&'a mut self, lock: &'a str) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let rows = match self
                .query(
                    None,
                    "SELECT token, id FROM resource WHERE name = $1 ORDER BY seq",
                    &[&lock],
                )
                .await
            {
                Ok(rows) => rows,
                Err(f) => return f.completion(true),
            };
            let mut log = Vec::with_capacity(rows.len());
            for row in rows {
                match (row.try_get::<_, i64>(0), row.try_get::<_, Value>(1)) {
                    (Ok(token), Ok(id)) => log.push(json!([token, id])),
                    _ => return Completion::fail("a resource row is not (bigint, jsonb)"),
                }
            }
            Completion::Ok(Value::Array(log))
        })
    }
}

impl Client for PostgresLockClient {
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
            Ok(Box::new(PostgresLockClient::new(
                self.db.clone(),
                self.spec,
                self.request_timeout,
            )) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let mut service = Service {
                db: &self.db,
                me: &self.me,
                request_timeout: self.request_timeout,
                session: &mut self.session,
            };
            self.holder.invoke(&mut service, &self.spec, op).await
        })
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.session = None;
            Ok(())
        })
    }
}
