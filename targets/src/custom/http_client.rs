//! [`HttpJsonClient`]: the client of a store that speaks HTTP and JSON, described by a request
//! template per operation (`[client.http.read]`, `[client.http.write]`, ...) instead of a
//! program.
//!
//! What an answer means, per operation (see `docs/byo-store.md`):
//! - a 2xx status: `ok`; a read's result is the reply's JSON at the `value` pointer (absent or
//!   null: never written), any other operation's result is its own value;
//! - a status in `not_found` (reads): `ok`, never written (null);
//! - a status in `compare_failed`: `fail`, error `compare-failed` (the cas's comparison ran and
//!   did not match, which the checker uses as an observation);
//! - a status in `fail`: `fail` with the reply's `error` (certainly not done);
//! - any other status, a connection lost after the request was sent, or a timeout: unknown —
//!   `info`, except for reads, which change nothing and so are `fail`;
//! - a connection that could not be made: `fail` (nothing was sent).

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_core::{BoxFuture, Client, Completion, HarnessError, Invocation, Test};

use super::file::{HttpSpec, RequestSpec};
use crate::cluster::key_text;
use crate::http::{Connection, RequestError, Response};

/// How long connecting to a node may take (a partitioned host drops the SYN).
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;

/// A client of one node's HTTP API.
#[derive(Debug)]
pub struct HttpJsonClient {
    spec: Arc<HttpSpec>,
    addr: SocketAddr,
    timeout: Duration,
    connection: Option<Connection>,
}

/// An outcome that is not known: `info`, but `fail` for a read (it changed nothing).
fn indefinite(f: &str, error: impl Into<Value>) -> Completion {
    if f == "read" {
        Completion::Fail(error.into())
    } else {
        Completion::Info(error.into())
    }
}

/// The text of a value in a path or in a body string: a string as is, anything else as JSON.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The value of placeholder `name` for `op`: `key`, `value`, `value.N`.
fn placeholder(op: &Invocation, name: &str) -> Option<Value> {
    match name {
        "key" => Some(op.key.clone().unwrap_or(Value::Null)),
        "value" => Some(op.value.clone()),
        _ => {
            let index: usize = name.strip_prefix("value.")?.parse().ok()?;
            Some(op.value.as_array()?.get(index)?.clone())
        }
    }
}

/// The method, path and body of `op`'s request, or why it cannot be made (a definite `fail`:
/// nothing is sent).
pub fn request_for(
    spec: &RequestSpec,
    op: &Invocation,
) -> Result<(String, String, Option<Value>), String> {
    let text = |name: &str| -> Option<String> {
        if name == "key" {
            return Some(key_text(op.key.as_ref()));
        }
        placeholder(op, name).map(|v| text_of(&v))
    };
    let json = |name: &str| placeholder(op, name);
    let path = spec
        .path
        .render_path(&text)
        .map_err(|e| format!("bad-request: {e}"))?;
    let body = match &spec.body {
        Some(body) => Some(
            body.render(&json, &text)
                .map_err(|e| format!("bad-request: {e}"))?,
        ),
        None => None,
    };
    Ok((spec.method.clone(), path, body))
}

/// What a reply to `op` means under `spec` (see the module documentation).
pub fn classify(spec: &RequestSpec, op: &Invocation, response: &Response) -> Completion {
    let status = response.status;
    if (200..300).contains(&status) {
        if op.f != "read" {
            return Completion::Ok(op.value.clone());
        }
        if response.body.is_null() && !spec.value.is_empty() {
            return Completion::fail("unreadable reply: not JSON");
        }
        return Completion::Ok(
            response
                .body
                .pointer(&spec.value)
                .cloned()
                .unwrap_or(Value::Null),
        );
    }
    if op.f == "read" && spec.not_found.contains(&status) {
        return Completion::Ok(Value::Null);
    }
    if spec.compare_failed.contains(&status) {
        return Completion::fail("compare-failed");
    }
    let error = response
        .body
        .get("error")
        .filter(|e| !e.is_null())
        .cloned()
        .unwrap_or_else(|| json!(format!("http-{status}")));
    if spec.fail.contains(&status) {
        Completion::Fail(error)
    } else {
        indefinite(&op.f, error)
    }
}

impl HttpJsonClient {
    /// A client of the node at `addr`, each request bounded by `timeout`.
    pub fn new(spec: Arc<HttpSpec>, addr: SocketAddr, timeout: Duration) -> HttpJsonClient {
        HttpJsonClient {
            spec,
            addr,
            timeout,
            connection: None,
        }
    }

    async fn call(&mut self, op: &Invocation) -> Completion {
        let Some(spec) = self.spec.ops.get(&op.f) else {
            return Completion::fail(format!(
                "unsupported: the target file has no [client.http.{}]",
                op.f
            ));
        };
        let (method, path, body) = match request_for(spec, op) {
            Ok(request) => request,
            Err(why) => return Completion::fail(why),
        };
        let deadline = Instant::now() + self.timeout;
        if !self
            .connection
            .as_ref()
            .is_some_and(Connection::is_reusable)
        {
            self.connection = None;
            let limit = Duration::from_millis(CONNECT_TIMEOUT_MS).min(self.timeout);
            match tokio::time::timeout(limit, Connection::connect(self.addr)).await {
                Ok(Ok(connection)) => self.connection = Some(connection),
                // Nothing was sent: the node never saw this request.
                Ok(Err(RequestError::Connect(e))) | Ok(Err(RequestError::Lost(e))) => {
                    return Completion::fail(format!("connect: {e}"))
                }
                Err(_) => return Completion::fail("connect-timeout"),
            }
        }
        let connection = self.connection.as_mut().expect("connected above");
        let remaining = deadline.saturating_duration_since(Instant::now());
        let request = connection.request(&method, &path, body.as_ref());
        match tokio::time::timeout(remaining, request).await {
            Ok(Ok(response)) => classify(spec, op, &response),
            // Sent, then no reply: it may still apply. A late reply could arrive on this
            // connection, so it is never reused.
            Ok(Err(RequestError::Lost(e))) | Ok(Err(RequestError::Connect(e))) => {
                self.connection = None;
                indefinite(&op.f, format!("connection-lost: {e}"))
            }
            Err(_) => {
                self.connection = None;
                indefinite(&op.f, "timeout")
            }
        }
    }
}

impl Client for HttpJsonClient {
    fn open<'a>(
        &'a self,
        _test: &'a Test,
        _node: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Client>, HarnessError>> {
        Box::pin(async move {
            Ok(Box::new(HttpJsonClient::new(
                self.spec.clone(),
                self.addr,
                self.timeout,
            )) as Box<dyn Client>)
        })
    }

    fn invoke<'a>(&'a mut self, _test: &'a Test, op: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(self.call(op))
    }

    fn close<'a>(&'a mut self, _test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            self.connection = None;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custom::file::{ClientSpec, TargetFile};
    use std::path::Path;

    fn spec() -> HttpSpec {
        let text = r#"
name = "h"
[ports]
api = 80
[start]
command = ["srv"]
[client.http]
port = "api"
[client.http.read]
method = "GET"
path = "/kv/{key}"
value = "/data/value"
not_found = [404]
[client.http.write]
method = "PUT"
path = "/kv/{key}"
body = { value = "{value}" }
fail = [503]
[client.http.cas]
path = "/kv/{key}/cas"
body = { expected = "{value.0}", new = "{value.1}" }
compare_failed = [409]
fail = [503]
"#;
        let file = TargetFile::parse(text, Path::new("/x/s.toml"), Path::new("/x")).unwrap();
        match file.client {
            ClientSpec::Http(spec) => spec,
            ClientSpec::JsonLines { .. } => panic!("http"),
        }
    }

    fn op(f: &str, key: Value, value: Value) -> Invocation {
        Invocation {
            process: 0,
            f: f.into(),
            key: Some(key),
            value,
        }
    }

    fn reply(status: u16, body: Value) -> Response {
        Response { status, body }
    }

    #[test]
    fn requests_fill_paths_and_typed_bodies() {
        let spec = spec();
        let (method, path, body) =
            request_for(&spec.ops["cas"], &op("cas", json!("a b"), json!([null, 2]))).unwrap();
        assert_eq!(method, "POST");
        assert_eq!(path, "/kv/a%20b/cas");
        assert_eq!(body, Some(json!({"expected": null, "new": 2})));
        let (method, path, body) =
            request_for(&spec.ops["read"], &op("read", json!(7), Value::Null)).unwrap();
        assert_eq!(
            (method.as_str(), path.as_str(), body),
            ("GET", "/kv/7", None)
        );
        // A cas without its pair cannot be sent.
        assert!(request_for(&spec.ops["cas"], &op("cas", json!(1), json!(3))).is_err());
    }

    #[test]
    fn replies_map_to_ok_fail_and_info() {
        let spec = spec();
        let read = op("read", json!(1), Value::Null);
        let write = op("write", json!(1), json!(3));
        let cas = op("cas", json!(1), json!([3, 4]));
        let (r, w, c) = (&spec.ops["read"], &spec.ops["write"], &spec.ops["cas"]);
        assert_eq!(
            classify(r, &read, &reply(200, json!({"data": {"value": 3}}))),
            Completion::Ok(json!(3))
        );
        assert_eq!(
            classify(r, &read, &reply(200, json!({"data": {}}))),
            Completion::Ok(Value::Null)
        );
        assert_eq!(
            classify(r, &read, &reply(404, Value::Null)),
            Completion::Ok(Value::Null)
        );
        assert_eq!(
            classify(r, &read, &reply(500, json!({"error": "boom"}))),
            Completion::fail("boom"),
            "a read that went wrong changed nothing"
        );
        assert_eq!(
            classify(w, &write, &reply(204, Value::Null)),
            Completion::Ok(json!(3))
        );
        assert_eq!(
            classify(w, &write, &reply(503, json!({"error": "no primary"}))),
            Completion::fail("no primary")
        );
        assert_eq!(
            classify(w, &write, &reply(504, Value::Null)),
            Completion::info("http-504")
        );
        assert_eq!(
            classify(c, &cas, &reply(409, json!({"error": "mismatch"}))),
            Completion::fail("compare-failed")
        );
    }
}
