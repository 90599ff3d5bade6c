//! Helpers for integration tests. They talk to real infrastructure: the
//! PostgreSQL server and Kafka-protocol broker that `make dev-up` starts, or
//! ones named by environment variables:
//!
//! | variable | default |
//! |---|---|
//! | `PAYSTREAM_TEST_DATABASE_ADMIN_URL` | `postgres://paystream_test:paystream_test@127.0.0.1:5432/postgres` |
//! | `PAYSTREAM_TEST_KAFKA_BOOTSTRAP` | `127.0.0.1:9092` |
//! | `PAYSTREAM_TEST_SCHEMA_REGISTRY_URL` | unset: each test starts its own registry in-process |
//! | `NISSHI_BIN` | `nisshi` on `PATH` |
//!
//! Being test code, these helpers panic with a clear message when the
//! infrastructure is missing: that is the test failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod kafka;
pub mod logs;
pub mod nisshi;
pub mod otlp;
pub mod pipeline;
pub mod procfs;
pub mod profile;

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::Connection;
use tokio_util::sync::CancellationToken;

pub fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The log level (`PAYSTREAM_LOG`) a benchmark gives the service it measures:
/// `info`, as the deployment manifests set it, unless `PAYSTREAM_BENCH_LOG`
/// names another. The lines go to /dev/null: formatting and writing them is
/// the service's CPU; shipping them is the log collector's.
pub fn bench_log_level() -> String {
    env_or("PAYSTREAM_BENCH_LOG", "info")
}

/// A name no other test run uses, for topics, groups and databases.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Polls `probe` until it yields `Some`, or fails the test once `timeout` has
/// passed. The way to wait for a condition without sleeping a fixed time.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Waits until a service's runtime has processed `count` input events
/// (its `bus_processed_events` rows), e.g. to know a repeat was consumed.
pub async fn await_processed(pool: &sqlx::PgPool, count: i64, timeout: Duration) {
    wait_until(timeout, "the inputs processed", || async {
        let processed: i64 = sqlx::query_scalar("SELECT count(*) FROM bus_processed_events")
            .fetch_one(pool)
            .await
            .ok()?;
        (processed >= count).then_some(())
    })
    .await
}

/// A database created for one test, as zero2prod does: tests never share state.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

pub async fn fresh_database() -> TestDatabase {
    let admin_url = env_or(
        "PAYSTREAM_TEST_DATABASE_ADMIN_URL",
        "postgres://paystream_test:paystream_test@127.0.0.1:5432/postgres",
    );
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach PostgreSQL at {admin_url} (is `make dev-up` done?): {e}")
        });
    // The name is generated above from a UUID, never from input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    TestDatabase {
        url: format!("{base}/{name}"),
        name,
    }
}

/// A schema registry for a test: the one named by
/// `PAYSTREAM_TEST_SCHEMA_REGISTRY_URL` (e.g. Confluent's, to prove the tests
/// hold against it too), or our own started in-process on a fresh database.
pub struct TestRegistry {
    pub url: String,
    shutdown: CancellationToken,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestRegistry {
    pub async fn start() -> Self {
        if let Ok(url) = std::env::var("PAYSTREAM_TEST_SCHEMA_REGISTRY_URL") {
            return Self {
                url,
                shutdown: CancellationToken::new(),
            };
        }
        Self::start_own().await
    }

    /// Always our own registry, for tests about its internals (persistence).
    pub async fn start_own() -> Self {
        let database = fresh_database().await;
        Self::start_on(&database.url).await
    }

    pub async fn start_on(database_url: &str) -> Self {
        let config = paystream_schema_registry::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: database_url.to_owned(),
            default_compatibility: paystream_schema_registry::CompatibilityLevel::Backward,
            db_max_connections: 4,
        };
        let server = paystream_schema_registry::Server::build(&config)
            .await
            .unwrap();
        let url = format!("http://{}", server.local_addr());
        let shutdown = CancellationToken::new();
        tokio::spawn(server.run(shutdown.clone()));
        Self { url, shutdown }
    }
}

/// Polls a TCP port until something accepts connections on it.
pub async fn wait_for_port(addr: &str, timeout: Duration) {
    wait_until(
        timeout,
        &format!("{addr} to accept connections"),
        || async { tokio::net::TcpStream::connect(addr).await.ok().map(drop) },
    )
    .await
}

/// A free loopback port, for processes that must be told their port up front.
///
/// Picked below the kernel's ephemeral range (`ip_local_port_range`): a port
/// the kernel hands out for `:0` is also what it gives the next outgoing
/// connection of any test running beside this one, so between this call and
/// the bind a client socket could take it (seen in CI as `AddrInUse`). Below
/// the range only another explicit pick can, and picks are random.
pub fn free_port() -> u16 {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    const LOWEST: u16 = 10_000;
    if ephemeral_from > LOWEST + 1_000 {
        let span = u128::from(ephemeral_from - LOWEST);
        for _ in 0..100 {
            let pick = (uuid::Uuid::new_v4().as_u128() % span) as u16;
            let port = LOWEST + pick;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap()
}
