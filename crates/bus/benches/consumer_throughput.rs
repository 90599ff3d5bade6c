//! Consumer throughput, printed as a table (`make bench`). Runs on a nisshi
//! broker of its own with the memory engine, so disk speed does not mask the
//! runtime's own limits; the figures in BENCHMARKS.md come from here.
//!
//! Scenarios: a handler that waits a simulated I/O time per record, consumed
//! one record at a time per partition versus key-ordered concurrency, on one
//! and three partitions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use paystream_bus::handler::from_fn;
use paystream_bus::{
    Consumer, ConsumerSettings, Effects, HandlerError, KafkaConfig, Ordering, Producer, Record,
};
use paystream_contract::{Codec, Envelope, PaymentSubmitted, Registration, RegistryClient, Topic};
use paystream_testkit::nisshi::{Nisshi, Storage};
use paystream_testkit::{TestRegistry, kafka, unique, wait_until};
use rand::Rng;
use tokio_util::sync::CancellationToken;

struct Scenario {
    name: &'static str,
    partitions: i32,
    keys: usize,
    records: usize,
    ordering: Ordering,
    io: IoTime,
}

#[derive(Clone, Copy)]
enum IoTime {
    Fixed(Duration),
    UniformUpTo(Duration),
}

fn payment(key: usize, seq: usize) -> PaymentSubmitted {
    let mut payment = paystream_contract::samples::payment_submitted();
    payment.envelope = Envelope::first(format!("corr-{key}-{seq}"), "bench", "bench");
    payment.payment_id = uuid::Uuid::now_v7();
    payment.debtor.account = format!("ACC{key:05}");
    payment.amount_minor = i64::try_from(seq).unwrap();
    payment
}

async fn run(nisshi: &Nisshi, codec: &Codec, scenario: &Scenario) -> f64 {
    let config =
        KafkaConfig::new(nisshi.bootstrap()).with_topic_prefix(format!("{}.", unique("bench")));
    let topic = config.topic(Topic::PaymentSubmitted);
    kafka::create_topic(&config.bootstrap, &topic, scenario.partitions).await;
    let producer = Producer::new(&config, codec.clone(), "bench").unwrap();
    let events: Vec<_> = (0..scenario.records)
        .map(|n| payment(n % scenario.keys, n / scenario.keys))
        .collect();
    for chunk in events.chunks(5_000) {
        producer.send_all(chunk.iter().cloned()).await.unwrap();
    }

    let handled = Arc::new(AtomicUsize::new(0));
    let io = scenario.io;
    let handler = {
        let handled = handled.clone();
        from_fn(move |_: Record<PaymentSubmitted>| {
            let handled = handled.clone();
            async move {
                let wait = match io {
                    IoTime::Fixed(wait) => wait,
                    IoTime::UniformUpTo(max) => max.mul_f64(rand::rng().random_range(0.0..=1.0)),
                };
                tokio::time::sleep(wait).await;
                handled.fetch_add(1, AtomicOrdering::Relaxed);
                Ok::<_, HandlerError>(())
            }
        })
    };
    let shutdown = CancellationToken::new();
    let consumer = Consumer::<PaymentSubmitted>::new(
        config,
        ConsumerSettings::new(unique("bench")).ordering(scenario.ordering),
        codec.clone(),
        Arc::new(producer.clone()),
    );
    let task =
        tokio::spawn(consumer.run(Effects::AtLeastOnce { producer }, handler, shutdown.clone()));
    // The clock starts at the first handled record, so group join time is
    // not counted as consumer throughput.
    wait_until(Duration::from_secs(60), "the first record", || async {
        (handled.load(AtomicOrdering::Relaxed) > 0).then_some(())
    })
    .await;
    let started = Instant::now();
    let from = handled.load(AtomicOrdering::Relaxed);
    wait_until(Duration::from_secs(600), "every record", || async {
        (handled.load(AtomicOrdering::Relaxed) >= scenario.records).then_some(())
    })
    .await;
    let rate = (scenario.records - from) as f64 / started.elapsed().as_secs_f64();
    shutdown.cancel();
    task.await.unwrap().unwrap();
    rate
}

#[tokio::main]
async fn main() {
    let nisshi = Nisshi::start(Storage::Memory).await;
    let registry = TestRegistry::start().await;
    let codec = Codec::new(
        RegistryClient::new(&registry.url, Duration::from_secs(5)).unwrap(),
        Registration::AutoRegister,
    );
    let io_100ms = IoTime::Fixed(Duration::from_millis(100));
    let scenarios = [
        Scenario {
            name: "0-5 ms I/O, partition order (concurrency 1)",
            partitions: 1,
            keys: 1_000,
            records: 1_000,
            ordering: Ordering::Partition,
            io: IoTime::UniformUpTo(Duration::from_millis(5)),
        },
        Scenario {
            name: "0-5 ms I/O, key-ordered concurrency 100",
            partitions: 1,
            keys: 1_000,
            records: 20_000,
            ordering: Ordering::KeyOrdered { max_in_flight: 100 },
            io: IoTime::UniformUpTo(Duration::from_millis(5)),
        },
        Scenario {
            name: "100 ms I/O, 1 partition, concurrency 1",
            partitions: 1,
            keys: 1_000,
            records: 30,
            ordering: Ordering::Partition,
            io: io_100ms,
        },
        Scenario {
            name: "100 ms I/O, 1 partition, key-ordered 1,000",
            partitions: 1,
            keys: 1_000,
            records: 50_000,
            ordering: Ordering::KeyOrdered {
                max_in_flight: 1_000,
            },
            io: io_100ms,
        },
        Scenario {
            name: "100 ms I/O, 3 partitions, concurrency 1",
            partitions: 3,
            keys: 1_000,
            records: 90,
            ordering: Ordering::Partition,
            io: io_100ms,
        },
        Scenario {
            name: "100 ms I/O, 3 partitions, key-ordered 1,000",
            partitions: 3,
            keys: 3_000,
            records: 90_000,
            ordering: Ordering::KeyOrdered {
                max_in_flight: 1_000,
            },
            io: io_100ms,
        },
    ];
    println!(
        "\nconsumer throughput (nisshi, memory engine; {} cores)\n",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!("| scenario | records | records/s |");
    println!("|---|---:|---:|");
    let mut rates = Vec::new();
    for scenario in &scenarios {
        let rate = run(&nisshi, &codec, scenario).await;
        rates.push(rate);
        println!("| {} | {} | {:.0} |", scenario.name, scenario.records, rate);
    }
    println!();
    println!(
        "speed-up, 0-5 ms I/O, concurrency 100 vs 1: {:.1}x",
        rates[1] / rates[0]
    );
    println!(
        "speed-up, 100 ms I/O, 1 partition: {:.0}x",
        rates[3] / rates[2]
    );
    println!(
        "speed-up, 100 ms I/O, 3 partitions: {:.0}x",
        rates[5] / rates[4]
    );
}
