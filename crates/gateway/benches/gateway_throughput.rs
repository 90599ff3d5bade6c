//! Gateway throughput and the latency of the 202 (`make bench`): clients
//! POST payments as fast as the gateway answers, each 202 given only after
//! the broker acked the event. Runs on a nisshi broker of its own with the
//! memory engine and a fresh PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use paystream_bus::{KafkaConfig, RegistryConfig};
use paystream_gateway::auth::ApiKeys;
use paystream_testkit::nisshi::{Nisshi, Storage};
use paystream_testkit::{TestRegistry, fresh_database, kafka, unique};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const REQUESTS: usize = 10_000;
const CLIENTS: usize = 64;

#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    config: paystream_gateway::Config,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let nisshi = Nisshi::start(Storage::Memory).await;
    let registry = TestRegistry::start().await;
    let kafka =
        KafkaConfig::new(nisshi.bootstrap()).with_topic_prefix(format!("{}.", unique("gbench")));
    for topic in paystream_gateway::topics() {
        kafka::create_topic(&kafka.bootstrap, &kafka.topic(topic), 3).await;
    }
    let database = fresh_database().await;
    let mut config = <Defaults as clap::Parser>::parse_from(["bench"]).config;
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.database_url = database.url;
    config.api_keys = ApiKeys::default().with("bench", "bench-key");
    config.rate_limit_per_client = 1_000_000;
    config.kafka = kafka;
    config.registry = RegistryConfig::new(&registry.url).auto_register();
    let server = paystream_gateway::Server::build(&config).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone()));

    let http = reqwest::Client::new();
    let body = |n: usize| {
        json!({
            "amount": format!("{}.{:02}", 10 + n % 500, n % 100), "currency": "EUR",
            "debtor": { "name": "Emily Clarke", "account": "GB82WEST12345698765432",
                        "agentBic": "NWBKGB2L", "country": "GB" },
            "creditor": { "name": "Camille Moreau", "account": "FR1420041010050500013M02606",
                          "agentBic": "BNPAFRPP", "country": "FR" },
            "clientIp": "81.2.69.142"
        })
    };
    // Warm-up: connections, the schema id cache, the database pool.
    for n in 0..50 {
        http.post(format!("{base}/v1/payments"))
            .bearer_auth("bench-key")
            .header("Idempotency-Key", format!("warm-{n}"))
            .json(&body(n))
            .send()
            .await
            .unwrap();
    }

    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let http = http.clone();
            let base = base.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for n in (client..REQUESTS).step_by(CLIENTS) {
                    let sent = Instant::now();
                    let response = http
                        .post(format!("{base}/v1/payments"))
                        .bearer_auth("bench-key")
                        .header("Idempotency-Key", format!("bench-{n}"))
                        .json(&body(n))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(REQUESTS);
    for client in clients {
        latencies.extend(client.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "\ngateway: POST /v1/payments answered 202 after the broker's ack (nisshi memory engine, PostgreSQL idempotency; {} cores)\n",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!("| requests | concurrent clients | requests/s | p50 | p99 |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {REQUESTS} | {CLIENTS} | {:.0} | {:.1} ms | {:.1} ms |",
        REQUESTS as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
    );
    shutdown.cancel();
}
