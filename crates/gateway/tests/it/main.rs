//! The gateway over real HTTP, against the dev broker (topics under a prefix
//! of each test's own) or a broker process a test owns, a fresh PostgreSQL
//! database per test and a schema registry. One test binary: one link step,
//! and the helpers in `support` are shared rather than copied.
// Test helpers fail the test by panicking; that is their error report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod batches;
mod delivery;
mod operations;
mod payments;
mod rate_limits;
mod start_up;
mod support;
mod webhooks;
