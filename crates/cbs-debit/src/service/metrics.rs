//! The ledger's own metrics, beside the bus runtime's.

use std::sync::LazyLock;

use paystream_bus::metrics::{register_counter, register_histogram};
use prometheus::{Histogram, IntCounterVec};

pub struct Metrics {
    /// Transfers made, by kind (hold, post, void, card).
    pub transfers: IntCounterVec,
    /// Refusals by origin and ISO 20022 reason code.
    pub refusals: IntCounterVec,
    /// Time to decide a hold, from the handler's start to its answer
    /// (the commit follows in the runtime).
    pub hold_seconds: Histogram,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    transfers: register_counter(
        "paystream_cbs_debit_transfers_total",
        "Transfers made by the ledger, by kind",
        &["kind"],
    ),
    refusals: register_counter(
        "paystream_cbs_debit_refusals_total",
        "Debits refused, by origin and ISO 20022 reason code",
        &["origin", "reason"],
    ),
    hold_seconds: register_histogram(
        "paystream_cbs_debit_hold_seconds",
        "Time to place or refuse a hold, in seconds",
        &[],
        vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ],
    )
    .with_label_values::<&str>(&[]),
});

/// Registers the families now, so `/metrics` shows them before the first payment.
pub fn init() {
    LazyLock::force(&METRICS);
}
