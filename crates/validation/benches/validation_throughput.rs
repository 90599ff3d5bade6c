//! Validation throughput with slow providers, printed as a table (`make
//! bench`): the sandbox answers every IP-intelligence and AML call after
//! 100 ms, and each payment needs an IP check and two screenings (debtor and
//! creditor, in parallel), so at least 200 ms of waiting per payment. Runs on
//! a nisshi broker of its own with the memory engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use paystream_bus::{KafkaConfig, Producer, RegistryConfig};
use paystream_contract::{Envelope, Party, PaymentSubmitted, Topic};
use paystream_testkit::nisshi::{Nisshi, Storage};
use paystream_testkit::{TestRegistry, fresh_database, kafka, unique, wait_until};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    config: paystream_validation::Config,
}

struct Scenario {
    name: &'static str,
    partitions: i32,
    payments: usize,
    accounts: usize,
    ordering: &'static str,
    max_in_flight: usize,
    provider_concurrency: usize,
}

fn party(name: &str, account: String, country: &str) -> Party {
    Party {
        name: name.into(),
        account,
        agent_bic: "NWBKGB2L".into(),
        country: country.into(),
        address: None,
        date_of_birth: None,
        national_id: None,
    }
}

fn payment(account: usize) -> PaymentSubmitted {
    let id = Uuid::now_v7();
    PaymentSubmitted {
        envelope: Envelope::first(format!("corr-{id}"), "bench", "bench"),
        payment_id: id,
        end_to_end_id: "BENCH".into(),
        uetr: Uuid::new_v4(),
        amount_minor: 25_000,
        currency: "EUR".into(),
        debtor: party("Emily Clarke", format!("GB00BENCH{account:08}"), "GB"),
        creditor: party("Camille Moreau", "FR1420041010050500013M02606".into(), "FR"),
        corridor_code: "GBR-FRA".into(),
        remittance_information: None,
        client_ip: Some("81.2.69.142".into()),
    }
}

async fn decided(pool: &PgPool) -> usize {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM decisions")
        .fetch_one(pool)
        .await
        .unwrap();
    usize::try_from(count).unwrap()
}

async fn run(
    nisshi: &Nisshi,
    registry: &TestRegistry,
    sandbox_url: &str,
    scenario: &Scenario,
) -> f64 {
    let kafka =
        KafkaConfig::new(nisshi.bootstrap()).with_topic_prefix(format!("{}.", unique("vbench")));
    for topic in [
        Topic::PaymentSubmitted,
        Topic::PaymentValidated,
        Topic::PaymentRejected,
        Topic::AmlAlertRaised,
    ] {
        kafka::create_topic(&kafka.bootstrap, &kafka.topic(topic), scenario.partitions).await;
    }
    let database = fresh_database().await;
    let mut config = <Defaults as clap::Parser>::parse_from(["bench"]).config;
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.database_url = database.url.clone();
    config.ip_intelligence_url = format!("{sandbox_url}/ip-intelligence");
    config.aml_url = format!("{sandbox_url}/aml");
    config.provider_concurrency = scenario.provider_concurrency;
    config.provider_rate = 1_000_000;
    config.consumer.ordering = scenario.ordering.into();
    config.consumer.max_in_flight = scenario.max_in_flight;
    config.kafka = kafka.clone();
    config.registry = RegistryConfig::new(&registry.url).auto_register();

    let producer = Producer::new(&kafka, config.registry.codec().unwrap(), "bench").unwrap();
    let payments: Vec<_> = (0..scenario.payments)
        .map(|n| payment(n % scenario.accounts))
        .collect();
    for chunk in payments.chunks(2_000) {
        producer.send_all(chunk.iter().cloned()).await.unwrap();
    }

    let shutdown = CancellationToken::new();
    let server = paystream_validation::build(&config).await.unwrap();
    let task = tokio::spawn(server.run(shutdown.clone()));
    let pool = PgPool::connect(&database.url).await.unwrap();
    // The clock starts at the first decision, so group join is not counted.
    wait_until(Duration::from_secs(120), "the first decision", || async {
        (decided(&pool).await > 0).then_some(())
    })
    .await;
    let started = Instant::now();
    let from = decided(&pool).await;
    wait_until(Duration::from_secs(1_800), "every decision", || async {
        (decided(&pool).await >= scenario.payments).then_some(())
    })
    .await;
    let rate = (scenario.payments - from) as f64 / started.elapsed().as_secs_f64();
    shutdown.cancel();
    let _ = task.await;
    rate
}

#[tokio::main]
async fn main() {
    let nisshi = Nisshi::start(Storage::Memory).await;
    let registry = TestRegistry::start().await;
    let mut sandbox_config = paystream_sandbox::Config::local();
    sandbox_config.ip_intelligence = "latency=100ms".parse().unwrap();
    sandbox_config.aml = "latency=100ms".parse().unwrap();
    let sandbox = paystream_sandbox::Server::build(&sandbox_config)
        .await
        .unwrap();
    let sandbox_url = format!("http://{}", sandbox.local_addr());
    let shutdown = CancellationToken::new();
    tokio::spawn(sandbox.run(shutdown.clone()));

    let scenarios = [
        Scenario {
            name: "concurrency 1 (1 partition, partition order)",
            partitions: 1,
            payments: 60,
            accounts: 60,
            ordering: "partition",
            max_in_flight: 1,
            provider_concurrency: 256,
        },
        Scenario {
            name: "key-ordered, 3 partitions, 1,000 in flight each",
            partitions: 3,
            payments: 10_000,
            accounts: 1_000,
            ordering: "key",
            max_in_flight: 1_000,
            provider_concurrency: 4_096,
        },
    ];
    println!(
        "\nvalidation throughput (100 ms per provider call, 3 calls per payment; nisshi memory engine; {} cores)\n",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!("| setting | payments | accounts | payments/s |");
    println!("|---|---:|---:|---:|");
    let mut rates = Vec::new();
    for scenario in &scenarios {
        let rate = run(&nisshi, &registry, &sandbox_url, scenario).await;
        rates.push(rate);
        println!(
            "| {} | {} | {} | {:.1} |",
            scenario.name, scenario.payments, scenario.accounts, rate
        );
    }
    println!(
        "\nspeed-up, tuned vs concurrency 1: {:.0}x",
        rates[1] / rates[0]
    );
    shutdown.cancel();
}
