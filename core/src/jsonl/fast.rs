//! A fast path for the common shape of a JSON Lines event.
//!
//! serde_json's derived reader spends most of a long history's parsing time on generic
//! machinery. Events written by faultline (and by most tools) are flat objects whose values are
//! integers, `null`, booleans and strings without escapes; this reader handles exactly that and
//! gives up (`None`) on anything else: another value type, an escape, a negative or fractional
//! number, an unknown or repeated field, a missing required field. The caller then parses the
//! line with serde_json, which also writes the error message for bad input, so the fast path
//! never changes what a line means or how a bad line is reported.
//!
//! A line is read without a per-byte state machine where it can be: a field name is matched as
//! a packed word ([`crate::names`]), and before reading a name at all the reader compares the
//! next bytes with the opening of the field that faultline's writer puts next (`"time":` after
//! `index`), so a line written in that order costs one comparison per field name. The strings
//! it keeps are sliced from the line, which the caller has checked as UTF-8 in bulk.

use serde_json::Value;

use crate::history::{Op, OpType, Process, UNASSIGNED_INDEX};
use crate::names::{
    pack, word, ERROR, F, FAIL, INDEX, INFO, INVOKE, KEY, NEMESIS, OK, PROCESS, TIME, TYPE, VALUE,
};

/// Parses one event line, or `None` when the line is not of the simple shape.
pub(crate) fn parse_simple(text: &str) -> Option<Op> {
    let mut op = Op::invoke(0, "", Value::Null);
    parse_simple_into(text, &mut op).then_some(op)
}

/// As [`parse_simple`], into an event whose string buffers are reused (a reader that recycles
/// its events allocates nothing for most lines). Every field is overwritten on success; on
/// failure (`false`) the event holds a mix of old and new fields and must be replaced.
pub(crate) fn parse_simple_into(text: &str, op: &mut Op) -> bool {
    parse_into(text, op).is_some()
}

/// An event's fields in the order faultline's writer puts them (serde, in `Op`'s order).
/// A field's position here is its bit in the set of fields seen.
const INDEX_AT: usize = 0;
const TIME_AT: usize = 1;
const PROCESS_AT: usize = 2;
const TYPE_AT: usize = 3;
const F_AT: usize = 4;
const KEY_AT: usize = 5;
const VALUE_AT: usize = 6;
const ERROR_AT: usize = 7;

/// The text that opens each field, `"name":`, as a masked 16-byte word, in the order above. A
/// line written by faultline opens each field where the last one said, so the reader tries
/// the next field's opening first: one comparison instead of reading a name.
static OPENINGS: [Opening; 8] = [
    opening(b"\"index\":"),
    opening(b"\"time\":"),
    opening(b"\"process\":"),
    opening(b"\"type\":"),
    opening(b"\"f\":"),
    opening(b"\"key\":"),
    opening(b"\"value\":"),
    opening(b"\"error\":"),
];

struct Opening {
    word: u128,
    mask: u128,
    len: usize,
}

const fn opening(text: &[u8]) -> Opening {
    let mut word = 0u128;
    let mut i = 0;
    while i < text.len() {
        word |= (text[i] as u128) << (8 * i);
        i += 1;
    }
    Opening {
        word,
        mask: (1u128 << (8 * text.len())) - 1,
        len: text.len(),
    }
}

/// A field's position in [`OPENINGS`], from its name.
fn position(name: u64) -> Option<usize> {
    Some(match name {
        INDEX => INDEX_AT,
        TIME => TIME_AT,
        PROCESS => PROCESS_AT,
        TYPE => TYPE_AT,
        F => F_AT,
        KEY => KEY_AT,
        VALUE => VALUE_AT,
        ERROR => ERROR_AT,
        _ => return None,
    })
}

fn parse_into(text: &str, op: &mut Op) -> Option<()> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    p.skip_space();
    p.eat(b'{')?;
    let mut seen = 0u8;
    p.skip_space();
    if p.peek()? != b'}' {
        // The field faultline's writer would put next.
        let mut next = INDEX_AT;
        loop {
            p.skip_space();
            let at = if p.opens(next) {
                next
            } else {
                let at = position(p.name()?)?;
                p.skip_space();
                p.eat(b':')?;
                at
            };
            // Each field once.
            if seen & (1 << at) != 0 {
                return None;
            }
            seen |= 1 << at;
            next = at + 1;
            p.skip_space();
            match at {
                INDEX_AT => op.index = p.unsigned()?,
                TIME_AT => op.time = p.optional_unsigned()?,
                PROCESS_AT => {
                    op.process = match p.peek()? {
                        b'"' if p.name()? == NEMESIS => Process::Nemesis,
                        b'"' => return None,
                        _ => Process::Client(p.unsigned()?),
                    };
                }
                TYPE_AT => {
                    op.kind = match p.name()? {
                        INVOKE => OpType::Invoke,
                        OK => OpType::Ok,
                        FAIL => OpType::Fail,
                        INFO => OpType::Info,
                        _ => return None,
                    };
                }
                F_AT => {
                    let f = p.string()?;
                    op.f.clear();
                    op.f.push_str(f);
                }
                KEY_AT => p.optional_value_into(&mut op.key)?,
                VALUE_AT => p.value_into(&mut op.value)?,
                _ => p.optional_value_into(&mut op.error)?,
            }
            p.skip_space();
            match p.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    } else {
        p.at += 1;
    }
    p.skip_space();
    let has = |at: usize| seen & (1 << at) != 0;
    if p.at != p.bytes.len() || !(has(PROCESS_AT) && has(TYPE_AT) && has(F_AT)) {
        return None;
    }
    // Absent fields take serde's defaults.
    if !has(INDEX_AT) {
        op.index = UNASSIGNED_INDEX;
    }
    if !has(TIME_AT) {
        op.time = None;
    }
    if !has(KEY_AT) {
        op.key = None;
    }
    if !has(VALUE_AT) {
        op.value = Value::Null;
    }
    if !has(ERROR_AT) {
        op.error = None;
    }
    Some(())
}

/// The bytes that end the plain run of a string: the quote, a backslash, a control byte.
static STOPS: [bool; 256] = stops();

const fn stops() -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
}

/// The position of the first `"` among a word's bytes, or 8 when there is none. (A byte of
/// `word ^ """..."` is zero where the quote is; the lowest zero byte is found exactly.)
#[inline]
fn first_quote(word: u64) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
    let x = word ^ QUOTES;
    let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
    zeros.trailing_zeros() as usize / 8
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    #[inline]
    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.next()? == expected).then_some(())
    }

    #[inline]
    fn skip_space(&mut self) {
        // Every byte above the space is not whitespace: one comparison for the usual case.
        while let Some(&b) = self.bytes.get(self.at) {
            if b > b' ' || !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.at += 1;
        }
    }

    /// Whether the field at `at` in [`OPENINGS`] opens here; if so, the cursor moves past
    /// its opening. (Where fewer than 16 bytes are left, as at a line's last field, the
    /// caller reads the name instead.)
    #[inline(always)]
    fn opens(&mut self, at: usize) -> bool {
        let (Some(opening), Some(sixteen)) =
            (OPENINGS.get(at), self.bytes.get(self.at..self.at + 16))
        else {
            return false;
        };
        let word = u128::from_le_bytes(sixteen.try_into().expect("sixteen bytes"));
        let opens = word & opening.mask == opening.word;
        if opens {
            self.at += opening.len;
        }
        opens
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let len = self
            .bytes
            .get(start..)?
            .iter()
            .position(|&b| STOPS[usize::from(b)])?;
        self.at += len + 1;
        // Both ends are at an ASCII quote, so they are character boundaries.
        (self.bytes[start + len] == b'"').then(|| self.text.get(start..start + len))?
    }

    /// A string that only matters if it is one of the names in [`crate::names`], packed as
    /// [`pack`] packs it. Where eight bytes follow the opening quote and hold the closing
    /// one, the name is read with one load and no scan. A name with an escape or a control
    /// byte packs to a word no name packs to, so it matches nothing, as it should not.
    #[inline(always)]
    fn name(&mut self) -> Option<u64> {
        self.eat(b'"')?;
        if let Some(eight) = self.bytes.get(self.at..self.at + 8) {
            let word = word(eight);
            let len = first_quote(word);
            if len < 8 {
                self.at += len + 1;
                // An empty name is 0, as `pack` has it.
                return Some(word & ((1u64 << (8 * len)) - 1));
            }
        }
        self.at -= 1;
        Some(pack(self.string()?.as_bytes()))
    }

    /// A non-negative integer that fits in a u64 (no sign, fraction or exponent).
    fn unsigned(&mut self) -> Option<u64> {
        let start = self.at;
        let mut n: u64 = 0;
        while let Some(b @ b'0'..=b'9') = self.peek() {
            n = n.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && self.bytes[start] == b'0') {
            return None;
        }
        // Nineteen digits cannot overflow; more are read again, checked.
        if digits > 19 {
            n = self.bytes[start..self.at].iter().try_fold(0u64, |n, &b| {
                n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
            })?;
        }
        match self.peek() {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(n),
        }
    }

    fn optional_unsigned(&mut self) -> Option<Option<u64>> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            return Some(None);
        }
        self.unsigned().map(Some)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word.as_bytes()).then(|| self.at = end)
    }

    /// `null`, a boolean, a non-negative integer, or a string without escapes, into `slot`
    /// (a string into the string already there, reusing its buffer).
    fn value_into(&mut self, slot: &mut Value) -> Option<()> {
        *slot = match self.peek()? {
            b'n' => self.literal("null").map(|_| Value::Null)?,
            b't' => self.literal("true").map(|_| Value::Bool(true))?,
            b'f' => self.literal("false").map(|_| Value::Bool(false))?,
            b'"' => {
                let text = self.string()?;
                if let Value::String(buffer) = slot {
                    buffer.clear();
                    buffer.push_str(text);
                    return Some(());
                }
                Value::String(text.to_string())
            }
            b'0'..=b'9' => Value::from(self.unsigned()?),
            _ => return None,
        };
        Some(())
    }

    /// As [`Parser::value_into`], for an optional field: JSON `null` is absent, as serde
    /// reads `Option<Value>`.
    fn optional_value_into(&mut self, slot: &mut Option<Value>) -> Option<()> {
        let mut value = slot.take().unwrap_or(Value::Null);
        self.value_into(&mut value)?;
        *slot = (!value.is_null()).then_some(value);
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn serde(text: &str) -> Option<Op> {
        serde_json::from_str(text).ok()
    }

    /// Whatever the fast path accepts, serde_json reads the same way.
    fn agrees(text: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = parse_simple(text) {
            prop_assert_eq!(Some(fast), serde(text), "line {:?}", text);
        }
        Ok(())
    }

    #[test]
    fn reads_the_common_shapes() {
        let line =
            r#"{"index":3,"time":12,"process":4,"type":"ok","f":"get","key":"7","value":"x 1 y"}"#;
        let op = parse_simple(line).expect("simple");
        assert_eq!(Some(op), serde(line));
        let line = " {\"process\" : \"nemesis\", \"type\":\"info\",\"f\":\"start\",\"value\":null,\"error\":null}\r";
        assert_eq!(parse_simple(line), serde(line));
        assert!(parse_simple(line).is_some());
        let line =
            r#"{"process":0,"type":"invoke","f":"write","key":null,"value":18446744073709551615}"#;
        assert_eq!(parse_simple(line), serde(line));
        assert!(parse_simple(line).is_some());
    }

    #[test]
    fn reads_names_and_strings_wherever_the_line_ends() {
        // Names and values near the end of a line, where fewer than eight bytes are left.
        for line in [
            r#"{"type":"ok","f":"w","process":"nemesis"}"#,
            r#"{"f":"w","type":"info","process":12}"#,
            r#"{"process":1,"f":"w","type":"fail"}"#,
            r#"{"process":1,"f":"","type":"invoke","key":""}"#,
            r#"{"process":1,"f":"été","type":"ok","key":"😀"}"#,
        ] {
            let fast = parse_simple(line);
            assert!(fast.is_some(), "{line}");
            assert_eq!(fast, serde(line), "{line}");
        }
    }

    #[test]
    fn reads_fields_in_any_order_and_spacing() {
        for line in [
            r#"{"value":"v","key":"k","f":"w","type":"ok","process":3,"time":9,"index":4}"#,
            r#"{ "index" : 4 , "time":9,"process" :3,"type": "ok","f":"w","key":"k","value":"v" }"#,
            r#"{"index":4,"process":3,"time":9,"type":"ok","f":"w","value":"v","key":"k"}"#,
            r#"{"index":4,"time":9,"process":3,"type":"ok","f":"w","value":"v","error":"e"}"#,
        ] {
            let fast = parse_simple(line);
            assert!(fast.is_some(), "{line}");
            assert_eq!(fast, serde(line), "{line}");
        }
        // A field again, whether where the writer puts it or not, is left to serde.
        for line in [
            r#"{"index":4,"index":4,"process":3,"type":"ok","f":"w"}"#,
            r#"{"index":4,"time":9,"process":3,"type":"ok","f":"w","time":9}"#,
        ] {
            assert_eq!(parse_simple(line), None, "{line}");
        }
    }

    #[test]
    fn leaves_everything_else_to_serde() {
        for line in [
            r#"{"process":0,"type":"invoke","f":"cas","value":[1,2]}"#,
            r#"{"process":0,"type":"invoke","f":"w","value":-1}"#,
            r#"{"process":0,"type":"invoke","f":"w","value":1.5}"#,
            r#"{"process":0,"type":"invoke","f":"w","value":01}"#,
            r#"{"process":0,"type":"invoke","f":"w","value":"a\"b"}"#,
            r#"{"process":0,"type":"invoke","f":"w","value":18446744073709551616}"#,
            r#"{"process":0,"type":"invoke","f":"w","value":1000000000000000000000000}"#,
            r#"{"process":0,"type":"invoke","f":"w","f":"r"}"#,
            r#"{"process":0,"type":"done","f":"w"}"#,
            r#"{"process":0,"type":"ok","f":"w","extra":1}"#,
            r#"{"process":0,"type":"ok"}"#,
            r#"{"process":"bob","type":"ok","f":"w"}"#,
            r#"{"process":0,"type":"ok","f":"w"} x"#,
            r#"{"process":0,"type":"ok","f":"w",}"#,
            "{\"process\":0,\"type\":\"ok\",\"f\":\"a\tb\"}",
            "{}",
            "",
        ] {
            assert_eq!(parse_simple(line), None, "{line}");
        }
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            "[a-z \"\\\\\u{e9}\u{1f600}\t]{0,8}".prop_map(Value::from),
            prop::collection::vec(0u8..5, 0..3).prop_map(|v| json!(v)),
        ]
    }

    fn any_op() -> impl Strategy<Value = Op> {
        (
            any::<u64>(),
            prop::option::of(any::<u64>()),
            prop::option::of(0u64..100),
            prop::sample::select(vec![OpType::Invoke, OpType::Ok, OpType::Fail, OpType::Info]),
            "[a-z\"]{0,6}",
            prop::option::of(any_value()),
            any_value(),
            prop::option::of(any_value()),
        )
            .prop_map(|(index, time, process, kind, f, key, value, error)| Op {
                index,
                time,
                process: process.map_or(Process::Nemesis, Process::Client),
                kind,
                f,
                key,
                value,
                error,
            })
    }

    proptest! {
        /// An event parsed into one that held another line reads as a fresh one: no field of
        /// the old line survives.
        #[test]
        fn reused_events_read_as_fresh_ones(
            first in any_op(),
            second in any_op(),
            cut in any::<prop::sample::Index>(),
        ) {
            let (a, b) = (
                serde_json::to_string(&first).unwrap(),
                serde_json::to_string(&second).unwrap(),
            );
            // The line cut short by up to 3 bytes (where that is a character boundary).
            let end = cut.index(b.len() + 1).max(b.len().saturating_sub(3));
            let damaged = b.get(..end).unwrap_or(b.as_str());
            for text in [b.as_str(), damaged] {
                let mut op = Op::invoke(0, "", Value::Null);
                let _ = parse_simple_into(&a, &mut op);
                let reused = parse_simple_into(text, &mut op).then_some(op);
                prop_assert_eq!(reused, parse_simple(text), "{:?} after {:?}", text, a);
            }
        }

        #[test]
        fn written_events_read_back_the_same(op in any_op()) {
            let line = serde_json::to_string(&op).unwrap();
            agrees(&line)?;
        }

        #[test]
        fn damaged_events_read_as_serde_reads_them(
            op in any_op(),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(b" ,:{}\"0-.nul\\ex".to_vec()),
            cut in any::<bool>(),
        ) {
            let mut line = serde_json::to_string(&op).unwrap().into_bytes();
            let at = at.index(line.len());
            if cut {
                line.remove(at);
            } else {
                line.insert(at, byte);
            }
            if let Ok(text) = std::str::from_utf8(&line) {
                agrees(text)?;
            }
        }

        #[test]
        fn arbitrary_text_reads_as_serde_reads_it(text in "[{}\":, 0-9a-z\\\\]{0,40}") {
            agrees(&text)?;
        }
    }
}
