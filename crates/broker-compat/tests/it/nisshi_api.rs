//! What Paystream relies on from the nisshi broker, client-visible, through
//! librdkafka. Runs against the stack's broker (`make dev-up`, or
//! `PAYSTREAM_TEST_KAFKA_BOOTSTRAP`), each test on its own topics and groups.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paystream_broker_compat::java_partition;
use paystream_testkit::kafka::{
    admin, bootstrap, consumer, create_topic, producer, producer_config, receive, receive_parsed,
};
use paystream_testkit::{unique, wait_until};
use rdkafka::admin::{AdminOptions, NewPartitions};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

async fn send(producer: &FutureProducer, topic: &str, key: &str, value: &str) -> (i32, i64) {
    let delivery = producer
        .send(FutureRecord::to(topic).key(key).payload(value), TIMEOUT)
        .await
        .map_err(|(error, _)| error)
        .unwrap();
    (delivery.partition, delivery.offset)
}

fn partition_count(topic: &str) -> Option<usize> {
    let metadata = admin(&bootstrap())
        .inner()
        .fetch_metadata(Some(topic), TIMEOUT)
        .ok()?;
    let topic = metadata.topics().first()?;
    (topic.error().is_none() && !topic.partitions().is_empty()).then(|| topic.partitions().len())
}

fn commit(consumer: &StreamConsumer, topic: &str, partition: i32, next_offset: i64) {
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, partition, Offset::Offset(next_offset))
        .unwrap();
    consumer.commit(&offsets, CommitMode::Sync).unwrap();
}

#[tokio::test]
async fn topics_are_created_explicitly_auto_created_and_deleted() {
    let explicit = unique("compat-create");
    create_topic(&bootstrap(), &explicit, 3).await;
    assert_eq!(partition_count(&explicit), Some(3));

    let automatic = unique("compat-auto");
    send(&producer(&bootstrap()), &automatic, "k", "v").await;
    assert!(
        partition_count(&automatic).is_some(),
        "producing to a new topic creates it"
    );

    let results = admin(&bootstrap())
        .delete_topics(
            &[&explicit],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    wait_until(TIMEOUT, "the deleted topic to disappear", || async {
        partition_count(&explicit).is_none().then_some(())
    })
    .await;
    assert!(
        partition_count(&automatic).is_some(),
        "deleting one topic leaves the others"
    );
}

#[tokio::test]
async fn idempotent_acks_all_produce_is_acked_in_order_without_gaps() {
    let topic = unique("compat-idempotent");
    create_topic(&bootstrap(), &topic, 1).await;
    let producer = producer(&bootstrap());
    let deliveries = futures::future::join_all((0..200).map(|n| {
        let producer = &producer;
        let topic = &topic;
        async move { send(producer, topic, "one-key", &n.to_string()).await }
    }))
    .await;
    let offsets: Vec<i64> = deliveries.iter().map(|(_, offset)| *offset).collect();
    assert_eq!(
        offsets,
        (0..200).collect::<Vec<_>>(),
        "acked offsets follow send order on one partition"
    );

    let consumer = consumer(&bootstrap(), &unique("compat-idempotent"), &[&topic]);
    let values: Vec<String> = receive(&consumer, 200, TIMEOUT)
        .await
        .iter()
        .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, (0..200).map(|n| n.to_string()).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_key_always_lands_on_the_partition_a_java_client_would_choose() {
    let topic = unique("compat-keys");
    create_topic(&bootstrap(), &topic, 6).await;
    let producer = producer(&bootstrap());
    let mut seen: HashMap<String, BTreeSet<i32>> = HashMap::new();
    for round in 0..3 {
        for account in 0..20 {
            let key = format!("DE{account:020}");
            let (partition, _) = send(&producer, &topic, &key, &round.to_string()).await;
            assert_eq!(
                partition as u32,
                java_partition(key.as_bytes(), 6),
                "key {key}"
            );
            seen.entry(key).or_default().insert(partition);
        }
    }
    assert!(seen.values().all(|partitions| partitions.len() == 1));
    let used: BTreeSet<i32> = seen.values().flatten().copied().collect();
    assert!(
        used.len() > 1,
        "20 keys should spread over several of 6 partitions"
    );
}

#[tokio::test]
async fn binary_and_repeated_headers_arrive_unchanged() {
    let topic = unique("compat-headers");
    create_topic(&bootstrap(), &topic, 1).await;
    let binary: Vec<u8> = (0..=255).collect();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "correlationId",
            value: Some("corr-1"),
        })
        .insert(Header {
            key: "attempt",
            value: Some("1"),
        })
        .insert(Header {
            key: "attempt",
            value: Some("2"),
        })
        .insert(Header {
            key: "binary",
            value: Some(&binary),
        })
        .insert(Header::<&[u8]> {
            key: "empty",
            value: None,
        });
    producer(&bootstrap())
        .send(
            FutureRecord::to(&topic)
                .key("k")
                .payload("v")
                .headers(headers),
            TIMEOUT,
        )
        .await
        .map_err(|(error, _)| error)
        .unwrap();
    let consumer = consumer(&bootstrap(), &unique("compat-headers"), &[&topic]);
    let message = receive(&consumer, 1, TIMEOUT).await.remove(0);
    let received: Vec<(String, Option<Vec<u8>>)> = message
        .headers()
        .unwrap()
        .iter()
        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(
        received,
        vec![
            ("correlationId".to_owned(), Some(b"corr-1".to_vec())),
            ("attempt".to_owned(), Some(b"1".to_vec())),
            ("attempt".to_owned(), Some(b"2".to_vec())),
            ("binary".to_owned(), Some(binary)),
            ("empty".to_owned(), None),
        ]
    );
}

#[tokio::test]
async fn a_group_resumes_from_its_manual_commit_after_a_consumer_restart() {
    let topic = unique("compat-resume");
    let group = unique("compat-resume");
    create_topic(&bootstrap(), &topic, 1).await;
    let producer = producer(&bootstrap());
    for n in 0..10 {
        send(&producer, &topic, "k", &n.to_string()).await;
    }
    {
        let first = consumer(&bootstrap(), &group, &[&topic]);
        let read = receive(&first, 4, TIMEOUT).await;
        assert_eq!(read[3].offset(), 3);
        // Commit after the fourth record only: nothing is committed automatically.
        commit(&first, &topic, 0, 4);
    }
    let second = consumer(&bootstrap(), &group, &[&topic]);
    let resumed = receive(&second, 6, TIMEOUT).await;
    assert_eq!(
        resumed.iter().map(|m| m.offset()).collect::<Vec<_>>(),
        (4..10).collect::<Vec<_>>()
    );
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(&topic, 0);
    let committed = second.committed_offsets(wanted, TIMEOUT).unwrap();
    assert_eq!(
        committed.elements()[0].offset(),
        Offset::Offset(4),
        "reading alone commits nothing"
    );
}

/// Polls a consumer in the background so that it takes part in rebalances.
fn keep_polling(consumer: Arc<StreamConsumer>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
        }
    })
}

fn assigned(consumer: &StreamConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .map(|list| list.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_group_splits_partitions_and_takes_over_when_a_member_leaves() {
    let topic = unique("compat-split");
    let group = unique("compat-split");
    create_topic(&bootstrap(), &topic, 4).await;
    let first = Arc::new(consumer(&bootstrap(), &group, &[&topic]));
    let second = Arc::new(consumer(&bootstrap(), &group, &[&topic]));
    let (polling_first, polling_second) =
        (keep_polling(first.clone()), keep_polling(second.clone()));

    wait_until(TIMEOUT, "both members to share the 4 partitions", || {
        let (a, b) = (assigned(&first), assigned(&second));
        async move {
            (!a.is_empty() && !b.is_empty() && a.is_disjoint(&b) && a.len() + b.len() == 4)
                .then_some(())
        }
    })
    .await;

    polling_second.abort();
    let _ = polling_second.await;
    drop(
        Arc::try_unwrap(second)
            .ok()
            .expect("the poller released the consumer"),
    );
    wait_until(
        TIMEOUT,
        "the remaining member to take every partition",
        || {
            let a = assigned(&first);
            async move { (a.len() == 4).then_some(()) }
        },
    )
    .await;
    polling_first.abort();
}

#[tokio::test]
async fn two_groups_each_receive_every_record() {
    let topic = unique("compat-groups");
    create_topic(&bootstrap(), &topic, 2).await;
    let producer = producer(&bootstrap());
    for n in 0..20 {
        send(&producer, &topic, &format!("k{n}"), &n.to_string()).await;
    }
    for _ in 0..2 {
        let consumer = consumer(&bootstrap(), &unique("compat-groups"), &[&topic]);
        let mut values: Vec<i32> = receive_parsed(&consumer, 20, TIMEOUT).await;
        values.sort_unstable();
        assert_eq!(values, (0..20).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn watermarks_and_offsets_by_time_are_reported() {
    let topic = unique("compat-offsets");
    create_topic(&bootstrap(), &topic, 1).await;
    let producer = producer(&bootstrap());
    let base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    for n in 0..5_i64 {
        producer
            .send(
                FutureRecord::to(&topic)
                    .key("k")
                    .payload("v")
                    .timestamp(base + n * 1_000),
                TIMEOUT,
            )
            .await
            .map_err(|(error, _)| error)
            .unwrap();
    }
    let consumer = consumer(&bootstrap(), &unique("compat-offsets"), &[&topic]);
    assert_eq!(
        consumer.fetch_watermarks(&topic, 0, TIMEOUT).unwrap(),
        (0, 5)
    );
    let mut at = TopicPartitionList::new();
    at.add_partition_offset(&topic, 0, Offset::Offset(base + 2_000))
        .unwrap();
    let found = consumer.offsets_for_times(at, TIMEOUT).unwrap();
    assert_eq!(found.elements()[0].offset(), Offset::Offset(2));
}

#[tokio::test]
async fn consumer_groups_can_be_listed_described_and_deleted() {
    let topic = unique("compat-admin");
    let group = unique("compat-admin");
    create_topic(&bootstrap(), &topic, 1).await;
    send(&producer(&bootstrap()), &topic, "k", "v").await;
    {
        let member = consumer(&bootstrap(), &group, &[&topic]);
        receive(&member, 1, TIMEOUT).await;
        commit(&member, &topic, 0, 1);
        let groups = member
            .client()
            .fetch_group_list(Some(&group), TIMEOUT)
            .unwrap();
        let described = groups
            .groups()
            .iter()
            .find(|g| g.name() == group)
            .expect("group is listed");
        assert_eq!(described.members().len(), 1);
        assert_eq!(described.protocol_type(), "consumer");
    }
    let results = admin(&bootstrap())
        .delete_groups(
            &[&group],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .unwrap();
    assert!(
        results[0].is_ok(),
        "an empty group can be deleted: {results:?}"
    );
    let fresh = consumer(&bootstrap(), &group, &[&topic]);
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(&topic, 0);
    let committed = fresh.committed_offsets(wanted, TIMEOUT).unwrap();
    assert_eq!(
        committed.elements()[0].offset(),
        Offset::Invalid,
        "deleting a group drops its offsets"
    );
}

/// nisshi refuses transactions on purpose. Paystream therefore gets exactly-once
/// effects from idempotent consumers and a PostgreSQL outbox, not from Kafka
/// transactions. If this test starts failing, the broker gained transactions.
#[tokio::test]
async fn transactions_are_refused() {
    let producer: FutureProducer = producer_config(&bootstrap())
        .set("transactional.id", unique("compat-tx"))
        .create()
        .unwrap();
    let error = producer.init_transactions(TIMEOUT).unwrap_err();
    let code = match &error {
        KafkaError::Transaction(e) => e.code(),
        other => other
            .rdkafka_error_code()
            .unwrap_or(RDKafkaErrorCode::Unknown),
    };
    assert_eq!(
        code,
        RDKafkaErrorCode::TransactionalIdAuthorizationFailed,
        "{error}"
    );
}

/// nisshi cannot add partitions to a topic: the partition count is decided at
/// creation (provisioning reads it from one setting) and changed by migration.
#[tokio::test]
async fn adding_partitions_is_refused() {
    let topic = unique("compat-partitions");
    create_topic(&bootstrap(), &topic, 1).await;
    let outcome = admin(&bootstrap())
        .create_partitions(
            &[NewPartitions::new(&topic, 2)],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await;
    let refused = match outcome {
        Err(_) => true,
        Ok(results) => results.iter().any(Result::is_err),
    };
    assert!(
        refused,
        "CreatePartitions succeeded: update the README's broker notes"
    );
    assert_eq!(partition_count(&topic), Some(1));
}
