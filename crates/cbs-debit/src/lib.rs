//! The core-banking debit ledger: double-entry accounts whose balances move
//! only with an immutable transfer, holds (pending transfers) that are posted
//! or voided at most once, and a check of those invariants.
//!
//! Every function takes the caller's `&mut PgConnection` — in a service, the
//! record's transaction from `ctx.tx().await?` — so a hold commits together
//! with the processed input and the staged events, or not at all. Any `Err`
//! means the caller must roll back: an operation may have written part of
//! itself before failing.

pub mod ledger;

pub use ledger::{
    AccountFlags, AccountRow, CheckReport, Currency, DirectPosting, Hold, Kind, LedgerError,
    LoadReport, Rail, Refusal, RefusalReason, Resolved, Transfer, check, equity_account, hold,
    load_accounts, parse_accounts_csv, post, post_direct, settlement_account, transfer_id, void,
};

/// The ledger's schema, applied by the service runtime with its own.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
