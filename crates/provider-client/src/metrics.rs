//! Provider calls in the default Prometheus registry (what every service's
//! `/metrics` exposes), labelled by provider.

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts,
};

pub struct Metrics {
    /// Tries by provider and outcome: ok, throttled, failed, refused,
    /// circuit_open, deadline. `throttled` is the provider's 429s.
    pub calls: IntCounterVec,
    /// Time of one successful try, by provider.
    pub seconds: HistogramVec,
    /// Tries we held back ourselves before sending, by provider and `by`:
    /// `rate` (our token bucket had no token yet) or `pause` (a wait the
    /// provider asked for: `Retry-After`, or nothing left until its reset).
    /// Each try counts at most once per `by`.
    pub held_back: IntCounterVec,
    /// Tries per second the client allows itself now, by provider: the
    /// configured rate, or the lower one the provider announces.
    pub rate: GaugeVec,
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
    held_back: register(
        IntCounterVec::new(
            Opts::new(
                "paystream_provider_throttled_total",
                "Tries of provider calls we held back before sending: by our own rate \
                 (token bucket) or by a pause the provider asked for",
            ),
            &["provider", "by"],
        )
        .unwrap_or_else(|error| unreachable!("static metric definition: {error}")),
    ),
    rate: register(
        GaugeVec::new(
            Opts::new(
                "paystream_provider_rate_per_second",
                "Tries per second the client allows itself: the configured rate or the \
                 provider's lower announced one",
            ),
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
    const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::Throttled,
        Outcome::Failed,
        Outcome::Refused,
        Outcome::CircuitOpen,
        Outcome::Deadline,
    ];

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

/// Why a try waited before it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeldBack {
    /// Our token bucket had no token yet.
    Rate,
    /// The provider asked us to wait (`Retry-After`, or nothing left until
    /// its quota resets).
    Pause,
}

impl HeldBack {
    const ALL: [HeldBack; 2] = [HeldBack::Rate, HeldBack::Pause];

    fn label(self) -> &'static str {
        match self {
            HeldBack::Rate => "rate",
            HeldBack::Pause => "pause",
        }
    }
}

/// One provider's series, looked up once when its client is built: a
/// label look-up takes a lock and hashes the labels, on every try of every
/// call otherwise. Built up front, every series shows 0 before its first
/// count, so an alert on an increase sees the first one too.
#[derive(Debug)]
pub(crate) struct Series {
    calls: [IntCounter; Outcome::ALL.len()],
    seconds: Histogram,
    held_back: [IntCounter; HeldBack::ALL.len()],
}

impl Series {
    pub(crate) fn of(provider: &str) -> Self {
        Self {
            calls: Outcome::ALL.map(|outcome| {
                METRICS
                    .calls
                    .with_label_values(&[provider, outcome.label()])
            }),
            seconds: METRICS.seconds.with_label_values(&[provider]),
            held_back: HeldBack::ALL
                .map(|by| METRICS.held_back.with_label_values(&[provider, by.label()])),
        }
    }

    pub(crate) fn count(&self, outcome: Outcome) {
        self.calls[outcome as usize].inc();
    }

    pub(crate) fn held_back(&self, by: HeldBack) {
        self.held_back[by as usize].inc();
    }

    /// The time of one successful try.
    pub(crate) fn answered_in(&self, elapsed: std::time::Duration) {
        self.seconds.observe(elapsed.as_secs_f64());
    }
}
