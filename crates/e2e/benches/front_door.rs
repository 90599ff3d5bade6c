//! The gateway's front door under load (`make bench`): `POST /v1/payments`
//! and the signed card webhook, the way `wrk -c50` drives a server.
//!
//! The gateway runs as a process of its own (the release build's binary)
//! with its PostgreSQL database, a nisshi broker of the run's own (memory
//! engine, so disk speed does not hide the software's limits), and the
//! schema registry and the load generator in this process
//! (`paystream_e2e::load`: `PAYSTREAM_BENCH_CONNECTIONS` keep-alive
//! connections, default 50, each sending its next request as soon as the
//! last is answered). Every request is new: a fresh Idempotency-Key, a fresh
//! card transaction id. Each scenario warms up for
//! `PAYSTREAM_BENCH_WARMUP` seconds (default 3), then counts
//! `PAYSTREAM_BENCH_SECONDS` (default 15); every answer must be the success
//! the scenario expects (202, 200) or the run fails.
//!
//! The gateway reaches PostgreSQL without TLS (`sslmode=disable`): on
//! loopback it would measure encryption at both ends, not the gateway. It
//! logs at `info`, the deployment manifests' level, to /dev/null
//! (`PAYSTREAM_BENCH_LOG` for another level).
//!
//! The same load then drives the hand-written alternative, on the same
//! broker: a FastAPI card-webhook handler that produces and flushes per
//! request (`paystream_e2e::baseline`), run by the Python named in
//! `PAYSTREAM_BENCH_BASELINE_PYTHON` (`make bench` builds one with its
//! packages); the gateway's requests/s are printed as multiples of its.
//! Without that Python the bench says why and measures the gateway alone.
//!
//! The CPU each process used in the window comes from `/proc`
//! (`paystream_testkit::procfs`), per request: the server (the gateway or
//! the baseline), PostgreSQL (every `postgres` process), the broker, and
//! this process (the load generator; the registry is idle once the gateway
//! cached its schema ids). What PostgreSQL wrote per request is its
//! write-ahead log's growth over the window, which unlike CPU time does not
//! move with the machine's speed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use paystream_e2e::baseline::Baseline;
use paystream_e2e::load::{Load, Report, drive};
use paystream_e2e::processes::{DEV_API_KEY, Options, Processes};
use paystream_e2e::{WEBHOOK_SECRET, card_webhook};
use paystream_testkit::bench_log_level;
use paystream_testkit::nisshi::Storage;
use paystream_testkit::procfs::{CpuSample, broker_pid};
use paystream_testkit::profile;
use sqlx::PgPool;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn payment(run: &str, n: usize) -> Request<Full<Bytes>> {
    let body = format!(
        r#"{{"amount":"{}.{:02}","currency":"EUR","debtor":{{"name":"Emily Clarke","account":"GB82WEST12345698765432","agentBic":"NWBKGB2L","country":"GB"}},"creditor":{{"name":"Camille Moreau","account":"FR1420041010050500013M02606","agentBic":"BNPAFRPP","country":"FR"}},"clientIp":"81.2.69.142"}}"#,
        10 + n % 500,
        n % 100
    );
    Request::post("/v1/payments")
        .header("host", "gateway")
        .header("authorization", format!("Bearer {DEV_API_KEY}"))
        .header("idempotency-key", format!("{run}-{n}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn webhook(run: &str, n: usize) -> Request<Full<Bytes>> {
    let body = card_webhook(
        &format!("{run}-{n}"),
        &format!("{}.{:02}", 1 + n % 90, n % 100),
    );
    Request::post("/v1/webhooks/card-transactions")
        .header("host", "gateway")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

struct Row {
    scenario: &'static str,
    report: Report,
    cpu: Vec<(String, f64)>,
    machine: f64,
    /// PostgreSQL's write-ahead log written in the window, in bytes.
    wal: f64,
}

/// Where PostgreSQL's write-ahead log stands, in bytes since its start: what
/// the database wrote for the requests, a figure the machine's speed does
/// not move.
async fn wal_position(database: &PgPool) -> f64 {
    sqlx::query_scalar::<_, f64>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8")
        .fetch_one(database)
        .await
        .unwrap()
}

#[derive(Clone, Copy)]
enum Scenario {
    Payments,
    Webhooks,
}

impl Scenario {
    fn expected(self) -> u16 {
        match self {
            Scenario::Payments => 202,
            Scenario::Webhooks => 200,
        }
    }
}

/// One scenario against `address`: a warm-up run of its own, so that the
/// CPU sample of `pids` covers exactly the counted window, then the counted
/// run. Every answer must be the scenario's success.
/// The server's CPU profile of the counted window is recorded as `profile`
/// when `make profile` asks for one.
async fn measure(
    (label, profile): (&'static str, &str),
    scenario: Scenario,
    address: SocketAddr,
    load: &Load,
    (pids, database): (&[(String, Option<String>)], &PgPool),
    run: &str,
) -> Row {
    let report = |load: Load, prefix: String| async move {
        match scenario {
            Scenario::Payments => drive(address, &load, move |n| payment(&prefix, n)).await,
            Scenario::Webhooks => drive(address, &load, move |n| webhook(&prefix, n)).await,
        }
    };
    let warmup = Load {
        duration: load.warmup,
        warmup: Duration::ZERO,
        ..load.clone()
    };
    let counted = Load {
        warmup: Duration::ZERO,
        ..load.clone()
    };
    let warm = report(warmup, format!("{run}-warm")).await;
    let server = pids[0].1.as_deref().and_then(|pid| pid.parse().ok());
    let recording = profile::record(server, profile);
    let wal_before = wal_position(database).await;
    let before = CpuSample::now(pids);
    let report = report(counted, run.to_owned()).await;
    let (cpu, machine) = CpuSample::now(pids).seconds_since(&before);
    let wal = wal_position(database).await - wal_before;
    recording.and_then(profile::Recording::finish);
    let expected = scenario.expected();
    for (window, seen) in [("warm-up", &warm), ("counted window", &report)] {
        assert!(
            seen.statuses.keys().all(|status| *status == expected),
            "{label}, {window}: answers other than {expected}: {:?}",
            seen.statuses
        );
    }
    Row {
        scenario: label,
        report,
        cpu,
        machine,
        wal,
    }
}

/// The hand-written handler on the same broker, measured as the gateway's
/// webhook is; `Err` says why it did not run.
async fn baseline_row(
    processes: &Processes,
    load: &Load,
    (broker, database): (&(String, Option<String>), &PgPool),
    run: &str,
) -> Result<Row, String> {
    let python = std::env::var_os("PAYSTREAM_BENCH_BASELINE_PYTHON")
        .ok_or("PAYSTREAM_BENCH_BASELINE_PYTHON is not set (`make bench` sets it)")?;
    let bootstrap = processes.broker.bootstrap();
    let topic = format!(
        "{}baseline.card.events",
        processes.pipeline.kafka.topic_prefix
    );
    paystream_testkit::kafka::create_topic(&bootstrap, &topic, 3).await;
    let baseline = Baseline::start(
        std::path::Path::new(&python),
        &bootstrap,
        &topic,
        WEBHOOK_SECRET,
    )
    .await?;
    let address = SocketAddr::from(([127, 0, 0, 1], baseline.port));
    let pids = [
        (
            "server".to_owned(),
            baseline.pid().map(|pid| pid.to_string()),
        ),
        broker.clone(),
    ];
    let label = (BASELINE, "front-door-baseline");
    Ok(measure(
        label,
        Scenario::Webhooks,
        address,
        load,
        (&pids, database),
        run,
    )
    .await)
}

const BASELINE: &str = "card webhook, FastAPI baseline";

#[tokio::main]
async fn main() {
    let load = Load {
        connections: env_or("PAYSTREAM_BENCH_CONNECTIONS", 50),
        warmup: Duration::from_secs(env_or("PAYSTREAM_BENCH_WARMUP", 3)),
        duration: Duration::from_secs(env_or("PAYSTREAM_BENCH_SECONDS", 15)),
    };
    let unlimited = "100000000";
    let processes = Processes::start_with(
        "front",
        Options::default()
            .storage(Storage::Memory)
            .only(&["gateway"])
            // Loopback: TLS to PostgreSQL would only measure encryption.
            .database_options("sslmode=disable")
            .env_for("gateway", "PAYSTREAM_LOG", bench_log_level())
            .env_for("gateway", "PAYSTREAM_GATEWAY_RATE_LIMIT", unlimited)
            .env_for("gateway", "PAYSTREAM_GATEWAY_WEBHOOK_RATE_LIMIT", unlimited)
            .env_for(
                "gateway",
                "PAYSTREAM_GATEWAY_WEBHOOK_SECRET",
                WEBHOOK_SECRET,
            )
            .env_for(
                "gateway",
                "PAYSTREAM_KAFKA_PROPERTIES",
                std::env::var("PAYSTREAM_BENCH_KAFKA_PROPERTIES").unwrap_or_default(),
            ),
    )
    .await;
    let address: SocketAddr = format!("127.0.0.1:{}", processes.ports["gateway"])
        .parse()
        .unwrap();
    let broker = (
        "broker".to_owned(),
        broker_pid(&processes.broker.bootstrap()),
    );
    let pids = vec![
        (
            "server".to_owned(),
            processes.pid("gateway").map(|pid| pid.to_string()),
        ),
        broker.clone(),
    ];
    let database = PgPool::connect(&processes.databases["gateway"])
        .await
        .unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut rows = Vec::new();
    for (label, scenario) in [
        (
            ("POST /v1/payments", "front-door-payments"),
            Scenario::Payments,
        ),
        (("card webhook", "front-door-webhooks"), Scenario::Webhooks),
    ] {
        rows.push(measure(label, scenario, address, &load, (&pids, &database), &run).await);
    }

    // How much the group commit grouped (both scenarios together).
    let metrics = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let grouping = means(&metrics, "paystream_gateway_group_commit_items", 1.0);
    let stages = means(&metrics, "paystream_gateway_stage_seconds", 1e3);

    let baseline = baseline_row(
        &processes,
        &load,
        (&broker, &database),
        &format!("{run}-baseline"),
    )
    .await;

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "\nfront door: {} connections, {} s warm-up, {} s counted; the server (the gateway process, logging at {}; or the FastAPI baseline), PostgreSQL, nisshi (memory engine) and this load generator on {cores} cores\n",
        load.connections,
        load.warmup.as_secs(),
        load.duration.as_secs(),
        bench_log_level(),
    );
    let parts: Vec<&str> = rows[0].cpu.iter().map(|(name, _)| name.as_str()).collect();
    println!(
        "| scenario | requests/s | p50 | p99 | {} | all, per request | machine busy | WAL/request |",
        parts
            .iter()
            .map(|part| format!("{part} CPU/request"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!(
        "|---|---:|---:|---:|{}---:|---:|---:|",
        "---:|".repeat(parts.len())
    );
    let window = load.duration.as_secs_f64();
    for row in rows.iter().chain(baseline.as_ref().ok()) {
        let requests = row.report.requests.max(1) as f64;
        let per_request: Vec<String> = row
            .cpu
            .iter()
            .map(|(_, seconds)| format!("{:.0} µs", seconds / requests * 1e6))
            .collect();
        let all: f64 = row.cpu.iter().map(|(_, seconds)| seconds).sum();
        println!(
            "| {} | {:.0} | {:.1} ms | {:.1} ms | {} | {:.0} µs | {:.0}% | {:.0} B |",
            row.scenario,
            row.report.per_second(),
            row.report.percentile(0.50).as_secs_f64() * 1e3,
            row.report.percentile(0.99).as_secs_f64() * 1e3,
            per_request.join(" | "),
            all / requests * 1e6,
            100.0 * row.machine / window / cores as f64,
            row.wal / requests,
        );
    }
    match &baseline {
        Ok(baseline) => {
            let times = |row: &Row| row.report.per_second() / baseline.report.per_second();
            println!(
                "\nrequests/s against the FastAPI baseline on this machine: payments {:.1}×, card webhooks {:.1}×",
                times(&rows[0]),
                times(&rows[1]),
            );
        }
        Err(reason) => println!("\n{BASELINE}: not run: {reason}"),
    }
    println!("\nrequests per database statement (mean, both scenarios): {grouping}");
    println!("\nmean milliseconds per stage: {stages}");
}

/// `labels mean` of each series of the histogram `family` in a Prometheus
/// text exposition (its `_sum` over its `_count`).
fn means(metrics: &str, family: &str, scale: f64) -> String {
    let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
    let sum_prefix = format!("{family}_sum{{");
    let mut means = Vec::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix(&sum_prefix) else {
            continue;
        };
        let Some((labels, _)) = rest.split_once('}') else {
            continue;
        };
        let count_prefix = format!("{family}_count{{{labels}}}");
        let count = metrics
            .lines()
            .find(|line| line.starts_with(&count_prefix))
            .and_then(value);
        if let (Some(sum), Some(count)) = (value(line), count) {
            means.push(format!("{labels}: {:.2}", sum / count.max(1.0) * scale));
        }
    }
    means.join("; ")
}
