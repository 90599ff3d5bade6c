use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use paystream_notifications::{Config, DatabaseArgs};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tells customers what happened to their payments, by SMS or e-mail
/// through a provider, never twice.
#[derive(Debug, Parser)]
#[command(version, about, after_help = paystream_telemetry::ENV_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: the consumer, the deliverer, the API, health and metrics.
    Serve(Box<Config>),
    /// Customers' contact details.
    Contacts {
        #[command(subcommand)]
        command: ContactsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ContactsCommand {
    /// Load or update contacts from a CSV file (`customer_ref,channel,address`,
    /// customer_ref an account IBAN or a card id, channel SMS or EMAIL).
    Load {
        file: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(config) => {
            let _telemetry = paystream_telemetry::init("notifications")?;
            let shutdown = paystream_service_kit::shutdown_on_signal();
            paystream_notifications::run(*config, shutdown).await?;
        }
        Command::Contacts {
            command: ContactsCommand::Load { file, database },
        } => {
            let csv = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let pool = paystream_notifications::connect(&database).await?;
            let loaded = paystream_notifications::store::load_contacts(&pool, &csv).await?;
            println!("{loaded} contacts loaded from {}", file.display());
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
