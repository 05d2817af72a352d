//! The election and unique-ids workloads on etcd, through its JSON gateway.
//!
//! Election (etcd's election API, `/v3/election/*`; the epoch is the leader key's creation
//! revision, which etcd makes unique and growing):
//! - campaign: first `/v3/election/leader`; when someone leads, `not-elected` (nothing was
//!   done). Else `/v3/lease/grant` (TTL = the lease rounded up to whole seconds), then
//!   `/v3/election/campaign` with the lease and the candidate's name as value. The campaign
//!   waits for the candidates before it (another may have campaigned between the query and
//!   this one), bounded by the lease and the request timeout; a wait given up is `info` (the
//!   lease is then revoked, best effort, which withdraws the candidacy; it may have led in
//!   between). Elected: the epoch is the returned leader's `rev`.
//! - leader: `/v3/election/leader` (a linearizable range): the key's `create_revision` and
//!   value; etcd's 500 `election: no leader` is `Ok(null)`; any other failure `fail` (a read).
//! - resign: `/v3/election/resign` with the leader the campaign returned, then the lease is
//!   revoked (best effort). etcd answers 200 also when the key had already gone (its lease
//!   expired), so a resign here never says `not-leader`.
//!
//! Unique ids: `generate` is a put of `ids` (value: the process); the id is the reply's
//! header revision: every revision is one write, so no two puts share one.
//!
//! Outcomes: a 4xx other than 408, or a request never sent: `fail`; a 5xx, a timeout or a
//! connection lost after sending: `info` (a read: `fail`).

use serde_json::{json, Value};
use std::time::{Duration, Instant};

use faultline_core::election::observation;
use faultline_core::{BoxFuture, Completion};

use crate::election::{ElectionService, Won};
use crate::etcd::{base64_decode, base64_encode, Delivery, EtcdClient};
use crate::lock::token_of;

/// etcd's error for a leader query of an election nobody leads.
pub const NO_LEADER: &str = "election: no leader";

/// How a request ended when it did not answer 200.
enum Failure {
    Definite(String),
    Unknown(String),
}

impl Failure {
    fn completion(self) -> Completion {
        match self {
            Failure::Definite(why) => Completion::fail(why),
            Failure::Unknown(why) => Completion::info(why),
        }
    }

    fn why(&self) -> &str {
        match self {
            Failure::Definite(why) | Failure::Unknown(why) => why,
        }
    }
}

/// One gateway request bounded by `wait`: the reply's body, or how it failed.
async fn call(
    client: &mut EtcdClient,
    path: &str,
    body: Value,
    wait: Duration,
) -> Result<Value, Failure> {
    let deadline = Instant::now() + wait;
    match client.post(path, &body, deadline).await {
        Delivery::Reply(response) if response.status == 200 => {
            if response.body.get("header").is_some_and(Value::is_object) {
                Ok(response.body)
            } else {
                Err(Failure::Unknown(format!(
                    "unreadable reply: {}",
                    response.body
                )))
            }
        }
        Delivery::Reply(response) => {
            let error = response
                .body
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("http-{}", response.status));
            if (400..500).contains(&response.status) && response.status != 408 {
                Err(Failure::Definite(error))
            } else {
                Err(Failure::Unknown(error))
            }
        }
        Delivery::NotSent(why) => Err(Failure::Definite(why)),
        Delivery::Lost(why) => Err(Failure::Unknown(why)),
    }
}

fn b64(text: &str) -> String {
    base64_encode(text.as_bytes())
}

/// A gateway string or number as text.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One etcd client as an election service; `lease` and `leader` are those of the campaign
/// it won (the leader object `/v3/election/resign` takes).
pub struct EtcdElections<'a> {
    pub client: &'a mut EtcdClient,
    pub lease: &'a mut Option<String>,
    pub leader: &'a mut Option<Value>,
}

impl EtcdElections<'_> {
    fn timeout(&self) -> Duration {
        self.client.request_timeout()
    }

    /// Who leads: `Ok(Some((epoch, name)))`, `Ok(None)` when nobody does.
    async fn query(&mut self, election: &str) -> Result<Option<(i64, String)>, Failure> {
        let wait = self.timeout();
        let body = json!({ "name": b64(election) });
        match call(self.client, "/v3/election/leader", body, wait).await {
            Ok(reply) => {
                let kv = &reply["kv"];
                let epoch = kv.get("create_revision").and_then(token_of);
                let name = kv
                    .get("value")
                    .and_then(Value::as_str)
                    .and_then(base64_decode)
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
                match (epoch, name) {
                    (Some(epoch), Some(name)) => Ok(Some((epoch, name))),
                    _ => Err(Failure::Unknown(format!("unreadable leader: {reply}"))),
                }
            }
            Err(failure) if failure.why() == NO_LEADER => Ok(None),
            Err(failure) => Err(failure),
        }
    }

    async fn revoke(&mut self, id: String) {
        // Best effort: an unrevoked lease ends by itself.
        let wait = self.timeout();
        let _ = call(self.client, "/v3/lease/revoke", json!({ "ID": id }), wait).await;
    }
}

impl ElectionService for EtcdElections<'_> {
    fn campaign<'a>(
        &'a mut self,
        election: &'a str,
        me: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Won, Completion>> {
        Box::pin(async move {
            // Nothing is written before the campaign: failures up to it are certain.
            match self.query(election).await {
                Ok(Some(_)) => return Ok(Won::NotElected),
                Ok(None) => {}
                Err(failure) => return Err(Completion::fail(format!("leader: {}", failure.why()))),
            }
            let ttl = lease.as_millis().div_ceil(1_000).max(1) as u64;
            let wait = self.timeout();
            let granted = call(
                self.client,
                "/v3/lease/grant",
                json!({ "TTL": ttl.to_string() }),
                wait,
            )
            .await
            .map_err(|f| Completion::fail(format!("lease-grant: {}", f.why())))?;
            let Some(id) = granted.get("ID").and_then(text_of) else {
                return Err(Completion::fail(format!("lease-grant: no ID in {granted}")));
            };
            let body = json!({ "name": b64(election), "lease": id, "value": b64(me) });
            let wait = lease.min(self.timeout());
            let reply = match call(self.client, "/v3/election/campaign", body, wait).await {
                Ok(reply) => reply,
                Err(failure) => {
                    // Whether or not it won meanwhile, revoking the lease deletes its key:
                    // the candidacy is withdrawn, as far as this client can make it.
                    self.revoke(id).await;
                    return Err(match failure {
                        Failure::Definite(why) => Completion::fail(why),
                        Failure::Unknown(why) => Completion::info(format!("campaign: {why}")),
                    });
                }
            };
            let leader = reply["leader"].clone();
            match leader.get("rev").and_then(token_of) {
                Some(epoch) => {
                    *self.lease = Some(id);
                    *self.leader = Some(leader);
                    Ok(Won::Elected(epoch))
                }
                None => {
                    self.revoke(id).await;
                    Err(Completion::info(format!("campaign: no rev in {reply}")))
                }
            }
        })
    }

    fn leader<'a>(&'a mut self, election: &'a str) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            match self.query(election).await {
                Ok(Some((epoch, name))) => Completion::Ok(observation(epoch, &name)),
                Ok(None) => Completion::Ok(Value::Null),
                // A read changed nothing.
                Err(failure) => Completion::fail(failure.why().to_string()),
            }
        })
    }

    fn resign<'a>(
        &'a mut self,
        _election: &'a str,
        _me: &'a str,
        _epoch: i64,
    ) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let outcome = match self.leader.take() {
                Some(leader) => {
                    let wait = self.timeout();
                    call(
                        self.client,
                        "/v3/election/resign",
                        json!({ "leader": leader }),
                        wait,
                    )
                    .await
                }
                None => Err(Failure::Definite("no leader key held".into())),
            };
            if let Some(id) = self.lease.take() {
                self.revoke(id).await;
            }
            match outcome {
                Ok(_) => Completion::Ok(Value::Null),
                Err(failure) => failure.completion(),
            }
        })
    }
}

/// `generate`: a put of `ids`; the id is the put's revision.
pub async fn generate(client: &mut EtcdClient, process: u64) -> Completion {
    let wait = client.request_timeout();
    let body = json!({ "key": b64("ids"), "value": b64(&process.to_string()) });
    match call(client, "/v3/kv/put", body, wait).await {
        Ok(reply) => match reply["header"].get("revision").and_then(token_of) {
            Some(revision) => Completion::Ok(json!(revision)),
            None => Completion::info(format!("no revision in {reply}")),
        },
        Err(failure) => failure.completion(),
    }
}
