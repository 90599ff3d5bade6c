//! The sandbox over real HTTP, answering from the real reference data
//! (fetched by devstack/fetch-reference-data.sh): one test binary.
// Test helpers fail the test by panicking; that is their error report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod behaviour;
mod notify;
mod providers;
mod rtgs;
mod support;
