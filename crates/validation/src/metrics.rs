//! The validation service's own metrics, beside the bus runtime's.

use std::sync::LazyLock;

use paystream_bus::metrics::{register_counter, register_histogram};
use prometheus::{HistogramVec, IntCounterVec};

pub struct Metrics {
    /// Provider calls by outcome: ok, throttled, failed, refused, circuit_open.
    pub provider_calls: IntCounterVec,
    pub provider_seconds: HistogramVec,
    /// Decisions by outcome and reason code.
    pub decisions: IntCounterVec,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    provider_calls: register_counter(
        "paystream_provider_calls_total",
        "Calls to external providers by outcome",
        &["provider", "outcome"],
    ),
    provider_seconds: register_histogram(
        "paystream_provider_call_seconds",
        "Time of one successful provider call",
        &["provider"],
        vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0],
    ),
    decisions: register_counter(
        "paystream_validation_decisions_total",
        "Payments decided, by decision and reason code",
        &["decision", "reason"],
    ),
});
