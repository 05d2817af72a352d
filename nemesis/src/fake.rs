//! A fake db with every capability (kill, pause, leaders, clocks, its own network) that
//! remembers each call and models what is in force, so tests can ask "is it all healed?".

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use faultline_core::remote::NoopRemote;
use faultline_core::{
    BoxFuture, ClockSkew, Db, Grudge, HarnessError, Impairment, Kill, Net, Node, Pause, Primary,
    Test,
};

/// What the fake believes is in force.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct State {
    pub killed: BTreeSet<String>,
    pub paused: BTreeSet<String>,
    /// Only non-zero offsets.
    pub offsets_ms: BTreeMap<String, i64>,
    pub grudge: Option<Grudge>,
    pub impairment: Option<Impairment>,
}

impl State {
    pub fn is_healed(&self) -> bool {
        *self == State::default()
    }
}

#[derive(Default)]
pub struct FakeDb {
    /// Every call, as `kill n1`, `clock n2 -250`, `partition {...}`, `impair 0.3 0`, `heal`.
    pub calls: Mutex<Vec<String>>,
    pub state: Mutex<State>,
    /// What `primaries` answers.
    pub leaders: Mutex<Vec<String>>,
    /// Calls whose text starts with one of these fail (once the state change is skipped).
    pub failing: Mutex<Vec<String>>,
    /// Whether `as_net` offers this fake as the db's own network (the local fault proxy).
    pub own_net: bool,
}

impl FakeDb {
    pub fn with_own_net() -> FakeDb {
        FakeDb {
            own_net: true,
            ..FakeDb::default()
        }
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub fn state(&self) -> State {
        self.state.lock().unwrap().clone()
    }

    /// Remembers `call`; fails it if asked to, else applies `change` to the state.
    fn call(
        &self,
        call: String,
        change: impl FnOnce(&mut State),
    ) -> BoxFuture<'_, Result<(), HarnessError>> {
        let fails = self
            .failing
            .lock()
            .unwrap()
            .iter()
            .any(|prefix| call.starts_with(prefix.as_str()));
        self.calls.lock().unwrap().push(call.clone());
        let result = if fails {
            Err(HarnessError::Db {
                node: "fake".into(),
                phase: "fake",
                why: format!("{call} failed on purpose"),
            })
        } else {
            change(&mut self.state.lock().unwrap());
            Ok(())
        };
        Box::pin(async move {
            // A real remote yields while it works; so does the fake.
            tokio::task::yield_now().await;
            result
        })
    }
}

pub fn nodes(n: usize) -> Vec<Node> {
    (1..=n)
        .map(|i| {
            let name = format!("n{i}");
            Node {
                remote: Arc::new(NoopRemote::new(&name)),
                name,
            }
        })
        .collect()
}

impl Db for FakeDb {
    fn setup<'a>(&'a self, _: &'a Test, _: &'a Node) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async { Ok(()) })
    }
    fn teardown<'a>(&'a self, _: &'a Test, _: &'a Node) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async { Ok(()) })
    }
    fn as_kill(&self) -> Option<&dyn Kill> {
        Some(self)
    }
    fn as_pause(&self) -> Option<&dyn Pause> {
        Some(self)
    }
    fn as_primary(&self) -> Option<&dyn Primary> {
        Some(self)
    }
    fn as_clock(&self) -> Option<&dyn ClockSkew> {
        Some(self)
    }
    fn as_net(&self) -> Option<&dyn Net> {
        if self.own_net {
            Some(self)
        } else {
            None
        }
    }
}

impl Kill for FakeDb {
    fn kill<'a>(&'a self, _: &'a Test, n: &'a Node) -> BoxFuture<'a, Result<(), HarnessError>> {
        let name = n.name.clone();
        self.call(format!("kill {name}"), |s| {
            s.paused.remove(&name);
            s.killed.insert(name);
        })
    }
    fn start<'a>(&'a self, _: &'a Test, n: &'a Node) -> BoxFuture<'a, Result<(), HarnessError>> {
        let name = n.name.clone();
        self.call(format!("start {name}"), |s| {
            s.killed.remove(&name);
        })
    }
}

impl Pause for FakeDb {
    fn pause<'a>(&'a self, _: &'a Test, n: &'a Node) -> BoxFuture<'a, Result<(), HarnessError>> {
        let name = n.name.clone();
        self.call(format!("pause {name}"), |s| {
            s.paused.insert(name);
        })
    }
    fn resume<'a>(&'a self, _: &'a Test, n: &'a Node) -> BoxFuture<'a, Result<(), HarnessError>> {
        let name = n.name.clone();
        self.call(format!("resume {name}"), |s| {
            s.paused.remove(&name);
        })
    }
}

impl Primary for FakeDb {
    fn primaries<'a>(
        &'a self,
        _: &'a Test,
        _: &'a [Node],
    ) -> BoxFuture<'a, Result<Vec<String>, HarnessError>> {
        self.calls.lock().unwrap().push("primaries".into());
        let leaders = self.leaders.lock().unwrap().clone();
        Box::pin(async move { Ok(leaders) })
    }
}

impl ClockSkew for FakeDb {
    fn set_offset<'a>(
        &'a self,
        _: &'a Test,
        n: &'a Node,
        offset_ms: i64,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        let name = n.name.clone();
        self.call(format!("clock {name} {offset_ms}"), move |s| {
            if offset_ms == 0 {
                s.offsets_ms.remove(&name);
            } else {
                s.offsets_ms.insert(name, offset_ms);
            }
        })
    }
}

impl Net for FakeDb {
    fn partition<'a>(
        &'a self,
        _: &'a Test,
        grudge: &'a Grudge,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        let text = serde_json::to_string(grudge).unwrap();
        let grudge = grudge.clone();
        self.call(format!("partition {text}"), |s| s.grudge = Some(grudge))
    }
    fn impair<'a>(
        &'a self,
        _: &'a Test,
        impairment: &'a Impairment,
    ) -> BoxFuture<'a, Result<(), HarnessError>> {
        let i = *impairment;
        self.call(format!("impair {} {}", i.loss, i.latency_ms), move |s| {
            s.impairment = Some(i)
        })
    }
    fn heal<'a>(&'a self, _: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        self.call("heal".into(), |s| {
            s.grudge = None;
            s.impairment = None;
        })
    }
}
