//! What goes over the wire: the URL built from segments and query values
//! that cannot change it, headers and bodies the same on every try, and the
//! metrics each try counts. What goes over the wire is checked over both
//! protocols: HTTP/2 takes its own path (straight over the h2 crate), HTTP/1.1
//! goes through reqwest.

use std::time::Duration;

use paystream_provider_client::metrics::METRICS;
use paystream_provider_client::{
    CallError, Method, Protocol, ProviderSettings, Refused, StatusCode, Unavailable,
};
use serde_json::{Value, json};

use crate::support::{Provider, each_protocol, one_try, over};

#[tokio::test]
async fn path_segments_and_query_values_cannot_change_the_path() {
    each_protocol(path_segments_and_query_values_cannot_change_the_path_over).await;
}

async fn path_segments_and_query_values_cannot_change_the_path_over(protocol: Protocol) {
    let ip = Provider::ip_intelligence("ok").await;
    let client = ip.client("ip-intelligence", over(protocol, one_try()));
    let hostile = "1.2.3.4/../../admin?x=";

    let result = client
        .request(Method::GET, &["v1", ""])
        .query("ip_address", hostile)
        .send_json::<Value>()
        .await;
    match result {
        Err(CallError::Refused {
            reason: Refused::Status { status, body },
            ..
        }) => {
            assert_eq!(status, StatusCode::BAD_REQUEST);
            // The lookup got the whole value as its one parameter.
            assert!(body.contains(&format!("`{hostile}`")), "{body}");
        }
        other => panic!("expected the provider to refuse `{hostile}`, got {other:?}"),
    }
    let received = ip.control.received();
    // HTTP/2 sends the scheme and authority too: the path and query are
    // what the provider routes on.
    assert_eq!(
        received[0].uri.path_and_query().map(|path| path.as_str()),
        Some("/ip-intelligence/v1/?ip_address=1.2.3.4%2F..%2F..%2Fadmin%3Fx%3D"),
        "{protocol}"
    );

    // In a path segment it stays one segment.
    let result = client.request(Method::GET, &["v1", hostile]).send().await;
    assert!(
        matches!(
            result,
            Err(CallError::Refused {
                reason: Refused::Status {
                    status: StatusCode::NOT_FOUND,
                    ..
                },
                ..
            })
        ),
        "{result:?}"
    );
    let received = ip.control.received();
    assert_eq!(
        received[1].uri.path(),
        "/ip-intelligence/v1/1.2.3.4%2F..%2F..%2Fadmin%3Fx="
    );

    // `..` alone would be dropped by URL normalisation: refused, not sent.
    for segment in ["..", "."] {
        let result = client.request(Method::GET, &["v1", segment]).send().await;
        assert!(
            matches!(
                result,
                Err(CallError::Refused {
                    reason: Refused::Malformed(_),
                    ..
                })
            ),
            "{segment}: {result:?}"
        );
    }
    assert_eq!(ip.received(), 2);
}

#[tokio::test]
async fn an_idempotency_key_and_the_body_are_sent_identically_on_every_try() {
    each_protocol(an_idempotency_key_and_the_body_are_sent_identically_on_every_try_over).await;
}

async fn an_idempotency_key_and_the_body_are_sent_identically_on_every_try_over(
    protocol: Protocol,
) {
    let aml = Provider::aml("errors=1").await;
    let client = aml.client(
        "aml",
        ProviderSettings {
            attempts: 3,
            protocol,
            ..ProviderSettings::default()
        },
    );
    let result = client
        .request(Method::POST, &["v1", "screen"])
        .idempotency_key("pay-42")
        .header("X-Request-Id", "req-7")
        .json(&json!({ "name": "Anna Schmidt" }))
        .send()
        .await;
    assert_eq!(
        result.map(|_| ()),
        Err(CallError::Unavailable {
            provider: "aml",
            reason: Unavailable::Status(StatusCode::SERVICE_UNAVAILABLE)
        })
    );
    let received = aml.control.received();
    assert_eq!(received.len(), 3, "three tries");
    for request in &received {
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.uri.path(), "/aml/v1/screen");
        assert_eq!(request.headers["idempotency-key"], "pay-42");
        assert_eq!(request.headers["x-request-id"], "req-7");
        assert_eq!(request.headers["content-type"], "application/json");
        assert!(
            request.headers["user-agent"]
                .to_str()
                .unwrap()
                .starts_with("paystream/")
        );
    }
}

#[tokio::test]
async fn a_raw_body_goes_with_its_content_type() {
    each_protocol(a_raw_body_goes_with_its_content_type_over).await;
}

async fn a_raw_body_goes_with_its_content_type_over(protocol: Protocol) {
    let aml = Provider::aml("ok").await;
    let client = aml.client("aml", over(protocol, one_try()));

    let answer = client
        .request(Method::POST, &["v1", "screen"])
        .body("application/json", br#"{"name":"Anna Schmidt"}"#.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(answer["riskLevel"], "LOW", "{answer}");

    let refused = client
        .request(Method::POST, &["v1", "screen"])
        .body("application/xml", "<Document/>")
        .send()
        .await;
    assert!(
        matches!(
            refused,
            Err(CallError::Refused {
                reason: Refused::Status {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ..
                },
                ..
            })
        ),
        "{refused:?}"
    );
    let received = aml.control.received();
    assert_eq!(received[1].headers["content-type"], "application/xml");
}

#[tokio::test]
async fn a_body_larger_than_the_flow_control_windows_is_sent_whole() {
    each_protocol(a_body_larger_than_the_flow_control_windows_is_sent_whole_over).await;
}

/// 1.5 MB: more than HTTP/2's opening 64 KiB window and the sandbox's 1 MiB
/// ones, so over HTTP/2 the body goes out only as the provider's window
/// updates allow; the provider answers only once it has read the JSON whole.
async fn a_body_larger_than_the_flow_control_windows_is_sent_whole_over(protocol: Protocol) {
    let aml = Provider::aml("ok").await;
    let client = aml.client("aml", over(protocol, one_try()));
    let padding = "x".repeat(1_500_000);

    let answer = client
        .request(Method::POST, &["v1", "screen"])
        .json(&json!({ "name": "Anna Schmidt", "padding": padding }))
        .send_json::<Value>()
        .await;
    match answer {
        Ok(answer) => assert_eq!(answer["riskLevel"], "LOW", "{protocol}: {answer}"),
        Err(error) => panic!("{protocol}: {error:?}"),
    }
}

#[tokio::test]
async fn a_malformed_request_is_refused_without_being_sent() {
    each_protocol(a_malformed_request_is_refused_without_being_sent_over).await;
}

async fn a_malformed_request_is_refused_without_being_sent_over(protocol: Protocol) {
    let aml = Provider::aml("ok").await;
    let client = aml.client("aml", over(protocol, one_try()));
    for request in [
        client
            .request(Method::POST, &["v1", "screen"])
            .header("X-Note", "line\nbreak"),
        client
            .request(Method::POST, &["v1", "screen"])
            .header("not a header", "x"),
        client
            .request(Method::POST, &["v1", "screen"])
            .body("text/\u{7f}", "x"),
    ] {
        let result = request.send().await;
        assert!(
            matches!(
                result,
                Err(CallError::Refused {
                    reason: Refused::Malformed(_),
                    ..
                })
            ),
            "{result:?}"
        );
    }
    assert_eq!(aml.received(), 0);
}

#[tokio::test]
async fn a_timeout_fails_a_try_and_a_deadline_ends_the_call_without_blaming_the_provider() {
    each_protocol(
        a_timeout_fails_a_try_and_a_deadline_ends_the_call_without_blaming_the_provider_over,
    )
    .await;
}

async fn a_timeout_fails_a_try_and_a_deadline_ends_the_call_without_blaming_the_provider_over(
    protocol: Protocol,
) {
    let aml = Provider::aml("latency=600s").await;
    let client = aml.client(
        "aml",
        ProviderSettings {
            timeout: Duration::from_millis(200),
            attempts: 2,
            breaker_threshold: 100,
            protocol,
            ..ProviderSettings::default()
        },
    );
    let result = tokio::time::timeout(
        crate::support::WAIT,
        client.request(Method::POST, &["v1", "screen"]).send(),
    )
    .await
    .expect("the timeout ended each try");
    assert_eq!(
        result.map(|_| ()),
        Err(CallError::Unavailable {
            provider: "aml",
            reason: Unavailable::Timeout
        })
    );
    assert_eq!(aml.received(), 2);

    // A caller's deadline shorter than the timeout ends the call; the try it
    // cut short is not a failure of the provider, so with a threshold of one
    // the circuit stays closed.
    let patient = aml.client(
        "aml",
        over(
            protocol,
            ProviderSettings {
                timeout: Duration::from_secs(60),
                breaker_threshold: 1,
                ..one_try()
            },
        ),
    );
    let result = patient
        .request(Method::POST, &["v1", "screen"])
        .json(&json!({ "name": "Anna Schmidt" }))
        .deadline(std::time::Instant::now() + Duration::from_millis(200))
        .send()
        .await;
    assert_eq!(
        result.map(|_| ()),
        Err(CallError::Unavailable {
            provider: "aml",
            reason: Unavailable::Deadline
        })
    );
    aml.set("ok");
    let answer = patient
        .request(Method::POST, &["v1", "screen"])
        .json(&json!({ "name": "Anna Schmidt" }))
        .send_json::<Value>()
        .await;
    assert!(answer.is_ok(), "{answer:?}");
}

#[tokio::test]
async fn each_try_is_counted_by_provider_and_outcome() {
    let aml = Provider::aml("ok").await;
    // A provider name of its own: other tests in this process count too.
    let client = aml.client("metrics-probe", one_try());
    let count = |outcome: &str| {
        METRICS
            .calls
            .with_label_values(&["metrics-probe", outcome])
            .get()
    };
    client
        .request(Method::POST, &["v1", "screen"])
        .json(&json!({ "name": "Anna Schmidt" }))
        .send()
        .await
        .unwrap();
    let refused = client
        .request(Method::POST, &["v1", "screen"])
        .json(&json!({ "name": " " }))
        .send()
        .await;
    assert!(refused.is_err());
    assert_eq!((count("ok"), count("refused")), (1, 1));
    let exported = prometheus::gather()
        .iter()
        .any(|family| family.name() == "paystream_provider_calls_total");
    assert!(exported, "the counter is in the default registry");
}

/// `Protocol::Http2` speaks HTTP/2 even to a cleartext provider (h2c with
/// prior knowledge); the default speaks HTTP/1.1 there, which every provider
/// accepts.
#[tokio::test]
async fn the_protocol_setting_chooses_the_http_version_on_the_wire() {
    let aml = Provider::aml("ok").await;
    for (protocol, version) in [
        (Protocol::Auto, reqwest::Version::HTTP_11),
        (Protocol::Http2, reqwest::Version::HTTP_2),
    ] {
        let client = aml.client(
            "aml",
            ProviderSettings {
                protocol,
                ..one_try()
            },
        );
        let answer = client
            .request(Method::POST, &["v1", "screen"])
            .json(&json!({ "name": "Anna Schmidt" }))
            .send_json::<Value>()
            .await
            .unwrap();
        assert_eq!(answer["riskLevel"], "LOW", "{protocol}: {answer}");
        let received = aml.control.received();
        assert_eq!(received.last().unwrap().version, version, "{protocol}");
    }
}

/// A provider that answers every request with a 307 to `location`.
async fn redirecting_to(location: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/aml", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let location = location.clone();
            tokio::spawn(async move {
                let mut request = vec![0; 16 * 1024];
                if socket.read(&mut request).await.is_ok_and(|read| read > 0) {
                    let answer = format!(
                        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\n\
                         content-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    socket.write_all(answer.as_bytes()).await.unwrap();
                }
            });
        }
    });
    base
}

#[tokio::test]
async fn a_redirect_is_refused_with_its_status_not_followed() {
    let elsewhere = Provider::aml("ok").await;
    let base = redirecting_to(format!("{}/v1/screen", elsewhere.base)).await;
    let client = paystream_provider_client::ProviderClient::new("aml", &base, one_try()).unwrap();
    let result = client
        .request(Method::POST, &["v1", "screen"])
        .idempotency_key("redirected-1")
        .json(&json!({"name": "Jane Doe"}))
        .send()
        .await;
    assert!(
        matches!(
            &result,
            Err(CallError::Refused {
                reason: Refused::Status { status, .. },
                ..
            }) if *status == StatusCode::TEMPORARY_REDIRECT
        ),
        "{result:?}"
    );
    assert_eq!(
        elsewhere.received(),
        0,
        "the redirect's target never saw the call or its idempotency key"
    );
}

/// The HTTP/2 path keeps one connection to the provider; when the provider
/// goes away (a restart closes it), the next call opens another and is
/// answered, and it was sent once.
#[tokio::test]
async fn a_provider_restarted_between_calls_is_reached_on_a_new_connection() {
    let aml = Provider::aml("ok").await;
    let client = aml.client(
        "aml",
        ProviderSettings {
            protocol: Protocol::Http2,
            attempts: 3,
            ..ProviderSettings::default()
        },
    );
    let screen = async || {
        client
            .request(Method::POST, &["v1", "screen"])
            .json(&json!({ "name": "Anna Schmidt" }))
            .send_json::<Value>()
            .await
    };
    let first = screen().await.unwrap();
    assert_eq!(first["riskLevel"], "LOW", "{first}");
    assert_eq!(aml.received(), 1);

    let aml = aml.restarted().await;
    let second = screen().await.unwrap();
    assert_eq!(second["riskLevel"], "LOW", "{second}");
    let received = aml.control.received();
    assert_eq!(received.len(), 1, "sent once to the restarted provider");
    assert_eq!(received[0].version, reqwest::Version::HTTP_2);
}
