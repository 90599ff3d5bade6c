//! Replaying dead letters. Once the cause of a failure is fixed (a handler
//! bug, a provider outage that outlasted the retries, a schema registered
//! late), an operator sends a consumer group's dead letters back to the topic
//! they came from, where the fixed consumer meets them again.
//!
//! Each dead letter goes back with its original key (so the same partition
//! and the same place in its key's order from then on), its original value
//! bytes and its original headers (`eventId`, `correlationId`, `traceparent`
//! …), without the runtime's error headers, plus `replayed.from` naming the
//! dead letter. Progress is committed per record under the group
//! `{dead-letter topic}.replay` (`.replay.{class}` when only one error class
//! is replayed), so a replay resumes where the last one stopped and never sends a letter twice unless it crashed between the ack
//! and the commit. Such a repeat, and every other group of the topic seeing
//! the replayed record, is harmless by design: the record keeps its
//! `eventId`, and consumers are idempotent on it.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::json;

use crate::config::KafkaConfig;
use crate::dead_letter::{
    ATTEMPTS, CONSUMER_GROUP, ERROR_CLASS, ERROR_REASON, FAILED_AT, ORIGINAL_OFFSET,
    ORIGINAL_PARTITION, ORIGINAL_TIMESTAMP, ORIGINAL_TOPIC,
};
use crate::error::BusError;
use crate::headers::{self, HeaderList};
use crate::producer::Producer;

/// Names the dead letter a replayed record came from: `topic:partition:offset`.
pub const REPLAYED_FROM: &str = "replayed.from";

/// What the runtime added when it dead-lettered a record.
const DEAD_LETTER_HEADERS: [&str; 9] = [
    ERROR_CLASS,
    ERROR_REASON,
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    ORIGINAL_TIMESTAMP,
    ATTEMPTS,
    FAILED_AT,
    CONSUMER_GROUP,
];

/// Send the letters back, or only list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayMode {
    Replay,
    /// Lists what a replay would send; sends and commits nothing.
    DryRun,
}

/// One dead letter, as an operator wants to see it.
#[derive(Debug, Clone)]
pub struct LetterSummary {
    pub partition: i32,
    pub offset: i64,
    pub original_topic: Option<String>,
    pub original_partition: Option<String>,
    pub original_offset: Option<String>,
    pub error_class: Option<String>,
    pub error_reason: Option<String>,
    pub attempts: Option<String>,
    pub failed_at: Option<String>,
    pub correlation_id: Option<String>,
    pub event_id: Option<String>,
}

impl LetterSummary {
    fn of(record: &OwnedMessage, list: &HeaderList) -> Self {
        let text = |name| headers::text(list, name).map(str::to_owned);
        Self {
            partition: record.partition(),
            offset: record.offset(),
            original_topic: text(ORIGINAL_TOPIC),
            original_partition: text(ORIGINAL_PARTITION),
            original_offset: text(ORIGINAL_OFFSET),
            error_class: text(ERROR_CLASS),
            error_reason: text(ERROR_REASON),
            attempts: text(ATTEMPTS),
            failed_at: text(FAILED_AT),
            correlation_id: text(headers::CORRELATION_ID),
            event_id: text(headers::EVENT_ID),
        }
    }

    /// One JSON object, for a line of the operator tool's output.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "partition": self.partition,
            "offset": self.offset,
            "originalTopic": self.original_topic,
            "originalPartition": self.original_partition,
            "originalOffset": self.original_offset,
            "errorClass": self.error_class,
            "errorReason": self.error_reason,
            "attempts": self.attempts,
            "failedAt": self.failed_at,
            "correlationId": self.correlation_id,
            "eventId": self.event_id,
        })
    }
}

/// What to replay, and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub mode: ReplayMode,
    /// Only letters of this `error.class` (e.g. `retries-exhausted` after a
    /// provider outage, leaving `deserialization` poison where it is).
    /// Progress is kept per class, so the other letters wait for a replay
    /// of their own.
    pub error_class: Option<String>,
    /// How long to wait for a record the broker says exists.
    pub idle_timeout: Duration,
}

impl ReplayOptions {
    pub fn new(mode: ReplayMode) -> Self {
        Self {
            mode,
            error_class: None,
            idle_timeout: Duration::from_secs(30),
        }
    }

    pub fn error_class(mut self, class: impl Into<String>) -> Self {
        self.error_class = Some(class.into());
        self
    }
}

/// The group whose commits mark how far replays of `dead_letter_topic` (of
/// one error class, or of all) have got.
pub fn replay_group(dead_letter_topic: &str, error_class: Option<&str>) -> String {
    match error_class {
        Some(class) => format!("{dead_letter_topic}.replay.{class}"),
        None => format!("{dead_letter_topic}.replay"),
    }
}

/// Replays (or lists) the dead letters of `dead_letter_topic` from where the
/// last replay stopped up to its end as of now: letters written while it
/// runs wait for the next replay, so it always finishes.
pub async fn replay(
    kafka: &KafkaConfig,
    producer: &Producer,
    dead_letter_topic: &str,
    options: &ReplayOptions,
) -> Result<Vec<LetterSummary>, BusError> {
    let (mode, idle_timeout) = (options.mode, options.idle_timeout);
    let wanted = options.error_class.as_deref();
    let group = replay_group(dead_letter_topic, wanted);
    let consumer: StreamConsumer = kafka
        .consumer(&group)
        // The end of a partition can lie past its last record (a transaction
        // marker), so reaching it is learnt from the client, not from offsets.
        .set("enable.partition.eof", "true")
        .create()?;
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for (partition, (start, end)) in pending_ranges(&consumer, dead_letter_topic)? {
        if start < end {
            ends.insert(partition, end);
            assignment.add_partition_offset(dead_letter_topic, partition, Offset::Offset(start))?;
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment)?;

    let mut letters = Vec::new();
    while !ends.is_empty() {
        let received = tokio::time::timeout(idle_timeout, consumer.recv())
            .await
            .map_err(|_| BusError::ReplayStalled {
                topic: dead_letter_topic.to_owned(),
                waited: idle_timeout,
            })?;
        let record = match received {
            Ok(record) => record.detach(),
            Err(KafkaError::PartitionEOF(partition)) => {
                ends.remove(&partition);
                continue;
            }
            // librdkafka reconnects by itself; the idle timeout bounds a
            // broker that does not come back.
            Err(error) => {
                tracing::warn!(%error, dead_letter_topic, "reading dead letters");
                continue;
            }
        };
        let partition = record.partition();
        let Some(&end) = ends.get(&partition) else {
            continue;
        };
        if record.offset() >= end {
            ends.remove(&partition);
            continue;
        }
        let list = headers::to_list_owned(&record);
        let letter = LetterSummary::of(&record, &list);
        let selected = wanted.is_none() || letter.error_class.as_deref() == wanted;
        if mode == ReplayMode::Replay {
            if selected {
                send_back(producer, dead_letter_topic, &record, list).await?;
            }
            // Passed over or sent, this letter is done for this replay group.
            let mut done = TopicPartitionList::new();
            done.add_partition_offset(
                dead_letter_topic,
                partition,
                Offset::Offset(record.offset() + 1),
            )?;
            consumer.commit(&done, CommitMode::Sync)?;
            if selected {
                tracing::info!(
                    correlation_id = letter.correlation_id.as_deref().unwrap_or_default(),
                    dead_letter_topic,
                    partition,
                    offset = record.offset(),
                    "dead letter replayed"
                );
            }
        }
        if selected {
            letters.push(letter);
        }
        if record.offset() + 1 >= end {
            ends.remove(&partition);
        }
    }
    Ok(letters)
}

/// Per partition, the first offset not yet replayed and the end as of now.
fn pending_ranges(
    consumer: &StreamConsumer,
    topic: &str,
) -> Result<HashMap<i32, (i64, i64)>, BusError> {
    const TIMEOUT: Duration = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .filter(|partitions: &Vec<i32>| !partitions.is_empty())
        .ok_or_else(|| BusError::UnknownTopic(topic.to_owned()))?;
    let mut wanted = TopicPartitionList::new();
    for partition in &partitions {
        wanted.add_partition(topic, *partition);
    }
    let committed = consumer.committed_offsets(wanted, TIMEOUT)?;
    let mut ranges = HashMap::new();
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
        let start = match committed
            .find_partition(topic, partition)
            .map(|p| p.offset())
        {
            Some(Offset::Offset(offset)) => offset.max(low),
            _ => low,
        };
        ranges.insert(partition, (start, high));
    }
    Ok(ranges)
}

async fn send_back(
    producer: &Producer,
    dead_letter_topic: &str,
    record: &OwnedMessage,
    list: HeaderList,
) -> Result<(), BusError> {
    let position = format!(
        "{dead_letter_topic}:{}:{}",
        record.partition(),
        record.offset()
    );
    let target = headers::text(&list, ORIGINAL_TOPIC)
        .map(str::to_owned)
        .ok_or_else(|| BusError::NotADeadLetter(position.clone()))?;
    let mut original: HeaderList = list
        .into_iter()
        .filter(|(name, _)| !DEAD_LETTER_HEADERS.contains(&name.as_str()))
        .collect();
    original.push((REPLAYED_FROM.to_owned(), position.into_bytes()));
    producer
        .send_raw(
            &target,
            record.key(),
            record.payload().unwrap_or_default(),
            &original,
        )
        .await?;
    Ok(())
}
