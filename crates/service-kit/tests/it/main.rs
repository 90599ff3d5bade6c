//! The service runtime's integration tests, against the real broker,
//! registry and PostgreSQL, with the test service (`paystream-test-service`)
//! run as a process so it can be killed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash;
mod multi_topic;
mod service;

use std::process::Stdio;

use paystream_testkit::TestDatabase;
use paystream_testkit::pipeline::Pipeline;
use sqlx::PgPool;
use tokio::process::{Child, Command};

/// Starts the test service on `pipeline`'s topics and `database`.
pub fn spawn_service(
    pipeline: &Pipeline,
    database: &TestDatabase,
    group: &str,
    topics: &str,
    extra: &[&str],
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_paystream-test-service"))
        .args(extra)
        .args([
            "--group",
            group,
            "--topics",
            topics,
            "--database-url",
            &database.url,
        ])
        .args([
            "--schema-registry-url",
            &pipeline.registry.url,
            "--schema-auto-register",
        ])
        .env("PAYSTREAM_KAFKA_BOOTSTRAP", &pipeline.kafka.bootstrap)
        .env("PAYSTREAM_TOPIC_PREFIX", &pipeline.kafka.topic_prefix)
        .env("PAYSTREAM_CONSUMER_RETRY_SCHEDULE", "50ms,100ms")
        .env("PAYSTREAM_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}
