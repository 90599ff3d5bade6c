//! Dead letters go back to their topic once their cause is fixed, unchanged
//! but for the runtime's error headers, and each goes back once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paystream_bus::replay::{LetterSummary, REPLAYED_FROM};
use paystream_bus::{HandlerError, Record, ReplayMode, headers, replay};
use paystream_contract::{Event, PaymentSubmitted, Topic};
use paystream_testkit::{unique, wait_until};
use rdkafka::Message;
use uuid::Uuid;

async fn run(env: &common::Env, dead_letter_topic: &str, mode: ReplayMode) -> Vec<LetterSummary> {
    replay(
        &env.kafka,
        &env.producer,
        dead_letter_topic,
        mode,
        Duration::from_secs(30),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_letter_is_replayed_once_with_its_bytes_and_ids_and_handled_after_the_fix() {
    let env = common::Env::new(1).await;
    let group = unique("replay");
    let topic = env.topic(Topic::PaymentSubmitted);
    let dead_letter_topic = env.dead_letter_topic(Topic::PaymentSubmitted, &group);
    let broken = common::payment("BROKEN", 0);
    let fine = common::payment("FINE", 0);
    env.producer
        .send_all([broken.clone(), fine.clone()])
        .await
        .unwrap();

    // A handler with a bug for one account, until it is fixed.
    let fixed = Arc::new(AtomicBool::new(false));
    let handled = Arc::new(Mutex::new(Vec::<(Uuid, Option<String>)>::new()));
    let handler = {
        let (fixed, handled) = (fixed.clone(), handled.clone());
        move |record: Record<PaymentSubmitted>| {
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
        }
    };
    let consumer = env.start(common::settings(&group), handler);
    common::read_topic(&env, &dead_letter_topic, 1).await;
    wait_until(
        Duration::from_secs(30),
        "the good record handled",
        || async { (handled.lock().unwrap().len() == 1).then_some(()) },
    )
    .await;

    let listed = run(&env, &dead_letter_topic, ReplayMode::DryRun).await;
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
    let replayed = run(&env, &dead_letter_topic, ReplayMode::Replay).await;
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
            Some(format!("{dead_letter_topic}:0:0"))
        ),
        "the same event, marked as replayed"
    );

    let on_topic = common::read_topic(&env, &topic, 3).await;
    let (original, again) = (&on_topic[0], &on_topic[2]);
    assert_eq!(again.key(), original.key());
    assert_eq!(again.payload(), original.payload(), "original bytes");
    for name in ["correlationId", "eventId", "traceparent"] {
        assert_eq!(
            common::header(again, name),
            common::header(original, name),
            "{name}"
        );
    }
    for name in ["error.class", "error.reason", "original.offset", "attempts"] {
        assert_eq!(common::header(again, name), None, "{name} stripped");
    }

    let nothing_left = run(&env, &dead_letter_topic, ReplayMode::Replay).await;
    assert!(nothing_left.is_empty(), "{nothing_left:?}");
    consumer.stop().await;
    assert_eq!(handled.lock().unwrap().len(), 2);
}
