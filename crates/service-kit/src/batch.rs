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
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};

/// One item of a batch and where its reply goes. A job dropped without a
/// reply tells its waiter that the batch never answered.
pub struct Job<I, O> {
    pub item: I,
    /// None for an item queued with [`Batcher::enqueue`]: nobody waits.
    reply: Option<oneshot::Sender<O>>,
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
pub struct Reply<O>(Option<oneshot::Sender<O>>);

impl<O> Reply<O> {
    /// Whether the item was queued with nobody waiting for it, so that the
    /// batch function itself must report what went wrong with it.
    pub fn is_detached(&self) -> bool {
        self.0.is_none()
    }

    pub fn send(self, output: O) {
        let Some(waiter) = self.0 else { return };
        // The waiter may have gone (its record abandoned, its client hung
        // up): the commit stands either way and its retry finds it.
        if waiter.send(output).is_err() {
            tracing::debug!("a batched item's waiter left before its reply");
        }
    }
}

/// The batch is gone without a reply: the driver stopped (shutdown) or the
/// batch function panicked.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the batch {0} stopped before it answered")]
pub struct Stopped(pub &'static str);

/// What the driver's queue carries: items, and requests to hear when
/// everything queued before them has been run.
enum Entry<I, O> {
    Job(Job<I, O>),
    Flush(oneshot::Sender<()>),
}

pub struct Batcher<I, O> {
    name: &'static str,
    queue: mpsc::UnboundedSender<Entry<I, O>>,
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
        Self::spawn_lingering(name, max_batch, concurrency, Duration::ZERO, run)
    }

    /// [`Batcher::spawn`], with each batch held open up to `linger` after
    /// its first item for more to join it (unless it fills first): for work
    /// whose cost is per batch and whose wait is long beside `linger` (a
    /// call to a provider that answers in 100 ms). Without it, items that
    /// arrive in a burst take every slot in batches of one or two, and the
    /// rest of the burst waits for a whole batch to finish.
    pub fn spawn_lingering<F, Fut>(
        name: &'static str,
        max_batch: usize,
        concurrency: usize,
        linger: Duration,
        run: F,
    ) -> Self
    where
        F: Fn(Vec<Job<I, O>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (queue, mut entries) = mpsc::unbounded_channel::<Entry<I, O>>();
        let concurrency = concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let max_batch = max_batch.max(1);
        tokio::spawn(async move {
            while let Some(entry) = entries.recv().await {
                let first = match entry {
                    Entry::Job(job) => job,
                    Entry::Flush(done) => {
                        flush(&slots, concurrency, done).await;
                        continue;
                    }
                };
                // Waiting for a slot is what lets the next batch grow.
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let mut batch = Vec::with_capacity(max_batch.min(64));
                batch.push(first);
                let mut flush_after = None;
                let lingered = tokio::time::Instant::now() + linger;
                while batch.len() < max_batch {
                    let next = match entries.try_recv() {
                        Ok(entry) => Some(entry),
                        Err(_) if linger.is_zero() => None,
                        Err(_) => tokio::time::timeout_at(lingered, entries.recv())
                            .await
                            .ok()
                            .flatten(),
                    };
                    match next {
                        Some(Entry::Job(job)) => batch.push(job),
                        Some(Entry::Flush(done)) => {
                            flush_after = Some(done);
                            break;
                        }
                        None => break,
                    }
                }
                let work = run(batch);
                tokio::spawn(async move {
                    work.await;
                    drop(permit);
                });
                if let Some(done) = flush_after {
                    flush(&slots, concurrency, done).await;
                }
            }
        });
        Self { name, queue }
    }

    /// Queues `item` and waits for its batch to answer.
    pub async fn submit(&self, item: I) -> Result<O, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Entry::Job(Job {
                item,
                reply: Some(reply),
            }))
            .map_err(|_| Stopped(self.name))?;
        answer.await.map_err(|_| Stopped(self.name))
    }

    /// Queues `item` for the next batch without waiting for it: for writes
    /// whose loss is harmless and whose caller has already answered.
    pub fn enqueue(&self, item: I) -> Result<(), Stopped> {
        self.queue
            .send(Entry::Job(Job { item, reply: None }))
            .map_err(|_| Stopped(self.name))
    }

    /// Waits until every item queued before this call has been run, waited
    /// for or not: a reader that must see what was [`enqueue`](Self::enqueue)d
    /// calls this first.
    pub async fn flush(&self) -> Result<(), Stopped> {
        let (done, flushed) = oneshot::channel();
        self.queue
            .send(Entry::Flush(done))
            .map_err(|_| Stopped(self.name))?;
        flushed.await.map_err(|_| Stopped(self.name))
    }
}

/// Every batch already started holds a slot: holding them all means each
/// has finished.
async fn flush(slots: &Arc<Semaphore>, concurrency: usize, done: oneshot::Sender<()>) {
    let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
    if let Ok(permits) = slots.acquire_many(all).await {
        drop(permits);
    }
    if done.send(()).is_err() {
        tracing::debug!("a flush's waiter left before the flush ended");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

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

    /// The sizes of the batches `batcher`'s run function saw, and the
    /// batcher: each item answers its own value.
    fn recording(linger: Duration) -> (Arc<Mutex<Vec<usize>>>, Batcher<u32, u32>) {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::spawn_lingering("linger", 10, 1, linger, move |jobs| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(jobs.len());
                for job in jobs {
                    let item = job.item;
                    job.reply(item);
                }
            }
        });
        (sizes, batcher)
    }

    /// Two items 10 ms apart, each answered.
    async fn two_items_apart(batcher: &Batcher<u32, u32>) {
        let first = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.submit(1).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(batcher.submit(2).await.unwrap(), 2);
        assert_eq!(first.await.unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_arriving_within_the_linger_joins_the_open_batch() {
        let (sizes, batcher) = recording(Duration::from_millis(50));
        two_items_apart(&batcher).await;
        assert_eq!(*sizes.lock().unwrap(), [2]);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_linger_a_batch_goes_with_what_has_queued() {
        let (sizes, batcher) = recording(Duration::ZERO);
        two_items_apart(&batcher).await;
        assert_eq!(*sizes.lock().unwrap(), [1, 1]);
    }

    #[tokio::test]
    async fn an_enqueued_item_is_run_with_nobody_waiting_for_it() {
        let (seen, mut ran) = mpsc::unbounded_channel();
        let batcher = Batcher::spawn("detached", 10, 1, move |jobs: Vec<Job<u32, ()>>| {
            let seen = seen.clone();
            async move {
                for job in jobs {
                    let (item, reply) = job.into_parts();
                    if seen.send((item, reply.is_detached())).is_err() {
                        return;
                    }
                    reply.send(());
                }
            }
        });
        assert!(batcher.enqueue(7).is_ok());
        let ran = tokio::time::timeout(Duration::from_secs(5), ran.recv()).await;
        assert_eq!(ran.ok().flatten(), Some((7, true)));
    }

    #[tokio::test]
    async fn a_flush_returns_only_after_every_item_queued_before_it_ran() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let seen = written.clone();
        let batcher = Batcher::spawn("slow", 2, 1, move |jobs: Vec<Job<u32, ()>>| {
            let seen = seen.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                for job in jobs {
                    let (item, reply) = job.into_parts();
                    seen.lock().unwrap_or_else(|e| e.into_inner()).push(item);
                    reply.send(());
                }
            }
        });
        for n in 0..5 {
            assert!(batcher.enqueue(n).is_ok());
        }
        assert!(batcher.flush().await.is_ok());
        let written = written.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(written, [0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_job_dropped_without_a_reply_is_an_error_not_a_hang() {
        let batcher = Batcher::spawn("drop", 10, 1, |jobs: Vec<Job<u32, u32>>| async move {
            drop(jobs);
        });
        assert!(batcher.submit(1).await.is_err());
    }
}
