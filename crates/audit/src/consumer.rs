//! The audit's own consumer: every contract topic and every dead-letter
//! topic, under the cluster's prefix.
//!
//! The runtime's consumer reads only contract topics and dead-letters what
//! it cannot decode; the audit must read dead-letter topics too (found by a
//! regex subscription, so ones created later are picked up) and must store
//! what it cannot decode. So it has its own loop: take what the client has
//! fetched (up to `max_batch` records), store each partition's share in one
//! PostgreSQL transaction, and only then commit the offsets. A crash in
//! between redelivers records the chain heads already cover; they are
//! recognised by offset and dropped.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use paystream_bus::KafkaConfig;
use paystream_contract::{AnyEvent, DecodeError, Topic};
use paystream_service_kit::ServiceError;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::hash::EntryFields;
use crate::headers::headers_of;
use crate::metrics::METRICS;
use crate::record::{self, Reader};
use crate::store::{self, Appended};

/// How the consumer reads and stores.
#[derive(Debug, Clone)]
pub struct Settings {
    pub group: String,
    /// Records stored per round at most.
    pub max_batch: usize,
    /// How often the client looks for new topics (dead-letter topics a new
    /// consumer group creates).
    pub topic_refresh: Duration,
    /// Waits before each new try to decode while the schema registry is
    /// unreachable; after the last, the record is stored undecoded.
    pub decode_retry: Vec<Duration>,
}

pub struct AuditConsumer {
    pub kafka: KafkaConfig,
    pub settings: Settings,
    pub reader: Reader,
    pub pool: PgPool,
}

/// The topics to subscribe to: each contract topic by name, and a regex
/// for the dead-letter topics of every contract topic under the same
/// prefix (`{topic}.{group}.dlq`), anchored so that another environment's
/// prefixed topics on a shared cluster never match an unprefixed audit.
pub fn subscription(kafka: &KafkaConfig) -> Vec<String> {
    let mut topics: Vec<String> = Topic::ALL.iter().map(|t| kafka.topic(*t)).collect();
    let names: Vec<String> = Topic::ALL.iter().map(|t| escape_regex(t.name())).collect();
    topics.push(format!(
        "^{}({})\\..+\\.dlq$",
        escape_regex(&kafka.topic_prefix),
        names.join("|")
    ));
    topics
}

/// Escapes the POSIX extended-regex metacharacters librdkafka knows.
fn escape_regex(text: &str) -> String {
    text.chars().fold(String::new(), |mut out, c| {
        if ".[]{}()\\*+?^$|".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

impl AuditConsumer {
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServiceError> {
        let group = self.settings.group.as_str();
        let consumer: StreamConsumer = self
            .kafka
            .consumer(group)
            .set("client.id", format!("{group}-consumer"))
            .set(
                "topic.metadata.refresh.interval.ms",
                self.settings.topic_refresh.as_millis().max(100).to_string(),
            )
            .create()?;
        self.show_chain_lengths().await;
        let topics = subscription(&self.kafka);
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        tracing::info!(group, ?topics, "audit consumer starting");
        let mut batches = consumer
            .stream()
            .ready_chunks(self.settings.max_batch.max(1));
        let mut positions = TopicPartitionList::new();
        loop {
            let batch = tokio::select! {
                () = shutdown.cancelled() => break,
                batch = batches.next() => match batch {
                    Some(batch) => batch,
                    None => break,
                },
            };
            let mut records = Vec::with_capacity(batch.len());
            for fetched in batch {
                match fetched {
                    Ok(message) => records.push(message.detach()),
                    // A missing topic, a broker going away: librdkafka
                    // reports and recovers by itself.
                    Err(error) => tracing::warn!(group, %error, "consumer error"),
                }
            }
            if records.is_empty() {
                continue;
            }
            let Some(appended) = self.store(records, &shutdown).await else {
                break;
            };
            positions = TopicPartitionList::new();
            for ((topic, partition), done) in appended {
                positions.add_partition_offset(
                    &topic,
                    partition,
                    Offset::Offset(done.next_offset),
                )?;
            }
            // Only now, with the rows committed; a commit lost here only
            // means records redelivered, which the chain heads recognise.
            if let Err(error) = consumer.commit(&positions, CommitMode::Async) {
                tracing::warn!(group, %error, "offset commit failed; the records will be recognised if redelivered");
            }
        }
        if positions.count() > 0
            && let Err(error) = consumer.commit(&positions, CommitMode::Sync)
        {
            tracing::warn!(group, %error, "last offset commit failed");
        }
        drop(batches);
        consumer.unsubscribe();
        tracing::info!(group, "audit consumer stopped");
        Ok(())
    }

    /// The chains' lengths as stored, so the gauges are right from the
    /// start and not only once a chain grows again.
    async fn show_chain_lengths(&self) {
        let heads = sqlx::query_as::<_, (String, i32, i64)>(
            "SELECT topic, \"partition\", seq FROM audit_chains",
        )
        .fetch_all(&self.pool)
        .await;
        match heads {
            Ok(heads) => {
                for (topic, partition, seq) in heads {
                    let labels = [self.reader.local(&topic), &partition.to_string()];
                    METRICS.chain_length.with_label_values(&labels).set(seq);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "chain lengths not read; the gauges fill as chains grow")
            }
        }
    }

    /// Stores the batch, each partition in its own transaction, trying
    /// again until it is stored; `None` if shutdown came first (nothing is
    /// committed then, and the records come again).
    async fn store(
        &self,
        records: Vec<OwnedMessage>,
        shutdown: &CancellationToken,
    ) -> Option<Vec<((String, i32), Appended)>> {
        let received_at = Utc::now();
        let mut partitions: BTreeMap<(String, i32), Vec<EntryFields>> = BTreeMap::new();
        for record in records {
            let entry = self.entry(&record, received_at, shutdown).await?;
            partitions
                .entry((entry.topic.clone(), entry.partition))
                .or_default()
                .push(entry);
        }
        let appends = partitions
            .into_iter()
            .map(|((topic, partition), mut entries)| {
                entries.sort_by_key(|entry| entry.offset);
                async move {
                    let done = self.append(&topic, partition, entries, shutdown).await?;
                    Some(((topic, partition), done))
                }
            });
        futures::future::join_all(appends)
            .await
            .into_iter()
            .collect()
    }

    async fn entry(
        &self,
        record: &OwnedMessage,
        received_at: chrono::DateTime<Utc>,
        shutdown: &CancellationToken,
    ) -> Option<EntryFields> {
        // The record's receipt joins its trace, so a payment's trace ends in
        // the audit log like in every other service.
        let span = tracing::info_span!(
            "audit.receive",
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.destination.name = record.topic(),
            messaging.kafka.partition = record.partition(),
            messaging.kafka.offset = record.offset(),
            correlation_id = tracing::field::Empty,
        );
        let trace = paystream_bus::headers::to_list_owned(record);
        if let Some(correlation) =
            paystream_bus::headers::text(&trace, paystream_bus::headers::CORRELATION_ID)
        {
            span.record("correlation_id", correlation);
        }
        paystream_bus::headers::continue_trace(&span, &trace);
        self.entry_in_span(record, received_at, shutdown)
            .instrument(span)
            .await
    }

    async fn entry_in_span(
        &self,
        record: &OwnedMessage,
        received_at: chrono::DateTime<Utc>,
        shutdown: &CancellationToken,
    ) -> Option<EntryFields> {
        let headers = headers_of(record);
        let source = self.reader.source(record.topic(), &headers);
        let decoded = match source {
            Some(source) => Some(
                self.decode(source.topic, record.payload(), shutdown)
                    .await?,
            ),
            None => None,
        };
        Some(record::entry(
            &self.reader,
            record,
            source,
            decoded,
            received_at,
        ))
    }

    /// Decodes, waiting out a registry that cannot be reached for a while:
    /// an entry is written once, so it should not be written undecoded for
    /// a blip. Every other failure is final at once.
    async fn decode(
        &self,
        topic: Topic,
        value: Option<&[u8]>,
        shutdown: &CancellationToken,
    ) -> Option<Result<AnyEvent, DecodeError>> {
        let mut delays = self.settings.decode_retry.iter();
        loop {
            let decoded = self.reader.decode(topic, value).await;
            match (&decoded, delays.next()) {
                (Err(error), Some(delay)) if error.is_transient() => {
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "schema registry unavailable");
                    tokio::select! {
                        () = tokio::time::sleep(*delay) => {}
                        () = shutdown.cancelled() => return None,
                    }
                }
                _ => return Some(decoded),
            }
        }
    }

    /// Appends one partition's records, trying again (with back-off) while
    /// the database fails: the offsets wait, nothing is skipped.
    async fn append(
        &self,
        topic: &str,
        partition: i32,
        entries: Vec<EntryFields>,
        shutdown: &CancellationToken,
    ) -> Option<Appended> {
        let mut delay = Duration::from_millis(200);
        loop {
            match store::append(&self.pool, topic, partition, entries.clone()).await {
                Ok(done) => {
                    METRICS.record(self.reader.local(topic), partition, &done);
                    return Some(done);
                }
                Err(error) => {
                    tracing::warn!(topic, partition, %error, retry_in_ms = delay.as_millis() as u64, "storing failed; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => return None,
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_topics_are_matched_under_the_escaped_prefix() {
        let kafka = KafkaConfig::default().with_topic_prefix("t-1.a+b.");
        let topics = subscription(&kafka);
        assert_eq!(topics.len(), Topic::ALL.len() + 1);
        assert_eq!(topics[0], "t-1.a+b.payment.submitted");
        let regex = &topics[Topic::ALL.len()];
        assert!(
            regex.starts_with(r"^t-1\.a\+b\.(payment\.submitted|payment\.validated|"),
            "{regex}"
        );
        assert!(
            regex.ends_with(r"|notification\.sent)\..+\.dlq$"),
            "{regex}"
        );
        let unprefixed = subscription(&KafkaConfig::default());
        assert!(unprefixed[Topic::ALL.len()].starts_with("^(payment"));
    }
}
