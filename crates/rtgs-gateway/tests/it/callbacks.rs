//! The callback endpoint: a forged or malformed report is refused with a
//! clear error and changes nothing; duplicate, out-of-order and lost
//! callbacks still give one outcome per payment.

use chrono::Utc;
use paystream_contract::{RtgsSettled, RtgsSubmitted};
use paystream_iso20022::{StatusReport, TxStatus};
use paystream_rtgs_gateway::api::CALLBACK_PATH;
use paystream_service_kit::signing;
use paystream_testkit::wait_until;
use serde_json::Value;
use uuid::Uuid;

use crate::stand::{SECRET, Stand, WAIT, debited};

async fn post(stand: &Stand, secret: &str, body: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{CALLBACK_PATH}", stand.url()))
        .header("content-type", "application/xml")
        .body(body.to_owned());
    for (name, value) in signing::headers(
        secret.as_bytes(),
        &Uuid::new_v4().to_string(),
        body.as_bytes(),
    ) {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn settled(uetr: Uuid, message_id: &str) -> String {
    StatusReport {
        message_id: message_id.to_owned(),
        created_at: Utc::now(),
        original_message_id: "ORIGINAL".into(),
        original_end_to_end_id: "E2E".into(),
        uetr,
        status: TxStatus::AcceptedSettlementCompleted,
        reason: None,
        reason_text: None,
        settlement_date: Some(Utc::now().date_naive()),
        clearing_reference: Some("RTGS-TEST-1".into()),
    }
    .to_xml()
    .unwrap()
}

#[tokio::test]
async fn forged_and_malformed_callbacks_are_refused_and_change_nothing() {
    // The rail's own callbacks are lost and nothing polls soon: only this
    // test's callbacks reach the gateway.
    let stand = Stand::new("rtgs-forged", "settle=10ms,lost=1").await;
    let mut config = stand.config();
    config.poll_after_ms = 600_000;
    let _gateway = stand.start_with(config).await;
    let payment = debited();
    let uetr: Uuid = payment.uetr.clone().unwrap().parse().unwrap();
    stand.send(vec![payment.clone()]).await;
    stand.read::<RtgsSubmitted>(1).await;
    assert_eq!(stand.state_of(payment.payment_id).await, "SUBMITTED");

    let (status, problem) = post(&stand, "not-the-secret", &settled(uetr, "FORGED-1")).await;
    assert_eq!(status, 401, "{problem}");
    assert!(problem["type"].as_str().unwrap().ends_with("bad-signature"));

    let malformed = settled(uetr, "BROKEN-1").replace("<TxSts>ACSC</TxSts>", "<TxSts>DONE</TxSts>");
    let (status, problem) = post(&stand, SECRET, &malformed).await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("TxSts"),
        "{problem}"
    );
    let (status, _) = post(&stand, SECRET, "<Document>").await;
    assert_eq!(status, 400);
    let (status, _) = post(&stand, SECRET, &settled(Uuid::new_v4(), "STRANGER-1")).await;
    assert_eq!(status, 404);

    assert_eq!(stand.state_of(payment.payment_id).await, "SUBMITTED");
    assert!(stand.events::<RtgsSettled>().await.is_empty());

    // A genuine report settles it, once however often it comes.
    let genuine = settled(uetr, "GENUINE-1");
    let (status, applied) = post(&stand, SECRET, &genuine).await;
    assert_eq!((status, applied["effect"].as_str()), (200, Some("SETTLED")));
    let (status, applied) = post(&stand, SECRET, &genuine).await;
    assert_eq!((status, applied["duplicate"].as_bool()), (200, Some(true)));
    let (status, applied) = post(&stand, SECRET, &settled(uetr, "GENUINE-2")).await;
    assert_eq!(
        (status, applied["effect"].as_str()),
        (200, Some("UNCHANGED"))
    );
    stand.await_resolved(1, WAIT).await;
    assert_eq!(stand.events::<RtgsSettled>().await.len(), 1);
}

#[tokio::test]
async fn duplicated_reordered_and_lost_callbacks_give_one_outcome_each() {
    const PAYMENTS: usize = 30;
    let stand = Stand::new(
        "rtgs-callbacks",
        "settle=20ms,duplicates=0.5,reorder=0.5,lost=0.3",
    )
    .await;
    let _gateway = stand.start().await;
    let payments: Vec<_> = (0..PAYMENTS).map(|_| debited()).collect();
    stand.send(payments.clone()).await;

    stand.await_resolved(PAYMENTS as i64, WAIT).await;
    // Every callback the rail meant to send has been delivered or given up.
    let rail = wait_until(WAIT, "the rail's callbacks done", || async {
        let rail = stand.report();
        let sent = rail.callbacks.delivered + rail.callbacks.failed + rail.callbacks.lost;
        let meant =
            rail.settled + rail.rejected + rail.callbacks.duplicated + rail.callbacks.reordered;
        (sent >= meant).then_some(rail)
    })
    .await;
    assert!(
        rail.callbacks.duplicated > 0 && rail.callbacks.reordered > 0 && rail.callbacks.lost > 0,
        "{:?}",
        rail.callbacks
    );
    assert!(
        rail.status_queries > 0,
        "lost callbacks are resolved by asking"
    );
    assert!(rail.settled_twice.is_empty());
    assert_eq!(rail.distinct_uetrs, PAYMENTS as u64);

    let settled = stand.events::<RtgsSettled>().await;
    let mut ids: Vec<Uuid> = settled.iter().map(|event| event.payment_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), PAYMENTS);
    assert_eq!(settled.len(), PAYMENTS, "one rtgs.settled per payment");
    assert_eq!(stand.events::<RtgsSubmitted>().await.len(), PAYMENTS);
}
