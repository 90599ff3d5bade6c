//! Consume-transform-produce in Kafka transactions, for clusters that have
//! them (Apache Kafka, the compose stack; not nisshi, which refuses them).
//!
//! Records are taken in batches; each batch's outputs, its dead letters and
//! its input offsets (`send_offsets_to_transaction`) commit in one
//! transaction, and consumers downstream read with `read_committed`. If any
//! record of the batch fails transiently, or the commit fails, the whole
//! transaction is aborted and the same batch is tried again after a back-off:
//! an aborted transaction moves no offset. Within a batch records are handled
//! one at a time in offset order (transactions and the key-ordered
//! concurrency of [`crate::Consumer`] do not mix: a commit must not include a
//! record whose outputs are half sent).
//!
//! What no broker here can verify: that a `read_committed` reader never sees
//! an aborted batch's outputs, and that offsets sent to a transaction are
//! stored. See the README.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use paystream_contract::{Codec, Event};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::Producer as _;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::consumer::{ConsumerSettings, Record, RecordMeta};
use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::error::{BusError, HandlerError, ProduceError, decode_class};
use crate::handler::{Context, Handler};
use crate::headers;
use crate::producer::Producer;

/// Most records one transaction covers.
const MAX_BATCH: usize = 500;

pub struct TransactionalConsumer<E> {
    kafka: KafkaConfig,
    settings: ConsumerSettings,
    codec: Codec,
    transactional_id: String,
    producer_name: String,
    event: PhantomData<fn() -> E>,
}

enum Outcome {
    Done,
    Retry(String),
}

impl<E: Event> TransactionalConsumer<E> {
    /// `transactional_id` must be stable for this instance across restarts
    /// (so a restarted instance fences its predecessor) and distinct between
    /// instances, e.g. `{service}-{pod ordinal}`.
    pub fn new(
        kafka: KafkaConfig,
        settings: ConsumerSettings,
        codec: Codec,
        transactional_id: impl Into<String>,
        producer_name: impl Into<String>,
    ) -> Self {
        Self {
            kafka,
            settings,
            codec,
            transactional_id: transactional_id.into(),
            producer_name: producer_name.into(),
            event: PhantomData,
        }
    }

    pub async fn run<H: Handler<E>>(
        self,
        handler: H,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        let producer = Producer::transactional(
            &self.kafka,
            self.codec.clone(),
            &self.producer_name,
            &self.transactional_id,
        )?;
        let topic = self.kafka.topic(E::TOPIC);
        let consumer: BaseConsumer = self
            .kafka
            .consumer(&self.settings.group)
            .set("isolation.level", "read_committed")
            .create()?;
        consumer.subscribe(&[&topic])?;
        tracing::info!(
            topic,
            group = %self.settings.group,
            transactional_id = %self.transactional_id,
            transactions = "on: outputs and input offsets commit in one Kafka transaction",
            "transactional consumer starting"
        );
        let runtime = Handle::current();
        let handler = Arc::new(handler);
        tokio::task::spawn_blocking(move || {
            producer.transactions().init_transactions(TIMEOUT)?;
            let mut attempts: HashMap<(String, i32, i64), u32> = HashMap::new();
            while !shutdown.is_cancelled() {
                let batch = poll_batch(&consumer, self.settings.commit_interval);
                if batch.is_empty() {
                    continue;
                }
                let mut tries = 0;
                loop {
                    tries += 1;
                    match self.try_batch(&runtime, &*handler, &producer, &consumer, &batch, &mut attempts) {
                        Ok(()) => break,
                        Err(reason) => {
                            let delay = self
                                .settings
                                .retry
                                .delay_after(tries)
                                .unwrap_or(Duration::from_secs(30));
                            tracing::warn!(%reason, tries, ?delay, "transaction aborted; the batch is tried again");
                            if shutdown.is_cancelled() {
                                break;
                            }
                            std::thread::sleep(delay);
                        }
                    }
                }
            }
            consumer.unsubscribe();
            Ok(())
        })
        .await
        .map_err(|error| BusError::PollThread(error.to_string()))?
    }

    /// One transaction over `batch`: Ok once committed; Err (after an abort)
    /// if it must be tried again.
    fn try_batch<H: Handler<E>>(
        &self,
        runtime: &Handle,
        handler: &H,
        producer: &Producer,
        consumer: &BaseConsumer,
        batch: &[OwnedMessage],
        attempts: &mut HashMap<(String, i32, i64), u32>,
    ) -> Result<(), String> {
        let transactions = producer.transactions();
        transactions
            .begin_transaction()
            .map_err(|error| error.to_string())?;
        let mut positions = TopicPartitionList::new();
        for record in batch {
            let id = (
                record.topic().to_owned(),
                record.partition(),
                record.offset(),
            );
            let attempt = attempts.entry(id.clone()).or_insert(0);
            *attempt += 1;
            let attempt = *attempt;
            let outcome = runtime.block_on(self.process(handler, producer, record, attempt));
            if let Outcome::Retry(reason) = outcome {
                abort(producer);
                return Err(reason);
            }
            if positions
                .add_partition_offset(
                    record.topic(),
                    record.partition(),
                    Offset::Offset(record.offset() + 1),
                )
                .is_err()
            {
                abort(producer);
                return Err("invalid offset".to_owned());
            }
        }
        let committed = consumer
            .group_metadata()
            .ok_or_else(|| "the consumer has no group metadata".to_owned())
            .and_then(|group| {
                transactions
                    .send_offsets_to_transaction(&positions, &group, TIMEOUT)
                    .map_err(|error| error.to_string())
            })
            .and_then(|()| {
                transactions
                    .commit_transaction(TIMEOUT)
                    .map_err(|error| error.to_string())
            });
        match committed {
            Ok(()) => {
                for record in batch {
                    attempts.remove(&(
                        record.topic().to_owned(),
                        record.partition(),
                        record.offset(),
                    ));
                }
                Ok(())
            }
            Err(reason) => {
                abort(producer);
                Err(reason)
            }
        }
    }

    async fn process<H: Handler<E>>(
        &self,
        handler: &H,
        producer: &Producer,
        record: &OwnedMessage,
        attempt: u32,
    ) -> Outcome {
        let group = self.settings.group.as_str();
        let list = headers::shared(record);
        let failure = match self.codec.decode::<E>(record.payload()).await {
            Err(error) if error.is_transient() => return Outcome::Retry(error.to_string()),
            Err(error) => (decode_class(&error), error.to_string()),
            Ok(event) => {
                let mut ctx = Context::new(
                    None,
                    event.envelope().clone(),
                    list.clone(),
                    producer.name(),
                );
                let meta = RecordMeta::of(record, E::TOPIC, list, group.into(), attempt);
                let handled = AssertUnwindSafe(handler.handle(Record { event, meta }, &mut ctx))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(HandlerError::permanent("the handler panicked")));
                match handled.and(Ok(ctx)) {
                    // The outputs join the open transaction: they are visible
                    // exactly when the input offsets move past the record.
                    Ok(ctx) => match send_staged(producer, ctx).await {
                        Ok(()) => return Outcome::Done,
                        Err(error) if error.is_transient() => {
                            return Outcome::Retry(error.to_string());
                        }
                        Err(error) => ("handler", error.to_string()),
                    },
                    Err(HandlerError::Transient(reason)) => {
                        if self.settings.retry.delay_after(attempt).is_some() {
                            return Outcome::Retry(reason);
                        }
                        ("retries-exhausted", reason)
                    }
                    Err(HandlerError::Permanent(reason)) => ("handler", reason),
                }
            }
        };
        let (class, reason) = failure;
        // The dead letter joins the transaction: it is visible exactly when
        // the input offset moves past the record.
        let letter = DeadLetter::of(record, group, class, &reason, attempt);
        match producer.write(&letter).await {
            Ok(()) => Outcome::Done,
            Err(error) => Outcome::Retry(format!("dead-letter write failed: {error}")),
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);

async fn send_staged(producer: &Producer, ctx: Context) -> Result<(), ProduceError> {
    let (_, staged) = ctx.into_parts();
    for event in staged {
        let prepared = producer.prepare_staged(event).await?;
        producer.enqueue(&prepared).await?;
    }
    Ok(())
}

fn abort(producer: &Producer) {
    if let Err(error) = producer.transactions().abort_transaction(TIMEOUT) {
        tracing::error!(%error, "abort failed; the producer must be recreated");
    }
}

fn poll_batch(consumer: &BaseConsumer, window: Duration) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + window;
    let mut batch = Vec::new();
    while batch.len() < MAX_BATCH {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match consumer.poll(left) {
            Some(Ok(message)) => batch.push(message.detach()),
            Some(Err(error)) => tracing::warn!(%error, "consumer error"),
            None => break,
        }
    }
    batch
}
