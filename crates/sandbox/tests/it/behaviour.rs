//! Behaviour knobs over HTTP: throttling, outages, the admin API and the
//! request log.

use paystream_sandbox::{AML, Config, IP_INTELLIGENCE, ProviderReport};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::Sandbox;

#[tokio::test]
async fn a_provider_can_be_throttled_or_taken_down_and_brought_back() {
    let mut config = Config::local();
    config.aml = "rate=2/s".parse().unwrap();
    let sandbox = Sandbox::start(config).await;
    let ip_control = sandbox.control(IP_INTELLIGENCE);
    let sandbox = sandbox.serve();

    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..3 {
        let response = sandbox.screen(json!({ "name": "Anna Schmidt" })).await;
        statuses.push(response.status());
        if let Some(value) = response.headers().get("retry-after") {
            retry_after = Some(value.to_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(retry_after.as_deref(), Some("1"));

    ip_control.set("down".parse().unwrap());
    assert_eq!(
        sandbox.ip("8.8.8.8").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The admin API changes behaviour at run time, for demos and benchmarks.
    let admin = sandbox.admin(IP_INTELLIGENCE);
    let response = sandbox.http.put(&admin).body("ok").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sandbox.ip("8.8.8.8").await.0, StatusCode::OK);
    let refused = sandbox
        .http
        .put(&admin)
        .body("latncy=5ms")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let current = sandbox
        .http
        .get(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(current, "ok");
}

#[tokio::test]
async fn a_throttling_provider_sends_the_retry_after_it_was_given() {
    let sandbox = Sandbox::start(Config::local()).await.serve();
    let admin = sandbox.admin(AML);
    let retry_after = |response: &reqwest::Response| {
        response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_owned())
    };

    // A provider may ask for any wait at all; the sandbox passes it on as is.
    let set = sandbox
        .http
        .put(&admin)
        .body("throttle=18446744073709551615")
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    assert_eq!(set.text().await.unwrap(), "throttle=18446744073709551615");
    let response = sandbox.screen(json!({ "name": "Anna Schmidt" })).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        retry_after(&response).as_deref(),
        Some("18446744073709551615")
    );

    let set = sandbox
        .http
        .put(&admin)
        .body("throttle=date:86400")
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    let before = chrono::Utc::now();
    let response = sandbox.screen(json!({ "name": "Anna Schmidt" })).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let date = retry_after(&response).unwrap();
    assert!(date.ends_with(" GMT"), "{date}");
    let at = chrono::DateTime::parse_from_rfc2822(&date).unwrap();
    let ahead = at.signed_duration_since(before).num_seconds();
    // One second either side: the header has whole seconds.
    assert!(
        (86_399..=86_401).contains(&ahead),
        "{date} is {ahead}s ahead"
    );
}

#[tokio::test]
async fn the_admin_answers_a_duration_too_long_or_not_finite_with_a_400() {
    let sandbox = Sandbox::start(Config::local()).await.serve();
    let admin = sandbox.admin(AML);
    for spec in [
        "latency=1e30s",
        "latency=18446744073709551616s",
        "latency=lognormal:1ms:1e30s",
        "hang=1e300s",
        "timeouts=0.5,hang=1e20ms",
        "latency=infs",
        "latency=NaNms",
        "hang=-1s",
    ] {
        let response = sandbox
            .http
            .put(&admin)
            .body(spec)
            .send()
            .await
            .unwrap_or_else(|error| panic!("`{spec}` got no answer: {error}"));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{spec}");
        let problem: Value = response.json().await.unwrap();
        let message = problem["error"].as_str().unwrap_or_default();
        let setting = spec.rsplit(',').next().unwrap().split('=').next().unwrap();
        assert!(message.contains(setting), "`{spec}`: {message}");
    }
    let too_long = sandbox
        .http
        .put(&admin)
        .body("latency=7200s")
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), StatusCode::BAD_REQUEST);
    let problem: Value = too_long.json().await.unwrap();
    assert!(
        problem["error"].as_str().unwrap().contains("at most"),
        "{problem}"
    );
    // Nothing changed and the provider still answers.
    let current = sandbox.http.get(&admin).send().await.unwrap();
    assert_eq!(current.text().await.unwrap(), "ok");
    let (status, _) = sandbox.screen_json(json!({ "name": "Anna Schmidt" })).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn each_provider_keeps_the_requests_it_received() {
    let sandbox = Sandbox::start(Config::local()).await;
    let ip = sandbox.control(IP_INTELLIGENCE);
    let aml = sandbox.control(AML);
    let sandbox = sandbox.serve();

    let response = sandbox
        .http
        .get(format!(
            "{}/{IP_INTELLIGENCE}/v1/?ip_address=8.8.8.8",
            sandbox.base
        ))
        .header("idempotency-key", "key-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let received = ip.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, reqwest::Method::GET);
    assert_eq!(
        received[0].uri.to_string(),
        "/ip-intelligence/v1/?ip_address=8.8.8.8"
    );
    assert_eq!(received[0].headers["idempotency-key"], "key-1");
    assert!(aml.received().is_empty());
}

#[tokio::test]
async fn a_rate_limited_provider_says_how_it_stands_and_counts_its_429s() {
    let mut config = Config::local();
    config.aml = "rate=1/s,burst=3".parse().unwrap();
    let sandbox = Sandbox::start(config).await.serve();
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };

    let mut seen = Vec::new();
    for _ in 0..4 {
        let response = sandbox.screen(json!({ "name": "Anna Schmidt" })).await;
        // A quota of the burst per the seconds it takes to refill, in both
        // the current and the earlier draft's form.
        assert_eq!(
            header(&response, "ratelimit-policy"),
            r#""default";q=3;w=3"#
        );
        assert_eq!(header(&response, "ratelimit-limit"), "3");
        let remaining = header(&response, "ratelimit-remaining");
        let reset = header(&response, "ratelimit-reset");
        assert_eq!(
            header(&response, "ratelimit"),
            format!(r#""default";r={remaining};t={reset}"#)
        );
        seen.push((
            response.status(),
            remaining,
            reset.parse::<u64>().unwrap(),
            header(&response, "retry-after"),
        ));
    }
    let statuses: Vec<_> = seen.iter().map(|(status, ..)| *status).collect();
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let remaining: Vec<_> = seen.iter().map(|(_, left, ..)| left.as_str()).collect();
    assert_eq!(remaining, ["2", "1", "0", "0"]);
    // Full again in the whole seconds it takes to earn back what was spent.
    let resets: Vec<_> = seen.iter().map(|(_, _, reset, _)| *reset).collect();
    assert_eq!(resets, [1, 2, 3, 3], "{seen:?}");
    assert_eq!(seen[3].3, "1", "the 429's Retry-After: one token back");

    assert_eq!(
        sandbox_report(&sandbox, AML).await,
        ProviderReport {
            requests: 4,
            throttled: 1
        }
    );
    assert_eq!(sandbox_report(&sandbox, IP_INTELLIGENCE).await.requests, 0);
}

/// The provider's report, read over the admin API as another crate's test would.
async fn sandbox_report(sandbox: &Sandbox, provider: &str) -> ProviderReport {
    sandbox
        .http
        .get(format!(
            "{}/admin/providers/{provider}/report",
            sandbox.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
