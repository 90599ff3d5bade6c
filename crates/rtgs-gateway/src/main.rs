use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sends debited credit transfers to the RTGS rail as ISO 20022 pacs.008,
/// once per payment under its UETR, and brings the rail's outcome back.
#[derive(Debug, Parser)]
#[command(version, about, after_help = paystream_telemetry::ENV_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the service: the consumer, the sender, the callback endpoint,
    /// health and metrics.
    Serve(Box<paystream_rtgs_gateway::Config>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(config) => {
            let _telemetry = paystream_telemetry::init("rtgs-gateway")?;
            let shutdown = paystream_service_kit::shutdown_on_signal();
            paystream_rtgs_gateway::run(*config, shutdown).await?;
        }
    }
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
