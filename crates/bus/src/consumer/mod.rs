//! The consumer runtime: one consumer group, one or more topics, one poll
//! loop.
//!
//! One OS thread polls librdkafka (the only thread that touches the consumer,
//! so rebalance callbacks, commits and pauses never race); handlers run as
//! tokio tasks. Each assigned partition has a scheduler that decides which
//! fetched records may run, and the commit position, which is always the
//! lowest offset not yet finished: a record is finished when its handler's
//! effects committed or its dead letter was acknowledged, never before.
//!
//! - [`partitions`]: the bookkeeping of owned partitions, commits, pauses
//!   and hand-overs;
//! - [`worker`]: one record's life: decode, attempt, retry, dead-letter.

mod partitions;
mod worker;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paystream_contract::{Codec, Inbound, Topic, dead_letter_topic};
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::OwnedMessage;
use rdkafka::types::RDKafkaErrorCode;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::dead_letter::DeadLetterSink;
use crate::effects::Effects;
use crate::error::BusError;
use crate::handler::Handler;
use crate::headers::SharedHeaders;
use crate::retry::RetryPolicy;
use crate::scheduler::Ordering;

use partitions::{BusContext, Limits, PartitionWork, Partitions, now_ms};
use worker::{Worker, spawn_batch};

/// A decoded record and where it came from.
#[derive(Debug, Clone)]
pub struct Record<I> {
    pub event: I,
    pub meta: RecordMeta,
}

#[derive(Debug, Clone)]
pub struct RecordMeta {
    /// The contract topic (without the cluster's prefix).
    pub topic: Topic,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub headers: SharedHeaders,
    pub group: Arc<str>,
    /// 1 on the first attempt, 2 on the first retry, ...
    pub attempt: u32,
}

impl RecordMeta {
    pub(crate) fn of(
        record: &OwnedMessage,
        topic: Topic,
        headers: SharedHeaders,
        group: Arc<str>,
        attempt: u32,
    ) -> Self {
        Self {
            topic,
            partition: record.partition(),
            offset: record.offset(),
            key: record.key().map(<[u8]>::to_vec),
            headers,
            group,
            attempt,
        }
    }
}

/// How a consumer group works through its topics.
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
    /// The same bound in key and value bytes, so large records cannot
    /// exhaust memory before the record count is reached.
    pub max_buffered_bytes_per_partition: usize,
    pub commit_interval: Duration,
    /// On shutdown or revocation, how long in-flight records get to finish
    /// before they are abandoned (left uncommitted, so they are redelivered).
    pub drain_deadline: Duration,
    /// Back-off between failed dead-letter writes: from the first, doubling
    /// up to the second.
    pub dead_letter_backoff: (Duration, Duration),
    /// Replication of the dead-letter topics the consumer creates if missing.
    pub dead_letter_replication: i32,
}

impl ConsumerSettings {
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            ordering: Ordering::KeyOrdered { max_in_flight: 100 },
            retry: RetryPolicy::default(),
            max_buffered_per_partition: 10_000,
            max_buffered_bytes_per_partition: 64 * 1024 * 1024,
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

    fn limits(&self) -> Limits {
        Limits {
            records: self
                .max_buffered_per_partition
                .max(self.ordering.max_in_flight() * 10),
            bytes: self.max_buffered_bytes_per_partition.max(1),
        }
    }
}

/// A consumer group over one or more topics, whose records decode into `I`:
/// one event type, or [`paystream_contract::AnyEvent`] for several topics.
pub struct Consumer<I> {
    kafka: KafkaConfig,
    settings: ConsumerSettings,
    topics: Vec<Topic>,
    codec: Codec,
    dead_letters: Arc<dyn DeadLetterSink>,
    event: PhantomData<fn() -> I>,
}

impl<I: Inbound> Consumer<I> {
    /// A consumer of `I`'s own topic; name others with [`Consumer::topics`].
    pub fn new(
        kafka: KafkaConfig,
        settings: ConsumerSettings,
        codec: Codec,
        dead_letters: Arc<dyn DeadLetterSink>,
    ) -> Self {
        Self {
            kafka,
            settings,
            topics: I::default_topics(),
            codec,
            dead_letters,
            event: PhantomData,
        }
    }

    /// The topics this group reads, declared once.
    pub fn topics(mut self, topics: impl IntoIterator<Item = Topic>) -> Self {
        self.topics = topics.into_iter().collect();
        self.topics.sort();
        self.topics.dedup();
        self
    }

    /// Consumes until `shutdown` is cancelled, then finishes or abandons the
    /// records in flight within the drain deadline, commits what finished and
    /// leaves the group.
    pub async fn run<H: Handler<I>>(
        self,
        effects: Effects,
        handler: H,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        if self.topics.is_empty() {
            return Err(BusError::NoTopics(self.settings.group));
        }
        if let Some(topic) = self.topics.iter().find(|topic| !I::accepts(**topic)) {
            return Err(BusError::WrongEventType {
                topic: *topic,
                event: std::any::type_name::<I>(),
            });
        }
        // The cluster's names (with the prefix) and the contract topics they stand for.
        let names: HashMap<String, Topic> = self
            .topics
            .iter()
            .map(|topic| (self.kafka.topic(*topic), *topic))
            .collect();
        // A broker that is unreachable at start-up is waited for, not a
        // reason to exit: the service around the consumer (an API) stays up.
        let mut delay = Duration::from_millis(500);
        loop {
            match self.ensure_dead_letter_topics(names.keys()).await {
                Ok(()) => break,
                Err(BusError::Kafka(error)) => {
                    tracing::warn!(group = %self.settings.group, %error, retry_in_ms = delay.as_millis() as u64, "broker not reachable at start-up; the consumer waits for it");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => return Ok(()),
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                Err(other) => return Err(other),
            }
        }
        let group: Arc<str> = self.settings.group.as_str().into();
        tracing::info!(
            topics = ?self.topics,
            group = %group,
            ordering = ?self.settings.ordering,
            retry = ?self.settings.retry.delays,
            delivery = effects.delivery(),
            "consumer starting"
        );
        let last_finished_ms = Arc::new(AtomicI64::new(now_ms()));
        let worker = Arc::new(Worker::new(
            handler,
            effects,
            self.codec,
            self.dead_letters,
            &self.settings,
            names.clone(),
            last_finished_ms.clone(),
        ));
        let partitions = Arc::new(Partitions {
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
        let subscribed: Vec<&str> = names.keys().map(String::as_str).collect();
        consumer.subscribe(&subscribed)?;
        let settings = self.settings;
        tokio::task::spawn_blocking(move || {
            partitions::poll_loop(
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

    async fn ensure_dead_letter_topics(
        &self,
        names: impl Iterator<Item = &String>,
    ) -> Result<(), BusError> {
        let admin: Arc<AdminClient<DefaultClientContext>> = Arc::new(self.kafka.admin().create()?);
        for name in names {
            self.ensure_dead_letter_topic(&admin, name).await?;
        }
        Ok(())
    }

    /// Fails fast if the topic is missing; creates its dead-letter topic for
    /// this group, with as many partitions, unless it exists (deployments
    /// that forbid CreateTopics to services pre-create it).
    async fn ensure_dead_letter_topic(
        &self,
        admin: &Arc<AdminClient<DefaultClientContext>>,
        topic: &str,
    ) -> Result<(), BusError> {
        let partitions = partition_count(admin, topic)
            .await?
            .ok_or_else(|| BusError::UnknownTopic(topic.to_owned()))?;
        let name = dead_letter_topic(topic, &self.settings.group);
        if partition_count(admin, &name).await?.is_some() {
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

/// librdkafka's metadata request blocks its thread for up to its timeout
/// (an unreachable broker takes all of it): run on a blocking thread, so the
/// service's runtime keeps serving meanwhile.
async fn partition_count(
    admin: &Arc<AdminClient<DefaultClientContext>>,
    topic: &str,
) -> Result<Option<usize>, BusError> {
    let (admin, topic) = (Arc::clone(admin), topic.to_owned());
    tokio::task::spawn_blocking(move || blocking_partition_count(&admin, &topic))
        .await
        .map_err(|error| BusError::PollThread(error.to_string()))?
}

fn blocking_partition_count(
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
