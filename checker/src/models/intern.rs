//! Interning JSON values as small integers, so model states hash and compare in one word.

use hashbrown::hash_table::{Entry as Slot, HashTable};
use rustc_hash::{FxHashMap, FxHasher};
use serde_json::Value;
use std::hash::{Hash, Hasher};

/// A key that identifies a JSON value exactly: integers, strings and booleans directly, anything
/// else by its canonical JSON text (serde_json keeps object keys sorted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ValueKey {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Str(Box<str>),
    Json(Box<str>),
}

impl ValueKey {
    fn of(value: &Value) -> ValueKey {
        match value {
            Value::Null => ValueKey::Null,
            Value::Bool(b) => ValueKey::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => ValueKey::Int(i),
                (None, Some(u)) => ValueKey::UInt(u),
                _ => ValueKey::Json(n.to_string().into()),
            },
            Value::String(s) => ValueKey::Str(s.as_str().into()),
            other => ValueKey::Json(other.to_string().into()),
        }
    }
}

/// An interned value. A string's text is kept once, in the interner's arena, with its hash.
#[derive(Debug, Clone)]
enum Entry {
    Str { start: usize, end: usize, hash: u64 },
    Other(Value),
}

/// Maps JSON values to dense ids; id 0 is always `null`.
///
/// Strings (string-kv interns a million of them) are kept apart from other values, so that
/// interning one allocates nothing but its room in the arena, and looking one up hashes it once:
/// the table holds ids only, and the hash of each string is kept with it, so growing the table
/// reads no text.
#[derive(Debug, Clone)]
pub struct Interner {
    /// Every string's text, one after another.
    arena: String,
    /// The ids of the strings, found by text.
    strings: HashTable<u32>,
    ids: FxHashMap<ValueKey, u32>,
    values: Vec<Entry>,
}

/// The hash kept with the string `id` (the table holds string ids only).
fn kept_hash(values: &[Entry], id: u32) -> u64 {
    match values[id as usize] {
        Entry::Str { hash, .. } => hash,
        Entry::Other(_) => 0,
    }
}

fn hash_text(text: &str) -> u64 {
    let mut hasher = FxHasher::default();
    text.hash(&mut hasher);
    hasher.finish()
}

impl Default for Interner {
    fn default() -> Self {
        let mut interner = Interner {
            arena: String::new(),
            strings: HashTable::new(),
            ids: FxHashMap::default(),
            values: Vec::new(),
        };
        let null = interner.intern(&Value::Null);
        debug_assert_eq!(null, Interner::NULL);
        interner
    }
}

impl Interner {
    pub const NULL: u32 = 0;

    pub fn intern(&mut self, value: &Value) -> u32 {
        if let Value::String(text) = value {
            return self.intern_str(text);
        }
        let key = ValueKey::of(value);
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.next_id();
        self.values.push(Entry::Other(value.clone()));
        self.ids.insert(key, id);
        id
    }

    fn next_id(&self) -> u32 {
        u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values")
    }

    /// Makes room for `strings` more strings of `bytes` bytes in all, so that interning them
    /// neither grows the table nor moves the arena.
    pub fn reserve_strings(&mut self, strings: usize, bytes: usize) {
        let values = &self.values;
        self.strings.reserve(strings, |&id| kept_hash(values, id));
        self.values.reserve(strings);
        self.arena.reserve(bytes);
    }

    /// Interns a string without building a JSON value first (the hot path of string-kv).
    pub fn intern_str(&mut self, text: &str) -> u32 {
        let start = self.arena.len();
        self.arena.push_str(text);
        self.intern_arena_tail(start)
    }

    /// Interns the text of `head` followed by the text of `tail` (both strings), without
    /// building it anywhere but at the end of the arena, where it stays only if it is new.
    pub fn intern_concat(&mut self, head: u32, tail: u32) -> u32 {
        let start = self.arena.len();
        for id in [head, tail] {
            if let Entry::Str { start, end, .. } = self.values[id as usize] {
                self.arena.extend_from_within(start..end);
            }
        }
        self.intern_arena_tail(start)
    }

    /// Interns the text the arena holds from `start` to its end: it keeps it as a new string,
    /// or drops it again for the id of the same text interned before.
    fn intern_arena_tail(&mut self, start: usize) -> u32 {
        let id = self.next_id();
        let Interner {
            arena,
            strings,
            values,
            ..
        } = self;
        let end = arena.len();
        let text = &arena[start..end];
        let hash = hash_text(text);
        let same = |&id: &u32| match values[id as usize] {
            Entry::Str {
                start: s,
                end: e,
                hash: h,
            } => h == hash && arena[s..e] == *text,
            Entry::Other(_) => false,
        };
        match strings.entry(hash, same, |&id| kept_hash(values, id)) {
            Slot::Occupied(found) => {
                let id = *found.get();
                arena.truncate(start);
                id
            }
            Slot::Vacant(free) => {
                free.insert(id);
                values.push(Entry::Str { start, end, hash });
                id
            }
        }
    }

    /// The value behind an id.
    pub fn value(&self, id: u32) -> Value {
        match &self.values[id as usize] {
            Entry::Str { start, end, .. } => Value::String(self.arena[*start..*end].to_string()),
            Entry::Other(value) => value.clone(),
        }
    }

    /// The text behind an id, when the value is a string.
    pub fn text(&self, id: u32) -> Option<&str> {
        match &self.values[id as usize] {
            Entry::Str { start, end, .. } => Some(&self.arena[*start..*end]),
            Entry::Other(_) => None,
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every id handed out so far.
    pub fn ids(&self) -> impl Iterator<Item = u32> {
        0..self.values.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_share_an_id_and_types_stay_apart() {
        let mut i = Interner::default();
        assert_eq!(i.intern(&json!(null)), Interner::NULL);
        let one = i.intern(&json!(1));
        assert_eq!(i.intern(&json!(1)), one);
        assert_ne!(i.intern(&json!("1")), one);
        assert_ne!(i.intern(&json!(1.5)), one);
        assert_eq!(
            i.intern(&json!({"b": 1, "a": [2]})),
            i.intern(&json!({"a": [2], "b": 1}))
        );
        assert_eq!(i.intern_str("x"), i.intern(&json!("x")));
        assert_eq!(i.value(one), json!(1));
        let x = i.intern(&json!("x"));
        assert_eq!(i.text(x), Some("x"));
    }

    #[test]
    fn strings_keep_their_ids_as_the_table_grows() {
        let mut i = Interner::default();
        let texts: Vec<String> = (0..20_000).map(|n| format!("x {n} y")).collect();
        let ids: Vec<u32> = texts.iter().map(|t| i.intern_str(t)).collect();
        for (text, &id) in texts.iter().zip(&ids).rev() {
            assert_eq!(i.intern_str(text), id);
            assert_eq!(i.text(id), Some(text.as_str()));
        }
        assert_eq!(i.len(), 20_001, "null and each distinct text once");
        assert_eq!(i.intern_str(""), i.intern(&json!("")));
        assert_ne!(i.intern_str(""), Interner::NULL);
    }

    #[test]
    fn a_concatenation_is_interned_once_and_leaves_no_text_behind_when_known() {
        let mut i = Interner::default();
        let [ab, c, abc] = ["ab", "c", "abc"].map(|t| i.intern_str(t));
        let arena = i.arena.len();
        assert_eq!(i.intern_concat(ab, c), abc);
        assert_eq!(i.arena.len(), arena, "a known text is not kept twice");
        let cab = i.intern_concat(c, ab);
        assert_eq!(i.text(cab), Some("cab"));
        assert_eq!(i.intern_str("cab"), cab);
        assert_eq!(
            i.intern_concat(cab, Interner::NULL),
            cab,
            "null adds no text"
        );
        // The other values keep their own ids among the strings.
        let one = i.intern(&json!(1));
        assert_eq!(i.value(one), json!(1));
        assert_eq!(i.text(one), None);
        assert_eq!(i.value(cab), json!("cab"));
    }
}
