//! The contract on the wire: events encoded through a real schema registry,
//! carried by the real broker, decoded back; and every kind of bad record
//! turned into a typed error.

use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use paystream_contract::codec::write_datum;
use paystream_contract::{
    Codec, DecodeError, PaymentSubmitted, Registration, RegistryClient, samples,
};
use paystream_testkit::kafka::{bootstrap, consumer, create_topic, producer, receive};
use paystream_testkit::{TestRegistry, unique};
use rand::RngCore;
use rdkafka::Message;
use rdkafka::producer::FutureRecord;

const TIMEOUT: Duration = Duration::from_secs(30);

fn codec(registry: &TestRegistry, registration: Registration) -> Codec {
    Codec::new(
        RegistryClient::new(&registry.url, Duration::from_secs(5)).unwrap(),
        registration,
    )
}

/// Sends raw values to a fresh topic and returns them as a consumer received them.
async fn through_broker(values: &[Vec<u8>], key: &str) -> Vec<Vec<u8>> {
    let topic = unique("contract-wire");
    create_topic(&bootstrap(), &topic, 1).await;
    let producer = producer(&bootstrap());
    for value in values {
        producer
            .send(FutureRecord::to(&topic).key(key).payload(value), TIMEOUT)
            .await
            .map_err(|(error, _)| error)
            .unwrap();
    }
    let consumer = consumer(&bootstrap(), &unique("contract-wire"), &[&topic]);
    receive(&consumer, values.len(), TIMEOUT)
        .await
        .into_iter()
        .map(|message| message.payload().unwrap_or_default().to_vec())
        .collect()
}

#[tokio::test]
async fn payment_submitted_round_trips_through_registry_and_broker() {
    let registry = TestRegistry::start().await;
    let codec = codec(&registry, Registration::AutoRegister);
    let sent = samples::payment_submitted();

    let bytes = codec.encode(&sent).await.unwrap();
    let received = through_broker(std::slice::from_ref(&bytes), &sent.debtor.account).await;
    assert_eq!(
        received[0], bytes,
        "the broker must carry the bytes unchanged"
    );

    let decoded: PaymentSubmitted = codec.decode(Some(&received[0])).await.unwrap();
    assert_eq!(decoded, sent);

    // The wire header names a schema the registry serves, and it is the contract's.
    assert_eq!(received[0][0], 0, "Confluent magic byte");
    let id = u32::from_be_bytes(received[0][1..5].try_into().unwrap());
    let served: serde_json::Value = reqwest::get(format!("{}/schemas/ids/{id}", registry.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let served = Schema::parse_str(served["schema"].as_str().unwrap()).unwrap();
    let contract = paystream_contract::Topic::PaymentSubmitted
        .schema()
        .unwrap();
    assert_eq!(served.canonical_form(), contract.canonical_form());

    // A second codec (another service) finds the same id by lookup alone.
    let reader = codec_lookup_only(&registry);
    assert_eq!(
        reader
            .writer_id(paystream_contract::Topic::PaymentSubmitted)
            .await
            .unwrap(),
        id
    );
}

fn codec_lookup_only(registry: &TestRegistry) -> Codec {
    codec(registry, Registration::LookupOnly)
}

#[tokio::test]
async fn encoding_without_a_registered_schema_fails_in_lookup_only_mode() {
    let registry = TestRegistry::start().await;
    let error = codec_lookup_only(&registry)
        .encode(&samples::notification_sent())
        .await
        .unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert!(
        error.to_string().contains("notification.sent-value"),
        "{error}"
    );
}

#[tokio::test]
async fn malformed_records_decode_to_typed_errors() {
    let registry = TestRegistry::start().await;
    let codec = codec(&registry, Registration::AutoRegister);

    let mut random = vec![0u8; 64];
    rand::rng().fill_bytes(&mut random);
    random[0] = 0x42; // not the magic byte, whatever the draw
    let unknown_id = [0u8, 0x7f, 0xff, 0xff, 0xf0, 2, 4, 6].to_vec();
    let wrong_schema = codec.encode(&samples::rtgs_settled()).await.unwrap();
    let mut truncated = codec.encode(&samples::payment_submitted()).await.unwrap();
    truncated.truncate(truncated.len() / 2);
    let received = through_broker(
        &[random, unknown_id, wrong_schema, truncated, vec![0, 0]],
        "poison",
    )
    .await;

    let decode = |bytes: &Vec<u8>| {
        let codec = codec.clone();
        let bytes = bytes.clone();
        async move {
            codec
                .decode::<PaymentSubmitted>(Some(&bytes))
                .await
                .unwrap_err()
        }
    };
    let errors = [
        decode(&received[0]).await,
        decode(&received[1]).await,
        decode(&received[2]).await,
        decode(&received[3]).await,
        decode(&received[4]).await,
    ];
    assert!(
        matches!(errors[0], DecodeError::BadMagicByte(0x42)),
        "{:?}",
        errors[0]
    );
    assert!(
        matches!(errors[1], DecodeError::UnknownSchemaId(0x7fff_fff0)),
        "{:?}",
        errors[1]
    );
    match &errors[2] {
        DecodeError::WrongSchema {
            found, expected, ..
        } => {
            assert_eq!(found, "com.paystream.events.RtgsSettled");
            assert_eq!(expected, "com.paystream.events.PaymentSubmitted");
        }
        other => panic!("expected WrongSchema, got {other:?}"),
    }
    assert!(
        matches!(errors[3], DecodeError::Malformed { .. }),
        "{:?}",
        errors[3]
    );
    assert!(
        matches!(errors[4], DecodeError::TooShort(2)),
        "{:?}",
        errors[4]
    );
    assert!(
        errors.iter().all(|error| !error.is_transient()),
        "poison is never worth retrying"
    );
    assert!(matches!(
        codec.decode::<PaymentSubmitted>(None).await,
        Err(DecodeError::Empty)
    ));
}

#[tokio::test]
async fn an_unreachable_registry_is_a_transient_error() {
    let closed_port = paystream_testkit::free_port();
    let codec = Codec::new(
        RegistryClient::new(
            &format!("http://127.0.0.1:{closed_port}"),
            Duration::from_secs(2),
        )
        .unwrap(),
        Registration::LookupOnly,
    );
    let error = codec
        .decode::<PaymentSubmitted>(Some(&[0, 0, 0, 0, 1, 0]))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    let error = codec
        .encode(&samples::payment_submitted())
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
}

/// A consumer built against v1 keeps reading after producers move to a v2
/// that adds an optional field, which the registry accepts under FULL_TRANSITIVE.
#[tokio::test]
async fn a_v1_consumer_reads_records_written_with_a_compatible_v2() {
    let registry = TestRegistry::start().await;
    let client = RegistryClient::new(&registry.url, Duration::from_secs(5)).unwrap();
    let subject = paystream_contract::Topic::PaymentSubmitted.value_subject();
    reqwest::Client::new()
        .put(format!("{}/config/{subject}", registry.url))
        .body(r#"{"compatibility":"FULL_TRANSITIVE"}"#)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let v1_text = paystream_contract::Topic::PaymentSubmitted.schema_text();
    client.register(&subject, v1_text).await.unwrap();

    let mut v2_json: serde_json::Value = serde_json::from_str(v1_text).unwrap();
    v2_json["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "name": "purposeCode", "type": ["null", "string"], "default": null,
            "doc": "ISO 20022 purpose code (Purp/Cd)."
        }));
    let v2_text = v2_json.to_string();
    let v2_id = client.register(&subject, &v2_text).await.unwrap();

    // Write as a v2 producer would: the v1 event plus the new field.
    let sent = samples::payment_submitted();
    let v2 = Schema::parse_str(&v2_text).unwrap();
    let v1 = paystream_contract::Topic::PaymentSubmitted
        .schema()
        .unwrap();
    let mut v1_datum = Vec::new();
    write_datum(v1, &sent, &mut v1_datum).unwrap();
    let Value::Record(mut fields) = GenericDatumReader::builder(v1)
        .build()
        .unwrap()
        .read_value(&mut v1_datum.as_slice())
        .unwrap()
    else {
        panic!("an event is a record")
    };
    fields.push(("purposeCode".to_owned(), Value::String("SUPP".to_owned())));
    let v2_value = Value::Record(fields).resolve(&v2).unwrap();
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(&v2_id.to_be_bytes());
    bytes.extend(
        GenericDatumWriter::builder(&v2)
            .build()
            .unwrap()
            .write_value_to_vec(v2_value)
            .unwrap(),
    );

    let decoded: PaymentSubmitted = codec(&registry, Registration::LookupOnly)
        .decode(Some(&bytes))
        .await
        .unwrap();
    assert_eq!(decoded, sent);
}
