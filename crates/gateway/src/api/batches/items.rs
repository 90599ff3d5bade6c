//! A batch's items as read from the body, and the answers given for them.
//!
//! Everything wrong with one item refuses that item alone, with the fields
//! named relative to the item (`idempotencyKey`, `correlationId`,
//! `payment.debtor.account`): a batch with some bad items is a normal batch.

use std::collections::HashMap;

use paystream_contract::PaymentSubmitted;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::api::payments::{request_hash, submitted_event};
use crate::payment_request::{FieldError, PaymentRequest};

/// One field of an item that failed a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemError {
    pub field: String,
    pub detail: String,
}

impl ItemError {
    pub fn new(field: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            detail: detail.into(),
        }
    }

    /// A payment rule's error, named from the item.
    fn of_payment(error: FieldError) -> Self {
        let field = if error.field.is_empty() {
            "payment".to_owned()
        } else {
            format!("payment.{}", error.field)
        };
        Self {
            field,
            detail: error.detail,
        }
    }
}

/// Why an item was refused. Final: the item is stored as refused and never
/// published, and a repeat of the batch refuses it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefusalReason {
    /// Fields that failed a rule, all of them listed.
    InvalidFields,
    /// The item's key holds another request body (POST /v1/payments'
    /// `idempotency-key-reused`).
    IdempotencyKeyReused,
    /// An earlier item of the same batch has the same key.
    DuplicateIdempotencyKey,
}

impl RefusalReason {
    /// The stored text, the JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidFields => "INVALID_FIELDS",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::DuplicateIdempotencyKey => "DUPLICATE_IDEMPOTENCY_KEY",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::InvalidFields,
            Self::IdempotencyKeyReused,
            Self::DuplicateIdempotencyKey,
        ]
        .into_iter()
        .find(|reason| reason.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
    pub errors: Vec<ItemError>,
}

impl Refusal {
    pub fn invalid(errors: Vec<ItemError>) -> Self {
        Self {
            reason: RefusalReason::InvalidFields,
            errors,
        }
    }
}

/// What reading an item decided, before the database is asked.
pub enum Plan {
    Refused(Refusal),
    /// Passed every rule: a new payment, unless its key already holds one.
    New {
        key: String,
        hash: Vec<u8>,
        event: Box<PaymentSubmitted>,
    },
    /// Failed a rule; but if its key holds an earlier request, that is the
    /// answer, as POST /v1/payments gives it.
    Invalid {
        key: String,
        hash: Vec<u8>,
        errors: Vec<ItemError>,
    },
}

pub struct Planned {
    pub index: usize,
    /// The item's usable key; `None` if it had none (it is refused).
    pub key: Option<String>,
    pub plan: Plan,
}

/// Reads every item. Only the first item with a key may use it: a later one
/// is refused, since two different payments under one key cannot both be
/// made and the same payment twice is a client bug worth showing.
pub fn plan(items: &[Value]) -> Vec<Planned> {
    let mut first_of_key: HashMap<String, usize> = HashMap::new();
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let key = item_key(item.get("idempotencyKey"));
            let first = key.as_ref().ok().and_then(|key| first_of_key.get(key));
            let plan = match first {
                Some(first) => Plan::Refused(Refusal {
                    reason: RefusalReason::DuplicateIdempotencyKey,
                    errors: vec![ItemError::new(
                        "idempotencyKey",
                        format!(
                            "repeats the key of item {first} of this batch: each payment needs \
                             a key of its own"
                        ),
                    )],
                }),
                None => {
                    if let Ok(key) = &key {
                        first_of_key.insert(key.clone(), index);
                    }
                    plan_item(item, key.clone())
                }
            };
            Planned {
                index,
                key: key.ok(),
                plan,
            }
        })
        .collect()
}

/// An item's payment: checked as POST /v1/payments checks its body and
/// hashed exactly as it hashes it, so the same payment under the same key is
/// the same payment either way.
fn plan_item(item: &Value, key: Result<String, ItemError>) -> Plan {
    let mut errors = Vec::new();
    let key = key.map_err(|error| errors.push(error)).ok();
    if !item.is_object() {
        errors.push(ItemError::new(
            "",
            "must be an object with `idempotencyKey` and `payment`",
        ));
        return Plan::Refused(Refusal::invalid(errors));
    }
    let correlation = item_correlation(item.get("correlationId"))
        .map_err(|error| errors.push(error))
        .ok();
    let Some(payment) = item.get("payment").filter(|p| !p.is_null()) else {
        errors.push(ItemError::new("payment", "is required"));
        return Plan::Refused(Refusal::invalid(errors));
    };
    let request = match PaymentRequest::deserialize(payment) {
        Ok(request) => request,
        Err(error) => {
            errors.push(ItemError::new(
                "payment",
                format!("is not a payment: {error}"),
            ));
            return Plan::Refused(Refusal::invalid(errors));
        }
    };
    let hash = request_hash(payment);
    let checked = request.check();
    match (checked, correlation, key) {
        (Ok(checked), Some(correlation), Some(key)) if errors.is_empty() => Plan::New {
            key,
            hash,
            event: Box::new(submitted_event(checked, correlation)),
        },
        (checked, _, key) => {
            let failed = checked.err().unwrap_or_default();
            errors.extend(failed.into_iter().map(ItemError::of_payment));
            match key {
                Some(key) => Plan::Invalid { key, hash, errors },
                None => Plan::Refused(Refusal::invalid(errors)),
            }
        }
    }
}

/// The rule of the Idempotency-Key header, for a key in the body.
fn item_key(value: Option<&Value>) -> Result<String, ItemError> {
    let field = "idempotencyKey";
    match value {
        None | Some(Value::Null) => Err(ItemError::new(field, "is required")),
        Some(Value::String(key)) => {
            let key = key.trim();
            let printable = key.chars().all(|c| (' '..='~').contains(&c));
            if key.is_empty() || key.len() > 255 || !printable {
                Err(ItemError::new(
                    field,
                    "must be 1 to 255 visible ASCII characters",
                ))
            } else {
                Ok(key.to_owned())
            }
        }
        Some(_) => Err(ItemError::new(field, "must be a string")),
    }
}

/// The rule of the X-Correlation-Id header: the caller's own id, or a new
/// one if it sent none; one that cannot be used is refused, not replaced.
fn item_correlation(value: Option<&Value>) -> Result<String, ItemError> {
    match value {
        None | Some(Value::Null) => Ok(Uuid::new_v4().to_string()),
        Some(Value::String(id)) => {
            let id = id.trim();
            if !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_graphic()) {
                Ok(id.to_owned())
            } else {
                Err(ItemError::new(
                    "correlationId",
                    "must be 1 to 64 visible ASCII characters",
                ))
            }
        }
        Some(_) => Err(ItemError::new("correlationId", "must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payment() -> Value {
        json!({
            "amount": "10.00", "currency": "EUR",
            "debtor": { "name": "Anna", "account": "DE89370400440532013000",
                        "agentBic": "COBADEFFXXX", "country": "DE" },
            "creditor": { "name": "Jean", "account": "FR1420041010050500013M02606",
                          "agentBic": "BNPAFRPP", "country": "FR" }
        })
    }

    fn refusal(planned: &Planned) -> Option<&Refusal> {
        match &planned.plan {
            Plan::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }

    #[test]
    fn each_item_is_read_on_its_own_and_a_repeated_key_is_refused() {
        let mut bad = payment();
        bad["currency"] = json!("XYZ");
        let planned = plan(&[
            json!({ "idempotencyKey": "a", "payment": payment(), "correlationId": "c-1" }),
            json!({ "idempotencyKey": "b", "payment": bad }),
            json!({ "idempotencyKey": " a ", "payment": payment() }),
            json!({ "payment": payment() }),
            json!({ "idempotencyKey": "e", "payment": "x", "correlationId": 7 }),
            json!(42),
        ]);
        let Plan::New { event, hash, .. } = &planned[0].plan else {
            panic!("item 0 is a new payment");
        };
        assert_eq!(event.envelope.correlation_id, "c-1");
        assert_eq!(
            *hash,
            request_hash(&payment()),
            "hashed as POST /v1/payments"
        );
        let Plan::Invalid { errors, .. } = &planned[1].plan else {
            panic!("item 1 failed a rule");
        };
        assert_eq!(errors[0].field, "payment.currency");
        let reasons: Vec<_> = planned[2..]
            .iter()
            .map(|p| refusal(p).map(|r| r.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                Some(RefusalReason::DuplicateIdempotencyKey),
                Some(RefusalReason::InvalidFields),
                Some(RefusalReason::InvalidFields),
                Some(RefusalReason::InvalidFields),
            ]
        );
        let fields = |n: usize| -> Vec<String> {
            refusal(&planned[n])
                .map(|r| r.errors.iter().map(|e| e.field.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(fields(3), ["idempotencyKey"]);
        assert_eq!(fields(4), ["correlationId", "payment"]);
        assert_eq!(fields(5), ["idempotencyKey", ""]);
        assert_eq!(planned[5].key, None);
    }

    #[test]
    fn refusal_reasons_round_trip_through_their_stored_names() {
        for reason in [
            RefusalReason::InvalidFields,
            RefusalReason::IdempotencyKeyReused,
            RefusalReason::DuplicateIdempotencyKey,
        ] {
            assert_eq!(RefusalReason::from_name(reason.name()), Some(reason));
            assert_eq!(
                serde_json::to_value(reason).ok(),
                Some(json!(reason.name()))
            );
        }
    }
}
