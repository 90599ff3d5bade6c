//! A client for one external provider over HTTP, shared by every service that
//! calls one (validation's screening providers, the RTGS rail, notifications).
//!
//! One [`ProviderClient`] per provider holds one pooled HTTP client (or one
//! shared HTTP/2 connection to a cleartext provider asked for HTTP/2), a cap on
//! calls in flight, a token bucket that keeps under the provider's documented
//! rate and burst, lowered to what the provider announces in its `RateLimit`
//! headers, the provider's `Retry-After` and "nothing left until the reset"
//! (honoured by every caller at once, cut to a maximum), a timeout per try, jittered retries of timeouts, connection
//! errors and 5xx, and a circuit breaker that stops calling a provider that
//! keeps failing.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use paystream_provider_client::{Method, ProviderClient, ProviderSettings};
//!
//! let rail = ProviderClient::new("rtgs", "http://127.0.0.1:8090/rtgs", ProviderSettings::default())?;
//! let answer = rail
//!     .request(Method::POST, &["v1", "messages"])
//!     .idempotency_key("3f1c9a52-0d1e-4c5e-9f43-5b2f0f1f8f7e")
//!     .body("application/xml", b"<Document/>".to_vec())
//!     .deadline(std::time::Instant::now() + std::time::Duration::from_secs(30))
//!     .send()
//!     .await?;
//! # let _ = answer;
//! # Ok(())
//! # }
//! ```
//!
//! Every call ends in an answer or a [`CallError`] that says whether trying
//! again later can help ([`CallError::Unavailable`]) or not
//! ([`CallError::Refused`]).

mod breaker;
mod bucket;
mod client;
mod direct;
mod error;
pub mod metrics;
mod rate_limit_headers;
mod request;
mod retry_after;
mod settings;

pub use client::ProviderClient;
pub use error::{BuildError, CallError, Refused, Unavailable};
pub use request::{Answer, IDEMPOTENCY_KEY, Request};
pub use reqwest::{Method, StatusCode, Url, header};
pub use settings::{Protocol, ProviderSettings};

#[doc(hidden)]
pub use tracing as __tracing;

/// The client span of one provider call, named `$name`, with the fields
/// the client records (the answer's status, the call's outcome, an error
/// status) and the OpenTelemetry client conventions, plus any fields of
/// the caller's own after the request:
///
/// ```no_run
/// # use paystream_provider_client::{Method, ProviderClient, call_span};
/// # fn example(aml: &ProviderClient) {
/// let request = aml.request(Method::POST, &["v1", "screen"]);
/// let span = call_span!("aml.screen", request, party.role = "DEBTOR");
/// let request = request.in_span(span);
/// # }
/// ```
#[macro_export]
macro_rules! call_span {
    ($name:literal, $request:expr $(, $($fields:tt)+)?) => {
        $crate::__tracing::info_span!(
            $name,
            otel.kind = "client",
            peer.service = $request.provider(),
            http.request.method = $request.method().as_str(),
            url.path = $request.url().path(),
            http.response.status_code = $crate::__tracing::field::Empty,
            provider.outcome = $crate::__tracing::field::Empty,
            otel.status_code = $crate::__tracing::field::Empty,
            $($($fields)+)?
        )
    };
}
