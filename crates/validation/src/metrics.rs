//! The validation service's own metrics, beside the bus runtime's and the
//! provider client's (`paystream_provider_calls_total`, by provider).

use std::sync::LazyLock;

use paystream_bus::metrics::{register_counter, register_histogram};
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};

pub struct Metrics {
    /// Decisions by outcome and reason code.
    pub decisions: IntCounterVec,
    /// Deliveries of events this group had processed already, dropped. The
    /// decision writer claims event ids itself, so the runtime's own
    /// duplicate counter does not see these.
    pub duplicates: IntCounter,
    /// Payments per decision transaction: how much the load lets the
    /// decision writer group.
    pub batch_payments: Histogram,
    /// Checks per provider call, by provider: how much the load lets
    /// checks share a call.
    pub call_checks: HistogramVec,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    decisions: register_counter(
        "paystream_validation_decisions_total",
        "Payments decided, by decision and reason code",
        &["decision", "reason"],
    ),
    duplicates: register_counter(
        "paystream_validation_duplicates_skipped_total",
        "Deliveries of payment.submitted events already processed, dropped",
        &[],
    )
    .with_label_values::<&str>(&[]),
    batch_payments: register_histogram(
        "paystream_validation_decision_batch_payments",
        "Payments written by one decision transaction",
        &[],
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
    )
    .with_label_values::<&str>(&[]),
    call_checks: register_histogram(
        "paystream_validation_provider_call_checks",
        "Checks carried by one provider call, by provider",
        &["provider"],
        vec![
            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1000.0,
        ],
    ),
});
