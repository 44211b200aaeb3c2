//! The pool as a service's SQL sees it ([`Pool`], the `&Pool` of every read in `store/sql/`).
//!
//! A statement on it runs on a connection of the pool, except in a keyed request
//! ([`crate::keyed`]) that holds the transaction it committed in name only: there it runs
//! in that transaction, on its connection, and sees what the request wrote. So a handler that
//! reads back what it just committed gets its answer before anything is committed for real,
//! and the Idempotency-Key middleware commits the effect with its record and that answer at
//! once: a record never exists without its answer, and a client that lost the answer (a crash,
//! a dropped connection) gets it on a retry under the key.
//!
//! [`Pool::acquire`] hands out that transaction's connection likewise, for a few statements on
//! one connection. Nothing else reaches the pool's own connections from a `&Pool`:
//! [`Pool::inner`] is for what must (a new transaction, migrations, the pool's size).

use std::ops::{Deref, DerefMut};

use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::{Describe, Either, Execute, Executor, SqlStr};
use tokio::sync::OwnedMutexGuard;

use crate::{Tx, keyed};

/// A service's connection pool of one backend (see the [module](self)).
#[derive(Debug)]
pub struct Pool<DB: sqlx::Database>(sqlx::Pool<DB>);

impl<DB: sqlx::Database> Clone for Pool<DB> {
    fn clone(&self) -> Pool<DB> {
        Pool(self.0.clone())
    }
}

impl<DB: Backend> Pool<DB> {
    pub fn new(pool: sqlx::Pool<DB>) -> Pool<DB> {
        Pool(pool)
    }

    /// The sqlx pool itself: its connections never see a keyed request's kept transaction, so
    /// only for what must not run in it (a new transaction, migrations) or does not read (its
    /// size, closing it).
    pub fn inner(&self) -> &sqlx::Pool<DB> {
        &self.0
    }

    /// A connection for a few statements: the kept transaction's in a keyed request that holds
    /// one (held until the connection is dropped), one of the pool's otherwise.
    pub async fn acquire(&self) -> Result<Connection<DB>, sqlx::Error> {
        if let Some(kept) = keyed::kept() {
            let mut kept = kept.lock_owned().await;
            if kept.as_mut().and_then(DB::connection).is_some() {
                return Ok(Connection(Held::Kept(kept)));
            }
        }
        Ok(Connection(Held::Pooled(self.0.acquire().await?)))
    }
}

/// A connection from [`Pool::acquire`].
pub struct Connection<DB: Backend>(Held<DB>);

enum Held<DB: sqlx::Database> {
    Pooled(PoolConnection<DB>),
    /// Checked to hold a transaction of `DB` when taken.
    Kept(OwnedMutexGuard<Option<Tx>>),
}

impl<DB: Backend> Deref for Connection<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        match &self.0 {
            Held::Pooled(connection) => connection,
            Held::Kept(kept) => kept.as_ref().and_then(DB::connection_ref).expect("checked when acquired"),
        }
    }
}

impl<DB: Backend> DerefMut for Connection<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match &mut self.0 {
            Held::Pooled(connection) => connection,
            Held::Kept(kept) => kept.as_mut().and_then(DB::connection).expect("checked when acquired"),
        }
    }
}

/// The two backends, as [`Pool`] needs them: the connection of a [`Tx`] of theirs.
pub trait Backend: sqlx::Database {
    fn connection(tx: &mut Tx) -> Option<&mut Self::Connection>;
    fn connection_ref(tx: &Tx) -> Option<&Self::Connection>;
}

impl Backend for sqlx::Sqlite {
    fn connection(tx: &mut Tx) -> Option<&mut Self::Connection> {
        match tx {
            Tx::Sqlite(tx) => Some(tx),
            Tx::Postgres(_) => None,
        }
    }

    fn connection_ref(tx: &Tx) -> Option<&Self::Connection> {
        match tx {
            Tx::Sqlite(tx) => Some(tx),
            Tx::Postgres(_) => None,
        }
    }
}

impl Backend for sqlx::Postgres {
    fn connection(tx: &mut Tx) -> Option<&mut Self::Connection> {
        match tx {
            Tx::Postgres(tx) => Some(tx),
            Tx::Sqlite(_) => None,
        }
    }

    fn connection_ref(tx: &Tx) -> Option<&Self::Connection> {
        match tx {
            Tx::Postgres(tx) => Some(tx),
            Tx::Sqlite(_) => None,
        }
    }
}

/// Implements [`Executor`] for `&Pool<$db>`: on the pool, or in the keyed request's kept
/// transaction (a `Tx::$variant`) while it holds one. In a keyed request the rows are gathered
/// before they are handed on, so the kept transaction is taken for one statement at a time.
macro_rules! executor {
    ($db:ty, $variant:ident) => {
        impl<'c> Executor<'c> for &'c Pool<$db> {
            type Database = $db;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<
                'e,
                Result<Either<<$db as sqlx::Database>::QueryResult, <$db as sqlx::Database>::Row>, sqlx::Error>,
            >
            where
                'c: 'e,
                E: 'q + Execute<'q, $db>,
            {
                let Some(kept) = keyed::kept() else { return self.0.fetch_many(query) };
                futures::stream::once(async move {
                    let mut kept = kept.lock().await;
                    match kept.as_mut() {
                        Some(Tx::$variant(tx)) => (&mut **tx).fetch_many(query).try_collect::<Vec<_>>().await,
                        _ => self.0.fetch_many(query).try_collect::<Vec<_>>().await,
                    }
                })
                .map_ok(|steps| futures::stream::iter(steps.into_iter().map(Ok)))
                .try_flatten()
                .boxed()
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, Result<Option<<$db as sqlx::Database>::Row>, sqlx::Error>>
            where
                'c: 'e,
                E: 'q + Execute<'q, $db>,
            {
                let Some(kept) = keyed::kept() else { return self.0.fetch_optional(query) };
                Box::pin(async move {
                    let mut kept = kept.lock().await;
                    match kept.as_mut() {
                        Some(Tx::$variant(tx)) => (&mut **tx).fetch_optional(query).await,
                        _ => self.0.fetch_optional(query).await,
                    }
                })
            }

            fn prepare_with<'e>(
                self,
                sql: SqlStr,
                parameters: &'e [<$db as sqlx::Database>::TypeInfo],
            ) -> BoxFuture<'e, Result<<$db as sqlx::Database>::Statement, sqlx::Error>>
            where
                'c: 'e,
            {
                self.0.prepare_with(sql, parameters)
            }

            fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<$db>, sqlx::Error>>
            where
                'c: 'e,
            {
                self.0.describe(sql)
            }
        }
    };
}

executor!(sqlx::Sqlite, Sqlite);
executor!(sqlx::Postgres, Postgres);
