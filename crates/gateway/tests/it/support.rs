//! A gateway started in-process for one test, and the requests tests send it.

use std::collections::BTreeSet;
use std::time::Duration;

use paystream_bus::{KafkaConfig, RegistryConfig};
use paystream_contract::Topic;
use paystream_gateway::{Config, Server, api::webhooks::sign, auth::ApiKeys};
use paystream_service_kit::Running;
use paystream_testkit::{TestRegistry, fresh_database, kafka, unique};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const KEY: &str = "test-key-of-acme";
pub const SECRET: &str = "webhook-secret";
pub const WAIT: Duration = Duration::from_secs(30);

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub config: Config,
    _registry: TestRegistry,
    /// Stops the gateway when the test ends.
    _running: Running,
}

pub fn config(kafka: KafkaConfig, registry: &TestRegistry, database_url: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.to_owned(),
        api_keys: ApiKeys::default().with("acme", KEY),
        allow_dev_key: false,
        rate_limit_per_client: 1_000,
        unauthenticated_rate_limit: 10,
        webhook_rate_limit: 200,
        body_limit: 16 * 1024,
        accept_timeout_ms: 3_000,
        webhook_secret: Some(SECRET.into()),
        kafka,
        registry: RegistryConfig::new(&registry.url).auto_register(),
        consumer: paystream_bus::ConsumerArgs::default(),
    }
}

pub async fn spawn_app_with(config: Config, registry: TestRegistry) -> TestApp {
    let running = Server::build(&config).await.unwrap().start();
    let base = running.url();
    TestApp {
        base,
        http: reqwest::Client::new(),
        config,
        _registry: registry,
        _running: running,
    }
}

/// Topics of the test's own on the dev broker.
pub async fn test_topics() -> KafkaConfig {
    let names: Vec<&str> = paystream_gateway::topics()
        .into_iter()
        .map(Topic::name)
        .collect();
    KafkaConfig::new(kafka::bootstrap()).with_topic_prefix(kafka::namespace("gw", &names, 3).await)
}

/// A test's gateway configuration: own topics, registry and database.
pub async fn test_config() -> (Config, TestRegistry) {
    let kafka = test_topics().await;
    let registry = TestRegistry::start().await;
    let database = fresh_database().await;
    let config = config(kafka, &registry, &database.url);
    (config, registry)
}

pub async fn spawn_app() -> TestApp {
    let (config, registry) = test_config().await;
    spawn_app_with(config, registry).await
}

pub fn payment() -> Value {
    json!({
        "endToEndId": "E2E-0001",
        "amount": "1250.50",
        "currency": "EUR",
        "debtor": { "name": "Anna Schmidt", "account": "DE89 3704 0044 0532 0130 00",
                    "agentBic": "COBADEFFXXX", "country": "DE" },
        "creditor": { "name": "Jean Dupont", "account": "FR1420041010050500013M02606",
                      "agentBic": "BNPAFRPP", "country": "FR" },
        "remittanceInformation": "Invoice 42",
        "clientIp": "81.2.69.142"
    })
}

/// A card transaction as the processor describes it in `object_payload`.
pub fn card_transaction(card_transaction_id: &str) -> Value {
    json!({
        "cardtransactionId": card_transaction_id, "cardId": "1234567", "amount": "15.00",
        "currency": "EUR", "cardtransactionStatus": "VALIDATED", "merchantName": "SNCF Automate",
        "merchantCountry": "FR", "codeStatus": "170006", "createdDate": "2024-11-07 14:30:00"
    })
}

/// A webhook delivery of `transaction`, signed with `signature_key`.
pub fn webhook_of(id: &str, transaction: &Value, signature_key: &str) -> String {
    let payload = json!({ "cardtransactions": [transaction] }).to_string();
    let webhook = json!({
        "webhook": "cardtransaction.create", "webhook_id": id,
        "webhook_created_at": 17310000000000_i64, "object": "cardtransaction", "object_id": "190314",
    });
    // The payload goes in as the processor's exact bytes, the signed ones.
    let mut body = webhook.to_string();
    body.pop();
    format!(
        r#"{body},"object_payload":{payload},"object_payload_signature":"{}"}}"#,
        sign(signature_key.as_bytes(), &payload)
    )
}

/// The card transaction `700013016`, delivered under webhook id `id`.
pub fn webhook(id: &str, signature_key: &str) -> String {
    webhook_of(id, &card_transaction("700013016"), signature_key)
}

pub fn header<'a>(message: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    use rdkafka::message::Headers;
    message
        .headers()?
        .iter()
        .find(|header| header.key == name)
        .and_then(|header| std::str::from_utf8(header.value?).ok())
}

/// The distinct `eventId` headers among `records`.
pub fn event_ids(records: &[OwnedMessage]) -> BTreeSet<String> {
    records
        .iter()
        .map(|record| header(record, "eventId").unwrap().to_owned())
        .collect()
}

impl TestApp {
    pub async fn post_payment(
        &self,
        key: Option<&str>,
        body: &Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .post(format!("{}/v1/payments", self.base))
            .bearer_auth(KEY)
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (
            status,
            headers,
            response.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub fn topic(&self, topic: Topic) -> String {
        self.config.kafka.topic(topic)
    }

    /// Records ever written to a topic: the sum of its partitions' high
    /// watermarks (the broker's own count, no consumer involved).
    pub fn records_in(&self, topic: Topic) -> i64 {
        kafka::records_written(&self.config.kafka.bootstrap, &self.topic(topic), 3)
    }

    pub async fn read(&self, topic: Topic, count: usize) -> Vec<OwnedMessage> {
        let topic = self.topic(topic);
        let consumer = kafka::consumer(&self.config.kafka.bootstrap, &unique("read"), &[&topic]);
        kafka::receive(&consumer, count, WAIT).await
    }

    /// Every record on a topic, however many there are.
    pub async fn read_all(&self, topic: Topic) -> Vec<OwnedMessage> {
        let count = usize::try_from(self.records_in(topic)).unwrap();
        let reader = kafka::reader(&self.config.kafka.bootstrap, &self.topic(topic), 3);
        kafka::receive(&reader, count, WAIT).await
    }

    pub async fn webhook(&self, body: String) -> StatusCode {
        self.webhook_response(body).await.0
    }

    pub async fn webhook_response(&self, body: String) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/v1/webhooks/card-transactions", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}
