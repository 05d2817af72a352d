//! A fast path for the EDN histories almost every tool writes: flat op maps such as
//! `{:process 4, :type :ok, :f :cas, :value [1 2], :time 7686455705}`, one after another or in
//! one top-level vector or list.
//!
//! It reads keywords, integers, `nil`, booleans, strings without escapes, and vectors and
//! lists of those, straight into [`ParsedOp`]s, without building [`crate::edn::Edn`] values
//! (a `String` per keyword and a vector per map). Anything else (a float, an escape, a symbol,
//! a set, a tag, a map as a value, a key that is not a keyword, a repeated key, an op map
//! the slow path would reject) makes it give up with `None`, and the caller reads the text
//! with the full reader, which is also what reports errors with their lines. So the fast path
//! changes how fast a history is read, never what it reads as: a property test below reads
//! the same text both ways.

use serde_json::Value;

use super::ParsedOp;
use crate::history::{Op, OpType, Process};

/// How deeply vectors may nest inside a value before the fast path gives up.
const MAX_DEPTH: usize = 16;

/// The op maps of `text`, or `None` if the text holds anything the fast path does not read.
pub(super) fn read_ops(text: &str) -> Option<Vec<ParsedOp>> {
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    // About 60 bytes per op map in the corpora.
    let mut ops = Vec::with_capacity(text.len() / 64);
    loop {
        cursor.skip_whitespace()?;
        match cursor.peek() {
            None => return Some(ops),
            Some(b'{') => ops.push(cursor.op_map(ops.len() as u64)?),
            Some(open @ (b'[' | b'(')) => {
                let close = if open == b'[' { b']' } else { b')' };
                cursor.pos += 1;
                loop {
                    cursor.skip_whitespace()?;
                    match cursor.peek()? {
                        b'{' => ops.push(cursor.op_map(ops.len() as u64)?),
                        b if b == close => {
                            cursor.pos += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
            }
            Some(_) => return None,
        }
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

/// A scalar or vector read by the fast path, before it becomes JSON.
enum Read<'a> {
    Keyword(&'a str),
    Str(&'a str),
    Int(i64),
    Other(Value),
}

impl<'a> Read<'a> {
    fn into_json(self) -> Value {
        match self {
            Read::Keyword(s) | Read::Str(s) => Value::String(s.to_string()),
            Read::Int(n) => Value::from(n),
            Read::Other(v) => v,
        }
    }

    /// A keyword's or string's name, as `:type` and `:f` take it.
    fn name(&self) -> Option<&'a str> {
        match *self {
            Read::Keyword(s) | Read::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn is_token_end(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b'\r' | b',' | b'[' | b']' | b'(' | b')' | b'{' | b'}' | b'"' | b';'
    )
}

/// Bytes a keyword name may hold on the fast path (the full reader takes more).
fn is_keyword_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'?' | b'!' | b'*' | b'.' | b'+')
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Skips whitespace, commas and `;` comments; `None` on bytes the fast path leaves to the
    /// full reader (a form feed, say).
    fn skip_whitespace(&mut self) -> Option<()> {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | b',' => self.pos += 1,
                b';' => match memchr(b'\n', &self.bytes[self.pos..]) {
                    Some(n) => self.pos += n + 1,
                    None => self.pos = self.bytes.len(),
                },
                _ if b.is_ascii() => return Some(()),
                _ => return None,
            }
        }
        Some(())
    }

    /// The token from here to the next delimiter.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| !is_token_end(b)) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn keyword(&mut self) -> Option<&'a str> {
        debug_assert_eq!(self.peek(), Some(b':'));
        self.pos += 1;
        let name = self.token();
        let bytes = name.as_bytes();
        let valid = bytes.first().is_some_and(u8::is_ascii_alphabetic)
            && bytes.iter().all(|&b| is_keyword_byte(b));
        valid.then_some(name)
    }

    fn value(&mut self, depth: usize) -> Option<Read<'a>> {
        match self.peek()? {
            b':' => self.keyword().map(Read::Keyword),
            b'"' => {
                let start = self.pos + 1;
                let len = memchr(b'"', &self.bytes[start..])?;
                let body = &self.bytes[start..start + len];
                if memchr(b'\\', body).is_some() {
                    return None;
                }
                self.pos = start + len + 1;
                Some(Read::Str(&self.text[start..start + len]))
            }
            open @ (b'[' | b'(') if depth < MAX_DEPTH => {
                let close = if open == b'[' { b']' } else { b')' };
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_whitespace()?;
                    if self.peek()? == close {
                        self.pos += 1;
                        return Some(Read::Other(Value::Array(items)));
                    }
                    items.push(self.value(depth + 1)?.into_json());
                }
            }
            b'-' | b'0'..=b'9' => {
                let token = self.token();
                let digits = token.strip_prefix('-').unwrap_or(token);
                let plain = !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && (digits.len() == 1 || !digits.starts_with('0'));
                if !plain {
                    return None;
                }
                token.parse::<i64>().ok().map(Read::Int)
            }
            _ => match self.token() {
                "nil" => Some(Read::Other(Value::Null)),
                "true" => Some(Read::Other(Value::Bool(true))),
                "false" => Some(Read::Other(Value::Bool(false))),
                _ => None,
            },
        }
    }

    /// One op map, as [`super::op_from_edn`] reads it; `position` is its place in the history.
    fn op_map(&mut self, position: u64) -> Option<ParsedOp> {
        self.pos += 1; // `{`
        let mut process: Option<Read<'a>> = None;
        let mut kind: Option<Read<'a>> = None;
        let mut f: Option<Read<'a>> = None;
        let mut value: Option<Read<'a>> = None;
        let mut key: Option<Read<'a>> = None;
        let mut error: Option<Read<'a>> = None;
        let mut time: Option<Read<'a>> = None;
        let mut index: Option<Read<'a>> = None;
        loop {
            self.skip_whitespace()?;
            match self.peek()? {
                b'}' => {
                    self.pos += 1;
                    break;
                }
                b':' => {}
                _ => return None,
            }
            let name = self.keyword()?;
            self.skip_whitespace()?;
            let read = self.value(0)?;
            let slot = match name {
                "process" => &mut process,
                "type" => &mut kind,
                "f" => &mut f,
                "value" => &mut value,
                "key" => &mut key,
                "error" => &mut error,
                "time" => &mut time,
                "index" => &mut index,
                _ => continue,
            };
            if slot.replace(read).is_some() {
                return None;
            }
        }
        let kind = match kind?.name()? {
            "invoke" => OpType::Invoke,
            "ok" => OpType::Ok,
            "fail" => OpType::Fail,
            "info" => OpType::Info,
            _ => return None,
        };
        let has_process = process.is_some();
        let process = match process {
            None => Process::Client(0),
            Some(Read::Int(n)) => Process::Client(u64::try_from(n).ok()?),
            Some(other) if other.name() == Some("nemesis") => Process::Nemesis,
            Some(_) => return None,
        };
        let f = f?.name()?.to_string();
        let non_negative = |read: Option<Read<'_>>| match read {
            Some(Read::Int(n)) if n >= 0 => Some(n as u64),
            _ => None,
        };
        let op = Op {
            index: non_negative(index).unwrap_or(position),
            time: non_negative(time),
            process,
            kind,
            f,
            key: key.map(Read::into_json),
            value: value.map_or(Value::Null, Read::into_json),
            error: error.map(Read::into_json),
        };
        Some(ParsedOp { op, has_process })
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::EdnReader;
    use proptest::prelude::*;

    /// What the full reader makes of `text`, or `None` if it rejects it.
    fn slow(text: &str) -> Option<Vec<Op>> {
        let mut reader = EdnReader::new(text, "t").unwrap_top_level_sequences();
        let mut ops = Vec::new();
        while let Some((_, value)) = reader.next_value().ok()? {
            ops.push(super::super::op_from_edn(value, ops.len() as u64).ok()?.op);
        }
        Some(ops)
    }

    fn fast(text: &str) -> Option<Vec<Op>> {
        read_ops(text).map(|ops| ops.into_iter().map(|p| p.op).collect())
    }

    #[test]
    fn reads_the_shapes_of_the_corpora() {
        let text =
            "; a comment\n[{:type :invoke, :f :txn, :value [[:read :x nil] [:write :y 2]],\n \
                    :process 3, :time 7686455705}\n\
                    {:process 9, :type :ok, :f :append, :key \"0\", :value \"x 9 0 y\"}\n\
                    {:type :fail, :f :release, :process 1, :error :not-held, :index 7}\n\
                    {:process :nemesis, :type :info, :f :start, :value nil}]";
        let ops = fast(text).expect("the fast path reads it");
        assert_eq!(Some(ops.clone()), slow(text));
        assert_eq!(ops.len(), 4);
        assert_eq!(
            ops[0].value,
            serde_json::json!([["read", "x", null], ["write", "y", 2]])
        );
        assert_eq!(ops[2].index, 7);
        assert_eq!(ops[3].process, Process::Nemesis);
    }

    #[test]
    fn leaves_what_it_does_not_read_to_the_full_reader() {
        for text in [
            "{:process 1, :type :ok, :f :read, :value 1.5}",
            "{:process 1, :type :ok, :f :read, :value \"a\\\"b\"}",
            "{:process 1, :type :ok, :f :read, :value #{1 2}}",
            "{:process 1, :type :ok, :f :read, :value {:x 1}}",
            "{:process 1, :type :ok, :f read, :value 1}",
            "{:process 1, :type :ok, :type :ok, :f :read}",
            "{:process -1, :type :ok, :f :read}",
            "{:process 1, :type :done, :f :read}",
            "{:process 1, :f :read}",
            "{:process 1, :type :ok, :f :read, :value 99999999999999999999}",
            "{:process 1, :type :ok, :f :read, :value 01}",
            "{:process 1, :type :ok, :f :read, \"value\" 1}",
            "[[{:process 1, :type :ok, :f :read}]]",
            "{:process 1, :type :ok, :f :read",
            "#_ {:x 1} {:process 1, :type :ok, :f :read}",
        ] {
            assert!(fast(text).is_none(), "{text}");
        }
    }

    /// Pieces of op maps, valid and not, that the generated texts are made of.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            "(",
            ")",
            " ",
            ",",
            "\n",
            "; c\n",
            ":process",
            ":type",
            ":f",
            ":value",
            ":key",
            ":error",
            ":time",
            ":index",
            ":other",
            ":invoke",
            ":ok",
            ":fail",
            ":info",
            ":read",
            ":nemesis",
            "0",
            "7",
            "-3",
            "12345678901",
            "nil",
            "true",
            "\"s\"",
            "\"a b\"",
            "\"\\n\"",
            "1.5",
            "sym",
            ":",
            "#{",
            "\"",
            "01",
            "-",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Whatever the fast path reads, the full reader reads the same way.
        #[test]
        fn agrees_with_the_full_reader(pieces in prop::collection::vec(piece(), 0..40)) {
            let text = pieces.join(" ");
            if let Some(ops) = fast(&text) {
                prop_assert_eq!(Some(ops), slow(&text), "{}", text);
            }
        }

        /// Well-formed op maps with shuffled fields are read by the fast path, as the full
        /// reader reads them.
        #[test]
        fn reads_well_formed_maps(
            maps in prop::collection::vec(
                (0u64..20, 0usize..4, prop::sample::select(vec!["read", "write", "cas"]),
                 prop::sample::select(vec!["nil", "3", "[1 2]", ":x", "\"v\"", "(1 (2))"]),
                 any::<bool>()),
                0..30),
            wrapped in any::<bool>(),
        ) {
            let types = ["invoke", "ok", "fail", "info"];
            let body: Vec<String> = maps
                .iter()
                .map(|(p, t, f, v, time_first)| {
                    if *time_first {
                        format!("{{:time 5, :process {p}, :type :{}, :f :{f}, :value {v}}}", types[*t])
                    } else {
                        format!("{{:f :{f} :value {v} :type :{} :process {p}}}", types[*t])
                    }
                })
                .collect();
            let text = if wrapped { format!("[{}]", body.join("\n")) } else { body.join("\n") };
            let ops = fast(&text);
            prop_assert!(ops.is_some(), "{}", text);
            prop_assert_eq!(ops, slow(&text));
        }
    }
}
