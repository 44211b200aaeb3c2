//! Waiting in tests for a real condition, never for a fixed time.
//!
//! For work on the event bus, a test settles instead (`medcov_runtime::Running::settle`).
//! What is left is what no barrier can see: a TTL or a breaker's wait running out, a process
//! coming up, a file watcher noticing a change, a server coming back. [`eventually`] asks the
//! condition again and again (quickly at first) until it holds or the deadline passes, and then
//! fails naming what it waited for; a slow machine only makes the wait longer.

use std::time::Duration;

/// How long a test waits for a condition before failing, unless it says otherwise.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Asks `check` until it returns `Some`, and returns that; panics naming `what` after
/// `within`.
pub async fn eventually<T>(what: &str, within: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("waited {} ms for {what}, in vain", within.as_millis());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Asks `check` until it is true; panics naming `what` after `within`.
pub async fn until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    eventually(what, within, async || check().await.then_some(())).await
}
