//! Dead letters: records the consumer could not process, written unchanged
//! to `{topic}.{group}.dlq` with the reason in headers, so they can be looked
//! at, fixed and replayed without losing the original bytes.

use chrono::{SecondsFormat, Utc};
use futures::future::BoxFuture;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Timestamp};

use crate::error::ProduceError;
use crate::headers::{self, HeaderList};
use crate::producer::Producer;

pub const ERROR_CLASS: &str = "error.class";
pub const ERROR_REASON: &str = "error.reason";
pub const ORIGINAL_TOPIC: &str = "original.topic";
pub const ORIGINAL_PARTITION: &str = "original.partition";
pub const ORIGINAL_OFFSET: &str = "original.offset";
pub const ORIGINAL_TIMESTAMP: &str = "original.timestamp";
pub const ATTEMPTS: &str = "attempts";
pub const FAILED_AT: &str = "failed.at";
pub const CONSUMER_GROUP: &str = "consumer.group";

/// A record on its way to the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: HeaderList,
}

impl DeadLetter {
    /// The dead letter of `record`: its key and value as they were, its own
    /// headers first, then the error headers.
    pub fn of(
        record: &OwnedMessage,
        group: &str,
        class: &str,
        reason: &str,
        attempts: u32,
    ) -> Self {
        let mut list = headers::to_list_owned(record);
        let timestamp = match record.timestamp() {
            Timestamp::CreateTime(millis) | Timestamp::LogAppendTime(millis) => millis,
            Timestamp::NotAvailable => -1,
        };
        for (name, value) in [
            (ERROR_CLASS, class.to_owned()),
            (ERROR_REASON, reason.to_owned()),
            (ORIGINAL_TOPIC, record.topic().to_owned()),
            (ORIGINAL_PARTITION, record.partition().to_string()),
            (ORIGINAL_OFFSET, record.offset().to_string()),
            (ORIGINAL_TIMESTAMP, timestamp.to_string()),
            (ATTEMPTS, attempts.to_string()),
            (
                FAILED_AT,
                Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
            (CONSUMER_GROUP, group.to_owned()),
        ] {
            list.push((name.to_owned(), value.into_bytes()));
        }
        Self {
            topic: paystream_contract::dead_letter_topic(record.topic(), group),
            key: record.key().map(<[u8]>::to_vec),
            value: record.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers: list,
        }
    }
}

/// Where dead letters go. The Kafka topic in production; tests put a failing
/// sink in front of it to prove that an offset is not committed until the
/// dead letter is safely written.
pub trait DeadLetterSink: Send + Sync + 'static {
    fn write<'a>(&'a self, letter: &'a DeadLetter) -> BoxFuture<'a, Result<(), ProduceError>>;
}

impl DeadLetterSink for Producer {
    fn write<'a>(&'a self, letter: &'a DeadLetter) -> BoxFuture<'a, Result<(), ProduceError>> {
        Box::pin(async move {
            self.send_raw(
                &letter.topic,
                letter.key.as_deref(),
                &letter.value,
                &letter.headers,
            )
            .await
            .map(drop)
        })
    }
}
