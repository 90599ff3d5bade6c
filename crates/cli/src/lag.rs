//! Consumer lag per group and partition: how far each group's committed
//! offset is behind the end of each contract topic it reads. Read from the
//! broker (OffsetFetch and the high watermarks), not from the services, so
//! a group whose service is down still shows how far behind it is.

use std::time::Duration;

use paystream_bus::KafkaConfig;
use paystream_contract::Topic;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

/// The pipeline's consumer groups.
pub const GROUPS: [&str; 7] = [
    "validation",
    "gateway-status",
    "cbs-debit",
    "ledger",
    "rtgs-gateway",
    "notifications",
    "audit",
];

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub end: i64,
    pub lag: i64,
}

/// The lag of each of `groups` on every contract topic it has committed
/// an offset for. Blocking: call it off the async runtime.
pub fn lag(kafka: &KafkaConfig, groups: &[String]) -> Result<Vec<Lag>, KafkaError> {
    let probe: BaseConsumer = kafka.consumer("paystream-lag").create()?;
    let metadata = probe.fetch_metadata(None, TIMEOUT)?;
    let mut partitions = TopicPartitionList::new();
    for topic in metadata.topics() {
        let is_contract = Topic::ALL
            .iter()
            .any(|contract| kafka.topic(*contract) == topic.name());
        if is_contract {
            for partition in topic.partitions() {
                partitions.add_partition(topic.name(), partition.id());
            }
        }
    }
    let mut rows = Vec::new();
    for group in groups {
        let member: BaseConsumer = kafka.consumer(group).create()?;
        let committed = member.committed_offsets(partitions.clone(), TIMEOUT)?;
        for element in committed.elements() {
            let Offset::Offset(offset) = element.offset() else {
                continue;
            };
            let (_, end) = probe.fetch_watermarks(element.topic(), element.partition(), TIMEOUT)?;
            rows.push(Lag {
                group: group.clone(),
                topic: element
                    .topic()
                    .strip_prefix(&kafka.topic_prefix)
                    .unwrap_or(element.topic())
                    .to_owned(),
                partition: element.partition(),
                committed: offset,
                end,
                lag: (end - offset).max(0),
            });
        }
    }
    rows.sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    Ok(rows)
}
