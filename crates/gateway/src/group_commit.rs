//! Group commit for the gateway's statements: requests that arrive together
//! share one database round trip and one commit.
//!
//! Built on the runtime's [`Batcher`] (no timer: a batch is whatever queued
//! while the previous statements ran, so under light load it costs what one
//! request did alone and under heavy load a per-request fsync becomes a
//! per-batch one; each batch on a task of its own, so a client hanging up
//! cannot cancel a statement or a `BEGIN` half way). What this adds: the
//! statement answers one result per item, and a batch that fails is run
//! again item by item, so one item the database refuses fails alone rather
//! than taking the requests that happened to arrive with it down too.

use std::future::Future;
use std::sync::{Arc, LazyLock};

use paystream_service_kit::batch::{Batcher, Job, Reply};
use prometheus::{HistogramOpts, HistogramVec};

/// Why an item got no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupError {
    #[error("database: {0}")]
    Database(Arc<sqlx::Error>),
    /// The statement answered for a different number of items than it was
    /// given: a bug in the batch function, never the caller's fault.
    #[error("a batch of {given} items gave {answered} results")]
    Mismatch { given: usize, answered: usize },
    /// The driver is gone (the gateway is shutting down).
    #[error("the batch writer has stopped")]
    Stopped,
}

/// Items per statement, by statement: how much grouping the load gives.
static BATCH_SIZE: LazyLock<HistogramVec> = LazyLock::new(|| {
    let histogram = HistogramVec::new(
        HistogramOpts::new(
            "paystream_gateway_group_commit_items",
            "Requests that shared one database statement, by statement",
        )
        .buckets(vec![
            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
        ]),
        &["statement"],
    )
    .unwrap_or_else(|error| unreachable!("static metric definition: {error}"));
    if let Err(error) = prometheus::default_registry().register(Box::new(histogram.clone())) {
        tracing::warn!(%error, "group commit metric not registered");
    }
    histogram
});

type Outcome<O> = Result<O, GroupError>;

/// A handle to one group-commit driver; cheap to clone.
pub struct GroupCommit<I, O> {
    batcher: Batcher<I, Outcome<O>>,
}

impl<I, O> Clone for GroupCommit<I, O> {
    fn clone(&self) -> Self {
        Self {
            batcher: self.batcher.clone(),
        }
    }
}

impl<I, O> std::fmt::Debug for GroupCommit<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<I, O> GroupCommit<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
{
    /// Starts the driver on the current runtime. `run` gets a batch of items
    /// and answers one result per item, in order. Items are shared, not
    /// copied, with the statement; one is cloned only to be run again alone.
    /// The driver ends when every handle is dropped.
    pub fn start<F, Fut>(name: &'static str, max_batch: usize, concurrency: usize, run: F) -> Self
    where
        F: Fn(Arc<[I]>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>, sqlx::Error>> + Send + 'static,
    {
        let run = Arc::new(run);
        let batcher = Batcher::spawn(name, max_batch, concurrency, move |jobs| {
            let run = run.clone();
            async move { run_batch(name, jobs, run.as_ref()).await }
        });
        Self { batcher }
    }

    /// Queues `item` for the next batch and waits for its result.
    pub async fn submit(&self, item: I) -> Result<O, GroupError> {
        self.batcher
            .submit(item)
            .await
            .unwrap_or(Err(GroupError::Stopped))
    }

    /// Waits until every item queued before this call has been written (or
    /// has failed).
    pub async fn flush(&self) -> Result<(), GroupError> {
        self.batcher.flush().await.map_err(|_| GroupError::Stopped)
    }

    /// Queues `item` for the next batch and returns at once: for a write
    /// whose loss is harmless. If it fails, the driver logs it.
    pub fn enqueue(&self, item: I) -> Result<(), GroupError> {
        self.batcher.enqueue(item).map_err(|_| GroupError::Stopped)
    }
}

async fn run_batch<I, O, F, Fut>(name: &'static str, jobs: Vec<Job<I, Outcome<O>>>, run: &F)
where
    I: Clone,
    F: Fn(Arc<[I]>) -> Fut,
    Fut: Future<Output = Result<Vec<O>, sqlx::Error>>,
{
    BATCH_SIZE
        .with_label_values(&[name])
        .observe(jobs.len() as f64);
    let (items, replies): (Vec<I>, Vec<Reply<Outcome<O>>>) =
        jobs.into_iter().map(Job::into_parts).unzip();
    let items: Arc<[I]> = items.into();
    let single = items.len() == 1;
    match answer(run(items.clone()).await, replies.len()) {
        Ok(results) => deliver(name, replies, results),
        Err(error) if single => deliver(name, replies, vec![Err(error)]),
        Err(error) => {
            tracing::warn!(statement = name, items = items.len(), %error, "a batch failed; running its items one by one");
            for (item, reply) in items.iter().zip(replies) {
                let alone: Arc<[I]> = Arc::new([item.clone()]);
                let result = answer(run(alone).await, 1).map(|mut one| one.pop());
                let result = match result {
                    Ok(Some(result)) => result,
                    Ok(None) => Err(GroupError::Mismatch {
                        given: 1,
                        answered: 0,
                    }),
                    Err(error) => Err(error),
                };
                deliver(name, vec![reply], vec![result]);
            }
        }
    }
}

/// One result per item, or the error every item gets.
fn answer<O>(
    result: Result<Vec<O>, sqlx::Error>,
    given: usize,
) -> Result<Vec<Result<O, GroupError>>, GroupError> {
    let results = result.map_err(|error| GroupError::Database(Arc::new(error)))?;
    if results.len() != given {
        return Err(GroupError::Mismatch {
            given,
            answered: results.len(),
        });
    }
    Ok(results.into_iter().map(Ok).collect())
}

fn deliver<O>(name: &'static str, replies: Vec<Reply<Outcome<O>>>, results: Vec<Outcome<O>>) {
    for (reply, result) in replies.into_iter().zip(results) {
        if let (true, Err(error)) = (reply.is_detached(), &result) {
            // Nobody waits to hear it: this line is the only trace.
            tracing::error!(statement = name, %error, "a queued write failed");
        }
        reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn items_that_queue_together_share_a_batch_and_get_their_own_result() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let doubler = GroupCommit::start("test", 100, 1, move |items: Arc<[u32]>| {
            let seen = seen.clone();
            async move {
                if let Ok(mut sizes) = seen.lock() {
                    sizes.push(items.len());
                }
                tokio::task::yield_now().await;
                Ok(items.iter().map(|n| n * 2).collect())
            }
        });
        let calls: Vec<_> = (0..50u32)
            .map(|n| {
                let doubler = doubler.clone();
                tokio::spawn(async move { doubler.submit(n).await.ok() })
            })
            .collect();
        for (n, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.ok().flatten(), Some(n as u32 * 2));
        }
        let sizes = sizes.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(sizes.iter().sum::<usize>(), 50);
        assert!(sizes.len() < 50, "no batching happened: {sizes:?}");
    }

    #[tokio::test]
    async fn a_failing_batch_fails_only_the_item_that_fails_alone() {
        let checker = GroupCommit::start("test", 100, 1, |items: Arc<[u32]>| async move {
            if items.contains(&13) {
                return Err(sqlx::Error::Protocol("13 refused".into()));
            }
            Ok(items.to_vec())
        });
        let calls: Vec<_> = [11u32, 12, 13, 14]
            .into_iter()
            .map(|n| {
                let checker = checker.clone();
                tokio::spawn(async move { checker.submit(n).await })
            })
            .collect();
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for call in calls {
            match call.await {
                Ok(Ok(n)) => ok.push(n),
                Ok(Err(error)) => failed.push(error.to_string()),
                Err(error) => failed.push(error.to_string()),
            }
        }
        assert_eq!(ok, [11, 12, 14]);
        assert_eq!(failed.len(), 1);
        assert!(failed[0].contains("13 refused"), "{failed:?}");
    }
}
