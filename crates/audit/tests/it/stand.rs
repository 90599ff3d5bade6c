//! The audit on a slice of the pipeline: every contract topic under a
//! prefix of its own, a schema registry, a fresh database, a consumer group
//! of its own, and the audit in-process or as a process to kill.

use std::time::Duration;

use paystream_audit::Config;
use paystream_bus::{Producer, RegistryConfig};
use paystream_contract::Topic;
use paystream_service_kit::Running;
use paystream_testkit::pipeline::Pipeline;
use paystream_testkit::{TestDatabase, free_port, fresh_database, unique, wait_until};
use sqlx::PgPool;
use tokio::process::{Child, Command};

pub const WAIT: Duration = Duration::from_secs(60);
pub const PARTITIONS: i32 = 3;

pub struct Stand {
    pub pipeline: Pipeline,
    pub database: TestDatabase,
    pub pool: PgPool,
    pub group: String,
    pub port: u16,
}

impl Stand {
    /// Every contract topic, a database; no audit yet.
    pub async fn new(label: &str) -> Self {
        let pipeline = Pipeline::new(label, &Topic::ALL, PARTITIONS).await;
        let database = fresh_database().await;
        let pool = PgPool::connect(&database.url).await.unwrap();
        Self {
            pipeline,
            database,
            pool,
            group: unique("audit"),
            port: free_port(),
        }
    }

    /// Test pacing: new dead-letter topics found within half a second, a
    /// killed member's partitions handed over within seconds.
    pub fn args(&self) -> Vec<String> {
        [
            ("--listen", format!("127.0.0.1:{}", self.port)),
            ("--database-url", self.database.url.clone()),
            ("--group", self.group.clone()),
            ("--topic-refresh-ms", "500".to_owned()),
            ("--max-connections", "8".to_owned()),
            ("--schema-registry-url", self.pipeline.registry.url.clone()),
            ("--consumer-retry-schedule", "50ms,100ms".to_owned()),
            ("--kafka-session-timeout-ms", "6000".to_owned()),
            // The log alone: analytics' own dead letters would be records
            // of the log's too.
            ("--analytics", "false".to_owned()),
        ]
        .into_iter()
        .flat_map(|(name, value)| [name.to_owned(), value])
        .collect()
    }

    pub fn config(&self) -> Config {
        let mut args = vec!["test".to_owned()];
        args.extend(self.args());
        let mut config = <Defaults as clap::Parser>::parse_from(args).config;
        config.kafka = self.pipeline.kafka.clone();
        config.kafka.session_timeout_ms = 6_000;
        config.registry = RegistryConfig::new(&self.pipeline.registry.url);
        config
    }

    /// The audit in-process; it stops when the handle drops.
    pub async fn start(&self) -> Running {
        self.start_with(self.config()).await
    }

    pub async fn start_with(&self, config: Config) -> Running {
        paystream_audit::build(&config).await.unwrap().start()
    }

    /// The audit's binary as a process, so a test can SIGKILL it.
    pub fn spawn(&self, extra: &[&str]) -> Child {
        self.pipeline
            .command(env!("CARGO_BIN_EXE_audit"))
            .arg("serve")
            .args(self.args())
            .args(extra)
            .spawn()
            .unwrap()
    }

    /// `audit verify` as an operator runs it: exit status and output.
    pub async fn verify_binary(&self, extra: &[&str]) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_audit"))
            .args(["verify", "--database-url", &self.database.url])
            .args(extra)
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.success(), text)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A producer that names itself `name` in the events it writes.
    pub fn producer(&self, name: &str) -> Producer {
        Producer::new(&self.pipeline.kafka, self.pipeline.codec.clone(), name).unwrap()
    }

    /// Entries in the log; none while the audit has not migrated yet.
    pub async fn entries(&self) -> Option<i64> {
        sqlx::query_scalar("SELECT count(*) FROM audit_entries")
            .fetch_one(&self.pool)
            .await
            .ok()
    }

    /// Waits for at least `count` entries.
    pub async fn await_entries(&self, count: i64) -> i64 {
        wait_until(WAIT, "entries in the audit log", || async {
            let stored = self.entries().await?;
            (stored >= count).then_some(stored)
        })
        .await
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    config: Config,
}
