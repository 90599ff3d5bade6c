//! Where a handler's effects go, and how often a record can take effect.
//!
//! [`Effects::Transactional`] is the default for services with a database:
//! the record's `eventId` is claimed, the handler's writes are made and its
//! staged events are written to the outbox in **one** PostgreSQL transaction.
//! A crash before the commit leaves nothing (the redelivery starts afresh);
//! after it, the redelivery finds the claim and changes nothing, and the
//! relay publishes the outbox. This holds on any broker, transactions or not.
//!
//! [`Effects::AtLeastOnce`] is for handlers without a database: staged events
//! are sent once the handler returns, and a redelivered record runs the
//! handler again. Its outputs carry the same derived ids each time, so
//! idempotent consumers downstream drop the repeats.

use paystream_contract::{Envelope, Topic};
use std::sync::Arc;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::HandlerError;
use crate::handler::{Claim, Context};
use crate::outbox::Outbox;
use crate::producer::Producer;

#[derive(Clone)]
pub enum Effects {
    /// Effects, the processed `eventId` and the outbox in one transaction.
    Transactional { pool: PgPool, outbox: Outbox },
    /// No database: outputs are sent after the handler; a redelivery runs it again.
    AtLeastOnce { producer: Producer },
}

/// What `begin` found.
pub(crate) enum Begun {
    Fresh(Box<Context>),
    /// This group already processed the event: nothing to do.
    Duplicate,
}

impl Effects {
    /// For the start-up log.
    pub fn delivery(&self) -> &'static str {
        match self {
            Self::Transactional { .. } => {
                "effectively once: effects, the processed eventId and the outbox commit in one PostgreSQL transaction"
            }
            Self::AtLeastOnce { .. } => {
                "at-least-once: no database; a redelivered record runs the handler again (its outputs keep their derived ids)"
            }
        }
    }

    fn producer(&self) -> &Producer {
        match self {
            Self::Transactional { outbox, .. } => outbox.producer(),
            Self::AtLeastOnce { producer } => producer,
        }
    }

    /// Opens the record's attempt, unless this group already processed the
    /// event. The look-up holds no transaction: the claim that counts is
    /// made when the attempt's transaction opens.
    pub(crate) async fn begin(
        &self,
        group: &Arc<str>,
        topic: Topic,
        input: &Envelope,
        headers: &crate::headers::SharedHeaders,
    ) -> Result<Begun, HandlerError> {
        let claim = match self {
            Self::Transactional { pool, .. } => {
                let processed: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM bus_processed_events WHERE consumer_group = $1 AND event_id = $2",
                )
                .bind(&**group)
                .bind(input.event_id)
                .fetch_optional(pool)
                .await?;
                if processed.is_some() {
                    return Ok(Begun::Duplicate);
                }
                Some(Claim {
                    pool: pool.clone(),
                    group: group.clone(),
                    topic,
                })
            }
            Self::AtLeastOnce { .. } => None,
        };
        Ok(Begun::Fresh(Box::new(Context::new(
            claim,
            input.clone(),
            headers.clone(),
            self.producer().name(),
        ))))
    }

    /// Makes the attempt's effects durable: the claim (if the handler never
    /// opened the transaction), the outbox rows and the commit, then a nudge
    /// to the relay; or, without a database, the sends. Ok(false): another
    /// delivery had processed the event, and this attempt changed nothing.
    pub(crate) async fn finish(&self, mut ctx: Box<Context>) -> Result<bool, HandlerError> {
        if ctx.has_database() {
            let opened = ctx.tx().await.map(drop);
            match opened {
                Ok(()) => {}
                Err(_) if ctx.is_duplicate() => return Ok(false),
                Err(error) => return Err(error),
            }
        }
        let (tx, staged) = ctx.into_parts();
        match (self, tx) {
            (Self::Transactional { outbox, .. }, Some(mut tx)) => {
                let staged_any = !staged.is_empty();
                outbox.stage(&mut tx, staged).await?;
                tx.commit().await?;
                if staged_any {
                    outbox.committed();
                }
                Ok(true)
            }
            (Self::AtLeastOnce { producer }, None) => {
                producer.send_staged(staged).await?;
                Ok(true)
            }
            _ => Err(HandlerError::permanent(
                "the attempt's context does not match its consumer's effects",
            )),
        }
    }
}

/// Records that `group` processed `event_id`, inside the caller's
/// transaction. False if it already had: the caller must then do nothing.
/// A concurrent claim of the same id waits for the first to commit or roll
/// back, so two deliveries can never both proceed.
pub async fn claim(
    connection: &mut PgConnection,
    group: &str,
    event_id: Uuid,
    topic: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO bus_processed_events (consumer_group, event_id, topic)
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(group)
    .bind(event_id)
    .bind(topic)
    .execute(connection)
    .await?;
    Ok(inserted.rows_affected() == 1)
}
