//! A small, strict HTTP/1.1 server side: just enough for a curl-able JSON API.
//!
//! It reads a request line, headers and a `Content-Length` body, and writes responses with
//! a `Content-Length` body. Connections are kept alive (HTTP/1.1's default) unless the client
//! asks for `Connection: close` or speaks HTTP/1.0 without `keep-alive`. Everything is bounded:
//! the request head and the body have fixed maximum sizes, and anything malformed is an
//! [`HttpError`] that the caller answers with a 4xx status and closes the connection.
//!
//! Not supported, on purpose: chunked request bodies (501), pipelining beyond reading one
//! request at a time, and any header folding.

use std::fmt;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The request line and headers together may not exceed this many bytes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// At most this many headers per request.
pub const MAX_HEADERS: usize = 64;
/// A request body may not exceed this many bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// One parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// The path, still percent-encoded, without the query.
    pub path: String,
    /// The raw query string after `?`, if any.
    pub query: Option<String>,
    /// HTTP/1.0 or HTTP/1.1: `(1, 0)` or `(1, 1)`.
    pub version: (u8, u8),
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the connection stays open after the response.
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("connection").map(str::to_ascii_lowercase);
        match self.version {
            (1, 0) => connection.is_some_and(|c| c.split(',').any(|t| t.trim() == "keep-alive")),
            _ => !connection.is_some_and(|c| c.split(',').any(|t| t.trim() == "close")),
        }
    }

    /// The value of query parameter `name`, not percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }
}

/// Why a request could not be read. Each maps to the status the server answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The bytes are not a valid HTTP/1.x request: 400.
    Malformed(String),
    /// The request line and headers exceed [`MAX_HEAD_BYTES`] or [`MAX_HEADERS`]: 431.
    HeadTooLarge,
    /// The body exceeds [`MAX_BODY_BYTES`]: 413.
    BodyTooLarge,
    /// A feature this server does not implement (chunked bodies): 501.
    NotImplemented(String),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::NotImplemented(_) => 501,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(why) => write!(f, "malformed request: {why}"),
            HttpError::HeadTooLarge => write!(f, "request head larger than {MAX_HEAD_BYTES} bytes"),
            HttpError::BodyTooLarge => write!(f, "request body larger than {MAX_BODY_BYTES} bytes"),
            HttpError::NotImplemented(what) => write!(f, "not implemented: {what}"),
        }
    }
}

/// What reading the next request on a connection gave.
#[derive(Debug)]
pub enum ReadOutcome {
    Request(HttpRequest),
    /// The peer closed the connection cleanly between requests.
    Closed,
    /// The request was bad; answer with `error.status()` and close.
    Bad(HttpError),
    /// The connection failed (reset, or closed mid-request): just drop it.
    Io(std::io::Error),
}

fn malformed(why: impl Into<String>) -> HttpError {
    HttpError::Malformed(why.into())
}

/// Reads one request. `on_expect_continue` is written to the connection when the client sent
/// `Expect: 100-continue` (curl does for larger bodies) before the body is read.
pub async fn read_request<R, W>(reader: &mut R, writer: &mut W) -> ReadOutcome
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Read the head line by line, never holding more than MAX_HEAD_BYTES.
    let mut lines: Vec<String> = Vec::new();
    let mut head_bytes = 0usize;
    loop {
        let mut line = Vec::new();
        let limit = (MAX_HEAD_BYTES - head_bytes + 1) as u64;
        let read = match (&mut *reader)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) => n,
            Err(e) => return ReadOutcome::Io(e),
        };
        if read == 0 {
            return if lines.is_empty() && head_bytes == 0 {
                ReadOutcome::Closed
            } else {
                ReadOutcome::Io(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        head_bytes += read;
        if head_bytes > MAX_HEAD_BYTES {
            return ReadOutcome::Bad(HttpError::HeadTooLarge);
        }
        if !line.ends_with(b"\n") {
            return ReadOutcome::Io(std::io::ErrorKind::UnexpectedEof.into());
        }
        if !line.ends_with(b"\r\n") {
            return ReadOutcome::Bad(malformed("lines must end with CRLF"));
        }
        line.truncate(line.len() - 2);
        if line.is_empty() {
            if lines.is_empty() {
                // RFC 9112 §2.2: ignore at least one empty line before the request line.
                if head_bytes > 2 {
                    return ReadOutcome::Bad(malformed("empty request line"));
                }
                continue;
            }
            break;
        }
        let Ok(text) = String::from_utf8(line) else {
            return ReadOutcome::Bad(malformed("head is not UTF-8"));
        };
        lines.push(text);
        if lines.len() > MAX_HEADERS + 1 {
            return ReadOutcome::Bad(HttpError::HeadTooLarge);
        }
    }
    let mut request = match parse_head(&lines) {
        Ok(request) => request,
        Err(e) => return ReadOutcome::Bad(e),
    };
    let length = match body_length(&request) {
        Ok(length) => length,
        Err(e) => return ReadOutcome::Bad(e),
    };
    if length > 0 {
        let expects_continue = request
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if expects_continue && request.version == (1, 1) {
            if let Err(e) = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await {
                return ReadOutcome::Io(e);
            }
            if let Err(e) = writer.flush().await {
                return ReadOutcome::Io(e);
            }
        }
        let mut body = vec![0; length];
        if let Err(e) = reader.read_exact(&mut body).await {
            return ReadOutcome::Io(e);
        }
        request.body = body;
    }
    ReadOutcome::Request(request)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses the request line and headers (CRLFs already removed).
fn parse_head(lines: &[String]) -> Result<HttpRequest, HttpError> {
    let (request_line, header_lines) = lines.split_first().expect("at least the request line");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("request line is not METHOD SP TARGET SP VERSION"));
    };
    if !is_token(method) {
        return Err(malformed("bad method"));
    }
    let version = match version {
        "HTTP/1.1" => (1, 1),
        "HTTP/1.0" => (1, 0),
        other => return Err(malformed(format!("unsupported version {other:?}"))),
    };
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(malformed("the target must be an origin-form path"));
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_string(), Some(query.to_string())),
        None => (target.to_string(), None),
    };
    let mut headers = Vec::with_capacity(header_lines.len());
    for line in header_lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed("header line without a colon"));
        };
        // RFC 9112 §5.1: no whitespace between the name and the colon; no folding.
        if !is_token(name) {
            return Err(malformed(format!("bad header name {name:?}")));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(malformed("control character in a header value"));
        }
        headers.push((name.to_ascii_lowercase(), value.to_string()));
    }
    if version == (1, 1) && !headers.iter().any(|(n, _)| n == "host") {
        return Err(malformed("HTTP/1.1 requires a Host header"));
    }
    Ok(HttpRequest {
        method: method.to_string(),
        path,
        query,
        version,
        headers,
        body: Vec::new(),
    })
}

fn body_length(request: &HttpRequest) -> Result<usize, HttpError> {
    if request.header("transfer-encoding").is_some() {
        return Err(HttpError::NotImplemented(
            "Transfer-Encoding; send a Content-Length body".into(),
        ));
    }
    let mut length: Option<usize> = None;
    for (name, value) in &request.headers {
        if name != "content-length" {
            continue;
        }
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) || value.len() > 12 {
            return Err(malformed("bad Content-Length"));
        }
        let parsed: usize = value.parse().map_err(|_| malformed("bad Content-Length"))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(malformed("conflicting Content-Length headers"));
        }
        length = Some(parsed);
    }
    let length = length.unwrap_or(0);
    if length > MAX_BODY_BYTES {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(length)
}

/// The reason phrase of the statuses this server uses.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Writes a response with a JSON body.
pub async fn write_response<W: AsyncWrite + Unpin>(
    writer: &mut W,
    status: u16,
    body: &[u8],
    keep_alive: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        reason(status),
        body.len() + 1,
        if keep_alive { "keep-alive" } else { "close" },
    );
    let mut bytes = Vec::with_capacity(head.len() + body.len() + 1);
    bytes.extend_from_slice(head.as_bytes());
    bytes.extend_from_slice(body);
    // A trailing newline so that curl output ends a line.
    bytes.push(b'\n');
    writer.write_all(&bytes).await?;
    writer.flush().await
}

/// Decodes `%XX` escapes; `None` for a bad escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    fn read(bytes: &[u8]) -> ReadOutcome {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut reader = BufReader::new(bytes);
            let mut sink = Vec::new();
            read_request(&mut reader, &mut sink).await
        })
    }

    fn status_of(bytes: &[u8]) -> u16 {
        match read(bytes) {
            ReadOutcome::Bad(e) => e.status(),
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_request_with_a_body_and_query() {
        let ReadOutcome::Request(request) =
            read(b"PUT /kv/a%2Fb?stale=true HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n123")
        else {
            panic!("a request")
        };
        assert_eq!(request.method, "PUT");
        assert_eq!(request.path, "/kv/a%2Fb");
        assert_eq!(request.query_param("stale"), Some("true"));
        assert_eq!(request.body, b"123");
        assert!(request.keep_alive());
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("a%2"), None);
    }

    #[test]
    fn malformed_requests_are_rejected_with_their_status() {
        assert_eq!(status_of(b"GET /\r\n\r\n"), 400);
        assert_eq!(status_of(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status_of(b"GET / HTTP/1.1\r\n\r\n"), 400, "no Host");
        assert_eq!(status_of(b"GET / HTTP/1.1\nHost: x\n\n"), 400, "bare LF");
        assert_eq!(status_of(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400);
        assert_eq!(
            status_of(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of(
                b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
            ),
            400
        );
        assert_eq!(
            status_of(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"),
            413
        );
        assert_eq!(
            status_of(b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
        let mut huge = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        huge.extend(vec![b'a'; MAX_HEAD_BYTES]);
        huge.extend(b"\r\n\r\n");
        assert_eq!(status_of(&huge), 431);
    }

    #[test]
    fn clean_close_and_http_1_0_keep_alive() {
        assert!(matches!(read(b""), ReadOutcome::Closed));
        assert!(matches!(read(b"GET / HT"), ReadOutcome::Io(_)));
        let ReadOutcome::Request(request) = read(b"GET /status HTTP/1.0\r\n\r\n") else {
            panic!("a request")
        };
        assert!(!request.keep_alive());
    }
}
