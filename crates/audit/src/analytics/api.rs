//! `GET /v1/analytics`: the metrics and their dimensions.
//! `GET /v1/analytics/{metric}?by={dimension}&from=&to=`: count and volume
//! per hour, dimension value and currency (RFC 3339 bounds, the last 24
//! hours by default).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use paystream_service_kit::http::problem;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::Metric;

pub fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/v1/analytics", get(index))
        .route("/v1/analytics/{metric}", get(series))
        .with_state(pool)
}

async fn index() -> Response {
    let metrics: Vec<serde_json::Value> = Metric::ALL
        .iter()
        .map(|metric| {
            serde_json::json!({ "metric": metric.name(), "dimensions": metric.dimensions() })
        })
        .collect();
    Json(serde_json::json!({ "metrics": metrics })).into_response()
}

#[derive(Debug, Deserialize)]
struct Params {
    by: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
struct Point {
    hour: DateTime<Utc>,
    value: String,
    currency: String,
    count: i64,
    volume_minor: i64,
}

async fn series(
    State(pool): State<PgPool>,
    Path(metric): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let Some(metric) = Metric::from_name(&metric) else {
        return problem(
            StatusCode::NOT_FOUND,
            "unknown-metric",
            "No such metric",
            &format!("`{metric}` is not one of the metrics GET /v1/analytics lists"),
        );
    };
    let by = params.by.unwrap_or_else(|| "all".to_owned());
    if !metric.dimensions().contains(&by.as_str()) {
        return problem(
            StatusCode::BAD_REQUEST,
            "unknown-dimension",
            "No such dimension",
            &format!(
                "{} is broken down by {}, not `{by}`",
                metric.name(),
                metric.dimensions().join(", ")
            ),
        );
    }
    let to = params.to.unwrap_or_else(Utc::now);
    let from = params.from.unwrap_or(to - TimeDelta::hours(24));
    let points: Result<Vec<Point>, _> = sqlx::query_as(
        "SELECT hour, value, currency, count, volume_minor FROM analytics_hourly \
         WHERE metric = $1 AND dimension = $2 AND hour >= date_trunc('hour', $3::timestamptz) \
           AND hour <= $4 ORDER BY hour, value, currency",
    )
    .bind(metric.name())
    .bind(&by)
    .bind(from)
    .bind(to)
    .fetch_all(&pool)
    .await;
    match points {
        Ok(points) => Json(serde_json::json!({
            "metric": metric.name(),
            "by": by,
            "from": from,
            "to": to,
            "points": points,
        }))
        .into_response(),
        Err(error) => {
            tracing::warn!(%error, "analytics read failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Analytics cannot be read now",
                "try again shortly",
            )
        }
    }
}
