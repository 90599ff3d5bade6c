//! The pacs.008 a debited credit transfer becomes. Built once, when the
//! submission is recorded, and kept as sent: its ids are derived from the
//! payment, so building it again for the same payment gives the same ids,
//! and the stored bytes are what every re-send carries.

use chrono::{DateTime, Utc};
use paystream_contract::{AccountDebited, DebitOrigin};
use paystream_iso20022::{Agent, CreditTransfer, Iso20022Error, Party};
use uuid::Uuid;

/// The EndToEndId ISO 20022 prescribes when the debtor gave none.
pub const NOT_PROVIDED: &str = "NOTPROVIDED";

/// Why a debited payment cannot go to the rail: it lacks what a pacs.008
/// must carry. A contract breach upstream, dead-lettered with this reason.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("a credit transfer without its {0}")]
    Missing(&'static str),
    #[error("uetr {0:?} is not a UUID")]
    Uetr(String),
    #[error(transparent)]
    Message(#[from] Iso20022Error),
}

/// Card debits are settled by the card scheme, not by the rail.
pub fn goes_to_rail(debited: &AccountDebited) -> bool {
    debited.origin == DebitOrigin::CreditTransfer
}

/// The payment's UETR: the one it was given at submission. A payment is
/// never sent under a second one.
pub fn uetr(debited: &AccountDebited) -> Result<Uuid, TransferError> {
    let text = debited
        .uetr
        .as_deref()
        .ok_or(TransferError::Missing("uetr"))?;
    Uuid::parse_str(text.trim()).map_err(|_| TransferError::Uetr(text.to_owned()))
}

/// The pacs.008 for `debited`, created at `now`.
pub fn credit_transfer(
    debited: &AccountDebited,
    now: DateTime<Utc>,
) -> Result<CreditTransfer, TransferError> {
    let debtor = debited
        .debtor
        .as_ref()
        .ok_or(TransferError::Missing("debtor"))?;
    let creditor = debited
        .creditor
        .as_ref()
        .ok_or(TransferError::Missing("creditor"))?;
    // 32 hex digits fit the 35 characters ISO 20022 allows for these ids.
    let id = debited.payment_id.simple().to_string().to_uppercase();
    Ok(CreditTransfer {
        message_id: format!("PS{id}"),
        created_at: now,
        instruction_id: id.clone(),
        end_to_end_id: debited
            .end_to_end_id
            .clone()
            .filter(|e2e| !e2e.trim().is_empty())
            .unwrap_or_else(|| NOT_PROVIDED.to_owned()),
        transaction_id: id,
        uetr: uetr(debited)?,
        amount_minor: debited.amount_minor,
        currency: debited.currency.clone(),
        settlement_date: now.date_naive(),
        instructing_agent: Agent {
            bic: debtor.agent_bic.clone(),
        },
        instructed_agent: Agent {
            bic: creditor.agent_bic.clone(),
        },
        debtor: party(debtor),
        creditor: party(creditor),
        remittance_information: debited.remittance_information.clone(),
    })
}

fn party(party: &paystream_contract::Party) -> Party {
    Party {
        name: party.name.clone(),
        country: party.country.clone(),
        account: party.account.clone(),
        agent: Agent {
            bic: party.agent_bic.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use paystream_contract::samples;

    use super::*;

    #[test]
    fn the_transfer_carries_the_payment_field_by_field() {
        let debited = samples::account_debited();
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 9, 30, 0).unwrap();
        let transfer = credit_transfer(&debited, now).unwrap();
        let read = CreditTransfer::from_xml(&transfer.to_xml().unwrap()).unwrap();
        assert_eq!(read, transfer);
        let debtor = debited.debtor.clone().unwrap();
        let creditor = debited.creditor.clone().unwrap();
        assert_eq!(read.uetr.to_string(), debited.uetr.clone().unwrap());
        assert_eq!(read.amount_minor, debited.amount_minor);
        assert_eq!(read.currency, debited.currency);
        assert_eq!(read.end_to_end_id, debited.end_to_end_id.clone().unwrap());
        assert_eq!(read.debtor.account, debtor.account);
        assert_eq!(read.creditor.account, creditor.account);
        assert_eq!(read.instructing_agent.bic, debtor.agent_bic);
        assert_eq!(read.instructed_agent.bic, creditor.agent_bic);
        assert_eq!(read.remittance_information, debited.remittance_information);
        assert!(read.message_id.len() <= 35 && read.transaction_id.len() <= 35);
        assert_eq!(
            credit_transfer(&debited, now).unwrap().message_id,
            transfer.message_id,
            "built again, the same ids"
        );
    }

    #[test]
    fn a_transfer_without_parties_or_uetr_is_refused_by_name() {
        let mut debited = samples::account_debited();
        debited.creditor = None;
        assert!(matches!(
            credit_transfer(&debited, Utc::now()),
            Err(TransferError::Missing("creditor"))
        ));
        let mut debited = samples::account_debited();
        debited.uetr = Some("not-a-uuid".into());
        assert!(matches!(
            credit_transfer(&debited, Utc::now()),
            Err(TransferError::Uetr(_))
        ));
        let mut card = samples::account_debited();
        card.origin = DebitOrigin::CardTransaction;
        assert!(!goes_to_rail(&card));
    }
}
