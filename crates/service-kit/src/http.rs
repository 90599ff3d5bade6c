//! HTTP answers every service shares.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// `/metrics`: the process's Prometheus registry in text format.
pub async fn metrics() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        paystream_bus::metrics::render(),
    )
}
