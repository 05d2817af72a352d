//! A small HTTP/1.1 client over one kept-alive TCP connection, for targets whose API is HTTP
//! and JSON (raftkv, etcd's JSON gateway).
//!
//! It tells apart the two ways a request can fail, because a client's verdict depends on it:
//! [`RequestError::Connect`] (nothing was sent: the operation certainly did not happen) and
//! [`RequestError::Lost`] (sent, then no answer: the outcome is unknown).

use serde_json::Value;
use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The largest response head or body the client reads.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// One HTTP response: status and JSON body (null when the body is not JSON).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

/// Why a request got no response.
#[derive(Debug)]
pub enum RequestError {
    /// Could not connect: nothing was sent.
    Connect(String),
    /// Sent (or partly sent), then the connection failed: the outcome is unknown.
    Lost(String),
}

/// An HTTP/1.1 connection to one node, kept alive between requests.
#[derive(Debug)]
pub struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    pub async fn connect(addr: SocketAddr) -> Result<Connection, RequestError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| RequestError::Connect(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream: BufReader::new(stream),
        })
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, RequestError> {
        let lost = |e: std::io::Error| RequestError::Lost(e.to_string());
        let body = body.map(Value::to_string).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        self.stream
            .get_mut()
            .write_all(&bytes)
            .await
            .map_err(lost)?;
        // Status line.
        let mut line = String::new();
        let n = self.stream.read_line(&mut line).await.map_err(lost)?;
        if n == 0 {
            return Err(RequestError::Lost(
                "connection closed before a response".into(),
            ));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RequestError::Lost(format!("bad status line {line:?}")))?;
        let mut length = 0usize;
        let mut head_bytes = line.len();
        loop {
            line.clear();
            let n = self.stream.read_line(&mut line).await.map_err(lost)?;
            head_bytes += n;
            if n == 0 || head_bytes > MAX_RESPONSE_BYTES {
                return Err(RequestError::Lost("truncated response head".into()));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.trim().eq_ignore_ascii_case("content-length") {
                    length = value
                        .trim()
                        .parse()
                        .map_err(|_| RequestError::Lost(format!("bad header {header:?}")))?;
                }
            }
        }
        if length > MAX_RESPONSE_BYTES {
            return Err(RequestError::Lost(format!(
                "response body of {length} bytes"
            )));
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await.map_err(lost)?;
        Ok(Response {
            status,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        })
    }
}
