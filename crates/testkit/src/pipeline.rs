//! A slice of the pipeline for one test: the contract's topics under a
//! prefix no other test uses, a schema registry, a codec and a producer, and
//! payments keyed by account whose amount carries their sequence number, so
//! a handler or a test can check the order it saw them in.

use std::time::Duration;

use paystream_bus::{KafkaConfig, Producer};
use paystream_contract::{
    Codec, Envelope, PaymentSubmitted, Registration, RegistryClient, Topic, dead_letter_topic,
};
use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};

use crate::{TestRegistry, kafka};

pub struct Pipeline {
    pub kafka: KafkaConfig,
    pub registry: TestRegistry,
    pub codec: Codec,
    pub producer: Producer,
}

impl Pipeline {
    /// `topics` under a fresh prefix on the dev broker, with `partitions` each.
    pub async fn new(label: &str, topics: &[Topic], partitions: i32) -> Self {
        Self::on(&kafka::bootstrap(), label, topics, partitions).await
    }

    /// The same on another broker (a benchmark's own nisshi, say).
    pub async fn on(bootstrap: &str, label: &str, topics: &[Topic], partitions: i32) -> Self {
        let prefix = format!("{}.", crate::unique(label));
        for topic in topics {
            kafka::create_topic(bootstrap, &format!("{prefix}{}", topic.name()), partitions).await;
        }
        let kafka = KafkaConfig::new(bootstrap).with_topic_prefix(prefix);
        let registry = TestRegistry::start().await;
        let codec = Codec::new(
            RegistryClient::new(&registry.url, Duration::from_secs(5)).unwrap(),
            Registration::AutoRegister,
        );
        let producer = Producer::new(&kafka, codec.clone(), label).unwrap();
        Self {
            kafka,
            registry,
            codec,
            producer,
        }
    }

    /// A service's binary as a process on this slice of the pipeline (its
    /// broker and topic prefix), quiet and killed with the test: what every
    /// crash test starts and SIGKILLs.
    pub fn command(&self, binary: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(binary);
        command
            .env("PAYSTREAM_KAFKA_BOOTSTRAP", &self.kafka.bootstrap)
            .env("PAYSTREAM_TOPIC_PREFIX", &self.kafka.topic_prefix)
            .env("PAYSTREAM_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// The topic's name on the cluster.
    pub fn topic(&self, topic: Topic) -> String {
        self.kafka.topic(topic)
    }

    pub fn dead_letter_topic(&self, topic: Topic, group: &str) -> String {
        dead_letter_topic(&self.topic(topic), group)
    }

    /// Every event on `E`'s topic up to its high watermarks now, decoded.
    pub async fn events<E: paystream_contract::Event>(&self, partitions: i32) -> Vec<E> {
        let mut events = Vec::new();
        for record in self.read_all(E::TOPIC, partitions).await {
            match self.codec.decode(record.payload()).await {
                Ok(event) => events.push(event),
                Err(error) => panic!("a record of {} does not decode: {error}", E::TOPIC.name()),
            }
        }
        events
    }

    /// Every record of `topic` up to its high watermarks now.
    pub async fn read_all(&self, topic: Topic, partitions: i32) -> Vec<OwnedMessage> {
        kafka::read_to_end(&self.kafka.bootstrap, &self.topic(topic), partitions).await
    }
}

/// The `seq`-th payment from `account`; its amount is `seq`.
pub fn payment(account: &str, seq: i64) -> PaymentSubmitted {
    let mut payment = paystream_contract::samples::payment_submitted();
    payment.envelope = Envelope::first(
        format!("corr-{account}-{seq}"),
        format!("request-{account}-{seq}"),
        "test",
    );
    payment.payment_id = uuid::Uuid::now_v7();
    payment.debtor.account = account.to_owned();
    payment.amount_minor = seq;
    payment
}

/// `per_key` payments for each of `keys` accounts, interleaved across keys.
pub fn payments(keys: usize, per_key: i64) -> Vec<PaymentSubmitted> {
    (0..per_key)
        .flat_map(|seq| (0..keys).map(move |key| payment(&format!("ACC{key:05}"), seq)))
        .collect()
}

/// The last value of header `name` of `record`, as text.
pub fn header(record: &OwnedMessage, name: &str) -> Option<String> {
    record
        .headers()?
        .iter()
        .filter(|header| header.key == name)
        .last()
        .and_then(|header| header.value)
        .map(|value| String::from_utf8_lossy(value).into_owned())
}
