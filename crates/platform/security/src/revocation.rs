//! Revocation: an access token lives 15 minutes, but a logout, a detected refresh-token reuse,
//! a deactivation or a change of password or roles must end it now, on every service and
//! every instance.
//!
//! The auth service records each revocation (a session, or every token a user was issued
//! before an instant) and publishes the recent ones at `GET /revocations?since=…`. Every
//! process keeps one [`Revocations`] list, refreshed from there every
//! [`POLL_INTERVAL`] — in process when auth runs in the same process, over HTTP through the
//! mesh otherwise; with Redis or without — and every [`Verifier`](crate::Verifier) checks a
//! token against it after its signature. A list lasts no longer than the tokens it could
//! refuse; when the auth service cannot be reached, the list keeps what it has.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::principal::Principal;

/// How often a process asks for new revocations: well inside the one second in which a
/// revocation must take effect everywhere.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How far back each poll reaches before the previous answer's time: revocations committed
/// late by a slow transaction or another auth instance are still seen.
pub const OVERLAP: Duration = Duration::from_secs(10);

/// Where the auth service publishes revocations.
pub const PATH: &str = "/revocations";

/// What is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revoked {
    /// Every token of one session (a sign-in): a logout or a reused refresh token.
    Session { session: Uuid },
    /// Every token a user was issued before `before`: a deactivation, a new password, new
    /// roles or scope.
    User {
        user: Uuid,
        #[serde(with = "time::serde::rfc3339")]
        #[schema(value_type = String, format = DateTime)]
        before: OffsetDateTime,
    },
}

/// One revocation, with when it can be forgotten (every token it refuses has expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revocation {
    #[serde(flatten)]
    pub revoked: Revoked,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub until: OffsetDateTime,
}

/// The answer of `GET /revocations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevocationList {
    /// The auth service's time: ask for what came since then (minus [`OVERLAP`]) next.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub now: OffsetDateTime,
    pub items: Vec<Revocation>,
}

/// Where revocations come from.
pub trait RevocationSource: Send + Sync {
    /// Revocations recorded at or after `since`.
    fn fetch(&self, since: OffsetDateTime) -> BoxFuture<'_, Result<RevocationList, String>>;
}

/// The auth service's revocations, in process or over HTTP.
pub struct UpstreamRevocations(pub medcov_mesh::Upstream);

impl RevocationSource for UpstreamRevocations {
    fn fetch(&self, since: OffsetDateTime) -> BoxFuture<'_, Result<RevocationList, String>> {
        Box::pin(async move {
            let since = since.format(&time::format_description::well_known::Rfc3339).map_err(|e| e.to_string())?;
            let target = format!("{PATH}?since={}", since.replace('+', "%2B").replace(':', "%3A"));
            let request =
                axum::extract::Request::get(&target).body(axum::body::Body::empty()).map_err(|e| e.to_string())?;
            let response = self.0.forward(request, &target, 0).await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("the auth service answered {}", response.status()));
            }
            let bytes =
                axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await.map_err(|e| e.to_string())?;
            serde_json::from_slice(&bytes).map_err(|e| format!("the revocation list is unreadable: {e}"))
        })
    }
}

/// The revocations a process knows of, checked by every verifier.
#[derive(Debug, Default)]
pub struct Revocations {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Revoked sessions, each until it can be forgotten.
    sessions: HashMap<Uuid, OffsetDateTime>,
    /// Users whose tokens issued before an instant are refused: (that instant, until).
    users: HashMap<Uuid, (OffsetDateTime, OffsetDateTime)>,
    /// When the list was last brought up to date, by the source's clock.
    synced: Option<OffsetDateTime>,
}

impl Revocations {
    /// Adds revocations (repeats change nothing) and forgets those past their `until`.
    pub fn apply(&self, items: &[Revocation]) {
        let now = OffsetDateTime::now_utc();
        let mut state = self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        for item in items {
            match item.revoked {
                Revoked::Session { session } => {
                    state.sessions.insert(session, item.until);
                }
                Revoked::User { user, before } => {
                    let entry = state.users.entry(user).or_insert((before, item.until));
                    *entry = (entry.0.max(before), entry.1.max(item.until));
                }
            }
        }
        state.sessions.retain(|_, until| *until > now);
        state.users.retain(|_, (_, until)| *until > now);
    }

    /// Why `principal`'s token is revoked, if it is. The token's issue time is its id's
    /// (a UUIDv7, to the millisecond).
    pub fn refuses(&self, principal: &Principal) -> Option<&'static str> {
        let state = self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.sessions.contains_key(&principal.session) {
            return Some("the session has ended");
        }
        let (before, _) = state.users.get(&principal.id)?;
        let issued = issued_at(principal.token)?;
        (issued < *before).then_some("the account has changed since this token was issued; sign in again")
    }

    /// Brings the list up to date from `source`, once.
    pub async fn sync(&self, source: &dyn RevocationSource) -> Result<(), String> {
        let since = {
            let state = self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            state.synced.map(|at| at - OVERLAP).unwrap_or(OffsetDateTime::UNIX_EPOCH)
        };
        let list = source.fetch(since).await?;
        self.apply(&list.items);
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner()).synced = Some(list.now);
        Ok(())
    }

    /// Syncs every [`POLL_INTERVAL`] until `stop`. A failure is logged when it starts and when
    /// it ends, not on every poll.
    pub async fn keep_in_sync(&self, source: &dyn RevocationSource, every: Duration, stop: CancellationToken) {
        let mut failing = false;
        loop {
            match self.sync(source).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("revocations are received again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "cannot fetch revocations from the auth service; the known ones still apply");
                }
                Err(_) => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}

/// When a token was issued, from its id (a UUIDv7 carries its creation time in milliseconds).
fn issued_at(token: Uuid) -> Option<OffsetDateTime> {
    let (seconds, nanos) = token.get_timestamp()?.to_unix();
    OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).ok()?)
        .ok()
        .map(|t| t + time::Duration::nanoseconds(i64::from(nanos)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::principal::{PrincipalKind, Scope};

    fn principal(user: Uuid, session: Uuid, token: Uuid) -> Principal {
        Principal {
            id: user,
            kind: PrincipalKind::User,
            roles: BTreeSet::new(),
            scope: Scope::Platform,
            session,
            token,
        }
    }

    #[test]
    fn a_revoked_session_or_an_older_token_of_a_revoked_user_is_refused() {
        let list = Revocations::default();
        let (user, session, other_session) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let old_token = Uuid::now_v7();
        std::thread::sleep(Duration::from_millis(3));
        let now = OffsetDateTime::now_utc();
        let until = now + time::Duration::minutes(16);
        assert_eq!(list.refuses(&principal(user, session, old_token)), None);

        list.apply(&[Revocation { revoked: Revoked::Session { session }, at: now, until }]);
        assert!(list.refuses(&principal(user, session, old_token)).is_some());
        assert_eq!(list.refuses(&principal(user, other_session, old_token)), None, "other sessions live on");

        list.apply(&[Revocation { revoked: Revoked::User { user, before: now }, at: now, until }]);
        assert!(list.refuses(&principal(user, other_session, old_token)).is_some(), "issued before: refused");
        std::thread::sleep(Duration::from_millis(3));
        let new_token = Uuid::now_v7();
        assert_eq!(list.refuses(&principal(user, other_session, new_token)), None, "signed in again: fine");
        assert_eq!(list.refuses(&principal(Uuid::now_v7(), Uuid::now_v7(), old_token)), None);
    }

    #[test]
    fn revocations_are_forgotten_once_their_tokens_have_expired() {
        let list = Revocations::default();
        let past = OffsetDateTime::now_utc() - time::Duration::minutes(20);
        let session = Uuid::now_v7();
        list.apply(&[Revocation { revoked: Revoked::Session { session }, at: past, until: past }]);
        assert_eq!(list.refuses(&principal(Uuid::now_v7(), session, Uuid::now_v7())), None);
    }

    #[test]
    fn the_wire_form_names_what_is_revoked() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let item = Revocation { revoked: Revoked::Session { session: Uuid::nil() }, at, until: at };
        let text = serde_json::to_value(item).unwrap();
        assert_eq!(text["kind"], "session");
        assert_eq!(serde_json::from_value::<Revocation>(text).unwrap(), item);
    }
}
