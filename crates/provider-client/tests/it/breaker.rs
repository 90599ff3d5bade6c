//! The circuit breaker over HTTP: a failing provider opens the circuit, an
//! open circuit refuses without calling, a trial call after the cool-down
//! closes it again, and every trial reports, even a throttled or cancelled one.

use std::time::{Duration, Instant};

use paystream_provider_client::{
    CallError, Method, ProviderClient, ProviderSettings, StatusCode, Unavailable,
};
use paystream_testkit::wait_until;
use serde_json::{Value, json};

use crate::support::{Provider, WAIT};

/// One try per call; one failure opens the circuit for `cool_down`.
fn fragile(cool_down: Duration) -> ProviderSettings {
    ProviderSettings {
        attempts: 1,
        breaker_threshold: 1,
        breaker_cool_down: cool_down,
        ..ProviderSettings::default()
    }
}

async fn screen(client: &ProviderClient) -> Result<Value, CallError> {
    client
        .request(Method::POST, &["v1", "screen"])
        .json(&json!({ "name": "Emily Clarke" }))
        .send_json()
        .await
}

fn circuit_open(result: &Result<Value, CallError>) -> bool {
    matches!(
        result,
        Err(CallError::Unavailable {
            reason: Unavailable::CircuitOpen,
            ..
        })
    )
}

#[tokio::test]
async fn repeated_failures_open_the_circuit_and_a_successful_trial_closes_it() {
    let aml = Provider::aml("down").await;
    let client = aml.client(
        "aml",
        ProviderSettings {
            breaker_threshold: 3,
            ..fragile(Duration::from_millis(300))
        },
    );

    for _ in 0..3 {
        match screen(&client).await {
            Err(CallError::Unavailable { reason, .. }) => {
                assert_eq!(reason, Unavailable::Status(StatusCode::SERVICE_UNAVAILABLE))
            }
            other => panic!("expected the provider's 503, got {other:?}"),
        }
    }
    // The provider is back, but the circuit is open: the client does not call.
    aml.set("ok");
    assert!(circuit_open(&screen(&client).await));
    assert_eq!(aml.received(), 3);
    // After the cool-down one trial call goes through, and it closes the circuit.
    let answer = wait_until(WAIT, "the circuit to half-open", || async {
        screen(&client).await.ok()
    })
    .await;
    assert_eq!(answer["riskLevel"], "LOW");
    assert!(screen(&client).await.is_ok());
}

#[tokio::test]
async fn a_throttled_trial_reports_and_the_circuit_closes() {
    let aml = Provider::aml("down").await;
    let client = aml.client("aml", fragile(Duration::from_millis(100)));
    assert!(screen(&client).await.is_err());
    assert!(circuit_open(&screen(&client).await));

    // The trial after the cool-down is answered 429: the provider is up.
    aml.set("throttle=1");
    wait_until(WAIT, "a trial call to reach the provider", || async {
        let trial = client
            .request(Method::POST, &["v1", "screen"])
            .json(&json!({ "name": "Emily Clarke" }))
            .deadline(Instant::now() + Duration::from_secs(2));
        let _ = trial.send().await;
        (aml.received() >= 2).then_some(())
    })
    .await;
    aml.set("ok");
    // Were the trial's 429 not recorded, the circuit would stay half-open and
    // refuse every call from now on.
    wait_until(
        WAIT,
        "the circuit to close after a throttled trial",
        || async { screen(&client).await.ok() },
    )
    .await;
}

#[tokio::test]
async fn a_cancelled_trial_lets_the_next_call_try() {
    let aml = Provider::aml("down").await;
    let client = aml.client("aml", fragile(Duration::from_millis(100)));
    assert!(screen(&client).await.is_err());

    // The trial hangs at the provider, and its caller gives up on it.
    aml.set("latency=600s");
    let trial = tokio::spawn({
        let client = client.clone();
        async move {
            wait_until(WAIT, "the circuit to let a trial out", || async {
                let result = screen(&client).await;
                (!circuit_open(&result)).then_some(())
            })
            .await
        }
    });
    wait_until(WAIT, "the trial to reach the provider", || async {
        (aml.received() >= 2).then_some(())
    })
    .await;
    trial.abort();
    assert!(trial.await.unwrap_err().is_cancelled());

    aml.set("ok");
    wait_until(
        WAIT,
        "the circuit to close after a cancelled trial",
        || async { screen(&client).await.ok() },
    )
    .await;
}
