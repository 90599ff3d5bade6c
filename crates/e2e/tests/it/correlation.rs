//! From the gateway's 202 to the validation service's decision and the
//! ledger's hold: the correlationId the client is given is on the
//! validation service's log lines for that payment, on its output event,
//! and on the ledger's log line of the hold.

use std::time::Duration;

use paystream_contract::{PaymentValidated, Topic};
use paystream_e2e::{PAYER, Stack};
use paystream_testkit::logs::Captured;
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn the_correlation_id_of_the_202_is_on_the_decision_log_lines_and_the_output_event() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(paystream_telemetry::json_layer().with_writer(move || writer.clone()))
        .with(tracing_subscriber::EnvFilter::new("info"));
    // The test runtime is single-threaded: every task of both services runs
    // on this thread and logs through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let stack = Stack::start().await;
    let response = stack.submit("e2e-1", PAYER).await;
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.unwrap();
    let correlation = accepted["correlationId"].as_str().unwrap().to_owned();

    let validated = paystream_testkit::kafka::reader(
        &stack.pipeline.kafka.bootstrap,
        &stack.pipeline.topic(Topic::PaymentValidated),
        3,
    );
    let record = paystream_testkit::kafka::receive(&validated, 1, Duration::from_secs(60)).await;
    let event: PaymentValidated = stack
        .pipeline
        .codec
        .decode(rdkafka_payload(&record[0]))
        .await
        .unwrap();
    assert_eq!(event.envelope.correlation_id, correlation);

    let lines = captured.json_lines();
    let decided: Vec<&Value> = lines
        .iter()
        .filter(|line| line["message"] == "payment decided")
        .collect();
    assert_eq!(decided.len(), 1, "one decision logged");
    assert_eq!(decided[0]["correlation_id"], correlation.as_str());
    let validation_lines: Vec<&Value> = lines
        .iter()
        .filter(|line| {
            line["target"]
                .as_str()
                .unwrap_or_default()
                .starts_with("paystream_validation")
        })
        // Lines about a record; start-up lines belong to no payment.
        .filter(|line| line.get("span").is_some())
        .collect();
    assert!(!validation_lines.is_empty());
    for line in validation_lines {
        assert_eq!(line["correlation_id"], correlation.as_str(), "{line}");
    }

    // The ledger's hold of the same payment, one service further on.
    let held =
        paystream_testkit::wait_until(Duration::from_secs(60), "the hold's log line", || {
            let lines = captured.json_lines();
            async move {
                lines
                    .into_iter()
                    .find(|line| line["message"] == "hold placed")
            }
        })
        .await;
    assert_eq!(held["correlation_id"], correlation.as_str(), "{held}");
}

fn rdkafka_payload(record: &rdkafka::message::OwnedMessage) -> Option<&[u8]> {
    use rdkafka::Message;
    record.payload()
}
