//! `POST /v1/payments` and `GET /v1/payments/{id}`.
//!
//! A payment is answered 202 only after the broker acked its
//! `payment.submitted` event; 503 if it was certainly not sent; 504 if the
//! broker did not confirm in time and it may have been written. The event is
//! stored under the client's Idempotency-Key before it is sent, so a client
//! that got a 503, a 504 or no answer retries with the same key and the very
//! same event (same paymentId, same eventId) is sent again: downstream
//! deduplicates it, no second payment exists.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use paystream_contract::{Envelope, PaymentStatus, PaymentSubmitted};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use super::{App, NotAcked, db_error, group_error, run_to_end, send_within};
use crate::auth::ClientId;
use crate::metrics::{self, Stage};
use crate::payment_request::{CheckedPayment, PaymentRequest};
use crate::problem::Problem;
use crate::reason::ClientReason;
use crate::store::{AckMark, IdempotencyRecord, NewClaim};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
const ROUTE: &str = "/v1/payments";
pub const CORRELATION_ID: &str = "x-correlation-id";

/// JSON with object keys sorted, so two bodies that differ only in key order
/// or whitespace hash the same. Serialised straight into the hash: the same
/// bytes as the compact text of the sorted value, without building either.
struct Canonical<'a>(&'a Value);

impl Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                serializer.collect_map(entries.into_iter().map(|(k, v)| (k, Canonical(v))))
            }
            Value::Array(items) => serializer.collect_seq(items.iter().map(Canonical)),
            other => other.serialize(serializer),
        }
    }
}

/// Feeds what is written into a SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) fn request_hash(body: &Value) -> Vec<u8> {
    let mut writer = HashWriter(Sha256::new());
    // Writing a Value into memory cannot fail: its keys are strings.
    if let Err(error) = serde_json::to_writer(&mut writer, &Canonical(body)) {
        tracing::error!(%error, "could not hash a request body");
    }
    writer.0.finalize().to_vec()
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| Problem::malformed("the Idempotency-Key header is required"))?
        .to_str()
        .map_err(|_| Problem::malformed("the Idempotency-Key header must be visible ASCII"))?
        .trim();
    if key.is_empty() || key.len() > 255 {
        return Err(Problem::malformed(
            "the Idempotency-Key header must be 1 to 255 characters",
        ));
    }
    Ok(key.to_owned())
}

/// The caller's correlation id, or a new one if it sent none. One it sent
/// but that cannot be used is refused rather than replaced: the caller would
/// otherwise search its logs for an id that appears nowhere downstream.
fn correlation_id(headers: &HeaderMap) -> Result<String, Problem> {
    let Some(value) = headers.get(CORRELATION_ID) else {
        return Ok(Uuid::new_v4().to_string());
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .ok_or_else(|| {
            Problem::malformed(
                "the X-Correlation-Id header must be 1 to 64 visible ASCII characters",
            )
        })
}

/// The 202 of an acked payment: the first answer and every replay of it.
fn accepted(payment_id: Uuid, correlation: &str) -> Response {
    let body = json!({
        "paymentId": payment_id,
        "correlationId": correlation,
        "status": PaymentStatus::Submitted.name(),
    });
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/payments/{payment_id}")) {
        headers.insert(header::LOCATION, location);
    }
    if let Ok(correlation) = HeaderValue::from_str(correlation) {
        headers.insert(CORRELATION_ID, correlation);
    }
    response
}

pub async fn submit(
    State(app): State<App>,
    Extension(client): Extension<ClientId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        otel.name = "POST /v1/payments",
        http.request.method = "POST",
        http.route = "/v1/payments",
        http.response.status_code = tracing::field::Empty,
    );
    // A client that traces its own calls sees the payment inside its trace.
    paystream_bus::headers::continue_trace(&span, &trace_context(&headers));
    run_to_end(span, async move {
        let body = body.map_err(|rejection| Problem::unreadable_body(&rejection))?;
        submit_inner(&app, &client, &headers, &body).await
    })
    .await
}

/// An incoming request's W3C trace-context headers (`traceparent`,
/// `tracestate`), as the bus reads them from a record.
pub(crate) fn trace_context(headers: &HeaderMap) -> paystream_bus::headers::HeaderList {
    ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| {
            headers
                .get(name)
                .map(|value| (name.to_owned(), value.as_bytes().to_vec()))
        })
        .collect()
}

async fn submit_inner(
    app: &App,
    client: &ClientId,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Problem> {
    let key = idempotency_key(headers)?;
    let correlation = correlation_id(headers)?;
    let json: Value = serde_json::from_slice(body)
        .map_err(|error| Problem::malformed(format!("the body is not JSON: {error}")))?;
    let request = PaymentRequest::deserialize(&json)
        .map_err(|error| Problem::malformed(format!("the body is not a payment: {error}")))?;
    let hash = request_hash(&json);

    // The claim comes first and the lookup only when it fails: a new key (the
    // common case) costs one shared statement, not a read and then a write.
    let checked = match request.check() {
        Ok(checked) => checked,
        // Refused fields are never stored, but the key may hold an earlier,
        // different request: that is the answer that tells the client more.
        Err(errors) => {
            return match app
                .store
                .idempotency(&client.0, &key)
                .await
                .map_err(db_error)?
            {
                Some(record) => replay(app, &hash, record).await,
                None => Err(Problem::invalid_fields(errors)),
            };
        }
    };
    let event = submitted_event(checked, correlation);
    let claim = NewClaim {
        client_id: client.0.clone(),
        key: key.clone(),
        request_hash: hash.clone(),
        payment_id: event.payment_id,
        event: serde_json::to_string(&event).map_err(|_| Problem::internal())?,
    };
    let started = Instant::now();
    let claimed = app
        .store
        .claim_idempotency(claim)
        .await
        .map_err(group_error)?;
    metrics::stage(ROUTE, Stage::Claim, started);
    if claimed {
        return publish(app, event).await;
    }
    // The key was taken, by an earlier request or a concurrent one: answer as
    // it does.
    let record = app
        .store
        .idempotency(&client.0, &key)
        .await
        .map_err(db_error)?
        .ok_or_else(Problem::internal)?;
    replay(app, &hash, record).await
}

/// The `payment.submitted` event of a payment that passed every rule.
pub(crate) fn submitted_event(checked: CheckedPayment, correlation: String) -> PaymentSubmitted {
    let payment_id = Uuid::now_v7();
    PaymentSubmitted {
        envelope: Envelope::first(correlation, format!("http:{payment_id}"), ""),
        payment_id,
        end_to_end_id: checked
            .end_to_end_id
            .unwrap_or_else(|| payment_id.simple().to_string()),
        uetr: Uuid::new_v4(),
        amount_minor: checked.amount_minor,
        currency: checked.currency,
        debtor: checked.debtor,
        creditor: checked.creditor,
        corridor_code: checked.corridor_code,
        remittance_information: checked.remittance_information,
        client_ip: checked.client_ip,
    }
}

/// A request whose key was seen before: the same body gets the same answer,
/// another body is refused.
async fn replay(app: &App, hash: &[u8], record: IdempotencyRecord) -> Result<Response, Problem> {
    if record.request_hash != hash {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            format!(
                "the key was first used for another request body (payment {})",
                record.payment_id
            ),
        ));
    }
    let event: PaymentSubmitted =
        serde_json::from_value(record.event).map_err(|_| Problem::internal())?;
    if record.acked {
        return Ok(accepted(event.payment_id, &event.envelope.correlation_id));
    }
    // Stored but never acked (a 503, a 504 or a crash): send the same event again.
    publish(app, event).await
}

async fn publish(app: &App, event: PaymentSubmitted) -> Result<Response, Problem> {
    let payment_id = event.payment_id;
    let correlation = event.envelope.correlation_id.clone();
    let span = tracing::info_span!("payment", correlation_id = correlation.as_str(), payment_id = %payment_id);
    async {
        let started = Instant::now();
        let sent = send_within(app, event).await;
        metrics::stage(ROUTE, Stage::Send, started);
        match sent {
            Ok(()) => {}
            Err(NotAcked::NotSent(reason)) => {
                tracing::warn!(%reason, "payment.submitted not sent; the client may retry");
                return Err(Problem::unavailable(
                    "the payment was not recorded; retry with the same Idempotency-Key",
                    1,
                ));
            }
            Err(NotAcked::Unknown(reason)) => {
                tracing::warn!(%reason, "payment.submitted not acknowledged; it may be recorded");
                return Err(Problem::outcome_unknown(
                    "the broker did not confirm the payment in time, so it may have been recorded: \
                     retry with the same Idempotency-Key (never a new one), which completes it \
                     without a second payment",
                    1,
                ));
            }
        }
        // Acked: the payment is accepted whatever the database says now, so
        // the 202 does not wait for the mark. A lost mark only means a retry
        // with this key sends the same event again (downstream drops it); a
        // 503 here would claim "not sent".
        let mark = AckMark {
            payment_id,
            correlation_id: correlation.clone(),
        };
        if let Err(error) = app.store.mark_acked(mark) {
            tracing::error!(%error, "payment acked but its status not started");
        }
        tracing::info!("payment accepted");
        Ok(accepted(payment_id, &correlation))
    }
    .instrument(span)
    .await
}

pub async fn status(
    State(app): State<App>,
    Extension(client): Extension<ClientId>,
    Path(id): Path<String>,
) -> Response {
    let Ok(payment_id) = Uuid::parse_str(&id) else {
        return Problem::not_found(format!("no payment `{id}`")).into_response();
    };
    match app.store.status(&client.0, payment_id).await {
        Ok(Some(row)) => {
            // The pipeline's own reason text names screening lists, entries
            // and scores: it stays internal; the client gets the code and a
            // fixed description of it.
            let reason = row.reason_code.as_deref().map(ClientReason::of);
            axum::Json(json!({
                "paymentId": row.payment_id,
                "correlationId": row.correlation_id,
                "status": row.status,
                "reasonCode": reason.as_ref().map(|reason| reason.code.as_str()),
                "reasonText": reason.as_ref().map(|reason| reason.description),
                "updatedAt": row.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "customerNotified": !row.notified.is_empty(),
                "notifications": row.notified,
            }))
            .into_response()
        }
        Ok(None) => Problem::not_found(format!("no payment `{id}`")).into_response(),
        Err(error) => db_error(error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_whitespace_do_not_change_the_request_hash() {
        let a: Value =
            serde_json::from_str(r#"{"b": {"y": 1, "x": [2, {"q": 1, "p": 2}]}, "a": "1"}"#)
                .unwrap_or_default();
        let b: Value = serde_json::from_str(r#"{"a":"1","b":{"x":[2,{"p":2,"q":1}],"y":1}}"#)
            .unwrap_or_default();
        let c: Value = serde_json::from_str(r#"{"a":"2","b":{"x":[2,{"p":2,"q":1}],"y":1}}"#)
            .unwrap_or_default();
        assert_eq!(request_hash(&a), request_hash(&b));
        // The bytes hashed are the compact text of the sorted value, as they
        // were when records were first stored: old keys still match.
        assert_eq!(
            request_hash(&a),
            Sha256::digest(br#"{"a":"1","b":{"x":[2,{"p":2,"q":1}],"y":1}}"#).to_vec()
        );
        assert_ne!(request_hash(&a), request_hash(&c));
    }
}
