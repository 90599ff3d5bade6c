//! `/readyz`'s checks against the real broker, registry and PostgreSQL, and
//! against addresses where nothing answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use paystream_bus::{Readiness, RegistryConfig};
use paystream_testkit::{free_port, fresh_database};
use serde_json::json;
use sqlx::PgPool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_while_broker_registry_and_database_all_answer() {
    let env = common::Env::new(1).await;
    let database = fresh_database().await;
    let pool = PgPool::connect(&database.url).await.unwrap();
    let registry = RegistryConfig::new(&env.registry.url);

    let up = Readiness::new(&env.kafka, &registry, pool.clone())
        .unwrap()
        .check()
        .await;
    assert!(up.ready, "{}", up.checks);
    assert_eq!(
        up.checks,
        json!({ "broker": "ok", "schemaRegistry": "ok", "database": "ok" })
    );

    let mut no_broker = env.kafka.clone();
    no_broker.bootstrap = format!("127.0.0.1:{}", free_port());
    let no_registry = RegistryConfig::new(format!("http://127.0.0.1:{}", free_port()));
    let down = Readiness::new(&no_broker, &no_registry, pool)
        .unwrap()
        .check()
        .await;
    assert!(!down.ready);
    assert_ne!(down.checks["broker"], "ok", "{}", down.checks);
    assert_ne!(down.checks["schemaRegistry"], "ok", "{}", down.checks);
    assert_eq!(down.checks["database"], "ok");
}
