//! Redis Streams: a stream per event family under the key prefix, consumer groups, XPENDING and
//! XCLAIM for reclaiming, a dead-letter stream per group, and trimming by MINID below the oldest
//! entry any group still needs.
//!
//! Blocking reads (`XREADGROUP ... BLOCK`) never share the multiplexed connection other
//! commands use (a blocking command would stall them, and the default 500 ms response timeout
//! would cut it): they take a dedicated connection from a small pool, with a response timeout
//! above the block time.
//!
//! Keys are `<prefix>:events:{<stream>}` and, beside it, `...:dead:<group>` and
//! `...:discarded`: the stream's name is their hash tag, so on a Redis Cluster a stream and its
//! dead letters share a slot and dead-lettering, retrying and discarding stay atomic.
//! The dead letters and the discard log here are the bus's copy: a consumer with a store keeps
//! them in its service's database and puts back what Redis loses ([`dead`](crate::dead)).

use std::time::Duration;

use futures::future::BoxFuture;
use medcov_redis::{RedisClient, RedisConnection};
use redis::streams::{StreamClaimReply, StreamId, StreamInfoGroupsReply, StreamPendingCountReply, StreamReadReply};
use redis::{RedisError, Value};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::{Bus, BusError, BusResult, DeadLetter, Delivery, Discarded, Envelope, GroupStats, Pending, Start};

pub struct RedisBus {
    client: RedisClient,
    connection: RedisConnection,
    prefix: String,
    /// Connections for blocking reads, reused, with the client's generation when they were
    /// made (one made before Redis was last unreachable is dropped, not tried).
    readers: Mutex<Vec<(u64, RedisConnection)>>,
}

fn field<T: redis::FromRedisValue>(entry: &StreamId, name: &str) -> BusResult<T> {
    entry.get(name).ok_or_else(|| BusError::Malformed(format!("entry {} has no `{name}`", entry.id)))
}

fn envelope_of(entry: &StreamId) -> BusResult<Envelope> {
    let text: String = field(entry, "envelope")?;
    serde_json::from_str(&text).map_err(|e| BusError::Malformed(e.to_string()))
}

/// A stream id as (milliseconds, sequence), for comparing.
fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

fn is_busy_group(e: &RedisError) -> bool {
    e.code() == Some("BUSYGROUP")
}

impl RedisBus {
    pub fn new(client: RedisClient, connection: RedisConnection, prefix: &str) -> RedisBus {
        RedisBus { client, connection, prefix: prefix.to_owned(), readers: Mutex::new(Vec::new()) }
    }

    /// The stream's key; its name is the hash tag of every key of the stream.
    fn key(&self, stream: &str) -> String {
        format!("{}:events:{}", self.prefix, medcov_redis::hash_tag(stream))
    }

    fn dead_key(&self, stream: &str, group: &str) -> String {
        format!("{}:dead:{group}", self.key(stream))
    }

    fn discarded_key(&self, stream: &str) -> String {
        format!("{}:discarded", self.key(stream))
    }

    async fn reader(&self, block: Duration) -> BusResult<(u64, RedisConnection)> {
        let generation = self.client.generation();
        {
            let mut readers = self.readers.lock().await;
            readers.retain(|(made, _)| *made == generation);
            if let Some(reader) = readers.pop() {
                return Ok(reader);
            }
        }
        let connection = self.client.dedicated(block.max(Duration::from_secs(30)) + Duration::from_secs(5)).await?;
        Ok((generation, connection))
    }

    /// The oldest entry any group of the stream at `key` may still need: per group, its oldest
    /// pending entry, or else the last one it was given (what follows it is undelivered).
    /// `None` without a stream or a group.
    async fn threshold(&self, key: &str) -> BusResult<Option<(u64, u64)>> {
        let mut connection = self.connection.clone();
        let exists: bool = redis::cmd("EXISTS").arg(key).query_async(&mut connection).await?;
        if !exists {
            return Ok(None);
        }
        let groups: StreamInfoGroupsReply =
            redis::cmd("XINFO").arg("GROUPS").arg(key).query_async(&mut connection).await?;
        let mut threshold: Option<(u64, u64)> = None;
        for group in &groups.groups {
            let summary: (u64, Option<String>, Option<String>, Value) =
                redis::cmd("XPENDING").arg(key).arg(&group.name).query_async(&mut connection).await?;
            let keep_from = match summary {
                (count, Some(oldest), _, _) if count > 0 => id_key(&oldest),
                _ => id_key(&group.last_delivered_id),
            };
            threshold = Some(threshold.map_or(keep_from, |t| t.min(keep_from)));
        }
        Ok(threshold)
    }

    /// The delivery count of one pending entry.
    async fn deliveries(&self, key: &str, group: &str, entry: &str) -> BusResult<u64> {
        let reply: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(key)
            .arg(group)
            .arg(entry)
            .arg(entry)
            .arg(1)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(reply.ids.first().map(|p| p.times_delivered as u64).unwrap_or(1))
    }
}

impl Bus for RedisBus {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, BusResult<String>> {
        Box::pin(async move {
            let text = serde_json::to_string(envelope).map_err(|e| BusError::Malformed(e.to_string()))?;
            let id: String = redis::cmd("XADD")
                .arg(self.key(envelope.stream()))
                .arg("*")
                .arg("envelope")
                .arg(text)
                .query_async(&mut self.connection.clone())
                .await?;
            Ok(id)
        })
    }

    fn publish_all<'a>(&'a self, envelopes: &'a [Envelope]) -> BoxFuture<'a, BusResult<Vec<String>>> {
        Box::pin(async move {
            if envelopes.is_empty() {
                return Ok(Vec::new());
            }
            // One round trip per run of events of one stream (one key, so one cluster slot):
            // the XADDs in a pipeline, not a transaction (what went in before an error stays,
            // and is published again with the rest).
            let mut ids = Vec::with_capacity(envelopes.len());
            for run in envelopes.chunk_by(|a, b| a.stream() == b.stream()) {
                let mut pipe = redis::pipe();
                for envelope in run {
                    let text = serde_json::to_string(envelope).map_err(|e| BusError::Malformed(e.to_string()))?;
                    pipe.cmd("XADD").arg(self.key(envelope.stream())).arg("*").arg("envelope").arg(text);
                }
                let added: Vec<String> = pipe.query_async(&mut self.connection.clone()).await?;
                ids.extend(added);
            }
            Ok(ids)
        })
    }

    fn create_group<'a>(&'a self, stream: &'a str, group: &'a str, start: Start) -> BoxFuture<'a, BusResult<()>> {
        Box::pin(async move {
            let from = match start {
                Start::Beginning => "0",
                Start::End => "$",
            };
            let created: Result<(), RedisError> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.key(stream))
                .arg(group)
                .arg(from)
                .arg("MKSTREAM")
                .query_async(&mut self.connection.clone())
                .await;
            match created {
                Err(e) if is_busy_group(&e) => Ok(()),
                other => Ok(other?),
            }
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
            let (generation, mut connection) = self.reader(block).await?;
            let mut command = redis::cmd("XREADGROUP");
            command.arg("GROUP").arg(group).arg(consumer).arg("COUNT").arg(count);
            // `BLOCK 0` would wait for ever; no wait means no BLOCK at all.
            if !block.is_zero() {
                command.arg("BLOCK").arg(block.as_millis().max(1) as u64);
            }
            command.arg("STREAMS").arg(self.key(stream)).arg(">");
            let reply: Result<Option<StreamReadReply>, RedisError> = command.query_async(&mut connection).await;
            // A connection that failed is dropped, not returned to the pool.
            let reply = reply?;
            self.readers.lock().await.push((generation, connection));
            let mut deliveries = Vec::new();
            for key in reply.map(|r| r.keys).unwrap_or_default() {
                for entry in key.ids {
                    deliveries.push(Delivery { envelope: envelope_of(&entry)?, entry: entry.id, deliveries: 1 });
                }
            }
            Ok(deliveries)
        })
    }

    fn ack<'a>(&'a self, stream: &'a str, group: &'a str, entries: &'a [String]) -> BoxFuture<'a, BusResult<()>> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(());
            }
            let _: u64 = redis::cmd("XACK")
                .arg(self.key(stream))
                .arg(group)
                .arg(entries)
                .query_async(&mut self.connection.clone())
                .await?;
            Ok(())
        })
    }

    fn pending<'a>(&'a self, stream: &'a str, group: &'a str, count: usize) -> BoxFuture<'a, BusResult<Vec<Pending>>> {
        Box::pin(async move {
            let reply: StreamPendingCountReply = redis::cmd("XPENDING")
                .arg(self.key(stream))
                .arg(group)
                .arg("-")
                .arg("+")
                .arg(count)
                .query_async(&mut self.connection.clone())
                .await?;
            Ok(reply
                .ids
                .into_iter()
                .map(|p| Pending {
                    entry: p.id,
                    consumer: p.consumer,
                    idle: Duration::from_millis(p.last_delivered_ms as u64),
                    deliveries: p.times_delivered as u64,
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
            if entries.is_empty() {
                return Ok(Vec::new());
            }
            let key = self.key(stream);
            let reply: StreamClaimReply = redis::cmd("XCLAIM")
                .arg(&key)
                .arg(group)
                .arg(consumer)
                .arg(min_idle.as_millis() as u64)
                .arg(entries)
                .query_async(&mut self.connection.clone())
                .await?;
            let mut claimed = Vec::with_capacity(reply.ids.len());
            for entry in reply.ids {
                let deliveries = self.deliveries(&key, group, &entry.id).await?;
                claimed.push(Delivery { envelope: envelope_of(&entry)?, entry: entry.id, deliveries });
            }
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
            let at = OffsetDateTime::now_utc().unix_timestamp_nanos().to_string();
            let _: Value = redis::pipe()
                .atomic()
                .cmd("XADD")
                .arg(self.dead_key(stream, group))
                .arg("*")
                .arg("envelope")
                .arg(text)
                .arg("entry")
                .arg(&delivery.entry)
                .arg("error")
                .arg(error)
                .arg("deliveries")
                .arg(delivery.deliveries)
                .arg("at")
                .arg(at)
                .cmd("XACK")
                .arg(self.key(stream))
                .arg(group)
                .arg(&delivery.entry)
                .query_async(&mut self.connection.clone())
                .await?;
            Ok(())
        })
    }

    fn dead_letters<'a>(&'a self, stream: &'a str, group: &'a str) -> BoxFuture<'a, BusResult<Vec<DeadLetter>>> {
        Box::pin(async move {
            let entries: Vec<StreamId> = {
                let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                    .arg(self.dead_key(stream, group))
                    .arg("-")
                    .arg("+")
                    .query_async(&mut self.connection.clone())
                    .await?;
                reply.ids
            };
            entries
                .iter()
                .map(|entry| {
                    let at: String = field(entry, "at")?;
                    let nanos: i128 = at.parse().unwrap_or(0);
                    Ok(DeadLetter {
                        id: entry.id.clone(),
                        stream: stream.to_owned(),
                        group: group.to_owned(),
                        entry: field(entry, "entry")?,
                        envelope: envelope_of(entry)?,
                        error: field(entry, "error")?,
                        deliveries: field(entry, "deliveries")?,
                        at: OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    })
                })
                .collect()
        })
    }

    fn retry<'a>(&'a self, stream: &'a str, group: &'a str, dead: &'a str) -> BoxFuture<'a, BusResult<String>> {
        Box::pin(async move {
            let dead_key = self.dead_key(stream, group);
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&dead_key)
                .arg(dead)
                .arg(dead)
                .query_async(&mut self.connection.clone())
                .await?;
            let entry = reply.ids.first().ok_or_else(|| BusError::NoSuchDeadLetter(dead.to_owned()))?;
            let text: String = field(entry, "envelope")?;
            let (id, _): (String, u64) = redis::pipe()
                .atomic()
                .cmd("XADD")
                .arg(self.key(stream))
                .arg("*")
                .arg("envelope")
                .arg(text)
                .cmd("XDEL")
                .arg(&dead_key)
                .arg(dead)
                .query_async(&mut self.connection.clone())
                .await?;
            Ok(id)
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
            let dead_key = self.dead_key(stream, group);
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&dead_key)
                .arg(dead)
                .arg(dead)
                .query_async(&mut self.connection.clone())
                .await?;
            let entry = reply.ids.first().ok_or_else(|| BusError::NoSuchDeadLetter(dead.to_owned()))?;
            let text: String = field(entry, "envelope")?;
            let error: String = field(entry, "error")?;
            let died_as: String = field(entry, "entry")?;
            let _: Value = redis::pipe()
                .atomic()
                .cmd("XADD")
                .arg(self.discarded_key(stream))
                .arg("*")
                .arg("group")
                .arg(group)
                .arg("entry")
                .arg(died_as)
                .arg("envelope")
                .arg(text)
                .arg("error")
                .arg(error)
                .arg("reason")
                .arg(reason)
                .cmd("XDEL")
                .arg(&dead_key)
                .arg(dead)
                .query_async(&mut self.connection.clone())
                .await?;
            Ok(())
        })
    }

    fn restore<'a>(&'a self, letter: &'a DeadLetter) -> BoxFuture<'a, BusResult<String>> {
        Box::pin(async move {
            let text = serde_json::to_string(&letter.envelope).map_err(|e| BusError::Malformed(e.to_string()))?;
            let id: String = redis::cmd("XADD")
                .arg(self.dead_key(&letter.stream, &letter.group))
                .arg("*")
                .arg("envelope")
                .arg(text)
                .arg("entry")
                .arg(&letter.entry)
                .arg("error")
                .arg(&letter.error)
                .arg("deliveries")
                .arg(letter.deliveries)
                .arg("at")
                .arg(letter.at.unix_timestamp_nanos().to_string())
                .query_async(&mut self.connection.clone())
                .await?;
            Ok(id)
        })
    }

    fn discarded<'a>(&'a self, stream: &'a str, group: &'a str) -> BoxFuture<'a, BusResult<Vec<Discarded>>> {
        Box::pin(async move {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(self.discarded_key(stream))
                .arg("-")
                .arg("+")
                .query_async(&mut self.connection.clone())
                .await?;
            let mut discarded = Vec::new();
            for entry in &reply.ids {
                let of: String = field(entry, "group")?;
                if of != group {
                    continue;
                }
                // The log's entry id is when the discard happened.
                let (ms, _) = id_key(&entry.id);
                discarded.push(Discarded {
                    stream: stream.to_owned(),
                    group: of,
                    entry: entry.get("entry").unwrap_or_default(),
                    envelope: envelope_of(entry)?,
                    error: field(entry, "error")?,
                    reason: field(entry, "reason")?,
                    at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                });
            }
            Ok(discarded)
        })
    }

    fn stats<'a>(&'a self, stream: &'a str, group: &'a str) -> BoxFuture<'a, BusResult<GroupStats>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let groups: StreamInfoGroupsReply =
                redis::cmd("XINFO").arg("GROUPS").arg(self.key(stream)).query_async(&mut connection).await?;
            let info = groups.groups.into_iter().find(|g| g.name == group);
            let dead: u64 = redis::cmd("XLEN").arg(self.dead_key(stream, group)).query_async(&mut connection).await?;
            let lag = match &info {
                None => 0,
                Some(info) => match info.lag {
                    Some(lag) => lag as u64,
                    // Redis cannot tell after some deletions: count what follows the last
                    // entry the group was given (up to a page; enough to say "behind").
                    None => {
                        let after: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                            .arg(self.key(stream))
                            .arg(format!("({}", info.last_delivered_id))
                            .arg("+")
                            .arg("COUNT")
                            .arg(1_000)
                            .query_async(&mut connection)
                            .await?;
                        after.ids.len() as u64
                    }
                },
            };
            Ok(GroupStats {
                stream: stream.to_owned(),
                group: group.to_owned(),
                pending: info.as_ref().map(|g| g.pending as u64).unwrap_or(0),
                lag,
                dead,
            })
        })
    }

    fn groups<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, BusResult<Vec<String>>> {
        Box::pin(async move {
            let exists: bool =
                redis::cmd("EXISTS").arg(self.key(stream)).query_async(&mut self.connection.clone()).await?;
            if !exists {
                return Ok(Vec::new());
            }
            let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(self.key(stream))
                .query_async(&mut self.connection.clone())
                .await?;
            let mut names: Vec<String> = groups.groups.into_iter().map(|g| g.name).collect();
            names.sort();
            Ok(names)
        })
    }

    fn trim<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, BusResult<u64>> {
        Box::pin(async move {
            let key = self.key(stream);
            let mut connection = self.connection.clone();
            let Some((ms, seq)) = self.threshold(&key).await? else {
                return Ok(0);
            };
            let dropped: u64 = redis::cmd("XTRIM")
                .arg(&key)
                .arg("MINID")
                .arg(format!("{ms}-{seq}"))
                .query_async(&mut connection)
                .await?;
            Ok(dropped)
        })
    }

    fn epoch<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, BusResult<String>> {
        Box::pin(async move {
            // Beside the stream (its hash tag): on a cluster, lost with it.
            let key = format!("{}:epoch", self.key(stream));
            let fresh = uuid::Uuid::now_v7().to_string();
            let (epoch,): (String,) = redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(&key)
                .arg(fresh)
                .arg("NX")
                .ignore()
                .cmd("GET")
                .arg(&key)
                .query_async(&mut self.connection.clone())
                .await?;
            Ok(epoch)
        })
    }

    fn needed_since<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, BusResult<Option<OffsetDateTime>>> {
        Box::pin(async move {
            let threshold = self.threshold(&self.key(stream)).await?;
            Ok(threshold.map(|(ms, _)| {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            }))
        })
    }
}
