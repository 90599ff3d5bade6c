//! Provider calls in the default Prometheus registry (what every service's
//! `/metrics` exposes), labelled by provider.

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

pub struct Metrics {
    /// Tries by provider and outcome: ok, throttled, failed, refused,
    /// circuit_open, deadline.
    pub calls: IntCounterVec,
    /// Time of one successful try, by provider.
    pub seconds: HistogramVec,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    calls: register(
        IntCounterVec::new(
            Opts::new(
                "paystream_provider_calls_total",
                "Tries of calls to external providers, by outcome",
            ),
            &["provider", "outcome"],
        )
        .unwrap_or_else(|error| unreachable!("static metric definition: {error}")),
    ),
    seconds: register(
        HistogramVec::new(
            HistogramOpts::new(
                "paystream_provider_call_seconds",
                "Time of one successful try of a provider call",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]),
            &["provider"],
        )
        .unwrap_or_else(|error| unreachable!("static metric definition: {error}")),
    ),
});

fn register<C: Collector + Clone + 'static>(collector: C) -> C {
    if let Err(error) = prometheus::default_registry().register(Box::new(collector.clone())) {
        // Another collector took the name: this one still counts, unexported.
        tracing::warn!(%error, "provider metric not registered");
    }
    collector
}

/// How one try ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Throttled,
    Failed,
    Refused,
    CircuitOpen,
    Deadline,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Throttled => "throttled",
            Outcome::Failed => "failed",
            Outcome::Refused => "refused",
            Outcome::CircuitOpen => "circuit_open",
            Outcome::Deadline => "deadline",
        }
    }
}

pub(crate) fn count(provider: &str, outcome: Outcome) {
    METRICS
        .calls
        .with_label_values(&[provider, outcome.label()])
        .inc();
}
