//! Provisioning's integration tests, one binary.
// Test helpers fail the test by panicking; that is their error report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod provision;
