//! `POST /v1/webhooks/card-transactions`: the card processor's signed webhook.

use paystream_contract::Topic;
use paystream_testkit::unique;
use rdkafka::Message;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{
    SECRET, card_transaction, event_ids, header, spawn_app, spawn_app_with, test_config, webhook,
    webhook_of,
};

#[tokio::test]
async fn signed_webhooks_are_published_once_and_forged_or_malformed_ones_never() {
    let app = spawn_app().await;
    let id = unique("wh");
    assert_eq!(app.webhook(webhook(&id, SECRET)).await, StatusCode::OK);
    assert_eq!(
        app.webhook(webhook(&id, SECRET)).await,
        StatusCode::OK,
        "a replay is acknowledged"
    );
    assert_eq!(
        app.webhook(webhook(&unique("wh"), "not-the-secret")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.webhook("{\"webhook\": 1}".into()).await,
        StatusCode::BAD_REQUEST
    );
    let tampered = webhook(&unique("wh"), SECRET).replace("\"15.00\"", "\"1500.00\"");
    assert_eq!(app.webhook(tampered).await, StatusCode::UNAUTHORIZED);

    let records = app.read(Topic::CardTransactionReceived, 1).await;
    assert_eq!(records[0].key(), Some("1234567".as_bytes()));
    assert!(header(&records[0], "correlationId").is_some());
    assert_eq!(app.records_in(Topic::CardTransactionReceived), 1);
}

/// The processor retries while a first delivery is still being published
/// (its own timeout is shorter than ours, or it sends in parallel): all of
/// them are answered 2xx and downstream sees one event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_deliveries_of_one_webhook_publish_one_event() {
    let app = spawn_app().await;
    let body = webhook(&unique("wh"), SECRET);
    let deliveries = (0..10).map(|_| app.webhook(body.clone()));
    let answers = futures::future::join_all(deliveries).await;
    assert!(
        answers.iter().all(StatusCode::is_success),
        "every delivery answered 2xx: {answers:?}"
    );
    let records = app.read_all(Topic::CardTransactionReceived).await;
    assert_eq!(
        event_ids(&records).len(),
        1,
        "{} records with these event ids: {:?}",
        records.len(),
        event_ids(&records)
    );
}

/// `webhook_id` is outside the signature: anyone who captured a delivery can
/// resend it under ids of their own. What is signed, the card transaction
/// id, decides what is new.
#[tokio::test]
async fn a_webhook_resent_under_new_webhook_ids_is_published_once() {
    let app = spawn_app().await;
    let transaction = card_transaction(&unique("ct"));
    assert_eq!(
        app.webhook(webhook_of(&unique("wh"), &transaction, SECRET))
            .await,
        StatusCode::OK
    );
    for _ in 0..5 {
        let replay = webhook_of(&unique("replayed"), &transaction, SECRET);
        assert_eq!(app.webhook(replay).await, StatusCode::OK);
    }
    let records = app.read_all(Topic::CardTransactionReceived).await;
    assert_eq!(records.len(), 1, "event ids {:?}", event_ids(&records));
    // Nor does a replay start a journey of its own.
    let correlation = header(&records[0], "correlationId").unwrap();
    assert!(!correlation.contains("replayed"), "{correlation}");
}

/// A card transaction published by one gateway whose record of it is lost
/// (its database answer never came back, or another instance with another
/// database gets the resend) is published again with the same eventId, so
/// downstream's idempotent consumers drop the repeat.
#[tokio::test]
async fn a_card_transaction_sent_again_after_its_record_was_lost_keeps_its_event_id() {
    let (config, registry) = test_config().await;
    let first = spawn_app_with(config.clone(), registry).await;
    let transaction = card_transaction(&unique("ct"));
    assert_eq!(
        first
            .webhook(webhook_of(&unique("wh"), &transaction, SECRET))
            .await,
        StatusCode::OK
    );
    // The same topics and registry, but no memory of the first delivery.
    let mut amnesiac = config;
    let database = paystream_testkit::fresh_database().await;
    amnesiac.database_url = database.url;
    let registry = paystream_testkit::TestRegistry::start().await;
    amnesiac.registry = paystream_bus::RegistryConfig::new(&registry.url).auto_register();
    let second = spawn_app_with(amnesiac, registry).await;
    assert_eq!(
        second
            .webhook(webhook_of(&unique("wh"), &transaction, SECRET))
            .await,
        StatusCode::OK
    );
    let records = first.read_all(Topic::CardTransactionReceived).await;
    assert_eq!(records.len(), 2);
    assert_eq!(event_ids(&records).len(), 1, "{:?}", event_ids(&records));
    assert_eq!(
        header(&records[0], "correlationId"),
        header(&records[1], "correlationId")
    );
}

/// A field PostgreSQL or a downstream system cannot hold is the processor's
/// error to fix: a 4xx problem naming it, never a 503 it would retry forever.
#[tokio::test]
async fn control_characters_in_a_webhook_are_refused_naming_the_field() {
    let app = spawn_app().await;
    for field in [
        "merchantName",
        "cardId",
        "cardtransactionId",
        "merchantCountry",
        "codeStatus",
        "createdDate",
        "cardtransactionStatus",
    ] {
        let mut transaction = card_transaction(&unique("ct"));
        transaction[field] = json!(format!("bad\u{0}{field}"));
        let (status, problem) = app
            .webhook_response(webhook_of(&unique("wh"), &transaction, SECRET))
            .await;
        assert!(status.is_client_error(), "{field}: {status} {problem}");
        assert!(
            problem.to_string().contains(field),
            "{field} not named: {problem}"
        );
    }
    let (status, problem) = app
        .webhook_response(webhook_of("wh\u{0}", &card_transaction("1"), SECRET))
        .await;
    assert!(status.is_client_error(), "{status} {problem}");
    assert!(problem.to_string().contains("webhook_id"), "{problem}");
    assert_eq!(app.records_in(Topic::CardTransactionReceived), 0);
}
