//! Posting and voiding holds: each hold is resolved at most once, enforced
//! by the statement and, under a race, by `UNIQUE (pending_id)`.

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{Currency, Kind, LedgerError, Transfer};

/// A hold's resolution: `id` is the post or void transfer, `hold` the
/// pending transfer it resolved (its id is the hold's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub id: Uuid,
    pub kind: Kind,
    pub hold: Transfer,
    /// An earlier call with this id resolved the hold; nothing moved now.
    pub repeated: bool,
}

/// One round trip: the hold, any resolution it already has, and whether
/// the new id is taken are read in the statement that moves the balances
/// only when the hold is pending and unresolved.
macro_rules! resolution_sql {
    ($debit_set:literal, $credit_set:literal, $kind:literal) => {
        concat!(
            "WITH hold AS (",
            "  SELECT id, payment_id, debit_account, credit_account, amount_minor, currency, kind",
            "  FROM transfers WHERE id = $1), ",
            "resolution AS (SELECT id, kind FROM transfers WHERE pending_id = $1), ",
            "clash AS (SELECT id FROM transfers WHERE id = $2), ",
            "ok AS (",
            "  SELECT * FROM hold WHERE kind = 'PENDING'",
            "    AND NOT EXISTS (SELECT 1 FROM resolution) AND NOT EXISTS (SELECT 1 FROM clash)), ",
            "debit AS (",
            "  UPDATE accounts a SET ",
            $debit_set,
            "  FROM ok WHERE a.id = ok.debit_account RETURNING a.id), ",
            "credit AS (",
            "  UPDATE accounts a SET ",
            $credit_set,
            "  FROM ok WHERE a.id = ok.credit_account AND EXISTS (SELECT 1 FROM debit)",
            "  RETURNING a.id), ",
            "inserted AS (",
            "  INSERT INTO transfers (id, payment_id, debit_account, credit_account,",
            "                         amount_minor, currency, kind, pending_id)",
            "  SELECT $2, payment_id, debit_account, credit_account, amount_minor, currency, '",
            $kind,
            "', $1",
            "  FROM ok WHERE EXISTS (SELECT 1 FROM credit) RETURNING id) ",
            "SELECT h.payment_id, h.debit_account, h.credit_account, h.amount_minor,",
            "       h.currency, h.kind, r.id AS resolution_id, r.kind AS resolution_kind,",
            "       EXISTS (SELECT 1 FROM clash) AS clash,",
            "       EXISTS (SELECT 1 FROM inserted) AS inserted ",
            "FROM (SELECT 1) AS one LEFT JOIN hold h ON TRUE LEFT JOIN resolution r ON TRUE"
        )
    };
}

const POST_SQL: &str = resolution_sql!(
    "debits_pending = a.debits_pending - ok.amount_minor, debits_posted = a.debits_posted + ok.amount_minor",
    "credits_pending = a.credits_pending - ok.amount_minor, credits_posted = a.credits_posted + ok.amount_minor",
    "POST_PENDING"
);
const VOID_SQL: &str = resolution_sql!(
    "debits_pending = a.debits_pending - ok.amount_minor",
    "credits_pending = a.credits_pending - ok.amount_minor",
    "VOID_PENDING"
);

/// Posts the hold: its amount moves from pending to posted on both
/// accounts. Posting it again with the same `post_id` returns the same
/// outcome and moves nothing.
pub async fn post(
    conn: &mut PgConnection,
    pending_id: Uuid,
    post_id: Uuid,
) -> Result<Resolved, LedgerError> {
    resolve(conn, pending_id, post_id, Kind::PostPending).await
}

/// Voids the hold: its amount is released from pending on both accounts.
/// Idempotent by `void_id` as [`post`] is by its id.
pub async fn void(
    conn: &mut PgConnection,
    pending_id: Uuid,
    void_id: Uuid,
) -> Result<Resolved, LedgerError> {
    resolve(conn, pending_id, void_id, Kind::VoidPending).await
}

async fn resolve(
    conn: &mut PgConnection,
    pending_id: Uuid,
    id: Uuid,
    kind: Kind,
) -> Result<Resolved, LedgerError> {
    let sql = match kind {
        Kind::PostPending => POST_SQL,
        _ => VOID_SQL,
    };
    let row = sqlx::query(sql)
        .bind(pending_id)
        .bind(id)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| LedgerError::from_resolution(e, id))?;

    let Some(hold_kind) = row.try_get::<Option<String>, _>("kind")? else {
        return Err(LedgerError::UnknownHold { pending_id });
    };
    if Kind::from_db(&hold_kind)? != Kind::Pending {
        return Err(LedgerError::UnknownHold { pending_id });
    }
    let hold = Transfer {
        id: pending_id,
        payment_id: row
            .try_get::<Option<Uuid>, _>("payment_id")?
            .ok_or_else(|| missing("payment_id"))?,
        debit_account: required(&row, "debit_account")?,
        credit_account: required(&row, "credit_account")?,
        amount_minor: row
            .try_get::<Option<i64>, _>("amount_minor")?
            .ok_or_else(|| missing("amount_minor"))?,
        currency: Currency::parse(&required(&row, "currency")?)?,
    };
    if let Some(resolution_kind) = row.try_get::<Option<String>, _>("resolution_kind")? {
        let by = Kind::from_db(&resolution_kind)?;
        let resolution_id = row.try_get::<Option<Uuid>, _>("resolution_id")?;
        return if by == kind && resolution_id == Some(id) {
            Ok(Resolved {
                id,
                kind,
                hold,
                repeated: true,
            })
        } else {
            Err(LedgerError::AlreadyResolved { pending_id, by })
        };
    }
    if row.try_get::<bool, _>("clash")? {
        return Err(LedgerError::Conflict { id });
    }
    if row.try_get::<bool, _>("inserted")? {
        return Ok(Resolved {
            id,
            kind,
            hold,
            repeated: false,
        });
    }
    Err(LedgerError::Inconsistent(format!(
        "hold {pending_id} is pending but its accounts could not be updated"
    )))
}

fn required(row: &sqlx::postgres::PgRow, column: &'static str) -> Result<String, LedgerError> {
    row.try_get::<Option<String>, _>(column)?
        .ok_or_else(|| missing(column))
}

fn missing(column: &str) -> LedgerError {
    LedgerError::Inconsistent(format!("hold row without {column}"))
}
