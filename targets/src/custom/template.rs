//! Placeholders in a target file's commands, paths and bodies: `{node}`, `{port.client}`,
//! `{var.reads}`, ... with `{{` and `}}` for literal braces.
//!
//! A [`Template`] is parsed once, when the target file is read, and checked against the names
//! its context knows (a start command may say `{peers}`, a client command may not), so a typo
//! is a bad argument before anything runs. Rendering substitutes values in three ways, one per
//! place a template is used:
//! - [`Template::render`]: plain text, for one argument of an argv command (no shell, so
//!   nothing to escape);
//! - [`Template::render_shell`]: each value single-quoted for `sh -c` (a value with spaces,
//!   quotes or `;` stays one word and runs nothing);
//! - [`Template::render_path`]: each value percent-encoded, for an HTTP path.
//!
//! ```
//! use faultline_targets::custom::template::Template;
//! let t = Template::parse("--peers={peers} {{literal}}").unwrap();
//! assert_eq!(t.placeholders(), vec!["peers"]);
//! let lookup = |name: &str| (name == "peers").then(|| "1=a b;rm".to_string());
//! assert_eq!(t.render(&lookup).unwrap(), "--peers=1=a b;rm {literal}");
//! assert_eq!(t.render_shell(&lookup).unwrap(), "--peers='1=a b;rm' {literal}");
//! ```

use crate::ssh::shell_quote;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// A placeholder's name: `node`, `port.client`, `var.reads`.
    Placeholder(String),
}

/// A string with placeholders, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// Whether `name` can be a placeholder: letters, digits, `_`, `-` and `.` (one level of
/// `group.name`).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name.matches('.').count() <= 1
}

impl Template {
    /// Parses `source`; an unclosed `{`, a lone `}` or an empty or malformed name is an error
    /// that says where.
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!("{source:?}: `{{` at byte {at} is never closed"));
                    }
                    if !valid_name(&name) {
                        return Err(format!(
                            "{source:?}: `{{{name}}}` is not a placeholder (write `{{{{` for a \
                             literal brace)"
                        ));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Placeholder(name));
                }
                '}' => {
                    return Err(format!(
                        "{source:?}: `}}` at byte {at} closes nothing (write `}}}}` for a literal \
                         brace)"
                    ))
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The text as written in the file.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every placeholder name, in order of appearance (with repeats).
    pub fn placeholders(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Placeholder(name) => Some(name.as_str()),
                Part::Literal(_) => None,
            })
            .collect()
    }

    /// The placeholder name when the whole template is exactly one placeholder (`"{value}"`):
    /// a JSON body then takes the value itself, not its text.
    pub fn sole_placeholder(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Placeholder(name)] => Some(name),
            _ => None,
        }
    }

    /// Fails on the first placeholder `known` does not accept, naming `context` and what it
    /// may use.
    pub fn check(
        &self,
        context: &str,
        known: impl Fn(&str) -> bool,
        allowed: &str,
    ) -> Result<(), String> {
        for name in self.placeholders() {
            if !known(name) {
                return Err(format!(
                    "{context}: {:?} uses `{{{name}}}`, which is not known there (allowed: \
                     {allowed})",
                    self.source
                ));
            }
        }
        Ok(())
    }

    fn render_with(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
        escape: impl Fn(&str) -> String,
    ) -> Result<String, String> {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Placeholder(name) => {
                    let value = lookup(name)
                        .ok_or_else(|| format!("{:?}: no value for `{{{name}}}`", self.source))?;
                    out.push_str(&escape(&value));
                }
            }
        }
        Ok(out)
    }

    /// The text with each placeholder replaced by its value, as is.
    pub fn render(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        self.render_with(lookup, str::to_string)
    }

    /// The text with each placeholder replaced by its value single-quoted for a POSIX shell.
    pub fn render_shell(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        self.render_with(lookup, shell_quote)
    }

    /// The text with each placeholder replaced by its value percent-encoded (everything but
    /// unreserved characters), for an HTTP path.
    pub fn render_path(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        self.render_with(lookup, percent_encode)
    }
}

/// Percent-encodes every byte but RFC 3986's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str) -> Option<String> {
        match name {
            "node" => Some("n1".into()),
            "port.client" => Some("8100".into()),
            "key" => Some("a/b c".into()),
            "evil" => Some("x'; rm -rf / #".into()),
            _ => None,
        }
    }

    #[test]
    fn placeholders_literals_and_escaped_braces() {
        let t = Template::parse("{node}:{port.client} {{json}} }}").unwrap();
        assert_eq!(t.placeholders(), ["node", "port.client"]);
        assert_eq!(t.render(&values).unwrap(), "n1:8100 {json} }");
        assert_eq!(
            Template::parse("{value}").unwrap().sole_placeholder(),
            Some("value")
        );
        assert_eq!(
            Template::parse("x{value}").unwrap().sole_placeholder(),
            None
        );
        assert_eq!(Template::parse("").unwrap().render(&values).unwrap(), "");
    }

    #[test]
    fn malformed_templates_say_where() {
        for bad in ["{node", "a}b", "{}", "{a b}", "{.x}", "{a.b.c}", "{x.}"] {
            let err = Template::parse(bad).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
        let t = Template::parse("{nope}").unwrap();
        let err = t.check("start", |n| n == "node", "{node}").unwrap_err();
        assert!(err.contains("`{nope}`") && err.contains("start"), "{err}");
        assert!(t.render(&values).unwrap_err().contains("no value"));
    }

    #[test]
    fn shell_rendering_keeps_each_value_one_inert_word() {
        let t = Template::parse("echo {evil}").unwrap();
        let line = t.render_shell(&values).unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", &line])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "x'; rm -rf / #\n");
    }

    #[test]
    fn paths_are_percent_encoded() {
        let t = Template::parse("/kv/{key}").unwrap();
        assert_eq!(t.render_path(&values).unwrap(), "/kv/a%2Fb%20c");
    }
}
