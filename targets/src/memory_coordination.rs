//! The memory target's change notification and ephemeral registrations (`watch`,
//! `ephemeral`; contracts in [`faultline_core::watch`] and [`faultline_core::ephemeral`]), as
//! pure state the store keeps behind its mutex.
//!
//! - [`WatchLog`]: one revision counter for every watched key, each key's current value and
//!   revision, and the log of every change; a watch from revision `F` is the log's changes of
//!   its keys from `F` on, so the store promises every change (it reports `from` / `next`).
//!   Bugs: `drop-event` leaves one in [`DROP_EVENT_ONE_IN`] reported events out;
//!   `reorder-event` swaps, one in [`REORDER_EVENT_ONE_IN`] times, an event with the next
//!   event of the same key.
//! - [`Registry`]: registrations with a TTL; a registration is renewed continuously while its
//!   registrant is not stalled, and expires a TTL after a stall began. Bug `outlive-lease`:
//!   expiry never happens (a registration outlives its lease until deregistered).
//!
//! Design decision: renewal is modelled as "continuous unless stalled" instead of keepalive
//! messages, because the store is in-process: what the checker tests is the bound from the
//! last renewal, which is exact here.

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// `drop-event`: one reported event in this many is left out.
pub const DROP_EVENT_ONE_IN: u32 = 5;
/// `reorder-event`: one event in this many is swapped with the next of its key.
pub const REORDER_EVENT_ONE_IN: u32 = 5;

/// Every watched key's value and the log of changes.
#[derive(Debug, Default)]
pub struct WatchLog {
    revision: i64,
    current: BTreeMap<String, (Value, i64)>,
    /// `(revision, key, value)`, in revision order.
    log: Vec<(i64, String, Value)>,
}

/// What a watch was told.
#[derive(Debug, Clone, PartialEq)]
pub struct Told {
    pub events: Vec<(String, Value, i64)>,
    /// The first revision after what the events cover.
    pub next: i64,
}

impl WatchLog {
    /// Commits a write; returns its revision.
    pub fn write(&mut self, key: &str, value: Value) -> i64 {
        self.revision += 1;
        self.current
            .insert(key.to_string(), (value.clone(), self.revision));
        self.log.push((self.revision, key.to_string(), value));
        self.revision
    }

    /// The current value and revision of each present key, and the revision a watch from now
    /// starts at.
    pub fn read(&self, keys: &[String]) -> (Vec<(String, Value, i64)>, i64) {
        let events = keys
            .iter()
            .filter_map(|k| {
                let (v, r) = self.current.get(k)?;
                Some((k.clone(), v.clone(), *r))
            })
            .collect();
        (events, self.revision + 1)
    }

    /// Every change of `keys` from revision `from` on, with the bugs applied.
    pub fn since(
        &self,
        keys: &[String],
        from: i64,
        drop_event: bool,
        reorder_event: bool,
        rng: &mut SmallRng,
    ) -> Told {
        let start = self.log.partition_point(|(r, _, _)| *r < from);
        let mut events: Vec<(String, Value, i64)> = self.log[start..]
            .iter()
            .filter(|(_, k, _)| keys.contains(k))
            .map(|(r, k, v)| (k.clone(), v.clone(), *r))
            .collect();
        if drop_event {
            events.retain(|_| !rng.gen_ratio(1, DROP_EVENT_ONE_IN));
        }
        if reorder_event {
            for i in 0..events.len() {
                if !rng.gen_ratio(1, REORDER_EVENT_ONE_IN) {
                    continue;
                }
                if let Some(j) = (i + 1..events.len()).find(|&j| events[j].0 == events[i].0) {
                    events.swap(i, j);
                }
            }
        }
        Told {
            events,
            next: self.revision + 1,
        }
    }
}

/// One registration.
#[derive(Debug, Clone)]
struct Entry {
    ttl: Duration,
    /// When the registrant stopped renewing, if it did.
    stalled_since: Option<Instant>,
}

/// Registrations with TTLs.
#[derive(Debug, Default)]
pub struct Registry {
    entries: HashMap<String, Entry>,
}

impl Registry {
    /// Registers `name` (renewed from now on); `false` when the name is taken.
    pub fn register(&mut self, name: &str, ttl: Duration, now: Instant, outlive: bool) -> bool {
        self.expire(now, outlive);
        if self.entries.contains_key(name) {
            return false;
        }
        self.entries.insert(
            name.to_string(),
            Entry {
                ttl,
                stalled_since: None,
            },
        );
        true
    }

    /// Stops renewing `name`; `false` when it is not registered.
    pub fn stall(&mut self, name: &str, now: Instant, outlive: bool) -> bool {
        self.expire(now, outlive);
        match self.entries.get_mut(name) {
            Some(entry) => {
                entry.stalled_since = Some(now);
                true
            }
            None => false,
        }
    }

    /// Renews `name` again; whether it was still registered.
    pub fn resume(&mut self, name: &str, now: Instant, outlive: bool) -> bool {
        self.expire(now, outlive);
        match self.entries.get_mut(name) {
            Some(entry) => {
                entry.stalled_since = None;
                true
            }
            None => false,
        }
    }

    /// Removes `name`; whether it was registered.
    pub fn deregister(&mut self, name: &str, now: Instant, outlive: bool) -> bool {
        self.expire(now, outlive);
        self.entries.remove(name).is_some()
    }

    /// Every registration, sorted.
    pub fn list(&mut self, now: Instant, outlive: bool) -> Value {
        self.expire(now, outlive);
        let mut names: Vec<&String> = self.entries.keys().collect();
        names.sort();
        json!(names)
    }

    fn expire(&mut self, now: Instant, outlive: bool) {
        if outlive {
            return;
        }
        self.entries.retain(|_, entry| {
            entry
                .stalled_since
                .is_none_or(|since| now.duration_since(since) < entry.ttl)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn keys() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn a_watch_gets_every_change_of_its_keys_in_order() {
        let mut log = WatchLog::default();
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(log.read(&keys()), (vec![], 1));
        log.write("a", json!(1));
        log.write("c", json!(2));
        log.write("b", json!(3));
        log.write("a", json!(4));
        let told = log.since(&keys(), 2, false, false, &mut rng);
        assert_eq!(
            told.events,
            vec![("b".into(), json!(3), 3), ("a".into(), json!(4), 4)]
        );
        assert_eq!(told.next, 5);
        assert_eq!(log.read(&keys()).0.len(), 2);
    }

    #[test]
    fn the_event_bugs_drop_or_reorder() {
        let mut log = WatchLog::default();
        for v in 0..200 {
            log.write("a", json!(v));
        }
        let mut rng = SmallRng::seed_from_u64(1);
        let dropped = log.since(&keys(), 1, true, false, &mut rng);
        assert!(dropped.events.len() < 190 && dropped.events.len() > 100);
        let reordered = log.since(&keys(), 1, false, true, &mut rng);
        assert_eq!(reordered.events.len(), 200);
        assert!(reordered.events.windows(2).any(|w| w[1].2 < w[0].2));
    }

    #[test]
    fn registrations_expire_a_ttl_after_a_stall_unless_outliving() {
        let mut registry = Registry::default();
        let t0 = Instant::now();
        let ttl = Duration::from_millis(100);
        assert!(registry.register("r", ttl, t0, false));
        assert!(!registry.register("r", ttl, t0, false));
        assert!(registry.stall("r", t0, false));
        assert_eq!(registry.list(t0 + ttl / 2, false), json!(["r"]));
        assert!(registry.resume("r", t0 + ttl / 2, false));
        assert_eq!(registry.list(t0 + ttl * 5, false), json!(["r"]));
        assert!(registry.stall("r", t0 + ttl * 5, false));
        assert_eq!(registry.list(t0 + ttl * 6, false), json!([]));
        assert!(!registry.resume("r", t0 + ttl * 6, false));
        assert!(registry.register("s", ttl, t0, true));
        assert!(registry.stall("s", t0, true));
        assert_eq!(registry.list(t0 + ttl * 9, true), json!(["s"]));
        assert!(registry.deregister("s", t0, true));
    }
}
