//! The provider client against the sandbox over HTTP: a failing provider
//! opens the circuit, an open circuit refuses without calling, and the
//! circuit closes again once a trial call succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use paystream_sandbox::{AML, Config, Server};
use paystream_validation::providers::{CallError, ProviderClient, ProviderSettings};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn repeated_failures_open_the_circuit_and_a_successful_trial_closes_it() {
    let mut config = Config::local();
    config.aml = "down".parse().unwrap();
    let server = Server::build(&config).await.unwrap();
    let control = server.control(AML).unwrap();
    let base = format!("http://{}/{AML}", server.local_addr());
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone()));

    let client = ProviderClient::new(
        "aml",
        &base,
        ProviderSettings {
            attempts: 1,
            breaker_threshold: 3,
            breaker_cool_down: Duration::from_millis(300),
            ..ProviderSettings::default()
        },
    );
    let body = json!({ "name": "Emily Clarke" });
    let screen = || client.call::<Value>(reqwest::Method::POST, "/v1/screen", Some(&body));

    for _ in 0..3 {
        match screen().await {
            Err(CallError::Unavailable { reason, .. }) => {
                assert!(reason.contains("503"), "{reason}")
            }
            other => panic!("expected the provider's 503, got {other:?}"),
        }
    }
    // The provider is back, but the circuit is open: the client does not call.
    control.set("ok".parse().unwrap());
    match screen().await {
        Err(CallError::Unavailable { reason, .. }) => {
            assert!(reason.contains("circuit open"), "{reason}")
        }
        other => panic!("expected the open circuit to refuse, got {other:?}"),
    }
    // After the cool-down one trial call goes through, and it closes the circuit.
    let answer = paystream_testkit::wait_until(
        Duration::from_secs(10),
        "the circuit to half-open",
        || async { screen().await.ok() },
    )
    .await;
    assert_eq!(answer["riskLevel"], "LOW");
    assert!(screen().await.is_ok());
    shutdown.cancel();
}
