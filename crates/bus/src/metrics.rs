//! Prometheus metrics of every consumer in the process, in the default
//! registry, so a service's `/metrics` shows them with [`render`].

use std::sync::LazyLock;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub(crate) struct Metrics {
    pub processed: IntCounterVec,
    pub retried: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub dead_letter_write_failures: IntCounterVec,
    pub dead_letter_depth: IntGaugeVec,
    pub duplicates_skipped: IntCounterVec,
    pub handler_seconds: HistogramVec,
    pub in_flight: IntGaugeVec,
    pub lag: IntGaugeVec,
    pub seconds_since_last_record: IntGaugeVec,
    pub outbox_published: IntCounterVec,
    pub outbox_publish_failures: IntCounter,
    pub outbox_parked: IntCounterVec,
    pub outbox_oldest_pending_seconds: Gauge,
}

pub(crate) static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| Metrics::register(prometheus::default_registry()));

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|error| unreachable!("static metric definition {name}: {error}"));
    register(registry, name, counter.clone());
    counter
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let gauge = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|error| unreachable!("static metric definition {name}: {error}"));
    register(registry, name, gauge.clone());
    gauge
}

/// Registers a collector. Registration fails only for a name registered
/// twice: the metric still counts, it is just missing from `/metrics`, which
/// is worth a loud log rather than a crash of the service.
fn register(
    registry: &Registry,
    name: &str,
    collector: impl prometheus::core::Collector + 'static,
) -> bool {
    match registry.register(Box::new(collector)) {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(name, %error, "metric not registered; it will be missing from /metrics");
            false
        }
    }
}

impl Metrics {
    fn register(registry: &Registry) -> Self {
        let outbox_oldest_pending_seconds = Gauge::new(
            "paystream_bus_outbox_oldest_pending_seconds",
            "Age of the oldest outbox event not yet published, at the relay's last look (0: none waiting); it grows while the broker is unreachable",
        )
        .unwrap_or_else(|error| unreachable!("static metric definition: {error}"));
        register(
            registry,
            "outbox_oldest_pending_seconds",
            outbox_oldest_pending_seconds.clone(),
        );
        let outbox_publish_failures = IntCounter::new(
            "paystream_bus_outbox_publish_failures_total",
            "Outbox relay passes that failed (database or broker); the events wait and are retried",
        )
        .unwrap_or_else(|error| unreachable!("static metric definition: {error}"));
        register(
            registry,
            "outbox_publish_failures",
            outbox_publish_failures.clone(),
        );
        const TG: &[&str] = &["topic", "group"];
        let handler_seconds = HistogramVec::new(
            HistogramOpts::new(
                "paystream_bus_handler_seconds",
                "Time a handler took for one attempt at one record",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            TG,
        )
        .unwrap_or_else(|error| unreachable!("static metric definition: {error}"));
        register(registry, "handler_seconds", handler_seconds.clone());
        Self {
            processed: counter(
                registry,
                "paystream_bus_records_processed_total",
                "Records handled successfully",
                TG,
            ),
            retried: counter(
                registry,
                "paystream_bus_records_retried_total",
                "Handler attempts that failed transiently and were retried",
                TG,
            ),
            dead_lettered: counter(
                registry,
                "paystream_bus_records_dead_lettered_total",
                "Records written to the dead-letter topic",
                &["topic", "group", "class"],
            ),
            dead_letter_write_failures: counter(
                registry,
                "paystream_bus_dead_letter_write_failures_total",
                "Failed writes to a dead-letter topic (the offset stays uncommitted)",
                TG,
            ),
            dead_letter_depth: gauge(
                registry,
                "paystream_bus_dead_letter_depth",
                "Records this process wrote to the group's dead-letter topic since it started (0 from the consumer's start; a replay, run from the CLI, does not lower it; a restart resets it)",
                TG,
            ),
            duplicates_skipped: counter(
                registry,
                "paystream_bus_duplicates_skipped_total",
                "Records whose eventId this group had already processed",
                TG,
            ),
            handler_seconds,
            in_flight: gauge(
                registry,
                "paystream_bus_records_in_flight",
                "Records accepted and not yet finished",
                TG,
            ),
            lag: gauge(
                registry,
                "paystream_bus_consumer_lag",
                "High watermark minus committed offset, per partition",
                &["topic", "group", "partition"],
            ),
            seconds_since_last_record: gauge(
                registry,
                "paystream_bus_seconds_since_last_record",
                "Seconds since the consumer last finished a record (a heartbeat: it grows when the consumer is stuck)",
                &["group"],
            ),
            outbox_published: counter(
                registry,
                "paystream_bus_outbox_published_total",
                "Outbox events published (acked by the broker, then deleted)",
                &["topic"],
            ),
            outbox_publish_failures,
            outbox_parked: counter(
                registry,
                "paystream_bus_outbox_parked_total",
                "Outbox events the broker refused for good (or unreadable rows), set aside in bus_outbox_parked for an operator; alert on any",
                &["topic"],
            ),
            outbox_oldest_pending_seconds,
        }
    }
}

/// Registers the runtime's metric families now rather than at first use, so
/// `/metrics` shows them (at zero) before any record or outbox row moved.
pub fn init() {
    LazyLock::force(&METRICS);
}

/// The default registry in Prometheus text format, for a `/metrics` route.
pub fn render() -> String {
    let mut buffer = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&prometheus::gather(), &mut buffer) {
        tracing::warn!(%error, "cannot encode metrics");
    }
    String::from_utf8_lossy(&buffer).into_owned()
}

/// A counter family in the default registry, for a service's own metrics
/// beside the runtime's. Call once per name (e.g. from a `LazyLock`).
pub fn register_counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    counter(prometheus::default_registry(), name, help, labels)
}

/// A latency histogram family in the default registry, in seconds.
pub fn register_histogram(
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let histogram = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .unwrap_or_else(|error| unreachable!("static metric definition {name}: {error}"));
    register(prometheus::default_registry(), name, histogram.clone());
    histogram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_registered_twice_is_reported_not_ignored() {
        let registry = Registry::new();
        let first = IntCounter::new("twice_total", "help").unwrap_or_else(|e| panic!("{e}"));
        let second = IntCounter::new("twice_total", "help").unwrap_or_else(|e| panic!("{e}"));
        assert!(register(&registry, "twice", first));
        assert!(!register(&registry, "twice", second));
    }
}
