//! `POST /v1/payments` and `GET /v1/payments/{id}`.

use paystream_bus::Producer;
use paystream_contract::{Envelope, Topic};
use paystream_testkit::{kafka, wait_until};
use rdkafka::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{KEY, TestApp, WAIT, header, payment, spawn_app};

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

/// The 202 does not wait for the ack mark that starts the status row, so a
/// `GET` can arrive before it: the payment is then SUBMITTED, not unknown.
#[tokio::test]
async fn a_payment_read_before_its_ack_mark_is_written_is_submitted() {
    let app = spawn_app().await;
    let (status, _, body) = app.post_payment(Some("order-early-read"), &payment()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let payment_id: uuid::Uuid = body["paymentId"].as_str().unwrap().parse().unwrap();
    let db = sqlx::PgPool::connect(&app.config.database_url)
        .await
        .unwrap();
    // Wait for the mark, then take it back: the state a read finds when it
    // overtakes the mark.
    wait_until(WAIT, "the ack mark", || async {
        let acked: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM payment_status WHERE payment_id = $1)",
        )
        .bind(payment_id)
        .fetch_one(&db)
        .await
        .unwrap();
        acked.then_some(())
    })
    .await;
    sqlx::query("DELETE FROM payment_status WHERE payment_id = $1")
        .bind(payment_id)
        .execute(&db)
        .await
        .unwrap();

    let (status, view) = app.get(&format!("/v1/payments/{payment_id}")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "SUBMITTED");
    assert_eq!(view["correlationId"], body["correlationId"]);
    assert_eq!(view["notifications"], json!([]));
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
    assert_eq!(
        fields(&problem),
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

fn fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no `errors` in {problem}"))
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect()
}

/// PostgreSQL cannot store U+0000, and no name, address or reference can
/// hold a control character: each is a 422 naming the field, never a 503
/// (which tells the client to retry the same bytes forever).
#[tokio::test]
async fn control_characters_in_text_fields_are_refused_naming_each_field() {
    let app = spawn_app().await;
    let mut bad = payment();
    bad["endToEndId"] = json!("E2E\u{0}1");
    bad["debtor"]["name"] = json!("Anna\u{0}Schmidt");
    bad["debtor"]["address"] = json!("Hauptstr. 1\u{1b}[2J");
    bad["debtor"]["nationalId"] = json!("X\u{7}1");
    bad["creditor"]["name"] = json!("Jean\u{8}Dupont");
    bad["remittanceInformation"] = json!("Invoice\u{0}42");
    let (status, headers, problem) = app.post_payment(Some("nul-1"), &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(
        fields(&problem),
        [
            "endToEndId",
            "debtor.name",
            "debtor.address",
            "debtor.nationalId",
            "creditor.name",
            "remittanceInformation"
        ]
    );
    // One at a time too: a lone NUL is enough.
    for (n, (party, field)) in [("debtor", "name"), ("creditor", "address")]
        .into_iter()
        .enumerate()
    {
        let mut bad = payment();
        bad[party][field] = json!("\u{0}");
        let (status, _, problem) = app.post_payment(Some(&format!("nul-{n}-x")), &bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(fields(&problem), [format!("{party}.{field}")]);
    }
    assert_eq!(app.records_in(Topic::PaymentSubmitted), 0);
}

async fn reject(app: &TestApp, accepted: &Value, reason_code: &str, reason_text: &str) {
    let codec = app.config.registry.codec().unwrap();
    let producer = Producer::new(&app.config.kafka, codec, "validation-stand-in").unwrap();
    let mut rejected = paystream_contract::samples::payment_rejected();
    rejected.envelope = Envelope::first(accepted["correlationId"].as_str().unwrap(), "test", "");
    rejected.payment_id = accepted["paymentId"].as_str().unwrap().parse().unwrap();
    rejected.reason_code = paystream_contract::ReasonCode::from_code(reason_code);
    rejected.reason_text = reason_text.to_owned();
    producer.send(rejected).await.unwrap();
}

async fn rejected_view(app: &TestApp, accepted: &Value) -> Value {
    let path = format!("/v1/payments/{}", accepted["paymentId"].as_str().unwrap());
    wait_until(WAIT, "the payment to show REJECTED", || async {
        let (_, view) = app.get(&path).await;
        (view["status"] == "REJECTED").then_some(view)
    })
    .await
}

#[tokio::test]
async fn the_status_follows_the_pipeline_topics() {
    let app = spawn_app().await;
    let (_, _, accepted) = app.post_payment(Some("status-1"), &payment()).await;
    let payment_id: uuid::Uuid = accepted["paymentId"].as_str().unwrap().parse().unwrap();

    reject(&app, &accepted, "SANCTIONS_MATCH", "blocked").await;
    let view = rejected_view(&app, &accepted).await;
    assert_eq!(view["reasonCode"], "SANCTIONS_MATCH");

    // A late VALIDATED (redelivered, or raced) does not move it back.
    let codec = app.config.registry.codec().unwrap();
    let producer = Producer::new(&app.config.kafka, codec, "validation-stand-in").unwrap();
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
    let (_, view) = app.get(&format!("/v1/payments/{payment_id}")).await;
    assert_eq!(view["status"], "REJECTED");

    let (status, _) = app
        .get(&format!("/v1/payments/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The screening's own words name the list, the entry and the score: they
/// are for compliance (the events, the validation service's audit trail),
/// not for the API client, which gets the code and a fixed description.
#[tokio::test]
async fn a_rejection_shows_the_client_a_safe_reason_not_the_screening_details() {
    let app = spawn_app().await;
    let internal =
        "creditor `Thabo Nkosi` blocked: matches OFAC-SDN 12345 (NKOSI, Thabo, score 0.96)";
    let (_, _, sanctioned) = app.post_payment(Some("reason-1"), &payment()).await;
    reject(&app, &sanctioned, "SANCTIONS_MATCH", internal).await;
    let view = rejected_view(&app, &sanctioned).await;
    assert_eq!(view["reasonCode"], "SANCTIONS_MATCH");
    let text = view["reasonText"].as_str().unwrap();
    for secret in ["OFAC", "12345", "Thabo", "0.96", "score"] {
        assert!(!text.contains(secret), "`{secret}` is shown: {view}");
    }
    assert!(!text.is_empty());

    // A code the gateway does not know gets a generic description, and
    // something that is no code at all is not passed through either.
    let mut other = payment();
    other["endToEndId"] = json!("E2E-0002");
    let (_, _, unknown) = app.post_payment(Some("reason-2"), &other).await;
    reject(&app, &unknown, "matched entry 12345 <script>", internal).await;
    let view = rejected_view(&app, &unknown).await;
    let shown = view.to_string();
    assert!(
        !shown.contains("12345") && !shown.contains("OFAC"),
        "{view}"
    );
}
