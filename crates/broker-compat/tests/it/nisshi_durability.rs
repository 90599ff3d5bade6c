//! Acked records and committed offsets survive SIGKILL of the broker. Each test
//! starts its own nisshi process on SQLite storage so it can kill it.

use std::collections::BTreeSet;
use std::time::Duration;

use paystream_testkit::kafka::{consumer, create_topic, producer, receive};
use paystream_testkit::nisshi::{Nisshi, Storage};
use paystream_testkit::unique;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

const RECORDS: usize = 10_000;
const CONSUMED_BEFORE_CRASH: usize = 6_000;
const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(60);

/// Reads `count` records and returns their values with the next offset to
/// commit per partition.
async fn read(consumer: &StreamConsumer, count: usize) -> (Vec<u32>, TopicPartitionList) {
    let mut next = TopicPartitionList::new();
    let values = receive(consumer, count, TIMEOUT)
        .await
        .iter()
        .map(|message| {
            next.add_partition_offset(
                message.topic(),
                message.partition(),
                Offset::Offset(message.offset() + 1),
            )
            .unwrap();
            String::from_utf8_lossy(message.payload().unwrap())
                .parse()
                .unwrap()
        })
        .collect();
    (values, next)
}

#[tokio::test]
async fn acked_records_and_committed_offsets_survive_sigkill() {
    let mut broker = Nisshi::start(Storage::Sqlite).await;
    let bootstrap = broker.bootstrap();
    let topic = unique("durability");
    let group = unique("durability");
    create_topic(&bootstrap, &topic, PARTITIONS).await;

    {
        let producer = producer(&bootstrap);
        for batch in (0..RECORDS).collect::<Vec<_>>().chunks(1_000) {
            let acks = futures::future::join_all(batch.iter().map(|n| {
                let value = n.to_string();
                let key = format!("account-{}", n % 97);
                let producer = &producer;
                let topic = &topic;
                async move {
                    producer
                        .send(FutureRecord::to(topic).key(&key).payload(&value), TIMEOUT)
                        .await
                        .map_err(|(error, _)| error)
                }
            }))
            .await;
            assert!(
                acks.iter().all(Result::is_ok),
                "every record is acked before the crash"
            );
        }
    }

    let before_crash = {
        let consumer = consumer(&bootstrap, &group, &[&topic]);
        let (values, next) = read(&consumer, CONSUMED_BEFORE_CRASH).await;
        consumer.commit(&next, CommitMode::Sync).unwrap();
        values
    };

    broker.kill9();
    broker.restart().await;

    let consumer = consumer(&bootstrap, &group, &[&topic]);
    let mut total = 0;
    for partition in 0..PARTITIONS {
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, TIMEOUT)
            .unwrap();
        total += high - low;
    }
    assert_eq!(total as usize, RECORDS, "every acked record is still there");

    let (after_crash, _) = read(&consumer, RECORDS - CONSUMED_BEFORE_CRASH).await;
    let everything: BTreeSet<u32> = before_crash.iter().chain(&after_crash).copied().collect();
    assert_eq!(
        everything.len(),
        RECORDS,
        "committed offsets resume exactly where the group left off"
    );
    assert_eq!(everything, (0..RECORDS as u32).collect());
}
