//! Each step worth telling reaches the customer once per channel, with
//! `notification.sent` carrying the provider's message id; an event
//! handled twice, a customer with no contact, and a card debit already
//! told from the card topic send nothing more.

use std::collections::HashSet;

use paystream_bus::headers::trace_id_of;
use paystream_contract::Topic;
use paystream_contract::{
    AccountDebited, CardTransactionReceived, DebitOrigin, NotificationChannel, NotificationSent,
    PaymentRejected, samples,
};
use paystream_testkit::pipeline::header;
use uuid::Uuid;

use crate::stand::{BOTH, CARD, CONTACTS, NOBODY, PARTITIONS, Stand, WAIT, settled};

#[tokio::test]
async fn each_step_is_told_once_per_channel_and_announced() {
    let stand = Stand::new(
        "notify-flow",
        CONTACTS,
        "ok",
        std::time::Duration::from_secs(3600),
    )
    .await;
    let service = stand.start().await;

    let payment = settled(BOTH);
    let mut again = payment.clone();
    again.envelope.event_id = Uuid::now_v7();
    let mut rejected: PaymentRejected = samples::payment_rejected();
    rejected.payment_id = Uuid::now_v7();
    rejected.debtor_account = NOBODY.to_owned();
    let mut card_debit: AccountDebited = samples::account_debited();
    card_debit.origin = DebitOrigin::CardTransaction;
    card_debit.account_id = BOTH.to_owned();
    let mut card: CardTransactionReceived = samples::card_transaction_received();
    card.card_id = CARD.to_owned();
    card.card_transaction_id = Uuid::new_v4().to_string();
    stand.send(vec![payment.clone(), again]).await;
    stand.send(vec![rejected]).await;
    stand.send(vec![card_debit]).await;
    stand.send(vec![card.clone()]).await;

    stand.await_processed(5).await;
    // SMS and e-mail for the settlement, SMS for the card.
    stand.await_sent(3, WAIT).await;
    let sent: Vec<NotificationSent> = stand.events().await;
    assert_eq!(sent.len(), 3, "{sent:?}");
    let ids: HashSet<Uuid> = sent.iter().map(|n| n.envelope.event_id).collect();
    assert_eq!(ids.len(), 3, "each announcement has its own eventId");
    let of_payment: Vec<&NotificationSent> = sent
        .iter()
        .filter(|n| n.payment_id == payment.payment_id.to_string())
        .collect();
    let channels: HashSet<_> = of_payment.iter().map(|n| n.channel).collect();
    assert_eq!(
        channels,
        HashSet::from([NotificationChannel::Sms, NotificationChannel::Email])
    );
    for notice in &of_payment {
        assert_eq!(notice.template_code, "PAYMENT_SETTLED");
        assert_eq!(notice.customer_ref, BOTH);
        assert_eq!(
            notice.envelope.correlation_id,
            payment.envelope.correlation_id
        );
        assert_eq!(
            notice.envelope.causation_id,
            payment.envelope.event_id.to_string()
        );
        assert!(notice.provider_message_id.is_some());
    }
    let card_notice = sent
        .iter()
        .find(|n| n.template_code == "CARD_TRANSACTION")
        .unwrap();
    assert_eq!(
        card_notice.payment_id,
        paystream_contract::card_payment_id(&card.card_transaction_id).to_string()
    );

    // The announcements continue the settlement's trace.
    let trace_of = |record: &rdkafka::message::OwnedMessage| {
        header(record, "traceparent").and_then(|parent| trace_id_of(&parent).map(str::to_owned))
    };
    let cause = stand
        .pipeline
        .read_all(Topic::RtgsSettled, PARTITIONS)
        .await;
    let cause_trace = trace_of(&cause[0]).unwrap();
    let announced = stand
        .pipeline
        .read_all(Topic::NotificationSent, PARTITIONS)
        .await;
    let settled_traces: Vec<Option<String>> = announced
        .iter()
        .filter(|record| {
            header(record, "causationId").as_deref()
                == Some(payment.envelope.event_id.to_string().as_str())
        })
        .map(trace_of)
        .collect();
    assert_eq!(settled_traces, vec![Some(cause_trace.clone()); 2]);

    let provider = stand.report();
    assert_eq!(provider.deliveries, 3, "{provider:?}");
    assert!(provider.delivered_twice.is_empty());

    let listed: serde_json::Value = reqwest::get(format!(
        "{}/v1/payments/{}/notifications",
        service.url(),
        payment.payment_id
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let states: Vec<&str> = listed["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["SENT", "SENT"], "{listed}");
}

#[tokio::test]
async fn a_provider_outage_delays_notifications_and_loses_none() {
    const PAYMENTS: usize = 20;
    let stand = Stand::new(
        "notify-outage",
        CONTACTS,
        "ok",
        std::time::Duration::from_secs(3600),
    )
    .await;
    stand.provider_http.set("down".parse().unwrap());
    let _service = stand.start().await;
    stand
        .send((0..PAYMENTS).map(|_| settled(BOTH)).collect())
        .await;
    paystream_testkit::wait_until(WAIT, "every notification tried", || async {
        let tried: i64 =
            sqlx::query_scalar("SELECT count(*) FROM notifications WHERE attempts >= 2")
                .fetch_one(&stand.pool)
                .await
                .ok()?;
        (tried == 2 * PAYMENTS as i64).then_some(())
    })
    .await;
    assert_eq!(stand.count("SENT").await, Some(0));
    assert_eq!(stand.report().deliveries, 0);

    stand.provider_http.set("ok".parse().unwrap());
    stand.await_sent(2 * PAYMENTS as i64, WAIT).await;
    let provider = stand.report();
    assert_eq!(provider.deliveries, 2 * PAYMENTS as u64);
    assert!(provider.delivered_twice.is_empty());
    assert_eq!(stand.events::<NotificationSent>().await.len(), 2 * PAYMENTS);
}
