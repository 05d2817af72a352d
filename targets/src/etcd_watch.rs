//! The `watch` workload on etcd (contract: [`faultline_core::watch`]), through the JSON
//! gateway.
//!
//! - write: `/v3/kv/put` of `/faultline-watch/<key>`; the reply's header revision is the
//!   write's revision (its `mod_revision`).
//! - watch: a client with nowhere to continue from reads the prefix (`/v3/kv/range`,
//!   linearizable) and reports each key's value and `mod_revision`, then watches from the
//!   read's revision + 1. `/v3/watch` is a streaming POST: the gateway sends one JSON message per
//!   watch response, chunked, for as long as the connection stays open; the client reads it for
//!   the watch's duration ([`crate::http::stream_json`]), then closes the connection (which
//!   cancels the watch). etcd promises every change from the start revision, in revision
//!   order, exactly once, so the client reports `from` and `next` = the last event's revision
//!   + 1 (or `from` when there was none): it claims nothing past what it was told.
//! - A watch whose start revision was compacted is cancelled by etcd: `Fail("compacted")`,
//!   and the client starts over with a read, which reports only values whose revision differs
//!   from the last it reported. Any other failure to start (no connection, an error status, no
//!   response head within the duration) is a `fail` too (a watch changes nothing), and the
//!   next watch continues from the same revision. A stream that ends early (the member died)
//!   still reports what it told.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use faultline_core::watch::{key_name, watch_request};
use faultline_core::{Completion, Invocation};

use crate::etcd::{base64_decode, base64_encode, Delivery, EtcdClient};
use crate::etcd_lock::prefix_end;
use crate::http::{stream_json, RequestError};

/// Where the watched keys live.
pub const PREFIX: &str = "/faultline-watch/";

fn int(value: Option<&Value>) -> Option<i64> {
    let value = value?;
    value.as_i64().or_else(|| value.as_str()?.parse().ok())
}

/// A key-value of the gateway (`kv`) as `[key, value, mod_revision]`, with the prefix off.
fn event_of(kv: &Value) -> Option<(String, Value, i64)> {
    let key = String::from_utf8(base64_decode(kv.get("key")?.as_str()?)?).ok()?;
    let key = key.strip_prefix(PREFIX)?.to_string();
    let text = String::from_utf8(base64_decode(
        kv.get("value").and_then(Value::as_str).unwrap_or(""),
    )?)
    .ok()?;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Some((key, value, int(kv.get("mod_revision"))?))
}

/// A write: `Ok({"value": v, "revision": r})`.
pub async fn write(client: &mut EtcdClient, op: &Invocation) -> Completion {
    let key = format!("{PREFIX}{}", key_name(op.key.as_ref()));
    let body = json!({
        "key": base64_encode(key.as_bytes()),
        "value": base64_encode(op.value.to_string().as_bytes()),
    });
    let deadline = Instant::now() + client.request_timeout();
    match client.post("/v3/kv/put", &body, deadline).await {
        Delivery::Reply(response) if response.status == 200 => {
            match int(response.body.pointer("/header/revision")) {
                Some(revision) => Completion::Ok(json!({"value": op.value, "revision": revision})),
                None => Completion::info(format!("unreadable reply: {}", response.body)),
            }
        }
        Delivery::Reply(response)
            if (400..500).contains(&response.status) && response.status != 408 =>
        {
            Completion::fail(format!("http-{}: {}", response.status, response.body))
        }
        Delivery::Reply(response) => {
            Completion::info(format!("http-{}: {}", response.status, response.body))
        }
        Delivery::NotSent(why) => Completion::fail(why),
        Delivery::Lost(why) => Completion::info(why),
    }
}

/// One client's watch stream: where it continues, and the revision it last reported per key
/// (a read that starts over reports only what is new to it).
#[derive(Debug, Default)]
pub struct WatchState {
    pub next: Option<i64>,
    pub reported: HashMap<String, i64>,
}

/// A watch, continuing `state`'s stream.
pub async fn watch(client: &mut EtcdClient, state: &mut WatchState, op: &Invocation) -> Completion {
    let completion = watch_once(client, state, op).await;
    if let Completion::Ok(result) = &completion {
        for event in result["events"].as_array().into_iter().flatten() {
            if let (Some(key), Some(revision)) = (event[0].as_str(), event[2].as_i64()) {
                state.reported.insert(key.to_string(), revision);
            }
        }
    }
    completion
}

async fn watch_once(
    client: &mut EtcdClient,
    state: &mut WatchState,
    op: &Invocation,
) -> Completion {
    let (keys, duration_ms) = match watch_request(&op.value) {
        Ok(request) => request,
        Err(why) => return Completion::fail(format!("bad-request: {why}")),
    };
    let Some(addr) = client.addr() else {
        return Completion::fail("not-opened");
    };
    let started = tokio::time::Instant::now();
    let mut events: Vec<(String, Value, i64)> = Vec::new();
    let from = match state.next {
        Some(from) => from,
        None => {
            let body = json!({
                "key": base64_encode(PREFIX.as_bytes()),
                "range_end": base64_encode(&prefix_end(PREFIX)),
            });
            let deadline = Instant::now() + client.request_timeout();
            let response = match client.post("/v3/kv/range", &body, deadline).await {
                Delivery::Reply(response) if response.status == 200 => response,
                Delivery::Reply(response) => {
                    return Completion::fail(format!(
                        "read: http-{}: {}",
                        response.status, response.body
                    ))
                }
                Delivery::NotSent(why) | Delivery::Lost(why) => {
                    return Completion::fail(format!("read: {why}"))
                }
            };
            let Some(revision) = int(response.body.pointer("/header/revision")) else {
                return Completion::fail(format!("read: unreadable reply: {}", response.body));
            };
            for kv in response
                .body
                .get("kvs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match event_of(kv) {
                    Some(event)
                        if keys.contains(&event.0)
                            && state.reported.get(&event.0) != Some(&event.2) =>
                    {
                        events.push(event)
                    }
                    Some(_) => {}
                    None => return Completion::fail(format!("read: unreadable kv {kv}")),
                }
            }
            revision + 1
        }
    };
    let body = json!({"create_request": {
        "key": base64_encode(PREFIX.as_bytes()),
        "range_end": base64_encode(&prefix_end(PREFIX)),
        "start_revision": from.to_string(),
    }});
    let until = started + Duration::from_millis(duration_ms);
    let streamed = match stream_json(addr, "/v3/watch", &body, until).await {
        Ok(streamed) => streamed,
        Err(RequestError::Connect(why)) | Err(RequestError::Lost(why)) => {
            return Completion::fail(format!("watch: {why}"))
        }
    };
    if streamed.status != 200 {
        return Completion::fail(format!("watch: http-{}", streamed.status));
    }
    let mut last = from - 1;
    for message in &streamed.values {
        let Some(result) = message.get("result") else {
            // An error message ends the stream; what came before stands.
            break;
        };
        if result.get("canceled") == Some(&json!(true)) {
            let why = match int(result.get("compact_revision")) {
                Some(r) if r > 0 => format!("compacted: revision {from} is below {r}"),
                _ => format!("canceled: {result}"),
            };
            // Nowhere to continue from: start over with a read.
            state.next = None;
            return Completion::fail(why);
        }
        for event in result
            .get("events")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // The gateway leaves out the default type, PUT; the workload never deletes.
            if event.get("type").is_some_and(|t| t != "PUT") {
                continue;
            }
            let Some(kv) = event.get("kv") else { continue };
            let Some(event) = event_of(kv) else {
                return Completion::fail(format!("watch: unreadable event {kv}"));
            };
            last = last.max(event.2);
            if keys.contains(&event.0) {
                events.push(event);
            }
        }
    }
    state.next = Some(last + 1);
    let events: Vec<Value> = events
        .into_iter()
        .map(|(k, v, r)| json!([k, v, r]))
        .collect();
    let mut result = json!({"events": events, "from": from, "next": last + 1});
    if let Some(why) = streamed.ended {
        result["ended"] = json!(why);
    }
    Completion::Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_key_values_become_events() {
        let kv = json!({
            "key": base64_encode(b"/faultline-watch/w1"),
            "value": base64_encode(b"17"),
            "mod_revision": "42",
        });
        assert_eq!(event_of(&kv), Some(("w1".into(), json!(17), 42)));
        let other = json!({"key": base64_encode(b"/x"), "mod_revision": "1"});
        assert_eq!(event_of(&other), None);
        assert_eq!(int(Some(&json!("5"))), Some(5));
    }
}
