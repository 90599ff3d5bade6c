//! The gateway's HTTP routes beside health and metrics:
//!
//! - `POST /v1/rail/status-reports`: the rail's signed pacs.002 callbacks.
//!   A forged or stale signature is a 401, an unreadable report a 400 that
//!   names the element, a report for a UETR never sent a 404; none of them
//!   changes anything. A duplicate or stale report is a 200 that says it
//!   changed nothing.
//! - `GET /v1/submissions/{paymentId}`: a payment's submission as stored.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paystream_iso20022::StatusReport;
use paystream_service_kit::http::problem;
use paystream_service_kit::signing;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::metrics::METRICS;
use crate::outcome::{ApplyError, Outcomes, Via};
use crate::store::{self, Submission};

pub const CALLBACK_PATH: &str = "/v1/rail/status-reports";

#[derive(Clone)]
struct Api {
    pool: PgPool,
    outcomes: Outcomes,
    secret: Arc<[u8]>,
    tolerance: Duration,
}

pub fn router(pool: PgPool, outcomes: Outcomes, secret: &str, tolerance: Duration) -> Router {
    Router::new()
        .route(CALLBACK_PATH, post(callback))
        .route("/v1/submissions/{payment_id}", get(submission))
        .with_state(Api {
            pool,
            outcomes,
            secret: Arc::from(secret.as_bytes()),
            tolerance,
        })
}

fn refused(
    reason: &'static str,
    status: StatusCode,
    slug: &str,
    title: &str,
    detail: &str,
) -> Response {
    METRICS.refused_callbacks.with_label_values(&[reason]).inc();
    tracing::warn!(reason, detail, "rail callback refused");
    problem(status, slug, title, detail)
}

async fn callback(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(error) = signing::verify(&api.secret, &headers, &body, api.tolerance) {
        return refused(
            "signature",
            StatusCode::UNAUTHORIZED,
            "bad-signature",
            "The callback is not signed by the rail",
            &error.to_string(),
        );
    }
    let report = match std::str::from_utf8(&body)
        .map_err(|error| error.to_string())
        .and_then(|text| StatusReport::from_xml(text).map_err(|error| error.to_string()))
    {
        Ok(report) => report,
        Err(error) => {
            return refused(
                "unreadable",
                StatusCode::BAD_REQUEST,
                "unreadable-status-report",
                "The body is not a pacs.002.001.10 status report",
                &error,
            );
        }
    };
    match api
        .outcomes
        .apply(report.uetr, &report, Via::Callback)
        .await
    {
        Ok(applied) => Json(serde_json::json!({
            "uetr": report.uetr,
            "effect": applied.effect.name(),
            "duplicate": applied.duplicate,
            "state": applied.state.name(),
        }))
        .into_response(),
        Err(ApplyError::UnknownUetr(uetr)) => refused(
            "unknown_uetr",
            StatusCode::NOT_FOUND,
            "unknown-uetr",
            "No submission has this UETR",
            &format!("this gateway never sent UETR {uetr}"),
        ),
        Err(error) => {
            tracing::warn!(%error, uetr = %report.uetr, "a callback could not be applied; the rail will deliver it again");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The report cannot be recorded now",
                "try again shortly",
            )
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubmissionBody {
    payment_id: Uuid,
    uetr: Uuid,
    state: &'static str,
    message_id: String,
    end_to_end_id: String,
    amount_minor: i64,
    currency: String,
    rail_reference: Option<String>,
    reason_code: Option<String>,
    reason_text: Option<String>,
    settlement_date: Option<String>,
    attempts: i32,
    last_error: Option<String>,
    created_at: String,
    resolved_at: Option<String>,
    correlation_id: String,
    document: String,
}

impl From<Submission> for SubmissionBody {
    fn from(s: Submission) -> Self {
        Self {
            payment_id: s.payment_id,
            uetr: s.uetr,
            state: s.state.name(),
            message_id: s.message_id,
            end_to_end_id: s.end_to_end_id,
            amount_minor: s.amount_minor,
            currency: s.currency,
            rail_reference: s.rail_reference,
            reason_code: s.reason_code,
            reason_text: s.reason_text,
            settlement_date: s.settlement_date.map(|date| date.to_string()),
            attempts: s.attempts,
            last_error: s.last_error,
            created_at: s.created_at.to_rfc3339(),
            resolved_at: s.resolved_at.map(|at| at.to_rfc3339()),
            correlation_id: s.cause.correlation_id,
            document: s.document,
        }
    }
}

async fn submission(State(api): State<Api>, Path(payment_id): Path<String>) -> Response {
    let Ok(payment_id) = Uuid::parse_str(&payment_id) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid-payment-id",
            "Not a payment id",
            &format!("{payment_id:?} is not a UUID"),
        );
    };
    match store::find(&api.pool, payment_id).await {
        Ok(Some(submission)) => Json(SubmissionBody::from(submission)).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "submission-not-found",
            "No such submission",
            &format!("payment {payment_id} was not sent to the rail"),
        ),
        Err(error) => {
            tracing::warn!(%error, %payment_id, "submission read failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Submissions cannot be read now",
                "try again shortly",
            )
        }
    }
}
