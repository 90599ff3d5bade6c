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
//! The CPU each process used in the window comes from `/proc`
//! (`paystream_testkit::procfs`), per request: the gateway, PostgreSQL
//! (every `postgres` process), the broker, and this process (the load
//! generator; the registry is idle once the gateway cached its schema ids).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use paystream_e2e::load::{Load, Report, drive};
use paystream_e2e::processes::{DEV_API_KEY, Options, Processes};
use paystream_e2e::{WEBHOOK_SECRET, card_webhook};
use paystream_testkit::bench_log_level;
use paystream_testkit::nisshi::Storage;
use paystream_testkit::procfs::{CpuSample, broker_pid};

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
}

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
    let pids = vec![
        (
            "gateway".to_owned(),
            processes.pid("gateway").map(|pid| pid.to_string()),
        ),
        (
            "broker".to_owned(),
            broker_pid(&processes.broker.bootstrap()),
        ),
    ];
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut rows = Vec::new();
    let warmup = Load {
        duration: load.warmup,
        warmup: Duration::ZERO,
        ..load.clone()
    };
    let counted = Load {
        warmup: Duration::ZERO,
        ..load.clone()
    };
    for (scenario, expected) in [("POST /v1/payments", 202), ("card webhook", 200)] {
        // The warm-up is a run of its own, so the CPU sample covers exactly
        // the counted window.
        let report = |load: Load, prefix: String| async move {
            match scenario {
                "POST /v1/payments" => drive(address, &load, move |n| payment(&prefix, n)).await,
                _ => drive(address, &load, move |n| webhook(&prefix, n)).await,
            }
        };
        let warm = report(warmup.clone(), format!("{run}-warm")).await;
        let before = CpuSample::now(&pids);
        let report = report(counted.clone(), run.clone()).await;
        let (cpu, machine) = CpuSample::now(&pids).seconds_since(&before);
        assert!(
            warm.statuses.keys().all(|status| *status == expected),
            "{scenario} warm-up: answers other than {expected}: {:?}",
            warm.statuses
        );
        assert!(
            report.statuses.keys().all(|status| *status == expected),
            "{scenario}: answers other than {expected}: {:?}",
            report.statuses
        );
        rows.push(Row {
            scenario,
            report,
            cpu,
            machine,
        });
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

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "\nfront door: {} connections, {} s warm-up, {} s counted; gateway process (logging at {}), PostgreSQL, nisshi (memory engine) and this load generator on {cores} cores\n",
        load.connections,
        load.warmup.as_secs(),
        load.duration.as_secs(),
        bench_log_level(),
    );
    let parts: Vec<&str> = rows[0].cpu.iter().map(|(name, _)| name.as_str()).collect();
    println!(
        "| scenario | requests/s | p50 | p99 | {} | all, per request | machine busy |",
        parts
            .iter()
            .map(|part| format!("{part} CPU/request"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!(
        "|---|---:|---:|---:|{}---:|---:|",
        "---:|".repeat(parts.len())
    );
    let window = load.duration.as_secs_f64();
    for row in &rows {
        let requests = row.report.requests.max(1) as f64;
        let per_request: Vec<String> = row
            .cpu
            .iter()
            .map(|(_, seconds)| format!("{:.0} µs", seconds / requests * 1e6))
            .collect();
        let all: f64 = row.cpu.iter().map(|(_, seconds)| seconds).sum();
        println!(
            "| {} | {:.0} | {:.1} ms | {:.1} ms | {} | {:.0} µs | {:.0}% |",
            row.scenario,
            row.report.per_second(),
            row.report.percentile(0.50).as_secs_f64() * 1e3,
            row.report.percentile(0.99).as_secs_f64() * 1e3,
            per_request.join(" | "),
            all / requests * 1e6,
            100.0 * row.machine / window / cores as f64,
        );
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
