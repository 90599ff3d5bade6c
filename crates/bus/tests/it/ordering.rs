//! Key-ordered concurrency inside one partition: many keys at once, each
//! key's records strictly one at a time and in produce order.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paystream_bus::handler::from_fn;
use paystream_bus::{HandlerError, Ordering, Record};
use paystream_contract::PaymentSubmitted;
use paystream_testkit::pipeline::payments;
use paystream_testkit::{unique, wait_until};
use rand::Rng;

use crate::common;

#[derive(Default)]
struct Seen {
    by_key: HashMap<String, Vec<i64>>,
    running: HashSet<String>,
    overlaps: Vec<String>,
    max_concurrent: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_of_a_key_are_handled_one_at_a_time_in_produce_order() {
    const KEYS: usize = 1_000;
    const PER_KEY: i64 = 5;
    let pipeline = common::pipeline(1).await;
    pipeline
        .producer
        .send_all(payments(KEYS, PER_KEY))
        .await
        .unwrap();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let handler = {
        let seen = seen.clone();
        from_fn(move |record: Record<PaymentSubmitted>| {
            let seen = seen.clone();
            async move {
                let key = record.event.debtor.account.clone();
                {
                    let mut seen = seen.lock().unwrap();
                    if !seen.running.insert(key.clone()) {
                        seen.overlaps.push(key.clone());
                    }
                    seen.max_concurrent = seen.max_concurrent.max(seen.running.len());
                }
                let pause = rand::rng().random_range(0..=5);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let mut seen = seen.lock().unwrap();
                seen.running.remove(&key);
                seen.by_key
                    .entry(key)
                    .or_default()
                    .push(record.event.amount_minor);
                Ok::<_, HandlerError>(())
            }
        })
    };
    let consumer = common::start(
        &pipeline,
        common::settings(&unique("ordered")).ordering(Ordering::KeyOrdered { max_in_flight: 100 }),
        handler,
    );
    wait_until(Duration::from_secs(120), "every record handled", || async {
        let handled: usize = seen.lock().unwrap().by_key.values().map(Vec::len).sum();
        (handled >= KEYS * PER_KEY as usize).then_some(())
    })
    .await;
    consumer.stop().await;

    let seen = seen.lock().unwrap();
    assert!(
        seen.overlaps.is_empty(),
        "keys handled concurrently with themselves: {:?}",
        &seen.overlaps[..seen.overlaps.len().min(5)]
    );
    assert_eq!(seen.by_key.len(), KEYS);
    let expected: Vec<i64> = (0..PER_KEY).collect();
    for (key, order) in &seen.by_key {
        assert_eq!(order, &expected, "order of {key}");
    }
    // Proves the run was concurrent at all, not that it was fast.
    assert!(seen.max_concurrent > 1, "records ran one at a time");
    assert!(
        seen.max_concurrent <= 100,
        "cap exceeded: {}",
        seen.max_concurrent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partition_ordering_handles_one_record_at_a_time_in_offset_order() {
    let pipeline = common::pipeline(1).await;
    pipeline.producer.send_all(payments(20, 5)).await.unwrap();
    let offsets = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let offsets = offsets.clone();
        from_fn(move |record: Record<PaymentSubmitted>| {
            let offsets = offsets.clone();
            async move {
                offsets.lock().unwrap().push(record.meta.offset);
                Ok::<_, HandlerError>(())
            }
        })
    };
    let consumer = common::start(
        &pipeline,
        common::settings(&unique("partition")).ordering(Ordering::Partition),
        handler,
    );
    wait_until(Duration::from_secs(60), "100 records handled", || async {
        (offsets.lock().unwrap().len() >= 100).then_some(())
    })
    .await;
    consumer.stop().await;
    assert_eq!(*offsets.lock().unwrap(), (0..100).collect::<Vec<i64>>());
}
