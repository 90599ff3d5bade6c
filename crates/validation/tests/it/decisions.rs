//! Each rule, over the real broker, registry, PostgreSQL and the sandbox's
//! providers answering from the real sanctions lists and IP data.

use std::time::Duration;

use crate::support::{Pipeline, Setup, clean_payment};
use paystream_contract::{AmlAlertRaised, PaymentSubmitted, PaymentValidated, Topic};
use rdkafka::Message;
use sqlx::Connection;

#[tokio::test]
async fn each_rule_rejects_with_its_own_reason_and_a_clean_payment_is_validated() {
    let pipeline = Pipeline::start(Setup::default()).await;

    let clean = clean_payment("GB82WEST12345698765432");

    let mut sanctioned_debtor = clean_payment("GB33BUKB20201555555555");
    sanctioned_debtor.debtor.name = "Vladimir Vladimirovich Putin".into();

    let mut sanctioned_creditor = clean_payment("GB94BARC10201530093459");
    sanctioned_creditor.creditor.name = "Saddam Hussein Al-Tikriti".into();

    // 45.83.220.0/22 is Mullvad's (AS39351, 31173 Services AB).
    let mut vpn = clean_payment("GB94BARC20201530093459");
    vpn.client_ip = Some("45.83.220.10".into());

    // 8.8.8.8 is in the US; the debtor lives in GB.
    let mut mismatch = clean_payment("GB27BOFI90212729823529");
    mismatch.client_ip = Some("8.8.8.8".into());

    let mut blocked = clean_payment("GB29NWBK60161331926819");
    blocked.creditor.country = "IR".into();
    blocked.corridor_code = "GBR-IRN".into();

    // Above EUR 1,000 without the debtor's address and date of birth.
    let mut travel_rule = clean_payment("GB43HBUK40127612345678");
    travel_rule.amount_minor = 150_000;

    let cases = [
        (&sanctioned_debtor, "SANCTIONS_MATCH", Some("DEBTOR")),
        (&sanctioned_creditor, "SANCTIONS_MATCH", Some("CREDITOR")),
        (&vpn, "FRAUD_RISK_ANONYMISING_NETWORK", Some("DEBTOR")),
        (&mismatch, "FRAUD_RISK_IP_COUNTRY_MISMATCH", Some("DEBTOR")),
        (&blocked, "CORRIDOR_NOT_ALLOWED", None),
        (&travel_rule, "TRAVEL_RULE_INCOMPLETE", None),
    ];
    pipeline.submit(clean.clone()).await;
    for (payment, _, _) in &cases {
        pipeline.submit((*payment).clone()).await;
    }

    let validated = pipeline.read::<PaymentValidated>(1).await;
    let (event, message) = &validated[0];
    assert_eq!(event.payment_id, clean.payment_id);
    assert_eq!(event.corridor_code, "GBR-FRA");
    assert_eq!(event.envelope.correlation_id, clean.envelope.correlation_id);
    assert_eq!(
        event.envelope.causation_id,
        clean.envelope.event_id.to_string()
    );
    assert_eq!(message.key(), Some(clean.debtor.account.as_bytes()));

    let rejections = pipeline.rejections(cases.len()).await;
    let alerts: Vec<AmlAlertRaised> = pipeline
        .read::<AmlAlertRaised>(4)
        .await
        .into_iter()
        .map(|(alert, _)| alert)
        .collect();
    for (payment, reason, alert_party) in &cases {
        assert_eq!(
            rejections.get(&payment.payment_id).map(String::as_str),
            Some(*reason),
            "payment of {} ({reason})",
            payment.debtor.account
        );
        let alert = alerts
            .iter()
            .find(|alert| alert.payment_id == payment.payment_id);
        match alert_party {
            Some(role) => {
                let alert = alert.unwrap_or_else(|| panic!("an alert for {reason}"));
                assert_eq!(alert.party_role.as_deref(), Some(*role));
                assert_eq!(alert.debtor_account, payment.debtor.account);
            }
            None => assert!(alert.is_none(), "no alert for {reason}"),
        }
    }
    let sanctions = alerts
        .iter()
        .find(|alert| alert.payment_id == sanctioned_debtor.payment_id)
        .unwrap();
    assert!(sanctions.matched_list.is_some() && sanctions.score_permille.unwrap() >= 900);

    // Every check is kept for audit.
    let mut db = sqlx::PgConnection::connect(&pipeline.config.database_url)
        .await
        .unwrap();
    let (kind, list, entry): (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT check_kind, matched_list, matched_entry FROM screening_results
         WHERE payment_id = $1 AND party_role = 'DEBTOR' AND check_kind = 'AML'",
    )
    .bind(sanctioned_debtor.payment_id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(kind, "AML");
    assert!(list.is_some() && entry.unwrap().to_uppercase().contains("PUTIN"));
    let clean_checks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM screening_results WHERE payment_id = $1")
            .bind(clean.payment_id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(clean_checks, 3, "one IP check and two AML screenings");
}

/// Submits `payment`, then `copy` of it, then a later payment of the same
/// account, and waits for the later one: key order decides it after both
/// copies, so once it is out the copy has been handled, and exactly the
/// first copy and the later payment were validated. Returns what counts
/// rows in validation's database: `sql`, bound to the payment's id.
async fn submitted_twice(
    payment: &PaymentSubmitted,
    copy: PaymentSubmitted,
) -> impl AsyncFn(&'static str) -> i64 {
    let pipeline = Pipeline::start(Setup::default()).await;
    pipeline.submit(payment.clone()).await;
    pipeline.submit(copy).await;
    let mut later = clean_payment(&payment.debtor.account);
    later.amount_minor = 100;
    pipeline.submit(later.clone()).await;
    let validated = pipeline.read::<PaymentValidated>(2).await;
    let ids: Vec<_> = validated
        .iter()
        .map(|(event, _)| event.payment_id)
        .collect();
    assert_eq!(ids, [payment.payment_id, later.payment_id]);
    let id = payment.payment_id;
    async move |sql: &'static str| {
        let mut db = sqlx::PgConnection::connect(&pipeline.config.database_url)
            .await
            .unwrap();
        sqlx::query_scalar::<_, i64>(sql)
            .bind(id)
            .fetch_one(&mut db)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_redelivered_payment_is_decided_once() {
    let payment = clean_payment("GB82WEST12345698765432");
    let count = submitted_twice(&payment, payment.clone()).await;
    assert_eq!(
        count("SELECT count(*) FROM decisions WHERE payment_id = $1").await,
        1
    );
}

#[tokio::test]
async fn a_payment_submitted_again_under_another_event_id_keeps_its_first_decision_and_audit() {
    let payment = clean_payment("GB82WEST12345698765433");
    let mut again = payment.clone();
    again.envelope.event_id = uuid::Uuid::new_v4();
    let count = submitted_twice(&payment, again).await;
    assert_eq!(
        count("SELECT count(*) FROM decisions WHERE payment_id = $1").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM screening_results WHERE payment_id = $1").await,
        3,
        "the first decision's three checks, and none of the second copy's"
    );
}

#[tokio::test]
async fn with_the_aml_provider_down_payments_are_rejected_unscreened_never_validated() {
    let pipeline = Pipeline::start(Setup {
        aml: "down".parse().unwrap(),
        screening_bound: Duration::from_millis(1_500),
    })
    .await;
    let payment = clean_payment("GB82WEST12345698765432");
    pipeline.submit(payment.clone()).await;
    let rejections = pipeline.rejections(1).await;
    assert_eq!(
        rejections.get(&payment.payment_id).map(String::as_str),
        Some("AML_UNAVAILABLE")
    );
    assert_eq!(pipeline.written(Topic::PaymentValidated), 0);
}

#[tokio::test]
async fn a_throttling_provider_slows_validation_but_rejects_nothing() {
    // One screening a call: the provider limits calls, and batches would
    // carry all of these in a few.
    let pipeline = Pipeline::start_with(
        Setup {
            aml: "rate=10/s".parse().unwrap(),
            ..Setup::default()
        },
        |config| config.provider_batch_size = 1,
    )
    .await;
    // 15 payments need 30 screenings: three times what the provider allows
    // in a second, so validation has to slow down to the provider's rate.
    let payments: Vec<_> = (0..15)
        .map(|n| clean_payment(&format!("GB82WEST1234569876{n:04}")))
        .collect();
    for payment in &payments {
        pipeline.submit(payment.clone()).await;
    }
    let validated = pipeline.read::<PaymentValidated>(payments.len()).await;
    let mut ids: Vec<_> = validated
        .iter()
        .map(|(event, _)| event.payment_id)
        .collect();
    ids.sort();
    let mut expected: Vec<_> = payments.iter().map(|payment| payment.payment_id).collect();
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(pipeline.written(Topic::PaymentRejected), 0);
    // The provider's limit slowed validation down: either it answered 429,
    // or our client, having read the provider's RateLimit headers, held
    // calls back before it had to.
    let metrics = &paystream_provider_client::metrics::METRICS;
    let throttled = metrics.calls.with_label_values(&["aml", "throttled"]).get();
    let held_back = metrics.held_back.with_label_values(&["aml", "rate"]).get()
        + metrics.held_back.with_label_values(&["aml", "pause"]).get();
    assert!(
        throttled + held_back > 0,
        "the provider's limit did not slow validation"
    );
}
