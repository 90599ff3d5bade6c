//! `Effects::Transactional`: the processed eventId, the handler's writes in
//! `ctx.tx()` and its staged outputs commit together or not at all. No relay
//! runs here, so what a record emitted is exactly what waits in `bus_outbox`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use paystream_bus::dead_letter::ERROR_CLASS;
use paystream_bus::{Context, Handler, HandlerError, Record};
use paystream_contract::{PaymentSubmitted, Topic, derived_event_id};
use paystream_testkit::pipeline::{header, payment};
use paystream_testkit::{unique, wait_until};
use rdkafka::Message;
use sqlx::PgPool;
use uuid::Uuid;

use crate::common;

/// Writes one `effects` row and emits one `payment.validated` per record,
/// then fails as its account says.
#[derive(Clone, Default)]
struct Apply {
    /// (account, attempt) of every call.
    calls: Arc<Mutex<Vec<(String, u32)>>>,
}

impl Handler<PaymentSubmitted> for Apply {
    async fn handle(
        &self,
        record: Record<PaymentSubmitted>,
        ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        let event = record.event;
        let account = event.debtor.account.clone();
        let attempt = record.meta.attempt;
        self.calls.lock().unwrap().push((account.clone(), attempt));
        sqlx::query("INSERT INTO effects (event_id, account) VALUES ($1, $2)")
            .bind(event.envelope.event_id)
            .bind(&account)
            .execute(ctx.tx().await?)
            .await?;
        ctx.emit(|envelope| event.into_validated(envelope));
        match account.as_str() {
            "FLAKY" if attempt == 1 => Err(HandlerError::transient("core banking timed out")),
            "REFUSED" => Err(HandlerError::permanent("account closed")),
            "PANICS" => panic!("a bug after the writes"),
            _ => Ok(()),
        }
    }
}

async fn effects_table(pool: &PgPool) {
    sqlx::query("CREATE TABLE effects (event_id UUID NOT NULL, account TEXT NOT NULL)")
        .execute(pool)
        .await
        .unwrap();
}

/// The eventId header of every row in the outbox, in staging order.
async fn outbox_event_ids(pool: &PgPool) -> Vec<Uuid> {
    let rows: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT headers FROM bus_outbox ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.iter()
        .map(|headers| {
            let pair = headers
                .as_array()
                .unwrap()
                .iter()
                .find(|pair| pair[0] == "eventId")
                .unwrap();
            let bytes = BASE64.decode(pair[1].as_str().unwrap()).unwrap();
            String::from_utf8(bytes).unwrap().parse().unwrap()
        })
        .collect()
}

fn output_id(input: &PaymentSubmitted) -> Uuid {
    derived_event_id(input.envelope.event_id, Topic::PaymentValidated, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redelivered_event_changes_nothing_and_emits_nothing_new() {
    let pipeline = common::pipeline(1).await;
    let (_database, pool) = common::database().await;
    effects_table(&pool).await;
    let group = unique("effects-dup");
    let input = payment("ACC1", 0);
    pipeline.producer.send(input.clone()).await.unwrap();

    let handler = Apply::default();
    let consumer = common::run(
        common::consumer::<PaymentSubmitted>(&pipeline, common::settings(&group)),
        common::transactional(&pipeline, &pool),
        handler.clone(),
    );
    wait_until(Duration::from_secs(30), "the event processed", || async {
        (common::committed(&pipeline, &group, Topic::PaymentSubmitted, 0) == Some(1)).then_some(())
    })
    .await;
    // The same event again, as a producer retry or a replay would send it.
    pipeline.producer.send(input.clone()).await.unwrap();
    wait_until(Duration::from_secs(30), "the copy consumed", || async {
        (common::committed(&pipeline, &group, Topic::PaymentSubmitted, 0) == Some(2)).then_some(())
    })
    .await;
    consumer.stop().await;

    assert_eq!(
        *handler.calls.lock().unwrap(),
        [("ACC1".to_owned(), 1)],
        "the copy never reached the handler"
    );
    assert_eq!(
        common::count(&pool, "SELECT count(*) FROM effects").await,
        1
    );
    assert_eq!(
        outbox_event_ids(&pool).await,
        [output_id(&input)],
        "one output"
    );
    let processed: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT event_id, consumer_group, topic FROM bus_processed_events")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        processed,
        [(
            input.envelope.event_id,
            group,
            "payment.submitted".to_owned()
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_attempt_leaves_neither_its_writes_nor_its_outputs() {
    let pipeline = common::pipeline(1).await;
    let (_database, pool) = common::database().await;
    effects_table(&pool).await;
    let group = unique("effects-fail");
    let inputs: Vec<PaymentSubmitted> = ["FLAKY", "REFUSED", "PANICS", "GOOD"]
        .into_iter()
        .map(|account| payment(account, 0))
        .collect();
    pipeline.producer.send_all(inputs.clone()).await.unwrap();

    let handler = Apply::default();
    let consumer = common::run(
        common::consumer::<PaymentSubmitted>(&pipeline, common::settings(&group)),
        common::transactional(&pipeline, &pool),
        handler.clone(),
    );
    wait_until(Duration::from_secs(30), "every record finished", || async {
        (common::committed(&pipeline, &group, Topic::PaymentSubmitted, 0) == Some(4)).then_some(())
    })
    .await;
    consumer.stop().await;

    let mut calls: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (account, attempt) in handler.calls.lock().unwrap().iter() {
        calls.entry(account.clone()).or_default().push(*attempt);
    }
    let expected: BTreeMap<String, Vec<u32>> = [
        ("FLAKY", vec![1, 2]),
        ("GOOD", vec![1]),
        ("PANICS", vec![1]),
        ("REFUSED", vec![1]),
    ]
    .into_iter()
    .map(|(account, attempts)| (account.to_owned(), attempts))
    .collect();
    assert_eq!(calls, expected);

    let applied: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT event_id, account FROM effects ORDER BY account")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        applied,
        [
            (inputs[0].envelope.event_id, "FLAKY".to_owned()),
            (inputs[3].envelope.event_id, "GOOD".to_owned()),
        ],
        "the failed attempts' writes were rolled back"
    );
    // FLAKY's retry commits after GOOD: compared as sets.
    let mut staged = outbox_event_ids(&pool).await;
    staged.sort();
    let mut succeeded = vec![output_id(&inputs[0]), output_id(&inputs[3])];
    succeeded.sort();
    assert_eq!(
        staged, succeeded,
        "only the successful attempts' outputs were staged"
    );
    let mut processed: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM bus_processed_events")
        .fetch_all(&pool)
        .await
        .unwrap();
    processed.sort();
    let mut expected = vec![inputs[0].envelope.event_id, inputs[3].envelope.event_id];
    expected.sort();
    assert_eq!(
        processed, expected,
        "a failed event is not marked processed"
    );

    let dead = common::dead_letters(&pipeline, Topic::PaymentSubmitted, &group).await;
    let classes: BTreeMap<String, String> = dead
        .iter()
        .map(|letter| {
            (
                String::from_utf8_lossy(letter.key().unwrap()).into_owned(),
                header(letter, ERROR_CLASS).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        classes,
        [("PANICS", "panic"), ("REFUSED", "handler")]
            .map(|(key, class)| (key.to_owned(), class.to_owned()))
            .into()
    );
    assert_eq!(dead.len(), 2);
}
