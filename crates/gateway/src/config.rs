//! The gateway's settings, and the combinations it refuses to start with.

use std::net::SocketAddr;
use std::time::Duration;

use paystream_bus::{ConsumerArgs, KafkaConfig, RegistryConfig};

use crate::auth::{ApiKeys, DEV_API_KEY};

/// How much sooner than the gateway's answer the producer must give up on a
/// record: librdkafka checks message timeouts once a second, and the event is
/// encoded (a schema-registry lookup, the first time) before it is queued.
pub const PRODUCER_SLACK: Duration = Duration::from_millis(1_500);

/// The shortest accept timeout: it leaves the producer half a second.
pub const MIN_ACCEPT_TIMEOUT: Duration = Duration::from_millis(2_000);

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the API listens on.
    #[arg(
        long,
        env = "PAYSTREAM_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// The gateway's PostgreSQL (idempotency keys, status read model, card
    /// transactions received); migrated at start-up.
    #[arg(
        long,
        env = "PAYSTREAM_GATEWAY_DATABASE_URL",
        default_value = "postgres://gateway:gateway@127.0.0.1:5432/gateway"
    )]
    pub database_url: String,

    /// API clients as `CLIENT:SHA256HEX` pairs, comma-separated (the hash of
    /// the key; `gateway hash-api-key KEY` prints it). Empty: only the
    /// published development key `paystream-dev-key` (client `dev`) is
    /// accepted, and only on a loopback address or with
    /// PAYSTREAM_GATEWAY_ALLOW_DEV_KEY.
    #[arg(long, env = "PAYSTREAM_GATEWAY_API_KEYS", default_value = "")]
    pub api_keys: ApiKeys,

    /// With no API keys, accept the development key even when listening
    /// beyond loopback (a development cluster). Never in production.
    #[arg(long, env = "PAYSTREAM_GATEWAY_ALLOW_DEV_KEY")]
    pub allow_dev_key: bool,

    /// Requests per second each API client may make to /v1/payments.
    #[arg(long, env = "PAYSTREAM_GATEWAY_RATE_LIMIT", default_value_t = 1_000)]
    pub rate_limit_per_client: u32,

    /// Requests per second one client IP may make to /v1/payments without a
    /// valid API key; above it every request from that IP is answered 429
    /// until its allowance refills.
    #[arg(
        long,
        env = "PAYSTREAM_GATEWAY_UNAUTHENTICATED_RATE_LIMIT",
        default_value_t = 10
    )]
    pub unauthenticated_rate_limit: u32,

    /// Requests per second one client IP may make to the card webhook.
    #[arg(
        long,
        env = "PAYSTREAM_GATEWAY_WEBHOOK_RATE_LIMIT",
        default_value_t = 200
    )]
    pub webhook_rate_limit: u32,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "PAYSTREAM_GATEWAY_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,

    /// How long a request waits for the broker's ack before it is answered
    /// without one. The producer gives up 1.5 s sooner (librdkafka's
    /// message.timeout.ms, derived from this), so nothing is delivered
    /// after the answer. At least 2000.
    #[arg(
        long,
        env = "PAYSTREAM_GATEWAY_ACK_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub accept_timeout_ms: u64,

    /// Shared secret of the card processor's webhook signatures. Unset: the
    /// webhook endpoint answers 503.
    #[arg(long, env = "PAYSTREAM_GATEWAY_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// The gateway's producer ignores the bus's 30 s default of
    /// PAYSTREAM_KAFKA_ACK_TIMEOUT_MS and derives its own; a value set above
    /// the derived one is refused.
    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub registry: RegistryConfig,

    #[command(flatten)]
    pub consumer: ConsumerArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "PAYSTREAM_GATEWAY_API_KEYS is empty and the gateway listens on {listen}, beyond loopback, \
         where the published development key `{DEV_API_KEY}` would let anyone in: set \
         PAYSTREAM_GATEWAY_API_KEYS (`gateway hash-api-key KEY` prints an entry), listen on \
         127.0.0.1, or set PAYSTREAM_GATEWAY_ALLOW_DEV_KEY=true on a development cluster"
    )]
    NoApiKeys { listen: SocketAddr },
    #[error(
        "PAYSTREAM_GATEWAY_ACK_TIMEOUT_MS={accept_ms} leaves the producer no time: it must be at \
         least {min_ms} (the producer gives up {slack_ms} ms before the answer)",
        min_ms = MIN_ACCEPT_TIMEOUT.as_millis(),
        slack_ms = PRODUCER_SLACK.as_millis()
    )]
    AcceptTimeoutTooShort { accept_ms: u64 },
    #[error(
        "PAYSTREAM_KAFKA_ACK_TIMEOUT_MS={kafka_ms} lets the producer deliver a payment after the \
         gateway answered that it was not acknowledged (PAYSTREAM_GATEWAY_ACK_TIMEOUT_MS=\
         {accept_ms}): set it to at most {max_ms}, or leave it unset and the gateway derives it"
    )]
    ProducerOutlivesAnswer {
        kafka_ms: u64,
        accept_ms: u64,
        max_ms: u64,
    },
}

impl Config {
    pub fn accept_timeout(&self) -> Duration {
        Duration::from_millis(self.accept_timeout_ms)
    }

    /// The API keys to accept: the configured ones, or the development key
    /// where only this machine can reach the gateway (or it was asked for).
    pub fn effective_api_keys(&self) -> Result<ApiKeys, ConfigError> {
        if !self.api_keys.is_empty() {
            return Ok(self.api_keys.clone());
        }
        if !self.listen.ip().is_loopback() && !self.allow_dev_key {
            return Err(ConfigError::NoApiKeys {
                listen: self.listen,
            });
        }
        tracing::warn!(
            listen = %self.listen,
            "no PAYSTREAM_GATEWAY_API_KEYS: accepting only the published development key `{DEV_API_KEY}`"
        );
        Ok(ApiKeys::dev())
    }

    /// The Kafka settings of the gateway's producer: its librdkafka
    /// `message.timeout.ms` ends before the gateway answers, so a payment
    /// answered without an ack is never delivered behind the client's back.
    pub fn producer_kafka(&self) -> Result<KafkaConfig, ConfigError> {
        let accept = self.accept_timeout();
        if accept < MIN_ACCEPT_TIMEOUT {
            return Err(ConfigError::AcceptTimeoutTooShort {
                accept_ms: self.accept_timeout_ms,
            });
        }
        let derived = u64::try_from((accept - PRODUCER_SLACK).as_millis()).unwrap_or(u64::MAX);
        let mut kafka = self.kafka.clone();
        kafka.ack_timeout_ms = Some(match self.kafka.ack_timeout_ms {
            None => derived,
            Some(configured) if configured > 0 && configured <= derived => configured,
            Some(configured) => {
                return Err(ConfigError::ProducerOutlivesAnswer {
                    kafka_ms: configured,
                    accept_ms: self.accept_timeout_ms,
                    max_ms: derived,
                });
            }
        });
        Ok(kafka)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> Config {
        Cli::try_parse_from(std::iter::once("gateway").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{e}"))
            .config
    }

    #[test]
    fn the_producer_gives_up_before_the_gateway_answers() {
        let defaults = parse(&[]);
        assert_eq!(
            defaults
                .producer_kafka()
                .map(|k| k.ack_timeout_ms)
                .ok()
                .flatten(),
            Some(3_500)
        );
        let longer = parse(&["--accept-timeout-ms", "10000"]);
        assert_eq!(
            longer
                .producer_kafka()
                .map(|k| k.ack_timeout_ms)
                .ok()
                .flatten(),
            Some(8_500)
        );
        let shorter_producer = parse(&["--kafka-ack-timeout-ms", "1000"]);
        assert_eq!(
            shorter_producer
                .producer_kafka()
                .map(|k| k.ack_timeout_ms)
                .ok()
                .flatten(),
            Some(1_000)
        );
    }

    #[test]
    fn a_producer_timeout_outliving_the_answer_is_refused() {
        let error = parse(&["--kafka-ack-timeout-ms", "5000"])
            .producer_kafka()
            .err();
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("at most 3500"), "{message}");
        assert!(
            parse(&["--kafka-ack-timeout-ms", "0"])
                .producer_kafka()
                .is_err()
        );
        assert!(
            parse(&["--accept-timeout-ms", "1999"])
                .producer_kafka()
                .is_err()
        );
    }

    #[test]
    fn the_development_key_is_only_for_loopback_or_when_asked_for() {
        let keys = |config: Config| config.effective_api_keys().map(|k| k.is_empty());
        assert_eq!(keys(parse(&[])).ok(), Some(false), "loopback: the dev key");
        let exposed = parse(&["--listen", "0.0.0.0:8080"]);
        assert!(matches!(keys(exposed), Err(ConfigError::NoApiKeys { .. })));
        let asked = parse(&["--listen", "0.0.0.0:8080", "--allow-dev-key"]);
        assert_eq!(keys(asked).ok(), Some(false));
        let configured = parse(&[
            "--listen",
            "0.0.0.0:8080",
            "--api-keys",
            &format!("acme:{}", "a".repeat(64)),
        ]);
        assert_eq!(keys(configured).ok(), Some(false));
    }
}
