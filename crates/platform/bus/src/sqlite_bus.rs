//! The embedded bus: streams, groups, pending entries and dead letters as tables in one SQLite
//! file, with the semantics of Redis Streams. Readers in the same process wake on a publish to
//! their stream; readers in another process sharing the file poll.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::{Bus, BusError, BusResult, DeadLetter, Delivery, Discarded, Envelope, GroupStats, Pending, Start};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS bus_streams (stream TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bus_entries (stream TEXT NOT NULL, seq INTEGER NOT NULL, envelope TEXT NOT NULL, \
     added_ms INTEGER NOT NULL, PRIMARY KEY (stream, seq))",
    "CREATE TABLE IF NOT EXISTS bus_groups (stream TEXT NOT NULL, grp TEXT NOT NULL, last_seq INTEGER NOT NULL, \
     PRIMARY KEY (stream, grp))",
    "CREATE TABLE IF NOT EXISTS bus_pending (stream TEXT NOT NULL, grp TEXT NOT NULL, seq INTEGER NOT NULL, \
     consumer TEXT NOT NULL, delivered_ms INTEGER NOT NULL, deliveries INTEGER NOT NULL, PRIMARY KEY (stream, grp, seq))",
    "CREATE TABLE IF NOT EXISTS bus_dead (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, grp TEXT NOT NULL, \
     entry TEXT NOT NULL, envelope TEXT NOT NULL, error TEXT NOT NULL, deliveries INTEGER NOT NULL, at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bus_epochs (stream TEXT PRIMARY KEY, epoch TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bus_discarded (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, \
     grp TEXT NOT NULL, entry TEXT NOT NULL, envelope TEXT NOT NULL, error TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL)",
];

/// Entries inserted by one statement at most when a batch is published (4 parameters each,
/// within SQLite's limit).
const PUBLISHED_AT_ONCE: usize = 1_000;

/// How often a reader that was not woken looks again (another process may have published).
const POLL: Duration = Duration::from_millis(50);

pub struct SqliteBus {
    pool: SqlitePool,
    /// One wake-up per stream: a publish wakes the readers of its streams only, not every
    /// reader of the bus (each woken reader looks, and a look at a stream nothing was
    /// published to finds nothing).
    published: std::sync::Mutex<HashMap<String, Arc<Notify>>>,
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn parse(envelope: &str) -> BusResult<Envelope> {
    serde_json::from_str(envelope).map_err(|e| BusError::Malformed(e.to_string()))
}

fn seq_of(entry: &str) -> BusResult<i64> {
    entry.parse().map_err(|_| BusError::Malformed(format!("`{entry}` is not an entry id of this bus")))
}

impl SqliteBus {
    /// The wake-up of `stream`'s readers.
    fn signal(&self, stream: &str) -> Arc<Notify> {
        let mut signals = self.published.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match signals.get(stream) {
            Some(signal) => signal.clone(),
            None => signals.entry(stream.to_owned()).or_default().clone(),
        }
    }

    /// Wakes the readers of each of `streams`.
    fn wake<'a>(&self, streams: impl IntoIterator<Item = &'a str>) {
        let mut woken: Vec<&str> = Vec::new();
        for stream in streams {
            if !woken.contains(&stream) {
                woken.push(stream);
                self.signal(stream).notify_waiters();
            }
        }
    }

    /// Opens (creating if needed) the bus file.
    pub async fn open(path: &Path) -> BusResult<SqliteBus> {
        // Created 0600 in a 0700 folder before SQLite opens it (its WAL files take the same mode).
        medcov_config::private::ensure_file(path).map_err(|e| BusError::Malformed(e.to_string()))?;
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(BusError::Sqlite)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&pool).await?;
        }
        Ok(SqliteBus { pool, published: std::sync::Mutex::default() })
    }

    /// Appends entries (stream, envelope text) in order inside `tx`; their numbers. Each stream
    /// of the batch is numbered once (its last number moved on by its count of entries) and
    /// every entry inserted by one statement (a thousand at most), whatever the batch's size,
    /// instead of three statements an entry.
    async fn append_all(tx: &mut sqlx::SqliteConnection, entries: &[(&str, &str)]) -> BusResult<Vec<i64>> {
        // The batch's streams in order of first appearance, each with its count of entries.
        let mut streams: Vec<(&str, i64)> = Vec::new();
        for (stream, _) in entries {
            match streams.iter_mut().find(|(known, _)| known == stream) {
                Some((_, count)) => *count += 1,
                None => streams.push((stream, 1)),
            }
        }
        let mut known = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO bus_streams (stream, last_seq) ");
        known.push_values(&streams, |mut row, (stream, _)| {
            row.push_bind(*stream).push_bind(0_i64);
        });
        known.push(" ON CONFLICT (stream) DO NOTHING");
        known.build().execute(&mut *tx).await?;
        // Each stream's next number: its last one before this batch, plus one.
        let mut next = Vec::with_capacity(streams.len());
        for (stream, count) in &streams {
            let last: i64 = sqlx::query_scalar(
                "UPDATE bus_streams SET last_seq = last_seq + $1 WHERE stream = $2 RETURNING last_seq",
            )
            .bind(count)
            .bind(*stream)
            .fetch_one(&mut *tx)
            .await?;
            next.push((*stream, last - count + 1));
        }
        let mut numbered = Vec::with_capacity(entries.len());
        for (stream, text) in entries {
            let Some((_, seq)) = next.iter_mut().find(|(known, _)| known == stream) else {
                return Err(BusError::Malformed(format!("no number taken for stream {stream}")));
            };
            numbered.push((*stream, *seq, *text));
            *seq += 1;
        }
        let added = now_ms();
        for chunk in numbered.chunks(PUBLISHED_AT_ONCE) {
            let mut insert =
                sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO bus_entries (stream, seq, envelope, added_ms) ");
            insert.push_values(chunk, |mut row, (stream, seq, text)| {
                row.push_bind(*stream).push_bind(*seq).push_bind(*text).push_bind(added);
            });
            insert.build().execute(&mut *tx).await?;
        }
        Ok(numbered.into_iter().map(|(_, seq, _)| seq).collect())
    }

    async fn read_now(&self, stream: &str, group: &str, consumer: &str, count: usize) -> BusResult<Vec<Delivery>> {
        // Whether the group has anything new, asked without the write lock: every publish wakes
        // every reader of the file, and most of them, on other streams, find nothing.
        let behind: Option<bool> = sqlx::query_scalar(
            "SELECT s.last_seq > g.last_seq FROM bus_groups g JOIN bus_streams s ON s.stream = g.stream \
             WHERE g.stream = $1 AND g.grp = $2",
        )
        .bind(stream)
        .bind(group)
        .fetch_optional(&self.pool)
        .await?;
        match behind {
            None => return Err(BusError::NoSuchGroup { stream: stream.to_owned(), group: group.to_owned() }),
            Some(false) => return Ok(Vec::new()),
            Some(true) => {}
        }
        let mut tx = medcov_store::sqlite::begin_write(&self.pool).await?;
        let last: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM bus_groups WHERE stream = $1 AND grp = $2")
            .bind(stream)
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(last) = last else {
            return Err(BusError::NoSuchGroup { stream: stream.to_owned(), group: group.to_owned() });
        };
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, envelope FROM bus_entries WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(stream)
        .bind(last)
        .bind(count as i64)
        .fetch_all(&mut *tx)
        .await?;
        let Some((newest, _)) = rows.last() else {
            tx.commit().await?;
            return Ok(Vec::new());
        };
        sqlx::query("UPDATE bus_groups SET last_seq = $1 WHERE stream = $2 AND grp = $3")
            .bind(newest)
            .bind(stream)
            .bind(group)
            .execute(&mut *tx)
            .await?;
        // Every entry read becomes pending, in one statement.
        sqlx::query(
            "INSERT INTO bus_pending (stream, grp, seq, consumer, delivered_ms, deliveries) \
             SELECT stream, $1, seq, $2, $3, 1 FROM bus_entries WHERE stream = $4 AND seq > $5 AND seq <= $6",
        )
        .bind(group)
        .bind(consumer)
        .bind(now_ms())
        .bind(stream)
        .bind(last)
        .bind(newest)
        .execute(&mut *tx)
        .await?;
        let deliveries = rows
            .iter()
            .map(|(seq, envelope)| Ok(Delivery { entry: seq.to_string(), envelope: parse(envelope)?, deliveries: 1 }))
            .collect::<BusResult<Vec<_>>>()?;
        tx.commit().await?;
        Ok(deliveries)
    }
}

impl Bus for SqliteBus {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, BusResult<String>> {
        Box::pin(async move {
            let mut ids = self.publish_all(std::slice::from_ref(envelope)).await?;
            ids.pop().ok_or_else(|| BusError::Malformed("an event published without an entry id".into()))
        })
    }

    /// In one write transaction ([`SqliteBus::append_all`]).
    fn publish_all<'a>(&'a self, envelopes: &'a [Envelope]) -> BoxFuture<'a, BusResult<Vec<String>>> {
        Box::pin(async move {
            let texts = envelopes
                .iter()
                .map(|e| serde_json::to_string(e).map_err(|e| BusError::Malformed(e.to_string())))
                .collect::<BusResult<Vec<_>>>()?;
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let entries: Vec<(&str, &str)> =
                envelopes.iter().zip(&texts).map(|(envelope, text)| (envelope.stream(), text.as_str())).collect();
            let mut tx = medcov_store::sqlite::begin_write(&self.pool).await?;
            let seqs = Self::append_all(&mut tx, &entries).await?;
            tx.commit().await?;
            self.wake(entries.iter().map(|(stream, _)| *stream));
            Ok(seqs.iter().map(i64::to_string).collect())
        })
    }

    fn create_group<'a>(&'a self, stream: &'a str, group: &'a str, start: Start) -> BoxFuture<'a, BusResult<()>> {
        Box::pin(async move {
            let mut tx = medcov_store::sqlite::begin_write(&self.pool).await?;
            sqlx::query("INSERT INTO bus_streams (stream, last_seq) VALUES ($1, 0) ON CONFLICT (stream) DO NOTHING")
                .bind(stream)
                .execute(&mut *tx)
                .await?;
            let from: i64 = match start {
                Start::Beginning => 0,
                Start::End => {
                    sqlx::query_scalar("SELECT last_seq FROM bus_streams WHERE stream = $1")
                        .bind(stream)
                        .fetch_one(&mut *tx)
                        .await?
                }
            };
            sqlx::query(
                "INSERT INTO bus_groups (stream, grp, last_seq) VALUES ($1, $2, $3) ON CONFLICT (stream, grp) DO NOTHING",
            )
            .bind(stream)
            .bind(group)
            .bind(from)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        consumer: &'a str,
        count: usize,
        block: Duration,
    ) -> BoxFuture<'a, BusResult<Vec<Delivery>>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + block;
            let signal = self.signal(stream);
            loop {
                // Register for the wake-up before looking, so a publish in between is not missed.
                let woken = signal.notified();
                let found = self.read_now(stream, group, consumer, count).await?;
                let now = tokio::time::Instant::now();
                if !found.is_empty() || now >= deadline {
                    return Ok(found);
                }
                let _ = tokio::time::timeout((deadline - now).min(POLL), woken).await;
            }
        })
    }

    fn ack<'a>(&'a self, stream: &'a str, group: &'a str, entries: &'a [String]) -> BoxFuture<'a, BusResult<()>> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(());
            }
            let seqs = entries.iter().map(|e| seq_of(e)).collect::<BusResult<Vec<i64>>>()?;
            // One statement (a single write, autocommitted) for the whole batch.
            let mut delete = sqlx::QueryBuilder::new("DELETE FROM bus_pending WHERE stream = ");
            delete.push_bind(stream).push(" AND grp = ").push_bind(group).push(" AND seq IN (");
            let mut list = delete.separated(", ");
            for seq in seqs {
                list.push_bind(seq);
            }
            delete.push(")");
            let mut tx = medcov_store::sqlite::begin_write(&self.pool).await?;
            delete.build().execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn pending<'a>(&'a self, stream: &'a str, group: &'a str, count: usize) -> BoxFuture<'a, BusResult<Vec<Pending>>> {
        Box::pin(async move {
            let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
                "SELECT seq, consumer, delivered_ms, deliveries FROM bus_pending WHERE stream = $1 AND grp = $2 \
                 ORDER BY seq LIMIT $3",
            )
            .bind(stream)
            .bind(group)
            .bind(count as i64)
            .fetch_all(&self.pool)
            .await?;
            let now = now_ms();
            Ok(rows
                .into_iter()
                .map(|(seq, consumer, at, deliveries)| Pending {
                    entry: seq.to_string(),
                    consumer,
                    idle: Duration::from_millis((now - at).max(0) as u64),
                    deliveries: deliveries as u64,
                })
                .collect())
        })
    }

    fn claim<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        consumer: &'a str,
        min_idle: Duration,
        entries: &'a [String],
    ) -> BoxFuture<'a, BusResult<Vec<Delivery>>> {
        Box::pin(async move {
            let mut tx = medcov_store::sqlite::begin_write(&self.pool).await?;
            let now = now_ms();
            let idle_before = now - min_idle.as_millis() as i64;
            let mut claimed = Vec::new();
            for entry in entries {
                let seq = seq_of(entry)?;
                let deliveries: Option<i64> = sqlx::query_scalar(
                    "UPDATE bus_pending SET consumer = $1, delivered_ms = $2, deliveries = deliveries + 1 \
                     WHERE stream = $3 AND grp = $4 AND seq = $5 AND delivered_ms <= $6 RETURNING deliveries",
                )
                .bind(consumer)
                .bind(now)
                .bind(stream)
                .bind(group)
                .bind(seq)
                .bind(idle_before)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(deliveries) = deliveries else { continue };
                let envelope: Option<String> =
                    sqlx::query_scalar("SELECT envelope FROM bus_entries WHERE stream = $1 AND seq = $2")
                        .bind(stream)
                        .bind(seq)
                        .fetch_optional(&mut *tx)
                        .await?;
                match envelope {
                    Some(envelope) => claimed.push(Delivery {
                        entry: entry.clone(),
                        envelope: parse(&envelope)?,
                        deliveries: deliveries as u64,
                    }),
                    // The entry is gone (as Redis does, the pending entry goes with it).
                    None => {
                        sqlx::query("DELETE FROM bus_pending WHERE stream = $1 AND grp = $2 AND seq = $3")
                            .bind(stream)
                            .bind(group)
                            .bind(seq)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(claimed)
        })
    }

    fn dead_letter<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        delivery: &'a Delivery,
        error: &'a str,
    ) -> BoxFuture<'a, BusResult<()>> {
        Box::pin(async move {
            let text = serde_json::to_string(&delivery.envelope).map_err(|e| BusError::Malformed(e.to_string()))?;
            let mut tx = medcov_store::sqlite::begin_write(&self.pool).await?;
            sqlx::query(
                "INSERT INTO bus_dead (stream, grp, entry, envelope, error, deliveries, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(stream)
            .bind(group)
            .bind(&delivery.entry)
            .bind(text)
            .bind(error)
            .bind(delivery.deliveries as i64)
            .bind(OffsetDateTime::now_utc())
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM bus_pending WHERE stream = $1 AND grp = $2 AND seq = $3")
                .bind(stream)
                .bind(group)
                .bind(seq_of(&delivery.entry)?)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn dead_letters<'a>(&'a self, stream: &'a str, group: &'a str) -> BoxFuture<'a, BusResult<Vec<DeadLetter>>> {
        Box::pin(async move {
            let rows: Vec<(i64, String, String, String, i64, OffsetDateTime)> = sqlx::query_as(
                "SELECT id, entry, envelope, error, deliveries, at FROM bus_dead WHERE stream = $1 AND grp = $2 ORDER BY id",
            )
            .bind(stream)
            .bind(group)
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|(id, entry, envelope, error, deliveries, at)| {
                    Ok(DeadLetter {
                        id: id.to_string(),
                        stream: stream.to_owned(),
                        group: group.to_owned(),
                        entry,
                        envelope: parse(&envelope)?,
                        error,
                        deliveries: deliveries as u64,
                        at,
                    })
                })
                .collect()
        })
    }

    fn retry<'a>(&'a self, stream: &'a str, group: &'a str, dead: &'a str) -> BoxFuture<'a, BusResult<String>> {
        Box::pin(async move {
            let id: i64 = dead.parse().map_err(|_| BusError::NoSuchDeadLetter(dead.to_owned()))?;
            let mut tx = medcov_store::sqlite::begin_write(&self.pool).await?;
            let envelope: Option<String> = sqlx::query_scalar(
                "DELETE FROM bus_dead WHERE id = $1 AND stream = $2 AND grp = $3 RETURNING envelope",
            )
            .bind(id)
            .bind(stream)
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
            let envelope = envelope.ok_or_else(|| BusError::NoSuchDeadLetter(dead.to_owned()))?;
            let seqs = Self::append_all(&mut tx, &[(stream, envelope.as_str())]).await?;
            tx.commit().await?;
            self.wake([stream]);
            seqs.first().map(i64::to_string).ok_or_else(|| BusError::Malformed("a retry without an entry id".into()))
        })
    }

    fn discard<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        dead: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, BusResult<()>> {
        Box::pin(async move {
            let id: i64 = dead.parse().map_err(|_| BusError::NoSuchDeadLetter(dead.to_owned()))?;
            let mut tx = medcov_store::sqlite::begin_write(&self.pool).await?;
            let row: Option<(String, String, String)> = sqlx::query_as(
                "DELETE FROM bus_dead WHERE id = $1 AND stream = $2 AND grp = $3 RETURNING entry, envelope, error",
            )
            .bind(id)
            .bind(stream)
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
            let (entry, envelope, error) = row.ok_or_else(|| BusError::NoSuchDeadLetter(dead.to_owned()))?;
            sqlx::query(
                "INSERT INTO bus_discarded (stream, grp, entry, envelope, error, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(stream)
            .bind(group)
            .bind(entry)
            .bind(envelope)
            .bind(error)
            .bind(reason)
            .bind(OffsetDateTime::now_utc())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn restore<'a>(&'a self, letter: &'a DeadLetter) -> BoxFuture<'a, BusResult<String>> {
        Box::pin(async move {
            let text = serde_json::to_string(&letter.envelope).map_err(|e| BusError::Malformed(e.to_string()))?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO bus_dead (stream, grp, entry, envelope, error, deliveries, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&letter.stream)
            .bind(&letter.group)
            .bind(&letter.entry)
            .bind(text)
            .bind(&letter.error)
            .bind(letter.deliveries as i64)
            .bind(letter.at)
            .fetch_one(&self.pool)
            .await?;
            Ok(id.to_string())
        })
    }

    fn discarded<'a>(&'a self, stream: &'a str, group: &'a str) -> BoxFuture<'a, BusResult<Vec<Discarded>>> {
        Box::pin(async move {
            let rows: Vec<(String, String, String, String, OffsetDateTime)> = sqlx::query_as(
                "SELECT entry, envelope, error, reason, at FROM bus_discarded WHERE stream = $1 AND grp = $2 ORDER BY id",
            )
            .bind(stream)
            .bind(group)
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|(entry, envelope, error, reason, at)| {
                    Ok(Discarded {
                        stream: stream.to_owned(),
                        group: group.to_owned(),
                        entry,
                        envelope: parse(&envelope)?,
                        error,
                        reason,
                        at,
                    })
                })
                .collect()
        })
    }

    fn stats<'a>(&'a self, stream: &'a str, group: &'a str) -> BoxFuture<'a, BusResult<GroupStats>> {
        Box::pin(async move {
            let (pending, lag, dead): (i64, i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM bus_pending WHERE stream = $1 AND grp = $2), \
                 (SELECT COUNT(*) FROM bus_entries WHERE stream = $1 AND seq > \
                    COALESCE((SELECT last_seq FROM bus_groups WHERE stream = $1 AND grp = $2), 0)), \
                 (SELECT COUNT(*) FROM bus_dead WHERE stream = $1 AND grp = $2)",
            )
            .bind(stream)
            .bind(group)
            .fetch_one(&self.pool)
            .await?;
            Ok(GroupStats {
                stream: stream.to_owned(),
                group: group.to_owned(),
                pending: pending as u64,
                lag: lag as u64,
                dead: dead as u64,
            })
        })
    }

    fn groups<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, BusResult<Vec<String>>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar("SELECT grp FROM bus_groups WHERE stream = $1 ORDER BY grp")
                .bind(stream)
                .fetch_all(&self.pool)
                .await?)
        })
    }

    fn epoch<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, BusResult<String>> {
        Box::pin(async move {
            // Read first: the relay asks before every batch, and a write would take the file's
            // one write lock each time.
            let known: Option<String> = sqlx::query_scalar("SELECT epoch FROM bus_epochs WHERE stream = $1")
                .bind(stream)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(epoch) = known {
                return Ok(epoch);
            }
            let fresh = uuid::Uuid::now_v7().to_string();
            sqlx::query("INSERT INTO bus_epochs (stream, epoch) VALUES ($1, $2) ON CONFLICT (stream) DO NOTHING")
                .bind(stream)
                .bind(fresh)
                .execute(&self.pool)
                .await?;
            Ok(sqlx::query_scalar("SELECT epoch FROM bus_epochs WHERE stream = $1")
                .bind(stream)
                .fetch_one(&self.pool)
                .await?)
        })
    }

    fn needed_since<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, BusResult<Option<OffsetDateTime>>> {
        Box::pin(async move {
            // As trimming: per group its oldest pending entry, or else the last it was given.
            let threshold: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(COALESCE((SELECT MIN(p.seq) FROM bus_pending p WHERE p.stream = g.stream AND p.grp = g.grp), \
                 g.last_seq)) FROM bus_groups g WHERE g.stream = $1",
            )
            .bind(stream)
            .fetch_one(&self.pool)
            .await?;
            let Some(threshold) = threshold else { return Ok(None) };
            // When that entry was added; trimmed or never there (a new group): the oldest kept.
            let added: Option<i64> =
                sqlx::query_scalar("SELECT MIN(added_ms) FROM bus_entries WHERE stream = $1 AND seq >= $2")
                    .bind(stream)
                    .bind(threshold)
                    .fetch_one(&self.pool)
                    .await?;
            let ms = added.unwrap_or_else(now_ms);
            Ok(Some(
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            ))
        })
    }

    fn trim<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, BusResult<u64>> {
        Box::pin(async move {
            let mut tx = medcov_store::sqlite::begin_write(&self.pool).await?;
            // Per group: its oldest pending entry, or the first it has not been given yet.
            let threshold: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(COALESCE((SELECT MIN(p.seq) FROM bus_pending p WHERE p.stream = g.stream AND p.grp = g.grp), \
                 g.last_seq + 1)) FROM bus_groups g WHERE g.stream = $1",
            )
            .bind(stream)
            .fetch_one(&mut *tx)
            .await?;
            let Some(threshold) = threshold else {
                tx.commit().await?;
                return Ok(0);
            };
            let done = sqlx::query("DELETE FROM bus_entries WHERE stream = $1 AND seq < $2")
                .bind(stream)
                .bind(threshold)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        })
    }
}
