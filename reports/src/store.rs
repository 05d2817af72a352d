//! The store's layout as `faultline serve` shows it: every run with its verdict, a listing of
//! a run's files, and the one function that maps a request path to a file, refusing anything
//! outside the store.
//!
//! The store is `store/<test-name>/<timestamp>/` per run, and `store/latest`, a symbolic link
//! to the newest run.

use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use crate::checkers::Verdict;
use crate::escape::{href_path, html};
use crate::page::readable_start_time;
use crate::{HISTORY_FILE, REPORT_FILE, RESULTS_FILE, TEST_FILE};

/// The link in the store that names the newest run.
pub const LATEST: &str = "latest";
/// Most runs the index lists (newest first).
pub const MAX_RUNS_LISTED: usize = 5_000;

/// Decodes `%XX` escapes of a URL path. `None` for a malformed escape, text that is not
/// UTF-8, or a NUL.
pub fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
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
    let text = String::from_utf8(out).ok()?;
    (!text.contains('\0')).then_some(text)
}

/// The request path's segments, decoded, or `None` when any would leave the directory it is
/// in: `..` or `.` (also percent-encoded, as `%2e%2e`), a backslash, or a segment that is
/// itself an absolute path or a drive. Empty segments (`//`) are dropped.
pub fn request_segments(target: &str) -> Option<Vec<String>> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return None;
    }
    // Decoding first, then splitting, so an encoded slash (`..%2f..`) is a separator too.
    let decoded = percent_decode(path)?;
    let mut segments = Vec::new();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        let mut components = Path::new(segment).components();
        let only_normal =
            matches!(components.next(), Some(Component::Normal(_))) && components.next().is_none();
        if !only_normal || segment.contains('\\') || segment.contains(':') {
            return None;
        }
        segments.push(segment.to_string());
    }
    Some(segments)
}

/// Maps a request path to an existing file or directory inside the store, or `None` (serve
/// answers 404).
///
/// # Correctness
/// The answer is always inside the store once symbolic links are resolved: `..` in any
/// spelling is refused before touching the file system, and the canonical path must lie
/// under the canonical store, so a link inside the store that points outside is refused too.
/// The one exception is `store/latest`, which names the newest run wherever it lies; paths
/// through it must stay inside the run it points to.
pub fn resolve(store: &Path, target: &str) -> Option<PathBuf> {
    let segments = request_segments(target)?;
    let root = store.canonicalize().ok()?;
    let mut path = root.clone();
    for segment in &segments {
        path.push(segment);
    }
    let canonical = path.canonicalize().ok()?;
    let allowed = if segments.first().map(String::as_str) == Some(LATEST) {
        root.join(LATEST).canonicalize().ok()?
    } else {
        root
    };
    canonical.starts_with(&allowed).then_some(canonical)
}

/// One run of the store, as the index lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEntry {
    /// `<test-name>/<timestamp>`, relative to the store.
    pub path: String,
    pub name: String,
    pub start_time: String,
    pub target: String,
    pub workload: String,
    pub faults: String,
    /// `None`: no results.json (running, or stopped before checking).
    pub verdict: Option<Verdict>,
    pub ops: Option<u64>,
    pub has_report: bool,
    pub is_latest: bool,
}

fn is_run_dir(dir: &Path) -> bool {
    [TEST_FILE, HISTORY_FILE, RESULTS_FILE]
        .iter()
        .any(|f| dir.join(f).is_file())
}

fn read_small_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Every run in the store, newest first. Symbolic links are not followed (`latest` only
/// marks the run it points to), so the listing cannot leave the store.
pub fn list_runs(store: &Path) -> std::io::Result<Vec<RunEntry>> {
    let latest = std::fs::read_link(store.join(LATEST))
        .ok()
        .map(|target| target.to_string_lossy().trim_end_matches('/').to_string());
    let mut runs = Vec::new();
    for test in std::fs::read_dir(store)?.flatten() {
        let test_name = test.file_name().to_string_lossy().into_owned();
        if test_name.starts_with('.') || !test.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(stamps) = std::fs::read_dir(test.path()) else {
            continue;
        };
        for run in stamps.flatten() {
            let stamp = run.file_name().to_string_lossy().into_owned();
            let dir = run.path();
            if stamp.starts_with('.')
                || !run.file_type().is_ok_and(|t| t.is_dir())
                || !is_run_dir(&dir)
            {
                continue;
            }
            let test_json = read_small_json(&dir.join(TEST_FILE));
            let results = read_small_json(&dir.join(RESULTS_FILE));
            let text = |name: &str| {
                test_json
                    .as_ref()
                    .and_then(|t| t.get(name))
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        Value::Array(a) => a
                            .iter()
                            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join(","),
                        other => other.to_string(),
                    })
                    .unwrap_or_default()
            };
            let path = format!("{test_name}/{stamp}");
            let start_time = match text("start_time") {
                s if s.is_empty() => stamp.clone(),
                s => s,
            };
            runs.push(RunEntry {
                is_latest: latest.as_deref() == Some(path.as_str()),
                name: match text("name") {
                    s if s.is_empty() => test_name.clone(),
                    s => s,
                },
                start_time,
                target: text("target"),
                workload: text("workload"),
                faults: text("nemesis"),
                verdict: results.as_ref().map(|r| Verdict::of(r.get("valid"))),
                ops: results
                    .as_ref()
                    .and_then(|r| r.get("stats")?.get("ops")?.as_u64()),
                has_report: dir.join(REPORT_FILE).is_file(),
                path,
            });
        }
    }
    runs.sort_by(|a, b| b.start_time.cmp(&a.start_time).then(b.path.cmp(&a.path)));
    runs.truncate(MAX_RUNS_LISTED);
    Ok(runs)
}

const CSS: &str = include_str!("assets/report.css");

fn page_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta \
         http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src \
         'unsafe-inline'\"><title>{}</title><style>{CSS}</style></head><body><main>",
        html(title)
    )
}

/// The store's index page: every run, newest first, its verdict by colour, a link to its
/// report (which `serve` writes when it is first opened) and to its files.
pub fn index_html(store_label: &str, runs: &[RunEntry]) -> String {
    let mut out = page_head("faultline runs");
    let counts = |v: Option<Verdict>| runs.iter().filter(|r| r.verdict == v).count();
    let _ = write!(
        out,
        "<h1 style=\"margin-top:20px\">faultline runs</h1><p>{} runs in <code>{}</code>: {} \
         valid, {} invalid, {} unknown, {} without results.</p>",
        runs.len(),
        html(store_label),
        counts(Some(Verdict::Valid)),
        counts(Some(Verdict::Invalid)),
        counts(Some(Verdict::Unknown)),
        counts(None)
    );
    if runs.is_empty() {
        out.push_str(
            "<p class=\"note\">No runs yet: <code>faultline test --store DIR</code> writes \
             them.</p>",
        );
    }
    out.push_str(
        "<table class=\"runs\" id=\"runs\"><thead><tr><th>run</th><th>started</th><th>target\
         </th><th>workload</th><th>faults</th><th>verdict</th><th>ops</th><th>files</th></tr>\
         </thead><tbody>",
    );
    for run in runs {
        let verdict = run.verdict.map_or("none", Verdict::as_str);
        let base = format!("/{}/", href_path(&run.path));
        let _ = write!(
            out,
            "<tr class=\"{verdict}\"><td><a href=\"{base}{REPORT_FILE}\">{}</a>{}{}</td><td>{}\
             </td><td>{}</td><td>{}</td><td>{}</td><td><span class=\"pill {verdict}\">{}\
             </span></td><td>{}</td><td><a href=\"{base}\">files</a></td></tr>",
            html(&run.name),
            if run.is_latest {
                " <b>(latest)</b>"
            } else {
                ""
            },
            if run.has_report {
                ""
            } else {
                " <span class=\"note\">(report written when opened)</span>"
            },
            html(&readable_start_time(&run.start_time)),
            html(&run.target),
            html(&run.workload),
            html(&run.faults),
            if run.verdict.is_some() {
                verdict
            } else {
                "no results"
            },
            run.ops.map_or(String::new(), |n| n.to_string()),
        );
    }
    out.push_str("</tbody></table></main></body></html>\n");
    out
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedFile {
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
}

/// A directory listing (a run's files, its nodes' logs). `url_path` is the decoded request
/// path of the directory, ending in `/`.
pub fn listing_html(url_path: &str, files: &[ListedFile]) -> String {
    let mut out = page_head(url_path);
    let _ = write!(
        out,
        "<h1 style=\"margin-top:20px\">{}</h1><p><a href=\"/\">all runs</a> · <a \
         href=\"..\">parent directory</a></p><table class=\"ops\"><thead><tr><th>name</th>\
         <th>size (bytes)</th></tr></thead><tbody>",
        html(url_path)
    );
    for file in files {
        let slash = if file.is_dir { "/" } else { "" };
        let _ = write!(
            out,
            "<tr><td><a href=\"{}{slash}\">{}{slash}</a></td><td>{}</td></tr>",
            href_path(&file.name),
            html(&file.name),
            if file.is_dir {
                String::new()
            } else {
                file.size.to_string()
            }
        );
    }
    out.push_str("</tbody></table></main></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("faultline-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn percent_decoding_refuses_malformed_escapes() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/%2e%2E").as_deref(), Some("/.."));
        assert_eq!(percent_decode("/%zz"), None);
        assert_eq!(percent_decode("/%2"), None);
        assert_eq!(percent_decode("/%00"), None);
        assert_eq!(percent_decode("/%ff"), None);
    }

    #[test]
    fn dot_segments_in_any_spelling_are_refused() {
        for bad in [
            "/../etc/passwd",
            "/run/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/..%2f..%2fetc",
            "/./x",
            "/a\\..\\b",
            "/C:/x",
            "relative/path",
            "http://host/x",
        ] {
            assert_eq!(request_segments(bad), None, "{bad}");
        }
        assert_eq!(
            request_segments("/t/20261202T0/report.html?x=1#y").unwrap(),
            ["t", "20261202T0", "report.html"]
        );
        assert_eq!(request_segments("//t//x").unwrap(), ["t", "x"]);
        assert!(request_segments("/").unwrap().is_empty());
    }

    #[test]
    fn resolution_stays_inside_the_store() {
        let store = temp_store("resolve");
        let outside = temp_store("resolve-outside");
        std::fs::write(outside.join("secret"), "x").unwrap();
        std::fs::create_dir_all(store.join("t/r1")).unwrap();
        std::fs::write(store.join("t/r1/results.json"), "{}").unwrap();
        std::os::unix::fs::symlink("t/r1", store.join(LATEST)).unwrap();
        std::os::unix::fs::symlink(&outside, store.join("escape")).unwrap();
        let canonical = store.canonicalize().unwrap();
        assert_eq!(
            resolve(&store, "/t/r1/results.json"),
            Some(canonical.join("t/r1/results.json"))
        );
        assert_eq!(
            resolve(&store, "/latest/results.json"),
            Some(canonical.join("t/r1/results.json"))
        );
        assert_eq!(resolve(&store, "/"), Some(canonical.clone()));
        // A link inside the store that points outside it.
        assert_eq!(resolve(&store, "/escape/secret"), None);
        assert_eq!(resolve(&store, "/t/r1/missing"), None);
        let secret = outside.canonicalize().unwrap().join("secret");
        assert_eq!(resolve(&store, &format!("/{}", secret.display())), None);
        assert_eq!(resolve(&store, "/t/r1/../../escape/secret"), None);
        std::fs::remove_dir_all(&store).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn runs_are_listed_newest_first_with_their_verdicts() {
        let store = temp_store("list");
        for (stamp, valid) in [
            ("20260101T000000.000Z", "true"),
            ("20260102T000000.000Z", "false"),
        ] {
            let dir = store.join("memory-register").join(stamp);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("test.json"),
                format!(
                    r#"{{"name":"memory-register","target":"memory","workload":"register",
                        "nemesis":["kill","pause"],"start_time":"{stamp}"}}"#
                ),
            )
            .unwrap();
            std::fs::write(
                dir.join("results.json"),
                format!(r#"{{"valid":{valid},"stats":{{"ops":12}}}}"#),
            )
            .unwrap();
        }
        std::fs::create_dir_all(store.join("memory-register/not-a-run")).unwrap();
        std::os::unix::fs::symlink("memory-register/20260102T000000.000Z", store.join(LATEST))
            .unwrap();
        let runs = list_runs(&store).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].verdict, Some(Verdict::Invalid));
        assert!(runs[0].is_latest && !runs[1].is_latest);
        assert_eq!(runs[0].faults, "kill,pause");
        assert_eq!(runs[0].ops, Some(12));
        let page = index_html("store", &runs);
        assert!(page.contains("<tr class=\"invalid\">"));
        assert!(page.contains("href=\"/memory-register/20260101T000000.000Z/report.html\""));
        assert!(page.contains("1 valid, 1 invalid"));
        std::fs::remove_dir_all(&store).unwrap();
    }

    #[test]
    fn listings_escape_file_names() {
        let page = listing_html(
            "/t/<r>/",
            &[ListedFile {
                name: "<img src=x onerror=alert(1)>".into(),
                is_dir: false,
                size: 3,
            }],
        );
        assert!(!page.contains("<img"));
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }
}
