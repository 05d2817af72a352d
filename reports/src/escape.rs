//! Escaping for the two places a report puts untrusted text: HTML (text and attribute values)
//! and JSON embedded in a `<script>` element.
//!
//! Everything shown in a report can come from a history, a database's error or a log, so every
//! value passes through here; nothing is written into the page unescaped. A value
//! `<script>alert(1)</script>` must show as those characters, never run.

use serde::Serialize;

/// Escapes text for HTML element content and for double- or single-quoted attribute values.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    push_html(&mut out, text);
    out
}

/// As [`html`], appending to `out`.
pub fn push_html(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // A NUL is replaced by the parser anyway; say so instead of passing it on.
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// JSON text that is safe inside `<script type="application/json">`: the HTML parser ends a
/// script element at the first `</script` whatever the JavaScript or JSON around it, and
/// `<!--` changes how it scans, so `<`, `>` and `&` are written as JSON `\u` escapes (which
/// `JSON.parse` reads back as the same characters). U+2028 and U+2029 are escaped too, since
/// older JavaScript parsers end a string at them.
pub fn json_for_script<T: Serialize + ?Sized>(value: &T) -> String {
    let text = serde_json::to_string(value).expect("report data serializes to JSON");
    script_safe(&text)
}

/// Rewrites JSON text as [`json_for_script`] does. The characters replaced can only occur
/// inside JSON strings, where the `\u` forms mean the same.
pub fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a relative path for an `href`, segment by segment: only unreserved
/// characters stay as they are, so a file name can neither end the attribute nor become a
/// `javascript:` URL (a colon is encoded).
pub fn href_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Shortens text to at most `max_chars` characters, marking the cut with an ellipsis.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some((cut, _)) => {
            let keep = text[..cut]
                .char_indices()
                .nth(max_chars.saturating_sub(1))
                .map_or(cut, |(i, _)| i);
            format!("{}…", &text[..keep])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn html_escapes_markup_and_quotes() {
        assert_eq!(
            html("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(
            html(r#"" onmouseover='x' & y"#),
            "&quot; onmouseover=&#39;x&#39; &amp; y"
        );
        assert_eq!(html("plain text, é ✓"), "plain text, é ✓");
        assert_eq!(html("a\0b"), "a\u{FFFD}b");
    }

    #[test]
    fn json_in_a_script_cannot_close_it() {
        let value = json!({"v": "</script><script>alert(1)</script>", "c": "<!-- &amp;"});
        let text = json_for_script(&value);
        assert!(!text.contains('<'), "{text}");
        assert!(!text.contains('>'), "{text}");
        assert!(!text.contains('&'), "{text}");
        // The same JSON comes back.
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        let separators = json_for_script(&json!("a\u{2028}b\u{2029}"));
        assert_eq!(separators, r#""a\u2028b\u2029""#);
    }

    #[test]
    fn hrefs_are_percent_encoded() {
        assert_eq!(href_path("nodes/n1.log"), "nodes/n1.log");
        assert_eq!(
            href_path("javascript:alert(1)\"x"),
            "javascript%3Aalert%281%29%22x"
        );
        assert_eq!(href_path("a b/<c>"), "a%20b/%3Cc%3E");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ééééé", 3), "éé…");
    }
}
