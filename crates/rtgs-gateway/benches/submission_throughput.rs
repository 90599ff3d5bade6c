//! Submission throughput of rtgs-gateway end to end (`make bench`): the rail
//! answers every call after 200 ms and settles 200 ms after accepting, the
//! gateway keeps 1,000 calls in flight. 10,000 debited credit transfers are
//! produced first, then the gateway's binary starts and the clock runs until
//! every submission is SETTLED in its database and its outbox is drained
//! (`rtgs.submitted` and `rtgs.settled` published for every payment).
//!
//! Runs on a nisshi of its own (memory engine), a fresh database on the
//! machine's PostgreSQL, and the sandbox's rail in this process (so its
//! report can be read). The gateway is a process of its own, so the CPU that
//! it, this process (the rail and the schema registry), PostgreSQL and the
//! broker each used during the timed window can be told apart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use paystream_contract::{AccountDebited, Envelope, Topic, samples};
use paystream_rtgs_gateway::api::CALLBACK_PATH;
use paystream_sandbox::Provider;
use paystream_testkit::nisshi::{Nisshi, Storage};
use paystream_testkit::pipeline::Pipeline;
use paystream_testkit::procfs::{broker_pid, clock_ticks, machine, processes, stat};
use paystream_testkit::{free_port, fresh_database};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PAYMENTS: usize = 10_000;
const ACCOUNTS: usize = 1_000;
const PARTITIONS: i32 = 3;
/// Calls to the rail in flight at most (`--rail-concurrency`).
const IN_FLIGHT: usize = 1_000;
/// Every HTTP answer of the rail (acknowledgement, status) takes this long.
const RAIL_HTTP: &str = "latency=200ms";
/// The final status (ACSC, by callback) this long after acceptance.
const RAIL: &str = "settle=200ms";
const SECRET: &str = "bench-rail-secret";
const POLL: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_secs(1_800);

/// The topics the gateway reads and writes, as the integration tests' stand.
const TOPICS: [Topic; 4] = [
    Topic::AccountDebited,
    Topic::RtgsSubmitted,
    Topic::RtgsSettled,
    Topic::RtgsRejected,
];

/// A debited credit transfer under fresh ids (as the tests' `debited()`),
/// from the `n`-th of the spread debtor accounts (the partition key).
fn debited(n: usize) -> AccountDebited {
    let mut debited = samples::account_debited();
    debited.envelope = Envelope::first(
        format!("corr-{}", Uuid::new_v4().simple()),
        "bench",
        "cbs-debit",
    );
    debited.payment_id = Uuid::now_v7();
    debited.uetr = Some(Uuid::new_v4().to_string());
    debited.posting_id = Uuid::now_v7();
    let account = format!("BENCH{:07}", n % ACCOUNTS);
    if let Some(debtor) = debited.debtor.as_mut() {
        debtor.account = account.clone();
    }
    debited.account_id = account;
    debited
}

/// (submissions settled, outbox rows not yet published)
async fn progress(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM rtgs_submissions WHERE state = 'SETTLED'), \
                (SELECT count(*) FROM bus_outbox)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The database's own counters (transactions, rows written), from
/// `pg_stat_database`.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
struct DbStats {
    transactions: i64,
    inserted: i64,
    updated: i64,
    deleted: i64,
}

async fn db_stats(pool: &PgPool, name: &str) -> DbStats {
    sqlx::query_as(
        "SELECT (xact_commit + xact_rollback)::int8 AS transactions, tup_inserted AS inserted, \
                tup_updated AS updated, tup_deleted AS deleted \
         FROM pg_stat_database WHERE datname = $1",
    )
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Where the submissions are, once a second.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
struct Stage {
    /// Recorded by the intake (consumed).
    recorded: i64,
    /// Claimed by the sender at least once (sent or being sent).
    sent: i64,
    settled: i64,
    /// Events not yet published.
    outbox: i64,
}

async fn stage(pool: &PgPool) -> Stage {
    sqlx::query_as(
        "SELECT count(*) AS recorded, count(*) FILTER (WHERE attempts > 0) AS sent, \
                count(*) FILTER (WHERE state = 'SETTLED') AS settled, \
                (SELECT count(*) FROM bus_outbox) AS outbox \
         FROM rtgs_submissions",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The pids of the backends connected to the database `name`.
async fn backends(pool: &PgPool, name: &str) -> HashSet<String> {
    sqlx::query_scalar("SELECT pid::text FROM pg_stat_activity WHERE datname = $1")
        .bind(name)
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// What the database's busy backends are doing now, other than this one:
/// on CPU, waiting on a lock, on I/O, or idle in a transaction (waiting for
/// the gateway to send the next statement).
async fn sample_waits(pool: &PgPool, name: &str, waits: &mut BTreeMap<String, i64>) {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT CASE WHEN state = 'idle in transaction' THEN 'idle in transaction (gateway)' \
                     ELSE coalesce(wait_event_type || ':' || wait_event, 'running (CPU)') END, \
                count(*) \
         FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid() \
           AND state IN ('active', 'idle in transaction') \
         GROUP BY 1",
    )
    .bind(name)
    .fetch_all(pool)
    .await
    .unwrap();
    for (what, count) in rows {
        *waits.entry(what).or_default() += count;
    }
}

/// The gateway's binary, as `Stand::args()` starts it, with the benchmark's
/// pacing: 1,000 calls in flight, 5 s per call, a status query only after
/// 30 s without callback.
fn spawn_gateway(
    pipeline: &Pipeline,
    database_url: &str,
    rail_url: &str,
    port: u16,
) -> std::io::Result<Child> {
    let args: Vec<String> = [
        ("--listen", format!("127.0.0.1:{port}")),
        ("--database-url", database_url.to_owned()),
        ("--max-connections", "32".to_owned()),
        ("--rail-url", rail_url.to_owned()),
        ("--rail-callback-secret", SECRET.to_owned()),
        ("--rail-concurrency", IN_FLIGHT.to_string()),
        ("--rail-timeout-ms", "5000".to_owned()),
        ("--rail-attempts", "1".to_owned()),
        ("--poll-after-ms", "30000".to_owned()),
        ("--retry-max-ms", "1000".to_owned()),
        ("--scan-ms", "100".to_owned()),
        ("--schema-registry-url", pipeline.registry.url.clone()),
        ("--consumer-retry-schedule", "50ms,100ms".to_owned()),
    ]
    .into_iter()
    .flat_map(|(name, value)| [name.to_owned(), value])
    .chain(["--schema-auto-register".to_owned()])
    .collect();
    Command::new(env!("CARGO_BIN_EXE_rtgs-gateway"))
        .arg("serve")
        .args(args)
        .env("PAYSTREAM_KAFKA_BOOTSTRAP", &pipeline.kafka.bootstrap)
        .env("PAYSTREAM_TOPIC_PREFIX", &pipeline.kafka.topic_prefix)
        .env("PAYSTREAM_LOG", "warn")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
}

// --- CPU accounting from /proc: paystream_testkit::procfs -------------------

/// CPU used so far, in clock ticks.
#[derive(Clone, Copy)]
struct Cpu {
    gateway: Option<u64>,
    bench: u64,
    postgres: u64,
    broker: Option<u64>,
    /// The whole machine: busy (user, system, interrupts, steal) and iowait.
    machine_busy: u64,
    machine_iowait: u64,
}

impl Cpu {
    fn now(gateway: Option<&str>, broker: Option<&str>) -> Self {
        let bench = stat("self").map_or(0, |(_, own, _)| own);
        // Backends that exit are reaped by the postmaster, whose cutime then
        // holds their CPU: counting it keeps their share in the window.
        let postgres = processes()
            .into_iter()
            .filter(|(_, comm, _, _)| comm == "postgres")
            .map(|(_, _, own, children)| own + children)
            .sum();
        let (machine_busy, machine_iowait) = machine();
        Self {
            gateway: gateway.and_then(stat).map(|(_, own, _)| own),
            bench,
            postgres,
            broker: broker.and_then(stat).map(|(_, own, _)| own),
            machine_busy,
            machine_iowait,
        }
    }

    fn since(self, start: Self) -> Self {
        let minus = |end: Option<u64>, start: Option<u64>| {
            end.zip(start).map(|(end, start)| end.saturating_sub(start))
        };
        Self {
            // The gateway starts inside the window: all it used counts.
            gateway: minus(self.gateway, start.gateway.or(Some(0))),
            bench: self.bench.saturating_sub(start.bench),
            postgres: self.postgres.saturating_sub(start.postgres),
            broker: minus(self.broker, start.broker),
            machine_busy: self.machine_busy.saturating_sub(start.machine_busy),
            machine_iowait: self.machine_iowait.saturating_sub(start.machine_iowait),
        }
    }
}

/// The gateway's own series from its /metrics, buckets left out.
async fn gateway_metrics(port: u16) -> Vec<String> {
    let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return Vec::new();
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| {
            (line.starts_with("paystream_rtgs_gateway_") && !line.contains("_bucket{"))
                || line.starts_with("paystream_provider_calls_total")
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::main]
async fn main() {
    let ticks = clock_ticks() as f64;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    // A broker of the benchmark's own with the memory engine, as the other
    // benchmarks use: disk speed does not hide the software's limits, and
    // no other test's traffic shares it.
    let broker = Nisshi::start(Storage::Memory).await;
    let pipeline = Pipeline::on(&broker.bootstrap(), "rtgs-bench", &TOPICS, PARTITIONS).await;
    let database = fresh_database().await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&database.url)
        .await
        .unwrap();

    // The rail, in this process, and nothing else of the sandbox.
    let port = free_port();
    let mut sandbox = paystream_sandbox::Config::local();
    sandbox.providers = vec![Provider::Rtgs];
    sandbox.rtgs = RAIL_HTTP.parse().unwrap();
    sandbox.rtgs_rail = RAIL.parse().unwrap();
    sandbox.rtgs_callback_secret = SECRET.to_owned();
    sandbox.rtgs_callback_url = Some(format!("http://127.0.0.1:{port}{CALLBACK_PATH}"));
    let server = paystream_sandbox::Server::build(&sandbox).await.unwrap();
    let rail = server.rail().unwrap();
    let rail_url = format!("http://{}/rtgs", server.local_addr());
    let sandbox_shutdown = CancellationToken::new();
    tokio::spawn(server.run(sandbox_shutdown.clone()));

    let payments: Vec<AccountDebited> = (0..PAYMENTS).map(debited).collect();
    for chunk in payments.chunks(2_000) {
        pipeline
            .producer
            .send_all(chunk.iter().cloned())
            .await
            .unwrap();
    }

    let broker_pid = broker_pid(&pipeline.kafka.bootstrap);
    let own_backends = backends(&pool, &database.name).await;
    let stats_before = db_stats(&pool, &database.name).await;
    let cpu_before = Cpu::now(None, broker_pid.as_deref());
    let started_at = Utc::now();
    let started = Instant::now();
    let mut gateway = spawn_gateway(&pipeline, &database.url, &rail_url, port).unwrap();
    let gateway_pid = gateway.id().map(|pid| pid.to_string());
    let target = i64::try_from(PAYMENTS).unwrap();
    // The benchmark's own transactions on the gateway's database.
    let mut polls = 0_i64;
    let mut poll = tokio::time::interval(POLL);
    let mut timeline: Vec<(f64, Stage)> = Vec::new();
    let mut waits = BTreeMap::new();
    let mut samples = 0_i64;
    // The gateway's migrations run once it is up; until then there is
    // nothing to count.
    let mut migrated = false;
    for tick in 0_u64.. {
        poll.tick().await;
        if let Some(status) = gateway.try_wait().unwrap() {
            panic!("the gateway exited during the run: {status}");
        }
        if !migrated {
            migrated = sqlx::query_scalar::<_, bool>(
                "SELECT to_regclass('rtgs_submissions') IS NOT NULL \
                   AND to_regclass('bus_outbox') IS NOT NULL",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            polls += 1;
            continue;
        }
        sample_waits(&pool, &database.name, &mut waits).await;
        samples += 1;
        if tick % 10 == 0 {
            timeline.push((started.elapsed().as_secs_f64(), stage(&pool).await));
            polls += 1;
        }
        let (settled, unpublished) = progress(&pool).await;
        polls += 2;
        if settled >= target && unpublished == 0 {
            break;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "{settled} of {PAYMENTS} settled, {unpublished} outbox rows left after {TIMEOUT:?}"
        );
    }
    let elapsed = started.elapsed();
    timeline.push((elapsed.as_secs_f64(), stage(&pool).await));
    // The backends serving the gateway: all but this benchmark's own, and
    // all started in the window.
    let gateway_backends: u64 = backends(&pool, &database.name)
        .await
        .difference(&own_backends)
        .filter_map(|pid| stat(pid))
        .map(|(_, own, _)| own)
        .sum();
    let cpu = Cpu::now(gateway_pid.as_deref(), broker_pid.as_deref()).since(cpu_before);

    let metrics = gateway_metrics(port).await;
    gateway.kill().await.unwrap();
    // Backends flush their statistics when they exit.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let stats_after = db_stats(&pool, &database.name).await;

    // Every payment once, settled once; nothing left open or rejected.
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM rtgs_submissions GROUP BY state")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        states,
        vec![("SETTLED".to_owned(), target)],
        "every payment settled"
    );
    let (p50, p99, max, first_recorded, last_resolved): (
        f64,
        f64,
        f64,
        DateTime<Utc>,
        DateTime<Utc>,
    ) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY age), \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY age), max(age), \
                min(created_at), max(resolved_at) \
         FROM (SELECT extract(epoch FROM resolved_at - created_at)::float8 AS age, \
                      created_at, resolved_at FROM rtgs_submissions) AS ages",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (recording_done,): (DateTime<Utc>,) =
        sqlx::query_as("SELECT max(created_at) FROM rtgs_submissions")
            .fetch_one(&pool)
            .await
            .unwrap();
    let report = rail.report();
    assert!(
        report.settled_twice.is_empty(),
        "the rail settled UETRs twice: {:?}",
        report.settled_twice
    );
    assert_eq!(
        report.distinct_uetrs, PAYMENTS as u64,
        "one UETR per payment"
    );
    assert_eq!(report.settled, PAYMENTS as u64, "every UETR settled");
    sandbox_shutdown.cancel();

    let seconds = elapsed.as_secs_f64();
    let to_first = (first_recorded - started_at)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    let window = (last_resolved - first_recorded)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    let recording = (recording_done - first_recorded)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    println!(
        "\nrtgs-gateway submission throughput: {PAYMENTS} account.debited credit transfers \
         pre-produced over {ACCOUNTS} debtor accounts, {PARTITIONS} partitions; the rail answers \
         after 200 ms ({RAIL_HTTP}) and settles 200 ms after acceptance ({RAIL}, callback); \
         {IN_FLIGHT} calls in flight, 32 connections; timed from the gateway's process start \
         to every submission SETTLED and the outbox drained ({cores} cores; \
         ceiling {IN_FLIGHT} / 200 ms = {:.0} sends/s)\n",
        IN_FLIGHT as f64 / 0.2
    );
    println!(
        "| payments | seconds | payments/s | first recorded after | recorded→last settled | payments/s in it | p50 | p99 | max |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {PAYMENTS} | {seconds:.2} | {:.0} | {to_first:.2} s | {window:.2} s | {:.0} | {:.0} ms | {:.0} ms | {:.0} ms |",
        PAYMENTS as f64 / seconds,
        PAYMENTS as f64 / window,
        p50 * 1e3,
        p99 * 1e3,
        max * 1e3,
    );
    println!(
        "\np50/p99/max: resolved_at − created_at of the submissions (recorded by the intake to \
         SETTLED; the least it can be is 400 ms: the answer, then the callback). The intake \
         recorded the last payment {recording:.2} s after the first ({:.0} recorded/s).",
        PAYMENTS as f64 / recording.max(f64::EPSILON)
    );

    println!(
        "\nWhere the payments were, once a second (recorded: consumed by the intake; sent: \
         claimed by the sender; outbox: events not yet published):\n"
    );
    println!(
        "| s | recorded | sent | settled | outbox | recorded, not yet sent | sent, not yet settled |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (at, stage) in &timeline {
        println!(
            "| {at:.1} | {} | {} | {} | {} | {} | {} |",
            stage.recorded,
            stage.sent,
            stage.settled,
            stage.outbox,
            stage.recorded - stage.sent,
            stage.sent - stage.settled
        );
    }

    let waited: i64 = waits.values().sum();
    println!(
        "\nThe gateway's PostgreSQL backends, sampled every {} ms ({samples} samples): on average \
         {:.1} of them busy, doing:\n",
        POLL.as_millis(),
        waited as f64 / samples.max(1) as f64
    );
    println!("| what | average backends | share |");
    println!("|---|---:|---:|");
    let mut waits: Vec<(String, i64)> = waits.into_iter().collect();
    waits.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    for (what, count) in &waits {
        println!(
            "| {what} | {:.2} | {:.0}% |",
            *count as f64 / samples.max(1) as f64,
            100.0 * *count as f64 / waited.max(1) as f64
        );
    }

    println!(
        "\nThe rail: {} submissions, {} distinct UETRs, {} repeats, {} status queries, {} settled, \
         {} rejected, settled twice: {:?}; callbacks delivered {}, failed {}.",
        report.submissions,
        report.distinct_uetrs,
        report.repeats,
        report.status_queries,
        report.settled,
        report.rejected,
        report.settled_twice,
        report.callbacks.delivered,
        report.callbacks.failed,
    );

    println!("\nCPU during the timed window (CPU-seconds, and ms of CPU per payment):\n");
    println!(
        "| gateway | bench process (rail, registry) | PostgreSQL (all) | of which the gateway's backends | nisshi | total | CPU-s per wall-s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let cell = |ticks_used: u64| {
        let cpu_seconds = ticks_used as f64 / ticks;
        format!(
            "{cpu_seconds:.2} s ({:.2} ms)",
            cpu_seconds * 1e3 / PAYMENTS as f64
        )
    };
    let total = cpu.gateway.unwrap_or(0) + cpu.bench + cpu.postgres + cpu.broker.unwrap_or(0);
    println!(
        "| {} | {} | {} | {} | {} | {} | {:.2} |",
        cpu.gateway.map_or_else(|| "n/a".to_owned(), cell),
        cell(cpu.bench),
        cell(cpu.postgres),
        cell(gateway_backends),
        cpu.broker.map_or_else(|| "n/a".to_owned(), cell),
        cell(total),
        total as f64 / ticks / seconds
    );
    println!(
        "\nThe whole machine in the window: {:.2} CPU-s busy of {:.2} ({cores} cores × {seconds:.2} s), \
         {:.2} CPU-s in iowait; the processes above account for {:.0}% of the busy time.",
        cpu.machine_busy as f64 / ticks,
        cores as f64 * seconds,
        cpu.machine_iowait as f64 / ticks,
        100.0 * total as f64 / cpu.machine_busy.max(1) as f64
    );

    // Less the benchmark's own polls (one transaction each).
    let per_payment =
        |after: i64, before: i64, less: i64| (after - before - less) as f64 / PAYMENTS as f64;
    println!(
        "\nThe gateway's database during the run (pg_stat_database, per payment): \
         {:.2} transactions, {:.2} rows inserted, {:.2} updated, {:.2} deleted.",
        per_payment(stats_after.transactions, stats_before.transactions, polls),
        per_payment(stats_after.inserted, stats_before.inserted, 0),
        per_payment(stats_after.updated, stats_before.updated, 0),
        per_payment(stats_after.deleted, stats_before.deleted, 0),
    );
    println!("\nThe gateway's counters at the end:\n");
    for line in metrics {
        println!("    {line}");
    }
    println!(
        "\nPostgreSQL is every `postgres` process (plus backends reaped in the window); \
         nisshi is the benchmark's own broker on {}. Anything else using them at the same time is counted too.",
        broker.bootstrap()
    );
}
