//! The consumer runtime.
//!
//! One OS thread polls librdkafka (the only thread that touches the consumer,
//! so rebalance callbacks, commits and pauses never race); handlers run as
//! tokio tasks. Each assigned partition has a [`PartitionScheduler`] that
//! decides which fetched records may run, and the commit position, which is
//! always the lowest offset not yet finished: a record is finished when its
//! handler succeeded or its dead letter was acknowledged, never before.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use paystream_contract::{Codec, Event, dead_letter_topic};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::OwnedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::KafkaConfig;
use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::error::{BusError, HandlerError, decode_class};
use crate::headers::{self, HeaderList};
use crate::metrics::METRICS;
use crate::retry::{RetryPolicy, capped_doubling};
use crate::scheduler::{Ordering, PartitionScheduler};
use crate::scope::RecordScope;
use prometheus::{Histogram, IntCounter};

/// A decoded record and where it came from.
#[derive(Debug, Clone)]
pub struct Record<E> {
    pub event: E,
    pub meta: RecordMeta,
}

#[derive(Debug, Clone)]
pub struct RecordMeta {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub headers: HeaderList,
    pub group: Arc<str>,
    /// 1 on the first attempt, 2 on the first retry, ...
    pub attempt: u32,
}

impl RecordMeta {
    pub(crate) fn of(
        record: &OwnedMessage,
        headers: HeaderList,
        group: Arc<str>,
        attempt: u32,
    ) -> Self {
        Self {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            key: record.key().map(<[u8]>::to_vec),
            headers,
            group,
            attempt,
        }
    }
}

/// What a service does with each record. Return `Ok` once the record's
/// effects are durable (business rejections included); return an error to
/// have the runtime retry or dead-letter it.
pub trait Handler<E: Event>: Send + Sync + 'static {
    fn handle(&self, record: Record<E>) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// How repeated deliveries affect this handler, for the start-up log.
    fn delivery(&self) -> &'static str {
        "at-least-once: a redelivered record runs the handler again"
    }
}

impl<E, F, Fut> Handler<E> for F
where
    E: Event,
    F: Fn(Record<E>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send,
{
    fn handle(&self, record: Record<E>) -> impl Future<Output = Result<(), HandlerError>> + Send {
        self(record)
    }
}

/// How a consumer group works through its topic.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub group: String,
    pub ordering: Ordering,
    pub retry: RetryPolicy,
    /// Fetched-but-unfinished records per partition above which fetching
    /// pauses; it resumes below half. Records come back a few hundred
    /// milliseconds after a resume, so the half left must keep the handlers
    /// busy that long: too small a buffer starves a fast consumer.
    pub max_buffered_per_partition: usize,
    pub commit_interval: Duration,
    /// On shutdown or revocation, how long in-flight records get to finish
    /// before they are abandoned (left uncommitted, so they are redelivered).
    pub drain_deadline: Duration,
    /// Back-off between failed dead-letter writes: from the first, doubling
    /// up to the second.
    pub dead_letter_backoff: (Duration, Duration),
    /// Replication of the dead-letter topic the consumer creates if missing.
    pub dead_letter_replication: i32,
}

impl ConsumerSettings {
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            ordering: Ordering::KeyOrdered { max_in_flight: 100 },
            retry: RetryPolicy::default(),
            max_buffered_per_partition: 10_000,
            commit_interval: Duration::from_millis(200),
            drain_deadline: Duration::from_secs(10),
            dead_letter_backoff: (Duration::from_millis(500), Duration::from_secs(30)),
            dead_letter_replication: 1,
        }
    }

    pub fn ordering(mut self, ordering: Ordering) -> Self {
        self.ordering = ordering;
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn drain_deadline(mut self, deadline: Duration) -> Self {
        self.drain_deadline = deadline;
        self
    }

    pub fn dead_letter_backoff(mut self, first: Duration, cap: Duration) -> Self {
        self.dead_letter_backoff = (first, cap);
        self
    }

    fn buffer_limit(&self) -> usize {
        self.max_buffered_per_partition
            .max(self.ordering.max_in_flight() * 10)
    }
}

/// A consumer of the events of type `E` from their topic.
pub struct Consumer<E> {
    kafka: KafkaConfig,
    settings: ConsumerSettings,
    codec: Codec,
    dead_letters: Arc<dyn DeadLetterSink>,
    event: PhantomData<fn() -> E>,
}

impl<E: Event> Consumer<E> {
    pub fn new(
        kafka: KafkaConfig,
        settings: ConsumerSettings,
        codec: Codec,
        dead_letters: Arc<dyn DeadLetterSink>,
    ) -> Self {
        Self {
            kafka,
            settings,
            codec,
            dead_letters,
            event: PhantomData,
        }
    }

    /// Consumes until `shutdown` is cancelled, then finishes or abandons the
    /// records in flight within the drain deadline, commits what finished and
    /// leaves the group.
    pub async fn run<H: Handler<E>>(
        self,
        handler: H,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        let topic = self.kafka.topic(E::TOPIC);
        let topic = topic.as_str();
        let group: Arc<str> = self.settings.group.as_str().into();
        self.ensure_dead_letter_topic(topic).await?;
        tracing::info!(
            topic,
            group = %group,
            ordering = ?self.settings.ordering,
            retry = ?self.settings.retry.delays,
            delivery = handler.delivery(),
            transactions = "off: offsets are committed after effects (at-least-once delivery)",
            "consumer starting"
        );
        let last_finished_ms = Arc::new(AtomicI64::new(now_ms()));
        let worker = Arc::new(Worker {
            handler,
            codec: self.codec,
            dead_letters: self.dead_letters,
            retry: self.settings.retry.clone(),
            dead_letter_backoff: self.settings.dead_letter_backoff,
            group: group.clone(),
            last_finished_ms: last_finished_ms.clone(),
            metrics: WorkerMetrics::new(topic, &group),
            event: PhantomData,
        });
        let partitions = Arc::new(Partitions {
            topic: topic.to_owned(),
            ordering: self.settings.ordering,
            drain_deadline: self.settings.drain_deadline,
            group: group.clone(),
            owned: Mutex::default(),
            recommit: AtomicBool::new(false),
            start: Arc::new({
                let worker = worker.clone();
                let runtime = Handle::current();
                move |partition: Arc<PartitionWork>, batch| {
                    spawn_batch(&runtime, &worker, &partition, batch);
                }
            }),
        });
        let context = BusContext {
            partitions: partitions.clone(),
        };
        let consumer: BaseConsumer<BusContext> = self
            .kafka
            .consumer(&group)
            .set("client.id", format!("{group}-consumer"))
            .set("statistics.interval.ms", "5000")
            .create_with_context(context)?;
        consumer.subscribe(&[topic])?;
        let settings = self.settings;
        tokio::task::spawn_blocking(move || {
            poll_loop(
                &consumer,
                &partitions,
                &settings,
                &last_finished_ms,
                &shutdown,
            );
            partitions.release_all(&consumer);
            consumer.unsubscribe();
            tracing::info!(group = %settings.group, "consumer stopped");
        })
        .await
        .map_err(|error| BusError::PollThread(error.to_string()))
    }

    /// Fails fast if the topic is missing; creates the dead-letter topic, with
    /// as many partitions, unless it exists (deployments that forbid
    /// CreateTopics to services pre-create it).
    async fn ensure_dead_letter_topic(&self, topic: &str) -> Result<(), BusError> {
        let admin: AdminClient<DefaultClientContext> = self.kafka.admin().create()?;
        let partitions = partition_count(&admin, topic)?
            .ok_or_else(|| BusError::UnknownTopic(topic.to_owned()))?;
        let name = dead_letter_topic(topic, &self.settings.group);
        if partition_count(&admin, &name)?.is_some() {
            return Ok(());
        }
        let wanted = NewTopic::new(
            &name,
            i32::try_from(partitions).unwrap_or(i32::MAX),
            TopicReplication::Fixed(self.settings.dead_letter_replication),
        );
        let results = admin
            .create_topics(
                &[wanted],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(BusError::DeadLetterTopic {
                        topic,
                        reason: code.to_string(),
                    });
                }
            }
        }
        tracing::info!(topic = %name, partitions, "created dead-letter topic");
        Ok(())
    }
}

fn partition_count(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<Option<usize>, BusError> {
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .filter(|count| *count > 0))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A handler panicking cannot poison these: they are only locked for
    // bookkeeping that does not panic. Recovering keeps the consumer alive.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

type Batch = Vec<(i64, OwnedMessage)>;
type StartFn = dyn Fn(Arc<PartitionWork>, Batch) + Send + Sync;

/// One assigned partition's work. A new one is made on each assignment, so a
/// handler finishing after its partition was revoked touches only the old one.
struct PartitionWork {
    topic: String,
    partition: i32,
    state: Mutex<PartitionState>,
    idle: Condvar,
    cancel: CancellationToken,
}

struct PartitionState {
    scheduler: PartitionScheduler<OwnedMessage>,
    committed: Option<i64>,
    paused: bool,
}

impl PartitionWork {
    /// Records the end of a record's work; returns the records that may
    /// start now.
    fn finished(&self, offset: i64, finished: bool) -> Batch {
        let next = {
            let mut state = lock(&self.state);
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
struct Partitions {
    topic: String,
    ordering: Ordering,
    drain_deadline: Duration,
    group: Arc<str>,
    owned: Mutex<HashMap<(String, i32), Arc<PartitionWork>>>,
    start: Arc<StartFn>,
    /// Set when an asynchronous commit failed: the next interval commits
    /// every partition's position again, not only those that advanced.
    recommit: AtomicBool,
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
    fn accept(&self, record: OwnedMessage, buffer_limit: usize) -> Option<Arc<PartitionWork>> {
        let work = self.work(record.topic(), record.partition());
        let (batch, pause) = {
            let mut state = lock(&work.state);
            let offset = record.offset();
            let key = record.key().map(<[u8]>::to_vec);
            let batch = state.scheduler.accept(offset, key, record);
            let pause = !state.paused && state.scheduler.buffered() >= buffer_limit;
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
    fn release<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, released: &[(String, i32)]) {
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

    fn release_all<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) {
        let keys: Vec<(String, i32)> = lock(&self.owned).keys().cloned().collect();
        self.release(consumer, &keys);
    }
}

struct BusContext {
    partitions: Arc<Partitions>,
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

fn poll_loop(
    consumer: &BaseConsumer<BusContext>,
    partitions: &Partitions,
    settings: &ConsumerSettings,
    last_finished_ms: &AtomicI64,
    shutdown: &CancellationToken,
) {
    let buffer_limit = settings.buffer_limit();
    let mut last_tick = Instant::now();
    while !shutdown.is_cancelled() {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => {
                if let Some(work) = partitions.accept(message.detach(), buffer_limit) {
                    set_paused(consumer, &work, true);
                }
            }
            Some(Err(error)) => {
                tracing::warn!(group = %settings.group, %error, "consumer error");
            }
            None => {}
        }
        resume_drained(consumer, partitions, buffer_limit);
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
    buffer_limit: usize,
) {
    for work in partitions.all() {
        let resume = {
            let mut state = lock(&work.state);
            let resume = state.paused && state.scheduler.buffered() < buffer_limit / 2;
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
    let mut list = TopicPartitionList::new();
    let mut buffered = 0;
    let recommit = partitions.recommit.swap(false, AtomicOrdering::Relaxed);
    for work in partitions.all() {
        let mut state = lock(&work.state);
        buffered += state.scheduler.buffered();
        let Some(position) = state.scheduler.commit_position() else {
            continue;
        };
        if (recommit || state.committed.is_none_or(|committed| position > committed))
            && list
                .add_partition_offset(&work.topic, work.partition, Offset::Offset(position))
                .is_ok()
        {
            state.committed = Some(position);
        }
    }
    if list.count() > 0
        && let Err(error) = consumer.commit(&list, CommitMode::Async)
    {
        tracing::warn!(group, %error, "cannot queue offset commit");
    }
    METRICS
        .in_flight
        .with_label_values(&[partitions.topic.as_str(), group])
        .set(i64::try_from(buffered).unwrap_or(i64::MAX));
    METRICS
        .seconds_since_last_record
        .with_label_values(&[group])
        .set((now_ms() - last_finished_ms.load(AtomicOrdering::Relaxed)) / 1000);
}

/// Everything a handler task needs, shared by all of them.
struct Worker<E, H> {
    handler: H,
    codec: Codec,
    dead_letters: Arc<dyn DeadLetterSink>,
    retry: RetryPolicy,
    dead_letter_backoff: (Duration, Duration),
    group: Arc<str>,
    last_finished_ms: Arc<AtomicI64>,
    metrics: WorkerMetrics,
    event: PhantomData<fn() -> E>,
}

/// This consumer's metric series, looked up once rather than per record.
struct WorkerMetrics {
    processed: IntCounter,
    retried: IntCounter,
    dead_letter_write_failures: IntCounter,
    handler_seconds: Histogram,
}

impl WorkerMetrics {
    fn new(topic: &str, group: &str) -> Self {
        let labels = [topic, group];
        Self {
            processed: METRICS.processed.with_label_values(&labels),
            retried: METRICS.retried.with_label_values(&labels),
            dead_letter_write_failures: METRICS
                .dead_letter_write_failures
                .with_label_values(&labels),
            handler_seconds: METRICS.handler_seconds.with_label_values(&labels),
        }
    }
}

fn spawn_batch<E: Event, H: Handler<E>>(
    runtime: &Handle,
    worker: &Arc<Worker<E, H>>,
    partition: &Arc<PartitionWork>,
    batch: Batch,
) {
    for (offset, record) in batch {
        let worker = worker.clone();
        let partition = partition.clone();
        runtime.spawn(async move {
            let finished = worker.process(&record, &partition.cancel).await;
            if finished {
                worker
                    .last_finished_ms
                    .store(now_ms(), AtomicOrdering::Relaxed);
            }
            let next = partition.finished(offset, finished);
            spawn_batch(&Handle::current(), &worker, &partition, next);
        });
    }
}

/// Why an attempt at a record failed.
enum Failure {
    Transient { class: &'static str, reason: String },
    Permanent { class: &'static str, reason: String },
}

impl<E: Event, H: Handler<E>> Worker<E, H> {
    /// Handles one record to the end: success, or its dead letter written.
    /// Returns false if it was abandoned on cancellation, unfinished.
    async fn process(&self, record: &OwnedMessage, cancel: &CancellationToken) -> bool {
        let headers = headers::to_list_owned(record);
        let span = tracing::info_span!(
            "consume",
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.destination.name = record.topic(),
            messaging.kafka.partition = record.partition(),
            messaging.kafka.offset = record.offset(),
            messaging.consumer.group.name = %self.group,
            correlation_id = headers::text(&headers, headers::CORRELATION_ID).unwrap_or_default(),
            event_id = tracing::field::Empty,
        );
        // Continues the producer's trace: the consume span is its child.
        let _ = span.set_parent(headers::extract_context(&headers));
        self.process_in_span(record, headers, cancel)
            .instrument(span)
            .await
    }

    async fn process_in_span(
        &self,
        record: &OwnedMessage,
        headers: HeaderList,
        cancel: &CancellationToken,
    ) -> bool {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = tokio::select! {
                biased;
                () = cancel.cancelled() => return false,
                outcome = self.attempt(record, &headers, attempt) => outcome,
            };
            let failure = match outcome {
                Ok(()) => {
                    self.metrics.processed.inc();
                    return true;
                }
                Err(failure) => failure,
            };
            match failure {
                Failure::Transient { class, reason } => match self.retry.delay_after(attempt) {
                    Some(delay) => {
                        self.metrics.retried.inc();
                        tracing::warn!(attempt, ?delay, %reason, "transient failure; retrying this key after a back-off");
                        if !sleep_unless_cancelled(delay, cancel).await {
                            return false;
                        }
                    }
                    None => {
                        let reason = format!("gave up after {attempt} attempts: {reason}");
                        let class = if class == "transient" {
                            "retries-exhausted"
                        } else {
                            class
                        };
                        return self
                            .dead_letter(record, class, &reason, attempt, cancel)
                            .await;
                    }
                },
                Failure::Permanent { class, reason } => {
                    return self
                        .dead_letter(record, class, &reason, attempt, cancel)
                        .await;
                }
            }
        }
    }

    async fn attempt(
        &self,
        record: &OwnedMessage,
        headers: &HeaderList,
        attempt: u32,
    ) -> Result<(), Failure> {
        let event = match self.codec.decode::<E>(record.payload()).await {
            Ok(event) => event,
            Err(error) => {
                let class = decode_class(&error);
                let reason = error.to_string();
                return Err(if error.is_transient() {
                    Failure::Transient { class, reason }
                } else {
                    Failure::Permanent { class, reason }
                });
            }
        };
        let span = tracing::Span::current();
        span.record(
            "event_id",
            tracing::field::display(event.envelope().event_id),
        );
        if headers::text(headers, headers::CORRELATION_ID).is_none() {
            span.record("correlation_id", event.envelope().correlation_id.as_str());
        }
        let scope = RecordScope::new(Some(event.envelope().clone()), headers.clone());
        let meta = RecordMeta::of(record, headers.clone(), self.group.clone(), attempt);
        let timer = self.metrics.handler_seconds.start_timer();
        let result = scope.run(self.handler.handle(Record { event, meta })).await;
        timer.observe_duration();
        result.map_err(|error| match error {
            HandlerError::Transient(reason) => Failure::Transient {
                class: "transient",
                reason,
            },
            HandlerError::Permanent(reason) => Failure::Permanent {
                class: "handler",
                reason,
            },
        })
    }

    /// Writes the record's dead letter, retrying until the write is
    /// acknowledged: until then the record is unfinished and its offset is
    /// not committed.
    async fn dead_letter(
        &self,
        record: &OwnedMessage,
        class: &str,
        reason: &str,
        attempts: u32,
        cancel: &CancellationToken,
    ) -> bool {
        let letter = DeadLetter::of(record, &self.group, class, reason, attempts);
        let mut failures = 0;
        loop {
            let written = tokio::select! {
                biased;
                () = cancel.cancelled() => return false,
                written = self.dead_letters.write(&letter) => written,
            };
            match written {
                Ok(()) => {
                    METRICS
                        .dead_lettered
                        .with_label_values(&[record.topic(), &*self.group, class])
                        .inc();
                    tracing::error!(
                        class,
                        reason,
                        attempts,
                        dead_letter_topic = %letter.topic,
                        "record dead-lettered"
                    );
                    return true;
                }
                Err(error) => {
                    failures += 1;
                    self.metrics.dead_letter_write_failures.inc();
                    let (first, cap) = self.dead_letter_backoff;
                    let delay = capped_doubling(first, cap, failures);
                    tracing::warn!(%error, failures, ?delay, "dead-letter write failed; the offset stays uncommitted, retrying");
                    if !sleep_unless_cancelled(delay, cancel).await {
                        return false;
                    }
                }
            }
        }
    }
}

async fn sleep_unless_cancelled(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}
