//! Group commit: items that arrive together (handlers' records, HTTP
//! requests) share one database round trip and one commit.
//!
//! Each handler hands its item to a [`Batcher`] and waits for its own reply.
//! A driver task takes everything that queued while the previous batches ran
//! (up to `max_batch`) and runs the batch function on it, at most
//! `concurrency` batches at a time. There is no timer: under light load a
//! batch is one item and costs what it did alone; under load batches grow by
//! themselves, the way PostgreSQL's group commit turns a flush per commit
//! into a flush per group. A reply still waits for the commit that holds its
//! item, so the guarantee is the one a transaction per item gave.
//!
//! A batch runs on a task of its own: a handler that stops waiting (its
//! record abandoned at a rebalance) cannot cancel a statement half way. The
//! item may still commit; its redelivery then finds it processed.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

/// One item of a batch and where its reply goes. A job dropped without a
/// reply tells its waiter that the batch never answered.
pub struct Job<I, O> {
    pub item: I,
    reply: oneshot::Sender<O>,
}

impl<I, O> Job<I, O> {
    pub fn reply(self, output: O) {
        self.into_parts().1.send(output);
    }

    /// The item and where its reply goes, to keep the items of a batch
    /// together while the replies wait.
    pub fn into_parts(self) -> (I, Reply<O>) {
        (self.item, Reply(self.reply))
    }
}

/// Where one job's reply goes.
pub struct Reply<O>(oneshot::Sender<O>);

impl<O> Reply<O> {
    pub fn send(self, output: O) {
        // The waiter may have gone (its record abandoned, its client hung
        // up): the commit stands either way and its retry finds it.
        if self.0.send(output).is_err() {
            tracing::debug!("a batched item's waiter left before its reply");
        }
    }
}

/// The batch is gone without a reply: the driver stopped (shutdown) or the
/// batch function panicked.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the batch {0} stopped before it answered")]
pub struct Stopped(pub &'static str);

pub struct Batcher<I, O> {
    name: &'static str,
    queue: mpsc::UnboundedSender<Job<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            queue: self.queue.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the driver; it stops once every clone of the batcher is
    /// dropped and the queue is empty. `run` must reply to every job.
    pub fn spawn<F, Fut>(name: &'static str, max_batch: usize, concurrency: usize, run: F) -> Self
    where
        F: Fn(Vec<Job<I, O>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (queue, mut jobs) = mpsc::unbounded_channel::<Job<I, O>>();
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        let max_batch = max_batch.max(1);
        tokio::spawn(async move {
            while let Some(first) = jobs.recv().await {
                // Waiting for a slot is what lets the next batch grow.
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let mut batch = Vec::with_capacity(max_batch.min(64));
                batch.push(first);
                while batch.len() < max_batch {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let work = run(batch);
                tokio::spawn(async move {
                    work.await;
                    drop(permit);
                });
            }
        });
        Self { name, queue }
    }

    /// Queues `item` and waits for its batch to answer.
    pub async fn submit(&self, item: I) -> Result<O, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { item, reply })
            .map_err(|_| Stopped(self.name))?;
        answer.await.map_err(|_| Stopped(self.name))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn items_that_queue_together_share_a_batch_and_each_gets_its_reply() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::spawn("double", 100, 1, move |jobs: Vec<Job<u32, u32>>| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(jobs.len());
                // Slow enough that the rest queue behind the first batch.
                tokio::time::sleep(Duration::from_millis(50)).await;
                for job in jobs {
                    let doubled = job.item * 2;
                    job.reply(doubled);
                }
            }
        });
        let answers = futures::future::join_all((0..50).map(|n| batcher.submit(n))).await;
        for (n, answer) in answers.into_iter().enumerate() {
            assert_eq!(answer.ok(), Some(n as u32 * 2));
        }
        let sizes = sizes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(sizes.iter().sum::<usize>(), 50);
        assert!(sizes.len() < 50, "items were batched: {sizes:?}");
    }

    #[tokio::test]
    async fn a_job_dropped_without_a_reply_is_an_error_not_a_hang() {
        let batcher = Batcher::spawn("drop", 10, 1, |jobs: Vec<Job<u32, u32>>| async move {
            drop(jobs);
        });
        assert!(batcher.submit(1).await.is_err());
    }
}
