//! What [`paystream_telemetry::init`] exports, as an OTLP receiver sees it.
//!
//! `init` installs the process's one global subscriber and reads its
//! settings from the environment, so each case runs in a child process: this
//! test binary started again on one `child_` test, with the receiver's
//! endpoint in its environment.
// Test helpers fail the test by panicking; that is their error report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use paystream_testkit::otlp::{OtlpReceiver, ReceivedSpan};

/// Set in the child process only.
const CHILD: &str = "PAYSTREAM_TELEMETRY_IT_CHILD";

/// Runs `child` (a test of this binary) in a process of its own that
/// exports to a fresh receiver; returns the spans it exported.
async fn exported_by(child: &str) -> Vec<ReceivedSpan> {
    let receiver = OtlpReceiver::start().await;
    let exe = std::env::current_exe().unwrap();
    let status = tokio::process::Command::new(exe)
        .args(["--exact", child, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("PAYSTREAM_LOG", "off")
        .env_remove("PAYSTREAM_TRACE")
        .status();
    let status = tokio::time::timeout(Duration::from_secs(60), status)
        .await
        .expect("the child process ends")
        .unwrap();
    assert!(status.success(), "{child} failed: {status}");
    // The child flushed its spans before it exited: what arrived is all.
    receiver.spans()
}

#[test]
fn child_logs_an_info_line_and_a_warning_in_a_span() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let telemetry = paystream_telemetry::init("telemetry-it").unwrap();
    tracing::info_span!("work").in_scope(|| {
        tracing::info!("routine progress");
        tracing::warn!("something odd");
    });
    // Dropping the guard exports what is buffered before the process ends.
    drop(telemetry);
}

#[tokio::test]
async fn a_span_carries_the_warnings_logged_in_it_as_events_not_its_info_lines() {
    let spans = exported_by("child_logs_an_info_line_and_a_warning_in_a_span").await;
    let work: Vec<&ReceivedSpan> = spans.iter().filter(|span| span.name == "work").collect();
    assert_eq!(work.len(), 1, "{spans:#?}");
    assert_eq!(work[0].service, "telemetry-it");
    assert_eq!(work[0].events, ["something odd"], "{:#?}", work[0]);
}

#[test]
fn child_does_shared_work_for_three_spans() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let telemetry = paystream_telemetry::init("telemetry-it").unwrap();
    let payments: Vec<tracing::Span> = (0..3).map(|n| tracing::info_span!("payment", n)).collect();
    let shared = payments[0].in_scope(|| tracing::info_span!("shared"));
    paystream_telemetry::link_spans(&shared, &payments[1..]);
    drop(shared);
    drop(payments);
    drop(telemetry);
}

#[tokio::test]
async fn work_shared_by_several_spans_is_the_child_of_one_and_links_the_others() {
    let spans = exported_by("child_does_shared_work_for_three_spans").await;
    let named = |name: &str| -> Vec<&ReceivedSpan> {
        spans.iter().filter(|span| span.name == name).collect()
    };
    let (payments, shared) = (named("payment"), named("shared"));
    assert_eq!((payments.len(), shared.len()), (3, 1), "{spans:#?}");
    let shared = shared[0];
    let lead = payments
        .iter()
        .find(|payment| shared.parent_span_id.as_deref() == Some(payment.span_id.as_str()))
        .unwrap_or_else(|| panic!("the shared span is no payment's child: {spans:#?}"));
    let mut linked: Vec<_> = shared.links.clone();
    linked.sort();
    let mut others: Vec<_> = payments
        .iter()
        .filter(|payment| payment.span_id != lead.span_id)
        .map(|payment| (payment.trace_id.clone(), payment.span_id.clone()))
        .collect();
    others.sort();
    assert_eq!(linked, others, "{shared:#?}");
}

#[test]
fn child_reads_the_level_every_callsite_checks_first() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let telemetry = paystream_telemetry::init("telemetry-it").unwrap();
    // The first, cheapest check of every `debug!` and of every `log` record
    // (sqlx formats each statement's summary once a debug record passes it).
    let max = tracing::level_filters::LevelFilter::current();
    drop(telemetry);
    assert_eq!(max, tracing::level_filters::LevelFilter::INFO);
}

#[tokio::test]
async fn spans_at_info_leave_debug_records_turned_away_before_they_are_built() {
    exported_by("child_reads_the_level_every_callsite_checks_first").await;
}
