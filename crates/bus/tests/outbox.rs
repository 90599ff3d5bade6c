//! The outbox relay: staged events wait in PostgreSQL while the broker cannot
//! be reached, the wait shows in the metrics, and once the broker answers
//! every event is published in staging order, with its ids, and deleted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use paystream_bus::{Outbox, Producer};
use paystream_contract::{PaymentSubmitted, Topic};
use paystream_testkit::{fresh_database, wait_until};
use rdkafka::Message;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

async fn pending(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bus_outbox")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A metric's value from the process's `/metrics` text, 0 if absent.
fn metric(name_and_labels: &str) -> f64 {
    paystream_bus::metrics::render()
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_events_wait_out_an_unreachable_broker_and_are_then_published_in_order() {
    let env = common::Env::new(1).await;
    let topic = env.topic(Topic::PaymentSubmitted);
    let database = fresh_database().await;
    let pool = PgPool::connect(&database.url).await.unwrap();
    paystream_bus::outbox::install(&pool).await.unwrap();

    // The same cluster settings, but nothing listens where the broker should be.
    let mut unreachable = env.kafka.clone();
    unreachable.bootstrap = "127.0.0.1:1".into();
    unreachable.ack_timeout_ms = 1_000;
    let cut_off =
        Outbox::new(Producer::new(&unreachable, env.codec.clone(), "outbox-test").unwrap());

    let staged: Vec<PaymentSubmitted> = (0..3).map(|seq| common::payment("ACC1", seq)).collect();
    let mut transaction = pool.begin().await.unwrap();
    for event in staged.clone() {
        cut_off.stage(&mut transaction, event).await.unwrap();
    }
    transaction.commit().await.unwrap();

    assert!(cut_off.publish_batch(&pool).await.is_err());
    assert_eq!(pending(&pool).await, 3, "nothing is deleted without an ack");
    assert!(metric("paystream_bus_outbox_publish_failures_total") >= 1.0);
    assert!(
        metric("paystream_bus_outbox_oldest_pending_seconds") > 0.0,
        "the wait shows"
    );

    let relay = Outbox::new(env.producer.clone());
    let shutdown = CancellationToken::new();
    let running = {
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        tokio::spawn(async move {
            relay
                .relay(pool, Duration::from_millis(100), shutdown)
                .await
        })
    };
    wait_until(Duration::from_secs(30), "the outbox emptied", || async {
        (pending(&pool).await == 0).then_some(())
    })
    .await;
    shutdown.cancel();
    running.await.unwrap();

    let published = common::read_topic(&env, &topic, 3).await;
    let mut ids = Vec::new();
    for record in &published {
        let event: PaymentSubmitted = env.codec.decode(record.payload()).await.unwrap();
        ids.push((event.envelope.event_id, event.amount_minor));
    }
    let expected: Vec<_> = staged
        .iter()
        .map(|event| (event.envelope.event_id, event.amount_minor))
        .collect();
    assert_eq!(ids, expected, "in staging order, with their ids");
    assert_eq!(
        metric(&format!(
            "paystream_bus_outbox_published_total{{topic=\"{topic}\"}}"
        )),
        3.0
    );
    assert_eq!(metric("paystream_bus_outbox_oldest_pending_seconds"), 0.0);
}
