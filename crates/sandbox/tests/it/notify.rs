//! The notification provider over real HTTP: one delivery per idempotency
//! key, replays, conflicts, refusals, lookups by key, the window that
//! forgets keys, and the knobs that make the provider answer late or fail.
//! Only the provider is played, so no reference data is read.

use std::time::Duration;

use chrono::{DateTime, Utc};
use paystream_sandbox::notify::{NotifyBehaviour, NotifyReport};
use paystream_sandbox::{Config, NOTIFY, Provider, RTGS, Server};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Sandbox, eventually};

/// A window short enough to outlive in a test.
const SHORT_WINDOW: Duration = Duration::from_secs(1);

fn new_key() -> String {
    format!("notify-{}", Uuid::new_v4())
}

fn sms(body: &str) -> Value {
    json!({ "channel": "SMS", "to": "+4915112345678", "body": body })
}

fn email() -> Value {
    json!({
        "channel": "EMAIL",
        "to": "anna.schmidt@example.com",
        "subject": "Payment received",
        "body": "EUR 1,250.50 from Jan de Vries",
    })
}

/// A sandbox playing only the notification provider.
struct Rig {
    sandbox: Sandbox,
}

async fn rig(provider: &str, window: Duration) -> Rig {
    let mut config = Config::local();
    config.providers = vec![Provider::Notify];
    config.notify_provider = provider.parse().unwrap();
    config.notify_idempotency_window = window;
    let sandbox = Sandbox::start(config).await.serve();
    Rig { sandbox }
}

async fn rig_ok() -> Rig {
    rig("ok", Duration::from_secs(24 * 3600)).await
}

impl Rig {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base)
    }

    async fn post_raw(&self, key: Option<&str>, body: &str) -> reqwest::Response {
        let mut request = self
            .sandbox
            .http
            .post(self.url("/notify/v1/messages"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.unwrap()
    }

    async fn post(&self, key: &str, message: &Value) -> reqwest::Response {
        self.post_raw(Some(key), &message.to_string()).await
    }

    async fn lookup(&self, key: &str) -> reqwest::Response {
        self.sandbox
            .http
            .get(self.url(&format!("/notify/v1/messages/{key}")))
            .send()
            .await
            .unwrap()
    }

    async fn report(&self) -> NotifyReport {
        let response = self
            .sandbox
            .http
            .get(self.url("/admin/notify/report"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn put(&self, path: &str, body: &str) -> reqwest::Response {
        self.sandbox
            .http
            .put(self.url(path))
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    async fn get_text(&self, path: &str) -> String {
        let response = self.sandbox.http.get(self.url(path)).send().await.unwrap();
        response.text().await.unwrap()
    }
}

/// Sends a message that must be delivered now: its receipt.
async fn deliver(rig: &Rig, key: &str, message: &Value) -> Value {
    let response = rig.post(key, message).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.headers().get("idempotent-replayed").is_none());
    response.json().await.unwrap()
}

async fn error_of(response: reqwest::Response) -> String {
    let problem: Value = response.json().await.unwrap();
    problem["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_message_is_delivered_once_and_a_replay_gets_the_same_receipt() {
    let rig = rig_ok().await;
    let key = new_key();
    let receipt = deliver(&rig, &key, &email()).await;
    let message_id = receipt["messageId"].as_str().unwrap().to_owned();
    assert!(message_id.starts_with("msg_"), "{receipt}");
    assert_eq!(
        receipt,
        json!({
            "messageId": message_id,
            "status": "SENT",
            "idempotencyKey": key,
            "channel": "EMAIL",
            "to": "anna.schmidt@example.com",
        })
    );

    let replayed = rig.post(&key, &email()).await;
    assert_eq!(replayed.status(), StatusCode::OK);
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(replayed.json::<Value>().await.unwrap(), receipt);

    // Another key is another message, with an id of its own.
    let other = deliver(&rig, &new_key(), &sms("Your payment was sent")).await;
    assert_ne!(other["messageId"], receipt["messageId"]);
    assert_eq!(other["channel"], "SMS");

    let report = rig.report().await;
    assert_eq!(
        (report.requests, report.deliveries, report.replays),
        (3, 2, 1)
    );
    assert_eq!(report.distinct_keys, 2);
    assert_eq!((report.conflicts, report.invalid), (0, 0));
    assert!(report.delivered_twice.is_empty());
    assert_eq!(report.per_key[&key], 1);
    // The in-process handle tells the same.
    assert_eq!(rig.sandbox.notify.as_ref().unwrap().report(), report);
}

#[tokio::test]
async fn a_known_key_with_another_message_is_a_conflict_and_delivers_nothing() {
    let rig = rig_ok().await;
    let key = new_key();
    deliver(&rig, &key, &sms("Your payment was sent")).await;
    for changed in [
        sms("Your payment was refunded"),
        json!({ "channel": "SMS", "to": "+4915199999999", "body": "Your payment was sent" }),
        json!({ "channel": "EMAIL", "to": "+4915112345678", "body": "Your payment was sent" }),
        json!({
            "channel": "SMS",
            "to": "+4915112345678",
            "subject": "Hello",
            "body": "Your payment was sent",
        }),
    ] {
        let response = rig.post(&key, &changed).await;
        assert_eq!(response.status(), StatusCode::CONFLICT, "{changed}");
        let error = error_of(response).await;
        assert!(error.contains(&key), "{error}");
    }
    let report = rig.report().await;
    assert_eq!(
        (report.requests, report.deliveries, report.conflicts),
        (5, 1, 4)
    );
    assert_eq!(report.per_key[&key], 1);
}

#[tokio::test]
async fn requests_without_a_key_or_with_a_bad_body_are_refused_and_deliver_nothing() {
    let rig = rig_ok().await;
    let good = sms("Your payment was sent").to_string();

    let missing = rig.post_raw(None, &good).await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(missing).await.contains("Idempotency-Key"));
    let blank = rig.post_raw(Some("  "), &good).await;
    assert_eq!(blank.status(), StatusCode::BAD_REQUEST);

    let key = new_key();
    for (body, named) in [
        ("{not json", "not JSON"),
        (r#"{"channel":"SMS","body":"hi"}"#, "`to`"),
        (r#"{"channel":"SMS","to":"+4915112345678"}"#, "`body`"),
        (
            r#"{"channel":"SMS","to":"+4915112345678","body":"hi","priority":"high"}"#,
            "priority",
        ),
        (
            r#"["SMS","+4915112345678","Payment received","hi"]"#,
            "not a JSON object",
        ),
    ] {
        let response = rig.post_raw(Some(&key), body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error = error_of(response).await;
        assert!(error.contains(named), "{body}: {error}");
    }

    let pigeon = json!({ "channel": "PIGEON", "to": "the roof", "body": "coo" });
    let response = rig.post(&key, &pigeon).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error = error_of(response).await;
    assert!(error.contains("PIGEON"), "{error}");

    // None of it used the key: a good message under it is delivered.
    assert_eq!(rig.lookup(&key).await.status(), StatusCode::NOT_FOUND);
    deliver(&rig, &key, &sms("Your payment was sent")).await;
    let report = rig.report().await;
    assert_eq!(
        (report.requests, report.invalid, report.deliveries),
        (9, 8, 1)
    );
}

#[tokio::test]
async fn looking_up_a_key_tells_whether_its_message_was_delivered() {
    let rig = rig_ok().await;
    let key = new_key();
    let before = rig.lookup(&key).await;
    assert_eq!(before.status(), StatusCode::NOT_FOUND);
    assert!(error_of(before).await.contains(&key));

    let sent_at = Utc::now();
    let receipt = deliver(&rig, &key, &email()).await;
    let after = rig.lookup(&key).await;
    assert_eq!(after.status(), StatusCode::OK);
    let mut record: Value = after.json().await.unwrap();
    let delivered_at = record
        .as_object_mut()
        .unwrap()
        .remove("deliveredAt")
        .unwrap();
    let delivered_at = DateTime::parse_from_rfc3339(delivered_at.as_str().unwrap()).unwrap();
    let drift = (delivered_at.with_timezone(&Utc) - sent_at).abs();
    assert!(drift < chrono::TimeDelta::seconds(5), "{delivered_at}");
    assert_eq!(record, receipt);

    let unknown = rig.lookup("never-used").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    // Lookups deliver nothing and are no requests to send.
    let report = rig.report().await;
    assert_eq!((report.requests, report.deliveries), (1, 1));
}

#[tokio::test]
async fn concurrent_sends_under_one_key_deliver_once() {
    let rig = rig_ok().await;
    let key = new_key();
    let message = sms("Your payment was sent");
    let answers = futures::future::join_all((0..8).map(|_| rig.post(&key, &message))).await;
    let mut created = 0;
    let mut ids = Vec::new();
    for answer in answers {
        match answer.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => assert_eq!(answer.headers()["idempotent-replayed"], "true"),
            other => panic!("answered {other}"),
        }
        ids.push(answer.json::<Value>().await.unwrap()["messageId"].clone());
    }
    assert_eq!(created, 1);
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let report = rig.report().await;
    assert_eq!(
        (report.requests, report.deliveries, report.replays),
        (8, 1, 7)
    );
}

#[tokio::test]
async fn after_the_window_the_same_key_delivers_again() {
    let rig = rig("ok", SHORT_WINDOW).await;
    let key = new_key();
    let message = sms("Your payment was sent");
    let first = deliver(&rig, &key, &message).await;
    let replayed = rig.post(&key, &message).await;
    assert_eq!(replayed.status(), StatusCode::OK);

    // Outliving the window is the scenario.
    tokio::time::sleep(SHORT_WINDOW + Duration::from_millis(200)).await;
    let forgotten = rig.lookup(&key).await;
    assert_eq!(forgotten.status(), StatusCode::NOT_FOUND);
    let second = deliver(&rig, &key, &message).await;
    assert_ne!(second["messageId"], first["messageId"]);
    let found: Value = rig.lookup(&key).await.json().await.unwrap();
    assert_eq!(found["messageId"], second["messageId"]);

    let report = rig.report().await;
    assert_eq!(
        (report.requests, report.deliveries, report.replays),
        (3, 2, 1)
    );
    assert_eq!(report.distinct_keys, 1);
    assert_eq!(report.delivered_twice, vec![key.clone()]);
    assert_eq!(report.per_key[&key], 2);
}

#[tokio::test]
async fn a_late_answer_comes_after_the_client_gave_up_but_the_message_was_delivered() {
    let rig = rig("late=1,late-by=2s", Duration::from_secs(60)).await;
    let key = new_key();
    let message = email();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = impatient
        .post(rig.url("/notify/v1/messages"))
        .header("idempotency-key", &key)
        .json(&message)
        .send()
        .await
        .err()
        .unwrap();
    assert!(error.is_timeout(), "{error}");

    let report = eventually("the late message to be delivered", async || {
        let report = rig.report().await;
        (report.deliveries == 1).then_some(report)
    })
    .await;
    assert_eq!(report.per_key[&key], 1);
    let found = rig.lookup(&key).await;
    assert_eq!(found.status(), StatusCode::OK);
    let found: Value = found.json().await.unwrap();
    assert_eq!(found["idempotencyKey"], key.as_str());

    // Sending it again is safe and answered at once: a replay is never late.
    let again = rig.post(&key, &message).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        again.json::<Value>().await.unwrap()["messageId"],
        found["messageId"]
    );
    let report = rig.report().await;
    assert_eq!(
        (report.requests, report.deliveries, report.replays),
        (2, 1, 1)
    );
    assert!(report.delivered_twice.is_empty());
}

#[tokio::test]
async fn a_failure_before_delivery_is_a_502_that_delivers_nothing() {
    let rig = rig("fail=1", Duration::from_secs(60)).await;
    let key = new_key();
    let message = sms("Your payment was sent");
    let failed = rig.post(&key, &message).await;
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    assert!(!error_of(failed).await.is_empty());
    assert_eq!(rig.lookup(&key).await.status(), StatusCode::NOT_FOUND);
    let report = rig.report().await;
    assert_eq!(
        (report.requests, report.deliveries, report.distinct_keys),
        (1, 0, 0)
    );

    let notify = rig.sandbox.notify.clone().unwrap();
    notify.set_behaviour(NotifyBehaviour::default());
    deliver(&rig, &key, &message).await;
    assert_eq!(notify.report().per_key[&key], 1);
}

#[tokio::test]
async fn the_provider_goes_down_and_throttles_through_its_behaviour_and_its_admin_stays_up() {
    let rig = rig_ok().await;
    let admin = format!("/admin/providers/{NOTIFY}/behaviour");
    let message = sms("Your payment was sent");
    let key = new_key();

    assert_eq!(rig.put(&admin, "down").await.status(), StatusCode::OK);
    assert_eq!(rig.get_text(&admin).await, "down");
    let down = rig.post(&key, &message).await;
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        rig.lookup(&key).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    assert_eq!(rig.put(&admin, "throttle=7").await.status(), StatusCode::OK);
    let throttled = rig.post(&key, &message).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.headers()["retry-after"], "7");

    let report = rig.report().await;
    assert_eq!(report, NotifyReport::default());

    assert_eq!(rig.put(&admin, "ok").await.status(), StatusCode::OK);
    deliver(&rig, &key, &message).await;
    assert_eq!(rig.report().await.deliveries, 1);
}

#[tokio::test]
async fn the_notify_admin_reads_and_sets_the_provider_knobs() {
    let rig = rig_ok().await;
    assert_eq!(rig.get_text("/admin/notify/provider").await, "ok");
    let set = rig
        .put("/admin/notify/provider", "fail=0.5, late=0.1, late-by=3s")
        .await;
    assert_eq!(set.status(), StatusCode::OK);
    assert_eq!(
        set.text().await.unwrap(),
        "late=0.1,late-by=3000ms,fail=0.5"
    );
    let notify = rig.sandbox.notify.clone().unwrap();
    assert_eq!(notify.behaviour().fail, 0.5);
    assert_eq!(notify.behaviour().late_by, Duration::from_secs(3));
    for (spec, named) in [("fail=2", "fail"), ("retries=3", "retries")] {
        let refused = rig.put("/admin/notify/provider", spec).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{spec}");
        let error = error_of(refused).await;
        assert!(error.contains(named), "{error}");
    }
    assert_eq!(
        rig.get_text("/admin/notify/provider").await,
        "late=0.1,late-by=3000ms,fail=0.5"
    );
    notify.set_behaviour("late-by=1s".parse().unwrap());
    assert_eq!(
        rig.get_text("/admin/notify/provider").await,
        "late-by=1000ms"
    );
}

#[tokio::test]
async fn a_sandbox_playing_only_notify_reads_no_reference_data() {
    let mut config = Config::local();
    config.providers = vec![Provider::Notify];
    config.data_dir = "/nonexistent".into();
    let server = Server::build(&config).await.unwrap();
    assert!(server.notify().is_some());
    assert!(server.control(NOTIFY).is_some());
    assert!(server.rail().is_none() && server.control(RTGS).is_none());
    assert_eq!(
        server.notify().unwrap().window(),
        Duration::from_secs(24 * 3600)
    );

    config.providers = vec![Provider::Rtgs];
    let server = Server::build(&config).await.unwrap();
    assert!(server.notify().is_none() && server.control(NOTIFY).is_none());
    let sandbox = Sandbox::start(config).await.serve();
    for (method, path) in [
        (reqwest::Method::GET, "/admin/notify/report"),
        (reqwest::Method::POST, "/notify/v1/messages"),
    ] {
        let absent = sandbox
            .http
            .request(method, format!("{}{path}", sandbox.base))
            .send()
            .await
            .unwrap();
        assert_eq!(absent.status(), StatusCode::NOT_FOUND, "{path}");
    }
}
