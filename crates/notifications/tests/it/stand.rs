//! notifications on a slice of the pipeline: its topics under a prefix of
//! their own, a registry, a fresh database with contacts loaded, the
//! sandbox playing the provider (and nothing else), and the service
//! in-process or as a process to kill.

use std::time::Duration;

use paystream_bus::RegistryConfig;
use paystream_contract::{Event, Topic, samples};
use paystream_notifications::{Config, DatabaseArgs};
use paystream_sandbox::notify::{Notify, NotifyReport};
use paystream_sandbox::{Control, Provider};
use paystream_service_kit::Running;
use paystream_testkit::pipeline::Pipeline;
use paystream_testkit::{TestDatabase, fresh_database, wait_until};
use sqlx::PgPool;
use tokio::process::Child;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(60);
pub const PARTITIONS: i32 = 3;

/// A customer reachable by SMS and e-mail, and their card.
pub const BOTH: &str = "GB82WEST12345698765432";
pub const CARD: &str = "4821337";
/// A customer with no contact on file.
pub const NOBODY: &str = "GB29NWBK60161331926819";

pub const TOPICS: [Topic; 6] = [
    Topic::PaymentRejected,
    Topic::AccountDebited,
    Topic::RtgsSettled,
    Topic::AccountDebitReversed,
    Topic::CardTransactionReceived,
    Topic::NotificationSent,
];

pub struct Stand {
    pub pipeline: Pipeline,
    pub database: TestDatabase,
    pub pool: PgPool,
    pub provider: Notify,
    pub provider_http: Control,
    pub provider_url: String,
    sandbox: CancellationToken,
}

impl Drop for Stand {
    fn drop(&mut self) {
        self.sandbox.cancel();
    }
}

impl Stand {
    /// Topics, a database with `contacts` loaded, and the provider behaving
    /// as `knobs` says and remembering keys for `window`.
    pub async fn new(label: &str, contacts: &str, knobs: &str, window: Duration) -> Self {
        let pipeline = Pipeline::new(label, &TOPICS, PARTITIONS).await;
        let database = fresh_database().await;
        let pool = paystream_notifications::connect(&DatabaseArgs {
            url: database.url.clone(),
        })
        .await
        .unwrap();
        paystream_notifications::store::load_contacts(&pool, contacts)
            .await
            .unwrap();
        let mut config = paystream_sandbox::Config::local();
        config.providers = vec![Provider::Notify];
        config.notify_provider = knobs.parse().unwrap();
        config.notify_idempotency_window = window;
        let server = paystream_sandbox::Server::build(&config).await.unwrap();
        let provider = server.notify().unwrap();
        let provider_http = server.control(paystream_sandbox::NOTIFY).unwrap();
        let provider_url = format!("http://{}/notify", server.local_addr());
        let sandbox = CancellationToken::new();
        tokio::spawn(server.run(sandbox.clone()));
        Self {
            pipeline,
            database,
            pool,
            provider,
            provider_http,
            provider_url,
            sandbox,
        }
    }

    /// Test pacing: one-second calls, tries again within a second.
    pub fn args(&self) -> Vec<String> {
        [
            ("--listen", "127.0.0.1:0".to_owned()),
            ("--database-url", self.database.url.clone()),
            ("--provider-url", self.provider_url.clone()),
            ("--provider-timeout-ms", "1000".to_owned()),
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

    pub async fn start_with(&self, config: Config) -> Running {
        paystream_notifications::build(&config)
            .await
            .unwrap()
            .start()
    }

    pub async fn start(&self) -> Running {
        self.start_with(self.config()).await
    }

    /// The binary as a process, so a test can SIGKILL it.
    pub fn spawn(&self) -> Child {
        self.pipeline
            .command(env!("CARGO_BIN_EXE_notifications"))
            .arg("serve")
            .args(self.args())
            .spawn()
            .unwrap()
    }

    pub async fn send<E: Event>(&self, events: Vec<E>) {
        self.pipeline.producer.send_all(events).await.unwrap();
    }

    pub async fn events<E: Event>(&self) -> Vec<E> {
        self.pipeline.events(PARTITIONS).await
    }

    /// Notifications in `state`, or none while the schema is not there yet.
    pub async fn count(&self, state: &str) -> Option<i64> {
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE state = $1")
            .bind(state)
            .fetch_one(&self.pool)
            .await
            .ok()
    }

    /// Waits until `count` notifications are sent and announced.
    pub async fn await_sent(&self, count: i64, within: Duration) {
        wait_until(within, "the notifications sent and announced", || async {
            let sent = self.count("SENT").await?;
            let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM bus_outbox")
                .fetch_one(&self.pool)
                .await
                .ok()?;
            (sent >= count && pending == 0).then_some(())
        })
        .await;
    }

    pub async fn await_processed(&self, count: i64) {
        paystream_testkit::await_processed(&self.pool, count, WAIT).await;
    }

    pub fn report(&self) -> NotifyReport {
        self.provider.report()
    }
}

#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    config: Config,
}

/// `rtgs.settled` for a fresh payment of `debtor`'s.
pub fn settled(debtor: &str) -> paystream_contract::RtgsSettled {
    let mut settled = samples::rtgs_settled();
    settled.envelope = paystream_contract::Envelope::first(
        format!("corr-{}", Uuid::new_v4()),
        "test",
        "rtgs-gateway",
    );
    settled.payment_id = Uuid::now_v7();
    settled.debtor_account = debtor.to_owned();
    settled
}

pub const CONTACTS: &str = "customer_ref,channel,address
GB82WEST12345698765432,SMS,+447700900123
GB82WEST12345698765432,EMAIL,emily.clarke@example.co.uk
4821337,SMS,+447700900123
";
