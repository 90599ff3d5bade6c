//! rtgs-gateway's own metrics, beside the bus runtime's and the rail
//! client's (`paystream_provider_*{provider="rtgs"}`).

use std::sync::LazyLock;

use paystream_bus::metrics::{register_counter, register_histogram};
use prometheus::{Histogram, IntCounter, IntCounterVec};

pub struct Metrics {
    /// Sends and status queries, by call and result.
    pub calls: IntCounterVec,
    /// Status reports received, by how they came and what they did.
    pub reports: IntCounterVec,
    /// Outcomes reached, by final state.
    pub outcomes: IntCounterVec,
    /// Reports that contradict a recorded outcome (an operator must look).
    pub contradictions: IntCounter,
    /// Callbacks refused before reading them, by reason.
    pub refused_callbacks: IntCounterVec,
    /// From recording a submission to its outcome.
    pub settlement_seconds: Histogram,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    calls: register_counter(
        "paystream_rtgs_gateway_rail_calls_total",
        "Calls to the rail, by call (submit, status) and result",
        &["call", "result"],
    ),
    reports: register_counter(
        "paystream_rtgs_gateway_reports_total",
        "pacs.002 status reports received, by channel and effect",
        &["via", "effect"],
    ),
    outcomes: register_counter(
        "paystream_rtgs_gateway_outcomes_total",
        "Submissions that reached an outcome, by state",
        &["state"],
    ),
    contradictions: register_counter(
        "paystream_rtgs_gateway_contradictions_total",
        "Reports contradicting an outcome already recorded",
        &[],
    )
    .with_label_values::<&str>(&[]),
    refused_callbacks: register_counter(
        "paystream_rtgs_gateway_refused_callbacks_total",
        "Callbacks refused (bad signature, unreadable, unknown UETR)",
        &["reason"],
    ),
    settlement_seconds: register_histogram(
        "paystream_rtgs_gateway_outcome_seconds",
        "Time from recording a submission to the rail's outcome, in seconds",
        &[],
        vec![
            0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ],
    )
    .with_label_values::<&str>(&[]),
});

/// Registers the families now, so `/metrics` shows them before the first payment.
pub fn init() {
    LazyLock::force(&METRICS);
}
