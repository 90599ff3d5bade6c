//! The notification service's integration tests: the real broker,
//! registry and PostgreSQL, and the sandbox's provider over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash;
mod flow;
mod stand;
mod window;
