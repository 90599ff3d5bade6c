//! What the bus tests share: a topic namespace of their own on the dev broker,
//! a schema registry, a producer, and payments keyed by account.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use paystream_bus::{
    BusError, Consumer, ConsumerSettings, DeadLetterSink, Handler, KafkaConfig, Producer,
    RetryPolicy,
};
use paystream_contract::{
    Codec, Envelope, Event, PaymentSubmitted, Registration, RegistryClient, Topic,
};
use paystream_testkit::{TestRegistry, kafka, unique};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Env {
    pub kafka: KafkaConfig,
    pub registry: TestRegistry,
    pub codec: Codec,
    pub producer: Producer,
}

impl Env {
    /// Topics under a prefix no other test uses, with `partitions` each.
    pub async fn new(partitions: i32) -> Self {
        let topics = [Topic::PaymentSubmitted, Topic::PaymentValidated].map(Topic::name);
        let kafka = KafkaConfig::new(kafka::bootstrap())
            .with_topic_prefix(kafka::namespace("bus", &topics, partitions).await);
        let registry = TestRegistry::start().await;
        let codec = Codec::new(
            RegistryClient::new(&registry.url, Duration::from_secs(5)).unwrap(),
            Registration::AutoRegister,
        );
        let producer = Producer::new(&kafka, codec.clone(), "bus-test").unwrap();
        Self {
            kafka,
            registry,
            codec,
            producer,
        }
    }

    pub fn topic(&self, topic: Topic) -> String {
        self.kafka.topic(topic)
    }

    pub fn dead_letter_topic(&self, topic: Topic, group: &str) -> String {
        paystream_contract::dead_letter_topic(&self.topic(topic), group)
    }

    /// Starts a consumer in this process; stop it with [`Running::stop`].
    pub fn start<E: Event, H: Handler<E>>(
        &self,
        settings: ConsumerSettings,
        handler: H,
    ) -> Running {
        self.start_with_sink(settings, Arc::new(self.producer.clone()), handler)
    }

    pub fn start_with_sink<E: Event, H: Handler<E>>(
        &self,
        settings: ConsumerSettings,
        sink: Arc<dyn DeadLetterSink>,
        handler: H,
    ) -> Running {
        let shutdown = CancellationToken::new();
        let consumer = Consumer::<E>::new(self.kafka.clone(), settings, self.codec.clone(), sink);
        let task = tokio::spawn(consumer.run(handler, shutdown.clone()));
        Running { shutdown, task }
    }
}

pub struct Running {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), BusError>>,
}

/// A test that fails must not hang: the runtime it dies in waits for the
/// consumer's poll thread, which stops only when told to.
impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Running {
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("consumer stops within 30 s")
            .expect("consumer task does not panic")
            .expect("consumer ends without error");
    }
}

/// Fast retries, so tests about retrying take milliseconds.
pub fn settings(group: &str) -> ConsumerSettings {
    ConsumerSettings::new(group)
        .retry(RetryPolicy::new([
            Duration::from_millis(50),
            Duration::from_millis(100),
            Duration::from_millis(200),
        ]))
        .dead_letter_backoff(Duration::from_millis(50), Duration::from_millis(400))
}

/// The `seq`-th payment from `account`; `amount_minor` carries `seq` so a
/// handler can check the order it sees.
pub fn payment(account: &str, seq: i64) -> PaymentSubmitted {
    let mut payment = paystream_contract::samples::payment_submitted();
    payment.envelope = Envelope::first(
        format!("corr-{account}-{seq}"),
        format!("request-{account}-{seq}"),
        "bus-test",
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

/// The offset `group` has committed for partition 0 of `topic`, if any.
pub fn committed(env: &Env, group: &str, topic: &str, partition: i32) -> Option<i64> {
    kafka::committed(&env.kafka.bootstrap, group, topic, partition)
}

/// Reads `count` records of `topic` from the start.
pub async fn read_topic(
    env: &Env,
    topic: &str,
    count: usize,
) -> Vec<rdkafka::message::OwnedMessage> {
    kafka::wait_for_topic(&env.kafka.bootstrap, topic, Duration::from_secs(30)).await;
    let reader = kafka::consumer(&env.kafka.bootstrap, &unique("reader"), &[topic]);
    kafka::receive(&reader, count, Duration::from_secs(60)).await
}

pub fn header(record: &rdkafka::message::OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::Message;
    use rdkafka::message::Headers;
    let headers = record.headers()?;
    headers
        .iter()
        .filter(|header| header.key == name)
        .last()
        .and_then(|header| header.value)
        .map(|value| String::from_utf8_lossy(value).into_owned())
}
