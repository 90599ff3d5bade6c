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

/// The media type of RFC 9457 problem details.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
/// Where every Paystream problem `type` lives: the base plus a stable slug.
pub const PROBLEM_TYPE_BASE: &str = "https://paystream.dev/problems/";

/// An RFC 9457 problem: a stable `type` from `slug`, a human `title` and `detail`.
pub fn problem(
    status: axum::http::StatusCode,
    slug: &str,
    title: &str,
    detail: &str,
) -> axum::response::Response {
    let body = serde_json::json!({
        "type": format!("{PROBLEM_TYPE_BASE}{slug}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(CONTENT_TYPE, PROBLEM_CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}
