//! Consumer processes killed with SIGKILL, or stopped with SIGTERM, and
//! started again: nothing is skipped and the committed offset never passes
//! an unfinished record. (The exactly-once SIGKILL test of a consumer with
//! a database and an outbox is service-kit's.)

use std::collections::HashMap;
use std::time::Duration;

use paystream_contract::Topic;
use paystream_testkit::pipeline::{Pipeline, payments};
use paystream_testkit::{TestDatabase, fresh_database, unique, wait_until};
use sqlx::PgPool;
use tokio::process::{Child, Command};

use crate::common::{self, count};

const PARTITIONS: i32 = 3;
const PER_ACCOUNT: i64 = 10;

/// The `bus-test-consumer` process working through `accounts` × 10
/// payments on three partitions, recording every handling in `handled`.
struct RecordRun {
    pipeline: Pipeline,
    database: TestDatabase,
    pool: PgPool,
    group: String,
    total: i64,
    /// Each partition's end: the offset a consumer that finished commits.
    ends: HashMap<i32, i64>,
}

impl RecordRun {
    /// Starts the consumer and waits until it has handled `until` records.
    async fn start(accounts: usize, until: i64) -> (Self, Child) {
        let pipeline = common::pipeline(PARTITIONS).await;
        let database = fresh_database().await;
        let pool = PgPool::connect(&database.url).await.unwrap();
        // The table the binary writes to, made here so that looking at it
        // before the binary is up is no error.
        sqlx::query(
            "CREATE TABLE handled (
                partition INT NOT NULL, record_offset BIGINT NOT NULL,
                account TEXT NOT NULL, seq BIGINT NOT NULL,
                handled_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())",
        )
        .execute(&pool)
        .await
        .unwrap();
        let deliveries = pipeline
            .producer
            .send_all(payments(accounts, PER_ACCOUNT))
            .await
            .unwrap();
        let mut ends = HashMap::new();
        for delivery in deliveries {
            let end = ends.entry(delivery.partition).or_insert(0);
            *end = (*end).max(delivery.offset + 1);
        }
        let run = Self {
            pipeline,
            database,
            pool,
            group: unique("crash"),
            total: i64::try_from(accounts).unwrap() * PER_ACCOUNT,
            ends,
        };
        let child = run.spawn();
        wait_until(Duration::from_secs(60), "records handled", || async {
            (count(&run.pool, "SELECT count(*) FROM handled").await >= until).then_some(())
        })
        .await;
        (run, child)
    }

    fn spawn(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_bus-test-consumer"))
            .args(["--group", &self.group])
            .args(["--registry-url", &self.pipeline.registry.url])
            .args(["--database-url", &self.database.url])
            .env("PAYSTREAM_KAFKA_BOOTSTRAP", &self.pipeline.kafka.bootstrap)
            .env("PAYSTREAM_TOPIC_PREFIX", &self.pipeline.kafka.topic_prefix)
            .env("PAYSTREAM_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    async fn distinct_handled(&self) -> i64 {
        count(
            &self.pool,
            "SELECT count(DISTINCT (partition, record_offset)) FROM handled",
        )
        .await
    }

    /// Starts the consumer again and lets it handle and commit everything.
    async fn finish(&self) {
        let mut again = self.spawn();
        wait_until(Duration::from_secs(120), "every record handled", || async {
            (self.distinct_handled().await == self.total).then_some(())
        })
        .await;
        wait_until(
            Duration::from_secs(30),
            "every partition committed to its end",
            || async {
                self.ends
                    .iter()
                    .all(|(partition, end)| self.committed(*partition) == Some(*end))
                    .then_some(())
            },
        )
        .await;
        again.kill().await.unwrap();
        self.assert_commits_cover_handled().await;
    }

    fn committed(&self, partition: i32) -> Option<i64> {
        common::committed(
            &self.pipeline,
            &self.group,
            Topic::PaymentSubmitted,
            partition,
        )
    }

    /// Every offset below each partition's committed offset was handled.
    async fn assert_commits_cover_handled(&self) {
        for partition in 0..PARTITIONS {
            // No commit yet promises nothing.
            let Some(committed) = self.committed(partition) else {
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
    assert!(
        run.distinct_handled().await < run.total,
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
