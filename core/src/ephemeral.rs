//! Failure detection through ephemeral registrations as a client receives and answers it: the
//! contract between the `ephemeral` workload and every target's client.
//!
//! A registrant registers under a name unique in the run (the operation's `key`, a JSON
//! string) bound to its session or lease (ZooKeeper: an ephemeral znode of its session; etcd: a
//! key attached to a lease; memory: an entry with a deadline), and keeps it alive (etcd: lease
//! keepalives every third of the TTL; ZooKeeper: the session's pings) until it stalls or
//! deregisters. Observers list the registrations.
//! - `register`, key `N`, value `{"ttl_ms": T}`: `Ok({"ttl_ms": T})` when registered with a TTL
//!   (lease TTL, session timeout) of `T` ms; the client then keeps it alive.
//! - `stall`, key `N`, value `{"ms": d}`: the client stops keeping its registration alive for
//!   `d` ms, as a process stopped by the scheduler or cut off from the service, then resumes
//!   and asks whether its registration survived. `Ok({"quiet_after_ms": q, "alive": a})`: no
//!   renewal of the registration can have reached the service later than `q` ms after the
//!   stall's invocation (the client waited that long for its last renewal in flight), and `a`
//!   says whether the registration was still there after the stall (`false`: the client
//!   found it gone or its session ended, and no longer holds it; this says nothing about when
//!   the service removed it). `Info` when the client cannot tell when its
//!   last renewal landed.
//! - `deregister`, key `N`: removes the registration (etcd: revokes the lease; ZooKeeper:
//!   closes the session). `Ok` when removed, `Fail("not-registered")` when it had already gone.
//! - `list`, value null: `Ok([N, ...])`, every registration the service lists now.
//!
//! A registration whose process ended with `info` is abandoned: its worker closes the client,
//! which revokes or lets it expire at some unknown time.
//!
//! ```
//! use faultline_core::ephemeral::EphemeralSpec;
//! use faultline_core::Test;
//! use serde_json::json;
//! let mut test = Test::example("memory", "ephemeral", 1);
//! test.workload_options.insert("ttl_ms".into(), json!(1000));
//! let spec = EphemeralSpec::from_test(&test).unwrap();
//! assert_eq!(spec.long_stall_ms(), 1000 + spec.slack_ms + 500);
//! assert_eq!(spec.short_stall_ms(), 250);
//! ```
//!
//! Design decision: the registrant simulates its own stall (it stops renewing) rather than
//! relying on the nemesis to stop it, so the history says exactly when the service last heard
//! from it; server pauses and partitions from the nemesis then test the service's side.

use serde_json::Value;

use crate::test::Test;

/// `f` of a registration.
pub const REGISTER: &str = "register";
/// `f` of a stall of the keepalives.
pub const STALL: &str = "stall";
/// `f` of a deregistration.
pub const DEREGISTER: &str = "deregister";
/// `f` of an observer's listing.
pub const LIST: &str = "list";
/// Workload option: the TTL / session timeout, in ms.
pub const OPTION_TTL_MS: &str = "ttl_ms";
/// Workload option: how long after the TTL the service may take to remove an expired
/// registration, in ms.
pub const OPTION_SLACK_MS: &str = "slack_ms";
/// Workload option: how many worker threads register (the rest list).
pub const OPTION_REGISTRANTS: &str = "registrants";
pub const DEFAULT_TTL_MS: u64 = 1_000;
pub const DEFAULT_SLACK_MS: u64 = 1_000;
/// Room a stall needs past its length (its last renewal in flight, the check after it), ms.
pub const STALL_MARGIN_MS: u64 = 500;
/// The shortest TTL a test may ask for.
pub const MIN_TTL_MS: u64 = 100;

/// What every client of an `ephemeral` test agrees on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EphemeralSpec {
    pub ttl_ms: u64,
    pub slack_ms: u64,
    /// `None`: half the threads, at least one.
    pub registrants: Option<u64>,
}

impl EphemeralSpec {
    /// Reads the options; unknown options are the workload's to refuse.
    pub fn from_test(test: &Test) -> Result<EphemeralSpec, String> {
        let options = &test.workload_options;
        let number = |name: &str, default: u64| match options.get(name) {
            None => Ok(default),
            Some(value) => value
                .as_u64()
                .ok_or_else(|| format!("{name}: expected a non-negative integer, got {value}")),
        };
        let ttl_ms = number(OPTION_TTL_MS, DEFAULT_TTL_MS)?;
        if ttl_ms < MIN_TTL_MS {
            return Err(format!(
                "{OPTION_TTL_MS}: at least {MIN_TTL_MS} ms, got {ttl_ms}"
            ));
        }
        let slack_ms = number(OPTION_SLACK_MS, DEFAULT_SLACK_MS)?;
        let registrants = match options.get(OPTION_REGISTRANTS) {
            None => None,
            Some(_) => Some(number(OPTION_REGISTRANTS, 1)?),
        };
        if registrants == Some(0) {
            return Err(format!("{OPTION_REGISTRANTS}: at least 1"));
        }
        let spec = EphemeralSpec {
            ttl_ms,
            slack_ms,
            registrants,
        };
        if spec.long_stall_ms() + STALL_MARGIN_MS >= test.limits.op_timeout_ms {
            return Err(format!(
                "{OPTION_TTL_MS}: a long stall ({} ms) and {STALL_MARGIN_MS} ms must fit in the op timeout ({} ms)",
                spec.long_stall_ms(),
                test.limits.op_timeout_ms
            ));
        }
        Ok(spec)
    }

    /// A stall the registration must survive: a quarter of the TTL.
    pub fn short_stall_ms(&self) -> u64 {
        self.ttl_ms / 4
    }

    /// A stall the registration must not survive: past the TTL and the slack by half a TTL.
    pub fn long_stall_ms(&self) -> u64 {
        self.ttl_ms + self.slack_ms + self.ttl_ms / 2
    }

    /// How many of `threads` register.
    pub fn registrant_threads(&self, threads: usize) -> usize {
        match self.registrants {
            Some(n) => (n as usize).min(threads),
            None => (threads / 2).max(1),
        }
    }
}

/// A stall's length from its invocation value.
pub fn stall_request(value: &Value) -> Result<u64, String> {
    value
        .get("ms")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("a stall takes {{\"ms\": d}}, got {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_have_defaults_and_bad_ones_are_refused() {
        let mut test = Test::example("memory", "ephemeral", 1);
        let spec = EphemeralSpec::from_test(&test).unwrap();
        assert_eq!(
            (spec.ttl_ms, spec.slack_ms),
            (DEFAULT_TTL_MS, DEFAULT_SLACK_MS)
        );
        assert_eq!(spec.registrant_threads(4), 2);
        assert!(spec.short_stall_ms() < spec.ttl_ms);
        assert!(spec.long_stall_ms() > spec.ttl_ms + spec.slack_ms);
        test.workload_options.insert("ttl_ms".into(), json!(5));
        assert!(EphemeralSpec::from_test(&test)
            .unwrap_err()
            .contains("at least"));
        test.workload_options.insert("ttl_ms".into(), json!(60_000));
        assert!(EphemeralSpec::from_test(&test)
            .unwrap_err()
            .contains("op timeout"));
        test.workload_options.insert("ttl_ms".into(), json!(500));
        test.workload_options.insert("registrants".into(), json!(0));
        assert!(EphemeralSpec::from_test(&test).is_err());
        assert_eq!(stall_request(&json!({"ms": 3})), Ok(3));
        assert!(stall_request(&json!(3)).is_err());
    }
}
