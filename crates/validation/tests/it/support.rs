//! A validation service in-process against the dev broker (topics under a
//! prefix of its own), a fresh database, a schema registry and the sandbox
//! over HTTP.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use paystream_bus::{KafkaConfig, Producer, RegistryConfig};
use paystream_contract::{Codec, Envelope, Event, Party, PaymentSubmitted, Topic};
use paystream_sandbox::Behaviour;
use paystream_service_kit::Running;
use paystream_testkit::{TestRegistry, fresh_database, kafka, unique};
use paystream_validation::Config;
use rdkafka::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(60);

pub struct Pipeline {
    pub kafka: KafkaConfig,
    pub codec: Codec,
    pub producer: Producer,
    pub config: Config,
    pub sandbox_url: String,
    pub registry: TestRegistry,
    /// The sandbox's.
    shutdown: CancellationToken,
    /// Stops the service when the test ends.
    _validation: Running,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    config: Config,
}

pub struct Setup {
    pub aml: Behaviour,
    pub screening_bound: Duration,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            aml: Behaviour::default(),
            screening_bound: Duration::from_secs(30),
        }
    }
}

impl Pipeline {
    pub async fn start(setup: Setup) -> Self {
        Self::start_with(setup, |_| {}).await
    }

    /// [`Pipeline::start`], with validation's config changed by `configure`
    /// before it starts.
    pub async fn start_with(setup: Setup, configure: impl FnOnce(&mut Config)) -> Self {
        let shutdown = CancellationToken::new();
        let mut sandbox_config = paystream_sandbox::Config::local();
        sandbox_config.aml = setup.aml;
        let sandbox = paystream_sandbox::Server::build(&sandbox_config)
            .await
            .unwrap();
        let sandbox_url = format!("http://{}", sandbox.local_addr());
        tokio::spawn(sandbox.run(shutdown.clone()));

        let topics = [
            Topic::PaymentSubmitted,
            Topic::PaymentValidated,
            Topic::PaymentRejected,
            Topic::AmlAlertRaised,
        ]
        .map(Topic::name);
        let kafka = KafkaConfig::new(kafka::bootstrap())
            .with_topic_prefix(kafka::namespace("val", &topics, 3).await);
        let registry = TestRegistry::start().await;
        let database = fresh_database().await;
        let mut config = <Defaults as clap::Parser>::parse_from(["test"]).config;
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.database_url = database.url;
        config.ip_intelligence_url = format!("{sandbox_url}/ip-intelligence");
        config.aml_url = format!("{sandbox_url}/aml");
        config.screening_bound_ms = setup.screening_bound.as_millis() as u64;
        configure(&mut config);
        config.kafka = kafka.clone();
        config.registry = RegistryConfig::new(&registry.url).auto_register();
        let validation = paystream_validation::build(&config).await.unwrap().start();

        let codec = config.registry.codec().unwrap();
        let producer = Producer::new(&kafka, codec.clone(), "gateway-stand-in").unwrap();
        Self {
            kafka,
            codec,
            producer,
            config,
            sandbox_url,
            registry,
            shutdown,
            _validation: validation,
        }
    }

    pub async fn submit(&self, payment: PaymentSubmitted) {
        self.producer.send(payment).await.unwrap();
    }

    /// Reads `count` events from a topic, decoded.
    pub async fn read<E: Event>(&self, count: usize) -> Vec<(E, rdkafka::message::OwnedMessage)> {
        let topic = self.kafka.topic(E::TOPIC);
        let consumer = kafka::consumer(&self.kafka.bootstrap, &unique("read"), &[&topic]);
        let mut events = Vec::new();
        for message in kafka::receive(&consumer, count, WAIT).await {
            let event: E = self.codec.decode(message.payload()).await.unwrap();
            events.push((event, message));
        }
        events
    }

    /// Records ever written to a topic: the broker's high watermarks.
    pub fn written(&self, topic: paystream_contract::Topic) -> i64 {
        kafka::records_written(&self.kafka.bootstrap, &self.kafka.topic(topic), 3)
    }

    /// Reads `count` rejections and maps payment id to reason code.
    pub async fn rejections(&self, count: usize) -> HashMap<Uuid, String> {
        self.read::<paystream_contract::PaymentRejected>(count)
            .await
            .into_iter()
            .map(|(event, _)| (event.payment_id, event.reason_code.code().to_owned()))
            .collect()
    }
}

pub fn party(name: &str, account: &str, bic: &str, country: &str) -> Party {
    Party {
        name: name.into(),
        account: account.into(),
        agent_bic: bic.into(),
        country: country.into(),
        address: None,
        date_of_birth: None,
        national_id: None,
    }
}

/// A clean payment: a British debtor paying from a British address (DB-IP
/// places 81.2.69.142 in GB) to a French creditor, under every threshold.
pub fn clean_payment(debtor_account: &str) -> PaymentSubmitted {
    let id = Uuid::now_v7();
    PaymentSubmitted {
        envelope: Envelope::first(format!("corr-{id}"), format!("http:{id}"), "gateway"),
        payment_id: id,
        end_to_end_id: "E2E-TEST".into(),
        uetr: Uuid::new_v4(),
        amount_minor: 25_000,
        currency: "EUR".into(),
        debtor: party("Emily Clarke", debtor_account, "NWBKGB2L", "GB"),
        creditor: party(
            "Camille Moreau",
            "FR1420041010050500013M02606",
            "BNPAFRPP",
            "FR",
        ),
        corridor_code: "GBR-FRA".into(),
        remittance_information: Some("Rent".into()),
        client_ip: Some("81.2.69.142".into()),
    }
}
