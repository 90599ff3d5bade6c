//! A debited credit transfer through the gateway and the rail: sent once,
//! acknowledged (`rtgs.submitted`), settled (`rtgs.settled`) or rejected
//! with the rail's reason (`rtgs.rejected`); card debits never sent; the
//! document the rail parsed is the event, field by field.

use paystream_contract::{
    AccountDebited, DebitOrigin, ReasonCode, RtgsRejected, RtgsSettled, RtgsSubmitted,
};
use paystream_iso20022::CreditTransfer;
use serde_json::Value;

use crate::stand::{Stand, debited, debited_to_closed_account};

async fn submission(stand: &Stand, debited: &AccountDebited) -> Value {
    let response = reqwest::get(format!(
        "{}/v1/submissions/{}",
        stand.url(),
        debited.payment_id
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_debited_transfer_is_sent_once_acknowledged_and_settled() {
    let stand = Stand::new("rtgs-settle", "settle=20ms").await;
    let _gateway = stand.start().await;
    let payment = debited();
    stand.send(vec![payment.clone()]).await;

    let settled = stand.read::<RtgsSettled>(1).await;
    let submitted = stand.read::<RtgsSubmitted>(1).await;
    let (settled, submitted) = (&settled[0], &submitted[0]);
    let uetr = payment.uetr.clone().unwrap();
    for (payment_id, event_uetr) in [
        (settled.payment_id, settled.uetr),
        (submitted.payment_id, submitted.uetr),
    ] {
        assert_eq!(payment_id, payment.payment_id);
        assert_eq!(event_uetr.to_string(), uetr);
    }
    for envelope in [&settled.envelope, &submitted.envelope] {
        assert_eq!(envelope.correlation_id, payment.envelope.correlation_id);
        assert_eq!(envelope.causation_id, payment.envelope.event_id.to_string());
        assert_eq!(envelope.producer, "rtgs-gateway");
    }
    let rail = stand.report();
    let seen = &rail.uetrs[&uetr];
    assert_eq!((seen.submissions, seen.settlements), (1, 1), "{rail:?}");
    assert_eq!(settled.rtgs_reference, seen.clearing_reference);
    assert_eq!(submitted.rtgs_reference, seen.clearing_reference);
    assert_eq!(settled.amount_minor, payment.amount_minor);
    assert_eq!(settled.debtor_account, payment.account_id);
    assert_eq!(
        settled.settlement_date,
        chrono::Utc::now().date_naive().to_string()
    );
    assert_eq!(stand.state_of(payment.payment_id).await, "SETTLED");

    // The document the rail parsed strictly, against the event it came from.
    let view = submission(&stand, &payment).await;
    assert_eq!(view["state"], "SETTLED");
    let sent = CreditTransfer::from_xml(view["document"].as_str().unwrap()).unwrap();
    let debtor = payment.debtor.clone().unwrap();
    let creditor = payment.creditor.clone().unwrap();
    assert_eq!(sent.uetr.to_string(), uetr);
    assert_eq!(sent.amount_minor, payment.amount_minor);
    assert_eq!(sent.currency, payment.currency);
    assert_eq!(Some(sent.end_to_end_id), payment.end_to_end_id);
    assert_eq!(
        (sent.debtor.name, sent.debtor.account, sent.debtor.country),
        (debtor.name, debtor.account, debtor.country)
    );
    assert_eq!(
        (
            sent.creditor.name,
            sent.creditor.account,
            sent.creditor.country
        ),
        (creditor.name, creditor.account, creditor.country)
    );
    assert_eq!(sent.debtor.agent.bic, debtor.agent_bic);
    assert_eq!(sent.creditor.agent.bic, creditor.agent_bic);
    assert_eq!(sent.instructing_agent.bic, debtor.agent_bic);
    assert_eq!(sent.instructed_agent.bic, creditor.agent_bic);
    assert_eq!(sent.remittance_information, payment.remittance_information);
}

#[tokio::test]
async fn a_rail_rejection_comes_back_with_its_iso_reason() {
    let stand = Stand::new("rtgs-reject", "settle=20ms").await;
    let _gateway = stand.start().await;
    let payment = debited_to_closed_account();
    stand.send(vec![payment.clone()]).await;

    let rejected = &stand.read::<RtgsRejected>(1).await[0];
    assert_eq!(rejected.payment_id, payment.payment_id);
    assert_eq!(rejected.reason_code, ReasonCode::ClosedAccountNumber);
    assert!(!rejected.reason_text.is_empty());
    assert_eq!(rejected.amount_minor, payment.amount_minor);
    assert_eq!(
        rejected.envelope.causation_id,
        payment.envelope.event_id.to_string()
    );
    assert_eq!(stand.state_of(payment.payment_id).await, "REJECTED");
    assert!(stand.events::<RtgsSettled>().await.is_empty());
}

#[tokio::test]
async fn card_debits_stay_off_the_rail_and_a_repeat_is_sent_once() {
    let stand = Stand::new("rtgs-once", "settle=20ms").await;
    let _gateway = stand.start().await;
    let mut card = debited();
    card.origin = DebitOrigin::CardTransaction;
    card.uetr = None;
    card.debtor = None;
    card.creditor = None;
    let payment = debited();
    // The same payment again under another eventId: an upstream re-run.
    let mut again = payment.clone();
    again.envelope.event_id = uuid::Uuid::now_v7();
    stand.send(vec![card.clone(), payment.clone(), again]).await;

    stand.read::<RtgsSettled>(1).await;
    stand.await_resolved(1, crate::stand::WAIT).await;
    stand.await_processed(3).await;
    let rail = stand.report();
    assert_eq!(rail.distinct_uetrs, 1, "{rail:?}");
    assert_eq!(rail.submissions, 1, "sent once: {rail:?}");
    assert_eq!(stand.events::<RtgsSubmitted>().await.len(), 1);
    assert_eq!(stand.events::<RtgsSettled>().await.len(), 1);
    let response = reqwest::get(format!(
        "{}/v1/submissions/{}",
        stand.url(),
        card.payment_id
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 404);
}
