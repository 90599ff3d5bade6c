//! Holds and single-phase transfers: one statement that checks the
//! transfer id, debits the debtor only if it may be debited, credits the
//! other side and records the transfer.

use sqlx::{PgConnection, Row};

use super::{Kind, LedgerError, Refusal, RefusalReason, Transfer};

/// The outcome of [`hold`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// The amount is reserved by this call.
    Held,
    /// An earlier call with this id reserved it; nothing moved now.
    AlreadyHeld,
    Refused(Refusal),
}

/// The outcome of [`post_direct`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectPosting {
    Posted,
    /// An earlier call with this id posted it; nothing moved now.
    AlreadyPosted,
    Refused(Refusal),
}

/// What [`apply`] did.
enum Applied {
    Inserted,
    Existing,
    Refused(Refusal),
}

/// One round trip. The debtor's UPDATE carries every condition, so under
/// concurrency PostgreSQL re-evaluates it on the row's latest version after
/// the row lock is granted: no read-then-write race can overdraw. The credit
/// and the insert run only if the debit did; an existing transfer with this
/// id stops the debit, and is returned for comparison.
macro_rules! movement_sql {
    ($debit:literal, $credit:literal, $kind:literal) => {
        concat!(
            "WITH existing AS (",
            "  SELECT payment_id, debit_account, credit_account, amount_minor, currency, kind",
            "  FROM transfers WHERE id = $1), ",
            "debit AS (",
            "  UPDATE accounts SET ",
            $debit,
            " = ",
            $debit,
            " + $5",
            "  WHERE id = $3 AND currency = $6 AND NOT closed AND NOT blocked",
            "    AND (NOT debits_must_not_exceed_credits",
            "         OR credits_posted - debits_posted - debits_pending >= $5)",
            "    AND NOT EXISTS (SELECT 1 FROM existing)",
            "  RETURNING id), ",
            "credit AS (",
            "  UPDATE accounts SET ",
            $credit,
            " = ",
            $credit,
            " + $5",
            "  WHERE id = $4 AND currency = $6 AND EXISTS (SELECT 1 FROM debit)",
            "  RETURNING id), ",
            "inserted AS (",
            "  INSERT INTO transfers",
            "    (id, payment_id, debit_account, credit_account, amount_minor, currency, kind)",
            "  SELECT $1, $2, $3, $4, $5, $6, '",
            $kind,
            "' WHERE EXISTS (SELECT 1 FROM credit)",
            "  RETURNING id) ",
            "SELECT e.payment_id, e.debit_account, e.credit_account, e.amount_minor,",
            "       e.currency, e.kind,",
            "       EXISTS (SELECT 1 FROM debit) AS debited,",
            "       EXISTS (SELECT 1 FROM inserted) AS inserted ",
            "FROM (SELECT 1) AS one LEFT JOIN existing e ON TRUE"
        )
    };
}

const HOLD_SQL: &str = movement_sql!("debits_pending", "credits_pending", "PENDING");
const POSTED_SQL: &str = movement_sql!("debits_posted", "credits_posted", "POSTED");

/// Reserves `transfer.amount_minor` on the debtor and credits the other side
/// as pending. The same id with the same fields is `Held` again without
/// moving money; the same id with other fields is [`LedgerError::Conflict`].
pub async fn hold(conn: &mut PgConnection, transfer: &Transfer) -> Result<Hold, LedgerError> {
    Ok(match apply(conn, transfer, Kind::Pending).await? {
        Applied::Inserted => Hold::Held,
        Applied::Existing => Hold::AlreadyHeld,
        Applied::Refused(refusal) => Hold::Refused(refusal),
    })
}

/// A single-phase transfer, posted at once (card transactions), under the
/// same refusal rules and idempotency as [`hold`].
pub async fn post_direct(
    conn: &mut PgConnection,
    transfer: &Transfer,
) -> Result<DirectPosting, LedgerError> {
    Ok(match apply(conn, transfer, Kind::Posted).await? {
        Applied::Inserted => DirectPosting::Posted,
        Applied::Existing => DirectPosting::AlreadyPosted,
        Applied::Refused(refusal) => DirectPosting::Refused(refusal),
    })
}

async fn apply(
    conn: &mut PgConnection,
    transfer: &Transfer,
    kind: Kind,
) -> Result<Applied, LedgerError> {
    if transfer.amount_minor <= 0 {
        return Ok(Applied::Refused(RefusalReason::InvalidAmount.into()));
    }
    if transfer.debit_account == transfer.credit_account {
        return Err(LedgerError::InvalidTransfer {
            id: transfer.id,
            reason: "the debit and credit accounts are the same",
        });
    }
    let sql = match kind {
        Kind::Pending => HOLD_SQL,
        _ => POSTED_SQL,
    };
    let row = sqlx::query(sql)
        .bind(transfer.id)
        .bind(transfer.payment_id)
        .bind(&transfer.debit_account)
        .bind(&transfer.credit_account)
        .bind(transfer.amount_minor)
        .bind(transfer.currency.as_str())
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| LedgerError::from_write(e, transfer.id))?;

    if let Some(existing_kind) = row.try_get::<Option<String>, _>("kind")? {
        let same = Kind::from_db(&existing_kind)? == kind
            && row.try_get::<Option<uuid::Uuid>, _>("payment_id")? == Some(transfer.payment_id)
            && row
                .try_get::<Option<String>, _>("debit_account")?
                .as_deref()
                == Some(transfer.debit_account.as_str())
            && row
                .try_get::<Option<String>, _>("credit_account")?
                .as_deref()
                == Some(transfer.credit_account.as_str())
            && row.try_get::<Option<i64>, _>("amount_minor")? == Some(transfer.amount_minor)
            && row.try_get::<Option<String>, _>("currency")?.as_deref()
                == Some(transfer.currency.as_str());
        return if same {
            Ok(Applied::Existing)
        } else {
            Err(LedgerError::Conflict { id: transfer.id })
        };
    }
    if row.try_get::<bool, _>("inserted")? {
        return Ok(Applied::Inserted);
    }
    if row.try_get::<bool, _>("debited")? {
        // The debtor was debited in this statement; the caller's rollback
        // on this error undoes it.
        return Err(LedgerError::CreditAccount {
            account: transfer.credit_account.clone(),
            currency: transfer.currency.clone(),
        });
    }
    Ok(Applied::Refused(why_refused(conn, transfer).await?.into()))
}

/// Read only after the conditional update refused: the answer names the
/// first condition that fails now. If none does (the balance changed since),
/// the update saw too little money, so it is still insufficient funds.
async fn why_refused(
    conn: &mut PgConnection,
    transfer: &Transfer,
) -> Result<RefusalReason, LedgerError> {
    let row = sqlx::query("SELECT currency, closed, blocked FROM accounts WHERE id = $1")
        .bind(&transfer.debit_account)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(RefusalReason::UnknownAccount);
    };
    Ok(if row.try_get::<bool, _>("closed")? {
        RefusalReason::ClosedAccount
    } else if row.try_get::<bool, _>("blocked")? {
        RefusalReason::BlockedAccount
    } else if row.try_get::<String, _>("currency")? != transfer.currency.as_str() {
        RefusalReason::CurrencyMismatch
    } else {
        RefusalReason::InsufficientFunds
    })
}
