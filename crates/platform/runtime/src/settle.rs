//! The settle barrier: waits until the event work of the services running in this process is
//! done, so a test can assert on its outcome (and on the absence of a second one).
//!
//! Settled means: every outbox of a started service has handed all its rows to the bus, and
//! every consumer group those services read with has no lag (nothing undelivered) and nothing
//! pending (delivered, not acknowledged). Work that is not on the bus is not waited for: a
//! saga waiting for its deadline is settled, and so is a dead letter.
//!
//! The parts move while they are looked at, in this order: a handler commits its effect with
//! its new outbox rows, then acknowledges its event; the relay publishes a row, then marks it.
//! So one pass looks at the groups, then the outboxes, then the groups again (a row the relay
//! published between the first two looks shows as lag in the third), and the barrier holds
//! only when two passes in a row find everything clear and the same number of outbox rows
//! (a chain of events that ran wholly between two passes changes that number).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::Running;

/// How long between two passes.
const POLL: Duration = Duration::from_millis(20);

/// What one pass found.
struct Pass {
    /// What is not settled, each naming its outbox or group; empty when all is clear.
    unsettled: Vec<String>,
    /// Outbox rows of every started service.
    rows: u64,
}

impl Running {
    /// Waits until every outbox of the services started here is relayed and every consumer
    /// group they read with has no lag and nothing pending, for at most `timeout`. The error
    /// names what was still moving.
    pub async fn settle(&self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut clear_with: Option<u64> = None;
        loop {
            let pass = self.settle_pass().await;
            if pass.unsettled.is_empty() {
                if clear_with == Some(pass.rows) {
                    return Ok(());
                }
                clear_with = Some(pass.rows);
            } else {
                clear_with = None;
            }
            if tokio::time::Instant::now() >= deadline {
                let what = if pass.unsettled.is_empty() {
                    vec![format!("outbox rows still being written ({} now)", pass.rows)]
                } else {
                    pass.unsettled
                };
                return Err(format!("not settled after {} ms: {}", timeout.as_millis(), what.join("; ")));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The (stream, group) pairs the started services consume.
    fn consumer_groups(&self) -> BTreeSet<(&'static str, &'static str)> {
        self.started
            .iter()
            .flat_map(|s| {
                let consumers = s.consumers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                consumers.iter().map(|c| (c.stream, c.group)).collect::<Vec<_>>()
            })
            .collect()
    }

    async fn settle_pass(&self) -> Pass {
        let groups = self.consumer_groups();
        let mut unsettled = self.unsettled_groups(&groups).await;
        if !unsettled.is_empty() {
            return Pass { unsettled, rows: 0 };
        }
        let mut rows = 0;
        for service in &self.started {
            let (true, Some(database)) = (service.outbox, &service.database) else { continue };
            match medcov_store::outbox::counts(database).await {
                Ok(counts) => {
                    rows += counts.rows;
                    if counts.unpublished > 0 {
                        unsettled
                            .push(format!("the {} outbox has {} unpublished events", service.name, counts.unpublished));
                    }
                }
                Err(error) => unsettled.push(format!("the {} outbox cannot be read: {error}", service.name)),
            }
        }
        if unsettled.is_empty() {
            unsettled = self.unsettled_groups(&groups).await;
        }
        Pass { unsettled, rows }
    }

    async fn unsettled_groups(&self, groups: &BTreeSet<(&'static str, &'static str)>) -> Vec<String> {
        let mut unsettled = Vec::new();
        let streams: BTreeSet<&str> = groups.iter().map(|(stream, _)| *stream).collect();
        for stream in streams {
            // A group the consumer has not created yet would look clear on Redis.
            let existing = match self.bus.groups(stream).await {
                Ok(existing) => existing,
                Err(error) => {
                    unsettled.push(format!("the groups of stream {stream} cannot be read: {error}"));
                    continue;
                }
            };
            for (_, group) in groups.iter().filter(|(s, _)| *s == stream) {
                if !existing.iter().any(|g| g == group) {
                    unsettled.push(format!("group {group} on stream {stream} is not created yet"));
                    continue;
                }
                match self.bus.stats(stream, group).await {
                    Ok(stats) if stats.lag == 0 && stats.pending == 0 => {}
                    Ok(stats) => unsettled.push(format!(
                        "group {group} on stream {stream} has {} undelivered and {} pending events",
                        stats.lag, stats.pending
                    )),
                    Err(error) => unsettled.push(format!("group {group} on stream {stream} cannot be read: {error}")),
                }
            }
        }
        unsettled
    }
}
