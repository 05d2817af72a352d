//! Interning JSON values as small integers, so model states hash and compare in one word.

use rustc_hash::FxHashMap;
use serde_json::Value;
use std::sync::Arc;

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

/// An interned value: strings are kept once, shared by the lookup table and the id table
/// (histories hold millions of distinct strings; one allocation each is the budget).
#[derive(Debug, Clone)]
enum Entry {
    Str(Arc<str>),
    Other(Value),
}

/// Maps JSON values to dense ids; id 0 is always `null`.
#[derive(Debug, Clone)]
pub struct Interner {
    /// Strings apart, so that looking one up by `&str` allocates nothing.
    strings: FxHashMap<Arc<str>, u32>,
    ids: FxHashMap<ValueKey, u32>,
    values: Vec<Entry>,
}

impl Default for Interner {
    fn default() -> Self {
        let mut interner = Interner {
            strings: FxHashMap::default(),
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
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        self.values.push(Entry::Other(value.clone()));
        self.ids.insert(key, id);
        id
    }

    /// Interns a string without building a JSON value first (the hot path of string-kv).
    pub fn intern_str(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.strings.get(text) {
            return id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        let shared: Arc<str> = Arc::from(text);
        self.values.push(Entry::Str(shared.clone()));
        self.strings.insert(shared, id);
        id
    }

    /// The value behind an id.
    pub fn value(&self, id: u32) -> Value {
        match &self.values[id as usize] {
            Entry::Str(text) => Value::String(text.to_string()),
            Entry::Other(value) => value.clone(),
        }
    }

    /// The text behind an id, when the value is a string.
    pub fn text(&self, id: u32) -> Option<&str> {
        match &self.values[id as usize] {
            Entry::Str(text) => Some(text),
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
}
