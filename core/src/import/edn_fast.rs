//! A fast path for the EDN histories almost every tool writes: flat op maps such as
//! `{:process 4, :type :ok, :f :cas, :value [1 2], :time 7686455705}`, one after another or in
//! one top-level vector or list.
//!
//! It reads keywords, integers, `nil`, booleans, strings (with the escapes `\"`, `\\`, `\n`,
//! `\t`, `\r`), and vectors and lists of those, straight into [`Op`]s, without building
//! [`crate::edn::Edn`] values (a `String` per keyword and a vector per map). Anything else (a
//! float, another escape, a symbol, a set, a tag, a map as a value, a key that is not a
//! keyword, a repeated key, an op map the slow path would reject) makes it give up with
//! `None`, and the caller reads the text with the full reader, which is also what reports
//! errors with their lines. So the fast path changes how fast a history is read, never what
//! it reads as: a property test below reads the same text both ways.

use serde_json::Value;
use std::borrow::Cow;

use super::EdnOps;
use crate::history::{Op, OpType, Process};
use crate::names::{
    pack, pack_span, ERROR, F, FAIL, INDEX, INFO, INVOKE, KEY, OK, PROCESS, TIME, TYPE, VALUE,
};

/// How deeply vectors may nest inside a value before the fast path gives up.
const MAX_DEPTH: usize = 16;

/// Reads the op maps of `text` into `ops`; `None` if the text holds anything the fast path
/// does not read, or an op that `ops` rejects.
pub(super) fn read_ops(text: &str, ops: &mut EdnOps) -> Option<()> {
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    let mut position = 0;
    let mut op_map = |cursor: &mut Cursor<'_>| {
        let (op, has_process) = cursor.op_map(position)?;
        position += 1;
        ops.push(op, has_process).ok()
    };
    loop {
        cursor.skip_whitespace()?;
        match cursor.peek() {
            None => return Some(()),
            Some(b'{') => op_map(&mut cursor)?,
            Some(open @ (b'[' | b'(')) => {
                let close = if open == b'[' { b']' } else { b')' };
                cursor.pos += 1;
                loop {
                    cursor.skip_whitespace()?;
                    match cursor.peek()? {
                        b'{' => op_map(&mut cursor)?,
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
    /// Borrowed from the text unless it had escapes.
    Str(Cow<'a, str>),
    Int(i64),
    Other(Value),
}

impl Read<'_> {
    fn into_json(self) -> Value {
        match self {
            Read::Keyword(s) => Value::String(s.to_string()),
            Read::Str(s) => Value::String(s.into_owned()),
            Read::Int(n) => Value::from(n),
            Read::Other(v) => v,
        }
    }

    /// A keyword's or string's name, as `:type` and `:f` take it.
    fn name(&self) -> Option<&str> {
        match self {
            Read::Keyword(s) => Some(s),
            Read::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Byte classes, looked up once per byte: the scanning loops below test one bit each.
const SPACE: u8 = 1; // skipped between forms: whitespace and commas
const TOKEN_END: u8 = 2; // ends a keyword, number or symbol
const KEYWORD: u8 = 4; // may appear in a keyword name on the fast path

static CLASSES: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        let mut class = 0;
        if matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | b',') {
            class |= SPACE | TOKEN_END;
        }
        if matches!(byte, b'[' | b']' | b'(' | b')' | b'{' | b'}' | b'"' | b';') {
            class |= TOKEN_END;
        }
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'?' | b'!' | b'*' | b'.' | b'+')
        {
            class |= KEYWORD;
        }
        table[b] = class;
        b += 1;
    }
    table
}

fn class(b: u8) -> u8 {
    CLASSES[b as usize]
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Whether the token just read ends at `pos`: at a delimiter or at the end of the text.
    #[inline]
    fn token_ends_at(&self, pos: usize) -> bool {
        self.bytes
            .get(pos)
            .is_none_or(|&b| class(b) & TOKEN_END != 0)
    }

    /// Skips whitespace, commas and `;` comments; `None` on bytes the fast path leaves to the
    /// full reader (a form feed, say).
    #[inline]
    fn skip_whitespace(&mut self) -> Option<()> {
        let bytes = self.bytes;
        let mut pos = self.pos;
        while let Some(&b) = bytes.get(pos) {
            if class(b) & SPACE != 0 {
                pos += 1;
            } else if b == b';' {
                pos = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |n| pos + n + 1);
            } else if b.is_ascii() {
                break;
            } else {
                return None;
            }
        }
        self.pos = pos;
        Some(())
    }

    /// The token from here to the next delimiter.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        let mut pos = start;
        while self
            .bytes
            .get(pos)
            .is_some_and(|&b| class(b) & TOKEN_END == 0)
        {
            pos += 1;
        }
        self.pos = pos;
        &self.text[start..pos]
    }

    /// A keyword's name, after its `:`: a letter, then keyword bytes up to a delimiter.
    #[inline]
    fn keyword(&mut self) -> Option<&'a str> {
        let (start, end) = self.keyword_span()?;
        // Keyword bytes are ASCII, so both ends are character boundaries.
        self.text.get(start..end)
    }

    /// Where the keyword here has its name.
    #[inline]
    fn keyword_span(&mut self) -> Option<(usize, usize)> {
        debug_assert_eq!(self.peek(), Some(b':'));
        let start = self.pos + 1;
        if !self.bytes.get(start)?.is_ascii_alphabetic() {
            return None;
        }
        let mut pos = start + 1;
        while self
            .bytes
            .get(pos)
            .is_some_and(|&b| class(b) & KEYWORD != 0)
        {
            pos += 1;
        }
        if !self.token_ends_at(pos) {
            return None;
        }
        self.pos = pos;
        Some((start, pos))
    }

    /// A string, with the escapes histories use (`\"`, `\\`, `\n`, `\t`, `\r`); any other
    /// escape, and an unterminated string, are left to the full reader.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let quote_or_escape =
            |from: usize| memchr::memchr2(b'"', b'\\', &self.bytes[from..]).map(|n| from + n);
        let start = self.pos + 1;
        let stop = quote_or_escape(start)?;
        if self.bytes[stop] == b'"' {
            self.pos = stop + 1;
            return Some(Cow::Borrowed(&self.text[start..stop]));
        }
        let mut out = String::with_capacity(stop - start + 16);
        let mut pos = start;
        let mut stop = stop;
        loop {
            // Both ends are ASCII bytes, so character boundaries.
            out.push_str(&self.text[pos..stop]);
            if self.bytes[stop] == b'"' {
                self.pos = stop + 1;
                return Some(Cow::Owned(out));
            }
            out.push(match self.bytes.get(stop + 1)? {
                b'"' => '"',
                b'\\' => '\\',
                b'n' => '\n',
                b't' => '\t',
                b'r' => '\r',
                _ => return None,
            });
            pos = stop + 2;
            stop = quote_or_escape(pos)?;
        }
    }

    /// A plain decimal integer: no `+`, no leading zeros, no suffix, within `i64`.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.peek() == Some(b'-');
        let start = self.pos + usize::from(negative);
        let mut pos = start;
        let mut magnitude = 0u64;
        while let Some(&b) = self.bytes.get(pos).filter(|b| b.is_ascii_digit()) {
            magnitude = magnitude
                .checked_mul(10)?
                .checked_add(u64::from(b - b'0'))?;
            pos += 1;
        }
        let digits = pos - start;
        if digits == 0 || (digits > 1 && self.bytes[start] == b'0') || !self.token_ends_at(pos) {
            return None;
        }
        self.pos = pos;
        if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        }
    }

    /// A value: scalars here, inlined into the op map's loop (a `Read` returned from a call
    /// is copied through memory); vectors and lists in [`Cursor::sequence`].
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Option<Read<'a>> {
        match self.peek()? {
            b':' => self.keyword().map(Read::Keyword),
            b'"' => self.string().map(Read::Str),
            b'-' | b'0'..=b'9' => self.integer().map(Read::Int),
            open @ (b'[' | b'(') if depth < MAX_DEPTH => self
                .sequence(open, depth)
                .map(|items| Read::Other(Value::Array(items))),
            _ => match self.token() {
                "nil" => Some(Read::Other(Value::Null)),
                "true" => Some(Read::Other(Value::Bool(true))),
                "false" => Some(Read::Other(Value::Bool(false))),
                _ => None,
            },
        }
    }

    /// The items of the vector or list that `open` opens.
    #[inline(never)]
    fn sequence(&mut self, open: u8, depth: usize) -> Option<Vec<Value>> {
        let close = if open == b'[' { b']' } else { b')' };
        self.pos += 1;
        // Most vectors in histories are pairs, such as a cas's [old new].
        let mut items = Vec::with_capacity(2);
        loop {
            self.skip_whitespace()?;
            if self.peek()? == close {
                self.pos += 1;
                return Some(items);
            }
            items.push(self.value(depth + 1)?.into_json());
        }
    }

    /// One op map, as [`super::op_from_edn`] reads it, and whether it names its process;
    /// `position` is its place in the history.
    #[inline(always)]
    fn op_map(&mut self, position: u64) -> Option<(Op, bool)> {
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
            let (start, end) = self.keyword_span()?;
            let name = pack_span(self.bytes, start, end);
            self.skip_whitespace()?;
            let read = self.value(0)?;
            let slot = match name {
                PROCESS => &mut process,
                TYPE => &mut kind,
                F => &mut f,
                VALUE => &mut value,
                KEY => &mut key,
                ERROR => &mut error,
                TIME => &mut time,
                INDEX => &mut index,
                _ => continue,
            };
            if slot.is_some() {
                return None;
            }
            *slot = Some(read);
        }
        let kind = match pack(kind?.name()?.as_bytes()) {
            INVOKE => OpType::Invoke,
            OK => OpType::Ok,
            FAIL => OpType::Fail,
            INFO => OpType::Info,
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
        Some((op, has_process))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::EdnReader;
    use crate::import::{op_from_edn, EdnFlavor};
    use proptest::prelude::*;

    /// What the full reader makes of `text`, or `None` if it rejects it.
    fn slow(text: &str) -> Option<Vec<Op>> {
        let mut reader = EdnReader::new(text, "t").unwrap_top_level_sequences();
        let mut ops = EdnOps::new(EdnFlavor::Jepsen, 0);
        let mut position = 0;
        while let Some((_, value)) = reader.next_value().ok()? {
            let parsed = op_from_edn(value, position).ok()?;
            ops.push(parsed.op, parsed.has_process).ok()?;
            position += 1;
        }
        Some(ops.finish().ops)
    }

    fn fast(text: &str) -> Option<Vec<Op>> {
        let mut ops = EdnOps::new(EdnFlavor::Jepsen, 0);
        read_ops(text, &mut ops).map(|()| ops.finish().ops)
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
        let escaped = "{:process 1, :type :info, :f :cas, :error \"lost {:r [\\\"x\\\"]}\\n\"}";
        let ops = fast(escaped).expect("the fast path reads the usual escapes");
        assert_eq!(Some(ops.clone()), slow(escaped));
        assert_eq!(ops[0].error, Some(serde_json::json!("lost {:r [\"x\"]}\n")));
    }

    #[test]
    fn leaves_what_it_does_not_read_to_the_full_reader() {
        for text in [
            "{:process 1, :type :ok, :f :read, :value 1.5}",
            "{:process 1, :type :ok, :f :read, :value \"a\\u0041b\"}",
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
            "\"a\\\"b\\\\\"",
            "\"\\b\"",
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
