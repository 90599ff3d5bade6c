//! `POST /v1/payment-batches` and `GET /v1/payment-batches/{id}`: up to
//! 1,000 payments in one request, each under its own idempotency key and
//! each answered on its own.
//!
//! An item is a payment exactly as `POST /v1/payments` makes one: the same
//! rules, the same request hash, the same idempotency record under its key,
//! so a payment sent alone and then inside a batch is one payment. The whole
//! batch costs a handful of round trips whatever its size: one statement
//! claims every item's key, one transaction stores the batch with each
//! item's verdict, the events are sent concurrently, one statement marks the
//! acked ones. An item is ACCEPTED only once the broker acked its event;
//! refused items are stored with their errors and never published.
//!
//! The answer is 200, not 207: the batch itself was received, stored and
//! answered, and each item's own outcome is in the body. 207 Multi-Status
//! is WebDAV's (RFC 4918), defined with an XML body and per-resource HTTP
//! statuses, and HTTP clients and proxies treat it as an odd success anyway;
//! the client must read `items` either way.

mod answer;
mod items;
mod progress;
mod send;
mod verdicts;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use self::verdicts::{Item, Verdict, claim, earlier, row, stored_refusal};
use super::payments::{idempotency_key, request_hash, trace_context};
use super::{App, db_error, run_to_end};
use crate::auth::{ClientId, Guard};
use crate::payment_request::FieldError;
use crate::problem::Problem;
use crate::store::{self, BatchRecord};

/// Payments in one batch at most.
pub const MAX_ITEMS: usize = 1_000;
/// The batch route's body limit, above the gateway's default: 1,000
/// payments are about 600 KB.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

pub async fn submit(
    State(app): State<App>,
    Extension(client): Extension<ClientId>,
    Extension(guard): Extension<Guard>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        otel.name = "POST /v1/payment-batches",
        http.request.method = "POST",
        http.route = "/v1/payment-batches",
        http.response.status_code = tracing::field::Empty,
        batch_id = tracing::field::Empty,
        batch_items = tracing::field::Empty,
    );
    paystream_bus::headers::continue_trace(&span, &trace_context(&headers));
    run_to_end(span, async move {
        let body = body.map_err(|rejection| Problem::unreadable_body(&rejection))?;
        submit_inner(&app, &client, &guard, &headers, &body).await
    })
    .await
}

/// The `payments` of a batch body: 1 to [`MAX_ITEMS`] of them.
fn payments_of(body: &Value) -> Result<&[Value], Problem> {
    let payments = body
        .get("payments")
        .and_then(Value::as_array)
        .ok_or_else(|| Problem::malformed("the body must be an object with a `payments` array"))?;
    if payments.is_empty() || payments.len() > MAX_ITEMS {
        return Err(Problem::invalid(
            "The batch is not valid",
            vec![FieldError {
                field: "payments".into(),
                detail: format!(
                    "must hold 1 to {MAX_ITEMS} payments, not {}: split larger batches",
                    payments.len()
                ),
            }],
        ));
    }
    Ok(payments)
}

async fn submit_inner(
    app: &App,
    client: &ClientId,
    guard: &Guard,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Problem> {
    let key = idempotency_key(headers)?;
    let json: Value = serde_json::from_slice(body)
        .map_err(|error| Problem::malformed(format!("the body is not JSON: {error}")))?;
    let payments = payments_of(&json)?;
    tracing::Span::current().record("batch_items", payments.len());
    let hash = request_hash(&json);
    let pool = app.store.pool();
    if let Some(batch) = store::find_batch(pool, &client.0, &key)
        .await
        .map_err(db_error)?
    {
        return replay(app, client, batch, &hash).await;
    }
    // A new batch of n payments counts as n requests against the client's
    // rate (the request itself took one); a repeat is only read back.
    guard.charge(client, payments.len() - 1);
    let batch_id = Uuid::now_v7();
    tracing::Span::current().record("batch_id", tracing::field::display(batch_id));
    let items = claim(app, client, items::plan(payments)).await?;
    let rows = items.iter().map(row).collect::<Result<Vec<_>, _>>()?;
    let batch = store::NewBatch {
        batch_id,
        client_id: client.0.clone(),
        key: key.clone(),
        request_hash: hash.clone(),
    };
    // Stored before anything is sent: a batch answered NOT_SENT or UNKNOWN
    // (or not answered at all) is completed by its repeat.
    if !store::insert_batch(pool, &batch, &rows)
        .await
        .map_err(db_error)?
    {
        // A concurrent request stored a batch under this key first: answer
        // as it does. Its items took the same keys, so nothing here is lost.
        let stored = store::find_batch(pool, &client.0, &key)
            .await
            .map_err(db_error)?
            .ok_or_else(Problem::internal)?;
        return replay(app, client, stored, &hash).await;
    }
    Ok(send::answer(app, batch_id, items).await)
}

/// A batch seen before: the same body gets the stored verdicts again, with
/// every payment not yet acked sent again (the same event, so downstream
/// drops a copy that did arrive); another body is refused.
async fn replay(
    app: &App,
    client: &ClientId,
    batch: BatchRecord,
    hash: &[u8],
) -> Result<Response, Problem> {
    if batch.request_hash != hash {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            format!(
                "the key was first used for another batch (batch {})",
                batch.batch_id
            ),
        ));
    }
    tracing::Span::current().record("batch_id", tracing::field::display(batch.batch_id));
    let pool = app.store.pool();
    let rows = store::batch_items(pool, batch.batch_id)
        .await
        .map_err(db_error)?;
    let keys: Vec<&str> = rows
        .iter()
        .filter(|row| row.payment_id.is_some())
        .filter_map(|row| row.idempotency_key.as_deref())
        .collect();
    let records = app
        .store
        .idempotency_many(&client.0, &keys)
        .await
        .map_err(db_error)?;
    let items = rows
        .into_iter()
        .map(|row| {
            let verdict = match (row.payment_id, row.idempotency_key.clone()) {
                (Some(payment_id), Some(key)) => {
                    let record = records
                        .get(&key)
                        .filter(|record| record.payment_id == payment_id)
                        .ok_or_else(Problem::internal)?;
                    earlier(&record.request_hash, record)?
                }
                _ => Verdict::Refused(stored_refusal(row.refusal.as_deref(), row.errors)?),
            };
            Ok(Item {
                index: usize::try_from(row.item_index).map_err(|_| Problem::internal())?,
                key: row.idempotency_key,
                verdict,
            })
        })
        .collect::<Result<Vec<_>, Problem>>()?;
    Ok(send::answer(app, batch.batch_id, items).await)
}

pub async fn status(
    State(app): State<App>,
    Extension(client): Extension<ClientId>,
    Path(id): Path<String>,
) -> Response {
    let not_found = || Problem::not_found(format!("no payment batch `{id}`")).into_response();
    let Ok(batch_id) = Uuid::parse_str(&id) else {
        return not_found();
    };
    // Another client's batch is as absent as one that never existed.
    match store::batch_progress(app.store.pool(), &client.0, batch_id).await {
        Ok(rows) if rows.is_empty() => not_found(),
        Ok(rows) => match progress::progress(batch_id, rows) {
            Ok(progress) => axum::Json(progress).into_response(),
            Err(problem) => problem.into_response(),
        },
        Err(error) => db_error(error).into_response(),
    }
}
