//! The audit's HTTP API: a payment's timeline, and the latest signed
//! checkpoint of the chain heads.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use paystream_service_kit::http::problem;
use sqlx::PgPool;

use crate::checkpoint::Checkpoints;
use crate::record::Reader;
use crate::timeline::timeline;

pub const TIMELINE_PATH: &str = "/v1/payments/{id}/timeline";
pub const CHECKPOINT_PATH: &str = "/v1/checkpoints/latest";

#[derive(Clone)]
struct Api {
    pool: PgPool,
    reader: Reader,
    checkpoints: Option<Arc<Checkpoints>>,
}

pub fn router(pool: PgPool, reader: Reader, checkpoints: Option<Arc<Checkpoints>>) -> Router {
    Router::new()
        .route(TIMELINE_PATH, get(get_timeline))
        .route(CHECKPOINT_PATH, get(latest_checkpoint))
        .with_state(Api {
            pool,
            reader,
            checkpoints,
        })
}

async fn get_timeline(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match timeline(&api.pool, &api.reader, &id).await {
        Ok(Some(timeline)) => Json(timeline).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "payment-not-found",
            "Payment not found",
            &format!("the audit log has no event with paymentId or correlationId {id}"),
        ),
        Err(error) => {
            tracing::error!(%error, "timeline query failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit-unavailable",
                "Audit log unavailable",
                "the audit log cannot be read right now; try again",
            )
        }
    }
}

async fn latest_checkpoint(State(api): State<Api>) -> Response {
    let latest = match &api.checkpoints {
        Some(checkpoints) => checkpoints.latest().await,
        None => None,
    };
    match latest {
        Some(checkpoint) => Json(checkpoint).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "no-checkpoint",
            "No checkpoint",
            "no signed checkpoint has been published (is a checkpoint key configured?)",
        ),
    }
}
