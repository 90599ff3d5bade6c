//! Working through a service's own table of due work — submissions to send,
//! notifications to deliver — with bounded concurrency: the shape every
//! service that calls a slow provider after a commit shares.
//!
//! The service claims due rows with a lease (so a crash leaves them to be
//! claimed again once the lease runs out) and works on each on a task of
//! its own, at most `in_flight` at once. New work is announced by a
//! PostgreSQL `NOTIFY` on a channel (delivered on commit, never for a
//! transaction that rolled back); between announcements the loop scans,
//! which also picks up leases that ran out.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What a dispatcher claims and works on.
pub trait Dispatch: Clone + Send + Sync + 'static {
    type Item: Send + 'static;
    type Error: Display + Send;

    /// Claims up to `limit` due items, leasing them.
    fn claim(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Self::Item>, Self::Error>> + Send;

    /// Works on one item; what becomes of it is the item's own business
    /// (written back to the table).
    fn work(&self, item: Self::Item) -> impl Future<Output = ()> + Send;
}

/// How a dispatcher paces itself.
#[derive(Debug, Clone)]
pub struct Pace {
    /// Items worked on at once.
    pub in_flight: usize,
    /// Items claimed in one statement at most.
    pub batch: usize,
    /// How often due items are looked for when nothing announces one.
    pub scan: Duration,
    /// How long shutdown waits for work in flight before abandoning it to
    /// its lease.
    pub drain: Duration,
}

impl Pace {
    /// `in_flight` at once, scanning every `scan`; claims of 256 at most,
    /// and two seconds for work in flight at shutdown.
    pub fn new(in_flight: usize, scan: Duration) -> Self {
        Self {
            in_flight,
            batch: 256,
            scan,
            drain: Duration::from_secs(2),
        }
    }
}

/// Runs `dispatcher` until `shutdown`, woken by `NOTIFY` on `channel`.
pub async fn run<D: Dispatch>(
    dispatcher: D,
    pool: &PgPool,
    channel: &str,
    pace: Pace,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(pace.in_flight.max(1)));
    let mut listener = listen(pool, channel).await;
    let mut work = JoinSet::new();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        while work.try_join_next().is_some() {}
        let limit = (1 + slots.available_permits()).min(pace.batch.max(1));
        let due = match dispatcher.claim(limit).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, channel, "claiming due work failed; trying again");
                drop(first);
                idle(&mut listener, pace.scan, &shutdown).await;
                continue;
            }
        };
        let claimed = due.len();
        let mut first = Some(first);
        for item in due {
            let permit = match first.take() {
                Some(permit) => permit,
                // Counted above, and only this loop takes slots.
                None => match slots.clone().try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let dispatcher = dispatcher.clone();
            work.spawn(async move {
                dispatcher.work(item).await;
                drop(permit);
            });
        }
        if claimed < limit {
            idle(&mut listener, pace.scan, &shutdown).await;
        }
    }
    if tokio::time::timeout(pace.drain, async {
        while work.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::info!(
            left = work.len(),
            channel,
            "work in flight at shutdown is left to its leases"
        );
    }
}

/// Listens for announcements; without a listener the loop only scans.
async fn listen(pool: &PgPool, channel: &str) -> Option<PgListener> {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, channel, "cannot listen for new work; scanning only");
            return None;
        }
    };
    match listener.listen(channel).await {
        Ok(()) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, channel, "cannot listen for new work; scanning only");
            None
        }
    }
}

/// Waits for an announcement, the next scan, or shutdown.
async fn idle(listener: &mut Option<PgListener>, scan: Duration, shutdown: &CancellationToken) {
    let scan = tokio::time::sleep(scan);
    match listener {
        Some(listener) => tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = scan => {}
            notified = listener.recv() => if let Err(error) = notified {
                tracing::warn!(%error, "listening for new work failed; it reconnects");
            },
        },
        None => tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = scan => {}
        },
    }
}
