//! Transient failures are retried without holding up other keys; permanent
//! ones, records that cannot be decoded and handlers that panic go to the
//! dead-letter topic with their original bytes and the reason, and the
//! partition goes on; the offset is committed only once the dead letter is
//! acknowledged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use paystream_bus::dead_letter::{ATTEMPTS, ERROR_CLASS, ERROR_REASON, ORIGINAL_OFFSET};
use paystream_bus::handler::from_fn;
use paystream_bus::{DeadLetter, DeadLetterSink, HandlerError, ProduceError, Producer, Record};
use paystream_contract::{PaymentSubmitted, Topic, samples};
use paystream_testkit::pipeline::{header, payment};
use paystream_testkit::{unique, wait_until};
use rdkafka::Message;

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transient_failure_is_retried_holding_up_only_its_own_key() {
    let pipeline = common::pipeline(1).await;
    let mut records = vec![payment("SLOW", 0), payment("SLOW", 1)];
    records.extend((0..5).map(|seq| payment("FAST", seq)));
    pipeline.producer.send_all(records).await.unwrap();

    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let attempts = Arc::new(AtomicUsize::new(0));
    let fast_done = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (log, attempts, fast_done) = (log.clone(), attempts.clone(), fast_done.clone());
        from_fn(move |record: Record<PaymentSubmitted>| {
            let (log, attempts, fast_done) = (log.clone(), attempts.clone(), fast_done.clone());
            async move {
                let name = format!(
                    "{}-{}",
                    record.event.debtor.account, record.event.amount_minor
                );
                if name == "SLOW-0" {
                    let attempt = attempts.fetch_add(1, AtomicOrdering::SeqCst) + 1;
                    if attempt <= 2 {
                        return Err(HandlerError::transient("provider answered 503"));
                    }
                    // Succeeds only once the other key got through: were it
                    // held up behind this record, this would time out.
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while fast_done.load(AtomicOrdering::SeqCst) < 5 {
                        if Instant::now() > deadline {
                            return Err(HandlerError::permanent("the other key was held up"));
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                if name.starts_with("FAST") {
                    fast_done.fetch_add(1, AtomicOrdering::SeqCst);
                }
                log.lock().unwrap().push(name);
                Ok(())
            }
        })
    };
    let consumer = common::start(&pipeline, common::settings(&unique("retry")), handler);
    wait_until(Duration::from_secs(60), "all 7 records handled", || async {
        (log.lock().unwrap().len() >= 7).then_some(())
    })
    .await;
    consumer.stop().await;

    let log = log.lock().unwrap().clone();
    assert_eq!(
        attempts.load(AtomicOrdering::SeqCst),
        3,
        "two failures, then success"
    );
    assert_eq!(log.len(), 7, "each record handled once: {log:?}");
    let position = |name: &str| log.iter().position(|n| n == name).unwrap();
    assert!(
        position("SLOW-0") < position("SLOW-1"),
        "its key waited: {log:?}"
    );
    for seq in 0..5 {
        assert!(
            position(&format!("FAST-{seq}")) < position("SLOW-0"),
            "{log:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_records_are_dead_lettered_with_their_bytes_and_reasons_and_the_consumer_goes_on() {
    let pipeline = common::pipeline(1).await;
    let group = unique("poison");
    let topic = pipeline.topic(Topic::PaymentSubmitted);
    let wrong_schema = pipeline
        .codec
        .encode(&samples::payment_validated())
        .await
        .unwrap();
    let raw: Vec<(&str, Vec<u8>)> = vec![
        (
            "random-bytes",
            vec![0xde, 0xad, 0xbe, 0xef, 0x42, 0x00, 0x17],
        ),
        ("unknown-id", vec![0, 0x7f, 0xff, 0xff, 0xf0, 2, 4, 6]),
        ("wrong-schema", wrong_schema),
    ];
    let original_headers = vec![("correlationId".to_owned(), b"corr-poison".to_vec())];
    for (key, value) in &raw {
        pipeline
            .producer
            .send_raw(&topic, Some(key.as_bytes()), value, &original_headers)
            .await
            .unwrap();
    }
    pipeline
        .producer
        .send_all([
            payment("REFUSED", 0),
            payment("FLAKY", 0),
            payment("GOOD", 0),
        ])
        .await
        .unwrap();

    let handled = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let handled = handled.clone();
        from_fn(move |record: Record<PaymentSubmitted>| {
            let handled = handled.clone();
            async move {
                match record.event.debtor.account.as_str() {
                    "REFUSED" => Err(HandlerError::permanent("creditor agent BIC is not a BIC")),
                    "FLAKY" => Err(HandlerError::transient("timed out")),
                    account => {
                        handled.lock().unwrap().push(account.to_owned());
                        Ok(())
                    }
                }
            }
        })
    };
    let consumer = common::start(&pipeline, common::settings(&group), handler);
    common::wait_committed(&pipeline, &group, 6, "offset committed past every record").await;
    consumer.stop().await;
    assert_eq!(*handled.lock().unwrap(), vec!["GOOD".to_owned()]);

    // Committed past a record only once its dead letter was acked: all are there.
    let dead = common::dead_letters(&pipeline, Topic::PaymentSubmitted, &group).await;
    assert_eq!(dead.len(), 5, "one dead letter per failed record");
    let by_key: HashMap<String, _> = dead
        .iter()
        .map(|record| {
            (
                String::from_utf8_lossy(record.key().unwrap()).into_owned(),
                record,
            )
        })
        .collect();
    let expect = [
        ("random-bytes", "deserialization", "1"),
        ("unknown-id", "unknown-schema", "1"),
        ("wrong-schema", "wrong-schema", "1"),
        ("REFUSED", "handler", "1"),
        ("FLAKY", "retries-exhausted", "4"),
    ];
    for (offset, (key, class, attempts)) in expect.into_iter().enumerate() {
        let record = by_key
            .get(key)
            .unwrap_or_else(|| panic!("no dead letter for {key}"));
        let header = |name| header(record, name).unwrap_or_else(|| panic!("{key}: no {name}"));
        assert_eq!(header("error.class"), class, "{key}");
        assert!(!header("error.reason").is_empty());
        assert_eq!(header("original.topic"), topic);
        assert_eq!(header("original.partition"), "0");
        assert_eq!(header("original.offset"), offset.to_string(), "{key}");
        assert!(header("original.timestamp").parse::<i64>().unwrap() > 0);
        assert_eq!(header("attempts"), attempts, "{key}");
        assert!(chrono::DateTime::parse_from_rfc3339(&header("failed.at")).is_ok());
        assert_eq!(header("consumer.group"), group);
        assert!(
            header("correlationId").starts_with("corr-"),
            "original headers kept"
        );
    }
    for (key, value) in &raw {
        assert_eq!(
            by_key[*key].payload().unwrap(),
            value.as_slice(),
            "{key}: original bytes"
        );
    }
    assert!(header(by_key["REFUSED"], "traceparent").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_handler_is_dead_lettered_and_its_partition_and_key_go_on() {
    let pipeline = common::pipeline(1).await;
    let group = unique("panic");
    pipeline
        .producer
        .send_all((0..4).map(|seq| payment("KEY", seq)))
        .await
        .unwrap();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let handled = handled.clone();
        from_fn(move |record: Record<PaymentSubmitted>| {
            let handled = handled.clone();
            async move {
                assert_ne!(record.event.amount_minor, 1, "a bug in the handler");
                handled.lock().unwrap().push(record.event.amount_minor);
                Ok::<_, HandlerError>(())
            }
        })
    };
    let consumer = common::start(&pipeline, common::settings(&group), handler);
    common::wait_committed(&pipeline, &group, 4, "offset committed past the panic").await;
    consumer.stop().await;
    assert_eq!(
        *handled.lock().unwrap(),
        [0, 2, 3],
        "the key's later records were handled, in order"
    );

    let dead = common::dead_letters(&pipeline, Topic::PaymentSubmitted, &group).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(header(&dead[0], ERROR_CLASS).as_deref(), Some("panic"));
    assert_eq!(header(&dead[0], ORIGINAL_OFFSET).as_deref(), Some("1"));
    assert_eq!(
        header(&dead[0], ATTEMPTS).as_deref(),
        Some("1"),
        "never retried"
    );
    let reason = header(&dead[0], ERROR_REASON).unwrap();
    assert!(reason.contains("a bug in the handler"), "{reason}");
}

/// A dead-letter sink that fails while `broken`, noting when it was tried.
struct BrokenSink {
    inner: Producer,
    broken: AtomicBool,
    tries: Mutex<Vec<Instant>>,
}

impl BrokenSink {
    fn tries(&self) -> usize {
        self.tries.lock().unwrap().len()
    }
}

impl DeadLetterSink for BrokenSink {
    fn write<'a>(&'a self, letter: &'a DeadLetter) -> BoxFuture<'a, Result<(), ProduceError>> {
        Box::pin(async move {
            self.tries.lock().unwrap().push(Instant::now());
            if self.broken.load(AtomicOrdering::SeqCst) {
                return Err(ProduceError::NotAcknowledged {
                    topic: letter.topic.clone(),
                    reason: "broker unreachable (test)".into(),
                    transient: true,
                });
            }
            self.inner.write(letter).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_dead_letter_write_keeps_the_offset_until_it_succeeds() {
    let pipeline = common::pipeline(1).await;
    let group = unique("dlq-down");
    let topic = pipeline.topic(Topic::PaymentSubmitted);
    // A good record, bytes no schema reads, and a good record of another key.
    pipeline.producer.send(payment("GOOD", 0)).await.unwrap();
    pipeline
        .producer
        .send_raw(&topic, Some(b"bad"), b"not avro", &Vec::new())
        .await
        .unwrap();
    pipeline.producer.send(payment("GOOD", 1)).await.unwrap();
    let sink = Arc::new(BrokenSink {
        inner: pipeline.producer.clone(),
        broken: AtomicBool::new(true),
        tries: Mutex::default(),
    });
    let handled = Arc::new(AtomicUsize::new(0));
    let handler = {
        let handled = handled.clone();
        from_fn(move |_: Record<PaymentSubmitted>| {
            handled.fetch_add(1, AtomicOrdering::SeqCst);
            async { Ok::<_, HandlerError>(()) }
        })
    };
    let consumer = common::run(
        common::consumer_with_sink(&pipeline, common::settings(&group), sink.clone()),
        common::at_least_once(&pipeline),
        handler,
    );

    // Commits go on up to the stuck record...
    common::wait_committed(
        &pipeline,
        &group,
        1,
        "the offset committed up to the undecodable record",
    )
    .await;
    wait_until(
        Duration::from_secs(30),
        "both good records handled",
        || async { (handled.load(AtomicOrdering::SeqCst) == 2).then_some(()) },
    )
    .await;
    // ... and stay there through more failed writes, which span several
    // commit intervals, although the record behind it is finished.
    let tries = sink.tries();
    wait_until(
        Duration::from_secs(30),
        "three more failed dead-letter writes",
        || async { (sink.tries() >= tries + 3).then_some(()) },
    )
    .await;
    assert_eq!(
        common::committed(&pipeline, &group, Topic::PaymentSubmitted, 0),
        Some(1),
        "the commit does not pass the record while the DLQ is down"
    );
    let tries = sink.tries.lock().unwrap().clone();
    for pair in tries.windows(2) {
        // 50 ms doubling, less 20% jitter: never a tight loop.
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(40),
            "tries {tries:?}"
        );
    }

    sink.broken.store(false, AtomicOrdering::SeqCst);
    let dead = common::receive(
        &pipeline,
        &pipeline.dead_letter_topic(Topic::PaymentSubmitted, &group),
        1,
    )
    .await;
    assert_eq!(dead[0].payload().unwrap(), b"not avro");
    common::wait_committed(
        &pipeline,
        &group,
        3,
        "offset committed after the dead letter",
    )
    .await;
    consumer.stop().await;
    assert_eq!(handled.load(AtomicOrdering::SeqCst), 2, "nothing ran twice");
}

/// The group's `paystream_bus_dead_letter_depth` series from `/metrics`.
fn dead_letter_depth(topic: &str, group: &str) -> Option<f64> {
    let series = format!("paystream_bus_dead_letter_depth{{group=\"{group}\",topic=\"{topic}\"}}");
    paystream_bus::metrics::render()
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str())?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dead_letter_depth_shows_zero_from_the_start_then_counts_the_groups_letters() {
    let pipeline = common::pipeline(1).await;
    let group = unique("depth");
    let topic = pipeline.topic(Topic::PaymentSubmitted);
    let handler = from_fn(|record: Record<PaymentSubmitted>| async move {
        match record.event.debtor.account.as_str() {
            "REFUSED" => Err(HandlerError::permanent("creditor agent BIC is not a BIC")),
            _ => Ok(()),
        }
    });
    let consumer = common::start(&pipeline, common::settings(&group), handler);
    // Before any dead letter the series is there at 0, so the first one is
    // an increase an alert sees (a series born at 1 shows none).
    wait_until(Duration::from_secs(30), "the depth series at 0", || async {
        (dead_letter_depth(&topic, &group) == Some(0.0)).then_some(())
    })
    .await;
    pipeline
        .producer
        .send_raw(&topic, Some(b"poison"), b"not avro", &Vec::new())
        .await
        .unwrap();
    pipeline
        .producer
        .send_all([payment("REFUSED", 0), payment("GOOD", 0)])
        .await
        .unwrap();
    common::wait_committed(&pipeline, &group, 3, "offset committed past every record").await;
    consumer.stop().await;
    assert_eq!(
        dead_letter_depth(&topic, &group),
        Some(2.0),
        "the poison record and the refused one"
    );
    assert_eq!(
        common::dead_letters(&pipeline, Topic::PaymentSubmitted, &group)
            .await
            .len(),
        2
    );
}
