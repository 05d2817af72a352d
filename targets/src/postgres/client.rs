//! [`PostgresClient`]: one connection to the server per worker (made at the first operation,
//! made again after it was lost), every operation one transaction at the test's isolation
//! level: `BEGIN ISOLATION LEVEL <level>`, the statements, `COMMIT`.
//!
//! What each workload's operations do (tables in [`super::SCHEMA`]; keys and values are JSON):
//! - `register`: `read` -> `SELECT v FROM registers WHERE k = $key` (`null`: no row);
//!   `write` -> upsert; `cas [old, new]` -> `UPDATE ... SET v = new WHERE k = $key AND v = old`
//!   (no row updated: `fail` / `compare-failed`; `old` = `null` inserts the row only if there
//!   is none).
//! - `list-append` (`txn`, micro-operations `r` and `append`): `r` -> the key's JSON array
//!   (`null`: no row); `append` -> `INSERT ... ON CONFLICT (k) DO UPDATE SET v = lists.v ||
//!   excluded.v`.
//! - `rw-register` (`txn`, micro-operations `r` and `w`): `registers`, as `read` / `write`.
//! - `bank`: `transfer {from, to, amount}` -> read the balances of `from` and `to`; if `from`
//!   holds less than `amount`, `fail` / `insufficient-funds`; else write both new balances,
//!   the lower account first (values computed by the client from what it read, as an
//!   application would: at read committed this loses updates); `read` -> every balance,
//!   `{"0": 12, "1": 13, ...}`.
//!
//! How outcomes map (the moment that matters is when `COMMIT` is sent: before it, the server
//! cannot commit the transaction; a client that gives up drops the connection, so the
//! server rolls back):
//! - any error before `COMMIT` was sent (a statement's error, SQLSTATE 40001 serialization
//!   failure, 40P01 deadlock, a lost connection, this client's own timeout, a connection that
//!   could not be made, a malformed operation) -> `fail`;
//! - `COMMIT` answered -> `ok`; `COMMIT` refused with 40001, 40P01, 40002 or an integrity
//!   violation (class 23) -> `fail` (the server rolled back);
//! - anything else once `COMMIT` was sent (the connection lost, a timeout, another error) ->
//!   `info` (for an operation that only reads, `fail`: it changed nothing either way). The
//!   worker then continues as a new process with a new connection.
//!
//! [`classify_commit_error`] holds the COMMIT rule, [`describe`] the error text recorded.

use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

use faultline_core::txn::{parse_txn, Bank, MicroOp, MopKind, Transfer, READ, TRANSFER, TXN};
use faultline_core::{BoxFuture, Client, Completion, HarnessError, Invocation, Test};
use tokio_postgres::error::SqlState;
use tokio_postgres::Statement;

use super::PostgresDb;

/// A transaction's isolation level (`--isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Isolation {
    pub const ALL: [Isolation; 3] = [
        Isolation::ReadCommitted,
        Isolation::RepeatableRead,
        Isolation::Serializable,
    ];

    /// The option's spelling: `read-committed`, `repeatable-read`, `serializable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read-committed",
            Isolation::RepeatableRead => "repeatable-read",
            Isolation::Serializable => "serializable",
        }
    }

    /// The statement that opens a transaction at this level.
    pub fn begin_sql(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
            Isolation::RepeatableRead => "BEGIN ISOLATION LEVEL REPEATABLE READ",
            Isolation::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        }
    }
}

impl std::str::FromStr for Isolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Isolation, String> {
        Isolation::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| {
                format!("{s:?}; expected read-committed, repeatable-read or serializable")
            })
    }
}

/// Which tables and operations a workload uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataModel {
    /// `read` / `write` / `cas` on `registers`.
    Register,
    /// `txn` of `r` / `append` on `lists`.
    ListAppend,
    /// `txn` of `r` / `w` on `registers`.
    RwRegister,
    /// `transfer` / `read` on `accounts`.
    Bank,
}

impl DataModel {
    /// The data model of workload `name`, if this target can perform it.
    pub fn for_workload(name: &str) -> Option<DataModel> {
        match name {
            "register" => Some(DataModel::Register),
            "list-append" => Some(DataModel::ListAppend),
            "rw-register" => Some(DataModel::RwRegister),
            "bank" => Some(DataModel::Bank),
            _ => None,
        }
    }
}

/// An operation, checked and ready to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Read { key: Value },
    Write { key: Value, value: Value },
    Cas { key: Value, old: Value, new: Value },
    Txn(Vec<MicroOp>),
    Transfer { from: i64, to: i64, amount: i64 },
    ReadBalances,
}

impl Request {
    /// Whether performing it can change nothing (an unknown outcome is then a `fail`).
    pub fn read_only(&self) -> bool {
        match self {
            Request::Read { .. } | Request::ReadBalances => true,
            Request::Txn(mops) => mops.iter().all(|m| !m.kind.is_write()),
            _ => false,
        }
    }
}

fn bad(why: impl std::fmt::Display) -> String {
    format!("bad-request: {why}")
}

/// Checks `op` against the data model (and the bank's accounts); the error is a definite
/// `fail` (nothing was sent).
pub fn parse_request(
    model: DataModel,
    bank: Option<&Bank>,
    op: &Invocation,
) -> Result<Request, String> {
    let key = || op.key.clone().unwrap_or(Value::Null);
    let writable = |value: &Value| {
        if value.is_null() {
            Err(bad("null means never written and cannot be written"))
        } else {
            Ok(())
        }
    };
    match (model, op.f.as_str()) {
        (DataModel::Register, "read") => Ok(Request::Read { key: key() }),
        (DataModel::Register, "write") => {
            writable(&op.value)?;
            Ok(Request::Write {
                key: key(),
                value: op.value.clone(),
            })
        }
        (DataModel::Register, "cas") => match op.value.as_array().map(Vec::as_slice) {
            Some([old, new]) => {
                writable(new)?;
                Ok(Request::Cas {
                    key: key(),
                    old: old.clone(),
                    new: new.clone(),
                })
            }
            _ => Err(bad(format!("cas needs [old, new], got {}", op.value))),
        },
        (DataModel::ListAppend | DataModel::RwRegister, TXN) => {
            let mops = parse_txn(&op.value).map_err(bad)?;
            let (workload, write) = match model {
                DataModel::ListAppend => ("list-append", MopKind::Append),
                _ => ("rw-register", MopKind::Write),
            };
            if let Some(mop) = mops.iter().find(|m| m.kind.is_write() && m.kind != write) {
                return Err(bad(format!(
                    "the {workload} workload has no {} micro-operation ({})",
                    mop.kind.as_str(),
                    mop.to_json()
                )));
            }
            Ok(Request::Txn(mops))
        }
        (DataModel::Bank, READ) => Ok(Request::ReadBalances),
        (DataModel::Bank, TRANSFER) => {
            let bank = bank.expect("a bank client knows its bank");
            let transfer = Transfer::parse(&op.value, bank).map_err(bad)?;
            Ok(Request::Transfer {
                from: transfer.from as i64,
                to: transfer.to as i64,
                amount: transfer.amount,
            })
        }
        (_, f) => Err(bad(format!(
            "the {model:?} data model has no operation {f}"
        ))),
    }
}

/// An error as recorded in the history: `SQLSTATE: message` for the server's errors
/// (`40001: could not serialize access due to concurrent update`), the connection's own
/// error otherwise (`connection-lost: ...` when it closed).
pub fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        format!("{}: {}", db.code().code(), db.message())
    } else if error.is_closed() {
        format!("connection-lost: {error}")
    } else {
        error.to_string()
    }
}

/// Whether a COMMIT refused with `code` certainly rolled back: a serialization failure, a
/// deadlock, an integrity violation at commit (deferred constraints). 40003
/// (statement_completion_unknown) and everything else are unknown.
pub fn commit_refused(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::T_R_INTEGRITY_CONSTRAINT_VIOLATION
        || code.code().starts_with("23")
}

/// How a transaction ended without `ok`.
#[derive(Debug, Clone, PartialEq)]
pub enum Abort {
    /// It certainly did not take effect: `fail`.
    Definite(String),
    /// It may have taken effect: `info` (`fail` when it only read).
    Unknown(String),
}

/// What an error from COMMIT means.
pub fn classify_commit_error(error: &tokio_postgres::Error) -> Abort {
    match error.code() {
        Some(code) if commit_refused(code) => Abort::Definite(describe(error)),
        _ => Abort::Unknown(describe(error)),
    }
}

/// The completion of an aborted request.
pub fn completion_of(request_read_only: bool, abort: Abort) -> Completion {
    match abort {
        Abort::Definite(why) => Completion::fail(why),
        Abort::Unknown(why) if request_read_only => Completion::fail(why),
        Abort::Unknown(why) => Completion::info(why),
    }
}

/// The statements one data model uses, prepared once per connection (one round trip each
/// per use instead of two).
struct Statements {
    /// A key's value (registers, lists) or an account's balance (bank).
    read: Statement,
    /// Upsert of a register, append to a list.
    write: Option<Statement>,
    /// A register's compare-and-set, and its insert when it must not exist yet.
    cas: Option<Statement>,
    create: Option<Statement>,
    /// Every account's balance; one account's new balance.
    read_all: Option<Statement>,
    set: Option<Statement>,
}

impl Statements {
    async fn prepare(
        client: &tokio_postgres::Client,
        model: DataModel,
    ) -> Result<Statements, tokio_postgres::Error> {
        Ok(match model {
            DataModel::Register | DataModel::RwRegister => Statements {
                read: client
                    .prepare("SELECT v FROM registers WHERE k = $1")
                    .await?,
                write: Some(
                    client
                        .prepare(
                            "INSERT INTO registers (k, v) VALUES ($1, $2) \
                             ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                        )
                        .await?,
                ),
                cas: Some(
                    client
                        .prepare("UPDATE registers SET v = $3 WHERE k = $1 AND v = $2")
                        .await?,
                ),
                create: Some(
                    client
                        .prepare(
                            "INSERT INTO registers (k, v) VALUES ($1, $2) \
                             ON CONFLICT (k) DO NOTHING",
                        )
                        .await?,
                ),
                read_all: None,
                set: None,
            },
            DataModel::ListAppend => Statements {
                read: client.prepare("SELECT v FROM lists WHERE k = $1").await?,
                write: Some(
                    client
                        .prepare(
                            "INSERT INTO lists (k, v) VALUES ($1, jsonb_build_array($2::jsonb)) \
                             ON CONFLICT (k) DO UPDATE SET v = lists.v || excluded.v",
                        )
                        .await?,
                ),
                cas: None,
                create: None,
                read_all: None,
                set: None,
            },
            DataModel::Bank => Statements {
                read: client
                    .prepare("SELECT balance FROM accounts WHERE id = $1")
                    .await?,
                write: None,
                cas: None,
                create: None,
                read_all: Some(
                    client
                        .prepare("SELECT id, balance FROM accounts ORDER BY id")
                        .await?,
                ),
                set: Some(
                    client
                        .prepare("UPDATE accounts SET balance = $2 WHERE id = $1")
                        .await?,
                ),
            },
        })
    }
}

/// The task that drives a connection, ended when this is dropped: the socket closes at once
/// (the server then rolls back an open transaction), even with a request still in flight, and
/// also when the future that made the connection is cancelled halfway.
struct ConnectionTask(tokio::task::JoinHandle<()>);

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A connection with its statements.
struct Session {
    client: tokio_postgres::Client,
    _connection: ConnectionTask,
    statements: Statements,
}

/// Why a transaction's body stopped before COMMIT.
enum Stop {
    /// A statement failed.
    Sql(tokio_postgres::Error),
    /// The body refused to go on (`compare-failed`, `insufficient-funds`): roll back.
    Refuse(String),
}

impl From<tokio_postgres::Error> for Stop {
    fn from(e: tokio_postgres::Error) -> Stop {
        Stop::Sql(e)
    }
}

/// A client of the server (a template until opened).
pub struct PostgresClient {
    db: Arc<PostgresDb>,
    model: DataModel,
    isolation: Isolation,
    request_timeout: Duration,
    session: Option<Session>,
    /// Set once COMMIT was handed to the connection: from then on, an error or a timeout is
    /// an unknown outcome.
    committing: bool,
}

impl std::fmt::Debug for PostgresClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresClient")
            .field("model", &self.model)
            .field("isolation", &self.isolation)
            .field("connected", &self.session.is_some())
            .finish()
    }
}

impl PostgresClient {
    /// A template client of `db` for `model`'s operations, every operation one transaction at
    /// `isolation`, bounded by `request_timeout`.
    pub fn new(
        db: Arc<PostgresDb>,
        model: DataModel,
        isolation: Isolation,
        request_timeout: Duration,
    ) -> PostgresClient {
        PostgresClient {
            db,
            model,
            isolation,
            request_timeout,
            session: None,
            committing: false,
        }
    }

    /// Makes the connection (and prepares its statements) when there is none.
    async fn connect(&mut self) -> Result<(), Abort> {
        if self.session.is_none() {
            let config = self
                .db
                .client_config(super::DATABASE)
                .map_err(|e| Abort::Definite(format!("connect: {e}")))?;
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| Abort::Definite(format!("connect: {}", describe(&e))))?;
            let connection = ConnectionTask(tokio::spawn(async move {
                let _ = connection.await;
            }));
            // A failure (or a cancellation) here drops the connection with the task.
            let statements = Statements::prepare(&client, self.model)
                .await
                .map_err(|e| Abort::Definite(format!("prepare: {}", describe(&e))))?;
            let session = Session {
                client,
                _connection: connection,
                statements,
            };
            self.session = Some(session);
        }
        Ok(())
    }

    /// Runs `request` as one transaction; see the module's docs for the outcomes.
    async fn perform(&mut self, request: &Request) -> Result<Value, Abort> {
        let begin = self.isolation.begin_sql();
        self.connect().await?;
        let session = self.session.as_ref().expect("connected above");
        let body = async {
            session.client.batch_execute(begin).await?;
            run_body(session, request).await
        }
        .await;
        let value = match body {
            Ok(value) => value,
            Err(stop) => {
                let (why, usable) = match stop {
                    Stop::Refuse(why) => (why, true),
                    Stop::Sql(e) => {
                        // A server error leaves the connection usable; a lost one does not.
                        let usable = e.as_db_error().is_some() && !e.is_closed();
                        (describe(&e), usable)
                    }
                };
                // COMMIT is never sent after a stop: roll back to reuse the connection, or
                // drop it (the server rolls back when it sees the connection gone).
                let rolled_back = usable && session.client.batch_execute("ROLLBACK").await.is_ok();
                if !rolled_back {
                    self.session = None;
                }
                return Err(Abort::Definite(why));
            }
        };
        self.committing = true;
        match session.client.batch_execute("COMMIT").await {
            Ok(()) => Ok(value),
            Err(e) => {
                let abort = classify_commit_error(&e);
                if matches!(abort, Abort::Unknown(_)) || e.is_closed() {
                    self.session = None;
                }
                Err(abort)
            }
        }
    }

    async fn call(&mut self, op: &Invocation) -> Completion {
        let request = match parse_request(self.model, self.db.bank().as_ref(), op) {
            Ok(request) => request,
            Err(why) => return Completion::fail(why),
        };
        self.committing = false;
        let result = tokio::time::timeout(self.request_timeout, self.perform(&request)).await;
        match result {
            Ok(Ok(value)) => Completion::Ok(value),
            Ok(Err(abort)) => completion_of(request.read_only(), abort),
            Err(_elapsed) => {
                // The request may still be running: the connection is dropped, so nothing
                // of it can be committed unless COMMIT was already handed over.
                self.session = None;
                let abort = if self.committing {
                    Abort::Unknown("timeout during commit".into())
                } else {
                    Abort::Definite("timeout before commit".into())
                };
                completion_of(request.read_only(), abort)
            }
        }
    }
}

/// The statements of `request` inside the open transaction; the value to record on `ok`.
async fn run_body(session: &Session, request: &Request) -> Result<Value, Stop> {
    let client = &session.client;
    let statements = &session.statements;
    let need = |s: &Option<Statement>| s.clone().expect("prepared for this data model");
    match request {
        Request::Read { key } => {
            let row = client.query_opt(&statements.read, &[key]).await?;
            Ok(row.map_or(Ok(Value::Null), |r| r.try_get::<_, Value>(0))?)
        }
        Request::Write { key, value } => {
            client
                .execute(&need(&statements.write), &[key, value])
                .await?;
            Ok(value.clone())
        }
        Request::Cas { key, old, new } => {
            let updated = if old.is_null() {
                client
                    .execute(&need(&statements.create), &[key, new])
                    .await?
            } else {
                client
                    .execute(&need(&statements.cas), &[key, old, new])
                    .await?
            };
            if updated == 1 {
                Ok(json!([old, new]))
            } else {
                Err(Stop::Refuse("compare-failed".into()))
            }
        }
        Request::Txn(mops) => {
            let mut done = Vec::with_capacity(mops.len());
            for mop in mops {
                let value = match mop.kind {
                    MopKind::Read => {
                        let row = client.query_opt(&statements.read, &[&mop.key]).await?;
                        row.map_or(Ok(Value::Null), |r| r.try_get::<_, Value>(0))?
                    }
                    MopKind::Write | MopKind::Append => {
                        client
                            .execute(&need(&statements.write), &[&mop.key, &mop.value])
                            .await?;
                        mop.value.clone()
                    }
                };
                done.push(
                    MicroOp {
                        value,
                        ..mop.clone()
                    }
                    .to_json(),
                );
            }
            Ok(Value::Array(done))
        }
        Request::Transfer { from, to, amount } => {
            let set = need(&statements.set);
            let balance = |account: i64| async move {
                match client.query_opt(&statements.read, &[&account]).await? {
                    Some(row) => Ok(row.try_get::<_, i64>(0)?),
                    None => Err(Stop::Refuse(format!("no-such-account: {account}"))),
                }
            };
            let from_balance = balance(*from).await?;
            let to_balance = balance(*to).await?;
            if from_balance < *amount {
                return Err(Stop::Refuse("insufficient-funds".into()));
            }
            // The lower account first, as a careful application would: transfers then never
            // wait for each other's row locks in a cycle (no deadlocks to detect).
            let mut writes = [(*from, from_balance - amount), (*to, to_balance + amount)];
            writes.sort_unstable();
            for (account, balance) in writes {
                client.execute(&set, &[&account, &balance]).await?;
            }
            Ok(json!({"from": from, "to": to, "amount": amount}))
        }
        Request::ReadBalances => {
            let rows = client.query(&need(&statements.read_all), &[]).await?;
            let mut balances = Map::new();
            for row in rows {
                let id: i64 = row.try_get(0)?;
                let balance: i64 = row.try_get(1)?;
                balances.insert(id.to_string(), json!(balance));
            }
            Ok(Value::Object(balances))
        }
    }
}

impl Client for PostgresClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async move {
            // No connection yet: a server that is down is a failed operation at invoke time,
            // not a harness error. Every worker talks to the one server, whatever its node.
            self.db.server_addr().map_err(|e| HarnessError::Client {
                node: node.to_string(),
                why: e.to_string(),
            })?;
            Ok(Box::new(PostgresClient::new(
                self.db.clone(),
                self.model,
                self.isolation,
                self.request_timeout,
            )) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(self.call(op))
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.session = None;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: &str, key: Option<Value>, value: Value) -> Invocation {
        Invocation {
            process: 0,
            f: f.to_string(),
            key,
            value,
        }
    }

    #[test]
    fn isolation_levels_parse_and_begin() {
        for level in Isolation::ALL {
            assert_eq!(level.as_str().parse::<Isolation>(), Ok(level));
            assert!(level.begin_sql().starts_with("BEGIN ISOLATION LEVEL "));
        }
        assert_eq!(
            Isolation::RepeatableRead.begin_sql(),
            "BEGIN ISOLATION LEVEL REPEATABLE READ"
        );
        assert!("snapshot-isolation".parse::<Isolation>().is_err());
    }

    #[test]
    fn register_operations_parse_and_bad_ones_fail_before_sending() {
        let m = DataModel::Register;
        assert_eq!(
            parse_request(m, None, &op("read", Some(json!(3)), Value::Null)),
            Ok(Request::Read { key: json!(3) })
        );
        assert_eq!(
            parse_request(m, None, &op("cas", Some(json!(3)), json!([null, 4]))),
            Ok(Request::Cas {
                key: json!(3),
                old: Value::Null,
                new: json!(4)
            })
        );
        for bad_op in [
            op("write", Some(json!(3)), Value::Null),
            op("cas", Some(json!(3)), json!(4)),
            op("cas", Some(json!(3)), json!([1, null])),
            op("txn", None, json!([["r", 1, null]])),
            op("add", Some(json!(3)), json!(1)),
        ] {
            let err = parse_request(m, None, &bad_op).unwrap_err();
            assert!(err.starts_with("bad-request"), "{err}");
        }
    }

    #[test]
    fn txn_micro_operations_must_match_the_workload() {
        let txn = op(
            "txn",
            None,
            json!([["r", "x", null], ["append", "x", 3], ["r", 7, null]]),
        );
        let Ok(Request::Txn(mops)) = parse_request(DataModel::ListAppend, None, &txn) else {
            panic!("a list-append txn")
        };
        assert_eq!(
            mops.iter().map(|m| m.kind).collect::<Vec<_>>(),
            [MopKind::Read, MopKind::Append, MopKind::Read]
        );
        assert_eq!(mops[2].key, json!(7));
        assert!(!Request::Txn(mops).read_only());
        assert!(
            parse_request(DataModel::RwRegister, None, &txn).is_err(),
            "no append"
        );
        let reads = op("txn", None, json!([["r", 1, null], ["r", 2, null]]));
        assert!(parse_request(DataModel::RwRegister, None, &reads)
            .unwrap()
            .read_only());
        for bad_value in [
            json!(3),
            json!([["r", 1]]),
            json!([["w", 1, null]]),
            json!([["x", 1, 2]]),
        ] {
            assert!(
                parse_request(
                    DataModel::RwRegister,
                    None,
                    &op("txn", None, bad_value.clone())
                )
                .is_err(),
                "{bad_value}"
            );
        }
    }

    #[test]
    fn bank_operations_parse() {
        let m = DataModel::Bank;
        let bank = Bank {
            accounts: 5,
            total: 100,
        };
        let parse = |op: &Invocation| parse_request(m, Some(&bank), op);
        assert_eq!(
            parse(&op(
                "transfer",
                None,
                json!({"from": 1, "to": 2, "amount": 3})
            )),
            Ok(Request::Transfer {
                from: 1,
                to: 2,
                amount: 3
            })
        );
        assert_eq!(
            parse(&op("read", None, Value::Null)),
            Ok(Request::ReadBalances)
        );
        assert!(Request::ReadBalances.read_only());
        assert!(parse(&op("transfer", None, json!({"from": 1, "to": 2}))).is_err());
        for bad_transfer in [
            json!({"from": 1, "to": 2, "amount": -1}),
            json!({"from": 1, "to": 1, "amount": 1}),
            json!({"from": 1, "to": 5, "amount": 1}),
        ] {
            assert!(
                parse(&op("transfer", None, bad_transfer.clone())).is_err(),
                "{bad_transfer}"
            );
        }
    }

    #[test]
    fn commit_errors_that_certainly_rolled_back_are_fail_the_rest_info() {
        for code in [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::UNIQUE_VIOLATION,
            SqlState::FOREIGN_KEY_VIOLATION,
        ] {
            assert!(commit_refused(&code), "{}", code.code());
        }
        for code in [
            SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::IO_ERROR,
        ] {
            assert!(!commit_refused(&code), "{}", code.code());
        }
        // An unknown outcome of a write is info; of a read, fail.
        assert_eq!(
            completion_of(false, Abort::Unknown("timeout during commit".into())),
            Completion::info("timeout during commit")
        );
        assert_eq!(
            completion_of(true, Abort::Unknown("timeout during commit".into())),
            Completion::fail("timeout during commit")
        );
        assert_eq!(
            completion_of(false, Abort::Definite("40001: x".into())),
            Completion::fail("40001: x")
        );
    }
}
