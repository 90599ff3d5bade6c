//! Checks of many payments, coalesced into one provider call.
//!
//! Each payment's check is queued on the runtime's group-commit batcher
//! (`paystream_service_kit::batch`), which takes what queued and sends it
//! as one batch call as soon as a call slot is free. So a quiet service
//! sends each check on its own at once (no wait is added), and a busy one
//! sends many in one call while earlier calls are in flight, the way the
//! decisions share a commit. Each call costs its stream, its frames and its
//! span once, not once per check.
//!
//! The provider answers each query in its place; a query it cannot answer
//! gets its own error and the others their answers, so one bad input fails
//! its own payment only. A call that fails as a whole fails each of its
//! checks the same way, and each caller decides for itself whether to try
//! again within its own bound.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::Span;

use paystream_provider_client::{
    CallError, Method, ProviderClient, Refused, Unavailable, call_span,
};
use paystream_service_kit::batch::{self, Job};

/// How the provider wraps a batch: the queries and answers as bare JSON
/// arrays (ip-api's batch), or as `{"queries": […]}` answered by
/// `{"results": […]}` (a screening API's batch match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    Array,
    Queries,
}

/// Where and how a provider takes batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchApi {
    /// The path under the provider's base URL.
    pub path: &'static [&'static str],
    pub envelope: Envelope,
}

/// How much one call carries, how many are in flight at once, and how
/// long a call waits for checks to join it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Checks one call carries at most (1 sends every check on its own).
    pub size: usize,
    /// Calls in flight at once; while all are, checks queue for the next.
    pub calls: usize,
    /// How long a call waits after its first check for more to join it,
    /// unless it fills first. A burst of payments then shares a few calls,
    /// instead of taking every call slot with one or two checks each and
    /// leaving the rest of the burst to wait a whole provider call for a
    /// slot.
    pub linger: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchLimitsError {
    #[error("a batch must carry 1 to {max} checks, not {size}")]
    Size { size: usize, max: usize },
    #[error("at least one batch call must be allowed in flight")]
    Calls,
}

impl BatchLimits {
    /// The most the providers take in one batch.
    pub const MAX_SIZE: usize = 1_000;

    pub fn new(size: usize, calls: usize, linger: Duration) -> Result<Self, BatchLimitsError> {
        if !(1..=Self::MAX_SIZE).contains(&size) {
            return Err(BatchLimitsError::Size {
                size,
                max: Self::MAX_SIZE,
            });
        }
        if calls == 0 {
            return Err(BatchLimitsError::Calls);
        }
        Ok(Self {
            size,
            calls,
            linger,
        })
    }
}

/// A provider answer's JSON text, as the provider sent it.
pub type RawAnswer = String;

struct Queued {
    /// The query's JSON text.
    query: String,
    /// The payment's span for this check: the call's parent if the check
    /// leads its batch, linked from the call otherwise.
    span: Span,
    deadline: Option<Instant>,
}

/// One provider's queue of checks. Cloning shares the queue; the task
/// sending the batches ends when the last clone is dropped.
#[derive(Clone)]
pub struct Batcher {
    provider: &'static str,
    queue: batch::Batcher<Queued, Result<RawAnswer, CallError>>,
}

impl Batcher {
    /// Starts the task that sends `client`'s batches to `api`.
    pub fn start(client: ProviderClient, api: BatchApi, limits: BatchLimits) -> Self {
        let provider = client.name();
        // The series is looked up once: a lookup per call takes the metric's
        // lock and hashes its label.
        let caller = std::sync::Arc::new(Caller {
            client,
            api,
            checks_per_call: crate::metrics::METRICS
                .call_checks
                .with_label_values(&[provider]),
        });
        let queue = batch::Batcher::spawn_lingering(
            provider,
            limits.size,
            limits.calls,
            limits.linger,
            move |jobs| {
                let caller = caller.clone();
                async move { caller.send(jobs).await }
            },
        );
        Self { provider, queue }
    }

    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Sends `query` (JSON text) in the next batch and waits for its
    /// answer's JSON text, at most until `deadline`.
    pub async fn check(
        &self,
        query: String,
        span: Span,
        deadline: Option<Instant>,
    ) -> Result<RawAnswer, CallError> {
        let unavailable = |reason| CallError::Unavailable {
            provider: self.provider,
            reason,
        };
        let answer = async {
            self.queue
                .submit(Queued {
                    query,
                    span,
                    deadline,
                })
                .await
                .map_err(|stopped| unavailable(Unavailable::Connection(stopped.to_string())))?
        };
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), answer)
                .await
                .unwrap_or_else(|_| Err(unavailable(Unavailable::Deadline))),
            None => answer.await,
        }
    }
}

/// Sends one batch and hands each check its own answer or error. A batch
/// the provider refuses as a whole is sent again one check a call, so that
/// a query it cannot take fails its own payment only, as the decision
/// writer writes a failed batch one payment at a time.
/// What sends one provider's batches.
struct Caller {
    client: ProviderClient,
    api: BatchApi,
    checks_per_call: prometheus::Histogram,
}

impl Caller {
    async fn send(&self, jobs: Vec<Job<Queued, Result<RawAnswer, CallError>>>) {
        let (batch, replies): (Vec<Queued>, Vec<_>) = jobs.into_iter().map(Job::into_parts).unzip();
        match self.call(&batch).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    reply.send(Ok(answer));
                }
            }
            Err(error @ CallError::Refused { .. }) if batch.len() > 1 => {
                tracing::warn!(%error, checks = batch.len(), "a batch call was refused; sending its checks one by one");
                let alone = batch.chunks(1).map(|one| self.call(one));
                for (reply, answer) in replies
                    .into_iter()
                    .zip(futures::future::join_all(alone).await)
                {
                    // `split` answers a call of one with one answer or an error.
                    let answer = answer.and_then(|mut one| {
                        one.pop().ok_or(CallError::Refused {
                            provider: self.client.name(),
                            reason: Refused::Unreadable("no answer to a call of one".to_owned()),
                        })
                    });
                    reply.send(answer);
                }
            }
            Err(error) => {
                for reply in replies {
                    reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// One call carrying `batch`: each query's answer (JSON text), in order.
    async fn call(&self, batch: &[Queued]) -> Result<Vec<RawAnswer>, CallError> {
        let (client, api) = (&self.client, self.api);
        let Some(lead) = batch.first() else {
            return Ok(Vec::new());
        };
        let mut body = Vec::with_capacity(
            batch
                .iter()
                .map(|queued| queued.query.len() + 1)
                .sum::<usize>()
                + 16,
        );
        body.extend_from_slice(match api.envelope {
            Envelope::Array => b"[",
            Envelope::Queries => b"{\"queries\":[",
        });
        for (n, queued) in batch.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            body.extend_from_slice(queued.query.as_bytes());
        }
        body.extend_from_slice(match api.envelope {
            Envelope::Array => b"]",
            Envelope::Queries => b"]}",
        });
        let mut request = client
            .request(Method::POST, api.path)
            .body("application/json", body);
        // The earliest deadline bounds the call: no wait inside the client (a
        // Retry-After, a back-off) outlasts any of its checks' bounds.
        if let Some(deadline) = batch.iter().filter_map(|queued| queued.deadline).min() {
            request = request.deadline(deadline);
        }
        self.checks_per_call.observe(batch.len() as f64);
        let span = lead
            .span
            .in_scope(|| call_span!("provider.batch", request, batch.size = batch.len()));
        paystream_telemetry::link_spans(&span, batch[1..].iter().map(|queued| &queued.span));
        let answer = request.in_span(span).send().await?;
        split(client.name(), api.envelope, &answer.body, batch.len())
    }
}

#[derive(Deserialize)]
struct Results<'a> {
    #[serde(borrow)]
    results: Vec<&'a RawValue>,
}

/// Splits a batch's answer into each query's answer (JSON text).
fn split(
    provider: &'static str,
    envelope: Envelope,
    body: &[u8],
    expected: usize,
) -> Result<Vec<RawAnswer>, CallError> {
    let unreadable = |reason: String| CallError::Refused {
        provider,
        reason: Refused::Unreadable(reason),
    };
    let items: Vec<&RawValue> = match envelope {
        Envelope::Array => serde_json::from_slice(body),
        Envelope::Queries => serde_json::from_slice::<Results<'_>>(body).map(|r| r.results),
    }
    .map_err(|error| unreadable(format!("unexpected batch answer: {error}")))?;
    if items.len() != expected {
        return Err(unreadable(format!(
            "{} answers to a batch of {expected}",
            items.len()
        )));
    }
    Ok(items
        .into_iter()
        .map(|item| item.get().to_owned())
        .collect())
}

/// A query the provider could not answer: its own error in its place.
#[derive(Deserialize)]
struct QueryRefused {
    error: String,
}

/// Reads one query's answer as `T`; an answer that is not one but the
/// provider's refusal of this query (`{"error": …}`) is that refusal.
pub fn read_answer<T: serde::de::DeserializeOwned>(
    provider: &'static str,
    raw: &str,
) -> Result<T, CallError> {
    serde_json::from_str(raw).map_err(|error| {
        let reason = match serde_json::from_str::<QueryRefused>(raw) {
            Ok(refused) => Refused::Query(refused.error),
            Err(_) => Refused::Unreadable(format!("unexpected answer: {error}")),
        };
        CallError::Refused { provider, reason }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_sandbox::Sandbox;
    use paystream_sandbox::{AML, Config};

    #[tokio::test]
    async fn a_batch_refused_as_a_whole_is_sent_again_one_check_a_call() {
        let sandbox = Sandbox::start(Config::local()).await;
        let client = ProviderClient::new(AML, &sandbox.base(AML), Default::default()).unwrap();
        let limits = BatchLimits::new(10, 1, Duration::ZERO).unwrap();
        let batcher = Batcher::start(client, crate::screening::AML_BATCH, limits);
        // A name that is a number: the provider refuses any body holding
        // it, so the first call, carrying both, is refused whole. A
        // current-thread runtime: both are queued before the sender runs.
        let (bad, good) = futures::join!(
            batcher.check(r#"{"name":5}"#.to_owned(), Span::none(), None),
            batcher.check(
                r#"{"name":"Anna Lena Schmidt"}"#.to_owned(),
                Span::none(),
                None
            ),
        );
        assert!(
            matches!(
                bad,
                Err(CallError::Refused {
                    reason: Refused::Status { .. },
                    ..
                })
            ),
            "{bad:?}"
        );
        let good: crate::screening::AmlAnswer = read_answer(AML, &good.unwrap()).unwrap();
        assert_eq!(good.risk_level, crate::screening::RiskLevel::Low);
        // The batch, then each check alone.
        assert_eq!(sandbox.requests(AML).await, 3);
    }
}
