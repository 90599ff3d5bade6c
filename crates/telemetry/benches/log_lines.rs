//! What the JSON log layer costs a payment, on one thread with the output
//! thrown away (`cargo bench -p paystream-telemetry --bench log_lines`).
//!
//! Each iteration is the shape of one payment in the validation service: a
//! consume span with eight fields, one recorded after it starts; a
//! screening span inside it whose three outcomes are recorded as they come;
//! one info line inside both ("payment decided"). It runs under three
//! subscribers: this crate's layer, tracing-subscriber's own JSON format
//! (which keeps each span's fields as JSON text, parsed again for every
//! field recorded later and for every line; this crate's layer was built on
//! it until 2026-12-07), and no log layer at all (logs at `warn`, where no
//! span of a payment is formatted).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use tracing::Subscriber;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;

const PAYMENTS: u32 = 200_000;
const ROUNDS: usize = 5;

fn payment(n: u32) {
    let consume = tracing::info_span!(
        "consume",
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.destination.name = "paystream.payment.submitted",
        messaging.kafka.partition = n % 3,
        messaging.kafka.offset = u64::from(n),
        messaging.consumer.group.name = "validation",
        correlation_id = %format_args!("corr-{n:08}"),
        event_id = tracing::field::Empty,
    );
    consume.record("event_id", format_args!("evt-{n:08}").to_string());
    let _consume = consume.enter();
    let screening = tracing::info_span!(
        "screening",
        payment_id = %format_args!("pay-{n:08}"),
        ip.outcome = tracing::field::Empty,
        aml.debtor = tracing::field::Empty,
        aml.creditor = tracing::field::Empty,
    );
    screening.record("ip.outcome", "CLEAN");
    screening.record("aml.debtor", "CLEAR");
    screening.record("aml.creditor", "CLEAR");
    let _screening = screening.enter();
    tracing::info!(decision = "VALIDATED", "payment decided");
}

/// The fastest of `ROUNDS` runs, per payment: the least disturbed by
/// whatever else the machine did.
fn per_payment(subscriber: impl Subscriber + Send + Sync + 'static) -> Duration {
    tracing::subscriber::with_default(subscriber, || {
        (0..ROUNDS)
            .map(|_| {
                let started = Instant::now();
                for n in 0..PAYMENTS {
                    payment(black_box(n));
                }
                started.elapsed() / PAYMENTS
            })
            .min()
            .unwrap()
    })
}

fn main() {
    let ours = per_payment(
        tracing_subscriber::registry()
            .with(paystream_telemetry::json_layer().with_writer(std::io::sink)),
    );
    let stock = per_payment(
        tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::sink),
        ),
    );
    let none = per_payment(
        tracing_subscriber::registry().with(
            paystream_telemetry::json_layer()
                .with_writer(std::io::sink)
                .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
        ),
    );
    println!(
        "\nlog lines: one payment's spans and its info line, {PAYMENTS} payments, fastest of {ROUNDS} rounds\n"
    );
    println!("| subscriber | per payment |");
    println!("|---|---:|");
    println!(
        "| this crate's JSON layer, at info | {} ns |",
        ours.as_nanos()
    );
    println!(
        "| tracing-subscriber's JSON format, at info | {} ns |",
        stock.as_nanos()
    );
    println!(
        "| logs at warn (spans not formatted) | {} ns |",
        none.as_nanos()
    );
}
