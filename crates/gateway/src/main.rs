use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Paystream's HTTP front door: payments and card webhooks in, status out.
#[derive(Debug, Parser)]
#[command(version, about, after_help = paystream_telemetry::ENV_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: paystream_gateway::Config,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Print the SHA-256 of an API key, for PAYSTREAM_GATEWAY_API_KEYS.
    HashApiKey { key: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::HashApiKey { key }) = cli.command {
        println!("{}", paystream_gateway::auth::hash_key(&key));
        return Ok(());
    }
    let _telemetry = paystream_telemetry::init("gateway")?;
    let shutdown = paystream_service_kit::shutdown_on_signal();
    paystream_gateway::run(cli.config, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
