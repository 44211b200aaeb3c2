//! Locking an account after repeated failed logins.

use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub threshold: u32,
    pub duration: Duration,
}

/// An account's failure record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    pub count: u32,
    pub locked_until: Option<OffsetDateTime>,
}

impl Failures {
    pub fn is_locked(&self, now: OffsetDateTime) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    /// The record after one more failure: reaching the threshold locks the account and
    /// starts the count again.
    pub fn after_failure(self, policy: LockoutPolicy, now: OffsetDateTime) -> Failures {
        // A lock that has run out starts a fresh count.
        let count = if self.locked_until.is_some_and(|until| until <= now) { 1 } else { self.count + 1 };
        if count >= policy.threshold {
            Failures { count: 0, locked_until: Some(now + policy.duration) }
        } else {
            Failures { count, locked_until: self.locked_until.filter(|until| *until > now) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_failure_locks_for_fifteen_minutes() {
        let policy = LockoutPolicy { threshold: 5, duration: Duration::minutes(15) };
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut record = Failures { count: 0, locked_until: None };
        for expected in 1..=4 {
            record = record.after_failure(policy, now);
            assert_eq!(record.count, expected);
            assert!(!record.is_locked(now));
        }
        record = record.after_failure(policy, now);
        assert!(record.is_locked(now));
        assert!(record.is_locked(now + Duration::minutes(14)));
        assert!(!record.is_locked(now + Duration::minutes(15)));
        // After the lock runs out, counting starts again.
        let later = now + Duration::minutes(16);
        let record = record.after_failure(policy, later);
        assert_eq!((record.count, record.is_locked(later)), (1, false));
    }
}
