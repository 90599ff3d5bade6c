//! Dead letters go back to their topic once their cause is fixed, unchanged
//! but for the runtime's error headers, and each goes back once.
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paystream_bus::handler::from_fn;
use paystream_bus::replay::{LetterSummary, REPLAYED_FROM};
use paystream_bus::{HandlerError, Record, ReplayMode, ReplayOptions, headers, replay};
use paystream_contract::{Event, PaymentSubmitted, Topic};
use paystream_testkit::pipeline::{Pipeline, header, payment};
use paystream_testkit::{unique, wait_until};
use rdkafka::Message;
use uuid::Uuid;

use crate::common;

async fn run(
    pipeline: &Pipeline,
    dead_letter_topic: &str,
    options: ReplayOptions,
) -> Vec<LetterSummary> {
    replay(
        &pipeline.kafka,
        &pipeline.producer,
        dead_letter_topic,
        &options,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_class_of_dead_letters_is_replayed_once_unchanged_and_handled_after_the_fix() {
    let pipeline = common::pipeline(1).await;
    let group = unique("replay");
    let topic = pipeline.topic(Topic::PaymentSubmitted);
    let dead_letter_topic = pipeline.dead_letter_topic(Topic::PaymentSubmitted, &group);
    let broken = payment("BROKEN", 0);
    let fine = payment("FINE", 0);
    pipeline
        .producer
        .send_all([broken.clone(), fine.clone()])
        .await
        .unwrap();
    // And bytes no schema reads: dead-lettered as `deserialization`.
    pipeline
        .producer
        .send_raw(&topic, Some(b"POISON"), b"not avro", &Vec::new())
        .await
        .unwrap();

    // A handler with a bug for one account, until it is fixed.
    let fixed = Arc::new(AtomicBool::new(false));
    let handled = Arc::new(Mutex::new(Vec::<(Uuid, Option<String>)>::new()));
    let handler = {
        let (fixed, handled) = (fixed.clone(), handled.clone());
        from_fn(move |record: Record<PaymentSubmitted>| {
            let (fixed, handled) = (fixed.clone(), handled.clone());
            async move {
                if record.event.debtor.account == "BROKEN" && !fixed.load(AtomicOrdering::SeqCst) {
                    return Err(HandlerError::permanent("a bug in the handler"));
                }
                let replayed_from =
                    headers::text(&record.meta.headers, REPLAYED_FROM).map(str::to_owned);
                handled
                    .lock()
                    .unwrap()
                    .push((record.event.envelope().event_id, replayed_from));
                Ok(())
            }
        })
    };
    let consumer = common::start(&pipeline, common::settings(&group), handler);
    common::receive(&pipeline, &dead_letter_topic, 2).await;
    wait_until(
        Duration::from_secs(30),
        "the good record handled",
        || async { (handled.lock().unwrap().len() == 1).then_some(()) },
    )
    .await;

    let everything = run(
        &pipeline,
        &dead_letter_topic,
        ReplayOptions::new(ReplayMode::DryRun),
    )
    .await;
    assert_eq!(everything.len(), 2, "{everything:?}");
    let handler_failures = || ReplayOptions::new(ReplayMode::Replay).error_class("handler");
    let listed = run(
        &pipeline,
        &dead_letter_topic,
        ReplayOptions::new(ReplayMode::DryRun).error_class("handler"),
    )
    .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].error_class.as_deref(), Some("handler"));
    assert_eq!(listed[0].original_topic.as_deref(), Some(topic.as_str()));
    assert_eq!(
        listed[0].correlation_id.as_deref(),
        Some(broken.envelope.correlation_id.as_str())
    );
    assert_eq!(
        handled.lock().unwrap().len(),
        1,
        "listing sends nothing back"
    );

    fixed.store(true, AtomicOrdering::SeqCst);
    let replayed = run(&pipeline, &dead_letter_topic, handler_failures()).await;
    assert_eq!(replayed.len(), 1);
    wait_until(
        Duration::from_secs(30),
        "the replayed record handled",
        || async { (handled.lock().unwrap().len() == 2).then_some(()) },
    )
    .await;
    assert_eq!(
        handled.lock().unwrap()[1],
        (
            broken.envelope.event_id,
            Some(format!("{dead_letter_topic}:0:{}", listed[0].offset))
        ),
        "the same event, marked as replayed"
    );

    let on_topic = common::receive(&pipeline, &topic, 4).await;
    let (original, again) = (&on_topic[0], &on_topic[3]);
    assert_eq!(again.key(), original.key());
    assert_eq!(again.payload(), original.payload(), "original bytes");
    for name in ["correlationId", "eventId", "traceparent"] {
        assert_eq!(header(again, name), header(original, name), "{name}");
    }
    for name in ["error.class", "error.reason", "original.offset", "attempts"] {
        assert_eq!(header(again, name), None, "{name} stripped");
    }

    let nothing_left = run(&pipeline, &dead_letter_topic, handler_failures()).await;
    assert!(nothing_left.is_empty(), "{nothing_left:?}");
    let poison = run(
        &pipeline,
        &dead_letter_topic,
        ReplayOptions::new(ReplayMode::DryRun).error_class("deserialization"),
    )
    .await;
    assert_eq!(poison.len(), 1, "another class keeps its own progress");
    assert_eq!(poison[0].error_class.as_deref(), Some("deserialization"));
    assert_ne!(poison[0].offset, listed[0].offset);
    consumer.stop().await;
    assert_eq!(handled.lock().unwrap().len(), 2);
}
