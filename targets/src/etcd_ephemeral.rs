//! The `ephemeral` workload on etcd (contract: [`faultline_core::ephemeral`]): a key bound to
//! a lease that a background task keeps alive.
//!
//! - register: `/v3/lease/grant` with the TTL in whole seconds (the target refuses a `ttl_ms`
//!   that is not a multiple of 1000), then `/v3/kv/put` of `/faultline-ephemeral/<name>` with
//!   that lease; then a task renews the lease (`/v3/lease/keepalive`, one request per renewal
//!   on its own connection) every third of the TTL.
//! - stall: the task stops renewing; the stall waits for the renewal in flight to finish
//!   (`quiet_after_ms` is that wait), sleeps, lets the task renew again and renews once itself:
//!   `alive` = etcd answered with a positive TTL. When the last renewal before the stall was
//!   lost (timed out), it may still land: `Info`.
//! - deregister: `/v3/lease/revoke` (the key goes with the lease); `Fail("not-registered")`
//!   when etcd says the lease is not found.
//! - list: `/v3/kv/range` of the prefix, keys only (linearizable); any failure is a `fail`.
//!
//! Design decision: renewals go on their own connection, not the client's, so a stalled or
//! slow renewal never delays the registrant's operations, and the stall can wait for exactly
//! the renewal in flight.

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_core::ephemeral::stall_request;
use faultline_core::watch::key_name;
use faultline_core::{Completion, Invocation};

use crate::etcd::{base64_decode, base64_encode, Delivery, EtcdClient};
use crate::etcd_lock::prefix_end;
use crate::http::Connection;

/// Where registrations live.
pub const PREFIX: &str = "/faultline-ephemeral/";

fn int(value: Option<&Value>) -> Option<i64> {
    let value = value?;
    value.as_i64().or_else(|| value.as_str()?.parse().ok())
}

/// What the keepalive task and the registrant share.
#[derive(Debug, Default)]
struct Shared {
    stalled: AtomicBool,
    /// The last renewal attempt got no answer (it may still land).
    last_lost: AtomicBool,
    /// etcd said the lease is gone.
    expired: AtomicBool,
    stop: AtomicBool,
}

/// One registration and its keepalive task.
#[derive(Debug)]
pub struct Registration {
    name: String,
    lease: String,
    ttl: Duration,
    shared: Arc<Shared>,
    /// Held by the task while a renewal is in flight.
    in_flight: Arc<tokio::sync::Mutex<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.task.abort();
    }
}

/// What one renewal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Renewal {
    Renewed,
    /// etcd answered: the lease is gone.
    Gone,
    /// No connection: nothing was sent.
    NotSent,
    /// Sent, no answer: it may still land.
    Lost,
}

/// One renewal on `connection`, bounded by `wait`.
async fn renew(
    addr: SocketAddr,
    connection: &mut Option<Connection>,
    lease: &str,
    wait: Duration,
) -> Renewal {
    let attempt = async {
        if !connection.as_ref().is_some_and(Connection::is_reusable) {
            match Connection::connect(addr).await {
                Ok(c) => *connection = Some(c),
                Err(_) => return Renewal::NotSent,
            }
        }
        let Some(c) = connection.as_mut() else {
            return Renewal::NotSent;
        };
        let Ok(response) = c
            .request("POST", "/v3/lease/keepalive", Some(&json!({ "ID": lease })))
            .await
        else {
            return Renewal::Lost;
        };
        if response.status != 200 {
            return Renewal::Lost;
        }
        // The gateway streams `{"result": {...}}`; a gone lease has no (or a zero) TTL.
        let result = response.body.get("result").unwrap_or(&response.body);
        if int(result.get("TTL")).unwrap_or(0) > 0 {
            Renewal::Renewed
        } else {
            Renewal::Gone
        }
    };
    match tokio::time::timeout(wait, attempt).await {
        Ok(Renewal::Renewed) => Renewal::Renewed,
        Ok(Renewal::Gone) => Renewal::Gone,
        Ok(other) => {
            *connection = None;
            other
        }
        Err(_) => {
            *connection = None;
            Renewal::Lost
        }
    }
}

fn spawn_keepalive(
    addr: SocketAddr,
    lease: String,
    ttl: Duration,
    shared: Arc<Shared>,
    in_flight: Arc<tokio::sync::Mutex<()>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut connection = None;
        let interval = ttl / 3;
        while !shared.stop.load(Ordering::SeqCst) {
            tokio::time::sleep(interval).await;
            let _renewing = in_flight.lock().await;
            if shared.stalled.load(Ordering::SeqCst) || shared.stop.load(Ordering::SeqCst) {
                continue;
            }
            match renew(addr, &mut connection, &lease, interval).await {
                Renewal::Renewed => shared.last_lost.store(false, Ordering::SeqCst),
                Renewal::Gone => {
                    shared.last_lost.store(false, Ordering::SeqCst);
                    shared.expired.store(true, Ordering::SeqCst);
                    return;
                }
                // An earlier lost renewal may still land: keep what is known.
                Renewal::NotSent => {}
                Renewal::Lost => shared.last_lost.store(true, Ordering::SeqCst),
            }
        }
    })
}

async fn call(client: &mut EtcdClient, path: &str, body: Value) -> Result<Value, Completion> {
    let deadline = Instant::now() + client.request_timeout();
    match client.post(path, &body, deadline).await {
        Delivery::Reply(response) if response.status == 200 => Ok(response.body),
        Delivery::Reply(response)
            if (400..500).contains(&response.status) && response.status != 408 =>
        {
            let error = response
                .body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            Err(Completion::fail(format!(
                "http-{}: {error}",
                response.status
            )))
        }
        Delivery::Reply(response) => Err(Completion::info(format!(
            "http-{}: {}",
            response.status, response.body
        ))),
        Delivery::NotSent(why) => Err(Completion::fail(why)),
        Delivery::Lost(why) => Err(Completion::info(why)),
    }
}

/// One `ephemeral` operation; `registration` is this client's.
pub async fn invoke(
    client: &mut EtcdClient,
    registration: &mut Option<Registration>,
    op: &Invocation,
) -> Completion {
    let name = key_name(op.key.as_ref());
    match op.f.as_str() {
        "register" => {
            if registration.is_some() {
                return Completion::fail("already-registered");
            }
            let Some(ttl_ms) = op.value.get("ttl_ms").and_then(Value::as_u64) else {
                return Completion::fail("bad-request: register takes {\"ttl_ms\": T}");
            };
            let Some(addr) = client.addr() else {
                return Completion::fail("not-opened");
            };
            let seconds = ttl_ms.div_ceil(1000).max(1);
            let grant = match call(
                client,
                "/v3/lease/grant",
                json!({"TTL": seconds.to_string()}),
            )
            .await
            {
                Ok(body) => body,
                Err(completion) => return completion,
            };
            let Some(lease) = grant.get("ID").and_then(|id| {
                id.as_str()
                    .map(str::to_string)
                    .or_else(|| id.as_i64().map(|n| n.to_string()))
            }) else {
                return Completion::info(format!("lease grant: unreadable reply {grant}"));
            };
            let granted = int(grant.get("TTL")).unwrap_or(0);
            if granted != seconds as i64 {
                let _ = call(client, "/v3/lease/revoke", json!({ "ID": lease })).await;
                return Completion::fail(format!(
                    "etcd granted a TTL of {granted} s, not {seconds} s"
                ));
            }
            let key = format!("{PREFIX}{name}");
            let put = json!({
                "key": base64_encode(key.as_bytes()),
                "value": base64_encode(b"1"),
                "lease": lease,
            });
            if let Err(completion) = call(client, "/v3/kv/put", put).await {
                // The lease (and so any key on it) goes; best effort.
                let _ = call(client, "/v3/lease/revoke", json!({ "ID": lease })).await;
                return completion;
            }
            let ttl = Duration::from_millis(seconds * 1000);
            let shared = Arc::new(Shared::default());
            let in_flight = Arc::new(tokio::sync::Mutex::new(()));
            let task = spawn_keepalive(addr, lease.clone(), ttl, shared.clone(), in_flight.clone());
            *registration = Some(Registration {
                name,
                lease,
                ttl,
                shared,
                in_flight,
                task,
            });
            Completion::Ok(json!({ "ttl_ms": ttl_ms }))
        }
        "stall" => {
            let ms = match stall_request(&op.value) {
                Ok(ms) => ms,
                Err(why) => return Completion::fail(format!("bad-request: {why}")),
            };
            let Some(r) = registration.as_ref().filter(|r| r.name == name) else {
                return Completion::fail("not-registered");
            };
            let Some(addr) = client.addr() else {
                return Completion::fail("not-opened");
            };
            let started = Instant::now();
            r.shared.stalled.store(true, Ordering::SeqCst);
            // Wait out the renewal in flight: after this, none leaves until the stall ends.
            drop(r.in_flight.lock().await);
            let quiet_after_ms = started.elapsed().as_millis() as u64;
            let unsure = r.shared.last_lost.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(ms).saturating_sub(started.elapsed())).await;
            let in_flight = r.in_flight.clone();
            let _renewing = in_flight.lock().await;
            let alive = if r.shared.expired.load(Ordering::SeqCst) {
                Some(false)
            } else {
                let mut connection = None;
                match renew(addr, &mut connection, &r.lease, r.ttl).await {
                    Renewal::Renewed => Some(true),
                    Renewal::Gone => Some(false),
                    Renewal::NotSent | Renewal::Lost => None,
                }
            };
            r.shared.stalled.store(false, Ordering::SeqCst);
            if unsure {
                *registration = None;
                return Completion::info(
                    "the last renewal before the stall got no answer and may still land",
                );
            }
            match alive {
                Some(alive) => {
                    if !alive {
                        *registration = None;
                    }
                    Completion::Ok(json!({"quiet_after_ms": quiet_after_ms, "alive": alive}))
                }
                None => {
                    *registration = None;
                    Completion::info(
                        "the renewal after the stall got no answer: alive or not is unknown",
                    )
                }
            }
        }
        "deregister" => {
            let Some(r) = registration.take().filter(|r| r.name == name) else {
                return Completion::fail("not-registered");
            };
            r.shared.stop.store(true, Ordering::SeqCst);
            match call(client, "/v3/lease/revoke", json!({ "ID": r.lease })).await {
                Ok(_) => Completion::Ok(Value::Null),
                Err(Completion::Fail(why)) if why.to_string().contains("not found") => {
                    Completion::fail("not-registered")
                }
                Err(completion) => completion,
            }
        }
        "list" => {
            let body = json!({
                "key": base64_encode(PREFIX.as_bytes()),
                "range_end": base64_encode(&prefix_end(PREFIX)),
                "keys_only": true,
            });
            match call(client, "/v3/kv/range", body).await {
                Ok(body) => {
                    let mut names = Vec::new();
                    for kv in body
                        .get("kvs")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let key = kv
                            .get("key")
                            .and_then(Value::as_str)
                            .and_then(base64_decode)
                            .and_then(|k| String::from_utf8(k).ok());
                        match key.as_deref().and_then(|k| k.strip_prefix(PREFIX)) {
                            Some(name) => names.push(json!(name)),
                            None => return Completion::fail(format!("unreadable kv {kv}")),
                        }
                    }
                    Completion::Ok(Value::Array(names))
                }
                // A read changes nothing.
                Err(Completion::Info(why)) => Completion::fail(why),
                Err(completion) => completion,
            }
        }
        f => Completion::fail(format!("unsupported: {f} in the ephemeral workload")),
    }
}

/// Closing the client: stop renewing and revoke, best effort (else the lease expires).
pub async fn close(client: &mut EtcdClient, registration: &mut Option<Registration>) {
    if let Some(r) = registration.take() {
        r.shared.stop.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            call(client, "/v3/lease/revoke", json!({ "ID": r.lease })),
        )
        .await;
    }
}
