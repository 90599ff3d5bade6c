//! An event produced while handling another carries the input's correlation,
//! names the input as its cause and continues its trace, with no code in the
//! handler to do so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use paystream_bus::headers::trace_id_of;
use paystream_bus::scope::derived_event_id;
use paystream_bus::{HandlerError, Producer, Record};
use paystream_contract::{Envelope, PaymentSubmitted, PaymentValidated, Topic};
use paystream_testkit::unique;
use rdkafka::Message;

fn validated(input: PaymentSubmitted) -> PaymentValidated {
    input.into_validated(Envelope::pending())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_output_event_continues_the_correlation_causation_and_trace_of_its_input() {
    let env = common::Env::new(1).await;
    let input = common::payment("ACC1", 0);
    env.producer.send(input.clone()).await.unwrap();

    let producer = env.producer.clone();
    let handler = move |record: Record<PaymentSubmitted>| {
        let producer: Producer = producer.clone();
        async move {
            producer.send(validated(record.event)).await?;
            Ok::<_, HandlerError>(())
        }
    };
    let consumer = env.start(common::settings(&unique("relay")), handler);
    let inputs = common::read_topic(&env, &env.topic(Topic::PaymentSubmitted), 1).await;
    let outputs = common::read_topic(&env, &env.topic(Topic::PaymentValidated), 1).await;
    consumer.stop().await;

    let output = &outputs[0];
    let event: PaymentValidated = env.codec.decode(output.payload()).await.unwrap();
    assert_eq!(event.envelope.correlation_id, input.envelope.correlation_id);
    assert_eq!(
        event.envelope.causation_id,
        input.envelope.event_id.to_string()
    );
    assert_eq!(
        event.envelope.event_id,
        derived_event_id(input.envelope.event_id, "payment.validated", 1),
        "a redelivered input yields the same output id"
    );
    assert_eq!(event.envelope.producer, "bus-test");
    assert_eq!(output.key(), Some(b"ACC1".as_slice()));
    assert_eq!(
        common::header(output, "correlationId").unwrap(),
        input.envelope.correlation_id
    );
    assert_eq!(
        common::header(output, "causationId").unwrap(),
        input.envelope.event_id.to_string()
    );
    assert_eq!(
        common::header(output, "eventId").unwrap(),
        event.envelope.event_id.to_string()
    );
    let input_trace = common::header(&inputs[0], "traceparent").unwrap();
    let output_trace = common::header(output, "traceparent").unwrap();
    assert_eq!(
        trace_id_of(&output_trace),
        trace_id_of(&input_trace),
        "same trace"
    );
    assert_ne!(output_trace, input_trace, "its own span");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_without_a_correlation_is_refused_outside_a_handler() {
    let env = common::Env::new(1).await;
    let input = common::payment("ACC1", 0);
    let mut built = validated(input.clone());
    built.envelope = Envelope::caused_by(&input.envelope, "bus-test");
    env.producer
        .send(built)
        .await
        .expect("a built envelope is sent as it is");

    let refused = env
        .producer
        .send(validated(common::payment("ACC1", 1)))
        .await
        .unwrap_err();
    assert!(!refused.is_transient());
    assert!(
        refused.to_string().contains("no correlationId"),
        "{refused}"
    );
}
