use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Validates submitted payments (rules, IP intelligence, AML screening) and
/// decides each exactly once.
#[derive(Debug, Parser)]
#[command(version, about, after_help = paystream_telemetry::ENV_HELP)]
struct Cli {
    #[command(flatten)]
    config: paystream_validation::Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = paystream_telemetry::init("validation")?;
    let shutdown = paystream_service_kit::shutdown_on_signal();
    paystream_validation::run(cli.config, shutdown).await?;
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
