//! [`Memo`]: values that never change once written (a plan version's rules, a time zone),
//! kept in process after their first read. Nothing in a memo is ever invalidated, so it may
//! hold only what no write can change: then no instance can hold a stale copy, and a lookup
//! costs no decoding and no round trip.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

/// Entries one memo keeps, at most; past it the memo starts again. What is memoised (plan
/// versions, insurers, hospitals) numbers in the hundreds or thousands.
pub const MOST: usize = 4096;

/// A bounded map of values that never change.
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
