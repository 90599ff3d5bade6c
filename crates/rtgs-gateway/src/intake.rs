//! The consumer of `account.debited`: a debited credit transfer becomes a
//! recorded submission (state SUBMITTING, its pacs.008 built and kept), in
//! the same transaction as the processed eventId. Nothing is sent here: the
//! sender picks the submission up once this commits, so a slow or absent
//! rail never holds up the partition.

use chrono::{SubsecRound, Utc};
use paystream_bus::{Context, Handler, HandlerError, Record};
use paystream_contract::AccountDebited;

use crate::store::{self, NewSubmission, Recorded};
use crate::transfer::{credit_transfer, goes_to_rail};

pub struct Intake;

impl Handler<AccountDebited> for Intake {
    async fn handle(
        &self,
        record: Record<AccountDebited>,
        ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        let debited = record.event;
        if !goes_to_rail(&debited) {
            return Ok(());
        }
        // Milliseconds, as the document says them: the stored bytes and a
        // document built again read the same.
        let transfer = credit_transfer(&debited, Utc::now().trunc_subsecs(3))
            .map_err(HandlerError::permanent)?;
        let document = transfer.to_xml().map_err(HandlerError::permanent)?;
        let cause = ctx.input().clone();
        let tx = ctx.tx().await?;
        let (debtor_agent_bic, creditor_agent_bic) = (
            transfer.instructing_agent.bic.as_str(),
            transfer.instructed_agent.bic.as_str(),
        );
        let recorded = store::record(
            tx,
            &NewSubmission {
                payment_id: debited.payment_id,
                uetr: transfer.uetr,
                message_id: &transfer.message_id,
                end_to_end_id: &transfer.end_to_end_id,
                document: &document,
                debtor_account: &debited.account_id,
                debtor_agent_bic,
                creditor_agent_bic,
                amount_minor: debited.amount_minor,
                currency: &debited.currency,
                cause: &cause,
                cause_headers: &record.meta.headers,
            },
        )
        .await?;
        match recorded {
            Recorded::New => {
                tracing::info!(payment_id = %debited.payment_id, uetr = %transfer.uetr, amount_minor = debited.amount_minor, currency = %debited.currency, "submission recorded");
                Ok(())
            }
            Recorded::Already => {
                tracing::info!(payment_id = %debited.payment_id, "payment already submitted; this delivery changes nothing");
                Ok(())
            }
            Recorded::UetrTaken { by } => Err(HandlerError::permanent(format!(
                "UETR {} already belongs to payment {by}; payment {} is not sent under it",
                transfer.uetr, debited.payment_id
            ))),
        }
    }
}
