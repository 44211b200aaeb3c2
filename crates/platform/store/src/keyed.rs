//! Idempotency-Key records, kept in the service's own database and written in the transaction
//! of the effect they answer for: a record exists exactly when its request's effect does, so a
//! client that lost the answer (a dropped connection, a crashed instance, a database that went
//! away during the commit) gets it on a retry under the same key, from any instance.
//!
//! The Idempotency-Key middleware (`medcov_runtime::idempotency`) runs a keyed request inside
//! [`Keyed::scope`]. Within it, and without the service layer knowing:
//!
//! - [`Database::begin_write`] takes the key's lock for the transaction and looks for a record:
//!   on PostgreSQL an advisory transaction lock on the key's hash, which the database releases
//!   at commit, at rollback, or when the holder's session ends (its instance died), so a hold
//!   never outlives its request; on SQLite the write lock every writer takes already orders
//!   them. A request under the key that committed meanwhile ends this one with
//!   [`StoreError::Answered`], and the middleware answers with that record; one still running
//!   past [`LOCK_WAIT`] ends it with [`StoreError::KeyHeld`] (409).
//! - [`Tx::commit`] keeps the transaction open instead of committing it: the middleware writes
//!   the record (request fingerprint and answer) in it once the handler has answered, then
//!   commits. The effect and its answer are stored together or not at all. A request that
//!   fails (5xx) with nothing else committed rolls it back instead: a retry runs again.
//! - A write transaction begun after a kept one commits the kept one first, with a record
//!   that has no answer yet; the last transaction stores the answer in that record as it
//!   commits. So a request of several transactions never leaves an effect without a record:
//!   should it fail (or its instance die) after the first commit, a retry is told it took
//!   effect (409) rather than run it again.
//! - A read on the pool after a kept commit (a handler reading its answer back) runs in the
//!   kept transaction, on its connection ([`crate::pool`]): it sees what the request wrote,
//!   and nothing is committed before the answer is known.
//! - Only a read transaction begun after a kept commit ([`Database::begin_read`], which no
//!   handler does after writing today) commits the kept transaction early, with a record whose
//!   answer follows once known ([`Record::answer`] is `None` meanwhile, and a crash in
//!   between leaves it so: a retry is told 409). The middleware counts those requests
//!   ([`Keyed::answered_after_commit`]).
//! - [`after_commit`] work (cache invalidations) waits for the real commit, so a concurrent
//!   reader cannot cache what is about to change.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use crate::{Database, StoreError, Tx, dispatch, postgres, sqlite};

/// How long a request waits for another one under the same key to finish before it is told
/// 409: long enough for a request that is committing, short of a client's patience.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// How long a record answers repeats of its request.
pub const KEEP: time::Duration = time::Duration::hours(24);

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The digest of the request that made it.
    pub fingerprint: Vec<u8>,
    /// The answer, as the middleware encoded it; `None` until a request that committed before
    /// its answer was known has stored it (or if its instance died first).
    pub answer: Option<Vec<u8>>,
    pub created_at: OffsetDateTime,
}

impl Record {
    fn current(&self, now: OffsetDateTime) -> bool {
        now - self.created_at < KEEP
    }
}

type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One keyed request's key, while it runs.
#[derive(Clone)]
pub struct Keyed(Arc<Inner>);

struct Inner {
    key: String,
    lock: i64,
    fingerprint: Vec<u8>,
    /// A committed-in-name transaction, waiting for the answer; reads on the pool run in it
    /// meanwhile ([`crate::pool`]).
    kept: Kept,
    state: Mutex<State>,
}

/// Where a keyed request's committed-in-name transaction waits.
pub(crate) type Kept = Arc<tokio::sync::Mutex<Option<Tx>>>;

#[derive(Default)]
struct State {
    /// A record (without its answer yet) was committed with an earlier transaction.
    marked: bool,
    /// That was for a read transaction ([`Database::begin_read`]): the answer may be stored
    /// after the last commit (the last resort, counted).
    marked_for_read: bool,
    /// An earlier transaction of the request was committed for real, without the record (one
    /// committed outside [`Database::begin_write`]; a transaction after it carries the record).
    committed: bool,
    /// What another request under the key committed, found by [`Database::begin_write`].
    answered: Option<Record>,
    after_commit: Vec<Work>,
}

tokio::task_local! {
    static CURRENT: Keyed;
}

/// The keyed request this task runs, if any.
pub(crate) fn current() -> Option<Keyed> {
    CURRENT.try_with(Keyed::clone).ok()
}

/// Whether this task runs a keyed request: its writes must be its own transactions (the
/// record is written in them), not shared with other requests'.
pub fn active() -> bool {
    CURRENT.try_with(|_| ()).is_ok()
}

/// Where the keyed request this task runs keeps its committed-in-name transaction, if it runs
/// one.
pub(crate) fn kept() -> Option<Kept> {
    CURRENT.try_with(|keyed| keyed.0.kept.clone()).ok()
}

/// Runs `work` once the keyed request this task runs has committed (at once outside one).
pub async fn after_commit(work: impl Future<Output = ()> + Send + 'static) {
    match current() {
        Some(keyed) => keyed.state().after_commit.push(Box::pin(work)),
        None => work.await,
    }
}

/// The record under `key`, if it is still current.
pub async fn find(db: &Database, key: &str) -> Result<Option<Record>, StoreError> {
    let now = OffsetDateTime::now_utc();
    Ok(dispatch!(db, idempotency::find(key))?.filter(|r| r.current(now)))
}

/// Deletes the records older than [`KEEP`]; how many.
pub async fn purge(db: &Database) -> Result<u64, StoreError> {
    dispatch!(db, idempotency::purge(OffsetDateTime::now_utc() - KEEP))
}

/// A keyed request's answer, as [`Keyed::finish`] keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// Its final word (encoded by the middleware): repeats get it.
    Keep(&'a [u8]),
    /// A refusal that says try again (409, 429…): no record.
    Refused,
    /// A failure (5xx): if it committed anything, a repeat is told so rather than run again.
    Failed,
}

/// How a keyed request ended, for the middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// It committed nothing (a read, or it failed before committing).
    Nothing,
    /// Its effect and its record are committed.
    Committed,
}

impl Keyed {
    /// `key` names the service, the caller and the client's key; `fingerprint` digests the
    /// request (method, target, body).
    pub fn new(key: String, fingerprint: Vec<u8>) -> Keyed {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_ref()[..8]);
        Keyed(Arc::new(Inner {
            key,
            lock: i64::from_be_bytes(first),
            fingerprint,
            kept: Kept::default(),
            state: Mutex::default(),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs the request's handler as this key's request.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        CURRENT.scope(self.clone(), work).await
    }

    /// The record another request under the key committed while this one ran, when
    /// [`Database::begin_write`] found one ([`StoreError::Answered`]).
    pub fn answered(&self) -> Option<Record> {
        self.state().answered.clone()
    }

    /// Whether the request committed its record before its answer was known (a read
    /// transaction after its commit, [`Database::begin_read`]): a crash before [`Keyed::finish`]
    /// stored the answer leaves a record without one, and a retry is told 409 instead of
    /// getting the answer. The last resort, for the middleware to count.
    pub fn answered_after_commit(&self) -> bool {
        self.state().marked_for_read
    }

    /// Ends the request with its `answer`: commits the kept transaction with the record (or
    /// rolls it back, when the request failed with nothing else committed), or adds the answer
    /// to a record committed earlier. Then runs the [`after_commit`] work. An error means the
    /// commit's outcome is unknown: the client must retry under the key.
    pub async fn finish(&self, db: &Database, answer: Answer<'_>) -> Result<Finished, StoreError> {
        let kept = self.0.kept.lock().await.take();
        let (marked, committed) = {
            let state = self.state();
            (state.marked, state.committed)
        };
        let outcome = match (kept, answer) {
            // Its record is committed already, without its answer (an earlier transaction of
            // it, or the last resort): the answer joins the record in the last transaction.
            (Some(mut tx), answer) if marked => {
                let written = match answer {
                    Answer::Keep(answer) => dispatch!(&mut tx, idempotency::answer_in(&self.0.key, answer)),
                    Answer::Refused => dispatch!(&mut tx, idempotency::forget_in(&self.0.key)),
                    Answer::Failed => Ok(()),
                };
                match written {
                    Ok(()) => tx.commit_now().await.map(|()| match answer {
                        Answer::Refused => Finished::Nothing,
                        Answer::Keep(_) | Answer::Failed => Finished::Committed,
                    }),
                    Err(error) => Err(error),
                }
            }
            // It failed with nothing of it committed for real: the kept transaction rolls back
            // (dropped), and a retry runs again.
            (Some(_), Answer::Failed) if !committed => Ok(Finished::Nothing),
            (Some(mut tx), answer) => {
                let written = match answer {
                    Answer::Keep(answer) => self.put(&mut tx, Some(answer)).await,
                    // An earlier transaction of it is committed, and may be an effect: a retry
                    // must not run it again.
                    Answer::Failed => self.put(&mut tx, None).await,
                    // It decided not to act; what it wrote stays, without a record.
                    Answer::Refused => Ok(()),
                };
                match written {
                    Ok(()) => tx.commit_now().await.map(|()| Finished::Committed),
                    // Dropped: the effect rolls back.
                    Err(error) => Err(error),
                }
            }
            (None, answer) if marked => self.answer_marked(db, answer).await,
            (None, _) => Ok(Finished::Nothing),
        };
        let work = std::mem::take(&mut self.state().after_commit);
        for work in work {
            work.await;
        }
        outcome
    }

    /// Ends a request whose record was committed before its answer was known.
    async fn answer_marked(&self, db: &Database, answer: Answer<'_>) -> Result<Finished, StoreError> {
        match answer {
            Answer::Keep(answer) => {
                if let Err(error) = dispatch!(db, idempotency::answer(&self.0.key, answer)) {
                    tracing::warn!(%error, "an Idempotency-Key's answer could not be stored after its effect");
                }
                Ok(Finished::Committed)
            }
            Answer::Refused => {
                // It committed only what it gives back (a hold, say): no record, a retry runs.
                if let Err(error) = dispatch!(db, idempotency::forget(&self.0.key)) {
                    tracing::warn!(%error, "an Idempotency-Key's record could not be removed after a refusal");
                }
                Ok(Finished::Nothing)
            }
            Answer::Failed => Ok(Finished::Committed),
        }
    }

    /// Keeps `tx` until the answer is known; a transaction kept before it commits now.
    pub(crate) async fn keep(&self, tx: Tx) -> Result<(), StoreError> {
        let older = self.0.kept.lock().await.replace(tx);
        match older {
            Some(older) => {
                older.commit_now().await?;
                self.state().committed = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Commits the kept transaction, if any, with a record awaiting its answer (unless one is
    /// committed already): a transaction begun after it must see what it wrote, and a retry
    /// must find that it took effect. `for_read` when that transaction only reads (the last
    /// resort: the answer may then be stored after the last commit, which the middleware counts).
    pub(crate) async fn flush(&self, for_read: bool) -> Result<(), StoreError> {
        let Some(mut tx) = self.0.kept.lock().await.take() else { return Ok(()) };
        let mark = !self.state().marked;
        if mark {
            self.put(&mut tx, None).await?;
        }
        tx.commit_now().await?;
        let mut state = self.state();
        state.marked = true;
        state.marked_for_read |= for_read;
        Ok(())
    }

    /// Writes the record in `tx`. A current record already there means another request under
    /// the key committed its effect: [`StoreError::Answered`], and this transaction must not
    /// commit (the unique key is the last guard against a second effect).
    async fn put(&self, tx: &mut Tx, answer: Option<&[u8]>) -> Result<(), StoreError> {
        let expired = OffsetDateTime::now_utc() - KEEP;
        if dispatch!(tx, idempotency::put(&self.0.key, &self.0.fingerprint, answer, expired))? {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc();
        self.state().answered = dispatch!(tx, idempotency::find_in(&self.0.key))?.filter(|r| r.current(now));
        Err(StoreError::Answered)
    }

    /// Takes the key's lock in `tx` and checks that no request under it committed meanwhile.
    pub(crate) async fn claim(&self, tx: &mut Tx) -> Result<(), StoreError> {
        if let Tx::Postgres(tx) = tx {
            let started = tokio::time::Instant::now();
            loop {
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                    .bind(self.0.lock)
                    .fetch_one(&mut **tx)
                    .await?;
                if locked {
                    break;
                }
                if started.elapsed() >= LOCK_WAIT {
                    return Err(StoreError::KeyHeld);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        if self.state().marked {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc();
        if let Some(record) = dispatch!(tx, idempotency::find_in(&self.0.key))?.filter(|r| r.current(now)) {
            self.state().answered = Some(record);
            return Err(StoreError::Answered);
        }
        Ok(())
    }
}
