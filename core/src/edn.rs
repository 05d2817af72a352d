//! A reader for EDN, the notation Jepsen, Knossos and Elle store their histories in.
//!
//! [`EdnReader`] walks a `&str` and yields its top-level values one at a time, each with the
//! line on which it starts, so a history of a million op maps is converted op by op instead of
//! first becoming one giant tree. With [`EdnReader::unwrap_top_level_sequences`] it also steps
//! inside a top-level vector or list and yields its elements, which streams Knossos files that
//! wrap every op in one `[...]`.
//!
//! ```
//! use faultline_core::edn::{Edn, EdnReader};
//! let text = "; a comment\n{:type :invoke, :f :read, :value nil}\n{:type :ok :value 3}";
//! let values: Vec<(usize, Edn)> = EdnReader::new(text, "example").map(Result::unwrap).collect();
//! assert_eq!(values[1].0, 3);
//! assert_eq!(values[1].1.get("value"), Some(&Edn::Int(3)));
//! assert_eq!(values[0].1.to_json()["f"], "read");
//! ```
//!
//! Design decisions:
//! - The parser keeps its own stack instead of recursing, and refuses nesting deeper than
//!   [`MAX_DEPTH`], so hostile or corrupt input yields an error, never a stack overflow. The
//!   recursive helpers on [`Edn`] (`to_json`, `Display`, `Drop`) are safe for the same reason:
//!   no value from the reader is deeper than the limit.
//! - Numbers that have no exact `i64` form are kept without loss where that is cheap: integers
//!   out of range become [`Edn::BigInt`] with their digits. Ratios (`1/3`) and big decimals
//!   (`1.5M`) become `f64`, since no history format we read relies on their exactness.

use std::fmt::{self, Write as _};

use serde_json::Value;

use crate::error::HistoryError;

/// The deepest nesting the reader accepts: collections, tags and `#_` discards each count one.
pub const MAX_DEPTH: usize = 1000;

/// One EDN value.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    /// An integer outside `i64`, as its decimal digits with an optional leading `-`.
    BigInt(String),
    /// Floats, and also ratios and `M` decimals, which are converted to the nearest `f64`.
    Float(f64),
    String(String),
    Char(char),
    /// A keyword without its leading colon; a namespace stays in the name (`:a/b` -> `a/b`).
    Keyword(String),
    Symbol(String),
    List(Vec<Edn>),
    Vector(Vec<Edn>),
    /// Key-value pairs in file order. Keys are not deduplicated.
    Map(Vec<(Edn, Edn)>),
    /// Elements in file order. Elements are not deduplicated.
    Set(Vec<Edn>),
    /// `#tag value`: the tag without its `#`, and the value it applies to.
    Tagged(String, Box<Edn>),
}

impl Edn {
    /// The value under keyword `key` (given without its colon) when `self` is a map.
    pub fn get(&self, key: &str) -> Option<&Edn> {
        match self {
            Edn::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| matches!(k, Edn::Keyword(name) if name == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The name of a keyword, without its colon.
    pub fn as_keyword(&self) -> Option<&str> {
        match self {
            Edn::Keyword(name) => Some(name),
            _ => None,
        }
    }

    /// What kind of value this is, with an article, for error messages ("a map", "an integer").
    pub fn type_name(&self) -> &'static str {
        match self {
            Edn::Nil => "nil",
            Edn::Bool(_) => "a boolean",
            Edn::Int(_) | Edn::BigInt(_) => "an integer",
            Edn::Float(_) => "a float",
            Edn::String(_) => "a string",
            Edn::Char(_) => "a character",
            Edn::Keyword(_) => "a keyword",
            Edn::Symbol(_) => "a symbol",
            Edn::List(_) => "a list",
            Edn::Vector(_) => "a vector",
            Edn::Map(_) => "a map",
            Edn::Set(_) => "a set",
            Edn::Tagged(..) => "a tagged value",
        }
    }

    /// Converts to JSON the way faultline's history format expects: keywords and symbols become
    /// strings without their colon, nil becomes null, vectors, lists and sets become arrays,
    /// maps become objects, characters become one-character strings, and a tagged value
    /// becomes its inner value.
    ///
    /// Map keys become strings: strings as they are, keywords without the colon, anything
    /// else as its EDN text. When two keys convert to the same string the later one wins.
    /// Integers beyond `u64` and non-finite floats, which JSON numbers cannot hold, become
    /// strings of their EDN text.
    pub fn to_json(&self) -> Value {
        match self {
            Edn::Nil => Value::Null,
            Edn::Bool(b) => Value::Bool(*b),
            Edn::Int(n) => Value::from(*n),
            Edn::BigInt(digits) => match digits.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::String(digits.clone()),
            },
            Edn::Float(x) => match serde_json::Number::from_f64(*x) {
                Some(n) => Value::Number(n),
                None => Value::String(self.to_string()),
            },
            Edn::String(s) => Value::String(s.clone()),
            Edn::Char(c) => Value::String(c.to_string()),
            Edn::Keyword(name) | Edn::Symbol(name) => Value::String(name.clone()),
            Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => {
                Value::Array(items.iter().map(Edn::to_json).collect())
            }
            Edn::Map(pairs) => {
                let mut object = serde_json::Map::with_capacity(pairs.len());
                for (k, v) in pairs {
                    let key = match k {
                        Edn::String(s) => s.clone(),
                        Edn::Keyword(name) => name.clone(),
                        other => other.to_string(),
                    };
                    object.insert(key, v.to_json());
                }
                Value::Object(object)
            }
            Edn::Tagged(_, inner) => inner.to_json(),
        }
    }

    /// [`Edn::to_json`] for an owned value: strings move into the JSON instead of being copied.
    pub fn into_json(self) -> Value {
        match self {
            Edn::String(s) | Edn::Keyword(s) | Edn::Symbol(s) => Value::String(s),
            Edn::BigInt(digits) => match digits.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::String(digits),
            },
            Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => {
                Value::Array(items.into_iter().map(Edn::into_json).collect())
            }
            Edn::Map(pairs) => {
                let mut object = serde_json::Map::with_capacity(pairs.len());
                for (k, v) in pairs {
                    let key = match k {
                        Edn::String(s) | Edn::Keyword(s) => s,
                        other => other.to_string(),
                    };
                    object.insert(key, v.into_json());
                }
                Value::Object(object)
            }
            Edn::Tagged(_, inner) => inner.into_json(),
            scalar => scalar.to_json(),
        }
    }
}

/// EDN text that reads back as the same value (floats read back as the same `f64`).
impl fmt::Display for Edn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn seq(f: &mut fmt::Formatter<'_>, open: &str, items: &[Edn], close: char) -> fmt::Result {
            f.write_str(open)?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_char(' ')?;
                }
                write!(f, "{item}")?;
            }
            f.write_char(close)
        }
        match self {
            Edn::Nil => f.write_str("nil"),
            Edn::Bool(b) => write!(f, "{b}"),
            Edn::Int(n) => write!(f, "{n}"),
            Edn::BigInt(digits) => write!(f, "{digits}N"),
            Edn::Float(x) if x.is_nan() => f.write_str("##NaN"),
            Edn::Float(x) if x.is_infinite() => {
                f.write_str(if *x > 0.0 { "##Inf" } else { "##-Inf" })
            }
            // `{:?}` is the shortest text that reads back exactly, and always has a `.` or an
            // exponent, so it reads back as a float rather than an integer.
            Edn::Float(x) => write!(f, "{x:?}"),
            Edn::String(s) => write_string_literal(f, s),
            Edn::Char(c) => match char_name(*c) {
                Some(name) => write!(f, "\\{name}"),
                None if c.is_control() => write!(f, "\\u{:04X}", *c as u32),
                None => write!(f, "\\{c}"),
            },
            Edn::Keyword(name) => write!(f, ":{name}"),
            Edn::Symbol(name) => f.write_str(name),
            Edn::List(items) => seq(f, "(", items, ')'),
            Edn::Vector(items) => seq(f, "[", items, ']'),
            Edn::Set(items) => seq(f, "#{", items, '}'),
            Edn::Map(pairs) => {
                f.write_char('{')?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} {v}")?;
                }
                f.write_char('}')
            }
            Edn::Tagged(tag, inner) => write!(f, "#{tag} {inner}"),
        }
    }
}

fn write_string_literal(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if c.is_control() && (c as u32) <= 0xFFFF => write!(f, "\\u{:04X}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// The EDN names of characters that cannot be written bare after a backslash.
fn char_name(c: char) -> Option<&'static str> {
    Some(match c {
        '\n' => "newline",
        ' ' => "space",
        '\t' => "tab",
        '\r' => "return",
        '\u{8}' => "backspace",
        '\u{c}' => "formfeed",
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collection {
    List,
    Vector,
    Map,
    Set,
}

impl Collection {
    fn closer(self) -> u8 {
        match self {
            Collection::List => b')',
            Collection::Vector => b']',
            Collection::Map | Collection::Set => b'}',
        }
    }

    fn name(self) -> &'static str {
        match self {
            Collection::List => "list",
            Collection::Vector => "vector",
            Collection::Map => "map",
            Collection::Set => "set",
        }
    }
}

/// A value being built: the parser's explicit stack in place of recursion.
enum Frame {
    /// An open collection whose elements are `values[start..]` of the reader's value stack.
    Collection {
        kind: Collection,
        line: usize,
        start: usize,
    },
    /// `#tag` seen, waiting for the value it applies to.
    Tagged { tag: String, line: usize },
    /// `#_` seen, waiting for the value to drop.
    Discard { line: usize },
}

/// What one step of the parser found at the top level.
enum Next {
    Value(usize, Edn),
    /// A `#_` discard completed at the top level; nothing to yield.
    Skipped,
    /// A closing delimiter with nothing open: the byte and its line.
    Close(u8, usize),
    End,
}

/// Byte classes, looked up in a table because the reader asks for every byte of the input.
const WHITESPACE: u8 = 1;
const DELIMITER: u8 = 2;

const BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let whitespace = b" \t\n\r,\x0b\x0c";
    let mut i = 0;
    while i < whitespace.len() {
        table[whitespace[i] as usize] = WHITESPACE | DELIMITER;
        i += 1;
    }
    let delimiters = b"\";()[]{}\\";
    let mut i = 0;
    while i < delimiters.len() {
        table[delimiters[i] as usize] = DELIMITER;
        i += 1;
    }
    table
};

/// Whitespace, commas included.
fn is_whitespace(b: u8) -> bool {
    BYTE_CLASS[b as usize] & WHITESPACE != 0
}

/// Bytes that end a token (symbol, keyword, number, character name).
fn is_delimiter(b: u8) -> bool {
    BYTE_CLASS[b as usize] & DELIMITER != 0
}

/// Shows a delimiter or token in an error message.
fn shown(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("`{}`", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// Cuts long input quoted in error messages, on a character boundary.
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Streams the top-level values of EDN text, each with the 1-based line where it starts.
///
/// After the first error the iterator ends: the position after a syntax error says nothing
/// reliable about where the next value starts.
pub struct EdnReader<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    file: String,
    unwrap_sequences: bool,
    /// The closing byte and opening line of the top-level sequence being unwrapped.
    open_sequence: Option<(u8, usize)>,
    finished: bool,
    /// The parser's stacks, kept between values so that reading a value allocates only the
    /// value itself: each collection gets one vector of exactly its size.
    frames: Vec<Frame>,
    values: Vec<Edn>,
}

impl<'a> EdnReader<'a> {
    /// A reader over `text`; `file` only labels errors.
    pub fn new(text: &'a str, file: &str) -> EdnReader<'a> {
        EdnReader {
            text,
            pos: 0,
            line: 1,
            file: file.to_string(),
            unwrap_sequences: false,
            open_sequence: None,
            finished: false,
            frames: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Numbers lines from `line` instead of 1, for text cut out of a larger file.
    pub fn starting_at_line(mut self, line: usize) -> EdnReader<'a> {
        self.line = line;
        self
    }

    /// Yields the elements of top-level vectors and lists instead of the sequences
    /// themselves, so `[{..} {..}]` and `{..} {..}` read alike, and a large wrapped file still
    /// streams. Other top-level values are yielded as they are.
    pub fn unwrap_top_level_sequences(mut self) -> EdnReader<'a> {
        self.unwrap_sequences = true;
        self
    }

    /// The next top-level value and the line it starts on, or `None` at the end of the text.
    pub fn next_value(&mut self) -> Result<Option<(usize, Edn)>, HistoryError> {
        if self.finished {
            return Ok(None);
        }
        let result = self.next_value_inner();
        if !matches!(result, Ok(Some(_))) {
            self.finished = true;
        }
        result
    }

    fn next_value_inner(&mut self) -> Result<Option<(usize, Edn)>, HistoryError> {
        loop {
            if self.unwrap_sequences && self.open_sequence.is_none() {
                self.skip_whitespace_and_comments();
                if let Some(&b) = self.text.as_bytes().get(self.pos) {
                    if b == b'[' || b == b'(' {
                        let closer = if b == b'[' { b']' } else { b')' };
                        self.open_sequence = Some((closer, self.line));
                        self.pos += 1;
                        continue;
                    }
                }
            }
            match self.read_next()? {
                Next::Value(line, value) => return Ok(Some((line, value))),
                Next::Skipped => continue,
                Next::Close(b, line) => match self.open_sequence.take() {
                    Some((closer, _)) if closer == b => continue,
                    Some((closer, opened)) => {
                        return Err(self.error_at(
                            line,
                            format!(
                                "expected {} to close the {} opened on line {opened}, found {}",
                                shown(closer),
                                if closer == b']' { "vector" } else { "list" },
                                shown(b)
                            ),
                        ))
                    }
                    None => {
                        return Err(self.error_at(
                            line,
                            format!("unexpected {}: nothing is open to close", shown(b)),
                        ))
                    }
                },
                Next::End => {
                    return match self.open_sequence {
                        Some((closer, opened)) => Err(self.error(format!(
                            "expected {} to close the {} opened on line {opened}, found the end \
                             of the input",
                            shown(closer),
                            if closer == b']' { "vector" } else { "list" },
                        ))),
                        None => Ok(None),
                    }
                }
            }
        }
    }

    fn error(&self, why: String) -> HistoryError {
        HistoryError::parse(&self.file, self.line, why)
    }

    fn error_at(&self, line: usize, why: String) -> HistoryError {
        HistoryError::parse(&self.file, line, why)
    }

    fn skip_whitespace_and_comments(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if b == b'\n' {
                self.line += 1;
                self.pos += 1;
            } else if is_whitespace(b) {
                self.pos += 1;
            } else if b == b';' {
                // The newline itself is left for the loop to count.
                self.pos = match bytes[self.pos..].iter().position(|&c| c == b'\n') {
                    Some(offset) => self.pos + offset,
                    None => bytes.len(),
                };
            } else {
                return;
            }
        }
    }

    /// Parses one complete top-level value with explicit stacks instead of recursion.
    fn read_next(&mut self) -> Result<Next, HistoryError> {
        let mut frames = std::mem::take(&mut self.frames);
        let mut values = std::mem::take(&mut self.values);
        let result = self.read_next_with(&mut frames, &mut values);
        // Only an error leaves anything behind, and it ends the reader.
        frames.clear();
        values.clear();
        self.frames = frames;
        self.values = values;
        result
    }

    fn read_next_with(
        &mut self,
        stack: &mut Vec<Frame>,
        values: &mut Vec<Edn>,
    ) -> Result<Next, HistoryError> {
        let bytes = self.text.as_bytes();
        let mut top_line = self.line;
        loop {
            self.skip_whitespace_and_comments();
            if stack.is_empty() {
                top_line = self.line;
            }
            let Some(&b) = bytes.get(self.pos) else {
                return match stack.last() {
                    None => Ok(Next::End),
                    Some(frame) => Err(self.error(self.unfinished(frame, "the end of the input"))),
                };
            };
            let value = match b {
                b'(' | b'[' | b'{' => {
                    let kind = match b {
                        b'(' => Collection::List,
                        b'[' => Collection::Vector,
                        _ => Collection::Map,
                    };
                    let start = values.len();
                    self.push(
                        stack,
                        Frame::Collection {
                            kind,
                            line: self.line,
                            start,
                        },
                    )?;
                    self.pos += 1;
                    continue;
                }
                b')' | b']' | b'}' => {
                    let Some(frame) = stack.pop() else {
                        self.pos += 1;
                        return Ok(Next::Close(b, self.line));
                    };
                    match frame {
                        Frame::Collection { kind, line, start } if kind.closer() == b => {
                            self.pos += 1;
                            self.finish_collection(kind, line, values.drain(start..))?
                        }
                        other => {
                            return Err(self.error(self.unfinished(&other, &shown(b))));
                        }
                    }
                }
                b'"' => self.read_string()?,
                b'\\' => self.read_char()?,
                b'#' => match bytes.get(self.pos + 1) {
                    Some(b'{') => {
                        let frame = Frame::Collection {
                            kind: Collection::Set,
                            line: self.line,
                            start: values.len(),
                        };
                        self.push(stack, frame)?;
                        self.pos += 2;
                        continue;
                    }
                    Some(b'_') => {
                        self.push(stack, Frame::Discard { line: self.line })?;
                        self.pos += 2;
                        continue;
                    }
                    Some(b'#') => {
                        self.pos += 2;
                        let token = self.take_token();
                        match token {
                            "Inf" => Edn::Float(f64::INFINITY),
                            "-Inf" => Edn::Float(f64::NEG_INFINITY),
                            "NaN" => Edn::Float(f64::NAN),
                            _ => {
                                return Err(self.error(format!(
                                    "unknown symbolic value `##{}` (expected ##Inf, ##-Inf or \
                                     ##NaN)",
                                    excerpt(token)
                                )))
                            }
                        }
                    }
                    Some(&c) if c.is_ascii_alphabetic() || c >= 0x80 => {
                        let line = self.line;
                        self.pos += 1;
                        let tag = self.take_token().to_string();
                        self.push(stack, Frame::Tagged { tag, line })?;
                        continue;
                    }
                    Some(&c) => {
                        return Err(self.error(format!(
                            "unsupported dispatch `#` followed by {} (EDN has `#{{` sets, `#_` \
                             discards and `#tag` tagged values)",
                            shown(c)
                        )))
                    }
                    None => return Err(self.error("`#` at the end of the input".to_string())),
                },
                _ => {
                    let token = self.take_token();
                    self.token_value(token)?
                }
            };
            // Hand the finished value to whatever waits for it.
            let mut value = value;
            loop {
                match stack.last_mut() {
                    None => return Ok(Next::Value(top_line, value)),
                    Some(Frame::Collection { .. }) => {
                        values.push(value);
                        break;
                    }
                    Some(Frame::Tagged { .. }) => {
                        let Some(Frame::Tagged { tag, .. }) = stack.pop() else {
                            unreachable!()
                        };
                        value = Edn::Tagged(tag, Box::new(value));
                    }
                    Some(Frame::Discard { .. }) => {
                        stack.pop();
                        if stack.is_empty() {
                            return Ok(Next::Skipped);
                        }
                        break;
                    }
                }
            }
        }
    }

    fn push(&self, stack: &mut Vec<Frame>, frame: Frame) -> Result<(), HistoryError> {
        if stack.len() >= MAX_DEPTH {
            return Err(self.error(format!(
                "nesting deeper than {MAX_DEPTH} levels (collections, tags and discards)"
            )));
        }
        stack.push(frame);
        Ok(())
    }

    /// Says what an open frame expected when `found` came instead.
    fn unfinished(&self, frame: &Frame, found: &str) -> String {
        match frame {
            Frame::Collection { kind, line, .. } => format!(
                "expected {} to close the {} opened on line {line}, found {found}",
                shown(kind.closer()),
                kind.name()
            ),
            Frame::Tagged { tag, line } => {
                format!("expected a value after the tag `#{tag}` on line {line}, found {found}")
            }
            Frame::Discard { line } => {
                format!("expected a value to discard after `#_` on line {line}, found {found}")
            }
        }
    }

    fn finish_collection(
        &self,
        kind: Collection,
        line: usize,
        mut items: std::vec::Drain<'_, Edn>,
    ) -> Result<Edn, HistoryError> {
        Ok(match kind {
            Collection::List => Edn::List(items.collect()),
            Collection::Vector => Edn::Vector(items.collect()),
            Collection::Set => Edn::Set(items.collect()),
            Collection::Map => {
                if items.len() % 2 == 1 {
                    return Err(self.error(format!(
                        "the map opened on line {line} has a key without a value ({} forms \
                         inside, expected pairs)",
                        items.len()
                    )));
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    pairs.push((k, v));
                }
                Edn::Map(pairs)
            }
        })
    }

    /// Takes the bytes up to the next delimiter. Delimiters are ASCII, so the cut is always on
    /// a character boundary.
    fn take_token(&mut self) -> &'a str {
        let text: &'a str = self.text;
        let bytes = text.as_bytes();
        let start = self.pos;
        let mut end = start;
        while end < bytes.len() && !is_delimiter(bytes[end]) {
            end += 1;
        }
        self.pos = end;
        &text[start..end]
    }

    fn token_value(&self, token: &str) -> Result<Edn, HistoryError> {
        let bytes = token.as_bytes();
        let first = bytes[0];
        let second = bytes.get(1).copied();
        if first.is_ascii_digit()
            || (matches!(first, b'+' | b'-') && second.is_some_and(|b| b.is_ascii_digit()))
        {
            return parse_number(token)
                .ok_or_else(|| self.error(format!("invalid number `{}`", excerpt(token))));
        }
        match token {
            "nil" => return Ok(Edn::Nil),
            "true" => return Ok(Edn::Bool(true)),
            "false" => return Ok(Edn::Bool(false)),
            _ => {}
        }
        if let Some(name) = token.strip_prefix(':') {
            if name.is_empty() {
                return Err(self.error("a keyword needs a name after `:`".to_string()));
            }
            if name.starts_with(':') {
                return Err(self.error(format!(
                    "auto-resolved keyword `{}` is Clojure, not EDN",
                    excerpt(token)
                )));
            }
            return Ok(Edn::Keyword(name.to_string()));
        }
        if matches!(first, b'@' | b'^' | b'`' | b'~') {
            return Err(self.error(format!(
                "unexpected {}: reader macros are Clojure, not EDN",
                shown(first)
            )));
        }
        Ok(Edn::Symbol(token.to_string()))
    }

    fn read_string(&mut self) -> Result<Edn, HistoryError> {
        let bytes = self.text.as_bytes();
        let start_line = self.line;
        let start = self.pos + 1;
        let unterminated =
            |this: &Self| this.error_at(start_line, "unterminated string".to_string());
        // Fast path: no escapes, the string is a slice of the input.
        let Some(offset) = bytes[start..].iter().position(|&b| b == b'"' || b == b'\\') else {
            return Err(unterminated(self));
        };
        let stop = start + offset;
        if bytes[stop] == b'"' {
            self.line += bytes[start..stop].iter().filter(|&&b| b == b'\n').count();
            self.pos = stop + 1;
            return Ok(Edn::String(self.text[start..stop].to_string()));
        }
        let mut out = String::with_capacity(offset + 16);
        let mut pos = start;
        loop {
            let Some(offset) = bytes[pos..].iter().position(|&b| b == b'"' || b == b'\\') else {
                return Err(unterminated(self));
            };
            let stop = pos + offset;
            let plain = &self.text[pos..stop];
            self.line += plain.bytes().filter(|&b| b == b'\n').count();
            out.push_str(plain);
            if bytes[stop] == b'"' {
                self.pos = stop + 1;
                return Ok(Edn::String(out));
            }
            // A backslash escape.
            let Some(&escape) = bytes.get(stop + 1) else {
                return Err(unterminated(self));
            };
            pos = stop + 2;
            match escape {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'n' => out.push('\n'),
                b't' => out.push('\t'),
                b'r' => out.push('\r'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'u' => {
                    let (c, used) = self.unicode_escape(&bytes[pos..])?;
                    out.push(c);
                    pos += used;
                }
                b'0'..=b'7' => {
                    let digits = bytes[stop + 1..]
                        .iter()
                        .take(3)
                        .take_while(|b| matches!(b, b'0'..=b'7'))
                        .count();
                    let code = octal(&bytes[stop + 1..stop + 1 + digits]);
                    if code > 0o377 {
                        return Err(self.error(format!(
                            "octal escape `\\{}` is above \\377",
                            &self.text[stop + 1..stop + 1 + digits]
                        )));
                    }
                    out.push(char::from_u32(code).expect("codes up to 0o377 are characters"));
                    pos = stop + 1 + digits;
                }
                other => {
                    let shown_escape = match self.text[stop + 1..].chars().next() {
                        Some(c) if other >= 0x80 => c.to_string(),
                        _ => (other as char).escape_default().to_string(),
                    };
                    return Err(self.error(format!(
                        "unknown escape `\\{shown_escape}` in string (expected one of \\\" \\\\ \
                         \\n \\t \\r \\b \\f \\uXXXX)"
                    )));
                }
            }
        }
    }

    /// Decodes the 4 hex digits after `\u`, pairing UTF-16 surrogates as Java strings do.
    /// Returns the character and how many bytes after the `u` it used.
    fn unicode_escape(&self, after_u: &[u8]) -> Result<(char, usize), HistoryError> {
        let high = hex4(after_u)
            .ok_or_else(|| self.error("expected 4 hex digits after `\\u`".to_string()))?;
        if let Some(c) = char::from_u32(high) {
            return Ok((c, 4));
        }
        // A surrogate: only a high one followed by `\u` and a low one makes a character.
        if (0xD800..0xDC00).contains(&high) && after_u.get(4..6) == Some(b"\\u") {
            if let Some(low) = hex4(&after_u[6..]).filter(|low| (0xDC00..0xE000).contains(low)) {
                let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                let c = char::from_u32(code).expect("a surrogate pair decodes to a character");
                return Ok((c, 10));
            }
        }
        Err(self.error(format!("unpaired surrogate `\\u{high:04X}` in string")))
    }

    fn read_char(&mut self) -> Result<Edn, HistoryError> {
        let after = self.pos + 1;
        let Some(first) = self.text[after..].chars().next() else {
            return Err(self.error("expected a character after `\\`".to_string()));
        };
        let first_end = after + first.len_utf8();
        // A delimiter right after the backslash is the character itself (`\(`, `\"`).
        if first.is_ascii() && is_delimiter(first as u8) {
            if first == '\n' {
                self.line += 1;
            }
            self.pos = first_end;
            return Ok(Edn::Char(first));
        }
        self.pos = after;
        let token = self.take_token();
        if token.len() == first.len_utf8() {
            return Ok(Edn::Char(first));
        }
        let named = match token {
            "newline" => Some('\n'),
            "space" => Some(' '),
            "tab" => Some('\t'),
            "return" => Some('\r'),
            "backspace" => Some('\u{8}'),
            "formfeed" => Some('\u{c}'),
            _ => None,
        };
        if let Some(c) = named {
            return Ok(Edn::Char(c));
        }
        let bytes = token.as_bytes();
        if bytes[0] == b'u' && bytes.len() == 5 {
            if let Some(c) = hex4(&bytes[1..]).and_then(char::from_u32) {
                return Ok(Edn::Char(c));
            }
        }
        if bytes[0] == b'o'
            && (2..=4).contains(&bytes.len())
            && bytes[1..].iter().all(|b| matches!(b, b'0'..=b'7'))
        {
            let code = octal(&bytes[1..]);
            if code <= 0o377 {
                return Ok(Edn::Char(
                    char::from_u32(code).expect("codes up to 0o377 are chars"),
                ));
            }
        }
        Err(self.error(format!(
            "unknown character `\\{}` (expected a single character, \\newline, \\space, \\tab, \
             \\return, \\backspace, \\formfeed or \\uXXXX)",
            excerpt(token)
        )))
    }
}

impl Iterator for EdnReader<'_> {
    type Item = Result<(usize, Edn), HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_value().transpose()
    }
}

fn hex4(bytes: &[u8]) -> Option<u32> {
    let digits = bytes.get(..4)?;
    let mut code = 0;
    for &b in digits {
        code = code * 16 + (b as char).to_digit(16)?;
    }
    Some(code)
}

fn octal(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0, |code, &b| code * 8 + u32::from(b - b'0'))
}

/// Parses a token that starts with a digit or a sign and a digit; `None` if it is not a number.
fn parse_number(token: &str) -> Option<Edn> {
    // Plain integers are most numbers in a history; they skip the suffix and ratio checks.
    let unsigned = token.strip_prefix(['+', '-']).unwrap_or(token);
    if unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return parse_integer(token);
    }
    if let Some(body) = token.strip_suffix('N') {
        return parse_integer(body);
    }
    if let Some((numerator, denominator)) = token.split_once('/') {
        let numerator = parse_integer(numerator)?;
        let denominator = parse_integer(denominator)?;
        if denominator.starts_with_sign() {
            return None;
        }
        let value = numerator.as_f64()? / denominator.as_f64()?;
        return value.is_finite().then_some(Edn::Float(value));
    }
    if let Some(body) = token.strip_suffix('M') {
        return is_decimal(body)
            .then(|| body.parse().ok().map(Edn::Float))
            .flatten();
    }
    if token.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return is_decimal(token)
            .then(|| token.parse().ok().map(Edn::Float))
            .flatten();
    }
    parse_integer(token)
}

impl Edn {
    fn starts_with_sign(&self) -> bool {
        match self {
            Edn::Int(n) => *n < 0,
            Edn::BigInt(digits) => digits.starts_with('-'),
            _ => false,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Edn::Int(n) => Some(*n as f64),
            Edn::BigInt(digits) => digits.parse().ok(),
            _ => None,
        }
    }
}

/// A decimal integer with an optional sign. EDN forbids leading zeros (Clojure would read
/// `017` as octal), so they are rejected rather than silently read as decimal.
fn parse_integer(token: &str) -> Option<Edn> {
    let (negative, digits) = match token.as_bytes().first()? {
        b'-' => (true, &token[1..]),
        b'+' => (false, &token[1..]),
        _ => (false, token),
    };
    if digits.is_empty()
        || (digits.len() > 1 && digits.starts_with('0'))
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // Up to 18 digits always fit an i64: the common case, without allocating.
    if digits.len() <= 18 {
        let magnitude = digits
            .bytes()
            .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
        return Some(Edn::Int(if negative { -magnitude } else { magnitude }));
    }
    let signed = if negative {
        format!("-{digits}")
    } else {
        digits.to_string()
    };
    Some(match signed.parse::<i64>() {
        Ok(n) => Edn::Int(n),
        Err(_) => Edn::BigInt(signed),
    })
}

/// `[+-]digits[.digits*][(e|E)[+-]digits]`, the float syntax of EDN.
fn is_decimal(token: &str) -> bool {
    let bytes = token.as_bytes();
    let mut i = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let digits_from = |i: usize| bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let whole = digits_from(i);
    if whole == 0 {
        return false;
    }
    i += whole;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        i += digits_from(i);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exponent = digits_from(i);
        if exponent == 0 {
            return false;
        }
        i += exponent;
    }
    i == bytes.len()
}

/// Reads every top-level value of `text`.
pub fn read_all(text: &str, file: &str) -> Result<Vec<Edn>, HistoryError> {
    EdnReader::new(text, file)
        .map(|item| item.map(|(_, value)| value))
        .collect()
}

/// Reads text that must hold exactly one EDN value.
pub fn read_one(text: &str, file: &str) -> Result<Edn, HistoryError> {
    let mut reader = EdnReader::new(text, file);
    let Some((_, value)) = reader.next_value()? else {
        return Err(HistoryError::parse(
            file,
            reader.line,
            "expected an EDN value, found none",
        ));
    };
    if let Some((line, extra)) = reader.next_value()? {
        return Err(HistoryError::parse(
            file,
            line,
            format!(
                "expected one EDN value, found another: {}",
                extra.type_name()
            ),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Edn {
        read_one(text, "t").unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn err(text: &str) -> String {
        match read_all(text, "t") {
            Ok(values) => panic!("{text:?} parsed as {values:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn kw(name: &str) -> Edn {
        Edn::Keyword(name.to_string())
    }

    #[test]
    fn scalars() {
        assert_eq!(one("nil"), Edn::Nil);
        assert_eq!(one("true"), Edn::Bool(true));
        assert_eq!(one("false"), Edn::Bool(false));
        assert_eq!(one("42"), Edn::Int(42));
        assert_eq!(one("-7"), Edn::Int(-7));
        assert_eq!(one("+7"), Edn::Int(7));
        assert_eq!(one("0"), Edn::Int(0));
        assert_eq!(one("7N"), Edn::Int(7));
        assert_eq!(one("-1.5"), Edn::Float(-1.5));
        assert_eq!(one("1e3"), Edn::Float(1000.0));
        assert_eq!(one("2.5E-1"), Edn::Float(0.25));
        assert_eq!(one("1."), Edn::Float(1.0));
        assert_eq!(one("1.25M"), Edn::Float(1.25));
        assert_eq!(one("3M"), Edn::Float(3.0));
        assert_eq!(one("1/4"), Edn::Float(0.25));
        assert_eq!(one("-1/2"), Edn::Float(-0.5));
        assert_eq!(one("##Inf"), Edn::Float(f64::INFINITY));
        assert_eq!(one("##-Inf"), Edn::Float(f64::NEG_INFINITY));
        assert!(matches!(one("##NaN"), Edn::Float(x) if x.is_nan()));
        assert_eq!(one(":read"), kw("read"));
        assert_eq!(one(":jepsen.nemesis/kill"), kw("jepsen.nemesis/kill"));
        assert_eq!(one("foo/bar"), Edn::Symbol("foo/bar".into()));
        assert_eq!(one("-"), Edn::Symbol("-".into()));
        assert_eq!(one("-foo"), Edn::Symbol("-foo".into()));
        assert_eq!(one("+"), Edn::Symbol("+".into()));
    }

    #[test]
    fn big_integers_keep_their_digits() {
        assert_eq!(one("9223372036854775807"), Edn::Int(i64::MAX));
        assert_eq!(one("-9223372036854775808"), Edn::Int(i64::MIN));
        assert_eq!(
            one("9223372036854775808"),
            Edn::BigInt("9223372036854775808".into())
        );
        assert_eq!(
            one("-99999999999999999999N"),
            Edn::BigInt("-99999999999999999999".into())
        );
        assert_eq!(
            one("18446744073709551615").to_json(),
            json!(18446744073709551615u64)
        );
        assert_eq!(
            one("18446744073709551616").to_json(),
            json!("18446744073709551616")
        );
    }

    #[test]
    fn bad_numbers_are_errors() {
        for text in [
            "017", "1x", "1.2.3", "1e", "0x1F", "1/0x", "-1-", "1/-2", "2r101",
        ] {
            assert!(
                err(text).contains("invalid number"),
                "{text}: {}",
                err(text)
            );
        }
    }

    #[test]
    fn characters() {
        assert_eq!(one("\\a"), Edn::Char('a'));
        assert_eq!(one("\\newline"), Edn::Char('\n'));
        assert_eq!(one("\\space"), Edn::Char(' '));
        assert_eq!(one("\\tab"), Edn::Char('\t'));
        assert_eq!(one("\\u0041"), Edn::Char('A'));
        assert_eq!(one("\\o101"), Edn::Char('A'));
        assert_eq!(one("\\("), Edn::Char('('));
        assert_eq!(one("\\é"), Edn::Char('é'));
        assert_eq!(
            one("[\\a\\b]"),
            Edn::Vector(vec![Edn::Char('a'), Edn::Char('b')])
        );
        assert_eq!(one("\\a").to_json(), json!("a"));
        assert!(err("\\foo").contains("unknown character"));
        assert!(err("\\").contains("expected a character"));
    }

    #[test]
    fn strings_with_escapes_braces_and_newlines() {
        assert_eq!(one(r#""plain""#), Edn::String("plain".into()));
        assert_eq!(
            one(r#""a \"quoted\" {brace} [x] \\ \n\t\r end""#),
            Edn::String("a \"quoted\" {brace} [x] \\ \n\t\r end".into())
        );
        assert_eq!(one(r#""\u00e9\u0041""#), Edn::String("éA".into()));
        assert_eq!(one(r#""\uD83D\uDE00""#), Edn::String("😀".into()));
        assert_eq!(one(r#""\101""#), Edn::String("A".into()));
        assert_eq!(one("\"é ü\""), Edn::String("é ü".into()));
        // A string spanning lines moves the line count on.
        let values: Vec<_> = EdnReader::new("\"a\nb\nc\" :next", "t")
            .map(Result::unwrap)
            .collect();
        assert_eq!(values[1], (3, kw("next")));
    }

    #[test]
    fn string_errors() {
        assert_eq!(err("\n\n\"abc"), "t:3: unterminated string");
        assert_eq!(err("\"abc\\"), "t:1: unterminated string");
        assert!(err(r#""\q""#).contains("unknown escape `\\q`"));
        assert!(err(r#""\u12""#).contains("4 hex digits"));
        assert!(err(r#""\uD800""#).contains("unpaired surrogate"));
        assert!(err(r#""\777""#).contains("above"));
    }

    #[test]
    fn comments_commas_and_discard() {
        let text = "; header\n[1, 2,,3 ; trailing\n #_ 99 4 #_#_ 5 6 7]";
        assert_eq!(
            one(text),
            Edn::Vector(vec![
                Edn::Int(1),
                Edn::Int(2),
                Edn::Int(3),
                Edn::Int(4),
                Edn::Int(7)
            ])
        );
        assert_eq!(read_all("#_ {:a 1} :b", "t").unwrap(), vec![kw("b")]);
        assert_eq!(read_all("#_ :only", "t").unwrap(), vec![]);
        assert_eq!(read_all(" ,;just a comment", "t").unwrap(), vec![]);
        assert!(err("[1 #_]").contains("expected a value to discard after `#_` on line 1"));
    }

    #[test]
    fn nested_collections_lists_and_vectors_differ() {
        let value = one("{:a [1 (2 3) #{4}] \"k\" {:nested {:deeper nil}}}");
        let Edn::Map(pairs) = &value else {
            panic!("{value:?}")
        };
        assert_eq!(pairs.len(), 2);
        assert_eq!(
            pairs[0].1,
            Edn::Vector(vec![
                Edn::Int(1),
                Edn::List(vec![Edn::Int(2), Edn::Int(3)]),
                Edn::Set(vec![Edn::Int(4)])
            ])
        );
        assert_ne!(one("(1 2)"), one("[1 2]"));
        assert_eq!(one("(1 2)").to_json(), one("[1 2]").to_json());
        assert_eq!(
            value.to_json(),
            json!({"a": [1, [2, 3], [4]], "k": {"nested": {"deeper": null}}})
        );
        assert_eq!(one("()"), Edn::List(vec![]));
        assert_eq!(one("{}"), Edn::Map(vec![]));
        assert_eq!(one("#{}"), Edn::Set(vec![]));
    }

    #[test]
    fn tagged_values() {
        let value = one("#inst \"2024-01-01T00:00:00Z\"");
        assert_eq!(
            value,
            Edn::Tagged(
                "inst".into(),
                Box::new(Edn::String("2024-01-01T00:00:00Z".into()))
            )
        );
        assert_eq!(value.to_json(), json!("2024-01-01T00:00:00Z"));
        assert_eq!(one("#my/tag #_ 1 [2]").to_json(), json!([2]));
        assert!(err("#inst").contains("expected a value after the tag `#inst` on line 1"));
        assert!(err("#\"regex\"").contains("unsupported dispatch"));
        assert!(err("##Foo").contains("unknown symbolic value"));
    }

    #[test]
    fn to_json_map_keys() {
        let value = one("{:k 1, \"s\" 2, sym 3, 4 5, [1 2] 6, nil 7, \\c 8}");
        assert_eq!(
            value.to_json(),
            json!({"k": 1, "s": 2, "sym": 3, "4": 5, "[1 2]": 6, "nil": 7, "\\c": 8})
        );
        assert_eq!(value.clone().into_json(), value.to_json());
        assert_eq!(one("##Inf").to_json(), json!("##Inf"));
        assert_eq!(
            one("[:a b \\c \"d\" 1.5]").to_json(),
            json!(["a", "b", "c", "d", 1.5])
        );
    }

    #[test]
    fn get_finds_keyword_keys() {
        let value = one("{:type :ok, \"type\" 1}");
        assert_eq!(value.get("type"), Some(&kw("ok")));
        assert_eq!(value.get("missing"), None);
        assert_eq!(Edn::Nil.get("type"), None);
    }

    #[test]
    fn top_level_values_report_their_first_line() {
        let text = "; comment\n{:a 1\n :b 2}\n\n  [3\n4]\n#_ skipped\n#tag\n:x";
        let got: Vec<usize> = EdnReader::new(text, "t").map(|r| r.unwrap().0).collect();
        assert_eq!(got, vec![2, 5, 8]);
    }

    #[test]
    fn unwrapping_top_level_sequences_streams_their_elements() {
        let text = "; c\n[{:a 1}\n {:a 2} #_ {:a 9}\n]\n({:a 3}) {:a 4}";
        let got: Vec<(usize, Edn)> = EdnReader::new(text, "t")
            .unwrap_top_level_sequences()
            .map(Result::unwrap)
            .collect();
        let lines: Vec<usize> = got.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, vec![2, 3, 5, 5]);
        assert_eq!(got[3].1.get("a"), Some(&Edn::Int(4)));
        // Nested vectors inside the unwrapped one are values.
        let got = read_unwrapped("[[1] [2]]");
        assert_eq!(
            got,
            vec![
                Edn::Vector(vec![Edn::Int(1)]),
                Edn::Vector(vec![Edn::Int(2)])
            ]
        );
        let e = EdnReader::new("\n[{:a 1}", "t")
            .unwrap_top_level_sequences()
            .last()
            .unwrap();
        assert_eq!(
            e.unwrap_err().to_string(),
            "t:2: expected `]` to close the vector opened on line 2, found the end of the input"
        );
        let e = EdnReader::new("[1)", "t")
            .unwrap_top_level_sequences()
            .last()
            .unwrap();
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("expected `]` to close the vector"));
    }

    #[test]
    fn a_discarded_value_before_a_top_level_vector_does_not_stop_the_unwrapping() {
        let got = read_unwrapped("#_ [0] [1 2] #_ (3)");
        assert_eq!(got, vec![Edn::Int(1), Edn::Int(2)]);
    }

    fn read_unwrapped(text: &str) -> Vec<Edn> {
        EdnReader::new(text, "t")
            .unwrap_top_level_sequences()
            .map(|r| r.unwrap().1)
            .collect()
    }

    #[test]
    fn unclosed_and_mismatched_collections_name_the_opening_line() {
        assert_eq!(
            err("{:a 1}\n\n{:a [1 2]\n :b 3\n"),
            "t:5: expected `}` to close the map opened on line 3, found the end of the input"
        );
        assert_eq!(
            err("[1\n 2\n (3 4]]"),
            "t:3: expected `)` to close the list opened on line 3, found `]`"
        );
        assert_eq!(err("1 2)"), "t:1: unexpected `)`: nothing is open to close");
        assert!(err("{:a 1 :b}").contains("key without a value"));
        assert!(err("#{1 2").contains("expected `}` to close the set opened on line 1"));
    }

    #[test]
    fn keywords_and_reader_macros() {
        assert!(err(":").contains("needs a name"));
        assert!(err("::auto").contains("not EDN"));
        assert!(err("@deref").contains("reader macros"));
    }

    #[test]
    fn errors_stop_the_iterator() {
        let mut reader = EdnReader::new("1 ) 2", "t");
        assert!(reader.next().unwrap().is_ok());
        assert!(reader.next().unwrap().is_err());
        assert!(reader.next().is_none());
    }

    #[test]
    fn nesting_up_to_the_limit_is_read_and_beyond_it_is_an_error() {
        let at_limit = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        let value = one(&at_limit);
        // The recursive helpers cope with the deepest value the reader can produce.
        assert!(value.to_json().is_array());
        assert_eq!(value.to_string(), at_limit);
        let too_deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(err(&too_deep).contains("nesting deeper than 1000"));
        // Far deeper input, of every nesting kind, is refused without touching the stack.
        for open in ["[", "(", "{", "#{", "#_", "#t "] {
            let text = open.repeat(1_000_000);
            assert!(err(&text).contains("nesting deeper"), "{open}");
        }
    }

    #[test]
    fn display_reads_back() {
        let text = "{:a [1 -2 3.5 \"q\\\"\\n\" \\space \\x nil true sym], \"k\" #{(1)}, \
                    :b #tag 9223372036854775808N, :c ##-Inf}";
        let value = one(text);
        assert_eq!(one(&value.to_string()), value);
    }

    #[test]
    fn line_numbers_through_comments_and_chars() {
        let text = "1 ;c\n\\newline\n\\\n 2";
        let got: Vec<usize> = EdnReader::new(text, "t").map(|r| r.unwrap().0).collect();
        // `\` followed by a real newline is the newline character, and still counts a line.
        assert_eq!(got, vec![1, 2, 3, 4]);
        let mut reader = EdnReader::new("\n:x", "t").starting_at_line(10);
        assert_eq!(reader.next_value().unwrap().unwrap().0, 11);
    }

    #[test]
    fn read_one_wants_exactly_one_value() {
        assert!(read_one("", "t")
            .unwrap_err()
            .to_string()
            .contains("found none"));
        assert!(read_one("1\n2", "t")
            .unwrap_err()
            .to_string()
            .starts_with("t:2:"));
    }
}
