//! The core-banking debit ledger and the service around it.
//!
//! [`ledger`] is the core: double-entry accounts whose balances move only
//! with an immutable transfer, holds (pending transfers) that are posted or
//! voided at most once, and a check of those invariants. Every function
//! takes the caller's `&mut PgConnection` — in the service, the record's
//! transaction from `ctx.tx().await?` — so a hold commits together with the
//! processed input and the staged events, or not at all. Any `Err` means
//! the caller must roll back: an operation may have written part of itself
//! before failing.
//!
//! [`service`] wires the ledger to the pipeline on the shared runtime;
//! [`operator`] holds the commands an operator runs against its database.

pub mod ledger;
pub mod operator;
pub mod service;

pub use ledger::{
    AccountFlags, AccountRow, AccountView, CheckReport, Currency, DirectPosting, Hold, Kind,
    LedgerError, LoadReport, Movement, Rail, Refusal, RefusalReason, Resolved, SETTLEMENT_SHARDS,
    Transfer, account_view, card_account, check, equity_account, hold, load_accounts,
    parse_accounts_csv, post, post_direct, settlement_account, settlement_accounts,
    settlement_shard, transfer_id, void,
};
pub use service::{Config, DatabaseArgs, build, run};

/// The ledger's schema, applied by the service runtime with its own.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
