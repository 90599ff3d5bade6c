//! `audit verify` on a log that is being written, as an operator runs it
//! against a live audit: what it reports is one moment of the log, so
//! appends landing while it reads are never taken for a damaged chain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::DateTime;
use paystream_audit::hash::EntryFields;
use paystream_audit::store;
use paystream_testkit::fresh_database;
use sqlx::PgPool;

const TOPIC: &str = "payment.submitted";
const CHAINS: i32 = 3;
/// Entries already in each chain, so that reading them takes long enough
/// for appends to land while verify reads.
const BACKLOG: i64 = 2_000;
const ROUNDS: usize = 20;

fn entry(partition: i32, offset: i64) -> EntryFields {
    EntryFields {
        topic: TOPIC.to_owned(),
        partition,
        seq: 0,
        offset,
        timestamp_ms: Some(1_700_000_000_000 + offset),
        key: Some(format!("ACC{offset}").into_bytes()),
        headers: "[]".to_owned(),
        value: Some(offset.to_be_bytes().to_vec()),
        schema_id: None,
        event_type: None,
        event: None,
        decode_error: Some("not decoded in this test".to_owned()),
        event_id: None,
        payment_id: None,
        correlation_id: None,
        causation_id: None,
        producer: None,
        occurred_at: None,
        trace_id: None,
        error_class: None,
        error_reason: None,
        received_at: DateTime::from_timestamp_micros(1_700_000_000_000_000 + offset).unwrap(),
    }
}

#[tokio::test]
async fn verify_reads_one_moment_of_a_log_being_appended() {
    let database = fresh_database().await;
    let pool = PgPool::connect(&database.url).await.unwrap();
    paystream_audit::MIGRATOR.run(&pool).await.unwrap();
    for partition in 0..CHAINS {
        let backlog = (0..BACKLOG)
            .map(|offset| entry(partition, offset))
            .collect();
        store::append(&pool, TOPIC, partition, backlog)
            .await
            .unwrap();
    }

    // One entry per transaction to each chain in turn, as the consumer
    // appends, until verify has run its rounds.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (pool, stop) = (pool.clone(), stop.clone());
        async move {
            let mut offset = BACKLOG;
            while !stop.load(Ordering::SeqCst) {
                for partition in 0..CHAINS {
                    store::append(&pool, TOPIC, partition, vec![entry(partition, offset)])
                        .await
                        .unwrap();
                }
                offset += 1;
            }
        }
    });

    let (mut first, mut last) = (None, 0);
    for round in 0..ROUNDS {
        let report = paystream_audit::verify(&pool).await.unwrap();
        assert!(
            report.is_clean(),
            "round {round}:\n{}",
            report.mismatch_lines()
        );
        last = report.chains.iter().map(|chain| chain.length).sum::<i64>();
        first.get_or_insert(last);
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    // The log grew while verify read it, or the test showed nothing.
    let first = first.unwrap_or(last);
    assert!(
        first < last,
        "verify saw no growth: {first} entries in the first round, {last} in the last"
    );
}
