//! The ledger's integration tests, each on a fresh PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod concurrency;
mod crash;
mod holds;
mod operator;
mod races;
mod service;
mod stand;
mod support;
