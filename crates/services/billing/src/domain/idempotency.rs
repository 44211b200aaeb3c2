//! Idempotency-Keys (IETF draft semantics) for requests that move money: the first request
//! with a key takes it and runs; a repeat of the same request returns the first result once it
//! is done; a repeat while it still runs is 409; another request under the key is 422.
//!
//! A key held longer than [`ABANDONED`] (its request crashed) may be taken again; the money
//! tables' own unique keys still stop a second movement.

use medcov_domain::{Rejection, TextEnum};
use time::{Duration, OffsetDateTime};

/// How long a key may be held before its request counts as crashed.
pub const ABANDONED: Duration = Duration::seconds(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum KeyState {
    /// Its request runs (or crashed).
    InProgress,
    /// Its request moved the money.
    Done,
}

impl TextEnum for KeyState {}

/// A key as held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldKey {
    /// The digest of the request that took it.
    pub request_hash: String,
    pub state: KeyState,
    pub started_at: OffsetDateTime,
}

/// What a request under a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Run: the key is new, hold it.
    Hold,
    /// Run: the key's request crashed, take it over.
    Retake,
    /// The same request already ran: answer with its result.
    Replay,
}

/// The answer while a request under the key still runs.
pub fn still_running() -> Rejection {
    Rejection::conflict("a request with this Idempotency-Key is still running; retry in a moment")
}

/// What a request with digest `hash` does under a key found `held` (or not) at `now`.
pub fn take(held: Option<&HeldKey>, hash: &str, now: OffsetDateTime) -> Result<Take, Rejection> {
    match held {
        None => Ok(Take::Hold),
        Some(key) if key.request_hash != hash => {
            Err(Rejection::field("Idempotency-Key", "was already used for a different request"))
        }
        Some(key) if key.state == KeyState::Done => Ok(Take::Replay),
        Some(key) if now - key.started_at < ABANDONED => Err(still_running()),
        Some(_) => Ok(Take::Retake),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn what_a_key_allows() {
        let now = datetime!(2026-11-26 10:00 UTC);
        let key = |hash: &str, state, seconds_ago: i64| HeldKey {
            request_hash: hash.into(),
            state,
            started_at: now - Duration::seconds(seconds_ago),
        };
        let different = Err(Rejection::field("Idempotency-Key", "was already used for a different request"));
        for (held, expected) in [
            (None, Ok(Take::Hold)),
            (Some(key("h", KeyState::Done, 5)), Ok(Take::Replay)),
            (Some(key("h", KeyState::Done, 600)), Ok(Take::Replay)),
            (Some(key("h", KeyState::InProgress, 5)), Err(still_running())),
            (Some(key("h", KeyState::InProgress, 59)), Err(still_running())),
            (Some(key("h", KeyState::InProgress, 60)), Ok(Take::Retake)),
            (Some(key("other", KeyState::Done, 5)), different.clone()),
            (Some(key("other", KeyState::InProgress, 5)), different),
        ] {
            assert_eq!(take(held.as_ref(), "h", now), expected, "{held:?}");
        }
        assert_eq!(KeyState::InProgress.as_str(), "in_progress");
    }
}
