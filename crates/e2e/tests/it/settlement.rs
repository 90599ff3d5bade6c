//! A payment through the gateway, validation, the ledger, rtgs-gateway and
//! the rail, as the gateway's status API tells it: settled, with the hold
//! posted; rejected by the rail, with the hold voided and the payment
//! reversed under the rail's reason; refused by the ledger for want of
//! funds, never reaching the rail — and each customer told.

use std::time::Duration;

use paystream_e2e::{CLOSED_CREDITOR, CREDITOR, NEARLY_EMPTY, PAYER, Stack};
use paystream_testkit::wait_until;
use serde_json::Value;

async fn submit(stack: &Stack, key: &str, debtor: &str, creditor: &str) -> String {
    let response = stack.submit_to(key, debtor, creditor).await;
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.unwrap();
    accepted["paymentId"].as_str().unwrap().to_owned()
}

/// Waits until the gateway shows the payment in a final state.
async fn final_status(stack: &Stack, payment_id: &str) -> Value {
    wait_until(
        Duration::from_secs(60),
        "the payment's final state",
        || async {
            let view = stack.payment(payment_id).await?;
            matches!(
                view["status"].as_str(),
                Some("SETTLED" | "REJECTED" | "REVERSED")
            )
            .then_some(view)
        },
    )
    .await
}

async fn account(stack: &Stack, iban: &str) -> Value {
    reqwest::get(format!(
        "{}/v1/accounts/{iban}?movements=10",
        stack.ledger.url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

#[tokio::test]
async fn payments_settle_reverse_or_are_refused_end_to_end() {
    let stack = Stack::start().await;
    let settled = submit(&stack, "e2e-settled", PAYER, CREDITOR).await;
    let reversed = submit(&stack, "e2e-reversed", PAYER, CLOSED_CREDITOR).await;
    let refused = submit(&stack, "e2e-refused", NEARLY_EMPTY, CREDITOR).await;

    let view = final_status(&stack, &settled).await;
    assert_eq!(view["status"], "SETTLED", "{view}");
    let view = final_status(&stack, &reversed).await;
    assert_eq!(view["status"], "REVERSED", "{view}");
    assert_eq!(view["reasonCode"], "AC04", "{view}");
    let view = final_status(&stack, &refused).await;
    assert_eq!(view["status"], "REJECTED", "{view}");
    assert_eq!(view["reasonCode"], "AM04", "{view}");

    // The settled payment's hold is posted, the reversed one's voided.
    let payer = wait_until(Duration::from_secs(30), "both holds resolved", || async {
        let payer = account(&stack, PAYER).await;
        (payer["pendingDebitsMinor"] == 0).then_some(payer)
    })
    .await;
    assert_eq!(payer["postedDebitsMinor"], 25_000, "{payer}");
    let kinds: Vec<(&str, &str)> = payer["movements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["paymentId"].as_str().unwrap(),
                m["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&(settled.as_str(), "POST_PENDING")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(reversed.as_str(), "VOID_PENDING")),
        "{kinds:?}"
    );
}
