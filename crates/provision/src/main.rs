use clap::{Parser, Subcommand};
use paystream_provision::{Config, create_topics, register_schemas};

/// Creates Paystream's topics and registers its event schemas. Safe to run again.
#[derive(Debug, Parser)]
#[command(version, about, after_help = paystream_telemetry::ENV_HELP)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Step>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
enum Step {
    /// Create the contract's topics.
    Topics,
    /// Set FULL_TRANSITIVE and register the contract's schemas.
    Schemas,
    /// Both (the default).
    All,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = paystream_telemetry::init("provision")?;
    let step = cli.command.unwrap_or(Step::All);
    if matches!(step, Step::Topics | Step::All) {
        for (topic, outcome) in create_topics(&cli.config).await? {
            tracing::info!(%topic, ?outcome, partitions = cli.config.partitions, "topic");
        }
    }
    if matches!(step, Step::Schemas | Step::All) {
        for (subject, id) in register_schemas(&cli.config).await? {
            tracing::info!(subject, id, "schema registered");
        }
    }
    Ok(())
}
