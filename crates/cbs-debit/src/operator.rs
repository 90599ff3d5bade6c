//! What an operator runs against the ledger's database: loading accounts
//! and checking the invariants. Both apply the schema first, so they work
//! on a database the service has not yet started on.

use std::fmt;
use std::path::Path;

use paystream_service_kit::ServiceError;
use sqlx::PgPool;

use crate::ledger::{self, CheckReport, LedgerError, LoadReport};
use crate::{DatabaseArgs, MIGRATOR};

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A small pool on the ledger's database, its schema applied.
pub async fn connect(database: &DatabaseArgs) -> Result<PgPool, OperatorError> {
    let pool = paystream_bus::pool::options()
        .max_connections(2)
        .connect(&database.url)
        .await?;
    paystream_service_kit::migrate(&pool, &MIGRATOR).await?;
    Ok(pool)
}

/// Loads or tops up the accounts of a CSV file, all in one transaction: a
/// file with a bad line changes nothing.
pub async fn load_accounts_file(
    database: &DatabaseArgs,
    path: &Path,
) -> Result<LoadReport, OperatorError> {
    let text = std::fs::read_to_string(path).map_err(|source| OperatorError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_accounts_text(&connect(database).await?, &text).await
}

/// Loads accounts from CSV text into a migrated ledger, in one transaction.
pub async fn load_accounts_text(pool: &PgPool, text: &str) -> Result<LoadReport, OperatorError> {
    let rows = ledger::parse_accounts_csv(text)?;
    let mut tx = pool.begin().await?;
    let report = ledger::load_accounts(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok(report)
}

pub async fn check_ledger(database: &DatabaseArgs) -> Result<CheckReport, OperatorError> {
    let pool = connect(database).await?;
    Ok(ledger::check(&pool).await?)
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accounts: {} created, {} topped up, {} unchanged",
            self.created, self.topped_up, self.unchanged
        )
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        writeln!(
            f,
            "{:<16}{:>20}{:>20}{:>14}",
            "", "debits", "credits", "difference"
        )?;
        for (name, debits, credits) in [
            ("pending", t.debits_pending, t.credits_pending),
            ("posted", t.debits_posted, t.credits_posted),
        ] {
            writeln!(
                f,
                "{name:<16}{debits:>20}{credits:>20}{:>14}",
                i128::from(debits) - i128::from(credits)
            )?;
        }
        for account in &self.overdrawn {
            let b = &account.balances;
            writeln!(
                f,
                "OVERDRAWN {}: debits {} pending + {} posted > credits {} posted",
                account.account, b.debits_pending, b.debits_posted, b.credits_posted
            )?;
        }
        for account in &self.mismatched {
            writeln!(
                f,
                "MISMATCH {}: stored {:?}, transfers add up to {:?}",
                account.account, account.stored, account.from_transfers
            )?;
        }
        for hold in &self.resolved_more_than_once {
            writeln!(f, "RESOLVED TWICE hold {hold}")?;
        }
        for resolution in &self.orphan_resolutions {
            writeln!(f, "ORPHAN resolution {resolution}")?;
        }
        if self.is_clean() {
            write!(f, "ledger check: clean")
        } else {
            write!(f, "ledger check: VIOLATIONS")
        }
    }
}
