//! The ledger's integration tests, each on a fresh PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod concurrency;
mod holds;
mod races;
mod support;
