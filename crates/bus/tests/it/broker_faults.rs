//! The runtime rides through broker faults injected on librdkafka's mock
//! cluster (nisshi cannot take a broker down under a live cluster): a leader
//! down for seconds while the consumer is mid-stream, produce requests
//! failing with retriable errors, the group coordinator moving. Nothing is
//! lost: every input's output is written and every input offset committed.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU8, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paystream_bus::dead_letter::ERROR_REASON;
use paystream_bus::{
    Consumer, ConsumerSettings, Context, Effects, Handler, HandlerError, KafkaConfig, Ordering,
    Producer, Record,
};
use paystream_contract::{
    Codec, Envelope, PaymentSubmitted, PaymentValidated, Registration, RegistryClient, Topic,
    derived_event_id,
};
use paystream_testkit::pipeline::header;
use paystream_testkit::{TestRegistry, kafka, unique, wait_until};
use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const TOTAL: i64 = 300;

/// Where the test is in the fault sequence when a record is handled.
const BEFORE_OUTAGE: u8 = 0;
const OUTAGE: u8 = 1;
const AFTER_OUTAGE: u8 = 2;

/// Emits each payment as validated, slowly enough that the first half is
/// still being worked through when the leader goes down, and notes the
/// phase each record was handled in.
#[derive(Clone)]
struct Relay {
    phase: Arc<AtomicU8>,
    handled: Arc<Mutex<Vec<(i64, u8)>>>,
}

impl Handler<PaymentSubmitted> for Relay {
    async fn handle(
        &self,
        record: Record<PaymentSubmitted>,
        ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let event = record.event;
        self.handled
            .lock()
            .unwrap()
            .push((event.amount_minor, self.phase.load(AtomicOrdering::SeqCst)));
        ctx.emit(|envelope| event.into_validated(envelope));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_consumer_rides_through_an_outage_retriable_errors_and_a_coordinator_move() {
    let cluster = MockCluster::new(3).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let group = unique("faults");
    let mut config = KafkaConfig::new(&bootstrap).with_topic_prefix(format!("{}.", unique("mock")));
    // librdkafka's reconnect back-off after the outage can outlast the
    // default 30 s ack timeout on a loaded machine; a record must not be
    // given up on while the cluster is recovering.
    config.ack_timeout_ms = Some(120_000);
    // One produce request in flight: the mock cluster does not check an
    // idempotent producer's sequences, so when a request fails and the next
    // one succeeds it stores the later batch alone, and librdkafka, which
    // takes a later success to mean the earlier batch was written (true on
    // Kafka and nisshi, which refuse a sequence gap), acknowledges a lost
    // output. With five in flight this test lost one, 1 run in 86 (see
    // broker-compat's `the_mock_cluster_drops_a_failed_batch_when_a_pipelined_one_succeeds`).
    config.properties = "max.in.flight.requests.per.connection=1".to_owned();
    let input = config.topic(Topic::PaymentSubmitted);
    let output = config.topic(Topic::PaymentValidated);
    for topic in [
        &input,
        &output,
        &paystream_contract::dead_letter_topic(&input, &group),
    ] {
        cluster.create_topic(topic, 1, 3).unwrap();
    }
    cluster.partition_leader(&input, 0, Some(1)).unwrap();
    cluster.partition_leader(&output, 0, Some(1)).unwrap();
    cluster
        .coordinator(MockCoordinator::Group(group.clone()), 2)
        .unwrap();

    let registry = TestRegistry::start().await;
    let codec = Codec::new(
        RegistryClient::new(&registry.url, Duration::from_secs(5)).unwrap(),
        Registration::AutoRegister,
    );
    let producer = Producer::new(&config, codec.clone(), "faults").unwrap();
    let inputs: Vec<PaymentSubmitted> = (0..TOTAL).map(payment).collect();
    producer
        .send_all(inputs[..TOTAL as usize / 2].iter().cloned())
        .await
        .unwrap();

    let relay = Relay {
        phase: Arc::new(AtomicU8::new(BEFORE_OUTAGE)),
        handled: Arc::default(),
    };
    let shutdown = CancellationToken::new();
    // Stops the consumer if an assertion fails, so the runtime can exit.
    let _stop_on_failure = shutdown.clone().drop_guard();
    let consumer = Consumer::<PaymentSubmitted>::new(
        config.clone(),
        // Two records at a time, 20 ms each: the first half takes seconds.
        ConsumerSettings::new(&group).ordering(Ordering::KeyOrdered { max_in_flight: 2 }),
        codec.clone(),
        Arc::new(producer.clone()),
    );
    let running = tokio::spawn(consumer.run(
        Effects::AtLeastOnce {
            producer: producer.clone(),
        },
        relay.clone(),
        shutdown.clone(),
    ));
    // The outage must hit a consumer at work, not one still joining.
    wait_until(Duration::from_secs(60), "the consumer at work", || async {
        (!relay.handled.lock().unwrap().is_empty()).then_some(())
    })
    .await;

    // Leader of both topics down for three seconds while records flow.
    relay.phase.store(OUTAGE, AtomicOrdering::SeqCst);
    cluster.broker_down(1).unwrap();
    let during = producer.send_all(
        inputs[TOTAL as usize / 2..TOTAL as usize * 3 / 4]
            .iter()
            .cloned(),
    );
    let recover = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        cluster.broker_up(1).unwrap();
        relay.phase.store(AFTER_OUTAGE, AtomicOrdering::SeqCst);
    };
    let (sent, ()) = tokio::join!(during, recover);
    sent.unwrap();
    // Then produce requests fail with retriable errors, and the coordinator moves.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        ],
    );
    cluster
        .coordinator(MockCoordinator::Group(group.clone()), 3)
        .unwrap();
    producer
        .send_all(inputs[TOTAL as usize * 3 / 4..].iter().cloned())
        .await
        .unwrap();

    wait_until(Duration::from_secs(90), "every input committed", || async {
        (kafka::committed(&bootstrap, &group, &input, 0) == Some(TOTAL)).then_some(())
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();

    // The consumer was mid-stream when the leader went down, and went on.
    let handled = relay.handled.lock().unwrap().clone();
    let first_half = |amount: &i64| *amount < TOTAL / 2;
    let before: BTreeSet<i64> = handled
        .iter()
        .filter(|(_, phase)| *phase == BEFORE_OUTAGE)
        .map(|(amount, _)| *amount)
        .collect();
    let later: BTreeSet<i64> = handled
        .iter()
        .filter(|(_, phase)| *phase != BEFORE_OUTAGE)
        .map(|(amount, _)| *amount)
        .collect();
    assert!(!before.is_empty(), "nothing handled before the outage");
    assert!(
        later.iter().any(first_half),
        "the first half was done before the outage began: {} of {} records",
        before.len(),
        TOTAL / 2
    );
    assert!(before.iter().all(first_half), "{before:?}");
    let handled_amounts: BTreeSet<i64> = handled.iter().map(|(amount, _)| *amount).collect();
    assert_eq!(handled_amounts, (0..TOTAL).collect(), "every input handled");

    // Every output is there, with the id derived from its input; a record
    // handled again (after the coordinator moved) repeats its id, never a new one.
    let outputs = kafka::read_to_end(&bootstrap, &output, 1).await;
    let expected: HashMap<Uuid, i64> = inputs
        .iter()
        .map(|input| {
            (
                derived_event_id(input.envelope.event_id, Topic::PaymentValidated, 1),
                input.amount_minor,
            )
        })
        .collect();
    let mut ids = BTreeSet::new();
    for record in &outputs {
        let event: PaymentValidated = codec
            .decode(rdkafka::Message::payload(record))
            .await
            .unwrap();
        assert_eq!(
            expected.get(&event.envelope.event_id),
            Some(&event.amount_minor),
            "an output whose id is not its input's"
        );
        ids.insert(event.envelope.event_id);
    }
    if ids.len() != TOTAL as usize {
        panic!(
            "{}",
            missing_outputs(
                &bootstrap,
                &output,
                &input,
                &group,
                &expected,
                &ids,
                outputs.len()
            )
            .await
        );
    }
    // The producer is idempotent: retried produce requests add no copies.
    assert!(
        outputs.len() <= handled.len(),
        "{} outputs from {} handlings",
        outputs.len(),
        handled.len()
    );
}

/// Why the test failed when an input has no output: which inputs, whether
/// the runtime dead-lettered them (and why), and the output topic's
/// watermarks when it was read, so a loss can be told from a dead letter.
async fn missing_outputs(
    bootstrap: &str,
    output: &str,
    input: &str,
    group: &str,
    expected: &HashMap<Uuid, i64>,
    ids: &BTreeSet<Uuid>,
    read: usize,
) -> String {
    let missing: BTreeSet<i64> = expected
        .iter()
        .filter(|(id, _)| !ids.contains(id))
        .map(|(_, amount)| *amount)
        .collect();
    let dead_letters = kafka::read_to_end(
        bootstrap,
        &paystream_contract::dead_letter_topic(input, group),
        1,
    )
    .await;
    let reasons: Vec<Option<String>> = dead_letters
        .iter()
        .map(|record| header(record, ERROR_REASON))
        .collect();
    format!(
        "no input lost: {} of {TOTAL} inputs have an output ({read} records read); missing: the inputs with amounts \
         {missing:?}; output watermarks now {:?}; {} dead letters, reasons {reasons:?}",
        ids.len(),
        kafka::watermarks(bootstrap, output, 0),
        dead_letters.len(),
    )
}

fn payment(seq: i64) -> PaymentSubmitted {
    let mut payment = paystream_contract::samples::payment_submitted();
    payment.envelope = Envelope::first(format!("corr-{seq}"), format!("req-{seq}"), "faults");
    payment.payment_id = uuid::Uuid::now_v7();
    payment.debtor.account = format!("ACC{}", seq % 17);
    payment.amount_minor = seq;
    payment
}
