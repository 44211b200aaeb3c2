//! The access log's read entries, written by group commit.
//!
//! Every read of patient data is recorded before its answer leaves (nothing a client saw is
//! missing from the log after a crash). Written one transaction per read, reads queue for the
//! database's writer (SQLite has one) behind every registration and encounter. Here the reads
//! of a moment are written together: a read hands its entries to one writer task and waits for
//! the commit that holds them; the writer takes everything waiting (up to [`BATCH`] entries) into
//! one transaction. Under load one commit serves many reads; alone, a read costs what it did.
//! The batch is one multi-row `INSERT`: on PostgreSQL a statement of its own, atomic without
//! `BEGIN` and `COMMIT`, so a batch costs the writer one round trip and the commit's flush.

use medcov_store::{Database, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::domain::access::AccessEntry;
use crate::store;

/// Entries written in one transaction, at most.
pub const BATCH: usize = 512;
/// Reads waiting for the writer, at most; more wait to hand theirs over.
const WAITING: usize = 4096;

/// How a batch's commit went, for each read in it (a `StoreError` is not `Clone`).
#[derive(Debug, Clone)]
enum Outcome {
    Committed,
    Unavailable(String),
    Failed(String),
}

type Request = (Vec<AccessEntry>, oneshot::Sender<Outcome>);

#[derive(Debug, Clone)]
pub struct ReadLog {
    sender: mpsc::Sender<Request>,
}

impl ReadLog {
    /// Starts the writer on `db` (on the current tokio runtime); it stops when the last
    /// [`ReadLog`] is dropped, after writing what it was handed.
    pub fn start(db: Database) -> ReadLog {
        let (sender, receiver) = mpsc::channel(WAITING);
        tokio::spawn(write(db, receiver));
        ReadLog { sender }
    }

    /// Records `entries`; returns once they are committed.
    pub async fn record(&self, entries: Vec<AccessEntry>) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        // The writer stops with the service: the pool is closing.
        let stopped = || StoreError::Unavailable(sqlx::Error::PoolClosed);
        self.sender.send((entries, done)).await.map_err(|_| stopped())?;
        match committed.await.map_err(|_| stopped())? {
            Outcome::Committed => Ok(()),
            Outcome::Unavailable(error) => Err(StoreError::Unavailable(sqlx::Error::Protocol(error))),
            Outcome::Failed(error) => Err(StoreError::Database(sqlx::Error::Protocol(error))),
        }
    }
}

async fn write(db: Database, mut receiver: mpsc::Receiver<Request>) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        let mut entries = batch[0].0.len();
        while entries < BATCH {
            match receiver.try_recv() {
                Ok(next) => {
                    entries += next.0.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let outcome = match commit(&db, &batch).await {
            Ok(()) => Outcome::Committed,
            Err(error) if error.is_unavailable() => Outcome::Unavailable(error.to_string()),
            Err(error) => Outcome::Failed(error.to_string()),
        };
        for (_, done) in batch {
            let _ = done.send(outcome.clone());
        }
    }
}

async fn commit(db: &Database, batch: &[Request]) -> Result<(), StoreError> {
    let entries: Vec<&AccessEntry> = batch.iter().flat_map(|(entries, _)| entries).collect();
    store::log_accesses(db, &entries).await
}
