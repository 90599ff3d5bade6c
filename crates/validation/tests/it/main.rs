//! The validation service's integration tests: the service started through
//! its `build` on the real broker, registry and PostgreSQL, with the sandbox
//! playing the IP-intelligence and AML providers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod decisions;
mod provider_limits;
mod support;
