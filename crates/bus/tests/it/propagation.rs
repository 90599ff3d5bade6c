//! An event a handler emits carries the input's correlation, names the input
//! as its cause, gets an id derived from the input's and continues its
//! trace, with no code in the handler to do so.

use paystream_bus::headers::trace_id_of;
use paystream_contract::{Envelope, PaymentValidated, Topic, derived_event_id};
use paystream_testkit::pipeline::{header, payment};
use paystream_testkit::unique;
use rdkafka::Message;

use crate::common::{self, Validate};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_output_event_continues_the_correlation_causation_and_trace_of_its_input() {
    let pipeline = common::pipeline(1).await;
    let input = payment("ACC1", 0);
    pipeline.producer.send(input.clone()).await.unwrap();

    let consumer = common::start(
        &pipeline,
        common::settings(&unique("relay")),
        Validate::default(),
    );
    let outputs = common::receive(&pipeline, &pipeline.topic(Topic::PaymentValidated), 1).await;
    consumer.stop().await;
    let inputs = pipeline.read_all(Topic::PaymentSubmitted, 1).await;

    let output = &outputs[0];
    let event: PaymentValidated = pipeline.codec.decode(output.payload()).await.unwrap();
    assert_eq!(event.envelope.correlation_id, input.envelope.correlation_id);
    assert_eq!(
        event.envelope.causation_id,
        input.envelope.event_id.to_string()
    );
    assert_eq!(
        event.envelope.event_id,
        derived_event_id(input.envelope.event_id, Topic::PaymentValidated, 1),
        "a redelivered input yields the same output id"
    );
    assert_eq!(event.envelope.producer, common::PRODUCER);
    assert_eq!(output.key(), Some(b"ACC1".as_slice()));
    assert_eq!(
        header(output, "correlationId").unwrap(),
        input.envelope.correlation_id
    );
    assert_eq!(
        header(output, "causationId").unwrap(),
        input.envelope.event_id.to_string()
    );
    assert_eq!(
        header(output, "eventId").unwrap(),
        event.envelope.event_id.to_string()
    );
    let input_trace = header(&inputs[0], "traceparent").unwrap();
    let output_trace = header(output, "traceparent").unwrap();
    assert_eq!(
        trace_id_of(&output_trace),
        trace_id_of(&input_trace),
        "same trace"
    );
    assert_ne!(output_trace, input_trace, "its own span");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_without_a_correlation_is_refused_outside_a_handler() {
    let pipeline = common::pipeline(1).await;
    let input = payment("ACC1", 0);
    let built = input
        .clone()
        .into_validated(Envelope::caused_by(&input.envelope, common::PRODUCER));
    pipeline
        .producer
        .send(built)
        .await
        .expect("a built envelope is sent as it is");

    let uncorrelated = payment("ACC1", 1).into_validated(Envelope::first("", "", common::PRODUCER));
    let refused = pipeline.producer.send(uncorrelated).await.unwrap_err();
    assert!(!refused.is_transient());
    assert!(
        refused.to_string().contains("no correlationId"),
        "{refused}"
    );
}
