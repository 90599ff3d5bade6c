//! The deliverer: sends recorded notifications through the provider, each
//! under its own id as `Idempotency-Key` on every try, and marks them sent
//! with `notification.sent` in one transaction.
//!
//! A try that gets no answer leaves the notification SENDING: it may have
//! been delivered. It is tried again under the same key, which the provider
//! answers from its idempotency record without delivering twice — as long
//! as the provider still remembers the key. Past its idempotency window
//! the deliverer asks the provider instead (`GET` by key): a message it
//! knows is marked sent, one it does not becomes UNKNOWN for an operator,
//! never sent again blindly.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use paystream_bus::Outbox;
use paystream_bus::retry::capped_doubling;
use paystream_contract::NotificationSent;
use paystream_provider_client::{
    CallError, Method, ProviderClient, Refused, StatusCode, Unavailable,
};
use paystream_service_kit::dispatch::{self, Dispatch, Pace};
use serde::Deserialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::METRICS;
use crate::store::{self, Notification, State, StoreError};

/// How the deliverer paces itself.
#[derive(Debug, Clone)]
pub struct Pacing {
    pub in_flight: usize,
    /// Longer than a call with all its tries can take.
    pub lease: Duration,
    pub retry_first: Duration,
    pub retry_max: Duration,
    pub scan: Duration,
    /// How long the provider remembers an Idempotency-Key.
    pub idempotency_window: Duration,
}

#[derive(Clone)]
pub struct Deliverer {
    pool: PgPool,
    outbox: Outbox,
    provider: ProviderClient,
    pacing: Arc<Pacing>,
}

/// The provider's answer about a message.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delivered {
    message_id: String,
}

impl Dispatch for Deliverer {
    type Item = Notification;
    type Error = StoreError;

    async fn claim(&self, limit: usize) -> Result<Vec<Notification>, StoreError> {
        store::claim_due(&self.pool, limit as i64, self.pacing.lease).await
    }

    async fn work(&self, notification: Notification) {
        let span = tracing::info_span!(
            "notification.deliver",
            correlation_id = %notification.cause.correlation_id,
            notification_id = %notification.id,
            payment_id = %notification.payment_id,
            attempt = notification.attempts,
        );
        // The announcement continues the payment's trace, not a new one.
        paystream_bus::headers::continue_trace(&span, &notification.cause_headers);
        let result = self.deliver(&notification).instrument(span.clone()).await;
        if let Err(error) = result {
            tracing::warn!(parent: &span, %error, "the notification stays as it is until its lease runs out");
        }
    }
}

impl Deliverer {
    pub fn new(pool: PgPool, outbox: Outbox, provider: ProviderClient, pacing: Pacing) -> Self {
        Self {
            pool,
            outbox,
            provider,
            pacing: Arc::new(pacing),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let pace = Pace::new(self.pacing.in_flight, self.pacing.scan);
        let pool = self.pool.clone();
        dispatch::run(self, &pool, store::CHANNEL, pace, shutdown).await;
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), StoreError> {
        let key = notification.id.to_string();
        if self.past_window(notification) {
            return self.reconcile(notification, &key).await;
        }
        let mut body = serde_json::json!({
            "channel": notification.channel.code(),
            "to": notification.recipient,
            "body": notification.body,
        });
        if let Some(subject) = &notification.subject {
            body["subject"] = serde_json::Value::from(subject.as_str());
        }
        let answer = self
            .provider
            .request(Method::POST, &["v1", "messages"])
            .idempotency_key(&key)
            .json(&body)
            .send()
            .await;
        match answer {
            Ok(answer) => match serde_json::from_slice::<Delivered>(&answer.body) {
                Ok(delivered) => {
                    METRICS.calls.with_label_values(&["delivered"]).inc();
                    self.sent(notification, &delivered.message_id).await
                }
                Err(error) => {
                    METRICS.calls.with_label_values(&["unreadable"]).inc();
                    self.retry(notification, &format!("unreadable answer: {error}"))
                        .await
                }
            },
            // The provider will never deliver this request as it stands.
            Err(CallError::Refused {
                reason: Refused::Status { status, body },
                ..
            }) if status.is_client_error() && status != StatusCode::CONFLICT => {
                METRICS.calls.with_label_values(&["refused"]).inc();
                tracing::error!(%status, %body, "the provider refused the notification");
                store::give_up(
                    &self.pool,
                    notification.id,
                    State::Failed,
                    &format!("{status}: {body}"),
                )
                .await?;
                Ok(())
            }
            Err(error) => {
                let nothing_sent = matches!(
                    error,
                    CallError::Unavailable {
                        reason: Unavailable::CircuitOpen | Unavailable::Throttled { .. },
                        ..
                    }
                );
                METRICS
                    .calls
                    .with_label_values(&[if nothing_sent {
                        "not_sent"
                    } else {
                        "no_answer"
                    }])
                    .inc();
                self.retry(notification, &error.to_string()).await
            }
        }
    }

    /// Whether the provider may have forgotten the key since the first try.
    fn past_window(&self, notification: &Notification) -> bool {
        notification.first_attempt_at.is_some_and(|first| {
            (Utc::now() - first)
                .to_std()
                .is_ok_and(|age| age >= self.pacing.idempotency_window)
        })
    }

    /// Past the window: ask the provider what became of the key.
    async fn reconcile(&self, notification: &Notification, key: &str) -> Result<(), StoreError> {
        let answer = self
            .provider
            .request(Method::GET, &["v1", "messages", key])
            .send()
            .await;
        match answer {
            Ok(answer) => match serde_json::from_slice::<Delivered>(&answer.body) {
                Ok(delivered) => self.sent(notification, &delivered.message_id).await,
                Err(error) => {
                    self.retry(notification, &format!("unreadable answer: {error}"))
                        .await
                }
            },
            Err(CallError::Refused {
                reason: Refused::Status { status, .. },
                ..
            }) if status == StatusCode::NOT_FOUND => {
                METRICS.unknown.inc();
                tracing::error!(
                    "the provider has no record of this notification and its idempotency window has passed; left UNKNOWN for reconciliation"
                );
                store::give_up(
                    &self.pool,
                    notification.id,
                    State::Unknown,
                    "not known to the provider after its idempotency window",
                )
                .await?;
                Ok(())
            }
            Err(error) => self.retry(notification, &error.to_string()).await,
        }
    }

    async fn retry(&self, notification: &Notification, error: &str) -> Result<(), StoreError> {
        let attempt = u32::try_from(notification.attempts).unwrap_or(u32::MAX);
        let wait = capped_doubling(self.pacing.retry_first, self.pacing.retry_max, attempt);
        tracing::warn!(
            error,
            ?wait,
            "notification not confirmed; trying again under the same key"
        );
        store::defer(&self.pool, notification.id, wait, error).await?;
        Ok(())
    }

    /// Marks it sent and announces it, in one transaction.
    async fn sent(&self, notification: &Notification, message_id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if !store::mark_sent(&mut tx, notification.id, message_id).await? {
            tx.rollback().await?;
            return Ok(());
        }
        let mut emitter = self.outbox.emitter(
            notification.cause.clone(),
            notification.cause_headers.clone(),
        );
        emitter.emit_for(notification.id, |envelope| NotificationSent {
            envelope,
            notification_id: notification.id,
            payment_id: notification.payment_id.clone(),
            customer_ref: notification.customer_ref.clone(),
            channel: notification.channel.contract(),
            recipient: notification.recipient.clone(),
            template_code: notification.kind.code().to_owned(),
            provider_message_id: Some(message_id.to_owned()),
        });
        self.outbox.write(&mut tx, emitter).await?;
        tx.commit().await?;
        self.outbox.committed();
        METRICS
            .sent
            .with_label_values(&[notification.kind.code(), notification.channel.code()])
            .inc();
        tracing::info!(provider_message_id = message_id, "notification sent");
        Ok(())
    }
}
