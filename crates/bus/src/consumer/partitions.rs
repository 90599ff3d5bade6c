//! Partition bookkeeping: the partitions a consumer owns, which fetched
//! records may start, when fetching pauses, what may be committed, and how a
//! partition is handed over on revocation or shutdown. Everything here runs
//! on the poll thread or in librdkafka's callbacks from inside `poll`, so
//! commits, pauses and rebalances never race.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::ConsumerSettings;
use crate::metrics::METRICS;
use crate::scheduler::{Ordering, PartitionScheduler};

pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A handler panicking cannot poison these: they are only locked for
    // bookkeeping that does not panic. Recovering keeps the consumer alive.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) type Batch = Vec<(i64, OwnedMessage)>;
pub(super) type StartFn = dyn Fn(Arc<PartitionWork>, Batch) + Send + Sync;

/// One assigned partition's work. A new one is made on each assignment, so a
/// handler finishing after its partition was revoked touches only the old one.
pub(super) struct PartitionWork {
    pub(super) topic: String,
    pub(super) partition: i32,
    state: Mutex<PartitionState>,
    idle: Condvar,
    pub(super) cancel: CancellationToken,
}

struct PartitionState {
    scheduler: PartitionScheduler<OwnedMessage>,
    /// Payload and key bytes of the records accepted and not yet finished,
    /// by offset: the buffer is bounded in bytes as well as in records.
    sizes: HashMap<i64, usize>,
    bytes: usize,
    committed: Option<i64>,
    paused: bool,
}

impl PartitionState {
    fn over(&self, limits: &Limits) -> bool {
        self.scheduler.buffered() >= limits.records || self.bytes >= limits.bytes
    }

    fn under_half(&self, limits: &Limits) -> bool {
        self.scheduler.buffered() < limits.records / 2 && self.bytes < limits.bytes / 2
    }

    fn forget(&mut self, offset: i64) {
        if let Some(size) = self.sizes.remove(&offset) {
            self.bytes = self.bytes.saturating_sub(size);
        }
    }
}

/// When fetching pauses: buffered records or bytes per partition.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub records: usize,
    pub bytes: usize,
}

impl PartitionWork {
    /// Records the end of a record's work; returns the records that may
    /// start now.
    pub(super) fn finished(&self, offset: i64, finished: bool) -> Batch {
        let next = {
            let mut state = lock(&self.state);
            state.forget(offset);
            if finished {
                state.scheduler.finish(offset)
            } else {
                state.scheduler.abandon(offset);
                Vec::new()
            }
        };
        self.idle.notify_all();
        next
    }
}

/// The partitions this consumer owns, shared by the poll thread and the
/// rebalance callbacks (which librdkafka calls from inside `poll`).
pub(super) struct Partitions {
    pub(super) ordering: Ordering,
    pub(super) drain_deadline: Duration,
    pub(super) group: Arc<str>,
    pub(super) owned: Mutex<HashMap<(String, i32), Arc<PartitionWork>>>,
    pub(super) start: Arc<StartFn>,
    /// Set when an asynchronous commit failed: the next interval commits
    /// every partition's position again, not only those that advanced.
    pub(super) recommit: AtomicBool,
}

impl Partitions {
    fn work(&self, topic: &str, partition: i32) -> Arc<PartitionWork> {
        lock(&self.owned)
            .entry((topic.to_owned(), partition))
            .or_insert_with(|| {
                Arc::new(PartitionWork {
                    topic: topic.to_owned(),
                    partition,
                    state: Mutex::new(PartitionState {
                        scheduler: PartitionScheduler::new(self.ordering),
                        sizes: HashMap::new(),
                        bytes: 0,
                        committed: None,
                        paused: false,
                    }),
                    idle: Condvar::new(),
                    cancel: CancellationToken::new(),
                })
            })
            .clone()
    }

    fn all(&self) -> Vec<Arc<PartitionWork>> {
        lock(&self.owned).values().cloned().collect()
    }

    /// Takes a fetched record; says whether its partition should pause.
    fn accept(&self, record: OwnedMessage, limits: &Limits) -> Option<Arc<PartitionWork>> {
        let work = self.work(record.topic(), record.partition());
        let (batch, pause) = {
            let mut state = lock(&work.state);
            let offset = record.offset();
            let key = record.key().map(<[u8]>::to_vec);
            let size = record.payload().map_or(0, <[u8]>::len) + key.as_ref().map_or(0, Vec::len);
            state.sizes.insert(offset, size);
            state.bytes += size;
            let batch = state.scheduler.accept(offset, key, record);
            let pause = !state.paused && state.over(limits);
            if pause {
                state.paused = true;
            }
            (batch, pause)
        };
        if !batch.is_empty() {
            (self.start)(work.clone(), batch);
        }
        pause.then_some(work)
    }

    /// Hands partitions over: stop starting records, let the running ones
    /// finish within the drain deadline (then abandon them), and commit
    /// synchronously up to the first unfinished record.
    pub(super) fn release<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        released: &[(String, i32)],
    ) {
        let works: Vec<Arc<PartitionWork>> = {
            let mut owned = lock(&self.owned);
            released
                .iter()
                .filter_map(|key| owned.remove(key))
                .collect()
        };
        if works.is_empty() {
            return;
        }
        // Nothing new arrives (fetching has stopped, or librdkafka is inside
        // the revocation); let what was accepted finish, so the commit covers
        // it and the next owner repeats nothing. Past the deadline, records
        // still waiting are dropped and the running ones abandoned.
        let deadline = Instant::now() + self.drain_deadline;
        for work in &works {
            let mut state = lock(&work.state);
            while state.scheduler.buffered() > 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = work
                    .idle
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            state.scheduler.close();
            let abandoned = state.scheduler.running();
            drop(state);
            if abandoned > 0 {
                tracing::warn!(
                    topic = %work.topic,
                    partition = work.partition,
                    abandoned,
                    "drain deadline passed; abandoning records in flight (they will be redelivered)"
                );
                work.cancel.cancel();
                // Cancelled handlers stop at their next await; give them a
                // moment so their abandonment is recorded before the commit.
                let mut state = lock(&work.state);
                let grace = Instant::now() + Duration::from_secs(1);
                while state.scheduler.running() > 0 && Instant::now() < grace {
                    state = work
                        .idle
                        .wait_timeout(state, Duration::from_millis(50))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        let mut list = TopicPartitionList::new();
        for work in &works {
            let state = lock(&work.state);
            // Committed synchronously even if an asynchronous commit of the
            // same position is in flight: that one may yet fail.
            if let Some(position) = state.scheduler.commit_position()
                && list
                    .add_partition_offset(&work.topic, work.partition, Offset::Offset(position))
                    .is_ok()
            {
                tracing::info!(topic = %work.topic, partition = work.partition, position, "committing released partition");
            }
        }
        if list.count() > 0
            && let Err(error) = consumer.commit(&list, CommitMode::Sync)
        {
            tracing::warn!(%error, group = %self.group, "commit on release failed; the new owner re-reads from the previous commit");
        }
    }

    pub(super) fn release_all<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) {
        let keys: Vec<(String, i32)> = lock(&self.owned).keys().cloned().collect();
        self.release(consumer, &keys);
    }
}

pub(super) struct BusContext {
    pub(super) partitions: Arc<Partitions>,
}

impl ClientContext for BusContext {
    /// librdkafka's statistics (every `statistics.interval.ms`) carry each
    /// partition's lag behind the high watermark, measured from the committed
    /// offset: what a restart would have to re-read.
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, topic_stats) in &statistics.topics {
            for (partition, stats) in &topic_stats.partitions {
                if *partition >= 0 && stats.consumer_lag >= 0 {
                    METRICS
                        .lag
                        .with_label_values(&[
                            topic.as_str(),
                            &self.partitions.group,
                            &partition.to_string(),
                        ])
                        .set(stats.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for BusContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let released: Vec<(String, i32)> = list
                    .elements()
                    .iter()
                    .map(|element| (element.topic().to_owned(), element.partition()))
                    .collect();
                tracing::info!(group = %self.partitions.group, partitions = ?released, "partitions revoked");
                self.partitions.release(consumer, &released);
            }
            Rebalance::Assign(list) => {
                let assigned: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(group = %self.partitions.group, partitions = ?assigned, "partitions assigned");
            }
            Rebalance::Error(error) => {
                tracing::warn!(group = %self.partitions.group, %error, "rebalance error");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            self.partitions
                .recommit
                .store(true, AtomicOrdering::Relaxed);
            tracing::warn!(group = %self.partitions.group, %error, "offset commit failed; it is retried at the next interval");
        }
    }
}

pub(super) fn poll_loop(
    consumer: &BaseConsumer<BusContext>,
    partitions: &Partitions,
    settings: &ConsumerSettings,
    last_finished_ms: &AtomicI64,
    shutdown: &CancellationToken,
) {
    let limits = settings.limits();
    let mut last_tick = Instant::now();
    while !shutdown.is_cancelled() {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => {
                if let Some(work) = partitions.accept(message.detach(), &limits) {
                    set_paused(consumer, &work, true);
                }
            }
            Some(Err(error)) => {
                tracing::warn!(group = %settings.group, %error, "consumer error");
            }
            None => {}
        }
        resume_drained(consumer, partitions, &limits);
        if last_tick.elapsed() >= settings.commit_interval {
            commit_progress(consumer, partitions, settings, last_finished_ms);
            last_tick = Instant::now();
        }
    }
    tracing::info!(group = %settings.group, "shutdown: no more fetching; draining records in flight");
    for work in partitions.all() {
        set_paused(consumer, &work, true);
    }
}

fn set_paused<C: ConsumerContext>(consumer: &BaseConsumer<C>, work: &PartitionWork, pause: bool) {
    let mut list = TopicPartitionList::new();
    list.add_partition(&work.topic, work.partition);
    let result = if pause {
        consumer.pause(&list)
    } else {
        consumer.resume(&list)
    };
    if let Err(error) = result {
        tracing::warn!(topic = %work.topic, partition = work.partition, %error, pause, "cannot change fetching");
    }
}

fn resume_drained<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &Partitions,
    limits: &Limits,
) {
    for work in partitions.all() {
        let resume = {
            let mut state = lock(&work.state);
            let resume = state.paused && state.under_half(limits);
            if resume {
                state.paused = false;
            }
            resume
        };
        if resume {
            set_paused(consumer, &work, false);
        }
    }
}

fn commit_progress(
    consumer: &BaseConsumer<BusContext>,
    partitions: &Partitions,
    settings: &ConsumerSettings,
    last_finished_ms: &AtomicI64,
) {
    let group = settings.group.as_str();
    if let Err(error) = commit_advanced(partitions, |list| consumer.commit(list, CommitMode::Async))
    {
        tracing::warn!(group, %error, "cannot queue offset commit; it is tried again at the next interval");
    }
    let mut buffered: HashMap<String, usize> = HashMap::new();
    for work in partitions.all() {
        *buffered.entry(work.topic.clone()).or_default() += lock(&work.state).scheduler.buffered();
    }
    for (topic, buffered) in buffered {
        METRICS
            .in_flight
            .with_label_values(&[topic.as_str(), group])
            .set(i64::try_from(buffered).unwrap_or(i64::MAX));
    }
    METRICS
        .seconds_since_last_record
        .with_label_values(&[group])
        .set((now_ms() - last_finished_ms.load(AtomicOrdering::Relaxed)) / 1000);
}

/// Commits, through `commit`, every partition whose position advanced (all
/// of them after a failed asynchronous commit), and records a position as
/// committed only once `commit` has queued it: a commit that could not even
/// be queued is tried again at the next interval.
fn commit_advanced(
    partitions: &Partitions,
    commit: impl FnOnce(&TopicPartitionList) -> KafkaResult<()>,
) -> KafkaResult<()> {
    let mut list = TopicPartitionList::new();
    let mut positions = Vec::new();
    let recommit = partitions.recommit.swap(false, AtomicOrdering::Relaxed);
    for work in partitions.all() {
        let state = lock(&work.state);
        let Some(position) = state.scheduler.commit_position() else {
            continue;
        };
        if (recommit || state.committed.is_none_or(|committed| position > committed))
            && list
                .add_partition_offset(&work.topic, work.partition, Offset::Offset(position))
                .is_ok()
        {
            positions.push((work.clone(), position));
        }
    }
    if list.count() == 0 {
        return Ok(());
    }
    commit(&list)?;
    for (work, position) in positions {
        lock(&work.state).committed = Some(position);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;
    use rdkafka::error::KafkaError;

    use super::*;

    fn partitions() -> Partitions {
        Partitions {
            ordering: Ordering::KeyOrdered { max_in_flight: 10 },
            drain_deadline: Duration::from_secs(1),
            group: "g".into(),
            owned: Mutex::default(),
            start: Arc::new(|_, _| {}),
            recommit: AtomicBool::new(false),
        }
    }

    fn record(offset: i64) -> OwnedMessage {
        OwnedMessage::new(
            Some(b"value".to_vec()),
            Some(b"key".to_vec()),
            "t".to_owned(),
            Timestamp::NotAvailable,
            0,
            offset,
            None,
        )
    }

    /// The offsets each call of `commit_advanced` asked to commit.
    fn commit_with(partitions: &Partitions, queued: bool) -> Option<Vec<i64>> {
        let mut asked = None;
        let result = commit_advanced(partitions, |list| {
            asked = Some(
                list.elements()
                    .iter()
                    .filter_map(|element| element.offset().to_raw())
                    .collect(),
            );
            if queued {
                Ok(())
            } else {
                Err(KafkaError::ConsumerCommit(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ))
            }
        });
        assert_eq!(result.is_ok(), queued);
        asked
    }

    #[test]
    fn a_commit_that_could_not_be_queued_is_asked_for_again() {
        let partitions = partitions();
        let limits = Limits {
            records: 100,
            bytes: 1 << 20,
        };
        assert!(partitions.accept(record(0), &limits).is_none());
        let work = partitions.work("t", 0);
        assert!(work.finished(0, true).is_empty());
        assert_eq!(commit_with(&partitions, false), Some(vec![1]));
        assert_eq!(
            commit_with(&partitions, true),
            Some(vec![1]),
            "the position the failed call could not queue is committed at the next one"
        );
        assert_eq!(
            commit_with(&partitions, true),
            None,
            "nothing new to commit"
        );
    }

    fn state() -> PartitionState {
        PartitionState {
            scheduler: PartitionScheduler::new(Ordering::KeyOrdered { max_in_flight: 10 }),
            sizes: HashMap::new(),
            bytes: 0,
            committed: None,
            paused: false,
        }
    }

    #[test]
    fn the_fetch_buffer_is_bounded_in_bytes_as_well_as_in_records() {
        let limits = Limits {
            records: 10_000,
            bytes: 1024 * 1024,
        };
        let mut state = state();
        // Two records of 600 KiB: far under the record cap, over the byte cap.
        for offset in 0..2 {
            state.sizes.insert(offset, 600 * 1024);
            state.bytes += 600 * 1024;
        }
        assert!(state.over(&limits), "1.2 MiB buffered must pause fetching");
        state.forget(0);
        assert!(!state.over(&limits));
        assert!(
            !state.under_half(&limits),
            "600 KiB is not under half of 1 MiB"
        );
        state.forget(1);
        assert!(state.under_half(&limits));
        assert_eq!(state.bytes, 0);
    }
}
