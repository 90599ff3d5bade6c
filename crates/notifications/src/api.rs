//! `GET /v1/payments/{paymentId}/notifications`: what the customer was
//! told about a payment, and whether it reached them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use paystream_service_kit::http::problem;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

pub fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/v1/payments/{payment_id}/notifications", get(list))
        .with_state(pool)
}

#[derive(Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
struct Item {
    id: Uuid,
    kind: String,
    channel: String,
    recipient: String,
    state: String,
    attempts: i32,
    provider_message_id: Option<String>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

async fn list(State(pool): State<PgPool>, Path(payment_id): Path<String>) -> Response {
    let items: Result<Vec<Item>, _> = sqlx::query_as(
        "SELECT id, kind, channel, recipient, state, attempts, provider_message_id, last_error, \
         created_at, sent_at FROM notifications WHERE payment_id = $1 ORDER BY created_at, channel",
    )
    .bind(&payment_id)
    .fetch_all(&pool)
    .await;
    match items {
        Ok(items) => Json(serde_json::json!({ "paymentId": payment_id, "notifications": items }))
            .into_response(),
        Err(error) => {
            tracing::warn!(%error, %payment_id, "notifications read failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Notifications cannot be read now",
                "try again shortly",
            )
        }
    }
}
