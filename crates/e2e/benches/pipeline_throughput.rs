//! Throughput of the whole pipeline, submit → `rtgs.settled` (`make bench`).
//!
//! Every part is a process of its own on this machine: the six services
//! (gateway, validation, cbs-debit, rtgs-gateway, notifications, audit) from
//! the release build's binaries, the sandbox playing the providers (IP
//! intelligence, AML and the notification provider answer after 20 ms, the
//! RTGS rail after 50 ms and settles 50 ms after acceptance by its signed
//! callback), a nisshi broker of the run's own (memory engine, then the
//! durable SQLite engine), and the machine's PostgreSQL; the schema registry
//! runs in this process (`paystream_e2e::processes`).
//!
//! The load is a closed loop end to end: a fixed number of payments is in
//! the pipeline at any time (`PAYSTREAM_BENCH_IN_FLIGHT`, default 64),
//! each worker submitting one payment to the gateway (`POST /v1/payments`,
//! the dev key, a fresh Idempotency-Key), waiting until this process sees
//! its `rtgs.settled` event (a reader of that topic, matched by payment id)
//! and then submitting the next. Payments come from 1,000 funded payer
//! accounts (each with a contact, so each settlement is notified) to a
//! creditor the rail settles to. After a warm-up (`PAYSTREAM_BENCH_WARMUP`,
//! default 10 s) the timed window runs `PAYSTREAM_BENCH_SECONDS` (default
//! 60): payments/s is what settled inside it; p50 / p99 are submit → settled
//! (as this process sees the event) of the payments submitted inside it. Then
//! the workers stop submitting, the pipeline drains, and every payment
//! submitted must have settled (the run fails otherwise).
//!
//! The CPU each process used in the window comes from `/proc`
//! (`paystream_testkit::procfs`): each service, the sandbox, PostgreSQL (every
//! `postgres` process, so also other work on the machine's database), the
//! broker and this process (the load generator, the settled reader and the
//! schema registry). `PAYSTREAM_BENCH_ENGINES` (default `memory,sqlite`)
//! chooses the broker's engines; `PAYSTREAM_BENCH_ENV`
//! (`PROCESS:KEY=VALUE;...`, `*` for every process) adds settings for an
//! experiment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use paystream_cli::load::{accounts_csv, contacts_csv, payer_account};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paystream_contract::{RtgsSettled, Topic};
use paystream_e2e::processes::{Options, Processes, SERVICES};
use paystream_testkit::kafka;
use paystream_testkit::nisshi::Storage;
use paystream_testkit::procfs::{CpuSample, broker_pid};
use rdkafka::Message;
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Debtor accounts the payments are spread over (the services order by
/// account, so few accounts would serialise them).
const PAYERS: usize = 1_000;
const CREDITOR: &str = "FR1420041010050500013M02606";
const PARTITIONS: i32 = 3;
/// How long one payment may take before the run fails.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The providers' behaviour in the sandbox (the figures).
const PROVIDERS: [(&str, &str); 5] = [
    ("PAYSTREAM_SANDBOX_IP_INTELLIGENCE", "latency=20ms"),
    ("PAYSTREAM_SANDBOX_AML", "latency=20ms"),
    ("PAYSTREAM_SANDBOX_NOTIFY", "latency=20ms"),
    ("PAYSTREAM_SANDBOX_RTGS", "latency=50ms"),
    ("PAYSTREAM_SANDBOX_RTGS_RAIL", "settle=50ms"),
];

/// Knobs lifted so that none of the services' rate limits, not the machine,
/// sets the figure: the gateway's per-client limit (1,000/s by default), the
/// providers' call rates (validation makes three calls per payment).
const LIMITS: [(&str, &str, &str); 4] = [
    ("gateway", "PAYSTREAM_GATEWAY_RATE_LIMIT", "100000"),
    ("validation", "PAYSTREAM_VALIDATION_PROVIDER_RATE", "100000"),
    (
        "notifications",
        "PAYSTREAM_NOTIFICATIONS_PROVIDER_RATE",
        "100000",
    ),
    ("rtgs-gateway", "PAYSTREAM_RTGS_GATEWAY_RAIL_RATE", "100000"),
];

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn body(n: usize) -> Value {
    serde_json::json!({
        "amount": format!("{}.{:02}", 1 + n % 9, n % 100), "currency": "EUR",
        "debtor": { "name": "Emily Clarke", "account": payer_account(n % PAYERS), "agentBic": "NWBKGB2L", "country": "GB" },
        "creditor": { "name": "Camille Moreau", "account": CREDITOR, "agentBic": "BNPAFRPP", "country": "FR" },
        "clientIp": "81.2.69.142"
    })
}

/// A payment's settlement, whichever of the worker and the reader is first.
enum Slot {
    Waiting(oneshot::Sender<Instant>),
    Settled(Instant),
}

#[derive(Default)]
struct Settlements {
    slots: Mutex<HashMap<Uuid, Slot>>,
    /// Every payment id seen settled (a repeat counts once).
    seen: Mutex<HashSet<Uuid>>,
}

impl Settlements {
    fn settled(&self, id: Uuid, at: Instant) {
        if !self.seen.lock().unwrap().insert(id) {
            return;
        }
        let mut slots = self.slots.lock().unwrap();
        match slots.remove(&id) {
            Some(Slot::Waiting(tx)) => {
                let _ = tx.send(at);
            }
            _ => {
                slots.insert(id, Slot::Settled(at));
            }
        }
    }

    async fn wait(&self, id: Uuid) -> Option<Instant> {
        let rx = {
            let mut slots = self.slots.lock().unwrap();
            if let Some(Slot::Settled(at)) = slots.get(&id) {
                let at = *at;
                slots.remove(&id);
                return Some(at);
            }
            let (tx, rx) = oneshot::channel();
            slots.insert(id, Slot::Waiting(tx));
            rx
        };
        tokio::time::timeout(SETTLE_TIMEOUT, rx).await.ok()?.ok()
    }
}

/// Submits payment `n` until the gateway accepts it (a retry carries the
/// same Idempotency-Key, so it is the same payment).
async fn submit(http: &reqwest::Client, gateway: &str, run: &str, n: usize) -> Uuid {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = http
            .post(format!("{gateway}/v1/payments"))
            .bearer_auth("paystream-dev-key")
            .header("Idempotency-Key", format!("bench-{run}-{n}"))
            .json(&body(n))
            .send()
            .await;
        let last = match answer {
            Ok(answer) if answer.status() == 202 => {
                let accepted: Value = answer.json().await.unwrap();
                return accepted["paymentId"].as_str().unwrap().parse().unwrap();
            }
            Ok(answer) => format!(
                "{}: {}",
                answer.status(),
                answer.text().await.unwrap_or_default()
            ),
            Err(error) => error.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "payment {n} never accepted: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (submitted, settled) of every payment a worker completed.
type Done = Vec<(Instant, Instant)>;

struct Outcome {
    engine: &'static str,
    in_flight: usize,
    seconds: f64,
    settled_in_window: usize,
    submitted: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// (part, CPU-seconds in the window)
    cpu: Vec<(String, f64)>,
    machine_busy: f64,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.settled_in_window as f64 / self.seconds
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run(
    engine: &'static str,
    storage: Storage,
    warmup: Duration,
    window: Duration,
) -> Outcome {
    let in_flight: usize = env_or("PAYSTREAM_BENCH_IN_FLIGHT", 64);
    let mut options = Options::default().storage(storage).partitions(PARTITIONS);
    for (key, value) in PROVIDERS {
        options = options.env_for("sandbox", key, value);
    }
    for (process, key, value) in LIMITS {
        options = options.env_for(process, key, value);
    }
    // Extra settings for a run, e.g. `cbs-debit:PAYSTREAM_CBS_DEBIT_MAX_CONNECTIONS=8;*:PAYSTREAM_CONSUMER_MAX_IN_FLIGHT=200`.
    let extra = std::env::var("PAYSTREAM_BENCH_ENV").unwrap_or_default();
    for setting in extra.split(';').filter(|s| !s.trim().is_empty()) {
        let (process, assignment) = setting.trim().split_once(':').expect("PROCESS:KEY=VALUE");
        let (key, value) = assignment.split_once('=').expect("PROCESS:KEY=VALUE");
        match ["sandbox"]
            .into_iter()
            .chain(SERVICES)
            .find(|name| *name == process)
        {
            Some(process) => options = options.env_for(process, key, value),
            None if process == "*" => options = options.env(key, value),
            None => panic!("no process {process} in PAYSTREAM_BENCH_ENV"),
        }
    }

    let label = format!("pipeline-bench-{engine}");
    let processes = Processes::start_with(&label, options).await;
    processes
        .operator(
            "cbs-debit",
            &["accounts", "load", "-"],
            &accounts_csv(PAYERS),
        )
        .await;
    let contacts = contacts_csv(PAYERS);
    processes
        .operator(
            "notifications",
            &["contacts", "load", "-"],
            &format!("customer_ref,channel,address\n{contacts}"),
        )
        .await;

    // The settled reader: every rtgs.settled event, as this process sees it.
    let settlements = Arc::new(Settlements::default());
    let reader = {
        let consumer = kafka::reader(
            &processes.pipeline.kafka.bootstrap,
            &processes.pipeline.topic(Topic::RtgsSettled),
            PARTITIONS,
        );
        let codec = processes.pipeline.codec.clone();
        let settlements = settlements.clone();
        tokio::spawn(async move {
            loop {
                let Ok(record) = consumer.recv().await else {
                    continue;
                };
                let at = Instant::now();
                let settled: RtgsSettled = codec.decode(record.payload()).await.unwrap();
                settlements.settled(settled.payment_id, at);
            }
        })
    };

    let mut pids: Vec<(String, Option<String>)> = SERVICES
        .iter()
        .chain(&["sandbox"])
        .map(|name| {
            (
                (*name).to_owned(),
                processes.pid(name).map(|pid| pid.to_string()),
            )
        })
        .collect();
    pids.push((
        "broker".to_owned(),
        broker_pid(&processes.pipeline.kafka.bootstrap),
    ));

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(in_flight)
        .build()
        .unwrap();
    let gateway = processes.url("gateway");
    let run = Uuid::new_v4().simple().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (http, gateway, run, stop, next, settlements) = (
                http.clone(),
                gateway.clone(),
                run.clone(),
                stop.clone(),
                next.clone(),
                settlements.clone(),
            );
            tokio::spawn(async move {
                let mut done: Done = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let submitted = Instant::now();
                    let id = submit(&http, &gateway, &run, n).await;
                    let Some(settled) = settlements.wait(id).await else {
                        panic!("payment {id} (n = {n}) not settled {SETTLE_TIMEOUT:?} after its submission");
                    };
                    done.push((submitted, settled));
                }
                done
            })
        })
        .collect();

    tokio::time::sleep(warmup).await;
    let window_start = Instant::now();
    let cpu_before = CpuSample::now(&pids);
    tokio::time::sleep(window).await;
    let cpu_after = CpuSample::now(&pids);
    let window_end = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let mut done: Done = Vec::new();
    for worker in workers {
        done.extend(worker.await.expect("a worker failed"));
    }
    let submitted = next.load(Ordering::Relaxed);
    // Every payment a worker took a number for was submitted and settled
    // (a worker panics otherwise); and the reader saw each once.
    assert_eq!(done.len(), submitted, "every payment submitted settled");
    let seen = settlements.seen.lock().unwrap().len();
    assert_eq!(seen, submitted, "one settlement seen per payment");
    reader.abort();

    let settled_in_window = done
        .iter()
        .filter(|(_, settled)| *settled >= window_start && *settled < window_end)
        .count();
    let mut latencies: Vec<Duration> = done
        .iter()
        .filter(|(submitted, _)| *submitted >= window_start && *submitted < window_end)
        .map(|(submitted, settled)| settled.duration_since(*submitted))
        .collect();
    latencies.sort();
    let (cpu, machine_busy) = cpu_after.seconds_since(&cpu_before);
    let seconds = window_end.duration_since(window_start).as_secs_f64();
    Outcome {
        engine,
        in_flight,
        seconds,
        settled_in_window,
        submitted,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        cpu,
        machine_busy,
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1_000.0)
}

#[tokio::main]
async fn main() {
    let seconds: u64 = env_or("PAYSTREAM_BENCH_SECONDS", 60);
    let warmup: u64 = env_or("PAYSTREAM_BENCH_WARMUP", 10);
    let engines =
        std::env::var("PAYSTREAM_BENCH_ENGINES").unwrap_or_else(|_| "memory,sqlite".to_owned());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut outcomes = Vec::new();
    for engine in engines.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (engine, storage) = match engine {
            "memory" => ("memory", Storage::Memory),
            "sqlite" => ("sqlite", Storage::Sqlite),
            other => panic!("PAYSTREAM_BENCH_ENGINES: unknown engine {other} (memory, sqlite)"),
        };
        println!("pipeline_throughput: {engine} broker, {warmup} s warm-up, {seconds} s timed ...");
        let outcome = run(
            engine,
            storage,
            Duration::from_secs(warmup),
            Duration::from_secs(seconds),
        )
        .await;
        println!(
            "  {engine}: {:.1} payments/s ({} settled in {:.1} s, {} in flight), p50 {}, p99 {}, max {}; {} submitted, all settled",
            outcome.rate(),
            outcome.settled_in_window,
            outcome.seconds,
            outcome.in_flight,
            ms(outcome.p50),
            ms(outcome.p99),
            ms(outcome.max),
            outcome.submitted,
        );
        outcomes.push(outcome);
    }

    println!();
    println!(
        "Whole pipeline: submit → rtgs.settled ({cores} cores; providers 20 ms, rail 50 ms + settle 50 ms)"
    );
    println!();
    println!("| broker engine | in flight | payments/s | p50 | p99 | machine busy |");
    println!("|---|---:|---:|---:|---:|---:|");
    for outcome in &outcomes {
        println!(
            "| {} | {} | {:.0} | {} | {} | {:.0}% of {cores} cores |",
            outcome.engine,
            outcome.in_flight,
            outcome.rate(),
            ms(outcome.p50),
            ms(outcome.p99),
            100.0 * outcome.machine_busy / outcome.seconds / cores as f64,
        );
    }
    println!();
    println!("CPU in the timed window: ms of CPU per settled payment (share of one core)");
    println!();
    let header: Vec<String> = outcomes.iter().map(|o| o.engine.to_owned()).collect();
    println!("| process | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(outcomes.len()));
    // One row: each run's CPU-seconds by `cpu`, per settled payment and as
    // a share of one core.
    let row = |name: &str, cpu: &dyn Fn(&Outcome) -> f64| {
        let cells: Vec<String> = outcomes
            .iter()
            .map(|o| {
                format!(
                    "{:.2} ms ({:.0}%)",
                    1_000.0 * cpu(o) / o.settled_in_window.max(1) as f64,
                    100.0 * cpu(o) / o.seconds
                )
            })
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    if let Some(first) = outcomes.first() {
        for (index, (name, _)) in first.cpu.iter().enumerate() {
            row(name, &|o| o.cpu[index].1);
        }
        row("all of the above", &|o| {
            o.cpu.iter().map(|(_, cpu)| cpu).sum()
        });
        row("whole machine (busy)", &|o| o.machine_busy);
    }
}
