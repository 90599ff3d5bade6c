//! `paystream lag --json`: each group's committed offset and lag per
//! partition, read from the broker; `paystream ledger check` on the same
//! pipeline's ledger.

use std::time::Duration;

use paystream_e2e::{PAYER, Stack};
use paystream_testkit::wait_until;
use serde_json::Value;
use tokio::process::Command;

#[tokio::test]
async fn lag_reports_each_group_per_partition_and_drains_to_zero() {
    let stack = Stack::start().await;
    for n in 0..3 {
        let answer = stack.submit(&format!("lag-{n}"), PAYER).await;
        assert_eq!(answer.status(), 202);
    }
    let rows = wait_until(Duration::from_secs(60), "validation caught up", || async {
        let output = Command::new(env!("CARGO_BIN_EXE_paystream"))
            .args([
                "lag",
                "--json",
                "--group",
                "validation",
                "--group",
                "cbs-debit",
            ])
            .env("PAYSTREAM_KAFKA_BOOTSTRAP", &stack.pipeline.kafka.bootstrap)
            .env("PAYSTREAM_TOPIC_PREFIX", &stack.pipeline.kafka.topic_prefix)
            .env("PAYSTREAM_LOG", "warn")
            .output()
            .await
            .ok()?;
        let rows: Vec<Value> = serde_json::from_slice(&output.stdout).ok()?;
        let submitted: Vec<&Value> = rows
            .iter()
            .filter(|r| r["group"] == "validation" && r["topic"] == "payment.submitted")
            .collect();
        let caught_up = submitted
            .iter()
            .map(|r| r["committed"].as_i64().unwrap_or(0))
            .sum::<i64>()
            == 3
            && submitted.iter().all(|r| r["lag"] == 0);
        // The next group commits once it has handled what validation decided.
        let ledger = rows
            .iter()
            .any(|r| r["group"] == "cbs-debit" && r["topic"] == "payment.validated");
        (caught_up && ledger).then_some(rows)
    })
    .await;
    assert!(
        rows.iter()
            .all(|r| r["end"].as_i64() >= r["committed"].as_i64()),
        "{rows:?}"
    );

    let check = Command::new(env!("CARGO_BIN_EXE_paystream"))
        .args(["ledger", "check", "--database-url", &stack.databases.ledger])
        .env("PAYSTREAM_LOG", "warn")
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{report}");
    assert!(report.contains("ledger check: clean"), "{report}");
}
