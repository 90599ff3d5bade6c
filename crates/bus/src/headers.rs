//! Record headers the pipeline relies on, and W3C trace-context propagation
//! through them (the OpenTelemetry messaging conventions put `traceparent`
//! and `tracestate` in the message headers).

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const CORRELATION_ID: &str = "correlationId";
pub const CAUSATION_ID: &str = "causationId";
pub const EVENT_ID: &str = "eventId";
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Headers as owned name/value pairs, in order, names possibly repeated.
pub type HeaderList = Vec<(String, Vec<u8>)>;

/// A consumed record's headers, read once and shared by everything that
/// handles the record (its metadata, its handler context, the events it
/// causes), rather than copied for each: a copy is an allocation per name
/// and per value.
pub type SharedHeaders = std::sync::Arc<HeaderList>;

/// A consumed record's headers, read once, for everything that handles it.
pub fn shared(record: &rdkafka::message::OwnedMessage) -> SharedHeaders {
    SharedHeaders::new(to_list_owned(record))
}

pub fn to_list_owned(record: &rdkafka::message::OwnedMessage) -> HeaderList {
    use rdkafka::Message;
    record
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| {
                    (
                        header.key.to_owned(),
                        header.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn to_owned_headers(list: &HeaderList) -> OwnedHeaders {
    list.iter().fold(
        OwnedHeaders::new_with_capacity(list.len()),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        },
    )
}

/// The last value of header `name` as text.
pub fn text<'a>(list: &'a HeaderList, name: &str) -> Option<&'a str> {
    list.iter()
        .rev()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
}

struct ListExtractor<'a>(&'a HeaderList);

impl Extractor for ListExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        text(self.0, key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(key, _)| key.as_str()).collect()
    }
}

/// The trace context a record's headers carry, as an OpenTelemetry context
/// to parent the consumer's span on.
pub fn extract_context(list: &HeaderList) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&ListExtractor(list))
}

/// Makes `span` continue the trace whose context `list` carries (a record's
/// headers, a stored cause's, an HTTP request's): a span with none, or an
/// unreadable one, starts its own trace.
pub fn continue_trace(span: &tracing::Span, list: &HeaderList) {
    if let Err(error) = span.set_parent(extract_context(list)) {
        tracing::debug!(%error, "the trace context could not parent the span");
    }
}

/// `traceparent` (and `tracestate`) for a record produced now: the current
/// span's context when tracing exports OpenTelemetry spans; otherwise a child
/// of `parent` (the record being handled), or a new trace. Every produced
/// record carries one, whatever the process's telemetry setup.
pub fn trace_headers(parent: Option<&HeaderList>) -> HeaderList {
    let current = tracing::Span::current().context();
    let span_context = if current.span().span_context().is_valid() {
        current.span().span_context().clone()
    } else {
        let inherited = parent
            .map(extract_context)
            .map(|context| context.span().span_context().clone())
            .filter(SpanContext::is_valid);
        match inherited {
            Some(parent) => SpanContext::new(
                parent.trace_id(),
                random_span_id(),
                parent.trace_flags(),
                false,
                parent.trace_state().clone(),
            ),
            None => SpanContext::new(
                random_trace_id(),
                random_span_id(),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
        }
    };
    let mut list = vec![(TRACEPARENT.to_owned(), traceparent(&span_context))];
    let state = span_context.trace_state().header();
    if !state.is_empty() {
        list.push((TRACESTATE.to_owned(), state.into_bytes()));
    }
    list
}

/// The W3C `traceparent` value of `context`: version 00, then the trace id,
/// span id and flags in lower-case hex. Written here rather than through
/// the propagator, which builds a context and a map of owned strings per
/// record (1.3% of validation's CPU, that and the formatting).
fn traceparent(context: &SpanContext) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let flags = context.trace_flags() & TraceFlags::SAMPLED;
    let mut value = Vec::with_capacity(55);
    value.extend_from_slice(b"00");
    for bytes in [
        &context.trace_id().to_bytes()[..],
        &context.span_id().to_bytes()[..],
        &[flags.to_u8()][..],
    ] {
        value.push(b'-');
        for byte in bytes {
            value.push(HEX[usize::from(byte >> 4)]);
            value.push(HEX[usize::from(byte & 0x0f)]);
        }
    }
    value
}

/// The trace context of `list` (`traceparent`, `tracestate`) as a JSON
/// object, for a service that stores a consumed record's context to emit
/// follow-ups later (an [`Emitter`](crate::Emitter) rebuilt from it).
pub fn trace_context_to_json(list: &HeaderList) -> serde_json::Value {
    serde_json::Value::Object(
        list.iter()
            .filter(|(name, _)| name == TRACEPARENT || name == TRACESTATE)
            .filter_map(|(name, value)| {
                std::str::from_utf8(value)
                    .ok()
                    .map(|text| (name.clone(), serde_json::Value::from(text)))
            })
            .collect(),
    )
}

/// The headers [`trace_context_to_json`] stored; `None` if `value` is not
/// an object of strings.
pub fn trace_context_from_json(value: &serde_json::Value) -> Option<HeaderList> {
    value
        .as_object()?
        .iter()
        .map(|(name, value)| Some((name.clone(), value.as_str()?.as_bytes().to_vec())))
        .collect()
}

/// The headers naming an event and its place in a journey: `correlationId`,
/// `causationId` and `eventId`, copied from its envelope so that tools can
/// route and trace records without decoding them.
pub fn identity(envelope: &paystream_contract::Envelope) -> HeaderList {
    vec![
        (
            CORRELATION_ID.to_owned(),
            envelope.correlation_id.clone().into_bytes(),
        ),
        (
            CAUSATION_ID.to_owned(),
            envelope.causation_id.clone().into_bytes(),
        ),
        (
            EVENT_ID.to_owned(),
            envelope.event_id.to_string().into_bytes(),
        ),
    ]
}

fn random_trace_id() -> TraceId {
    loop {
        let id = TraceId::from_bytes(rand::random::<[u8; 16]>());
        if id != TraceId::INVALID {
            return id;
        }
    }
}

fn random_span_id() -> SpanId {
    loop {
        let id = SpanId::from_bytes(rand::random::<[u8; 8]>());
        if id != SpanId::INVALID {
            return id;
        }
    }
}

/// The trace id in a `traceparent` value.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    (trace_id.len() == 32).then_some(trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_without_a_trace_starts_a_new_sampled_one() {
        let headers = trace_headers(None);
        let traceparent = std::str::from_utf8(&headers[0].1).unwrap();
        assert_eq!(headers[0].0, TRACEPARENT);
        assert!(traceparent.starts_with("00-") && traceparent.ends_with("-01"));
        assert_eq!(traceparent.len(), 55);
    }

    #[test]
    fn a_record_produced_while_handling_another_continues_its_trace() {
        let parent: HeaderList = vec![(
            TRACEPARENT.to_owned(),
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec(),
        )];
        let headers = trace_headers(Some(&parent));
        let traceparent = std::str::from_utf8(&headers[0].1).unwrap();
        assert_eq!(
            trace_id_of(traceparent),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert!(!traceparent.contains("00f067aa0ba902b7"), "a new span id");
    }

    #[test]
    fn traceparent_is_written_as_the_w3c_propagator_writes_it() {
        use std::collections::HashMap;
        let state = TraceState::from_key_value([("vendor", "value")]).unwrap();
        for flags in [TraceFlags::SAMPLED, TraceFlags::NOT_SAMPLED] {
            let context = SpanContext::new(
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
                SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                flags,
                false,
                state.clone(),
            );
            let mut expected = HashMap::new();
            TraceContextPropagator::new().inject_context(
                &opentelemetry::Context::new().with_remote_span_context(context.clone()),
                &mut expected,
            );
            assert_eq!(
                String::from_utf8(traceparent(&context)).unwrap(),
                expected[TRACEPARENT]
            );
            assert_eq!(context.trace_state().header(), expected[TRACESTATE]);
        }
    }

    #[test]
    fn header_lists_round_trip_repeated_names_in_order() {
        let list: HeaderList = vec![
            ("a".into(), b"1".to_vec()),
            ("a".into(), b"2".to_vec()),
            ("bin".into(), vec![0, 255]),
        ];
        let owned = to_owned_headers(&list);
        let back: HeaderList = (0..owned.count())
            .map(|i| {
                let header = owned.get(i);
                (
                    header.key.to_owned(),
                    header.value.unwrap_or_default().to_vec(),
                )
            })
            .collect();
        assert_eq!(back, list);
        assert_eq!(text(&list, "a"), Some("2"));
    }
}
