//! Rust types for the events in `schemas/`. Field names follow the schemas
//! (camelCase on the wire); a round-trip test per event keeps the two in step.

use chrono::{DateTime, SubsecRound, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::topic::Topic;
use crate::vocabulary::ReasonCode;

/// An event of the contract: which topic it goes to, its envelope, and the key
/// that decides its partition (and so its order relative to other events).
pub trait Event: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const TOPIC: Topic;

    fn envelope(&self) -> &Envelope;

    fn envelope_mut(&mut self) -> &mut Envelope;

    /// The record key: the debtor account for payment events, the account or
    /// card for ledger and card events.
    fn partition_key(&self) -> &str;
}

/// Metadata every event carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub event_id: Uuid,
    pub correlation_id: String,
    pub causation_id: String,
    #[serde(with = "epoch_millis")]
    pub occurred_at: DateTime<Utc>,
    pub producer: String,
}

impl Envelope {
    /// The envelope of the first event of a journey, caused by an API request or
    /// webhook rather than by another event.
    pub fn first(
        correlation_id: impl Into<String>,
        causation_id: impl Into<String>,
        producer: impl Into<String>,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            correlation_id: correlation_id.into(),
            causation_id: causation_id.into(),
            // The wire keeps milliseconds; truncating here keeps a decoded event
            // equal to the one that was encoded.
            occurred_at: Utc::now().trunc_subsecs(3),
            producer: producer.into(),
        }
    }

    /// The envelope of the `n`-th event to `topic` produced while handling
    /// `cause`: same correlation, caused by `cause`, and an id derived from
    /// `cause`'s (a name-based UUID), so handling the same input again gives
    /// the same ids and consumers downstream can drop the repeat.
    pub fn derived(cause: &Envelope, topic: Topic, n: u32, producer: impl Into<String>) -> Self {
        Self {
            event_id: derived_event_id(cause.event_id, topic, n),
            ..Self::caused_by(cause, producer)
        }
    }

    /// The envelope of an event produced while handling `cause`: same
    /// correlation, caused by `cause`'s event id.
    pub fn caused_by(cause: &Envelope, producer: impl Into<String>) -> Self {
        Self::first(
            cause.correlation_id.clone(),
            cause.event_id.to_string(),
            producer,
        )
    }
}

/// A name-based (v5) UUID in the input event's namespace: the same input,
/// topic and position always give the same id.
pub fn derived_event_id(input: Uuid, topic: Topic, n: u32) -> Uuid {
    Uuid::new_v5(&input, format!("{}#{n}", topic.name()).as_bytes())
}

/// The namespace of ids derived from a card processor's transaction id.
const CARD_PAYMENT_NAMESPACE: Uuid = Uuid::from_u128(0x2b0e_91c4_5d7a_4f38_a1e6_0c9d_7b3f_5e21);

/// The payment id a card transaction travels under once the ledger has
/// posted it (`account.debited`, notifications, the audit): the same for
/// every delivery of the transaction, so every consumer agrees on it.
pub fn card_payment_id(card_transaction_id: &str) -> Uuid {
    Uuid::new_v5(&CARD_PAYMENT_NAMESPACE, card_transaction_id.as_bytes())
}

/// Avro `timestamp-millis`: a long of milliseconds since the Unix epoch, UTC.
pub mod epoch_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(value.timestamp_millis())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let millis = i64::deserialize(deserializer)?;
        DateTime::from_timestamp_millis(millis).ok_or_else(|| {
            serde::de::Error::custom(format!("timestamp {millis} ms is out of range"))
        })
    }
}

/// A debtor or creditor, after ISO 20022 pacs.008, with the travel-rule fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    pub name: String,
    /// IBAN (electronic form) where the country uses IBANs, else the domestic
    /// account number.
    pub account: String,
    pub agent_bic: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub address: Option<String>,
    /// ISO 8601 date.
    pub date_of_birth: Option<String>,
    pub national_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentSubmitted {
    pub envelope: Envelope,
    pub payment_id: Uuid,
    pub end_to_end_id: String,
    pub uetr: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub debtor: Party,
    pub creditor: Party,
    pub corridor_code: String,
    pub remittance_information: Option<String>,
    pub client_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentValidated {
    pub envelope: Envelope,
    pub payment_id: Uuid,
    pub end_to_end_id: String,
    pub uetr: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub debtor: Party,
    pub creditor: Party,
    pub corridor_code: String,
    pub remittance_information: Option<String>,
}

impl PaymentSubmitted {
    /// The payment as validated: the same payment under a new envelope.
    pub fn into_validated(self, envelope: Envelope) -> PaymentValidated {
        PaymentValidated {
            envelope,
            payment_id: self.payment_id,
            end_to_end_id: self.end_to_end_id,
            uetr: self.uetr,
            amount_minor: self.amount_minor,
            currency: self.currency,
            debtor: self.debtor,
            creditor: self.creditor,
            corridor_code: self.corridor_code,
            remittance_information: self.remittance_information,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectionStage {
    Validation,
    Debit,
    /// What a reader on this schema sees for a stage added after it was built.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRejected {
    pub envelope: Envelope,
    pub payment_id: Uuid,
    pub stage: RejectionStage,
    pub reason_code: ReasonCode,
    pub reason_text: String,
    pub debtor_account: String,
    pub amount_minor: i64,
    pub currency: String,
    pub corridor_code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertSeverity {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmlAlertRaised {
    pub envelope: Envelope,
    pub alert_id: Uuid,
    pub payment_id: Uuid,
    pub severity: AlertSeverity,
    pub rule_code: String,
    pub debtor_account: String,
    pub party_role: Option<String>,
    pub party_name: Option<String>,
    pub matched_list: Option<String>,
    pub matched_entry: Option<String>,
    /// Thousandths, 0–1000: scores stay integers like money does.
    pub score_permille: Option<i32>,
    pub details: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DebitOrigin {
    CreditTransfer,
    CardTransaction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountDebited {
    pub envelope: Envelope,
    pub payment_id: Uuid,
    pub origin: DebitOrigin,
    pub account_id: String,
    pub posting_id: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub end_to_end_id: Option<String>,
    pub uetr: Option<String>,
    pub debtor: Option<Party>,
    pub creditor: Option<Party>,
    pub corridor_code: Option<String>,
    pub card_id: Option<String>,
    pub merchant_name: Option<String>,
    pub remittance_information: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountDebitReversed {
    pub envelope: Envelope,
    pub payment_id: Uuid,
    pub account_id: String,
    pub posting_id: Uuid,
    pub reversed_posting_id: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub reason_code: ReasonCode,
    pub reason_text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtgsSubmitted {
    pub envelope: Envelope,
    pub payment_id: Uuid,
    pub uetr: Uuid,
    pub rtgs_reference: String,
    pub debtor_account: String,
    pub debtor_agent_bic: String,
    pub creditor_agent_bic: String,
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtgsSettled {
    pub envelope: Envelope,
    pub payment_id: Uuid,
    pub uetr: Uuid,
    pub rtgs_reference: String,
    pub debtor_account: String,
    pub amount_minor: i64,
    pub currency: String,
    pub settlement_date: String,
    #[serde(with = "epoch_millis")]
    pub settled_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtgsRejected {
    pub envelope: Envelope,
    pub payment_id: Uuid,
    pub uetr: Uuid,
    pub rtgs_reference: Option<String>,
    pub debtor_account: String,
    pub amount_minor: i64,
    pub currency: String,
    pub reason_code: ReasonCode,
    pub reason_text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardTransactionReceived {
    pub envelope: Envelope,
    pub webhook_id: String,
    pub card_transaction_id: String,
    pub card_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub transaction_status: String,
    pub merchant_name: String,
    pub merchant_country: String,
    pub code_status: String,
    pub processor_created_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationChannel {
    Sms,
    Push,
    Email,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSent {
    pub envelope: Envelope,
    pub notification_id: Uuid,
    pub payment_id: String,
    pub customer_ref: String,
    pub channel: NotificationChannel,
    pub recipient: String,
    pub template_code: String,
    pub provider_message_id: Option<String>,
}

macro_rules! event {
    ($type:ty, $topic:expr, |$event:ident| $key:expr) => {
        impl Event for $type {
            const TOPIC: Topic = $topic;

            fn envelope(&self) -> &Envelope {
                &self.envelope
            }

            fn envelope_mut(&mut self) -> &mut Envelope {
                &mut self.envelope
            }

            fn partition_key(&self) -> &str {
                let $event = self;
                $key
            }
        }
    };
}

event!(PaymentSubmitted, Topic::PaymentSubmitted, |e| &e
    .debtor
    .account);
event!(PaymentValidated, Topic::PaymentValidated, |e| &e
    .debtor
    .account);
event!(PaymentRejected, Topic::PaymentRejected, |e| &e
    .debtor_account);
event!(AmlAlertRaised, Topic::AmlAlertRaised, |e| &e.debtor_account);
event!(
    AccountDebited,
    Topic::AccountDebited,
    |e| match (&e.origin, &e.card_id) {
        (DebitOrigin::CardTransaction, Some(card)) => card,
        _ => &e.account_id,
    }
);
event!(AccountDebitReversed, Topic::AccountDebitReversed, |e| &e
    .account_id);
event!(RtgsSubmitted, Topic::RtgsSubmitted, |e| &e.debtor_account);
event!(RtgsSettled, Topic::RtgsSettled, |e| &e.debtor_account);
event!(RtgsRejected, Topic::RtgsRejected, |e| &e.debtor_account);
event!(
    CardTransactionReceived,
    Topic::CardTransactionReceived,
    |e| &e.card_id
);
event!(NotificationSent, Topic::NotificationSent, |e| &e
    .customer_ref);
