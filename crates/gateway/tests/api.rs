//! The gateway over real HTTP, against the dev broker (topics under a prefix
//! of the test's own), a fresh PostgreSQL database and a schema registry.
// Test helpers fail the test by panicking; that is their error report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use paystream_bus::{KafkaConfig, Producer, RegistryConfig};
use paystream_contract::{Envelope, Topic};
use paystream_gateway::{Config, Server, api::webhooks::sign, auth::ApiKeys};
use paystream_testkit::{TestRegistry, fresh_database, kafka, unique, wait_until};
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const KEY: &str = "test-key-of-acme";
const SECRET: &str = "webhook-secret";
const WAIT: Duration = Duration::from_secs(30);

struct TestApp {
    base: String,
    http: reqwest::Client,
    config: Config,
    _registry: TestRegistry,
    shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn config(kafka: KafkaConfig, registry: &TestRegistry, database_url: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.to_owned(),
        api_keys: ApiKeys::default().with("acme", KEY),
        rate_limit_per_client: 1_000,
        body_limit: 16 * 1024,
        accept_timeout_ms: 3_000,
        webhook_secret: Some(SECRET.into()),
        kafka,
        registry: RegistryConfig::new(&registry.url).auto_register(),
        consumer: <ConsumerDefaults as clap::Parser>::parse_from(["test"]).args,
    }
}

/// The consumer settings a deployment gets by default.
#[derive(clap::Parser)]
struct ConsumerDefaults {
    #[command(flatten)]
    args: paystream_bus::ConsumerArgs,
}

async fn spawn_app_with(config: Config, registry: TestRegistry) -> TestApp {
    let server = Server::build(&config).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone()));
    TestApp {
        base,
        http: reqwest::Client::new(),
        config,
        _registry: registry,
        shutdown,
    }
}

async fn spawn_app() -> TestApp {
    let topics = [
        Topic::PaymentSubmitted,
        Topic::PaymentValidated,
        Topic::PaymentRejected,
        Topic::CardTransactionReceived,
    ]
    .map(Topic::name);
    let kafka = KafkaConfig::new(kafka::bootstrap())
        .with_topic_prefix(kafka::namespace("gw", &topics, 3).await);
    let registry = TestRegistry::start().await;
    let database = fresh_database().await;
    spawn_app_with(config(kafka, &registry, &database.url), registry).await
}

fn payment() -> Value {
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

impl TestApp {
    async fn post_payment(
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

    async fn get(&self, path: &str) -> (StatusCode, Value) {
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

    fn topic(&self, topic: Topic) -> String {
        self.config.kafka.topic(topic)
    }

    /// Records ever written to a topic: the sum of its partitions' high
    /// watermarks (the broker's own count, no consumer involved).
    fn records_in(&self, topic: Topic) -> i64 {
        let topic = self.topic(topic);
        let consumer: rdkafka::consumer::BaseConsumer =
            kafka::consumer_config(&self.config.kafka.bootstrap, &unique("count"))
                .create()
                .unwrap();
        (0..3)
            .map(|partition| {
                consumer
                    .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                    .map(|(_, high)| high)
                    .unwrap()
            })
            .sum()
    }

    async fn read(&self, topic: Topic, count: usize) -> Vec<rdkafka::message::OwnedMessage> {
        let topic = self.topic(topic);
        let consumer = kafka::consumer(&self.config.kafka.bootstrap, &unique("read"), &[&topic]);
        kafka::receive(&consumer, count, WAIT).await
    }

    async fn webhook(&self, body: String) -> StatusCode {
        self.http
            .post(format!("{}/v1/webhooks/card-transactions", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }
}

fn header<'a>(message: &'a rdkafka::message::OwnedMessage, name: &str) -> Option<&'a str> {
    use rdkafka::message::Headers;
    message
        .headers()?
        .iter()
        .find(|header| header.key == name)
        .and_then(|header| std::str::from_utf8(header.value?).ok())
}

#[tokio::test]
async fn an_accepted_payment_is_on_kafka_keyed_by_debtor_with_the_correlation_of_the_202() {
    let app = spawn_app().await;
    let (status, headers, body) = app.post_payment(Some("order-1"), &payment()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let payment_id = body["paymentId"].as_str().unwrap();
    let correlation = body["correlationId"].as_str().unwrap();
    assert_eq!(
        headers["location"],
        format!("/v1/payments/{payment_id}").as_str()
    );

    let records = app.read(Topic::PaymentSubmitted, 1).await;
    let record = &records[0];
    assert_eq!(record.key(), Some("DE89370400440532013000".as_bytes()));
    assert_eq!(header(record, "correlationId"), Some(correlation));
    assert!(header(record, "traceparent").is_some());

    let (status, view) = app.get(&format!("/v1/payments/{payment_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"], "SUBMITTED");
    assert_eq!(view["correlationId"], correlation);
}

#[tokio::test]
async fn the_same_key_and_body_replays_the_202_and_another_body_is_refused() {
    let app = spawn_app().await;
    let (first_status, _, first) = app.post_payment(Some("order-2"), &payment()).await;
    assert_eq!(first_status, StatusCode::ACCEPTED);

    // The same body, keys in another order: the same payment, nothing new sent.
    let reordered: Value = serde_json::from_str(&payment().to_string()).unwrap();
    let (again_status, _, again) = app.post_payment(Some("order-2"), &reordered).await;
    assert_eq!(again_status, StatusCode::ACCEPTED);
    assert_eq!(again["paymentId"], first["paymentId"]);

    let mut changed = payment();
    changed["amount"] = json!("1250.51");
    let (status, headers, problem) = app.post_payment(Some("order-2"), &changed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("idempotency-key-reused")
    );

    // Another key is another payment.
    let (_, _, other) = app.post_payment(Some("order-3"), &payment()).await;
    assert_ne!(other["paymentId"], first["paymentId"]);

    assert_eq!(app.records_in(Topic::PaymentSubmitted), 2);
}

#[tokio::test]
async fn a_refused_request_lists_every_bad_field_and_reaches_no_topic() {
    let app = spawn_app().await;
    let mut bad = payment();
    bad["amount"] = json!("12.345");
    bad["currency"] = json!("XYZ");
    bad["debtor"]["account"] = json!("DE89370400440532013001");
    bad["creditor"]["agentBic"] = json!("BNPA");
    bad["clientIp"] = json!("not-an-ip");
    let (status, headers, problem) = app.post_payment(Some("bad-1"), &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(headers["content-type"], "application/problem+json");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "currency",
            "debtor.account",
            "creditor.agentBic",
            "clientIp"
        ]
    );

    let (status, _, _) = app.post_payment(None, &payment()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no Idempotency-Key");
    // Each refused in its own way; `send` adds only the Idempotency-Key.
    let send = |key: &str, request: reqwest::RequestBuilder| {
        let request = request.header("Idempotency-Key", key);
        async move { request.send().await.unwrap() }
    };
    let post = || app.http.post(format!("{}/v1/payments", app.base));
    let malformed = send(
        "bad-2",
        post()
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body("{\"amount\": "),
    )
    .await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let unauthenticated = send("bad-3", post().json(&payment())).await;
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let conflicting_keys = send(
        "bad-5",
        post()
            .bearer_auth(KEY)
            .header("X-Api-Key", "not-the-key")
            .json(&payment()),
    )
    .await;
    assert_eq!(conflicting_keys.status(), StatusCode::UNAUTHORIZED);
    let unusable_correlation = send(
        "bad-6",
        post()
            .bearer_auth(KEY)
            .header("X-Correlation-Id", "x".repeat(65))
            .json(&payment()),
    )
    .await;
    assert_eq!(unusable_correlation.status(), StatusCode::BAD_REQUEST);
    let too_big = send(
        "bad-4",
        post()
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(format!(
                "{{\"remittanceInformation\": \"{}\"}}",
                "x".repeat(20_000)
            )),
    )
    .await;
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        too_big.headers()["content-type"],
        "application/problem+json"
    );

    assert_eq!(app.records_in(Topic::PaymentSubmitted), 0);
}

#[tokio::test]
async fn without_a_broker_ack_the_client_gets_503_and_its_retry_is_the_same_payment() {
    let working = spawn_app().await;
    // The same database and topics, but a broker address nothing listens on.
    let mut config = working.config.clone();
    config.kafka.bootstrap = format!("127.0.0.1:{}", paystream_testkit::free_port());
    config.accept_timeout_ms = 500;
    let registry = TestRegistry::start().await;
    config.registry = RegistryConfig::new(&registry.url).auto_register();
    let broken = spawn_app_with(config, registry).await;

    let (status, headers, problem) = broken.post_payment(Some("retry-1"), &payment()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert!(headers.contains_key("retry-after"));

    let (status, _, accepted) = working.post_payment(Some("retry-1"), &payment()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let records = working.read(Topic::PaymentSubmitted, 1).await;
    assert_eq!(
        header(&records[0], "correlationId"),
        accepted["correlationId"].as_str()
    );
    let (status, view) = working
        .get(&format!(
            "/v1/payments/{}",
            accepted["paymentId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"], "SUBMITTED");
}

#[tokio::test]
async fn the_status_follows_the_pipeline_topics() {
    let app = spawn_app().await;
    let (_, _, accepted) = app.post_payment(Some("status-1"), &payment()).await;
    let payment_id: uuid::Uuid = accepted["paymentId"].as_str().unwrap().parse().unwrap();

    let codec = app.config.registry.codec().unwrap();
    let producer = Producer::new(&app.config.kafka, codec, "validation-stand-in").unwrap();
    let mut rejected = paystream_contract::samples::payment_rejected();
    rejected.envelope = Envelope::first(accepted["correlationId"].as_str().unwrap(), "test", "");
    rejected.payment_id = payment_id;
    producer.send(rejected).await.unwrap();

    let path = format!("/v1/payments/{payment_id}");
    let view = wait_until(WAIT, "the payment to show REJECTED", || async {
        let (_, view) = app.get(&path).await;
        (view["status"] == "REJECTED").then_some(view)
    })
    .await;
    assert_eq!(view["reasonCode"], "SANCTIONS_MATCH");

    // A late VALIDATED (redelivered, or raced) does not move it back.
    let mut validated = paystream_contract::samples::payment_validated();
    validated.envelope = Envelope::first(accepted["correlationId"].as_str().unwrap(), "test", "");
    validated.payment_id = payment_id;
    let late = producer.send(validated).await.unwrap();
    let topic = app.topic(Topic::PaymentValidated);
    wait_until(
        WAIT,
        "the status consumer to commit past the late event",
        || async {
            let committed = kafka::committed(
                &app.config.kafka.bootstrap,
                paystream_gateway::status::GROUP,
                &topic,
                late.partition,
            );
            (committed > Some(late.offset)).then_some(())
        },
    )
    .await;
    let (_, view) = app.get(&path).await;
    assert_eq!(view["status"], "REJECTED");

    let (status, _) = app
        .get(&format!("/v1/payments/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn webhook(id: &str, signature_key: &str) -> String {
    let payload = r#"{"cardtransactions":[{"cardtransactionId":"700013016","cardId":"1234567","amount":"15.00","currency":"EUR","cardtransactionStatus":"VALIDATED","merchantName":"SNCF Automate","merchantCountry":"FR","codeStatus":"170006","createdDate":"2024-11-07 14:30:00"}]}"#;
    format!(
        r#"{{"webhook":"cardtransaction.create","webhook_id":"{id}","webhook_created_at":17310000000000,"object":"cardtransaction","object_id":"190314","object_payload":{payload},"object_payload_signature":"{}"}}"#,
        sign(signature_key.as_bytes(), payload)
    )
}

#[tokio::test]
async fn signed_webhooks_are_published_once_and_forged_or_malformed_ones_never() {
    let app = spawn_app().await;
    let id = unique("wh");
    assert_eq!(app.webhook(webhook(&id, SECRET)).await, StatusCode::OK);
    assert_eq!(
        app.webhook(webhook(&id, SECRET)).await,
        StatusCode::OK,
        "a replay is acknowledged"
    );
    assert_eq!(
        app.webhook(webhook(&unique("wh"), "not-the-secret")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.webhook("{\"webhook\": 1}".into()).await,
        StatusCode::BAD_REQUEST
    );
    let tampered = webhook(&unique("wh"), SECRET).replace("\"15.00\"", "\"1500.00\"");
    assert_eq!(app.webhook(tampered).await, StatusCode::UNAUTHORIZED);

    let records = app.read(Topic::CardTransactionReceived, 1).await;
    assert_eq!(records[0].key(), Some("1234567".as_bytes()));
    assert_eq!(header(&records[0], "correlationId"), Some(id.as_str()));
    assert_eq!(app.records_in(Topic::CardTransactionReceived), 1);
}

#[tokio::test]
async fn operations_endpoints_answer_and_every_route_is_in_the_openapi_document() {
    let app = spawn_app().await;
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let (status, document) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in paystream_gateway::openapi::PATHS {
        assert!(document["paths"][path].is_object(), "{path}");
        let concrete = path.replace("{id}", &uuid::Uuid::nil().to_string());
        let response = app
            .http
            .get(format!("{}{concrete}", app.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        // Routed: POST-only routes answer 405; an unknown payment is a 404
        // with a problem body, unlike the router's bare 404 for no route.
        let routed = response.status() != StatusCode::NOT_FOUND
            || response.headers()["content-type"] == "application/problem+json";
        assert!(routed, "{path} is not routed");
    }
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("paystream_"), "{metrics}");
}

/// Schemathesis (`st`, from PyPI; `make install` installs it) generates
/// requests from `/openapi.json` (valid ones, invalid ones, wrong
/// credentials, and sequences that follow the document's links from a 202 to
/// its status) and checks every answer: no 5xx, only documented status codes
/// and content types, bodies matching their schemas, invalid input and bad
/// credentials refused. The seed is fixed so a failure reproduces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_generated_requests_as_its_openapi_document_says() {
    let app = spawn_app().await;
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let schema = format!("{}/openapi.json", app.base);
    // Both of the document's credential headers, agreeing: a generated key
    // beside the real one is (rightly) refused, which would leave nothing to test.
    let authorization = format!("Authorization: Bearer {KEY}");
    let api_key = format!("X-Api-Key: {KEY}");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("st")
            .args([
                "--config-file",
                config,
                "run",
                &schema,
                "-H",
                &authorization,
                "-H",
                &api_key,
            ])
            .args(["--checks", "all", "--max-examples", "50", "--seed", "1"])
            // Each run on its own: no examples remembered from earlier runs,
            // and nothing written into the source tree.
            .args(["--generation-database", "none"])
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .args(["--suppress-health-check", "all", "--no-color"])
            .output()
    })
    .await
    .unwrap()
    .expect("schemathesis' `st` is on the PATH (make install)");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
