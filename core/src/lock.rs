//! Locks with leases and fencing tokens as a client receives and answers them: the contract
//! between the `lock` / `fenced-lock` workloads and every target's client.
//!
//! Each operation has the lock's name as its `key` (a JSON string; the workload uses
//! `"lock"`). A client holds at most one lock at a time and remembers it between operations
//! (its token and when its lease ends, measured on its own clock from the moment it sent the
//! acquire):
//! - `acquire`, value `{"lease_ms": L}`: one attempt, no waiting. `Ok({"token": T,
//!   "lease_ms": L})` when granted, `T` the fencing token (it grows with every grant of the
//!   lock) and `L` the lease the client counts from the acquire's invocation; `Fail("held")`
//!   when another holds it; `Info` when unknown.
//! - `write`, value `{"id": n}` or `{"id": n, "pause_ms": p}`: a write of id `n` to the lock's
//!   protected resource with the client's token. Before sending, the client checks that its
//!   lease has not ended (`Fail("lease-expired")`, nothing sent, when it has); with `pause_ms`
//!   it then stalls that long before sending, as a holder whose process was paused between
//!   its check and its write (the case fencing tokens exist for). With fencing on
//!   ([`LockSpec::fencing`]) the resource rejects a token lower than the highest it has
//!   accepted: `Fail("stale-token")`; with fencing off it accepts every write. `Ok(value)`
//!   when accepted.
//! - `release`, value null: gives the lock up if the client's token still holds it. `Ok` when
//!   released, `Fail("not-held")` when the lock had already gone (expired, taken by another);
//!   the client forgets its hold either way.
//! - `read`, value null (after the main phase): every write the resource accepted, in the order
//!   it accepted them, as `Ok([[token, id], ...])`.
//!
//! ```
//! use faultline_core::lock::{LockSpec, write_request};
//! use faultline_core::Test;
//! use serde_json::json;
//! let mut test = Test::example("memory", "fenced-lock", 1);
//! test.workload_options.insert("lease_ms".into(), json!(500));
//! let spec = LockSpec::from_test(&test).unwrap();
//! assert_eq!((spec.lease_ms, spec.fencing), (500, true));
//! assert_eq!(write_request(&json!({"id": 3, "pause_ms": 20})).unwrap(), (json!(3), 20));
//! ```
//!
//! Design decision: the client, not the service, decides when its hold ends (its own lease
//! clock, started when it asked), because that is what a real holder can know; the checker
//! judges exactly that belief, and the resource's own record of what it accepted.

use serde_json::Value;

use crate::test::Test;

/// `f` of an acquire.
pub const ACQUIRE: &str = "acquire";
/// `f` of a release.
pub const RELEASE: &str = "release";
/// `f` of a write to the protected resource.
pub const WRITE: &str = "write";
/// `f` of the read of the protected resource.
pub const READ: &str = "read";
/// Workload option: the lease each acquire asks for, in milliseconds.
pub const OPTION_LEASE_MS: &str = "lease_ms";
/// Workload option: whether the resource rejects lower tokens (`true` / `false`).
pub const OPTION_FENCING: &str = "fencing";
/// Workload option: how long a paused holder stalls between its lease check and a write (0 =
/// never).
pub const OPTION_CLIENT_PAUSE_MS: &str = "client_pause_ms";
/// The lease when the test does not say.
pub const DEFAULT_LEASE_MS: u64 = 1_000;
/// The shortest lease a test may ask for (etcd's leases count whole seconds; shorter leases
/// are pure scheduling noise on a loaded machine).
pub const MIN_LEASE_MS: u64 = 10;

/// What every lock client of a test agrees on, from `test.workload` and
/// `test.workload_options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockSpec {
    pub lease_ms: u64,
    /// The resource rejects tokens lower than the highest it has accepted.
    pub fencing: bool,
    pub client_pause_ms: u64,
}

impl LockSpec {
    /// Reads the options; `fenced-lock` means fencing on (and refuses `fencing: false`),
    /// `lock` defaults to fencing off. Unknown options are the workload's to refuse.
    pub fn from_test(test: &Test) -> Result<LockSpec, String> {
        let options = &test.workload_options;
        let fenced_workload = test.workload == "fenced-lock";
        let number = |name: &str, default: u64| match options.get(name) {
            None => Ok(default),
            Some(value) => value
                .as_u64()
                .ok_or_else(|| format!("{name}: expected a non-negative integer, got {value}")),
        };
        let lease_ms = number(OPTION_LEASE_MS, DEFAULT_LEASE_MS)?;
        if lease_ms < MIN_LEASE_MS {
            return Err(format!(
                "{OPTION_LEASE_MS}: at least {MIN_LEASE_MS} ms, got {lease_ms}"
            ));
        }
        let fencing = match options.get(OPTION_FENCING) {
            None => fenced_workload,
            Some(Value::Bool(on)) => *on,
            Some(Value::String(s)) if s == "on" => true,
            Some(Value::String(s)) if s == "off" => false,
            Some(other) => {
                return Err(format!("{OPTION_FENCING}: expected on or off, got {other}"))
            }
        };
        if fenced_workload && !fencing {
            return Err(format!(
                "{OPTION_FENCING}: fenced-lock always fences; use the lock workload for no fencing"
            ));
        }
        Ok(LockSpec {
            lease_ms,
            fencing,
            client_pause_ms: number(OPTION_CLIENT_PAUSE_MS, 0)?,
        })
    }
}

/// A write's id and how long its holder stalls before sending it.
pub fn write_request(value: &Value) -> Result<(Value, u64), String> {
    let id = value
        .get("id")
        .cloned()
        .ok_or_else(|| format!("a write takes {{\"id\": n}}, got {value}"))?;
    let pause_ms = match value.get("pause_ms") {
        None => 0,
        Some(p) => p
            .as_u64()
            .ok_or_else(|| format!("pause_ms: expected a non-negative integer, got {p}"))?,
    };
    Ok((id, pause_ms))
}

/// The lock's name from an operation's key: a JSON string's text, else the key's JSON.
pub fn lock_name(key: Option<&Value>) -> String {
    match key {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "lock".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_have_defaults_and_bad_ones_are_refused() {
        let mut test = Test::example("memory", "lock", 1);
        let spec = LockSpec::from_test(&test).unwrap();
        assert_eq!(
            spec,
            LockSpec {
                lease_ms: DEFAULT_LEASE_MS,
                fencing: false,
                client_pause_ms: 0
            }
        );
        test.workload_options.insert("fencing".into(), json!("on"));
        assert!(LockSpec::from_test(&test).unwrap().fencing);
        test.workload_options
            .insert("fencing".into(), json!("maybe"));
        assert!(LockSpec::from_test(&test).is_err());
        test.workload_options.insert("fencing".into(), json!(false));
        test.workload_options.insert("lease_ms".into(), json!(1));
        assert!(LockSpec::from_test(&test).unwrap_err().contains("at least"));
        test.workload = "fenced-lock".into();
        test.workload_options.remove("lease_ms");
        assert!(LockSpec::from_test(&test)
            .unwrap_err()
            .contains("always fences"));
    }

    #[test]
    fn writes_name_their_id() {
        assert_eq!(write_request(&json!({"id": 7})).unwrap(), (json!(7), 0));
        assert!(write_request(&json!(7)).is_err());
        assert!(write_request(&json!({"id": 7, "pause_ms": -1})).is_err());
        assert_eq!(lock_name(Some(&json!("a"))), "a");
        assert_eq!(lock_name(Some(&json!(3))), "3");
    }
}
