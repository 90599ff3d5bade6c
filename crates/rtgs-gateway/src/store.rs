//! The submissions table: recording a transfer before it is sent, claiming
//! the ones that are due, deferring them, and reading them back.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use paystream_bus::headers::{self, HeaderList};
use paystream_contract::Envelope;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::state::State;

/// A submission as stored.
#[derive(Debug, Clone)]
pub struct Submission {
    pub payment_id: Uuid,
    pub uetr: Uuid,
    pub message_id: String,
    pub end_to_end_id: String,
    /// The pacs.008 exactly as sent, every time.
    pub document: String,
    pub state: State,
    pub debtor_account: String,
    pub debtor_agent_bic: String,
    pub creditor_agent_bic: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The `account.debited` this submission came from.
    pub cause: Envelope,
    pub cause_headers: HeaderList,
    pub rail_reference: Option<String>,
    pub reason_code: Option<String>,
    pub reason_text: Option<String>,
    pub settlement_date: Option<NaiveDate>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct Row {
    payment_id: Uuid,
    uetr: Uuid,
    message_id: String,
    end_to_end_id: String,
    document: String,
    state: String,
    debtor_account: String,
    debtor_agent_bic: String,
    creditor_agent_bic: String,
    amount_minor: i64,
    currency: String,
    cause: serde_json::Value,
    cause_headers: serde_json::Value,
    rail_reference: Option<String>,
    reason_code: Option<String>,
    reason_text: Option<String>,
    settlement_date: Option<NaiveDate>,
    attempts: i32,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
}

/// A stored row this version cannot read: a state it does not know or a
/// cause that is not an envelope.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("submission {payment_id}: {reason}")]
    Corrupt { payment_id: Uuid, reason: String },
}

impl TryFrom<Row> for Submission {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            payment_id: row.payment_id,
            reason,
        };
        let state = State::from_name(&row.state)
            .ok_or_else(|| corrupt(format!("unknown state {:?}", row.state)))?;
        let cause: Envelope = serde_json::from_value(row.cause.clone())
            .map_err(|error| corrupt(format!("cause: {error}")))?;
        let cause_headers = headers::trace_context_from_json(&row.cause_headers)
            .ok_or_else(|| corrupt("cause_headers is not an object of strings".to_owned()))?;
        Ok(Self {
            payment_id: row.payment_id,
            uetr: row.uetr,
            message_id: row.message_id,
            end_to_end_id: row.end_to_end_id,
            document: row.document,
            state,
            debtor_account: row.debtor_account,
            debtor_agent_bic: row.debtor_agent_bic,
            creditor_agent_bic: row.creditor_agent_bic,
            amount_minor: row.amount_minor,
            currency: row.currency,
            cause,
            cause_headers,
            rail_reference: row.rail_reference,
            reason_code: row.reason_code,
            reason_text: row.reason_text,
            settlement_date: row.settlement_date,
            attempts: row.attempts,
            last_error: row.last_error,
            created_at: row.created_at,
            resolved_at: row.resolved_at,
        })
    }
}

const COLUMNS: &str = "payment_id, uetr, message_id, end_to_end_id, document, state, \
    debtor_account, debtor_agent_bic, creditor_agent_bic, amount_minor, currency, cause, \
    cause_headers, rail_reference, reason_code, reason_text, settlement_date, attempts, \
    last_error, created_at, resolved_at";

/// What recording a new submission found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// The payment was recorded before (a re-delivery under another eventId).
    Already,
    /// Another payment holds this UETR: never send one UETR for two payments.
    UetrTaken {
        by: Uuid,
    },
}

/// A submission to record.
pub struct NewSubmission<'a> {
    pub payment_id: Uuid,
    pub uetr: Uuid,
    pub message_id: &'a str,
    pub end_to_end_id: &'a str,
    pub document: &'a str,
    pub debtor_account: &'a str,
    pub debtor_agent_bic: &'a str,
    pub creditor_agent_bic: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub cause: &'a Envelope,
    pub cause_headers: &'a HeaderList,
}

/// The channel a committed new submission is announced on, so the sender
/// starts at once rather than at its next scan (NOTIFY is delivered on
/// commit, never for a transaction that rolled back).
pub const CHANNEL: &str = "rtgs_submissions";

pub async fn record(
    tx: &mut PgConnection,
    new: &NewSubmission<'_>,
) -> Result<Recorded, sqlx::Error> {
    let cause =
        serde_json::to_value(new.cause).map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
    let inserted = sqlx::query(
        "INSERT INTO rtgs_submissions (payment_id, uetr, message_id, end_to_end_id, document, \
         state, debtor_account, debtor_agent_bic, creditor_agent_bic, amount_minor, currency, \
         cause, cause_headers) \
         VALUES ($1, $2, $3, $4, $5, 'SUBMITTING', $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT DO NOTHING",
    )
    .bind(new.payment_id)
    .bind(new.uetr)
    .bind(new.message_id)
    .bind(new.end_to_end_id)
    .bind(new.document)
    .bind(new.debtor_account)
    .bind(new.debtor_agent_bic)
    .bind(new.creditor_agent_bic)
    .bind(new.amount_minor)
    .bind(new.currency)
    .bind(cause)
    .bind(headers::trace_context_to_json(new.cause_headers))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&mut *tx)
            .await?;
        return Ok(Recorded::New);
    }
    let holder: Option<Uuid> =
        sqlx::query_scalar("SELECT payment_id FROM rtgs_submissions WHERE uetr = $1")
            .bind(new.uetr)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(match holder {
        Some(by) if by != new.payment_id => Recorded::UetrTaken { by },
        _ => Recorded::Already,
    })
}

/// Claims up to `limit` unresolved submissions that are due, pushing their
/// next attempt `lease` ahead: another replica (or this one after a crash)
/// takes them again only once the lease has run out.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Submission>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE rtgs_submissions SET attempts = attempts + 1, \
           next_attempt_at = now() + make_interval(secs => $2), updated_at = now() \
         WHERE payment_id IN ( \
           SELECT payment_id FROM rtgs_submissions \
           WHERE state IN ('SUBMITTING', 'SUBMITTED', 'UNKNOWN') AND next_attempt_at <= now() \
           ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING {COLUMNS}"
    )))
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Submission::try_from).collect()
}

/// Puts an open submission off for `delay` with the error that stopped it.
/// `unknown`: the send may have reached the rail, so its outcome must be
/// asked for before anything else (SUBMITTING becomes UNKNOWN; a
/// submission the rail already acknowledged stays SUBMITTED).
pub async fn defer(
    pool: &PgPool,
    payment_id: Uuid,
    delay: Duration,
    error: Option<&str>,
    unknown: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE rtgs_submissions SET \
           state = CASE WHEN $4 AND state = 'SUBMITTING' THEN 'UNKNOWN' ELSE state END, \
           next_attempt_at = now() + make_interval(secs => $2), last_error = $3, \
           updated_at = now() \
         WHERE payment_id = $1 AND state IN ('SUBMITTING', 'SUBMITTED', 'UNKNOWN')",
    )
    .bind(payment_id)
    .bind(delay.as_secs_f64())
    .bind(error)
    .bind(unknown)
    .execute(pool)
    .await
    .map(drop)
}

/// Marks a submission the rail has never seen (its status query said so)
/// for sending again now, same UETR, same document.
pub async fn resend(pool: &PgPool, payment_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE rtgs_submissions SET state = 'SUBMITTING', next_attempt_at = now(), \
           updated_at = now() \
         WHERE payment_id = $1 AND state IN ('SUBMITTING', 'UNKNOWN', 'SUBMITTED')",
    )
    .bind(payment_id)
    .execute(pool)
    .await
    .map(drop)
}

pub async fn lock_by_uetr(
    tx: &mut PgConnection,
    uetr: Uuid,
) -> Result<Option<Submission>, StoreError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM rtgs_submissions WHERE uetr = $1 FOR UPDATE"
    )))
    .bind(uetr)
    .fetch_optional(tx)
    .await?;
    row.map(Submission::try_from).transpose()
}

pub async fn find(pool: &PgPool, payment_id: Uuid) -> Result<Option<Submission>, StoreError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM rtgs_submissions WHERE payment_id = $1"
    )))
    .bind(payment_id)
    .fetch_optional(pool)
    .await?;
    row.map(Submission::try_from).transpose()
}
