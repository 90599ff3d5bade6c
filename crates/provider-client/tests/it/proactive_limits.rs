//! Provider limits kept before the provider says 429: the sandbox's AML
//! screening enforces R calls/s (a token bucket, burst B) and callers ask
//! for ten times that. The client's own bucket and what the provider's
//! RateLimit headers say keep the tries under the provider's limit, so the
//! sandbox answers at most a burst of 429s and the calls go through at
//! about R/s.
//!
//! Every bound is on counts, with wide margins, never on timing: the load
//! runs for a fixed time and each call has the end of it as its deadline,
//! so a slow machine answers fewer calls, not later ones.

use std::time::{Duration, Instant};

use paystream_provider_client::metrics::METRICS;
use paystream_provider_client::{Method, ProviderClient, ProviderSettings, Request};
use paystream_sandbox::ProviderReport;
use serde_json::json;
use tokio::task::JoinSet;

use crate::support::Provider;

/// The provider's rate, R calls per second (and its burst: one second of it).
const RATE: u32 = 20;
/// How long the load runs.
const LOAD_FOR: Duration = Duration::from_secs(5);

/// What a load did.
#[derive(Debug)]
struct Load {
    /// Calls made.
    calls: u64,
    /// Calls answered within the load.
    answered: u64,
}

fn screen(client: &ProviderClient) -> Request {
    client
        .request(Method::POST, &["v1", "screen"])
        .json(&json!({ "name": "Anna Schmidt", "country": "DE" }))
}

/// Calls `client` at `per_second` for [`LOAD_FOR`], each with the load's
/// end as its deadline, and counts the answers.
async fn load(client: &ProviderClient, per_second: u32) -> Load {
    let end = Instant::now() + LOAD_FOR;
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / per_second);
    let mut calls = JoinSet::new();
    while Instant::now() < end {
        ticks.tick().await;
        let request = screen(client).deadline(end);
        calls.spawn(async move { request.send().await.is_ok() });
    }
    let mut load = Load {
        calls: calls.len() as u64,
        answered: 0,
    };
    while let Some(answered) = calls.join_next().await {
        load.answered += u64::from(answered.unwrap());
    }
    load
}

/// The sandbox's AML screening behaving as `provider` says, and ten times
/// its rate of calls from a client `name` at `rate` and `burst`: what the
/// load did and what the provider saw.
async fn ten_times_the_load(
    provider: &str,
    name: &'static str,
    rate: u32,
    burst: u32,
) -> (Load, ProviderReport) {
    let aml = Provider::aml(provider).await;
    let client = aml.client(
        name,
        ProviderSettings {
            rate_per_second: rate,
            burst: Some(burst),
            ..ProviderSettings::default()
        },
    );
    let load = load(&client, 10 * RATE).await;
    let report = aml.control.report();
    eprintln!(
        "{name}: {load:?}, {report:?}: {:.1} answered/s, held back by rate {}, by pause {}, \
         rate in force {}/s",
        load.answered as f64 / LOAD_FOR.as_secs_f64(),
        held_back(name, "rate"),
        held_back(name, "pause"),
        METRICS.rate.with_label_values(&[name]).get(),
    );
    (load, report)
}

fn held_back(provider: &str, by: &str) -> u64 {
    METRICS.held_back.with_label_values(&[provider, by]).get()
}

/// The tries the provider could have answered in the load: its burst plus
/// its rate over the load's time.
fn most_answered(burst: u32) -> u64 {
    u64::from(burst) + u64::from(RATE) * LOAD_FOR.as_secs()
}

/// Half the provider's rate over the load, the least we accept: the calls
/// ran at about R/s, not slowed to a trickle by our own pauses.
fn fewest_answered() -> u64 {
    u64::from(RATE) * LOAD_FOR.as_secs() / 2
}

#[tokio::test]
async fn a_client_at_the_providers_rate_gets_at_most_a_burst_of_429s_under_ten_times_the_load() {
    const NAME: &str = "aml-at-its-rate";
    let burst = RATE;
    let provider = format!("rate={RATE}/s,burst={burst}");
    let (load, report) = ten_times_the_load(&provider, NAME, RATE, burst).await;

    assert!(
        report.throttled <= u64::from(burst),
        "the provider answered {} 429s, more than the burst of {burst}",
        report.throttled
    );
    assert!(
        (fewest_answered()..=most_answered(burst)).contains(&load.answered),
        "{} calls answered in {LOAD_FOR:?} at {RATE}/s",
        load.answered
    );
    // Our own bucket held back most of the load.
    assert!(held_back(NAME, "rate") > 0);
    assert!(
        load.calls > 5 * load.answered,
        "{load:?}: the load was ten times the rate"
    );
    // Exported with every service's metrics.
    let exported = prometheus::gather().iter().any(|family| {
        family.name() == "paystream_provider_throttled_total"
            && family
                .get_metric()
                .iter()
                .any(|metric| metric.get_label().iter().any(|label| label.value() == NAME))
    });
    assert!(exported, "paystream_provider_throttled_total is exported");
}

#[tokio::test]
async fn a_client_configured_above_the_providers_rate_learns_it_from_the_ratelimit_headers() {
    const NAME: &str = "aml-above-its-rate";
    // Ten times the provider's rate, and twice its burst: without the
    // headers, every burst after a pause would draw RATE 429s.
    let (rate, burst) = (10 * RATE, 2 * RATE);
    let provider = format!("rate={RATE}/s");
    let (load, report) = ten_times_the_load(&provider, NAME, rate, burst).await;
    let learned = METRICS.rate.with_label_values(&[NAME]).get();

    // At worst the client's first burst, sent before any answer told it
    // the provider's limit, is refused: at most our burst of 429s.
    assert!(
        report.throttled <= u64::from(burst),
        "the provider answered {} 429s, more than our burst of {burst}",
        report.throttled
    );
    assert_eq!(learned, f64::from(RATE), "the rate the provider announced");
    assert!(
        (fewest_answered()..=most_answered(RATE)).contains(&load.answered),
        "{} calls answered in {LOAD_FOR:?} at {RATE}/s",
        load.answered
    );
}

#[tokio::test]
async fn nothing_left_until_the_reset_pauses_every_caller_before_the_provider_says_429() {
    const NAME: &str = "aml-nothing-left";
    // One call a second, one at a time: the first answer says
    // `RateLimit: "default";r=0;t=1`.
    let aml = Provider::aml("rate=1/s,burst=1").await;
    let client = aml.client(NAME, ProviderSettings::default());
    screen(&client).send().await.unwrap();

    // Two callers at once: both wait for the reset, then go a second apart.
    let (first, second) = (screen(&client), screen(&client));
    let (first, second) = tokio::join!(first.send(), second.send());
    assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
    assert_eq!(
        aml.control.report(),
        ProviderReport {
            requests: 3,
            throttled: 0
        }
    );
    // Held back by the pause, not by a 429 (there was none).
    assert!(held_back(NAME, "pause") >= 2);
}
