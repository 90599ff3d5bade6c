//! One record's life: decode it, run the handler in its context, make the
//! effects durable, retry a transient failure on the schedule, and
//! dead-letter what cannot succeed. A handler that panics is a permanent
//! failure like any other: its record is dead-lettered (class `panic`) and
//! the partition goes on.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::time::Duration;

use futures::FutureExt as _;
use paystream_contract::{Codec, Inbound, Topic};
use prometheus::{Histogram, IntCounter, IntGauge};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::partitions::{Batch, PartitionWork, now_ms};
use super::{ConsumerSettings, Record, RecordMeta};
use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::effects::{Begun, Effects};
use crate::error::{HandlerError, decode_class};
use crate::handler::Handler;
use crate::headers::{self, SharedHeaders};
use crate::metrics::METRICS;
use crate::retry::{RetryPolicy, capped_doubling};

/// The dead-letter class of a record whose handler panicked.
pub const PANIC_CLASS: &str = "panic";

/// Everything a handler task needs, shared by all of them.
pub(super) struct Worker<I, H> {
    handler: H,
    effects: Effects,
    codec: Codec,
    dead_letters: Arc<dyn DeadLetterSink>,
    retry: RetryPolicy,
    dead_letter_backoff: (Duration, Duration),
    group: Arc<str>,
    last_finished_ms: Arc<AtomicI64>,
    /// By the cluster's topic name: the contract topic it stands for and
    /// its metric series.
    topics: HashMap<String, TopicEntry>,
    event: PhantomData<fn() -> I>,
}

struct TopicEntry {
    topic: Topic,
    metrics: WorkerMetrics,
}

/// One topic's metric series for this group, looked up once rather than per record.
struct WorkerMetrics {
    processed: IntCounter,
    retried: IntCounter,
    duplicates: IntCounter,
    dead_letter_write_failures: IntCounter,
    dead_letter_depth: IntGauge,
    handler_seconds: Histogram,
}

impl WorkerMetrics {
    fn new(topic: &str, group: &str) -> Self {
        let labels = [topic, group];
        Self {
            processed: METRICS.processed.with_label_values(&labels),
            retried: METRICS.retried.with_label_values(&labels),
            duplicates: METRICS.duplicates_skipped.with_label_values(&labels),
            dead_letter_write_failures: METRICS
                .dead_letter_write_failures
                .with_label_values(&labels),
            // Touched now, so the series shows 0 before the first dead
            // letter and an alert on its increase sees that one too.
            dead_letter_depth: METRICS.dead_letter_depth.with_label_values(&labels),
            handler_seconds: METRICS.handler_seconds.with_label_values(&labels),
        }
    }
}

impl<I, H> Worker<I, H> {
    pub(super) fn new(
        handler: H,
        effects: Effects,
        codec: Codec,
        dead_letters: Arc<dyn DeadLetterSink>,
        settings: &ConsumerSettings,
        topics: HashMap<String, Topic>,
        last_finished_ms: Arc<AtomicI64>,
    ) -> Self {
        let topics = topics
            .into_iter()
            .map(|(name, topic)| {
                let metrics = WorkerMetrics::new(&name, &settings.group);
                (name, TopicEntry { topic, metrics })
            })
            .collect();
        Self {
            handler,
            effects,
            codec,
            dead_letters,
            retry: settings.retry.clone(),
            dead_letter_backoff: settings.dead_letter_backoff,
            group: settings.group.as_str().into(),
            last_finished_ms,
            topics,
            event: PhantomData,
        }
    }
}

pub(super) fn spawn_batch<I: Inbound, H: Handler<I>>(
    runtime: &Handle,
    worker: &Arc<Worker<I, H>>,
    partition: &Arc<PartitionWork>,
    batch: Batch,
) {
    for (offset, record) in batch {
        let worker = worker.clone();
        let partition = partition.clone();
        runtime.spawn(async move {
            // The record's work (the handler's future within) is kilobytes:
            // on the heap, the task moves a pointer, not all of it, when
            // tokio stores the task and again when it stores its output
            // (4% of validation's CPU in a profile).
            let finished = Box::pin(worker.process(&record, &partition.cancel)).await;
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

impl From<HandlerError> for Failure {
    fn from(error: HandlerError) -> Self {
        match error {
            HandlerError::Transient(reason) => Failure::Transient {
                class: "transient",
                reason,
            },
            HandlerError::Permanent(reason) => Failure::Permanent {
                class: "handler",
                reason,
            },
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

impl<I: Inbound, H: Handler<I>> Worker<I, H> {
    /// Handles one record to the end: success, or its dead letter written.
    /// Returns false if it was abandoned on cancellation, unfinished.
    async fn process(&self, record: &OwnedMessage, cancel: &CancellationToken) -> bool {
        let headers = headers::shared(record);
        let span = tracing::info_span!(
            "consume",
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.destination.name = record.topic(),
            messaging.kafka.partition = record.partition(),
            messaging.kafka.offset = record.offset(),
            messaging.consumer.group.name = &*self.group,
            correlation_id = headers::text(&headers, headers::CORRELATION_ID).unwrap_or_default(),
            event_id = tracing::field::Empty,
        );
        // Continues the producer's trace: the consume span is its child.
        headers::continue_trace(&span, &headers);
        self.process_in_span(record, headers, cancel)
            .instrument(span)
            .await
    }

    async fn process_in_span(
        &self,
        record: &OwnedMessage,
        headers: SharedHeaders,
        cancel: &CancellationToken,
    ) -> bool {
        let Some(entry) = self.topics.get(record.topic()) else {
            let reason = format!("{} is not a topic of this consumer", record.topic());
            return self
                .dead_letter(record, None, "unexpected-topic", &reason, 1, cancel)
                .await;
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = tokio::select! {
                biased;
                () = cancel.cancelled() => return false,
                outcome = self.attempt(record, entry, &headers, attempt) => outcome,
            };
            let failure = match outcome {
                Ok(()) => {
                    entry.metrics.processed.inc();
                    return true;
                }
                Err(failure) => failure,
            };
            match failure {
                Failure::Transient { class, reason } => match self.retry.delay_after(attempt) {
                    Some(delay) => {
                        entry.metrics.retried.inc();
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
                            .dead_letter(record, Some(entry), class, &reason, attempt, cancel)
                            .await;
                    }
                },
                Failure::Permanent { class, reason } => {
                    return self
                        .dead_letter(record, Some(entry), class, &reason, attempt, cancel)
                        .await;
                }
            }
        }
    }

    async fn attempt(
        &self,
        record: &OwnedMessage,
        entry: &TopicEntry,
        headers: &SharedHeaders,
        attempt: u32,
    ) -> Result<(), Failure> {
        let (topic, metrics) = (entry.topic, &entry.metrics);
        let event = match I::decode(&self.codec, topic, record.payload()).await {
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
        // Borrowed, not copied: the handler context takes the one copy.
        let envelope = event.envelope();
        let event_id = envelope.event_id;
        let span = tracing::Span::current();
        span.record("event_id", tracing::field::display(event_id));
        if headers::text(headers, headers::CORRELATION_ID).is_none() {
            span.record("correlation_id", envelope.correlation_id.as_str());
        }
        let mut ctx = match self
            .effects
            .begin(&self.group, topic, envelope, headers)
            .await
            .map_err(Failure::from)?
        {
            Begun::Fresh(ctx) => ctx,
            Begun::Duplicate => {
                metrics.duplicates.inc();
                tracing::info!(%event_id, "already processed; skipping the duplicate");
                return Ok(());
            }
        };
        let meta = RecordMeta::of(record, topic, headers.clone(), self.group.clone(), attempt);
        let timer = metrics.handler_seconds.start_timer();
        // A panic is caught here, not by tokio: the record must still end
        // (dead-lettered), or its offset and key would be stuck for good.
        let handled = AssertUnwindSafe(self.handler.handle(Record { event, meta }, &mut ctx))
            .catch_unwind()
            .await;
        timer.observe_duration();
        let skip_duplicate = || {
            metrics.duplicates.inc();
            tracing::info!(%event_id, "processed meanwhile by another delivery; this attempt is dropped");
            Ok(())
        };
        match handled {
            Ok(Ok(())) => match self.effects.finish(ctx).await {
                Ok(true) => Ok(()),
                Ok(false) => skip_duplicate(),
                Err(error) => Err(Failure::from(error)),
            },
            Ok(Err(_)) if ctx.is_duplicate() => skip_duplicate(),
            Ok(Err(error)) => Err(Failure::from(error)),
            Err(panic) => Err(Failure::Permanent {
                class: PANIC_CLASS,
                reason: format!("the handler panicked: {}", panic_message(panic.as_ref())),
            }),
        }
    }

    /// Writes the record's dead letter, retrying until the write is
    /// acknowledged: until then the record is unfinished and its offset is
    /// not committed.
    async fn dead_letter(
        &self,
        record: &OwnedMessage,
        entry: Option<&TopicEntry>,
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
                    match entry {
                        Some(entry) => entry.metrics.dead_letter_depth.inc(),
                        None => METRICS
                            .dead_letter_depth
                            .with_label_values(&[record.topic(), &*self.group])
                            .inc(),
                    }
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
                    if let Some(entry) = entry {
                        entry.metrics.dead_letter_write_failures.inc();
                    }
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
