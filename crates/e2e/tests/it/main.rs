//! Tests that cross services, against the real broker, registry and
//! PostgreSQL, with the sandbox playing the providers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod correlation;
mod fanout;
mod metrics_for_alerts;
mod one_trace;
mod settlement;
