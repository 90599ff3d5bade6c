use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use paystream_cbs_debit::{Config, DatabaseArgs, operator};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The core-banking debit ledger: holds payments' amounts, posts or voids
/// them on the rail's answer, posts card transactions.
#[derive(Debug, Parser)]
#[command(version, about, after_help = paystream_telemetry::ENV_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: consumers, the account API, health and metrics.
    Serve(Box<Config>),
    /// Accounts in and out.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// The ledger's invariants.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// Load or top up accounts from a CSV file
    /// (`id,currency,opening_balance_minor,flags[,cards]`); loading the
    /// same file again changes nothing.
    Load {
        file: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Print the sums and every violation; exit non-zero on any.
    Check {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Serve(config) => {
            let _telemetry = paystream_telemetry::init("cbs-debit")?;
            let shutdown = paystream_service_kit::shutdown_on_signal();
            paystream_cbs_debit::run(*config, shutdown).await?;
        }
        Command::Accounts {
            command: AccountsCommand::Load { file, database },
        } => {
            let report = operator::load_accounts_file(&database, &file).await?;
            println!("{report}");
        }
        Command::Ledger {
            command: LedgerCommand::Check { database },
        } => {
            let report = operator::check_ledger(&database).await?;
            println!("{report}");
            if !report.is_clean() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
