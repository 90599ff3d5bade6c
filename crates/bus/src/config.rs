//! Kafka client settings, from the environment (`PAYSTREAM_KAFKA_*`).

use std::time::Duration;

use paystream_contract::Topic;
use rdkafka::ClientConfig;

use crate::consumer::ConsumerSettings;
use crate::retry::{RetryPolicy, parse_schedule};
use crate::scheduler::Ordering;

/// librdkafka's `message.timeout.ms` when nothing else is set.
pub const DEFAULT_ACK_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Clone, clap::Args)]
pub struct KafkaConfig {
    /// Kafka bootstrap servers.
    #[arg(
        long = "kafka-bootstrap",
        env = "PAYSTREAM_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap: String,

    /// How long a produced record may wait for the broker's ack before the
    /// send fails (librdkafka `message.timeout.ms`). Unset: 30000, unless
    /// the service derives its own (the gateway does).
    #[arg(long = "kafka-ack-timeout-ms", env = "PAYSTREAM_KAFKA_ACK_TIMEOUT_MS")]
    pub ack_timeout_ms: Option<u64>,

    /// How long the group waits for a silent consumer (a crashed pod)
    /// before giving its partitions to another. Kafka's default is 45 s; a
    /// payment pipeline would rather fail over in seconds.
    #[arg(
        long = "kafka-session-timeout-ms",
        env = "PAYSTREAM_KAFKA_SESSION_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub session_timeout_ms: u64,

    /// Prepended to every topic name, to share one cluster between
    /// environments (`staging.`) or test runs. Schema subjects keep the
    /// contract's names: the events are the same.
    #[arg(
        long = "kafka-topic-prefix",
        env = "PAYSTREAM_TOPIC_PREFIX",
        default_value = ""
    )]
    pub topic_prefix: String,

    /// Extra librdkafka properties, `name=value` pairs separated by commas,
    /// e.g. `security.protocol=SASL_SSL,sasl.mechanism=PLAIN`. They override
    /// the defaults except those the guarantees depend on (idempotence, acks,
    /// manual commits).
    #[arg(
        long = "kafka-properties",
        env = "PAYSTREAM_KAFKA_PROPERTIES",
        default_value = ""
    )]
    pub properties: String,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self::new("127.0.0.1:9092")
    }
}

impl KafkaConfig {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            ack_timeout_ms: None,
            session_timeout_ms: 10_000,
            topic_prefix: String::new(),
            properties: String::new(),
        }
    }

    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms.unwrap_or(DEFAULT_ACK_TIMEOUT_MS))
    }

    pub fn with_topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    /// The name of `topic` on this cluster.
    pub fn topic(&self, topic: Topic) -> String {
        format!("{}{}", self.topic_prefix, topic.name())
    }

    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        for (name, value) in self
            .properties
            .split(',')
            .filter_map(|pair| pair.split_once('='))
        {
            config.set(name.trim(), value.trim());
        }
        config
    }

    /// Idempotent, acks from all in-sync replicas, Java's murmur2 partitioner
    /// so a key lands where a Java client would put it.
    pub fn producer(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set(
                "message.timeout.ms",
                self.ack_timeout().as_millis().to_string(),
            );
        // A default, not a guarantee: `PAYSTREAM_KAFKA_PROPERTIES` may set
        // its own (a front door trades batching for latency differently
        // from a relay).
        if config.get("linger.ms").is_none() {
            config.set("linger.ms", "2");
        }
        config
    }

    /// Manual commits only, reading a new group from the start.
    pub fn consumer(&self, group: &str) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                (self.session_timeout_ms / 10).max(100).to_string(),
            )
            .set("enable.partition.eof", "false");
        config
    }

    /// An admin client that never creates topics as a side effect.
    pub fn admin(&self) -> ClientConfig {
        let mut config = self.base();
        config.set("allow.auto.create.topics", "false");
        config
    }
}

/// How a service's consumer works through its topic, from the environment
/// (`PAYSTREAM_CONSUMER_*`); turned into [`ConsumerSettings`] for a group.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumerArgs {
    /// `key` (records of one key in order, keys concurrent), `partition`
    /// (one record at a time per partition) or `unordered`.
    #[arg(long = "consumer-ordering", env = "PAYSTREAM_CONSUMER_ORDERING", default_value = "key", value_parser = ["key", "partition", "unordered"])]
    pub ordering: String,

    /// Records in flight per partition (key and unordered modes).
    #[arg(
        long = "consumer-max-in-flight",
        env = "PAYSTREAM_CONSUMER_MAX_IN_FLIGHT",
        default_value_t = 100
    )]
    pub max_in_flight: usize,

    /// Back-off before each retry of a transient failure, e.g. `1s,5s,30s`;
    /// after the last, the record is dead-lettered.
    #[arg(
        long = "consumer-retry-schedule",
        env = "PAYSTREAM_CONSUMER_RETRY_SCHEDULE",
        default_value = "1s,5s,30s",
        value_parser = parse_schedule_arg
    )]
    pub retry_schedule: RetrySchedule,

    /// On shutdown or partition revocation, how long records in flight get
    /// to finish before they are left for redelivery.
    #[arg(
        long = "consumer-drain-deadline-ms",
        env = "PAYSTREAM_CONSUMER_DRAIN_DEADLINE_MS",
        default_value_t = 10_000
    )]
    pub drain_deadline_ms: u64,

    /// Replication of dead-letter topics the consumer creates (3 on a
    /// production cluster, 1 on a single broker).
    #[arg(
        long = "topic-replication",
        env = "PAYSTREAM_TOPIC_REPLICATION",
        default_value_t = 1
    )]
    pub topic_replication: i32,
}

/// A parsed retry schedule (a newtype so clap treats it as one value).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule(pub Vec<Duration>);

fn parse_schedule_arg(text: &str) -> Result<RetrySchedule, String> {
    parse_schedule(text).map(RetrySchedule)
}

impl Default for ConsumerArgs {
    /// The same defaults as the command line's.
    fn default() -> Self {
        Self {
            ordering: "key".to_owned(),
            max_in_flight: 100,
            retry_schedule: RetrySchedule(RetryPolicy::default().delays),
            drain_deadline_ms: 10_000,
            topic_replication: 1,
        }
    }
}

impl ConsumerArgs {
    pub fn settings(&self, group: impl Into<String>) -> ConsumerSettings {
        let ordering = match self.ordering.as_str() {
            "partition" => Ordering::Partition,
            "unordered" => Ordering::Unordered {
                max_in_flight: self.max_in_flight,
            },
            _ => Ordering::KeyOrdered {
                max_in_flight: self.max_in_flight,
            },
        };
        let mut settings = ConsumerSettings::new(group)
            .ordering(ordering)
            .retry(RetryPolicy::new(self.retry_schedule.0.clone()))
            .drain_deadline(Duration::from_millis(self.drain_deadline_ms));
        settings.dead_letter_replication = self.topic_replication;
        settings
    }
}

/// Where the schema registry is (`PAYSTREAM_SCHEMA_REGISTRY_*`).
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryConfig {
    /// Schema registry base URL (Confluent API).
    #[arg(
        long = "schema-registry-url",
        env = "PAYSTREAM_SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub url: String,

    /// Register the contract's schemas on first use instead of only looking
    /// them up. Off in deployments, where provisioning registers them under
    /// FULL_TRANSITIVE; on for tests with a fresh registry.
    #[arg(
        long = "schema-auto-register",
        env = "PAYSTREAM_SCHEMA_AUTO_REGISTER",
        default_value_t = false
    )]
    pub auto_register: bool,
}

impl RegistryConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            auto_register: false,
        }
    }

    pub fn auto_register(mut self) -> Self {
        self.auto_register = true;
        self
    }

    pub fn codec(&self) -> Result<paystream_contract::Codec, paystream_contract::RegistryError> {
        let registry = paystream_contract::RegistryClient::new(&self.url, Duration::from_secs(5))?;
        let registration = if self.auto_register {
            paystream_contract::Registration::AutoRegister
        } else {
            paystream_contract::Registration::LookupOnly
        };
        Ok(paystream_contract::Codec::new(registry, registration))
    }
}
