//! One call, [`init`], sets up tracing for a Paystream binary:
//!
//! - logs as one JSON object per line, with the fields of every enclosing span
//!   lifted to the top level, so a line logged anywhere inside a payment's span
//!   carries its `correlation_id` without the code repeating it;
//! - OpenTelemetry spans with W3C trace-context propagation, always on so that
//!   `traceparent` headers can be produced and continued, and exported over OTLP
//!   when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! Logs follow `PAYSTREAM_LOG` (then `RUST_LOG`), default `info`; spans
//! exported follow `PAYSTREAM_TRACE`, default `info`, apart from the logs, so
//! a quiet log (`warn`) still exports a payment's whole trace. A trace's spans
//! carry the warnings and errors logged inside them as span events; the info
//! lines stay in the logs only.
//! `PAYSTREAM_LOG_FORMAT=pretty` switches to human-readable lines for local work.

mod json;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::filter::{FilterExt as _, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use json::{FlatJsonLayer, layer as json_layer};

/// For a binary's `--help`: the logging and tracing settings [`init`] reads.
pub const ENV_HELP: &str = "Logging and tracing:
  PAYSTREAM_LOG                 log filter, e.g. info or paystream=debug (else RUST_LOG; default info)
  PAYSTREAM_LOG_FORMAT          json (default) or pretty
  PAYSTREAM_TRACE               filter of the spans exported (default info), apart from the logs'
                                (spans carry the warnings and errors logged in them as events)
  OTEL_EXPORTER_OTLP_ENDPOINT   export traces over OTLP to this endpoint (unset: no export)
  OTEL_EXPORTER_OTLP_PROTOCOL   http/protobuf (default, to :4318) or grpc (to :4317)";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInitialised,
}

/// Keeps the tracer provider alive; dropping it flushes spans still buffered
/// for export.
#[must_use = "dropping the guard shuts telemetry down"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("telemetry shutdown: {error}");
        }
    }
}

pub fn init(service_name: &'static str) -> Result<TelemetryGuard, TelemetryError> {
    let provider = tracer_provider(service_name)?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    let spans =
        EnvFilter::try_from_env("PAYSTREAM_TRACE").unwrap_or_else(|_| EnvFilter::new("info"));
    // A closure filter gives no level hint of its own, and a combination with
    // one has none either, which left the process's maximum level at TRACE:
    // every `log` record passed the first check, and sqlx formatted each
    // statement's summary for a debug event nobody takes (0.6% of
    // validation's CPU). The closure passes nothing the span filter refuses.
    let spans_hint = spans.max_level_hint().unwrap_or(LevelFilter::TRACE);
    // Per span, the layer would otherwise time every poll's enter and exit
    // (busy/idle) and add the thread, module and source location as
    // attributes: measured as a few percent of a service's CPU at thousands
    // of spans a second, for attributes no trace view needs to follow a
    // payment. Nor does it make each span's OpenTelemetry context current on
    // every poll (a context clone and a thread-local push per enter, 4% of
    // validation's CPU in a profile): this code reads a span's context from
    // the span itself (`OpenTelemetrySpanExt::context`), never from
    // `opentelemetry::Context::current()`.
    //
    // Info events become log lines only, not span events as well: a payment's
    // info lines are in the logs under its correlation id already, and
    // copying each into its span's event list was 1.4% of validation's CPU
    // (its "payment decided" line). A warning or error inside a span is
    // still an event on that span, where a trace view shows it.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service_name))
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_filter(
            spans.and(
                filter_fn(|metadata| metadata.is_span() || *metadata.level() <= Level::WARN)
                    .with_max_level_hint(spans_hint),
            ),
        );

    let filter = EnvFilter::try_from_env("PAYSTREAM_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let pretty = std::env::var("PAYSTREAM_LOG_FORMAT").is_ok_and(|format| format == "pretty");
    let logs: Box<dyn Layer<Registry> + Send + Sync> = if pretty {
        tracing_subscriber::fmt::layer().boxed()
    } else {
        json::layer().boxed()
    };
    Registry::default()
        .with(logs.with_filter(filter))
        .with(otel)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInitialised)?;
    Ok(TelemetryGuard { provider })
}

/// Adds the W3C trace-context headers (`traceparent`, and `tracestate` when
/// there is one) of the current span to an outgoing HTTP request's
/// `headers`, so that the server's spans continue the caller's trace.
/// Outside any span it adds nothing.
pub fn inject_trace_headers(headers: &mut http::HeaderMap) {
    use http::{HeaderName, HeaderValue};
    use opentelemetry::propagation::{Injector, TextMapPropagator as _};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    struct Headers<'a>(&'a mut http::HeaderMap);
    impl Injector for Headers<'_> {
        fn set(&mut self, key: &str, value: String) {
            // The propagator writes its own two names and values it has
            // validated (hex, printable ASCII): both always fit a header.
            match (
                HeaderName::from_bytes(key.as_bytes()),
                HeaderValue::try_from(value),
            ) {
                (Ok(name), Ok(value)) => {
                    self.0.insert(name, value);
                }
                _ => tracing::warn!(
                    key,
                    "a trace-context header that HTTP cannot carry; not sent"
                ),
            }
        }
    }

    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut Headers(headers));
}

/// Links `span` to each of `others`: for work done once on behalf of many
/// (one call carrying many payments' checks), so each payment's trace can be
/// followed into the shared span though it is the child of one of them
/// only. Spans not recorded for export are skipped.
pub fn link_spans<'a>(span: &tracing::Span, others: impl IntoIterator<Item = &'a tracing::Span>) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    if span.is_disabled() {
        return;
    }
    for other in others {
        let context = other.context();
        let linked = context.span().span_context().clone();
        if linked.is_valid() {
            span.add_link(linked);
        }
    }
}

fn tracer_provider(service_name: &'static str) -> Result<SdkTracerProvider, TelemetryError> {
    let builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service_name).build());
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        return Ok(builder.build());
    }
    // The exporter reads the endpoint, headers and timeout from the standard
    // OTEL_EXPORTER_OTLP_* variables; only the transport is chosen here,
    // http/protobuf unless told otherwise, as the OTLP specification's
    // default. The batch processor exports from a thread of its own, which
    // is why the HTTP client is reqwest's blocking one.
    let grpc =
        std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").is_ok_and(|protocol| protocol == "grpc");
    let http = !grpc;
    let exporter = if http {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?
    } else {
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?
    };
    Ok(builder.with_batch_exporter(exporter).build())
}
