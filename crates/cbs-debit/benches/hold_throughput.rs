//! Hold throughput of cbs-debit end to end (`make bench`): 10,000
//! `payment.validated` events are produced first, then the service starts and
//! the clock runs until every decision is committed (hold, decision and
//! outbox row in one transaction per record) and the outbox relay has
//! published every `account.debited`. Runs on a nisshi of its own (memory
//! engine) and the machine's PostgreSQL, and prints the CPU that the
//! benchmark process (which hosts the service), PostgreSQL and the broker
//! each used during that window.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use paystream_bus::RegistryConfig;
use paystream_cbs_debit::operator::{connect, load_accounts_text};
use paystream_cbs_debit::{Config, DatabaseArgs};
use paystream_contract::{PaymentValidated, Topic, samples};
use paystream_testkit::fresh_database;
use paystream_testkit::nisshi::{Nisshi, Storage};
use paystream_testkit::pipeline::Pipeline;
use paystream_testkit::procfs::{broker_pid, clock_ticks, processes, stat};
use sqlx::PgPool;
use uuid::Uuid;

const PAYMENTS: usize = 10_000;
const ACCOUNTS: usize = 1_000;
const AMOUNT_MINOR: i64 = 2_500;
const PARTITIONS: i32 = 3;
const POLL: Duration = Duration::from_millis(20);
const TIMEOUT: Duration = Duration::from_secs(1_800);
const HOT: &str = "BENCHHOT0000";

/// The topics the service reads and writes, as the integration tests' stand.
const TOPICS: [Topic; 7] = [
    Topic::PaymentValidated,
    Topic::PaymentRejected,
    Topic::AccountDebited,
    Topic::AccountDebitReversed,
    Topic::RtgsSettled,
    Topic::RtgsRejected,
    Topic::CardTransactionReceived,
];

#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    config: Config,
}

struct Scenario {
    name: &'static str,
    /// Payments in ten that come from the one hot account.
    hot_in_ten: usize,
}

fn account(n: usize) -> String {
    format!("BENCH{n:07}")
}

/// The debtor of each payment: every `hot_in_ten` of ten from the hot
/// account, the rest round-robin over the spread accounts.
fn debtors(scenario: &Scenario) -> Vec<String> {
    let mut spread = 0;
    (0..PAYMENTS)
        .map(|n| {
            if n % 10 < scenario.hot_in_ten {
                HOT.to_owned()
            } else {
                spread += 1;
                account((spread - 1) % ACCOUNTS)
            }
        })
        .collect()
}

/// Every account that pays, funded for twice what it pays.
fn accounts_csv(debtors: &[String]) -> String {
    let mut owed: BTreeMap<&str, i64> = BTreeMap::new();
    for debtor in debtors {
        *owed.entry(debtor).or_default() += AMOUNT_MINOR;
    }
    let mut csv = String::from("id,currency,opening_balance_minor,flags\n");
    for (id, total) in owed {
        writeln!(csv, "{id},EUR,{},debits_must_not_exceed_credits", 2 * total).unwrap();
    }
    csv
}

fn validated(debtor: &str) -> PaymentValidated {
    let mut payment = samples::payment_validated();
    payment.payment_id = Uuid::now_v7();
    payment.uetr = Uuid::new_v4();
    payment.debtor.account = debtor.to_owned();
    payment.amount_minor = AMOUNT_MINOR;
    payment.currency = "EUR".to_owned();
    payment
}

/// (decisions committed, outbox rows not yet published)
async fn progress(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM debit_decisions), (SELECT count(*) FROM bus_outbox)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

// --- CPU accounting from /proc: paystream_testkit::procfs -------------------

/// CPU used so far, in clock ticks.
#[derive(Clone, Copy)]
struct Cpu {
    bench: u64,
    postgres: u64,
    broker: Option<u64>,
}

impl Cpu {
    fn now(broker: Option<&str>) -> Self {
        let bench = stat("self").map_or(0, |(_, own, _)| own);
        // Backends that exit are reaped by the postmaster, whose cutime then
        // holds their CPU: counting it keeps their share in the window.
        let postgres = processes()
            .into_iter()
            .filter(|(_, comm, _, _)| comm == "postgres")
            .map(|(_, _, own, children)| own + children)
            .sum();
        let broker = broker.and_then(stat).map(|(_, own, _)| own);
        Self {
            bench,
            postgres,
            broker,
        }
    }

    fn since(self, start: Self) -> Self {
        Self {
            bench: self.bench.saturating_sub(start.bench),
            postgres: self.postgres.saturating_sub(start.postgres),
            broker: self
                .broker
                .zip(start.broker)
                .map(|(end, start)| end.saturating_sub(start)),
        }
    }
}

struct Measured {
    elapsed: Duration,
    cpu: Cpu,
}

async fn run(broker: &Nisshi, scenario: &Scenario) -> Measured {
    let pipeline = Pipeline::on(&broker.bootstrap(), "cbs-hold-bench", &TOPICS, PARTITIONS).await;
    let database = fresh_database().await;
    let pool = connect(&DatabaseArgs {
        url: database.url.clone(),
    })
    .await
    .unwrap();
    let debtors = debtors(scenario);
    load_accounts_text(&pool, &accounts_csv(&debtors))
        .await
        .unwrap();

    let payments: Vec<_> = debtors.iter().map(|debtor| validated(debtor)).collect();
    for chunk in payments.chunks(2_000) {
        pipeline
            .producer
            .send_all(chunk.iter().cloned())
            .await
            .unwrap();
    }

    let mut config = <Defaults as clap::Parser>::parse_from(["bench"]).config;
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.database = DatabaseArgs {
        url: database.url.clone(),
    };
    config.kafka = pipeline.kafka.clone();
    config.registry = RegistryConfig::new(&pipeline.registry.url).auto_register();

    let broker = broker_pid(&pipeline.kafka.bootstrap);
    let cpu_before = Cpu::now(broker.as_deref());
    let started = Instant::now();
    let service = paystream_cbs_debit::build(&config).await.unwrap().start();
    let target = i64::try_from(PAYMENTS).unwrap();
    let mut poll = tokio::time::interval(POLL);
    loop {
        poll.tick().await;
        let (decided, unpublished) = progress(&pool).await;
        if decided >= target && unpublished == 0 {
            break;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "{}: {decided} of {PAYMENTS} decided, {unpublished} outbox rows left after {TIMEOUT:?}",
            scenario.name
        );
    }
    let elapsed = started.elapsed();
    let cpu = Cpu::now(broker.as_deref()).since(cpu_before);

    let held: i64 =
        sqlx::query_scalar("SELECT count(*) FROM debit_decisions WHERE decision = 'HELD'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        held, target,
        "{}: every payment must be held",
        scenario.name
    );
    service.stop().await.unwrap();
    Measured { elapsed, cpu }
}

#[tokio::main]
async fn main() {
    let ticks = clock_ticks() as f64;
    let config = <Defaults as clap::Parser>::parse_from(["bench"]).config;
    let scenarios = [
        Scenario {
            name: "spread",
            hot_in_ten: 0,
        },
        Scenario {
            name: "hot (30% from one account)",
            hot_in_ten: 3,
        },
    ];

    // A broker of the benchmark's own with the memory engine, as the other
    // benchmarks use: disk speed does not hide the software's limits, and
    // no other test's traffic shares it.
    let broker = Nisshi::start(Storage::Memory).await;
    let mut results = Vec::new();
    for scenario in &scenarios {
        results.push(run(&broker, scenario).await);
    }

    println!(
        "\ncbs-debit hold throughput: {PAYMENTS} payment.validated pre-produced, {ACCOUNTS} spread accounts, \
         {PARTITIONS} partitions, {} ordering, {} in flight per partition, {} connections; \
         timed from service start to the last decision committed and the outbox drained \
         ({} cores)\n",
        config.consumer.ordering,
        config.consumer.max_in_flight,
        config.max_connections,
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!("| scenario | holds | seconds | holds/s |");
    println!("|---|---:|---:|---:|");
    for (scenario, measured) in scenarios.iter().zip(&results) {
        let seconds = measured.elapsed.as_secs_f64();
        println!(
            "| {} | {PAYMENTS} | {seconds:.2} | {:.0} |",
            scenario.name,
            PAYMENTS as f64 / seconds
        );
    }

    println!("\nCPU during the timed window (CPU-seconds, and µs of CPU per hold):\n");
    println!(
        "| scenario | bench process (service) | PostgreSQL | nisshi | total | CPU-s per wall-s |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (scenario, measured) in scenarios.iter().zip(&results) {
        let cell = |ticks_used: u64| {
            let seconds = ticks_used as f64 / ticks;
            format!("{seconds:.2} s ({:.0} µs)", seconds * 1e6 / PAYMENTS as f64)
        };
        let cpu = measured.cpu;
        let total = cpu.bench + cpu.postgres + cpu.broker.unwrap_or(0);
        println!(
            "| {} | {} | {} | {} | {} | {:.2} |",
            scenario.name,
            cell(cpu.bench),
            cell(cpu.postgres),
            cpu.broker.map_or_else(|| "n/a".to_owned(), cell),
            cell(total),
            total as f64 / ticks / measured.elapsed.as_secs_f64()
        );
    }
    println!(
        "\nPostgreSQL is every `postgres` process (plus backends reaped in the window); \
         nisshi is the benchmark's own broker on {}. Anything else using them at the same time is counted too.",
        broker.bootstrap()
    );
}
