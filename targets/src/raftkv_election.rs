//! The election and unique-ids workloads on raftkv.
//!
//! Election, candidates `nodes`: raftkv's nodes elect their Raft leader among themselves, and
//! a client only observes. `leader` is `GET /status` of the client's node: `Ok({"epoch":
//! term, "leader": name})` with the node's current term and the leader it knows for it (the
//! node named by the leader's id: ids are given 1, 2, ... to the test's nodes in order), or
//! `Ok(null)` when it knows none (an election is on, or it has not heard from the leader of
//! its term). Raft's election safety says at most one leader per term, and a node learns the
//! leader of its term only from that leader, so two nodes naming two leaders for one term is
//! split brain (the `forget-vote` bug shows it). A failed query is `fail` (a read).
//! `campaign` and `resign` are refused (`fail`): a client cannot campaign in raftkv.
//!
//! Unique ids: `generate` reads the counter `ids` (`GET /kv/ids`, null = 0) and raises it by
//! compare-and-set from the value read (`POST /kv/ids/cas`); the id is the new value. A
//! `compare-failed` changed nothing: read and try again, at most [`GENERATE_ATTEMPTS`] times
//! (then `fail` `contended`). A cas whose outcome is unknown is `info`.

use serde_json::{json, Value};

use faultline_core::election::observation;
use faultline_core::{Completion, Test};

use crate::raftkv::{Delivery, RaftkvClient};

/// A generate tries its compare-and-set at most this many times.
pub const GENERATE_ATTEMPTS: usize = 20;

/// The answer to a request that did not answer 200: definite or not, as the node says.
fn failure(response_body: &Value, status: u16) -> Completion {
    let error = response_body
        .get("error")
        .cloned()
        .unwrap_or_else(|| json!(format!("http-{status}")));
    if response_body.get("definite") == Some(&Value::Bool(true)) {
        Completion::Fail(error)
    } else {
        Completion::Info(error)
    }
}

/// The name of the node with raftkv id `id` in `test`.
pub fn node_name(test: &Test, id: u64) -> String {
    usize::try_from(id)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| test.nodes.get(i))
        .cloned()
        .unwrap_or_else(|| id.to_string())
}

/// `leader`: the client's node's term and the leader it knows.
pub async fn leader(client: &mut RaftkvClient, test: &Test) -> Completion {
    match client.send("GET", "/status", None).await {
        Delivery::Reply(response) if response.status == 200 => {
            let body = &response.body;
            let Some(term) = body.get("term").and_then(Value::as_i64) else {
                return Completion::fail(format!("unreadable status: {body}"));
            };
            match body.get("leader").and_then(Value::as_u64) {
                Some(id) if id > 0 => Completion::Ok(observation(term, &node_name(test, id))),
                _ => Completion::Ok(Value::Null),
            }
        }
        Delivery::Reply(response) => {
            Completion::fail(format!("/status answered {}", response.status))
        }
        Delivery::NotSent(why) | Delivery::Lost(why) => Completion::fail(why),
    }
}

/// `generate`: the counter `ids` raised by one, by compare-and-set.
pub async fn generate(client: &mut RaftkvClient) -> Completion {
    for _ in 0..GENERATE_ATTEMPTS {
        // Every earlier attempt failed its comparison: nothing was written yet, so a failed
        // read is certain.
        let current = match client.send("GET", "/kv/ids", None).await {
            Delivery::Reply(response) if response.status == 200 => {
                response.body.get("value").cloned().unwrap_or(Value::Null)
            }
            Delivery::Reply(response) => {
                return Completion::fail(format!("read ids: http-{}", response.status))
            }
            Delivery::NotSent(why) | Delivery::Lost(why) => {
                return Completion::fail(format!("read ids: {why}"))
            }
        };
        let Some(next) = (match &current {
            Value::Null => Some(1),
            other => other.as_i64().and_then(|n| n.checked_add(1)),
        }) else {
            return Completion::fail(format!("ids holds {current}, not an integer"));
        };
        let body = json!({"expected": current, "new": next});
        match client.send("POST", "/kv/ids/cas", Some(&body)).await {
            Delivery::Reply(response) if response.status == 200 => {
                return Completion::Ok(json!(next))
            }
            Delivery::Reply(response)
                if response.body.get("error").and_then(Value::as_str) == Some("compare-failed") =>
            {
                continue
            }
            Delivery::Reply(response) => return failure(&response.body, response.status),
            Delivery::NotSent(why) => return Completion::fail(why),
            Delivery::Lost(why) => return Completion::info(why),
        }
    }
    Completion::fail("contended")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_ids_name_the_tests_nodes_in_order() {
        let mut test = Test::example("raftkv", "election", 1);
        test.nodes = vec!["n1".into(), "n2".into(), "n3".into()];
        assert_eq!(node_name(&test, 2), "n2");
        assert_eq!(node_name(&test, 9), "9");
        assert_eq!(node_name(&test, 0), "0");
    }
}
