//! The sender: sends recorded submissions to the rail and resolves the
//! ones whose outcome is not known, on a task beside the consumer.
//!
//! It claims due submissions with a lease (so a crash mid-send leaves the
//! row to be taken again once the lease runs out) and works on each:
//!
//! - SUBMITTING: POST the stored pacs.008. The rail's answer is applied
//!   like any report. No answer (timeout, connection lost, 5xx) makes it
//!   UNKNOWN: it may have arrived.
//! - UNKNOWN, or SUBMITTED with no callback for a while: ask the rail for
//!   its status. An answer is applied; "never seen" (404) means the send
//!   never arrived, so the same document goes again under the same UETR.
//!
//! An open circuit or a throttled rail sends nothing and only puts the
//! submission off: the payment waits, it is never rejected for it.

use std::sync::Arc;
use std::time::Duration;

use paystream_bus::retry::capped_doubling;
use paystream_iso20022::StatusReport;
use paystream_provider_client::{
    CallError, Method, ProviderClient, Refused, StatusCode, Unavailable,
};
use paystream_service_kit::dispatch::{self, Dispatch, Pace};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

use crate::metrics::METRICS;
use crate::outcome::{Outcomes, Via};
use crate::state::State;
use crate::store::{self, StoreError, Submission};

/// How the sender paces itself.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Submissions worked on at once.
    pub in_flight: usize,
    /// How long a claimed submission is left alone: longer than a send
    /// with all its tries can take.
    pub lease: Duration,
    /// Wait after an acknowledgement before asking for the status.
    pub poll_after: Duration,
    /// First and longest wait between tries while the rail is unreachable.
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// How often due submissions are looked for when nothing announces one.
    pub scan: Duration,
}

#[derive(Clone)]
pub struct Sender {
    pool: PgPool,
    rail: ProviderClient,
    outcomes: Outcomes,
    pacing: Arc<Pacing>,
}

/// What became of one call, for the metrics.
#[derive(Debug, Clone, Copy)]
enum Call {
    Submit,
    Status,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Status => "status",
        }
    }
}

impl Dispatch for Sender {
    type Item = Submission;
    type Error = StoreError;

    async fn claim(&self, limit: usize) -> Result<Vec<Submission>, StoreError> {
        store::claim_due(&self.pool, limit as i64, self.pacing.lease).await
    }

    async fn work(&self, submission: Submission) {
        self.resolve(submission).await;
    }
}

impl Sender {
    pub fn new(pool: PgPool, rail: ProviderClient, outcomes: Outcomes, pacing: Pacing) -> Self {
        Self {
            pool,
            rail,
            outcomes,
            pacing: Arc::new(pacing),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let pace = Pace::new(self.pacing.in_flight, self.pacing.scan);
        let pool = self.pool.clone();
        dispatch::run(self, &pool, store::CHANNEL, pace, shutdown).await;
    }

    async fn resolve(&self, submission: Submission) {
        let span = tracing::info_span!(
            "rtgs.submission",
            correlation_id = %submission.cause.correlation_id,
            payment_id = %submission.payment_id,
            uetr = %submission.uetr,
            state = submission.state.name(),
            attempt = submission.attempts,
            rail.outcome = Empty,
        );
        // The send continues the payment's trace, not a new one.
        paystream_bus::headers::continue_trace(&span, &submission.cause_headers);
        let result = async {
            match submission.state {
                State::Submitting => self.send(&submission).await,
                State::Unknown | State::Submitted => self.query(&submission).await,
                State::Settled | State::Rejected => Ok(()),
            }
        }
        .instrument(span.clone())
        .await;
        if let Err(error) = result {
            tracing::warn!(parent: &span, %error, "the submission stays as it is until its lease runs out");
        }
    }

    async fn send(&self, submission: &Submission) -> Result<(), sqlx::Error> {
        let answer = self
            .rail
            .request(Method::POST, &["pacs.008"])
            .idempotency_key(&submission.uetr.to_string())
            .body("application/xml", submission.document.clone().into_bytes())
            .send()
            .await;
        match answer {
            Ok(answer) => {
                self.count(Call::Submit, "answered");
                self.report(submission, &answer.text(), Via::Answer).await
            }
            // A refusal on format comes as a RJCT FF01 report.
            Err(CallError::Refused {
                reason: Refused::Status { status, body },
                ..
            }) if status == StatusCode::BAD_REQUEST => {
                self.count(Call::Submit, "refused");
                tracing::error!(%body, "the rail refused the pacs.008 as malformed");
                self.report(submission, &body, Via::Answer).await
            }
            Err(CallError::Refused {
                reason: Refused::Status { status, body },
                ..
            }) if status == StatusCode::CONFLICT => {
                self.count(Call::Submit, "conflict");
                tracing::Span::current().record("rail.outcome", "CONFLICT");
                tracing::error!(%body, "the rail holds other content under this UETR; left UNKNOWN for an operator, its status is asked for");
                let error = format!("409 from the rail: {body}");
                store::defer(
                    &self.pool,
                    submission.payment_id,
                    self.pacing.poll_after,
                    Some(&error),
                    true,
                )
                .await
            }
            Err(error) => self.unanswered(submission, Call::Submit, &error).await,
        }
    }

    async fn query(&self, submission: &Submission) -> Result<(), sqlx::Error> {
        let uetr = submission.uetr.to_string();
        let answer = self
            .rail
            .request(Method::GET, &["status", &uetr])
            .send()
            .await;
        match answer {
            Ok(answer) => {
                self.count(Call::Status, "answered");
                self.report(submission, &answer.text(), Via::StatusQuery)
                    .await?;
                // Still open after the answer: ask again later.
                store::defer(
                    &self.pool,
                    submission.payment_id,
                    self.pacing.poll_after,
                    None,
                    false,
                )
                .await
            }
            Err(CallError::Refused {
                reason: Refused::Status { status, .. },
                ..
            }) if status == StatusCode::NOT_FOUND => {
                self.count(Call::Status, "never_seen");
                tracing::info!(
                    "the rail never received this submission; sending the same document again"
                );
                store::resend(&self.pool, submission.payment_id).await?;
                self.send(submission).await
            }
            Err(error) => self.unanswered(submission, Call::Status, &error).await,
        }
    }

    /// A call that got no usable answer: put the submission off. Whether
    /// the call may have reached the rail decides whether it becomes UNKNOWN.
    async fn unanswered(
        &self,
        submission: &Submission,
        call: Call,
        error: &CallError,
    ) -> Result<(), sqlx::Error> {
        let nothing_sent = matches!(
            error,
            CallError::Unavailable {
                reason: Unavailable::CircuitOpen | Unavailable::Throttled { .. },
                ..
            } | CallError::Refused {
                reason: Refused::Malformed(_),
                ..
            }
        );
        self.count(
            call,
            if nothing_sent {
                "not_sent"
            } else {
                "no_answer"
            },
        );
        let attempt = u32::try_from(submission.attempts).unwrap_or(u32::MAX);
        let wait = capped_doubling(self.pacing.retry_first, self.pacing.retry_max, attempt);
        tracing::warn!(%error, ?wait, call = call.name(), "no answer from the rail; trying again later");
        let unknown = matches!(call, Call::Submit) && !nothing_sent;
        tracing::Span::current().record(
            "rail.outcome",
            if nothing_sent {
                "NOT_SENT"
            } else {
                "NO_ANSWER"
            },
        );
        store::defer(
            &self.pool,
            submission.payment_id,
            wait,
            Some(&error.to_string()),
            unknown,
        )
        .await
    }

    /// Applies a report the rail answered with.
    async fn report(
        &self,
        submission: &Submission,
        text: &str,
        via: Via,
    ) -> Result<(), sqlx::Error> {
        let report = match StatusReport::from_xml(text) {
            // A report about another transaction is no answer about this one
            // (a malformed submission's RJCT names no UETR: the nil one).
            Ok(report) if report.uetr == submission.uetr || report.uetr.is_nil() => {
                tracing::Span::current().record("rail.outcome", report.status.code());
                report
            }
            Ok(report) => {
                let error = format!("the rail answered about UETR {}", report.uetr);
                return store::defer(
                    &self.pool,
                    submission.payment_id,
                    self.pacing.retry_max,
                    Some(&error),
                    true,
                )
                .await;
            }
            Err(error) => {
                let error = format!("unreadable answer from the rail: {error}");
                return store::defer(
                    &self.pool,
                    submission.payment_id,
                    self.pacing.retry_max,
                    Some(&error),
                    true,
                )
                .await;
            }
        };
        match self.outcomes.apply(submission.uetr, &report, via).await {
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, "the rail's answer could not be applied; asking again later");
                store::defer(
                    &self.pool,
                    submission.payment_id,
                    self.pacing.retry_first,
                    Some(&error.to_string()),
                    true,
                )
                .await
            }
        }
    }

    fn count(&self, call: Call, result: &str) {
        METRICS
            .calls
            .with_label_values(&[call.name(), result])
            .inc();
    }
}
