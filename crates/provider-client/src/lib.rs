//! A client for one external provider over HTTP, shared by every service that
//! calls one (validation's screening providers, the RTGS rail, notifications).
//!
//! One [`ProviderClient`] per provider holds one pooled HTTP client, a cap on
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
