//! The validation service's own metrics, beside the bus runtime's and the
//! provider client's (`paystream_provider_calls_total`, by provider).

use std::sync::LazyLock;

use paystream_bus::metrics::register_counter;
use prometheus::IntCounterVec;

pub struct Metrics {
    /// Decisions by outcome and reason code.
    pub decisions: IntCounterVec,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    decisions: register_counter(
        "paystream_validation_decisions_total",
        "Payments decided, by decision and reason code",
        &["decision", "reason"],
    ),
});
