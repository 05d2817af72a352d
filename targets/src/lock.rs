//! The holder's side of a lock client, shared by every target: what the client remembers
//! between operations (its token, when its lease ends on its own clock), the check before a
//! write, the stall of a "paused" holder, and the mapping of the contract in
//! [`faultline_core::lock`] onto a target's few primitives ([`LockService`]).
//!
//! Design decision: the targets differ only in how they grant, release and fence; the
//! holder's behaviour (when it believes it holds, when it refuses to write) is the same
//! everywhere, so it is written once here and the checker judges the same client logic on
//! every target.

use serde_json::{json, Value};
use std::time::{Duration, Instant};

use faultline_core::lock::{lock_name, write_request, LockSpec, ACQUIRE, READ, RELEASE, WRITE};
use faultline_core::{BoxFuture, Completion, Invocation};

/// What a target's lock primitives answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Grant {
    /// Granted, with this fencing token.
    Granted(i64),
    /// Another holds it (certainly not granted).
    Held,
}

/// A target's lock primitives, one request each.
///
/// # Correctness
/// - `acquire` grants only when the lock is free or its lease has ended on the service's
///   clock, with a lease of `lease` from when the service handled it, and a token greater
///   than every token it granted before. `Err` is the completion to record (`Info` when the
///   outcome is unknown).
/// - `release` releases only the grant `token` names (`Fail("not-held")` when it has gone).
/// - `write` appends `[token, id]` to the lock's resource, refusing a token lower than the
///   highest accepted when `fencing` (`Fail("stale-token")`), atomically with that check.
/// - `read` returns the resource's `[[token, id], ...]` in acceptance order.
pub trait LockService: Send {
    fn acquire<'a>(
        &'a mut self,
        lock: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Grant, Completion>>;
    fn release<'a>(&'a mut self, lock: &'a str, token: i64) -> BoxFuture<'a, Completion>;
    fn write<'a>(
        &'a mut self,
        lock: &'a str,
        token: i64,
        id: &'a Value,
        fencing: bool,
    ) -> BoxFuture<'a, Completion>;
    fn read<'a>(&'a mut self, lock: &'a str) -> BoxFuture<'a, Completion>;
}

/// A hold as its client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub token: i64,
    /// When the lease ends on the client's clock: the acquire's start + the lease.
    pub lease_end: Instant,
}

/// One client's lock state: at most one hold.
#[derive(Debug, Default)]
pub struct Holder {
    pub hold: Option<Hold>,
}

impl Holder {
    /// Performs one lock operation through `service`, keeping the hold up to date.
    pub async fn invoke(
        &mut self,
        service: &mut dyn LockService,
        spec: &LockSpec,
        op: &Invocation,
    ) -> Completion {
        let lock = lock_name(op.key.as_ref());
        match op.f.as_str() {
            ACQUIRE => {
                if self.hold.is_some() {
                    return Completion::fail("already-holding");
                }
                // The lease counts from before the request leaves: the service cannot have
                // started it earlier, so the client never believes longer than it holds.
                let started = Instant::now();
                let lease = Duration::from_millis(spec.lease_ms);
                match service.acquire(&lock, lease).await {
                    Ok(Grant::Granted(token)) => {
                        self.hold = Some(Hold {
                            token,
                            lease_end: started + lease,
                        });
                        Completion::Ok(json!({"token": token, "lease_ms": spec.lease_ms}))
                    }
                    Ok(Grant::Held) => Completion::fail("held"),
                    Err(completion) => completion,
                }
            }
            WRITE => {
                let (id, pause_ms) = match write_request(&op.value) {
                    Ok(request) => request,
                    Err(why) => return Completion::fail(format!("bad-request: {why}")),
                };
                let Some(hold) = self.hold else {
                    return Completion::fail("not-holding");
                };
                if Instant::now() >= hold.lease_end {
                    return Completion::fail("lease-expired");
                }
                if pause_ms > 0 {
                    // Checked, then stalled: the write goes out after the lease may have ended.
                    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                }
                let completion = service.write(&lock, hold.token, &id, spec.fencing).await;
                match completion {
                    Completion::Ok(_) => Completion::Ok(op.value.clone()),
                    other => other,
                }
            }
            RELEASE => match self.hold.take() {
                None => Completion::fail("not-holding"),
                Some(hold) => service.release(&lock, hold.token).await,
            },
            READ => service.read(&lock).await,
            other => Completion::fail(format!("unsupported: {other} in the lock workload")),
        }
    }
}

/// A token from the service as an integer, or why not.
pub fn token_of(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_str()?.parse().ok())
}
