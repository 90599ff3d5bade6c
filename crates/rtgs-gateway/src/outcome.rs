//! Applying what the rail says about a submission — by callback, in the
//! answer to a send, or in the answer to a status query — in one
//! transaction: the report is logged once per message, the state moves as
//! [`state::effect`] says, and the events that follow are written to the
//! outbox with it. Two reports about one UETR are applied one after the
//! other (the row is locked), so a callback racing the send's answer
//! cannot emit an outcome twice.

use std::time::Duration;

use chrono::Utc;
use paystream_bus::{HandlerError, Outbox};
use paystream_contract::{ReasonCode, RtgsRejected, RtgsSettled, RtgsSubmitted};
use paystream_iso20022::StatusReport;
use sqlx::{PgConnection, PgPool};
use tracing::Instrument;
use uuid::Uuid;

use crate::metrics::METRICS;
use crate::state::{self, Effect, State};
use crate::store::{self, StoreError, Submission};

/// How a report reached the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Callback,
    /// The rail's answer to a send.
    Answer,
    StatusQuery,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Self::Callback => "CALLBACK",
            Self::Answer => "ANSWER",
            Self::StatusQuery => "STATUS_QUERY",
        }
    }
}

/// What applying a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub effect: Effect,
    /// The same message was applied before: nothing was looked at again.
    pub duplicate: bool,
    pub state: State,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("no submission has UETR {0}")]
    UnknownUetr(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the outbox refused the events: {0}")]
    Outbox(#[from] HandlerError),
}

impl From<sqlx::Error> for ApplyError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

/// Applies the rail's reports; shared by the callback endpoint and the sender.
#[derive(Clone)]
pub struct Outcomes {
    pool: PgPool,
    outbox: Outbox,
    /// How long an acknowledged submission waits for its callback before
    /// the sender asks for its status.
    poll_after: Duration,
}

impl Outcomes {
    pub fn new(pool: PgPool, outbox: Outbox, poll_after: Duration) -> Self {
        Self {
            pool,
            outbox,
            poll_after,
        }
    }

    /// Applies `report` to the submission with `uetr`.
    pub async fn apply(
        &self,
        uetr: Uuid,
        report: &StatusReport,
        via: Via,
    ) -> Result<Applied, ApplyError> {
        let mut tx = self.pool.begin().await?;
        let submission = store::lock_by_uetr(&mut tx, uetr)
            .await?
            .ok_or(ApplyError::UnknownUetr(uetr))?;
        let span = tracing::info_span!(
            "rtgs.outcome",
            correlation_id = %submission.cause.correlation_id,
            payment_id = %submission.payment_id,
            %uetr,
            status = report.status.code(),
            via = via.name(),
        );
        paystream_bus::headers::continue_trace(&span, &submission.cause_headers);
        async move {
            let effect = state::effect(submission.state, report.status);
            if !log_report(&mut tx, uetr, report, via, effect).await? {
                tx.rollback().await?;
                METRICS
                    .reports
                    .with_label_values(&[via.name(), "DUPLICATE"])
                    .inc();
                return Ok(Applied {
                    effect: Effect::Unchanged,
                    duplicate: true,
                    state: submission.state,
                });
            }
            let state = self
                .transition(&mut tx, &submission, report, effect)
                .await?;
            tx.commit().await?;
            if matches!(
                effect,
                Effect::Accepted | Effect::Settled { .. } | Effect::Rejected
            ) {
                self.outbox.committed();
            }
            METRICS
                .reports
                .with_label_values(&[via.name(), effect.name()])
                .inc();
            if state.is_final() && !submission.state.is_final() {
                METRICS.outcomes.with_label_values(&[state.name()]).inc();
                // A clock that stepped back reads as no time at all.
                let age = (Utc::now() - submission.created_at)
                    .to_std()
                    .map_or(0.0, |age| age.as_secs_f64());
                METRICS.settlement_seconds.observe(age);
                tracing::info!(
                    state = state.name(),
                    reason = report.reason.as_deref(),
                    "rail outcome applied"
                );
            }
            Ok(Applied {
                effect,
                duplicate: false,
                state,
            })
        }
        .instrument(span)
        .await
    }

    async fn transition(
        &self,
        tx: &mut PgConnection,
        submission: &Submission,
        report: &StatusReport,
        effect: Effect,
    ) -> Result<State, ApplyError> {
        let reference = report
            .clearing_reference
            .clone()
            .or_else(|| submission.rail_reference.clone());
        let mut emitter = self
            .outbox
            .emitter(submission.cause.clone(), submission.cause_headers.clone());
        let state = match effect {
            Effect::Unchanged => {
                if submission.state == State::Submitted {
                    // Still in process at the rail: ask again later.
                    self.poll_later(tx, submission.payment_id).await?;
                }
                return Ok(submission.state);
            }
            Effect::Contradiction => {
                METRICS.contradictions.inc();
                tracing::error!(
                    recorded = submission.state.name(),
                    reported = report.status.code(),
                    "the rail contradicts the outcome recorded; the first outcome stands, an operator must look"
                );
                return Ok(submission.state);
            }
            Effect::Accepted => {
                sqlx::query(
                    "UPDATE rtgs_submissions SET state = 'SUBMITTED', rail_reference = $2, \
                       next_attempt_at = now() + make_interval(secs => $3), last_error = NULL, \
                       updated_at = now() WHERE payment_id = $1",
                )
                .bind(submission.payment_id)
                .bind(&reference)
                .bind(self.poll_after.as_secs_f64())
                .execute(&mut *tx)
                .await?;
                emitter.emit(|envelope| submitted(envelope, submission, &reference));
                State::Submitted
            }
            Effect::Settled { announce } => {
                let date = report
                    .settlement_date
                    .unwrap_or_else(|| Utc::now().date_naive());
                sqlx::query(
                    "UPDATE rtgs_submissions SET state = 'SETTLED', rail_reference = $2, \
                       settlement_date = $3, resolved_at = now(), last_error = NULL, \
                       updated_at = now() WHERE payment_id = $1",
                )
                .bind(submission.payment_id)
                .bind(&reference)
                .bind(date)
                .execute(&mut *tx)
                .await?;
                if announce {
                    emitter.emit(|envelope| submitted(envelope, submission, &reference));
                }
                emitter.emit(|envelope| RtgsSettled {
                    envelope,
                    payment_id: submission.payment_id,
                    uetr: submission.uetr,
                    rtgs_reference: reference
                        .clone()
                        .unwrap_or_else(|| report.message_id.clone()),
                    debtor_account: submission.debtor_account.clone(),
                    amount_minor: submission.amount_minor,
                    currency: submission.currency.clone(),
                    settlement_date: date.format("%Y-%m-%d").to_string(),
                    settled_at: report.created_at,
                });
                State::Settled
            }
            Effect::Rejected => {
                let code = ReasonCode::from_code(report.reason.as_deref().unwrap_or("MS03"));
                let text = report
                    .reason_text
                    .clone()
                    .filter(|text| !text.is_empty())
                    .unwrap_or_else(|| code.description().to_owned());
                sqlx::query(
                    "UPDATE rtgs_submissions SET state = 'REJECTED', rail_reference = $2, \
                       reason_code = $3, reason_text = $4, resolved_at = now(), \
                       updated_at = now() WHERE payment_id = $1",
                )
                .bind(submission.payment_id)
                .bind(&reference)
                .bind(code.code())
                .bind(&text)
                .execute(&mut *tx)
                .await?;
                emitter.emit(|envelope| RtgsRejected {
                    envelope,
                    payment_id: submission.payment_id,
                    uetr: submission.uetr,
                    rtgs_reference: reference.clone(),
                    debtor_account: submission.debtor_account.clone(),
                    amount_minor: submission.amount_minor,
                    currency: submission.currency.clone(),
                    reason_code: code.clone(),
                    reason_text: text.clone(),
                });
                State::Rejected
            }
        };
        self.outbox.write(tx, emitter).await?;
        Ok(state)
    }

    async fn poll_later(&self, tx: &mut PgConnection, payment_id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE rtgs_submissions SET next_attempt_at = now() + make_interval(secs => $2), \
               last_error = NULL, updated_at = now() WHERE payment_id = $1",
        )
        .bind(payment_id)
        .bind(self.poll_after.as_secs_f64())
        .execute(tx)
        .await
        .map(drop)
    }
}

fn submitted(
    envelope: paystream_contract::Envelope,
    submission: &Submission,
    reference: &Option<String>,
) -> RtgsSubmitted {
    RtgsSubmitted {
        envelope,
        payment_id: submission.payment_id,
        uetr: submission.uetr,
        rtgs_reference: reference
            .clone()
            .unwrap_or_else(|| submission.message_id.clone()),
        debtor_account: submission.debtor_account.clone(),
        debtor_agent_bic: submission.debtor_agent_bic.clone(),
        creditor_agent_bic: submission.creditor_agent_bic.clone(),
        amount_minor: submission.amount_minor,
        currency: submission.currency.clone(),
    }
}

/// Logs the report once per message; false if this message was logged before.
async fn log_report(
    tx: &mut PgConnection,
    uetr: Uuid,
    report: &StatusReport,
    via: Via,
    effect: Effect,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO rtgs_status_reports (message_id, uetr, status, reason_code, via, effect) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(&report.message_id)
    .bind(uetr)
    .bind(report.status.code())
    .bind(&report.reason)
    .bind(via.name())
    .bind(effect.name())
    .execute(tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
