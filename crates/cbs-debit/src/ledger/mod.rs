//! The ledger's vocabulary: currencies, transfers, their kinds and ids, the
//! system accounts, refusals and errors.

mod accounts;
mod check;
mod movement;
mod queries;
mod resolution;

use std::fmt;

use paystream_contract::ReasonCode;
use uuid::Uuid;

pub use accounts::{
    AccountFlags, AccountRow, LoadReport, card_account, load_accounts, parse_accounts_csv,
};
pub use check::{AccountMismatch, Balances, CheckReport, Overdrawn, Totals, check};
pub use movement::{DirectPosting, Hold, hold, post_direct};
pub use queries::{AccountView, Movement, account_view};
pub use resolution::{Resolved, post, void};

/// An ISO 4217 currency code, checked against the standard's list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, LedgerError> {
        match iso_currency::Currency::from_code(code) {
            Some(currency) => Ok(Self(currency.code().to_owned())),
            None => Err(LedgerError::InvalidCurrency(code.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a transfer does, as TigerBeetle names the phases of a two-phase
/// transfer: a hold, its post or its void, or a single-phase posted transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Reserves the amount: debits_pending and credits_pending grow.
    Pending,
    /// Moves a hold's amount from pending to posted on both accounts.
    PostPending,
    /// Releases a hold's amount from pending on both accounts.
    VoidPending,
    /// A single-phase transfer: posted at once.
    Posted,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::PostPending => "POST_PENDING",
            Self::VoidPending => "VOID_PENDING",
            Self::Posted => "POSTED",
        }
    }

    fn from_db(kind: &str) -> Result<Self, LedgerError> {
        match kind {
            "PENDING" => Ok(Self::Pending),
            "POST_PENDING" => Ok(Self::PostPending),
            "VOID_PENDING" => Ok(Self::VoidPending),
            "POSTED" => Ok(Self::Posted),
            other => Err(LedgerError::Inconsistent(format!(
                "unknown transfer kind {other:?}"
            ))),
        }
    }
}

/// The namespace of the ledger's UUIDv5 ids: fixed forever, or re-runs
/// would derive different ids and move money again.
const TRANSFER_NAMESPACE: Uuid = Uuid::from_u128(0x6c3b_1f0e_8a57_4d2b_9f43_cb5d_eb17_0001);

/// The id of a payment's transfer of one kind: the same payment and phase
/// always give the same id, so a redelivery or an upstream re-run finds the
/// transfer it already made.
pub fn transfer_id(payment_id: Uuid, phase: Kind) -> Uuid {
    let mut name = payment_id.as_bytes().to_vec();
    name.extend_from_slice(phase.as_str().as_bytes());
    Uuid::new_v5(&TRANSFER_NAMESPACE, &name)
}

/// Which rail a settlement account is in flight to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rail {
    /// Credit transfers held until the RTGS rail settles or rejects them.
    Rtgs,
    /// Card transactions, posted at once.
    Card,
}

/// How many rows each rail's in-flight account is spread over, per
/// currency. Every hold also credits the in-flight account, and a row stays
/// locked until its transaction commits: with one row, holds on unrelated
/// debtors would queue behind each other. Spread over this many shards,
/// two holds share a row only when their debtors share a shard. Fixed
/// forever: a hold's credit account is part of its identity, so a re-run
/// must pick the shard it picked the first time.
pub const SETTLEMENT_SHARDS: u32 = 16;

/// The shard of `debtor`'s in-flight money: FNV-1a, stable across builds
/// and platforms (unlike `std`'s hasher).
pub fn settlement_shard(debtor: &str) -> u32 {
    let hash = debtor
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    // The remainder is below SETTLEMENT_SHARDS, so it fits.
    (hash % u64::from(SETTLEMENT_SHARDS)) as u32
}

fn rail_name(rail: Rail) -> &'static str {
    match rail {
        Rail::Rtgs => "RTGS",
        Rail::Card => "CARD",
    }
}

/// The account `debtor`'s money is in flight to on a rail: one shard of
/// the rail's per-currency account (`SETTLEMENT-RTGS-EUR-07`). Its debits
/// may exceed its credits. The rail's total in flight is the sum over
/// [`settlement_accounts`].
pub fn settlement_account(rail: Rail, currency: &Currency, debtor: &str) -> String {
    shard_account(rail, currency, settlement_shard(debtor))
}

/// Every shard of a rail's in-flight account in one currency.
pub fn settlement_accounts(rail: Rail, currency: &Currency) -> Vec<String> {
    (0..SETTLEMENT_SHARDS)
        .map(|shard| shard_account(rail, currency, shard))
        .collect()
}

fn shard_account(rail: Rail, currency: &Currency, shard: u32) -> String {
    format!("SETTLEMENT-{}-{currency}-{shard:02}", rail_name(rail))
}

/// The account opening balances come from, one per currency
/// (`EQUITY-OPENING-EUR`), so that loading money is a transfer too.
pub fn equity_account(currency: &Currency) -> String {
    format!("EQUITY-OPENING-{currency}")
}

/// A movement of `amount_minor` from `debit_account` to `credit_account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub debit_account: String,
    pub credit_account: String,
    pub amount_minor: i64,
    pub currency: Currency,
}

impl Transfer {
    /// A payment's hold: the debtor to the RTGS settlement account.
    pub fn hold(payment_id: Uuid, debtor: &str, amount_minor: i64, currency: Currency) -> Self {
        Self {
            id: transfer_id(payment_id, Kind::Pending),
            payment_id,
            debit_account: debtor.to_owned(),
            credit_account: settlement_account(Rail::Rtgs, &currency, debtor),
            amount_minor,
            currency,
        }
    }

    /// A card transaction's debit: the card's account to the card
    /// settlement account, posted at once.
    pub fn card(payment_id: Uuid, account: &str, amount_minor: i64, currency: Currency) -> Self {
        Self {
            id: transfer_id(payment_id, Kind::Posted),
            payment_id,
            debit_account: account.to_owned(),
            credit_account: settlement_account(Rail::Card, &currency, account),
            amount_minor,
            currency,
        }
    }
}

/// Why the ledger refused to move money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    InvalidAmount,
    /// Not an ISO 4217 code: no account can hold it.
    UnknownCurrency,
    UnknownAccount,
    ClosedAccount,
    BlockedAccount,
    CurrencyMismatch,
    InsufficientFunds,
}

impl RefusalReason {
    /// The ISO 20022 reason the refusal travels with.
    pub fn code(self) -> ReasonCode {
        match self {
            Self::InvalidAmount => ReasonCode::InvalidAmount,
            Self::UnknownCurrency => ReasonCode::NotAllowedCurrency,
            Self::UnknownAccount => ReasonCode::IncorrectAccountNumber,
            Self::ClosedAccount => ReasonCode::ClosedAccountNumber,
            Self::BlockedAccount => ReasonCode::BlockedAccount,
            Self::CurrencyMismatch => ReasonCode::NotAllowedCurrency,
            Self::InsufficientFunds => ReasonCode::InsufficientFunds,
        }
    }
}

/// A refusal: nothing moved. `text` is fit for the payer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
    pub code: ReasonCode,
    pub text: String,
}

impl From<RefusalReason> for Refusal {
    fn from(reason: RefusalReason) -> Self {
        let text = match reason {
            RefusalReason::InvalidAmount => "The amount must be greater than zero.",
            RefusalReason::UnknownCurrency => "The currency is not an ISO 4217 currency.",
            other => other.code().description(),
        };
        Self {
            reason,
            code: reason.code(),
            text: text.to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The id names a transfer with different fields: never a second movement.
    #[error("transfer {id} already exists with different fields")]
    Conflict { id: Uuid },
    #[error("hold {pending_id} was already resolved by a {by:?} transfer")]
    AlreadyResolved { pending_id: Uuid, by: Kind },
    #[error("no hold {pending_id}")]
    UnknownHold { pending_id: Uuid },
    /// Another transaction wrote the same transfer or resolution at the same
    /// time; roll back and retry, and the retry finds what it wrote.
    #[error("transfer {id} raced a concurrent write; roll back and retry")]
    Raced { id: Uuid },
    #[error("{0:?} is not an ISO 4217 currency")]
    InvalidCurrency(String),
    #[error("invalid transfer {id}: {reason}")]
    InvalidTransfer { id: Uuid, reason: &'static str },
    /// The credit side (a settlement or equity account) is missing or in
    /// another currency: a configuration error, not the payer's.
    #[error("credit account {account} is missing or not in {currency}")]
    CreditAccount { account: String, currency: Currency },
    #[error("account {account} is in {existing}, the file says {loaded}")]
    AccountCurrency {
        account: String,
        existing: String,
        loaded: Currency,
    },
    #[error("account {account}: {reason}")]
    InvalidAccount {
        account: String,
        reason: &'static str,
    },
    #[error("accounts file line {line}: {message}")]
    Csv { line: usize, message: String },
    #[error("ledger inconsistency: {0}")]
    Inconsistent(String),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl LedgerError {
    /// A unique violation on a transfer id or on a hold's resolution is a
    /// concurrent duplicate, not a failure of the database.
    fn from_write(error: sqlx::Error, id: Uuid) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Raced { id },
            _ => Self::Database(error),
        }
    }

    /// Releasing a pending, unresolved hold cannot take a balance below
    /// zero unless another transaction resolved the same hold meanwhile:
    /// then a balance CHECK fails instead of the unique resolution.
    fn from_resolution(error: sqlx::Error, id: Uuid) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_check_violation() => Self::Raced { id },
            _ => Self::from_write(error, id),
        }
    }
}

impl From<sqlx::Error> for LedgerError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}
