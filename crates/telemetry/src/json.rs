//! A JSON log layer that flattens span fields into each line.
//!
//! tracing-subscriber's own JSON format nests span fields under `span` and
//! `spans`, which log pipelines then have to dig out; here every field of every
//! enclosing span sits at the top level next to the event's own (where two
//! share a name, the event's wins, then the innermost span's).
//!
//! It is a layer of its own rather than a format for tracing-subscriber's `fmt`
//! layer because that layer keeps each span's fields as one JSON string: a field
//! recorded after the span starts (an outcome, a status code) parses the string
//! and writes it again, and every line logged inside the span parses it once
//! more. Here a span's fields are kept as values, recorded in place and written
//! straight into a line when one is logged.

use std::fmt;
use std::io::Write as _;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Logs to standard output; [`FlatJsonLayer::with_writer`] for elsewhere.
pub fn layer() -> FlatJsonLayer<fn() -> std::io::Stdout> {
    FlatJsonLayer {
        make_writer: std::io::stdout,
    }
}

/// Writes each event as one JSON object per line, with the fields of its
/// enclosing spans lifted to the top level.
#[derive(Debug, Clone)]
pub struct FlatJsonLayer<W> {
    make_writer: W,
}

impl<W> FlatJsonLayer<W> {
    pub fn with_writer<W2>(self, make_writer: W2) -> FlatJsonLayer<W2>
    where
        W2: for<'writer> MakeWriter<'writer> + 'static,
    {
        FlatJsonLayer { make_writer }
    }
}

/// A span's fields in the order they were first recorded; a field recorded
/// again keeps its place and takes the new value.
struct SpanFields(Vec<(&'static str, Value)>);

impl SpanFields {
    fn set(&mut self, name: &'static str, value: Value) {
        match self.0.iter_mut().find(|(field, _)| *field == name) {
            Some((_, old)) => *old = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for SpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field.name(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name(), format!("{value:?}").into());
    }
}

impl<S, W> Layer<S> for FlatJsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'writer> MakeWriter<'writer> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        // A second layer of this kind in one subscriber shares the first's.
        if extensions.get_mut::<SpanFields>().is_none() {
            let mut fields = SpanFields(Vec::with_capacity(attrs.fields().len()));
            attrs.record(&mut fields);
            extensions.insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut line = Line::default();
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        line.field("timestamp", timestamp.as_str());
        line.field("level", metadata.level().as_str());
        line.field("target", metadata.target());
        event.record(&mut line);
        if let Some(scope) = ctx.event_scope(event) {
            let mut innermost = None;
            for span in scope {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    for (name, value) in &fields.0 {
                        line.field(name, value);
                    }
                }
                innermost.get_or_insert(span.name());
            }
            if let Some(name) = innermost {
                line.field("span", name);
            }
        }
        // A log line that cannot be written has nowhere to be logged; standard
        // error is the last place left to say so.
        let written = line
            .finish()
            .map_err(std::io::Error::from)
            .and_then(|text| self.make_writer.make_writer_for(metadata).write_all(&text));
        if let Err(error) = written {
            eprintln!("a log line could not be written: {error}");
        }
    }
}

/// One log line's JSON object, written as its fields come: the line's own
/// (time, level, target), the event's, then each enclosing span's from the
/// innermost out. A name already written keeps its first value, so an event's
/// field hides a span's of the same name and an inner span's an outer one's.
struct Line {
    text: Vec<u8>,
    names: Vec<&'static str>,
    error: Option<serde_json::Error>,
}

impl Default for Line {
    fn default() -> Self {
        let mut text = Vec::with_capacity(512);
        text.push(b'{');
        Self {
            text,
            names: Vec::with_capacity(24),
            error: None,
        }
    }
}

impl Line {
    fn field(&mut self, name: &'static str, value: impl serde::Serialize) {
        if self.error.is_some() || self.names.contains(&name) {
            return;
        }
        self.names.push(name);
        if self.names.len() > 1 {
            self.text.push(b',');
        }
        let written = serde_json::to_writer(&mut self.text, name).and_then(|()| {
            self.text.push(b':');
            serde_json::to_writer(&mut self.text, &value)
        });
        if let Err(error) = written {
            self.error = Some(error);
        }
    }

    fn finish(mut self) -> Result<Vec<u8>, serde_json::Error> {
        match self.error {
            Some(error) => Err(error),
            None => {
                self.text.extend_from_slice(b"}\n");
                Ok(self.text)
            }
        }
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field.name(), value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field.name(), value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field.name(), value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field.name(), value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field.name(), value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field.name(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field.name(), format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What the layer wrote while `log` ran.
    fn logged(log: impl FnOnce()) -> String {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber =
            tracing_subscriber::registry().with(layer().with_writer(move || sink.clone()));
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn every_line_inside_a_span_carries_the_span_fields() {
        let output = logged(|| {
            let payment =
                tracing::info_span!("payment", correlation_id = "corr-42", payment_id = 7_u64);
            let _payment = payment.enter();
            let step = tracing::info_span!("screening", provider = "aml");
            let _step = step.enter();
            tracing::info!(score = 3, "screened");
        });
        let line: Value = serde_json::from_str(output.trim()).unwrap();
        assert_eq!(line["correlation_id"], "corr-42");
        assert_eq!(line["payment_id"], 7);
        assert_eq!(line["provider"], "aml");
        assert_eq!(line["span"], "screening");
        assert_eq!(line["message"], "screened");
        assert_eq!(line["score"], 3);
        assert_eq!(line["level"], "INFO");
    }

    #[test]
    fn a_field_recorded_after_the_span_starts_is_on_the_lines_after_it() {
        let output = logged(|| {
            let span =
                tracing::info_span!("call", provider = "aml", outcome = tracing::field::Empty);
            let _entered = span.enter();
            tracing::info!("before");
            span.record("outcome", "TIMEOUT");
            span.record("outcome", "CLEAR");
            span.record("provider", "aml-2");
            tracing::info!("after");
        });
        let lines: Vec<Value> = output
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].get("outcome").is_none(), "not recorded yet");
        assert_eq!(lines[1]["outcome"], "CLEAR", "the last value recorded");
        assert_eq!(lines[1]["provider"], "aml-2");
    }

    #[test]
    fn a_name_shared_by_the_event_and_its_spans_is_written_once_with_the_nearest_value() {
        let output = logged(|| {
            let outer = tracing::info_span!("outer", stage = "outer", attempt = 1_u64);
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner", stage = "inner");
            let _inner = inner.enter();
            tracing::info!(attempt = 2_u64, "retried");
        });
        let text = output.trim();
        assert_eq!(text.matches("\"stage\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"attempt\"").count(), 1, "{text}");
        let line: Value = serde_json::from_str(text).unwrap();
        assert_eq!(line["stage"], "inner");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["span"], "inner");
    }

    #[test]
    fn lines_outside_spans_have_no_span_fields() {
        let output = logged(|| tracing::warn!("alone"));
        let line: Value = serde_json::from_str(output.trim()).unwrap();
        assert_eq!(line["message"], "alone");
        assert!(line.get("span").is_none());
        assert!(line.get("correlation_id").is_none());
    }
}
