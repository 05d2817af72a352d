//! Fuzzing every history reader: arbitrary bytes, and text that is nearly EDN, nearly JSON
//! Lines or nearly a Porcupine log, must give `Ok` or `Err`, never a panic. Errors must name a
//! line that exists. Whatever the EDN reader accepts must print back to text that reads as the
//! same value.
//!
//! Inputs the fuzzing once broke stay below as named regression tests.

use faultline_core::edn::{self, Edn, EdnReader};
use faultline_core::import::{detect_format, read_history_str};
use faultline_core::{Format, HistoryError};
use proptest::prelude::*;
use std::path::Path;

/// Cases per property: enough to explore each grammar, few enough for a quick debug run.
/// `FUZZ_CASES=200000 cargo test --release --test fuzz_readers` searches longer.
const CASES: u32 = 3000;

fn config() -> ProptestConfig {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        failure_persistence: None,
        // The default ChaCha generator is slow without optimisations; these tests need
        // variety, not cryptographic randomness.
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

/// Runs every reader over `text` and checks what must hold whether or not it parses.
fn read_everything(text: &str) {
    let lines = text.split('\n').count();
    for format in Format::ALL {
        for label in ["fuzz", "fuzz.edn", "fuzz.log"] {
            match read_history_str(text, label, format) {
                Ok((history, used)) => {
                    assert_ne!(used, Format::Auto);
                    // Pairing may reject the history, but must not panic.
                    let _ = history.pairs();
                    if format == Format::Auto {
                        let (again, _) = read_history_str(text, label, used).expect("same format");
                        assert_eq!(history, again);
                    }
                }
                Err(HistoryError::Parse { line, why, .. }) => {
                    assert!(line >= 1 && line <= lines, "line {line} of {lines}: {why}");
                }
                Err(other) => panic!("unexpected error kind: {other}"),
            }
            if format != Format::Auto {
                break; // The label only matters to detection.
            }
        }
    }
    for path in ["h", "h.edn", "h.log", "h.txt"] {
        assert_ne!(
            detect_format(Path::new(path), text.as_bytes()),
            Format::Auto
        );
    }
    read_edn_values(text);
}

/// Reads `text` as EDN both ways; every value must survive printing and reading back.
fn read_edn_values(text: &str) {
    for unwrap in [false, true] {
        let mut reader = EdnReader::new(text, "fuzz");
        if unwrap {
            reader = reader.unwrap_top_level_sequences();
        }
        for item in reader {
            match item {
                Ok((line, value)) => {
                    assert!(line >= 1 && line <= text.split('\n').count());
                    assert_round_trip(&value);
                }
                Err(HistoryError::Parse { line, .. }) => {
                    assert!(line >= 1 && line <= text.split('\n').count(), "line {line}");
                }
                Err(other) => panic!("unexpected error kind: {other}"),
            }
        }
    }
}

fn assert_round_trip(value: &Edn) {
    let printed = value.to_string();
    let again = edn::read_one(&printed, "printed")
        .unwrap_or_else(|e| panic!("{value:?} printed as {printed:?}, which fails: {e}"));
    // Compared as text, since NaN is not equal to itself.
    assert_eq!(again.to_string(), printed, "{value:?}");
    assert_eq!(value.clone().into_json(), value.to_json());
}

/// Pieces of EDN, valid and broken, from which near-EDN text is assembled.
fn edn_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            "(",
            ")",
            "#{",
            "#_",
            "#inst",
            "##Inf",
            "##",
            "#",
            ";",
            "\n",
            ",",
            " ",
            "\"",
            "\\",
            "\\n",
            "\\newline",
            "\\u00e9",
            "\\uD83D",
            ":",
            "::",
            ":type",
            ":invoke",
            ":ok",
            ":fail",
            ":info",
            ":process",
            ":nemesis",
            ":f",
            ":read",
            ":write",
            ":cas",
            ":txn",
            ":value",
            ":key",
            ":index",
            ":time",
            ":error",
            "nil",
            "true",
            "-",
            "+",
            "1N",
            "2M",
            "1/2",
            "1/0",
            "-0",
            "017",
            "1e5",
            "1.5",
            "9223372036854775808",
            "\"a {b} \\\"c\\\"\"",
            "[:append 1 2]",
            "[:r 1 nil]",
            "é",
            "\r",
            "\t",
            "@",
            "^",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        // A few bytes of EDN's alphabet in any order (a sampled alphabet is much cheaper than
        // a regex strategy in a debug build).
        prop::collection::vec(
            prop::sample::select(b"abxz:#\\\"{}[]() 019.+-eNM/_".to_vec()),
            1..6
        )
        .prop_map(|bytes| String::from_utf8(bytes).expect("ASCII")),
    ]
}

fn near_edn() -> impl Strategy<Value = String> {
    prop::collection::vec(edn_piece(), 0..48).prop_map(|pieces| pieces.join(" "))
}

fn near_edn_tight() -> impl Strategy<Value = String> {
    prop::collection::vec(edn_piece(), 0..48).prop_map(|pieces| pieces.concat())
}

fn near_jsonl() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        "\"",
        ":",
        ",",
        "\n",
        " ",
        "\"process\"",
        "\"type\"",
        "\"f\"",
        "\"value\"",
        "\"index\"",
        "\"time\"",
        "\"key\"",
        "\"error\"",
        "\"invoke\"",
        "\"ok\"",
        "\"info\"",
        "\"nemesis\"",
        "\"read\"",
        "0",
        "-1",
        "1.5",
        "null",
        "true",
        "18446744073709551615",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}",
    ]);
    prop::collection::vec(piece, 0..48).prop_map(|pieces| pieces.concat())
}

fn porcupine_line() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "INFO  jepsen.util - ",
            "INFO jepsen.util -\t",
            "INFO  jepsen.util -",
            "INFO ",
            "",
            "WARN  jepsen.util - ",
        ]),
        prop::sample::select(vec!["0", "3", "17", "-1", "x", "99999999999999999999", ""]),
        prop::sample::select(vec![
            ":invoke", ":ok", ":fail", ":info", ":start", "invoke", "",
        ]),
        prop::sample::select(vec![":read", ":write", ":cas", ":", "read", ""]),
        prop::sample::select(vec![
            "nil",
            "4",
            "[3 0]",
            ":timed-out",
            "[1",
            "1 2",
            "\"s",
            "[1 2] x",
            "",
            "#_",
            "é",
        ]),
        prop::sample::select(vec!["\t", " ", "  ", ""]),
    )
        .prop_map(|(prefix, process, kind, f, value, sep)| {
            format!("{prefix}{process}{sep}{kind}{sep}{f}{sep}{value}")
        })
}

fn near_porcupine() -> impl Strategy<Value = String> {
    prop::collection::vec(porcupine_line(), 0..24).prop_map(|lines| lines.join("\n"))
}

/// Valid histories of each format; the mutation fuzzer breaks them a little.
const SAMPLES: [&str; 6] = [
    "; a Knossos history\n[{:process 0, :type :invoke, :f :cas, :value [1 2]}\n \
     {:process 0, :type :fail, :f :cas, :value [1 2], :error \"x {:t 1, :r [\\\"y\\\"]}\"}\n \
     {:process :nemesis, :type :info, :f :start, :value nil}]\n",
    "{:index 0 :type :invoke :value [[:append 253 1] [:r 253 nil]]}\n\
     {:index 1 :type :ok :value [[:append 253 1] [:r 253 [1]]]}\n",
    "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:fail\t:read\t:timed-out\n\
     INFO  jepsen.util - 0   :invoke :cas    [3 0]\nINFO  jepsen.util - 0\t:info\t:cas\t:timed-out\n",
    "{:process 0, :type :invoke, :f :append, :key \"0\", :value \"x 0 0 y\"}\n\
     {:process 0, :type :ok, :f :append, :key \"0\", :value \"x 0 0 y\"}\n",
    "{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"x\",\"value\":3}\n\
     {\"index\":1,\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"key\":\"x\",\"value\":3}\n",
    "(#_ {:a 1} {:type :invoke, :f :txn, :value [[:r :x nil]], :process 3, :time 7686455705}\n\
     {:type :ok, :f :txn, :value [[:r :x 0]], :process 3, :time 7686455704})",
];

/// An edit: where (taken modulo the length), what kind, and which byte to put.
type Edit = (usize, u8, u8);

fn mutate(sample: &str, edits: &[Edit]) -> String {
    const BYTES: &[u8] = b"{}[]()#_\\\":; \n,0-9eNMx\t/";
    let mut bytes = sample.as_bytes().to_vec();
    for &(at, kind, pick) in edits {
        let byte = BYTES[pick as usize % BYTES.len()];
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let at = at % bytes.len();
        match kind % 3 {
            0 => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, byte),
            _ => bytes[at] = byte,
        }
    }
    // Edits can split a multi-byte character; the readers take text, as files are checked
    // for UTF-8 before parsing.
    String::from_utf8_lossy(&bytes).into_owned()
}

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const DIGITS: &[u8] = b"0123456789";

/// A word: one byte of `first`, then `rest_len` bytes of `rest` (sampled alphabets are much
/// cheaper than regex strategies in a debug build).
fn word(
    first: &'static [u8],
    rest: &'static [u8],
    rest_len: std::ops::RangeInclusive<usize>,
) -> BoxedStrategy<String> {
    let rest = prop::collection::vec(prop::sample::select(rest.to_vec()), rest_len);
    (prop::sample::select(first.to_vec()), rest)
        .prop_map(|(first, rest)| {
            let mut bytes = vec![first];
            bytes.extend(rest);
            String::from_utf8(bytes).expect("ASCII")
        })
        .boxed()
}

/// Any EDN value, for the printing round trip.
fn edn_value() -> impl Strategy<Value = Edn> {
    let name = || word(b"abcxyz*!?<>=_.", b"abcxyz0189*!?<>=_.:#'/-", 0..=8);
    let leaf = prop_oneof![
        Just(Edn::Nil),
        any::<bool>().prop_map(Edn::Bool),
        any::<i64>().prop_map(Edn::Int),
        // 20 digits and more are beyond i64.
        (any::<bool>(), word(&DIGITS[1..], DIGITS, 19..=30)).prop_map(|(negative, digits)| {
            Edn::BigInt(if negative {
                format!("-{digits}")
            } else {
                digits
            })
        }),
        any::<f64>().prop_map(Edn::Float),
        any::<String>().prop_map(Edn::String),
        any::<char>().prop_map(Edn::Char),
        name().prop_map(Edn::Keyword),
        name()
            .prop_filter("not a literal", |s| !matches!(
                s.as_str(),
                "nil" | "true" | "false"
            ))
            .prop_map(Edn::Symbol),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Edn::List),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Edn::Vector),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Edn::Set),
            prop::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Edn::Map),
            (word(LETTERS, b"abcxyz0189./", 0..=6), inner)
                .prop_map(|(tag, value)| Edn::Tagged(tag, Box::new(value))),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        // Detection sees raw bytes, which may not be UTF-8.
        for path in ["fuzz", "fuzz.log"] {
            assert_ne!(detect_format(Path::new(path), &bytes), Format::Auto);
        }
        read_everything(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn near_edn_never_panics(text in near_edn()) {
        read_everything(&text);
    }

    #[test]
    fn near_edn_without_spaces_never_panics(text in near_edn_tight()) {
        read_everything(&text);
    }

    #[test]
    fn near_jsonl_never_panics(text in near_jsonl()) {
        read_everything(&text);
    }

    #[test]
    fn near_porcupine_never_panics(text in near_porcupine()) {
        read_everything(&text);
    }

    #[test]
    fn mutated_samples_never_panic(
        sample in prop::sample::select(SAMPLES.to_vec()),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        read_everything(&mutate(sample, &edits));
    }

    #[test]
    fn printed_values_read_back(value in edn_value()) {
        assert_round_trip(&value);
    }
}

#[test]
fn samples_are_valid_histories() {
    for sample in SAMPLES {
        let (history, _) = read_history_str(sample, "sample", Format::Auto).unwrap();
        assert!(!history.is_empty());
        history.pairs().unwrap();
    }
}

/// Inputs picked by hand at the edges of the grammar, run through every reader like the
/// fuzzed ones.
#[test]
fn edge_cases_never_panic() {
    let deep = "[".repeat(5000);
    let cases = [
        "",
        "\\",
        "\\\n",
        "\"\\",
        "\"\\u",
        "\"\\uD83D\\u",
        "\"\\uD83D\\uDE0",
        "\\uD800",
        "\\é",
        "\\éa",
        "#",
        "##",
        "#_",
        "#_ #_ 1",
        "#é 1",
        "#{",
        ":",
        "::",
        "1/0",
        "-9223372036854775809",
        "99999999999999999999/1",
        deep.as_str(),
        "]",
        "(}",
        "{:process 0 :type :invoke :f :read} ]",
        "INFO  jepsen.util - 18446744073709551615 :invoke :read nil\n\
         INFO  jepsen.util - 18446744073709551615 :fail :read :timed-out\n\
         INFO  jepsen.util - 18446744073709551615 :invoke :read nil",
        "INFO  jepsen.util - 0 :ok :read :timed-out",
        "INFO  jepsen.util - 0 :info :write :timed-out",
        "{:type :ok :value [[:r 1 nil]]}",
        "{:type :invoke :process 9223372036854775807 :f :x} {:type :invoke :value []}",
        "{\"index\":18446744073709551615,\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}",
    ];
    for text in cases {
        read_everything(text);
    }
}
