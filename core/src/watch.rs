//! Change notification as a client receives and answers it: the contract between the `watch`
//! workload and every target's client.
//!
//! Writers change a few keys; watchers watch all of them. Every value written to a key is
//! unique for that key (the workload writes integers unique in the run), so an event names the
//! write it reports. A revision is the service's commit position of a write (etcd's
//! `mod_revision`, ZooKeeper's `mzxid`, the memory store's counter): within one key, a later
//! commit has a higher revision.
//! - `write`, key `K` (a JSON string), value `v`: `Ok({"value": v, "revision": r})` when
//!   committed at revision `r`; `Info` when unknown.
//! - `watch`, value `{"keys": [K, ...], "duration_ms": d}`: watches the keys for about `d` ms
//!   and completes `Ok({"events": [[K, v, r], ...], "from": F, "next": N})` with every change it
//!   was told of, in the order it was told. A client remembers where its watch got to between
//!   operations: its next `watch` continues from revision `N` (etcd, memory) or with the watches
//!   it re-armed (ZooKeeper). A client with nowhere to continue from (its first watch, or after a
//!   failed one) first reads every key and reports each present key's current value as an event
//!   (revision below `F`), then watches from there.
//!   - `from` / `next` are given only by a client whose service promises every change
//!     (etcd's watch from a revision, memory): the events then include every change of a
//!     watched key committed at a revision in `F..N`. A client without that promise
//!     (ZooKeeper's one-shot watches: a change between a notification and the re-read that
//!     re-arms the watch is never told) leaves them out, and its events are the values it read
//!     after each notification.
//!   - A client reports a value only when its revision differs from the last it reported for
//!     that key (a re-read that finds nothing new is not an event).
//!   - `Fail` when the watch certainly could not run; the next watch continues from the same
//!     place, except after a compacted revision (etcd), when the client starts over with a
//!     read. `Info` when unknown: a watch changes nothing, so an `info` watch only means its
//!     events were lost; the worker continues as a new process, which starts over.
//!
//! ```
//! use faultline_core::watch::{WatchSpec, watch_request};
//! use faultline_core::Test;
//! use serde_json::json;
//! let mut test = Test::example("memory", "watch", 1);
//! test.workload_options.insert("keys".into(), json!(2));
//! let spec = WatchSpec::from_test(&test).unwrap();
//! assert_eq!(spec.key_names(), vec!["w0".to_string(), "w1".to_string()]);
//! let (keys, duration_ms) = watch_request(&json!({"keys": ["w0"], "duration_ms": 100})).unwrap();
//! assert_eq!((keys, duration_ms), (vec!["w0".to_string()], 100));
//! ```
//!
//! Design decision: a watch is an operation of bounded length whose result is what the watcher
//! was told, so the history records observations exactly like reads, and an `info` loses only
//! those observations; continuity between a process's watches is the client's (one process =
//! one watch stream), so the checker can hold each process to its service's promise.

use serde_json::Value;

use crate::test::Test;

/// `f` of a write.
pub const WRITE: &str = "write";
/// `f` of a watch.
pub const WATCH: &str = "watch";
/// Workload option: how many keys writers change and watchers watch.
pub const OPTION_KEYS: &str = "keys";
/// Workload option: how long each watch op lasts, in ms.
pub const OPTION_WATCH_MS: &str = "watch_ms";
/// Workload option: how long the final watch (after the writes stopped) lasts, in ms.
pub const OPTION_FINAL_WATCH_MS: &str = "final_watch_ms";
/// Workload option: how many of the worker threads watch (the rest write).
pub const OPTION_WATCHERS: &str = "watchers";
pub const DEFAULT_KEYS: u64 = 3;
pub const DEFAULT_WATCH_MS: u64 = 500;
pub const DEFAULT_FINAL_WATCH_MS: u64 = 2_000;
/// Most keys a test may use (every watcher watches every key).
pub const MAX_KEYS: u64 = 16;

/// What every watch client of a test agrees on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchSpec {
    pub keys: u64,
    pub watch_ms: u64,
    pub final_watch_ms: u64,
    /// `None`: half the threads, at least one.
    pub watchers: Option<u64>,
}

impl WatchSpec {
    /// Reads the options; unknown options are the workload's to refuse.
    pub fn from_test(test: &Test) -> Result<WatchSpec, String> {
        let options = &test.workload_options;
        let number = |name: &str, default: u64| match options.get(name) {
            None => Ok(default),
            Some(value) => value
                .as_u64()
                .ok_or_else(|| format!("{name}: expected a non-negative integer, got {value}")),
        };
        let keys = number(OPTION_KEYS, DEFAULT_KEYS)?;
        if !(1..=MAX_KEYS).contains(&keys) {
            return Err(format!("{OPTION_KEYS}: 1 to {MAX_KEYS}, got {keys}"));
        }
        let watch_ms = number(OPTION_WATCH_MS, DEFAULT_WATCH_MS)?;
        let final_watch_ms = number(OPTION_FINAL_WATCH_MS, DEFAULT_FINAL_WATCH_MS)?;
        for (name, ms) in [
            (OPTION_WATCH_MS, watch_ms),
            (OPTION_FINAL_WATCH_MS, final_watch_ms),
        ] {
            if ms < 10 || ms >= test.limits.op_timeout_ms {
                return Err(format!(
                    "{name}: at least 10 ms and below the op timeout ({} ms), got {ms}",
                    test.limits.op_timeout_ms
                ));
            }
        }
        let watchers = match options.get(OPTION_WATCHERS) {
            None => None,
            Some(_) => Some(number(OPTION_WATCHERS, 1)?),
        };
        if watchers == Some(0) {
            return Err(format!("{OPTION_WATCHERS}: at least 1"));
        }
        Ok(WatchSpec {
            keys,
            watch_ms,
            final_watch_ms,
            watchers,
        })
    }

    /// The keys' names: `w0`, `w1`, ...
    pub fn key_names(&self) -> Vec<String> {
        (0..self.keys).map(|k| format!("w{k}")).collect()
    }

    /// How many of `threads` watch.
    pub fn watcher_threads(&self, threads: usize) -> usize {
        match self.watchers {
            Some(n) => (n as usize).min(threads),
            None => (threads / 2).max(1),
        }
    }
}

/// A watch's keys and duration.
pub fn watch_request(value: &Value) -> Result<(Vec<String>, u64), String> {
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            format!("a watch takes {{\"keys\": [...], \"duration_ms\": d}}, got {value}")
        })?
        .iter()
        .map(|k| {
            k.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("a key is a string, got {k}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let duration_ms = value
        .get("duration_ms")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("duration_ms: expected a non-negative integer in {value}"))?;
    Ok((keys, duration_ms))
}

/// A key's name from an operation's key: a JSON string's text, else the key's JSON.
pub fn key_name(key: Option<&Value>) -> String {
    match key {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_have_defaults_and_bad_ones_are_refused() {
        let mut test = Test::example("memory", "watch", 1);
        let spec = WatchSpec::from_test(&test).unwrap();
        assert_eq!(spec.keys, DEFAULT_KEYS);
        assert_eq!(spec.watcher_threads(5), 2);
        assert_eq!(spec.watcher_threads(1), 1);
        test.workload_options.insert("keys".into(), json!(0));
        assert!(WatchSpec::from_test(&test).is_err());
        test.workload_options.insert("keys".into(), json!(2));
        test.workload_options.insert("watch_ms".into(), json!(5));
        assert!(WatchSpec::from_test(&test)
            .unwrap_err()
            .contains("watch_ms"));
        test.workload_options.remove("watch_ms");
        test.workload_options.insert("watchers".into(), json!(3));
        assert_eq!(WatchSpec::from_test(&test).unwrap().watcher_threads(2), 2);
    }

    #[test]
    fn watches_name_their_keys() {
        assert!(watch_request(&json!({"keys": [1], "duration_ms": 3})).is_err());
        assert!(watch_request(&json!({"keys": ["a"]})).is_err());
        assert_eq!(key_name(Some(&json!("w1"))), "w1");
    }
}
