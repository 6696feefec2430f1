//! Order-preserving encodings of stored keys.
//!
//! A data key is `namespace id (u32, big-endian) ‖ escaped user key ‖ 0x00 0x01 ‖ !revision
//! (u64, big-endian)`. The escape replaces each `0x00` byte of the user key with `0x00 0xFF`, so
//! the terminator `0x00 0x01` sorts below any continuation of the key: all versions of a key
//! are contiguous, keys sort in user-key byte order, and within a key the inverted revision
//! puts the newest version first. A read of the latest version is one seek.

use super::{Cf, StorageError};

/// A namespace's numeric id: assigned at creation, never reused, so a dropped namespace's
/// leftovers can never surface in a new one.
pub type NamespaceId = u32;

/// A position in a namespace's order of writes (the `revision` of the public `Version`).
pub type Revision = u64;

const TERMINATOR: [u8; 2] = [0x00, 0x01];

fn escape_into(out: &mut Vec<u8>, key: &[u8]) {
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
}

/// The prefix shared by every version of `key`: `ns ‖ escaped key ‖ terminator`.
pub fn key_prefix(ns: NamespaceId, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len() + 2 + 8);
    out.extend_from_slice(&ns.to_be_bytes());
    escape_into(&mut out, key);
    out.extend_from_slice(&TERMINATOR);
    out
}

/// The stored key of `key` at `revision`.
pub fn data_key(ns: NamespaceId, key: &[u8], revision: Revision) -> Vec<u8> {
    let mut out = key_prefix(ns, key);
    out.extend_from_slice(&(!revision).to_be_bytes());
    out
}

/// The first stored key at or after every version of user keys `>= key` in `ns`: where a scan
/// starting at `key` seeks.
pub fn scan_start(ns: NamespaceId, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len());
    out.extend_from_slice(&ns.to_be_bytes());
    escape_into(&mut out, key);
    out
}

/// The first stored key after every version of `key` (and before any greater user key).
pub fn after_key(ns: NamespaceId, key: &[u8]) -> Vec<u8> {
    let mut out = scan_start(ns, key);
    out.extend_from_slice(&[0x00, 0x02]);
    out
}

/// The largest namespace id that may be assigned; ids stop below `u32::MAX` so that every
/// namespace's key range has an exclusive upper bound.
pub const MAX_NAMESPACE_ID: NamespaceId = NamespaceId::MAX - 1;

/// The bounds `[start, end)` of every stored key of namespace `ns` (at most
/// [`MAX_NAMESPACE_ID`]).
pub fn namespace_range(ns: NamespaceId) -> (Vec<u8>, Vec<u8>) {
    debug_assert!(ns <= MAX_NAMESPACE_ID);
    (ns.to_be_bytes().to_vec(), (ns + 1).to_be_bytes().to_vec())
}

/// Splits a stored data key into its user key and revision.
pub fn decode_data_key(stored: &[u8]) -> Result<(NamespaceId, Vec<u8>, Revision), StorageError> {
    let corrupt = |reason: &str| StorageError::Corrupt {
        cf: Cf::Data,
        reason: format!("{reason} in key {stored:02x?}"),
    };
    if stored.len() < 4 + 2 + 8 {
        return Err(corrupt("short data key"));
    }
    let ns = NamespaceId::from_be_bytes(stored[..4].try_into().expect("length checked"));
    let (body, rev) = stored[4..].split_at(stored.len() - 4 - 8);
    let revision = !Revision::from_be_bytes(rev.try_into().expect("length checked"));
    let mut key = Vec::with_capacity(body.len());
    let mut i = 0;
    loop {
        match body.get(i..i + 2) {
            Some([0x00, 0xFF]) => {
                key.push(0);
                i += 2;
            }
            Some([0x00, 0x01]) if i + 2 == body.len() => break,
            Some([0x00, _]) | None => return Err(corrupt("bad escape")),
            Some([b, _]) => {
                key.push(*b);
                i += 1;
            }
            Some(_) => unreachable!("a two-byte slice pattern covers every case"),
        }
    }
    Ok((ns, key, revision))
}

/// A stored value: a tag byte, then the user value. A tombstone marks a delete, so that a
/// read at an older revision still sees the value before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredValue {
    /// The key was set to this value.
    Value(Vec<u8>),
    /// The key was deleted.
    Tombstone,
}

const TAG_VALUE: u8 = 1;
const TAG_TOMBSTONE: u8 = 2;

impl StoredValue {
    /// Encodes the value with its tag.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            StoredValue::Value(v) => {
                let mut out = Vec::with_capacity(1 + v.len());
                out.push(TAG_VALUE);
                out.extend_from_slice(v);
                out
            }
            StoredValue::Tombstone => vec![TAG_TOMBSTONE],
        }
    }

    /// Whether `bytes`, written by [`StoredValue::encode`], are a tombstone: without copying
    /// the value out.
    pub fn is_tombstone(bytes: &[u8]) -> bool {
        bytes == [TAG_TOMBSTONE]
    }

    /// Decodes a value written by [`StoredValue::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        match bytes.split_first() {
            Some((&TAG_VALUE, rest)) => Ok(StoredValue::Value(rest.to_vec())),
            Some((&TAG_TOMBSTONE, [])) => Ok(StoredValue::Tombstone),
            _ => Err(StorageError::Corrupt {
                cf: Cf::Data,
                reason: format!("bad value tag {:?}", bytes.first()),
            }),
        }
    }
}

/// Meta key of the namespace catalog entry for `name`.
pub fn catalog_key(name: &str) -> Vec<u8> {
    let mut out = b"ns/".to_vec();
    out.extend_from_slice(name.as_bytes());
    out
}

/// The bounds of every catalog entry.
pub fn catalog_range() -> (Vec<u8>, Vec<u8>) {
    (b"ns/".to_vec(), b"ns0".to_vec())
}

/// Meta key holding the next namespace id to assign.
pub const NEXT_NAMESPACE_ID: &[u8] = b"next_ns_id";

/// Meta key holding the widest history (`--retain-revisions`) under which any stored version
/// may have been written, stamped with the newest revision applied when it was written: see
/// [`encode_widest_retain`].
pub const WIDEST_RETAIN: &[u8] = b"widest_retain";

/// The value of [`WIDEST_RETAIN`]: `widest (u64 BE) ‖ stamp (u64 BE)`.
pub fn encode_widest_retain(widest: u64, stamp: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&widest.to_be_bytes());
    out.extend_from_slice(&stamp.to_be_bytes());
    out
}

/// Reads a value written by [`encode_widest_retain`].
pub fn decode_widest_retain(b: &[u8]) -> Option<(u64, u64)> {
    let widest = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
    let stamp = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
    (b.len() == 16).then_some((widest, stamp))
}

/// Meta key holding namespace `ns`'s latest revision.
pub fn revision_key(ns: NamespaceId) -> Vec<u8> {
    let mut out = b"rev/".to_vec();
    out.extend_from_slice(&ns.to_be_bytes());
    out
}

/// Dedup-table key of request `(client_id, seq)`.
pub fn dedup_key(client_id: u64, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&client_id.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn data_key_round_trips(ns in any::<u32>(), key in proptest::collection::vec(any::<u8>(), 0..40), rev in any::<u64>()) {
            let stored = data_key(ns, &key, rev);
            prop_assert_eq!(decode_data_key(&stored).expect("decodes"), (ns, key, rev));
        }

        #[test]
        fn order_is_key_then_newest_first(
            a in proptest::collection::vec(0u8..3, 0..6),
            b in proptest::collection::vec(0u8..3, 0..6),
            ra in any::<u64>(),
            rb in any::<u64>(),
        ) {
            let (ka, kb) = (data_key(7, &a, ra), data_key(7, &b, rb));
            let expected = a.cmp(&b).then(rb.cmp(&ra));
            prop_assert_eq!(ka.cmp(&kb), expected);
            // Every version of a sorts before after_key(a), and after_key(a) before any b > a.
            prop_assert!(ka < after_key(7, &a));
            if b > a {
                prop_assert!(after_key(7, &a) <= kb);
            }
            prop_assert!(scan_start(7, &a) <= ka);
        }

        #[test]
        fn namespaces_do_not_interleave(ns in 0u32..MAX_NAMESPACE_ID, key in proptest::collection::vec(any::<u8>(), 0..10), rev in any::<u64>()) {
            let (lo, hi) = namespace_range(ns);
            let k = data_key(ns, &key, rev);
            prop_assert!(lo <= k && k < hi);
            let (lo2, _) = namespace_range(ns + 1);
            prop_assert!(k < lo2);
        }

        #[test]
        fn stored_value_round_trips(v in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))) {
            let sv = match v { Some(v) => StoredValue::Value(v), None => StoredValue::Tombstone };
            prop_assert_eq!(StoredValue::is_tombstone(&sv.encode()), sv == StoredValue::Tombstone);
            prop_assert_eq!(StoredValue::decode(&sv.encode()).expect("decodes"), sv);
        }
    }
}
