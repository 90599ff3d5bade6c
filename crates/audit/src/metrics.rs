//! The audit's own metrics, beside the runtime's.

use std::sync::LazyLock;

use paystream_bus::metrics::register_counter;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use crate::store::Appended;

pub struct Metrics {
    /// Entries chained, by topic (without the cluster's prefix).
    pub stored: IntCounterVec,
    /// Records not chained again, by topic and why (`redelivered`: the same
    /// offset again; `republished`: the same eventId at another offset).
    pub duplicates: IntCounterVec,
    /// Each chain's length, by topic and partition.
    pub chain_length: IntGaugeVec,
    /// Entries whose value did not decode (stored with `event` NULL).
    pub undecodable: IntCounterVec,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    stored: register_counter(
        "paystream_audit_records_stored_total",
        "Records appended to the audit log, by topic",
        &["topic"],
    ),
    duplicates: register_counter(
        "paystream_audit_duplicates_skipped_total",
        "Records not appended again: redelivered (same offset) or republished (same eventId at another offset)",
        &["topic", "kind"],
    ),
    chain_length: gauge(
        "paystream_audit_chain_length",
        "Entries in each hash chain (one per source partition)",
        &["topic", "partition"],
    ),
    undecodable: register_counter(
        "paystream_audit_undecodable_total",
        "Records stored whose value did not decode (event stored as NULL)",
        &["topic"],
    ),
});

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let gauge = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|error| unreachable!("static metric definition {name}: {error}"));
    // Fails only for a name registered twice: the gauge still works, it is
    // only missing from /metrics, which is worth a log rather than a crash.
    if let Err(error) = prometheus::default_registry().register(Box::new(gauge.clone())) {
        tracing::error!(name, %error, "metric not registered");
    }
    gauge
}

impl Metrics {
    pub fn record(&self, topic: &str, partition: i32, done: &Appended) {
        self.stored
            .with_label_values(&[topic])
            .inc_by(done.stored as u64);
        if done.undecodable > 0 {
            self.undecodable
                .with_label_values(&[topic])
                .inc_by(done.undecodable as u64);
        }
        for (kind, count) in [
            ("redelivered", done.redelivered),
            ("republished", done.republished),
        ] {
            if count > 0 {
                self.duplicates
                    .with_label_values(&[topic, kind])
                    .inc_by(count as u64);
            }
        }
        self.chain_length
            .with_label_values(&[topic, &partition.to_string()])
            .set(done.seq);
    }
}

/// Registers the families now, so `/metrics` shows them before the first record.
pub fn init() {
    LazyLock::force(&METRICS);
}
