//! Provider limits kept before the provider says 429, through the whole
//! service: the sandbox's AML screening enforces R calls/s and payments
//! arrive far faster; validation, configured at the provider's rate, keeps
//! under it, so the provider answers at most its burst of 429s and nothing
//! is rejected for it.

use paystream_contract::{PaymentValidated, Topic};
use paystream_sandbox::{AML, ProviderReport};

use crate::support::{Pipeline, Setup, clean_payment};

/// The provider's rate, R calls/s (its burst is one second of it).
const RATE: u32 = 20;

#[tokio::test]
async fn validation_at_the_aml_providers_rate_gets_at_most_its_burst_of_429s() {
    let setup = Setup {
        aml: format!("rate={RATE}/s").parse().unwrap(),
        ..Setup::default()
    };
    // One screening a call, so that the load is ten times the provider's
    // rate in calls too (batches would carry it in a few).
    let pipeline = Pipeline::start_with(setup, |config| {
        config.aml_rate = Some(RATE);
        config.provider_batch_size = 1;
    })
    .await;
    // Two screenings a payment (debtor and creditor): 80 calls, four
    // seconds of the provider's rate, submitted as fast as we can.
    let payments: Vec<_> = (0..2 * RATE)
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

    let report: ProviderReport = reqwest::get(format!(
        "{}/admin/providers/{AML}/report",
        pipeline.sandbox_url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let held_back = paystream_provider_client::metrics::METRICS
        .held_back
        .with_label_values(&["aml", "rate"])
        .get();
    eprintln!("{report:?}, AML calls held back by our own rate: {held_back}");
    assert!(report.requests >= 2 * payments.len() as u64, "{report:?}");
    assert!(
        report.throttled <= u64::from(RATE),
        "the provider answered {} 429s, more than its burst of {RATE}",
        report.throttled
    );
    // Validation's own bucket is what slowed it, and says so.
    assert!(held_back > 0, "paystream_provider_throttled_total counted");
}
