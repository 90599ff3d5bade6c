//! One `AnyEvent` consumer group over two topics: each record decodes into
//! its topic's variant, each topic keeps its order, and dead letters go to
//! one topic per (topic, group). The service-kit tests cover the full case.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paystream_bus::dead_letter::{ERROR_CLASS, ORIGINAL_TOPIC};
use paystream_bus::handler::from_fn;
use paystream_bus::{BusError, HandlerError, Record};
use paystream_contract::{AnyEvent, Envelope, PaymentSubmitted, Topic};
use paystream_testkit::pipeline::{header, payment};
use paystream_testkit::{unique, wait_until};

use crate::common;

const TOPICS: [Topic; 2] = [Topic::PaymentSubmitted, Topic::PaymentValidated];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_group_reads_two_topics_with_dead_letters_per_topic() {
    let pipeline = common::pipeline(1).await;
    let group = unique("any");
    for seq in 0..4 {
        let submitted = payment("ACC1", seq);
        let validated = payment("ACC1", seq).into_validated(Envelope::first(
            format!("corr-v-{seq}"),
            "test",
            common::PRODUCER,
        ));
        pipeline.producer.send(submitted).await.unwrap();
        pipeline.producer.send(validated).await.unwrap();
        if seq == 1 {
            for topic in TOPICS {
                pipeline
                    .producer
                    .send_raw(
                        &pipeline.topic(topic),
                        Some(b"ACC1"),
                        b"not avro",
                        &Vec::new(),
                    )
                    .await
                    .unwrap();
            }
        }
    }

    // (the record's topic, the event's topic, amount), in handling order.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let seen = seen.clone();
        from_fn(move |record: Record<AnyEvent>| {
            let seen = seen.clone();
            async move {
                let amount = match &record.event {
                    AnyEvent::PaymentSubmitted(event) => event.amount_minor,
                    AnyEvent::PaymentValidated(event) => event.amount_minor,
                    other => return Err(HandlerError::permanent(format!("unexpected {other:?}"))),
                };
                seen.lock()
                    .unwrap()
                    .push((record.meta.topic, record.event.topic(), amount));
                Ok(())
            }
        })
    };
    let consumer = common::run(
        common::consumer::<AnyEvent>(&pipeline, common::settings(&group)).topics(TOPICS),
        common::at_least_once(&pipeline),
        handler,
    );
    wait_until(
        Duration::from_secs(60),
        "both topics committed to their end",
        || async {
            TOPICS
                .iter()
                .all(|topic| common::committed(&pipeline, &group, *topic, 0) == Some(5))
                .then_some(())
        },
    )
    .await;
    consumer.stop().await;

    let mut by_topic: BTreeMap<Topic, Vec<i64>> = BTreeMap::new();
    for (record_topic, event_topic, amount) in seen.lock().unwrap().iter() {
        assert_eq!(record_topic, event_topic, "decoded as its topic's event");
        by_topic.entry(*record_topic).or_default().push(*amount);
    }
    assert_eq!(
        by_topic,
        TOPICS.map(|topic| (topic, vec![0, 1, 2, 3])).into(),
        "each topic in order, once"
    );
    for topic in TOPICS {
        let dead = common::dead_letters(&pipeline, topic, &group).await;
        assert_eq!(dead.len(), 1, "{topic:?}");
        assert_eq!(
            header(&dead[0], ORIGINAL_TOPIC),
            Some(pipeline.topic(topic))
        );
        assert_eq!(
            header(&dead[0], ERROR_CLASS).as_deref(),
            Some("deserialization")
        );
    }
}

#[tokio::test]
async fn a_consumer_refuses_a_topic_its_event_type_cannot_decode() {
    // Refused before anything is contacted: nothing listens here.
    let kafka = paystream_bus::KafkaConfig::new("127.0.0.1:1");
    let registry =
        paystream_contract::RegistryClient::new("http://127.0.0.1:1", Duration::from_secs(1))
            .unwrap();
    let codec =
        paystream_contract::Codec::new(registry, paystream_contract::Registration::AutoRegister);
    let producer = paystream_bus::Producer::new(&kafka, codec.clone(), common::PRODUCER).unwrap();
    let consumer = paystream_bus::Consumer::<PaymentSubmitted>::new(
        kafka,
        common::settings("wrong-type"),
        codec,
        Arc::new(producer.clone()),
    )
    .topics([Topic::PaymentValidated]);
    let handler = from_fn(|_: Record<PaymentSubmitted>| async { Ok::<_, HandlerError>(()) });
    let error = consumer
        .run(
            paystream_bus::Effects::AtLeastOnce { producer },
            handler,
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            BusError::WrongEventType {
                topic: Topic::PaymentValidated,
                ..
            }
        ),
        "{error}"
    );
}
