//! The notification service's own metrics, beside the runtime's and the
//! provider client's (`paystream_provider_*{provider="notify"}`).

use std::sync::LazyLock;

use paystream_bus::metrics::register_counter;
use prometheus::{IntCounter, IntCounterVec};

pub struct Metrics {
    /// Notifications sent, by kind and channel.
    pub sent: IntCounterVec,
    /// Calls to the provider, by result.
    pub calls: IntCounterVec,
    /// Events about customers with no contact on file.
    pub unreachable: IntCounter,
    /// Notifications whose fate is unknown past the provider's window.
    pub unknown: IntCounter,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    sent: register_counter(
        "paystream_notifications_sent_total",
        "Notifications the provider confirmed, by kind and channel",
        &["kind", "channel"],
    ),
    calls: register_counter(
        "paystream_notifications_provider_calls_total",
        "Calls to the notification provider, by result",
        &["result"],
    ),
    unreachable: register_counter(
        "paystream_notifications_unreachable_total",
        "Events about a customer with no contact on file",
        &[],
    )
    .with_label_values::<&str>(&[]),
    unknown: register_counter(
        "paystream_notifications_unknown_total",
        "Notifications left for reconciliation: unconfirmed past the provider's idempotency window",
        &[],
    )
    .with_label_values::<&str>(&[]),
});

/// Registers the families now, so `/metrics` shows them before the first event.
pub fn init() {
    LazyLock::force(&METRICS);
}
