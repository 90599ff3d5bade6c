//! What the client is told when the broker does not acknowledge in time, and
//! that it holds: 503 only for what was never sent, nothing delivered after
//! the answer, and a retry with the same Idempotency-Key is the same event.

use paystream_bus::{KafkaConfig, RegistryConfig};
use paystream_contract::Topic;
use paystream_gateway::Config;
use paystream_testkit::{TestRegistry, free_port, fresh_database, kafka, unique, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    TestApp, WAIT, config, event_ids, header, payment, spawn_app, spawn_app_with,
};
use paystream_testkit::nisshi::{Nisshi as Broker, Storage};

/// A gateway on a broker of the test's own, answering after 3 s at most,
/// and past its first payment.
async fn app_on(broker: &Broker) -> TestApp {
    let prefix = format!("{}.", unique("gwd"));
    for topic in paystream_gateway::topics() {
        kafka::create_topic(&broker.bootstrap(), &format!("{prefix}{}", topic.name()), 3).await;
    }
    let kafka = KafkaConfig::new(broker.bootstrap()).with_topic_prefix(prefix);
    let registry = TestRegistry::start().await;
    let database = fresh_database().await;
    let mut config: Config = config(kafka, &registry, &database.url);
    config.accept_timeout_ms = 3_000;
    let app = spawn_app_with(config, registry).await;
    submit(&app, "warm-up", &payment()).await;
    app
}

/// Submits a payment as a client does: retrying with the same key until it
/// is accepted. A producer's first connection (metadata, producer id) or
/// its reconnection to a restarted broker may take longer than one attempt.
async fn submit(app: &TestApp, key: &str, body: &Value) -> Value {
    wait_until(WAIT, &format!("payment `{key}` to be accepted"), || async {
        let (status, _, accepted) = app.post_payment(Some(key), body).await;
        (status == StatusCode::ACCEPTED).then_some(accepted)
    })
    .await
}

/// Another payment from the same debtor: the same partition as `payment()`.
fn marker() -> Value {
    let mut marker = payment();
    marker["endToEndId"] = json!("E2E-MARKER");
    marker
}

/// The payment the client was told about is not sent later behind its back:
/// the producer gives up before the gateway answers, so a broker that comes
/// back finds nothing of it queued. Proven by order: a payment sent after
/// the broker's return lands on the same partition, behind anything of the
/// first still queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_answered_without_an_ack_is_not_delivered_after_the_answer() {
    let mut broker = Broker::start(Storage::Sqlite).await;
    let app = app_on(&broker).await;

    broker.kill9();
    let (unacked, headers, problem) = app.post_payment(Some("lost"), &payment()).await;
    broker.restart().await;
    submit(&app, "after", &marker()).await;

    // Retries repeat an event under its id; what counts is distinct ids.
    let records = app.read_all(Topic::PaymentSubmitted).await;
    assert_eq!(
        event_ids(&records).len(),
        2,
        "the payment answered {unacked} was delivered after the answer: {:?}",
        event_ids(&records)
    );
    // The broker was gone: nothing can say the record was not sent, so the
    // answer says the outcome is unknown; the retry completes it.
    assert_eq!(unacked, StatusCode::GATEWAY_TIMEOUT, "{problem}");
    assert!(headers.contains_key("retry-after"));
    submit(&app, "lost", &payment()).await;
}

/// A request that reached the broker but whose ack never came back may be
/// written (librdkafka's "possibly persisted"): that is never a 503, which
/// says "not sent", and the client's retry sends the very same event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_broker_stops_answering_is_not_a_503_and_its_retry_is_the_same_event() {
    let broker = Broker::start(Storage::Sqlite).await;
    let app = app_on(&broker).await;

    broker.freeze();
    let (unacked, headers, problem) = app.post_payment(Some("frozen"), &marker()).await;
    broker.thaw();
    assert_ne!(
        unacked,
        StatusCode::SERVICE_UNAVAILABLE,
        "503 says `not sent`, but the request was in flight: {problem}"
    );
    assert_eq!(unacked, StatusCode::GATEWAY_TIMEOUT, "{problem}");
    assert!(headers.contains_key("retry-after"));

    // The client retries as told, until the answer is a 202.
    let accepted = submit(&app, "frozen", &marker()).await;
    let records = app.read_all(Topic::PaymentSubmitted).await;
    let of_frozen: Vec<_> = records
        .into_iter()
        .filter(|record| header(record, "correlationId") == accepted["correlationId"].as_str())
        .collect();
    assert!(!of_frozen.is_empty());
    assert_eq!(
        event_ids(&of_frozen).len(),
        1,
        "{} records of one payment",
        of_frozen.len()
    );
}

#[tokio::test]
async fn without_a_broker_the_client_gets_504_and_its_retry_is_the_same_payment() {
    let working = spawn_app().await;
    // The same database and topics, but a broker address nothing listens on.
    let mut config = working.config.clone();
    config.kafka.bootstrap = format!("127.0.0.1:{}", free_port());
    config.accept_timeout_ms = 2_000;
    let registry = TestRegistry::start().await;
    config.registry = RegistryConfig::new(&registry.url).auto_register();
    let broken = spawn_app_with(config, registry).await;

    let (status, headers, problem) = broken.post_payment(Some("retry-1"), &payment()).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{problem}");
    assert!(headers.contains_key("retry-after"));

    let (status, _, accepted) = working.post_payment(Some("retry-1"), &payment()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let records = working.read(Topic::PaymentSubmitted, 1).await;
    assert_eq!(
        header(&records[0], "correlationId"),
        accepted["correlationId"].as_str()
    );
    let (status, view) = working
        .get(&format!(
            "/v1/payments/{}",
            accepted["paymentId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"], "SUBMITTED");
}

/// Without the schema registry the event cannot even be encoded: certainly
/// not sent, so 503, and nothing reaches the topic.
#[tokio::test]
async fn a_payment_that_cannot_be_encoded_is_a_503_and_reaches_no_topic() {
    let working = spawn_app().await;
    let mut config = working.config.clone();
    config.registry =
        RegistryConfig::new(format!("http://127.0.0.1:{}", free_port())).auto_register();
    let registry = TestRegistry::start().await;
    let broken = spawn_app_with(config, registry).await;

    let (status, headers, problem) = broken.post_payment(Some("no-registry"), &payment()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(working.records_in(Topic::PaymentSubmitted), 0);
}
