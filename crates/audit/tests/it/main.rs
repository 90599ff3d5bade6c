//! audit's integration tests: the real broker, registry and PostgreSQL, a
//! fresh database and topic prefix per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod checkpoints;
mod crash;
mod live;
mod log;
mod stand;
mod tamper;
mod timeline;
