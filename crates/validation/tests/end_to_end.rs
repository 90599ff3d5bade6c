//! From the gateway's 202 to the validation service's decision: the
//! correlationId the client is given is on the validation service's log
//! lines for that payment and on its output event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Pipeline, Setup};
use paystream_contract::PaymentValidated;
use paystream_gateway::auth::ApiKeys;
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;

/// Log lines, as the services write them, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

#[tokio::test]
async fn the_correlation_id_of_the_202_is_on_the_decision_log_lines_and_the_output_event() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(paystream_telemetry::json_layer().with_writer(move || writer.clone()))
        .with(tracing_subscriber::EnvFilter::new("info"));
    // The test runtime is single-threaded: every task of both services runs
    // on this thread and logs through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let pipeline = Pipeline::start(Setup::default()).await;
    let database = paystream_testkit::fresh_database().await;
    let mut gateway_config = <GatewayDefaults as clap::Parser>::parse_from(["test"]).config;
    gateway_config.listen = "127.0.0.1:0".parse().unwrap();
    gateway_config.database_url = database.url;
    gateway_config.api_keys = ApiKeys::default().with("acme", "k");
    gateway_config.kafka = pipeline.kafka.clone();
    gateway_config.registry =
        paystream_bus::RegistryConfig::new(&pipeline.registry.url).auto_register();
    let gateway = paystream_gateway::Server::build(&gateway_config)
        .await
        .unwrap();
    let base = format!("http://{}", gateway.local_addr());
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(gateway.run(shutdown.clone()));

    let response = reqwest::Client::new()
        .post(format!("{base}/v1/payments"))
        .bearer_auth("k")
        .header("Idempotency-Key", "e2e-1")
        .json(&json!({
            "amount": "250.00", "currency": "EUR",
            "debtor": { "name": "Emily Clarke", "account": "GB82WEST12345698765432",
                        "agentBic": "NWBKGB2L", "country": "GB" },
            "creditor": { "name": "Camille Moreau", "account": "FR1420041010050500013M02606",
                          "agentBic": "BNPAFRPP", "country": "FR" },
            "clientIp": "81.2.69.142"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.unwrap();
    let correlation = accepted["correlationId"].as_str().unwrap().to_owned();

    let validated = pipeline.read::<PaymentValidated>(1).await;
    assert_eq!(validated[0].0.envelope.correlation_id, correlation);

    let lines = captured.lines();
    let decided: Vec<&Value> = lines
        .iter()
        .filter(|line| line["message"] == "payment decided")
        .collect();
    assert_eq!(decided.len(), 1, "one decision logged");
    assert_eq!(decided[0]["correlation_id"], correlation.as_str());
    let validation_lines: Vec<&Value> = lines
        .iter()
        .filter(|line| {
            line["target"]
                .as_str()
                .unwrap_or_default()
                .starts_with("paystream_validation")
        })
        // Lines about a record; start-up lines belong to no payment.
        .filter(|line| line.get("span").is_some())
        .collect();
    assert!(!validation_lines.is_empty());
    for line in validation_lines {
        assert_eq!(line["correlation_id"], correlation.as_str(), "{line}");
    }
    shutdown.cancel();
}

#[derive(clap::Parser)]
struct GatewayDefaults {
    #[command(flatten)]
    config: paystream_gateway::Config,
}
