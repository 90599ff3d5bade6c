//! The outbox relay: staged events wait in PostgreSQL while the broker cannot
//! be reached, the wait shows in the metrics, and once the broker answers
//! every event is published in staging order, with its ids, and deleted once.
//! A row the broker refuses for good is parked and blocks nothing; relays
//! sharing a database keep each key's order and publish each row once.
//!
//! The relay metrics are process-wide, so the tests that run a relay take
//! turns (`RELAYS`).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use paystream_bus::outbox::Pass;
use paystream_bus::producer::Prepared;
use paystream_bus::{Outbox, Producer};
use paystream_contract::{PaymentSubmitted, PaymentValidated, Topic};
use paystream_testkit::pipeline::{Pipeline, header, payment};
use paystream_testkit::{unique, wait_until};
use rdkafka::Message;
use sqlx::PgPool;
use tokio::sync::Mutex as AsyncMutex;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::{self, Validate};

static RELAYS: AsyncMutex<()> = AsyncMutex::const_new(());

/// The advisory lock the relays of one database share (outbox.rs).
const RELAY_LOCK: i64 = 0x7061_7973_7472_6561;

async fn pending(pool: &PgPool) -> i64 {
    common::count(pool, "SELECT count(*) FROM bus_outbox").await
}

/// A metric's value from the process's `/metrics` text, 0 if absent.
fn metric(name_and_labels: &str) -> f64 {
    paystream_bus::metrics::render()
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Runs `outbox`'s relay until the returned token is cancelled.
fn spawn_relay(outbox: Outbox, pool: &PgPool) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let task = {
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        tokio::spawn(async move {
            outbox
                .relay(pool, Duration::from_millis(20), shutdown)
                .await;
        })
    };
    (shutdown, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_events_wait_out_an_unreachable_broker_and_are_then_published_in_order() {
    let _turn = RELAYS.lock().await;
    let pipeline = common::pipeline(1).await;
    let topic = pipeline.topic(Topic::PaymentValidated);
    let (_database, pool) = common::database().await;

    // The same cluster settings, but nothing listens where the broker should be.
    let mut unreachable = pipeline.kafka.clone();
    unreachable.bootstrap = "127.0.0.1:1".into();
    unreachable.ack_timeout_ms = Some(1_000);
    let cut_off =
        Outbox::new(Producer::new(&unreachable, pipeline.codec.clone(), common::PRODUCER).unwrap());

    // A consumer stages three outputs whose relay cannot reach the broker.
    let group = unique("outbox");
    pipeline
        .producer
        .send_all((0..3).map(|seq| payment("ACC1", seq)))
        .await
        .unwrap();
    let handler = Validate::default();
    let consumer = common::run(
        common::consumer::<PaymentSubmitted>(&pipeline, common::settings(&group)),
        paystream_bus::Effects::Transactional {
            pool: pool.clone(),
            outbox: cut_off.clone(),
        },
        handler.clone(),
    );
    wait_until(Duration::from_secs(30), "three events staged", || async {
        (common::committed(&pipeline, &group, Topic::PaymentSubmitted, 0) == Some(3)).then_some(())
    })
    .await;
    consumer.stop().await;
    assert_eq!(pending(&pool).await, 3);

    let failures_before = metric("paystream_bus_outbox_publish_failures_total");
    let pass = cut_off.publish_batch(&pool).await.unwrap();
    assert_eq!(
        pass,
        Pass {
            failed: 3,
            ..Pass::default()
        },
        "the first row timed out; the two behind it waited for it"
    );
    assert_eq!(pending(&pool).await, 3, "nothing is deleted without an ack");
    assert_eq!(
        metric("paystream_bus_outbox_publish_failures_total"),
        failures_before + 1.0
    );
    assert!(
        metric("paystream_bus_outbox_oldest_pending_seconds") > 0.0,
        "the wait shows"
    );
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM bus_outbox ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        attempts,
        [1, 0, 0],
        "only the row that was sent counts an attempt"
    );

    let (stop, relay) = spawn_relay(Outbox::new(pipeline.producer.clone()), &pool);
    wait_until(Duration::from_secs(30), "the outbox emptied", || async {
        (pending(&pool).await == 0).then_some(())
    })
    .await;
    stop.cancel();
    relay.await.unwrap();

    let published = pipeline.read_all(Topic::PaymentValidated, 1).await;
    let mut seen = Vec::new();
    for record in &published {
        let event: PaymentValidated = pipeline.codec.decode(record.payload()).await.unwrap();
        assert_eq!(
            header(record, "eventId"),
            Some(event.envelope.event_id.to_string())
        );
        seen.push((event.envelope.event_id, event.amount_minor));
    }
    let emitted = handler.emitted.lock().unwrap().clone();
    let expected: Vec<(Uuid, i64)> = emitted.into_iter().zip(0..).collect();
    assert_eq!(
        seen, expected,
        "once each, in staging order, with their ids"
    );
    assert_eq!(
        metric(&format!(
            "paystream_bus_outbox_published_total{{topic=\"{topic}\"}}"
        )),
        3.0
    );
    assert_eq!(metric("paystream_bus_outbox_oldest_pending_seconds"), 0.0);
}

/// Inserts a row as the runtime stages one.
async fn insert(pool: &PgPool, row: &Prepared, headers: serde_json::Value) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO bus_outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(&row.topic)
    .bind(&row.key)
    .bind(&row.value)
    .bind(headers)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn headers_json(row: &Prepared) -> serde_json::Value {
    row.headers
        .iter()
        .map(|(name, value)| serde_json::json!([name, BASE64.encode(value)]))
        .collect()
}

/// The `seq`-th payment of `account`, ready to stage.
async fn prepared(pipeline: &Pipeline, account: &str, seq: i64) -> Prepared {
    pipeline
        .producer
        .prepare(payment(account, seq))
        .await
        .unwrap()
}

/// (key, amount) of every record on `payment.submitted`, and their eventIds.
async fn published(pipeline: &Pipeline) -> (Vec<(String, i64)>, Vec<String>) {
    let records = pipeline.read_all(Topic::PaymentSubmitted, 1).await;
    let mut keyed = Vec::new();
    let mut ids = Vec::new();
    for record in &records {
        let event: PaymentSubmitted = pipeline.codec.decode(record.payload()).await.unwrap();
        keyed.push((event.debtor.account, event.amount_minor));
        ids.push(header(record, "eventId").unwrap());
    }
    (keyed, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_refused_for_good_is_parked_and_the_rows_behind_it_are_published_once() {
    let _turn = RELAYS.lock().await;
    let pipeline = common::pipeline(1).await;
    let topic = pipeline.topic(Topic::PaymentSubmitted);
    let (_database, pool) = common::database().await;

    let a0 = prepared(&pipeline, "A", 0).await;
    insert(&pool, &a0, headers_json(&a0)).await;
    // Over librdkafka's message.max.bytes (1 MB): refused, never worth a retry.
    let mut too_large = prepared(&pipeline, "A", 1).await;
    too_large.value = vec![0; 2_000_000];
    let too_large_id = insert(&pool, &too_large, headers_json(&too_large)).await;
    let a2 = prepared(&pipeline, "A", 2).await;
    insert(&pool, &a2, headers_json(&a2)).await;
    // Headers that are not [name, base64] pairs: the row cannot be sent as it was staged.
    let b0 = prepared(&pipeline, "B", 0).await;
    let unreadable_id = insert(&pool, &b0, serde_json::json!({"eventId": "x"})).await;
    for row in [
        prepared(&pipeline, "B", 1).await,
        prepared(&pipeline, "C", 0).await,
    ] {
        insert(&pool, &row, headers_json(&row)).await;
    }

    let relay = Outbox::new(pipeline.producer.clone());
    let first = relay.publish_batch(&pool).await.unwrap();
    assert_eq!(
        first,
        Pass {
            published: 4,
            parked: 2,
            ..Pass::default()
        }
    );
    assert_eq!(pending(&pool).await, 0, "acked rows are deleted");
    let again = relay.publish_batch(&pool).await.unwrap();
    assert_eq!(again, Pass::default(), "nothing is published twice");

    let parked: Vec<(i64, String, i32)> =
        sqlx::query_as("SELECT id, error, attempts FROM bus_outbox_parked ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(parked.len(), 2, "{parked:?}");
    assert_eq!((parked[0].0, parked[0].2), (too_large_id, 1));
    assert!(
        parked[0].1.to_lowercase().contains("too large"),
        "the broker's reason: {}",
        parked[0].1
    );
    assert_eq!((parked[1].0, parked[1].2), (unreadable_id, 1));
    assert!(
        parked[1].1.contains("unreadable headers"),
        "{}",
        parked[1].1
    );
    assert_eq!(
        metric(&format!(
            "paystream_bus_outbox_parked_total{{topic=\"{topic}\"}}"
        )),
        2.0
    );

    let (keyed, ids) = published(&pipeline).await;
    let mut by_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (key, amount) in keyed {
        by_key.entry(key).or_default().push(amount);
    }
    assert_eq!(
        by_key,
        [("A", vec![0, 2]), ("B", vec![1]), ("C", vec![0])]
            .map(|(key, amounts)| (key.to_owned(), amounts))
            .into(),
        "the rows behind the parked ones, in order, once"
    );
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_over_one_database_publish_each_key_in_order_and_each_row_once() {
    const KEYS: usize = 5;
    const BATCHES: i64 = 30;
    const PER_BATCH: i64 = 4;
    let _turn = RELAYS.lock().await;
    let pipeline = common::pipeline(1).await;
    let (_database, pool) = common::database().await;
    let accounts: Vec<String> = (0..KEYS).map(|key| format!("ACC{key}")).collect();
    let mut rows = Vec::new();
    for seq in 0..BATCHES * PER_BATCH {
        for account in &accounts {
            rows.push(prepared(&pipeline, account, seq).await);
        }
    }

    // While another relay holds the lock, a pass looks at nothing.
    let first = &rows[0];
    insert(&pool, first, headers_json(first)).await;
    let mut holder = pool.begin().await.unwrap();
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(RELAY_LOCK)
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    assert!(held);
    let waiting = Outbox::new(pipeline.producer.clone());
    assert_eq!(
        waiting.publish_batch(&pool).await.unwrap(),
        Pass {
            busy: true,
            ..Pass::default()
        }
    );
    assert_eq!(pending(&pool).await, 1);
    holder.rollback().await.unwrap();

    // Two replicas, each with its own producer, woken by every commit.
    let replicas: Vec<Outbox> = ["relay-a", "relay-b"]
        .into_iter()
        .map(|name| {
            Outbox::new(Producer::new(&pipeline.kafka, pipeline.codec.clone(), name).unwrap())
        })
        .collect();
    let relays: Vec<_> = replicas
        .iter()
        .map(|outbox| spawn_relay(outbox.clone(), &pool))
        .collect();
    let per_batch = usize::try_from(PER_BATCH).unwrap() * KEYS;
    for batch in rows[1..].chunks(per_batch) {
        let mut transaction = pool.begin().await.unwrap();
        for row in batch {
            sqlx::query(
                "INSERT INTO bus_outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4)",
            )
            .bind(&row.topic)
            .bind(&row.key)
            .bind(&row.value)
            .bind(headers_json(row))
            .execute(&mut *transaction)
            .await
            .unwrap();
        }
        transaction.commit().await.unwrap();
        for outbox in &replicas {
            outbox.committed();
        }
    }
    wait_until(Duration::from_secs(60), "the outbox emptied", || async {
        (pending(&pool).await == 0).then_some(())
    })
    .await;
    for (stop, task) in relays {
        stop.cancel();
        task.await.unwrap();
    }

    let (keyed, ids) = published(&pipeline).await;
    assert_eq!(keyed.len(), rows.len(), "every row published once");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), rows.len());
    let mut by_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (key, amount) in keyed {
        by_key.entry(key).or_default().push(amount);
    }
    let expected: Vec<i64> = (0..BATCHES * PER_BATCH).collect();
    assert_eq!(by_key.len(), KEYS);
    for (key, amounts) in &by_key {
        assert_eq!(amounts, &expected, "order of {key}");
    }
    assert_eq!(
        common::count(&pool, "SELECT count(*) FROM bus_outbox_parked").await,
        0
    );
}

/// Events written together (a batch of decisions in one transaction) go in
/// one statement; their ids, which the relay sends a key's events by, still
/// follow the order they were staged in: emitter by emitter, and within
/// one, event by event.
#[tokio::test]
async fn events_written_together_take_ids_in_the_order_they_were_staged() {
    let pipeline = common::pipeline(1).await;
    let (_database, pool) = common::database().await;
    let outbox = Outbox::new(
        Producer::new(&pipeline.kafka, pipeline.codec.clone(), common::PRODUCER).unwrap(),
    );
    let mut staged = Vec::new();
    let emitters: Vec<_> = (0..40)
        .map(|seq| {
            let input = payment("ACC1", seq);
            let mut emitter = outbox.emitter(input.envelope.clone(), Vec::new());
            // Two events of one input: the second must follow the first.
            for _ in 0..2 {
                let input = input.clone();
                staged.push(emitter.emit(|envelope| input.into_validated(envelope)));
            }
            emitter
        })
        .collect();
    let mut tx = pool.begin().await.unwrap();
    outbox.write_all(&mut tx, emitters).await.unwrap();
    tx.commit().await.unwrap();

    let values: Vec<Vec<u8>> = sqlx::query_scalar("SELECT value FROM bus_outbox ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut in_id_order = Vec::new();
    for value in values {
        let event: PaymentValidated = pipeline.codec.decode(Some(&value)).await.unwrap();
        in_id_order.push(event.envelope.event_id);
    }
    assert_eq!(in_id_order, staged);
}
