//! Rate limits on what needs no API key: requests without a valid key (per
//! client IP) and the card processor's webhook route (per client IP).

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{KEY, payment, spawn_app_with, test_config, webhook};

/// Sends requests until one is answered 429 (at most `attempts`), which must
/// say when to retry; its problem body.
async fn until_429(attempts: usize, request: impl Fn(usize) -> reqwest::RequestBuilder) -> Value {
    let mut statuses = Vec::new();
    for attempt in 0..attempts {
        let response = request(attempt).send().await.unwrap();
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(
                response.headers().contains_key("retry-after"),
                "{response:?}"
            );
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            return response.json().await.unwrap();
        }
    }
    panic!("never rate limited: {statuses:?}");
}

#[tokio::test]
async fn requests_without_a_valid_key_are_rate_limited_per_client_ip() {
    let (mut config, registry) = test_config().await;
    // One a second: the second wrong key in a row is over the limit.
    config.unauthenticated_rate_limit = 1;
    let app = spawn_app_with(config, registry).await;
    let post = |key: String| {
        app.http
            .post(format!("{}/v1/payments", app.base))
            .bearer_auth(key)
            .header("Idempotency-Key", "guess")
            .json(&payment())
    };
    let problem = until_429(100, |attempt| post(format!("guess-{attempt}"))).await;
    assert_eq!(problem["status"], 429);
    assert!(problem["type"].as_str().unwrap().ends_with("rate-limited"));
    // While the IP is over its limit even the right key is not checked: a
    // guesser learns nothing from the answer.
    let right_key = post(KEY.to_owned()).send().await.unwrap();
    assert_eq!(right_key.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_webhook_route_is_rate_limited_per_client_ip() {
    let (mut config, registry) = test_config().await;
    config.webhook_rate_limit = 1;
    let app = spawn_app_with(config, registry).await;
    let problem = until_429(100, |attempt| {
        app.http
            .post(format!("{}/v1/webhooks/card-transactions", app.base))
            .header("content-type", "application/json")
            // Forged: refused without touching the broker, as a flood would be.
            .body(webhook(&format!("flood-{attempt}"), "not-the-secret"))
    })
    .await;
    assert_eq!(problem["status"], 429);
}
