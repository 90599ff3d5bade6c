//! Every metric the alert rules (deploy/monitoring/alerts.yaml) and the
//! dashboard (deploy/monitoring/dashboard.json) name is exported by a running
//! service: a rule on a misspelt or vanished metric never fires, silently.
//!
//! A labelled metric appears in `/metrics` only once a label set was seen,
//! so the test makes each happen: a payment settles (decisions, provider
//! calls, transfers, outcomes, published events, lag and heartbeats), a
//! poison record is dead-lettered, and an unreadable outbox row is parked.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use paystream_contract::Topic;
use paystream_e2e::{PAYER, Stack};
use paystream_testkit::wait_until;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

fn monitoring(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/monitoring")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The `paystream_*` names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find("paystream_") {
        let preceded_by_word = rest[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded_by_word {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// The `expr:` of every rule: the line itself and the lines indented
/// deeper (a `>-` block), up to the next key at the rule's level.
fn rule_exprs(yaml: &str) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let Some(first) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - trimmed.len();
        let mut expr = first.trim().trim_start_matches(">-").to_owned();
        while let Some(next) = lines.peek() {
            let next_indent = next.len() - next.trim_start().len();
            if !next.trim().is_empty() && next_indent <= indent {
                break;
            }
            expr.push(' ');
            expr.push_str(next.trim());
            lines.next();
        }
        exprs.push(expr);
    }
    exprs
}

fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect()
}

/// The sample names in a Prometheus text exposition.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next().map(str::to_owned))
        .collect()
}

fn is_exported(name: &str, samples: &BTreeSet<String>) -> bool {
    samples.contains(name)
        || ["_bucket", "_sum", "_count"]
            .iter()
            .any(|suffix| samples.contains(&format!("{name}{suffix}")))
}

#[test]
fn the_rules_and_the_dashboard_name_metrics() {
    let rules = rule_exprs(&monitoring("alerts.yaml"));
    assert!(rules.len() >= 8, "{rules:?}");
    assert!(
        rules.iter().all(|expr| !metric_names(expr).is_empty()),
        "{rules:?}"
    );
    assert_eq!(
        metric_names(
            "max by (group) (paystream_bus_consumer_lag{group=~\"x\"}) > 0 and not_paystream_x"
        ),
        BTreeSet::from(["paystream_bus_consumer_lag".to_owned()])
    );
}

#[tokio::test]
async fn every_metric_an_alert_or_the_dashboard_names_is_exported_by_a_running_service() {
    let dashboard: Value = serde_json::from_str(&monitoring("dashboard.json")).unwrap();
    let mut wanted = BTreeSet::new();
    for expr in rule_exprs(&monitoring("alerts.yaml"))
        .into_iter()
        .chain(dashboard_exprs(&dashboard))
    {
        wanted.extend(metric_names(&expr));
    }

    let stack = Stack::start().await;
    // A poison record: the validation group dead-letters it.
    stack
        .pipeline
        .producer
        .send_raw(
            &stack.pipeline.topic(Topic::PaymentSubmitted),
            Some(b"poison"),
            b"not an avro record",
            &Vec::new(),
        )
        .await
        .unwrap();
    // An outbox row whose headers cannot be read: the gateway's relay parks it.
    let gateway_db = sqlx::PgPool::connect(&stack.databases.gateway)
        .await
        .unwrap();
    sqlx::query("INSERT INTO bus_outbox (topic, key, value, headers) VALUES ($1, NULL, $2, $3)")
        .bind(stack.pipeline.topic(Topic::PaymentSubmitted))
        .bind(b"never sent".to_vec())
        .bind(serde_json::json!({"not": "an array"}))
        .execute(&gateway_db)
        .await
        .unwrap();
    // One payment all the way to settlement.
    let response = stack.submit("monitoring-1", PAYER).await;
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.unwrap();
    let payment_id = accepted["paymentId"].as_str().unwrap().to_owned();
    wait_until(WAIT, "the payment settled", || async {
        let view = stack.payment(&payment_id).await?;
        (view["status"] == "SETTLED").then_some(())
    })
    .await;

    let services = [
        ("gateway", &stack.gateway),
        ("validation", &stack.validation),
        ("ledger", &stack.ledger),
        ("rtgs-gateway", &stack.rtgs_gateway),
        ("notifications", &stack.notifications),
        ("audit", &stack.audit),
    ];
    // Lag and heartbeats come at the statistics and commit intervals.
    let deadline = Instant::now() + WAIT;
    let missing = loop {
        let mut samples = BTreeSet::new();
        for (name, service) in services {
            let text = reqwest::get(format!("{}/metrics", service.url()))
                .await
                .and_then(reqwest::Response::error_for_status)
                .unwrap_or_else(|error| panic!("{name}'s /metrics: {error}"))
                .text()
                .await
                .unwrap();
            samples.extend(exported(&text));
        }
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|name| !is_exported(name, &samples))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        missing.is_empty(),
        "named by deploy/monitoring but exported by no service: {missing:?} (wanted {wanted:?})"
    );
}
