//! The runtime's HTTP surface: health, cached readiness that names no
//! internals, metrics; and a service stopping as a whole.

use std::time::Duration;

use paystream_bus::{ConsumerArgs, KafkaConfig, RegistryConfig};
use paystream_service_kit::Service;
use paystream_testkit::{TestRegistry, fresh_database, kafka, wait_until};

static NO_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./test-service/migrations");

async fn status(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_service_answers_health_readiness_and_metrics_and_stops_on_request() {
    let registry = TestRegistry::start().await;
    let database = fresh_database().await;
    let service = Service::builder("it-service", "127.0.0.1:0".parse().unwrap())
        .database(&database.url, &NO_MIGRATIONS)
        .kafka(
            &KafkaConfig::new(kafka::bootstrap()),
            &RegistryConfig::new(&registry.url),
            &ConsumerArgs::default(),
        )
        .build()
        .await
        .unwrap();
    let running = service.start();
    let base = running.url();
    assert_eq!(
        status(&format!("{base}/healthz")).await,
        (200, "ok".to_owned())
    );
    let body = wait_until(Duration::from_secs(20), "ready", || async {
        let (code, body) = status(&format!("{base}/readyz")).await;
        (code == 200).then_some(body)
    })
    .await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"broker": "ok", "schemaRegistry": "ok", "database": "ok"})
    );
    let (code, metrics) = status(&format!("{base}/metrics")).await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("# TYPE paystream_bus_outbox_oldest_pending_seconds gauge"),
        "the runtime's metrics are there before anything moved: {metrics}"
    );
    tokio::time::timeout(Duration::from_secs(20), running.stop())
        .await
        .expect("stops within the drain deadline")
        .unwrap();
}

#[tokio::test]
async fn readiness_says_unavailable_without_naming_why() {
    let registry = TestRegistry::start().await;
    let database = fresh_database().await;
    let dead_broker = format!("127.0.0.1:{}", paystream_testkit::free_port());
    let service = Service::builder("it-unready", "127.0.0.1:0".parse().unwrap())
        .database(&database.url, &NO_MIGRATIONS)
        .kafka(
            &KafkaConfig::new(&dead_broker),
            &RegistryConfig::new(&registry.url),
            &ConsumerArgs::default(),
        )
        .build()
        .await
        .unwrap();
    let running = service.start();
    let base = running.url();
    let body = wait_until(Duration::from_secs(20), "the first checks", || async {
        let (code, body) = status(&format!("{base}/readyz")).await;
        (code == 503 && !body.contains("starting")).then_some(body)
    })
    .await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"broker": "unavailable", "schemaRegistry": "ok", "database": "ok"}),
        "no addresses or error text in the answer"
    );
    running.stop().await.unwrap();
}
