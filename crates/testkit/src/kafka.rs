//! rdkafka clients configured the way the project relies on them.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;

use crate::env_or;

pub fn bootstrap() -> String {
    env_or("PAYSTREAM_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
}

/// The producer settings the pipeline depends on: idempotent, acks from all
/// in-sync replicas, and Java's murmur2 partitioner so a key lands on the
/// partition a Java client would choose.
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", "30000");
    config
}

pub fn producer(bootstrap: &str) -> FutureProducer {
    producer_config(bootstrap).create().unwrap()
}

/// Manual commits only, reading from the start of a group's first assignment.
pub fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000");
    config
}

pub fn consumer(bootstrap: &str, group: &str, topics: &[&str]) -> StreamConsumer {
    let consumer: StreamConsumer = consumer_config(bootstrap, group).create().unwrap();
    consumer.subscribe(topics).unwrap();
    consumer
}

/// A consumer of partitions `0..partitions` of `topic` from the beginning,
/// assigned directly: no group join, so reading what a test wrote does not
/// depend on a group coordinator (which fault-injection tests move around).
pub fn reader(bootstrap: &str, topic: &str, partitions: i32) -> StreamConsumer {
    let consumer: StreamConsumer = consumer_config(bootstrap, &crate::unique("reader"))
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    consumer
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    let mut config = ClientConfig::new();
    // An admin client is a producer to librdkafka, whose metadata refresh after
    // DeleteTopics would otherwise ask the broker to re-create the topic.
    config
        .set("bootstrap.servers", bootstrap)
        .set("allow.auto.create.topics", "false");
    config.create().unwrap()
}

/// A topic prefix no other test uses, with `names` created under it on the
/// dev broker, `partitions` each: a test's own corner of the shared cluster.
pub async fn namespace(label: &str, names: &[&str], partitions: i32) -> String {
    let prefix = format!("{}.", crate::unique(label));
    for name in names {
        create_topic(&bootstrap(), &format!("{prefix}{name}"), partitions).await;
    }
    prefix
}

pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let results = admin(bootstrap)
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    for result in results {
        result.unwrap_or_else(|(topic, error)| panic!("create topic {topic}: {error}"));
    }
}

/// librdkafka reports a lost connection as a consumer error and then
/// reconnects by itself, e.g. while a restarted broker is still coming up.
/// Tests wait through these; the deadline catches a broker that never returns.
fn is_connection_blip(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure)
    )
}

/// Receives `count` records, failing the test if they do not arrive in time.
pub async fn receive(
    consumer: &StreamConsumer,
    count: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut received = Vec::with_capacity(count);
    while received.len() < count {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => received.push(message.detach()),
            Ok(Err(error)) if is_connection_blip(&error) => {}
            Ok(Err(error)) => panic!("consumer error after {} records: {error}", received.len()),
            Err(_) => panic!(
                "timed out after {timeout:?} with {}/{count} records",
                received.len()
            ),
        }
    }
    received
}

/// Receives `count` records and parses each value, which tests write as text.
pub async fn receive_parsed<T>(consumer: &StreamConsumer, count: usize, timeout: Duration) -> Vec<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Debug,
{
    receive(consumer, count, timeout)
        .await
        .iter()
        .map(|message| {
            String::from_utf8_lossy(message.payload().unwrap_or_default())
                .parse()
                .unwrap()
        })
        .collect()
}

/// Waits until `topic` exists, e.g. one a consumer under test creates.
pub async fn wait_for_topic(bootstrap: &str, topic: &str, timeout: Duration) {
    let admin = admin(bootstrap);
    crate::wait_until(timeout, &format!("topic {topic} to exist"), || async {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()?;
        metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .then_some(())
    })
    .await
}

/// The low and high watermarks of `topic`/`partition`.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let client: rdkafka::consumer::BaseConsumer =
        consumer_config(bootstrap, &crate::unique("watermarks"))
            .create()
            .unwrap();
    client
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap()
}

/// Every record of partitions `0..partitions` of `topic` up to their high
/// watermarks now: exactly what was written, so a test can count it.
/// Records ever written to `topic`: the sum of its partitions' high
/// watermarks (the broker's own count, no consumer group involved).
pub fn records_written(bootstrap: &str, topic: &str, partitions: i32) -> i64 {
    (0..partitions)
        .map(|partition| watermarks(bootstrap, topic, partition).1)
        .sum()
}

pub async fn read_to_end(bootstrap: &str, topic: &str, partitions: i32) -> Vec<OwnedMessage> {
    let total: i64 = (0..partitions)
        .map(|partition| {
            let (low, high) = watermarks(bootstrap, topic, partition);
            high - low
        })
        .sum();
    let reader = reader(bootstrap, topic, partitions);
    receive(
        &reader,
        usize::try_from(total).unwrap(),
        Duration::from_secs(60),
    )
    .await
}

/// The offset `group` has committed for `topic`/`partition`, if any.
pub fn committed(bootstrap: &str, group: &str, topic: &str, partition: i32) -> Option<i64> {
    let client: rdkafka::consumer::BaseConsumer =
        consumer_config(bootstrap, group).create().unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition(topic, partition);
    let committed = client
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    match committed
        .find_partition(topic, partition)
        .map(|p| p.offset())
    {
        Some(rdkafka::Offset::Offset(offset)) => Some(offset),
        _ => None,
    }
}
