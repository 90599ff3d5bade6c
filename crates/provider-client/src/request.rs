//! One request to a provider, built up then sent (and sent again by the
//! retries exactly as built: same body, same headers, same idempotency key).

use std::borrow::Cow;
use std::time::Instant;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::ProviderClient;
use crate::error::{CallError, Refused};

/// The header that lets a provider recognise a retried request as the same.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A request being built; nothing is sent until [`Request::send`].
/// Mistakes while building (a header value that is not one) are reported
/// by `send` as [`Refused::Malformed`], so building stays a chain.
#[derive(Debug, Clone)]
pub struct Request {
    client: ProviderClient,
    method: Method,
    url: Url,
    headers: HeaderMap,
    /// `Bytes`, so each try sends the same body without copying it.
    body: Option<(HeaderValue, Bytes)>,
    deadline: Option<Instant>,
    /// The call's client span, if the caller made it (see [`call_span!`](crate::call_span)).
    span: Option<tracing::Span>,
    malformed: Option<String>,
}

/// A provider's successful (2xx) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

impl Request {
    pub(crate) fn new(client: ProviderClient, method: Method, mut url: Url, path: &[&str]) -> Self {
        // The url crate drops `.` and `..` segments silently, which would
        // move the request elsewhere: refuse them instead.
        let mut malformed = path
            .iter()
            .find(|segment| matches!(**segment, "." | ".."))
            .map(|segment| format!("`{segment}` as a path segment"));
        match url.path_segments_mut() {
            Ok(mut segments) => {
                segments.pop_if_empty().extend(path);
            }
            // `ProviderClient::new` accepts only URLs that can have a path.
            Err(()) => malformed = Some("the base URL cannot have a path".to_owned()),
        }
        Self {
            client,
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            deadline: None,
            span: None,
            malformed,
        }
    }

    /// Appends `name=value` to the query, form-encoded.
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.url.query_pairs_mut().append_pair(name, value);
        self
    }

    /// Sets a header, the same on every try.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.insert(name, value);
            }
            _ => self.malform(format!("`{name}: {value}` is not a header")),
        }
        self
    }

    /// Sets `Idempotency-Key`: every try of this request carries the same.
    pub fn idempotency_key(self, key: &str) -> Self {
        self.header(IDEMPOTENCY_KEY, key)
    }

    /// A JSON body.
    pub fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Some((HeaderValue::from_static("application/json"), bytes.into()));
            }
            Err(error) => self.malform(format!("the JSON body: {error}")),
        }
        self
    }

    /// A body of any type, e.g. `("application/xml", document)`.
    pub fn body(mut self, content_type: &str, bytes: impl Into<Bytes>) -> Self {
        match HeaderValue::try_from(content_type) {
            Ok(content_type) => self.body = Some((content_type, bytes.into())),
            Err(_) => self.malform(format!("`{content_type}` is not a content type")),
        }
        self
    }

    /// When the caller stops waiting: past it the call ends
    /// [`Unavailable`](crate::Unavailable), and a wait known to end past it
    /// (a `Retry-After`, a back-off) is not begun.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sends the call in `span` rather than in a `provider.call` span of
    /// the client's own: a caller whose span stands for this one call (a
    /// screening, a submission) then has one span per call, not two. Make
    /// it with [`call_span!`](crate::call_span), so it has the fields the
    /// client records.
    pub fn in_span(mut self, span: tracing::Span) -> Self {
        self.span = Some(span);
        self
    }

    pub(crate) fn span(&self) -> Option<&tracing::Span> {
        self.span.as_ref()
    }

    /// The provider's name, as the client was built with.
    pub fn provider(&self) -> &'static str {
        self.client.name()
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Sends the request, retrying as the client's settings say; `&self`
    /// so a caller can send the same request again later.
    pub async fn send(&self) -> Result<Answer, CallError> {
        self.client.execute(self).await
    }

    /// Sends the request and reads the answer as JSON.
    pub async fn send_json<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        let answer = self.send().await?;
        serde_json::from_slice(&answer.body).map_err(|error| CallError::Refused {
            provider: self.client.name(),
            reason: Refused::Unreadable(error.to_string()),
        })
    }

    fn malform(&mut self, problem: String) {
        self.malformed.get_or_insert(problem);
    }

    pub(crate) fn malformed(&self) -> Option<&str> {
        self.malformed.as_deref()
    }

    pub(crate) fn deadline_at(&self) -> Option<Instant> {
        self.deadline
    }

    /// The headers every try sends, on either path: the request's own, the
    /// body's `Content-Type`, and the `traceparent` of the span the try is
    /// sent in (the call's), so the provider's spans, if it keeps any,
    /// continue the payment's trace. The `User-Agent` is the client's.
    fn wire_headers(&self) -> HeaderMap {
        let mut headers = self.headers.clone();
        if let Some((content_type, _)) = &self.body {
            headers.insert(CONTENT_TYPE, content_type.clone());
        }
        paystream_telemetry::inject_trace_headers(&mut headers);
        headers
    }

    /// The request's head and body as the direct HTTP/2 path sends them.
    pub(crate) fn to_h2(
        &self,
        user_agent: &HeaderValue,
    ) -> Result<(http::Request<()>, Bytes), String> {
        let uri: http::Uri = self
            .url
            .as_str()
            .parse()
            .map_err(|error| format!("`{}`: {error}", self.url))?;
        let mut request = http::Request::new(());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = http::Version::HTTP_2;
        let mut headers = self.wire_headers();
        // The client's, unless the request names its own (as reqwest does).
        headers
            .entry(USER_AGENT)
            .or_insert_with(|| user_agent.clone());
        *request.headers_mut() = headers;
        let body = self
            .body
            .as_ref()
            .map(|(_, bytes)| bytes.clone())
            .unwrap_or_default();
        Ok((request, body))
    }

    /// The request through reqwest (which adds the client's `User-Agent`).
    pub(crate) fn build(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        let builder = http
            .request(self.method.clone(), self.url.clone())
            .headers(self.wire_headers());
        match &self.body {
            Some((_, bytes)) => builder.body(bytes.clone()),
            None => builder,
        }
    }
}
