//! rdkafka clients configured the way the project relies on them.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
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

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    let mut config = ClientConfig::new();
    // An admin client is a producer to librdkafka, whose metadata refresh after
    // DeleteTopics would otherwise ask the broker to re-create the topic.
    config
        .set("bootstrap.servers", bootstrap)
        .set("allow.auto.create.topics", "false");
    config.create().unwrap()
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
            Ok(Err(error)) => panic!("consumer error after {} records: {error}", received.len()),
            Err(_) => panic!(
                "timed out after {timeout:?} with {}/{count} records",
                received.len()
            ),
        }
    }
    received
}
