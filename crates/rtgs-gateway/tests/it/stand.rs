//! rtgs-gateway on a slice of the pipeline: its topics under a prefix of
//! their own, a schema registry, a fresh database, the sandbox playing the
//! rail (and nothing else) on a free port, and the gateway in-process or as
//! a process to kill, always on the port the rail calls back.

use std::collections::HashMap;
use std::time::Duration;

use paystream_bus::RegistryConfig;
use paystream_contract::{AccountDebited, Event, Topic, samples};
use paystream_rtgs_gateway::Config;
use paystream_rtgs_gateway::api::CALLBACK_PATH;
use paystream_sandbox::rtgs::{Rail, RailReport};
use paystream_sandbox::{Control, Provider};
use paystream_service_kit::Running;
use paystream_testkit::pipeline::Pipeline;
use paystream_testkit::{TestDatabase, free_port, fresh_database, wait_until};
use sqlx::PgPool;
use tokio::process::Child;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(60);
pub const PARTITIONS: i32 = 3;
pub const SECRET: &str = "test-rail-secret";
/// A creditor account the rail always rejects (AC04).
pub const CLOSED: &str = "FR7630006000011234567890189";

pub const TOPICS: [Topic; 4] = [
    Topic::AccountDebited,
    Topic::RtgsSubmitted,
    Topic::RtgsSettled,
    Topic::RtgsRejected,
];

pub struct Stand {
    pub pipeline: Pipeline,
    pub database: TestDatabase,
    pub pool: PgPool,
    pub rail: Rail,
    /// The rail's HTTP behaviour (outage, latency).
    pub rail_http: Control,
    pub rail_url: String,
    /// Where the gateway listens and the rail calls back.
    pub port: u16,
    sandbox: CancellationToken,
}

impl Drop for Stand {
    fn drop(&mut self) {
        self.sandbox.cancel();
    }
}

impl Stand {
    /// Topics, a database and the rail behaving as `rail` says; no gateway yet.
    pub async fn new(label: &str, rail: &str) -> Self {
        let pipeline = Pipeline::new(label, &TOPICS, PARTITIONS).await;
        let database = fresh_database().await;
        let pool = PgPool::connect(&database.url).await.unwrap();
        let mut config = paystream_sandbox::Config::local();
        config.providers = vec![Provider::Rtgs];
        config.rtgs_rail = rail.parse().unwrap();
        config.rtgs_callback_secret = SECRET.to_owned();
        config.rtgs_closed_accounts = vec![CLOSED.to_owned()];
        let server = paystream_sandbox::Server::build(&config).await.unwrap();
        let rail = server.rail().unwrap();
        let rail_http = server.control(paystream_sandbox::RTGS).unwrap();
        let rail_url = format!("http://{}/rtgs", server.local_addr());
        let sandbox = CancellationToken::new();
        tokio::spawn(server.run(sandbox.clone()));
        let port = free_port();
        rail.set_callback_url(Some(format!("http://127.0.0.1:{port}{CALLBACK_PATH}")));
        Self {
            pipeline,
            database,
            pool,
            rail,
            rail_http,
            rail_url,
            port,
            sandbox,
        }
    }

    /// Test pacing: callbacks missed are asked for after half a second, an
    /// unreachable rail is tried again within a second. The rail call itself
    /// gets five seconds: with both cores loaded (CI runs suites side by side)
    /// a 20 ms settlement has been seen to outlast one second, and the resend
    /// under the same key would then count as a second submission.
    pub fn args(&self) -> Vec<String> {
        [
            ("--listen", format!("127.0.0.1:{}", self.port)),
            ("--database-url", self.database.url.clone()),
            ("--rail-url", self.rail_url.clone()),
            ("--rail-callback-secret", SECRET.to_owned()),
            ("--rail-timeout-ms", "5000".to_owned()),
            ("--rail-attempts", "1".to_owned()),
            ("--poll-after-ms", "500".to_owned()),
            ("--retry-max-ms", "1000".to_owned()),
            ("--scan-ms", "100".to_owned()),
            ("--schema-registry-url", self.pipeline.registry.url.clone()),
            ("--consumer-retry-schedule", "50ms,100ms".to_owned()),
        ]
        .into_iter()
        .flat_map(|(name, value)| [name.to_owned(), value])
        .chain(["--schema-auto-register".to_owned()])
        .collect()
    }

    pub fn config(&self) -> Config {
        let mut args = vec!["test".to_owned()];
        args.extend(self.args());
        let mut config = <Defaults as clap::Parser>::parse_from(args).config;
        config.kafka = self.pipeline.kafka.clone();
        config.registry = RegistryConfig::new(&self.pipeline.registry.url).auto_register();
        config
    }

    /// The gateway in-process; it stops when the handle drops.
    pub async fn start(&self) -> Running {
        self.start_with(self.config()).await
    }

    pub async fn start_with(&self, config: Config) -> Running {
        paystream_rtgs_gateway::build(&config)
            .await
            .unwrap()
            .start()
    }

    /// The gateway's binary as a process, so a test can SIGKILL it.
    pub fn spawn(&self) -> Child {
        self.pipeline
            .command(env!("CARGO_BIN_EXE_rtgs-gateway"))
            .arg("serve")
            .args(self.args())
            .spawn()
            .unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn send(&self, events: Vec<AccountDebited>) {
        self.pipeline.producer.send_all(events).await.unwrap();
    }

    /// Every event on a topic now, decoded.
    pub async fn events<E: Event>(&self) -> Vec<E> {
        self.pipeline.events(PARTITIONS).await
    }

    /// Waits for at least `count` events on a topic.
    pub async fn read<E: Event>(&self, count: usize) -> Vec<E> {
        wait_until(WAIT, "events on the topic", || async {
            let events = self.events::<E>().await;
            (events.len() >= count).then_some(events)
        })
        .await
    }

    /// Submissions per state.
    pub async fn states(&self) -> HashMap<String, i64> {
        sqlx::query_as("SELECT state, count(*) FROM rtgs_submissions GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    pub async fn state_of(&self, payment_id: Uuid) -> String {
        sqlx::query_scalar("SELECT state FROM rtgs_submissions WHERE payment_id = $1")
            .bind(payment_id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Waits until `count` submissions have an outcome and the outbox is empty.
    pub async fn await_resolved(&self, count: i64, within: Duration) {
        wait_until(
            within,
            "every submission resolved and published",
            || async {
                let resolved: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM rtgs_submissions WHERE state IN ('SETTLED', 'REJECTED')",
                )
                .fetch_one(&self.pool)
                .await
                .ok()?;
                let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM bus_outbox")
                    .fetch_one(&self.pool)
                    .await
                    .ok()?;
                (resolved >= count && pending == 0).then_some(())
            },
        )
        .await;
    }

    /// Waits until the consumer has processed `count` input events.
    pub async fn await_processed(&self, count: i64) {
        paystream_testkit::await_processed(&self.pool, count, WAIT).await;
    }

    pub fn report(&self) -> RailReport {
        self.rail.report()
    }
}

#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    config: Config,
}

/// A debited credit transfer under fresh ids, to a creditor the rail settles.
pub fn debited() -> AccountDebited {
    let mut debited = samples::account_debited();
    debited.envelope = paystream_contract::Envelope::first(
        format!("corr-{}", Uuid::new_v4().simple()),
        "test",
        "cbs-debit",
    );
    debited.payment_id = Uuid::now_v7();
    debited.uetr = Some(Uuid::new_v4().to_string());
    debited.posting_id = Uuid::now_v7();
    debited
}

/// The same to the creditor account the rail rejects.
pub fn debited_to_closed_account() -> AccountDebited {
    let mut debited = debited();
    if let Some(creditor) = debited.creditor.as_mut() {
        creditor.account = CLOSED.to_owned();
    }
    debited
}
