//! The provider client against the sandbox over real HTTP: one test binary.
// Test helpers fail the test by panicking; that is their error report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod breaker;
mod building;
mod proactive_limits;
mod requests;
mod support;
mod throttling;
