//! A client for one external provider: one pooled HTTP client, a cap on calls
//! in flight, a token bucket that keeps under the provider's documented rate,
//! `Retry-After` honoured for every caller at once, timeouts, retries with
//! jittered back-off for transient failures, and a circuit breaker that stops
//! calling a provider that keeps failing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use paystream_service_kit::TokenBucket;
use rand::Rng;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::metrics::METRICS;

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Calls in flight at most.
    pub concurrency: usize,
    /// Calls per second at most (the provider's documented rate).
    pub rate_per_second: u32,
    /// Timeout of one call.
    pub timeout: Duration,
    /// Tries per call for timeouts, connection errors and 5xx.
    pub attempts: u32,
    /// Consecutive failures that open the circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit refuses calls before one trial call.
    pub breaker_cool_down: Duration,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self {
            concurrency: 256,
            rate_per_second: 5_000,
            timeout: Duration::from_secs(2),
            attempts: 3,
            breaker_threshold: 20,
            breaker_cool_down: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// The provider cannot answer now (down, failing, circuit open); worth
    /// trying again later.
    #[error("{provider} unavailable: {reason}")]
    Unavailable {
        provider: &'static str,
        reason: String,
    },
    /// The provider refused the request itself (4xx other than 429) or
    /// answered something unreadable: retrying the same call cannot help.
    #[error("{provider} refused the call: {reason}")]
    Refused {
        provider: &'static str,
        reason: String,
    },
}

#[derive(Debug)]
enum Breaker {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial call is out; others are refused until it reports.
    HalfOpen,
}

#[derive(Debug)]
struct State {
    breaker: Breaker,
    bucket: TokenBucket,
    /// Set from a 429's Retry-After: nobody calls before then.
    paused_until: Option<Instant>,
}

#[derive(Debug, Clone)]
pub struct ProviderClient {
    name: &'static str,
    base_url: String,
    http: reqwest::Client,
    settings: ProviderSettings,
    in_flight: Arc<Semaphore>,
    state: Arc<Mutex<State>>,
}

enum Attempt<T> {
    Done(T),
    Throttled(Duration),
    Failed(String),
}

impl ProviderClient {
    pub fn new(name: &'static str, base_url: &str, settings: ProviderSettings) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(settings.concurrency)
            .timeout(settings.timeout)
            .build()
            .unwrap_or_default();
        Self {
            name,
            base_url: base_url.trim_end_matches('/').to_owned(),
            http,
            in_flight: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            state: Arc::new(Mutex::new(State {
                breaker: Breaker::Closed { failures: 0 },
                bucket: TokenBucket::new(f64::from(settings.rate_per_second.max(1))),
                paused_until: None,
            })),
            settings,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the rate limit and any Retry-After pause, then checks the
    /// breaker. Err if the circuit is open.
    async fn admit(&self) -> Result<(), CallError> {
        loop {
            let wait = {
                let mut state = self.state();
                let now = Instant::now();
                match state.paused_until {
                    Some(until) if until > now => Some(until - now),
                    _ => state.bucket.take(now).err(),
                }
            };
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => break,
            }
        }
        let mut state = self.state();
        match state.breaker {
            Breaker::Closed { .. } => Ok(()),
            Breaker::Open { until } if Instant::now() >= until => {
                state.breaker = Breaker::HalfOpen;
                Ok(())
            }
            Breaker::Open { .. } | Breaker::HalfOpen => {
                self.count("circuit_open");
                Err(CallError::Unavailable {
                    provider: self.name,
                    reason: "circuit open after repeated failures".into(),
                })
            }
        }
    }

    fn count(&self, outcome: &str) {
        METRICS
            .provider_calls
            .with_label_values(&[self.name, outcome])
            .inc();
    }

    fn record(&self, success: bool) {
        let mut state = self.state();
        state.breaker = match (&state.breaker, success) {
            (_, true) => Breaker::Closed { failures: 0 },
            (Breaker::Closed { failures }, false)
                if failures + 1 < self.settings.breaker_threshold =>
            {
                Breaker::Closed {
                    failures: failures + 1,
                }
            }
            (_, false) => {
                tracing::warn!(
                    provider = self.name,
                    cool_down_ms = self.settings.breaker_cool_down.as_millis() as u64,
                    "circuit opened"
                );
                Breaker::Open {
                    until: Instant::now() + self.settings.breaker_cool_down,
                }
            }
        };
    }

    fn pause(&self, wait: Duration) {
        let mut state = self.state();
        let until = Instant::now() + wait;
        if state.paused_until.is_none_or(|current| current < until) {
            state.paused_until = Some(until);
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Attempt<T>, CallError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| CallError::Unavailable {
                provider: self.name,
                reason: "client closed".into(),
            })?;
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Ok(Attempt::Failed(error.to_string())),
        };
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs);
            return Ok(Attempt::Throttled(wait));
        }
        if status.is_server_error() {
            return Ok(Attempt::Failed(format!("answered {status}")));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(CallError::Refused {
                provider: self.name,
                reason: format!("{status}: {body}"),
            });
        }
        match response.json::<T>().await {
            Ok(value) => Ok(Attempt::Done(value)),
            Err(error) => Err(CallError::Refused {
                provider: self.name,
                reason: format!("unreadable answer: {error}"),
            }),
        }
    }

    /// Calls the provider. Throttling (429) is waited out, however long it
    /// lasts, and never counts as a failure: a throttled provider slows the
    /// pipeline down but fails nothing. Transient failures are retried up to
    /// the configured attempts.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, CallError> {
        let url = format!("{}{path_and_query}", self.base_url);
        let mut failures = 0;
        loop {
            self.admit().await?;
            let mut request = self.http.request(method.clone(), &url);
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            match self.attempt(request).await {
                Ok(Attempt::Done(value)) => {
                    self.record(true);
                    self.count("ok");
                    METRICS
                        .provider_seconds
                        .with_label_values(&[self.name])
                        .observe(started.elapsed().as_secs_f64());
                    return Ok(value);
                }
                Ok(Attempt::Throttled(wait)) => {
                    self.count("throttled");
                    tracing::debug!(
                        provider = self.name,
                        wait_ms = wait.as_millis() as u64,
                        "throttled; waiting"
                    );
                    self.pause(wait);
                }
                Ok(Attempt::Failed(reason)) => {
                    self.record(false);
                    self.count("failed");
                    failures += 1;
                    if failures >= self.settings.attempts {
                        return Err(CallError::Unavailable {
                            provider: self.name,
                            reason,
                        });
                    }
                    let base = 50u64 << failures.min(6);
                    let jitter = rand::rng().random_range(0..=base);
                    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                }
                Err(refused) => {
                    // The provider answered: it is up.
                    self.record(true);
                    self.count("refused");
                    return Err(refused);
                }
            }
        }
    }
}
