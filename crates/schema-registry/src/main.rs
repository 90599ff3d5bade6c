use clap::Parser;

/// Confluent-API-compatible schema registry for Paystream, backed by PostgreSQL.
#[derive(Debug, Parser)]
#[command(version, about, after_help = paystream_telemetry::ENV_HELP)]
struct Cli {
    #[command(flatten)]
    config: paystream_schema_registry::Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = paystream_telemetry::init("schema-registry")?;
    let shutdown = paystream_service_kit::shutdown_on_signal();
    paystream_schema_registry::run(cli.config, shutdown).await?;
    Ok(())
}
