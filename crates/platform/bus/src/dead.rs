//! Dead letters kept in the consuming service's database, so that a bus that loses its data
//! loses none of them and none of its discard log.
//!
//! The bus keeps each group's dead letters and discard log, and that is where operators list,
//! retry and discard them (`/events/dead-letters`, `medcov events`, the group's `dead` count).
//! But a bus can lose its data: Redis restarted without persistence, a failover to an empty
//! replica, `bus.db` deleted. So a consumer with a store (its service's database,
//! [`ConsumerConfig::store`](crate::consumer::ConsumerConfig::store)) keeps every dead letter
//! there first (`dead_letters`, beside its inbox and sagas), with the stream's epoch
//! ([`Bus::epoch`]), then hands it to the bus; and about once a second it compares the two
//! ([`Keeper::reconcile`]):
//!
//! - a kept dead letter the bus no longer has, under the same epoch, was acted on by an
//!   operator: found in the bus's discard log, it moves to the store's (`dead_letter_discards`,
//!   with the reason); otherwise it was retried and is back on the stream, and stays kept until
//!   the group handles it (then it is forgotten);
//! - one kept under another epoch is one the bus lost with its data: it is put back
//!   ([`Bus::restore`]) as it was, with its entry, error, deliveries and time (under a new id);
//! - dead letters the bus has and the store has not (made before the store kept them) are taken
//!   in when the consumer starts.
//!
//! An event an operator discarded that fails again on its last delivery (a replay, or the relay
//! publishing again after a loss) is dropped, not dead-lettered again; one already among the
//! group's dead letters on the bus is not added a second time.
//!
//! What a loss can still cost: an operator's discard in the second before the loss, which the
//! consumer had not yet seen; the dead letter then comes back, to be discarded again.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use medcov_store::{Database, StoreError, dispatch};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::tables::{postgres, sqlite};
use crate::{Bus, BusResult, DeadLetter, Delivery, Discarded};

/// How often a consumer compares its kept dead letters with the bus's.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(1);

/// Keeps `letter` (its id aside: the event's is the key) under the stream's `epoch`; an event of
/// the group already kept is replaced.
pub async fn keep(db: &Database, letter: &DeadLetter, epoch: &str) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    dispatch!(&mut tx, dead_letters::keep(letter, epoch))?;
    tx.commit().await
}

/// The group's kept dead letters, oldest first (each letter's id is its event's), each with the
/// epoch of the stream the bus last had it under.
pub async fn kept(db: &Database, stream: &str, group: &str) -> Result<Vec<(DeadLetter, String)>, StoreError> {
    dispatch!(db, dead_letters::list(stream, group))
}

/// The group's discard log, oldest first.
pub async fn discards(db: &Database, stream: &str, group: &str) -> Result<Vec<Discarded>, StoreError> {
    dispatch!(db, dead_letters::discards(stream, group))
}

/// Moves a kept dead letter to the discard log; whether it was kept.
pub async fn discard(
    db: &Database,
    stream: &str,
    group: &str,
    event: Uuid,
    reason: &str,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let mut tx = db.begin_write().await?;
    let moved = dispatch!(&mut tx, dead_letters::discard(stream, group, event, reason, at))?;
    tx.commit().await?;
    Ok(moved)
}

/// Forgets a kept dead letter (its event was handled since); whether it was kept.
pub async fn resolve(db: &Database, stream: &str, group: &str, event: Uuid) -> Result<bool, StoreError> {
    let mut tx = db.begin_write().await?;
    let gone = dispatch!(&mut tx, dead_letters::resolve(stream, group, event))?;
    tx.commit().await?;
    Ok(gone)
}

async fn set_epoch(db: &Database, stream: &str, group: &str, event: Uuid, epoch: &str) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    dispatch!(&mut tx, dead_letters::set_epoch(stream, group, event, epoch))?;
    tx.commit().await
}

/// A consumer's side of its kept dead letters: what it knows is kept, and when it last looked.
pub(crate) struct Keeper {
    store: Database,
    /// The events kept as dead letters of the group, as of the last look (and since).
    known: HashSet<Uuid>,
    last: Option<Instant>,
    /// Whether the bus's dead letters were taken in (once per consumer).
    adopted: bool,
}

impl Keeper {
    pub(crate) fn new(store: Database) -> Keeper {
        Keeper { store, known: HashSet::new(), last: None, adopted: false }
    }

    /// Dead-letters `delivery`: kept, then handed to the bus (which acknowledges it). An event
    /// discarded before is acknowledged and dropped instead; one the bus already has among the
    /// group's dead letters is kept anew and acknowledged. Returns whether it is a dead letter.
    pub(crate) async fn dead(
        &mut self,
        bus: &dyn Bus,
        stream: &str,
        group: &str,
        delivery: &Delivery,
        error: &str,
    ) -> BusResult<bool> {
        let event = delivery.envelope.id;
        if dispatch!(&self.store, dead_letters::was_discarded(stream, group, event))? {
            bus.ack(stream, group, std::slice::from_ref(&delivery.entry)).await?;
            return Ok(false);
        }
        let epoch = bus.epoch(stream).await?;
        let letter = DeadLetter {
            id: event.to_string(),
            stream: stream.to_owned(),
            group: group.to_owned(),
            entry: delivery.entry.clone(),
            envelope: delivery.envelope.clone(),
            error: error.to_owned(),
            deliveries: delivery.deliveries,
            at: OffsetDateTime::now_utc(),
        };
        let on_bus = bus.dead_letters(stream, group).await?.iter().any(|l| l.envelope.id == event);
        keep(&self.store, &letter, &epoch).await?;
        self.known.insert(event);
        if on_bus {
            bus.ack(stream, group, std::slice::from_ref(&delivery.entry)).await?;
        } else {
            bus.dead_letter(stream, group, delivery, error).await?;
        }
        Ok(true)
    }

    /// The group handled `event`: a kept dead letter of it (retried) is forgotten.
    pub(crate) async fn handled(&mut self, stream: &str, group: &str, event: Uuid) -> BusResult<()> {
        if self.known.remove(&event) {
            resolve(&self.store, stream, group, event).await?;
        }
        Ok(())
    }

    /// Compares the kept dead letters with the bus's, at most once per [`RECONCILE_EVERY`]:
    /// records discards, puts back what the bus lost, takes in what only the bus has (once).
    pub(crate) async fn reconcile(&mut self, bus: &dyn Bus, stream: &str, group: &str) -> BusResult<()> {
        if self.last.is_some_and(|at| at.elapsed() < RECONCILE_EVERY) {
            return Ok(());
        }
        let kept = kept(&self.store, stream, group).await?;
        self.known = kept.iter().map(|(letter, _)| letter.envelope.id).collect();
        if kept.is_empty() && self.adopted {
            self.last = Some(Instant::now());
            return Ok(());
        }
        let epoch = bus.epoch(stream).await?;
        let letters = bus.dead_letters(stream, group).await?;
        if !self.adopted {
            for letter in &letters {
                if self.known.insert(letter.envelope.id) {
                    keep(&self.store, letter, &epoch).await?;
                }
            }
            self.adopted = true;
        }
        let on_bus: HashSet<Uuid> = letters.iter().map(|l| l.envelope.id).collect();
        let mut discarded: Option<Vec<Discarded>> = None;
        for (letter, kept_under) in kept {
            let event = letter.envelope.id;
            if on_bus.contains(&event) {
                if kept_under != epoch {
                    set_epoch(&self.store, stream, group, event, &epoch).await?;
                }
            } else if kept_under != epoch {
                bus.restore(&letter).await?;
                set_epoch(&self.store, stream, group, event, &epoch).await?;
                tracing::warn!(stream, group, event = %event, "a dead letter the bus lost is back on the bus");
            } else {
                if discarded.is_none() {
                    discarded = Some(bus.discarded(stream, group).await?);
                }
                let found = discarded.iter().flatten().rev().find(|d| d.envelope.id == event);
                if let Some(found) = found {
                    discard(&self.store, stream, group, event, &found.reason, found.at).await?;
                    self.known.remove(&event);
                }
                // Otherwise it was retried: back on the stream, kept until it is handled.
            }
        }
        self.last = Some(Instant::now());
        Ok(())
    }
}
