//! Credit transfers through the ledger: `payment.validated` places a hold,
//! `rtgs.settled` posts it, `rtgs.rejected` voids it. One consumer group
//! reads the three topics; each record's ledger writes, its decision and its
//! outgoing events commit in the record's one transaction.

use std::time::Instant;

use paystream_bus::{Context, Handler, HandlerError, Record};
use paystream_contract::{
    AccountDebitReversed, AccountDebited, AnyEvent, DebitOrigin, PaymentRejected, PaymentValidated,
    RejectionStage, RtgsRejected, RtgsSettled, Topic,
};
use sqlx::PgConnection;
use uuid::Uuid;

use super::metrics::METRICS;
use super::{ledger_error, record_decision};
use crate::ledger::{
    self, Currency, Hold, Kind, LedgerError, Refusal, RefusalReason, Transfer, transfer_id,
};

/// The topics the payments group reads.
pub const TOPICS: [Topic; 3] = [
    Topic::PaymentValidated,
    Topic::RtgsSettled,
    Topic::RtgsRejected,
];

pub struct Payments;

impl Handler<AnyEvent> for Payments {
    async fn handle(
        &self,
        record: Record<AnyEvent>,
        ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        match record.event {
            AnyEvent::PaymentValidated(payment) => hold(&payment, ctx).await,
            AnyEvent::RtgsSettled(settled) => post(&settled, ctx).await,
            AnyEvent::RtgsRejected(rejected) => void(&rejected, ctx).await,
            other => Err(HandlerError::permanent(format!(
                "the payments group does not read {}",
                other.topic()
            ))),
        }
    }
}

async fn hold(payment: &PaymentValidated, ctx: &mut Context) -> Result<(), HandlerError> {
    let started = Instant::now();
    let event_id = ctx.input().event_id;
    let tx = ctx.tx().await?;
    if let Some(decision) = earlier_decision(tx, payment.payment_id).await? {
        tracing::info!(payment_id = %payment.payment_id, decision, "payment already decided by the ledger; this delivery changes nothing");
        return Ok(());
    }
    let outcome = match Currency::parse(&payment.currency) {
        Ok(currency) => {
            let transfer = Transfer::hold(
                payment.payment_id,
                &payment.debtor.account,
                payment.amount_minor,
                currency,
            );
            ledger::hold(tx, &transfer).await.map_err(ledger_error)?
        }
        Err(_) => Hold::Refused(RefusalReason::UnknownCurrency.into()),
    };
    match outcome {
        Hold::Held | Hold::AlreadyHeld => {
            record_decision(tx, payment.payment_id, None, event_id).await?;
            emit_debited(payment, ctx);
            METRICS.transfers.with_label_values(&["hold"]).inc();
            tracing::info!(payment_id = %payment.payment_id, amount_minor = payment.amount_minor, currency = %payment.currency, "hold placed");
        }
        Hold::Refused(refusal) => {
            record_decision(tx, payment.payment_id, Some(&refusal), event_id).await?;
            emit_refused(payment, &refusal, ctx);
            METRICS
                .refusals
                .with_label_values(&["CREDIT_TRANSFER", refusal.code.code()])
                .inc();
            tracing::info!(payment_id = %payment.payment_id, reason_code = refusal.code.code(), "debit refused");
        }
    }
    METRICS
        .hold_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(())
}

async fn earlier_decision(
    tx: &mut PgConnection,
    payment_id: Uuid,
) -> Result<Option<String>, HandlerError> {
    Ok(
        sqlx::query_scalar("SELECT decision FROM debit_decisions WHERE payment_id = $1")
            .bind(payment_id)
            .fetch_optional(tx)
            .await?,
    )
}

fn emit_debited(payment: &PaymentValidated, ctx: &mut Context) {
    ctx.emit(|envelope| AccountDebited {
        envelope,
        payment_id: payment.payment_id,
        origin: DebitOrigin::CreditTransfer,
        account_id: payment.debtor.account.clone(),
        posting_id: transfer_id(payment.payment_id, Kind::Pending),
        amount_minor: payment.amount_minor,
        currency: payment.currency.clone(),
        end_to_end_id: Some(payment.end_to_end_id.clone()),
        uetr: Some(payment.uetr.to_string()),
        debtor: Some(payment.debtor.clone()),
        creditor: Some(payment.creditor.clone()),
        corridor_code: Some(payment.corridor_code.clone()),
        card_id: None,
        merchant_name: None,
        remittance_information: payment.remittance_information.clone(),
    });
}

fn emit_refused(payment: &PaymentValidated, refusal: &Refusal, ctx: &mut Context) {
    ctx.emit(|envelope| PaymentRejected {
        envelope,
        payment_id: payment.payment_id,
        stage: RejectionStage::Debit,
        reason_code: refusal.code.clone(),
        reason_text: refusal.text.clone(),
        debtor_account: payment.debtor.account.clone(),
        amount_minor: payment.amount_minor,
        currency: payment.currency.clone(),
        corridor_code: Some(payment.corridor_code.clone()),
    });
}

/// The rail settled: the hold becomes a posted debit. Nothing is emitted;
/// `rtgs.settled` is itself the payment's final event.
async fn post(settled: &RtgsSettled, ctx: &mut Context) -> Result<(), HandlerError> {
    let pending_id = transfer_id(settled.payment_id, Kind::Pending);
    let post_id = transfer_id(settled.payment_id, Kind::PostPending);
    let resolved = ledger::post(ctx.tx().await?, pending_id, post_id)
        .await
        .map_err(|error| resolution_error(error, "settled"))?;
    if !resolved.repeated {
        METRICS.transfers.with_label_values(&["post"]).inc();
    }
    tracing::info!(payment_id = %settled.payment_id, repeated = resolved.repeated, "hold posted: the rail settled");
    Ok(())
}

/// The rail rejected: the hold is voided and the reversal announced with
/// the rail's reason. A repeated rejection voids nothing and says nothing.
async fn void(rejected: &RtgsRejected, ctx: &mut Context) -> Result<(), HandlerError> {
    let pending_id = transfer_id(rejected.payment_id, Kind::Pending);
    let void_id = transfer_id(rejected.payment_id, Kind::VoidPending);
    let resolved = ledger::void(ctx.tx().await?, pending_id, void_id)
        .await
        .map_err(|error| resolution_error(error, "rejected"))?;
    tracing::info!(payment_id = %rejected.payment_id, repeated = resolved.repeated, reason_code = rejected.reason_code.code(), "hold voided: the rail rejected");
    if resolved.repeated {
        return Ok(());
    }
    METRICS.transfers.with_label_values(&["void"]).inc();
    ctx.emit(|envelope| AccountDebitReversed {
        envelope,
        payment_id: rejected.payment_id,
        account_id: resolved.hold.debit_account.clone(),
        posting_id: resolved.id,
        reversed_posting_id: resolved.hold.id,
        amount_minor: resolved.hold.amount_minor,
        currency: resolved.hold.currency.to_string(),
        reason_code: rejected.reason_code.clone(),
        reason_text: rejected.reason_text.clone(),
    });
    Ok(())
}

/// A rail outcome for a hold the ledger never placed, or for one already
/// resolved the other way, is a contradiction only an operator can settle:
/// dead-lettered with what the ledger knows, never guessed at.
fn resolution_error(error: LedgerError, outcome: &str) -> HandlerError {
    match error {
        LedgerError::UnknownHold { pending_id } => HandlerError::permanent(format!(
            "the rail {outcome} a payment the ledger holds nothing for (hold {pending_id})"
        )),
        LedgerError::AlreadyResolved { pending_id, by } => HandlerError::permanent(format!(
            "the rail {outcome} a payment whose hold {pending_id} was already resolved by {}",
            by.as_str()
        )),
        other => ledger_error(other),
    }
}
