//! Provisioning: the topics of the contract, created explicitly with the
//! partition count from one setting, and the contract's schemas registered
//! under `{topic}-value` with the registry's global level set to
//! FULL_TRANSITIVE. Every step is idempotent, so it runs on each deploy.

use std::collections::HashMap;
use std::time::Duration;

use paystream_contract::{RegistryClient, RegistryError, Topic};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// The level the contract evolves under: every new version must be readable by
/// and able to read every earlier one, so producers and consumers upgrade in any order.
pub const CONTRACT_COMPATIBILITY: &str = "FULL_TRANSITIVE";

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "PAYSTREAM_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_bootstrap: String,

    /// Schema registry base URL (Confluent API).
    #[arg(
        long,
        env = "PAYSTREAM_SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub schema_registry_url: String,

    /// Partitions of every topic. Keys (accounts, cards) spread over them, and
    /// they bound how many consumers of one group work in parallel.
    #[arg(long, env = "PAYSTREAM_TOPIC_PARTITIONS", default_value_t = 3)]
    pub partitions: i32,

    /// Replicas of every topic (3 on a production cluster, 1 on a single broker).
    #[arg(long, env = "PAYSTREAM_TOPIC_REPLICATION", default_value_t = 1)]
    pub replication: i32,

    /// How long to wait for the broker and the registry to answer.
    #[arg(long, env = "PAYSTREAM_PROVISION_TIMEOUT_SECS", default_value_t = 30)]
    pub timeout_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot create topic {topic}: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error(
        "topic {topic} has {actual} partitions, configured {configured}; the broker must be asked to add partitions by hand"
    )]
    PartitionMismatch {
        topic: String,
        actual: i32,
        configured: i32,
    },
    #[error("schema registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("schema registry config: {0}")]
    RegistryConfig(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    Created,
    AlreadyThere,
}

/// Creates every contract topic that does not exist yet. A topic that exists
/// with fewer partitions than configured is reported, not silently accepted:
/// partition count decides key placement, so it is changed deliberately.
pub async fn create_topics(config: &Config) -> Result<Vec<(Topic, TopicOutcome)>, ProvisionError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka_bootstrap)
        // Topics exist because provisioning created them, never as a side effect
        // of a metadata request.
        .set("allow.auto.create.topics", "false")
        .create()?;
    let timeout = Duration::from_secs(config.timeout_secs);
    let new_topics: Vec<NewTopic<'_>> = Topic::ALL
        .iter()
        .map(|topic| {
            NewTopic::new(
                topic.name(),
                config.partitions,
                TopicReplication::Fixed(config.replication),
            )
        })
        .collect();
    let results = admin
        .create_topics(
            &new_topics,
            &AdminOptions::new().operation_timeout(Some(timeout)),
        )
        .await?;
    let mut outcomes = Vec::with_capacity(results.len());
    for (topic, result) in Topic::ALL.into_iter().zip(results) {
        let outcome = match result {
            Ok(_) => TopicOutcome::Created,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => TopicOutcome::AlreadyThere,
            Err((name, code)) => return Err(ProvisionError::CreateTopic { topic: name, code }),
        };
        outcomes.push((topic, outcome));
    }
    let partitions = partition_counts(&admin, timeout)?;
    for topic in Topic::ALL {
        let actual = partitions.get(topic.name()).copied().unwrap_or(0);
        if actual < config.partitions {
            return Err(ProvisionError::PartitionMismatch {
                topic: topic.name().to_owned(),
                actual,
                configured: config.partitions,
            });
        }
    }
    Ok(outcomes)
}

fn partition_counts(
    admin: &AdminClient<DefaultClientContext>,
    timeout: Duration,
) -> Result<HashMap<String, i32>, KafkaError> {
    let metadata = admin.inner().fetch_metadata(None, timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .map(|topic| {
            (
                topic.name().to_owned(),
                i32::try_from(topic.partitions().len()).unwrap_or(i32::MAX),
            )
        })
        .collect())
}

/// Sets the registry's global level to FULL_TRANSITIVE and registers every
/// contract schema; returns each subject with its schema id.
pub async fn register_schemas(config: &Config) -> Result<Vec<(String, u32)>, ProvisionError> {
    set_global_compatibility(config, CONTRACT_COMPATIBILITY).await?;
    let registry = RegistryClient::new(
        &config.schema_registry_url,
        Duration::from_secs(config.timeout_secs),
    )?;
    let mut registered = Vec::with_capacity(Topic::ALL.len());
    for topic in Topic::ALL {
        let subject = topic.value_subject();
        let id = registry.register(&subject, topic.schema_text()).await?;
        registered.push((subject, id));
    }
    Ok(registered)
}

async fn set_global_compatibility(config: &Config, level: &str) -> Result<(), ProvisionError> {
    let url = format!(
        "{}/config",
        config.schema_registry_url.trim_end_matches('/')
    );
    let response = reqwest::Client::new()
        .put(&url)
        .timeout(Duration::from_secs(config.timeout_secs))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(serde_json::json!({ "compatibility": level }).to_string())
        .send()
        .await
        .map_err(|error| ProvisionError::RegistryConfig(format!("PUT {url}: {error}")))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(ProvisionError::RegistryConfig(format!(
            "PUT {url}: {status} {body}"
        )));
    }
    Ok(())
}
