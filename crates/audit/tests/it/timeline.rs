//! A payment's timeline: its events across the services in causal order
//! (even where a service's clock runs behind), with their facts, and its
//! dead letters with their error class.

use chrono::Duration;
use paystream_bus::DeadLetter;
use paystream_contract::{Envelope, Topic, samples};
use paystream_testkit::pipeline::header;
use serde_json::Value;
use uuid::Uuid;

use crate::stand::{PARTITIONS, Stand};

#[tokio::test]
async fn a_payments_timeline_is_in_causal_order_with_its_facts_and_dead_letters() {
    let stand = Stand::new("audit-timeline").await;
    let audit = stand.start().await;

    let mut submitted = samples::payment_submitted();
    submitted.envelope =
        Envelope::first(format!("corr-{}", Uuid::new_v4()), "request-1", "gateway");
    let mut validated = submitted
        .clone()
        .into_validated(Envelope::caused_by(&submitted.envelope, "validation"));
    // Validation's clock runs 3 ms behind the gateway's: causes still come first.
    validated.envelope.occurred_at = submitted.envelope.occurred_at - Duration::milliseconds(3);
    let mut debited = samples::account_debited();
    debited.envelope = Envelope::caused_by(&validated.envelope, "cbs-debit");
    debited.payment_id = submitted.payment_id;
    debited.uetr = Some(submitted.uetr.to_string());
    let mut to_rail = samples::rtgs_submitted();
    to_rail.envelope = Envelope::caused_by(&debited.envelope, "rtgs-gateway");
    to_rail.payment_id = submitted.payment_id;
    to_rail.uetr = submitted.uetr;
    let mut settled = samples::rtgs_settled();
    settled.envelope = Envelope::caused_by(&to_rail.envelope, "rtgs-gateway");
    settled.payment_id = submitted.payment_id;
    settled.uetr = submitted.uetr;

    // Published in another order than they happened.
    stand
        .producer("rtgs-gateway")
        .send(settled.clone())
        .await
        .unwrap();
    stand
        .producer("cbs-debit")
        .send(debited.clone())
        .await
        .unwrap();
    stand
        .producer("gateway")
        .send(submitted.clone())
        .await
        .unwrap();
    stand
        .producer("rtgs-gateway")
        .send(to_rail.clone())
        .await
        .unwrap();
    stand
        .producer("validation")
        .send(validated.clone())
        .await
        .unwrap();
    // Another payment, which must not show.
    stand
        .producer("gateway")
        .send(samples::payment_submitted())
        .await
        .unwrap();
    // The notifications group could not handle the debit.
    let record = stand
        .pipeline
        .read_all(Topic::AccountDebited, PARTITIONS)
        .await
        .into_iter()
        .find(|r| header(r, "eventId") == Some(debited.envelope.event_id.to_string()))
        .unwrap();
    let letter = DeadLetter::of(
        &record,
        "notifications",
        "permanent",
        "no template for DE",
        1,
    );
    paystream_testkit::kafka::create_topic(&stand.pipeline.kafka.bootstrap, &letter.topic, 1).await;
    stand
        .pipeline
        .producer
        .send_raw(
            &letter.topic,
            letter.key.as_deref(),
            &letter.value,
            &letter.headers,
        )
        .await
        .unwrap();
    stand.await_entries(7).await;

    let client = reqwest::Client::new();
    let get = |id: String| {
        let client = client.clone();
        let url = format!("{}/v1/payments/{id}/timeline", audit.url());
        async move { client.get(url).send().await.unwrap() }
    };
    let response = get(submitted.payment_id.to_string()).await;
    assert_eq!(response.status(), 200);
    let timeline: Value = response.json().await.unwrap();
    let events = timeline["events"].as_array().unwrap();
    let column = |name: &str| events.iter().map(|e| e[name].clone()).collect::<Vec<_>>();
    assert_eq!(
        column("topic"),
        [
            "payment.submitted",
            "payment.validated",
            "account.debited",
            "rtgs.submitted",
            "rtgs.settled"
        ]
    );
    assert_eq!(
        column("status"),
        [
            "SUBMITTED",
            "VALIDATED",
            "DEBITED",
            "SUBMITTED_TO_RAIL",
            "SETTLED"
        ]
    );
    assert_eq!(
        column("producer"),
        [
            "gateway",
            "validation",
            "cbs-debit",
            "rtgs-gateway",
            "rtgs-gateway"
        ]
    );
    assert_eq!(column("eventType")[0], "PaymentSubmitted");
    let ids = [
        submitted.envelope.event_id,
        validated.envelope.event_id,
        debited.envelope.event_id,
        to_rail.envelope.event_id,
        settled.envelope.event_id,
    ];
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event["eventId"], ids[n].to_string(), "{event}");
        if n > 0 {
            assert_eq!(event["causationId"], ids[n - 1].to_string(), "{event}");
        }
        assert_eq!(event["amountMinor"], submitted.amount_minor, "{event}");
        assert_eq!(event["currency"], "EUR");
        assert_eq!(event["uetr"], submitted.uetr.to_string(), "{event}");
        assert_eq!(event["traceId"].as_str().map(str::len), Some(32), "{event}");
    }
    assert_eq!(column("sinceFirstMs")[..2], [0, -3]);
    assert_eq!(
        timeline["correlationIds"],
        serde_json::json!([submitted.envelope.correlation_id])
    );

    let letters = timeline["deadLetters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["errorClass"], "permanent");
    assert_eq!(letters[0]["errorReason"], "no template for DE");
    assert_eq!(letters[0]["group"], "notifications");
    assert_eq!(letters[0]["originalTopic"], "account.debited");
    assert_eq!(letters[0]["eventId"], debited.envelope.event_id.to_string());

    // The correlation id finds the same journey.
    let by_correlation: Value = get(submitted.envelope.correlation_id.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_correlation["events"], timeline["events"]);

    let unknown = get(Uuid::new_v4().to_string()).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.headers()["content-type"],
        paystream_service_kit::http::PROBLEM_CONTENT_TYPE
    );
    audit.stop().await.unwrap();
}
