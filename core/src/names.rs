//! The names an event uses (its fields and its types), packed into words for the fast readers.
//!
//! A name of up to eight bytes packs into one `u64`, so matching a name read from a file
//! against the names an event uses is one comparison each instead of a string comparison.
//! Longer or empty names pack to 0, which none of these names packs to. The EDN and the JSON
//! Lines fast paths both match this way.

/// Packs `name` as the module says: byte `i` of the name is byte `i` of the word, from the
/// least significant end.
pub(crate) const fn pack(name: &[u8]) -> u64 {
    if name.is_empty() || name.len() > 8 {
        return 0;
    }
    let mut word = 0u64;
    let mut i = 0;
    while i < name.len() {
        word |= (name[i] as u64) << (8 * i);
        i += 1;
    }
    word
}

/// `bytes[start..end]` packed as [`pack`] packs it: one load where eight bytes are left.
#[inline]
pub(crate) fn pack_span(bytes: &[u8], start: usize, end: usize) -> u64 {
    let len = end - start;
    if len == 0 || len > 8 {
        return 0;
    }
    match bytes.get(start..start + 8) {
        Some(eight) => word(eight) & (u64::MAX >> (64 - 8 * len)),
        None => pack(&bytes[start..end]),
    }
}

/// Eight bytes as a word, first byte least significant.
#[inline]
pub(crate) fn word(eight: &[u8]) -> u64 {
    u64::from_le_bytes(eight.try_into().expect("eight bytes"))
}

pub(crate) const PROCESS: u64 = pack(b"process");
pub(crate) const TYPE: u64 = pack(b"type");
pub(crate) const F: u64 = pack(b"f");
pub(crate) const VALUE: u64 = pack(b"value");
pub(crate) const KEY: u64 = pack(b"key");
pub(crate) const ERROR: u64 = pack(b"error");
pub(crate) const TIME: u64 = pack(b"time");
pub(crate) const INDEX: u64 = pack(b"index");
pub(crate) const INVOKE: u64 = pack(b"invoke");
pub(crate) const OK: u64 = pack(b"ok");
pub(crate) const FAIL: u64 = pack(b"fail");
pub(crate) const INFO: u64 = pack(b"info");
pub(crate) const NEMESIS: u64 = pack(b"nemesis");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_packs_as_its_bytes_do_wherever_it_lies() {
        let text = b"\"index\":1,\"process\":2,\"f\":\"a\"";
        assert_eq!(pack_span(text, 1, 6), INDEX);
        assert_eq!(pack_span(text, 11, 18), PROCESS);
        // Fewer than eight bytes left: packed byte by byte.
        assert_eq!(pack_span(text, 27, 28), pack(b"a"));
        assert_eq!(pack_span(text, 3, 3), 0);
        assert_eq!(pack(b"processes"), 0);
        assert_ne!(pack(b"in"), pack(b"index"));
    }
}
