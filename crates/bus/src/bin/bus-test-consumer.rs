//! A consumer process for the crash tests: they start it, `kill -9` it at a
//! chosen moment and start it again, which only a separate process allows.
//! Not a service; it ships in the crate so that the tests and the runtime
//! build together.
//!
//! Modes:
//! - `record`: handles `payment.submitted` by inserting one row per handling
//!   into `handled` (no deduplication), so the test can see every handling.
//! - `relay`: handles `payment.submitted` by producing `payment.validated`;
//!   with `--hang-after-offset N` it produces for offset N, prints
//!   `produced N`, and hangs before the offset can be committed.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use paystream_bus::{Consumer, ConsumerArgs, HandlerError, KafkaConfig, Producer, Record};
use paystream_contract::{Codec, Envelope, PaymentSubmitted, Registration, RegistryClient};
use rand::Rng;
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Record,
    Relay,
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long)]
    group: String,
    #[arg(long)]
    registry_url: String,
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long)]
    hang_after_offset: Option<i64>,
    #[command(flatten)]
    kafka: KafkaConfig,
    #[command(flatten)]
    consumer: ConsumerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = paystream_telemetry::init("bus-test-consumer")?;
    let args = Args::parse();
    let registry = RegistryClient::new(&args.registry_url, Duration::from_secs(5))?;
    let codec = Codec::new(registry, Registration::AutoRegister);
    let producer = Producer::new(&args.kafka, codec.clone(), "bus-test-consumer")?;
    let settings = args.consumer.settings(&args.group);
    let consumer = Consumer::<PaymentSubmitted>::new(
        args.kafka.clone(),
        settings,
        codec,
        Arc::new(producer.clone()),
    );
    let shutdown = paystream_service_kit::shutdown_on_signal();
    match args.mode {
        Mode::Record => {
            let url = args.database_url.context("--database-url is required")?;
            let pool = PgPool::connect(&url).await?;
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS handled (
                    partition INT NOT NULL, record_offset BIGINT NOT NULL,
                    account TEXT NOT NULL, seq BIGINT NOT NULL,
                    handled_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())",
            )
            .execute(&pool)
            .await?;
            let handler = move |record: Record<PaymentSubmitted>| {
                let pool = pool.clone();
                async move {
                    let pause = rand::rng().random_range(0..3);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    sqlx::query("INSERT INTO handled VALUES ($1, $2, $3, $4)")
                        .bind(record.meta.partition)
                        .bind(record.meta.offset)
                        .bind(&record.event.debtor.account)
                        .bind(record.event.amount_minor)
                        .execute(&pool)
                        .await?;
                    Ok::<_, HandlerError>(())
                }
            };
            consumer.run(handler, shutdown).await?;
        }
        Mode::Relay => {
            let hang_after = args.hang_after_offset;
            let handler = move |record: Record<PaymentSubmitted>| {
                let producer = producer.clone();
                async move {
                    let input = record.event;
                    let output = input.into_validated(Envelope::pending());
                    producer.send(output).await?;
                    if hang_after == Some(record.meta.offset) {
                        println!("produced {}", record.meta.offset);
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, HandlerError>(())
                }
            };
            consumer.run(handler, shutdown).await?;
        }
    }
    Ok(())
}
