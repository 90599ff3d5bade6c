//! Topic names, in one place, and the schema each topic's values are written with.

use std::sync::OnceLock;

use apache_avro::Schema;

use crate::ContractError;

pub const PAYMENT_SUBMITTED: &str = "payment.submitted";
pub const PAYMENT_VALIDATED: &str = "payment.validated";
pub const PAYMENT_REJECTED: &str = "payment.rejected";
pub const AML_ALERT_RAISED: &str = "aml.alert.raised";
pub const ACCOUNT_DEBITED: &str = "account.debited";
pub const ACCOUNT_DEBIT_REVERSED: &str = "account.debit.reversed";
pub const RTGS_SUBMITTED: &str = "rtgs.submitted";
pub const RTGS_SETTLED: &str = "rtgs.settled";
pub const RTGS_REJECTED: &str = "rtgs.rejected";
pub const CARD_TRANSACTION_RECEIVED: &str = "card.transaction.received";
pub const NOTIFICATION_SENT: &str = "notification.sent";

/// The dead-letter topic of one consumer group for one topic: records that group
/// could not process, kept byte for byte with the reason in headers.
pub fn dead_letter_topic(topic: &str, group: &str) -> String {
    format!("{topic}.{group}.dlq")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    PaymentSubmitted,
    PaymentValidated,
    PaymentRejected,
    AmlAlertRaised,
    AccountDebited,
    AccountDebitReversed,
    RtgsSubmitted,
    RtgsSettled,
    RtgsRejected,
    CardTransactionReceived,
    NotificationSent,
}

pub(crate) const TOPIC_COUNT: usize = 11;

impl Topic {
    pub const ALL: [Topic; TOPIC_COUNT] = [
        Topic::PaymentSubmitted,
        Topic::PaymentValidated,
        Topic::PaymentRejected,
        Topic::AmlAlertRaised,
        Topic::AccountDebited,
        Topic::AccountDebitReversed,
        Topic::RtgsSubmitted,
        Topic::RtgsSettled,
        Topic::RtgsRejected,
        Topic::CardTransactionReceived,
        Topic::NotificationSent,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Topic::PaymentSubmitted => PAYMENT_SUBMITTED,
            Topic::PaymentValidated => PAYMENT_VALIDATED,
            Topic::PaymentRejected => PAYMENT_REJECTED,
            Topic::AmlAlertRaised => AML_ALERT_RAISED,
            Topic::AccountDebited => ACCOUNT_DEBITED,
            Topic::AccountDebitReversed => ACCOUNT_DEBIT_REVERSED,
            Topic::RtgsSubmitted => RTGS_SUBMITTED,
            Topic::RtgsSettled => RTGS_SETTLED,
            Topic::RtgsRejected => RTGS_REJECTED,
            Topic::CardTransactionReceived => CARD_TRANSACTION_RECEIVED,
            Topic::NotificationSent => NOTIFICATION_SENT,
        }
    }

    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|topic| topic.name() == name)
    }

    /// The registry subject of the topic's values (Confluent's TopicNameStrategy).
    pub fn value_subject(self) -> String {
        format!("{}-value", self.name())
    }

    /// The Avro schema text from `schemas/`, compiled into the binary so that a
    /// service always writes exactly the contract it was built against.
    pub const fn schema_text(self) -> &'static str {
        match self {
            Topic::PaymentSubmitted => include_str!("../../../schemas/payment.submitted.avsc"),
            Topic::PaymentValidated => include_str!("../../../schemas/payment.validated.avsc"),
            Topic::PaymentRejected => include_str!("../../../schemas/payment.rejected.avsc"),
            Topic::AmlAlertRaised => include_str!("../../../schemas/aml.alert.raised.avsc"),
            Topic::AccountDebited => include_str!("../../../schemas/account.debited.avsc"),
            Topic::AccountDebitReversed => {
                include_str!("../../../schemas/account.debit.reversed.avsc")
            }
            Topic::RtgsSubmitted => include_str!("../../../schemas/rtgs.submitted.avsc"),
            Topic::RtgsSettled => include_str!("../../../schemas/rtgs.settled.avsc"),
            Topic::RtgsRejected => include_str!("../../../schemas/rtgs.rejected.avsc"),
            Topic::CardTransactionReceived => {
                include_str!("../../../schemas/card.transaction.received.avsc")
            }
            Topic::NotificationSent => include_str!("../../../schemas/notification.sent.avsc"),
        }
    }

    /// The parsed schema, parsed once per process.
    pub fn schema(self) -> Result<&'static Schema, ContractError> {
        static PARSED: [OnceLock<Result<Schema, String>>; TOPIC_COUNT] =
            [const { OnceLock::new() }; TOPIC_COUNT];
        let slot = &PARSED[self as usize];
        slot.get_or_init(|| {
            Schema::parse_str(self.schema_text()).map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|reason| ContractError::InvalidSchema {
            topic: self.name(),
            reason: reason.clone(),
        })
    }

    /// The full name of the topic's top-level record, e.g.
    /// `com.paystream.events.PaymentSubmitted`.
    pub fn record_name(self) -> Result<String, ContractError> {
        crate::codec::record_name(self.schema()?).ok_or(ContractError::InvalidSchema {
            topic: self.name(),
            reason: "the top-level schema is not a named record".to_owned(),
        })
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_a_parsing_schema_named_after_its_event() {
        for topic in Topic::ALL {
            let name = topic.record_name().unwrap();
            assert!(name.starts_with("com.paystream.events."), "{topic}: {name}");
            assert_eq!(Topic::from_name(topic.name()), Some(topic));
        }
    }

    #[test]
    fn every_schema_carries_the_envelope_first() {
        for topic in Topic::ALL {
            let json: serde_json::Value = serde_json::from_str(topic.schema_text()).unwrap();
            assert_eq!(json["fields"][0]["name"], "envelope", "{topic}");
            let envelope: Vec<&str> = json["fields"][0]["type"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|field| field["name"].as_str().unwrap())
                .collect();
            assert_eq!(
                envelope,
                [
                    "eventId",
                    "correlationId",
                    "causationId",
                    "occurredAt",
                    "producer"
                ],
                "{topic}"
            );
        }
    }

    #[test]
    fn money_is_integer_minor_units_and_a_currency_code_everywhere() {
        fn walk(value: &serde_json::Value, topic: Topic) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(name) = map.get("name").and_then(|n| n.as_str())
                        && name.to_lowercase().contains("amount")
                    {
                        assert_eq!(
                            map["type"], "long",
                            "{topic}: {name} must be a long of minor units"
                        );
                    }
                    assert_ne!(
                        map.get("type").and_then(|t| t.as_str()),
                        Some("float"),
                        "{topic}"
                    );
                    assert_ne!(
                        map.get("type").and_then(|t| t.as_str()),
                        Some("double"),
                        "{topic}"
                    );
                    map.values().for_each(|v| walk(v, topic));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, topic)),
                serde_json::Value::String(s) => assert!(s != "float" && s != "double", "{topic}"),
                _ => {}
            }
        }
        for topic in Topic::ALL {
            let json: serde_json::Value = serde_json::from_str(topic.schema_text()).unwrap();
            walk(&json, topic);
        }
    }

    #[test]
    fn dead_letter_topics_are_per_topic_and_group() {
        assert_eq!(
            dead_letter_topic(PAYMENT_SUBMITTED, "validation"),
            "payment.submitted.validation.dlq"
        );
    }
}
