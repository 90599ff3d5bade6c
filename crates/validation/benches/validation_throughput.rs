//! Validation throughput with slow providers, and the CPU each process
//! spends on a payment (`make bench`, which builds the release binaries
//! first: the sandbox runs from `target/release/sandbox`).
//!
//! Every part is a process of its own, so `/proc` tells their CPU apart:
//! the validation service (this crate's release binary), the sandbox
//! (IP intelligence and AML screening, each call answered after 100 ms), a
//! nisshi broker of the run's own (memory engine), the machine's
//! PostgreSQL, and this process, the load generator (producer, schema
//! registry, progress polling). Each payment needs the IP check, then the
//! debtor and creditor screenings in parallel: at least 200 ms of waiting.
//! The checks of payments in flight together share batch calls, as the
//! service does by default; the table says how many a call carried
//! (`PAYSTREAM_VALIDATION_PROVIDER_BATCH_SIZE=1`, passed through to the
//! service, sends each check on its own). The consumer keeps 1,000
//! payments in flight per partition (`PAYSTREAM_BENCH_VALIDATION_IN_FLIGHT` for
//! another count), enough to keep the machine busy through 200 ms of
//! screening.
//!
//! Two scenarios, each on fresh topics and a fresh database:
//! - backlog: every payment is produced before validation starts; the
//!   timed window runs from the first decision to the last decision with
//!   the outbox drained. This is the capacity figure; latency there is
//!   queueing, so none is printed.
//! - paced: validation runs, then payments are produced at a fixed rate
//!   (`PAYSTREAM_BENCH_RATE`, default 1,000/s) for 10 s; p50/p99 are
//!   submit (`occurredAt`) → the decision's transaction (`decided_at`).
//!
//! The service runs as it is deployed: a replica limited to one CPU (the
//! manifests' limit for validation), whose async runtime therefore starts
//! one worker. A bench machine has more cores than that, so the worker
//! count is set on the service's process (`TOKIO_WORKER_THREADS`; the other
//! processes keep their own defaults). `PAYSTREAM_BENCH_VALIDATION_WORKERS`
//! sets another count; one more backlog run, with a worker per core, shows
//! what a replica across every core costs instead. It logs at `info`, the
//! manifests' level, to /dev/null (`PAYSTREAM_BENCH_LOG` for another).
//!
//! The provider calls speak HTTP/2 to the sandbox (cleartext, prior
//! knowledge); `PAYSTREAM_BENCH_PROVIDER_PROTOCOL=auto` measures them over
//! HTTP/1.1 instead.
//!
//! The service reaches PostgreSQL without TLS (`sslmode=disable`), as the
//! front-door benchmark's gateway does: on loopback TLS would measure
//! encryption at both ends, not the service.
//! `PAYSTREAM_BENCH_DATABASE_TLS=1` keeps the driver's default (TLS when
//! the server offers it) to show what it costs.
//!
//! `make profile` records the service's CPU profile over each scenario's
//! counted window (`paystream_testkit::profile`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use paystream_contract::{Envelope, Party, PaymentSubmitted, Topic};
use paystream_testkit::nisshi::{Nisshi, Storage};
use paystream_testkit::pipeline::Pipeline;
use paystream_testkit::procfs::{CpuSample, broker_pid};
use paystream_testkit::profile;
use paystream_testkit::{bench_log_level, free_port, fresh_database, wait_until};
use sqlx::PgPool;
use tokio::process::{Child, Command};
use uuid::Uuid;

const TOPICS: [Topic; 4] = [
    Topic::PaymentSubmitted,
    Topic::PaymentValidated,
    Topic::PaymentRejected,
    Topic::AmlAlertRaised,
];
const PARTITIONS: i32 = 3;
const ACCOUNTS: usize = 1_000;
const IN_FLIGHT: usize = 1_000;
const PROVIDER_LATENCY: &str = "latency=100ms";
const POLL: Duration = Duration::from_millis(20);
const TIMEOUT: Duration = Duration::from_secs(1_800);

/// How a run starts the service: with spans recorded or not, and with how
/// many async workers (`None`: the runtime's default, one per core).
#[derive(Clone, Copy)]
struct Shape {
    spans: bool,
    workers: Option<usize>,
}

#[derive(Clone, Copy)]
enum Load {
    /// All of them produced before validation starts.
    Backlog(usize),
    /// `rate` per second for `seconds`, validation already running.
    Paced { rate: usize, seconds: u64 },
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

/// (decisions committed, outbox rows not yet published)
async fn progress(pool: &PgPool) -> (usize, usize) {
    let (decided, unpublished): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM bus_outbox)",
    )
    .fetch_one(pool)
    .await
    .unwrap_or((0, 0));
    (decided as usize, unpublished as usize)
}

/// The directory of this build's binaries (the bench runs from
/// `target/release/deps`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

async fn healthy(port: u16, what: &str) {
    let url = format!("http://127.0.0.1:{port}/healthz");
    wait_until(Duration::from_secs(120), what, || async {
        reqwest::get(&url)
            .await
            .ok()?
            .status()
            .is_success()
            .then_some(())
    })
    .await;
}

async fn spawn_sandbox(port: u16) -> Child {
    let binary = bin_dir().join("sandbox");
    assert!(
        binary.exists(),
        "{} is not built: run `cargo build --release --bins` first (make bench does)",
        binary.display()
    );
    let child = Command::new(binary)
        .env("PAYSTREAM_SANDBOX_LISTEN", format!("127.0.0.1:{port}"))
        .env("PAYSTREAM_SANDBOX_PROVIDERS", "ip-intelligence,aml")
        .env("PAYSTREAM_SANDBOX_IP_INTELLIGENCE", PROVIDER_LATENCY)
        .env("PAYSTREAM_SANDBOX_AML", PROVIDER_LATENCY)
        .env("PAYSTREAM_LOG", "warn")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    healthy(port, "the sandbox").await;
    child
}

/// The service's release binary, as a deployment runs it, with the
/// benchmark's pacing: 1,000 payments in flight per partition, provider
/// limits high enough never to be what sets the figure.
/// `spans: false` sets `PAYSTREAM_TRACE=off`: spans are then not recorded
/// for export, which shows what recording them costs.
fn spawn_validation(
    pipeline: &Pipeline,
    database_url: &str,
    sandbox: &str,
    port: u16,
    shape: Shape,
) -> Child {
    let concurrency = (in_flight() * PARTITIONS as usize * 2).to_string();
    // Another build of the service (an older commit's, to compare) may be
    // named; by default, this crate's own.
    let binary = std::env::var_os("PAYSTREAM_BENCH_VALIDATION_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_validation").into());
    let mut command = pipeline.command(binary);
    match shape.workers {
        Some(workers) => command.env("TOKIO_WORKER_THREADS", workers.to_string()),
        None => command.env_remove("TOKIO_WORKER_THREADS"),
    };
    command
        .env("PAYSTREAM_VALIDATION_LISTEN", format!("127.0.0.1:{port}"))
        .env("PAYSTREAM_VALIDATION_DATABASE_URL", database_url)
        .env(
            "PAYSTREAM_VALIDATION_IP_INTELLIGENCE_URL",
            format!("{sandbox}/ip-intelligence"),
        )
        .env("PAYSTREAM_VALIDATION_AML_URL", format!("{sandbox}/aml"))
        .env("PAYSTREAM_VALIDATION_PROVIDER_CONCURRENCY", &concurrency)
        .env("PAYSTREAM_VALIDATION_PROVIDER_RATE", "1000000")
        .env(
            "PAYSTREAM_VALIDATION_PROVIDER_PROTOCOL",
            provider_protocol(),
        )
        .env("PAYSTREAM_CONSUMER_ORDERING", "key")
        .env("PAYSTREAM_CONSUMER_MAX_IN_FLIGHT", in_flight().to_string())
        .env("PAYSTREAM_SCHEMA_REGISTRY_URL", &pipeline.registry.url)
        .env("PAYSTREAM_SCHEMA_AUTO_REGISTER", "true")
        .env("PAYSTREAM_TRACE", if shape.spans { "info" } else { "off" })
        .env("PAYSTREAM_LOG", bench_log_level())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .spawn()
        .unwrap()
}

/// The mean of each histogram `series` (name and labels) over the run,
/// from the service's `/metrics`: its sum over its count.
async fn histogram_means<const N: usize>(port: u16, series: [&str; N]) -> [Option<f64>; N] {
    let text = match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let value = |name: String| -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(&name)?.trim().parse().ok())
    };
    series.map(|series| {
        let (name, labels) = series
            .split_once('{')
            .map_or((series, ""), |(name, labels)| (name, labels));
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}")
        };
        let sum = value(format!("{name}_sum{labels}"))?;
        let count = value(format!("{name}_count{labels}"))?;
        (count > 0.0).then(|| sum / count)
    })
}

struct Measured {
    name: String,
    payments: usize,
    elapsed: Duration,
    /// CPU-seconds of each part in the window, and of the whole machine.
    cpu: (Vec<(String, f64)>, f64),
    /// p50 and p99 of submit → decision, for the paced scenario.
    latency: Option<(Duration, Duration)>,
    per_transaction: Option<f64>,
    /// Checks per call to each provider (IP intelligence, AML).
    per_call: [Option<f64>; 2],
}

async fn produce(pipeline: &Pipeline, payments: &[PaymentSubmitted]) {
    for chunk in payments.chunks(2_000) {
        pipeline
            .producer
            .send_all(chunk.iter().cloned())
            .await
            .unwrap();
    }
}

/// p50 and p99 of `decided_at − occurredAt` over every payment.
async fn latency(pool: &PgPool, submitted: &HashMap<Uuid, DateTime<Utc>>) -> (Duration, Duration) {
    let rows: Vec<(Uuid, DateTime<Utc>)> =
        sqlx::query_as("SELECT payment_id, decided_at FROM decisions")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut waits: Vec<Duration> = rows
        .iter()
        .filter_map(|(id, decided)| {
            let waited = *decided - *submitted.get(id)?;
            waited.to_std().ok()
        })
        .collect();
    waits.sort();
    let at = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize];
    (at(0.50), at(0.99))
}

async fn run(broker: &Nisshi, sandbox: (&str, Option<u32>), load: Load, shape: Shape) -> Measured {
    let pipeline = Pipeline::on(&broker.bootstrap(), "vbench", &TOPICS, PARTITIONS).await;
    let database = fresh_database().await;
    let pool = PgPool::connect(&database.url).await.unwrap();
    let broker_pid = broker_pid(&pipeline.kafka.bootstrap);
    let total = match load {
        Load::Backlog(payments) => payments,
        Load::Paced { rate, seconds } => rate * seconds as usize,
    };
    let payments: Vec<_> = (0..total).map(|n| payment(n % ACCOUNTS)).collect();
    let mut submitted: HashMap<Uuid, DateTime<Utc>> = HashMap::with_capacity(total);
    if let Load::Backlog(_) = load {
        produce(&pipeline, &payments).await;
    }

    let port = free_port();
    let service_url = match std::env::var_os("PAYSTREAM_BENCH_DATABASE_TLS") {
        Some(_) => database.url.clone(),
        None => format!("{}?sslmode=disable", database.url),
    };
    let mut validation = spawn_validation(&pipeline, &service_url, sandbox.0, port, shape);
    healthy(port, "validation").await;
    let parts = [
        ("validation", validation.id().map(|pid| pid.to_string())),
        ("sandbox", sandbox.1.map(|pid| pid.to_string())),
        ("nisshi", broker_pid),
    ]
    .map(|(name, pid)| (name.to_owned(), pid));
    let cpu_now = || CpuSample::now(&parts);
    let name = scenario_name(
        match load {
            Load::Backlog(_) => format!("backlog of {total}"),
            Load::Paced { rate, .. } => format!("paced, {rate}/s"),
        },
        shape,
    );
    let record = || profile::record(validation.id(), &profile_name(&name));
    let (started, cpu_before, from, recording) = match load {
        Load::Backlog(_) => {
            // The window opens at the first decision, so start-up and the
            // group join are not counted.
            wait_until(Duration::from_secs(120), "the first decision", || async {
                let (decided, _) = progress(&pool).await;
                (decided > 0).then_some(())
            })
            .await;
            let recording = record();
            let cpu = cpu_now();
            let (from, _) = progress(&pool).await;
            (Instant::now(), cpu, from, recording)
        }
        Load::Paced { rate, .. } => {
            // A first payment makes sure the group has joined before the
            // clock runs; it is not counted.
            produce(&pipeline, &[payment(0)]).await;
            wait_until(Duration::from_secs(120), "the first decision", || async {
                let (decided, _) = progress(&pool).await;
                (decided > 0).then_some(())
            })
            .await;
            let recording = record();
            let cpu = cpu_now();
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            for chunk in payments.chunks((rate / 10).max(1)) {
                tick.tick().await;
                let mut fresh = chunk.to_vec();
                for payment in &mut fresh {
                    payment.envelope.occurred_at = Utc::now();
                    submitted.insert(payment.payment_id, payment.envelope.occurred_at);
                }
                produce(&pipeline, &fresh).await;
            }
            (started, cpu, 0, recording)
        }
    };
    let extra = usize::from(matches!(load, Load::Paced { .. }));
    loop {
        tokio::time::sleep(POLL).await;
        let (decided, unpublished) = progress(&pool).await;
        if decided >= total + extra && unpublished == 0 {
            break;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "{decided} of {total} decided, {unpublished} outbox rows left after {TIMEOUT:?}"
        );
    }
    let elapsed = started.elapsed();
    let cpu = cpu_now().seconds_since(&cpu_before);
    recording.and_then(profile::Recording::finish);
    let latency = match load {
        Load::Paced { .. } => Some(latency(&pool, &submitted).await),
        Load::Backlog(_) => None,
    };
    let [per_transaction, ip_per_call, aml_per_call] = histogram_means(
        port,
        [
            "paystream_validation_decision_batch_payments",
            "paystream_validation_provider_call_checks{provider=\"ip-intelligence\"}",
            "paystream_validation_provider_call_checks{provider=\"aml\"}",
        ],
    )
    .await;
    let _ = validation.start_kill();
    let _ = validation.wait().await;
    Measured {
        name,
        payments: total - from,
        elapsed,
        cpu,
        latency,
        per_transaction,
        per_call: [ip_per_call, aml_per_call],
    }
}

/// A scenario's profile file name: `validation-backlog-of-20000`.
fn profile_name(scenario: &str) -> String {
    let words: Vec<String> = scenario
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    format!("validation-{}", words.join("-"))
}

/// The scenario's name, with what sets its service apart from the
/// deployed shape (spans on, the workers `deployed_workers` gives).
fn scenario_name(load: String, shape: Shape) -> String {
    let mut name = load;
    if !shape.spans {
        name.push_str(", PAYSTREAM_TRACE=off");
    }
    // The one other shape run is a worker per core.
    if shape.workers.is_none() && deployed_workers().is_some() {
        name.push_str(", a worker per core");
    }
    name
}

/// The service's async workers in the deployed shape: one, as a replica
/// limited to one CPU starts; `PAYSTREAM_BENCH_VALIDATION_WORKERS` sets
/// another count, 0 for the runtime's default (one per core).
fn deployed_workers() -> Option<usize> {
    match env_number("PAYSTREAM_BENCH_VALIDATION_WORKERS", 1) {
        0 => None,
        workers => Some(workers),
    }
}

/// Payments in flight per partition (`PAYSTREAM_BENCH_VALIDATION_IN_FLIGHT`).
fn in_flight() -> usize {
    env_number("PAYSTREAM_BENCH_VALIDATION_IN_FLIGHT", IN_FLIGHT)
}

fn provider_protocol() -> String {
    std::env::var("PAYSTREAM_BENCH_PROVIDER_PROTOCOL").unwrap_or_else(|_| "http2".to_owned())
}

fn env_number(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let broker = Nisshi::start(Storage::Memory).await;
    let sandbox_port = free_port();
    let sandbox = spawn_sandbox(sandbox_port).await;
    let sandbox_url = format!("http://127.0.0.1:{sandbox_port}");
    let backlog = Load::Backlog(env_number("PAYSTREAM_BENCH_PAYMENTS", 20_000));
    let paced = Load::Paced {
        rate: env_number("PAYSTREAM_BENCH_RATE", 1_000),
        seconds: 10,
    };
    let deployed = Shape {
        spans: true,
        workers: deployed_workers(),
    };
    let mut runs = vec![
        (backlog, deployed),
        (paced, deployed),
        (
            backlog,
            Shape {
                spans: false,
                ..deployed
            },
        ),
    ];
    if deployed.workers.is_some() {
        runs.push((
            backlog,
            Shape {
                workers: None,
                ..deployed
            },
        ));
    }
    let mut results = Vec::new();
    for (load, shape) in runs {
        results.push(run(&broker, (&sandbox_url, sandbox.id()), load, shape).await);
    }

    println!(
        "\nvalidation throughput (100 ms per provider call, 3 checks per payment in batch calls; {PARTITIONS} partitions, \
         {ACCOUNTS} debtor accounts, key-ordered, {} in flight per partition; provider calls over {}; the service with {}, logging at {}; nisshi memory engine; {} cores)\n",
        in_flight(),
        provider_protocol(),
        match deployed_workers() {
            Some(1) => "one async worker, as a replica limited to one CPU".to_owned(),
            Some(workers) => format!("{workers} async workers"),
            None => "a worker per core".to_owned(),
        },
        bench_log_level(),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!(
        "| scenario | payments | seconds | payments/s | p50 | p99 | payments per decision transaction | checks per IP / AML call |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for m in &results {
        let seconds = m.elapsed.as_secs_f64();
        let ms = |d: Duration| format!("{} ms", d.as_millis());
        let (p50, p99) = m.latency.map_or(("—".into(), "—".into()), |(p50, p99)| {
            (ms(p50), ms(p99))
        });
        let mean = |n: Option<f64>| n.map_or_else(|| "—".to_owned(), |n| format!("{n:.1}"));
        let grouped = mean(m.per_transaction);
        let per_call = format!("{} / {}", mean(m.per_call[0]), mean(m.per_call[1]));
        println!(
            "| {} | {} | {seconds:.2} | {:.0} | {p50} | {p99} | {grouped} | {per_call} |",
            m.name,
            m.payments,
            m.payments as f64 / seconds
        );
    }
    println!("\nCPU per payment in the timed window (µs; in brackets the share of one core):\n");
    let names: Vec<&str> = results[0]
        .cpu
        .0
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    println!(
        "| scenario | {} | all of these | whole machine |",
        names.join(" | ")
    );
    println!("|---|{}---:|---:|", "---:|".repeat(names.len()));
    for m in &results {
        let seconds = m.elapsed.as_secs_f64();
        let cell = |cpu: f64| {
            format!(
                "{:.0} µs ({:.0}%)",
                cpu * 1e6 / m.payments as f64,
                cpu * 100.0 / seconds
            )
        };
        let (parts, machine) = &m.cpu;
        let cells: Vec<String> = parts.iter().map(|(_, cpu)| cell(*cpu)).collect();
        let all = parts.iter().map(|(_, cpu)| cpu).sum();
        println!(
            "| {} | {} | {} | {} |",
            m.name,
            cells.join(" | "),
            cell(all),
            cell(*machine)
        );
    }
    println!(
        "\nPostgreSQL is every `postgres` process (plus backends reaped in the window); nisshi is the \
         run's own broker on {}; the bench process is the load generator, the schema registry and \
         the progress polling. /proc counts in clock ticks (1/100 s): a short window is good to about \
         ±1 tick per process.",
        broker.bootstrap()
    );
    drop(sandbox);
}
