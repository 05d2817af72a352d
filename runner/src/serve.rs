//! `faultline serve`: browses the store over HTTP: an index of every run with its verdict,
//! each run's report (written on first request when missing) and files.
//!
//! A small HTTP/1.1 server on tokio, one request per connection, GET and HEAD only: it serves
//! static files to a person's browser, which needs nothing more. It binds 127.0.0.1 by
//! default, since a store holds whatever the databases under test logged.
//!
//! # Correctness
//! Every request path goes through `faultline_reports::store::resolve`, which refuses `..` in
//! any spelling and anything whose canonical path lies outside the store (except through
//! `store/latest`): such requests get 404, as a missing file does.

use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use faultline_reports::store::{
    index_html, list_runs, listing_html, percent_decode, request_segments, resolve, ListedFile,
};
use faultline_reports::{write_report, REPORT_FILE};

use crate::{EXIT_BAD_INPUT, EXIT_INTERNAL};

/// The longest request head read (request line and headers).
const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;
/// How long a client may take to send its request head.
const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// How long sending one response may take.
const RESPONSE_TIMEOUT_MS: u64 = 300_000;
/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 64;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The store to browse.
    #[arg(long, default_value = "store")]
    store: PathBuf,

    /// The address to listen on (a non-loopback address exposes the store's logs).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,

    /// The port (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

pub fn run(args: ServeArgs) -> ExitCode {
    if !args.store.is_dir() {
        eprintln!(
            "faultline serve: the store {} is not a directory (give --store DIR)",
            args.store.display()
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("faultline-serve")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("faultline serve: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    let code = runtime.block_on(serve(args));
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}

async fn serve(args: ServeArgs) -> u8 {
    let address = SocketAddr::new(args.bind, args.port);
    let listener = match TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("faultline serve: cannot listen on {address}: {e}");
            return EXIT_INTERNAL;
        }
    };
    let local = listener.local_addr().unwrap_or(address);
    // On stdout, flushed, so a script (and the tests) can read the address of `--port 0`.
    println!(
        "faultline serve: serving {} at http://{local}/",
        args.store.display()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let store = Arc::new(args.store);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = tokio::signal::ctrl_c() => return 0,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Running out of file descriptors is worth a pause, not an exit.
                    eprintln!("faultline serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => return 0,
        };
        let store = store.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(
                Duration::from_millis(REQUEST_TIMEOUT_MS + RESPONSE_TIMEOUT_MS),
                handle(stream, &store),
            )
            .await;
        });
    }
}

/// What a response carries.
enum Body {
    Bytes(Vec<u8>),
    File(PathBuf, u64),
}

struct Response {
    status: &'static str,
    content_type: &'static str,
    body: Body,
    /// For redirects.
    location: Option<String>,
}

impl Response {
    fn text(status: &'static str, text: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: Body::Bytes(text.as_bytes().to_vec()),
            location: None,
        }
    }

    fn html(text: String) -> Response {
        Response {
            status: "200 OK",
            content_type: "text/html; charset=utf-8",
            body: Body::Bytes(text.into_bytes()),
            location: None,
        }
    }

    fn not_found() -> Response {
        Response::text("404 Not Found", "not found\n")
    }
}

/// Reads one request head; `None` when the client sent none, too much, or too slowly.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 2048];
    let read = async {
        loop {
            let n = stream.read(&mut buffer).await.ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(&buffer[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return Some(());
            }
            if head.len() > MAX_REQUEST_HEAD_BYTES {
                return None;
            }
        }
    };
    tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), read)
        .await
        .ok()??;
    String::from_utf8(head).ok()
}

async fn handle(mut stream: TcpStream, store: &Path) {
    let Some(head) = read_head(&mut stream).await else {
        let _ = respond(
            &mut stream,
            Response::text("400 Bad Request", "bad request\n"),
            false,
        )
        .await;
        return;
    };
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let response = match method {
        "GET" | "HEAD" => route(store, target).await,
        _ => Response::text("405 Method Not Allowed", "only GET and HEAD\n"),
    };
    let _ = respond(&mut stream, response, method == "HEAD").await;
}

/// The content type of a file in the store. Only a report is served as HTML: any other file
/// came from a database or a log and is shown as text (with `nosniff`), never run.
fn content_type(path: &Path) -> &'static str {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name == REPORT_FILE {
        return "text/html; charset=utf-8";
    }
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "json" => "application/json",
        "png" => "image/png",
        "jsonl" | "log" | "txt" | "out" | "err" | "stdout" | "stderr" | "edn" | "toml" | "md" => {
            "text/plain; charset=utf-8"
        }
        _ => "application/octet-stream",
    }
}

async fn route(store: &Path, target: &str) -> Response {
    let Some(segments) = request_segments(target) else {
        return Response::not_found();
    };
    if segments.is_empty() {
        let store_owned = store.to_path_buf();
        let page = tokio::task::spawn_blocking(move || {
            list_runs(&store_owned)
                .map(|runs| index_html(&store_owned.display().to_string(), &runs))
        })
        .await;
        return match page {
            Ok(Ok(page)) => Response::html(page),
            _ => Response::text("500 Internal Server Error", "cannot list the store\n"),
        };
    }
    let path_part = target.split(['?', '#']).next().unwrap_or("/");
    let resolved = match resolve(store, target) {
        Some(path) => path,
        None if segments.last().map(String::as_str) == Some(REPORT_FILE) => {
            // A run whose report was never written: write it now.
            let parent = format!("/{}", segments[..segments.len() - 1].join("/"));
            let Some(run_dir) = resolve(store, &parent).filter(|p| p.is_dir()) else {
                return Response::not_found();
            };
            match tokio::task::spawn_blocking(move || write_report(&run_dir)).await {
                Ok(Ok(_)) => match resolve(store, target) {
                    Some(path) => path,
                    None => return Response::not_found(),
                },
                Ok(Err(faultline_reports::ReportError::NotARun(_))) => {
                    return Response::not_found()
                }
                Ok(Err(e)) => {
                    return Response::text(
                        "500 Internal Server Error",
                        &format!("cannot write the report: {e}\n"),
                    )
                }
                Err(_) => {
                    return Response::text("500 Internal Server Error", "report writer failed\n")
                }
            }
        }
        None => return Response::not_found(),
    };
    if resolved.is_dir() {
        if !path_part.ends_with('/') {
            // Relative links in a listing need the trailing slash.
            return Response {
                status: "301 Moved Permanently",
                content_type: "text/plain; charset=utf-8",
                body: Body::Bytes(Vec::new()),
                location: Some(format!("{path_part}/")),
            };
        }
        let listed = tokio::task::spawn_blocking(move || list_dir(&resolved)).await;
        let url = percent_decode(path_part).unwrap_or_default();
        return match listed {
            Ok(Ok(files)) => Response::html(listing_html(&url, &files)),
            _ => Response::not_found(),
        };
    }
    match tokio::fs::metadata(&resolved).await {
        Ok(meta) if meta.is_file() => Response {
            status: "200 OK",
            content_type: content_type(&resolved),
            body: Body::File(resolved, meta.len()),
            location: None,
        },
        _ => Response::not_found(),
    }
}

/// A directory's entries, directories first, hidden files (temporaries) left out.
fn list_dir(dir: &Path) -> std::io::Result<Vec<ListedFile>> {
    let mut files: Vec<ListedFile> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                return None;
            }
            let meta = entry.metadata().ok()?;
            Some(ListedFile {
                name,
                is_dir: meta.is_dir(),
                size: meta.len(),
            })
        })
        .collect();
    files.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then(a.name.cmp(&b.name)));
    Ok(files)
}

async fn respond(
    stream: &mut TcpStream,
    response: Response,
    head_only: bool,
) -> std::io::Result<()> {
    let length = match &response.body {
        Body::Bytes(bytes) => bytes.len() as u64,
        Body::File(_, length) => *length,
    };
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {length}\r\nConnection: close\r\n\
         X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nReferrer-Policy: \
         no-referrer\r\n",
        response.status, response.content_type
    );
    if let Some(location) = &response.location {
        head.push_str(&format!("Location: {location}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        match response.body {
            Body::Bytes(bytes) => stream.write_all(&bytes).await?,
            Body::File(path, length) => {
                let file = tokio::fs::File::open(&path).await?;
                // A file that grew since (a live history) is sent as long as announced.
                tokio::io::copy(&mut file.take(length), stream).await?;
            }
        }
    }
    stream.flush().await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reports_are_served_as_html() {
        assert_eq!(
            content_type(Path::new("/s/t/r/report.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("/s/t/r/nodes/evil.html")),
            "application/octet-stream"
        );
        assert_eq!(
            content_type(Path::new("/s/t/r/nodes/n1.log")),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("/s/x.svg")),
            "application/octet-stream"
        );
    }
}
