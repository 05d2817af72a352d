//! A fast path for the common shape of a JSON Lines event.
//!
//! serde_json's derived reader spends most of a long history's parsing time on generic
//! machinery. Events written by faultline (and by most tools) are flat objects whose values are
//! integers, `null`, booleans and strings without escapes; this reader handles exactly that and
//! gives up (`None`) on anything else: another value type, an escape, a negative or fractional
//! number, an unknown or repeated field, a missing required field. The caller then parses the
//! line with serde_json, which also writes the error message for bad input, so the fast path
//! never changes what a line means or how a bad line is reported.

use serde_json::Value;

use crate::history::{Op, OpType, Process, UNASSIGNED_INDEX};

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

fn parse_into(text: &str, op: &mut Op) -> Option<()> {
    const INDEX: u8 = 1;
    const TIME: u8 = 2;
    const PROCESS: u8 = 4;
    const TYPE: u8 = 8;
    const F: u8 = 16;
    const KEY: u8 = 32;
    const VALUE: u8 = 64;
    const ERROR: u8 = 128;
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    p.skip_space();
    p.eat(b'{')?;
    let mut seen = 0u8;
    // Claims a field, once.
    let mut field = |bit: u8| -> Option<()> { (seen & bit == 0).then(|| seen |= bit) };
    p.skip_space();
    if p.peek()? != b'}' {
        loop {
            p.skip_space();
            let name = p.string()?;
            p.skip_space();
            p.eat(b':')?;
            p.skip_space();
            match name {
                "index" => {
                    field(INDEX)?;
                    op.index = p.unsigned()?;
                }
                "time" => {
                    field(TIME)?;
                    op.time = p.optional_unsigned()?;
                }
                "process" => {
                    field(PROCESS)?;
                    op.process = match p.peek()? {
                        b'"' if p.string()? == "nemesis" => Process::Nemesis,
                        b'"' => return None,
                        _ => Process::Client(p.unsigned()?),
                    };
                }
                "type" => {
                    field(TYPE)?;
                    op.kind = match p.string()? {
                        "invoke" => OpType::Invoke,
                        "ok" => OpType::Ok,
                        "fail" => OpType::Fail,
                        "info" => OpType::Info,
                        _ => return None,
                    };
                }
                "f" => {
                    field(F)?;
                    let f = p.string()?;
                    op.f.clear();
                    op.f.push_str(f);
                }
                "key" => {
                    field(KEY)?;
                    p.optional_value_into(&mut op.key)?;
                }
                "value" => {
                    field(VALUE)?;
                    p.value_into(&mut op.value)?;
                }
                "error" => {
                    field(ERROR)?;
                    p.optional_value_into(&mut op.error)?;
                }
                _ => return None,
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
    if p.at != p.bytes.len() || seen & (PROCESS | TYPE | F) != PROCESS | TYPE | F {
        return None;
    }
    // Absent fields take serde's defaults.
    if seen & INDEX == 0 {
        op.index = UNASSIGNED_INDEX;
    }
    if seen & TIME == 0 {
        op.time = None;
    }
    if seen & KEY == 0 {
        op.key = None;
    }
    if seen & VALUE == 0 {
        op.value = Value::Null;
    }
    if seen & ERROR == 0 {
        op.error = None;
    }
    Some(())
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.next()? == expected).then_some(())
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => {}
            }
        }
        // Both ends are at an ASCII quote, so they are character boundaries.
        self.text.get(start..self.at - 1)
    }

    /// A non-negative integer that fits in a u64 (no sign, fraction or exponent).
    fn unsigned(&mut self) -> Option<u64> {
        let start = self.at;
        let mut n: u64 = 0;
        while let Some(b @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && self.bytes[start] == b'0') {
            return None;
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
    fn leaves_everything_else_to_serde() {
        for line in [
            r#"{"process":0,"type":"invoke","f":"cas","value":[1,2]}"#,
            r#"{"process":0,"type":"invoke","f":"w","value":-1}"#,
            r#"{"process":0,"type":"invoke","f":"w","value":1.5}"#,
            r#"{"process":0,"type":"invoke","f":"w","value":01}"#,
            r#"{"process":0,"type":"invoke","f":"w","value":"a\"b"}"#,
            r#"{"process":0,"type":"invoke","f":"w","value":18446744073709551616}"#,
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
