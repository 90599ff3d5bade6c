//! RFC 9457 problem details: every refusal the gateway gives has a stable
//! `type`, a human `title` and `detail`, and, for validation failures, every
//! bad field.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::payment_request::FieldError;

pub use paystream_service_kit::http::PROBLEM_CONTENT_TYPE as CONTENT_TYPE;
use paystream_service_kit::http::PROBLEM_TYPE_BASE as TYPE_BASE;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("{TYPE_BASE}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        Self::invalid("The payment is not valid", errors)
    }

    /// 422 listing every field that failed a rule.
    pub fn invalid(title: &str, errors: Vec<FieldError>) -> Self {
        let detail = format!("{} field(s) failed validation", errors.len());
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                title,
                detail,
            )
        }
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "The request cannot be read",
            detail,
        )
    }

    /// A body that could not be read, e.g. over the size limit (413).
    pub fn unreadable_body(rejection: &axum::extract::rejection::BytesRejection) -> Self {
        let status = rejection.status();
        let slug = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body-too-large"
        } else {
            "unreadable-body"
        };
        Self::new(
            status,
            slug,
            "The request body cannot be read",
            rejection.body_text(),
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Not authenticated",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Try again shortly",
            detail,
        )
        .retry_after(retry_after_secs)
    }

    /// The broker did not confirm in time and nothing proves the record was
    /// not written: unlike a 503 ("not sent"), this may have been recorded.
    /// Retrying with the same key sends the very same event, so it is never
    /// recorded twice.
    pub fn outcome_unknown(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "outcome-unknown",
            "Not confirmed in time; it may have been recorded",
            detail,
        )
        .retry_after(retry_after_secs)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the request could not be completed; it is safe to retry with the same Idempotency-Key",
        )
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
