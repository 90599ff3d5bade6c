use clap::Parser;

/// The external providers Paystream calls (IP intelligence, AML screening,
/// the RTGS rail, SMS and e-mail), played over HTTP from real reference data
/// with configurable latency, failures and rate limits.
#[derive(Debug, Parser)]
#[command(version, about, after_help = paystream_telemetry::ENV_HELP)]
struct Cli {
    #[command(flatten)]
    config: paystream_sandbox::Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = paystream_telemetry::init("sandbox")?;
    let shutdown = paystream_service_kit::shutdown_on_signal();
    paystream_sandbox::run(cli.config, shutdown).await?;
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
