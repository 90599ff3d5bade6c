//! `POST /v1/webhooks/card-transactions`: the card processor's webhook.
//!
//! The processor signs `object_payload` exactly as it serialised it:
//! `object_payload_signature = base64(HMAC-SHA256(secret, object_payload))`.
//! The payload is therefore verified on its raw bytes, before anything parses
//! it, and compared in constant time. Nothing forged, malformed or already
//! published is published; the processor gets 200 only once the event is
//! acked.
//!
//! A transaction is known by its `cardtransactionId`, inside the signed
//! payload, never by the unsigned `webhook_id` around it. Its event is
//! claimed in the database before it is sent and its ids derive from the
//! transaction id, so concurrent deliveries, retries after a failure and
//! replays under new webhook ids all come to one event id.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use paystream_contract::money::to_minor_units;
use paystream_contract::{CardTransactionReceived, Envelope};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::time::{Duration, Instant};
use tracing::Instrument;
use uuid::Uuid;

use super::{App, NotAcked, group_error, send_within};
use crate::metrics::{self, Stage};
use crate::payment_request::{FieldError, control_character};
use crate::problem::Problem;
use crate::store::{CardClaim, CardClaimRequest};

#[derive(Debug, Deserialize)]
struct Webhook<'a> {
    webhook: String,
    webhook_id: String,
    #[serde(borrow)]
    object_payload: &'a RawValue,
    object_payload_signature: String,
}

#[derive(Debug, Deserialize)]
struct Payload {
    cardtransactions: Vec<CardTransaction>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CardTransaction {
    #[serde(rename = "cardtransactionId")]
    card_transaction_id: String,
    card_id: String,
    amount: String,
    currency: String,
    #[serde(rename = "cardtransactionStatus")]
    status: String,
    merchant_name: String,
    merchant_country: String,
    code_status: String,
    created_date: String,
}

pub fn sign(secret: &[u8], payload: &str) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(payload.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn verify(secret: &[u8], payload: &str, signature: &str) -> bool {
    let expected = sign(secret, payload);
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(signature.trim().as_bytes()))
}

pub async fn card_transactions(
    State(app): State<App>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return Problem::unreadable_body(&rejection).into_response(),
    };
    match receive(&app, &body).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

/// Namespace of the ids derived from a card transaction id.
const ROUTE: &str = "/v1/webhooks/card-transactions";

const NAMESPACE: Uuid = Uuid::from_u128(0x6fdd5a0c_0c9b_4b71_b45b_8da529e0b94d);

/// The eventId of a card transaction's `card.transaction.received`: the same
/// for every delivery of it, by any gateway instance, so downstream's
/// idempotent consumers drop whatever repeat a failure causes.
pub fn event_id(card_transaction_id: &str) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("card.transaction.received/{card_transaction_id}").as_bytes(),
    )
}

/// The journey's correlation id, from what the processor signs: a replay
/// under a made-up webhook_id cannot start a journey of its own.
pub fn correlation_id(card_transaction_id: &str) -> String {
    Uuid::new_v5(
        &NAMESPACE,
        format!("card-transaction/{card_transaction_id}").as_bytes(),
    )
    .to_string()
}

/// The longest text field a webhook may carry.
const MAX_FIELD: usize = 255;

/// Fields no store or downstream system can hold: refused with a 422 naming
/// them, where PostgreSQL's refusal would be a 503 the processor retries
/// forever.
fn check_fields(webhook_id: &str, transaction: &CardTransaction) -> Vec<FieldError> {
    let prefix = "object_payload.cardtransactions[0]";
    let fields = [
        ("webhook_id".to_owned(), webhook_id),
        (
            format!("{prefix}.cardtransactionId"),
            &transaction.card_transaction_id,
        ),
        (format!("{prefix}.cardId"), &transaction.card_id),
        (format!("{prefix}.amount"), &transaction.amount),
        (format!("{prefix}.currency"), &transaction.currency),
        (
            format!("{prefix}.cardtransactionStatus"),
            &transaction.status,
        ),
        (format!("{prefix}.merchantName"), &transaction.merchant_name),
        (
            format!("{prefix}.merchantCountry"),
            &transaction.merchant_country,
        ),
        (format!("{prefix}.codeStatus"), &transaction.code_status),
        (format!("{prefix}.createdDate"), &transaction.created_date),
    ];
    fields
        .into_iter()
        .filter_map(|(field, value)| {
            let detail = if value.trim().is_empty() {
                Some("must not be blank".to_owned())
            } else if value.chars().count() > MAX_FIELD {
                Some(format!("must be at most {MAX_FIELD} characters"))
            } else {
                control_character(value)
            };
            detail.map(|detail| FieldError { field, detail })
        })
        .collect()
}

async fn receive(app: &App, body: &[u8]) -> Result<Response, Problem> {
    let Some(secret) = app.webhook_secret.as_deref() else {
        return Err(Problem::unavailable("webhooks are not configured", 60));
    };
    let webhook: Webhook<'_> = serde_json::from_slice(body)
        .map_err(|error| Problem::malformed(format!("not a card webhook: {error}")))?;
    if !verify(
        secret,
        webhook.object_payload.get(),
        &webhook.object_payload_signature,
    ) {
        tracing::warn!(webhook_id = %webhook.webhook_id.escape_debug(), "webhook signature does not match; dropped");
        return Err(Problem::unauthorized(
            "object_payload_signature does not match the payload",
        ));
    }
    if webhook.webhook != "cardtransaction.create" {
        return Err(Problem::malformed(format!(
            "unsupported webhook `{}`",
            webhook.webhook.escape_debug()
        )));
    }
    let payload: Payload = serde_json::from_str(webhook.object_payload.get())
        .map_err(|error| Problem::malformed(format!("object_payload: {error}")))?;
    let [transaction] = <[CardTransaction; 1]>::try_from(payload.cardtransactions)
        .map_err(|_| Problem::malformed("object_payload must hold exactly one card transaction"))?;
    let errors = check_fields(&webhook.webhook_id, &transaction);
    if !errors.is_empty() {
        return Err(Problem::invalid("The card webhook is not valid", errors));
    }
    let currency = iso_currency::Currency::from_code(&transaction.currency).ok_or_else(|| {
        Problem::malformed(format!(
            "`{}` is not an ISO 4217 currency",
            transaction.currency
        ))
    })?;
    let exponent = currency.exponent().map(u32::from).unwrap_or(0);
    let amount_minor = to_minor_units(&transaction.amount, exponent, currency.code())
        .map_err(|error| Problem::malformed(format!("amount {error}")))?;

    let id = transaction.card_transaction_id;
    let mut envelope = Envelope::first(correlation_id(&id), format!("card-transaction:{id}"), "");
    envelope.event_id = event_id(&id);
    let event = CardTransactionReceived {
        envelope,
        webhook_id: webhook.webhook_id.clone(),
        card_transaction_id: id,
        card_id: transaction.card_id,
        amount_minor,
        currency: currency.code().to_owned(),
        transaction_status: transaction.status,
        merchant_name: transaction.merchant_name,
        merchant_country: transaction.merchant_country,
        code_status: transaction.code_status,
        processor_created_at: transaction.created_date,
    };
    let span = tracing::info_span!(
        "card_webhook",
        webhook_id = %webhook.webhook_id,
        card_transaction_id = %event.card_transaction_id,
        correlation_id = event.envelope.correlation_id.as_str(),
    );
    deliver(app, event).instrument(span).await
}

/// Publishes a card transaction once however many deliveries of it arrive,
/// concurrently or not: the first claims it and sends; the others wait
/// for that send and answer as it did, or take over if it failed.
async fn deliver(app: &App, event: CardTransactionReceived) -> Result<Response, Problem> {
    let stored = serde_json::to_string(&event).map_err(|_| Problem::internal())?;
    let deadline = Instant::now() + app.ack_timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        let claim = CardClaimRequest {
            card_transaction_id: event.card_transaction_id.clone(),
            event_id: event.envelope.event_id,
            webhook_id: event.webhook_id.clone(),
            card_id: event.card_id.clone(),
            event: stored.clone(),
            lease_seconds: app.ack_timeout.as_secs_f64(),
        };
        let started = std::time::Instant::now();
        let claimed = app.store.claim_card_transaction(claim).await;
        metrics::stage(ROUTE, Stage::Claim, started);
        match claimed.map_err(group_error)? {
            CardClaim::Publish(None) => return publish(app, event).await,
            CardClaim::Publish(Some(first)) => {
                same_transaction(&event, &first)?;
                let first = serde_json::from_value(first).map_err(|_| Problem::internal())?;
                return publish(app, first).await;
            }
            CardClaim::Published(first) => {
                same_transaction(&event, &first)?;
                tracing::info!("card transaction already published");
                return Ok(StatusCode::OK.into_response());
            }
            CardClaim::Busy if Instant::now() + pause < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            CardClaim::Busy => {
                return Err(Problem::outcome_unknown(
                    "another delivery of this card transaction is being published; retry",
                    1,
                ));
            }
        }
    }
}

fn same_transaction(event: &CardTransactionReceived, first: &Value) -> Result<(), Problem> {
    let first: CardTransactionReceived =
        serde_json::from_value(first.clone()).map_err(|_| Problem::internal())?;
    let comparable = |event: &CardTransactionReceived| CardTransactionReceived {
        envelope: first.envelope.clone(),
        webhook_id: first.webhook_id.clone(),
        ..event.clone()
    };
    if comparable(event) == first {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "card-transaction-conflict",
        "Card transaction already received with other details",
        format!(
            "card transaction `{}` was first received (webhook `{}`) with other details",
            event.card_transaction_id, first.webhook_id
        ),
    ))
}

/// Sends the event as first stored (same eventId on every attempt).
async fn publish(app: &App, event: CardTransactionReceived) -> Result<Response, Problem> {
    let id = event.card_transaction_id.clone();
    let started = std::time::Instant::now();
    let outcome = send_within(app, event).await;
    metrics::stage(ROUTE, Stage::Send, started);
    if let Err(not_acked) = outcome {
        if let Err(error) = app.store.release_card_transaction(&id).await {
            // The lease runs out by itself; the retry waits for it.
            tracing::warn!(%error, "could not release the card transaction's claim");
        }
        return Err(match not_acked {
            NotAcked::NotSent(reason) => {
                tracing::warn!(%reason, "card.transaction.received not sent");
                Problem::unavailable("not recorded; the processor should retry", 1)
            }
            NotAcked::Unknown(reason) => {
                tracing::warn!(%reason, "card.transaction.received not acknowledged");
                Problem::outcome_unknown(
                    "not confirmed in time and possibly recorded; the processor should retry (a repeat is dropped downstream)",
                    1,
                )
            }
        });
    }
    // Published: that is what the processor needs to know, and it need not
    // wait for the mark. A lost mark only means a later delivery sends the
    // same event again, which downstream drops as a duplicate.
    if let Err(error) = app.store.mark_card_transaction_published(id) {
        tracing::error!(%error, "card transaction published but not marked so");
    }
    tracing::info!("card transaction published");
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_payload_bytes_exactly() {
        let payload = r#"{"cardtransactions":[{"amount":"15.00"}]}"#;
        let signature = sign(b"secret", payload);
        assert!(verify(b"secret", payload, &signature));
        assert!(!verify(b"other", payload, &signature));
        // Same JSON, different bytes: a re-serialised payload does not verify.
        assert!(!verify(
            b"secret",
            r#"{"cardtransactions": [{"amount":"15.00"}]}"#,
            &signature
        ));
        assert!(!verify(b"secret", payload, ""));
    }
}
