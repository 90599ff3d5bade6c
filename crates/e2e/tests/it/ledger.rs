//! A payment through the gateway, validation and the ledger: held on a
//! funded account and shown `DEBITED`, refused on a nearly empty one and
//! shown `REJECTED` with `AM04`, both as the gateway's status API tells it.

use std::time::Duration;

use paystream_e2e::{API_KEY, NEARLY_EMPTY, PAYER, Stack};
use paystream_testkit::wait_until;
use serde_json::Value;

async fn submit(stack: &Stack, key: &str, debtor: &str) -> String {
    let response = stack.submit(key, debtor).await;
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.unwrap();
    accepted["paymentId"].as_str().unwrap().to_owned()
}

/// Waits until the gateway shows the payment past `VALIDATED`.
async fn final_status(stack: &Stack, payment_id: &str) -> Value {
    let url = format!("{}/v1/payments/{payment_id}", stack.gateway.url());
    wait_until(
        Duration::from_secs(60),
        "the ledger's answer in the status",
        || async {
            let view: Value = reqwest::Client::new()
                .get(&url)
                .bearer_auth(API_KEY)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (!matches!(view["status"].as_str(), Some("SUBMITTED" | "VALIDATED"))).then_some(view)
        },
    )
    .await
}

#[tokio::test]
async fn the_gateway_status_follows_the_ledger_held_or_refused() {
    let stack = Stack::start().await;
    let held = submit(&stack, "ledger-held", PAYER).await;
    let refused = submit(&stack, "ledger-refused", NEARLY_EMPTY).await;

    let view = final_status(&stack, &held).await;
    assert_eq!(view["status"], "DEBITED", "{view}");
    let view = final_status(&stack, &refused).await;
    assert_eq!(view["status"], "REJECTED", "{view}");
    assert_eq!(view["reasonCode"], "AM04", "{view}");

    let account: Value = reqwest::get(format!("{}/v1/accounts/{PAYER}", stack.ledger.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["pendingDebitsMinor"], 25_000, "{account}");
}
