//! Range digests for anti-entropy.
//!
//! The key space of each quorum namespace is cut into [`LEAVES`] ranges of key hashes
//! (as Cassandra and Riak cut theirs into token ranges). A range's digest is the wrapping
//! sum of `fnv(key ‖ object)` over its keys: order-free, so the applier keeps it current in
//! O(1) per write (subtract the old item, add the new) instead of rescanning. Two replicas
//! exchange their digests, and only the ranges whose digests differ have their keys sent.

use std::collections::BTreeMap;

use super::object::fnv;
use crate::storage::keys::NamespaceId;

/// Ranges per namespace.
pub const LEAVES: usize = 256;

/// The range of a key.
pub fn leaf(key: &[u8]) -> usize {
    (fnv(&[key]) >> 56) as usize % LEAVES
}

/// The digest contribution of one stored item.
pub fn item(key: &[u8], encoded_object: &[u8]) -> u64 {
    fnv(&[key, encoded_object])
}

/// The digests of every quorum namespace held here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Digests {
    namespaces: BTreeMap<NamespaceId, Vec<u64>>,
}

impl Digests {
    /// No data.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `key` of `ns` changed from `old` (its item digest, if it existed) to
    /// `new` (if it still exists).
    pub fn change(&mut self, ns: NamespaceId, key: &[u8], old: Option<u64>, new: Option<u64>) {
        let leaves = self.namespaces.entry(ns).or_insert_with(|| vec![0; LEAVES]);
        let l = &mut leaves[leaf(key)];
        if let Some(o) = old {
            *l = l.wrapping_sub(o);
        }
        if let Some(n) = new {
            *l = l.wrapping_add(n);
        }
    }

    /// The digests of `ns` (all zero when it holds nothing).
    pub fn of(&self, ns: NamespaceId) -> Vec<u64> {
        self.namespaces
            .get(&ns)
            .cloned()
            .unwrap_or_else(|| vec![0; LEAVES])
    }

    /// The namespaces holding data.
    pub fn namespaces(&self) -> impl Iterator<Item = NamespaceId> + '_ {
        self.namespaces.keys().copied()
    }

    /// Forgets a namespace.
    pub fn remove(&mut self, ns: NamespaceId) {
        self.namespaces.remove(&ns);
    }
}

/// The ranges whose digests differ.
pub fn diff(ours: &[u64], theirs: &[u64]) -> Vec<usize> {
    (0..LEAVES)
        .filter(|&i| ours.get(i).copied().unwrap_or(0) != theirs.get(i).copied().unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn build(items: &BTreeMap<Vec<u8>, Vec<u8>>) -> Digests {
        let mut d = Digests::new();
        for (k, v) in items {
            d.change(1, k, None, Some(item(k, v)));
        }
        d
    }

    proptest! {
        /// The ranges found differing are exactly the ranges holding a key whose item
        /// differs between the two replicas (barring a 64-bit hash collision), whatever
        /// order the changes came in.
        #[test]
        fn diff_finds_exactly_the_differing_ranges(
            common in proptest::collection::btree_map(proptest::collection::vec(any::<u8>(), 1..6), proptest::collection::vec(any::<u8>(), 0..4), 0..60),
            ours_only in proptest::collection::btree_map(proptest::collection::vec(any::<u8>(), 1..6), proptest::collection::vec(any::<u8>(), 0..4), 0..5),
            changed in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        ) {
            let mut a = common.clone();
            let mut b = common.clone();
            for (k, v) in &ours_only {
                if !b.contains_key(k) {
                    a.insert(k.clone(), v.clone());
                }
            }
            if !common.is_empty() {
                for i in changed {
                    let k = i.get(&common.keys().cloned().collect::<Vec<_>>()).clone();
                    b.get_mut(&k).expect("key").push(0xAA);
                }
            }
            let expected: BTreeSet<usize> = a.keys().chain(b.keys())
                .filter(|k| a.get(*k) != b.get(*k))
                .map(|k| leaf(k))
                .collect();
            let found: BTreeSet<usize> = diff(&build(&a).of(1), &build(&b).of(1)).into_iter().collect();
            prop_assert_eq!(found, expected);
        }

        /// Incremental changes give the digest of a rebuild.
        #[test]
        fn incremental_equals_rebuilt(
            ops in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 1..3), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..3))), 0..50),
        ) {
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut d = Digests::new();
            for (k, v) in ops {
                let old = model.get(&k).map(|o| item(&k, o));
                match v {
                    Some(v) => { d.change(1, &k, old, Some(item(&k, &v))); model.insert(k, v); }
                    None => { d.change(1, &k, old, None); model.remove(&k); }
                }
            }
            prop_assert_eq!(d.of(1), build(&model).of(1));
        }
    }
}
