//! What never changes once written, kept in process after its first read: the rules of a plan
//! version (a change is written as a new version) and an insurer's time zone (an insurer is
//! never updated). Nothing here is ever invalidated, so no instance can hold a stale copy, and
//! a lookup costs no decoding and no round trip; the hot paths (eligibility) read them here.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use crate::domain::plan::PlanRules;

/// Entries one map keeps, at most; past it the map starts again. Plan versions and insurers
/// number in the hundreds.
const MOST: usize = 4096;

/// A map of values that never change.
#[derive(Debug)]
pub struct Memo<K, V> {
    entries: RwLock<HashMap<K, V>>,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Memo { entries: RwLock::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    pub fn get(&self, key: &K) -> Option<V> {
        self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).cloned()
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MOST && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, value);
    }
}

/// The service's memos.
#[derive(Debug, Default)]
pub struct Known {
    /// A plan version's rules, by version id.
    pub rules: Memo<Uuid, Arc<PlanRules>>,
    /// An insurer's time zone, by insurer id.
    pub zones: Memo<Uuid, Arc<str>>,
    /// An insurer's time zone, by insurer code (the prefix of its member numbers).
    pub zones_by_code: Memo<String, Arc<str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memo_keeps_what_it_is_given_and_stays_bounded() {
        let memo: Memo<usize, usize> = Memo::default();
        assert_eq!(memo.get(&1), None);
        memo.insert(1, 10);
        assert_eq!(memo.get(&1), Some(10));
        for k in 0..MOST * 2 {
            memo.insert(k, k);
        }
        let held = memo.entries.read().unwrap().len();
        assert!(held <= MOST, "{held} entries");
        assert_eq!(memo.get(&(MOST * 2 - 1)), Some(MOST * 2 - 1), "the last one given is kept");
    }
}
