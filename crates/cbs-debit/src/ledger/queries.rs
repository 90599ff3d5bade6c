//! Reading an account: its balances and its last movements.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::check::{BALANCE_COLUMNS, balances};
use super::{AccountFlags, Balances, Kind, LedgerError};

/// An account as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    pub id: String,
    pub currency: String,
    pub flags: AccountFlags,
    pub balances: Balances,
    /// credits_posted − debits_posted − debits_pending: what a new hold may take.
    pub available_minor: i64,
    /// Newest first.
    pub movements: Vec<Movement>,
}

/// One transfer as it touched the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub transfer_id: Uuid,
    pub payment_id: Uuid,
    pub kind: Kind,
    /// True when the account is the transfer's debit side.
    pub debit: bool,
    pub counterparty: String,
    pub amount_minor: i64,
    /// For a post or a void: the hold it resolved.
    pub pending_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

const MOVEMENTS_SQL: &str = "SELECT * FROM ( \
      (SELECT id, payment_id, kind, TRUE AS debit, credit_account AS counterparty, \
              amount_minor, pending_id, created_at \
       FROM transfers WHERE debit_account = $1 ORDER BY created_at DESC LIMIT $2) \
      UNION ALL \
      (SELECT id, payment_id, kind, FALSE, debit_account, amount_minor, pending_id, created_at \
       FROM transfers WHERE credit_account = $1 ORDER BY created_at DESC LIMIT $2) \
    ) m ORDER BY created_at DESC, id LIMIT $2";

/// The account and its last `movements` transfers, or `None` if there is
/// no such account. Both reads share one snapshot, so the balances are the
/// sum of the movements as of one instant.
pub async fn account_view(
    pool: &PgPool,
    id: &str,
    movements: i64,
) -> Result<Option<AccountView>, LedgerError> {
    let mut tx = paystream_bus::pool::read_only_snapshot(pool).await?;
    let Some(row) = sqlx::query(
        "SELECT id, currency, debits_must_not_exceed_credits, closed, blocked, \
         debits_pending, debits_posted, credits_pending, credits_posted FROM accounts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let balances = balances(&row, BALANCE_COLUMNS)?;
    let mut view = AccountView {
        id: row.try_get("id")?,
        currency: row.try_get("currency")?,
        flags: AccountFlags {
            debits_must_not_exceed_credits: row.try_get("debits_must_not_exceed_credits")?,
            closed: row.try_get("closed")?,
            blocked: row.try_get("blocked")?,
        },
        available_minor: balances.credits_posted - balances.debits_posted - balances.debits_pending,
        balances,
        movements: Vec::new(),
    };
    for row in sqlx::query(MOVEMENTS_SQL)
        .bind(id)
        .bind(movements)
        .fetch_all(&mut *tx)
        .await?
    {
        view.movements.push(Movement {
            transfer_id: row.try_get("id")?,
            payment_id: row.try_get("payment_id")?,
            kind: Kind::from_db(row.try_get("kind")?)?,
            debit: row.try_get("debit")?,
            counterparty: row.try_get("counterparty")?,
            amount_minor: row.try_get("amount_minor")?,
            pending_id: row.try_get("pending_id")?,
            at: row.try_get("created_at")?,
        });
    }
    tx.commit().await?;
    Ok(Some(view))
}
