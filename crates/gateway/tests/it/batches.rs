//! `POST /v1/payment-batches` and `GET /v1/payment-batches/{id}`.

use std::collections::BTreeSet;
use std::time::Instant;

use paystream_bus::{Producer, RegistryConfig};
use paystream_contract::{Envelope, Topic};
use paystream_gateway::auth::ApiKeys;
use paystream_testkit::{TestRegistry, free_port, wait_until};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::support::{
    KEY, TestApp, WAIT, event_ids, header, payment, spawn_app, spawn_app_with, test_config,
};

impl TestApp {
    async fn post_batch(&self, key: &str, body: &Value) -> (StatusCode, HeaderMap, Value) {
        let response = self
            .http
            .post(format!("{}/v1/payment-batches", self.base))
            .bearer_auth(KEY)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (
            status,
            headers,
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

fn payment_numbered(n: usize) -> Value {
    let mut payment = payment();
    payment["endToEndId"] = json!(format!("E2E-B{n}"));
    payment
}

/// Three good payments among four bad items, each bad its own way.
fn mixed_batch(prefix: &str) -> Value {
    let mut bad = payment();
    bad["currency"] = json!("XYZ");
    bad["debtor"]["account"] = json!("DE89370400440532013001");
    let good = |n: usize| {
        json!({ "idempotencyKey": format!("{prefix}-{n}"), "correlationId": format!("{prefix}-corr-{n}"),
                "payment": payment_numbered(n) })
    };
    json!({ "payments": [
        good(0),
        { "idempotencyKey": format!("{prefix}-1"), "payment": bad },
        good(2),
        { "payment": payment_numbered(3) },
        { "idempotencyKey": format!("{prefix}-0"), "payment": payment_numbered(4) },
        { "idempotencyKey": format!("{prefix}-5"), "payment": "not a payment" },
        good(6),
    ]})
}

fn statuses(answer: &Value) -> Vec<&str> {
    answer["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {answer}"))
        .iter()
        .map(|item| item["status"].as_str().unwrap())
        .collect()
}

fn fields(item: &Value) -> Vec<&str> {
    item["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {item}"))
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect()
}

/// The correlation ids of the payment.submitted records on the topic.
async fn published(app: &TestApp) -> Vec<String> {
    let records = app.read_all(Topic::PaymentSubmitted).await;
    assert_eq!(event_ids(&records).len(), records.len(), "an event twice");
    let mut correlations: Vec<String> = records
        .iter()
        .map(|record| header(record, "correlationId").unwrap().to_owned())
        .collect();
    correlations.sort();
    correlations
}

#[tokio::test]
async fn a_batch_with_bad_items_publishes_each_good_one_once_and_refuses_the_rest() {
    let app = spawn_app().await;
    let (status, headers, answer) = app.post_batch("batch-1", &mixed_batch("m")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        statuses(&answer),
        [
            "ACCEPTED", "REFUSED", "ACCEPTED", "REFUSED", "REFUSED", "REFUSED", "ACCEPTED"
        ]
    );
    assert_eq!(
        (answer["accepted"].as_u64(), answer["refused"].as_u64()),
        (Some(3), Some(4))
    );
    let batch_id = answer["batchId"].as_str().unwrap();
    assert_eq!(
        headers["location"],
        format!("/v1/payment-batches/{batch_id}").as_str()
    );
    assert!(
        !headers.contains_key("retry-after"),
        "every item was answered for good"
    );

    let items = answer["items"].as_array().unwrap();
    assert_eq!(
        fields(&items[1]),
        ["payment.currency", "payment.debtor.account"]
    );
    assert_eq!(items[1]["refusal"], "INVALID_FIELDS");
    assert_eq!(fields(&items[3]), ["idempotencyKey"]);
    assert_eq!(items[3]["idempotencyKey"], Value::Null);
    assert_eq!(items[4]["refusal"], "DUPLICATE_IDEMPOTENCY_KEY");
    assert!(
        items[4]["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("item 0")
    );
    assert_eq!(fields(&items[5]), ["payment"]);

    // Exactly the accepted ones, once each, with their own correlation ids.
    assert_eq!(published(&app).await, ["m-corr-0", "m-corr-2", "m-corr-6"]);
    let (status, view) = app.get(items[2]["statusUrl"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"], "SUBMITTED");
    assert_eq!(view["correlationId"], "m-corr-2");
}

#[tokio::test]
async fn repeating_a_batch_repeats_its_answer_and_publishes_nothing_new() {
    let app = spawn_app().await;
    let batch = mixed_batch("r");
    let (_, _, first) = app.post_batch("batch-r", &batch).await;
    // The same body, its keys in another order: the same batch.
    let reordered: Value = serde_json::from_str(&batch.to_string()).unwrap();
    let (status, _, again) = app.post_batch("batch-r", &reordered).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, first);
    assert_eq!(app.records_in(Topic::PaymentSubmitted), 3);

    let mut other = batch.clone();
    other["payments"][0]["payment"]["amount"] = json!("1.00");
    let (status, _, problem) = app.post_batch("batch-r", &other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("idempotency-key-reused")
    );

    // A new batch key with the same items: the same payments, nothing new sent.
    let (_, _, under_new_key) = app.post_batch("batch-r2", &batch).await;
    assert_ne!(under_new_key["batchId"], first["batchId"]);
    assert_eq!(under_new_key["items"], first["items"]);
    assert_eq!(app.records_in(Topic::PaymentSubmitted), 3);
}

#[tokio::test]
async fn an_item_under_a_key_of_post_payments_is_that_payment_or_refused_as_reused() {
    let app = spawn_app().await;
    let (_, _, alone) = app.post_payment(Some("solo-1"), &payment()).await;
    app.post_payment(Some("solo-2"), &payment_numbered(2)).await;
    let mut changed = payment_numbered(2);
    changed["amount"] = json!("9.99");
    let batch = json!({ "payments": [
        { "idempotencyKey": "solo-1", "payment": payment() },
        { "idempotencyKey": "solo-2", "payment": changed },
        { "idempotencyKey": "batch-first", "payment": payment_numbered(3) },
    ]});
    let (status, _, answer) = app.post_batch("batch-k", &batch).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let items = answer["items"].as_array().unwrap();
    assert_eq!(items[0]["status"], "ACCEPTED");
    assert_eq!(items[0]["paymentId"], alone["paymentId"]);
    assert_eq!(items[0]["correlationId"], alone["correlationId"]);
    assert_eq!(items[1]["refusal"], "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(fields(&items[1]), ["idempotencyKey"]);

    // And the other way round: a payment first sent in a batch, then alone.
    let (status, _, again) = app
        .post_payment(Some("batch-first"), &payment_numbered(3))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["paymentId"], items[2]["paymentId"]);
    assert_eq!(again["correlationId"], items[2]["correlationId"]);
    assert_eq!(app.records_in(Topic::PaymentSubmitted), 3);
}

async fn reject(app: &TestApp, payment_id: &str, correlation: &str) {
    let codec = app.config.registry.codec().unwrap();
    let producer = Producer::new(&app.config.kafka, codec, "validation-stand-in").unwrap();
    let mut rejected = paystream_contract::samples::payment_rejected();
    rejected.envelope = Envelope::first(correlation, "test", "");
    rejected.payment_id = payment_id.parse().unwrap();
    rejected.reason_code = paystream_contract::ReasonCode::from_code("AM04");
    producer.send(rejected).await.unwrap();
}

#[tokio::test]
async fn a_batch_shows_each_items_progress_to_its_own_client_only() {
    let (mut config, registry) = test_config().await;
    config.api_keys = ApiKeys::default()
        .with("acme", KEY)
        .with("globex", "key-of-globex");
    let app = spawn_app_with(config, registry).await;
    let (_, _, answer) = app.post_batch("batch-p", &mixed_batch("p")).await;
    let path = format!(
        "/v1/payment-batches/{}",
        answer["batchId"].as_str().unwrap()
    );

    let (status, progress) = app.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{progress}");
    assert_eq!(progress["total"], 7);
    assert_eq!(progress["counts"], json!({ "SUBMITTED": 3, "REFUSED": 4 }));
    assert_eq!(
        progress["items"][0]["paymentId"],
        answer["items"][0]["paymentId"]
    );
    assert_eq!(progress["items"][1]["refusal"], "INVALID_FIELDS");
    assert_eq!(
        fields(&progress["items"][1]),
        ["payment.currency", "payment.debtor.account"]
    );

    // The pipeline moves item 0 on; the batch shows it.
    let first = &answer["items"][0];
    reject(
        &app,
        first["paymentId"].as_str().unwrap(),
        first["correlationId"].as_str().unwrap(),
    )
    .await;
    let progress = wait_until(WAIT, "item 0 to show REJECTED", || async {
        let (_, progress) = app.get(&path).await;
        (progress["items"][0]["status"] == "REJECTED").then_some(progress)
    })
    .await;
    assert_eq!(progress["items"][0]["reasonCode"], "AM04");
    assert_eq!(
        progress["counts"],
        json!({ "SUBMITTED": 2, "REJECTED": 1, "REFUSED": 4 })
    );

    let other_client = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth("key-of-globex")
        .send()
        .await
        .unwrap();
    assert_eq!(other_client.status(), StatusCode::NOT_FOUND);
    for unknown in [uuid::Uuid::now_v7().to_string(), "not-a-uuid".to_owned()] {
        let (status, _) = app.get(&format!("/v1/payment-batches/{unknown}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_thousand_payments_are_one_batch_and_more_or_none_are_refused() {
    let app = spawn_app().await;
    let items = |count: usize| -> Value {
        let payments: Vec<Value> = (0..count)
            .map(
                |n| json!({ "idempotencyKey": format!("big-{n}"), "payment": payment_numbered(n) }),
            )
            .collect();
        json!({ "payments": payments })
    };
    for (count, key) in [(1_001, "too-many"), (0, "none")] {
        let (status, _, problem) = app.post_batch(key, &items(count)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{count}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], "payments");
    }
    let (status, _, problem) = app.post_batch("shapeless", &json!({ "items": [] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(app.records_in(Topic::PaymentSubmitted), 0);

    // ~600 KB, far over the single-payment body limit: the route's own limit.
    let started = Instant::now();
    let (status, _, answer) = app.post_batch("thousand", &items(1_000)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 1_000, "{}", answer["items"][0]);
    eprintln!("1,000 payments accepted in {:?}", started.elapsed());
    assert_eq!(app.records_in(Topic::PaymentSubmitted), 1_000);
}

/// With the broker gone every good item is answered without an ack (never
/// ACCEPTED) and nothing is lost: the batch is stored, so its repeat under
/// the same key, once the broker is there, sends the very same events.
#[tokio::test]
async fn items_the_broker_did_not_ack_are_completed_by_repeating_the_batch() {
    let working = spawn_app().await;
    // The same database and topics, but a broker address nothing listens on.
    let mut config = working.config.clone();
    config.kafka.bootstrap = format!("127.0.0.1:{}", free_port());
    config.accept_timeout_ms = 2_000;
    let registry = TestRegistry::start().await;
    config.registry = RegistryConfig::new(&registry.url).auto_register();
    let broken = spawn_app_with(config, registry).await;

    let batch = mixed_batch("d");
    let (status, headers, unacked) = broken.post_batch("batch-d", &batch).await;
    assert_eq!(status, StatusCode::OK, "{unacked}");
    assert_eq!(
        statuses(&unacked),
        [
            "UNKNOWN", "REFUSED", "UNKNOWN", "REFUSED", "REFUSED", "REFUSED", "UNKNOWN"
        ]
    );
    assert_eq!(unacked["unknown"], 3);
    assert!(headers.contains_key("retry-after"));
    let (_, progress) = working
        .get(&format!(
            "/v1/payment-batches/{}",
            unacked["batchId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        progress["counts"],
        json!({ "NOT_CONFIRMED": 3, "REFUSED": 4 })
    );

    let (status, headers, completed) = working.post_batch("batch-d", &batch).await;
    assert_eq!(status, StatusCode::OK, "{completed}");
    assert_eq!(completed["batchId"], unacked["batchId"]);
    assert_eq!(completed["accepted"], 3);
    assert!(!headers.contains_key("retry-after"));
    let ids = |answer: &Value| -> BTreeSet<String> {
        answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|item| item["paymentId"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(ids(&completed), ids(&unacked), "the same payments");
    assert_eq!(
        published(&working).await,
        ["d-corr-0", "d-corr-2", "d-corr-6"]
    );
}

#[tokio::test]
async fn a_batch_of_n_payments_counts_as_n_requests_against_the_clients_rate() {
    let (mut config, registry) = test_config().await;
    config.rate_limit_per_client = 10;
    let app = spawn_app_with(config, registry).await;
    // Forty payments at ten a second: the batch leaves the client three
    // seconds in debt, so its next request is refused (were the batch one
    // request, nine tokens would be left).
    let batch = json!({ "payments": (0..40)
        .map(|n| json!({ "idempotencyKey": format!("rate-{n}"), "payment": payment_numbered(n) }))
        .collect::<Vec<_>>() });
    let (status, _, answer) = app.post_batch("rate-batch", &batch).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 40, "{answer}");
    let next = app
        .http
        .post(format!("{}/v1/payments", app.base))
        .bearer_auth(KEY)
        .header("Idempotency-Key", "rate-after")
        .json(&payment())
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(next.headers().contains_key("retry-after"));
}
