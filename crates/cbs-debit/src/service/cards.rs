//! Card transactions through the ledger: the consumer group `ledger`, one
//! of three independent groups on `card.transaction.received` (with
//! notifications and analytics). A validated card transaction is posted at
//! once from the card's account; a declined one moves nothing.

use paystream_bus::{Context, Handler, HandlerError, Record};
use paystream_contract::{AccountDebited, CardTransactionReceived, DebitOrigin, card_payment_id};

use super::ledger_error;
use super::metrics::METRICS;
use crate::ledger::{self, Currency, DirectPosting, Transfer, card_account};

/// The processor's status of a card transaction that moved money.
const VALIDATED: &str = "VALIDATED";

pub struct Cards;

impl Handler<CardTransactionReceived> for Cards {
    async fn handle(
        &self,
        record: Record<CardTransactionReceived>,
        ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        let card = record.event;
        if card.transaction_status != VALIDATED {
            tracing::info!(card_transaction_id = %card.card_transaction_id, status = %card.transaction_status, "card transaction not validated by the processor: nothing to post");
            return Ok(());
        }
        // The processor has already authorised the transaction, so the
        // ledger cannot refuse it to anyone: an unknown card, a bad
        // currency or a refused posting is an operator's case (a forced
        // posting, a collection), dead-lettered with its reason.
        let currency = Currency::parse(&card.currency).map_err(HandlerError::permanent)?;
        let tx = ctx.tx().await?;
        let account = card_account(tx, &card.card_id)
            .await
            .map_err(ledger_error)?
            .ok_or_else(|| {
                HandlerError::permanent(format!(
                    "card {} is not attached to any account of the ledger",
                    card.card_id
                ))
            })?;
        let payment_id = card_payment_id(&card.card_transaction_id);
        let transfer = Transfer::card(payment_id, &account, card.amount_minor, currency);
        match ledger::post_direct(tx, &transfer)
            .await
            .map_err(ledger_error)?
        {
            DirectPosting::Posted => {
                METRICS.transfers.with_label_values(&["card"]).inc();
            }
            // Posted by an earlier delivery under another eventId, which
            // announced it then.
            DirectPosting::AlreadyPosted => return Ok(()),
            DirectPosting::Refused(refusal) => {
                METRICS
                    .refusals
                    .with_label_values(&["CARD_TRANSACTION", refusal.code.code()])
                    .inc();
                return Err(HandlerError::permanent(format!(
                    "the ledger refused card transaction {} on {account}: {} {}",
                    card.card_transaction_id,
                    refusal.code.code(),
                    refusal.text
                )));
            }
        }
        tracing::info!(card_transaction_id = %card.card_transaction_id, %payment_id, %account, amount_minor = card.amount_minor, "card transaction posted");
        ctx.emit(|envelope| AccountDebited {
            envelope,
            payment_id,
            origin: DebitOrigin::CardTransaction,
            account_id: account,
            posting_id: transfer.id,
            amount_minor: transfer.amount_minor,
            currency: card.currency.clone(),
            end_to_end_id: None,
            uetr: None,
            debtor: None,
            creditor: None,
            corridor_code: None,
            card_id: Some(card.card_id.clone()),
            merchant_name: Some(card.merchant_name.clone()),
            remittance_information: None,
        });
        Ok(())
    }
}
