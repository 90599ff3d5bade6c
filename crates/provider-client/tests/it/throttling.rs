//! `Retry-After`: honoured by every caller, cut to the client's maximum
//! however large (or as an HTTP-date), and never waited for past a caller's
//! deadline.

use std::time::{Duration, Instant};

use paystream_provider_client::{
    CallError, Method, ProviderClient, ProviderSettings, Request, Unavailable,
};
use paystream_testkit::wait_until;
use serde_json::json;

use crate::support::{Provider, WAIT, one_try};

fn screen(client: &ProviderClient) -> Request {
    client
        .request(Method::POST, &["v1", "screen"])
        .json(&json!({ "name": "Anna Schmidt" }))
}

/// A provider asks for `throttle`; the client, whose maximum is 100 ms,
/// tries again after that, and succeeds once the provider is back.
async fn cut_to_the_maximum(throttle: &str) {
    let aml = Provider::aml(throttle).await;
    let client = aml.client(
        "aml",
        ProviderSettings {
            max_retry_after: Duration::from_millis(100),
            ..one_try()
        },
    );
    let call = tokio::spawn({
        let request = screen(&client);
        async move { request.send().await }
    });
    wait_until(WAIT, &format!("`{throttle}`: a second try"), || async {
        (aml.received() >= 2).then_some(())
    })
    .await;
    aml.set("ok");
    let answer = tokio::time::timeout(WAIT, call)
        .await
        .unwrap_or_else(|_| panic!("`{throttle}`: the call did not end"))
        .unwrap_or_else(|panic| panic!("`{throttle}`: the call panicked: {panic}"));
    assert!(answer.is_ok(), "`{throttle}`: {answer:?}");
}

#[tokio::test]
async fn a_day_long_retry_after_is_cut_to_the_maximum() {
    cut_to_the_maximum("throttle=86400").await;
}

#[tokio::test]
async fn a_retry_after_too_large_for_the_clock_is_cut_to_the_maximum_not_a_panic() {
    cut_to_the_maximum("throttle=18446744073709551615").await;
}

#[tokio::test]
async fn a_retry_after_as_an_http_date_is_honoured_and_cut_to_the_maximum() {
    cut_to_the_maximum("throttle=date:86400").await;
}

#[tokio::test]
async fn a_caller_is_told_unavailable_at_once_when_retry_after_is_past_its_deadline() {
    let aml = Provider::aml("throttle=86400").await;
    // The client waits at most 60 s; the caller 50 s. The test gives up
    // after 20, so a call that waited for its deadline fails it.
    let client = aml.client("aml", one_try());
    for caller in ["the first", "a later"] {
        let result = tokio::time::timeout(
            WAIT,
            screen(&client)
                .deadline(Instant::now() + Duration::from_secs(50))
                .send(),
        )
        .await
        .unwrap_or_else(|_| panic!("{caller} caller waited for the Retry-After"));
        // The first is told the whole wait; a later one what is left of it.
        match result {
            Err(CallError::Unavailable {
                reason: Unavailable::Throttled { wait },
                ..
            }) => assert!(
                wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
                "{caller} caller: {wait:?}"
            ),
            other => panic!("{caller} caller: {other:?}"),
        }
    }
    // The later caller knew of the pause and did not call.
    assert_eq!(aml.received(), 1);
}

#[tokio::test]
async fn a_retry_after_within_the_deadline_is_waited_out() {
    let aml = Provider::aml("throttle=1").await;
    let client = aml.client("aml", one_try());
    let call = tokio::spawn({
        let request = screen(&client).deadline(Instant::now() + WAIT);
        async move { request.send().await }
    });
    wait_until(WAIT, "the provider to throttle a try", || async {
        (aml.received() >= 1).then_some(())
    })
    .await;
    aml.set("ok");
    let answer = call.await.unwrap();
    assert!(answer.is_ok(), "{answer:?}");
}
