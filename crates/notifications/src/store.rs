//! The notifications table and the contacts it is addressed from.

use std::time::Duration;

use chrono::{DateTime, Utc};
use paystream_bus::headers::{self, HeaderList};
use paystream_contract::Envelope;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::message::{Channel, Kind};

/// A notification's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Recorded; not yet tried.
    Pending,
    /// Tried at least once; the provider may have delivered it. Tried again
    /// under the same key while the provider still remembers the key.
    Sending,
    Sent,
    /// The provider refused it for good (a recipient it cannot reach).
    Failed,
    /// Its fate was not known within the provider's idempotency window and
    /// the provider has no record of it: left for reconciliation, never
    /// sent again blindly.
    Unknown,
}

impl State {
    pub const ALL: [State; 5] = [
        Self::Pending,
        Self::Sending,
        Self::Sent,
        Self::Failed,
        Self::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Sending => "SENDING",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
            Self::Unknown => "UNKNOWN",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.name() == name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("notification {id}: {reason}")]
    Corrupt { id: Uuid, reason: String },
    #[error("the outbox refused the event: {0}")]
    Outbox(#[from] paystream_bus::HandlerError),
}

/// A notification as stored.
#[derive(Debug, Clone)]
pub struct Notification {
    pub id: Uuid,
    pub payment_id: String,
    pub kind: Kind,
    pub customer_ref: String,
    pub channel: Channel,
    pub recipient: String,
    pub subject: Option<String>,
    pub body: String,
    pub state: State,
    pub cause: Envelope,
    pub cause_headers: HeaderList,
    pub attempts: i32,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub provider_message_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    payment_id: String,
    kind: String,
    customer_ref: String,
    channel: String,
    recipient: String,
    subject: Option<String>,
    body: String,
    state: String,
    cause: serde_json::Value,
    cause_headers: serde_json::Value,
    attempts: i32,
    first_attempt_at: Option<DateTime<Utc>>,
    provider_message_id: Option<String>,
}

impl TryFrom<Row> for Notification {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt { id: row.id, reason };
        Ok(Self {
            kind: Kind::from_code(&row.kind)
                .ok_or_else(|| corrupt(format!("unknown kind {:?}", row.kind)))?,
            channel: Channel::from_code(&row.channel)
                .ok_or_else(|| corrupt(format!("unknown channel {:?}", row.channel)))?,
            state: State::from_name(&row.state)
                .ok_or_else(|| corrupt(format!("unknown state {:?}", row.state)))?,
            cause: serde_json::from_value(row.cause.clone())
                .map_err(|error| corrupt(format!("cause: {error}")))?,
            cause_headers: headers::trace_context_from_json(&row.cause_headers)
                .ok_or_else(|| corrupt("cause_headers is not an object of strings".into()))?,
            id: row.id,
            payment_id: row.payment_id,
            customer_ref: row.customer_ref,
            recipient: row.recipient,
            subject: row.subject,
            body: row.body,
            attempts: row.attempts,
            first_attempt_at: row.first_attempt_at,
            provider_message_id: row.provider_message_id,
        })
    }
}

const COLUMNS: &str = "id, payment_id, kind, customer_ref, channel, recipient, subject, body, \
    state, cause, cause_headers, attempts, first_attempt_at, provider_message_id";

/// The channel new notifications are announced on (NOTIFY, on commit).
pub const CHANNEL: &str = "notifications";

/// The customer's addresses, per channel.
pub async fn contacts(
    tx: &mut PgConnection,
    customer_ref: &str,
) -> Result<Vec<(Channel, String)>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT channel, address FROM contacts WHERE customer_ref = $1 ORDER BY channel",
    )
    .bind(customer_ref)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(channel, address)| Some((Channel::from_code(&channel)?, address)))
        .collect())
}

/// Whether the customer was already told any of `kinds` about the payment.
pub async fn told_any(
    tx: &mut PgConnection,
    payment_id: &str,
    kinds: &[Kind],
) -> Result<bool, sqlx::Error> {
    if kinds.is_empty() {
        return Ok(false);
    }
    let codes: Vec<&str> = kinds.iter().map(|kind| kind.code()).collect();
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM notifications WHERE payment_id = $1 AND kind = ANY($2))",
    )
    .bind(payment_id)
    .bind(codes)
    .fetch_one(tx)
    .await
}

/// A notification to record.
pub struct NewNotification<'a> {
    pub id: Uuid,
    pub payment_id: &'a str,
    pub kind: Kind,
    pub customer_ref: &'a str,
    pub channel: Channel,
    pub recipient: &'a str,
    pub subject: Option<&'a str>,
    pub body: &'a str,
    pub cause: &'a Envelope,
    pub cause_headers: &'a HeaderList,
}

/// Records a notification; false if it was recorded before (its id is
/// deterministic, so the same event handled again finds it).
pub async fn record(tx: &mut PgConnection, new: &NewNotification<'_>) -> Result<bool, sqlx::Error> {
    let cause =
        serde_json::to_value(new.cause).map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
    let inserted = sqlx::query(
        "INSERT INTO notifications (id, payment_id, kind, customer_ref, channel, recipient, \
         subject, body, state, cause, cause_headers) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'PENDING', $9, $10) ON CONFLICT (id) DO NOTHING",
    )
    .bind(new.id)
    .bind(new.payment_id)
    .bind(new.kind.code())
    .bind(new.customer_ref)
    .bind(new.channel.code())
    .bind(new.recipient)
    .bind(new.subject)
    .bind(new.body)
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
    }
    Ok(inserted == 1)
}

/// Claims up to `limit` due notifications, leasing them for `lease`, and
/// marks them SENDING: from here the provider may have delivered them.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Notification>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE notifications SET attempts = attempts + 1, state = 'SENDING', \
           first_attempt_at = coalesce(first_attempt_at, now()), \
           next_attempt_at = now() + make_interval(secs => $2) \
         WHERE id IN ( \
           SELECT id FROM notifications \
           WHERE state IN ('PENDING', 'SENDING') AND next_attempt_at <= now() \
           ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING {COLUMNS}"
    )))
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Notification::try_from).collect()
}

/// Tries again after `delay`.
pub async fn defer(
    pool: &PgPool,
    id: Uuid,
    delay: Duration,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications SET next_attempt_at = now() + make_interval(secs => $2), \
           last_error = $3 WHERE id = $1 AND state = 'SENDING'",
    )
    .bind(id)
    .bind(delay.as_secs_f64())
    .bind(error)
    .execute(pool)
    .await
    .map(drop)
}

/// Ends a notification that will not be delivered by trying again.
pub async fn give_up(
    pool: &PgPool,
    id: Uuid,
    state: State,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications SET state = $2, last_error = $3 WHERE id = $1 AND state = 'SENDING'",
    )
    .bind(id)
    .bind(state.name())
    .bind(error)
    .execute(pool)
    .await
    .map(drop)
}

/// Marks it sent; false if it was no longer SENDING (another replica or
/// an earlier try got there first).
pub async fn mark_sent(
    tx: &mut PgConnection,
    id: Uuid,
    provider_message_id: &str,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE notifications SET state = 'SENT', provider_message_id = $2, sent_at = now(), \
           last_error = NULL WHERE id = $1 AND state IN ('SENDING', 'UNKNOWN')",
    )
    .bind(id)
    .bind(provider_message_id)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Loads contacts from CSV (`customer_ref,channel,address`); loading the
/// same file again changes nothing, a changed address replaces the old.
pub async fn load_contacts(pool: &PgPool, csv: &str) -> Result<usize, LoadError> {
    let mut tx = pool.begin().await?;
    let mut loaded = 0;
    for (number, line) in csv.lines().enumerate() {
        let line = line.trim();
        // Comments, blank lines and the header line, wherever it stands.
        if line.is_empty() || line.starts_with('#') || line.starts_with("customer_ref,") {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [customer_ref, channel, address] = fields[..] else {
            return Err(LoadError::Line {
                number: number + 1,
                reason: "expected customer_ref,channel,address".into(),
            });
        };
        let channel = Channel::from_code(channel).ok_or_else(|| LoadError::Line {
            number: number + 1,
            reason: format!("channel {channel:?} is not SMS or EMAIL"),
        })?;
        if customer_ref.is_empty() || address.is_empty() {
            return Err(LoadError::Line {
                number: number + 1,
                reason: "empty field".into(),
            });
        }
        sqlx::query(
            "INSERT INTO contacts (customer_ref, channel, address) VALUES ($1, $2, $3) \
             ON CONFLICT (customer_ref, channel) DO UPDATE SET address = EXCLUDED.address",
        )
        .bind(customer_ref)
        .bind(channel.code())
        .bind(address)
        .execute(&mut *tx)
        .await?;
        loaded += 1;
    }
    tx.commit().await?;
    Ok(loaded)
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("line {number}: {reason}")]
    Line { number: usize, reason: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
