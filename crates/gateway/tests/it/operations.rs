//! `/readyz`, `/metrics`, `/openapi.json`, and the API held to its OpenAPI
//! document by schemathesis.

use reqwest::StatusCode;

use crate::support::{KEY, spawn_app, spawn_app_with, test_config};

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
    let (mut config, registry) = test_config().await;
    // Generated requests with wrong keys come by the hundred from one IP:
    // throttling them would leave the rest of the run nothing to check.
    config.unauthenticated_rate_limit = 1_000_000;
    config.webhook_rate_limit = 1_000_000;
    let app = spawn_app_with(config, registry).await;
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
