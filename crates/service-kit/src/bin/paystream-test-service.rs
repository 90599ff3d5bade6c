//! A service built on the runtime, for the runtime's own tests: they start
//! it as a process, `kill -9` it mid-stream and start it again, which only a
//! separate process allows. Not a product service.
//!
//! It consumes `payment.submitted` (and, with `--topics`, more topics) into
//! [`AnyEvent`]. For each payment it writes one `effects` row in the
//! record's transaction and emits `payment.validated` (unless `--no-emit`);
//! records of the other topics are only written down. An amount of -1 makes the handler panic
//! (a poison record).

use clap::Parser;
use paystream_bus::{
    ConsumerArgs, Context, Handler, HandlerError, KafkaConfig, Record, RegistryConfig,
};
use paystream_contract::{AnyEvent, Topic};
use paystream_service_kit::Service;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    #[arg(long)]
    database_url: String,
    #[arg(long)]
    group: String,
    /// Contract topics to consume, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "payment.submitted")]
    topics: Vec<String>,
    /// Handle payments without emitting `payment.validated` (for a test
    /// whose group reads that topic too).
    #[arg(long)]
    no_emit: bool,
    #[command(flatten)]
    kafka: KafkaConfig,
    #[command(flatten)]
    registry: RegistryConfig,
    #[command(flatten)]
    consumer: ConsumerArgs,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./test-service/migrations");

struct Apply {
    emit: bool,
}

impl Handler<AnyEvent> for Apply {
    async fn handle(
        &self,
        record: Record<AnyEvent>,
        ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        let (account, seq) = match &record.event {
            AnyEvent::PaymentSubmitted(payment) => {
                if payment.amount_minor == -1 {
                    panic!("poison payment {}", payment.payment_id);
                }
                (payment.debtor.account.clone(), payment.amount_minor)
            }
            AnyEvent::PaymentValidated(payment) => {
                (payment.debtor.account.clone(), payment.amount_minor)
            }
            AnyEvent::PaymentRejected(payment) => {
                (payment.debtor_account.clone(), payment.amount_minor)
            }
            other => (other.partition_key().to_owned(), 0),
        };
        let output_id = match record.event {
            AnyEvent::PaymentSubmitted(payment) if self.emit => {
                Some(ctx.emit(|envelope| payment.into_validated(envelope)))
            }
            _ => None,
        };
        let event_id = ctx.input().event_id;
        sqlx::query("INSERT INTO effects (event_id, topic, account, seq, output_id) VALUES ($1, $2, $3, $4, $5)")
            .bind(event_id)
            .bind(record.meta.topic.name())
            .bind(account)
            .bind(seq)
            .bind(output_id)
            .execute(ctx.tx().await?)
            .await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = paystream_telemetry::init("paystream-test-service")?;
    let args = Args::parse();
    let topics = args
        .topics
        .iter()
        .map(|name| Topic::from_name(name).ok_or_else(|| anyhow::anyhow!("unknown topic {name}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut service = Service::builder("paystream-test-service", args.listen)
        .database(&args.database_url, &MIGRATOR)
        .kafka(&args.kafka, &args.registry, &args.consumer)
        .build()
        .await?;
    service.consume::<AnyEvent, _>(
        &args.group,
        topics,
        Apply {
            emit: !args.no_emit,
        },
    );
    println!("listening on {}", service.local_addr());
    service
        .run(paystream_service_kit::shutdown_on_signal())
        .await?;
    Ok(())
}
