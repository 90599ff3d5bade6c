//! Where the time of an accepted request goes, for operators and for the
//! benchmark: the idempotency claim and the broker's ack (the mark after
//! it is written without the request waiting).

use std::sync::LazyLock;
use std::time::Instant;

use prometheus::{HistogramOpts, HistogramVec};

/// A step of accepting a payment or a card transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The idempotency record (or card claim) committed.
    Claim,
    /// The event sent and acked by the broker.
    Send,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Stage::Claim => "claim",
            Stage::Send => "send",
        }
    }
}

static STAGE_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    let histogram = HistogramVec::new(
        HistogramOpts::new(
            "paystream_gateway_stage_seconds",
            "Time of each step of accepting a request, by route and stage",
        )
        .buckets(vec![
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
        ]),
        &["route", "stage"],
    )
    .unwrap_or_else(|error| unreachable!("static metric definition: {error}"));
    if let Err(error) = prometheus::default_registry().register(Box::new(histogram.clone())) {
        tracing::warn!(%error, "gateway stage metric not registered");
    }
    histogram
});

/// Records the time since `started` as `stage` of `route`.
pub(crate) fn stage(route: &'static str, stage: Stage, started: Instant) {
    STAGE_SECONDS
        .with_label_values(&[route, stage.label()])
        .observe(started.elapsed().as_secs_f64());
}

/// Registers the families, so `/metrics` shows them before the first request.
pub fn register() {
    LazyLock::force(&STAGE_SECONDS);
}
