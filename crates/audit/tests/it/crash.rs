//! The audit killed with SIGKILL three times while it stores 5,000 events
//! (some re-published under the same eventId, as an outbox re-sends after
//! a crash), and started again: every event is stored exactly once, every
//! chain runs 1..n without a gap, and the log verifies.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use paystream_contract::{Envelope, PaymentValidated, Topic};
use paystream_testkit::kafka::records_written;
use paystream_testkit::pipeline::payments;
use paystream_testkit::wait_until;
use uuid::Uuid;

use crate::stand::{PARTITIONS, Stand};

const EVENTS: usize = 5_000;
/// Every this many submissions is sent a second time.
const RESENT_EVERY: usize = 100;
/// Smaller rounds than the default, so kills land between them at many points.
const ARGS: [&str; 2] = ["--max-batch", "200"];

/// The running process's count of records it recognised as seen before.
async fn redelivered(stand: &Stand) -> u64 {
    let Ok(response) = reqwest::get(format!("{}/metrics", stand.url())).await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("paystream_audit_duplicates_skipped_total") && l.contains("redelivered")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn sigkill_during_5000_events_stores_each_once_without_a_chain_gap() {
    let started = Instant::now();
    let stand = Stand::new("audit-crash").await;
    let submitted = payments(250, (EVENTS / 2 / 250) as i64);
    let validated: Vec<PaymentValidated> = submitted
        .iter()
        .map(|p| {
            p.clone()
                .into_validated(Envelope::caused_by(&p.envelope, "validation"))
        })
        .collect();
    let resent: Vec<_> = submitted.iter().step_by(RESENT_EVERY).cloned().collect();
    let mut expected: HashSet<(String, Uuid)> = HashSet::new();
    for p in &submitted {
        expected.insert(("payment.submitted".into(), p.envelope.event_id));
    }
    for v in &validated {
        expected.insert(("payment.validated".into(), v.envelope.event_id));
    }
    assert_eq!(expected.len(), EVENTS);
    let producer = &stand.pipeline.producer;
    producer.send_all(submitted).await.unwrap();
    producer.send_all(validated).await.unwrap();
    producer.send_all(resent.clone()).await.unwrap();
    let produced_at = started.elapsed();

    let mut audit = stand.spawn(&ARGS);
    let mut kills = Vec::new();
    let mut recognised = 0;
    for threshold in [EVENTS / 5, EVENTS / 2, EVENTS * 4 / 5] {
        let at = wait_until(
            Duration::from_secs(60),
            "entries past the next kill point",
            || async {
                let stored = stand.entries().await?;
                (stored >= threshold as i64).then_some(stored)
            },
        )
        .await;
        recognised += redelivered(&stand).await;
        audit.start_kill().unwrap();
        audit.wait().await.unwrap();
        kills.push(at);
        audit = stand.spawn(&ARGS);
    }
    assert!(
        kills.iter().all(|at| *at < EVENTS as i64),
        "every kill must land mid-stream: {kills:?}"
    );
    wait_until(Duration::from_secs(60), "every event stored", || async {
        let stored = stand.entries().await?;
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_duplicates")
            .fetch_one(&stand.pool)
            .await
            .ok()?;
        (stored >= EVENTS as i64 && seen >= resent.len() as i64).then_some(())
    })
    .await;
    recognised += redelivered(&stand).await;
    audit.start_kill().unwrap();
    audit.wait().await.unwrap();
    let stored_at = started.elapsed();

    // Exactly once: the expected (topic, eventId) set, no more rows.
    let prefix = &stand.pipeline.kafka.topic_prefix;
    let rows: Vec<(String, Uuid)> = sqlx::query_as("SELECT topic, event_id FROM audit_entries")
        .fetch_all(&stand.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), EVENTS);
    let stored: HashSet<(String, Uuid)> = rows
        .into_iter()
        .map(|(topic, id)| (topic.strip_prefix(prefix.as_str()).unwrap().to_owned(), id))
        .collect();
    assert_eq!(stored, expected);
    // Every offset of both topics accounted for: chained or a known re-send.
    let duplicates: i64 = stand.scalar("SELECT count(*) FROM audit_duplicates").await;
    assert_eq!(duplicates, resent.len() as i64);
    let written: i64 = [Topic::PaymentSubmitted, Topic::PaymentValidated]
        .iter()
        .map(|t| {
            records_written(
                &stand.pipeline.kafka.bootstrap,
                &stand.pipeline.topic(*t),
                PARTITIONS,
            )
        })
        .sum();
    assert_eq!(written, EVENTS as i64 + duplicates);

    // Gapless chains, each head naming its last entry.
    let chains: Vec<(String, i32, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT e.topic, e.\"partition\", count(*), min(e.seq), max(e.seq), max(c.seq) \
         FROM audit_entries e JOIN audit_chains c USING (topic, \"partition\") \
         GROUP BY e.topic, e.\"partition\"",
    )
    .fetch_all(&stand.pool)
    .await
    .unwrap();
    assert_eq!(chains.len(), 2 * PARTITIONS as usize);
    for (topic, partition, count, min, max, head) in &chains {
        assert_eq!(
            (*min, *max, *head),
            (1, *count, *count),
            "{topic}/{partition}"
        );
    }
    let report = paystream_audit::verify(&stand.pool).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let (ok, output) = stand.verify_binary(&[]).await;
    assert!(ok, "{output}");
    println!(
        "killed at {kills:?} entries; produced in {produced_at:?}, all stored by {stored_at:?}, \
         verified by {:?}; {recognised} redelivered records recognised and dropped",
        started.elapsed()
    );
}
