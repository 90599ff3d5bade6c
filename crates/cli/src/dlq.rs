//! Dead letters of one consumer group on one topic (`{topic}.{group}.dlq`):
//! listed, or sent back to their topic once the cause is fixed.

use std::time::Duration;

use anyhow::Context as _;
use paystream_bus::{KafkaConfig, Producer, RegistryConfig, ReplayMode, ReplayOptions, replay};

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The topic the consumer group failed on, as the contract names it
    /// (e.g. `payment.submitted`); the topic prefix is added.
    #[arg(long)]
    pub topic: String,
    /// The consumer group whose dead letters these are (e.g. `validation`).
    #[arg(long)]
    pub group: String,
    /// Only letters of this error class (`handler`, `retries-exhausted`,
    /// `deserialization`, `unknown-schema`, `wrong-schema` …). Progress is
    /// kept per class, so the others wait for a replay of their own.
    #[arg(long)]
    pub error_class: Option<String>,
    /// How long to wait for a record the broker says is there before giving up.
    #[arg(long, env = "PAYSTREAM_DLQ_IDLE_TIMEOUT_MS", default_value_t = 30_000)]
    pub idle_timeout_ms: u64,
}

/// Lists (`mode` dry run) or replays the dead letters; one JSON line each
/// on stdout, a summary on stderr.
pub async fn run(
    kafka: &KafkaConfig,
    registry: &RegistryConfig,
    target: &Target,
    mode: ReplayMode,
) -> anyhow::Result<()> {
    let topic = format!("{}{}", kafka.topic_prefix, target.topic);
    let dead_letter_topic = paystream_contract::dead_letter_topic(&topic, &target.group);
    let producer = Producer::new(kafka, registry.codec()?, "paystream")?;
    let options = ReplayOptions {
        mode,
        error_class: target.error_class.clone(),
        idle_timeout: Duration::from_millis(target.idle_timeout_ms),
    };
    let letters = replay(kafka, &producer, &dead_letter_topic, &options)
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
