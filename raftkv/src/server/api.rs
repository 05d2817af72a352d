//! The client API: HTTP requests to [`ClientRequest`]s, outcomes to [`ApiResponse`]s.
//!
//! Every response body is JSON and says whether the outcome is known:
//! - `{"ok": true, ...}`: it happened;
//! - `{"ok": false, "error": E, "definite": true}`: it certainly did not happen;
//! - `{"ok": false, "error": E, "definite": false}`: it may or may not have happened (a
//!   timeout, lost leadership with the proposal in flight, a shutdown mid-request).
//!
//! A client recording a history maps these to `ok`, `fail` and `info`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::http::{percent_decode, HttpError, HttpRequest};
use crate::kv::MicroOp;
use crate::raft::NodeId;

/// What a client asked for. Also what a follower forwards to the leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// `stale`: answer from this node's state, with no ReadIndex.
    Get {
        key: String,
        stale: bool,
    },
    Put {
        key: String,
        value: Value,
    },
    Cas {
        key: String,
        expected: Value,
        new: Value,
    },
    Delete {
        key: String,
    },
    Txn {
        ops: Vec<MicroOp>,
    },
    Status,
}

impl ClientRequest {
    /// Whether answering changes nothing (so a lost answer never leaves an effect behind).
    pub fn is_read_only(&self) -> bool {
        match self {
            ClientRequest::Get { .. } | ClientRequest::Status => true,
            ClientRequest::Txn { ops } => ops.iter().all(|op| matches!(op, MicroOp::Read { .. })),
            _ => false,
        }
    }
}

/// A status code and a JSON body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Value,
}

impl ApiResponse {
    /// 200 `{"ok": true}` plus `fields`.
    pub fn ok(fields: Value) -> ApiResponse {
        let mut body = json!({"ok": true});
        if let (Value::Object(body), Value::Object(fields)) = (&mut body, fields) {
            body.extend(fields);
        }
        ApiResponse { status: 200, body }
    }

    /// 200 `{"ok": true, "value": value}`.
    pub fn value(value: Value) -> ApiResponse {
        ApiResponse::ok(json!({ "value": value }))
    }

    /// An error: `definite` = the request certainly had no effect.
    pub fn error(status: u16, error: &str, definite: bool) -> ApiResponse {
        ApiResponse {
            status,
            body: json!({"ok": false, "error": error, "definite": definite}),
        }
    }

    /// Adds a field to the body.
    pub fn with(mut self, key: &str, value: Value) -> ApiResponse {
        if let Value::Object(body) = &mut self.body {
            body.insert(key.to_string(), value);
        }
        self
    }

    /// 503: this node is not the leader and nothing was proposed.
    pub fn not_leader(leader: Option<NodeId>) -> ApiResponse {
        ApiResponse::error(503, "not-leader", true).with("leader", json!(leader))
    }

    /// 504: the request timed out; a write may or may not take effect.
    pub fn timeout() -> ApiResponse {
        ApiResponse::error(504, "timeout", false)
    }

    /// 500: leadership changed with the proposal in flight; it may or may not commit.
    pub fn leadership_lost() -> ApiResponse {
        ApiResponse::error(500, "leadership-lost", false)
    }

    /// 400 with a reason; nothing was done.
    pub fn bad_request(detail: impl Into<String>) -> ApiResponse {
        ApiResponse::error(400, "bad-request", true).with("detail", Value::String(detail.into()))
    }

    /// The response to a request that could not be read.
    pub fn http_error(error: &HttpError) -> ApiResponse {
        let name = match error {
            HttpError::Malformed(_) => "bad-request",
            HttpError::HeadTooLarge => "head-too-large",
            HttpError::BodyTooLarge => "body-too-large",
            HttpError::NotImplemented(_) => "not-implemented",
        };
        ApiResponse::error(error.status(), name, true).with("detail", json!(error.to_string()))
    }

    /// Whether the body says the outcome is unknown.
    pub fn is_indefinite(&self) -> bool {
        self.body.get("definite") == Some(&Value::Bool(false))
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiResponse> {
    serde_json::from_slice(body).map_err(|e| ApiResponse::bad_request(format!("{what}: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasBody {
    expected: Value,
    new: Value,
}

/// Maps an HTTP request to what the client asked for, or the error response to send.
pub fn route(request: &HttpRequest) -> Result<ClientRequest, ApiResponse> {
    let segments: Vec<&str> = request.path[1..].split('/').collect();
    let method = request.method.as_str();
    let key = |raw: &str| -> Result<String, ApiResponse> {
        match percent_decode(raw) {
            Some(key) if !key.is_empty() => Ok(key),
            Some(_) => Err(ApiResponse::bad_request("empty key")),
            None => Err(ApiResponse::bad_request("bad percent-encoding in the key")),
        }
    };
    let not_allowed = || ApiResponse::error(405, "method-not-allowed", true);
    match segments.as_slice() {
        ["kv", raw] => {
            let key = key(raw)?;
            match method {
                "GET" => {
                    let stale = match request.query_param("stale") {
                        None | Some("false") => false,
                        Some("true") | Some("") => true,
                        Some(other) => {
                            return Err(ApiResponse::bad_request(format!(
                                "stale must be true or false, not {other:?}"
                            )))
                        }
                    };
                    Ok(ClientRequest::Get { key, stale })
                }
                "PUT" => Ok(ClientRequest::Put {
                    key,
                    value: parse_json(&request.body, "the body must be a JSON value")?,
                }),
                "DELETE" => Ok(ClientRequest::Delete { key }),
                _ => Err(not_allowed()),
            }
        }
        ["kv", raw, "cas"] => {
            if method != "POST" {
                return Err(not_allowed());
            }
            let CasBody { expected, new } = parse_json(
                &request.body,
                r#"the body must be {"expected": .., "new": ..}"#,
            )?;
            Ok(ClientRequest::Cas {
                key: key(raw)?,
                expected,
                new,
            })
        }
        ["txn"] => {
            if method != "POST" {
                return Err(not_allowed());
            }
            let ops: Vec<MicroOp> = parse_json(
                &request.body,
                r#"the body must be a list of micro-ops like [["r","x",null],["w","y",1],["append","z",3]]"#,
            )?;
            if ops.is_empty() {
                return Err(ApiResponse::bad_request("a transaction needs a micro-op"));
            }
            if let Some(op) = ops.iter().find(|op| op.key().is_empty()) {
                return Err(ApiResponse::bad_request(format!("empty key in {op:?}")));
            }
            Ok(ClientRequest::Txn { ops })
        }
        ["status"] => match method {
            "GET" => Ok(ClientRequest::Status),
            _ => Err(not_allowed()),
        },
        _ => Err(ApiResponse::error(404, "not-found", true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(method: &str, target: &str, body: &str) -> HttpRequest {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (target.to_string(), None),
        };
        HttpRequest {
            method: method.into(),
            path,
            query,
            version: (1, 1),
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn routes_every_endpoint() {
        assert_eq!(
            route(&http("GET", "/kv/a%20b?stale=true", "")),
            Ok(ClientRequest::Get {
                key: "a b".into(),
                stale: true
            })
        );
        assert_eq!(
            route(&http("PUT", "/kv/x", "[1,2]")),
            Ok(ClientRequest::Put {
                key: "x".into(),
                value: json!([1, 2])
            })
        );
        assert_eq!(
            route(&http("POST", "/kv/x/cas", r#"{"expected":null,"new":3}"#)),
            Ok(ClientRequest::Cas {
                key: "x".into(),
                expected: Value::Null,
                new: json!(3)
            })
        );
        assert_eq!(
            route(&http("DELETE", "/kv/x", "")),
            Ok(ClientRequest::Delete { key: "x".into() })
        );
        assert!(matches!(
            route(&http("POST", "/txn", r#"[["r","x",null],["append","y",1]]"#)),
            Ok(ClientRequest::Txn { ops }) if ops.len() == 2
        ));
        assert_eq!(
            route(&http("GET", "/status", "")),
            Ok(ClientRequest::Status)
        );
    }

    #[test]
    fn bad_requests_are_definite_errors() {
        for (method, target, body, status) in [
            ("PUT", "/kv/x", "not json", 400),
            ("POST", "/kv/x/cas", r#"{"expected":1}"#, 400),
            ("POST", "/txn", r#"[["x","k",1]]"#, 400),
            ("POST", "/txn", "[]", 400),
            ("GET", "/kv/", "", 400),
            ("GET", "/kv/x?stale=maybe", "", 400),
            ("POST", "/kv/x", "1", 405),
            ("GET", "/nope", "", 404),
        ] {
            let response = route(&http(method, target, body)).unwrap_err();
            assert_eq!(response.status, status, "{method} {target} {body}");
            assert_eq!(response.body["definite"], json!(true));
        }
    }
}
