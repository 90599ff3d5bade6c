//! `POST /v1/webhooks/card-transactions`: the card processor's webhook.
//!
//! The processor signs `object_payload` exactly as it serialised it:
//! `object_payload_signature = base64(HMAC-SHA256(secret, object_payload))`.
//! The payload is therefore verified on its raw bytes, before anything parses
//! it, and compared in constant time. Nothing forged, malformed or already
//! seen is published; the processor gets 200 only once the event is acked.

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
use serde_json::value::RawValue;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tracing::Instrument;

use super::{App, db_error};
use crate::problem::Problem;

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
        tracing::warn!(webhook_id = %webhook.webhook_id, "webhook signature does not match; dropped");
        return Err(Problem::unauthorized(
            "object_payload_signature does not match the payload",
        ));
    }
    if webhook.webhook != "cardtransaction.create" {
        return Err(Problem::malformed(format!(
            "unsupported webhook `{}`",
            webhook.webhook
        )));
    }
    let payload: Payload = serde_json::from_str(webhook.object_payload.get())
        .map_err(|error| Problem::malformed(format!("object_payload: {error}")))?;
    let [transaction] = <[CardTransaction; 1]>::try_from(payload.cardtransactions)
        .map_err(|_| Problem::malformed("object_payload must hold exactly one card transaction"))?;
    let currency = iso_currency::Currency::from_code(&transaction.currency).ok_or_else(|| {
        Problem::malformed(format!(
            "`{}` is not an ISO 4217 currency",
            transaction.currency
        ))
    })?;
    let exponent = currency.exponent().map(u32::from).unwrap_or(0);
    let amount_minor = to_minor_units(&transaction.amount, exponent, currency.code())
        .map_err(|error| Problem::malformed(format!("amount {error}")))?;

    let span = tracing::info_span!("card_webhook", webhook_id = %webhook.webhook_id, correlation_id = %webhook.webhook_id);
    async {
        if app
            .store
            .webhook_seen(&webhook.webhook_id)
            .await
            .map_err(db_error)?
        {
            tracing::info!("duplicate webhook; already published");
            return Ok(StatusCode::OK.into_response());
        }
        let event = CardTransactionReceived {
            // The webhook id is the journey's correlation: the processor
            // resends under it, and support asks about it.
            envelope: Envelope::first(
                webhook.webhook_id.clone(),
                format!("webhook:{}", webhook.webhook_id),
                "",
            ),
            webhook_id: webhook.webhook_id.clone(),
            card_transaction_id: transaction.card_transaction_id,
            card_id: transaction.card_id.clone(),
            amount_minor,
            currency: currency.code().to_owned(),
            transaction_status: transaction.status,
            merchant_name: transaction.merchant_name,
            merchant_country: transaction.merchant_country,
            code_status: transaction.code_status,
            processor_created_at: transaction.created_date,
        };
        match tokio::time::timeout(app.ack_timeout, app.producer.send(event)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "card.transaction.received not acked");
                return Err(Problem::unavailable(
                    "not recorded; the processor should retry",
                    1,
                ));
            }
            Err(_) => return Err(Problem::unavailable("not acknowledged in time; retry", 1)),
        }
        app.store
            .record_webhook(&webhook.webhook_id, &transaction.card_id)
            .await
            .map_err(db_error)?;
        tracing::info!("card transaction published");
        Ok(StatusCode::OK.into_response())
    }
    .instrument(span)
    .await
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
