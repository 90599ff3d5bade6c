//! Consumer processes killed with SIGKILL, or stopped with SIGTERM, and
//! started again: nothing is skipped, the committed offset never passes an
//! unfinished record, and idempotent consumers apply each event once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use paystream_bus::{
    ConsumerSettings, HandlerError, Idempotent, Record, TransactionalHandler, idempotent,
};
use paystream_contract::{PaymentValidated, Topic};
use paystream_testkit::{TestDatabase, fresh_database, unique, wait_until};
use rdkafka::Message;
use sqlx::{PgConnection, PgPool};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn spawn_consumer(env: &common::Env, mode: &str, group: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bus-test-consumer"))
        .args([
            "--mode",
            mode,
            "--group",
            group,
            "--registry-url",
            &env.registry.url,
        ])
        .args(extra)
        .env("PAYSTREAM_KAFKA_BOOTSTRAP", &env.kafka.bootstrap)
        .env("PAYSTREAM_TOPIC_PREFIX", &env.kafka.topic_prefix)
        .env("PAYSTREAM_LOG", "warn")
        // The relay's stdout says when it produced; the others' logs go to
        // the test's output.
        .stdout(if mode == "relay" {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(0)
}

async fn connect(database: &TestDatabase) -> PgPool {
    PgPool::connect(&database.url).await.unwrap()
}

const PARTITIONS: i32 = 3;
const PER_ACCOUNT: i64 = 10;

/// A `record`-mode consumer process working through `accounts` × 10
/// payments on three partitions, observed until it has handled `until`.
struct RecordRun {
    env: common::Env,
    _database: TestDatabase,
    database_url: String,
    pool: PgPool,
    group: String,
    total: i64,
}

impl RecordRun {
    async fn start(accounts: usize, until: i64) -> (Self, Child) {
        let env = common::Env::new(PARTITIONS).await;
        let database = fresh_database().await;
        let group = unique("crash");
        env.producer
            .send_all(common::payments(accounts, PER_ACCOUNT))
            .await
            .unwrap();
        let run = Self {
            database_url: database.url.clone(),
            pool: connect(&database).await,
            _database: database,
            env,
            group,
            total: i64::try_from(accounts).unwrap() * PER_ACCOUNT,
        };
        let child = run.spawn();
        wait_until(Duration::from_secs(60), "records handled", || async {
            (count(&run.pool, "SELECT count(*) FROM handled").await >= until).then_some(())
        })
        .await;
        (run, child)
    }

    fn spawn(&self) -> Child {
        spawn_consumer(
            &self.env,
            "record",
            &self.group,
            &["--database-url", &self.database_url],
        )
    }

    /// Starts the consumer again and lets it handle everything.
    async fn finish(&self) {
        let mut again = self.spawn();
        wait_until(Duration::from_secs(120), "every record handled", || async {
            (count(
                &self.pool,
                "SELECT count(DISTINCT (partition, record_offset)) FROM handled",
            )
            .await
                == self.total)
                .then_some(())
        })
        .await;
        again.kill().await.unwrap();
        self.assert_commits_cover_handled().await;
    }

    /// Every offset below each partition's committed offset was handled.
    async fn assert_commits_cover_handled(&self) {
        let topic = self.env.topic(Topic::PaymentSubmitted);
        for partition in 0..PARTITIONS {
            let Some(committed) = common::committed(&self.env, &self.group, &topic, partition)
            else {
                continue;
            };
            let handled: i64 = sqlx::query_scalar(
                "SELECT count(DISTINCT record_offset) FROM handled WHERE partition = $1 AND record_offset < $2",
            )
            .bind(partition)
            .bind(committed)
            .fetch_one(&self.pool)
            .await
            .unwrap();
            assert_eq!(
                handled, committed,
                "partition {partition}: committed {committed} but only {handled} below it were handled"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_killed_mid_stream_resumes_without_skipping_a_record() {
    let (run, mut first) = RecordRun::start(300, 1_000).await;
    first.kill().await.unwrap();
    run.assert_commits_cover_handled().await;
    let before_restart = count(
        &run.pool,
        "SELECT count(DISTINCT (partition, record_offset)) FROM handled",
    )
    .await;
    assert!(
        before_restart < run.total,
        "killed mid-stream, not after the end"
    );

    run.finish().await;
    let accounts_complete = count(
        &run.pool,
        "SELECT count(*) FROM (SELECT account FROM handled GROUP BY account HAVING count(DISTINCT seq) = 10) full_accounts",
    )
    .await;
    assert_eq!(accounts_complete, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_load_drains_commits_and_exits_zero() {
    let (run, first) = RecordRun::start(200, 300).await;
    let pid = first.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    // The drain deadline is 10 s; the process must be gone soon after.
    let exit = tokio::time::timeout(Duration::from_secs(30), first.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(exit.status.success(), "exit status {:?}", exit.status);
    run.assert_commits_cover_handled().await;

    run.finish().await;
    // A graceful stop commits everything it finished, so nothing ran twice.
    assert_eq!(
        count(&run.pool, "SELECT count(*) FROM handled").await,
        run.total
    );
}

/// The downstream effect: one row per applied event.
struct ApplyValidated;

impl TransactionalHandler<PaymentValidated> for ApplyValidated {
    async fn handle(
        &self,
        record: &Record<PaymentValidated>,
        transaction: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        sqlx::query("INSERT INTO effects (event_id, payment_id) VALUES ($1, $2)")
            .bind(record.event.envelope.event_id)
            .bind(record.event.payment_id)
            .execute(transaction)
            .await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_killed_between_producing_and_committing_has_its_duplicates_applied_once_downstream()
 {
    const TOTAL: usize = 20;
    let env = common::Env::new(1).await;
    let group = unique("relay");
    env.producer.send_all(common::payments(4, 5)).await.unwrap();

    let mut first = spawn_consumer(&env, "relay", &group, &["--hang-after-offset", "9"]);
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "produced 9" {
                return;
            }
        }
        panic!("relay exited before producing offset 9");
    })
    .await
    .expect("relay produced offset 9's output");
    first.kill().await.unwrap();
    let committed = common::committed(&env, &group, &env.topic(Topic::PaymentSubmitted), 0);
    assert!(
        committed.is_none_or(|offset| offset <= 9),
        "offset 9 never finished, yet committed {committed:?}"
    );

    let mut second = spawn_consumer(&env, "relay", &group, &[]);
    let outputs = env.topic(Topic::PaymentValidated);
    wait_until(
        Duration::from_secs(60),
        "relay committed every input",
        || async {
            (common::committed(&env, &group, &env.topic(Topic::PaymentSubmitted), 0)
                == Some(TOTAL as i64))
            .then_some(())
        },
    )
    .await;
    second.kill().await.unwrap();

    let (low, high) = {
        use rdkafka::consumer::{BaseConsumer, Consumer as _};
        let client: BaseConsumer =
            paystream_testkit::kafka::consumer_config(&env.kafka.bootstrap, &unique("w"))
                .create()
                .unwrap();
        client
            .fetch_watermarks(&outputs, 0, Duration::from_secs(10))
            .unwrap()
    };
    let produced = usize::try_from(high - low).unwrap();
    let records = common::read_topic(&env, &outputs, produced).await;
    let mut ids: Vec<String> = records
        .iter()
        .map(|r| common::header(r, "eventId").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), TOTAL, "one distinct eventId per input");
    assert!(
        produced > TOTAL,
        "the crash left duplicates on the output topic ({produced} records)"
    );
    assert!(records.iter().all(|r| r.key().is_some()));

    let database = fresh_database().await;
    let pool = connect(&database).await;
    idempotent::install(&pool).await.unwrap();
    sqlx::query("CREATE TABLE effects (event_id UUID NOT NULL, payment_id UUID NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let downstream = unique("downstream");
    let consumer = env.start::<PaymentValidated, _>(
        ConsumerSettings::new(&downstream),
        Idempotent::new(pool.clone(), ApplyValidated),
    );
    wait_until(
        Duration::from_secs(60),
        "downstream read every output",
        || async {
            (common::committed(&env, &downstream, &outputs, 0) == Some(high)).then_some(())
        },
    )
    .await;
    consumer.stop().await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM effects").await,
        TOTAL as i64
    );
    assert_eq!(
        count(&pool, "SELECT count(DISTINCT payment_id) FROM effects").await,
        TOTAL as i64
    );
}
