//! One consumer group over three topics: one poll loop (one member in the
//! group), each key's records in order per topic, dead letters per
//! (topic, group), and a handler panic dead-lettered without stopping the
//! partition.

use std::collections::HashMap;
use std::time::Duration;

use paystream_bus::dead_letter::{ERROR_CLASS, ORIGINAL_TOPIC};
use paystream_contract::{Envelope, Event, Topic, samples};
use paystream_testkit::pipeline::{Pipeline, header, payment};
use paystream_testkit::{fresh_database, kafka, unique, wait_until};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use sqlx::PgPool;

use crate::{count, spawn_service};

const TOPICS: [Topic; 3] = [
    Topic::PaymentSubmitted,
    Topic::PaymentValidated,
    Topic::PaymentRejected,
];
const ACCOUNTS: usize = 5;
const PER_ACCOUNT: i64 = 20;
const PARTITIONS: i32 = 3;

#[tokio::test]
async fn one_group_reads_three_topics_in_key_order_with_dead_letters_per_topic() {
    let pipeline = Pipeline::new("svc-multi", &TOPICS, PARTITIONS).await;
    let database = fresh_database().await;
    let group = unique("multi");
    for seq in 0..PER_ACCOUNT {
        for key in 0..ACCOUNTS {
            let account = format!("ACC{key:05}");
            let submitted = payment(&account, seq);
            let mut validated = samples::payment_validated();
            validated.envelope = Envelope::first(format!("corr-v-{account}-{seq}"), "test", "test");
            validated.debtor.account.clone_from(&account);
            validated.amount_minor = seq;
            let mut rejected = samples::payment_rejected();
            rejected.envelope = Envelope::first(format!("corr-r-{account}-{seq}"), "test", "test");
            rejected.debtor_account.clone_from(&account);
            rejected.amount_minor = seq;
            pipeline.producer.send(submitted).await.unwrap();
            pipeline.producer.send(validated).await.unwrap();
            pipeline.producer.send(rejected).await.unwrap();
        }
        if seq == PER_ACCOUNT / 2 {
            // Mid-stream, on one key: bytes that are no event, on every
            // topic, and a payment whose handler panics.
            for topic in TOPICS {
                pipeline
                    .producer
                    .send_raw(
                        &pipeline.topic(topic),
                        Some(b"ACC00000"),
                        b"not avro",
                        &Vec::new(),
                    )
                    .await
                    .unwrap();
            }
            pipeline
                .producer
                .send(payment("ACC00000", -1))
                .await
                .unwrap();
        }
    }

    let mut service = spawn_service(
        &pipeline,
        &database,
        &group,
        "payment.submitted,payment.validated,payment.rejected",
        &["--no-emit"],
    );
    let total = TOPICS.len() as i64 * ACCOUNTS as i64 * PER_ACCOUNT;
    let pool = wait_until(Duration::from_secs(90), "every record applied", || async {
        let pool = PgPool::connect(&database.url).await.ok()?;
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM effects")
            .fetch_one(&pool)
            .await
            .ok()?;
        (applied == total).then_some(pool)
    })
    .await;

    // One poll loop: the group has one member, whatever the topic count.
    let probe: BaseConsumer = kafka::consumer_config(&pipeline.kafka.bootstrap, &unique("probe"))
        .create()
        .unwrap();
    let groups = probe
        .fetch_group_list(Some(&group), Duration::from_secs(10))
        .unwrap();
    let members: Vec<usize> = groups.groups().iter().map(|g| g.members().len()).collect();
    assert_eq!(members, [1], "one consumer client for the three topics");

    // Per topic and key, the records were applied in the order they were sent.
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT topic, account, seq FROM effects ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut seen: HashMap<(String, String), Vec<i64>> = HashMap::new();
    for (topic, account, seq) in rows {
        seen.entry((topic, account)).or_default().push(seq);
    }
    assert_eq!(seen.len(), TOPICS.len() * ACCOUNTS);
    for (key, seqs) in &seen {
        assert_eq!(*seqs, (0..PER_ACCOUNT).collect::<Vec<_>>(), "{key:?}");
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM effects WHERE seq = -1").await,
        0
    );

    // Dead letters: one topic per (topic, group), each holding its own.
    for topic in TOPICS {
        let dlq = pipeline.dead_letter_topic(topic, &group);
        let expected = if topic == Topic::PaymentSubmitted {
            2
        } else {
            1
        };
        let reader = kafka::reader(&pipeline.kafka.bootstrap, &dlq, PARTITIONS);
        let letters = kafka::receive(&reader, expected, Duration::from_secs(30)).await;
        let mut classes: Vec<String> = letters
            .iter()
            .map(|letter| {
                assert_eq!(header(letter, ORIGINAL_TOPIC), Some(pipeline.topic(topic)));
                header(letter, ERROR_CLASS).unwrap()
            })
            .collect();
        classes.sort();
        let wanted: &[&str] = if topic == Topic::PaymentSubmitted {
            &["deserialization", "panic"]
        } else {
            &["deserialization"]
        };
        assert_eq!(classes, wanted, "{dlq}");
    }
    assert_eq!(
        <paystream_contract::PaymentRejected as Event>::TOPIC,
        Topic::PaymentRejected
    );
    service.start_kill().unwrap();
    service.wait().await.unwrap();
}
