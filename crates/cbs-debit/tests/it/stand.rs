//! cbs-debit on a slice of the pipeline: the contract's topics under a
//! prefix of its own, a schema registry, a fresh ledger database with
//! accounts loaded, and the service in-process or as a process to kill.

use std::time::Duration;

use paystream_bus::RegistryConfig;
use paystream_cbs_debit::operator::{connect, load_accounts_text};
use paystream_cbs_debit::{Config, DatabaseArgs};
use paystream_contract::{Event, Topic, samples};
use paystream_service_kit::Running;
use paystream_testkit::pipeline::Pipeline;
use paystream_testkit::{TestDatabase, fresh_database, wait_until};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use sqlx::PgPool;
use tokio::process::Child;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(60);
pub const PARTITIONS: i32 = 3;

/// The topics the ledger reads and writes.
pub const TOPICS: [Topic; 6] = [
    Topic::PaymentValidated,
    Topic::PaymentRejected,
    Topic::AccountDebited,
    Topic::AccountDebitReversed,
    Topic::RtgsSettled,
    Topic::RtgsRejected,
];

pub struct Stand {
    pub pipeline: Pipeline,
    pub database: TestDatabase,
    pub pool: PgPool,
}

impl Stand {
    /// Topics, registry and a migrated ledger with `accounts` loaded; no
    /// service yet.
    pub async fn new(label: &str, accounts: &str) -> Self {
        let mut topics = TOPICS.to_vec();
        topics.push(Topic::CardTransactionReceived);
        let pipeline = Pipeline::new(label, &topics, PARTITIONS).await;
        let database = fresh_database().await;
        let pool = connect(&DatabaseArgs {
            url: database.url.clone(),
        })
        .await
        .unwrap();
        load_accounts_text(&pool, accounts).await.unwrap();
        Self {
            pipeline,
            database,
            pool,
        }
    }

    pub fn config(&self) -> Config {
        let mut config = <Defaults as clap::Parser>::parse_from([
            "test",
            "--consumer-retry-schedule",
            "50ms,100ms",
        ])
        .config;
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.database = DatabaseArgs {
            url: self.database.url.clone(),
        };
        config.kafka = self.pipeline.kafka.clone();
        config.registry = RegistryConfig::new(&self.pipeline.registry.url).auto_register();
        config
    }

    /// The service in-process; it stops when the handle drops.
    pub async fn start(&self) -> Running {
        paystream_cbs_debit::build(&self.config())
            .await
            .unwrap()
            .start()
    }

    /// The service's binary as a process, so a test can SIGKILL it.
    pub fn spawn(&self) -> Child {
        self.pipeline
            .command(env!("CARGO_BIN_EXE_cbs-debit"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--database-url", &self.database.url])
            .args([
                "--schema-registry-url",
                &self.pipeline.registry.url,
                "--schema-auto-register",
            ])
            .env("PAYSTREAM_CONSUMER_RETRY_SCHEDULE", "50ms,100ms")
            .spawn()
            .unwrap()
    }

    pub async fn send<E: Event>(&self, event: E) {
        self.pipeline.producer.send(event).await.unwrap();
    }

    /// Reads `count` events of a topic, decoded, waiting for them.
    pub async fn read<E: Event>(&self, count: usize) -> Vec<E> {
        let records = wait_until(WAIT, "events on the topic", || async {
            let records = self.pipeline.read_all(E::TOPIC, PARTITIONS).await;
            (records.len() >= count).then_some(records)
        })
        .await;
        let mut events = Vec::new();
        for record in records {
            events.push(self.decode::<E>(&record).await);
        }
        events
    }

    pub async fn decode<E: Event>(&self, record: &OwnedMessage) -> E {
        self.pipeline.codec.decode(record.payload()).await.unwrap()
    }

    /// Records ever written to a topic.
    pub async fn written(&self, topic: Topic) -> usize {
        self.pipeline.read_all(topic, PARTITIONS).await.len()
    }

    /// (debits_pending, debits_posted, credits_pending, credits_posted)
    pub async fn balances(&self, account: &str) -> (i64, i64, i64, i64) {
        sqlx::query_as(
            "SELECT debits_pending, debits_posted, credits_pending, credits_posted \
             FROM accounts WHERE id = $1",
        )
        .bind(account)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// Waits until the account's balances are `expected`.
    pub async fn await_balances(&self, account: &str, expected: (i64, i64, i64, i64)) {
        wait_until(WAIT, "the account's balances", || async {
            (self.balances(account).await == expected).then_some(())
        })
        .await;
    }

    pub async fn transfers_of(&self, payment_id: Uuid) -> Vec<String> {
        sqlx::query_scalar("SELECT kind FROM transfers WHERE payment_id = $1 ORDER BY created_at")
            .bind(payment_id)
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    pub async fn assert_clean(&self) {
        let report = paystream_cbs_debit::check(&self.pool).await.unwrap();
        assert!(report.is_clean(), "ledger check failed:\n{report}");
    }
}

#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    config: Config,
}

/// A validated payment of `amount_minor` from `debtor`, under fresh ids.
pub fn validated(
    debtor: &str,
    amount_minor: i64,
    currency: &str,
) -> paystream_contract::PaymentValidated {
    let mut payment = samples::payment_validated();
    payment.payment_id = Uuid::now_v7();
    payment.uetr = Uuid::new_v4();
    payment.debtor.account = debtor.to_owned();
    payment.amount_minor = amount_minor;
    payment.currency = currency.to_owned();
    payment
}
