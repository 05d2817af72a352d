//! The `watch` workload on ZooKeeper (contract: [`faultline_core::watch`]): one-shot data
//! watches, re-armed by a read after each notification.
//!
//! - write: `set_data` of `/faultline/watch-<key>` (`create` when missing, `set_data` again
//!   when another client created it first); the returned `Stat`'s `mzxid` is the revision.
//! - watch: for each key, `get_and_watch_data` (or `check_and_watch_stat` while the znode does
//!   not exist yet) reads the value and arms a one-shot watch; a value whose `mzxid` differs
//!   from the last this client reported for the key is an event. Each notification re-reads
//!   (and so re-arms) its key, until the watch's duration is up. A change between a
//!   notification and the re-read is never told (ZooKeeper's watches are one-shot), so the
//!   client claims no `from` / `next`: the checker holds it to order, no duplicates, and the
//!   latest value at the end.
//! - Each watch re-reads every key first (watches of the previous operation are dropped), so a
//!   process's watches form one stream of reads of one session. A session that ended (expired,
//!   closed) is replaced: this process's stream continues on the new session, whose reads are
//!   not older than what the old one saw only if the server serving it is up to date; a read
//!   older than one reported is exactly what the checker's order check reports.
//! - Failures of a watch are `fail` (a watch changes nothing); of a write as
//!   [`crate::zookeeper::classify_error`].

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zookeeper_client as zk;

use faultline_core::watch::{key_name, watch_request};
use faultline_core::{BoxFuture, Client, Completion, HarnessError, Invocation, Test};

use crate::cluster::{decode_value, encode_value};
use crate::zookeeper::{classify_error, connect, ZookeeperDb, ROOT};

/// A watched key's znode.
pub fn watch_path(key: &str) -> String {
    let safe: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{ROOT}/watch-{safe}")
}

/// A watch client of one ZooKeeper node: one session (a template until opened).
pub struct ZookeeperWatchClient {
    db: Arc<ZookeeperDb>,
    request_timeout: Duration,
    addr: Option<String>,
    session: Option<zk::Client>,
    /// The last `mzxid` reported per key.
    reported: HashMap<String, i64>,
}

impl ZookeeperWatchClient {
    pub fn new(db: Arc<ZookeeperDb>, request_timeout: Duration) -> Self {
        ZookeeperWatchClient {
            db,
            request_timeout,
            addr: None,
            session: None,
            reported: HashMap::new(),
        }
    }

    async fn session(&mut self, limit: Duration) -> Result<zk::Client, String> {
        if let Some(session) = &self.session {
            if !matches!(
                session.state(),
                zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed
            ) {
                return Ok(session.clone());
            }
        }
        let addr = self.addr.clone().ok_or("not-opened")?;
        let session = connect(&addr, limit).await?;
        self.session = Some(session.clone());
        Ok(session)
    }

    async fn write(&mut self, op: &Invocation) -> Completion {
        let deadline = Instant::now() + self.request_timeout;
        let session = match self.session(self.request_timeout).await {
            Ok(session) => session,
            Err(why) => return Completion::fail(format!("connect: {why}")),
        };
        let path = watch_path(&key_name(op.key.as_ref()));
        let data = encode_value(&op.value);
        let timed = |f| async move {
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::time::timeout(remaining, f)
                .await
                .unwrap_or(Err(zk::Error::Timeout))
        };
        let ok =
            |stat: zk::Stat| Completion::Ok(json!({"value": op.value, "revision": stat.mzxid}));
        match timed(session.set_data(&path, &data, None)).await {
            Ok(stat) => return ok(stat),
            Err(zk::Error::NoNode) => {}
            Err(e) => return classify_error(&e, true),
        }
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            session.create(&path, &data, &options),
        )
        .await
        .unwrap_or(Err(zk::Error::Timeout))
        {
            Ok((stat, _)) => return ok(stat),
            Err(zk::Error::NodeExists) => {}
            Err(e) => return classify_error(&e, true),
        }
        match timed(session.set_data(&path, &data, None)).await {
            Ok(stat) => ok(stat),
            Err(e) => classify_error(&e, true),
        }
    }

    /// Reads `key` and arms a watch on it; reports the value when it is new to this client.
    async fn read_and_arm(
        &mut self,
        session: &zk::Client,
        key: &str,
        events: &mut Vec<Value>,
    ) -> Result<zk::OneshotWatcher, zk::Error> {
        let path = watch_path(key);
        match session.get_and_watch_data(&path).await {
            Ok((data, stat, watcher)) => {
                if self.reported.get(key) != Some(&stat.mzxid) {
                    self.reported.insert(key.to_string(), stat.mzxid);
                    events.push(json!([key, decode_value(&data), stat.mzxid]));
                }
                Ok(watcher)
            }
            Err(zk::Error::NoNode) => {
                // Not written yet: watch its creation (and read it if it appeared meanwhile).
                let (stat, watcher) = session.check_and_watch_stat(&path).await?;
                if stat.is_some() {
                    return Err(zk::Error::NodeExists);
                }
                Ok(watcher)
            }
            Err(e) => Err(e),
        }
    }

    async fn watch(&mut self, op: &Invocation) -> Completion {
        let (keys, duration_ms) = match watch_request(&op.value) {
            Ok(request) => request,
            Err(why) => return Completion::fail(format!("bad-request: {why}")),
        };
        let until = tokio::time::Instant::now() + Duration::from_millis(duration_ms);
        let session = match self.session(self.request_timeout).await {
            Ok(session) => session,
            Err(why) => return Completion::fail(format!("connect: {why}")),
        };
        let mut events = Vec::new();
        let (fired, mut notifications) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut waiting = Vec::new();
        let mut pending: Vec<String> = keys.clone();
        let result = tokio::time::timeout_at(until, async {
            loop {
                while let Some(key) = pending.pop() {
                    let watcher = loop {
                        match self.read_and_arm(&session, &key, &mut events).await {
                            // Created between the two reads: read it.
                            Err(zk::Error::NodeExists) => continue,
                            other => break other,
                        }
                    }?;
                    let fired = fired.clone();
                    waiting.push(tokio::spawn(async move {
                        let _ = watcher.changed().await;
                        let _ = fired.send(key);
                    }));
                }
                match notifications.recv().await {
                    Some(key) => pending.push(key),
                    None => return Ok::<(), zk::Error>(()),
                }
            }
        })
        .await;
        for task in waiting {
            task.abort();
        }
        match result {
            // The duration is up: what was told stands.
            Err(_) | Ok(Ok(())) => Completion::Ok(json!({ "events": events })),
            Ok(Err(e)) => {
                if matches!(e, zk::Error::SessionExpired | zk::Error::ClientClosed) {
                    self.session = None;
                }
                if events.is_empty() {
                    Completion::fail(e.to_string())
                } else {
                    // What was told before the error stands, as a shorter watch.
                    Completion::Ok(json!({ "events": events, "ended": e.to_string() }))
                }
            }
        }
    }
}

impl Client for ZookeeperWatchClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async move {
            let addr = self
                .db
                .client_addr(node)
                .map_err(|e| HarnessError::Client {
                    node: node.to_string(),
                    why: e.to_string(),
                })?;
            let session = connect(&addr, self.request_timeout).await.ok();
            Ok(Box::new(ZookeeperWatchClient {
                db: self.db.clone(),
                request_timeout: self.request_timeout,
                addr: Some(addr),
                session,
                reported: HashMap::new(),
            }) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            match op.f.as_str() {
                "write" => self.write(op).await,
                "watch" => self.watch(op).await,
                f => Completion::fail(format!("unsupported: {f} in the watch workload")),
            }
        })
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

    #[test]
    fn keys_become_one_znode_each_under_the_root() {
        assert_eq!(watch_path("w1"), format!("{ROOT}/watch-w1"));
        assert_eq!(watch_path("a/b"), format!("{ROOT}/watch-a_b"));
    }
}
