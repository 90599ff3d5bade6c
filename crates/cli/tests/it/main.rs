//! `paystream` against a running pipeline: every service started
//! in-process on the real broker, registry and PostgreSQL, the binary run
//! as an operator runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chaos;
mod lag;
mod trace;
