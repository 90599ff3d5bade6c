//! A consumer process for the bus's crash tests: they start it, `kill -9` it
//! at a chosen moment and start it again, which only a separate process
//! allows. Not a service; it ships in the crate so that the tests and the
//! runtime build together.
//!
//! It handles `payment.submitted` at least once, on purpose: each handling
//! inserts one row into `handled` outside any claim, so the test sees every
//! handling, repeats included, and can check what the commits promise
//! (nothing skipped, per-key order, bounded repeats after a crash).

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use paystream_bus::{
    Consumer, ConsumerArgs, Context, Effects, Handler, HandlerError, KafkaConfig, Producer, Record,
};
use paystream_contract::{Codec, PaymentSubmitted, Registration, RegistryClient};
use rand::Rng;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    group: String,
    #[arg(long)]
    registry_url: String,
    #[arg(long)]
    database_url: String,
    #[command(flatten)]
    kafka: KafkaConfig,
    #[command(flatten)]
    consumer: ConsumerArgs,
}

struct RecordEveryHandling {
    pool: PgPool,
}

impl Handler<PaymentSubmitted> for RecordEveryHandling {
    async fn handle(
        &self,
        record: Record<PaymentSubmitted>,
        _ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        let pause = rand::rng().random_range(0..3);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        sqlx::query("INSERT INTO handled VALUES ($1, $2, $3, $4)")
            .bind(record.meta.partition)
            .bind(record.meta.offset)
            .bind(&record.event.debtor.account)
            .bind(record.event.amount_minor)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = paystream_telemetry::init("bus-test-consumer")?;
    let args = Args::parse();
    let registry = RegistryClient::new(&args.registry_url, Duration::from_secs(5))?;
    let codec = Codec::new(registry, Registration::AutoRegister);
    let producer = Producer::new(&args.kafka, codec.clone(), "bus-test-consumer")?;
    let pool = PgPool::connect(&args.database_url).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS handled (
            partition INT NOT NULL, record_offset BIGINT NOT NULL,
            account TEXT NOT NULL, seq BIGINT NOT NULL,
            handled_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())",
    )
    .execute(&pool)
    .await?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => tracing::warn!(%error, "cannot listen for SIGTERM"),
        }
        stop.cancel();
    });
    Consumer::<PaymentSubmitted>::new(
        args.kafka.clone(),
        args.consumer.settings(&args.group),
        codec,
        Arc::new(producer.clone()),
    )
    .run(
        Effects::AtLeastOnce { producer },
        RecordEveryHandling { pool },
        shutdown,
    )
    .await?;
    Ok(())
}
