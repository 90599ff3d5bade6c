//! The producer every service uses: it returns only once the broker has
//! acknowledged the record, and every record it writes carries
//! `correlationId`, `causationId`, `eventId` and `traceparent` headers.

use std::sync::Arc;

use futures::future::try_join_all;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use paystream_contract::{Codec, Event, Topic};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use tracing::Instrument;

use crate::config::KafkaConfig;
use crate::error::ProduceError;
use crate::handler::Staged;
use crate::headers::{self, HeaderList};

/// Where an acknowledged record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

/// A record ready to enqueue: topic, key, Confluent-framed value, headers.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub topic: String,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: HeaderList,
}

/// Cheap to clone; clones share one librdkafka producer.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    codec: Codec,
    name: Arc<str>,
    topic_prefix: Arc<str>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("name", &self.name)
            .finish()
    }
}

impl Producer {
    /// `name` is the service name written into each event's `producer` field.
    pub fn new(config: &KafkaConfig, codec: Codec, name: &str) -> Result<Self, KafkaError> {
        Ok(Self {
            inner: config.producer().set("client.id", name).create()?,
            codec,
            name: name.into(),
            topic_prefix: config.topic_prefix.as_str().into(),
        })
    }

    /// A producer whose sends belong to Kafka transactions (see
    /// [`crate::transactional`]); `transactional_id` fences older instances.
    pub fn transactional(
        config: &KafkaConfig,
        codec: Codec,
        name: &str,
        transactional_id: &str,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            inner: config
                .producer()
                .set("client.id", name)
                .set("transactional.id", transactional_id)
                .create()?,
            codec,
            name: name.into(),
            topic_prefix: config.topic_prefix.as_str().into(),
        })
    }

    /// The librdkafka producer, for the transactional API.
    pub(crate) fn transactions(&self) -> &FutureProducer {
        &self.inner
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// Encodes `event` through the schema registry and writes it keyed by its
    /// partition key, returning once the broker acknowledged it. For events
    /// that start or continue a journey outside a consumer (an API request, a
    /// webhook): the envelope must already carry its correlation. Inside a
    /// handler, events are staged with `Context::emit` instead.
    pub async fn send<E: Event>(&self, event: E) -> Result<Delivery, ProduceError> {
        let prepared = self.prepare(event).await?;
        self.enqueue(&prepared).await
    }

    /// Sends `events` in order (per partition, the broker keeps that order)
    /// and returns once all are acknowledged. Faster than awaiting each
    /// `send`: the records travel in shared batches.
    pub async fn send_all<E: Event>(
        &self,
        events: impl IntoIterator<Item = E>,
    ) -> Result<Vec<Delivery>, ProduceError> {
        let prepared: Vec<Prepared> = stream::iter(events)
            .then(|event| self.prepare(event))
            .try_collect()
            .await?;
        self.send_prepared(&prepared).await
    }

    /// [`Producer::send_all`] for events a handler staged.
    pub(crate) async fn send_staged(
        &self,
        staged: impl IntoIterator<Item = Staged>,
    ) -> Result<Vec<Delivery>, ProduceError> {
        let prepared = self.prepare_all(staged).await?;
        self.send_prepared(&prepared).await
    }

    async fn send_prepared(&self, prepared: &[Prepared]) -> Result<Vec<Delivery>, ProduceError> {
        // try_join_all polls the sends in order, and each enqueues on its
        // first poll, so the producer sees them in this order.
        try_join_all(prepared.iter().map(|record| self.enqueue(record))).await
    }

    /// Names this service as the producer, encodes and adds headers, without
    /// sending. The trace continues the current span's, or starts.
    pub async fn prepare<E: Event>(&self, mut event: E) -> Result<Prepared, ProduceError> {
        event.envelope_mut().producer = self.name.to_string();
        let topic = self.topic_name(E::TOPIC);
        let envelope = event.envelope();
        if envelope.correlation_id.is_empty() {
            return Err(ProduceError::MissingCorrelation {
                topic,
                event_id: envelope.event_id,
            });
        }
        let mut list = headers::identity(envelope);
        list.extend(headers::trace_headers(None));
        let span = tracing::info_span!(
            "produce",
            otel.kind = "producer",
            messaging.system = "kafka",
            messaging.destination.name = %topic,
            correlation_id = envelope.correlation_id.as_str(),
            event_id = %envelope.event_id,
        );
        let value = self.codec.encode(&event).instrument(span).await?;
        Ok(Prepared {
            key: event.partition_key().as_bytes().to_vec(),
            topic,
            value,
            headers: list,
        })
    }

    /// An event a handler staged, encoded and ready to write.
    pub(crate) async fn prepare_staged(&self, staged: Staged) -> Result<Prepared, ProduceError> {
        let value = staged.encode(&self.codec).await?;
        Ok(Prepared {
            topic: self.topic_name(staged.topic),
            key: staged.key,
            value,
            headers: staged.headers,
        })
    }

    /// [`Producer::prepare_staged`] for each event, in order.
    pub(crate) async fn prepare_all(
        &self,
        staged: impl IntoIterator<Item = Staged>,
    ) -> Result<Vec<Prepared>, ProduceError> {
        stream::iter(staged)
            .then(|event| self.prepare_staged(event))
            .try_collect()
            .await
    }

    /// The name of `topic` on this cluster (with the configured prefix).
    pub fn topic_name(&self, topic: Topic) -> String {
        format!("{}{}", self.topic_prefix, topic.name())
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) async fn enqueue(&self, record: &Prepared) -> Result<Delivery, ProduceError> {
        self.send_raw(
            &record.topic,
            Some(&record.key),
            &record.value,
            &record.headers,
        )
        .await
    }

    /// Writes bytes as they are: for dead letters and tools that copy records.
    pub async fn send_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &HeaderList,
    ) -> Result<Delivery, ProduceError> {
        self.send_with_headers(topic, key, value, headers::to_owned_headers(headers))
            .await
    }

    /// [`Producer::send_raw`] with the headers already in librdkafka's form,
    /// for a caller that builds them without a [`HeaderList`] in between.
    pub(crate) async fn send_with_headers(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: OwnedHeaders,
    ) -> Result<Delivery, ProduceError> {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic)
            .payload(value)
            .headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        // Wait for queue space rather than fail: librdkafka's own
        // message.timeout.ms bounds the time to the ack.
        match self.inner.send(record, rdkafka::util::Timeout::Never).await {
            Ok(delivery) => Ok(Delivery {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Err((error, _)) => Err(ProduceError::NotAcknowledged {
                topic: topic.to_owned(),
                transient: is_transient(&error),
                reason: error.to_string(),
            }),
        }
    }

    /// Waits for everything queued to be acknowledged (at shutdown).
    pub fn flush(&self, timeout: std::time::Duration) -> Result<(), KafkaError> {
        self.inner.flush(timeout)
    }
}

fn is_transient(error: &KafkaError) -> bool {
    !matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::InvalidRecord,
        )
    )
}
