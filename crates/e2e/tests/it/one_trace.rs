//! One payment, one trace: every service runs as its own process with its
//! own `service.name` and exports its spans over OTLP (the default
//! transport, http/protobuf) to a receiver in the test. The settled
//! payment's spans, from the gateway's request to the customer's
//! notification and the audit log's receipt, share the trace id of the
//! client's `traceparent`; the gateway's request span is the child of the
//! client's span, and every other span's parent is a span of the same trace
//! that some service exported.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use paystream_e2e::processes::{DEV_API_KEY, Options, Processes, SERVICES};
use paystream_e2e::{CREDITOR, PAYER, credit_transfer};
use paystream_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use paystream_testkit::wait_until;
use serde_json::Value;

/// The client's own trace and span, which the payment's spans continue.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// What the trace lacks to be whole; empty when it is.
fn gaps(trace: &[ReceivedSpan]) -> Vec<String> {
    let mut gaps = Vec::new();
    let services: BTreeSet<&str> = trace.iter().map(|span| span.service.as_str()).collect();
    for service in SERVICES {
        if !services.contains(service) {
            gaps.push(format!("no span from {service}"));
        }
    }
    let ids: BTreeSet<&str> = trace.iter().map(|span| span.span_id.as_str()).collect();
    for span in trace {
        if let Some(parent) = &span.parent_span_id
            && !ids.contains(parent.as_str())
            && parent != CLIENT_SPAN
        {
            gaps.push(format!(
                "{}'s {} has parent {parent}, not (yet) received",
                span.service, span.name
            ));
        }
    }
    let consumed = |service: &str, topic: &str| {
        trace.iter().any(|span| {
            span.service == service
                && span.name == "consume"
                && span
                    .attribute("messaging.destination.name")
                    .is_some_and(|name| name.ends_with(topic))
        })
    };
    if !consumed("notifications", "rtgs.settled") {
        gaps.push("notifications has not consumed rtgs.settled".into());
    }
    if !trace
        .iter()
        .any(|span| span.service == "notifications" && span.name == "notification.deliver")
    {
        gaps.push("no notification.deliver span".into());
    }
    if !consumed("gateway", "notification.sent") {
        gaps.push("the gateway has not consumed notification.sent".into());
    }
    gaps
}

fn named<'a>(trace: &'a [ReceivedSpan], service: &str, name: &str) -> Vec<&'a ReceivedSpan> {
    trace
        .iter()
        .filter(|span| span.service == service && span.name == name)
        .collect()
}

#[tokio::test]
async fn a_settled_payment_is_one_trace_across_the_six_services() {
    let receiver = OtlpReceiver::start().await;
    let options = Options::default()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        // Export within 100 ms of a span's end, not the default 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let processes = Processes::start_with("trace", options).await;
    let gateway = processes.url("gateway");
    let http = reqwest::Client::new();
    let accepted: Value = http
        .post(format!("{gateway}/v1/payments"))
        .bearer_auth(DEV_API_KEY)
        .header("Idempotency-Key", "one-trace")
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .json(&credit_transfer(PAYER, CREDITOR))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payment_id = accepted["paymentId"].as_str().unwrap().to_owned();

    wait_until(
        Duration::from_secs(60),
        "the payment settled and its customer told",
        || async {
            let view = processes.payment(&http, &payment_id).await?;
            let told = view["notifications"]
                .as_array()?
                .iter()
                .any(|kind| kind == "PAYMENT_SETTLED");
            (view["status"] == "SETTLED" && told).then_some(())
        },
    )
    .await;

    // The spans arrive as each process's exporter sends its batch.
    let deadline = Instant::now() + Duration::from_secs(30);
    let trace = loop {
        let trace: Vec<ReceivedSpan> = receiver
            .spans()
            .into_iter()
            .filter(|span| span.trace_id == CLIENT_TRACE)
            .collect();
        let gaps = gaps(&trace);
        if gaps.is_empty() {
            break trace;
        }
        assert!(
            Instant::now() < deadline,
            "the trace is not whole after 30 s: {gaps:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let mut per_service: BTreeMap<&str, usize> = BTreeMap::new();
    for span in &trace {
        *per_service.entry(span.service.as_str()).or_default() += 1;
    }
    println!("{} spans in the trace: {per_service:?}", trace.len());

    let roots: Vec<&ReceivedSpan> = trace
        .iter()
        .filter(|span| {
            span.parent_span_id
                .as_deref()
                .is_none_or(|parent| parent == CLIENT_SPAN)
        })
        .collect();
    assert_eq!(roots.len(), 1, "one span under the client's: {roots:#?}");
    let request = roots[0];
    assert_eq!(
        (request.service.as_str(), request.name.as_str()),
        ("gateway", "POST /v1/payments")
    );
    assert_eq!(request.parent_span_id.as_deref(), Some(CLIENT_SPAN));
    assert_eq!(request.attribute("http.response.status_code"), Some("202"));

    // The payment's span inside the request, and validation continuing it
    // itself, not a sibling.
    let payment = named(&trace, "gateway", "payment");
    assert_eq!(payment.len(), 1, "{payment:#?}");
    let payment = payment[0];
    assert_eq!(payment.attribute("payment_id"), Some(payment_id.as_str()));
    assert_eq!(
        payment.parent_span_id.as_deref(),
        Some(request.span_id.as_str())
    );
    let validation = named(&trace, "validation", "consume");
    assert!(
        validation
            .iter()
            .any(|span| span.parent_span_id.as_deref() == Some(payment.span_id.as_str())),
        "validation's consume span is a child of the gateway's: {validation:#?}"
    );

    // Both parties screened, in the payment's screening span, each with its
    // outcome; the calls that carried the checks (batches shared with any
    // other payment's) are client spans of the provider's, children of
    // that span (or, for a payment that did not lead a batch, linked).
    let screening = named(&trace, "validation", "screening");
    assert_eq!(screening.len(), 1, "{screening:#?}");
    let screening = screening[0];
    assert_eq!(screening.attribute("payment_id"), Some(payment_id.as_str()));
    for role in ["aml.debtor", "aml.creditor"] {
        assert!(
            matches!(screening.attribute(role), Some("LOW" | "MEDIUM")),
            "a settled payment's {role} was cleared: {screening:#?}"
        );
    }
    let calls: Vec<_> = named(&trace, "validation", "provider.batch")
        .into_iter()
        .filter(|call| call.attribute("peer.service") == Some("aml"))
        .collect();
    assert!(!calls.is_empty(), "no AML call in the trace: {trace:#?}");
    for call in &calls {
        assert_eq!(
            call.parent_span_id.as_deref(),
            Some(screening.span_id.as_str()),
            "{call:#?}"
        );
        assert_eq!(call.attribute("http.response.status_code"), Some("200"));
        assert_eq!(call.attribute("provider.outcome"), Some("answered"));
    }

    // The rail's submission carries the payment and the rail's answer.
    let submissions = named(&trace, "rtgs-gateway", "rtgs.submission");
    let sent = submissions
        .iter()
        .find(|span| span.attribute("state") == Some("SUBMITTING"))
        .unwrap_or_else(|| panic!("no submission span: {submissions:#?}"));
    assert_eq!(sent.attribute("payment_id"), Some(payment_id.as_str()));
    assert!(
        matches!(
            sent.attribute("rail.outcome"),
            Some("ACSP" | "PDNG" | "ACSC")
        ),
        "{sent:#?}"
    );
    assert!(
        trace.iter().any(|span| span.name == "provider.call"
            && span.parent_span_id.as_deref() == Some(sent.span_id.as_str())),
        "the rail call is inside the submission's span"
    );
    let settled = named(&trace, "rtgs-gateway", "rtgs.outcome");
    assert!(
        settled
            .iter()
            .any(|span| span.attribute("status") == Some("ACSC")),
        "{settled:#?}"
    );
}
