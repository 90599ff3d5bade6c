use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use paystream_bus::{KafkaConfig, RegistryConfig, ReplayMode};
use paystream_cli::{dlq, lag, load, reconcile, table, trace};

/// The operator's command line for the Paystream pipeline.
#[derive(Debug, Parser)]
#[command(name = "paystream", version, about, after_help = paystream_telemetry::ENV_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every event of one payment across all services, in causal order,
    /// with its dead letters (from the audit log).
    Trace(trace::Args),
    /// Dead letters of one consumer group on one topic.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
        #[command(flatten)]
        kafka: KafkaConfig,
        #[command(flatten)]
        registry: RegistryConfig,
    },
    /// Each consumer group's lag per topic and partition.
    Lag {
        /// Groups to report (default: every group of the pipeline).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        kafka: KafkaConfig,
    },
    /// Send a load of payments through the gateway and summarise where
    /// they ended.
    Load(Box<load::Args>),
    /// Compare every service's own records, payment by payment; exit 1 on
    /// any disagreement.
    Reconcile(Box<reconcile::Args>),
    /// The ledger's invariants.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List the dead letters not yet replayed; sends and commits nothing.
    List(dlq::Target),
    /// Send the dead letters not yet replayed back to their original topic,
    /// with their key, value and headers, and remember how far it got.
    Replay(dlq::Target),
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Print the sums and every violation; exit non-zero on any.
    Check {
        #[command(flatten)]
        database: paystream_cbs_debit::DatabaseArgs,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let _telemetry = paystream_telemetry::init("paystream")?;
    match cli.command {
        Command::Trace(args) => return trace::run(&args).await,
        Command::Load(args) => load::run(&args).await?,
        Command::Reconcile(args) => {
            let found = reconcile::reconcile(&args).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                print!("{}", reconcile::render(&found));
            }
            if !found.disagreements.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Dlq {
            command,
            kafka,
            registry,
        } => {
            let (target, mode) = match &command {
                DlqCommand::List(target) => (target, ReplayMode::DryRun),
                DlqCommand::Replay(target) => (target, ReplayMode::Replay),
            };
            dlq::run(&kafka, &registry, target, mode).await?;
        }
        Command::Lag {
            groups,
            json,
            kafka,
        } => {
            let groups = if groups.is_empty() {
                lag::GROUPS
                    .iter()
                    .map(|group| (*group).to_owned())
                    .collect()
            } else {
                groups
            };
            let rows = tokio::task::spawn_blocking(move || lag::lag(&kafka, &groups))
                .await
                .context("the lag query was interrupted")??;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|row| {
                        vec![
                            row.group.clone(),
                            row.topic.clone(),
                            row.partition.to_string(),
                            row.committed.to_string(),
                            row.end.to_string(),
                            row.lag.to_string(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table::render(
                        &["GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"],
                        &cells
                    )
                );
            }
        }
        Command::Ledger {
            command: LedgerCommand::Check { database },
        } => {
            let report = paystream_cbs_debit::operator::check_ledger(&database).await?;
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
