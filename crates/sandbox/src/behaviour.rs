//! How a simulated provider misbehaves: latency, failures, hangs and a rate
//! limit, set per provider from one spec string so tests, benchmarks and demos
//! can make a provider slow, flaky or throttled without code.
//!
//! Spec grammar: comma-separated settings, any order, all optional.
//! - `latency=100ms` fixed, or `latency=lognormal:50ms:400ms` (median, p99)
//! - `errors=0.05` share of requests answered 503
//! - `timeouts=0.01` share of requests that hang (answered after `hang`)
//! - `hang=30s` how long a hanging request hangs (default 60s)
//! - `rate=100/s` token bucket; requests over it get 429 with `Retry-After`,
//!   and every answer carries the RateLimit headers ([`crate::rate_limit`])
//! - `burst=20` how many requests the bucket takes at once (default: one
//!   second of the rate)
//! - `throttle=120` every request is answered 429 with `Retry-After: 120`,
//!   any number of seconds however absurd (real providers can say anything);
//!   `throttle=date:120` says it as an HTTP-date 120 s ahead instead
//! - `down` every request is answered 503
//!
//! An empty spec (or `ok`) is a healthy, instant provider.
//!
//! Each provider also keeps the last requests it received ([`Control::received`]),
//! so a test can see what a client actually sent: path, query and headers;
//! and counts the requests it received and the 429s it answered
//! ([`Control::report`]), so a test can hold a client to a bound.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::rate_limit::{Limiter, RateLimit, whole_seconds_up};

#[derive(Debug, Clone, PartialEq)]
pub enum Latency {
    Fixed(Duration),
    /// Log-normal with the given median and 99th percentile.
    LogNormal {
        median: Duration,
        p99: Duration,
    },
}

impl Latency {
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> Duration {
        match self {
            Latency::Fixed(delay) => *delay,
            Latency::LogNormal { median, p99 } => {
                // z of the 99th percentile of the standard normal.
                const Z99: f64 = 2.326_347_874;
                let median = median.as_secs_f64();
                let sigma = (p99.as_secs_f64() / median).ln() / Z99;
                // Box-Muller: one standard normal draw from two uniforms.
                let u1: f64 = rng.random_range(f64::EPSILON..1.0);
                let u2: f64 = rng.random();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                Duration::from_secs_f64(
                    (median * (sigma * z).exp()).min(MAX_DURATION.as_secs_f64()),
                )
            }
        }
    }
}

/// What a throttling provider puts in `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: SECONDS`, sent as given.
    Seconds(u64),
    /// `Retry-After` as an HTTP-date this many seconds after the answer.
    Date(u32),
}

impl RetryAfter {
    fn header(self) -> HeaderValue {
        match self {
            RetryAfter::Seconds(seconds) => HeaderValue::from(seconds),
            RetryAfter::Date(ahead) => {
                let at = chrono::Utc::now() + chrono::TimeDelta::seconds(i64::from(ahead));
                let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                HeaderValue::from_str(&date).unwrap_or_else(|_| HeaderValue::from(ahead))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    pub latency: Latency,
    pub error_rate: f64,
    pub timeout_rate: f64,
    pub hang: Duration,
    /// Requests per second the provider accepts (and how many at once)
    /// before answering 429.
    pub rate_limit: Option<RateLimit>,
    /// Every request answered 429 with this `Retry-After`.
    pub throttle: Option<RetryAfter>,
    pub down: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            latency: Latency::Fixed(Duration::ZERO),
            error_rate: 0.0,
            timeout_rate: 0.0,
            hang: Duration::from_secs(60),
            rate_limit: None,
            throttle: None,
            down: false,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error(
        "unknown setting `{0}` (expected latency, errors, timeouts, hang, rate, burst, throttle or down)"
    )]
    UnknownSetting(String),
    #[error("`{setting}`: {reason}")]
    BadValue {
        setting: &'static str,
        reason: String,
    },
}

fn bad(setting: &'static str, reason: impl Into<String>) -> SpecError {
    SpecError::BadValue {
        setting,
        reason: reason.into(),
    }
}

/// The longest latency or hang a spec may ask for: longer is no test or demo
/// anyone waits through, and far longer does not fit a `Duration`.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("not a duration like 250ms or 1.5s")]
    Malformed,
    #[error("at most {}s", MAX_DURATION.as_secs())]
    TooLong,
}

/// Parses `250ms`, `2s`, `1.5s` or `0`, up to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let (number, unit) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        return Err(DurationError::Malformed);
    };
    let value: f64 = number.parse().map_err(|_| DurationError::Malformed)?;
    if !value.is_finite() || value < 0.0 {
        return Err(DurationError::Malformed);
    }
    // Compared as seconds before converting: a `Duration` of 1e30 s panics.
    if value * unit > MAX_DURATION.as_secs_f64() {
        return Err(DurationError::TooLong);
    }
    Ok(Duration::from_secs_f64(value * unit))
}

pub(crate) fn duration(setting: &'static str, text: &str) -> Result<Duration, SpecError> {
    parse_duration(text).map_err(|error| bad(setting, format!("`{text}`: {error}")))
}

pub(crate) fn parse_share(setting: &'static str, text: &str) -> Result<f64, SpecError> {
    let share: f64 = text
        .parse()
        .map_err(|_| bad(setting, format!("`{text}` is not a number")))?;
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err(bad(setting, "a share between 0 and 1"))
    }
}

fn parse_throttle(text: &str) -> Result<RetryAfter, SpecError> {
    let usage = || {
        bad(
            "throttle",
            "whole seconds, e.g. throttle=120 or throttle=date:120",
        )
    };
    match text.strip_prefix("date:") {
        Some(ahead) => Ok(RetryAfter::Date(ahead.parse().map_err(|_| usage())?)),
        None => Ok(RetryAfter::Seconds(text.parse().map_err(|_| usage())?)),
    }
}

/// A fixed delay or `lognormal:MEDIAN:P99`, for the setting named.
pub(crate) fn parse_latency(setting: &'static str, text: &str) -> Result<Latency, SpecError> {
    if let Some(rest) = text.strip_prefix("lognormal:") {
        let (median, p99) = rest
            .split_once(':')
            .ok_or_else(|| bad(setting, "lognormal:MEDIAN:P99, e.g. lognormal:50ms:400ms"))?;
        let median = duration(setting, median)?;
        let p99 = duration(setting, p99)?;
        if median.is_zero() || p99 < median {
            return Err(bad(setting, "needs 0 < median <= p99"));
        }
        return Ok(Latency::LogNormal { median, p99 });
    }
    duration(setting, text).map(Latency::Fixed)
}

/// `100ms` or `lognormal:50ms:400ms`, as a spec writes it.
impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Latency::Fixed(delay) => write!(f, "{}ms", delay.as_millis()),
            Latency::LogNormal { median, p99 } => write!(
                f,
                "lognormal:{}ms:{}ms",
                median.as_millis(),
                p99.as_millis()
            ),
        }
    }
}

impl FromStr for Behaviour {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut behaviour = Behaviour::default();
        let (mut rate, mut burst) = (None, None);
        for setting in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = setting.split_once('=').unwrap_or((setting, ""));
            match name.trim() {
                "ok" => {}
                "down" => behaviour.down = true,
                "latency" => behaviour.latency = parse_latency("latency", value)?,
                "errors" => behaviour.error_rate = parse_share("errors", value)?,
                "timeouts" => behaviour.timeout_rate = parse_share("timeouts", value)?,
                "hang" => behaviour.hang = duration("hang", value)?,
                "rate" => {
                    let per_second = value.strip_suffix("/s").unwrap_or(value);
                    let per_second: u32 = per_second
                        .parse()
                        .map_err(|_| bad("rate", "requests per second, e.g. 100/s"))?;
                    if per_second == 0 {
                        return Err(bad(
                            "rate",
                            "must be at least 1/s (use `down` to refuse all)",
                        ));
                    }
                    rate = Some(per_second);
                }
                "burst" => {
                    let at_once: u32 = value
                        .parse()
                        .map_err(|_| bad("burst", "requests at once, e.g. burst=20"))?;
                    if at_once == 0 {
                        return Err(bad("burst", "must be at least 1"));
                    }
                    burst = Some(at_once);
                }
                "throttle" => behaviour.throttle = Some(parse_throttle(value)?),
                other => return Err(SpecError::UnknownSetting(other.to_owned())),
            }
        }
        behaviour.rate_limit = match (rate, burst) {
            (Some(per_second), burst) => Some(RateLimit {
                per_second,
                // One second of the rate, as most providers document it.
                burst: burst.unwrap_or(per_second),
            }),
            (None, Some(_)) => return Err(bad("burst", "needs a rate, e.g. rate=50/s,burst=10")),
            (None, None) => None,
        };
        Ok(behaviour)
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.down {
            parts.push("down".to_owned());
        }
        match &self.latency {
            Latency::Fixed(delay) if delay.is_zero() => {}
            latency => parts.push(format!("latency={latency}")),
        }
        if self.error_rate > 0.0 {
            parts.push(format!("errors={}", self.error_rate));
        }
        if self.timeout_rate > 0.0 {
            parts.push(format!(
                "timeouts={},hang={}ms",
                self.timeout_rate,
                self.hang.as_millis()
            ));
        }
        if let Some(rate_limit) = self.rate_limit {
            parts.push(rate_limit.to_string());
        }
        match self.throttle {
            Some(RetryAfter::Seconds(seconds)) => parts.push(format!("throttle={seconds}")),
            Some(RetryAfter::Date(ahead)) => parts.push(format!("throttle=date:{ahead}")),
            None => {}
        }
        if parts.is_empty() {
            parts.push("ok".to_owned());
        }
        f.write_str(&parts.join(","))
    }
}

/// A provider's current behaviour, changeable at run time through the admin API.
#[derive(Debug, Clone)]
pub struct Control {
    inner: Arc<ControlInner>,
}

#[derive(Debug)]
struct ControlInner {
    provider: &'static str,
    behaviour: RwLock<Behaviour>,
    bucket: Mutex<Option<Limiter>>,
    received: Mutex<VecDeque<Received>>,
    /// Requests received, ever.
    requests: AtomicU64,
    /// 429s answered, ever: by the rate limit or by `throttle`.
    throttled: AtomicU64,
}

/// What a provider received and how many it throttled, since it started:
/// `GET /admin/providers/{provider}/report`, or [`Control::report`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderReport {
    /// Requests that reached the provider, whatever became of them.
    pub requests: u64,
    /// Of those, the ones answered 429 Too Many Requests.
    pub throttled: u64,
}

/// A request a provider received, as the client sent it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    /// Path and query as sent, the provider's prefix included.
    pub uri: Uri,
    pub headers: HeaderMap,
    /// HTTP/1.1 or HTTP/2 (cleartext, with prior knowledge).
    pub version: Version,
}

/// Requests kept per provider: enough for any test, bounded for a long demo.
const RECEIVED_KEPT: usize = 1024;

impl Control {
    pub fn new(provider: &'static str, behaviour: Behaviour) -> Self {
        let bucket = behaviour.rate_limit.map(Limiter::new);
        Self {
            inner: Arc::new(ControlInner {
                provider,
                behaviour: RwLock::new(behaviour),
                bucket: Mutex::new(bucket),
                received: Mutex::new(VecDeque::new()),
                requests: AtomicU64::new(0),
                throttled: AtomicU64::new(0),
            }),
        }
    }

    pub fn provider(&self) -> &'static str {
        self.inner.provider
    }

    pub fn current(&self) -> Behaviour {
        self.inner
            .behaviour
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, behaviour: Behaviour) {
        tracing::info!(provider = self.inner.provider, %behaviour, "behaviour changed");
        *self
            .inner
            .bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = behaviour.rate_limit.map(Limiter::new);
        *self
            .inner
            .behaviour
            .write()
            .unwrap_or_else(PoisonError::into_inner) = behaviour;
    }

    /// Requests received and 429s answered since the provider started.
    pub fn report(&self) -> ProviderReport {
        ProviderReport {
            requests: self.inner.requests.load(Ordering::Relaxed),
            throttled: self.inner.throttled.load(Ordering::Relaxed),
        }
    }

    /// The last requests this provider received, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.inner
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    fn receive(&self, request: &Request) {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let uri = request
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| request.uri().clone(), |original| original.0.clone());
        let mut received = self
            .inner
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if received.len() == RECEIVED_KEPT {
            received.pop_front();
        }
        received.push_back(Received {
            method: request.method().clone(),
            uri,
            headers: request.headers().clone(),
            version: request.version(),
        });
    }

    /// Takes a token if the provider is rate limited: whether the request
    /// may go on, how long until it may otherwise, and the RateLimit headers
    /// of its answer.
    fn take_token(&self) -> Option<(Result<(), Duration>, HeaderMap)> {
        let mut bucket = self
            .inner
            .bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let limiter = bucket.as_mut()?;
        let standing = limiter.take(Instant::now());
        let admitted = if standing.admitted {
            Ok(())
        } else {
            Err(standing.next_in)
        };
        Some((admitted, limiter.headers(&standing)))
    }

    fn throttled(&self, retry_after: RetryAfter) -> Response {
        self.inner.throttled.fetch_add(1, Ordering::Relaxed);
        throttled(retry_after)
    }
}

fn unavailable(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({ "error": reason })),
    )
        .into_response()
}

fn throttled(retry_after: RetryAfter) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(serde_json::json!({ "error": "rate limit exceeded" })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, retry_after.header());
    response
}

/// Middleware that applies a provider's behaviour before its handler runs.
pub async fn apply(State(control): State<Control>, request: Request, next: Next) -> Response {
    // Read before the request is logged: a test that sees it logged and then
    // changes the behaviour knows this request was served the old one.
    let behaviour = control.current();
    control.receive(&request);
    if behaviour.down {
        return unavailable("provider is down");
    }
    if let Some(retry_after) = behaviour.throttle {
        return control.throttled(retry_after);
    }
    let rate_limit_headers = match control.take_token() {
        Some((Err(wait), headers)) => {
            // Whole seconds, rounded up, so a client waiting that long finds a token.
            let seconds = whole_seconds_up(wait).max(1);
            let mut response = control.throttled(RetryAfter::Seconds(seconds));
            response.headers_mut().extend(headers);
            return response;
        }
        Some((Ok(()), headers)) => headers,
        None => HeaderMap::new(),
    };
    let mut response = served(&behaviour, request, next).await;
    // Every answer says how the limit stands, so a client keeps under it.
    response.headers_mut().extend(rate_limit_headers);
    response
}

/// The rest of a behaviour, past the rate limit: latency, failures, hangs.
async fn served(behaviour: &Behaviour, request: Request, next: Next) -> Response {
    let (delay, fails, hangs) = {
        let mut rng = rand::rng();
        (
            behaviour.latency.sample(&mut rng),
            rng.random_bool(behaviour.error_rate),
            rng.random_bool(behaviour.timeout_rate),
        )
    };
    if hangs {
        tokio::time::sleep(behaviour.hang).await;
        return unavailable("provider timed out");
    }
    tokio::time::sleep(delay).await;
    if fails {
        return unavailable("simulated provider failure");
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        let behaviour: Behaviour = "latency=lognormal:50ms:400ms, errors=0.05, rate=100/s"
            .parse()
            .unwrap_or_default();
        assert_eq!(
            behaviour.latency,
            Latency::LogNormal {
                median: Duration::from_millis(50),
                p99: Duration::from_millis(400)
            }
        );
        assert_eq!(behaviour.error_rate, 0.05);
        assert_eq!(
            behaviour.rate_limit,
            Some(RateLimit {
                per_second: 100,
                burst: 100
            })
        );
        assert_eq!(
            behaviour.to_string(),
            "latency=lognormal:50ms:400ms,errors=0.05,rate=100/s"
        );
        for spec in ["throttle=18446744073709551615", "throttle=date:86400"] {
            let behaviour: Behaviour = spec.parse().unwrap_or_default();
            assert_eq!(behaviour.to_string(), spec);
        }
        assert_eq!(Behaviour::from_str("").ok(), Some(Behaviour::default()));
        assert_eq!(Behaviour::default().to_string(), "ok");
    }

    #[test]
    fn a_burst_goes_with_a_rate_and_defaults_to_one_second_of_it() {
        let behaviour: Behaviour = "burst=10, rate=50/s".parse().unwrap_or_default();
        assert_eq!(
            behaviour.rate_limit,
            Some(RateLimit {
                per_second: 50,
                burst: 10
            })
        );
        assert_eq!(behaviour.to_string(), "rate=50/s,burst=10");
        let behaviour: Behaviour = "rate=50/s,burst=50".parse().unwrap_or_default();
        assert_eq!(
            behaviour.to_string(),
            "rate=50/s",
            "the default is not printed"
        );
        for spec in ["burst=10", "rate=5/s,burst=0", "rate=5/s,burst=many"] {
            assert!(
                matches!(
                    Behaviour::from_str(spec),
                    Err(SpecError::BadValue {
                        setting: "burst",
                        ..
                    })
                ),
                "{spec}"
            );
        }
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert_eq!(
            Behaviour::from_str("latncy=5ms"),
            Err(SpecError::UnknownSetting("latncy".into()))
        );
        assert!(matches!(
            Behaviour::from_str("errors=1.5"),
            Err(SpecError::BadValue {
                setting: "errors",
                ..
            })
        ));
        assert!(matches!(
            Behaviour::from_str("rate=0/s"),
            Err(SpecError::BadValue {
                setting: "rate",
                ..
            })
        ));
        assert_eq!(
            Behaviour::from_str("hang=3601s"),
            Err(SpecError::BadValue {
                setting: "hang",
                reason: "`3601s`: at most 3600s".into()
            })
        );
        assert!(matches!(
            Behaviour::from_str("throttle=-1"),
            Err(SpecError::BadValue {
                setting: "throttle",
                ..
            })
        ));
        assert!(matches!(
            Behaviour::from_str("latency=lognormal:400ms:50ms"),
            Err(SpecError::BadValue {
                setting: "latency",
                ..
            })
        ));
    }

    #[test]
    fn log_normal_latency_has_the_median_and_p99_asked_for() {
        let latency = Latency::LogNormal {
            median: Duration::from_millis(50),
            p99: Duration::from_millis(400),
        };
        let mut rng = rand::rng();
        let mut samples: Vec<Duration> = (0..20_000).map(|_| latency.sample(&mut rng)).collect();
        samples.sort();
        let median = samples[samples.len() / 2].as_secs_f64();
        let p99 = samples[samples.len() * 99 / 100].as_secs_f64();
        assert!((0.045..0.055).contains(&median), "median {median}");
        assert!((0.33..0.48).contains(&p99), "p99 {p99}");
    }
}
