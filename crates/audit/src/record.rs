//! A Kafka record as the audit log keeps it: the bytes as received, and
//! what can be read from them (the decoded event, its ids, its trace).
//!
//! Nothing here fails: a record that does not decode is still an entry,
//! with its bytes and headers, `event` NULL and the reason in
//! `decode_error`, and the ids the headers carry.

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use paystream_bus::dead_letter::{ERROR_CLASS, ERROR_REASON, ORIGINAL_TOPIC};
use paystream_bus::headers::{CAUSATION_ID, CORRELATION_ID, EVENT_ID, TRACEPARENT, trace_id_of};
use paystream_contract::codec::split_header;
use paystream_contract::{AnyEvent, Codec, DecodeError, Inbound, Topic, card_payment_id};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;

use crate::hash::EntryFields;
use crate::headers::{RawHeaders, header, headers_json, headers_of};

/// Where a record came from, as the contract knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The topic whose schema the value is written with (a dead letter's
    /// original topic).
    pub topic: Topic,
    pub dead_letter: bool,
}

/// Reads records of one cluster, whose topic names carry `prefix`.
#[derive(Clone)]
pub struct Reader {
    codec: Codec,
    prefix: String,
}

impl Reader {
    pub fn new(codec: Codec, prefix: impl Into<String>) -> Self {
        Self {
            codec,
            prefix: prefix.into(),
        }
    }

    /// The topic name without the cluster's prefix.
    pub fn local<'a>(&self, topic: &'a str) -> &'a str {
        topic.strip_prefix(self.prefix.as_str()).unwrap_or(topic)
    }

    /// `{prefix}{topic}` or a dead-letter topic `{prefix}{topic}.{group}.dlq`.
    pub fn source(&self, topic: &str, headers: &RawHeaders) -> Option<Source> {
        let local = self.local(topic);
        if let Some(topic) = Topic::from_name(local) {
            return Some(Source {
                topic,
                dead_letter: false,
            });
        }
        let group_part = local.strip_suffix(".dlq")?;
        let original = header(headers, ORIGINAL_TOPIC)
            .map(|name| self.local(name))
            .and_then(Topic::from_name)
            .or_else(|| {
                // The longest contract name the topic starts with: names
                // nest (`account.debit.reversed` vs `account.debited`).
                Topic::ALL
                    .into_iter()
                    .filter(|t| {
                        group_part
                            .strip_prefix(t.name())
                            .is_some_and(|rest| rest.starts_with('.'))
                    })
                    .max_by_key(|t| t.name().len())
            })?;
        Some(Source {
            topic: original,
            dead_letter: true,
        })
    }

    /// The value decoded as `source`'s event.
    pub async fn decode(
        &self,
        topic: Topic,
        value: Option<&[u8]>,
    ) -> Result<AnyEvent, DecodeError> {
        AnyEvent::decode(&self.codec, topic, value).await
    }
}

/// The entry for `record` (its `seq` is set when it is chained).
pub fn entry(
    reader: &Reader,
    record: &OwnedMessage,
    source: Option<Source>,
    decoded: Option<Result<AnyEvent, DecodeError>>,
    received_at: DateTime<Utc>,
) -> EntryFields {
    let headers = headers_of(record);
    let value = record.payload().map(<[u8]>::to_vec);
    let schema_id = split_header(value.as_deref())
        .ok()
        .map(|(id, _)| i64::from(id));
    let dead_letter = source.is_some_and(|s| s.dead_letter);
    let mut fields = EntryFields {
        topic: record.topic().to_owned(),
        partition: record.partition(),
        seq: 0,
        offset: record.offset(),
        timestamp_ms: record.timestamp().to_millis(),
        key: record.key().map(<[u8]>::to_vec),
        headers: headers_json(&headers),
        value,
        schema_id,
        event_type: source.map(|s| s.topic.name().to_owned()),
        event: None,
        decode_error: None,
        event_id: header(&headers, EVENT_ID).and_then(|id| id.parse().ok()),
        payment_id: None,
        correlation_id: header(&headers, CORRELATION_ID).map(str::to_owned),
        causation_id: header(&headers, CAUSATION_ID).map(str::to_owned),
        producer: None,
        occurred_at: None,
        trace_id: header(&headers, TRACEPARENT)
            .and_then(trace_id_of)
            .map(str::to_owned),
        error_class: dead_letter
            .then(|| header(&headers, ERROR_CLASS).map(str::to_owned))
            .flatten(),
        error_reason: dead_letter
            .then(|| header(&headers, ERROR_REASON).map(str::to_owned))
            .flatten(),
        // PostgreSQL keeps microseconds: the hashed time is the stored one.
        received_at: received_at.trunc_subsecs(6),
    };
    match decoded {
        Some(Ok(event)) => fill_from_event(&mut fields, &event),
        Some(Err(error)) => fields.decode_error = Some(error.to_string()),
        None if source.is_none() => {
            let local = reader.local(record.topic());
            fields.decode_error = Some(format!("{local} is not a topic of the contract"));
        }
        None => {}
    }
    storable(&mut fields);
    fields
}

/// Makes every column acceptable to PostgreSQL, so no record can fail its
/// partition's insert for ever: `text` refuses NUL characters (a header or
/// an Avro string may carry them), `timestamptz` stops at 4713 BC.
fn storable(fields: &mut EntryFields) {
    for text in [
        &mut fields.event_type,
        &mut fields.decode_error,
        &mut fields.payment_id,
        &mut fields.correlation_id,
        &mut fields.causation_id,
        &mut fields.producer,
        &mut fields.trace_id,
        &mut fields.error_class,
        &mut fields.error_reason,
    ]
    .into_iter()
    .flatten()
    {
        if text.contains('\0') {
            *text = text.replace('\0', "\u{FFFD}");
        }
    }
    if fields.occurred_at.is_some_and(|at| at.year() < -4712) {
        fields.occurred_at = None;
    }
}

fn fill_from_event(fields: &mut EntryFields, event: &AnyEvent) {
    let envelope = event.envelope();
    let json = match event.to_json() {
        Ok(json) => json,
        Err(error) => {
            fields.decode_error = Some(format!("decoded, but not as JSON: {error}"));
            return;
        }
    };
    fields.payment_id = match event {
        // A card transaction travels under a payment id derived from it.
        AnyEvent::CardTransactionReceived(card) => {
            Some(card_payment_id(&card.card_transaction_id).to_string())
        }
        _ => json
            .get("paymentId")
            .and_then(|id| id.as_str())
            .map(str::to_owned),
    };
    fields.event = Some(json.to_string());
    fields.event_id = Some(envelope.event_id);
    fields.correlation_id = Some(envelope.correlation_id.clone());
    fields.causation_id = Some(envelope.causation_id.clone());
    fields.producer = Some(envelope.producer.clone());
    fields.occurred_at = Some(envelope.occurred_at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_topics_name_their_original_topic() {
        let registry = paystream_contract::RegistryClient::new(
            "http://127.0.0.1:1",
            std::time::Duration::from_secs(1),
        )
        .unwrap();
        let codec = Codec::new(registry, paystream_contract::Registration::LookupOnly);
        let reader = Reader::new(codec, "p.");
        let none = RawHeaders::new();
        let source = |topic: &str, headers: &RawHeaders| reader.source(topic, headers);
        assert_eq!(
            source("p.account.debited", &none),
            Some(Source {
                topic: Topic::AccountDebited,
                dead_letter: false
            })
        );
        // Names nest: the longest contract name wins.
        assert_eq!(
            source("p.account.debit.reversed.cbs-debit.dlq", &none),
            Some(Source {
                topic: Topic::AccountDebitReversed,
                dead_letter: true
            })
        );
        let named: RawHeaders = vec![(ORIGINAL_TOPIC.into(), Some(b"p.rtgs.settled".to_vec()))];
        assert_eq!(
            source("p.rtgs.settled.odd.group.dlq", &named),
            Some(Source {
                topic: Topic::RtgsSettled,
                dead_letter: true
            })
        );
        assert_eq!(source("p.unknown.topic", &none), None);
        assert_eq!(source("p.unknown.g.dlq", &none), None);
    }

    #[test]
    fn an_undecodable_record_with_nul_characters_is_still_storable() {
        let registry = paystream_contract::RegistryClient::new(
            "http://127.0.0.1:1",
            std::time::Duration::from_secs(1),
        )
        .unwrap();
        let reader = Reader::new(
            Codec::new(registry, paystream_contract::Registration::LookupOnly),
            "",
        );
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: CORRELATION_ID,
            value: Some(b"c\0d".as_slice()),
        });
        let record = OwnedMessage::new(
            Some(b"junk".to_vec()),
            None,
            "payment.submitted".into(),
            rdkafka::Timestamp::NotAvailable,
            0,
            7,
            Some(headers),
        );
        let fields = entry(&reader, &record, None, None, Utc::now());
        assert_eq!(fields.correlation_id.as_deref(), Some("c\u{FFFD}d"));
        assert_eq!((fields.offset, fields.event.as_deref()), (7, None));
        assert!(fields.decode_error.is_some());
    }
}
