//! The bus runtime's integration tests, in one binary: against the dev
//! broker (nisshi), the real PostgreSQL and an in-process schema registry,
//! except where librdkafka's mock cluster stands in for a cluster nisshi
//! cannot be (broker faults, Kafka transactions). The crash tests run the
//! `bus-test-consumer` binary as a process so they can kill it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker_faults;
mod common;
mod crash;
mod dead_letters;
mod effects;
mod multi_topic;
mod ordering;
mod outbox;
mod pool;
mod propagation;
mod replay;
mod transactions;
