//! rtgs-gateway killed with SIGKILL at three points during 2,000 payments,
//! with the rail answering some sends only after the gateway gave up,
//! delivering some callbacks twice and losing others: the rail settles
//! each UETR at most once, and every debited payment reaches exactly one
//! outcome, announced once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use paystream_contract::{RtgsRejected, RtgsSettled};
use paystream_testkit::wait_until;
use uuid::Uuid;

use crate::stand::{Stand, debited, debited_to_closed_account};

const PAYMENTS: usize = 2_000;
/// Every twentieth goes to the closed account and is rejected.
const REJECTED_EVERY: usize = 20;

/// Outcomes so far; none while the first process has not migrated yet.
async fn resolved(stand: &Stand) -> Option<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM rtgs_submissions WHERE state IN ('SETTLED', 'REJECTED')",
    )
    .fetch_one(&stand.pool)
    .await
    .ok()
}

#[tokio::test]
async fn sigkill_during_2000_payments_settles_each_uetr_at_most_once() {
    let stand = Stand::new(
        "rtgs-crash",
        "settle=lognormal:20ms:200ms,late=0.02,late-by=3s,duplicates=0.2,reorder=0.1,lost=0.05",
    )
    .await;
    let payments: Vec<_> = (0..PAYMENTS)
        .map(|n| {
            if n % REJECTED_EVERY == 0 {
                debited_to_closed_account()
            } else {
                debited()
            }
        })
        .collect();
    stand.send(payments.clone()).await;

    let mut gateway = stand.spawn();
    let mut kills = Vec::new();
    for threshold in [PAYMENTS / 5, PAYMENTS / 2, PAYMENTS * 4 / 5] {
        let at = wait_until(
            Duration::from_secs(180),
            "outcomes past the next kill point",
            || async {
                let done = resolved(&stand).await?;
                (done >= threshold as i64).then_some(done)
            },
        )
        .await;
        gateway.start_kill().unwrap();
        gateway.wait().await.unwrap();
        kills.push(at);
        gateway = stand.spawn();
    }
    assert!(
        kills.iter().all(|at| *at < PAYMENTS as i64),
        "every kill must land mid-stream: {kills:?}"
    );
    stand
        .await_resolved(PAYMENTS as i64, Duration::from_secs(300))
        .await;
    gateway.start_kill().unwrap();
    gateway.wait().await.unwrap();

    // The rail's own record.
    let rail = stand.report();
    assert!(rail.settled_twice.is_empty(), "{:?}", rail.settled_twice);
    assert_eq!(rail.distinct_uetrs, PAYMENTS as u64);
    assert!(rail.uetrs.values().all(|seen| seen.settlements <= 1));
    let expected_rejections = PAYMENTS.div_ceil(REJECTED_EVERY) as u64;
    assert_eq!(rail.rejected, expected_rejections);
    assert_eq!(rail.settled, PAYMENTS as u64 - expected_rejections);

    // One outcome per payment, announced under one eventId each.
    let mut outcomes: HashMap<Uuid, HashSet<(Uuid, &str)>> = HashMap::new();
    for event in stand.events::<RtgsSettled>().await {
        outcomes
            .entry(event.payment_id)
            .or_default()
            .insert((event.envelope.event_id, "SETTLED"));
    }
    for event in stand.events::<RtgsRejected>().await {
        outcomes
            .entry(event.payment_id)
            .or_default()
            .insert((event.envelope.event_id, "REJECTED"));
    }
    assert_eq!(outcomes.len(), PAYMENTS);
    for payment in &payments {
        let outcome = &outcomes[&payment.payment_id];
        assert_eq!(outcome.len(), 1, "{}: {outcome:?}", payment.payment_id);
    }
    println!(
        "killed at {kills:?} outcomes; rail: {} settled, {} rejected, {} repeats, {} status queries, callbacks {:?}",
        rail.settled, rail.rejected, rail.repeats, rail.status_queries, rail.callbacks
    );
}
