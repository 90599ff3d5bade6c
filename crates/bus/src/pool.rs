//! PostgreSQL connections without a round trip of bookkeeping per statement.
//!
//! sqlx's pool pings a connection (Sync, then ReadyForQuery: a full round
//! trip) every time it hands one out, and again every time one comes back.
//! For a batch writer that sends one statement per batch, that is two
//! round trips of nothing around each one: in a profile of validation, the
//! ping on acquire was 4% of its CPU and the ping on release 2–3%, with
//! PostgreSQL doing the same work again on its side.
//!
//! - [`options`]: the pool every process builds, which pings only a
//!   connection that has been idle long enough to have been cut.
//! - [`Warm`]: connections a writer keeps between its statements instead of
//!   giving them back, so the pool never pings them; a connection whose
//!   work failed goes back to the pool, which checks it and closes it if
//!   it is broken.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::{Connection as _, PgPool, Postgres};

/// A connection idle longer than this is pinged before it is used again.
///
/// A connection in steady use has answered within the last few
/// milliseconds; one idle for longer may have been cut by a firewall or a
/// database restart, and is checked, so a quiet service does not fail its
/// first statement on a dead connection. A busy connection that dies fails
/// its statement either way, as a transient error its caller retries.
pub const PING_IDLE_AFTER: Duration = Duration::from_secs(10);

/// How long [`Warm`] keeps a connection before giving it back to the pool,
/// whose own lifetime limit (30 minutes by default) then retires it: a
/// server process's memory grows with what it has cached, and a kept
/// connection would otherwise never be renewed.
const KEEP_AT_MOST: Duration = Duration::from_secs(25 * 60);

/// A read-only transaction that sees the database at one instant, for a
/// reader whose queries must agree with each other (a check, a report)
/// while writers go on.
pub async fn read_only_snapshot(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The pool options every process starts from: sqlx's defaults, with the
/// liveness check of [`PING_IDLE_AFTER`] instead of a ping per acquire.
pub fn options() -> PgPoolOptions {
    PgPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IDLE_AFTER {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Connections kept out of `pool` between uses, for writers that send a
/// statement at a time, one after the other. Kept, they hold places in the
/// pool: at most as many as were in use at once, and never the last one
/// the pool has (see [`WarmConnection::keep`]).
#[derive(Clone)]
pub struct Warm {
    pool: PgPool,
    kept: Arc<Mutex<Vec<Kept>>>,
}

struct Kept {
    connection: PoolConnection<Postgres>,
    /// When it was taken from the pool.
    taken: Instant,
    /// When its last use ended.
    idle_since: Instant,
}

impl Warm {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            kept: Arc::default(),
        }
    }

    /// A kept connection, or a new one from the pool. Give it back with
    /// [`WarmConnection::keep`] once its work succeeded.
    pub async fn take(&self) -> Result<WarmConnection, sqlx::Error> {
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        // One idle for long is dropped here, back to the pool, which pings
        // every connection that comes back and closes a dead one.
        if let Some(kept) = kept.filter(|kept| kept.idle_since.elapsed() < PING_IDLE_AFTER) {
            return Ok(self.lend(kept.connection, kept.taken));
        }
        Ok(self.lend(self.pool.acquire().await?, Instant::now()))
    }

    fn lend(&self, connection: PoolConnection<Postgres>, taken: Instant) -> WarmConnection {
        WarmConnection {
            connection,
            taken,
            warm: self.clone(),
        }
    }

    /// Whether the pool could still serve someone else if one more of its
    /// connections were kept out of it: it has one idle, or room to open
    /// one. A pool of one connection, or one whose every connection is
    /// taken, gets the connection back instead, so a kept connection never
    /// starves the pool's other users.
    fn can_spare(&self) -> bool {
        self.pool.num_idle() > 0 || self.pool.size() < self.pool.options().get_max_connections()
    }
}

/// A connection lent by [`Warm`]. Dropped without [`WarmConnection::keep`]
/// (its work failed, or was cancelled half-way), it goes back to the pool,
/// which rolls back what was left open, checks it, and closes it if it is
/// broken.
pub struct WarmConnection {
    connection: PoolConnection<Postgres>,
    taken: Instant,
    warm: Warm,
}

impl WarmConnection {
    /// Keeps the connection for the next use: call once the work on it
    /// succeeded, with no transaction left open. It goes back to the pool
    /// instead when the pool could not serve anyone else without it, or
    /// once it has been kept for [`KEEP_AT_MOST`].
    pub fn keep(self) {
        let Self {
            connection,
            taken,
            warm,
        } = self;
        if taken.elapsed() >= KEEP_AT_MOST || !warm.can_spare() {
            return; // back to the pool
        }
        warm.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Kept {
                connection,
                taken,
                idle_since: Instant::now(),
            });
    }

    /// [`WarmConnection::keep`] after a success; after a failure the
    /// connection goes back to the pool.
    pub fn keep_if_ok<T, E>(self, outcome: &Result<T, E>) {
        if outcome.is_ok() {
            self.keep();
        }
    }
}

impl Deref for WarmConnection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.connection
    }
}

impl DerefMut for WarmConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.connection
    }
}
