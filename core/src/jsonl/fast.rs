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
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    p.skip_space();
    p.eat(b'{')?;
    let mut index = None;
    let mut time: Option<Option<u64>> = None;
    let mut process = None;
    let mut kind = None;
    let mut f: Option<String> = None;
    let mut key: Option<Option<Value>> = None;
    let mut value: Option<Value> = None;
    let mut error: Option<Option<Value>> = None;
    p.skip_space();
    if p.peek()? != b'}' {
        loop {
            p.skip_space();
            let name = p.string()?;
            p.skip_space();
            p.eat(b':')?;
            p.skip_space();
            match name {
                "index" if index.is_none() => index = Some(p.unsigned()?),
                "time" if time.is_none() => time = Some(p.optional_unsigned()?),
                "process" if process.is_none() => {
                    process = Some(match p.peek()? {
                        b'"' if p.string()? == "nemesis" => Process::Nemesis,
                        b'"' => return None,
                        _ => Process::Client(p.unsigned()?),
                    })
                }
                "type" if kind.is_none() => {
                    kind = Some(match p.string()? {
                        "invoke" => OpType::Invoke,
                        "ok" => OpType::Ok,
                        "fail" => OpType::Fail,
                        "info" => OpType::Info,
                        _ => return None,
                    })
                }
                "f" if f.is_none() => f = Some(p.string()?.to_string()),
                "key" if key.is_none() => key = Some(non_null(p.value()?)),
                "value" if value.is_none() => value = Some(p.value()?),
                "error" if error.is_none() => error = Some(non_null(p.value()?)),
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
    if p.at != p.bytes.len() {
        return None;
    }
    Some(Op {
        index: index.unwrap_or(UNASSIGNED_INDEX),
        time: time.flatten(),
        process: process?,
        kind: kind?,
        f: f?,
        key: key.flatten(),
        value: value.unwrap_or(Value::Null),
        error: error.flatten(),
    })
}

/// An optional field: JSON `null` is absent, as serde reads `Option<Value>`.
fn non_null(value: Value) -> Option<Value> {
    (!value.is_null()).then_some(value)
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

    /// `null`, a boolean, a non-negative integer, or a string without escapes.
    fn value(&mut self) -> Option<Value> {
        match self.peek()? {
            b'n' => self.literal("null").map(|_| Value::Null),
            b't' => self.literal("true").map(|_| Value::Bool(true)),
            b'f' => self.literal("false").map(|_| Value::Bool(false)),
            b'"' => self.string().map(|s| Value::String(s.to_string())),
            b'0'..=b'9' => self.unsigned().map(Value::from),
            _ => None,
        }
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
