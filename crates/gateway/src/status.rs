//! Keeps the payment status read model up to date from the pipeline's topics:
//! one consumer group over every topic that moves a payment on. A status
//! only moves forward (by rank), so events arriving out of order across
//! topics never move a payment back.

use paystream_bus::{Context, Handler, HandlerError, Record};
use paystream_contract::{AnyEvent, DebitOrigin, Topic};

use paystream_contract::PaymentStatus;

use crate::store;

pub const GROUP: &str = "gateway-status";

/// The topics the read model follows.
pub const TOPICS: [Topic; 7] = [
    Topic::PaymentValidated,
    Topic::PaymentRejected,
    Topic::AccountDebited,
    Topic::RtgsSubmitted,
    Topic::RtgsSettled,
    Topic::AccountDebitReversed,
    Topic::NotificationSent,
];

pub struct StatusFeed;

impl Handler<AnyEvent> for StatusFeed {
    async fn handle(
        &self,
        record: Record<AnyEvent>,
        ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        let correlation_id = ctx.input().correlation_id.clone();
        let (payment_id, status, reason) = match &record.event {
            AnyEvent::PaymentValidated(event) => (event.payment_id, PaymentStatus::Validated, None),
            AnyEvent::PaymentRejected(event) => (
                event.payment_id,
                PaymentStatus::Rejected,
                Some((event.reason_code.code(), event.reason_text.as_str())),
            ),
            // Card debits are not payments of this API.
            AnyEvent::AccountDebited(event) if event.origin == DebitOrigin::CardTransaction => {
                return Ok(());
            }
            AnyEvent::AccountDebited(event) => (event.payment_id, PaymentStatus::Debited, None),
            AnyEvent::RtgsSubmitted(event) => {
                (event.payment_id, PaymentStatus::SubmittedToRail, None)
            }
            AnyEvent::RtgsSettled(event) => (event.payment_id, PaymentStatus::Settled, None),
            AnyEvent::AccountDebitReversed(event) => (
                event.payment_id,
                PaymentStatus::Reversed,
                Some((event.reason_code.code(), event.reason_text.as_str())),
            ),
            // Card transactions' notifications name ids that are not payments
            // of this API: they match no row.
            AnyEvent::NotificationSent(event) => {
                if let Ok(payment_id) = uuid::Uuid::parse_str(&event.payment_id) {
                    store::record_notified(ctx.tx().await?, payment_id, &event.template_code)
                        .await?;
                }
                return Ok(());
            }
            other => {
                return Err(HandlerError::permanent(format!(
                    "the status read model does not follow {}",
                    other.topic()
                )));
            }
        };
        store::upsert_status(
            ctx.tx().await?,
            payment_id,
            &correlation_id,
            status,
            reason.map(|(code, _)| code),
            reason.map(|(_, text)| text),
        )
        .await?;
        Ok(())
    }
}
