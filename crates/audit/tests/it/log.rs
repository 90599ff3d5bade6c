//! Records of several topics and a dead-letter topic stored once each, as
//! received and decoded; an undecodable record stored undecoded; an event
//! re-published under the same eventId stored once; the log verifies.

use paystream_bus::DeadLetter;
use paystream_bus::headers::CORRELATION_ID;
use paystream_contract::{Envelope, Topic, samples};
use paystream_testkit::kafka::create_topic;
use paystream_testkit::pipeline::header;
use rdkafka::Message;
use serde_json::Value;
use uuid::Uuid;

use crate::stand::Stand;

#[derive(sqlx::FromRow, Debug)]
struct Row {
    topic: String,
    seq: i64,
    schema_id: Option<i64>,
    event_type: Option<String>,
    event: Option<Value>,
    decode_error: Option<String>,
    event_id: Option<Uuid>,
    payment_id: Option<String>,
    correlation_id: Option<String>,
    trace_id: Option<String>,
    error_class: Option<String>,
    value: Option<Vec<u8>>,
}

#[tokio::test]
async fn every_record_is_stored_once_as_received_and_the_log_verifies() {
    let stand = Stand::new("audit-log").await;
    let audit = stand.start().await;

    let submitted = samples::payment_submitted();
    let validated = submitted
        .clone()
        .into_validated(Envelope::caused_by(&submitted.envelope, "validation"));
    let mut debited = samples::account_debited();
    debited.payment_id = submitted.payment_id;
    debited.envelope = Envelope::caused_by(&validated.envelope, "cbs-debit");
    let producer = &stand.pipeline.producer;
    producer.send(submitted.clone()).await.unwrap();
    producer.send(validated.clone()).await.unwrap();
    producer.send(debited.clone()).await.unwrap();
    // An outbox re-send after a crash: the same event at another offset.
    producer.send(submitted.clone()).await.unwrap();
    // Bytes that are not the Confluent wire format.
    let bad_headers = vec![(CORRELATION_ID.to_owned(), b"corr-undecodable".to_vec())];
    producer
        .send_raw(
            &stand.pipeline.topic(Topic::PaymentSubmitted),
            Some(b"DE89370400440532013000"),
            b"not avro at all",
            &bad_headers,
        )
        .await
        .unwrap();
    // A dead-letter topic created after the audit started: found by the
    // regex subscription. The dead letter is the validated record itself.
    let record = stand
        .pipeline
        .read_all(Topic::PaymentValidated, crate::stand::PARTITIONS)
        .await
        .into_iter()
        .find(|r| header(r, "eventId") == Some(validated.envelope.event_id.to_string()))
        .unwrap();
    let letter = DeadLetter::of(&record, "cbs-debit", "permanent", "AC06 account blocked", 1);
    create_topic(&stand.pipeline.kafka.bootstrap, &letter.topic, 1).await;
    producer
        .send_raw(
            &letter.topic,
            letter.key.as_deref(),
            &letter.value,
            &letter.headers,
        )
        .await
        .unwrap();

    stand.await_entries(5).await;
    paystream_testkit::wait_until(crate::stand::WAIT, "the re-sent record seen", || async {
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_duplicates")
            .fetch_one(&stand.pool)
            .await
            .ok()?;
        (seen >= 1).then_some(())
    })
    .await;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT topic, seq, schema_id, event_type, event::jsonb AS event, decode_error, event_id, \
         payment_id, correlation_id, trace_id, error_class, value FROM audit_entries",
    )
    .fetch_all(&stand.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 5, "{rows:#?}");
    let prefix = &stand.pipeline.kafka.topic_prefix;
    let of = |id: Uuid, topic: &str| {
        let matching: Vec<&Row> = rows
            .iter()
            .filter(|r| r.event_id == Some(id) && r.topic == format!("{prefix}{topic}"))
            .collect();
        assert_eq!(matching.len(), 1, "{topic} {id}: {rows:#?}");
        matching[0]
    };
    for (id, topic) in [
        (submitted.envelope.event_id, "payment.submitted"),
        (validated.envelope.event_id, "payment.validated"),
        (debited.envelope.event_id, "account.debited"),
    ] {
        let row = of(id, topic);
        assert!(row.schema_id.is_some(), "{row:?}");
        assert_eq!(row.event_type.as_deref(), Some(topic));
        let event = row.event.as_ref().unwrap();
        assert_eq!(event["envelope"]["eventId"], id.to_string());
        assert_eq!(row.payment_id, Some(submitted.payment_id.to_string()));
        assert_eq!(
            row.correlation_id,
            Some(submitted.envelope.correlation_id.clone())
        );
        assert_eq!(row.trace_id.as_ref().map(String::len), Some(32), "{row:?}");
        assert!(row.decode_error.is_none());
        assert_eq!(row.seq, 1, "each is the first of its partition's chain");
    }
    assert_eq!(
        of(submitted.envelope.event_id, "payment.submitted")
            .event
            .as_ref()
            .unwrap()["amountMinor"],
        submitted.amount_minor
    );

    let undecodable: Vec<&Row> = rows.iter().filter(|r| r.event.is_none()).collect();
    assert_eq!(undecodable.len(), 1, "{rows:#?}");
    let bad = undecodable[0];
    assert_eq!(bad.value.as_deref(), Some(b"not avro at all".as_slice()));
    assert_eq!(bad.correlation_id.as_deref(), Some("corr-undecodable"));
    assert!(bad.schema_id.is_none() && bad.event_id.is_none());
    assert!(
        bad.decode_error.as_ref().unwrap().contains("magic byte"),
        "{bad:?}"
    );

    let dead = rows.iter().find(|r| r.topic == letter.topic).unwrap();
    assert_eq!(dead.error_class.as_deref(), Some("permanent"));
    assert_eq!(dead.event_type.as_deref(), Some("payment.validated"));
    assert_eq!(dead.event_id, Some(validated.envelope.event_id));
    assert_eq!(dead.payment_id, Some(submitted.payment_id.to_string()));
    assert_eq!(dead.value.as_deref(), record.payload());

    let resent: (Uuid, i64) = sqlx::query_as("SELECT event_id, \"offset\" FROM audit_duplicates")
        .fetch_one(&stand.pool)
        .await
        .unwrap();
    assert_eq!(resent.0, submitted.envelope.event_id);

    let report = paystream_audit::verify(&stand.pool).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.chains.iter().map(|c| c.length).sum::<i64>(), 5);
    let (ok, output) = stand.verify_binary(&[]).await;
    assert!(ok, "{output}");
    assert!(output.contains("5 entries: verified"), "{output}");

    let metrics = reqwest::get(format!("{}/metrics", audit.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "paystream_audit_records_stored_total",
        "paystream_audit_duplicates_skipped_total",
        "paystream_audit_chain_length",
    ] {
        assert!(metrics.contains(family), "{family} missing");
    }
    audit.stop().await.unwrap();
}
