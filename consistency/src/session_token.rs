//! Session tokens: the client-held state of a session (Terry et al., "Session Guarantees for
//! Weakly Consistent Replicated Data", PDIS 1994).
//!
//! Servers keep no session state. A token records, per namespace, the newest revision the
//! session has read and the newest it has written; a replica serving the session must have
//! applied at least the revisions the requested guarantees need (read-your-writes: the write
//! revision; monotonic reads: the read revision; monotonic writes and writes-follow-reads are
//! met by the primary ordering every write after every earlier one). Tokens merge by taking
//! the greater revision of each entry, so merging is commutative, associative and idempotent
//! (a join-semilattice), and a client may merge responses in any order.
//!
//! Each entry also carries the namespace's incarnation (its id at creation): a namespace that
//! was dropped and created again under the same name starts a new incarnation, and entries of
//! the old one are ignored rather than waited for.
//!
//! Quorum (leaderless) namespaces have no single order of writes: for them an entry also keeps
//! two vectors over the replicas' update streams (Bayou's read and write vectors): how far the
//! session has read and written from each origin replica. A replica serves the session once
//! its own applied vector covers what the guarantees asked for need.
//!
//! Binary form (version 1): `0x01`, then per entry `varint(name length) ‖ name ‖
//! varint(incarnation) ‖ varint(read revision) ‖ varint(write revision)`, entries in name
//! order. Version 2 (written when some entry has vectors): `0x02`, then per entry the version
//! 1 fields followed by the read vector and the write vector, each `varint(count)` then
//! `varint(replica) ‖ varint(counter)` per non-zero entry in replica order. Text form: the
//! binary form in unpadded URL-safe base64, fit for a cookie.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;

use crate::clock::VectorClock;

/// The revision counters of one namespace in a session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceProgress {
    /// The namespace's incarnation (its numeric id when created).
    pub incarnation: u64,
    /// The newest revision the session has read.
    pub read: u64,
    /// The newest revision the session has written.
    pub write: u64,
    /// Quorum namespaces: per origin replica, how far into its update stream the session has
    /// read.
    pub read_vector: VectorClock,
    /// Quorum namespaces: per origin replica, how far into its update stream the session has
    /// written.
    pub write_vector: VectorClock,
}

impl NamespaceProgress {
    fn empty(incarnation: u64) -> Self {
        Self {
            incarnation,
            ..Self::default()
        }
    }
}

/// A session token: progress per namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionToken {
    entries: BTreeMap<String, NamespaceProgress>,
}

/// Why bytes or text are not a session token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The token's format version is not one this build reads.
    #[error("unknown session token version {0}")]
    UnknownVersion(u8),
    /// The token ends early or has a malformed entry.
    #[error("malformed session token: {0}")]
    Malformed(&'static str),
}

const VERSION: u8 = 1;
const VERSION_VECTORS: u8 = 2;
/// Vector entries past this many are refused when decoding.
pub const MAX_VECTOR_ENTRIES: usize = 1024;
/// Entries past this many are refused when decoding, so a hostile token cannot make a server
/// allocate without bound.
pub const MAX_ENTRIES: usize = 4096;

impl SessionToken {
    /// An empty token: a new session.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the token records nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The progress recorded for `namespace` in its incarnation `incarnation`; zero when the
    /// token has none or holds an older incarnation.
    pub fn progress(&self, namespace: &str, incarnation: u64) -> NamespaceProgress {
        match self.entries.get(namespace) {
            Some(p) if p.incarnation == incarnation => p.clone(),
            _ => NamespaceProgress::empty(incarnation),
        }
    }

    /// Records a read of a quorum namespace that saw everything in `seen`.
    pub fn observe_vector_read(&mut self, namespace: &str, incarnation: u64, seen: &VectorClock) {
        if let Some(e) = self.entry(namespace, incarnation) {
            e.read_vector.merge(seen);
        }
    }

    /// Records a write to a quorum namespace at the positions `written` (the write's own
    /// origin and counter). A write is also read by its writer.
    pub fn observe_vector_write(
        &mut self,
        namespace: &str,
        incarnation: u64,
        written: &VectorClock,
    ) {
        if let Some(e) = self.entry(namespace, incarnation) {
            e.write_vector.merge(written);
            e.read_vector.merge(written);
        }
    }

    /// Records a read of `namespace` at `revision`.
    pub fn observe_read(&mut self, namespace: &str, incarnation: u64, revision: u64) {
        if let Some(e) = self.entry(namespace, incarnation) {
            e.read = e.read.max(revision);
        }
    }

    /// Records a write of `namespace` at `revision`. A write is also read by its writer, so
    /// the read revision advances too.
    pub fn observe_write(&mut self, namespace: &str, incarnation: u64, revision: u64) {
        if let Some(e) = self.entry(namespace, incarnation) {
            e.write = e.write.max(revision);
            e.read = e.read.max(revision);
        }
    }

    /// The entry of `namespace` in `incarnation`: a newer incarnation replaces an older one,
    /// and progress in an older one than recorded is dropped (`None`).
    fn entry(&mut self, namespace: &str, incarnation: u64) -> Option<&mut NamespaceProgress> {
        let e = self
            .entries
            .entry(namespace.to_string())
            .or_insert_with(|| NamespaceProgress::empty(incarnation));
        if incarnation > e.incarnation {
            *e = NamespaceProgress::empty(incarnation);
        }
        (e.incarnation == incarnation).then_some(e)
    }

    /// Merges `other` into `self`: the join of the two tokens.
    pub fn merge(&mut self, other: &SessionToken) {
        for (name, p) in &other.entries {
            let e = self.entries.entry(name.clone()).or_default();
            if p.incarnation > e.incarnation {
                *e = p.clone();
            } else if p.incarnation == e.incarnation {
                e.read = e.read.max(p.read);
                e.write = e.write.max(p.write);
                e.read_vector.merge(&p.read_vector);
                e.write_vector.merge(&p.write_vector);
            }
        }
    }

    /// The binary form.
    pub fn encode(&self) -> Vec<u8> {
        if self.entries.is_empty() {
            return Vec::new();
        }
        let vectors = self
            .entries
            .values()
            .any(|p| !p.read_vector.is_empty() || !p.write_vector.is_empty());
        let mut out = vec![if vectors { VERSION_VECTORS } else { VERSION }];
        for (name, p) in &self.entries {
            put_varint(&mut out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
            put_varint(&mut out, p.incarnation);
            put_varint(&mut out, p.read);
            put_varint(&mut out, p.write);
            if vectors {
                put_vector(&mut out, &p.read_vector);
                put_vector(&mut out, &p.write_vector);
            }
        }
        out
    }

    /// Reads the binary form; empty bytes are the empty token.
    pub fn decode(bytes: &[u8]) -> Result<Self, TokenError> {
        let Some((&version, mut rest)) = bytes.split_first() else {
            return Ok(Self::new());
        };
        if version != VERSION && version != VERSION_VECTORS {
            return Err(TokenError::UnknownVersion(version));
        }
        let mut entries = BTreeMap::new();
        while !rest.is_empty() {
            if entries.len() >= MAX_ENTRIES {
                return Err(TokenError::Malformed("too many entries"));
            }
            let len = take_varint(&mut rest)? as usize;
            if len > rest.len() {
                return Err(TokenError::Malformed("name runs past the end"));
            }
            let (name, tail) = rest.split_at(len);
            rest = tail;
            let name = std::str::from_utf8(name)
                .map_err(|_| TokenError::Malformed("name is not UTF-8"))?
                .to_string();
            let mut p = NamespaceProgress {
                incarnation: take_varint(&mut rest)?,
                read: take_varint(&mut rest)?,
                write: take_varint(&mut rest)?,
                ..NamespaceProgress::default()
            };
            if version == VERSION_VECTORS {
                p.read_vector = take_vector(&mut rest)?;
                p.write_vector = take_vector(&mut rest)?;
            }
            entries.insert(name, p);
        }
        Ok(Self { entries })
    }
}

fn put_vector(out: &mut Vec<u8>, v: &VectorClock) {
    put_varint(out, v.iter().count() as u64);
    for (r, c) in v.iter() {
        put_varint(out, r);
        put_varint(out, c);
    }
}

fn take_vector(rest: &mut &[u8]) -> Result<VectorClock, TokenError> {
    let n = take_varint(rest)? as usize;
    if n > MAX_VECTOR_ENTRIES {
        return Err(TokenError::Malformed("too many vector entries"));
    }
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        pairs.push((take_varint(rest)?, take_varint(rest)?));
    }
    Ok(VectorClock::from_entries(pairs))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(rest: &mut &[u8]) -> Result<u64, TokenError> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, tail) = rest
            .split_first()
            .ok_or(TokenError::Malformed("varint runs past the end"))?;
        *rest = tail;
        v |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(TokenError::Malformed("varint longer than 64 bits"))
}

impl fmt::Display for SessionToken {
    /// The text form: URL-safe base64 of the binary form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.encode()))
    }
}

impl FromStr for SessionToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim())
            .map_err(|_| TokenError::Malformed("not URL-safe base64"))?;
        Self::decode(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token() -> impl Strategy<Value = SessionToken> {
        proptest::collection::btree_map(
            "[a-c]{1,2}",
            (
                0u64..3,
                any::<u64>(),
                any::<u64>(),
                proptest::collection::vec((1u64..4, 0u64..100), 0..3),
                proptest::collection::vec((1u64..4, 0u64..100), 0..3),
            )
                .prop_map(|(incarnation, read, write, rv, wv)| NamespaceProgress {
                    incarnation,
                    read,
                    write,
                    read_vector: VectorClock::from_entries(rv),
                    write_vector: VectorClock::from_entries(wv),
                }),
            0..4,
        )
        .prop_map(|entries| SessionToken { entries })
    }

    proptest! {
        #[test]
        fn binary_and_text_forms_round_trip(t in token()) {
            prop_assert_eq!(SessionToken::decode(&t.encode()).expect("decodes"), t.clone());
            prop_assert_eq!(t.to_string().parse::<SessionToken>().expect("parses"), t);
        }

        #[test]
        fn merge_is_a_join(a in token(), b in token(), c in token()) {
            let join = |x: &SessionToken, y: &SessionToken| { let mut z = x.clone(); z.merge(y); z };
            prop_assert_eq!(join(&a, &b), join(&b, &a));
            prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
            prop_assert_eq!(join(&a, &a), a);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = SessionToken::decode(&bytes);
        }
    }

    #[test]
    fn a_newer_incarnation_replaces_an_older_one() {
        let mut t = SessionToken::new();
        t.observe_write("ns", 1, 50);
        t.observe_read("ns", 2, 3);
        assert_eq!(
            t.progress("ns", 2),
            NamespaceProgress {
                incarnation: 2,
                read: 3,
                ..NamespaceProgress::default()
            }
        );
        assert_eq!(t.progress("ns", 1).write, 0);
        t.observe_write("ns", 1, 99);
        assert_eq!(t.progress("ns", 2).read, 3);
    }
}
