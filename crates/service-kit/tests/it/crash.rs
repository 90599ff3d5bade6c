//! A service built on the handler context, killed with SIGKILL mid-stream
//! three times and started again: every input's effects are applied once,
//! and every output is emitted with the id derived from its input, once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use paystream_contract::{Topic, derived_event_id};
use paystream_testkit::pipeline::{Pipeline, header, payments};
use paystream_testkit::{fresh_database, unique, wait_until};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{count, spawn_service};

const ACCOUNTS: usize = 40;
const PER_ACCOUNT: i64 = 50;
const TOTAL: i64 = ACCOUNTS as i64 * PER_ACCOUNT;
const PARTITIONS: i32 = 3;

#[tokio::test]
async fn sigkill_mid_stream_applies_every_input_once_and_emits_each_output_under_its_derived_id() {
    let pipeline = Pipeline::new(
        "svc-crash",
        &[Topic::PaymentSubmitted, Topic::PaymentValidated],
        PARTITIONS,
    )
    .await;
    let database = fresh_database().await;
    let group = unique("crash");
    let inputs = payments(ACCOUNTS, PER_ACCOUNT);
    pipeline.producer.send_all(inputs.clone()).await.unwrap();

    let mut service = spawn_service(&pipeline, &database, &group, "payment.submitted", &[]);
    let pool = wait_until(Duration::from_secs(60), "the service's tables", || async {
        let pool = PgPool::connect(&database.url).await.ok()?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('effects') IS NOT NULL")
            .fetch_one(&pool)
            .await
            .ok()?;
        exists.then_some(pool)
    })
    .await;
    let mut kills = Vec::new();
    for threshold in [TOTAL / 5, TOTAL * 2 / 5, TOTAL * 3 / 5] {
        let applied = wait_until(
            Duration::from_secs(120),
            "effects past the next kill point",
            || async {
                let applied = count(&pool, "SELECT count(*) FROM effects").await;
                (applied >= threshold).then_some(applied)
            },
        )
        .await;
        service.start_kill().unwrap();
        service.wait().await.unwrap();
        kills.push(applied);
        service = spawn_service(&pipeline, &database, &group, "payment.submitted", &[]);
    }
    assert!(
        kills.iter().all(|applied| *applied < TOTAL),
        "every kill must land mid-stream, before the last input: {kills:?}"
    );
    wait_until(
        Duration::from_secs(180),
        "every input applied and the outbox drained",
        || async {
            let applied = count(&pool, "SELECT count(*) FROM effects").await;
            let pending = count(&pool, "SELECT count(*) FROM bus_outbox").await;
            (applied >= TOTAL && pending == 0).then_some(())
        },
    )
    .await;
    service.start_kill().unwrap();
    service.wait().await.unwrap();

    // Effects: one row per input, never two.
    let rows: Vec<(Uuid, String, i64, Option<Uuid>)> =
        sqlx::query_as("SELECT event_id, account, seq, output_id FROM effects ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len() as i64, TOTAL, "each input applied exactly once");
    let applied: HashSet<Uuid> = rows.iter().map(|row| row.0).collect();
    let expected: HashSet<Uuid> = inputs.iter().map(|p| p.envelope.event_id).collect();
    assert_eq!(applied, expected);
    // Per account, the effects are in the order the payments were sent.
    let mut last: HashMap<&str, i64> = HashMap::new();
    for (_, account, seq, _) in &rows {
        let previous = last.insert(account, *seq);
        assert!(
            previous.is_none_or(|p| p < *seq),
            "{account}: {seq} after {previous:?}"
        );
    }
    // Outputs: the derived id of each input, once each (a republished row
    // after a crash carries the same id, which consumers drop).
    for (input, _, _, output) in &rows {
        assert_eq!(
            *output,
            Some(derived_event_id(*input, Topic::PaymentValidated, 1))
        );
    }
    let outputs = pipeline.read_all(Topic::PaymentValidated, PARTITIONS).await;
    let mut ids: HashMap<Uuid, Uuid> = HashMap::new();
    for record in &outputs {
        let id: Uuid = header(record, "eventId").unwrap().parse().unwrap();
        let cause: Uuid = header(record, "causationId").unwrap().parse().unwrap();
        assert_eq!(id, derived_event_id(cause, Topic::PaymentValidated, 1));
        ids.insert(id, cause);
    }
    assert_eq!(ids.len() as i64, TOTAL, "one output id per input");
    let causes: HashSet<Uuid> = ids.values().copied().collect();
    assert_eq!(causes, expected);
    println!(
        "killed at {kills:?} applied effects; {} output records for {TOTAL} outputs ({} republished after a crash)",
        outputs.len(),
        outputs.len() as i64 - TOTAL
    );
}
