//! `faultline serve` on a store of real runs: the index in a headless browser shows every run
//! with its verdict, a report missing from a run is written when first asked for, files are
//! served, and no request path reaches outside the store (raw or percent-encoded `..`,
//! absolute paths, links pointing out) — each gets 404.

mod report_support;

use report_support::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `faultline serve`, stopped when dropped (also when the test fails).
struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(store: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(["serve", "--store", store.to_str().unwrap(), "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("faultline serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.trim().strip_suffix('/'))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        assert!(
            address.starts_with("127.0.0.1:"),
            "binds loopback by default: {address}"
        );
        Server { child, address }
    }

    /// Sends `request_line` as it is (no client normalizes the path) and returns the status
    /// code, the head and the body.
    fn request(&self, method: &str, target: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let response = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        (status, head.to_string(), body.to_string())
    }

    fn get(&self, target: &str) -> (u16, String) {
        let (status, _, body) = self.request("GET", target);
        (status, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_browses_the_store_and_never_leaves_it() {
    let dir = TempDir::new("serve");
    let store = dir.path().join("store");
    for (extra, exit) in [
        (&["--seed", "31"][..], 0),
        (
            &["--bug", "stale-read", "--rate", "2000", "--seed", "32"][..],
            1,
        ),
    ] {
        let mut args = vec![
            "test",
            "--target",
            "memory",
            "--time-limit",
            "1",
            "--store",
            store.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = faultline(&args);
        assert_eq!(out.status.code(), Some(exit), "{}", text(&out));
    }
    // A secret beside the store, and a link inside the store that points at it.
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(dir.path(), store.join("escape")).unwrap();
    let latest = std::fs::read_link(store.join("latest")).unwrap();
    let latest = latest.to_str().unwrap();
    // `faultline test` wrote a report; remove it so that serve must make one on demand.
    std::fs::remove_file(store.join(latest).join("report.html")).unwrap();

    let server = Server::start(&store);

    // The index: both runs, their verdicts by colour.
    let (status, index) = server.get("/");
    assert_eq!(status, 200);
    assert!(index.contains("memory-register-stale-read") && index.contains("memory-register"));
    assert!(index.contains("<tr class=\"invalid\">") && index.contains("<tr class=\"valid\">"));
    assert!(index.contains("(report written when opened)"));

    // The report is written on first request, then served as a file.
    let (status, report) = server.get(&format!("/{latest}/report.html"));
    assert_eq!(status, 200);
    assert!(report.contains("<header class=\"banner invalid\">"));
    assert!(store.join(latest).join("report.html").is_file());
    let (status, head, _) = server.request("HEAD", "/latest/report.html");
    assert_eq!(status, 200);
    assert!(head.contains("text/html"), "{head}");
    let (status, head, body) = server.request("GET", "/latest/results.json");
    assert_eq!(status, 200);
    assert!(
        head.contains("application/json") && head.contains("nosniff"),
        "{head}"
    );
    assert!(body.contains("\"valid\": false"));
    let (status, listing) = server.get(&format!("/{latest}/"));
    assert_eq!(status, 200);
    assert!(listing.contains("history.jsonl") && listing.contains("faultline.log"));
    let (status, head, _) = server.request("GET", &format!("/{latest}"));
    assert_eq!(status, 301, "{head}");
    assert_eq!(server.request("POST", "/").0, 405);

    // Nothing outside the store, however it is spelled.
    for target in [
        "/../secret.txt",
        "/../../../../etc/passwd",
        "/%2e%2e/secret.txt",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/%2e%2e%2fsecret.txt",
        "/..%2Fsecret.txt",
        "/latest/../../secret.txt",
        "/latest/%2e%2e/%2e%2e/secret.txt",
        "/escape/secret.txt",
        "//etc/passwd",
        "/etc/passwd",
        &format!("/{}", dir.path().join("secret.txt").display()),
        "/%00",
        "/..\\secret.txt",
        "http://localhost/../secret.txt",
        "/memory-register/../../secret.txt/report.html",
        "/escape/report.html",
    ] {
        let (status, body) = server.get(target);
        assert_eq!(status, 404, "{target}: {body}");
        assert!(!body.contains("secret"), "{target}");
    }

    // The index and a report, rendered in a real browser.
    let url = format!("http://{}/", server.address);
    let (dom, _) = rendered_dom(&url);
    assert!(dom.contains("faultline runs"));
    assert!(dom.contains("<span class=\"pill invalid\">invalid</span>"));
    assert!(dom.contains("<span class=\"pill valid\">valid</span>"));
    screenshot(&url, &screenshot_dir().join("serve-index.png"), 700);
    let (dom, _) = rendered_dom(&format!("{url}latest/report.html"));
    assert!(dom.contains(">INVALID<"));
    assert!(
        dom.contains("data-ready=\"true\""),
        "the report's script runs when served"
    );
}

#[test]
fn serve_refuses_a_store_that_does_not_exist() {
    let dir = TempDir::new("serve-missing");
    let out = faultline(&[
        "serve",
        "--store",
        dir.path().join("nowhere").to_str().unwrap(),
        "--port",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(254), "{}", text(&out));
}
