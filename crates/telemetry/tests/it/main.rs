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
