//! Tag versions a process knows, kept current by Redis, so that a read of them costs Redis a
//! `PING` shared by every reader of the moment instead of an `MGET` each.
//!
//! Redis pushes every change of a tag key to the process on a connection of its own
//! (client-side caching in broadcasting mode, [`medcov_redis::RedisConnection::track`]), and
//! the process forgets the version it held. What makes a known version as current as one read
//! from Redis:
//!
//! - **A read waits for a `PING` sent after it began** (a round), on the tracking connection.
//!   Redis sends the changes of a command before the answer to any command it runs later, and
//!   each change is applied as it is read, before the answer behind it; so once that `PONG` is
//!   in, every change made before the read began has been applied. This is the guarantee of an
//!   `MGET` sent when the read began: a write that completed before is seen. Every reader that
//!   arrives while a round is not yet sent joins it, and one round is in flight at a time, so
//!   under load one `PING` serves many.
//! - **A version read from Redis is kept only if no change was heard** between the moment the
//!   read was sent and its answer (the `epoch` did not move) and the tracking connection was up
//!   the whole time: a change pushed while the read was in flight may concern the value read.
//! - **A lost tracking connection forgets everything**: its readers read from Redis, and a new
//!   connection starts with nothing known. A `PING` that fails or times out counts as lost.
//! - **A change made in this process** is forgotten here before it is sent, and again once
//!   Redis took it ([`Known::forget`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use medcov_redis::{Pushed, RedisConnection};
use tokio::sync::{Notify, watch};

/// The most tags whose versions a process keeps: past it, what is known is forgotten and
/// learnt again (a few MiB; the hot tags come back at once).
const MOST_KNOWN: usize = 65_536;

/// How long to wait before opening a tracking connection again, and how often a kept one is
/// looked at.
const RETRY_EVERY: Duration = Duration::from_millis(250);

#[derive(Default)]
struct State {
    /// Moves with every change heard and every connection made or lost.
    epoch: u64,
    connection: Option<RedisConnection>,
    /// Which tracking connection is the current one: an older one's end concerns no one.
    generation: u64,
    /// Tag (without the key prefix) → its current version.
    versions: HashMap<String, u64>,
    /// The round readers wait for, and the last round sent: a reader asks for the one after
    /// the last sent.
    asked: u64,
    sent: u64,
}

/// The last round answered, and whether its `PING` was.
#[derive(Debug, Clone, Copy, Default)]
struct Done {
    round: u64,
    answered: bool,
}

/// The versions known in process, and the tracking connection that keeps them current.
pub struct Known {
    /// What Redis's pushed keys start with; the rest is the tag.
    key_prefix: String,
    state: Mutex<State>,
    started: std::sync::atomic::AtomicBool,
    /// Wakes the task that sends rounds (and ends it, once this is dropped).
    asked: Arc<Notify>,
    done: watch::Sender<Done>,
}

/// What [`Known::read`] found.
pub enum Read {
    /// Every tag's version, current as of the call.
    Current(Vec<u64>),
    /// Not all known: read them from Redis, and give them to [`Known::learn`] with this epoch.
    Ask(u64),
}

impl Known {
    pub fn new(key_prefix: String) -> Known {
        Known {
            key_prefix,
            state: Mutex::default(),
            started: std::sync::atomic::AtomicBool::new(false),
            asked: Arc::new(Notify::new()),
            done: watch::Sender::new(Done::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the tracking connection and keeps it, from tasks of its own, the first time it
    /// is called (it needs a Tokio runtime).
    pub fn start(self: &Arc<Self>, connection: &RedisConnection) {
        // Read first: every lookup calls this, and only the first may write.
        if !self.started.load(std::sync::atomic::Ordering::Acquire)
            && !self.started.swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            tokio::spawn(keep(Arc::downgrade(self), connection.clone()));
            tokio::spawn(rounds(Arc::downgrade(self), self.asked.clone()));
        }
    }

    /// The current versions of `tags`, when they are known; waits for a round first.
    pub async fn read(&self, tags: &[String]) -> Read {
        let (round, mut done) = {
            let mut state = self.state();
            if state.connection.is_none() {
                return Read::Ask(state.epoch);
            }
            state.asked = state.sent + 1;
            (state.asked, self.done.subscribe())
        };
        self.asked.notify_one();
        let answered = match done.wait_for(|done| done.round >= round).await {
            Ok(done) => done.answered,
            Err(_) => false,
        };
        let state = self.state();
        if answered
            && state.connection.is_some()
            && let Some(versions) = tags.iter().map(|tag| state.versions.get(tag).copied()).collect()
        {
            return Read::Current(versions);
        }
        Read::Ask(state.epoch)
    }

    /// Keeps `versions` of `tags`, read from Redis after `epoch` was given, if nothing was
    /// heard since.
    pub fn learn(&self, epoch: u64, tags: &[String], versions: &[u64]) {
        let mut state = self.state();
        if state.epoch == epoch && state.connection.is_some() {
            if state.versions.len() + tags.len() > MOST_KNOWN {
                state.versions.clear();
            }
            for (tag, version) in tags.iter().zip(versions) {
                state.versions.insert(tag.clone(), *version);
            }
        }
    }

    /// Forgets `tags`: this process changes them.
    pub fn forget(&self, tags: &[String]) {
        let mut state = self.state();
        state.epoch += 1;
        for tag in tags {
            state.versions.remove(tag);
        }
    }

    /// The current tracking connection's generation, if there is one.
    pub fn tracking(&self) -> Option<u64> {
        let state = self.state();
        state.connection.as_ref().map(|_| state.generation)
    }

    /// What connection `generation` heard.
    fn heard(&self, generation: u64, pushed: Pushed) {
        let mut state = self.state();
        if pushed == Pushed::Lost && generation != state.generation {
            return;
        }
        state.epoch += 1;
        match pushed {
            Pushed::Keys(keys) => {
                for key in keys {
                    if let Some(tag) = key.strip_prefix(&self.key_prefix) {
                        state.versions.remove(tag);
                    }
                }
            }
            Pushed::All => state.versions.clear(),
            Pushed::Lost => {
                state.versions.clear();
                state.connection = None;
            }
        }
    }

    fn up(&self, generation: u64, connection: RedisConnection) {
        let mut state = self.state();
        state.generation = generation;
        state.epoch += 1;
        state.versions.clear();
        state.connection = Some(connection);
    }
}

impl Drop for Known {
    fn drop(&mut self) {
        // The task that sends rounds finds it gone, and ends.
        self.asked.notify_one();
    }
}

/// Opens the tracking connection, and another when it is lost; until the [`Known`] is dropped.
/// On a cluster there is none, and nothing is known.
async fn keep(known: Weak<Known>, connection: RedisConnection) {
    let mut generation = 0;
    loop {
        generation += 1;
        let Some(strong) = known.upgrade() else { return };
        let prefix = strong.key_prefix.clone();
        let sink = Arc::downgrade(&strong);
        drop(strong);
        let tracked = connection
            .track(&prefix, move |pushed| {
                if let Some(known) = sink.upgrade() {
                    known.heard(generation, pushed);
                }
            })
            .await;
        match tracked {
            Ok(Some(tracking)) => {
                let Some(strong) = known.upgrade() else { return };
                strong.up(generation, tracking);
                drop(strong);
                tracing::debug!(generation, "cache tag changes tracked");
                loop {
                    tokio::time::sleep(RETRY_EVERY).await;
                    let Some(strong) = known.upgrade() else { return };
                    if strong.tracking() != Some(generation) {
                        break;
                    }
                }
                tracing::info!(generation, "cache tag tracking lost; versions are read from Redis until it is back");
            }
            Ok(None) => return,
            // Refused rather than unreachable (a Redis before 6, or a user whose ACL denies
            // `CLIENT`): versions are read from Redis every time, as on a cluster.
            Err(error) if !medcov_redis::is_outage(&error) => {
                tracing::warn!(%error, "Redis refused to track the cache's tag versions; they are read from Redis on every lookup");
                return;
            }
            Err(_) => {}
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// Dropped with the task that sends rounds (its runtime shut down): the readers waiting for a
/// round read from Redis, and the next read starts the tasks again.
struct Stopped(Weak<Known>);

impl Drop for Stopped {
    fn drop(&mut self) {
        let Some(known) = self.0.upgrade() else { return };
        let asked = {
            let mut state = known.state();
            state.connection = None;
            state.versions.clear();
            state.epoch += 1;
            state.asked
        };
        known.started.store(false, std::sync::atomic::Ordering::Release);
        known.done.send_modify(|done| *done = Done { round: asked.max(done.round), answered: false });
    }
}

/// Sends a round (a `PING` on the tracking connection) when a reader asks for one, one at a
/// time: the readers that come while a round is in flight share the next.
async fn rounds(known: Weak<Known>, asked: Arc<Notify>) {
    let _stopped = Stopped(known.clone());
    loop {
        asked.notified().await;
        let Some(strong) = known.upgrade() else { return };
        let (round, connection) = {
            let mut state = strong.state();
            if state.asked <= state.sent {
                continue;
            }
            state.sent = state.asked;
            (state.sent, state.connection.clone().map(|c| (state.generation, c)))
        };
        let answered = match connection {
            Some((generation, mut connection)) => {
                let answered = redis::cmd("PING").query_async::<String>(&mut connection).await.is_ok();
                if !answered {
                    strong.heard(generation, Pushed::Lost);
                }
                answered
            }
            None => false,
        };
        strong.done.send_modify(|done| *done = Done { round, answered });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection object that never connects: enough to stand for a tracking connection.
    fn unconnected() -> RedisConnection {
        let url = "redis://127.0.0.1:1".parse().expect("url");
        medcov_redis::RedisClient::open(&url, false).expect("client").connection().expect("lazy")
    }

    fn epoch(known: &Known) -> u64 {
        known.state().epoch
    }

    #[test]
    fn what_is_known_stays_bounded() {
        let known = Known::new("p:".to_owned());
        known.up(1, unconnected());
        for i in 0..MOST_KNOWN + 10 {
            known.learn(epoch(&known), &[format!("tag:{i}")], &[7]);
        }
        let kept = known.state().versions.len();
        assert!((1..=MOST_KNOWN).contains(&kept), "{kept}");
    }

    #[test]
    fn a_change_heard_while_reading_or_a_lost_connection_keeps_nothing() {
        let known = Known::new("p:cache:{tags}:".to_owned());
        let tag = ["hospital:1".to_owned()];
        // Nothing is learnt without a tracking connection.
        known.learn(epoch(&known), &tag, &[1]);
        assert!(known.state().versions.is_empty());
        known.up(1, unconnected());
        // A change pushed between the read being sent and its answer: not kept.
        let sent = epoch(&known);
        known.heard(1, Pushed::Keys(vec!["p:cache:{tags}:hospital:1".to_owned()]));
        known.learn(sent, &tag, &[1]);
        assert!(known.state().versions.is_empty());
        // Kept, then forgotten when its key is pushed.
        known.learn(epoch(&known), &tag, &[2]);
        assert_eq!(known.state().versions.get("hospital:1"), Some(&2));
        known.heard(1, Pushed::Keys(vec!["p:cache:{tags}:hospital:1".to_owned()]));
        assert!(known.state().versions.is_empty());
        // An older connection's end concerns no one; the current one's forgets all.
        known.learn(epoch(&known), &tag, &[3]);
        known.heard(0, Pushed::Lost);
        assert_eq!(known.tracking(), Some(1));
        known.heard(1, Pushed::Lost);
        assert_eq!(known.tracking(), None);
        assert!(known.state().versions.is_empty());
    }
}
