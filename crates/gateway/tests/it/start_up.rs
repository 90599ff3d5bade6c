//! What the gateway refuses to start with.

use paystream_gateway::Server;
use paystream_gateway::auth::{ApiKeys, DEV_API_KEY};
use paystream_testkit::logs::Captured;
use reqwest::StatusCode;

use crate::support::{payment, spawn_app_with, test_config};

/// The development key is published in the README: a gateway others can
/// reach must not accept it, and an empty secret must not make it do so.
#[tokio::test]
async fn without_api_keys_a_gateway_reachable_beyond_loopback_refuses_to_start() {
    let (mut config, _registry) = test_config().await;
    config.api_keys = ApiKeys::default();
    config.listen = "0.0.0.0:0".parse().unwrap();
    let Err(error) = Server::build(&config).await else {
        panic!("a gateway on 0.0.0.0 without API keys started, accepting `{DEV_API_KEY}`");
    };
    let message = error.to_string();
    for hint in ["PAYSTREAM_GATEWAY_API_KEYS", "0.0.0.0"] {
        assert!(message.contains(hint), "`{hint}` not in: {message}");
    }
}

#[tokio::test]
async fn without_api_keys_a_loopback_gateway_accepts_the_development_key_and_says_so() {
    let (mut config, registry) = test_config().await;
    config.api_keys = ApiKeys::default();
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let app = {
        // Server::build runs on this thread (a current-thread runtime).
        let _guard = tracing::subscriber::set_default(subscriber);
        spawn_app_with(config, registry).await
    };
    assert!(
        logs.text().contains("WARN") && logs.text().contains(DEV_API_KEY),
        "no warning naming the development key: {}",
        logs.text()
    );
    let response = app
        .http
        .post(format!("{}/v1/payments", app.base))
        .bearer_auth(DEV_API_KEY)
        .header("Idempotency-Key", "dev-1")
        .json(&payment())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_development_cluster_may_ask_for_the_development_key_beyond_loopback() {
    let (mut config, registry) = test_config().await;
    config.api_keys = ApiKeys::default();
    config.listen = "0.0.0.0:0".parse().unwrap();
    config.allow_dev_key = true;
    let app = spawn_app_with(config, registry).await;
    let port = app.base.rsplit(':').next().unwrap();
    let response = app
        .http
        .post(format!("http://127.0.0.1:{port}/v1/payments"))
        .bearer_auth(DEV_API_KEY)
        .header("Idempotency-Key", "dev-2")
        .json(&payment())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

/// Settings that would let the producer deliver after the client was told
/// otherwise are refused, naming both.
#[tokio::test]
async fn a_producer_timeout_longer_than_the_answer_is_refused_at_start_up() {
    let (mut config, _registry) = test_config().await;
    config.accept_timeout_ms = 5_000;
    config.kafka.ack_timeout_ms = Some(10_000);
    let Err(error) = Server::build(&config).await else {
        panic!("started with a producer timeout of 10 s and an answer after 5 s");
    };
    let message = error.to_string();
    for hint in [
        "PAYSTREAM_KAFKA_ACK_TIMEOUT_MS",
        "PAYSTREAM_GATEWAY_ACK_TIMEOUT_MS",
    ] {
        assert!(message.contains(hint), "`{hint}` not in: {message}");
    }
}
