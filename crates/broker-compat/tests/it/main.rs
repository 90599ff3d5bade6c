//! The broker compatibility suite, one binary; the crate's documentation says
//! what each module proves.
// Test helpers fail the test by panicking; that is their error report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod mock_cluster;
mod nisshi_api;
mod nisshi_durability;
