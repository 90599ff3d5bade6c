//! `paystream trace --json` of a settled, a rejected and a reversed payment
//! shows every step from every service in causal order, and `paystream
//! reconcile` finds every service's records in agreement about them — and
//! names the payment when one does not.

use std::time::Duration;

use paystream_e2e::{CLOSED_CREDITOR, CREDITOR, NEARLY_EMPTY, PAYER, Stack};
use paystream_testkit::wait_until;
use serde_json::Value;
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(90);

async fn submit(stack: &Stack, key: &str, debtor: &str, creditor: &str) -> String {
    let answer: Value = stack
        .submit_to(key, debtor, creditor)
        .await
        .json()
        .await
        .unwrap();
    answer["paymentId"].as_str().unwrap().to_owned()
}

async fn trace(stack: &Stack, id: &str, json: bool) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_paystream"));
    command
        .args(["trace", id, "--audit-url", &stack.audit.url()])
        .env("PAYSTREAM_LOG", "warn");
    if json {
        command.arg("--json");
    }
    let output = command.output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The timeline once it holds `expected` in this order. The audit stores
/// each topic's partitions independently, so a later step can be stored
/// before an earlier one: wait until all are there.
async fn timeline(stack: &Stack, id: &str, expected: &[(&str, &str)]) -> Vec<Value> {
    wait_until(WAIT, "the payment's steps in the audit log", || async {
        let (ok, out) = trace(stack, id, true).await;
        let timeline: Value = serde_json::from_str(&out).ok().filter(|_| ok)?;
        let events = timeline["events"].as_array()?.clone();
        ordered(&steps(&events), expected).ok().map(|()| events)
    })
    .await
}

/// The steps' (topic, producer) in the order the trace gives them.
fn steps(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["topic"].as_str().unwrap_or_default().to_owned(),
                e["producer"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Whether `expected` appear in `steps` in this order (other steps may sit
/// between); if not, which one is missing.
fn ordered(steps: &[(String, String)], expected: &[(&str, &str)]) -> Result<(), String> {
    let mut at = 0;
    for (topic, producer) in expected {
        let found = steps[at..]
            .iter()
            .position(|(t, p)| t == topic && p == producer)
            .ok_or_else(|| format!("{topic} by {producer} not after step {at} in {steps:?}"))?;
        at += found + 1;
    }
    Ok(())
}

#[tokio::test]
async fn trace_shows_every_step_of_a_payment_in_causal_order() {
    let stack = Stack::start().await;
    let settled = submit(&stack, "trace-settled", PAYER, CREDITOR).await;
    let reversed = submit(&stack, "trace-reversed", PAYER, CLOSED_CREDITOR).await;
    let rejected = submit(&stack, "trace-rejected", NEARLY_EMPTY, CREDITOR).await;

    let events = timeline(
        &stack,
        &settled,
        &[
            ("payment.submitted", "gateway"),
            ("payment.validated", "validation"),
            ("account.debited", "cbs-debit"),
            ("rtgs.submitted", "rtgs-gateway"),
            ("rtgs.settled", "rtgs-gateway"),
        ],
    )
    .await;
    let settlement = events
        .iter()
        .find(|e| e["topic"] == "rtgs.settled")
        .unwrap();
    assert!(settlement["uetr"].is_string(), "{settlement}");
    assert!(settlement["traceId"].is_string(), "{settlement}");
    let first = &events[0];
    assert_eq!(first["sinceFirstMs"], 0, "{first}");

    let events = timeline(
        &stack,
        &reversed,
        &[
            ("payment.submitted", "gateway"),
            ("payment.validated", "validation"),
            ("account.debited", "cbs-debit"),
            ("rtgs.rejected", "rtgs-gateway"),
            ("account.debit.reversed", "cbs-debit"),
        ],
    )
    .await;
    let reversal = events
        .iter()
        .find(|e| e["topic"] == "account.debit.reversed")
        .unwrap();
    assert_eq!(reversal["reasonCode"], "AC04", "{reversal}");

    let events = timeline(
        &stack,
        &rejected,
        &[
            ("payment.submitted", "gateway"),
            ("payment.validated", "validation"),
            ("payment.rejected", "cbs-debit"),
        ],
    )
    .await;
    assert!(
        !steps(&events)
            .iter()
            .any(|(topic, _)| topic.starts_with("rtgs."))
    );

    // The customer was told, and the trace shows it.
    timeline(
        &stack,
        &settled,
        &[
            ("rtgs.settled", "rtgs-gateway"),
            ("notification.sent", "notifications"),
        ],
    )
    .await;

    // The table for people names the same steps.
    let (ok, table) = trace(&stack, &settled, false).await;
    assert!(ok);
    for column in ["TIME", "+MS", "SERVICE", "TOPIC", "EVENT", "FACTS", "TRACE"] {
        assert!(table.contains(column), "{table}");
    }
    assert!(
        table.contains("rtgs.settled") && table.contains("rtgs-gateway"),
        "{table}"
    );
    let (ok, _) = trace(&stack, "no-such-payment", true).await;
    assert!(!ok, "an unknown id is a failure");

    // Every service's own records agree on all three, once the read models
    // have caught up.
    let last = std::sync::Mutex::new(Value::Null);
    let found = tokio::time::timeout(
        WAIT,
        wait_until(WAIT * 2, "every service's records in agreement", || async {
            let (ok, found) = reconcile(&stack).await;
            if let Ok(mut last) = last.lock() {
                *last = found.clone();
            }
            ok.then_some(found)
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("the records never agreed: {}", last.lock().unwrap()));
    assert_eq!(found["disagreements"], serde_json::json!([]), "{found}");
    let states: Vec<&str> = found["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    for state in ["SETTLED", "REVERSED", "REJECTED (ledger)"] {
        assert!(states.contains(&state), "{found}");
    }
    // A decision validation holds for a payment the gateway never accepted
    // is named.
    let validation = sqlx::PgPool::connect(&stack.databases.validation)
        .await
        .unwrap();
    let stray = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO decisions (payment_id, correlation_id, decision) VALUES ($1, 'stray', 'VALIDATED')")
        .bind(stray)
        .execute(&validation)
        .await
        .unwrap();
    let (ok, found) = reconcile(&stack).await;
    assert!(!ok, "a disagreement fails the command");
    let named = found["disagreements"].as_array().unwrap();
    assert_eq!(named.len(), 1, "{found}");
    assert_eq!(named[0]["paymentId"], stray.to_string());
}

async fn reconcile(stack: &Stack) -> (bool, Value) {
    let d = &stack.databases;
    let output = Command::new(env!("CARGO_BIN_EXE_paystream"))
        .args(["reconcile", "--json"])
        .args(["--gateway-database-url", &d.gateway])
        .args(["--validation-database-url", &d.validation])
        .args(["--cbs-debit-database-url", &d.ledger])
        .args(["--rtgs-gateway-database-url", &d.rtgs_gateway])
        .args(["--audit-database-url", &d.audit])
        .args([
            "--rail-report-url",
            &format!("{}/admin/rtgs/report", stack.sandbox_url),
        ])
        .env("PAYSTREAM_LOG", "warn")
        .output()
        .await
        .unwrap();
    let found = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&output.stderr).into_owned()));
    (output.status.success(), found)
}
