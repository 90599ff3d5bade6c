//! The client: admission (breaker, the provider's pause, our rate), one
//! try, what its answer says of the provider's rate limit, and the retry
//! loop around them.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode, Url, header};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::breaker::{Breaker, Pass};
use crate::bucket::Bucket;
use crate::direct::{self, Received};
use crate::error::{BuildError, CallError, Refused, Unavailable};
use crate::metrics::{HeldBack, METRICS, Outcome, Series};
use crate::rate_limit_headers::{self, Advice};
use crate::request::{Answer, Request};
use crate::retry_after;
use crate::settings::{Protocol, ProviderSettings};

/// Past this no `max_retry_after` goes: a pause is an `Instant` ahead, and
/// a day is a day even for the most patient caller.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A 429 with neither a `Retry-After` nor a rate-limit reset that can be read.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a refusal keeps of the provider's answer: enough to say why.
const BODY_KEPT: usize = 512;

/// A client for one provider; clones share everything (connections, limits,
/// breaker, pause).
#[derive(Debug, Clone)]
pub struct ProviderClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: &'static str,
    base: Url,
    transport: Transport,
    settings: ProviderSettings,
    /// The configured rate and burst: what the provider announces can lower
    /// the bucket's, never raise them past these.
    rate: f64,
    burst: f64,
    in_flight: Semaphore,
    breaker: Breaker,
    metrics: Series,
    gate: Mutex<Gate>,
}

/// How tries reach the provider.
#[derive(Debug)]
enum Transport {
    /// reqwest's pooled client: HTTP/1.1, or HTTP/2 where asked for or
    /// negotiated over TLS.
    Pooled(reqwest::Client),
    /// HTTP/2 straight over the h2 crate, for a cleartext provider asked for
    /// HTTP/2 only.
    Direct {
        connection: direct::Connection,
        user_agent: HeaderValue,
    },
}

/// What every caller waits for before a try.
#[derive(Debug)]
struct Gate {
    bucket: Bucket,
    /// From a 429's `Retry-After`, or an answer saying nothing is left
    /// until the provider's quota resets: nobody calls before then.
    paused_until: Option<Instant>,
}

enum Wait {
    Paused(Duration),
    Rate(Duration),
}

enum Attempt {
    Done(Answer),
    Throttled(Duration),
    Failed(Unavailable),
    Refused(Refused),
}

impl ProviderClient {
    /// A client for the provider `name` (the label of its metrics and logs)
    /// at `base_url`, to which request paths are appended.
    pub fn new(
        name: &'static str,
        base_url: &str,
        settings: ProviderSettings,
    ) -> Result<Self, BuildError> {
        let bad_url = |reason: String| BuildError::BaseUrl {
            provider: name,
            url: base_url.to_owned(),
            reason,
        };
        let base = Url::parse(base_url).map_err(|error| bad_url(error.to_string()))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(bad_url("not an http or https URL".into()));
        }
        if settings.burst == Some(0) {
            return Err(BuildError::Burst { provider: name });
        }
        if settings.max_retry_after > MAX_RETRY_AFTER {
            return Err(BuildError::MaxRetryAfter {
                provider: name,
                max: settings.max_retry_after,
            });
        }
        let user_agent = HeaderValue::try_from(settings.user_agent.as_str()).map_err(|_| {
            BuildError::UserAgent {
                provider: name,
                user_agent: settings.user_agent.clone(),
            }
        })?;
        let direct = match settings.protocol {
            Protocol::Http2 => direct::Connection::new(&base, settings.timeout),
            Protocol::Auto => None,
        };
        let transport = match direct {
            Some(connection) => Transport::Direct {
                connection,
                user_agent,
            },
            None => Transport::Pooled(pooled(name, &settings, user_agent)?),
        };
        let rate = settings.rate_per_second.max(1);
        let (rate, burst) = (f64::from(rate), f64::from(settings.burst.unwrap_or(rate)));
        METRICS.rate.with_label_values(&[name]).set(rate);
        Ok(Self {
            inner: Arc::new(Inner {
                name,
                base,
                transport,
                in_flight: Semaphore::new(settings.concurrency.max(1)),
                metrics: Series::of(name),
                breaker: Breaker::new(name, settings.breaker_threshold, settings.breaker_cool_down),
                gate: Mutex::new(Gate {
                    bucket: Bucket::new(rate, burst, Instant::now()),
                    paused_until: None,
                }),
                rate,
                burst,
                settings,
            }),
        })
    }

    pub fn name(&self) -> &'static str {
        self.inner.name
    }

    pub fn settings(&self) -> &ProviderSettings {
        &self.inner.settings
    }

    /// A request to the base URL's path followed by `path`, one
    /// percent-encoded segment each: a value in a segment cannot change the
    /// path (`["v1", ""]` is `/v1/`).
    pub fn request(&self, method: Method, path: &[&str]) -> Request {
        Request::new(self.clone(), method, self.inner.base.clone(), path)
    }

    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.inner
            .gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn unavailable(&self, reason: Unavailable) -> CallError {
        CallError::Unavailable {
            provider: self.inner.name,
            reason,
        }
    }

    fn refused(&self, reason: Refused) -> CallError {
        CallError::Refused {
            provider: self.inner.name,
            reason,
        }
    }

    /// Sends `request`, retrying as the settings say, until its deadline if
    /// it has one. Throttling never counts as a failure: without a deadline
    /// it is waited out, however long it lasts. One client span covers the
    /// call, its tries and waits (the caller's, if it gave one with
    /// [`Request::in_span`]); each try carries its `traceparent`.
    pub(crate) async fn execute(&self, request: &Request) -> Result<Answer, CallError> {
        let span = match request.span() {
            Some(span) => span.clone(),
            None => crate::call_span!("provider.call", request),
        };
        let result = self.execute_in_span(request).instrument(span.clone()).await;
        match &result {
            Ok(_) => span.record("provider.outcome", "answered"),
            Err(CallError::Refused { .. }) => span.record("provider.outcome", "refused"),
            Err(CallError::Unavailable { .. }) => span
                .record("provider.outcome", "unavailable")
                .record("otel.status_code", "ERROR"),
        };
        result
    }

    async fn execute_in_span(&self, request: &Request) -> Result<Answer, CallError> {
        if let Some(problem) = request.malformed() {
            self.inner.metrics.count(Outcome::Refused);
            return Err(self.refused(Refused::Malformed(problem.to_owned())));
        }
        let Some(deadline) = request.deadline_at() else {
            return self.tries(request, None).await;
        };
        // The tries give up early when a wait they know of goes past the
        // deadline; this catches the rest (a slow try, a full semaphore).
        // Cutting a try short drops its breaker pass unrecorded: our deadline
        // says nothing about the provider.
        let tries = self.tries(request, Some(deadline));
        match tokio::time::timeout_at(deadline.into(), tries).await {
            Ok(result) => result,
            Err(_) => {
                self.inner.metrics.count(Outcome::Deadline);
                Err(self.unavailable(Unavailable::Deadline))
            }
        }
    }

    async fn tries(
        &self,
        request: &Request,
        deadline: Option<Instant>,
    ) -> Result<Answer, CallError> {
        let name = self.inner.name;
        let settings = &self.inner.settings;
        let mut failures = 0;
        loop {
            let pass = self.admit(deadline).await?;
            let started = Instant::now();
            match self.attempt(request).await {
                Attempt::Done(answer) => {
                    pass.succeeded();
                    self.inner.metrics.count(Outcome::Ok);
                    self.inner.metrics.answered_in(started.elapsed());
                    return Ok(answer);
                }
                Attempt::Throttled(asked) => {
                    // It answered: it is up, and the trial of a half-open
                    // circuit reports so.
                    pass.succeeded();
                    self.inner.metrics.count(Outcome::Throttled);
                    let wait = asked.min(settings.max_retry_after);
                    tracing::debug!(
                        provider = name,
                        asked_ms = millis(asked),
                        wait_ms = millis(wait),
                        "throttled; pausing"
                    );
                    let until = Instant::now() + wait;
                    self.pause(until);
                    if deadline.is_some_and(|deadline| until > deadline) {
                        return Err(self.unavailable(Unavailable::Throttled { wait }));
                    }
                }
                Attempt::Failed(reason) => {
                    pass.failed();
                    self.inner.metrics.count(Outcome::Failed);
                    failures += 1;
                    if failures >= settings.attempts {
                        return Err(self.unavailable(reason));
                    }
                    let backoff = backoff(failures);
                    if deadline.is_some_and(|deadline| Instant::now() + backoff > deadline) {
                        return Err(self.unavailable(reason));
                    }
                    tokio::time::sleep(backoff).await;
                }
                Attempt::Refused(reason) => {
                    pass.succeeded();
                    self.inner.metrics.count(Outcome::Refused);
                    return Err(self.refused(reason));
                }
            }
        }
    }

    /// A breaker pass once any pause the provider asked for is over and
    /// the rate allows a try; refused at once if a wait would end past
    /// `deadline`. A try held back is counted once per reason.
    async fn admit(&self, deadline: Option<Instant>) -> Result<Pass<'_>, CallError> {
        let Some(pass) = self.inner.breaker.admit() else {
            self.inner.metrics.count(Outcome::CircuitOpen);
            return Err(self.unavailable(Unavailable::CircuitOpen));
        };
        let (mut paused, mut rated) = (false, false);
        loop {
            let now = Instant::now();
            let wait = {
                let mut gate = self.gate();
                match gate.paused_until {
                    Some(until) if until > now => Some(Wait::Paused(until - now)),
                    _ => gate.bucket.take(now).err().map(Wait::Rate),
                }
            };
            let (wait, reason) = match wait {
                None => return Ok(pass),
                Some(Wait::Paused(wait)) => {
                    if !std::mem::replace(&mut paused, true) {
                        self.inner.metrics.held_back(HeldBack::Pause);
                    }
                    (wait, Unavailable::Throttled { wait })
                }
                Some(Wait::Rate(wait)) => {
                    if !std::mem::replace(&mut rated, true) {
                        self.inner.metrics.held_back(HeldBack::Rate);
                    }
                    (wait, Unavailable::Deadline)
                }
            };
            if deadline.is_some_and(|deadline| now + wait > deadline) {
                self.inner.metrics.count(Outcome::Deadline);
                return Err(self.unavailable(reason));
            }
            tokio::time::sleep(wait).await;
        }
    }

    fn pause(&self, until: Instant) {
        self.gate().pause(until);
    }

    /// Keeps under what an answer says of the provider's rate limit, before
    /// the provider has to say 429: its announced rate and quota lower ours
    /// (never past the configured ones); we hold no more tokens than it says
    /// it has left; and when it has none left, nobody calls until its quota
    /// resets (cut to `max_retry_after`, like a `Retry-After`).
    fn heed(&self, advice: &Advice) {
        let name = self.inner.name;
        let now = Instant::now();
        let mut gate = self.gate();
        let lowered = advice.policy.and_then(|policy| {
            let rate = policy.per_second.min(self.inner.rate);
            let burst = (policy.quota as f64).min(self.inner.burst);
            gate.bucket
                .set_limits(rate, burst, now)
                .then(|| (gate.bucket.rate(), gate.bucket.burst()))
        });
        if let Some(remaining) = advice.remaining {
            gate.bucket.at_most(remaining as f64, now);
            if remaining == 0
                && let Some(reset) = advice.reset
            {
                gate.pause(now + reset.min(self.inner.settings.max_retry_after));
            }
        }
        drop(gate);
        if let Some((rate, burst)) = lowered {
            METRICS.rate.with_label_values(&[name]).set(rate);
            tracing::info!(
                provider = name,
                rate,
                burst,
                "keeping to the provider's announced rate limit"
            );
        }
    }

    async fn attempt(&self, request: &Request) -> Attempt {
        // The semaphore is never closed; were it, no call could go out.
        let Ok(_permit) = self.inner.in_flight.acquire().await else {
            return Attempt::Failed(Unavailable::Connection("client closed".into()));
        };
        let Received {
            status,
            headers,
            body,
        } = match self.exchange(request).await {
            Ok(received) => received,
            Err(Exchange::Malformed(problem)) => {
                return Attempt::Refused(Refused::Malformed(problem));
            }
            Err(Exchange::Unavailable(reason)) => return Attempt::Failed(reason),
        };
        tracing::Span::current().record("http.response.status_code", status.as_u16());
        // Any answer may say what is left of the provider's limit, a 429 too.
        let now = chrono::Utc::now();
        let advice = rate_limit_headers::read(&headers, now);
        self.heed(&advice);
        if status == StatusCode::TOO_MANY_REQUESTS {
            let asked = headers
                .get(header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| retry_after::parse(value, now))
                .or(advice.reset)
                .unwrap_or(DEFAULT_RETRY_AFTER);
            return Attempt::Throttled(asked);
        }
        if status.is_server_error() {
            return Attempt::Failed(Unavailable::Status(status));
        }
        if !status.is_success() {
            let body = truncate(String::from_utf8_lossy(&body).into_owned());
            return Attempt::Refused(Refused::Status { status, body });
        }
        Attempt::Done(Answer {
            status,
            headers,
            // Copies only when the buffer is shared.
            body: Vec::from(body),
        })
    }

    /// One try on the wire: the request out, the whole answer back.
    async fn exchange(&self, request: &Request) -> Result<Received, Exchange> {
        let http = match &self.inner.transport {
            Transport::Direct {
                connection,
                user_agent,
            } => {
                let (head, body) = request.to_h2(user_agent).map_err(Exchange::Malformed)?;
                return connection
                    .send(head, body)
                    .await
                    .map_err(Exchange::Unavailable);
            }
            Transport::Pooled(http) => http,
        };
        let failed = |error: reqwest::Error| Exchange::Unavailable(transport(&error));
        let mut response = request.build(http).send().await.map_err(failed)?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let body = response.bytes().await.map_err(failed)?;
        Ok(Received {
            status,
            headers,
            body,
        })
    }
}

/// Why a try got no answer.
enum Exchange {
    /// The request cannot be sent as built.
    Malformed(String),
    Unavailable(Unavailable),
}

impl Gate {
    /// Nobody calls before `until`; a later pause already set stands.
    fn pause(&mut self, until: Instant) {
        if self.paused_until.is_none_or(|current| current < until) {
            self.paused_until = Some(until);
        }
    }
}

/// Before try `failures + 1`: 100 ms, 200 ms, … up to 3.2 s, each plus up to
/// as much again at random, so callers that failed together do not retry
/// together.
fn backoff(failures: u32) -> Duration {
    let base = 50u64 << failures.min(6);
    let jitter = rand::rng().random_range(0..=base);
    Duration::from_millis(base + jitter)
}

/// For logs: a provider may ask for more milliseconds than a u64 holds.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn transport(error: &reqwest::Error) -> Unavailable {
    if error.is_timeout() {
        return Unavailable::Timeout;
    }
    // reqwest's message is "error sending request"; the cause is below it.
    Unavailable::connection(error)
}

fn truncate(mut body: String) -> String {
    if body.len() > BODY_KEPT {
        let mut end = BODY_KEPT;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
        body.push('…');
    }
    body
}

/// reqwest's pooled client for `settings`.
fn pooled(
    name: &'static str,
    settings: &ProviderSettings,
    user_agent: HeaderValue,
) -> Result<reqwest::Client, BuildError> {
    // Redirects are answers, not followed: a provider API has no reason to
    // send a call elsewhere, and following one would carry its credentials
    // and idempotency key to wherever it points. A 3xx is refused with its
    // status (and skipping the redirect layer is a little less work on
    // every call).
    let mut http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(settings.concurrency)
        .timeout(settings.timeout)
        .user_agent(user_agent);
    if settings.protocol == Protocol::Http2 {
        http = http.http2_prior_knowledge();
    }
    http.build().map_err(|source| BuildError::Http {
        provider: name,
        source,
    })
}
