//! What the bus tests share beyond `paystream_testkit::pipeline`: starting
//! and stopping a consumer in this process, fast retry settings, committed
//! offsets, and a database with the runtime's tables.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use paystream_bus::{
    BusError, Consumer, ConsumerSettings, Context, DeadLetterSink, Effects, Handler, HandlerError,
    MIGRATOR, Outbox, Record, RetryPolicy,
};
use paystream_contract::{Inbound, PaymentSubmitted, Topic};
use paystream_testkit::pipeline::Pipeline;
use paystream_testkit::{TestDatabase, fresh_database, kafka};
use rdkafka::message::OwnedMessage;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The producer name (and topic-prefix label) of the tests' pipelines.
pub const PRODUCER: &str = "bus-test";

/// `payment.submitted` and `payment.validated` under a prefix of their own.
pub async fn pipeline(partitions: i32) -> Pipeline {
    Pipeline::new(
        PRODUCER,
        &[Topic::PaymentSubmitted, Topic::PaymentValidated],
        partitions,
    )
    .await
}

/// A consumer of `I`'s topic whose dead letters go to the broker.
pub fn consumer<I: Inbound>(pipeline: &Pipeline, settings: ConsumerSettings) -> Consumer<I> {
    consumer_with_sink(pipeline, settings, Arc::new(pipeline.producer.clone()))
}

pub fn consumer_with_sink<I: Inbound>(
    pipeline: &Pipeline,
    settings: ConsumerSettings,
    sink: Arc<dyn DeadLetterSink>,
) -> Consumer<I> {
    Consumer::new(
        pipeline.kafka.clone(),
        settings,
        pipeline.codec.clone(),
        sink,
    )
}

pub fn at_least_once(pipeline: &Pipeline) -> Effects {
    Effects::AtLeastOnce {
        producer: pipeline.producer.clone(),
    }
}

/// Effects in `pool`, published by no relay: staged events stay in
/// `bus_outbox`, where a test can count them.
pub fn transactional(pipeline: &Pipeline, pool: &PgPool) -> Effects {
    Effects::Transactional {
        pool: pool.clone(),
        outbox: Outbox::new(pipeline.producer.clone()),
    }
}

/// Starts an at-least-once consumer of `I`'s topic in this process.
pub fn start<I: Inbound, H: Handler<I>>(
    pipeline: &Pipeline,
    settings: ConsumerSettings,
    handler: H,
) -> Running {
    run(
        consumer(pipeline, settings),
        at_least_once(pipeline),
        handler,
    )
}

pub fn run<I: Inbound, H: Handler<I>>(
    consumer: Consumer<I>,
    effects: Effects,
    handler: H,
) -> Running {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer.run(effects, handler, shutdown.clone()));
    Running { shutdown, task }
}

pub struct Running {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), BusError>>,
}

/// A test that fails must not hang: the runtime it dies in waits for the
/// consumer's poll thread, which stops only when told to.
impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Running {
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("consumer stops within 30 s")
            .expect("consumer task does not panic")
            .expect("consumer ends without error");
    }
}

/// Fast retries, so tests about retrying take milliseconds.
pub fn settings(group: &str) -> ConsumerSettings {
    ConsumerSettings::new(group)
        .retry(RetryPolicy::new([
            Duration::from_millis(50),
            Duration::from_millis(100),
            Duration::from_millis(200),
        ]))
        .dead_letter_backoff(Duration::from_millis(50), Duration::from_millis(400))
}

/// The offset `group` has committed for `topic`/`partition`, if any.
/// Waits until `group` has committed `position` on partition 0 of
/// `payment.submitted`.
pub async fn wait_committed(pipeline: &Pipeline, group: &str, position: i64, what: &str) {
    paystream_testkit::wait_until(Duration::from_secs(30), what, || async {
        (committed(pipeline, group, Topic::PaymentSubmitted, 0) == Some(position)).then_some(())
    })
    .await;
}

pub fn committed(pipeline: &Pipeline, group: &str, topic: Topic, partition: i32) -> Option<i64> {
    kafka::committed(
        &pipeline.kafka.bootstrap,
        group,
        &pipeline.topic(topic),
        partition,
    )
}

/// Every dead letter `group` wrote for `topic` so far (single partition).
pub async fn dead_letters(pipeline: &Pipeline, topic: Topic, group: &str) -> Vec<OwnedMessage> {
    let name = pipeline.dead_letter_topic(topic, group);
    kafka::wait_for_topic(&pipeline.kafka.bootstrap, &name, Duration::from_secs(30)).await;
    kafka::read_to_end(&pipeline.kafka.bootstrap, &name, 1).await
}

/// Reads `count` records of `name` (single partition) from the start,
/// waiting for them to arrive.
pub async fn receive(pipeline: &Pipeline, name: &str, count: usize) -> Vec<OwnedMessage> {
    kafka::wait_for_topic(&pipeline.kafka.bootstrap, name, Duration::from_secs(30)).await;
    let reader = kafka::reader(&pipeline.kafka.bootstrap, name, 1);
    kafka::receive(&reader, count, Duration::from_secs(60)).await
}

/// A fresh database with the runtime's tables.
pub async fn database() -> (TestDatabase, PgPool) {
    let database = fresh_database().await;
    let pool = PgPool::connect(&database.url).await.unwrap();
    MIGRATOR.run(&pool).await.unwrap();
    (database, pool)
}

pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Emits each payment as validated, noting the output's id.
#[derive(Clone, Default)]
pub struct Validate {
    pub emitted: Arc<Mutex<Vec<Uuid>>>,
}

impl Handler<PaymentSubmitted> for Validate {
    async fn handle(
        &self,
        record: Record<PaymentSubmitted>,
        ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        let event = record.event;
        let id = ctx.emit(|envelope| event.into_validated(envelope));
        self.emitted.lock().unwrap().push(id);
        Ok(())
    }
}
