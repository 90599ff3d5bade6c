//! Loading accounts: every opening balance is a posted transfer from the
//! currency's equity account, so double entry holds from the first cent.

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{
    Currency, DirectPosting, Kind, LedgerError, Rail, Transfer, equity_account, post_direct,
    settlement_accounts, transfer_id,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountFlags {
    pub debits_must_not_exceed_credits: bool,
    pub closed: bool,
    pub blocked: bool,
}

/// One line of an accounts file:
/// `id,currency,opening_balance_minor,flags[,cards]`, flags separated by `|`
/// (`debits_must_not_exceed_credits|blocked`), and optionally the ids of the
/// cards that debit the account, separated by `|` too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: String,
    pub currency: Currency,
    /// The total the account is opened with: loading tops the account up to
    /// it from equity, and never takes money back.
    pub opening_balance_minor: i64,
    pub flags: AccountFlags,
    pub cards: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadReport {
    pub created: usize,
    pub topped_up: usize,
    pub unchanged: usize,
}

/// Parses an accounts file. A first line starting with `id,` is a header;
/// blank lines and lines starting with `#` are skipped.
pub fn parse_accounts_csv(text: &str) -> Result<Vec<AccountRow>, LedgerError> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || (rows.is_empty() && line.starts_with("id,"))
        {
            continue;
        }
        let csv = |message: String| LedgerError::Csv {
            line: line_no,
            message,
        };
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (id, currency, balance, flags, cards) = match fields[..] {
            [id, currency, balance, flags] => (id, currency, balance, flags, ""),
            [id, currency, balance, flags, cards] => (id, currency, balance, flags, cards),
            _ => {
                return Err(csv(format!(
                    "expected 4 or 5 fields, found {}",
                    fields.len()
                )));
            }
        };
        if id.is_empty() || id.contains(char::is_whitespace) {
            return Err(csv(format!("invalid account id {id:?}")));
        }
        let currency = Currency::parse(currency).map_err(|e| csv(e.to_string()))?;
        let opening_balance_minor = balance
            .parse::<i64>()
            .ok()
            .filter(|amount| *amount >= 0)
            .ok_or_else(|| {
                csv(format!(
                    "opening balance {balance:?} is not a whole number of minor units >= 0"
                ))
            })?;
        let mut parsed = AccountFlags::default();
        for flag in flags.split('|').map(str::trim).filter(|f| !f.is_empty()) {
            match flag {
                "debits_must_not_exceed_credits" => parsed.debits_must_not_exceed_credits = true,
                "closed" => parsed.closed = true,
                "blocked" => parsed.blocked = true,
                other => return Err(csv(format!("unknown flag {other:?}"))),
            }
        }
        let cards: Vec<String> = cards
            .split('|')
            .map(str::trim)
            .filter(|card| !card.is_empty())
            .map(str::to_owned)
            .collect();
        rows.push(AccountRow {
            id: id.to_owned(),
            currency,
            opening_balance_minor,
            flags: parsed,
            cards,
        });
    }
    Ok(rows)
}

/// Creates each account (or updates its flags) and tops it up to its
/// opening balance; loading the same rows again changes nothing. Also
/// opens the currency's settlement and equity accounts.
pub async fn load_accounts(
    conn: &mut PgConnection,
    rows: &[AccountRow],
) -> Result<LoadReport, LedgerError> {
    let mut report = LoadReport::default();
    let mut opened: Vec<&Currency> = Vec::new();
    for row in rows {
        if row.opening_balance_minor < 0 {
            return Err(LedgerError::InvalidAccount {
                account: row.id.clone(),
                reason: "the opening balance is negative",
            });
        }
        if !opened.contains(&&row.currency) {
            open_system_accounts(conn, &row.currency).await?;
            opened.push(&row.currency);
        }
        let created = upsert(conn, row).await?;
        let topped_up = top_up(conn, row).await?;
        attach_cards(conn, row).await?;
        match (created, topped_up) {
            (true, _) => report.created += 1,
            (false, true) => report.topped_up += 1,
            (false, false) => report.unchanged += 1,
        }
    }
    Ok(report)
}

async fn open_system_accounts(
    conn: &mut PgConnection,
    currency: &Currency,
) -> Result<(), LedgerError> {
    let mut ids = settlement_accounts(Rail::Rtgs, currency);
    ids.extend(settlement_accounts(Rail::Card, currency));
    ids.push(equity_account(currency));
    sqlx::query(
        "INSERT INTO accounts (id, currency, debits_must_not_exceed_credits) \
         SELECT id, $2, FALSE FROM UNNEST($1::TEXT[]) AS id ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(currency.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// `Ok(true)` if the account is new. An existing account keeps its
/// balances and takes the file's flags; its currency never changes.
async fn upsert(conn: &mut PgConnection, row: &AccountRow) -> Result<bool, LedgerError> {
    let upserted = sqlx::query(
        "INSERT INTO accounts (id, currency, debits_must_not_exceed_credits, closed, blocked) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET \
           debits_must_not_exceed_credits = EXCLUDED.debits_must_not_exceed_credits, \
           closed = EXCLUDED.closed, blocked = EXCLUDED.blocked \
         WHERE accounts.currency = EXCLUDED.currency \
         RETURNING (xmax = 0) AS created",
    )
    .bind(&row.id)
    .bind(row.currency.as_str())
    .bind(row.flags.debits_must_not_exceed_credits)
    .bind(row.flags.closed)
    .bind(row.flags.blocked)
    .fetch_optional(&mut *conn)
    .await?;
    match upserted {
        Some(upserted) => Ok(upserted.try_get("created")?),
        None => {
            let existing: String =
                sqlx::query_scalar("SELECT currency FROM accounts WHERE id = $1")
                    .bind(&row.id)
                    .fetch_one(&mut *conn)
                    .await?;
            Err(LedgerError::AccountCurrency {
                account: row.id.clone(),
                existing,
                loaded: row.currency.clone(),
            })
        }
    }
}

/// Points each of the row's cards at the account; a card named by another
/// account before (a reissue) moves to this one.
async fn attach_cards(conn: &mut PgConnection, row: &AccountRow) -> Result<(), LedgerError> {
    if row.cards.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO cards (card_id, account_id) SELECT card, $2 FROM UNNEST($1::TEXT[]) AS card \
         ON CONFLICT (card_id) DO UPDATE SET account_id = EXCLUDED.account_id",
    )
    .bind(&row.cards)
    .bind(&row.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The account a card debits, if the ledger knows the card.
pub async fn card_account(
    conn: &mut PgConnection,
    card_id: &str,
) -> Result<Option<String>, LedgerError> {
    Ok(
        sqlx::query_scalar("SELECT account_id FROM cards WHERE card_id = $1")
            .bind(card_id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Tops the account up to its opening balance. The transfer's id derives
/// from the account and the target, so the same row is the same transfer.
async fn top_up(conn: &mut PgConnection, row: &AccountRow) -> Result<bool, LedgerError> {
    let equity = equity_account(&row.currency);
    let loaded: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(amount_minor), 0)::BIGINT FROM transfers \
         WHERE debit_account = $1 AND credit_account = $2 AND kind = 'POSTED'",
    )
    .bind(&equity)
    .bind(&row.id)
    .fetch_one(&mut *conn)
    .await?;
    let missing = row.opening_balance_minor - loaded;
    if missing <= 0 {
        return Ok(false);
    }
    let payment_id = Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!(
            "paystream-cbs-debit:opening:{}:{}",
            row.id, row.opening_balance_minor
        )
        .as_bytes(),
    );
    let transfer = Transfer {
        id: transfer_id(payment_id, Kind::Posted),
        payment_id,
        debit_account: equity,
        credit_account: row.id.clone(),
        amount_minor: missing,
        currency: row.currency.clone(),
    };
    match post_direct(conn, &transfer).await? {
        DirectPosting::Posted => Ok(true),
        DirectPosting::AlreadyPosted => Ok(false),
        DirectPosting::Refused(refusal) => Err(LedgerError::Inconsistent(format!(
            "the equity account refused a top-up of {}: {}",
            row.id, refusal.code
        ))),
    }
}
