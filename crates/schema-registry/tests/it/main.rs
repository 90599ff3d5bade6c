//! The registry's integration tests, one binary: the REST API over HTTP, and
//! Confluent's own Python client against it.
// Test helpers fail the test by panicking; that is their error report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod confluent_client;
