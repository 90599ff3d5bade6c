//! The operator's tool for dead letters: list a consumer group's dead
//! letters, or send them back to their topic once the cause is fixed.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use paystream_bus::{KafkaConfig, Producer, RegistryConfig, ReplayMode, ReplayOptions, replay};

/// Lists or replays the dead letters of one consumer group on one topic
/// (`{topic}.{group}.dlq`). Prints one JSON line per dead letter.
#[derive(Debug, Parser)]
#[command(version, after_help = paystream_telemetry::ENV_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    kafka: KafkaConfig,
    #[command(flatten)]
    registry: RegistryConfig,
    /// How long to wait for a record the broker says is there before giving up.
    #[arg(long, env = "PAYSTREAM_DLQ_IDLE_TIMEOUT_MS", default_value_t = 30_000)]
    idle_timeout_ms: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the dead letters not yet replayed; sends and commits nothing.
    List(Target),
    /// Send the dead letters not yet replayed back to their original topic,
    /// with their key, value and headers, and remember how far it got.
    Replay(Target),
}

#[derive(Debug, clap::Args)]
struct Target {
    /// The topic the consumer group failed on, as the contract names it
    /// (e.g. `payment.submitted`); the topic prefix is added.
    #[arg(long)]
    topic: String,
    /// The consumer group whose dead letters these are (e.g. `validation`).
    #[arg(long)]
    group: String,
    /// Only letters of this error class (`handler`, `retries-exhausted`,
    /// `deserialization`, `unknown-schema`, `wrong-schema` …). Progress is
    /// kept per class, so the others wait for a replay of their own.
    #[arg(long)]
    error_class: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = paystream_telemetry::init("paystream-dlq")?;
    let (target, mode) = match &cli.command {
        Command::List(target) => (target, ReplayMode::DryRun),
        Command::Replay(target) => (target, ReplayMode::Replay),
    };
    let topic = format!("{}{}", cli.kafka.topic_prefix, target.topic);
    let dead_letter_topic = paystream_contract::dead_letter_topic(&topic, &target.group);
    let producer = Producer::new(&cli.kafka, cli.registry.codec()?, "paystream-dlq")?;
    let options = ReplayOptions {
        mode,
        error_class: target.error_class.clone(),
        idle_timeout: Duration::from_millis(cli.idle_timeout_ms),
    };
    let letters = replay(&cli.kafka, &producer, &dead_letter_topic, &options)
        .await
        .with_context(|| format!("dead letters of {dead_letter_topic}"))?;
    for letter in &letters {
        println!("{}", letter.to_json());
    }
    eprintln!(
        "{} {} dead letter(s) of {dead_letter_topic}",
        if mode == ReplayMode::Replay {
            "replayed"
        } else {
            "listed"
        },
        letters.len()
    );
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
