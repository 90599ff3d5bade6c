//! The ledger's invariants, checked over one consistent snapshot.

use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::LedgerError;

/// The four balances of an account, or their sums over accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balances {
    pub debits_pending: i64,
    pub debits_posted: i64,
    pub credits_pending: i64,
    pub credits_posted: i64,
}

/// The sums over all accounts; double entry makes each pair equal.
pub type Totals = Balances;

/// An account flagged `debits_must_not_exceed_credits` whose debits do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdrawn {
    pub account: String,
    pub balances: Balances,
}

/// An account whose balances are not what its transfers add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountMismatch {
    pub account: String,
    pub stored: Balances,
    pub from_transfers: Balances,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckReport {
    pub totals: Totals,
    pub overdrawn: Vec<Overdrawn>,
    pub mismatched: Vec<AccountMismatch>,
    /// Holds with more than one post or void.
    pub resolved_more_than_once: Vec<Uuid>,
    /// Posts and voids naming no hold, or differing from the hold they name.
    pub orphan_resolutions: Vec<Uuid>,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        let t = &self.totals;
        t.debits_pending == t.credits_pending
            && t.debits_posted == t.credits_posted
            && self.overdrawn.is_empty()
            && self.mismatched.is_empty()
            && self.resolved_more_than_once.is_empty()
            && self.orphan_resolutions.is_empty()
    }
}

const TOTALS_SQL: &str = "SELECT \
    COALESCE(SUM(debits_pending), 0)::BIGINT AS debits_pending, \
    COALESCE(SUM(debits_posted), 0)::BIGINT AS debits_posted, \
    COALESCE(SUM(credits_pending), 0)::BIGINT AS credits_pending, \
    COALESCE(SUM(credits_posted), 0)::BIGINT AS credits_posted \
    FROM accounts";

const OVERDRAWN_SQL: &str = "SELECT id AS account, debits_pending, debits_posted, \
    credits_pending, credits_posted FROM accounts \
    WHERE debits_must_not_exceed_credits \
      AND debits_pending + debits_posted > credits_posted ORDER BY id";

/// Each transfer's effect on its two accounts, summed per account: a hold
/// adds to pending, its post moves pending to posted, its void removes
/// pending, a single-phase transfer adds to posted.
const MISMATCH_SQL: &str = "WITH legs AS ( \
      SELECT debit_account AS account, \
        CASE kind WHEN 'PENDING' THEN amount_minor \
                  WHEN 'POSTED' THEN 0 ELSE -amount_minor END AS d_pending, \
        CASE WHEN kind IN ('POST_PENDING', 'POSTED') THEN amount_minor ELSE 0 END AS d_posted, \
        0::BIGINT AS c_pending, 0::BIGINT AS c_posted \
      FROM transfers \
      UNION ALL \
      SELECT credit_account, 0, 0, \
        CASE kind WHEN 'PENDING' THEN amount_minor \
                  WHEN 'POSTED' THEN 0 ELSE -amount_minor END, \
        CASE WHEN kind IN ('POST_PENDING', 'POSTED') THEN amount_minor ELSE 0 END \
      FROM transfers), \
    sums AS ( \
      SELECT account, SUM(d_pending)::BIGINT AS d_pending, SUM(d_posted)::BIGINT AS d_posted, \
             SUM(c_pending)::BIGINT AS c_pending, SUM(c_posted)::BIGINT AS c_posted \
      FROM legs GROUP BY account) \
    SELECT COALESCE(a.id, s.account) AS account, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, \
      COALESCE(s.d_pending, 0) AS d_pending, COALESCE(s.d_posted, 0) AS d_posted, \
      COALESCE(s.c_pending, 0) AS c_pending, COALESCE(s.c_posted, 0) AS c_posted \
    FROM accounts a FULL JOIN sums s ON s.account = a.id \
    WHERE (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) \
      IS DISTINCT FROM (s.d_pending, s.d_posted, s.c_pending, s.c_posted) \
      AND NOT (s.account IS NULL AND a.debits_pending = 0 AND a.debits_posted = 0 \
               AND a.credits_pending = 0 AND a.credits_posted = 0) \
    ORDER BY 1";

const RESOLVED_TWICE_SQL: &str = "SELECT pending_id FROM transfers \
    WHERE pending_id IS NOT NULL GROUP BY pending_id HAVING COUNT(*) > 1 ORDER BY 1";

const ORPHANS_SQL: &str = "SELECT r.id FROM transfers r \
    LEFT JOIN transfers h ON h.id = r.pending_id AND h.kind = 'PENDING' \
    WHERE r.kind IN ('POST_PENDING', 'VOID_PENDING') \
      AND (h.id IS NULL OR h.amount_minor <> r.amount_minor OR h.currency <> r.currency \
           OR h.debit_account <> r.debit_account OR h.credit_account <> r.credit_account) \
    ORDER BY 1";

/// Checks every invariant in one REPEATABLE READ snapshot, so a ledger
/// busy with holds is judged at one instant.
pub async fn check(pool: &PgPool) -> Result<CheckReport, LedgerError> {
    let mut tx = paystream_bus::pool::read_only_snapshot(pool).await?;

    let row = sqlx::query(TOTALS_SQL).fetch_one(&mut *tx).await?;
    let totals = balances(&row, BALANCE_COLUMNS)?;

    let mut overdrawn = Vec::new();
    for row in sqlx::query(OVERDRAWN_SQL).fetch_all(&mut *tx).await? {
        overdrawn.push(Overdrawn {
            account: row.try_get("account")?,
            balances: balances(&row, BALANCE_COLUMNS)?,
        });
    }

    let mut mismatched = Vec::new();
    for row in sqlx::query(MISMATCH_SQL).fetch_all(&mut *tx).await? {
        mismatched.push(AccountMismatch {
            account: row.try_get("account")?,
            stored: nullable_balances(&row, BALANCE_COLUMNS)?,
            from_transfers: balances(&row, ["d_pending", "d_posted", "c_pending", "c_posted"])?,
        });
    }

    let resolved_more_than_once = ids(sqlx::query(RESOLVED_TWICE_SQL).fetch_all(&mut *tx).await?)?;
    let orphan_resolutions = ids(sqlx::query(ORPHANS_SQL).fetch_all(&mut *tx).await?)?;
    tx.commit().await?;

    Ok(CheckReport {
        totals,
        overdrawn,
        mismatched,
        resolved_more_than_once,
        orphan_resolutions,
    })
}

/// The four balance columns, as `accounts` names them.
pub(super) const BALANCE_COLUMNS: [&str; 4] = [
    "debits_pending",
    "debits_posted",
    "credits_pending",
    "credits_posted",
];

pub(super) fn balances(
    row: &sqlx::postgres::PgRow,
    columns: [&str; 4],
) -> Result<Balances, LedgerError> {
    Ok(Balances {
        debits_pending: row.try_get(columns[0])?,
        debits_posted: row.try_get(columns[1])?,
        credits_pending: row.try_get(columns[2])?,
        credits_posted: row.try_get(columns[3])?,
    })
}

/// An account missing from `accounts` (only possible if transfers name an
/// account that was never created) has no stored balances: shown as zero.
fn nullable_balances(
    row: &sqlx::postgres::PgRow,
    columns: [&str; 4],
) -> Result<Balances, LedgerError> {
    let get = |c: &str| -> Result<i64, LedgerError> {
        Ok(row.try_get::<Option<i64>, _>(c)?.unwrap_or(0))
    };
    Ok(Balances {
        debits_pending: get(columns[0])?,
        debits_posted: get(columns[1])?,
        credits_pending: get(columns[2])?,
        credits_posted: get(columns[3])?,
    })
}

fn ids(rows: Vec<sqlx::postgres::PgRow>) -> Result<Vec<Uuid>, LedgerError> {
    rows.iter()
        .map(|row| Ok(row.try_get::<Uuid, _>(0)?))
        .collect()
}
