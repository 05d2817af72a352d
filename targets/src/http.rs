//! A small HTTP/1.1 client over one kept-alive TCP connection, for targets whose API is HTTP
//! and JSON (raftkv, etcd's JSON gateway).
//!
//! It tells apart the two ways a request can fail, because a client's verdict depends on it:
//! [`RequestError::Connect`] (nothing was sent: the operation certainly did not happen) and
//! [`RequestError::Lost`] (sent, then no answer: the outcome is unknown).
//!
//! Bodies come with a `Content-Length`, chunked (`Transfer-Encoding: chunked`, as etcd's
//! gateway sends its error replies, with trailers), or until the server closes the
//! connection. A response that says `Connection: close` leaves the connection unusable;
//! [`Connection::is_reusable`] says so, so that the caller reconnects instead of sending the
//! next request into a closed socket (which would turn a certain failure into an unknown one).

use serde_json::Value;
use std::net::SocketAddr;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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
    /// The server said `Connection: close` (or the body ran to the end of the stream).
    closed_by_server: bool,
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    /// Neither header: the body runs until the server closes the connection.
    UntilClose,
}

impl Connection {
    pub async fn connect(addr: SocketAddr) -> Result<Connection, RequestError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| RequestError::Connect(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream: BufReader::new(stream),
            closed_by_server: false,
        })
    }

    /// Whether another request may be sent on this connection.
    pub fn is_reusable(&self) -> bool {
        !self.closed_by_server
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
        let mut framing = Framing::UntilClose;
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
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
                let length = value
                    .parse()
                    .map_err(|_| RequestError::Lost(format!("bad header {header:?}")))?;
                framing = Framing::Length(length);
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().ends_with("chunked")
            {
                // Chunked wins over a Content-Length (RFC 9112 §6.3).
                framing = Framing::Chunked;
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                self.closed_by_server = true;
            }
        }
        let body = match framing {
            Framing::Length(length) => {
                if length > MAX_RESPONSE_BYTES {
                    return Err(RequestError::Lost(format!(
                        "response body of {length} bytes"
                    )));
                }
                let mut body = vec![0u8; length];
                self.stream.read_exact(&mut body).await.map_err(lost)?;
                body
            }
            Framing::Chunked => read_chunked(&mut self.stream).await?,
            Framing::UntilClose => {
                self.closed_by_server = true;
                let mut body = Vec::new();
                (&mut self.stream)
                    .take(MAX_RESPONSE_BYTES as u64 + 1)
                    .read_to_end(&mut body)
                    .await
                    .map_err(lost)?;
                if body.len() > MAX_RESPONSE_BYTES {
                    return Err(RequestError::Lost("response body too long".into()));
                }
                body
            }
        };
        Ok(Response {
            status,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        })
    }
}

/// What a streamed response gave before it ended or its time was up.
#[derive(Debug, Default)]
pub struct Streamed {
    pub status: u16,
    /// Every complete JSON value of the body, in order.
    pub values: Vec<Value>,
    /// Why the stream ended before the deadline (`None`: the deadline came first).
    pub ended: Option<String>,
}

/// Sends one request on a fresh connection to `addr` and reads its response body as a stream
/// of JSON values (etcd's gateway streams a watch as one JSON object per message, chunked)
/// until `until`, then drops the connection (which cancels the stream on the server).
/// `Err(Connect)` = nothing was sent; `Err(Lost)` = no response head came.
pub async fn stream_json(
    addr: SocketAddr,
    path: &str,
    body: &Value,
    until: tokio::time::Instant,
) -> Result<Streamed, RequestError> {
    let lost = |e: std::io::Error| RequestError::Lost(e.to_string());
    let connect = tokio::time::timeout_at(until, TcpStream::connect(addr));
    let stream = match connect.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(RequestError::Connect(e.to_string())),
        Err(_) => return Err(RequestError::Connect("connect-timeout".into())),
    };
    let _ = stream.set_nodelay(true);
    let mut stream = BufReader::new(stream);
    let body = body.to_string();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut streamed = Streamed::default();
    let read_head = async {
        stream
            .get_mut()
            .write_all(head.as_bytes())
            .await
            .map_err(lost)?;
        let mut line = String::new();
        stream.read_line(&mut line).await.map_err(lost)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RequestError::Lost(format!("bad status line {line:?}")))?;
        let mut chunked = false;
        let mut head_bytes = line.len();
        loop {
            line.clear();
            let n = stream.read_line(&mut line).await.map_err(lost)?;
            head_bytes += n;
            if n == 0 || head_bytes > MAX_RESPONSE_BYTES {
                return Err(RequestError::Lost("truncated response head".into()));
            }
            let header = line.trim_end();
            if header.is_empty() {
                return Ok((status, chunked));
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.trim().eq_ignore_ascii_case("transfer-encoding")
                    && value.trim().to_ascii_lowercase().ends_with("chunked")
                {
                    chunked = true;
                }
            }
        }
    };
    let (status, chunked) = match tokio::time::timeout_at(until, read_head).await {
        Ok(head) => head?,
        Err(_) => {
            return Err(RequestError::Lost(
                "no response head before the deadline".into(),
            ))
        }
    };
    streamed.status = status;
    // The body, de-chunked, then cut into JSON values as they complete.
    let mut data: Vec<u8> = Vec::new();
    let read_body = async {
        let mut line = String::new();
        loop {
            let piece = if chunked {
                line.clear();
                let n = stream.read_line(&mut line).await.map_err(lost)?;
                let size_text = line.trim_end().split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_text, 16)
                    .map_err(|_| RequestError::Lost(format!("bad chunk size {line:?}")))?;
                if n == 0 || size == 0 {
                    return Err::<(), _>(RequestError::Lost("the stream ended".into()));
                }
                let mut piece = vec![0u8; size + 2];
                stream.read_exact(&mut piece).await.map_err(lost)?;
                piece.truncate(size);
                piece
            } else {
                let mut piece = vec![0u8; 4096];
                let n = stream.read(&mut piece).await.map_err(lost)?;
                if n == 0 {
                    return Err(RequestError::Lost("the stream ended".into()));
                }
                piece.truncate(n);
                piece
            };
            data.extend_from_slice(&piece);
            let mut values = serde_json::Deserializer::from_slice(&data).into_iter::<Value>();
            let mut used = 0;
            while let Some(Ok(value)) = values.next() {
                used = values.byte_offset();
                streamed.values.push(value);
            }
            data.drain(..used);
            if data.len() > MAX_RESPONSE_BYTES {
                return Err(RequestError::Lost("a streamed value too long".into()));
            }
        }
    };
    if let Ok(Err(RequestError::Lost(why) | RequestError::Connect(why))) =
        tokio::time::timeout_at(until, read_body).await
    {
        streamed.ended = Some(why);
    }
    Ok(streamed)
}

/// Reads a chunked body: `<hex size>[;ext]\r\n<data>\r\n` until a zero size, then trailers
/// until an empty line.
async fn read_chunked(stream: &mut (impl AsyncBufRead + Unpin)) -> Result<Vec<u8>, RequestError> {
    let lost = |e: std::io::Error| RequestError::Lost(e.to_string());
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = stream.read_line(&mut line).await.map_err(lost)?;
        if n == 0 || line.len() > 1_024 {
            return Err(RequestError::Lost("truncated chunk size".into()));
        }
        let size_text = line.trim_end().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| RequestError::Lost(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            break;
        }
        if body.len() + size > MAX_RESPONSE_BYTES {
            return Err(RequestError::Lost("chunked body too long".into()));
        }
        let start = body.len();
        body.resize(start + size, 0);
        stream.read_exact(&mut body[start..]).await.map_err(lost)?;
        let mut crlf = [0u8; 2];
        stream.read_exact(&mut crlf).await.map_err(lost)?;
        if &crlf != b"\r\n" {
            return Err(RequestError::Lost("chunk not followed by CRLF".into()));
        }
    }
    // Trailers (etcd sends `Grpc-Trailer-Content-Type`), then the empty line.
    let mut trailer_bytes = 0;
    loop {
        line.clear();
        let n = stream.read_line(&mut line).await.map_err(lost)?;
        trailer_bytes += n;
        if n == 0 || trailer_bytes > MAX_RESPONSE_BYTES {
            return Err(RequestError::Lost("truncated trailers".into()));
        }
        if line.trim_end().is_empty() {
            return Ok(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::net::TcpListener;

    /// Serves each of `replies` (raw bytes) to one request in turn on one connection.
    async fn serve(replies: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut socket = BufReader::new(socket);
            for reply in replies {
                // Read one request: head, then its Content-Length body.
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if socket.read_line(&mut line).await.unwrap() == 0 {
                        return;
                    }
                    if line.trim_end().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0u8; length];
                socket.read_exact(&mut body).await.unwrap();
                socket.get_mut().write_all(reply).await.unwrap();
            }
        });
        addr
    }

    /// etcd's error replies: chunked, with a trailer; then a Content-Length reply on the same
    /// connection; then one that closes.
    #[tokio::test]
    async fn chunked_bodies_with_trailers_and_connection_close() {
        let addr = serve(vec![
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\
              Trailer: Grpc-Trailer-Content-Type\r\nTransfer-Encoding: chunked\r\n\r\n\
              10\r\n{\"error\":\"bad\", \r\n9;ext=1\r\n\"code\":3}\r\n0\r\n\
              Grpc-Trailer-Content-Type: application/grpc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"a\":1}\n",
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n{\"x\":2}",
        ])
        .await;
        let mut connection = Connection::connect(addr).await.unwrap();
        let response = connection
            .request("POST", "/", Some(&json!({})))
            .await
            .unwrap();
        assert_eq!(response.status, 400);
        assert_eq!(response.body, json!({"error": "bad", "code": 3}));
        assert!(connection.is_reusable());
        let response = connection.request("GET", "/", None).await.unwrap();
        assert_eq!((response.status, response.body), (200, json!({"a": 1})));
        let response = connection.request("GET", "/", None).await.unwrap();
        assert_eq!((response.status, response.body), (503, json!({"x": 2})));
        assert!(!connection.is_reusable());
    }

    #[tokio::test]
    async fn a_streamed_body_gives_each_json_value_as_it_completes() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              8\r\n{\"a\":1}\n\r\n5\r\n{\"b\":\r\n3\r\n2}\n\r\n0\r\n\r\n",
        ])
        .await;
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let streamed = stream_json(addr, "/", &json!({}), until).await.unwrap();
        assert_eq!(streamed.status, 200);
        assert_eq!(streamed.values, vec![json!({"a": 1}), json!({"b": 2})]);
        assert!(streamed.ended.is_some());
    }

    #[tokio::test]
    async fn a_connection_closed_mid_body_is_lost_and_a_refused_one_is_connect() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"a\"",
        ])
        .await;
        let mut connection = Connection::connect(addr).await.unwrap();
        let err = connection.request("GET", "/", None).await.unwrap_err();
        assert!(matches!(err, RequestError::Lost(_)), "{err:?}");
        // A port nobody listens on (bound, then released; below the ephemeral range, so no
        // outgoing connection of a concurrent test can take it meanwhile).
        let addr = crate::local::free_port().unwrap();
        let err = Connection::connect(addr).await.unwrap_err();
        assert!(matches!(err, RequestError::Connect(_)), "{err:?}");
    }
}
