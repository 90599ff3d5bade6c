//! Seed 003's fan-out: one card transaction is handled by three groups on
//! the card topic — the ledger posts it, notifications tells the card
//! holder, analytics counts it — each once; a poison record on the topic
//! lands in each group's own dead-letter topic and stops none of them.

use std::time::Duration;

use paystream_contract::{Topic, card_payment_id, dead_letter_topic};
use paystream_e2e::{PAYER, Stack};
use paystream_testkit::{kafka, wait_until};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

async fn json(url: String) -> Option<Value> {
    reqwest::get(url).await.ok()?.json().await.ok()
}

#[tokio::test]
async fn one_card_transaction_is_handled_once_by_each_of_three_groups() {
    let stack = Stack::start().await;
    let card_transaction_id = uuid::Uuid::new_v4().to_string();
    let payment_id = card_payment_id(&card_transaction_id).to_string();
    let topic = stack.pipeline.topic(Topic::CardTransactionReceived);
    // Poison first: every group must dead-letter it and go on.
    stack
        .pipeline
        .producer
        .send_raw(&topic, Some(b"4821337"), b"not an avro record", &Vec::new())
        .await
        .unwrap();
    let answer = stack.card_transaction(&card_transaction_id, "15.00").await;
    assert_eq!(answer.status(), 200);

    let ledger = wait_until(WAIT, "the ledger's posting", || async {
        let account = json(format!(
            "{}/v1/accounts/{PAYER}?movements=20",
            stack.ledger.url()
        ))
        .await?;
        let postings = account["movements"]
            .as_array()?
            .iter()
            .filter(|m| m["paymentId"] == payment_id.as_str())
            .count();
        (postings > 0).then_some(postings)
    })
    .await;
    let told = wait_until(WAIT, "the card holder told", || async {
        let listed = json(format!(
            "{}/v1/payments/{payment_id}/notifications",
            stack.notifications.url()
        ))
        .await?;
        let sent: Vec<&Value> = listed["notifications"]
            .as_array()?
            .iter()
            .filter(|n| n["state"] == "SENT")
            .collect();
        (!sent.is_empty()).then_some(sent.len())
    })
    .await;
    let counted = wait_until(WAIT, "analytics to count it", || async {
        let series = json(format!(
            "{}/v1/analytics/card-transactions?by=merchant-country",
            stack.audit.url()
        ))
        .await?;
        let france = series["points"]
            .as_array()?
            .iter()
            .find(|p| p["value"] == "FR")?
            .clone();
        Some(france)
    })
    .await;
    assert_eq!(ledger, 1, "posted once");
    assert_eq!(told, 1, "told once");
    assert_eq!(counted["count"], 1, "{counted}");
    assert_eq!(counted["volumeMinor"], 1_500, "{counted}");

    for group in ["ledger", "notifications", "analytics"] {
        let letters = dead_letter_topic(&topic, group);
        wait_until(WAIT, "the poison in the group's own DLQ", || async {
            kafka::wait_for_topic(&stack.pipeline.kafka.bootstrap, &letters, WAIT).await;
            (kafka::records_written(&stack.pipeline.kafka.bootstrap, &letters, 3) == 1)
                .then_some(())
        })
        .await;
    }
}
