//! The service end to end on the real broker, registry and PostgreSQL:
//! each path of a payment through the ledger, each refusal, card
//! transactions, repeats, and bad input.

use paystream_cbs_debit::{Currency, Kind, Rail, settlement_account, transfer_id};
use paystream_contract::{
    AccountDebitReversed, AccountDebited, CardTransactionReceived, DebitOrigin, Envelope,
    PaymentRejected, ReasonCode, RejectionStage, Topic, card_payment_id, dead_letter_topic,
    samples,
};
use paystream_testkit::pipeline::header;
use paystream_testkit::{kafka, wait_until};

use crate::stand::{PARTITIONS, Stand, WAIT, validated};

const RICH: &str = "DE89370400440532013000";
const POOR: &str = "DE02120300000000202051";
const CLOSED: &str = "FR1420041010050500013M02606";
const BLOCKED: &str = "NL91ABNA0417164300";
const STERLING: &str = "GB33BUKB20201555555555";
const CARD: &str = "4821337";

fn accounts() -> String {
    format!(
        "id,currency,opening_balance_minor,flags,cards\n\
         {RICH},EUR,1000000,debits_must_not_exceed_credits,{CARD}\n\
         {POOR},EUR,500,debits_must_not_exceed_credits\n\
         {CLOSED},EUR,1000000,debits_must_not_exceed_credits|closed\n\
         {BLOCKED},EUR,1000000,debits_must_not_exceed_credits|blocked\n\
         {STERLING},GBP,1000000,debits_must_not_exceed_credits\n"
    )
}

fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

#[tokio::test]
async fn a_validated_payment_is_held_then_posted_when_the_rail_settles() {
    let stand = Stand::new("cbs-settle", &accounts()).await;
    let _service = stand.start().await;
    let payment = validated(RICH, 25_000, "EUR");
    stand.send(payment.clone()).await;

    let debited = stand.read::<AccountDebited>(1).await.remove(0);
    assert_eq!(debited.payment_id, payment.payment_id);
    assert_eq!(debited.origin, DebitOrigin::CreditTransfer);
    assert_eq!(
        debited.posting_id,
        transfer_id(payment.payment_id, Kind::Pending)
    );
    assert_eq!(debited.uetr, Some(payment.uetr.to_string()));
    assert_eq!(
        debited.envelope.correlation_id,
        payment.envelope.correlation_id
    );
    assert_eq!(
        debited.envelope.causation_id,
        payment.envelope.event_id.to_string()
    );
    stand.await_balances(RICH, (25_000, 0, 0, 1_000_000)).await;

    let mut settled = samples::rtgs_settled();
    settled.envelope = Envelope::caused_by(&debited.envelope, "rtgs-gateway");
    settled.payment_id = payment.payment_id;
    settled.debtor_account = RICH.to_owned();
    stand.send(settled).await;
    stand.await_balances(RICH, (0, 25_000, 0, 1_000_000)).await;
    let in_flight = settlement_account(Rail::Rtgs, &eur(), RICH);
    assert_eq!(stand.balances(&in_flight).await, (0, 0, 0, 25_000));
    assert_eq!(
        stand.transfers_of(payment.payment_id).await,
        ["PENDING", "POST_PENDING"]
    );
    stand.assert_clean().await;
}

#[tokio::test]
async fn a_rail_rejection_voids_the_hold_and_announces_the_reversal_with_the_rails_reason() {
    let stand = Stand::new("cbs-void", &accounts()).await;
    let _service = stand.start().await;
    let payment = validated(RICH, 40_000, "EUR");
    stand.send(payment.clone()).await;
    let debited = stand.read::<AccountDebited>(1).await.remove(0);

    let mut rejected = samples::rtgs_rejected();
    rejected.envelope = Envelope::caused_by(&debited.envelope, "rtgs-gateway");
    rejected.payment_id = payment.payment_id;
    rejected.debtor_account = RICH.to_owned();
    rejected.reason_code = ReasonCode::ClosedAccountNumber;
    stand.send(rejected.clone()).await;

    let reversed = stand.read::<AccountDebitReversed>(1).await.remove(0);
    assert_eq!(reversed.payment_id, payment.payment_id);
    assert_eq!(reversed.account_id, RICH);
    assert_eq!(reversed.amount_minor, 40_000);
    assert_eq!(reversed.reason_code, ReasonCode::ClosedAccountNumber);
    assert_eq!(
        reversed.reversed_posting_id,
        transfer_id(payment.payment_id, Kind::Pending)
    );
    assert_eq!(
        reversed.posting_id,
        transfer_id(payment.payment_id, Kind::VoidPending)
    );
    stand.await_balances(RICH, (0, 0, 0, 1_000_000)).await;

    // The rail's answer delivered again under a new id voids nothing more
    // and announces nothing more.
    let mut again = rejected;
    again.envelope = Envelope::caused_by(&debited.envelope, "rtgs-gateway");
    stand.send(again).await;
    let marker = validated(RICH, 1, "EUR");
    stand.send(marker).await;
    stand.read::<AccountDebited>(2).await;
    assert_eq!(stand.written(Topic::AccountDebitReversed).await, 1);
    assert_eq!(
        stand.transfers_of(payment.payment_id).await,
        ["PENDING", "VOID_PENDING"]
    );
    stand.assert_clean().await;
}

#[tokio::test]
async fn each_refusal_is_a_rejection_at_stage_debit_with_its_iso_reason_and_moves_nothing() {
    let stand = Stand::new("cbs-refuse", &accounts()).await;
    let _service = stand.start().await;
    let cases = [
        (validated(POOR, 501, "EUR"), ReasonCode::InsufficientFunds),
        (
            validated("DE75512108001245126199", 100, "EUR"),
            ReasonCode::IncorrectAccountNumber,
        ),
        (
            validated(CLOSED, 100, "EUR"),
            ReasonCode::ClosedAccountNumber,
        ),
        (validated(BLOCKED, 100, "EUR"), ReasonCode::BlockedAccount),
        (
            validated(STERLING, 100, "EUR"),
            ReasonCode::NotAllowedCurrency,
        ),
        (validated(RICH, 100, "XYZ"), ReasonCode::NotAllowedCurrency),
        (validated(RICH, 0, "EUR"), ReasonCode::InvalidAmount),
        (validated(RICH, -5, "EUR"), ReasonCode::InvalidAmount),
    ];
    for (payment, _) in &cases {
        stand.send(payment.clone()).await;
    }
    let rejections = stand.read::<PaymentRejected>(cases.len()).await;
    assert_eq!(rejections.len(), cases.len());
    for (payment, code) in &cases {
        let rejection = rejections
            .iter()
            .find(|r| r.payment_id == payment.payment_id)
            .unwrap_or_else(|| panic!("no rejection for {payment:?}"));
        assert_eq!(rejection.stage, RejectionStage::Debit);
        assert_eq!(&rejection.reason_code, code, "{payment:?}");
        assert!(!rejection.reason_text.is_empty());
        assert!(stand.transfers_of(payment.payment_id).await.is_empty());
    }
    assert_eq!(stand.written(Topic::AccountDebited).await, 0);
    assert_eq!(stand.balances(POOR).await, (0, 0, 0, 500));
    stand.assert_clean().await;
}

#[tokio::test]
async fn the_same_payment_delivered_twice_or_rerun_under_new_ids_moves_money_once() {
    let stand = Stand::new("cbs-repeat", &accounts()).await;
    let _service = stand.start().await;
    let payment = validated(RICH, 7_000, "EUR");
    // The same record twice (a redelivery), then the same payment under a
    // new eventId (a resubmission upstream).
    stand.send(payment.clone()).await;
    stand.send(payment.clone()).await;
    let mut rerun = payment.clone();
    rerun.envelope = Envelope::caused_by(&samples::envelope(), "validation");
    stand.send(rerun).await;
    // A refused payment stays refused, even once the money is there.
    let refused = validated(POOR, 800, "EUR");
    stand.send(refused.clone()).await;
    stand.read::<PaymentRejected>(1).await;
    let mut topped = refused.clone();
    topped.amount_minor = 400;
    topped.envelope = Envelope::caused_by(&samples::envelope(), "validation");
    stand.send(topped).await;

    let marker = validated(RICH, 1, "EUR");
    stand.send(marker.clone()).await;
    let debited = stand.read::<AccountDebited>(2).await;
    assert!(debited.iter().any(|d| d.payment_id == marker.payment_id));
    wait_until(WAIT, "every input processed", || async {
        let processed: i64 = sqlx::query_scalar("SELECT count(*) FROM bus_processed_events")
            .fetch_one(&stand.pool)
            .await
            .unwrap();
        (processed == 5).then_some(())
    })
    .await;
    assert_eq!(stand.written(Topic::AccountDebited).await, 2);
    assert_eq!(stand.written(Topic::PaymentRejected).await, 1);
    assert_eq!(stand.transfers_of(payment.payment_id).await, ["PENDING"]);
    assert!(stand.transfers_of(refused.payment_id).await.is_empty());
    assert_eq!(stand.balances(RICH).await, (7_001, 0, 0, 1_000_000));
    assert_eq!(stand.balances(POOR).await, (0, 0, 0, 500));
    stand.assert_clean().await;
}

fn card(id: &str, status: &str, amount_minor: i64) -> CardTransactionReceived {
    let mut card = samples::card_transaction_received();
    card.card_transaction_id = id.to_owned();
    card.card_id = CARD.to_owned();
    card.transaction_status = status.to_owned();
    card.amount_minor = amount_minor;
    card
}

#[tokio::test]
async fn a_validated_card_transaction_is_posted_once_and_a_declined_one_moves_nothing() {
    let stand = Stand::new("cbs-card", &accounts()).await;
    let _service = stand.start().await;
    let posted = card("700013016", "VALIDATED", 1_500);
    stand.send(posted.clone()).await;
    stand.send(posted.clone()).await;
    stand.send(card("700013017", "DECLINED", 9_900)).await;
    let marker = card("700013018", "VALIDATED", 1);
    stand.send(marker).await;

    let debited = stand.read::<AccountDebited>(2).await;
    assert_eq!(debited.len(), 2);
    let first = debited
        .iter()
        .find(|d| d.payment_id == card_payment_id("700013016"))
        .unwrap();
    assert_eq!(first.origin, DebitOrigin::CardTransaction);
    assert_eq!(first.account_id, RICH);
    assert_eq!(first.card_id.as_deref(), Some(CARD));
    assert_eq!(first.amount_minor, 1_500);
    stand.await_balances(RICH, (0, 1_501, 0, 1_000_000)).await;
    let card_flight = settlement_account(Rail::Card, &eur(), RICH);
    assert_eq!(stand.balances(&card_flight).await, (0, 0, 0, 1_501));
    stand.assert_clean().await;
}

#[tokio::test]
async fn bad_input_is_dead_lettered_with_its_reason_and_the_partition_goes_on() {
    let stand = Stand::new("cbs-bad", &accounts()).await;
    let _service = stand.start().await;
    let topic = stand.pipeline.topic(Topic::PaymentValidated);
    // Bytes that are no Confluent-framed record, on every partition.
    for key in ["k0", "k1", "k2", "k3", "k4", "k5"] {
        stand
            .pipeline
            .producer
            .send_raw(&topic, Some(key.as_bytes()), b"not avro", &Vec::new())
            .await
            .unwrap();
    }
    // A card the ledger does not know.
    let mut unknown = card("700099999", "VALIDATED", 100);
    unknown.card_id = "0000000".to_owned();
    stand.send(unknown).await;

    let payment = validated(RICH, 300, "EUR");
    stand.send(payment.clone()).await;
    let debited = stand.read::<AccountDebited>(1).await;
    assert_eq!(debited[0].payment_id, payment.payment_id);

    let dead = dead_letter_topic(&topic, "cbs-debit");
    let letters = wait_until(WAIT, "the dead letters", || async {
        let letters = kafka::read_to_end(&stand.pipeline.kafka.bootstrap, &dead, PARTITIONS).await;
        (letters.len() >= 6).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 6);
    let cards_dead = stand
        .pipeline
        .dead_letter_topic(Topic::CardTransactionReceived, "ledger");
    let letters = wait_until(WAIT, "the card's dead letter", || async {
        let letters =
            kafka::read_to_end(&stand.pipeline.kafka.bootstrap, &cards_dead, PARTITIONS).await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    let reason = header(&letters[0], paystream_bus::dead_letter::ERROR_REASON).unwrap_or_default();
    assert!(reason.contains("0000000"), "{reason}");
    stand.assert_clean().await;
}

#[tokio::test]
async fn the_account_api_answers_balances_and_movements_and_metrics_count_the_hold() {
    let stand = Stand::new("cbs-api", &accounts()).await;
    let service = stand.start().await;
    let payment = validated(RICH, 12_345, "EUR");
    stand.send(payment.clone()).await;
    stand.read::<AccountDebited>(1).await;

    let client = reqwest::Client::new();
    let body: serde_json::Value = client
        .get(format!("{}/v1/accounts/{RICH}", service.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["availableMinor"], 1_000_000 - 12_345);
    assert_eq!(body["pendingDebitsMinor"], 12_345);
    assert_eq!(body["postedCreditsMinor"], 1_000_000);
    assert_eq!(
        body["movements"][0]["paymentId"],
        payment.payment_id.to_string()
    );
    assert_eq!(body["movements"][0]["kind"], "PENDING");
    assert_eq!(body["movements"][0]["direction"], "DEBIT");

    let missing = client
        .get(format!("{}/v1/accounts/XX00NOPE", service.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );

    stand.send(validated(POOR, 501, "EUR")).await;
    stand.read::<PaymentRejected>(1).await;
    let metrics = client
        .get(format!("{}/metrics", service.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "paystream_cbs_debit_transfers_total{kind=\"hold\"} 1",
        "paystream_cbs_debit_hold_seconds_count 2",
        "paystream_cbs_debit_refusals_total{origin=\"CREDIT_TRANSFER\",reason=\"AM04\"} 1",
    ] {
        assert!(metrics.contains(family), "{family} missing from /metrics");
    }
}
