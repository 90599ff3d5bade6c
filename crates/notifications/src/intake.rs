//! The consumer: each event worth telling becomes one notification per
//! channel the customer has, recorded (PENDING) in the transaction of the
//! processed eventId. Nothing is sent here: the deliverer picks them up
//! once this commits, so a slow or absent provider never holds a partition.

use paystream_bus::{Context, Handler, HandlerError, Record};
use paystream_contract::{AnyEvent, Topic};

use crate::message::{intent, notification_id};
use crate::metrics::METRICS;
use crate::store::{self, NewNotification};

/// The topics the group reads.
pub const TOPICS: [Topic; 5] = [
    Topic::PaymentRejected,
    Topic::AccountDebited,
    Topic::RtgsSettled,
    Topic::AccountDebitReversed,
    Topic::CardTransactionReceived,
];

pub struct Intake;

impl Handler<AnyEvent> for Intake {
    async fn handle(
        &self,
        record: Record<AnyEvent>,
        ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        let Some(intent) = intent(&record.event) else {
            return Ok(());
        };
        let cause = ctx.input().clone();
        let tx = ctx.tx().await?;
        if store::told_any(tx, &intent.payment_id, intent.kind.superseded_by()).await? {
            tracing::info!(payment_id = %intent.payment_id, kind = intent.kind.code(), "a later step was told already; this one is not");
            return Ok(());
        }
        let contacts = store::contacts(tx, &intent.customer_ref).await?;
        if contacts.is_empty() {
            METRICS.unreachable.inc();
            tracing::info!(customer_ref = %intent.customer_ref, kind = intent.kind.code(), "no contact for this customer; nothing to send");
            return Ok(());
        }
        for (channel, address) in &contacts {
            let id = notification_id(&intent.payment_id, intent.kind, *channel, address);
            let subject =
                (*channel == crate::message::Channel::Email).then_some(intent.subject.as_str());
            let new = NewNotification {
                id,
                payment_id: &intent.payment_id,
                kind: intent.kind,
                customer_ref: &intent.customer_ref,
                channel: *channel,
                recipient: address,
                subject,
                body: &intent.text,
                cause: &cause,
                cause_headers: &record.meta.headers,
            };
            if store::record(tx, &new).await? {
                tracing::info!(notification_id = %id, payment_id = %intent.payment_id, kind = intent.kind.code(), channel = %channel, "notification recorded");
            }
        }
        Ok(())
    }
}
