//! rtgs-gateway's integration tests: the real broker, registry and
//! PostgreSQL, and the sandbox's rail over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod callbacks;
mod crash;
mod flow;
mod outage;
mod stand;
