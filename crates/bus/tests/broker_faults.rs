//! The runtime rides through broker faults injected on librdkafka's mock
//! cluster (nisshi cannot take a broker down under a live cluster): a leader
//! down for seconds, produce requests failing with retriable errors, the group
//! coordinator moving. Nothing is lost: every input's output is written and
//! every input offset committed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use paystream_bus::{Consumer, ConsumerSettings, HandlerError, KafkaConfig, Producer, Record};
use paystream_contract::{
    Codec, Envelope, PaymentSubmitted, PaymentValidated, Registration, RegistryClient, Topic,
};
use paystream_testkit::{TestRegistry, kafka, unique, wait_until};
use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_consumer_rides_through_an_outage_retriable_errors_and_a_coordinator_move() {
    const TOTAL: i64 = 300;
    let cluster = MockCluster::new(3).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let group = unique("faults");
    let mut config = KafkaConfig::new(&bootstrap).with_topic_prefix(format!("{}.", unique("mock")));
    // librdkafka's reconnect back-off after the outage can outlast the
    // default 30 s ack timeout on a loaded machine; a record must not be
    // given up on while the cluster is recovering.
    config.ack_timeout_ms = 120_000;
    let input = config.topic(Topic::PaymentSubmitted);
    let output = config.topic(Topic::PaymentValidated);
    for topic in [
        &input,
        &output,
        &paystream_contract::dead_letter_topic(&input, &group),
    ] {
        cluster.create_topic(topic, 1, 3).unwrap();
    }
    cluster.partition_leader(&input, 0, Some(1)).unwrap();
    cluster.partition_leader(&output, 0, Some(1)).unwrap();
    cluster
        .coordinator(MockCoordinator::Group(group.clone()), 2)
        .unwrap();

    let registry = TestRegistry::start().await;
    let codec = Codec::new(
        RegistryClient::new(&registry.url, Duration::from_secs(5)).unwrap(),
        Registration::AutoRegister,
    );
    let producer = Producer::new(&config, codec.clone(), "faults").unwrap();
    let first_half = (0..TOTAL / 2).map(payment);
    producer.send_all(first_half).await.unwrap();

    let relay = {
        let producer = producer.clone();
        move |record: Record<PaymentSubmitted>| {
            let producer = producer.clone();
            async move {
                let input = record.event;
                producer
                    .send(input.into_validated(Envelope::pending()))
                    .await?;
                Ok::<_, HandlerError>(())
            }
        }
    };
    let shutdown = CancellationToken::new();
    // Stops the consumer if an assertion fails, so the runtime can exit.
    let _stop_on_failure = shutdown.clone().drop_guard();
    let consumer = Consumer::<PaymentSubmitted>::new(
        config.clone(),
        ConsumerSettings::new(&group),
        codec.clone(),
        Arc::new(producer.clone()),
    );
    let running = tokio::spawn(consumer.run(relay, shutdown.clone()));

    // Leader of both topics down for three seconds while records flow.
    cluster.broker_down(1).unwrap();
    let during = producer.send_all((TOTAL / 2..TOTAL * 3 / 4).map(payment));
    let recover = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        cluster.broker_up(1).unwrap();
    };
    let (sent, ()) = tokio::join!(during, recover);
    sent.unwrap();
    // Then produce requests fail with retriable errors, and the coordinator moves.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        ],
    );
    cluster
        .coordinator(MockCoordinator::Group(group.clone()), 3)
        .unwrap();
    producer
        .send_all((TOTAL * 3 / 4..TOTAL).map(payment))
        .await
        .unwrap();

    wait_until(Duration::from_secs(90), "every input committed", || async {
        (kafka::committed(&bootstrap, &group, &input, 0) == Some(TOTAL)).then_some(())
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();

    let reader = kafka::reader(&bootstrap, &output, 1);
    let mut seen = BTreeSet::new();
    let mut records = 0;
    while seen.len() < TOTAL as usize {
        for record in kafka::receive(&reader, 1, Duration::from_secs(30)).await {
            let event: PaymentValidated = codec
                .decode(rdkafka::Message::payload(&record))
                .await
                .unwrap();
            seen.insert(event.amount_minor);
            records += 1;
        }
    }
    assert_eq!(seen, (0..TOTAL).collect::<BTreeSet<_>>(), "no input lost");
    assert!(records >= TOTAL);
}

fn payment(seq: i64) -> PaymentSubmitted {
    let mut payment = paystream_contract::samples::payment_submitted();
    payment.envelope = Envelope::first(format!("corr-{seq}"), format!("req-{seq}"), "faults");
    payment.payment_id = uuid::Uuid::now_v7();
    payment.debtor.account = format!("ACC{}", seq % 17);
    payment.amount_minor = seq;
    payment
}
